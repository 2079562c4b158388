//! How long tasks waited and ran: a histogram with one bucket per power of two of
//! microseconds ([`Histogram`], recorded by workers), and its snapshot ([`TaskTimes`]).
//!
//! Recording is one relaxed atomic add to a bucket and one to the sum; the pool records only
//! the tasks it samples (see [`ThreadPoolBuilder::sample_task_times`](crate::ThreadPoolBuilder::sample_task_times)),
//! so the adds are rare and the clock is read only for those tasks. The counters are plain std
//! atomics: they take part in no hand-off between threads, so the loom models need not see
//! them.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bucket 0 holds times under 1 µs; bucket `i` (1..=30) holds `[2^(i-1), 2^i)` µs; bucket 31
/// holds everything from 2^30 µs (about 18 minutes) on.
const BUCKETS: usize = 32;

/// `true` for one call in `every` on this thread (the first, then every `every`-th); never
/// when `every` is 0: a countdown per thread, so that deciding costs no shared write. The pool
/// picks most of the tasks it times by the flow count a post adds to anyway (`push_work`);
/// this countdown picks a named runner's posts and batches of ripe delayed tasks.
#[inline]
pub(crate) fn sample(every: u32) -> bool {
    use std::cell::Cell;
    if every <= 1 {
        return every == 1;
    }
    thread_local! {
        static LEFT: Cell<u32> = const { Cell::new(0) };
    }
    LEFT.with(|left| match left.get() {
        0 => {
            left.set(every - 1);
            true
        }
        n => {
            left.set(n - 1);
            false
        }
    })
}

#[inline]
fn bucket_of(us: u64) -> usize {
    ((u64::BITS - us.leading_zeros()) as usize).min(BUCKETS - 1)
}

/// The upper edge of bucket `i`, in microseconds.
fn upper_us(i: usize) -> u64 {
    1u64 << i
}

/// Durations recorded by many threads.
pub(crate) struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: AtomicU64::new(0),
        }
    }
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.snapshot(), f)
    }
}

impl Histogram {
    /// Records one duration of `us` microseconds.
    #[inline]
    pub(crate) fn record(&self, us: u64) {
        self.buckets[bucket_of(us)].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> TaskTimes {
        TaskTimes {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            sum_us: self.sum_us.load(Ordering::Relaxed),
        }
    }
}

/// A distribution of task times (how long tasks waited in a queue, or ran), from a
/// [`PoolMetrics`](crate::PoolMetrics) or [`RunnerMetrics`](crate::metrics::RunnerMetrics)
/// snapshot.
///
/// Times are kept in buckets of powers of two of microseconds (under 1 µs, 1-2 µs, 2-4 µs,
/// ..., up to about 18 minutes and more), so a quantile is reported as the upper edge of its
/// bucket: the true value is at most that, and more than half of it. The mean is exact. Only
/// the tasks the pool samples are recorded (one in 64 by default, every task with
/// [`sample_task_times(1)`](crate::ThreadPoolBuilder::sample_task_times)), on the pool's
/// workers.
///
/// ```
/// use std::time::Duration;
/// use taskrunner::{PostTask, TaskTraits, ThreadPool};
/// let pool = ThreadPool::builder().max_workers(1).sample_task_times(1).build().unwrap();
/// for _ in 0..4 {
///     pool.post_task(TaskTraits::default(), || std::thread::sleep(Duration::from_millis(2))).unwrap();
/// }
/// pool.flush();
/// let run = pool.metrics().run_time();
/// assert_eq!(run.count(), 4);
/// let p50 = run.quantile(0.5).unwrap();
/// assert!(p50 >= Duration::from_millis(2) && p50 <= Duration::from_secs(60));
/// assert!(run.mean().unwrap() >= Duration::from_millis(2));
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TaskTimes {
    buckets: [u64; BUCKETS],
    sum_us: u64,
}

impl TaskTimes {
    /// How many times were recorded.
    ///
    /// See [`TaskTimes`] for an example.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The time that a fraction `q` (0.0 to 1.0) of the recorded times do not exceed, as the
    /// upper edge of its bucket; `None` if nothing was recorded. `quantile(0.99)` is the 99th
    /// percentile; `quantile(1.0)` bounds the longest.
    ///
    /// # Panics
    ///
    /// If `q` is not within `0.0..=1.0`.
    ///
    /// ```
    /// let pool = taskrunner::ThreadPool::builder().max_workers(1).build().unwrap();
    /// assert_eq!(pool.metrics().queue_time().quantile(0.99), None); // nothing ran yet
    /// ```
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        assert!(
            (0.0..=1.0).contains(&q),
            "TaskTimes::quantile takes a fraction within 0.0..=1.0, got {q}"
        );
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
        let mut seen = 0;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(Duration::from_micros(upper_us(i)));
            }
        }
        unreachable!("the rank is at most the count")
    }

    /// The mean of the recorded times (exact, not bucketed); `None` if nothing was recorded.
    ///
    /// See [`TaskTimes`] for an example.
    pub fn mean(&self) -> Option<Duration> {
        let count = self.count();
        (count > 0).then(|| Duration::from_micros(self.sum_us / count))
    }

    /// Every bucket as `(upper edge, count)`, shortest first: the raw histogram, for export.
    /// The last bucket's edge stands for "this long or longer".
    ///
    /// ```
    /// let pool = taskrunner::ThreadPool::builder().max_workers(1).build().unwrap();
    /// let times = pool.metrics().run_time();
    /// let buckets: Vec<_> = times.buckets().collect();
    /// assert_eq!(buckets[0].0, std::time::Duration::from_micros(1));
    /// assert_eq!(buckets.iter().map(|b| b.1).sum::<u64>(), times.count());
    /// ```
    pub fn buckets(&self) -> impl Iterator<Item = (Duration, u64)> + '_ {
        self.buckets
            .iter()
            .enumerate()
            .map(|(i, &n)| (Duration::from_micros(upper_us(i)), n))
    }
}

impl fmt::Debug for TaskTimes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskTimes")
            .field("count", &self.count())
            .field("mean", &self.mean())
            .field("p50", &self.quantile(0.5))
            .field("p99", &self.quantile(0.99))
            .field("max", &self.quantile(1.0))
            .finish()
    }
}

/// `p50 ≤ 64µs, p99 ≤ 2.048ms (n=1200)`, or `none` when nothing was recorded.
impl fmt::Display for TaskTimes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.quantile(0.5), self.quantile(0.99)) {
            (Some(p50), Some(p99)) => {
                write!(f, "p50 ≤ {p50:?}, p99 ≤ {p99:?} (n={})", self.count())
            }
            _ => f.write_str("none"),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_powers_of_two_of_microseconds() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 1);
        assert_eq!(bucket_of(2), 2);
        assert_eq!(bucket_of(3), 2);
        assert_eq!(bucket_of(4), 3);
        assert_eq!(bucket_of(1023), 10);
        assert_eq!(bucket_of(1024), 11);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        // Every value is below its bucket's upper edge (the last bucket is open).
        for us in [0, 1, 5, 100, 65_535, 1 << 29] {
            assert!(us < upper_us(bucket_of(us)));
            assert!(bucket_of(us) == 0 || us >= upper_us(bucket_of(us)) / 2);
        }
    }

    #[test]
    fn sampling_picks_one_call_in_every() {
        assert!((0..10).all(|_| sample(1)));
        assert!((0..10).all(|_| !sample(0)));
        let picked = (0..64).filter(|_| sample(16)).count();
        assert_eq!(picked, 4);
    }

    #[test]
    fn quantiles_walk_the_buckets() {
        let h = Histogram::default();
        for _ in 0..90 {
            h.record(3); // bucket [2, 4)
        }
        for _ in 0..10 {
            h.record(1000); // bucket [512, 1024)
        }
        let t = h.snapshot();
        assert_eq!(t.count(), 100);
        assert_eq!(t.quantile(0.0), Some(Duration::from_micros(4)));
        assert_eq!(t.quantile(0.5), Some(Duration::from_micros(4)));
        assert_eq!(t.quantile(0.9), Some(Duration::from_micros(4)));
        assert_eq!(t.quantile(0.91), Some(Duration::from_micros(1024)));
        assert_eq!(t.quantile(1.0), Some(Duration::from_micros(1024)));
        assert_eq!(
            t.mean(),
            Some(Duration::from_micros((90 * 3 + 10_000) / 100))
        );
        assert_eq!(t.to_string(), "p50 ≤ 4µs, p99 ≤ 1.024ms (n=100)");
    }

    #[test]
    fn an_empty_distribution_has_no_quantile() {
        let t = Histogram::default().snapshot();
        assert_eq!(t.count(), 0);
        assert_eq!(t.quantile(0.5), None);
        assert_eq!(t.mean(), None);
        assert_eq!(t.to_string(), "none");
    }

    #[test]
    #[should_panic(expected = "within 0.0..=1.0")]
    fn a_quantile_outside_zero_to_one_panics() {
        let _ = Histogram::default().snapshot().quantile(99.0);
    }
}
