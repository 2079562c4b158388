//! `TaskError`: why a task handle has no value.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

use crate::cancel::Interrupted;

#[derive(Clone, Debug)]
pub(crate) enum Kind {
    Panicked(String),
    Cancelled,
    NotRun,
    DeadlineExceeded,
    /// The task returned an error (the original, shared so that `TaskError` stays `Clone`).
    Failed(Arc<dyn Error + Send + Sync + 'static>),
}

impl PartialEq for Kind {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Kind::Panicked(a), Kind::Panicked(b)) => a == b,
            (Kind::Cancelled, Kind::Cancelled)
            | (Kind::NotRun, Kind::NotRun)
            | (Kind::DeadlineExceeded, Kind::DeadlineExceeded) => true,
            (Kind::Failed(a), Kind::Failed(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Kind {}

/// Why a [`TaskHandle`](crate::TaskHandle) resolved without a value: the task panicked, was
/// cancelled before it started, missed its deadline, returned an error (fallible tasks of the
/// [`Executor`](crate::Executor), fork/join and retries), or was dropped unrun (shutdown skipped
/// it, or the pool wound down). Opaque, with predicates, like `tokio::task::JoinError`.
///
/// Equality compares the kind and the message; two `Failed` errors are equal only if they share
/// the same original error (clones of one `TaskError`).
///
/// ```
/// use taskrunner::{ThreadPool, TaskTraits};
/// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
/// let h = pool.post_task_with_result(TaskTraits::default(), || -> u32 { panic!("bad input") }).unwrap();
/// let err = h.join().unwrap_err();
/// assert!(err.is_panic());
/// assert_eq!(err.panic_message(), Some("bad input"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct TaskError {
    kind: Kind,
    /// How many attempts were made (1 unless the task was retried).
    attempts: u32,
}

impl TaskError {
    pub(crate) fn panicked(message: String) -> Self {
        TaskError {
            kind: Kind::Panicked(message),
            attempts: 1,
        }
    }

    pub(crate) fn cancelled() -> Self {
        TaskError {
            kind: Kind::Cancelled,
            attempts: 1,
        }
    }

    pub(crate) fn not_run() -> Self {
        TaskError {
            kind: Kind::NotRun,
            attempts: 1,
        }
    }

    pub(crate) fn deadline_exceeded() -> Self {
        TaskError {
            kind: Kind::DeadlineExceeded,
            attempts: 1,
        }
    }

    /// The error of a task whose deadline or cancellation token interrupted it.
    pub(crate) fn interrupted(why: Interrupted) -> Self {
        match why {
            Interrupted::Cancelled => Self::cancelled(),
            Interrupted::DeadlineExceeded => Self::deadline_exceeded(),
        }
    }

    /// Records how many attempts were made (retries).
    pub(crate) fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }

    /// The error a fallible task returned, kept as the [`source`](Error::source) of this one.
    /// An [`Interrupted`] error (the task saw its token cancelled and returned
    /// `ctx.check()?`'s error) becomes a cancelled or deadline-exceeded error instead.
    ///
    /// ```
    /// use taskrunner::TaskError;
    /// let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
    /// let e = TaskError::from_error(io);
    /// assert!(e.is_failed());
    /// assert_eq!(e.downcast_ref::<std::io::Error>().unwrap().kind(), std::io::ErrorKind::NotFound);
    /// assert_eq!(e.to_string(), "task failed: no such file");
    /// ```
    pub fn from_error(error: impl Into<Box<dyn Error + Send + Sync + 'static>>) -> Self {
        let boxed: Box<dyn Error + Send + Sync + 'static> = error.into();
        if let Some(i) = boxed.downcast_ref::<Interrupted>() {
            return Self::interrupted(*i);
        }
        TaskError {
            kind: Kind::Failed(Arc::from(boxed)),
            attempts: 1,
        }
    }

    /// `true` if the task ran and returned an error (see [`from_error`](Self::from_error)).
    ///
    /// ```
    /// assert!(taskrunner::TaskError::from_error("disk full").is_failed());
    /// ```
    pub fn is_failed(&self) -> bool {
        matches!(self.kind, Kind::Failed(_))
    }

    /// `true` if the task's deadline passed: before it started (it never ran), or while it ran
    /// and it returned the [`Interrupted::DeadlineExceeded`] its token reported. Distinct from
    /// [`is_cancelled`](Self::is_cancelled).
    ///
    /// ```
    /// use taskrunner::{Interrupted, TaskError};
    /// let e = TaskError::from_error(Interrupted::DeadlineExceeded);
    /// assert!(e.is_deadline_exceeded());
    /// assert!(!e.is_cancelled());
    /// ```
    pub fn is_deadline_exceeded(&self) -> bool {
        matches!(self.kind, Kind::DeadlineExceeded)
    }

    /// The original error of a failed task, if it is an `E`.
    ///
    /// ```
    /// let e = taskrunner::TaskError::from_error(std::fmt::Error);
    /// assert!(e.downcast_ref::<std::fmt::Error>().is_some());
    /// assert!(e.downcast_ref::<std::io::Error>().is_none());
    /// ```
    pub fn downcast_ref<E: Error + 'static>(&self) -> Option<&E> {
        match &self.kind {
            Kind::Failed(e) => e.downcast_ref::<E>(),
            _ => None,
        }
    }

    /// How many times the task was attempted: 1, or more when a
    /// [`RetryPolicy`](crate::RetryPolicy) retried it (the error is then the last attempt's).
    ///
    /// ```
    /// assert_eq!(taskrunner::TaskError::from_error("x").attempts(), 1);
    /// ```
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// A ready-made error for [`TaskHandle::failed`](crate::TaskHandle::failed): a "panic" with
    /// this message.
    ///
    /// ```
    /// let e = taskrunner::TaskError::new("no such user");
    /// assert_eq!(e.panic_message(), Some("no such user"));
    /// ```
    pub fn new(message: impl Into<String>) -> Self {
        Self::panicked(message.into())
    }

    /// `true` if the task panicked.
    ///
    /// See [`TaskError`] for an example.
    pub fn is_panic(&self) -> bool {
        matches!(self.kind, Kind::Panicked(_))
    }

    /// `true` if the task was cancelled: through its handle before it started, or (tasks with
    /// a [`CancellationToken`](crate::CancellationToken): executor, fork/join, retries) by its
    /// token — before it started, during a retry backoff, or because it returned
    /// [`Interrupted::Cancelled`]. Not for a passed deadline (see
    /// [`is_deadline_exceeded`](Self::is_deadline_exceeded)).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let h = pool.post_delayed_task_with_result(TaskTraits::default(), Duration::from_secs(60), || 1).unwrap();
    /// assert!(h.cancel());
    /// assert!(h.join().unwrap_err().is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        matches!(self.kind, Kind::Cancelled)
    }

    /// `true` if the task was dropped without running: shutdown skipped it, or the pool wound
    /// down before a delayed task was due.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let h = pool.post_delayed_task_with_result(TaskTraits::default(), Duration::from_secs(60), || 1).unwrap();
    /// pool.shutdown(); // delayed tasks never run after shutdown
    /// assert!(h.join().unwrap_err().is_not_run());
    /// ```
    pub fn is_not_run(&self) -> bool {
        matches!(self.kind, Kind::NotRun)
    }

    /// The panic message, if the task panicked.
    ///
    /// See [`TaskError`] for an example.
    pub fn panic_message(&self) -> Option<&str> {
        match &self.kind {
            Kind::Panicked(m) => Some(m),
            _ => None,
        }
    }
}

impl fmt::Debug for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TaskError");
        d.field("kind", &self.kind);
        if self.attempts != 1 {
            d.field("attempts", &self.attempts);
        }
        d.finish()
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Panicked(m) => write!(f, "task panicked: {m}"),
            Kind::Cancelled => f.write_str("task was cancelled"),
            Kind::NotRun => f.write_str(
                "task was dropped without running (skipped at shutdown, or the pool wound down)",
            ),
            Kind::DeadlineExceeded => f.write_str("task deadline exceeded"),
            Kind::Failed(e) => write!(f, "task failed: {e}"),
        }?;
        if self.attempts > 1 {
            write!(f, " (after {} attempts)", self.attempts)?;
        }
        Ok(())
    }
}

impl Error for TaskError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match &self.kind {
            Kind::Failed(e) => Some(&**e as &(dyn Error + 'static)),
            _ => None,
        }
    }
}
