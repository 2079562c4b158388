//! Timers on a sequence: [`OneShotTimer`], [`RetainingOneShotTimer`], [`RepeatingTimer`], and
//! `post_repeating_task` ([`RepeatingTaskHandle`]).
//!
//! Every timer is a shell around one [`TimerCore`](timer_core::TimerCore): a small state machine
//! (an atomic `generation << 1 | ARMED` word plus a short lock around the task) shared with
//! the fire tasks it posts. A fire task holds only the core and its generation, never the
//! user's closure, so `stop` frees the closure at once from any thread; the pending entry is
//! removed from the delay heap by id ([`DelayId`](crate::delay::DelayId)). The state table and
//! the stop-vs-fire argument are in `timer_core.rs`; the loom models in `src/loom_tests/timer.rs`;
//! the user guide in `docs/timers.md`.
//!
//! Timers are sequence-affine: each is created for one [`SequencedTaskRunner`] and its task
//! always runs there, one run at a time. Their methods may be called from any thread.
//!
//! [`SequencedTaskRunner`]: crate::SequencedTaskRunner

mod one_shot;
mod repeating;
mod repeating_task;
mod retaining;
mod timer_core;

pub use one_shot::OneShotTimer;
pub use repeating::RepeatingTimer;
pub use repeating_task::{post_repeating_task, RepeatingTaskHandle};
pub use retaining::RetainingOneShotTimer;

#[cfg(all(test, loom))]
pub(crate) use self::timer_core::{Kind, TimerCore, UserTask};
