//! The bounded executor: `concurrent.futures`' shape (submit, map, shutdown, `with`) on any
//! runner.
//!
//! ```
//! use taskrunner::executor::Executor;
//!
//! let ex = Executor::new(2); // at most two tasks at once, on the global pool
//! let h = ex.submit(|| 6 * 7).unwrap();
//! assert_eq!(h.join().unwrap(), 42);
//! ```
//!
//! # Data flow
//!
//! `submit` → `Core::admit` (a reservation in the bounded queue; blocks, refuses
//! or times out) → the retry engine ([`crate::retry::retry`], one attempt unless a policy says more)
//! → each attempt goes through `ExecRunner`: it takes one of
//! `max_workers` slots and is posted to the runner, or waits in the executor's queue until a
//! finishing attempt hands its slot over. Backoff waits are delayed posts on the runner and
//! semaphore waits are hand-offs ([`Semaphore::acquire_then`](crate::sync::Semaphore)): neither
//! holds a worker or a slot.
//!
//! The retry engine owns the handle's `Promise` and resolves it, for every
//! variant (plain, fallible, with context, limited, retried, with deadline): there is one
//! engine. The executor adds admission, slots, the queue, deadlines, token links, and the
//! bookkeeping for `wait_idle` and draining (see `core.rs`).
//!
//! # Cancellation and deadlines
//!
//! Each task has its own token: a child of the executor's token (shutdown with
//! `cancel_pending` reaches every task), linked to the caller's token if one was given, and
//! cancelled after the task's timeout by the delay manager. A queued attempt whose token is
//! cancelled leaves the queue at once and the engine resolves its handle without calling the
//! task. A deadline is also checked against the runner's clock before each attempt, so one
//! that passed before the task started always wins, even if its timer has not fired yet (the
//! mock clock of a `TestEnvironment` moves time without running timers).

mod builder;
mod core;
mod error;
mod facade;
mod map;
mod options;

pub use builder::ExecutorBuilder;
pub use error::{ExecutorBuildError, SubmitError, SubmitRefusal};
pub use facade::Executor;
pub use map::MapIter;
pub use options::{ShutdownMode, SubmitOptions};
