//! `WorkRange`: hands out a range of indices to a job's workers in shrinking chunks.

use std::fmt;
use std::ops::Range;

use crate::base::shim::{AtomicUsize, Ordering};

/// The indices `0..len` of a job's work, handed out to its workers in chunks that shrink as
/// the work runs out (guided scheduling): each claim takes a share of what is left (at least
/// `min_chunk`), so workers claim rarely while much is left and finely near the end, where
/// balance matters. A worker function claims until `None`, and the job's max-concurrency
/// callback reads [`remaining_chunks`](Self::remaining_chunks).
///
/// Why not one fixed chunk size: every claim is an atomic update of one shared counter, which
/// costs a cache-line transfer between cores (tens to hundreds of nanoseconds) whenever two
/// workers claim in turn; with a fixed small chunk that transfer is paid thousands of times,
/// with shrinking chunks a few dozen.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
/// use std::sync::Arc;
/// use taskrunner::job::WorkRange;
/// use taskrunner::{TaskTraits, ThreadPool};
///
/// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
/// let items: Arc<Vec<u64>> = Arc::new((1..=100_000).collect());
/// let range = Arc::new(WorkRange::new(items.len(), 256, pool.max_workers() + 1));
/// let sum = Arc::new(AtomicU64::new(0));
/// let (r, it, s) = (range.clone(), items.clone(), sum.clone());
/// let job = pool.post_job(TaskTraits::default(), move |d| {
///     while !d.should_yield() {
///         let Some(chunk) = r.claim() else { break };
///         s.fetch_add(it[chunk].iter().sum::<u64>(), Relaxed);
///     }
/// }, move |_| range.remaining_chunks()).unwrap();
/// job.join().unwrap();
/// assert_eq!(sum.load(Relaxed), 100_000 * 100_001 / 2);
/// ```
pub struct WorkRange {
    next: AtomicUsize,
    len: usize,
    min_chunk: usize,
    /// A claim takes `1 / share` of what is left: twice the expected number of workers.
    share: usize,
}

impl WorkRange {
    /// The range `0..len`, claimed in chunks of at least `min_chunk` (at least 1), by about
    /// `workers` workers at once (at least 1; the pool's worker count plus one for the joiner
    /// is a good guess). A claim takes half of an equal share of what is left.
    ///
    /// ```
    /// use taskrunner::job::WorkRange;
    /// let r = WorkRange::new(1000, 10, 2);
    /// assert_eq!(r.claim(), Some(0..250)); // a quarter of 1000
    /// assert_eq!(r.claim(), Some(250..437)); // a quarter of 750
    /// assert_eq!(r.remaining(), 563);
    /// ```
    pub fn new(len: usize, min_chunk: usize, workers: usize) -> Self {
        WorkRange {
            next: AtomicUsize::new(0),
            len,
            min_chunk: min_chunk.max(1),
            share: workers.max(1).saturating_mul(2),
        }
    }

    /// Claims the next chunk, or `None` if every index was claimed. Chunks never overlap and
    /// together cover `0..len` exactly once.
    ///
    /// ```
    /// use taskrunner::job::WorkRange;
    /// let r = WorkRange::new(5, 4, 1);
    /// assert_eq!(r.claim(), Some(0..4));
    /// assert_eq!(r.claim(), Some(4..5));
    /// assert_eq!(r.claim(), None);
    /// ```
    pub fn claim(&self) -> Option<Range<usize>> {
        let (len, min, share) = (self.len, self.min_chunk, self.share);
        let mut taken = 0;
        let from = self
            .next
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                if n >= len {
                    return None;
                }
                let left = len - n;
                taken = (left / share).max(min).min(left);
                Some(n + taken)
            })
            .ok()?;
        Some(from..from + taken)
    }

    /// Indices not claimed yet.
    ///
    /// ```
    /// use taskrunner::job::WorkRange;
    /// let r = WorkRange::new(100, 100, 1);
    /// assert_eq!(r.remaining(), 100);
    /// r.claim();
    /// assert_eq!(r.remaining(), 0);
    /// ```
    pub fn remaining(&self) -> usize {
        self.len.saturating_sub(self.next.load(Ordering::Relaxed))
    }

    /// How many chunks of the minimum size are left (rounded up): what a job's
    /// max-concurrency callback returns, since more workers than that could not all get one.
    ///
    /// ```
    /// use taskrunner::job::WorkRange;
    /// let r = WorkRange::new(1000, 300, 4);
    /// assert_eq!(r.remaining_chunks(), 4);
    /// ```
    pub fn remaining_chunks(&self) -> usize {
        self.remaining().div_ceil(self.min_chunk)
    }
}

impl fmt::Debug for WorkRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkRange")
            .field("len", &self.len)
            .field("remaining", &self.remaining())
            .field("min_chunk", &self.min_chunk)
            .finish()
    }
}
