//! Workers: the thread group that owns the ready queue, the worker loop, parking, and the
//! dedicated threads of single-thread runners.
//!
//! # Worker lifecycle
//!
//! 1. Workers start lazily: a push that leaves more ready work than awake workers either
//!    unparks an idle worker (most recently idle first) or, below `max_workers`, spawns one.
//!    The decision is made under the group lock; the unpark or spawn happens after the lock is
//!    released ([`Wakeups`]).
//! 2. A worker asks the group for work ([`Group::next_work`]), handing back the sequence it
//!    just ran in the same critical section (re-queued with a fresh key if non-empty).
//! 3. With no work, the worker registers itself on the idle stack (under the group lock) and
//!    parks. A wake-up is a sticky flag set by whoever popped it from the idle stack, so a
//!    wake-up between "registered idle" and "parked" is never lost.
//! 4. A worker idle for longer than the idle timeout removes itself from the idle stack and
//!    exits (reclaim); it is re-created on demand.
//! 5. A worker exits when shutdown has completed, or when every handle to the pool has been
//!    dropped and no work is left.

mod dedicated;
mod group;
mod parker;
mod thread;

pub(crate) use dedicated::{Dedicated, ThreadOwner};
pub(crate) use group::{Finished, Group, Work};
pub(crate) use parker::Parker;
#[cfg(all(test, loom))]
pub(crate) use thread::run_one_off_for_loom;
pub use thread::RunningTask;
pub(crate) use thread::{
    drop_quietly, run_sequence_task, spawn_worker, AbortOnUnwind, WorkerShared,
};
