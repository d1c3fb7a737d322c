//! The bridge between the agent and remediation ([`crate::remedy`]): the
//! policy it runs, the context it lends, and what remediation asks the agent
//! to publish, run, acquire, persist and tell.

use super::Agent;
use super::effects::{By, Effect};
use crate::remedy::policy::{POLICY_DOC, PolicyRefusal};
use crate::remedy::{Cx as RemedyCx, Out as RemedyOut, Remedy};
use crate::state::StateMessage;
use crate::time::Instant;
use crate::wire::Message;

impl Agent {
    /// Runs `input` on the remediation logic, then carries out what it
    /// asked for.
    pub(super) fn with_remedy<R>(
        &mut self,
        now: Instant,
        input: impl FnOnce(&mut Remedy, &mut RemedyCx<'_>, &mut Vec<RemedyOut>) -> R,
    ) -> R {
        let safe_mode = self.is_safe_mode(now);
        let now_millis = self.now_millis(now);
        let mut out = Vec::new();
        let leases = &self.leases;
        let table = self.replicas.leases();
        let held = |scope: &str| leases.held(now, scope, table);
        let mut cx = RemedyCx {
            now,
            now_millis,
            keypair: &self.keypair,
            hlc: &mut self.hlc,
            meta: &self.meta,
            members: &self.members,
            replicas: &self.replicas,
            safe_mode,
            held: &held,
            stats: &mut self.stats.remedy,
        };
        let result = input(&mut self.remedy, &mut cx, &mut out);
        self.apply_remedy_outs(now, out);
        result
    }

    /// Whether the policy in force is the one of the release of
    /// [`POLICY_DOC`] this agent runs: false while that release's content
    /// is not all here, and when its policy was refused (the agent then
    /// keeps an older one, see [`Agent::policy_refused`]).
    pub fn policy_loaded(&self) -> bool {
        let running = self.releases.applied().get(POLICY_DOC);
        running.is_some_and(|applied| self.remedy.policy_from() == Some(applied.content_digest()))
    }

    /// Why this agent refused the policy of the release of [`POLICY_DOC`]
    /// it runs, if it did.
    pub fn policy_refused(&self) -> Option<&PolicyRefusal> {
        let running = self.releases.applied().get(POLICY_DOC)?;
        self.remedy
            .refused()
            .filter(|refusal| refusal.digest == running.content_digest())
    }

    pub(super) fn remedy_tick(&mut self, now: Instant) {
        self.remedy_dirty = false;
        if self.left {
            return;
        }
        self.with_remedy(now, |remedy, cx, out| remedy.tick(cx, out));
    }

    /// Loads the policy of the release of [`POLICY_DOC`] this agent runs,
    /// once its content is readable.
    pub(super) fn refresh_policy(&mut self, now: Instant) {
        let Some(applied) = self.releases.applied().get(POLICY_DOC) else {
            return;
        };
        let release = (applied.version, applied.content_digest());
        let Some(value) = self.released_config(POLICY_DOC) else {
            return;
        };
        self.with_remedy(now, |remedy, cx, out| remedy.load(cx, release, &value, out));
        if let Some(policy) = self.remedy.policy() {
            let governed = policy
                .rules
                .values()
                .flat_map(|rule| rule.budgets())
                .map(|(scope, budget)| (scope, budget.voters.clone()))
                .collect();
            self.replicas.govern_leases(governed);
        }
        self.remedy_dirty = true;
    }

    fn apply_remedy_outs(&mut self, now: Instant, out: Vec<RemedyOut>) {
        for out in out {
            match out {
                RemedyOut::Publish(entry) => self.defer(Effect::Publish(entry, By::Remedy)),
                RemedyOut::Task(task) => {
                    if !self.outbox.task(task) {
                        self.stats.remedy.tasks_dropped += 1;
                    }
                }
                RemedyOut::Acquire { scope, voters, ttl } => {
                    self.defer(Effect::Acquire { scope, voters, ttl })
                }
                RemedyOut::Release(scope) => self.defer(Effect::Release(scope)),
                RemedyOut::Persist(persist) => self.outbox.persist(persist),
                RemedyOut::Event(event) => self.push_event(event),
                RemedyOut::Tell(to, entry) => {
                    let message = Message::State(StateMessage::Push {
                        entries: vec![entry],
                        announces: Vec::new(),
                    });
                    for key in to {
                        let id = key.node_id();
                        let up = self
                            .members
                            .get(id)
                            .is_some_and(|member| member.state().is_up());
                        if id != self.id && up {
                            self.send(id, &message);
                        }
                    }
                }
            }
        }
        self.settle(now);
    }
}
