//! Per-submission options ([`SubmitOptions`]) and shutdown modes ([`ShutdownMode`]).

use std::time::{Duration, Instant};

use crate::cancel::CancellationToken;
use crate::retry::RetryPolicy;
use crate::sync::semaphore::Semaphore;

/// How [`Executor::shutdown`](super::Executor::shutdown) (and dropping the executor) ends.
///
/// Every shutdown stops accepting submissions at once, and wakes submitters blocked on a full
/// queue (they get [`SubmitRefusal::Shutdown`](super::SubmitRefusal::Shutdown) and their
/// closure back).
///
/// * cancelling ([`Cancel`](Self::Cancel), [`CancelNoWait`](Self::CancelNoWait)): every
///   queued (not started) task ends as cancelled and never runs, and the executor's
///   [`token`](super::Executor::token) is cancelled, which running tasks see through their
///   [`TaskContext`](crate::cancel::TaskContext);
/// * waiting ([`Drain`](Self::Drain), [`Cancel`](Self::Cancel)): the call returns once every
///   task (queued, unless cancelled, and running) has ended. Without it the call returns at
///   once; queued tasks still run in the background (unless cancelled), and every handle
///   still ends (completed, failed or cancelled).
///
/// The default is [`Drain`](Self::Drain), Python's `with ThreadPoolExecutor(..)` exit.
///
/// ```
/// use taskrunner::executor::ShutdownMode;
/// assert_eq!(ShutdownMode::default(), ShutdownMode::Drain);
/// assert!(ShutdownMode::Cancel.waits() && ShutdownMode::Cancel.cancels_pending());
/// assert!(!ShutdownMode::NoWait.waits());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ShutdownMode {
    /// Let everything submitted finish, and wait for it (the default).
    #[default]
    Drain,
    /// Cancel what has not started, signal what runs, and wait for the running tasks.
    Cancel,
    /// Let everything submitted finish in the background; return at once.
    NoWait,
    /// Cancel what has not started, signal what runs; return at once.
    CancelNoWait,
}

impl ShutdownMode {
    /// Whether the shutdown waits for the tasks to end ([`Drain`](Self::Drain),
    /// [`Cancel`](Self::Cancel)).
    ///
    /// ```
    /// use taskrunner::executor::ShutdownMode;
    /// assert!(ShutdownMode::Drain.waits());
    /// assert!(!ShutdownMode::CancelNoWait.waits());
    /// ```
    pub const fn waits(self) -> bool {
        matches!(self, ShutdownMode::Drain | ShutdownMode::Cancel)
    }

    /// Whether the shutdown cancels the queued tasks and the executor's token
    /// ([`Cancel`](Self::Cancel), [`CancelNoWait`](Self::CancelNoWait)).
    ///
    /// ```
    /// use taskrunner::executor::ShutdownMode;
    /// assert!(ShutdownMode::CancelNoWait.cancels_pending());
    /// assert!(!ShutdownMode::Drain.cancels_pending());
    /// ```
    pub const fn cancels_pending(self) -> bool {
        matches!(self, ShutdownMode::Cancel | ShutdownMode::CancelNoWait)
    }

    /// The same mode without the wait.
    pub(crate) const fn without_wait(self) -> Self {
        if self.cancels_pending() {
            ShutdownMode::CancelNoWait
        } else {
            ShutdownMode::NoWait
        }
    }

    /// Renamed [`ShutdownMode::Drain`].
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// use taskrunner::executor::ShutdownMode;
    /// assert_eq!(ShutdownMode::DRAIN, ShutdownMode::Drain);
    /// ```
    #[deprecated(note = "use the variant `ShutdownMode::Drain`")]
    pub const DRAIN: ShutdownMode = ShutdownMode::Drain;

    /// Renamed [`ShutdownMode::Cancel`].
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// use taskrunner::executor::ShutdownMode;
    /// assert_eq!(ShutdownMode::CANCEL, ShutdownMode::Cancel);
    /// ```
    #[deprecated(note = "use the variant `ShutdownMode::Cancel`")]
    pub const CANCEL: ShutdownMode = ShutdownMode::Cancel;

    /// Renamed [`ShutdownMode::NoWait`].
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// use taskrunner::executor::ShutdownMode;
    /// assert_eq!(ShutdownMode::NO_WAIT, ShutdownMode::NoWait);
    /// ```
    #[deprecated(note = "use the variant `ShutdownMode::NoWait`")]
    pub const NO_WAIT: ShutdownMode = ShutdownMode::NoWait;

    /// Renamed [`ShutdownMode::CancelNoWait`].
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// use taskrunner::executor::ShutdownMode;
    /// assert_eq!(ShutdownMode::CANCEL_NO_WAIT, ShutdownMode::CancelNoWait);
    /// ```
    #[deprecated(note = "use the variant `ShutdownMode::CancelNoWait`")]
    pub const CANCEL_NO_WAIT: ShutdownMode = ShutdownMode::CancelNoWait;
}

/// Options for [`Executor::submit_with`](super::Executor::submit_with) and
/// [`Executor::map_with`](super::Executor::map_with): retries, a shared concurrency limit, a
/// deadline, and a caller's cancellation token. All are optional; the default is one attempt,
/// no limit, no deadline.
///
/// ```
/// use std::time::Duration;
/// use taskrunner::cancel::CancellationToken;
/// use taskrunner::executor::SubmitOptions;
/// use taskrunner::retry::RetryPolicy;
/// use taskrunner::sync::Semaphore;
/// let opts = SubmitOptions::new()
///     .retry(RetryPolicy::attempts(3))
///     .limit(&Semaphore::new(4))
///     .timeout(Duration::from_secs(10))
///     .token(CancellationToken::new());
/// assert!(format!("{opts:?}").contains("max_attempts: 3"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct SubmitOptions {
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) limit: Option<Semaphore>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) deadline: Option<Instant>,
    pub(crate) token: Option<CancellationToken>,
}

impl SubmitOptions {
    /// No retries, no limit, no deadline, no token.
    ///
    /// See [`SubmitOptions`] for an example.
    pub fn new() -> Self {
        Self::default()
    }

    /// Retries the task by `policy` while it returns `Err` (see [`RetryPolicy`]). The final
    /// error keeps the last attempt's original error and the attempt count.
    ///
    /// See [`SubmitOptions`] for an example.
    #[must_use]
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Each attempt holds a permit of `limit` while it runs. The task waits for the permit
    /// without holding a worker or an executor slot. The semaphore is independent of the
    /// executor's `max_workers` and may be shared by several executors.
    ///
    /// See [`SubmitOptions`] for an example.
    #[must_use]
    pub fn limit(mut self, limit: &Semaphore) -> Self {
        self.limit = Some(limit.clone());
        self
    }

    /// A deadline `timeout` after submission, on the runner's clock (a mock clock in a
    /// [`TestEnvironment`](crate::testing::TestEnvironment)). If it passes before the task starts, the
    /// task never runs and its handle ends with
    /// [`is_deadline_exceeded`](crate::TaskError::is_deadline_exceeded); if it passes while
    /// the task runs, the task's token is cancelled with
    /// [`Interrupted::DeadlineExceeded`](crate::cancel::Interrupted) and the task decides (a value it
    /// returns anyway is kept).
    ///
    /// In [`Executor::map_with`](super::Executor::map_with) it is the **total** time of the
    /// map, shared by all items.
    ///
    /// A timeout too large to represent as an instant (`Duration::MAX`) means no deadline.
    ///
    /// See [`SubmitOptions`] for an example.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Like [`timeout`](Self::timeout), as an instant on the runner's clock
    /// ([`PostTask::now`](crate::PostTask::now)). With both, the earlier wins.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{PostTask, ThreadPool};
    /// use taskrunner::executor::{Executor, SubmitOptions};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let exec = Executor::builder().pool(&pool).build().unwrap();
    /// let past = pool.now() - Duration::from_millis(1);
    /// let h = exec.submit_with(SubmitOptions::new().deadline(past), |_| Ok::<_, std::io::Error>(1)).unwrap();
    /// assert!(h.join().unwrap_err().is_deadline_exceeded());
    /// ```
    #[must_use]
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Cancelling `token` cancels the task (as [`TaskHandle::cancel`](crate::TaskHandle::cancel)
    /// does). The task's own token, which it sees through its
    /// [`TaskContext`](crate::cancel::TaskContext), is cancelled by this token, by the executor's
    /// token (shutdown with `cancel_pending`), by its deadline, and by its handle.
    ///
    /// See [`SubmitOptions`] for an example.
    #[must_use]
    pub fn token(mut self, token: CancellationToken) -> Self {
        self.token = Some(token);
        self
    }
}
