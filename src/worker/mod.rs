//! Workers: the thread group that owns the ready queue, the worker loop, parking, and the
//! dedicated threads of single-thread runners.
//!
//! # Worker lifecycle
//!
//! 1. Posts go into the group's inbox (a short lock of its own). Only when some worker is not
//!    awake (the `sleepy` count, see `group.rs`) does the poster take the group lock, drain the
//!    inbox and wake one (most recently idle first) or, below `max_workers`, spawn one. The
//!    decision is made under the group lock; the unpark or spawn happens after the lock is
//!    released (`Wakeups`). Workers therefore start lazily.
//! 2. A worker asks the group for work ([`Group::next_work`]), handing back the sequence it
//!    just ran in the same critical section (re-queued with a fresh key if non-empty); the
//!    group drains the inbox before it picks.
//! 3. With no work, the worker first spins briefly (bounded backoff, watching the inbox's
//!    non-empty hint), then registers itself on the idle stack under the group lock, checks
//!    the inbox once more (the `sleepy` handshake) and parks. A wake-up is a sticky flag set by
//!    whoever popped it from the idle stack, so a wake-up between "registered idle" and
//!    "parked" is never lost; a worker whose idle timeout raced with a pop consumes the
//!    pending wake-up before it looks for work again.
//! 4. A worker idle for longer than the idle timeout removes itself from the idle stack and
//!    exits (reclaim); it is re-created on demand.
//! 5. A worker exits when shutdown has completed, or when every handle to the pool has been
//!    dropped and no work is left.

mod dedicated;
mod group;
mod parker;
mod thread;

pub(crate) use crate::unwind::AbortOnUnwind;
pub(crate) use dedicated::{Dedicated, ThreadOwner};
pub(crate) use group::{Finished, Group, Ready, Work};
pub(crate) use parker::Parker;
#[cfg(all(test, loom))]
pub(crate) use thread::run_one_off_for_loom;
#[cfg(feature = "test-util")]
pub(crate) use thread::run_one_off_on_test_thread;
pub use thread::RunningTask;
pub(crate) use thread::{run_sequence_task, spawn_worker, WorkerShared};
