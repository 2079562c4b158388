//! `BatchStats`: what a batcher has done so far (counters, for tests, logs and examples).

use std::collections::VecDeque;

use crate::base::shim::{AtomicU64, Mutex, Ordering};

/// How many dispatched batch sizes [`Batcher::batch_sizes`](crate::batch::Batcher::batch_sizes) keeps.
pub(crate) const SIZE_LOG: usize = 4096;

/// A snapshot of a [`Batcher`](crate::batch::Batcher)'s counters, from
/// [`Batcher::stats`](crate::batch::Batcher::stats). Every counter only grows.
///
/// ```
/// use taskrunner::ThreadPool;
/// use taskrunner::batch::Batcher;
/// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
/// let b = Batcher::builder()
///     .pool(&pool)
///     .max_batch_size(3)
///     .flush_when_idle(false) // called from a plain thread: close by size only
///     .max_wait(std::time::Duration::MAX)
///     .build(|reqs: Vec<u32>| Ok::<_, std::convert::Infallible>(reqs));
/// let handles: Vec<_> = (0..3).map(|i| b.call(i)).collect();
/// for h in handles { h.join().unwrap(); }
/// let s = b.stats();
/// assert_eq!((s.requests, s.dispatches, s.dispatched_requests, s.closed_full), (3, 1, 3, 1));
/// assert_eq!(s.largest_batch, 3);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchStats {
    /// Requests made ([`call`](crate::batch::Batcher::call)).
    pub requests: u64,
    /// Dispatcher calls made.
    pub dispatches: u64,
    /// Requests handed to the dispatcher (cancelled requests are not).
    pub dispatched_requests: u64,
    /// The largest batch handed to the dispatcher.
    pub largest_batch: usize,
    /// Batches closed because they reached `max_batch_size`.
    pub closed_full: u64,
    /// Batches closed by the idle flush (the submitting work went idle).
    pub closed_idle: u64,
    /// Batches closed because `max_wait` passed since their first request.
    pub closed_max_wait: u64,
    /// Batches closed by [`Batcher::flush`](crate::batch::Batcher::flush).
    pub closed_explicitly: u64,
    /// Requests cancelled before their batch was dispatched (removed from it).
    pub cancelled: u64,
    /// Batches whose dispatcher had not answered within the batcher's
    /// [`timeout`](crate::batch::BatcherBuilder::timeout).
    pub timed_out: u64,
    /// Requests the dispatcher sent back for another attempt
    /// ([`Answer::Retry`](crate::batch::Answer::Retry)) and that joined a later batch.
    pub retried: u64,
}

/// Why a batch was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Closed {
    Full,
    Idle,
    MaxWait,
    Explicit,
    /// A trigger was dropped unrun (shutdown, or the pool refused it).
    Dropped,
}

/// The live counters behind [`BatchStats`].
#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) requests: AtomicU64,
    dispatches: AtomicU64,
    dispatched: AtomicU64,
    closed_full: AtomicU64,
    closed_idle: AtomicU64,
    closed_max_wait: AtomicU64,
    closed_explicitly: AtomicU64,
    cancelled: AtomicU64,
    timed_out: AtomicU64,
    retried: AtomicU64,
    sizes: Mutex<Sizes>,
}

#[derive(Debug, Default)]
struct Sizes {
    recent: VecDeque<usize>,
    largest: usize,
}

impl Counters {
    pub(crate) fn new() -> Self {
        let z = || AtomicU64::new(0);
        Counters {
            requests: z(),
            dispatches: z(),
            dispatched: z(),
            closed_full: z(),
            closed_idle: z(),
            closed_max_wait: z(),
            closed_explicitly: z(),
            cancelled: z(),
            timed_out: z(),
            retried: z(),
            sizes: Mutex::new(Sizes::default()),
        }
    }

    pub(crate) fn closed(&self, why: Closed) {
        let c = match why {
            Closed::Full => &self.closed_full,
            Closed::Idle => &self.closed_idle,
            Closed::MaxWait => &self.closed_max_wait,
            Closed::Explicit => &self.closed_explicitly,
            Closed::Dropped => return,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn cancelled(&self, n: usize) {
        if n > 0 {
            self.cancelled.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    pub(crate) fn timed_out(&self) {
        self.timed_out.fetch_add(1, Ordering::Relaxed);
    }

    /// A request answered with `Answer::Retry` goes back for another attempt.
    pub(crate) fn retried(&self) {
        self.retried.fetch_add(1, Ordering::Relaxed);
    }

    /// A dispatcher call with `n` requests is starting.
    pub(crate) fn dispatched(&self, n: usize) {
        {
            let mut s = self.sizes.lock();
            if s.recent.len() == SIZE_LOG {
                s.recent.pop_front();
            }
            s.recent.push_back(n);
            s.largest = s.largest.max(n);
        }
        self.dispatched.fetch_add(n as u64, Ordering::Relaxed);
        self.dispatches.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn dispatches(&self) -> u64 {
        self.dispatches.load(Ordering::Acquire)
    }

    pub(crate) fn sizes(&self) -> Vec<usize> {
        self.sizes.lock().recent.iter().copied().collect()
    }

    pub(crate) fn snapshot(&self) -> BatchStats {
        let largest_batch = self.sizes.lock().largest;
        let get = |c: &AtomicU64| c.load(Ordering::Acquire);
        BatchStats {
            requests: get(&self.requests),
            dispatches: get(&self.dispatches),
            dispatched_requests: get(&self.dispatched),
            largest_batch,
            closed_full: get(&self.closed_full),
            closed_idle: get(&self.closed_idle),
            closed_max_wait: get(&self.closed_max_wait),
            closed_explicitly: get(&self.closed_explicitly),
            cancelled: get(&self.cancelled),
            timed_out: get(&self.timed_out),
            retried: get(&self.retried),
        }
    }
}
