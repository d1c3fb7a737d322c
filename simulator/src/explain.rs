//! The per-agent log of a violation: what the agents it involves saw and
//! did, one line per event, up to the moment it broke.
//!
//! A violation names its agents ([`Violation::agents`]); the run is a
//! function of its seed, so the log comes from playing the seed again with
//! a [`crate::trace::Watch`] on those agents, rather than from recording
//! every agent's events in every run.

use crate::checkers::Violation;
use crate::scenario::Scenario;
use crate::trace::{FAULT_NAMES, TraceEvent, Watched};
use crate::{RunOptions, run};

/// Most agents a log follows.
pub const AGENTS_MAX: usize = 6;

/// Lines of the log, oldest first: the last `lines` events up to
/// `violation` in the run of `scenario` at `seed` that name its agents
/// (their membership views and the views others hold of them, their
/// releases and actions, lease holder changes among them) and every fault
/// action. Empty when the violation names no agent.
pub fn log(scenario: &Scenario, seed: u64, violation: &Violation, lines: usize) -> Vec<String> {
    let agents: Vec<u32> = violation.agents.iter().copied().take(AGENTS_MAX).collect();
    if agents.is_empty() {
        return Vec::new();
    }
    let options = RunOptions {
        watch: agents.clone(),
        ..RunOptions::seeded(seed)
    };
    let outcome = run(scenario, options);
    let mut entries: Vec<(u64, String)> = outcome
        .watched
        .iter()
        .flat_map(|watch| watch.events())
        .filter(|(at, _)| *at <= violation.at)
        .map(|(at, event)| (*at, describe(event)))
        .collect();
    for lease in &outcome.leases {
        let mut involved = false;
        for (at, holders) in &lease.holders {
            let now_involved = holders.iter().any(|(agent, _)| agents.contains(agent));
            if *at <= violation.at && (now_involved || involved) {
                let who: Vec<String> = holders
                    .iter()
                    .map(|(agent, epoch)| format!("agent {agent} (epoch {epoch})"))
                    .collect();
                let text = if who.is_empty() {
                    format!("lease {:?}: no holder", lease.scope)
                } else {
                    format!("lease {:?}: held by {}", lease.scope, who.join(" and "))
                };
                entries.push((*at, text));
            }
            involved = now_involved;
        }
    }
    // Stable: events at one instant keep the order they happened in.
    entries.sort_by_key(|(at, _)| *at);
    let skip = entries.len().saturating_sub(lines);
    entries
        .into_iter()
        .skip(skip)
        .map(|(at, text)| format!("t={:>9.3}s  {text}", at as f64 / 1e9))
        .collect()
}

fn describe(event: &Watched) -> String {
    match event {
        Watched::Fault(code, agents) => {
            let name = FAULT_NAMES
                .get(usize::from(*code))
                .copied()
                .unwrap_or("fault");
            if agents.is_empty() {
                format!("fault: {name}")
            } else {
                format!("fault: {name} of agents {agents:?}")
            }
        }
        Watched::Event(TraceEvent::Member {
            agent,
            member,
            incarnation,
            state,
        }) => {
            let state = ["alive", "suspect", "dead", "left", "forgotten"]
                .get(usize::from(*state))
                .copied()
                .unwrap_or("?");
            format!("agent {agent}: sees agent {member} {state} (incarnation {incarnation})")
        }
        Watched::Event(TraceEvent::Release { agent, version }) => {
            format!("agent {agent}: runs release version {version}")
        }
        Watched::Event(TraceEvent::Action { agent, phase }) => {
            let what = match phase {
                0 => "a local action starts",
                1 => "a disruptive action starts",
                2 => "its action succeeded",
                _ => "its action was killed at its timeout",
            };
            format!("agent {agent}: {what}")
        }
        Watched::Event(other) => format!("{other:?}"),
    }
}
