//! Who an agent is: its key, its certificate and the fleet it trusts.

use std::sync::Arc;

use fleetmesh_crdt::{Keypair, NodeCert, NodeId, SignedTrust, TrustChain, Verifier};

use crate::error::AgentError;

/// Everything an agent needs to take part in a fleet.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The agent's key: signs its health reports, grants and ledger
    /// records; its public half names the agent (and, in the runtime, is its
    /// libp2p identity).
    pub keypair: Keypair,
    /// The agent's certificate, signed by an `admit` key.
    pub cert: NodeCert,
    /// The fleet's genesis trust document, which the agent is installed
    /// with; newer versions arrive through the mesh.
    pub genesis: SignedTrust,
}

impl Identity {
    /// The agent's id in the membership protocol.
    pub fn node_id(&self) -> NodeId {
        self.keypair.public().node_id()
    }

    /// Checks that the certificate is this key's and valid under the
    /// genesis at HLC time `now_millis`, and returns the trust chain.
    pub fn verify(
        &self,
        verifier: &Arc<dyn Verifier>,
        now_millis: u64,
    ) -> Result<TrustChain, AgentError> {
        let trust = TrustChain::new(self.genesis.clone(), verifier.as_ref())
            .map_err(|error| AgentError::Identity(error.to_string()))?;
        if self.cert.body.node_key != self.keypair.public() {
            return Err(AgentError::Identity(
                "the certificate names another key".into(),
            ));
        }
        self.cert
            .check(&trust, now_millis, verifier.as_ref())
            .map_err(|error| AgentError::Identity(error.to_string()))?;
        Ok(trust)
    }
}
