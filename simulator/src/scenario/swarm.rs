//! The `[swarm]` section: how far a swarm run may vary the scenario's
//! faults from seed to seed (see [`crate::swarm`]).

use crate::scenario::context::{Context, ScenarioError, probability};
use serde::Deserialize;
use std::time::Duration;
use toml::Spanned;

/// Largest intensity factor a scenario may allow: beyond it a scaled rate
/// says more about the factor than about the fleet.
pub const SCALE_MAX: f64 = 4.0;

/// The bounds within which a swarm run draws each seed's fault mix.
#[derive(Clone, Debug, PartialEq)]
pub struct SwarmBounds {
    /// Each seed keeps every fault of the timeline with a probability drawn
    /// from `[keep_min, 1]`.
    pub keep_min: f64,
    /// Each seed turns each fault kind off with this probability (at least
    /// one kind the scenario uses stays on).
    pub kind_off: f64,
    /// Each fault kind's intensity (loss rates, pause rates and lengths,
    /// partition and crash sizes, skew) is scaled by a factor drawn from
    /// `[scale_min, scale_max]`.
    pub scale_min: f64,
    /// See `scale_min`.
    pub scale_max: f64,
    /// Fault start times move by up to this much either way; `None` means
    /// a twentieth of the run.
    pub jitter: Option<Duration>,
}

impl Default for SwarmBounds {
    fn default() -> SwarmBounds {
        // Never harsher than the scenario as written: a swarm seed that
        // fails then fails for a fault mix the scenario's own bounds allow.
        SwarmBounds {
            keep_min: 0.5,
            kind_off: 0.25,
            scale_min: 0.25,
            scale_max: 1.0,
            jitter: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SwarmFile {
    keep_min: Option<f64>,
    kind_off: Option<f64>,
    scale_min: Option<f64>,
    scale_max: Option<f64>,
    jitter_s: Option<f64>,
}

/// Validates the `[swarm]` table.
pub(crate) fn bounds(
    context: &Context<'_>,
    file: Option<&Spanned<SwarmFile>>,
    duration: Duration,
) -> Result<SwarmBounds, ScenarioError> {
    let defaults = SwarmBounds::default();
    let Some(file) = file else {
        return Ok(defaults);
    };
    let span = file.span();
    let raw = file.get_ref();
    let fraction = |field: &str, value: Option<f64>, default: f64| match value {
        Some(value) => probability(context, span.clone(), &format!("swarm.{field}"), value),
        None => Ok(default),
    };
    let keep_min = fraction("keep_min", raw.keep_min, defaults.keep_min)?;
    let kind_off = fraction("kind_off", raw.kind_off, defaults.kind_off)?;
    let scale_min = raw.scale_min.unwrap_or(defaults.scale_min);
    let scale_max = raw.scale_max.unwrap_or(defaults.scale_max);
    if !(0.0..=SCALE_MAX).contains(&scale_min)
        || !(0.0..=SCALE_MAX).contains(&scale_max)
        || scale_min > scale_max
    {
        return Err(context.invalid(
            span,
            "swarm.scale_min",
            format!("need 0 <= scale_min <= scale_max <= {SCALE_MAX}"),
        ));
    }
    let jitter = match raw.jitter_s {
        Some(seconds)
            if seconds.is_finite() && (0.0..=duration.as_secs_f64()).contains(&seconds) =>
        {
            Some(Duration::from_secs_f64(seconds))
        }
        Some(seconds) => {
            return Err(context.invalid(
                span,
                "swarm.jitter_s",
                format!("{seconds} is not a duration within the run (0 to duration_s)"),
            ));
        }
        None => None,
    };
    Ok(SwarmBounds {
        keep_min,
        kind_off,
        scale_min,
        scale_max,
        jitter,
    })
}
