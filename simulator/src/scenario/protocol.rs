//! The `[protocol]` section: a preset of the agents' protocol parameters
//! and the fields that override it.

use crate::scenario::context::{Context, ScenarioError, millis, seconds};
use fleetmesh_node::Config;
use serde::Deserialize;
use std::num::NonZeroU8;
use toml::Spanned;

/// Most verifications per second, or in a burst, a scenario may give a
/// verification budget (as the agent config's `limits.verify_*`).
const VERIFY_BUDGET_MAX: u32 = 1_000_000;

/// The `[protocol]` table as serde reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProtocolFile {
    #[serde(default = "default_preset")]
    preset: String,
    probe_interval_ms: Option<u64>,
    probe_timeout_ms: Option<u64>,
    indirect_probes: Option<u8>,
    suspicion_mult: Option<f64>,
    suspicion_max_mult: Option<f64>,
    gossip_interval_ms: Option<u64>,
    gossip_fanout: Option<u8>,
    retransmit_mult: Option<u32>,
    sync_interval_s: Option<f64>,
    reconnect_interval_s: Option<f64>,
    reap_after_s: Option<f64>,
    lease_drift_bound_ms: Option<u64>,
    lease_lock_delay_ms: Option<u64>,
    verify_per_peer_per_second: Option<u32>,
    verify_per_peer_burst: Option<u32>,
    verify_unadmitted_per_second: Option<u32>,
    verify_unadmitted_burst: Option<u32>,
}

fn default_preset() -> String {
    "lan".into()
}

/// Validates `[protocol]`: the parameters and the preset's name.
pub(crate) fn config(
    context: &Context<'_>,
    file: &Spanned<ProtocolFile>,
) -> Result<(Config, String), ScenarioError> {
    let span = file.span();
    let protocol = file.get_ref();
    let mut config = match protocol.preset.as_str() {
        "lan" => Config::lan(),
        "wan" => Config::wan(),
        other => {
            return Err(context.invalid(
                span,
                "protocol.preset",
                format!("unknown preset {other:?}; use \"lan\" or \"wan\""),
            ));
        }
    };
    let non_zero = |field: &str, value: u8| {
        NonZeroU8::new(value)
            .ok_or_else(|| context.invalid(span.clone(), field, "must be at least 1"))
    };
    if let Some(ms) = protocol.probe_interval_ms {
        config.probe_interval = millis(context, span.clone(), "protocol.probe_interval_ms", ms)?;
    }
    if let Some(ms) = protocol.probe_timeout_ms {
        config.probe_timeout = millis(context, span.clone(), "protocol.probe_timeout_ms", ms)?;
    }
    if let Some(count) = protocol.indirect_probes {
        config.indirect_probes = non_zero("protocol.indirect_probes", count)?;
    }
    if let Some(fanout) = protocol.gossip_fanout {
        config.gossip_fanout = non_zero("protocol.gossip_fanout", fanout)?;
    }
    if let Some(mult) = protocol.suspicion_mult {
        config.suspicion_mult = mult;
    }
    if let Some(mult) = protocol.suspicion_max_mult {
        config.suspicion_max_mult = mult;
    }
    if let Some(ms) = protocol.gossip_interval_ms {
        config.gossip_interval = millis(context, span.clone(), "protocol.gossip_interval_ms", ms)?;
    }
    if let Some(mult) = protocol.retransmit_mult {
        config.retransmit_mult = mult;
    }
    for (field, value, slot) in [
        (
            "protocol.sync_interval_s",
            protocol.sync_interval_s,
            &mut config.sync_interval,
        ),
        (
            "protocol.reconnect_interval_s",
            protocol.reconnect_interval_s,
            &mut config.reconnect_interval,
        ),
        (
            "protocol.reap_after_s",
            protocol.reap_after_s,
            &mut config.reap_after,
        ),
    ] {
        if let Some(value) = value {
            *slot = seconds(context, span.clone(), field, value)?;
        }
    }
    if let Some(ms) = protocol.lease_drift_bound_ms {
        let field = "protocol.lease_drift_bound_ms";
        config.lease_drift_bound = millis(context, span.clone(), field, ms)?;
    }
    if let Some(ms) = protocol.lease_lock_delay_ms {
        let field = "protocol.lease_lock_delay_ms";
        config.lease_lock_delay = millis(context, span.clone(), field, ms)?;
    }
    for (field, value, slot) in [
        (
            "protocol.verify_per_peer_per_second",
            protocol.verify_per_peer_per_second,
            &mut config.verify_per_peer.per_second,
        ),
        (
            "protocol.verify_per_peer_burst",
            protocol.verify_per_peer_burst,
            &mut config.verify_per_peer.burst,
        ),
        (
            "protocol.verify_unadmitted_per_second",
            protocol.verify_unadmitted_per_second,
            &mut config.verify_unadmitted.per_second,
        ),
        (
            "protocol.verify_unadmitted_burst",
            protocol.verify_unadmitted_burst,
            &mut config.verify_unadmitted.burst,
        ),
    ] {
        if let Some(value) = value {
            *slot = std::num::NonZeroU32::new(value)
                .filter(|value| value.get() <= VERIFY_BUDGET_MAX)
                .ok_or_else(|| {
                    context.invalid(
                        span.clone(),
                        field,
                        format!("must be 1 to {VERIFY_BUDGET_MAX}"),
                    )
                })?;
        }
    }
    config.validate().map_err(|error| {
        let field = format!("protocol.{}", error.field);
        context.invalid(span, field, error.problem)
    })?;
    Ok((config, protocol.preset.clone()))
}
