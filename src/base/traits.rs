//! Task traits: what a task *is* (priority, shutdown behaviour, may-block); the pool decides how
//! to run it.

use std::fmt;

/// How important a task is. Higher priorities always run first; there is no ageing between
/// priorities (Chromium's rule), so sustained `UserBlocking` load can delay `BestEffort` work
/// indefinitely.
///
/// `BestEffort < UserVisible < UserBlocking`.
///
/// ```
/// use taskrunner::TaskPriority;
/// assert!(TaskPriority::BestEffort < TaskPriority::UserVisible);
/// assert!(TaskPriority::UserVisible < TaskPriority::UserBlocking);
/// assert_eq!(TaskPriority::default(), TaskPriority::UserBlocking);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(u8)]
pub enum TaskPriority {
    /// Work the user will not notice if it is late: metrics, persisting, prefetching. At most
    /// [`ThreadPoolBuilder::max_best_effort_workers`](crate::ThreadPoolBuilder::max_best_effort_workers)
    /// such tasks run at once, so they never occupy every worker.
    BestEffort = 0,
    /// Work whose result the user will see soon: progress UI, a requested download.
    UserVisible = 1,
    /// Work the user is waiting for right now (the response to input). The default, as in
    /// Chromium, so that tasks posted with default traits run in order of posting.
    #[default]
    UserBlocking = 2,
}

impl TaskPriority {
    /// Every priority, lowest first.
    ///
    /// ```
    /// use taskrunner::TaskPriority;
    /// assert_eq!(TaskPriority::ALL.len(), 3);
    /// assert_eq!(TaskPriority::ALL[0], TaskPriority::BestEffort);
    /// ```
    pub const ALL: [TaskPriority; 3] = [
        TaskPriority::BestEffort,
        TaskPriority::UserVisible,
        TaskPriority::UserBlocking,
    ];

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    pub(crate) fn from_index(i: u8) -> Self {
        match i {
            0 => TaskPriority::BestEffort,
            1 => TaskPriority::UserVisible,
            _ => TaskPriority::UserBlocking,
        }
    }
}

/// What [`ThreadPool::shutdown`](crate::ThreadPool::shutdown) does with a task.
///
/// | behaviour | not started at shutdown | running at shutdown |
/// |---|---|---|
/// | `ContinueOnShutdown` | never runs | not waited for |
/// | `SkipOnShutdown` (default) | never runs | waited for |
/// | `BlockShutdown` | runs (if posted before shutdown completes); waited for | waited for |
///
/// Delayed tasks never block shutdown: once shutdown starts, a delayed task that has not been
/// forwarded to its sequence is dropped, whatever its behaviour.
///
/// ```
/// use taskrunner::ShutdownBehavior;
/// assert_eq!(ShutdownBehavior::default(), ShutdownBehavior::SkipOnShutdown);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ShutdownBehavior {
    /// Not started: never runs. Running: shutdown does not wait for it, so it may still be
    /// running after `shutdown()` returns.
    ContinueOnShutdown,
    /// Not started: never runs. Running: shutdown waits for it to finish. The default.
    #[default]
    SkipOnShutdown,
    /// Every task posted before shutdown completes runs, and shutdown waits for all of them.
    BlockShutdown,
}

/// What happens when a task of a runner panics.
///
/// | policy | the panicking task | the runner afterwards |
/// |---|---|---|
/// | `Isolate` (default) | caught, reported (tracing, pool panic handler, its `TaskHandle`) | carries on: the next task runs |
/// | `Poison` | caught and reported | a sequenced or single-thread runner is poisoned: its queued tasks are dropped unrun and later posts are refused with [`PostRefusal::SequencePoisoned`](crate::PostRefusal::SequencePoisoned). For parallel runners (which share no state) it behaves as `Isolate`. |
/// | `Abort` | reported, then the process aborts | — |
///
/// ```
/// use taskrunner::{PanicPolicy, TaskTraits};
/// assert_eq!(PanicPolicy::default(), PanicPolicy::Isolate);
/// let t = TaskTraits::new().panic_policy(PanicPolicy::Poison);
/// assert_eq!(t.get_panic_policy(), PanicPolicy::Poison);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum PanicPolicy {
    /// Catch, report, carry on (the default).
    #[default]
    Isolate,
    /// Catch, report, and refuse the sequence any further work.
    Poison,
    /// Report, then abort the process.
    Abort,
}

/// When a delayed task may run, relative to its run time (Chromium's `subtle::DelayPolicy`).
///
/// | policy | runs |
/// |---|---|
/// | `Precise` (default) | as soon as its run time is reached |
/// | `FlexibleNoSooner` | never before its run time; handed to the workers at most the pool's [timer leeway](crate::ThreadPoolBuilder::timer_leeway) after it |
///
/// Flexible delays let the pool **coalesce** wake-ups: the delay thread sleeps until the
/// earliest *latest* time among flexible tasks (or the earliest precise run time), and then
/// forwards every task whose run time has passed, so many timers that fall within one leeway
/// cost one wake-up instead of one each. Use it for timeouts, retries, polling and cleanup,
/// where running a few milliseconds late does not matter. The policy is a trait of the runner
/// (every delayed task and timer of a runner built with it), or of a one-off post.
///
/// ```
/// use std::time::{Duration, Instant};
/// use taskrunner::{DelayPolicy, PostTask, TaskTraits, ThreadPool};
/// let pool = ThreadPool::builder().max_workers(1).timer_leeway(Duration::from_millis(5)).build().unwrap();
/// let relaxed = TaskTraits::new().delay_policy(DelayPolicy::FlexibleNoSooner);
/// let t0 = Instant::now();
/// let h = pool.post_delayed_task_with_result(relaxed, Duration::from_millis(10), move || t0.elapsed()).unwrap();
/// assert!(h.join().unwrap() >= Duration::from_millis(10)); // never sooner
/// assert_eq!(DelayPolicy::default(), DelayPolicy::Precise);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum DelayPolicy {
    /// Runs as soon as its run time is reached (the default).
    #[default]
    Precise,
    /// Never runs before its run time, and is handed to the workers up to the pool's timer
    /// leeway after it, so that wake-ups can be shared with other delayed tasks.
    FlexibleNoSooner,
}

/// The traits of a task runner or a one-off task. `Copy`, cheap, built with chained setters.
///
/// Defaults: [`TaskPriority::UserBlocking`], [`ShutdownBehavior::SkipOnShutdown`], may-block
/// `false` (Chromium's defaults), [`PanicPolicy::Isolate`], [`DelayPolicy::Precise`].
///
/// Traits belong to a runner (a sequence), not to the individual tasks posted to it, as in
/// Chromium.
///
/// ```
/// use taskrunner::{ShutdownBehavior, TaskPriority, TaskTraits};
/// let t = TaskTraits::new()
///     .priority(TaskPriority::BestEffort)
///     .shutdown_behavior(ShutdownBehavior::BlockShutdown)
///     .may_block(true);
/// assert_eq!(t.get_priority(), TaskPriority::BestEffort);
/// assert_eq!(t.get_shutdown_behavior(), ShutdownBehavior::BlockShutdown);
/// assert!(t.may_block);
/// assert_eq!(TaskTraits::default(), TaskTraits::new());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub struct TaskTraits {
    /// How urgent the tasks are (see [`TaskPriority`]).
    pub priority: TaskPriority,
    /// What shutdown does with the tasks (see [`ShutdownBehavior`]).
    pub shutdown_behavior: ShutdownBehavior,
    /// Whether the tasks may block (file or network I/O, waiting on locks held elsewhere).
    pub may_block: bool,
    /// What a panic in one of the tasks does (see [`PanicPolicy`]).
    pub panic_policy: PanicPolicy,
    /// Whether delayed tasks may run a little late to share wake-ups (see [`DelayPolicy`]).
    pub delay_policy: DelayPolicy,
}

impl TaskTraits {
    /// The default traits (user-blocking, skip-on-shutdown, no blocking).
    ///
    /// ```
    /// use taskrunner::{TaskPriority, TaskTraits};
    /// assert_eq!(TaskTraits::new().priority, TaskPriority::UserBlocking);
    /// ```
    pub const fn new() -> Self {
        Self {
            priority: TaskPriority::UserBlocking,
            shutdown_behavior: ShutdownBehavior::SkipOnShutdown,
            may_block: false,
            panic_policy: PanicPolicy::Isolate,
            delay_policy: DelayPolicy::Precise,
        }
    }

    /// Sets when delayed tasks may run (see [`DelayPolicy`]).
    ///
    /// ```
    /// use taskrunner::{DelayPolicy, TaskTraits};
    /// let t = TaskTraits::new().delay_policy(DelayPolicy::FlexibleNoSooner);
    /// assert_eq!(t.delay_policy, DelayPolicy::FlexibleNoSooner);
    /// ```
    #[must_use]
    pub const fn delay_policy(mut self, p: DelayPolicy) -> Self {
        self.delay_policy = p;
        self
    }

    /// Sets what happens when a task panics (see [`PanicPolicy`]).
    ///
    /// ```
    /// use taskrunner::{PanicPolicy, TaskTraits};
    /// assert_eq!(TaskTraits::new().panic_policy(PanicPolicy::Abort).panic_policy, PanicPolicy::Abort);
    /// ```
    #[must_use]
    pub const fn panic_policy(mut self, p: PanicPolicy) -> Self {
        self.panic_policy = p;
        self
    }

    /// The [`panic_policy`](Self::panic_policy) field; read the field instead.
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// let t = taskrunner::TaskTraits::default();
    /// assert_eq!(t.get_panic_policy(), t.panic_policy);
    /// ```
    #[deprecated(note = "read the `panic_policy` field")]
    pub const fn get_panic_policy(&self) -> PanicPolicy {
        self.panic_policy
    }

    /// Sets the priority.
    ///
    /// ```
    /// use taskrunner::{TaskPriority, TaskTraits};
    /// let t = TaskTraits::new().priority(TaskPriority::UserVisible);
    /// assert_eq!(t.get_priority(), TaskPriority::UserVisible);
    /// ```
    #[must_use]
    pub const fn priority(mut self, p: TaskPriority) -> Self {
        self.priority = p;
        self
    }

    /// Sets the shutdown behaviour.
    ///
    /// ```
    /// use taskrunner::{ShutdownBehavior, TaskTraits};
    /// let t = TaskTraits::new().shutdown_behavior(ShutdownBehavior::ContinueOnShutdown);
    /// assert_eq!(t.get_shutdown_behavior(), ShutdownBehavior::ContinueOnShutdown);
    /// ```
    #[must_use]
    pub const fn shutdown_behavior(mut self, b: ShutdownBehavior) -> Self {
        self.shutdown_behavior = b;
        self
    }

    /// Declares that tasks may block (file or network I/O, waiting on locks held elsewhere).
    ///
    /// ```
    /// use taskrunner::TaskTraits;
    /// assert!(TaskTraits::new().may_block(true).may_block);
    /// ```
    #[must_use]
    pub const fn may_block(mut self, may_block: bool) -> Self {
        self.may_block = may_block;
        self
    }

    /// The [`priority`](Self::priority) field; read the field instead.
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// let t = taskrunner::TaskTraits::default();
    /// assert_eq!(t.get_priority(), t.priority);
    /// ```
    #[deprecated(note = "read the `priority` field")]
    pub const fn get_priority(&self) -> TaskPriority {
        self.priority
    }

    /// The [`shutdown_behavior`](Self::shutdown_behavior) field; read the field instead.
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// let t = taskrunner::TaskTraits::default();
    /// assert_eq!(t.get_shutdown_behavior(), t.shutdown_behavior);
    /// ```
    #[deprecated(note = "read the `shutdown_behavior` field")]
    pub const fn get_shutdown_behavior(&self) -> ShutdownBehavior {
        self.shutdown_behavior
    }

    /// The [`may_block`](Self::may_block) field; read the field instead.
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// let t = taskrunner::TaskTraits::default();
    /// assert_eq!(t.get_may_block(), t.may_block);
    /// ```
    #[deprecated(note = "read the `may_block` field")]
    pub const fn get_may_block(&self) -> bool {
        self.may_block
    }
}

impl TaskTraits {
    /// The traits in one byte (scheduler entries carry them inline):
    /// bits 0-1 priority, 2-3 shutdown behaviour, 4 may-block, 5-6 panic policy, 7 flexible
    /// delays.
    #[inline]
    pub(crate) const fn pack(self) -> u8 {
        let shutdown = match self.shutdown_behavior {
            ShutdownBehavior::ContinueOnShutdown => 0,
            ShutdownBehavior::SkipOnShutdown => 1,
            ShutdownBehavior::BlockShutdown => 2,
        };
        let policy = match self.panic_policy {
            PanicPolicy::Isolate => 0,
            PanicPolicy::Poison => 1,
            PanicPolicy::Abort => 2,
        };
        let flexible = matches!(self.delay_policy, DelayPolicy::FlexibleNoSooner) as u8;
        (self.priority as u8)
            | (shutdown << 2)
            | ((self.may_block as u8) << 4)
            | (policy << 5)
            | (flexible << 7)
    }

    /// The inverse of [`pack`](Self::pack).
    #[inline]
    pub(crate) const fn unpack(bits: u8) -> Self {
        let priority = match bits & 3 {
            0 => TaskPriority::BestEffort,
            1 => TaskPriority::UserVisible,
            _ => TaskPriority::UserBlocking,
        };
        let shutdown = match (bits >> 2) & 3 {
            0 => ShutdownBehavior::ContinueOnShutdown,
            1 => ShutdownBehavior::SkipOnShutdown,
            _ => ShutdownBehavior::BlockShutdown,
        };
        let panic_policy = match (bits >> 5) & 3 {
            0 => PanicPolicy::Isolate,
            1 => PanicPolicy::Poison,
            _ => PanicPolicy::Abort,
        };
        TaskTraits {
            priority,
            shutdown_behavior: shutdown,
            may_block: bits & 16 != 0,
            panic_policy,
            delay_policy: if bits & 128 != 0 {
                DelayPolicy::FlexibleNoSooner
            } else {
                DelayPolicy::Precise
            },
        }
    }
}

impl fmt::Debug for TaskTraits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskTraits")
            .field("priority", &self.priority)
            .field("shutdown_behavior", &self.shutdown_behavior)
            .field("may_block", &self.may_block)
            .field("panic_policy", &self.panic_policy)
            .field("delay_policy", &self.delay_policy)
            .finish()
    }
}

impl From<TaskPriority> for TaskTraits {
    /// Default traits with the given priority.
    fn from(p: TaskPriority) -> Self {
        TaskTraits::new().priority(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_round_trips_every_combination() {
        for p in TaskPriority::ALL {
            for s in [
                ShutdownBehavior::ContinueOnShutdown,
                ShutdownBehavior::SkipOnShutdown,
                ShutdownBehavior::BlockShutdown,
            ] {
                for b in [false, true] {
                    for pol in [
                        PanicPolicy::Isolate,
                        PanicPolicy::Poison,
                        PanicPolicy::Abort,
                    ] {
                        for d in [DelayPolicy::Precise, DelayPolicy::FlexibleNoSooner] {
                            let t = TaskTraits::new()
                                .priority(p)
                                .shutdown_behavior(s)
                                .may_block(b)
                                .panic_policy(pol)
                                .delay_policy(d);
                            assert_eq!(TaskTraits::unpack(t.pack()), t);
                        }
                    }
                }
            }
        }
    }
}
