//! foca in the race: [`foca::Foca`] with its LAN preset
//! ([`foca::Config::new_lan`], derived from memberlist's LAN defaults, for
//! the scenario's fleet size), postcard encoding, and an identity that
//! renews itself, as foca's documentation advises, so that a member
//! declared down rejoins at once.
//!
//! foca hands its timers over as "call me back after this long"; the
//! adapter keeps them in an ordered table on true time and exposes the
//! earliest as [`RaceAgent::poll_timeout`], so the race drives foca and
//! fleetmesh the same way.

use super::{Implementation, Outgoing, RaceAgent, ViewChange};
use crate::rng::Seeds;
use crate::scenario::Scenario;
use ::foca::{
    AccumulatingRuntime, Config, NoCustomBroadcast, PeriodicParams, PostcardCodec, Timer,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::num::NonZeroU32;
use std::time::Duration;

/// A foca identity: the node's index (its address) and a generation that
/// grows each time the node rejoins after being declared down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RaceId {
    /// The node's index in the fleet.
    pub index: u32,
    /// How often it rejoined under a new identity.
    pub generation: u16,
}

impl RaceId {
    /// The identity as the race names agents: index and generation packed.
    fn name(self) -> u64 {
        (u64::from(self.index) << 16) | u64::from(self.generation)
    }

    fn from_name(name: u64) -> RaceId {
        RaceId {
            index: u32::try_from(name >> 16).unwrap_or(u32::MAX),
            generation: (name & 0xffff) as u16,
        }
    }
}

impl ::foca::Identity for RaceId {
    type Addr = u32;

    fn renew(&self) -> Option<RaceId> {
        // Out of generations, the node stays down rather than wrap around
        // to an identity the fleet may still hold.
        let generation = self.generation.checked_add(1)?;
        Some(RaceId {
            index: self.index,
            generation,
        })
    }

    fn addr(&self) -> u32 {
        self.index
    }

    fn win_addr_conflict(&self, adversary: &RaceId) -> bool {
        self.generation > adversary.generation
    }
}

type Instance = ::foca::Foca<RaceId, PostcardCodec, ChaCha8Rng, NoCustomBroadcast>;

/// foca's membership, as the race runs it.
pub struct Foca {
    config: Config,
}

impl Foca {
    /// The config every foca agent of a fleet of `agents` runs with.
    pub fn config(agents: u32) -> Config {
        Config::new_lan(NonZeroU32::new(agents).unwrap_or(NonZeroU32::MIN))
    }
}

/// One foca agent in the race.
pub struct FocaAgent {
    foca: Instance,
    runtime: AccumulatingRuntime<RaceId>,
    /// Timers foca asked for, by true due time and order of asking.
    timers: BTreeMap<(u64, u64), Timer<RaceId>>,
    next_timer: u64,
    now: u64,
    /// The members foca counts active, by index, with the generation seen.
    up: BTreeMap<u32, u16>,
    changes: VecDeque<ViewChange>,
    errors: u64,
    /// The seeds to announce to while foca knows no active member.
    join: Vec<RaceId>,
    /// When to announce to them again; `None` while foca has members.
    rejoin_at: Option<u64>,
    rejoin_period: u64,
}

impl Implementation for Foca {
    type Agent = FocaAgent;
    const NAME: &'static str = "foca";

    fn new(scenario: &Scenario, _seeds: &Seeds) -> Foca {
        Foca {
            config: Foca::config(scenario.fleet.agents),
        }
    }

    fn parameters(scenario: &Scenario) -> String {
        let agents = scenario.fleet.agents;
        let config = Foca::config(agents);
        let ms = |duration: Duration| duration.as_millis();
        let periodic = |params: &Option<PeriodicParams>| {
            params.as_ref().map_or("off".to_owned(), |params| {
                format!(
                    "every {} ms to {}",
                    ms(params.frequency),
                    params.num_members
                )
            })
        };
        format!(
            "Config::new_lan({agents}): probe every {} ms, ack timeout {} ms, {} indirect probes; \
             suspicion {:.1} s; gossip {}, {} transmissions per update; announce {}; \
             announce to down members {}; notify down members {}; \
             identities renew when declared down",
            ms(config.probe_period),
            ms(config.probe_rtt),
            config.num_indirect_probes,
            config.suspect_to_down_after.as_secs_f64(),
            periodic(&config.periodic_gossip),
            config.max_transmissions,
            periodic(&config.periodic_announce),
            periodic(&config.periodic_announce_to_down_members),
            config.notify_down_members,
        )
    }

    fn start(
        &mut self,
        index: u32,
        seed: u64,
        now: u64,
        join: &[u32],
    ) -> Result<FocaAgent, String> {
        let identity = RaceId {
            index,
            generation: 0,
        };
        let foca = Instance::new(
            identity,
            self.config.clone(),
            ChaCha8Rng::seed_from_u64(seed),
            PostcardCodec,
        );
        let mut agent = FocaAgent {
            foca,
            runtime: AccumulatingRuntime::new(),
            timers: BTreeMap::new(),
            next_timer: 0,
            now,
            up: BTreeMap::new(),
            changes: VecDeque::new(),
            errors: 0,
            // An announce reaches any identity at the seed's address.
            join: join
                .iter()
                .map(|&index| RaceId {
                    index,
                    generation: 0,
                })
                .collect(),
            rejoin_at: None,
            rejoin_period: nanos(self.config.probe_period),
        };
        agent.announce();
        Ok(agent)
    }
}

impl FocaAgent {
    /// Announces to every seed. foca retries nothing while it has no
    /// active member (its periodic announces run only once connected), so
    /// retrying is the driver's job: this one retries every probe period
    /// until foca knows a member, so that a lost announce or reply does
    /// not leave the agent outside the fleet for good.
    fn announce(&mut self) {
        for index in 0..self.join.len() {
            let seed = self.join[index];
            let result = self.foca.announce(seed, &mut self.runtime);
            self.settle(result.is_ok());
        }
        self.rejoin_at = None;
        self.arm_rejoin();
    }

    fn arm_rejoin(&mut self) {
        if self.foca.num_members() > 0 || self.join.is_empty() {
            self.rejoin_at = None;
        } else if self.rejoin_at.is_none() {
            self.rejoin_at = Some(self.now.saturating_add(self.rejoin_period));
        }
    }

    /// Takes foca's timers and notifications after a call (`ok`: whether
    /// it succeeded). Messages stay queued for `poll_transmit`.
    fn settle(&mut self, ok: bool) {
        if !ok {
            self.errors += 1;
        }
        while let Some((after, timer)) = self.runtime.to_schedule() {
            let due = self.now.saturating_add(nanos(after));
            self.timers.insert((due, self.next_timer), timer);
            self.next_timer += 1;
        }
        let mut notified = false;
        while self.runtime.to_notify().is_some() {
            notified = true;
        }
        if notified {
            self.refresh_view();
            self.arm_rejoin();
        }
    }

    /// Compares foca's active members with the last view and records each
    /// member that came up or went down. Every change of foca's active set
    /// comes with a notification, so this runs only after one; reading the
    /// member list itself (rather than interpreting notifications) keeps
    /// the view exactly foca's.
    fn refresh_view(&mut self) {
        let current: BTreeMap<u32, u16> = self
            .foca
            .iter_members()
            .map(|member| (member.id().index, member.id().generation))
            .collect();
        let indices: BTreeSet<u32> = self.up.keys().chain(current.keys()).copied().collect();
        for member in indices {
            match (self.up.get(&member), current.get(&member)) {
                (Some(&generation), None) => self.changes.push_back(ViewChange {
                    member,
                    up: false,
                    epoch: u64::from(generation),
                }),
                (None, Some(&generation)) => self.changes.push_back(ViewChange {
                    member,
                    up: true,
                    epoch: u64::from(generation),
                }),
                // A rename keeps the member up under its new identity.
                (Some(_), Some(_)) | (None, None) => {}
            }
        }
        self.up = current;
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl RaceAgent for FocaAgent {
    fn handle_message(&mut self, now: u64, _from: u32, bytes: &[u8]) {
        // foca reads the sender from the message's header.
        self.now = now;
        let result = self.foca.handle_data(bytes, &mut self.runtime);
        self.settle(result.is_ok());
    }

    fn handle_timeout(&mut self, now: u64) {
        self.now = now;
        // Only timers due now: ones foca asks for meanwhile wait for the
        // next wake-up, so one call does a bounded amount of work.
        let later = self.timers.split_off(&(now.saturating_add(1), 0));
        let due = std::mem::replace(&mut self.timers, later);
        for timer in due.into_values() {
            let result = self.foca.handle_timer(timer, &mut self.runtime);
            self.settle(result.is_ok());
        }
        if self.rejoin_at.is_some_and(|at| at <= now) {
            self.announce();
        }
    }

    fn poll_timeout(&self) -> Option<u64> {
        let timer = self.timers.keys().next().map(|&(due, _)| due);
        match (timer, self.rejoin_at) {
            (Some(timer), Some(rejoin)) => Some(timer.min(rejoin)),
            (timer, rejoin) => timer.or(rejoin),
        }
    }

    fn poll_transmit(&mut self) -> Option<Outgoing> {
        let (to, bytes) = self.runtime.to_send()?;
        Some(Outgoing {
            to: Some(to.index),
            bytes: bytes.to_vec(),
        })
    }

    fn poll_change(&mut self) -> Option<ViewChange> {
        self.changes.pop_front()
    }

    fn identity(&self) -> u64 {
        self.foca.identity().name()
    }

    fn sees_up(&self, identity: u64) -> bool {
        let id = RaceId::from_name(identity);
        self.up.get(&id.index) == Some(&id.generation)
    }

    fn errors(&self) -> u64 {
        self.errors
    }
}
