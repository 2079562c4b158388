//! Why a submission was refused, and the builder's error.

use std::error::Error;
use std::fmt;

use crate::base::error::SyncCell;

/// Why [`Executor::submit`](super::Executor::submit) and its variants refused a task.
///
/// It is an [`Error`] (`Send + Sync + 'static`), and a [`SubmitError`] converts into it (its
/// closure dropped), so `?` works either way.
///
/// ```
/// use taskrunner::executor::{Executor, SubmitRefusal};
/// let pool = taskrunner::ThreadPool::builder().max_workers(1).build().unwrap();
/// let exec = Executor::builder().pool(&pool).build().unwrap();
/// exec.shutdown(Default::default());
/// let err = exec.submit(|| 1).unwrap_err();
/// assert_eq!(err.reason(), SubmitRefusal::Shutdown);
/// let reason: SubmitRefusal = err.into();
/// assert_eq!(reason.to_string(), "task refused: the executor was shut down");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SubmitRefusal {
    /// The queue was full ([`try_submit`](super::Executor::try_submit)).
    Full,
    /// The queue stayed full for the whole timeout
    /// ([`submit_timeout`](super::Executor::submit_timeout)).
    TimedOut,
    /// The executor was shut down (before the call, or while it waited for room).
    Shutdown,
}

/// A refused submission. Holds the closure that was not submitted, so nothing is lost
/// silently: take it back with [`into_inner`](Self::into_inner).
///
/// It is an [`Error`] and `Send + Sync + 'static` whatever the closure captures (the closure
/// is kept where no shared reference can reach it), so `?` turns it into a
/// `Box<dyn Error + Send + Sync>` (or an `anyhow::Error`) even for a closure that is not
/// `Sync`; it also converts into its [`SubmitRefusal`]:
///
/// ```
/// use std::error::Error;
/// use taskrunner::executor::Executor;
/// fn run(exec: &Executor) -> Result<u32, Box<dyn Error + Send + Sync>> {
///     let (tx, rx) = std::sync::mpsc::channel::<u32>(); // a Receiver is not Sync
///     tx.send(7)?;
///     let h = exec.submit(move || rx.recv().unwrap())?;
///     Ok(h.join()?)
/// }
/// let exec = Executor::new(1);
/// assert_eq!(run(&exec).unwrap(), 7);
/// exec.shutdown(Default::default());
/// assert_eq!(run(&exec).unwrap_err().to_string(), "task refused: the executor was shut down");
/// ```
///
/// ```
/// use taskrunner::executor::{Executor, SubmitRefusal};
/// let pool = taskrunner::ThreadPool::builder().max_workers(1).build().unwrap();
/// let exec = Executor::builder().pool(&pool).build().unwrap();
/// exec.shutdown(Default::default());
/// let err = exec.submit(|| 6 * 7).unwrap_err();
/// assert_eq!(err.reason(), SubmitRefusal::Shutdown);
/// assert_eq!(err.to_string(), "task refused: the executor was shut down");
/// let f = err.into_inner();
/// assert_eq!(f(), 42); // run it elsewhere
/// ```
pub struct SubmitError<F> {
    reason: SubmitRefusal,
    task: SyncCell<F>,
}

impl<F> SubmitError<F> {
    pub(crate) fn new(reason: SubmitRefusal, task: F) -> Self {
        SubmitError {
            reason,
            task: SyncCell::new(task),
        }
    }

    /// Why the submission was refused.
    ///
    /// See [`SubmitError`] for an example.
    pub fn reason(&self) -> SubmitRefusal {
        self.reason
    }

    /// Gives back the closure that was not submitted.
    ///
    /// See [`SubmitError`] for an example.
    pub fn into_inner(self) -> F {
        self.task.into_inner()
    }
}

impl<F> From<SubmitError<F>> for SubmitRefusal {
    /// The reason; the closure is dropped.
    fn from(e: SubmitError<F>) -> Self {
        e.reason
    }
}

impl<F> fmt::Debug for SubmitError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubmitError")
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

impl<F> fmt::Display for SubmitError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.reason, f)
    }
}

impl<F> Error for SubmitError<F> {}

impl fmt::Display for SubmitRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SubmitRefusal::Full => "task refused: the executor's queue is full",
            SubmitRefusal::TimedOut => {
                "task refused: the executor's queue stayed full for the whole timeout"
            }
            SubmitRefusal::Shutdown => "task refused: the executor was shut down",
        })
    }
}

impl Error for SubmitRefusal {}

/// An [`ExecutorBuilder`](super::ExecutorBuilder) setting was invalid.
///
/// ```
/// let err = taskrunner::executor::Executor::builder().max_workers(0).build().unwrap_err();
/// assert!(err.to_string().contains("max_workers"));
/// let err = taskrunner::executor::Executor::builder().queue_capacity(0).build().unwrap_err();
/// assert!(err.to_string().contains("queue_capacity"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutorBuildError {
    what: &'static str,
}

impl ExecutorBuildError {
    pub(crate) fn new(what: &'static str) -> Self {
        ExecutorBuildError { what }
    }
}

impl fmt::Display for ExecutorBuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid executor: {}", self.what)
    }
}

impl Error for ExecutorBuildError {}
