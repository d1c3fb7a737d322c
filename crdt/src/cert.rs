//! Node certificates: admission to a fleet.
//!
//! An agent takes part in a fleet only with a certificate, signed by a key
//! holding the `admit` role, that binds its public key to a name and tags.
//! Agents ignore peers without a valid certificate and expel peers whose key
//! (or whose certificate's issuer) the trust document revokes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::keys::{Digest, Keypair, PublicKey, Signature, SignatureCheck, Verifier, domain};
use crate::trust::{Role, TrustChain};
use crate::{NodeId, NodeMeta};

/// What a certificate states.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertBody {
    /// The fleet (genesis digest) the node is admitted to.
    pub fleet: Digest,
    /// The node's key; its [`PublicKey::node_id`] is the node's id.
    pub node_key: PublicKey,
    /// The node's name, for operators.
    pub name: String,
    /// Tags the admitting operator vouches for.
    pub tags: BTreeMap<String, String>,
    /// When the certificate stops being valid (HLC milliseconds), if ever.
    pub expires_millis: Option<u64>,
    /// The `admit` key that signed it.
    pub issuer: PublicKey,
    /// The trust version under which the issuer held `admit`.
    pub trust_version: u64,
}

/// A node certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCert {
    /// What is certified.
    pub body: CertBody,
    /// The issuer's signature over the body.
    pub signature: Signature,
}

/// Why a certificate was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// Issued for another fleet.
    #[error("certificate is for another fleet")]
    OtherFleet,
    /// The issuer did not hold `admit` at the stated trust version, or is
    /// revoked.
    #[error("certificate issuer {0:?} may not admit nodes")]
    IssuerNotAuthorized(PublicKey),
    /// The node's key is revoked.
    #[error("node key {0:?} is revoked")]
    Revoked(PublicKey),
    /// Past its expiry.
    #[error("certificate expired at {0} ms")]
    Expired(u64),
    /// Name or tags over their bounds.
    #[error("certificate name or tags are malformed")]
    Malformed,
    /// The signature does not verify.
    #[error("certificate signature does not verify")]
    BadSignature,
}

impl NodeCert {
    /// Signs a certificate for `body` with `issuer`, which must be the key
    /// named in `body.issuer`.
    pub fn issue(body: CertBody, issuer: &Keypair) -> NodeCert {
        let signature = issuer.sign(domain::CERT, &body);
        NodeCert { body, signature }
    }

    /// The certified node's id.
    pub fn node_id(&self) -> NodeId {
        self.body.node_key.node_id()
    }

    /// The content address of the certificate.
    pub fn digest(&self) -> Digest {
        Digest::of(domain::CONTENT, self)
    }

    /// Checks the certificate against the fleet's trust chain at HLC time
    /// `now_millis`.
    pub fn check(
        &self,
        trust: &TrustChain,
        now_millis: u64,
        verifier: &dyn Verifier,
    ) -> Result<(), CertError> {
        let body = &self.body;
        if body.fleet != trust.fleet_id() {
            return Err(CertError::OtherFleet);
        }
        let meta = NodeMeta {
            tags: body.tags.clone(),
            addrs: Vec::new(),
        };
        if body.name.is_empty() || body.name.len() > 128 || meta.validate().is_err() {
            return Err(CertError::Malformed);
        }
        if trust.is_revoked(&body.node_key) {
            return Err(CertError::Revoked(body.node_key));
        }
        if !trust.authorizes(&body.issuer, Role::Admit, body.trust_version) {
            return Err(CertError::IssuerNotAuthorized(body.issuer));
        }
        if let Some(expiry) = body.expires_millis
            && now_millis >= expiry
        {
            return Err(CertError::Expired(expiry));
        }
        let check = SignatureCheck {
            key: body.issuer,
            digest: Digest::of(domain::CERT, body),
            signature: self.signature,
        };
        if !verifier.verify(&check) {
            return Err(CertError::BadSignature);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Ed25519;
    use crate::trust::tests::{doc, key, sign};

    fn body(chain: &TrustChain, node: &Keypair, issuer: &Keypair) -> CertBody {
        CertBody {
            fleet: chain.fleet_id(),
            node_key: node.public(),
            name: "web-1".into(),
            tags: BTreeMap::from([("role".into(), "web".into())]),
            expires_millis: Some(10_000),
            issuer: issuer.public(),
            trust_version: 1,
        }
    }

    #[test]
    fn valid_certificate_checks_and_every_defect_is_named() {
        let root = key(1);
        let mut chain = TrustChain::new(sign(doc(1, &[&root], &[]), &[&root]), &Ed25519).unwrap();
        let (node, admit) = (key(50), key(100));
        let cert = NodeCert::issue(body(&chain, &node, &admit), &admit);
        assert_eq!(cert.check(&chain, 0, &Ed25519), Ok(()));
        assert_eq!(cert.node_id(), node.public().node_id());
        assert_eq!(
            cert.check(&chain, 10_000, &Ed25519),
            Err(CertError::Expired(10_000))
        );

        let forged = NodeCert::issue(body(&chain, &node, &admit), &key(99));
        assert_eq!(
            forged.check(&chain, 0, &Ed25519),
            Err(CertError::BadSignature)
        );
        let stranger = key(98);
        let unauthorized = NodeCert::issue(body(&chain, &node, &stranger), &stranger);
        assert_eq!(
            unauthorized.check(&chain, 0, &Ed25519),
            Err(CertError::IssuerNotAuthorized(stranger.public()))
        );

        chain
            .insert(sign(doc(2, &[&root], &[node.public()]), &[&root]), &Ed25519)
            .unwrap();
        assert_eq!(
            cert.check(&chain, 0, &Ed25519),
            Err(CertError::Revoked(node.public()))
        );
    }
}
