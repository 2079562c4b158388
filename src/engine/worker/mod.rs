//! Workers: the thread group (ready queues, worker threads, waking), the worker loop with its
//! local queues, parking, and the dedicated threads of single-thread runners.
//!
//! # Worker lifecycle
//!
//! 1. Workers start lazily: a post that finds no worker searching and fewer workers awake than
//!    the pool may run wakes a parked one or, below the limit, asks for a new thread (`Wake`,
//!    run by the poster once no lock is held).
//! 2. A worker takes work from its own queues and the ready queues, highest priority first
//!    (`take_work` in `thread.rs`), and runs it through its host (the pool).
//! 3. With nothing to do it searches (other workers' queues too), spinning a few microseconds,
//!    then registers as parked, looks once more if it was the last searcher, and parks. A
//!    wake-up is a sticky flag set by whoever took it off the parked list, so a wake-up between
//!    "registered" and "parked" is never lost.
//! 4. A worker parked for longer than the idle timeout removes itself and exits (reclaim); it
//!    is re-created on demand.
//! 5. A worker exits when shutdown has completed, or when every handle to the pool has been
//!    dropped and no work is left.

mod dedicated;
mod group;
mod parker;
mod thread;

pub(crate) use dedicated::{discard_queued, Dedicated, DedicatedHost};
pub(crate) use group::{Group, Parking, Wake};
pub(crate) use parker::Parker;
#[cfg(loom)]
pub(crate) use thread::run_worker_loop;
#[cfg(not(loom))]
pub(crate) use thread::spawn_worker;
pub use thread::RunningTask;
pub(crate) use thread::{flush_local_before_blocking, try_keep_local, Host, WorkerShared};
