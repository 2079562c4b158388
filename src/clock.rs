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
