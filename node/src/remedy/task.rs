//! Work the core hands its driver: check runs and actions. The core only
//! decides; the runtime's executors (or the simulator's models) run them
//! off the core's thread and report back with
//! [`crate::Agent::handle_task_result`].

use super::policy::{ActionClass, CheckSpec, Step};
use fleetmesh_crdt::IdempotencyKey;
use std::sync::Arc;
use std::time::Duration;

/// Names one task; a result carries it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(pub u64);

/// Something for the driver to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Task {
    /// Run a check once.
    Check {
        /// Its id.
        id: TaskId,
        /// The check, as the release states it.
        check: Arc<CheckSpec>,
    },
    /// Run an action on this node. The driver kills it at `timeout`; the
    /// core counts it failed then whatever comes later.
    Action {
        /// Its id.
        id: TaskId,
        /// The remediation it belongs to (rule, this node, incident and
        /// step): the executor passes it to the command's environment.
        key: IdempotencyKey,
        /// The rule's check the action should fix.
        check: String,
        /// The step: action name, command, class (boxed: a step is much
        /// larger than a check task).
        step: Box<Step>,
        /// The fencing epoch it runs under (0 for a local action).
        epoch: u64,
        /// Longest it may run.
        timeout: Duration,
    },
}

impl Task {
    /// The task's id.
    pub fn id(&self) -> TaskId {
        match self {
            Task::Check { id, .. } | Task::Action { id, .. } => *id,
        }
    }

    /// The action's class; `None` for a check.
    pub fn class(&self) -> Option<ActionClass> {
        match self {
            Task::Check { .. } => None,
            Task::Action { step, .. } => Some(step.class),
        }
    }
}

/// How a task ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskResult {
    /// The check passed, or the action succeeded.
    pub success: bool,
    /// The process's exit code, if one ran to completion.
    pub exit_code: Option<i32>,
    /// Output or error, for operators; shortened by the core.
    pub detail: String,
}
