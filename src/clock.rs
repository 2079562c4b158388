//! The pool's only source of "now". Chosen once, at build time.

use std::fmt;
use std::sync::Arc as StdArc;
use std::time::{Duration, Instant};

/// A callback a clock calls after it moved by some means other than real time passing.
pub type ClockWaker = StdArc<dyn Fn() + Send + Sync + 'static>;

/// A source of monotonic time for one pool: delayed tasks ripen against it and the delay
/// manager waits on it. The default is [`SystemClock`]; a test clock that only moves when told
/// to implements [`real_time_until`](Clock::real_time_until) as `None` and calls the wakers
/// registered through [`register_waker`](Clock::register_waker) whenever it moves.
///
/// ```
/// use std::time::{Duration, Instant};
/// use taskrunner::{Clock, SystemClock};
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
    /// A clock must call its wakers **without holding any lock that [`now`](Clock::now) also
    /// takes**: the pool calls `now()` while holding its delay lock, and a waker takes that lock.
    /// Each pool built with the clock registers one waker, for the clock's lifetime.
    fn register_waker(&self, waker: ClockWaker) {
        let _ = waker;
    }
}

/// The real monotonic clock (`Instant::now()`). The default clock of every pool.
///
/// ```
/// use taskrunner::{Clock, SystemClock};
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
/// ```
/// use std::time::Duration;
/// use taskrunner::{Clock, ManualClock};
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
    offset: crate::sync::Mutex<Duration>,
    wakers: crate::sync::Mutex<Vec<ClockWaker>>,
}

#[cfg(feature = "test-util")]
impl ManualClock {
    /// A manual clock reading the current real time, frozen.
    ///
    /// ```
    /// let c = taskrunner::ManualClock::new();
    /// # use taskrunner::Clock;
    /// assert_eq!(c.now(), c.now());
    /// ```
    pub fn new() -> Self {
        ManualClock {
            inner: StdArc::new(ManualInner {
                base: Instant::now(),
                offset: crate::sync::Mutex::new(Duration::ZERO),
                wakers: crate::sync::Mutex::new(Vec::new()),
            }),
        }
    }

    /// Moves the clock forward by `d` and wakes every pool built on it.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::{Clock, ManualClock};
    /// let c = ManualClock::new();
    /// let t0 = c.now();
    /// c.advance(Duration::from_millis(5));
    /// assert_eq!(c.now(), t0 + Duration::from_millis(5));
    /// ```
    pub fn advance(&self, d: Duration) {
        *self.inner.offset.lock() += d;
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
    /// # use taskrunner::{Clock, ManualClock};
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
        self.inner.base + *self.inner.offset.lock()
    }

    fn real_time_until(&self, _deadline: Instant) -> Option<Duration> {
        None
    }

    fn register_waker(&self, waker: ClockWaker) {
        self.inner.wakers.lock().push(waker);
    }
}
