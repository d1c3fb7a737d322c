//! The per-agent log of a violation: what the agents it involves saw and
//! did, one line per event, up to the moment it broke.
//!
//! A violation names its agents ([`Violation::agents`]); the run is a
//! function of its seed, so the log comes from playing the seed again with
//! a [`crate::trace::Watch`] on those agents, rather than from recording
//! every agent's events in every run.

use crate::checkers::Violation;
use crate::event::{MEMBER_STATES, TraceEvent};
use crate::scenario::Scenario;
use crate::scenario::schedule::FAULT_NAMES;
use crate::trace::{Reach, Watched};
use crate::{RunOptions, run};

/// Most agents a log follows.
pub const AGENTS_MAX: usize = 6;

/// The log of one violation.
#[derive(Clone, Debug, Default)]
pub struct Log {
    /// The agents it follows: the violation's first [`AGENTS_MAX`].
    pub agents: Vec<u32>,
    /// One line per event, oldest first.
    pub lines: Vec<String>,
}

/// The log of `violation` in the run of `scenario` at `seed`: the last
/// `lines` events up to it that name its agents (their membership views
/// and the views others hold of them, their releases and actions, lease
/// holder changes among them) and the fault actions that act on them or
/// on the whole fleet. Empty when the violation names no agent.
pub fn log(scenario: &Scenario, seed: u64, violation: &Violation, lines: usize) -> Log {
    let agents: Vec<u32> = violation.agents.iter().copied().take(AGENTS_MAX).collect();
    if agents.is_empty() {
        return Log::default();
    }
    let options = RunOptions {
        watch: agents.clone(),
        ..RunOptions::seeded(seed)
    };
    let outcome = run(scenario, options);
    let events: Vec<&(u64, Watched)> = outcome
        .watched
        .iter()
        .flat_map(|watch| watch.events())
        .filter(|(at, _)| *at <= violation.at)
        .collect();
    let mut entries = collapse(&events);
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
    let lines = entries
        .into_iter()
        .skip(skip)
        .map(|(at, text)| format!("t={:>9.3}s  {text}", at as f64 / 1e9))
        .collect();
    Log { agents, lines }
}

/// Views spread as a wave: many agents learn the same thing about one
/// member within moments. Such a run of events (the same member, state
/// and incarnation, less than a second from the run's first) becomes one
/// line naming the observers; everything else is a line of its own.
fn collapse(events: &[&(u64, Watched)]) -> Vec<(u64, String)> {
    let mut entries = Vec::new();
    let mut index = 0;
    while index < events.len() {
        let (at, event) = events[index];
        let Watched::Event(TraceEvent::Member {
            member,
            incarnation,
            state,
            ..
        }) = event
        else {
            entries.push((*at, describe(event)));
            index += 1;
            continue;
        };
        let mut observers = Vec::new();
        let mut next = index;
        while let Some((
            later,
            Watched::Event(TraceEvent::Member {
                agent,
                member: other,
                incarnation: other_incarnation,
                state: other_state,
            }),
        )) = events.get(next).map(|entry| (entry.0, &entry.1))
        {
            if later > at + 1_000_000_000
                || (other, other_incarnation, other_state) != (member, incarnation, state)
            {
                break;
            }
            observers.push(*agent);
            next += 1;
        }
        if observers.len() < 3 {
            entries.extend(
                events[index..next]
                    .iter()
                    .map(|(at, event)| (*at, describe(event))),
            );
        } else {
            let shown: Vec<String> = observers.iter().take(8).map(u32::to_string).collect();
            let more = if observers.len() > 8 { ", ..." } else { "" };
            entries.push((
                *at,
                format!(
                    "{} agents ({}{more}) see agent {member} {} (incarnation {incarnation}) within {:.2}s",
                    observers.len(),
                    shown.join(", "),
                    state_name(*state),
                    (events[next - 1].0 - at) as f64 / 1e9
                ),
            ));
        }
        index = next;
    }
    entries
}

fn state_name(state: u8) -> &'static str {
    MEMBER_STATES
        .get(usize::from(state))
        .copied()
        .unwrap_or("?")
}

fn describe(event: &Watched) -> String {
    match event {
        Watched::Fault(code, reach) => {
            let name = FAULT_NAMES
                .get(usize::from(*code))
                .copied()
                .unwrap_or("fault");
            match reach {
                Reach::Fleet => format!("fault: {name}"),
                Reach::Agents(agents) => format!("fault: {name} of agents {agents:?}"),
            }
        }
        Watched::Event(TraceEvent::Member {
            agent,
            member,
            incarnation,
            state,
        }) => {
            format!(
                "agent {agent}: sees agent {member} {} (incarnation {incarnation})",
                state_name(*state)
            )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(at: u64, agent: u32, member: u32, state: u8) -> (u64, Watched) {
        (
            at,
            Watched::Event(TraceEvent::Member {
                agent,
                member,
                incarnation: 1,
                state,
            }),
        )
    }

    #[test]
    fn a_wave_of_one_view_is_one_line_and_the_rest_stay_apart() {
        let events = [
            seen(0, 1, 9, 1),
            seen(100, 2, 9, 1),
            seen(200, 3, 9, 1),
            (300, Watched::Fault(3, Reach::Agents(vec![9]))),
            seen(400, 4, 9, 2),
            seen(2_000_000_000, 5, 9, 2),
        ];
        let refs: Vec<&(u64, Watched)> = events.iter().collect();
        let lines: Vec<String> = collapse(&refs).into_iter().map(|(_, text)| text).collect();
        assert_eq!(
            lines,
            [
                "3 agents (1, 2, 3) see agent 9 suspect (incarnation 1) within 0.00s",
                "fault: crash of agents [9]",
                "agent 4: sees agent 9 dead (incarnation 1)",
                "agent 5: sees agent 9 dead (incarnation 1)",
            ]
        );
    }
}
