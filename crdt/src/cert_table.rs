//! The admitted nodes: one certificate per node, replicated.

use std::collections::BTreeMap;

use crate::cert::{CertError, NodeCert};
use crate::keys::{Digest, PublicKey, domain};
use crate::membership::NodeId;
use crate::replica::{Ctx, Merge, Rejected, Replica};
use crate::trust::Role;

/// Most certificates held: a fleet larger than this needs a bigger bound.
pub const CERTS_MAX: usize = 100_000;

/// The key a node's certificate is held under: derivable from the node id
/// alone, so a claim about an unknown member can ask for its certificate.
pub fn cert_key(id: NodeId) -> Digest {
    Digest::of(domain::CONTENT, &("cert", id))
}

/// Certificates by node id. A node re-admitted with a new certificate
/// (new tags, a later expiry) replaces its old one: the newer trust
/// version wins, then the later expiry, then the lower digest.
#[derive(Clone, Debug, Default)]
pub struct CertTable {
    certs: BTreeMap<NodeId, Held>,
    by_key: BTreeMap<Digest, NodeId>,
}

/// A certificate with its digests computed once: anti-entropy lists every
/// `(key, version)` pair of a bucket on each exchange.
#[derive(Clone, Debug)]
struct Held {
    cert: NodeCert,
    key: Digest,
    version: Digest,
}

fn rank(cert: &NodeCert, digest: Digest) -> (u64, u64, std::cmp::Reverse<Digest>) {
    (
        cert.body.trust_version,
        cert.body.expires_millis.unwrap_or(u64::MAX),
        std::cmp::Reverse(digest),
    )
}

impl CertTable {
    /// The certificate of `id`, if it is admitted.
    pub fn get(&self, id: NodeId) -> Option<&NodeCert> {
        self.certs.get(&id).map(|held| &held.cert)
    }

    /// Every certificate held, valid or not, by node id.
    pub fn iter(&self) -> impl Iterator<Item = &NodeCert> {
        self.certs.values().map(|held| &held.cert)
    }

    /// Whether `id` holds a certificate valid at `now_millis`.
    pub fn admits(&self, id: NodeId, now_millis: u64) -> bool {
        self.certs.get(&id).is_some_and(|held| {
            held.cert
                .body
                .expires_millis
                .is_none_or(|expiry| now_millis < expiry)
        })
    }

    /// Whether `key` is an admitted node's key at `now_millis`.
    pub fn admits_key(&self, key: &PublicKey, now_millis: u64) -> bool {
        self.certs
            .get(&key.node_id())
            .is_some_and(|held| held.cert.body.node_key == *key)
            && self.admits(key.node_id(), now_millis)
    }

    /// Number of certificates held.
    pub fn len(&self) -> usize {
        self.certs.len()
    }

    /// Whether no certificate is held.
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }
}

impl Replica for CertTable {
    type Entry = NodeCert;

    fn versions(&self) -> Vec<(Digest, Digest)> {
        self.certs
            .values()
            .map(|held| (held.key, held.version))
            .collect()
    }

    fn entry(&self, key: &Digest) -> Option<NodeCert> {
        let id = self.by_key.get(key)?;
        self.certs.get(id).map(|held| held.cert.clone())
    }

    fn merge(&mut self, cert: NodeCert, ctx: &Ctx<'_>) -> Result<Merge, Rejected> {
        let id = cert.node_id();
        let held = self.certs.get(&id);
        // Most certificates offered are ones already held (every Hello,
        // every anti-entropy overlap): spot those before hashing anything.
        if held.is_some_and(|held| held.cert == cert) {
            return Ok(Merge::Unchanged);
        }
        let version = cert.digest();
        if held.is_some_and(|held| rank(&held.cert, held.version) >= rank(&cert, version)) {
            return Ok(Merge::Unchanged);
        }
        cert.check(ctx.trust, ctx.now_millis, ctx.verifier)
            .map_err(|error| match error {
                CertError::BadSignature => Rejected::BadSignature,
                other => Rejected::Unauthorized(other.to_string()),
            })?;
        if held.is_none() && self.certs.len() >= CERTS_MAX {
            return Err(Rejected::QueueFull("certificates"));
        }
        let key = cert_key(id);
        self.by_key.insert(key, id);
        let replaced = self
            .certs
            .insert(id, Held { cert, key, version })
            .map(|old| old.version);
        Ok(Merge::Changed {
            key,
            version,
            replaced,
        })
    }

    fn trust_changed(&mut self, ctx: &Ctx<'_>) {
        self.certs.retain(|_, held| {
            let body = &held.cert.body;
            !ctx.trust.is_revoked(&body.node_key)
                && ctx
                    .trust
                    .authorizes(&body.issuer, Role::Admit, body.trust_version)
        });
        let certs = &self.certs;
        self.by_key.retain(|_, id| certs.contains_key(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::CertBody;
    use crate::testing::{Fleet, Pooled, check_crdt_laws};
    use crate::trust::tests::key;

    fn cert(node: u8, trust_version: u64, expires_millis: Option<u64>, issuer: u8) -> NodeCert {
        let fleet = Fleet::new(&[]);
        let body = CertBody {
            fleet: fleet.trust.fleet_id(),
            node_key: key(node).public(),
            name: format!("node-{node}"),
            tags: Default::default(),
            expires_millis,
            issuer: key(issuer).public(),
            trust_version,
        };
        NodeCert::issue(body, &key(issuer))
    }

    #[test]
    fn cert_table_is_a_crdt_where_the_newest_certificate_wins() {
        let mut fleet = Fleet::new(&[]);
        fleet.revoke(&[]);
        let mut forged = cert(14, 1, None, 100);
        forged.body.name = "renamed".into();
        let pool: Vec<Pooled<NodeCert>> = vec![
            (cert(10, 1, None, 100), true),
            // Re-admitted under a newer trust version, then with an expiry:
            // the newer trust version ranks first.
            (cert(10, 2, Some(5_000), 100), true),
            (cert(11, 1, Some(9_000), 100), true),
            (cert(11, 1, Some(8_000), 100), true),
            (cert(12, 1, None, 100), true),
            // Issued by a key without `admit`, and a body changed after
            // signing: never held.
            (cert(13, 1, None, 7), false),
            (forged, false),
        ];
        let converged = check_crdt_laws(&fleet, &CertTable::default(), &pool);
        assert_eq!(converged.len(), 3);
        assert_eq!(
            converged
                .get(key(10).public().node_id())
                .unwrap()
                .body
                .trust_version,
            2
        );
        assert_eq!(
            converged
                .get(key(11).public().node_id())
                .unwrap()
                .body
                .expires_millis,
            Some(9_000)
        );
        assert!(converged.admits_key(&key(12).public(), 0));
        assert!(!converged.admits(key(13).public().node_id(), 0));
        assert!(!converged.admits(key(14).public().node_id(), 0));
    }

    #[test]
    fn revoking_a_node_drops_its_certificate() {
        let mut fleet = Fleet::new(&[]);
        let mut table = CertTable::default();
        fleet.with_ctx(0, |ctx| {
            for node in [10, 11] {
                table.merge(cert(node, 1, None, 100), ctx).unwrap();
            }
        });
        fleet.revoke(&[key(10).public()]);
        fleet.with_ctx(0, |ctx| table.trust_changed(ctx));
        assert!(!table.admits(key(10).public().node_id(), 0));
        assert!(table.admits(key(11).public().node_id(), 0));
        assert!(table.entry(&cert_key(key(10).public().node_id())).is_none());
    }
}
