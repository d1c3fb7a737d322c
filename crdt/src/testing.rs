//! Test support shared by the collections' tests: a trust chain, an
//! admitted set and the context built from them.

use std::collections::BTreeSet;

use crate::keys::{Ed25519, Keypair, PublicKey};
use crate::replica::Ctx;
use crate::trust::TrustChain;
use crate::trust::tests::{doc, key, sign};

/// A fleet whose roots are keys 1 and 2 and whose approver is key 100.
pub struct Fleet {
    /// The trust chain; [`Fleet::revoke`] extends it.
    pub trust: TrustChain,
    /// Node keys with a valid certificate.
    pub admitted: BTreeSet<PublicKey>,
}

impl Fleet {
    /// A fleet admitting `nodes`.
    pub fn new(nodes: &[&Keypair]) -> Fleet {
        let (a, b) = (key(1), key(2));
        let trust = TrustChain::new(sign(doc(1, &[&a, &b], &[]), &[&a, &b]), &Ed25519).unwrap();
        Fleet {
            trust,
            admitted: nodes.iter().map(|node| node.public()).collect(),
        }
    }

    /// Publishes the next trust version, revoking `revoked`.
    pub fn revoke(&mut self, revoked: &[PublicKey]) {
        let (a, b) = (key(1), key(2));
        let version = self.trust.head().doc.version + 1;
        let next = sign(doc(version, &[&a, &b], revoked), &[&a, &b]);
        self.trust.insert(next, &Ed25519).unwrap();
    }

    /// Runs `body` with a merge context at HLC time `now_millis`.
    pub fn with_ctx<T>(&self, now_millis: u64, body: impl FnOnce(&Ctx<'_>) -> T) -> T {
        let admitted = |node: &PublicKey| self.admitted.contains(node);
        let ctx = Ctx {
            trust: &self.trust,
            admitted: &admitted,
            verifier: &Ed25519,
            now_millis,
        };
        body(&ctx)
    }
}
