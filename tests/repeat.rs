//! `repeat` / `Repeat` / `RepeatHandle`: both schedules under a mock clock (runs that take time
//! advance the clock from inside the run), and every way a repetition ends — cancel, its
//! token, `Break`, shutdown, a poisoned sequence — with drop counters proving the closure is
//! freed. Real threads only where a run must block or race.
#![cfg(feature = "test-util")]
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::ops::ControlFlow;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskrunner::cancel::{CancellationToken, TaskContext};
use taskrunner::testing::{ManualClock, TestEnvironment};
use taskrunner::time::{repeat, Clock, Repeat, RepeatHandle, RepeatMode};
use taskrunner::{PanicPolicy, PostTask, TaskTraits, ThreadPool};

/// Turns a hang into a failure; never a timing assertion.
const HANG: Duration = Duration::from_secs(20);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Counts drops of the values it hands out (to prove a closure was freed).
#[derive(Clone, Default)]
struct Drops(Arc<AtomicUsize>);

struct DropToken(Arc<AtomicUsize>);

impl Drop for DropToken {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Drops {
    fn token(&self) -> DropToken {
        DropToken(self.0.clone())
    }
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Waits for the repetition on another thread, failing (not hanging) after `HANG`.
fn wait_or_fail(h: &RepeatHandle) {
    assert!(h.wait_timeout(HANG), "RepeatHandle::wait hung");
}

/// A closure that records each run's start (ms since `t0`, mock clock) and then "takes"
/// `cost(run index)` of mock time by advancing the clock inside the run.
fn recorder(
    clock: ManualClock,
    costs: Vec<u64>,
) -> (impl FnMut() + Send + 'static, Arc<Mutex<Vec<u64>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let t0 = clock.now();
    let mut i = 0;
    let f = move || {
        let started = (clock.now() - t0).as_millis() as u64;
        l.lock().unwrap().push(started);
        let cost = costs.get(i).copied().unwrap_or(0);
        i += 1;
        if cost > 0 {
            clock.advance(ms(cost));
        }
    };
    (f, log)
}

#[test]
fn fixed_delay_spaces_runs_from_the_end_of_the_previous_run() {
    let env = TestEnvironment::new();
    let seq = env
        .pool()
        .create_sequenced_task_runner(TaskTraits::default());
    let (f, log) = recorder(env.clock().clone(), vec![30, 30, 30, 30]);
    let h = repeat(&seq, ms(100), RepeatMode::FixedDelay, f).unwrap();
    env.fast_forward_by(ms(400));
    // First run one interval after the start; then 100 ms after each 30 ms run ended.
    assert_eq!(*log.lock().unwrap(), vec![100, 230, 360]);
    assert_eq!(h.runs(), 3);
    assert!(h.cancel());
}

#[test]
fn fixed_rate_keeps_the_schedule_when_runs_take_time() {
    let env = TestEnvironment::new();
    let (f, log) = recorder(env.clock().clone(), vec![30, 30, 30, 30]);
    let h = repeat(env.pool(), ms(100), RepeatMode::FixedRate, f).unwrap();
    env.fast_forward_by(ms(450));
    assert_eq!(*log.lock().unwrap(), vec![100, 200, 300, 400]);
    assert!(h.cancel());
}

#[test]
fn fixed_rate_skips_missed_ticks_instead_of_bursting() {
    let env = TestEnvironment::new();
    // Run 1 (at 100) ends exactly on tick 200: that tick still runs, at once.
    // Run 2 (at 200) takes 250 ms, overrunning ticks 300 and 400: both skipped, next at 500.
    let (f, log) = recorder(env.clock().clone(), vec![100, 250, 0, 0]);
    let h = repeat(env.pool(), ms(100), RepeatMode::FixedRate, f).unwrap();
    env.fast_forward_by(ms(650));
    assert_eq!(*log.lock().unwrap(), vec![100, 200, 500, 600]);
    assert!(h.cancel());
}

#[test]
fn initial_delay_zero_runs_at_once_and_rate_ticks_count_from_the_first_run() {
    let env = TestEnvironment::new();
    let (f, log) = recorder(env.clock().clone(), vec![]);
    let h = Repeat::new(ms(100), RepeatMode::FixedRate)
        .initial_delay(ms(0))
        .start(env.pool(), f)
        .unwrap();
    env.run_until_idle();
    assert_eq!(*log.lock().unwrap(), vec![0]);
    env.fast_forward_by(ms(250));
    assert_eq!(*log.lock().unwrap(), vec![0, 100, 200]);

    let (f, log2) = recorder(env.clock().clone(), vec![]);
    let t = Repeat::new(ms(100), RepeatMode::FixedDelay)
        .initial_delay(ms(30))
        .start(env.pool(), f)
        .unwrap();
    env.fast_forward_by(ms(250));
    assert_eq!(*log2.lock().unwrap(), vec![30, 130, 230]);
    h.cancel();
    t.cancel();
}

#[test]
fn repeat_cancel_really_stops_the_repetition() {
    // Cancel really stops the repetition, and a wait afterwards returns.
    let env = TestEnvironment::new();
    let drops = Drops::default();
    let token = drops.token();
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let h = repeat(env.pool(), ms(10), RepeatMode::FixedRate, move || {
        token_keep(&token);
        r.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    env.fast_forward_by(ms(35));
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    assert!(h.cancel());
    assert!(!h.is_running());
    assert_eq!(
        drops.count(),
        1,
        "the closure is dropped when cancel returns"
    );
    env.fast_forward_by(Duration::from_secs(3600));
    assert_eq!(runs.load(Ordering::SeqCst), 3, "no run after cancel");
    assert_eq!(h.runs(), 3);
    wait_or_fail(&h); // a wait after the cancel returns
    assert!(h.is_finished());
    assert!(!h.cancel(), "already stopped");
}

fn token_keep(_t: &DropToken) {}

#[test]
fn wait_after_cancel_returns_once_the_run_in_progress_ends() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let drops = Drops::default();
    let token = drops.token();
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let h = Repeat::new(Duration::from_secs(3600), RepeatMode::FixedDelay)
        .initial_delay(Duration::ZERO)
        .start(&pool, move || {
            token_keep(&token);
            started_tx.send(()).unwrap();
            release_rx.lock().unwrap().recv_timeout(HANG).unwrap();
        })
        .unwrap();
    started_rx.recv_timeout(HANG).unwrap();
    assert!(h.cancel());
    assert!(!h.is_running());
    assert!(!h.is_finished(), "a run is still in progress");
    assert_eq!(drops.count(), 0, "the running call still owns the closure");
    assert!(
        !h.wait_timeout(ms(20)),
        "wait must wait for the run in progress"
    );
    let h = Arc::new(h);
    let h2 = h.clone();
    let waiter = std::thread::spawn(move || h2.wait_timeout(HANG));
    release_tx.send(()).unwrap();
    assert!(waiter.join().unwrap(), "wait returned after the run ended");
    assert!(h.is_finished());
    assert_eq!(drops.count(), 1, "dropped right after the run ended");
    assert_eq!(h.runs(), 1);
    pool.shutdown();
}

#[test]
fn cancelling_the_parent_token_stops_it() {
    let env = TestEnvironment::new();
    let parent = CancellationToken::new();
    let drops = Drops::default();
    let token = drops.token();
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let h = Repeat::new(ms(10), RepeatMode::FixedDelay)
        .token(parent.clone())
        .start(env.pool(), move || {
            token_keep(&token);
            r.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    env.fast_forward_by(ms(25));
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    parent.cancel();
    assert!(!h.is_running());
    assert_eq!(drops.count(), 1);
    env.fast_forward_by(ms(100));
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    wait_or_fail(&h);
    assert!(h.token().is_cancelled());
}

#[test]
fn cancelling_the_handle_token_stops_it_and_leaves_the_parent_alone() {
    let env = TestEnvironment::new();
    let parent = CancellationToken::new();
    let h = Repeat::new(ms(10), RepeatMode::FixedRate)
        .token(parent.clone())
        .start(env.pool(), || ())
        .unwrap();
    env.fast_forward_by(ms(10));
    assert_eq!(h.runs(), 1);
    h.token().cancel();
    assert!(!h.is_running());
    assert!(!parent.is_cancelled());
    env.fast_forward_by(ms(100));
    assert_eq!(h.runs(), 1);
}

#[test]
fn an_already_cancelled_token_stops_it_before_any_run() {
    let env = TestEnvironment::new();
    let parent = CancellationToken::new();
    parent.cancel();
    let drops = Drops::default();
    let token = drops.token();
    let h = Repeat::new(ms(10), RepeatMode::FixedRate)
        .token(parent)
        .start(env.pool(), move || token_keep(&token))
        .unwrap();
    assert!(!h.is_running());
    assert_eq!(drops.count(), 1);
    env.fast_forward_by(ms(100));
    assert_eq!(h.runs(), 0);
}

#[test]
fn a_run_can_stop_its_own_repetition() {
    let env = TestEnvironment::new();
    let mut n = 0;
    // Through the TaskContext token the run sees...
    let h = repeat(env.pool(), ms(10), RepeatMode::FixedDelay, move || {
        n += 1;
        if n == 3 {
            TaskContext::current().unwrap().token().cancel();
        }
    })
    .unwrap();
    env.fast_forward_by(ms(100));
    assert_eq!(h.runs(), 3);
    assert!(h.is_finished());

    // ... or by returning Break.
    let mut left = 2;
    let drops = Drops::default();
    let token = drops.token();
    let h = Repeat::new(ms(10), RepeatMode::FixedRate)
        .start_with_flow(env.pool(), move || {
            token_keep(&token);
            left -= 1;
            if left == 0 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    env.fast_forward_by(ms(100));
    assert_eq!(h.runs(), 2);
    assert!(!h.is_running());
    assert!(h.token().is_cancelled());
    assert_eq!(drops.count(), 1);
    wait_or_fail(&h);
}

#[test]
fn shutdown_ends_the_repetition() {
    let env = TestEnvironment::new();
    let drops = Drops::default();
    let token = drops.token();
    let h = repeat(env.pool(), ms(10), RepeatMode::FixedRate, move || {
        token_keep(&token)
    })
    .unwrap();
    env.fast_forward_by(ms(20));
    assert_eq!(h.runs(), 2);
    env.pool().shutdown();
    assert!(!h.is_running());
    wait_or_fail(&h);
    assert_eq!(drops.count(), 1);
    assert!(!h.cancel(), "already stopped by shutdown");
}

#[test]
fn a_refused_start_hands_the_closure_back() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    pool.shutdown();
    let drops = Drops::default();
    let token = drops.token();
    let err = repeat(&pool, ms(10), RepeatMode::FixedDelay, move || {
        token_keep(&token)
    })
    .unwrap_err();
    assert_eq!(drops.count(), 0);
    let f = err.into_inner();
    drop(f);
    assert_eq!(drops.count(), 1);
}

#[test]
fn dropping_the_handle_does_not_stop_it_unless_cancel_on_drop() {
    let env = TestEnvironment::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let h = repeat(env.pool(), ms(10), RepeatMode::FixedDelay, move || {
        r.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    let token = h.token();
    drop(h);
    env.fast_forward_by(ms(30));
    assert_eq!(runs.load(Ordering::SeqCst), 3, "still repeating");
    token.cancel(); // still reachable through its token
    env.fast_forward_by(ms(30));
    assert_eq!(runs.load(Ordering::SeqCst), 3);

    let drops = Drops::default();
    let t = drops.token();
    let h = repeat(env.pool(), ms(10), RepeatMode::FixedDelay, move || {
        token_keep(&t)
    })
    .unwrap()
    .cancel_on_drop();
    drop(h);
    assert_eq!(drops.count(), 1);
    env.fast_forward_by(ms(30));
}

#[test]
fn runs_never_overlap_on_a_parallel_runner() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let inside = Arc::new(AtomicBool::new(false));
    let overlaps = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    let (i, o) = (inside.clone(), overlaps.clone());
    let mut n = 0;
    // Each run takes longer than the interval (real time): a ticker that posted every tick
    // regardless would overlap them.
    let h = Repeat::new(ms(1), RepeatMode::FixedRate)
        .initial_delay(Duration::ZERO)
        .start_with_flow(&pool, move || {
            if i.swap(true, Ordering::SeqCst) {
                o.fetch_add(1, Ordering::SeqCst);
            }
            std::thread::sleep(ms(3));
            i.store(false, Ordering::SeqCst);
            n += 1;
            if n == 8 {
                tx.send(()).unwrap();
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    rx.recv_timeout(HANG).unwrap();
    wait_or_fail(&h);
    assert_eq!(overlaps.load(Ordering::SeqCst), 0);
    assert_eq!(h.runs(), 8);
    pool.shutdown();
}

#[test]
fn a_panicking_run_is_reported_and_the_repetition_carries_on() {
    let panics = Arc::new(AtomicUsize::new(0));
    let p = panics.clone();
    let pool = ThreadPool::builder()
        .max_workers(1)
        .panic_handler(move |_| {
            p.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let mut n = 0;
    let h = Repeat::new(ms(1), RepeatMode::FixedDelay)
        .start_with_flow(&pool, move || {
            n += 1;
            if n == 2 {
                panic!("run 2 fails");
            }
            if n == 4 {
                tx.send(()).unwrap();
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        })
        .unwrap();
    rx.recv_timeout(HANG).unwrap();
    wait_or_fail(&h);
    assert_eq!(
        h.runs(),
        4,
        "the repetition carried on after the panic (Isolate)"
    );
    pool.shutdown();
    assert_eq!(panics.load(Ordering::SeqCst), 1);
}

#[test]
fn a_panic_on_a_poisoned_sequence_ends_the_repetition() {
    let pool = ThreadPool::builder()
        .max_workers(1)
        .panic_handler(|_| {})
        .build()
        .unwrap();
    let seq =
        pool.create_sequenced_task_runner(TaskTraits::new().panic_policy(PanicPolicy::Poison));
    let drops = Drops::default();
    let token = drops.token();
    let h = repeat(&seq, ms(1), RepeatMode::FixedDelay, move || {
        token_keep(&token);
        panic!("poison it");
    })
    .unwrap();
    wait_or_fail(&h);
    assert!(!h.is_running());
    assert_eq!(h.runs(), 1);
    assert_eq!(drops.count(), 1);
    pool.shutdown();
}

#[test]
fn wait_from_inside_its_own_run_panics_instead_of_hanging() {
    let pool = ThreadPool::builder()
        .max_workers(1)
        .panic_handler(|_| {})
        .build()
        .unwrap();
    let slot: Arc<Mutex<Option<Arc<RepeatHandle>>>> = Arc::new(Mutex::new(None));
    let (tx, rx) = mpsc::channel();
    let s = slot.clone();
    let h = Arc::new(
        Repeat::new(ms(1), RepeatMode::FixedDelay)
            .start(&pool, move || {
                let me = s.lock().unwrap().clone();
                if let Some(me) = me {
                    let r = panic::catch_unwind(AssertUnwindSafe(|| me.wait()));
                    me.cancel();
                    let _ = tx.send(r.is_err());
                }
            })
            .unwrap(),
    );
    *slot.lock().unwrap() = Some(h.clone());
    assert!(
        rx.recv_timeout(HANG).unwrap(),
        "wait inside a run must panic"
    );
    wait_or_fail(&h);
    slot.lock().unwrap().take();
    pool.shutdown();
}

#[test]
fn cancel_racing_runs_from_many_threads_never_lets_a_run_start_afterwards() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    for _ in 0..50 {
        let after_cancel = Arc::new(AtomicBool::new(false));
        let late = Arc::new(AtomicUsize::new(0));
        let (a, l) = (after_cancel.clone(), late.clone());
        let h = Arc::new(
            Repeat::new(Duration::from_micros(50), RepeatMode::FixedRate)
                .initial_delay(Duration::ZERO)
                .start(&pool, move || {
                    if a.load(Ordering::SeqCst) {
                        l.fetch_add(1, Ordering::SeqCst);
                    }
                })
                .unwrap(),
        );
        let cancellers: Vec<_> = (0..3)
            .map(|_| {
                let h = h.clone();
                std::thread::spawn(move || h.cancel())
            })
            .collect();
        let stopped: usize = cancellers
            .into_iter()
            .map(|t| usize::from(t.join().unwrap()))
            .sum();
        assert_eq!(stopped, 1, "exactly one cancel stops it");
        // A run that had started before cancel may still be finishing; wait for it, then
        // no run may start.
        wait_or_fail(&h);
        after_cancel.store(true, Ordering::SeqCst);
        std::thread::sleep(ms(2));
        assert_eq!(late.load(Ordering::SeqCst), 0);
    }
    pool.shutdown();
}

// ---- a cancel withdraws the pending run ------------------------------------------------------

/// Repeats every hour on `runner` a closure whose drop `drops` counts.
fn hourly<R>(runner: &R, drops: &Drops, mode: RepeatMode) -> RepeatHandle
where
    R: PostTask + Clone + Send + Sync + 'static,
{
    let t = drops.token();
    repeat(runner, Duration::from_secs(3600), mode, move || {
        let _ = &t;
    })
    .unwrap()
}

#[test]
fn cancel_takes_the_pending_run_out_of_the_delay_manager_on_every_kind_of_runner() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let par = pool.create_task_runner(TaskTraits::default());
    let single = pool.create_single_thread_task_runner(TaskTraits::default());
    let keyed = pool.create_keyed_task_runner::<u32>(TaskTraits::default());
    let drops = Drops::default();
    let handles = [
        hourly(&pool, &drops, RepeatMode::FixedDelay),
        hourly(&seq, &drops, RepeatMode::FixedRate),
        hourly(&par, &drops, RepeatMode::FixedDelay),
        hourly(&single, &drops, RepeatMode::FixedRate),
        hourly(&keyed.runner(7), &drops, RepeatMode::FixedDelay),
    ];
    assert_eq!(pool.pending_delayed_tasks(), handles.len());
    for (i, h) in handles.iter().enumerate() {
        assert!(h.cancel());
        // Withdrawn at once, and the closure freed at once: nothing waits for the hour.
        assert_eq!(pool.pending_delayed_tasks(), handles.len() - i - 1);
        assert_eq!(drops.count(), i + 1);
        wait_or_fail(h);
    }
}

#[test]
fn cancel_after_runs_withdraws_the_rescheduled_run() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let (tx, rx) = mpsc::channel();
    let h = Repeat::new(Duration::from_secs(3600), RepeatMode::FixedDelay)
        .initial_delay(Duration::ZERO)
        .start(&seq, move || {
            let _ = tx.send(());
        })
        .unwrap();
    rx.recv_timeout(HANG)
        .expect("the first run happens at once");
    // The first run has ended once the next one is pending: one entry, an hour away.
    let t0 = std::time::Instant::now();
    while pool.pending_delayed_tasks() != 1 {
        assert!(t0.elapsed() < HANG, "the next run was never scheduled");
        std::thread::yield_now();
    }
    assert!(h.cancel());
    // Withdrawn without waiting for the hour (a reschedule still in flight when the cancel
    // came withdraws its post as soon as it is made).
    pending_drops_to_zero(&pool);
    wait_or_fail(&h);
    assert_eq!(h.runs(), 1);
}

fn pending_drops_to_zero(pool: &ThreadPool) {
    let t0 = std::time::Instant::now();
    while pool.pending_delayed_tasks() != 0 {
        assert!(
            t0.elapsed() < HANG,
            "a cancelled repetition left its next run queued"
        );
        std::thread::yield_now();
    }
}

#[test]
fn cancel_racing_the_runs_never_leaves_an_entry_behind() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    for round in 0..200 {
        let runner = pool.create_sequenced_task_runner(TaskTraits::default());
        let h = repeat(
            &runner,
            Duration::from_micros(50),
            RepeatMode::FixedRate,
            || (),
        )
        .unwrap();
        if round % 2 == 0 {
            std::thread::yield_now();
        }
        h.cancel();
        wait_or_fail(&h);
        // A reschedule that raced the cancel withdraws its own post.
        pending_drops_to_zero(&pool);
    }
}

/// A runner of the user's own, forwarding to a sequence: no pool link, so a cancelled run is
/// withdrawn through its handle only if the runner can; the repetition still stops.
#[derive(Clone)]
struct Forwarding(taskrunner::SequencedTaskRunner);

impl PostTask for Forwarding {
    fn post_task<F>(&self, f: F) -> Result<(), taskrunner::PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.0.post_task(f)
    }
    fn post_delayed_task<F>(&self, delay: Duration, f: F) -> Result<(), taskrunner::PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.0.post_delayed_task(delay, f)
    }
    fn now(&self) -> std::time::Instant {
        self.0.now()
    }
    fn max_concurrency(&self) -> usize {
        1
    }
}

#[test]
fn cancel_on_a_runner_of_ones_own_stops_and_frees_the_closure() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let own = Forwarding(pool.create_sequenced_task_runner(TaskTraits::default()));
    let drops = Drops::default();
    let t = drops.token();
    let h = repeat(
        &own,
        Duration::from_secs(3600),
        RepeatMode::FixedDelay,
        move || {
            let _ = &t;
        },
    )
    .unwrap();
    assert!(h.cancel());
    assert_eq!(drops.count(), 1);
    wait_or_fail(&h);
    assert!(!h.is_running());
}
