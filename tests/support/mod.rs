//! Helpers shared by the integration tests: waiting with a (generous) timeout, blockers that
//! hold a worker until released, drop counters, ordered recorders, a manual clock, the stress
//! scale, and a few `/proc` readers for resource checks.
//!
//! Timeouts here only turn a hang into a failure; no test asserts on how long anything took.
#![allow(dead_code, clippy::disallowed_types, clippy::disallowed_methods)]

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use taskrunner::time::{Clock, ClockWaker};

/// How long any wait may take before the test fails as hung.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(30);

// ---- waiting --------------------------------------------------------------------------------

/// A counting latch: `wait` returns once `count_down` was called `count` times.
#[derive(Debug)]
pub(crate) struct Latch {
    left: Mutex<usize>,
    cv: Condvar,
}

impl Latch {
    pub(crate) fn new(count: usize) -> Arc<Self> {
        Arc::new(Latch {
            left: Mutex::new(count),
            cv: Condvar::new(),
        })
    }

    pub(crate) fn count_down(&self) {
        let mut left = self.left.lock().unwrap();
        *left = left.saturating_sub(1);
        if *left == 0 {
            self.cv.notify_all();
        }
    }

    /// Count-downs still missing.
    pub(crate) fn remaining(&self) -> usize {
        *self.left.lock().unwrap()
    }

    pub(crate) fn is_open(&self) -> bool {
        self.remaining() == 0
    }

    /// Waits up to `timeout`; `true` if the latch opened.
    pub(crate) fn wait_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut left = self.left.lock().unwrap();
        while *left != 0 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            left = self.cv.wait_timeout(left, deadline - now).unwrap().0;
        }
        true
    }

    /// Waits; fails the test (panics) if the latch is still closed after [`TIMEOUT`].
    #[track_caller]
    pub(crate) fn wait(&self) {
        if !self.wait_timeout(TIMEOUT) {
            panic!(
                "latch still waiting for {} count-down(s) after {TIMEOUT:?}",
                self.remaining()
            );
        }
    }
}

/// Polls `cond` every millisecond; fails the test with `what` if it is still false after
/// [`TIMEOUT`].
#[track_caller]
pub(crate) fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond() {
        if Instant::now() >= deadline {
            panic!("timed out after {TIMEOUT:?} waiting until {what}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Runs `f` on another thread and returns its result, failing the test if it does not finish
/// within [`TIMEOUT`] (for calls that must never hang, such as `shutdown()`).
#[track_caller]
pub(crate) fn must_return<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(TIMEOUT) {
        Ok(v) => v,
        Err(_) => panic!("{what} did not return within {TIMEOUT:?}"),
    }
}

/// How a race of posts against a close ended: tasks that ran, posts refused (each with the
/// runner-closed reason, checked), and tasks accepted but dropped unrun (their handles said so).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CloseRace {
    pub(crate) ran: usize,
    pub(crate) refused: usize,
    pub(crate) not_run: usize,
}

/// `posters` threads post `per` tasks each through `post(poster, i, task)` while this thread
/// calls `close` (after yielding once if `yield_first`); every handle is joined. Nothing may be
/// lost: the test asserts `ran + refused + not_run == posters * per`.
pub(crate) fn posts_around_close<P>(
    posters: usize,
    per: usize,
    yield_first: bool,
    post: P,
    close: impl FnOnce(),
) -> CloseRace
where
    P: Fn(
            usize,
            usize,
            Box<dyn FnOnce() + Send>,
        ) -> Result<taskrunner::TaskHandle<()>, taskrunner::PostRefusal>
        + Clone
        + Send
        + 'static,
{
    let barrier = Arc::new(std::sync::Barrier::new(posters + 1));
    let ran = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..posters)
        .map(|p| {
            let (post, barrier, ran) = (post.clone(), barrier.clone(), ran.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let (mut refused, mut not_run, mut handles) = (0, 0, Vec::new());
                for i in 0..per {
                    let ran = ran.clone();
                    let task = Box::new(move || {
                        ran.fetch_add(1, Ordering::SeqCst);
                    });
                    match post(p, i, task) {
                        Ok(h) => handles.push(h),
                        Err(reason) => {
                            assert_eq!(reason, taskrunner::PostRefusal::RunnerClosed);
                            refused += 1;
                        }
                    }
                }
                for h in handles {
                    match h.join() {
                        Ok(()) => {}
                        Err(e) if e.is_not_run() => not_run += 1,
                        Err(e) => panic!("unexpected {e:?}"),
                    }
                }
                (refused, not_run)
            })
        })
        .collect();
    barrier.wait();
    if yield_first {
        std::thread::yield_now();
    }
    close();
    let (mut refused, mut not_run) = (0, 0);
    for t in threads {
        let (r, n) = t.join().unwrap();
        refused += r;
        not_run += n;
    }
    let race = CloseRace {
        ran: ran.load(Ordering::SeqCst),
        refused,
        not_run,
    };
    assert_eq!(
        race.ran + race.refused + race.not_run,
        posters * per,
        "lost posts: {race:?}"
    );
    race
}

/// Holds one worker of `pool` (its only one, in a one-worker pool) with a [`Blocker`] task
/// until the blocker is released.
pub(crate) fn hold(pool: &taskrunner::ThreadPool) -> Blocker {
    let blocker = Blocker::new();
    pool.post_task(taskrunner::TaskTraits::default(), blocker.task())
        .unwrap();
    blocker.wait_started();
    blocker
}

/// A task that signals when it starts and then holds its worker until released.
#[derive(Clone, Debug)]
pub(crate) struct Blocker {
    started: Arc<Latch>,
    release: Arc<Latch>,
    finished: Arc<AtomicBool>,
}

impl Default for Blocker {
    fn default() -> Self {
        Self::new()
    }
}

impl Blocker {
    pub(crate) fn new() -> Self {
        Blocker {
            started: Latch::new(1),
            release: Latch::new(1),
            finished: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The blocking task. If the test never releases it, it gives up after [`TIMEOUT`].
    pub(crate) fn task(&self) -> impl FnOnce() + Send + 'static {
        let b = self.clone();
        move || {
            b.started.count_down();
            b.release.wait_timeout(TIMEOUT);
            b.finished.store(true, Ordering::SeqCst);
        }
    }

    /// Like [`task`](Self::task), but the task keeps running for `linger` after its release
    /// (to widen the window in which a wrongly non-waiting shutdown would return early).
    pub(crate) fn lingering_task(&self, linger: Duration) -> impl FnOnce() + Send + 'static {
        let b = self.clone();
        move || {
            b.started.count_down();
            b.release.wait_timeout(TIMEOUT);
            std::thread::sleep(linger);
            b.finished.store(true, Ordering::SeqCst);
        }
    }

    #[track_caller]
    pub(crate) fn wait_started(&self) {
        self.started.wait();
    }

    pub(crate) fn has_started(&self) -> bool {
        self.started.is_open()
    }

    pub(crate) fn release(&self) {
        self.release.count_down();
    }

    pub(crate) fn finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }
}

// ---- counting -------------------------------------------------------------------------------

/// Counts how many of its tokens were dropped (a token lives inside a posted closure, so this
/// counts closures destroyed, whether they ran or not).
#[derive(Clone, Debug, Default)]
pub(crate) struct DropCounter(Arc<AtomicUsize>);

impl DropCounter {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn token(&self) -> DropToken {
        DropToken(self.0.clone())
    }

    pub(crate) fn dropped(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// See [`DropCounter`]. Call [`keep`](DropToken::keep) inside a `move` closure so the closure
/// owns the token.
#[derive(Debug)]
pub(crate) struct DropToken(Arc<AtomicUsize>);

impl DropToken {
    pub(crate) fn keep(&self) {}
}

impl Drop for DropToken {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A shared counter.
#[derive(Clone, Debug, Default)]
pub(crate) struct Counter(Arc<AtomicUsize>);

impl Counter {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn incr(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    #[track_caller]
    pub(crate) fn wait_for(&self, n: usize) {
        wait_until(&format!("counter reaches {n}"), || self.get() >= n);
    }
}

/// Records values in the order they happen.
#[derive(Debug)]
pub(crate) struct Recorder<T> {
    inner: Arc<(Mutex<Vec<T>>, Condvar)>,
}

impl<T> Clone for Recorder<T> {
    fn clone(&self) -> Self {
        Recorder {
            inner: self.inner.clone(),
        }
    }
}

impl<T> Default for Recorder<T> {
    fn default() -> Self {
        Recorder {
            inner: Arc::new((Mutex::new(Vec::new()), Condvar::new())),
        }
    }
}

impl<T: Clone> Recorder<T> {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn push(&self, v: T) {
        self.inner.0.lock().unwrap().push(v);
        self.inner.1.notify_all();
    }

    pub(crate) fn len(&self) -> usize {
        self.inner.0.lock().unwrap().len()
    }

    pub(crate) fn snapshot(&self) -> Vec<T> {
        self.inner.0.lock().unwrap().clone()
    }

    /// Waits until at least `n` values were recorded and returns them all.
    #[track_caller]
    pub(crate) fn wait_for_len(&self, n: usize) -> Vec<T> {
        let deadline = Instant::now() + TIMEOUT;
        let mut v = self.inner.0.lock().unwrap();
        while v.len() < n {
            let now = Instant::now();
            if now >= deadline {
                panic!("recorder has {} of {n} values after {TIMEOUT:?}", v.len());
            }
            v = self.inner.1.wait_timeout(v, deadline - now).unwrap().0;
        }
        v.clone()
    }

    /// A closure that records `v` when run.
    pub(crate) fn task(&self, v: T) -> impl FnOnce() + Send + 'static
    where
        T: Send + 'static,
    {
        let r = self.clone();
        move || r.push(v)
    }
}

// ---- time -----------------------------------------------------------------------------------

/// A clock that only moves when told to: `real_time_until` is `None`, and `advance` calls every
/// waker the pool registered, so the delay manager re-checks without any real waiting.
#[derive(Clone)]
pub(crate) struct ManualClock {
    inner: Arc<ManualInner>,
}

struct ManualInner {
    base: Instant,
    offset: Mutex<Duration>,
    wakers: Mutex<Vec<ClockWaker>>,
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("offset", &*self.inner.offset.lock().unwrap())
            .field("wakers", &self.inner.wakers.lock().unwrap().len())
            .finish()
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    pub(crate) fn new() -> Self {
        ManualClock {
            inner: Arc::new(ManualInner {
                base: Instant::now(),
                offset: Mutex::new(Duration::ZERO),
                wakers: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Moves the clock forward and wakes whoever registered (outside the clock's locks).
    pub(crate) fn advance(&self, d: Duration) {
        *self.inner.offset.lock().unwrap() += d;
        let wakers: Vec<ClockWaker> = self.inner.wakers.lock().unwrap().clone();
        for w in wakers {
            w();
        }
    }

    /// How far the clock has moved since it was created.
    pub(crate) fn elapsed(&self) -> Duration {
        *self.inner.offset.lock().unwrap()
    }

    pub(crate) fn wakers(&self) -> usize {
        self.inner.wakers.lock().unwrap().len()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.inner.base + *self.inner.offset.lock().unwrap()
    }

    fn real_time_until(&self, _deadline: Instant) -> Option<Duration> {
        None
    }

    fn register_waker(&self, waker: ClockWaker) {
        self.inner.wakers.lock().unwrap().push(waker);
    }
}

// ---- stress scale ---------------------------------------------------------------------------

/// `TASKRUNNER_STRESS_SCALE` (a positive float, default 1.0; CI uses 0.25).
pub(crate) fn scale() -> f64 {
    match std::env::var("TASKRUNNER_STRESS_SCALE") {
        Ok(s) => {
            let v: f64 = s
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("TASKRUNNER_STRESS_SCALE={s:?} is not a number"));
            assert!(v > 0.0, "TASKRUNNER_STRESS_SCALE must be positive, got {v}");
            v
        }
        Err(_) => 1.0,
    }
}

/// `n` scaled by [`scale`], never below 1: scaled down, never skipped.
pub(crate) fn scaled(n: usize) -> usize {
    ((n as f64 * scale()).round() as usize).max(1)
}

/// A tiny deterministic PRNG (xorshift64*), so stress tests need no extra crate.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n`.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

// ---- threads and the process ----------------------------------------------------------------

struct ExitHooks(Vec<Box<dyn FnOnce()>>);

impl Drop for ExitHooks {
    fn drop(&mut self) {
        for h in self.0.drain(..) {
            h();
        }
    }
}

thread_local! {
    static EXIT_HOOKS: RefCell<ExitHooks> = const { RefCell::new(ExitHooks(Vec::new())) };
}

/// Runs `f` when the calling thread exits (from a thread-local destructor, which runs before
/// the thread can be joined).
pub(crate) fn on_thread_exit(f: impl FnOnce() + 'static) {
    EXIT_HOOKS.with(|h| h.borrow_mut().0.push(Box::new(f)));
}

/// A counter incremented by every thread that exits after calling [`ThreadExitProbe::arm`].
#[derive(Clone, Debug, Default)]
pub(crate) struct ThreadExitProbe(Arc<AtomicUsize>);

impl ThreadExitProbe {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Arms the probe on the calling thread.
    pub(crate) fn arm(&self) {
        let c = self.0.clone();
        on_thread_exit(move || {
            c.fetch_add(1, Ordering::SeqCst);
        });
    }

    pub(crate) fn exited(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// User + system CPU time consumed by this process so far (`/proc/self/stat`, in clock ticks of
/// 1/100 s, Linux's fixed `USER_HZ`).
pub(crate) fn process_cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    // The command name may contain spaces; the fields we need come after its closing paren.
    let rest = &stat[stat.rfind(')').expect("comm field") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields[14 - 3].parse().expect("utime");
    let stime: u64 = fields[15 - 3].parse().expect("stime");
    Duration::from_millis((utime + stime) * 10)
}

/// The `Threads:` line of `/proc/self/status`.
pub(crate) fn process_thread_count() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .expect("Threads: line")
        .trim()
        .parse()
        .expect("thread count")
}

/// Live threads of this process whose name starts with `prefix` (`/proc/self/task/*/comm`;
/// names are truncated to 15 bytes by the kernel). Unlike the process-wide thread count, this is
/// not disturbed by other tests running in parallel in the same process.
pub(crate) fn threads_named(prefix: &str) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
        .filter(|name| name.trim_end().starts_with(prefix))
        .count()
}
