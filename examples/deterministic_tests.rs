//! Testing your own code with `TestEnvironment`: two small components built on taskrunner
//! (a debounce and a retry loop with exponential backoff) and tests for them that say exactly
//! when each thing happens by the mock clock. Nothing sleeps; hours of simulated time take
//! milliseconds; every run prints the same timeline. One test also loops over the seeded
//! single-thread mode to check the debounce in many interleavings of its callers.
//!
//! ```text
//! cargo run --example deterministic_tests --features test-util
//! ```
//!
//! The components (first half of the file) are ordinary production code: they take a
//! `SequencedTaskRunner` and know nothing about tests. The tests (second half) are plain
//! functions called from `main` so that the example can print what happened; in a crate of
//! your own they would be `#[test]` functions in `tests/`, with `taskrunner` as a
//! dev-dependency with the `test-util` feature. The guide is `docs/testing.md`.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use taskrunner::testing::TestEnvironment;
use taskrunner::time::{Clock, RetainingOneShotTimer};
use taskrunner::PostTask;
use taskrunner::{PostRefusal, SequencedTaskRunner, TaskTraits};

// ---------------------------------------------------------------------------------------------
// Component 1: a debounce.
// ---------------------------------------------------------------------------------------------

/// Coalesces bursts of calls: `action` runs once, on the debouncer's sequence, with every value
/// passed to [`call`](Debouncer::call) since its last run, after `quiet` has passed with no
/// call. A steady stream of calls closer together than `quiet` keeps postponing it.
///
/// Dropping the debouncer cancels a pending run; values not yet delivered are dropped.
#[derive(Debug)]
pub struct Debouncer<T> {
    pending: Arc<Mutex<Vec<T>>>,
    timer: RetainingOneShotTimer,
}

impl<T: Send + 'static> Debouncer<T> {
    /// A debouncer whose `action` runs on `runner`'s sequence. Refused if the pool is shutting
    /// down.
    pub fn new<A>(
        runner: &SequencedTaskRunner,
        quiet: Duration,
        mut action: A,
    ) -> Result<Self, PostRefusal>
    where
        A: FnMut(Vec<T>) + Send + 'static,
    {
        let pending = Arc::new(Mutex::new(Vec::new()));
        let timer = RetainingOneShotTimer::new(runner);
        let p = pending.clone();
        timer
            .start(quiet, move || {
                let batch = std::mem::take(&mut *p.lock().unwrap());
                // A call that raced with the previous run may have re-armed the timer after
                // that run took its value: then there is nothing left to deliver.
                if !batch.is_empty() {
                    action(batch);
                }
            })
            .map_err(|refused| refused.reason())?;
        // Install the task once, disarmed: a retaining timer keeps its task across `stop`, so
        // each `call` is a `reset` (same task, same delay, counted from the call).
        timer.stop();
        Ok(Debouncer { pending, timer })
    }

    /// Records `value` and restarts the quiet period. Callable from any thread. `false` if
    /// the pool has shut down (the value is then never delivered).
    pub fn call(&self, value: T) -> bool {
        self.pending.lock().unwrap().push(value);
        self.timer.reset()
    }
}

// ---------------------------------------------------------------------------------------------
// Component 2: a retry loop with exponential backoff.
// ---------------------------------------------------------------------------------------------

/// How [`retry_with_backoff`] spaces its attempts.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    /// The wait after the first failure.
    pub initial: Duration,
    /// Each further wait is the previous one times this.
    pub factor: u32,
    /// No wait is longer than this.
    pub max_delay: Duration,
    /// Attempts in all (the first one included) before giving up.
    pub max_attempts: u32,
}

impl Backoff {
    /// The wait after failed attempt number `attempt` (1-based):
    /// `initial * factor^(attempt - 1)`, capped at `max_delay`.
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let mut d = self.initial;
        for _ in 1..attempt {
            if d >= self.max_delay {
                break;
            }
            d = d.saturating_mul(self.factor);
        }
        d.min(self.max_delay)
    }
}

/// Why [`retry_with_backoff`] did not produce a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetryError<E> {
    /// Every attempt failed; `last` is the last attempt's error.
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// The error of the last attempt.
        last: E,
    },
    /// The pool shut down while a retry was waiting (its delayed task was dropped).
    Abandoned {
        /// Attempts made before that.
        attempts: u32,
    },
}

/// Runs `op` on `runner`'s sequence until it returns `Ok`, waiting [`Backoff::delay_after`]
/// between attempts, and reports the outcome to `done` (exactly once). `op` gets the attempt
/// number (1-based). The first attempt is posted now. `false` if the pool refused it (`done`
/// is then called with `Abandoned { attempts: 0 }`).
///
/// The retry state moves from one task to the next: no lock, no shared flag. If a waiting
/// retry is dropped (shutdown), the state's `Drop` reports `Abandoned`.
pub fn retry_with_backoff<T, E, Op, Done>(
    runner: &SequencedTaskRunner,
    policy: Backoff,
    op: Op,
    done: Done,
) -> bool
where
    T: 'static,
    E: 'static,
    Op: FnMut(u32) -> Result<T, E> + Send + 'static,
    Done: FnOnce(Result<T, RetryError<E>>) + Send + 'static,
{
    let state = Retry {
        runner: runner.clone(),
        policy,
        op,
        done: Some(Box::new(done)),
        attempts: 0,
    };
    runner.post_task(move || state.attempt()).is_ok()
}

type DoneFn<T, E> = Box<dyn FnOnce(Result<T, RetryError<E>>) + Send>;

struct Retry<T, E, Op> {
    runner: SequencedTaskRunner,
    policy: Backoff,
    op: Op,
    done: Option<DoneFn<T, E>>,
    attempts: u32,
}

impl<T, E, Op> Retry<T, E, Op>
where
    T: 'static,
    E: 'static,
    Op: FnMut(u32) -> Result<T, E> + Send + 'static,
{
    fn attempt(mut self) {
        self.attempts += 1;
        match (self.op)(self.attempts) {
            Ok(value) => self.finish(Ok(value)),
            Err(last) if self.attempts >= self.policy.max_attempts => {
                let attempts = self.attempts;
                self.finish(Err(RetryError::GaveUp { attempts, last }));
            }
            Err(_) => {
                let delay = self.policy.delay_after(self.attempts);
                let runner = self.runner.clone();
                // If the post is refused, the error holds the closure that holds `self`:
                // dropping it reports `Abandoned`.
                let _ = runner.post_delayed_task(delay, move || self.attempt());
            }
        }
    }

    fn finish(mut self, outcome: Result<T, RetryError<E>>) {
        if let Some(done) = self.done.take() {
            done(outcome);
        }
    }
}

impl<T, E, Op> Drop for Retry<T, E, Op> {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            done(Err(RetryError::Abandoned {
                attempts: self.attempts,
            }));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The tests. Each builds its own TestEnvironment: a real 2-worker pool on a manual clock.
// ---------------------------------------------------------------------------------------------

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A shared event log the tests assert on.
type Log<T> = Arc<Mutex<Vec<T>>>;

fn new_log<T>() -> Log<T> {
    Arc::new(Mutex::new(Vec::new()))
}

fn snapshot<T: Clone>(log: &Log<T>) -> Vec<T> {
    log.lock().unwrap().clone()
}

/// Milliseconds from `t0` to `clock`'s now: the mock time at which something happened.
fn since(clock: &impl Clock, t0: Instant) -> u64 {
    (clock.now() - t0).as_millis() as u64
}

/// A burst of calls 100 ms apart fires once, exactly 300 ms after the last call, with every
/// value of the burst.
fn debounce_fires_once_300ms_after_the_last_call() {
    let env = TestEnvironment::new();
    let seq = env
        .pool()
        .create_sequenced_task_runner(TaskTraits::default());
    let t0 = env.now();
    let fired: Log<(u64, Vec<u32>)> = new_log();
    let (f, clock) = (fired.clone(), env.clock().clone());
    let debouncer = Debouncer::new(&seq, ms(300), move |batch| {
        f.lock().unwrap().push((since(&clock, t0), batch));
    })
    .unwrap();

    for i in 0..5 {
        // Calls at t = 0, 100, 200, 300, 400.
        assert!(debouncer.call(i));
        assert_eq!(
            env.pending_task_count(),
            1,
            "each call re-arms the same timer: one pending run, not one per call"
        );
        env.fast_forward_by(ms(100));
    }
    // t = 500: 100 ms after the last call. Nothing yet, and the run is due at t = 700.
    assert!(snapshot(&fired).is_empty());
    assert_eq!(env.next_pending_delay(), Some(ms(200)));

    env.fast_forward_by(ms(199));
    assert!(snapshot(&fired).is_empty(), "not a millisecond early");
    env.fast_forward_by(ms(1));
    assert_eq!(snapshot(&fired), vec![(700, vec![0, 1, 2, 3, 4])]);

    env.fast_forward_by(Duration::from_secs(3600));
    assert_eq!(snapshot(&fired).len(), 1, "fired exactly once");
    assert_eq!(env.pending_task_count(), 0);
    println!(
        "[debounce] calls at t=0,100,200,300,400 ms -> one run at t=700 ms with {:?}",
        snapshot(&fired)[0].1
    );
}

/// Calls 299 ms apart never leave 300 ms of quiet, so nothing fires while they go on; a later
/// burst is a separate run. Calls from several threads at the same instant coalesce too.
fn debounce_is_postponed_by_a_steady_stream_and_coalesces_threads() {
    let env = TestEnvironment::new();
    let seq = env
        .pool()
        .create_sequenced_task_runner(TaskTraits::default());
    let t0 = env.now();
    let fired: Log<(u64, Vec<u32>)> = new_log();
    let (f, clock) = (fired.clone(), env.clock().clone());
    let debouncer = Arc::new(
        Debouncer::new(&seq, ms(300), move |mut batch: Vec<u32>| {
            batch.sort_unstable(); // threads call in any order; the test asserts on the set
            f.lock().unwrap().push((since(&clock, t0), batch));
        })
        .unwrap(),
    );

    // Ten calls, 299 ms apart: t = 0, 299, ..., 2691.
    for i in 0..10 {
        debouncer.call(i);
        env.fast_forward_by(ms(299));
    }
    assert!(
        snapshot(&fired).is_empty(),
        "2990 ms of calls, never 300 ms of quiet"
    );
    env.fast_forward_by(ms(1)); // t = 2991 = 2691 + 300
    assert_eq!(snapshot(&fired), vec![(2991, (0..10).collect())]);

    // A second burst, from four threads at once (mock time stands still while they call).
    env.advance_clock(ms(1009)); // t = 4000
    std::thread::scope(|s| {
        for thread in 0..4u32 {
            let d = debouncer.clone();
            s.spawn(move || {
                for i in 0..25 {
                    d.call(100 + thread * 25 + i);
                }
            });
        }
    });
    env.fast_forward_until_no_tasks_remain();
    let runs = snapshot(&fired);
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[1], (4300, (100..200).collect()));
    println!(
        "[debounce] 10 calls 299 ms apart -> one run at t=2991 ms; 100 calls from 4 threads at \
         t=4000 ms -> one run at t=4300 ms with all 100 values"
    );
}

/// One seeded run: three "client" sequences each call the debouncer three times at t = 0; the
/// seed decides how their calls interleave. Returns the debouncer's runs.
fn seeded_debounce_run(seed: u64) -> Vec<(u64, Vec<u32>)> {
    let env = TestEnvironment::builder().seed(seed).build();
    let own = env
        .pool()
        .create_sequenced_task_runner(TaskTraits::default());
    let t0 = env.now();
    let fired: Log<(u64, Vec<u32>)> = new_log();
    let (f, clock) = (fired.clone(), env.clock().clone());
    let debouncer = Arc::new(
        Debouncer::new(&own, ms(300), move |batch| {
            f.lock().unwrap().push((since(&clock, t0), batch));
        })
        .unwrap(),
    );
    for client in 0..3u32 {
        let seq = env
            .pool()
            .create_sequenced_task_runner(TaskTraits::default());
        for i in 0..3 {
            let d = debouncer.clone();
            seq.post_task(move || {
                d.call(client * 10 + i);
            })
            .unwrap();
        }
    }
    env.fast_forward_until_no_tasks_remain();
    snapshot(&fired)
}

/// Seeded mode: every task runs on the test's thread and a seeded PRNG picks which ready
/// sequence goes next, so each seed is one interleaving of the clients' calls. The debounce
/// must coalesce them in every seed; a seed replays exactly (and a failing test prints its
/// seed: the environment does that when dropped during a panic).
fn debounce_coalesces_in_every_seeded_interleaving() {
    let mut orders = std::collections::HashSet::new();
    for seed in 0..20 {
        let runs = seeded_debounce_run(seed);
        assert_eq!(runs.len(), 1, "seed {seed}: one run");
        let (at, batch) = &runs[0];
        assert_eq!(*at, 300, "seed {seed}: 300 ms after the calls");
        for client in 0..3 {
            let mine: Vec<u32> = batch.iter().copied().filter(|v| v / 10 == client).collect();
            let want: Vec<u32> = (0..3).map(|i| client * 10 + i).collect();
            assert_eq!(
                mine, want,
                "seed {seed}: each client's calls in its own order"
            );
        }
        assert_eq!(
            seeded_debounce_run(seed),
            runs,
            "seed {seed} replays exactly"
        );
        orders.insert(batch.clone());
    }
    assert!(
        orders.len() > 1,
        "the seeds explored different interleavings"
    );
    println!(
        "[debounce, seeded] 9 calls from 3 sequences at t=0: one run at t=300 ms in each of 20 \
         seeds, {} different call orders, each seed replayed exactly",
        orders.len()
    );
}

/// A flaky operation that fails three times: attempts at t = 0, 100, 300, 700 (waits of 100,
/// 200, 400 ms), success reported at t = 700. Checked deadline by deadline.
fn retry_backs_off_exponentially_until_success() {
    let env = TestEnvironment::new();
    let seq = env
        .pool()
        .create_sequenced_task_runner(TaskTraits::default());
    let t0 = env.now();
    let attempts: Log<u64> = new_log();
    let outcome: Log<(u64, Result<&str, RetryError<String>>)> = new_log();
    let policy = Backoff {
        initial: ms(100),
        factor: 2,
        max_delay: Duration::from_secs(60),
        max_attempts: 10,
    };
    let (a, c1) = (attempts.clone(), env.clock().clone());
    let (o, c2) = (outcome.clone(), env.clock().clone());
    assert!(retry_with_backoff(
        &seq,
        policy,
        move |n| {
            a.lock().unwrap().push(since(&c1, t0));
            if n < 4 {
                Err(format!("attempt {n}: connection refused"))
            } else {
                Ok("connected")
            }
        },
        move |r| o.lock().unwrap().push((since(&c2, t0), r)),
    ));

    env.run_until_idle(); // the first attempt is an immediate task: it runs, time stays at 0
    assert_eq!(snapshot(&attempts), vec![0]);
    for (wait, want) in [(100, vec![0, 100]), (200, vec![0, 100, 300])] {
        assert_eq!(env.next_pending_delay(), Some(ms(wait)));
        env.fast_forward_by(ms(wait - 1));
        assert_eq!(snapshot(&attempts).len(), want.len() - 1, "not early");
        env.fast_forward_by(ms(1));
        assert_eq!(snapshot(&attempts), want);
    }
    assert!(snapshot(&outcome).is_empty());
    env.fast_forward_until_no_tasks_remain();
    assert_eq!(snapshot(&attempts), vec![0, 100, 300, 700]);
    assert_eq!(snapshot(&outcome), vec![(700, Ok("connected"))]);
    assert_eq!(
        env.now() - t0,
        ms(700),
        "ran until the last task, no further"
    );
    println!(
        "[retry] attempts at t={:?} ms, success at t=700 ms",
        snapshot(&attempts)
    );
}

/// An operation that always fails, with waits capped at 1 s: attempts at 0, 100, 300, 700,
/// 1500, 2500, 3500; it gives up after the 7th and leaves nothing pending.
fn retry_caps_its_wait_and_gives_up() {
    let env = TestEnvironment::new();
    let seq = env
        .pool()
        .create_sequenced_task_runner(TaskTraits::default());
    let t0 = env.now();
    let attempts: Log<u64> = new_log();
    let outcome: Log<(u64, Result<(), RetryError<u32>>)> = new_log();
    let policy = Backoff {
        initial: ms(100),
        factor: 2,
        max_delay: ms(1000),
        max_attempts: 7,
    };
    let (a, c1) = (attempts.clone(), env.clock().clone());
    let (o, c2) = (outcome.clone(), env.clock().clone());
    retry_with_backoff(
        &seq,
        policy,
        move |n| {
            a.lock().unwrap().push(since(&c1, t0));
            Err::<(), u32>(500 + n) // "HTTP 50x"
        },
        move |r| o.lock().unwrap().push((since(&c2, t0), r)),
    );

    env.fast_forward_until_no_tasks_remain();
    assert_eq!(
        snapshot(&attempts),
        vec![0, 100, 300, 700, 1500, 2500, 3500]
    );
    assert_eq!(
        snapshot(&outcome),
        vec![(
            3500,
            Err(RetryError::GaveUp {
                attempts: 7,
                last: 507
            })
        )]
    );
    assert_eq!(env.pending_task_count(), 0);
    println!(
        "[retry] always failing, waits capped at 1 s: attempts at t={:?} ms, gave up at t=3500 ms",
        snapshot(&attempts)
    );
}

/// Shutdown while a retry waits: the delayed attempt is dropped (it never runs), and the
/// component reports `Abandoned`; no mock time passes.
fn retry_reports_abandoned_when_the_pool_shuts_down() {
    let env = TestEnvironment::new();
    let seq = env
        .pool()
        .create_sequenced_task_runner(TaskTraits::default());
    let attempts: Log<u32> = new_log();
    let outcome: Log<Result<(), RetryError<&str>>> = new_log();
    let policy = Backoff {
        initial: ms(100),
        factor: 2,
        max_delay: Duration::from_secs(60),
        max_attempts: 5,
    };
    let (a, o) = (attempts.clone(), outcome.clone());
    retry_with_backoff(
        &seq,
        policy,
        move |n| {
            a.lock().unwrap().push(n);
            Err("busy")
        },
        move |r| o.lock().unwrap().push(r),
    );
    env.fast_forward_by(ms(100)); // attempts 1 (t=0) and 2 (t=100); attempt 3 waits for t=300
    assert_eq!(snapshot(&attempts), vec![1, 2]);
    assert_eq!(env.pending_task_count(), 1);

    env.pool().shutdown();
    assert_eq!(
        snapshot(&attempts),
        vec![1, 2],
        "the waiting attempt never ran"
    );
    assert_eq!(
        snapshot(&outcome),
        vec![Err(RetryError::Abandoned { attempts: 2 })]
    );
    println!("[retry] shutdown during the 200 ms wait -> Abandoned after 2 attempts");
}

/// Misuse: the environment's waiting methods belong to the test's thread. From inside a task
/// they panic (the task's handle reports it) with advice, instead of waiting forever for the
/// pool to go idle.
fn waiting_from_inside_a_task_panics_with_advice() {
    let env = Arc::new(TestEnvironment::new());
    let e = env.clone();
    // The pool catches the task's panic; silence the default hook's report of it meanwhile.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let handle = env
        .pool()
        .post_task_with_result(TaskTraits::default(), move || e.run_until_idle())
        .unwrap();
    env.run_until_idle();
    std::panic::set_hook(hook);
    let err = handle.join().unwrap_err();
    let msg = err.panic_message().unwrap();
    assert!(msg.contains("from inside a task"), "{msg}");
    println!("[misuse] run_until_idle inside a task panicked: {msg}");
}

fn main() {
    let real = Instant::now();
    debounce_fires_once_300ms_after_the_last_call();
    debounce_is_postponed_by_a_steady_stream_and_coalesces_threads();
    debounce_coalesces_in_every_seeded_interleaving();
    retry_backs_off_exponentially_until_success();
    retry_caps_its_wait_and_gives_up();
    retry_reports_abandoned_when_the_pool_shuts_down();
    waiting_from_inside_a_task_panics_with_advice();
    println!(
        "all assertions held: over an hour of mock time in {:?} of real time, nothing slept",
        real.elapsed()
    );
}
