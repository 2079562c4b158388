//! `TaskError`: why a task handle has no value.

use std::error::Error;
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Panicked(String),
    Cancelled,
    NotRun,
}

/// Why a [`TaskHandle`](crate::TaskHandle) resolved without a value: the task panicked, was
/// cancelled before it started, or was dropped unrun (shutdown skipped it, or the pool wound
/// down). Opaque, with predicates, like `tokio::task::JoinError`.
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
}

impl TaskError {
    pub(crate) fn panicked(message: String) -> Self {
        TaskError {
            kind: Kind::Panicked(message),
        }
    }

    pub(crate) fn cancelled() -> Self {
        TaskError {
            kind: Kind::Cancelled,
        }
    }

    pub(crate) fn not_run() -> Self {
        TaskError { kind: Kind::NotRun }
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

    /// `true` if the task was cancelled through its handle before it started.
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
        f.debug_tuple("TaskError").field(&self.kind).finish()
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Panicked(m) => write!(f, "task panicked: {m}"),
            Kind::Cancelled => f.write_str("task was cancelled before it started"),
            Kind::NotRun => f.write_str(
                "task was dropped without running (skipped at shutdown, or the pool wound down)",
            ),
        }
    }
}

impl Error for TaskError {}
