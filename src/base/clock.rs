//! The pool's only source of "now". Chosen once, at build time.
//!
//! Also "the end of time": the latest [`Instant`] the platform can represent. No clock ever
//! shows it (a [`ManualClock`] stops just short of it), so whatever is scheduled there, a
//! deadline too far away to represent, never comes; shutdown still drops it like any pending
//! entry.

use std::fmt;
use std::sync::Arc as StdArc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::base::deadline::instant_after;

/// The latest `Instant` the platform can represent (found once, by bisection: `Instant` has no
/// `MAX`). Nothing reaches it: see the module doc.
#[cfg_attr(not(feature = "test-util"), allow(dead_code))]
pub(crate) fn end_of_time() -> Instant {
    static END: OnceLock<Instant> = OnceLock::new();
    *END.get_or_init(|| {
        let base = Instant::now();
        let fits = |d: Duration| instant_after(base, d).is_some();
        if fits(Duration::MAX) {
            return instant_after(base, Duration::MAX).unwrap_or(base);
        }
        // Whole seconds first (`lo` fits, `hi` does not), then nanoseconds.
        let (mut lo, mut hi) = (0u64, u64::MAX);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if fits(Duration::from_secs(mid)) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let (mut lo_ns, mut hi_ns) = (0u32, 1_000_000_000u32);
        while hi_ns - lo_ns > 1 {
            let mid = lo_ns + (hi_ns - lo_ns) / 2;
            if fits(Duration::new(lo, mid)) {
                lo_ns = mid;
            } else {
                hi_ns = mid;
            }
        }
        instant_after(base, Duration::new(lo, lo_ns)).unwrap_or(base)
    })
}

/// A callback a clock calls after it moved by some means other than real time passing.
pub type ClockWaker = StdArc<dyn Fn() + Send + Sync + 'static>;

/// A source of monotonic time for one pool: delayed tasks ripen against it and the delay
/// manager waits on it. The default is [`SystemClock`]; a test clock that only moves when told
/// to implements [`real_time_until`](Clock::real_time_until) as `None` and calls the wakers
/// registered through [`register_waker`](Clock::register_waker) whenever it moves.
///
/// ```
/// use std::time::{Duration, Instant};
/// use taskrunner::time::{Clock, SystemClock};
/// let c = SystemClock;
/// let a = c.now();
/// assert!(c.now() >= a);
/// assert!(c.real_time_until(a + Duration::from_secs(1)).unwrap() <= Duration::from_secs(1));
/// ```
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time. Must never go backwards.
    fn now(&self) -> Instant;

    /// How long, in real time, a thread should sleep before `deadline` may have been reached.
    /// `None` means this clock does not follow real time: sleep until a registered waker runs.
    fn real_time_until(&self, deadline: Instant) -> Option<Duration> {
        Some(deadline.saturating_duration_since(self.now()))
    }

    /// Registers a callback that the clock calls every time it moves other than by real time
    /// passing. Real-time clocks ignore it (the default).
    ///
    /// A waker only unparks the pool's delay thread (it never waits for the pool's work), so a
    /// clock may call its wakers from anywhere, even while holding its own locks. Each pool built with the clock registers one waker, for the clock's lifetime.
    fn register_waker(&self, waker: ClockWaker) {
        let _ = waker;
    }
}

/// The real monotonic clock (`Instant::now()`). The default clock of every pool.
///
/// ```
/// use taskrunner::time::{Clock, SystemClock};
/// let before = std::time::Instant::now();
/// assert!(SystemClock.now() >= before);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to ([`advance`](ManualClock::advance)); for tests.
/// Starts at the real `Instant::now()` of its creation. Clones share the same time.
///
/// Pools built on it never wait in real time for a deadline: their delay manager is woken by
/// the clock's wakers whenever it moves.
///
/// **Huge durations.** The clock never overflows: advancing it by more than `Instant` can
/// represent (`Duration::MAX`, say) moves it to the latest instant it can show, just short of
/// the end of `Instant`'s range. Every deadline that can be represented has then passed, while
/// a deadline too far away to represent (a timer or a wait given `Duration::MAX`: "no limit")
/// still never comes.
///
/// ```
/// use std::time::Duration;
/// use taskrunner::testing::ManualClock;
/// use taskrunner::time::Clock;
/// let clock = ManualClock::new();
/// let t0 = clock.now();
/// clock.advance(Duration::from_secs(3600));
/// assert_eq!(clock.now() - t0, Duration::from_secs(3600));
/// assert_eq!(clock.real_time_until(t0), None); // never follows real time
/// ```
#[cfg(feature = "test-util")]
#[derive(Clone, Debug)]
pub struct ManualClock {
    inner: StdArc<ManualInner>,
}

#[cfg(feature = "test-util")]
struct ManualInner {
    base: Instant,
    /// The largest offset the clock may reach: it stops one nanosecond short of the end of
    /// time, where entries with no deadline wait.
    limit: Duration,
    offset: crate::base::shim::Mutex<Duration>,
    wakers: crate::base::shim::Mutex<Vec<ClockWaker>>,
}

#[cfg(feature = "test-util")]
impl ManualClock {
    /// A manual clock reading the current real time, frozen.
    ///
    /// ```
    /// let c = taskrunner::testing::ManualClock::new();
    /// # use taskrunner::time::Clock;
    /// assert_eq!(c.now(), c.now());
    /// ```
    pub fn new() -> Self {
        let base = Instant::now();
        let limit = end_of_time()
            .saturating_duration_since(base)
            .saturating_sub(Duration::from_nanos(1));
        ManualClock {
            inner: StdArc::new(ManualInner {
                base,
                limit,
                offset: crate::base::shim::Mutex::new(Duration::ZERO),
                wakers: crate::base::shim::Mutex::new(Vec::new()),
            }),
        }
    }

    /// Moves the clock forward by `d` and wakes every pool built on it.
    ///
    /// A `d` that would take the clock past what `Instant` can represent (`Duration::MAX`)
    /// moves it to the latest instant it can show instead of panicking; see the type's docs.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::testing::ManualClock;
    /// # use taskrunner::time::Clock;
    /// let c = ManualClock::new();
    /// let t0 = c.now();
    /// c.advance(Duration::from_millis(5));
    /// assert_eq!(c.now(), t0 + Duration::from_millis(5));
    /// c.advance(Duration::MAX); // as far as the clock goes: no overflow
    /// let end = c.now();
    /// assert!(end > t0 + Duration::from_secs(100 * 365 * 24 * 3600));
    /// c.advance(Duration::from_secs(1)); // already at its end: stays there
    /// assert_eq!(c.now(), end);
    /// ```
    pub fn advance(&self, d: Duration) {
        {
            let mut offset = self.inner.offset.lock();
            *offset = offset.saturating_add(d).min(self.inner.limit);
        }
        // Wakers are called with no clock lock held (see `Clock::register_waker`).
        let wakers: Vec<ClockWaker> = self.inner.wakers.lock().clone();
        for w in wakers {
            w();
        }
    }

    /// Moves the clock to `t` if that is later than now (never backwards).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::testing::ManualClock;
    /// # use taskrunner::time::Clock;
    /// let c = ManualClock::new();
    /// let t = c.now() + Duration::from_secs(1);
    /// c.advance_to(t);
    /// assert_eq!(c.now(), t);
    /// c.advance_to(t - Duration::from_millis(1)); // ignored: earlier
    /// assert_eq!(c.now(), t);
    /// ```
    pub fn advance_to(&self, t: Instant) {
        let now = self.now();
        if t > now {
            self.advance(t - now);
        }
    }

    /// The latest instant this clock can show (just short of the end of time).
    pub(crate) fn latest(&self) -> Instant {
        instant_after(self.inner.base, self.inner.limit).unwrap_or_else(end_of_time)
    }
}

#[cfg(feature = "test-util")]
impl fmt::Debug for ManualInner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("offset", &*self.offset.lock())
            .field("wakers", &self.wakers.lock().len())
            .finish()
    }
}

#[cfg(feature = "test-util")]
impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "test-util")]
impl Clock for ManualClock {
    fn now(&self) -> Instant {
        let offset = *self.inner.offset.lock();
        // Always representable: `advance` keeps the offset within `limit`.
        instant_after(self.inner.base, offset).unwrap_or_else(end_of_time)
    }

    fn real_time_until(&self, _deadline: Instant) -> Option<Duration> {
        None
    }

    fn register_waker(&self, waker: ClockWaker) {
        self.inner.wakers.lock().push(waker);
    }
}
