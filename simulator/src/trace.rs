//! The run's trace: a running blake3 hash over every delivery, drop and
//! membership change, and optionally the same events as JSON lines, a
//! [`Timeline`] for the report, and a [`Watch`] on a few agents for the
//! log of a violation.
//!
//! The hash is what the determinism tests compare: equal seeds must give
//! equal hashes. The full trace is only written when asked for, so large
//! runs stay fast.

use crate::event::{ACTION_PHASES, MEMBER_STATES, TraceEvent};
use crate::fingerprint::Fold;
use crate::timeline::Timeline;
use std::io::Write;

/// Running hash and optional JSONL writer.
pub struct Trace {
    hasher: blake3::Hasher,
    events: u64,
    writer: Option<Box<dyn Write>>,
    write_error: Option<std::io::Error>,
    /// Folds the events of the current step, when the run fingerprints.
    step: Option<Fold>,
    /// Gathers what a report draws, when asked to.
    timeline: Option<Timeline>,
    /// Keeps the last events of some agents, when asked to.
    watch: Option<Watch>,
}

/// Most events a [`Watch`] keeps: the last ones before a violation are what
/// explain it.
pub const WATCHED_MAX: usize = 2_000;

/// One event of a watched agent, for the per-agent log of a failure.
#[derive(Clone, Debug)]
pub enum Watched {
    /// A trace event that names a watched agent.
    Event(TraceEvent),
    /// A scheduled fault action (code as in [`crate::scenario::schedule::FAULT_NAMES`])
    /// and what it acts on.
    Fault(u8, Reach),
}

/// What a fault action acts on, for the watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    /// The whole fleet: a partition, a heal, a network change, a
    /// publication.
    Fleet,
    /// These agents.
    Agents(Vec<u32>),
}

/// The last [`WATCHED_MAX`] events that name any of `agents`, and the
/// fault actions that act on them or on the whole fleet.
#[derive(Clone, Debug, Default)]
pub struct Watch {
    agents: std::collections::BTreeSet<u32>,
    events: std::collections::VecDeque<(u64, Watched)>,
}

impl Watch {
    /// Watches `agents`.
    pub fn new(agents: &[u32]) -> Watch {
        Watch {
            agents: agents.iter().copied().collect(),
            events: std::collections::VecDeque::new(),
        }
    }

    fn keep(&mut self, at: u64, event: Watched) {
        if self.events.len() == WATCHED_MAX {
            self.events.pop_front();
        }
        self.events.push_back((at, event));
    }

    fn names(&self, event: &TraceEvent) -> bool {
        match *event {
            TraceEvent::Member { agent, member, .. } => {
                self.agents.contains(&agent) || self.agents.contains(&member)
            }
            TraceEvent::Release { agent, .. } | TraceEvent::Action { agent, .. } => {
                self.agents.contains(&agent)
            }
            TraceEvent::Deliver { .. } | TraceEvent::Drop { .. } | TraceEvent::Fault { .. } => {
                false
            }
        }
    }

    /// The events kept, oldest first, with their true times (ns).
    pub fn events(&self) -> impl Iterator<Item = &(u64, Watched)> {
        self.events.iter()
    }
}

impl Trace {
    /// A trace that only hashes.
    pub fn hashing() -> Trace {
        Trace {
            hasher: blake3::Hasher::new(),
            events: 0,
            writer: None,
            write_error: None,
            step: None,
            timeline: None,
            watch: None,
        }
    }

    /// Also folds each step's events into a digest ([`Trace::end_step`]).
    pub fn fingerprinting(mut self) -> Trace {
        self.step = Some(Fold::default());
        self
    }

    /// Also feeds every event to `timeline`.
    pub fn with_timeline(mut self, timeline: Timeline) -> Trace {
        self.timeline = Some(timeline);
        self
    }

    /// Also keeps the last events of `watch`'s agents.
    pub fn with_watch(mut self, watch: Watch) -> Trace {
        self.watch = Some(watch);
        self
    }

    /// The watched events, if a watch was asked for.
    pub fn take_watch(&mut self) -> Option<Watch> {
        self.watch.take()
    }

    /// A fault action with code `code` reaching `reach`, for the watch (the
    /// hash has the code from [`Trace::record`]). The watch keeps it when it
    /// acts on the whole fleet or on a watched agent: health reports,
    /// attack attempts and pauses of other agents would crowd out what
    /// explains a failure.
    pub fn note_fault(&mut self, at: u64, code: u8, reach: Reach) {
        if let Some(watch) = &mut self.watch {
            let kept = match &reach {
                Reach::Fleet => true,
                Reach::Agents(agents) => agents.iter().any(|agent| watch.agents.contains(agent)),
            };
            if kept {
                watch.keep(at, Watched::Fault(code, reach));
            }
        }
    }

    /// The timeline gathered, if one was asked for.
    pub fn take_timeline(&mut self) -> Option<Timeline> {
        self.timeline.take()
    }

    /// The digest of the events recorded since the last call, and a fresh
    /// one for the next step; `None` unless fingerprinting.
    pub fn end_step(&mut self) -> Option<Fold> {
        self.step.as_mut().map(std::mem::take)
    }

    /// A trace that also writes JSON lines to `writer`.
    pub fn writing(writer: Box<dyn Write>) -> Trace {
        Trace {
            writer: Some(writer),
            ..Trace::hashing()
        }
    }

    /// Events recorded.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Records `event` at true time `at` (nanoseconds).
    pub fn record(&mut self, at: u64, event: TraceEvent) {
        self.events += 1;
        let mut bytes = [0u8; 24];
        bytes[..8].copy_from_slice(&at.to_le_bytes());
        let (kind, a, b, c) = match event {
            TraceEvent::Deliver { from, to, bytes } => (1u8, from, to, bytes),
            TraceEvent::Drop { from, to, reason } => (2, from, to, u32::from(reason)),
            TraceEvent::Member {
                agent,
                member,
                incarnation,
                state,
            } => (3 + state, agent, member, incarnation),
            TraceEvent::Fault { code } => (16 + code, 0, 0, 0),
            TraceEvent::Release { agent, version } => (8, agent, version, 0),
            TraceEvent::Action { agent, phase } => (9, agent, u32::from(phase), 0),
        };
        bytes[8] = kind;
        bytes[9..13].copy_from_slice(&a.to_le_bytes());
        bytes[13..17].copy_from_slice(&b.to_le_bytes());
        bytes[17..21].copy_from_slice(&c.to_le_bytes());
        self.hasher.update(&bytes);
        if let Some(timeline) = &mut self.timeline {
            timeline.record(at, event);
        }
        if let Some(watch) = &mut self.watch
            && watch.names(&event)
        {
            watch.keep(at, Watched::Event(event));
        }
        if let Some(fold) = &mut self.step {
            for word in bytes.chunks_exact(8) {
                fold.word(u64::from_le_bytes(word.try_into().expect("8 bytes")));
            }
        }
        if let Some(writer) = &mut self.writer
            && self.write_error.is_none()
        {
            let line = json_line(at, event);
            if let Err(error) = writer.write_all(line.as_bytes()) {
                self.write_error = Some(error);
            }
        }
    }

    /// The hash so far, as 16 hex digits.
    pub fn hash(&self) -> String {
        let hash = self.hasher.finalize();
        hash.to_hex()[..16].to_string()
    }

    /// Flushes the writer; reports the first write error, if any.
    pub fn finish(&mut self) -> std::io::Result<()> {
        if let Some(error) = self.write_error.take() {
            return Err(error);
        }
        match &mut self.writer {
            Some(writer) => writer.flush(),
            None => Ok(()),
        }
    }
}

fn json_line(at: u64, event: TraceEvent) -> String {
    let t = at as f64 / 1e9;
    match event {
        TraceEvent::Deliver { from, to, bytes } => {
            format!(
                "{{\"t\":{t:.9},\"event\":\"deliver\",\"from\":{from},\"to\":{to},\"bytes\":{bytes}}}\n"
            )
        }
        TraceEvent::Drop { from, to, reason } => {
            format!(
                "{{\"t\":{t:.9},\"event\":\"drop\",\"from\":{from},\"to\":{to},\"reason\":{reason}}}\n"
            )
        }
        TraceEvent::Member {
            agent,
            member,
            incarnation,
            state,
        } => {
            let state = name(&MEMBER_STATES, state);
            format!(
                "{{\"t\":{t:.9},\"event\":\"member\",\"agent\":{agent},\"member\":{member},\"incarnation\":{incarnation},\"state\":\"{state}\"}}\n"
            )
        }
        TraceEvent::Fault { code } => {
            format!("{{\"t\":{t:.9},\"event\":\"fault\",\"code\":{code}}}\n")
        }
        TraceEvent::Release { agent, version } => {
            format!(
                "{{\"t\":{t:.9},\"event\":\"release\",\"agent\":{agent},\"version\":{version}}}\n"
            )
        }
        TraceEvent::Action { agent, phase } => {
            let phase = name(&ACTION_PHASES, phase);
            format!(
                "{{\"t\":{t:.9},\"event\":\"action\",\"agent\":{agent},\"phase\":\"{phase}\"}}\n"
            )
        }
    }
}

/// The name a traced event's `code` stands for in `names`; `?` for a code
/// out of range.
fn name(names: &[&'static str], code: u8) -> &'static str {
    names.get(usize::from(code)).copied().unwrap_or("?")
}
