//! Retries with exponential backoff: [`RetryPolicy`] and [`retry`].
//!
//! Each attempt is a task of its own on the chosen runner. Between attempts nothing waits on a
//! worker: the next attempt is a delayed post, so the backoff is timed by the delay manager
//! (and by the mock clock in a `TestEnvironment`).

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cancel::{CancellationToken, TaskContext};
use crate::handle::{Promise, TaskError, TaskHandle};
use crate::runner::PostTask;
use crate::semaphore::{Permit, Semaphore};
use crate::sync::{AtomicU64, Mutex, Ordering};

/// How often and how patiently to retry a fallible task.
///
/// Attempt `n` (1-based) that fails is followed, if `n < max_attempts`, by a wait of
/// `base_delay × factor^(n-1)`, capped at `max_delay`, then spread by ±`jitter` (a fraction:
/// 0.1 means ±10 %, never above `max_delay`). `max_attempts` counts **all** attempts, the first
/// included (antflow's `retries` meant "extra attempts" in one place and "all attempts" in
/// another; here there is one meaning).
///
/// Panics are not retried (a panic is a bug, not a transient failure): the handle resolves as
/// panicked at once. An [`Interrupted`](crate::Interrupted) error (the task saw its token
/// cancelled) is not retried either.
///
/// ```
/// use std::time::Duration;
/// use taskrunner::RetryPolicy;
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
    /// assert_eq!(taskrunner::RetryPolicy::attempts(4).max_attempts, 4);
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
    /// assert_eq!(taskrunner::RetryPolicy::never().max_attempts, 1);
    /// ```
    pub fn never() -> Self {
        Self::attempts(1)
    }

    /// Sets the first wait.
    ///
    /// ```
    /// use std::time::Duration;
    /// let p = taskrunner::RetryPolicy::attempts(2).base_delay(Duration::from_millis(5));
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
    /// let p = taskrunner::RetryPolicy::attempts(3).base_delay(Duration::from_millis(10)).factor(3.0);
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
    /// let p = taskrunner::RetryPolicy::attempts(9).max_delay(Duration::from_millis(150));
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
    /// let p = taskrunner::RetryPolicy::attempts(2).jitter(0.5);
    /// let d = p.backoff(1);
    /// assert!(d >= Duration::from_millis(50) && d <= Duration::from_millis(150));
    /// ```
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = fraction.clamp(0.0, 1.0);
        self
    }

    /// The wait after failed attempt `attempt` (1-based), before jitter.
    ///
    /// See [`RetryPolicy`] for an example.
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
            Duration::from_secs_f64(secs.max(0.0))
        }
    }

    /// The wait after failed attempt `attempt`, with jitter applied (never above `max_delay`).
    ///
    /// See [`jitter`](Self::jitter) for an example.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let d = self.delay_after(attempt);
        let j = self.jitter.clamp(0.0, 1.0);
        if j == 0.0 || d.is_zero() {
            return d;
        }
        let spread = (next_random() * 2.0 - 1.0) * j; // in [-j, j)
        let secs = d.as_secs_f64() * (1.0 + spread);
        Duration::from_secs_f64(secs.max(0.0)).min(self.max_delay.max(d))
    }

    fn max(&self) -> u32 {
        self.max_attempts.max(1)
    }
}

/// A uniform value in [0, 1) from a process-wide splitmix64 stream (jitter needs no
/// cryptographic quality, and no dependency).
fn next_random() -> f64 {
    static STATE: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
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
    runner: R,
    policy: RetryPolicy,
    f: Attempt<T>,
    promise: Option<Promise<T>>,
    token: CancellationToken,
    gate: Option<Semaphore>,
    attempt: u32,
    started: Option<Instant>,
}

/// The retry state machine, shared by the posted attempts (one runs at a time).
struct Retry<R, T: Send + 'static>(Mutex<Job<R, T>>);

impl<R, T> Retry<R, T>
where
    R: PostTask + Send + Sync + 'static,
    T: Send + 'static,
{
    /// Ends the handle with `result` (the `Promise` ignores it if a cancel won).
    fn finish(&self, result: Result<T, TaskError>) {
        let (promise, took) = {
            let mut j = self.0.lock();
            let took = j.started.map(|s| s.elapsed());
            (j.promise.take(), took)
        };
        if let Some(p) = promise {
            p.complete(result, took);
        }
    }

    /// Starts the next attempt: waits for a permit if gated, then posts it.
    fn launch(self: Arc<Self>) {
        let gate = self.0.lock().gate.clone();
        match gate {
            Some(sem) => sem.acquire_then(move |permit| self.post(Some(permit))),
            None => self.post(None),
        }
    }

    fn post(self: Arc<Self>, permit: Option<Permit>) {
        let me = self.clone();
        let refused = {
            let j = self.0.lock();
            j.runner.post_task(move || me.run(permit)).is_err()
        };
        if refused {
            let attempts = self.0.lock().attempt.saturating_sub(1).max(1);
            self.finish(Err(TaskError::not_run().with_attempts(attempts)));
        }
    }

    fn run(self: Arc<Self>, permit: Option<Permit>) {
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
        let attempt = j.attempt;
        if let Some(why) = j.token.reason() {
            drop(j);
            drop(permit);
            self.finish(Err(TaskError::interrupted(why).with_attempts(attempt)));
            return;
        }
        let ctx = TaskContext::new(j.token.clone()).with_attempt(attempt);
        // The lock is held while the attempt runs: attempts never overlap, and nothing else
        // takes it meanwhile except a refused post (which cannot happen during a run).
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ctx.scope(|| (j.f)())));
        drop(permit);
        let result = match outcome {
            Ok(r) => r,
            Err(payload) => {
                let msg = crate::pool::panic_message(&*payload);
                tracing::error!(message = %msg, attempt, "a retried task panicked");
                drop(j);
                self.finish(Err(TaskError::panicked(msg).with_attempts(attempt)));
                return;
            }
        };
        match result {
            Ok(v) => {
                drop(j);
                self.finish(Ok(v));
            }
            Err(e) => {
                let retryable = e.is_failed() && !j.token.is_cancelled();
                if !retryable || attempt >= j.policy.max() {
                    drop(j);
                    self.finish(Err(e.with_attempts(attempt)));
                    return;
                }
                let delay = j.policy.backoff(attempt);
                j.attempt += 1;
                let me = self.clone();
                let refused = j
                    .runner
                    .post_delayed_task(delay, move || me.launch())
                    .is_err();
                drop(j);
                if refused {
                    self.finish(Err(e.with_attempts(attempt)));
                }
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
/// [`TaskHandle::cancel`] cancels that token and stops further attempts.
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use taskrunner::{retry, RetryPolicy, ThreadPool};
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
pub fn retry<R, T, E, F>(runner: &R, policy: RetryPolicy, mut f: F) -> TaskHandle<T>
where
    R: PostTask + Clone + Send + Sync + 'static,
    T: Send + 'static,
    E: Into<Box<dyn Error + Send + Sync + 'static>>,
    F: FnMut() -> Result<T, E> + Send + 'static,
{
    retry_with(
        runner,
        policy,
        CancellationToken::new(),
        None,
        Box::new(move || f().map_err(TaskError::from_error)),
    )
}

/// The engine behind [`retry`] and the executor: attempts of `f` on `runner`, each gated by a
/// permit of `gate` (if any), all under `token` (cancelled by the handle's `cancel`).
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
    let (promise, handle) = Promise::new(Some(token.clone()));
    let job = Arc::new(Retry(Mutex::new(Job {
        runner: runner.clone(),
        policy,
        f,
        promise: Some(promise),
        token,
        gate,
        attempt: 1,
        started: None,
    })));
    job.launch();
    handle
}

impl<R, T: Send + 'static> fmt::Debug for Retry<R, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Retry")
    }
}
