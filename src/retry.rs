//! Retries with exponential backoff: [`RetryPolicy`] and [`retry`].
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//! use taskrunner::retry::{retry, RetryPolicy};
//! use taskrunner::ThreadPool;
//!
//! let pool = ThreadPool::builder().max_workers(1).build().unwrap();
//! let calls = Arc::new(AtomicU32::new(0));
//! let c = calls.clone();
//! let h = retry(&pool, RetryPolicy::attempts(3), move || {
//!     if c.fetch_add(1, Ordering::SeqCst) < 2 { Err("not yet") } else { Ok("done") }
//! });
//! assert_eq!(h.join().unwrap(), "done");
//! assert_eq!(calls.load(Ordering::SeqCst), 3);
//! ```
//!
//! Each attempt is a task of its own on the chosen runner. Between attempts nothing waits on a
//! worker: the next attempt is a delayed post, so the backoff is timed by the delay manager
//! (and by the mock clock in a `TestEnvironment`).
//!
//! This is also the engine behind every [`Executor`](crate::executor::Executor) submission (one attempt
//! unless a policy says more). A panicking attempt is caught and reported exactly as the worker
//! reports a plain task's panic (`report_task_panic`: the runner's panic policy, then the
//! pool's panic handler, with the location of the user's call), *before* the handle resolves.

use std::error::Error;
use std::fmt;
use std::panic::Location;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::base::shim::{Mutex, MutexGuard, Ordering};
use crate::base::unwind::catch;
use crate::cancel::{CancellationToken, Interrupted, TaskContext};
use crate::engine::report_task_panic;
use crate::handle::{Promise, TaskError, TaskHandle};
use crate::runner::PostTask;
use crate::sync::semaphore::{Permit, Semaphore};

/// How often and how patiently to retry a fallible task.
///
/// Attempt `n` (1-based) that fails is followed, if `n < max_attempts`, by a wait of
/// `base_delay × factor^(n-1)`, capped at `max_delay`, then spread by ±`jitter` (a fraction:
/// 0.1 means ±10 %, never above `max_delay`). `max_attempts` counts **all** attempts, the first
/// included.
///
/// Any durations work: a wait too long to represent saturates at `Duration::MAX` (never at a
/// panic), and a backoff of `Duration::MAX` means the next attempt waits without limit (until
/// the handle or its token is cancelled, or the runner shuts down).
///
/// Panics are not retried (a panic is a bug, not a transient failure): the handle resolves as
/// panicked at once, after the panic was reported like a plain task's (the runner's
/// [`PanicPolicy`](crate::PanicPolicy), the pool's panic handler). An
/// [`Interrupted`] error (the task saw its token cancelled) is not retried
/// either.
///
/// ```
/// use std::time::Duration;
/// use taskrunner::retry::RetryPolicy;
/// let p = RetryPolicy {
///     max_attempts: 5,
///     base_delay: Duration::from_millis(100),
///     factor: 2.0,
///     max_delay: Duration::from_millis(300),
///     jitter: 0.0,
/// };
/// assert_eq!(p.delay_after(1), Duration::from_millis(100));
/// assert_eq!(p.delay_after(2), Duration::from_millis(200));
/// assert_eq!(p.delay_after(3), Duration::from_millis(300)); // capped
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    /// All attempts, the first included (at least 1; 0 is treated as 1).
    pub max_attempts: u32,
    /// The wait after the first failed attempt.
    pub base_delay: Duration,
    /// Growth of the wait per further failure (1.0 = constant).
    pub factor: f64,
    /// The longest wait.
    pub max_delay: Duration,
    /// Random spread of each wait, as a fraction of it (0.0 = exact, 1.0 = up to double).
    pub jitter: f64,
}

impl Default for RetryPolicy {
    /// 3 attempts, 100 ms then 200 ms, capped at 30 s, no jitter.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(100),
            factor: 2.0,
            max_delay: Duration::from_secs(30),
            jitter: 0.0,
        }
    }
}

impl RetryPolicy {
    /// `max_attempts` attempts in all, with the default backoff (100 ms doubling, capped at
    /// 30 s, no jitter).
    ///
    /// ```
    /// assert_eq!(taskrunner::retry::RetryPolicy::attempts(4).max_attempts, 4);
    /// ```
    pub fn attempts(max_attempts: u32) -> Self {
        RetryPolicy {
            max_attempts,
            ..Self::default()
        }
    }

    /// A policy that never retries (one attempt).
    ///
    /// ```
    /// assert_eq!(taskrunner::retry::RetryPolicy::never().max_attempts, 1);
    /// ```
    pub fn never() -> Self {
        Self::attempts(1)
    }

    /// Sets the first wait.
    ///
    /// ```
    /// use std::time::Duration;
    /// let p = taskrunner::retry::RetryPolicy::attempts(2).base_delay(Duration::from_millis(5));
    /// assert_eq!(p.delay_after(1), Duration::from_millis(5));
    /// ```
    pub fn base_delay(mut self, d: Duration) -> Self {
        self.base_delay = d;
        self
    }

    /// Sets the growth factor.
    ///
    /// ```
    /// use std::time::Duration;
    /// let p = taskrunner::retry::RetryPolicy::attempts(3).base_delay(Duration::from_millis(10)).factor(3.0);
    /// assert_eq!(p.delay_after(2), Duration::from_millis(30));
    /// ```
    pub fn factor(mut self, f: f64) -> Self {
        self.factor = f;
        self
    }

    /// Sets the longest wait.
    ///
    /// ```
    /// use std::time::Duration;
    /// let p = taskrunner::retry::RetryPolicy::attempts(9).max_delay(Duration::from_millis(150));
    /// assert_eq!(p.delay_after(8), Duration::from_millis(150));
    /// ```
    pub fn max_delay(mut self, d: Duration) -> Self {
        self.max_delay = d;
        self
    }

    /// Sets the jitter fraction (clamped to 0.0..=1.0).
    ///
    /// ```
    /// use std::time::Duration;
    /// let p = taskrunner::retry::RetryPolicy::attempts(2).jitter(0.5);
    /// let d = p.backoff(1);
    /// assert!(d >= Duration::from_millis(50) && d <= Duration::from_millis(150));
    /// ```
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = fraction.clamp(0.0, 1.0);
        self
    }

    /// The wait after failed attempt `attempt` (1-based), before jitter. Saturates at
    /// `max_delay` (and never panics, whatever the durations).
    ///
    /// See [`RetryPolicy`] for an example.
    ///
    /// ```
    /// use std::time::Duration;
    /// let huge = taskrunner::retry::RetryPolicy::attempts(3).base_delay(Duration::MAX).max_delay(Duration::MAX);
    /// assert_eq!(huge.delay_after(2), Duration::MAX);
    /// ```
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(1000) as i32;
        let factor = if self.factor.is_finite() && self.factor > 0.0 {
            self.factor
        } else {
            1.0
        };
        let secs = self.base_delay.as_secs_f64() * factor.powi(exp);
        let max = self.max_delay.as_secs_f64();
        if !secs.is_finite() || secs >= max {
            self.max_delay
        } else {
            // `as_secs_f64` rounds: a value just below `max` may still not fit a `Duration`.
            Duration::try_from_secs_f64(secs.max(0.0))
                .map_or(self.max_delay, |d| d.min(self.max_delay))
        }
    }

    /// The wait after failed attempt `attempt`, with jitter applied (never above `max_delay`,
    /// saturating instead of overflowing).
    ///
    /// See [`jitter`](Self::jitter) for an example.
    ///
    /// ```
    /// use std::time::Duration;
    /// let p = taskrunner::retry::RetryPolicy::attempts(3).base_delay(Duration::MAX).max_delay(Duration::MAX).jitter(0.5);
    /// assert!(p.backoff(1) <= Duration::MAX); // no "cannot convert float seconds" panic
    /// ```
    pub fn backoff(&self, attempt: u32) -> Duration {
        let d = self.delay_after(attempt);
        let j = self.jitter.clamp(0.0, 1.0);
        if j.is_nan() || j == 0.0 || d.is_zero() {
            return d;
        }
        let spread = (next_random() * 2.0 - 1.0) * j; // in [-j, j)
        let secs = d.as_secs_f64() * (1.0 + spread);
        let jittered = Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(Duration::MAX);
        jittered.min(self.max_delay.max(d))
    }

    fn max(&self) -> u32 {
        self.max_attempts.max(1)
    }
}

/// A uniform value in [0, 1) from a process-wide splitmix64 stream (jitter needs no
/// cryptographic quality, and no dependency).
fn next_random() -> f64 {
    // std's atomic even under loom (loom's has no const constructor; jitter is not modelled).
    static STATE: std::sync::atomic::AtomicU64 =
        std::sync::atomic::AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let mut z = STATE
        .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

type Attempt<T> = Box<dyn FnMut() -> Result<T, TaskError> + Send>;

struct Job<R, T: Send + 'static> {
    /// The runner, until the handle resolves: then it is released at once, so that whatever
    /// it keeps alive (an executor's bookkeeping for this task) does not wait for a stale
    /// backoff post or permit callback that still references this job.
    runner: Option<R>,
    policy: RetryPolicy,
    /// The attempt closure; `None` while an attempt runs (the lock is not held meanwhile).
    f: Option<Attempt<T>>,
    promise: Option<Promise<T>>,
    token: CancellationToken,
    gate: Option<Semaphore>,
    /// The attempt to run next (1-based); `attempt - 1` attempts were made before it.
    attempt: u32,
    /// The error of the last failed attempt while a retry is pending: the handle's error if
    /// the retries end without another attempt (the runner shut down during the backoff).
    last_error: Option<TaskError>,
    started: Option<Instant>,
    /// Where the task was submitted: what a panic is reported with.
    posted_from: &'static Location<'static>,
}

impl<R, T: Send + 'static> Job<R, T> {
    /// Attempts made before the one to run next (at least 1: a handle error says 1 when the
    /// first attempt never ran, as for any task that did not run).
    fn made(&self) -> u32 {
        self.attempt.saturating_sub(1).max(1)
    }
}

impl<R, T: Send + 'static> Drop for Job<R, T> {
    /// The last reference went away with the handle unresolved: a pending attempt or backoff
    /// was dropped unrun (shutdown). The handle gets the last attempt's error (the original
    /// cause and the attempt count), or "not run" if no attempt ran.
    fn drop(&mut self) {
        let Some(promise) = self.promise.take() else {
            return;
        };
        let took = self.started.map(|s| s.elapsed());
        match self.last_error.take() {
            Some(e) => {
                let made = self.made();
                promise.complete(Err(e.with_attempts(made)), took);
            }
            None => drop(promise), // resolves as not run
        }
    }
}

/// The retry state machine, shared by the posted attempts (one runs at a time).
struct Retry<R, T: Send + 'static>(Mutex<Job<R, T>>);

impl<R, T> Retry<R, T>
where
    R: PostTask + Send + Sync + 'static,
    T: Send + 'static,
{
    /// Ends the handle with `result` (the `Promise` ignores it if a cancel won). The promise
    /// is taken under the job's lock, where the outcome was decided, so that no other path
    /// (a cancel between attempts) can resolve the handle in between.
    fn finish(mut j: MutexGuard<'_, Job<R, T>>, result: Result<T, TaskError>) {
        let took = j.started.map(|s| s.elapsed());
        let promise = j.promise.take();
        // Released now, not when the last stale post drops the job: the runner may hold an
        // executor's per-task bookkeeping, and the closure the user's captures.
        let runner = j.runner.take();
        let f = j.f.take();
        drop(j);
        if let Some(p) = promise {
            p.complete(result, took);
        }
        drop((runner, f));
    }

    /// The token was cancelled (the handle's `cancel`, a parent token, a deadline). Between
    /// attempts (backoff, waiting for a permit, queued) the handle resolves now, with the
    /// reason and the attempts made; during an attempt (until its outcome is recorded) the
    /// attempt decides, and no further attempt starts.
    fn interrupt(&self, why: Interrupted) {
        let j = self.0.lock();
        if j.f.is_none() {
            return; // an attempt is running: `run` sees the token when it returns
        }
        let made = j.made();
        Self::finish(j, Err(TaskError::interrupted(why).with_attempts(made)));
    }

    /// Starts the next attempt: waits for a permit if gated, then posts it.
    fn launch(self: Arc<Self>) {
        let gate = {
            let j = self.0.lock();
            if j.promise.is_none() {
                return; // resolved meanwhile (cancelled during the backoff)
            }
            j.gate.clone()
        };
        match gate {
            Some(sem) => sem.acquire_then(move |permit| self.post(Some(permit))),
            None => self.post(None),
        }
    }

    fn post(self: Arc<Self>, permit: Option<Permit>) {
        let me = self.clone();
        let posted = {
            let j = self.0.lock();
            let posted_from = j.posted_from;
            match &j.runner {
                Some(r) => r.post_task_from(move || me.run(permit), posted_from),
                None => return, // resolved meanwhile; the permit is released on return
            }
        };
        if let Err(refused) = posted {
            drop(refused); // the permit is released outside the job's lock
            let mut j = self.0.lock();
            let made = j.made();
            let error = j.last_error.take().unwrap_or_else(TaskError::not_run);
            Self::finish(j, Err(error.with_attempts(made)));
        }
    }

    fn run(self: Arc<Self>, permit: Option<Permit>) {
        let (mut f, ctx, attempt) = {
            let mut j = self.0.lock();
            let Some(promise) = j.promise.as_ref() else {
                return;
            };
            if j.attempt == 1 {
                if !promise.start() {
                    return; // cancelled through the handle before the first attempt
                }
                j.started = Some(Instant::now());
            }
            if let Some(why) = j.token.reason() {
                let made = j.made();
                Self::finish(j, Err(TaskError::interrupted(why).with_attempts(made)));
                drop(permit);
                return;
            }
            let Some(f) = j.f.take() else {
                return; // attempts never overlap: unreachable
            };
            let attempt = j.attempt;
            let ctx = TaskContext::new(j.token.clone()).with_attempt(attempt);
            (f, ctx, attempt)
        };
        // The attempt runs without the job's lock, so that a cancel (which takes it) never
        // waits for an attempt, nor deadlocks when the attempt cancels its own token.
        let outcome = catch(|| ctx.scope(&mut f));
        drop(permit);
        let result = match outcome {
            Ok(r) => r,
            Err(payload) => {
                let (posted_from, max) = {
                    let j = self.0.lock();
                    (j.posted_from, j.policy.max())
                };
                if max > 1 {
                    tracing::warn!(
                        target: "taskrunner",
                        posted_from = %posted_from,
                        "attempt {attempt} of {max} of a retried task panicked; panics are not retried"
                    );
                }
                // Reported like a plain task's panic (panic policy, then the pool's handler)
                // before the handle resolves, and without the job's lock (the handler is user
                // code; it may cancel the handle). `f` is not back in the job yet, so a cancel
                // meanwhile leaves the outcome to this attempt.
                report_task_panic(payload.message(), posted_from);
                let mut j = self.0.lock();
                j.f = Some(f);
                let error = TaskError::from_panic(payload).with_attempts(attempt);
                Self::finish(j, Err(error));
                return;
            }
        };
        let mut j = self.0.lock();
        j.f = Some(f);
        let e = match result {
            Ok(v) => return Self::finish(j, Ok(v)),
            Err(e) => e,
        };
        // A cancel that arrived during the attempt found no closure to stop; it is seen here:
        // no retry.
        let retryable = e.is_failed() && !j.token.is_cancelled();
        if !retryable || attempt >= j.policy.max() {
            return Self::finish(j, Err(e.with_attempts(attempt)));
        }
        let delay = j.policy.backoff(attempt);
        j.attempt += 1;
        j.last_error = Some(e);
        let me = self.clone();
        let posted_from = j.posted_from;
        let posted = match &j.runner {
            Some(r) => r.post_delayed_task_from(delay, move || me.launch(), posted_from),
            None => return,
        };
        drop(j);
        if let Err(refused) = posted {
            drop(refused);
            let mut j = self.0.lock();
            if let Some(e) = j.last_error.take() {
                Self::finish(j, Err(e.with_attempts(attempt)));
            }
        }
    }
}

/// Starts `f` on `runner` and retries it by `policy` while it returns `Err`. The handle
/// resolves with the first `Ok`, or with the **last** error (its original value is the
/// [`TaskError`]'s source, downcastable, and [`TaskError::attempts`] says how many attempts
/// were made).
///
/// Inside `f`, [`TaskContext::current`] gives the attempt number and the token;
/// [`TaskHandle::cancel`] cancels that token and stops further attempts: during a backoff the
/// handle resolves as cancelled at once (with the attempts made so far); a running attempt
/// sees the token and decides its own outcome. If the runner shuts down during a backoff, the
/// handle resolves with the last attempt's error.
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use taskrunner::ThreadPool;
/// use taskrunner::retry::{retry, RetryPolicy};
///
/// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
/// let calls = Arc::new(AtomicU32::new(0));
/// let c = calls.clone();
/// let policy = RetryPolicy::attempts(5).base_delay(Duration::from_millis(1));
/// let h = retry(&pool, policy, move || {
///     if c.fetch_add(1, Ordering::SeqCst) < 2 { Err("flaky") } else { Ok("up") }
/// });
/// assert_eq!(h.join().unwrap(), "up");
/// assert_eq!(calls.load(Ordering::SeqCst), 3);
///
/// let h = retry(&pool, RetryPolicy::attempts(2).base_delay(Duration::ZERO), || {
///     Err::<(), _>(std::io::Error::new(std::io::ErrorKind::TimedOut, "slow"))
/// });
/// let err = h.join().unwrap_err();
/// assert_eq!(err.attempts(), 2);
/// assert_eq!(err.downcast_ref::<std::io::Error>().unwrap().kind(), std::io::ErrorKind::TimedOut);
/// ```
///
/// A panicking attempt is not retried; it is reported like a plain task's panic, with the
/// location of this call as the task's posted-from location:
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use taskrunner::ThreadPool;
/// use taskrunner::retry::{retry, RetryPolicy};
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let s = seen.clone();
/// let pool = ThreadPool::builder()
///     .max_workers(1)
///     .panic_handler(move |p| s.lock().unwrap().push(p.posted_from().line()))
///     .build()
///     .unwrap();
/// let line = line!() + 1;
/// let h = retry(&pool, RetryPolicy::attempts(3), || -> Result<(), &str> { panic!("bug") });
/// let err = h.join().unwrap_err();
/// assert!(err.is_panic() && err.attempts() == 1);
/// assert_eq!(*seen.lock().unwrap(), vec![line]);
/// ```
#[track_caller]
pub fn retry<R, T, E, F>(runner: &R, policy: RetryPolicy, mut f: F) -> TaskHandle<T>
where
    R: PostTask + Clone + Send + Sync + 'static,
    T: Send + 'static,
    E: Into<Box<dyn Error + Send + Sync + 'static>>,
    F: FnMut() -> Result<T, E> + Send + 'static,
{
    retry_with_at(
        runner,
        policy,
        CancellationToken::new(),
        None,
        Box::new(move || f().map_err(TaskError::from_error)),
        Location::caller(),
    )
}

/// The engine behind [`retry`] and the executor: attempts of `f` on `runner`, each gated by a
/// permit of `gate` (if any), all under `token` (cancelled by the handle's `cancel`). The
/// caller's location is the task's posted-from location.
#[track_caller]
#[cfg_attr(not(loom), allow(dead_code))]
pub(crate) fn retry_with<R, T>(
    runner: &R,
    policy: RetryPolicy,
    token: CancellationToken,
    gate: Option<Semaphore>,
    f: Attempt<T>,
) -> TaskHandle<T>
where
    R: PostTask + Clone + Send + Sync + 'static,
    T: Send + 'static,
{
    retry_with_at(runner, policy, token, gate, f, Location::caller())
}

/// [`retry_with`] with an explicit posted-from location (reported with a panic).
pub(crate) fn retry_with_at<R, T>(
    runner: &R,
    policy: RetryPolicy,
    token: CancellationToken,
    gate: Option<Semaphore>,
    f: Attempt<T>,
    posted_from: &'static Location<'static>,
) -> TaskHandle<T>
where
    R: PostTask + Clone + Send + Sync + 'static,
    T: Send + 'static,
{
    let (promise, handle) = Promise::new(Some(token.clone()));
    let handle = handle.for_pool(runner.pool_link());
    let job = Arc::new(Retry(Mutex::new(Job {
        runner: Some(runner.clone()),
        policy,
        f: Some(f),
        promise: Some(promise),
        token: token.clone(),
        gate,
        attempt: 1,
        last_error: None,
        started: None,
        posted_from,
    })));
    // A cancel between attempts resolves the handle at once instead of when the backoff
    // ends (the callback holds the job weakly: the token lives inside it).
    let weak = Arc::downgrade(&job);
    token.on_cancel(move |why| {
        if let Some(job) = weak.upgrade() {
            job.interrupt(why);
        }
    });
    job.launch();
    handle
}

impl<R, T: Send + 'static> fmt::Debug for Retry<R, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Retry")
    }
}
