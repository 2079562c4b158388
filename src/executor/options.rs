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
/// * `cancel_pending`: every queued (not started) task ends as cancelled and never runs, and
///   the executor's [`token`](super::Executor::token) is cancelled, which running tasks see
///   through their [`TaskContext`](crate::cancel::TaskContext).
/// * `drain`: wait until every task (queued, unless cancelled, and running) has ended.
///   Without it the call returns at once; queued tasks still run in the background (unless
///   cancelled), and every handle still ends (completed, failed or cancelled).
///
/// The default is [`DRAIN`](Self::DRAIN), Python's `with ThreadPoolExecutor(..)` exit.
///
/// ```
/// use taskrunner::executor::ShutdownMode;
/// assert_eq!(ShutdownMode::default(), ShutdownMode::DRAIN);
/// assert_eq!(ShutdownMode::CANCEL, ShutdownMode { drain: true, cancel_pending: true });
/// assert!(!ShutdownMode::NO_WAIT.drain);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ShutdownMode {
    /// Wait for the tasks to end.
    pub drain: bool,
    /// Cancel the queued tasks (and the executor's token).
    pub cancel_pending: bool,
}

impl ShutdownMode {
    /// Let everything submitted finish, and wait for it (the default).
    ///
    /// See [`ShutdownMode`] for an example.
    pub const DRAIN: ShutdownMode = ShutdownMode {
        drain: true,
        cancel_pending: false,
    };
    /// Cancel what has not started, signal what runs, and wait for the running tasks.
    ///
    /// See [`ShutdownMode`] for an example.
    pub const CANCEL: ShutdownMode = ShutdownMode {
        drain: true,
        cancel_pending: true,
    };
    /// Let everything submitted finish in the background; return at once.
    ///
    /// See [`ShutdownMode`] for an example.
    pub const NO_WAIT: ShutdownMode = ShutdownMode {
        drain: false,
        cancel_pending: false,
    };
    /// Cancel what has not started, signal what runs; return at once.
    ///
    /// ```
    /// assert!(taskrunner::executor::ShutdownMode::CANCEL_NO_WAIT.cancel_pending);
    /// ```
    pub const CANCEL_NO_WAIT: ShutdownMode = ShutdownMode {
        drain: false,
        cancel_pending: true,
    };
}

impl Default for ShutdownMode {
    fn default() -> Self {
        Self::DRAIN
    }
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
