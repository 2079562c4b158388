//! `BatchError`: what went wrong with a whole batch, as the source of each request's error.

use std::error::Error;
use std::fmt;

/// A batch-level failure that is not the dispatcher's own error. It reaches every request of
/// the batch as the [`source`](Error::source) of a failed [`TaskError`](crate::TaskError)
/// (downcast it with [`TaskError::downcast_ref`](crate::TaskError::downcast_ref)).
///
/// ```
/// use taskrunner::ThreadPool;
/// use taskrunner::batch::{BatchError, Batcher};
/// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
/// // A broken dispatcher: one response short.
/// let batcher = Batcher::builder()
///     .pool(&pool)
///     .max_batch_size(2)
///     .flush_when_idle(false) // called from a plain thread: close by size only
///     .max_wait(std::time::Duration::MAX)
///     .build(|reqs: Vec<u32>| Ok::<_, std::convert::Infallible>(vec![0u32; reqs.len() - 1]));
/// let (a, b) = (batcher.call(1), batcher.call(2));
/// for h in [a, b] {
///     let err = h.join().unwrap_err();
///     assert!(err.is_failed());
///     assert_eq!(
///         err.downcast_ref::<BatchError>(),
///         Some(&BatchError::WrongResponseCount { expected: 2, got: 1 })
///     );
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BatchError {
    /// The dispatcher returned `got` responses for a batch of `expected` requests: nobody can
    /// tell which response belongs to which request, so every request of the batch fails.
    WrongResponseCount {
        /// The number of requests in the batch.
        expected: usize,
        /// The number of responses the dispatcher returned.
        got: usize,
    },
    /// The dispatcher asked for this request to be tried again
    /// ([`Answer::Retry`](crate::batch::Answer::Retry)) after its last allowed attempt.
    RetriesExhausted {
        /// The attempts made (the batcher's `RetryPolicy::max_attempts`).
        attempts: u32,
    },
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchError::WrongResponseCount { expected, got } => write!(
                f,
                "the batch dispatcher returned {got} responses for {expected} requests"
            ),
            BatchError::RetriesExhausted { attempts } => write!(
                f,
                "the batch dispatcher asked to retry the request after its last attempt ({attempts} in all)"
            ),
        }
    }
}

impl Error for BatchError {}
