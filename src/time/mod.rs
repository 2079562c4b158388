//! Clocks, timers and repetition: the [`Clock`] every delay is measured on, Chromium's
//! one-shot and repeating timers owned by a sequence, and [`repeat`], the way to repeat a task
//! on any runner until its [`RepeatHandle`] is cancelled.
//!
//! ```
//! use std::time::Duration;
//! use taskrunner::time::OneShotTimer;
//! use taskrunner::{TaskTraits, ThreadPool};
//!
//! let pool = ThreadPool::builder().max_workers(1).build().unwrap();
//! let seq = pool.create_sequenced_task_runner(TaskTraits::default());
//! let (tx, rx) = std::sync::mpsc::channel();
//! let timer = OneShotTimer::new(&seq);
//! timer.start(Duration::from_millis(1), move || tx.send("fired").unwrap()).unwrap();
//! assert_eq!(rx.recv().unwrap(), "fired");
//! ```
//!
//! Every timer is a shell around one `TimerCore` (`timer_core.rs`): a small state machine
//! (an atomic `generation << 1 | ARMED` word plus a short lock around the task) shared with
//! the fire tasks it posts. A fire task holds only the core and its generation, never the
//! user's closure, so `stop` frees the closure at once from any thread; the pending entry is
//! removed from the delay heap by id. The state table and the stop-vs-fire argument are in
//! `timer_core.rs`; the loom models in `src/loom_tests/timer.rs`; the user guide in
//! `docs/timers.md`. Timers are sequence-affine: each is created for one
//! [`SequencedTaskRunner`](crate::SequencedTaskRunner) and its task always runs there, one run
//! at a time. Their methods may be called from any thread.

mod one_shot;
pub(crate) mod repeat;
mod repeating;
#[allow(deprecated)]
mod repeating_task;
mod retaining;
mod timer_core;

pub use one_shot::OneShotTimer;
pub use repeating::RepeatingTimer;
#[allow(deprecated)]
pub use repeating_task::{post_repeating_task, RepeatingTaskHandle};
pub use retaining::RetainingOneShotTimer;

pub use crate::base::clock::{Clock, ClockWaker, SystemClock};
pub use repeat::{repeat, Repeat, RepeatHandle, RepeatMode};

#[cfg(all(test, loom))]
pub(crate) use self::timer_core::{Kind, TimerCore, UserTask};
