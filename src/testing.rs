//! Deterministic testing of code that uses the pool: mock time over a whole pool, seeded
//! single-thread runs that replay exactly, and a guard that installs a test pool as the
//! global one (feature `test-util`).
//!
//! ```
//! # use taskrunner::PostTask;
//! use std::time::Duration;
//! use taskrunner::testing::TestEnvironment;
//!
//! let env = TestEnvironment::new();
//! let (tx, rx) = std::sync::mpsc::channel();
//! let seq = env.pool().create_sequenced_task_runner(Default::default());
//! seq.post_delayed_task(Duration::from_secs(3600), move || tx.send(()).unwrap()).unwrap();
//! env.fast_forward_by(Duration::from_secs(3600)); // an hour, at once
//! rx.try_recv().unwrap();
//! ```

pub use crate::base::clock::ManualClock;
use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};
use std::time::{Duration, Instant};

use crate::base::clock::Clock;
use crate::base::deadline::Deadline;
use crate::base::shim::{Arc, Mutex};
use crate::engine::current;
use crate::engine::scheduler::Work;
use crate::engine::worker::WorkerShared;
use crate::engine::Engine;
use crate::pool::ThreadPool;

/// A thread pool on a [`ManualClock`], with Chromium's `TaskEnvironment` (MOCK_TIME) controls:
/// time moves only when the test says so, and the test can wait until the pool has run
/// everything that is due.
///
/// Tasks run on real worker threads (as in production), but delayed tasks are forwarded only by
/// the environment's own calls, so nothing depends on real time:
///
/// * [`run_until_idle`](Self::run_until_idle): run everything due now, including what those
///   tasks post, until no task runs and nothing due is queued. Time does not move.
/// * [`advance_clock`](Self::advance_clock): move time; run nothing.
/// * [`fast_forward_by`](Self::fast_forward_by): run every task that becomes due within the
///   window, in order, moving the clock from deadline to deadline only while the pool is idle
///   (a task that posts a 10 ms follow-up inside the window sees it run inside the window).
/// * [`fast_forward_until_no_tasks_remain`](Self::fast_forward_until_no_tasks_remain).
///
/// The clock never moves by itself, and `fast_forward_by(Duration::ZERO)` runs what is due
/// without moving time (the two surprises tokio's paused clock is known for). Calling any of
/// the waiting methods from inside a task of the pool panics with an explanation.
///
/// **Mock-time rules.** A duration too large to add to the clock (`Duration::MAX`) never
/// overflows: advancing by it moves the clock as far as it can go (see
/// [`ManualClock`]), so every deadline that can be represented passes, and
/// a deadline that cannot (a delay of `Duration::MAX`: "no limit") never comes. The
/// fast-forwards that have no end in time ([`fast_forward_until_no_tasks_remain`](Self::fast_forward_until_no_tasks_remain),
/// `fast_forward_by(Duration::MAX)`) stop with a panic as soon as work is evidently
/// repeating forever, instead of spinning through millions of deadlines.
///
/// ```
/// use std::time::Duration;
/// use std::sync::{Arc, atomic::{AtomicU32, Ordering}};
/// use taskrunner::{PostTask, TaskTraits};
/// use taskrunner::testing::TestEnvironment;
///
/// let env = TestEnvironment::new();
/// let seq = env.pool().create_sequenced_task_runner(TaskTraits::default());
/// let fired = Arc::new(AtomicU32::new(0));
/// let f = fired.clone();
/// seq.post_delayed_task(Duration::from_secs(3600), move || { f.fetch_add(1, Ordering::SeqCst); }).unwrap();
/// env.fast_forward_by(Duration::from_secs(3599));
/// assert_eq!(fired.load(Ordering::SeqCst), 0); // not a moment early
/// env.fast_forward_by(Duration::from_secs(1));
/// assert_eq!(fired.load(Ordering::SeqCst), 1); // an hour passed in microseconds
/// ```
pub struct TestEnvironment {
    pool: ThreadPool,
    clock: ManualClock,
    /// Seeded single-thread mode: the PRNG state and the pseudo-worker of the test thread.
    seeded: Option<Seeded>,
    /// Live [`GlobalPoolGuard`]s of this environment (on any thread): the pool acts as the
    /// global pool for its own tasks while there is one.
    global_installs: AtomicUsize,
}

/// How many deadlines in a row may leave at least as many delayed tasks pending as before
/// until an unbounded fast-forward decides the work repeats forever. A repeating timer, a
/// `repeat` or a task that re-posts itself keeps the count from ever going down;
/// any finite batch of work makes it go down long before this many steps (a chain of more
/// than this many tasks, each posting the next, is the one thing it mistakes for a loop).
const RUNAWAY_DEADLINES: usize = 10_000;

thread_local! {
    /// The global-pool overrides installed on this thread, oldest first, by guard id: the
    /// newest one still installed is the override (guards may be dropped in any order).
    static INSTALLED: RefCell<Vec<(u64, Arc<Engine>)>> = const { RefCell::new(Vec::new()) };
}

static NEXT_GUARD_ID: AtomicU64 = AtomicU64::new(1);

struct Seeded {
    seed: u64,
    state: Mutex<u64>,
    me: Arc<WorkerShared>,
}

/// Configures a [`TestEnvironment`].
///
/// ```
/// let env = taskrunner::testing::TestEnvironment::builder().workers(4).build();
/// assert_eq!(env.pool().max_workers(), 4);
/// ```
#[derive(Debug)]
pub struct TestEnvironmentBuilder {
    workers: usize,
    seed: Option<u64>,
}

impl TestEnvironmentBuilder {
    /// Worker threads of the pool (default 2).
    ///
    /// ```
    /// let env = taskrunner::testing::TestEnvironment::builder().workers(1).build();
    /// assert_eq!(env.pool().max_workers(), 1);
    /// ```
    #[must_use]
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// **Seeded single-thread mode**: no worker threads; every task runs on the test's own
    /// thread inside `run_until_idle` / `fast_forward_*`, and whenever several sources are ready
    /// the next one is chosen by a PRNG seeded with `seed` among those of the highest priority.
    /// A sequence's FIFO order and the priority order still hold in every seed; everything else
    /// (which sequence goes first, which parallel task) is the seed's choice. The same seed
    /// replays the same interleaving exactly, and a failing test prints its seed. Loop over seeds
    /// to explore orderings of your code.
    ///
    /// Single-thread runners run on the test thread too (so their thread affinity holds).
    /// Joining an unfinished task's handle on the test thread would block forever, so it panics
    /// with advice instead.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use taskrunner::{PostTask, TaskTraits};
    /// use taskrunner::testing::TestEnvironment;
    /// let run = |seed| {
    ///     let env = TestEnvironment::builder().seed(seed).build();
    ///     let log = Arc::new(Mutex::new(Vec::new()));
    ///     for name in ["a", "b", "c"] {
    ///         let seq = env.pool().create_sequenced_task_runner(TaskTraits::default());
    ///         for i in 0..2 {
    ///             let log = log.clone();
    ///             seq.post_task(move || log.lock().unwrap().push(format!("{name}{i}"))).unwrap();
    ///         }
    ///     }
    ///     env.run_until_idle();
    ///     let v = log.lock().unwrap().clone();
    ///     v
    /// };
    /// assert_eq!(run(7), run(7)); // a seed replays exactly
    /// let v = run(7);
    /// for name in ["a", "b", "c"] { // every seed keeps each sequence's FIFO order
    ///     let p0 = v.iter().position(|x| *x == format!("{name}0")).unwrap();
    ///     let p1 = v.iter().position(|x| *x == format!("{name}1")).unwrap();
    ///     assert!(p0 < p1);
    /// }
    /// ```
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Builds the environment.
    ///
    /// ```
    /// let env = taskrunner::testing::TestEnvironment::builder().build();
    /// assert_eq!(env.pending_task_count(), 0);
    /// ```
    pub fn build(self) -> TestEnvironment {
        let clock = ManualClock::new();
        let pool = ThreadPool::builder()
            .max_workers(self.workers)
            .thread_name("taskrunner-test")
            .clock(clock.clone())
            .with_test_hooks()
            .build()
            .expect("a test pool with at least one worker is valid");
        let inner = pool.pool_ref().inner();
        inner.delay.set_manual();
        // This thread drives the environment: blocking joins here that could only finish once
        // it moves time (or, seeded, runs tasks) panic with advice instead of hanging.
        current::drive_test_env(1);
        let seeded = self.seed.map(|seed| {
            inner.group.set_manual();
            current::drive_seeded_env(1);
            Seeded {
                seed,
                // xorshift64* must not start at 0.
                state: Mutex::new(seed ^ 0x9E37_79B9_7F4A_7C15 | 1),
                me: Arc::new(WorkerShared::new(usize::MAX)),
            }
        });
        TestEnvironment {
            pool,
            clock,
            seeded,
            global_installs: AtomicUsize::new(0),
        }
    }
}

impl Default for TestEnvironment {
    fn default() -> Self {
        Self::new()
    }
}

impl TestEnvironment {
    /// An environment with a 2-worker pool on a fresh manual clock.
    ///
    /// See [`TestEnvironment`] for an example.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder (worker count).
    ///
    /// See [`TestEnvironmentBuilder`] for an example.
    pub fn builder() -> TestEnvironmentBuilder {
        TestEnvironmentBuilder {
            workers: 2,
            seed: None,
        }
    }

    /// The pool to post to (create runners from it).
    ///
    /// ```
    /// # use taskrunner::PostTask;
    /// let env = taskrunner::testing::TestEnvironment::new();
    /// let r = env.pool().create_task_runner(Default::default());
    /// let h = r.post_task_with_result(|| 1).unwrap();
    /// env.run_until_idle();
    /// assert!(h.is_finished());
    /// ```
    pub fn pool(&self) -> &ThreadPool {
        &self.pool
    }

    /// The environment's clock (shared with the pool).
    ///
    /// ```
    /// # use taskrunner::time::Clock;
    /// let env = taskrunner::testing::TestEnvironment::new();
    /// assert_eq!(env.clock().now(), env.now());
    /// ```
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }

    /// "Now" by the mock clock.
    ///
    /// ```
    /// let env = taskrunner::testing::TestEnvironment::new();
    /// let t0 = env.now();
    /// env.advance_clock(std::time::Duration::from_secs(1));
    /// assert_eq!(env.now() - t0, std::time::Duration::from_secs(1));
    /// ```
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    fn inner(&self) -> &Arc<Engine> {
        self.pool.pool_ref().inner()
    }

    #[track_caller]
    fn not_in_task(what: &str) {
        if current::in_task() {
            panic!(
                "TestEnvironment::{what} was called from inside a task of the pool: it waits for the pool to go \
                 idle, which cannot happen while this task runs. Call it from the test's own thread (post a \
                 reply to signal the test instead)."
            );
        }
    }

    /// Moves the clock forward by `d` and runs nothing: tasks that became due run at the next
    /// `run_until_idle` / `fast_forward_by`. A `d` too large for the clock (`Duration::MAX`)
    /// moves it as far as it can go, never panicking (see [`ManualClock::advance`]).
    ///
    /// ```
    /// # use taskrunner::PostTask;
    /// use std::time::Duration;
    /// let env = taskrunner::testing::TestEnvironment::new();
    /// let h = env.pool().post_delayed_task_with_result(Default::default(), Duration::from_secs(1), || 5).unwrap();
    /// env.advance_clock(Duration::from_secs(2));
    /// assert!(!h.is_finished()); // due, but not run yet
    /// env.run_until_idle();
    /// assert_eq!(h.join().unwrap(), 5);
    /// let before = env.now();
    /// env.advance_clock(Duration::MAX); // to the end of the clock's range
    /// assert!(env.now() > before);
    /// ```
    pub fn advance_clock(&self, d: Duration) {
        self.clock.advance(d);
    }

    /// Runs every task that is due now, and everything they post that is due now, until no
    /// task runs and nothing due is queued. Delayed tasks not yet due are untouched and time
    /// does not move.
    ///
    /// ```
    /// # use taskrunner::PostTask;
    /// use std::sync::{Arc, atomic::{AtomicU32, Ordering}};
    /// let env = taskrunner::testing::TestEnvironment::new();
    /// let seq = env.pool().create_sequenced_task_runner(Default::default());
    /// let n = Arc::new(AtomicU32::new(0));
    /// let (n2, s2) = (n.clone(), seq.clone());
    /// seq.post_task(move || {
    ///     n2.fetch_add(1, Ordering::SeqCst);
    ///     s2.post_task(move || { n2.fetch_add(1, Ordering::SeqCst); }).unwrap(); // posts more
    /// }).unwrap();
    /// env.run_until_idle();
    /// assert_eq!(n.load(Ordering::SeqCst), 2);
    /// ```
    #[track_caller]
    pub fn run_until_idle(&self) {
        Self::not_in_task("run_until_idle");
        if let Some(seeded) = &self.seeded {
            self.run_seeded(seeded, || false);
            return;
        }
        let inner = self.inner();
        let hooks = inner
            .test
            .as_ref()
            .expect("a test environment's pool counts its tasks");
        loop {
            Engine::forward_ripe_now(inner);
            hooks.wait_quiet();
            if !inner.dedicated_quiet() {
                std::thread::sleep(Duration::from_micros(50));
                continue;
            }
            let due = inner
                .delay
                .next_run_at()
                .is_some_and(|t| t <= self.clock.now());
            if !due && hooks.in_flight() == 0 && inner.dedicated_quiet() {
                return;
            }
        }
    }

    /// Installs this environment's pool as the global pool for the returned guard's scope: the
    /// crate's free functions ([`post_task`](crate::post_task),
    /// [`create_sequenced_task_runner`](crate::create_sequenced_task_runner), timers' and keyed
    /// runners' free functions, ...) called on this thread, or from tasks running on this
    /// environment's pool, use it instead of the process-wide pool. Other threads are not
    /// affected, so tests running in parallel do not see each other's environments.
    /// [`ThreadPool::global`](crate::ThreadPool::global) itself keeps returning the real global
    /// pool.
    ///
    /// Guards nest, and may be dropped in any order: on this thread the free functions use the
    /// environment of the most recently installed guard that is still alive, and the real
    /// global pool once none is. The guard is not `Send`: it changes what this thread sees,
    /// so it must be dropped here.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{PostTask, TaskTraits};
    /// use taskrunner::testing::TestEnvironment;
    /// // Code under test that uses the global pool:
    /// fn schedule_cleanup() -> taskrunner::TaskHandle<&'static str> {
    ///     let seq = taskrunner::create_sequenced_task_runner(TaskTraits::default());
    ///     seq.post_delayed_task_with_result(Duration::from_secs(600), || "cleaned").unwrap()
    /// }
    /// let env = TestEnvironment::new();
    /// let _global = env.install_as_global();
    /// let h = schedule_cleanup();
    /// env.fast_forward_by(Duration::from_secs(600)); // mock time drives the "global" work
    /// assert_eq!(h.join().unwrap(), "cleaned");
    ///
    /// // Nested environments, released out of order: the newest live guard wins.
    /// let (outer, inner) = (TestEnvironment::new(), TestEnvironment::new());
    /// let g_outer = outer.install_as_global();
    /// let g_inner = inner.install_as_global();
    /// drop(g_outer);
    /// taskrunner::post_delayed_task(TaskTraits::default(), Duration::from_secs(1), || ()).unwrap();
    /// assert_eq!((outer.pending_task_count(), inner.pending_task_count()), (0, 1));
    /// drop(g_inner);
    /// ```
    pub fn install_as_global(&self) -> GlobalPoolGuard<'_> {
        let inner = Arc::clone(self.inner());
        self.global_installs.fetch_add(1, AtomicOrdering::AcqRel);
        inner
            .acts_as_global
            .store(true, std::sync::atomic::Ordering::Release);
        let id = NEXT_GUARD_ID.fetch_add(1, AtomicOrdering::Relaxed);
        INSTALLED.with(|s| s.borrow_mut().push((id, Arc::clone(&inner))));
        drop(current::set_global_override(Some(inner)));
        GlobalPoolGuard {
            env: self,
            id,
            _this_thread: PhantomData,
        }
    }

    /// The seed of a seeded single-thread environment.
    ///
    /// ```
    /// let env = taskrunner::testing::TestEnvironment::builder().seed(42).build();
    /// assert_eq!(env.seed(), Some(42));
    /// assert_eq!(taskrunner::testing::TestEnvironment::new().seed(), None);
    /// ```
    pub fn seed(&self) -> Option<u64> {
        self.seeded.as_ref().map(|s| s.seed)
    }

    /// Seeded mode: runs ready work on this thread, one task at a time, picking among ready
    /// sources with the PRNG, until nothing is due (or `stop()` says so).
    fn run_seeded(&self, seeded: &Seeded, stop: impl Fn() -> bool) {
        let inner = self.inner();
        // Tasks run here: `SequencedTaskRunner::current()` needs this thread to know its pool.
        let previous = current::current_pool();
        current::set_thread_pool(Arc::clone(inner));
        loop {
            if stop() {
                break;
            }
            Engine::forward_ripe_now(inner);
            let r = {
                let mut x = seeded.state.lock();
                *x ^= *x >> 12;
                *x ^= *x << 25;
                *x ^= *x >> 27;
                x.wrapping_mul(0x2545_F491_4F6C_DD1D)
            };
            let mut queued = inner.group.take_all_queued();
            if queued.is_empty() {
                let due = inner
                    .delay
                    .next_run_at()
                    .is_some_and(|t| t <= self.clock.now());
                if due {
                    continue;
                }
                break;
            }
            let work = queued.remove(pick_seeded(&queued, r));
            inner.group.put_back(queued);
            Engine::run_work(inner, work, &seeded.me);
        }
        match previous {
            Some(p) => current::set_thread_pool(p),
            None => current::clear_thread_pool(),
        }
    }

    /// Runs every task that becomes due within the next `d`, in their natural order, and
    /// ends with the clock moved forward by exactly `d`. The clock moves from one deadline to
    /// the next only when the pool is idle, so follow-ups posted inside the window run inside
    /// it. `fast_forward_by(Duration::ZERO)` runs what is due without moving time.
    ///
    /// A `d` too large for the clock (`Duration::MAX`) runs every task that will ever be due and
    /// leaves the clock as far as it can go (see [`ManualClock`]); work
    /// that would never end there (a repeating timer) panics as in
    /// [`fast_forward_until_no_tasks_remain`](Self::fast_forward_until_no_tasks_remain).
    ///
    /// ```
    /// # use taskrunner::PostTask;
    /// use std::time::Duration;
    /// use std::sync::{Arc, Mutex};
    /// let env = taskrunner::testing::TestEnvironment::new();
    /// let seq = env.pool().create_sequenced_task_runner(Default::default());
    /// let log = Arc::new(Mutex::new(Vec::new()));
    /// let (l, s) = (log.clone(), seq.clone());
    /// seq.post_delayed_task(Duration::from_millis(10), move || {
    ///     l.lock().unwrap().push("first");
    ///     let l2 = l.clone();
    ///     s.post_delayed_task(Duration::from_millis(10), move || l2.lock().unwrap().push("follow-up")).unwrap();
    /// }).unwrap();
    /// env.fast_forward_by(Duration::from_millis(25));
    /// assert_eq!(*log.lock().unwrap(), vec!["first", "follow-up"]);
    ///
    /// let late = seq.post_delayed_task_with_result(Duration::from_secs(50 * 365 * 24 * 3600), || "50 years").unwrap();
    /// env.fast_forward_by(Duration::MAX); // no overflow: everything that will ever be due runs
    /// assert_eq!(late.join().unwrap(), "50 years");
    /// ```
    #[track_caller]
    pub fn fast_forward_by(&self, d: Duration) {
        Self::not_in_task("fast_forward_by");
        let latest = self.clock.latest();
        match Deadline::after(self.now(), d).instant() {
            Some(target) if target <= latest => {
                self.run_deadlines_until(target, None);
                self.clock.advance_to(target);
            }
            _ => {
                self.run_deadlines_until(
                    latest,
                    Some("fast_forward_by(a duration beyond the clock's range)"),
                );
                self.clock.advance_to(latest);
            }
        }
        self.run_until_idle();
    }

    /// Fast-forwards from deadline to deadline until no task remains (immediate or delayed).
    ///
    /// # Panics
    ///
    /// When the pool evidently never runs out of work: after
    /// 10 000 deadlines in a row that each left at least as many delayed tasks pending
    /// as before. A repeating timer, a [`repeat`](crate::time::repeat) or a task that re-posts itself
    /// does that forever; stop it first, or run a bounded window of it with
    /// [`fast_forward_by`](Self::fast_forward_by). (A chain of more than 10 000 tasks that each
    /// post the next one, then stop, is mistaken for such a loop: fast-forward it by a
    /// duration.) Tasks with no deadline (delayed by `Duration::MAX`) never run and do not count
    /// as remaining.
    ///
    /// ```
    /// # use taskrunner::PostTask;
    /// use std::time::Duration;
    /// let env = taskrunner::testing::TestEnvironment::new();
    /// let h = env.pool().post_delayed_task_with_result(Default::default(), Duration::from_secs(86_400), || "tomorrow").unwrap();
    /// env.fast_forward_until_no_tasks_remain();
    /// assert_eq!(h.join().unwrap(), "tomorrow");
    /// assert_eq!(env.pending_task_count(), 0);
    ///
    /// // A repeating task never lets the pool run out of work: a prompt panic, with advice.
    /// let ticks = taskrunner::time::repeat(env.pool(), Duration::from_millis(1), taskrunner::time::RepeatMode::FixedRate, || ()).unwrap();
    /// let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| env.fast_forward_until_no_tasks_remain()));
    /// assert!(caught.is_err());
    /// ticks.cancel();
    /// ```
    #[track_caller]
    pub fn fast_forward_until_no_tasks_remain(&self) {
        Self::not_in_task("fast_forward_until_no_tasks_remain");
        self.run_deadlines_until(
            self.clock.latest(),
            Some("fast_forward_until_no_tasks_remain"),
        );
    }

    /// Runs what is due, then moves the clock to the next deadline if it is at most `target`,
    /// and again, until no deadline is left up to `target`. With `runaway: Some(name)` (the
    /// fast-forwards without an end in time) panics once work evidently repeats forever (see
    /// [`RUNAWAY_DEADLINES`]).
    #[track_caller]
    fn run_deadlines_until(&self, target: Instant, runaway: Option<&str>) {
        let mut stalled = 0usize;
        let mut last_pending = usize::MAX;
        loop {
            self.run_until_idle();
            let inner = self.inner();
            if let Some(name) = runaway {
                let pending = inner.delay.len();
                if pending < last_pending {
                    stalled = 0;
                } else {
                    stalled += 1;
                }
                last_pending = pending;
                if stalled >= RUNAWAY_DEADLINES {
                    panic!(
                        "TestEnvironment::{name}: tasks keep coming: {RUNAWAY_DEADLINES} deadlines in a row each left \
                         {pending} or more delayed tasks pending, so a repeating timer, a repeat or a \
                         task that re-posts itself is still running and there will always be another deadline. \
                         Stop it first, or run a bounded window of it with fast_forward_by(duration)."
                    );
                }
            }
            match inner.delay.next_run_at() {
                Some(t) if t <= target => self.clock.advance_to(t),
                _ => return,
            }
        }
    }

    /// How long until the next delayed task is due (`Some(Duration::ZERO)` if one is due
    /// now), or `None` if no delayed task is pending (or none will ever be due: those delayed
    /// by a duration too large to represent).
    ///
    /// ```
    /// # use taskrunner::PostTask;
    /// use std::time::Duration;
    /// let env = taskrunner::testing::TestEnvironment::new();
    /// assert_eq!(env.next_pending_delay(), None);
    /// env.pool().post_delayed_task(Default::default(), Duration::from_millis(30), || ()).unwrap();
    /// assert_eq!(env.next_pending_delay(), Some(Duration::from_millis(30)));
    /// ```
    pub fn next_pending_delay(&self) -> Option<Duration> {
        self.inner()
            .delay
            .next_run_at()
            .filter(|t| *t <= self.clock.latest()) // no deadline: never due
            .map(|t| t.saturating_duration_since(self.now()))
    }

    /// Tasks not yet run: delayed tasks pending plus tasks posted and not yet run (dedicated
    /// threads' queues not included). A snapshot; exact when the pool is idle, e.g. after
    /// [`run_until_idle`](Self::run_until_idle), when it is the number of delayed tasks.
    ///
    /// ```
    /// # use taskrunner::PostTask;
    /// use std::time::Duration;
    /// let env = taskrunner::testing::TestEnvironment::new();
    /// env.pool().post_delayed_task(Default::default(), Duration::from_secs(1), || ()).unwrap();
    /// env.pool().post_delayed_task(Default::default(), Duration::from_secs(2), || ()).unwrap();
    /// env.run_until_idle();
    /// assert_eq!(env.pending_task_count(), 2);
    /// env.fast_forward_by(Duration::from_secs(1));
    /// assert_eq!(env.pending_task_count(), 1);
    /// ```
    pub fn pending_task_count(&self) -> usize {
        let inner = self.inner();
        inner.delay.len() + inner.test.as_ref().map_or(0, |t| t.in_flight())
    }
}

/// Keeps a [`TestEnvironment`] installed as the global pool; see
/// [`TestEnvironment::install_as_global`]. Dropping it uninstalls this environment for this
/// thread: the free functions then use the newest environment still installed here (guards may
/// be dropped in any order), or the real global pool. Not `Send`: drop it on the thread that
/// installed it.
///
/// ```
/// use std::time::Duration;
/// let env = taskrunner::testing::TestEnvironment::new();
/// let guard = env.install_as_global();
/// taskrunner::post_delayed_task(Default::default(), Duration::from_secs(1), || ()).unwrap();
/// assert_eq!(env.pending_task_count(), 1); // went to env's pool
/// drop(guard); // free functions use the real global pool again
/// taskrunner::post_task(Default::default(), || ()).unwrap();
/// assert_eq!(env.pending_task_count(), 1);
/// ```
#[must_use = "the environment is the global pool only while the guard lives"]
pub struct GlobalPoolGuard<'a> {
    env: &'a TestEnvironment,
    id: u64,
    /// The override is this thread's: the guard must be dropped here.
    _this_thread: PhantomData<*const ()>,
}

impl Drop for GlobalPoolGuard<'_> {
    fn drop(&mut self) {
        let top = INSTALLED.with(|s| {
            let mut s = s.borrow_mut();
            if let Some(pos) = s.iter().position(|(id, _)| *id == self.id) {
                s.remove(pos);
            }
            s.last().map(|(_, p)| Arc::clone(p))
        });
        drop(current::set_global_override(top));
        if self
            .env
            .global_installs
            .fetch_sub(1, AtomicOrdering::AcqRel)
            == 1
        {
            self.env
                .inner()
                .acts_as_global
                .store(false, std::sync::atomic::Ordering::Release);
        }
    }
}

impl fmt::Debug for GlobalPoolGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GlobalPoolGuard").finish_non_exhaustive()
    }
}

impl Drop for TestEnvironment {
    /// Shuts the pool down (Chromium's contract: queued skip-on-shutdown work is dropped,
    /// block-shutdown work runs), with a generous timeout so that a wedged test fails instead of
    /// hanging. A seeded environment runs what shutdown still needs on this thread, and prints
    /// its seed if the test is panicking, so the failing interleaving can be replayed.
    fn drop(&mut self) {
        current::drive_test_env(-1);
        if let Some(seeded) = self.seeded.take() {
            current::drive_seeded_env(-1);
            if std::thread::panicking() {
                eprintln!(
                    "TestEnvironment seed: {} (replay with TestEnvironment::builder().seed({}))",
                    seeded.seed, seeded.seed
                );
                return;
            }
            let inner = Arc::clone(self.inner());
            Engine::start_shutdown_nowait(&inner);
            self.run_seeded(&seeded, || inner.tracker.shutdown_completed());
            return;
        }
        if !std::thread::panicking() && !current::in_task() {
            let _ = self.pool.shutdown_timeout(Duration::from_secs(30));
        }
    }
}

impl fmt::Debug for TestEnvironment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestEnvironment")
            .field("clock", &self.clock)
            .field("pool", &self.pool)
            .finish()
    }
}

/// Seeded mode: the entry to run, chosen by `r` uniformly among the *ready sources* of the
/// highest priority queued: one-off tasks, and for each sequence the entry whose turn it is
/// (a sequence is one source, so its FIFO order is kept; priorities still dominate).
fn pick_seeded(queued: &[Work], r: u64) -> usize {
    let top = queued
        .iter()
        .map(Work::priority)
        .max()
        .expect("pick_seeded needs at least one entry");
    let eligible: Vec<usize> = (0..queued.len())
        .filter(|&i| {
            let w = &queued[i];
            w.priority() == top
                && w.seq
                    .as_ref()
                    .is_none_or(|s| s.is_parallel() || s.is_turn(w))
        })
        .collect();
    if eligible.is_empty() {
        // Cannot happen (the next entry of a sequence is always queued in seeded mode); the
        // oldest entry of the top priority is then as good as any.
        return (0..queued.len())
            .find(|&i| queued[i].priority() == top)
            .unwrap_or(0);
    }
    eligible[(r % eligible.len() as u64) as usize]
}
