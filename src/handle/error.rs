//! `TaskError`: why a task handle has no value.

use std::any::Any;
use std::error::Error;
use std::fmt;
use std::sync::Arc;

use crate::base::shim::Mutex;
use crate::base::unwind::Payload;
use crate::cancel::Interrupted;

/// A panic's payload, shared by the clones of one `TaskError`: the first `into_panic` takes it.
/// Dropping it never unwinds (`unwind::Payload`), wherever the last clone goes.
#[derive(Clone)]
pub(crate) struct SharedPayload(Arc<Mutex<Option<Payload>>>);

impl fmt::Debug for SharedPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedPayload")
    }
}

/// The error a task made with [`TaskError::new`] returned: just a message.
#[derive(Debug)]
struct Message(String);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for Message {}

#[derive(Clone, Debug)]
pub(crate) enum Kind {
    Panicked(String, Option<SharedPayload>),
    Cancelled,
    NotRun,
    DeadlineExceeded,
    /// The task returned an error (the original, shared so that `TaskError` stays `Clone`).
    Failed(Arc<dyn Error + Send + Sync + 'static>),
}

impl PartialEq for Kind {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Kind::Panicked(a, _), Kind::Panicked(b, _)) => a == b,
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
/// [`Executor`](crate::executor::Executor), fork/join and retries), or was dropped unrun (shutdown skipped
/// it, or the pool wound down). Opaque, with predicates, like `tokio::task::JoinError`.
///
/// Equality compares the kind and the message; two `Failed` errors are equal only if they share
/// the same original error (clones of one `TaskError`).
///
/// It is `Send + Sync + 'static` and implements [`std::error::Error`], so `?` turns it into a
/// `Box<dyn Error + Send + Sync>` or an `anyhow::Error`. A panicked task's payload can be taken
/// back with [`into_panic`](TaskError::into_panic), to resume the panic on the joining thread.
///
/// ```
/// use taskrunner::{PostTask, ThreadPool, TaskTraits};
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
    /// A caught panic; the payload is kept for [`into_panic`](Self::into_panic).
    pub(crate) fn from_panic(payload: Payload) -> Self {
        TaskError {
            kind: Kind::Panicked(
                payload.message(),
                Some(SharedPayload(Arc::new(Mutex::new(Some(payload))))),
            ),
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
    /// use taskrunner::TaskError;
    /// use taskrunner::cancel::Interrupted;
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
    /// [`RetryPolicy`](crate::retry::RetryPolicy) retried it (the error is then the last attempt's).
    ///
    /// ```
    /// assert_eq!(taskrunner::TaskError::from_error("x").attempts(), 1);
    /// ```
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// A ready-made failure with this message, for [`TaskHandle::failed`](crate::TaskHandle::failed)
    /// or a fallible task: [`is_failed`](Self::is_failed) is `true` and it displays as
    /// `task failed: <message>`. It is not a panic.
    ///
    /// ```
    /// let e = taskrunner::TaskError::new("no such user");
    /// assert!(e.is_failed());
    /// assert!(!e.is_panic());
    /// assert_eq!(e.to_string(), "task failed: no such user");
    /// assert_eq!(e.panic_message(), None);
    /// ```
    pub fn new(message: impl Into<String>) -> Self {
        TaskError {
            kind: Kind::Failed(Arc::new(Message(message.into()))),
            attempts: 1,
        }
    }

    /// The payload of a panicked task, to resume the panic elsewhere
    /// (`std::panic::resume_unwind(err.into_panic())`), as with tokio's `JoinError`.
    ///
    /// The payload is the original one the task panicked with when this error (or a clone of
    /// it) still holds it; the first clone to call this takes it, later ones get the message as
    /// a `String`.
    ///
    /// # Panics
    ///
    /// If the task did not panic (see [`is_panic`](Self::is_panic) and
    /// [`try_into_panic`](Self::try_into_panic)).
    ///
    /// ```
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let h = pool.post_task_with_result(TaskTraits::default(), || -> u8 { std::panic::panic_any(42_u32) }).unwrap();
    /// let payload = h.join().unwrap_err().into_panic();
    /// assert_eq!(payload.downcast_ref::<u32>(), Some(&42));
    /// ```
    #[track_caller]
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        match self.try_into_panic() {
            Ok(p) => p,
            Err(e) => panic!("TaskError::into_panic on an error that is not a panic: {e}"),
        }
    }

    /// The panic payload if the task panicked (see [`into_panic`](Self::into_panic)); the
    /// error itself otherwise.
    ///
    /// ```
    /// let e = taskrunner::TaskError::new("not a panic");
    /// assert!(e.try_into_panic().is_err());
    /// ```
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, TaskError> {
        match self.kind {
            Kind::Panicked(message, payload) => {
                let taken = payload.and_then(|p| p.0.lock().take());
                Ok(match taken {
                    Some(p) => p.into_inner(),
                    None => Box::new(message),
                })
            }
            kind => Err(TaskError {
                kind,
                attempts: self.attempts,
            }),
        }
    }

    /// `true` if the task panicked.
    ///
    /// See [`TaskError`] for an example.
    pub fn is_panic(&self) -> bool {
        matches!(self.kind, Kind::Panicked(..))
    }

    /// `true` if the task was cancelled: through its handle before it started, or (tasks with
    /// a [`CancellationToken`](crate::cancel::CancellationToken): executor, fork/join, retries) by its
    /// token — before it started, during a retry backoff, or because it returned
    /// [`Interrupted::Cancelled`]. Not for a passed deadline (see
    /// [`is_deadline_exceeded`](Self::is_deadline_exceeded)).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
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
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
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
            Kind::Panicked(m, _) => Some(m),
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
            Kind::Panicked(m, _) => write!(f, "task panicked: {m}"),
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
