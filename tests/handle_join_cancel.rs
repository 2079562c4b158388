//! `TaskHandle<T>`: join, timeouts, non-blocking queries, the state machine, cancellation (and
//! its race with running), drop semantics, shutdown resolution, `.await` from tokio, ready-made
//! handles, `duration()`, and `post_task_with_result` on every runner kind.
//!
//! Nothing here asserts on timing: tasks are held in place with channels, closures carry drop
//! counters, and timeouts only turn a hang into a failure.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use taskrunner::PostTask;
use taskrunner::{
    SequencedTaskRunner, ShutdownBehavior, TaskError, TaskHandle, TaskState, TaskTraits, ThreadPool,
};

/// How long anything may take before the test calls it a hang.
const HANG: Duration = Duration::from_secs(30);

fn pool(workers: usize) -> ThreadPool {
    ThreadPool::builder().max_workers(workers).build().unwrap()
}

/// Counts how many times values made from it were dropped.
#[derive(Clone, Default)]
struct Drops(Arc<AtomicUsize>);

impl Drops {
    fn token(&self) -> DropToken {
        DropToken(self.0.clone())
    }
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

struct DropToken(Arc<AtomicUsize>);

impl Drop for DropToken {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Holds tasks in place: `hold()` closures report that they started, then wait for `open`.
struct Gate {
    started: (Sender<()>, Receiver<()>),
    release: (Sender<()>, Receiver<()>),
}

impl Gate {
    fn new() -> Self {
        Gate {
            started: unbounded(),
            release: unbounded(),
        }
    }
    fn hold(&self) -> impl FnOnce() + Send + 'static {
        let (started, release) = (self.started.0.clone(), self.release.1.clone());
        move || {
            started.send(()).unwrap();
            release.recv_timeout(HANG).expect("gate never opened");
        }
    }
    fn wait_started(&self) {
        self.started
            .1
            .recv_timeout(HANG)
            .expect("held task never started");
    }
    fn open(&self) {
        self.release.0.send(()).unwrap();
    }
}

/// Runs nothing until every task posted to `seq` before it has run.
fn fence(seq: &SequencedTaskRunner) {
    let mut h = seq.post_task_with_result(|| ()).unwrap();
    h.join_timeout(HANG)
        .expect("sequence never reached the fence")
        .unwrap();
}

/// `base` scaled by `TASKRUNNER_STRESS_SCALE` (default 1.0), at least 1: stress tests are
/// scaled, never skipped.
fn stress_rounds(base: usize) -> usize {
    let scale: f64 = std::env::var("TASKRUNNER_STRESS_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|s: &f64| *s > 0.0)
        .unwrap_or(1.0);
    ((base as f64 * scale) as usize).max(1)
}

/// Spins (without asserting on how long it takes) until `cond` holds.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + HANG;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn join_returns_the_value() {
    let pool = pool(2);
    let h = pool
        .post_task_with_result(TaskTraits::default(), || vec![1, 2, 3])
        .unwrap();
    assert_eq!(h.join().unwrap(), vec![1, 2, 3]);
}

#[test]
fn join_timeout_is_none_until_the_task_ends_then_some() {
    let pool = pool(1);
    let (go_tx, go_rx) = bounded::<()>(1);
    let mut h = pool
        .post_task_with_result(TaskTraits::default(), move || {
            go_rx.recv_timeout(HANG).unwrap();
            7
        })
        .unwrap();
    // The task cannot end before `go` is sent.
    assert!(h.join_timeout(Duration::from_millis(5)).is_none());
    assert!(h.join_timeout(Duration::ZERO).is_none());
    assert!(!h.is_finished());
    go_tx.send(()).unwrap();
    assert_eq!(h.join_timeout(HANG).expect("task hung").unwrap(), 7);
    assert_eq!(h.state(), TaskState::Completed);
    // The result was taken: later waits return at once with nothing.
    assert!(h.join_timeout(HANG).is_none());
    assert!(h.try_result().is_none());
}

#[test]
fn try_result_and_is_finished_never_block() {
    let pool = pool(1);
    let gate = Gate::new();
    let hold = gate.hold();
    let mut h = pool
        .post_task_with_result(TaskTraits::default(), move || {
            hold();
            "done"
        })
        .unwrap();
    gate.wait_started();
    // The task is held: neither call may wait for it (a blocking call would hang this test).
    assert!(h.try_result().is_none());
    assert!(!h.is_finished());
    gate.open();
    wait_until("the task to finish", || h.is_finished());
    assert_eq!(h.try_result().unwrap().unwrap(), "done");
    assert!(h.try_result().is_none(), "the result is taken only once");
    assert!(h.is_finished());
}

#[test]
fn state_goes_pending_running_completed() {
    let pool = pool(2);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let first = Gate::new();
    let second = Gate::new();
    seq.post_task(first.hold()).unwrap();
    let hold = second.hold();
    let mut h = seq
        .post_task_with_result(move || {
            hold();
            11
        })
        .unwrap();
    first.wait_started();
    // Behind a running task of its own sequence: it cannot have started.
    assert_eq!(h.state(), TaskState::Pending);
    assert!(h.duration().is_none());
    first.open();
    second.wait_started();
    assert_eq!(h.state(), TaskState::Running);
    assert!(!h.is_finished());
    assert!(h.duration().is_none());
    second.open();
    assert_eq!(h.join_timeout(HANG).unwrap().unwrap(), 11);
    assert_eq!(h.state(), TaskState::Completed);
    assert!(h.state().is_terminal());
    assert!(h.duration().is_some());
}

#[test]
fn a_panic_resolves_the_handle_with_its_message() {
    let pool = ThreadPool::builder()
        .max_workers(1)
        .panic_handler(|_| {}) // reported through the handle; keep the test output quiet
        .build()
        .unwrap();
    let n = 7;
    let mut h = pool
        .post_task_with_result(TaskTraits::default(), move || -> u32 {
            panic!("bad input {n}")
        })
        .unwrap();
    let err = h.join_timeout(HANG).unwrap().unwrap_err();
    assert!(err.is_panic());
    assert!(!err.is_cancelled() && !err.is_not_run());
    assert_eq!(err.panic_message(), Some("bad input 7"));
    assert!(err.to_string().contains("bad input 7"));
    assert_eq!(h.state(), TaskState::Panicked);
    assert!(h.duration().is_some(), "a panicked task still ran");

    // A non-string payload still resolves the handle.
    let h = pool
        .post_task_with_result(TaskTraits::default(), || -> u32 {
            std::panic::panic_any(42_u64)
        })
        .unwrap();
    let err = h.join().unwrap_err();
    assert!(err.is_panic());
    assert!(err.panic_message().is_some());

    // The worker survived both panics.
    assert_eq!(
        pool.post_task_with_result(TaskTraits::default(), || 1)
            .unwrap()
            .join()
            .unwrap(),
        1
    );
}

#[test]
fn cancel_before_start_never_runs_and_drops_the_closure_at_once() {
    let pool = pool(2);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let gate = Gate::new();
    seq.post_task(gate.hold()).unwrap();
    gate.wait_started();

    let drops = Drops::default();
    let ran = Arc::new(AtomicBool::new(false));
    let (token, r2) = (drops.token(), ran.clone());
    let h = seq
        .post_task_with_result(move || {
            let _token = token;
            r2.store(true, Ordering::SeqCst);
            5
        })
        .unwrap();
    assert_eq!(h.state(), TaskState::Pending);
    assert_eq!(drops.get(), 0);
    assert!(h.cancel());
    // Freed by `cancel` itself, not when the sequence reaches the entry.
    assert_eq!(drops.get(), 1);
    assert_eq!(h.state(), TaskState::Cancelled);
    assert!(h.is_finished());
    assert!(!h.cancel(), "a second cancel does nothing");

    gate.open();
    fence(&seq); // the sequence has passed the cancelled entry
    assert!(!ran.load(Ordering::SeqCst));
    assert_eq!(drops.get(), 1, "dropped exactly once");
    assert!(h.duration().is_none());
    let err = h.join().unwrap_err();
    assert!(err.is_cancelled());
    assert!(!err.is_panic() && !err.is_not_run());
    assert_eq!(err.panic_message(), None);
}

#[test]
fn cancel_of_a_delayed_task_frees_it_now_not_at_its_deadline() {
    let pool = pool(1);
    let drops = Drops::default();
    let token = drops.token();
    let h = pool
        .post_delayed_task_with_result(
            TaskTraits::default(),
            Duration::from_secs(3600),
            move || {
                drop(token);
            },
        )
        .unwrap();
    assert!(h.cancel());
    assert_eq!(drops.get(), 1);
    assert!(h.join().unwrap_err().is_cancelled());
}

#[test]
fn cancel_of_a_running_task_returns_false_and_the_value_is_kept() {
    let pool = pool(1);
    let gate = Gate::new();
    let hold = gate.hold();
    let mut h = pool
        .post_task_with_result(TaskTraits::default(), move || {
            hold();
            String::from("kept")
        })
        .unwrap();
    gate.wait_started();
    assert!(!h.cancel(), "a running task cannot be cancelled");
    assert_eq!(h.state(), TaskState::Running);
    gate.open();
    assert_eq!(h.join_timeout(HANG).unwrap().unwrap(), "kept");
    assert_eq!(h.state(), TaskState::Completed);
    assert!(!h.cancel(), "nor can a finished one");
    assert_eq!(h.state(), TaskState::Completed);
}

/// Many tasks, cancelled from several threads while two workers run them. Each ends in exactly
/// one terminal state: a value (the closure ran once, `cancel` said `false`) or cancelled (it
/// never ran, `cancel` said `true`), and every closure is dropped exactly once either way.
///
/// Each round holds both workers, posts a batch, then releases the workers and the cancellers
/// together: the workers take tasks from the front, the cancellers from the back and interleaved,
/// so they meet in the middle.
#[test]
fn cancel_vs_run_race_ends_in_exactly_one_terminal_state() {
    const BATCH: usize = 400;
    let rounds = stress_rounds(20);
    const CANCELLERS: usize = 3;
    const WORKERS: usize = 2;
    let pool = pool(WORKERS);
    let runner = pool.create_task_runner(TaskTraits::default());
    let (mut n_value, mut n_cancelled) = (0, 0);
    for _round in 0..rounds {
        let ran: Arc<Vec<AtomicUsize>> =
            Arc::new((0..BATCH).map(|_| AtomicUsize::new(0)).collect());
        let drops: Vec<Drops> = (0..BATCH).map(|_| Drops::default()).collect();
        let cancelled: Vec<AtomicBool> = (0..BATCH).map(|_| AtomicBool::new(false)).collect();

        let gate = Gate::new();
        for _ in 0..WORKERS {
            runner.post_task(gate.hold()).unwrap();
        }
        for _ in 0..WORKERS {
            gate.wait_started();
        }
        let handles: Vec<TaskHandle<usize>> = (0..BATCH)
            .map(|i| {
                let (ran, token) = (ran.clone(), drops[i].token());
                runner
                    .post_task_with_result(move || {
                        let _token = token;
                        ran[i].fetch_add(1, Ordering::SeqCst);
                        i
                    })
                    .unwrap()
            })
            .collect();
        let start = std::sync::Barrier::new(CANCELLERS + 1);
        thread::scope(|s| {
            let (hs, cancelled, start) = (&handles, &cancelled, &start);
            for c in 0..CANCELLERS {
                s.spawn(move || {
                    start.wait();
                    for i in (0..BATCH).rev().filter(|i| i % CANCELLERS == c) {
                        if hs[i].cancel() {
                            cancelled[i].store(true, Ordering::SeqCst);
                        }
                    }
                });
            }
            start.wait();
            for _ in 0..WORKERS {
                gate.open();
            }
        });

        for (i, mut h) in handles.into_iter().enumerate() {
            let r = h
                .join_timeout(HANG)
                .expect("a task never reached a terminal state");
            let runs = ran[i].load(Ordering::SeqCst);
            let was_cancelled = cancelled[i].load(Ordering::SeqCst);
            match r {
                Ok(v) => {
                    assert_eq!(v, i);
                    assert_eq!(runs, 1, "task {i}: a value means it ran exactly once");
                    assert!(!was_cancelled, "task {i}: a value, yet cancel() said true");
                    assert_eq!(h.state(), TaskState::Completed);
                    n_value += 1;
                }
                Err(e) => {
                    assert!(e.is_cancelled(), "task {i}: unexpected error {e}");
                    assert_eq!(runs, 0, "task {i}: cancelled, yet it ran");
                    assert!(
                        was_cancelled,
                        "task {i}: cancelled, yet no cancel() said true"
                    );
                    assert_eq!(h.state(), TaskState::Cancelled);
                    n_cancelled += 1;
                }
            }
            assert_eq!(
                drops[i].get(),
                1,
                "task {i}: closure dropped {} times",
                drops[i].get()
            );
        }
    }
    assert_eq!(n_value + n_cancelled, rounds * BATCH);
    println!("cancel vs run: {n_value} ran, {n_cancelled} cancelled");
}

#[test]
fn dropping_a_handle_does_not_cancel_the_task() {
    let pool = pool(1);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let gate = Gate::new();
    seq.post_task(gate.hold()).unwrap();
    gate.wait_started();
    let (tx, rx) = unbounded();
    let h = seq
        .post_task_with_result(move || {
            tx.send("ran anyway").unwrap();
            1
        })
        .unwrap();
    drop(h); // still queued
    gate.open();
    assert_eq!(rx.recv_timeout(HANG).unwrap(), "ran anyway");
}

#[test]
fn abort_on_drop_cancels_a_task_that_has_not_started() {
    let pool = pool(1);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let gate = Gate::new();
    seq.post_task(gate.hold()).unwrap();
    gate.wait_started();
    let drops = Drops::default();
    let ran = Arc::new(AtomicBool::new(false));
    let (token, r2) = (drops.token(), ran.clone());
    let h = seq
        .post_task_with_result(move || {
            let _token = token;
            r2.store(true, Ordering::SeqCst);
        })
        .unwrap()
        .abort_on_drop();
    drop(h);
    assert_eq!(drops.get(), 1, "the closure is freed when the handle drops");
    gate.open();
    fence(&seq);
    assert!(!ran.load(Ordering::SeqCst));
    assert_eq!(drops.get(), 1);
}

#[test]
fn abort_on_drop_does_not_stop_a_running_task() {
    let pool = pool(1);
    let gate = Gate::new();
    let hold = gate.hold();
    let (tx, rx) = unbounded();
    let h = pool
        .post_task_with_result(TaskTraits::default(), move || {
            hold();
            tx.send("finished").unwrap();
        })
        .unwrap()
        .abort_on_drop();
    gate.wait_started();
    drop(h);
    gate.open();
    assert_eq!(rx.recv_timeout(HANG).unwrap(), "finished");
}

#[test]
fn a_queued_skip_on_shutdown_task_resolves_not_run() {
    let pool = Arc::new(pool(1));
    let skip = TaskTraits::new().shutdown_behavior(ShutdownBehavior::SkipOnShutdown);
    let gate = Gate::new();
    // Occupies the only worker; running at shutdown, so shutdown waits for it.
    pool.post_task(skip, gate.hold()).unwrap();
    gate.wait_started();
    let drops = Drops::default();
    let ran = Arc::new(AtomicBool::new(false));
    let (token, r2) = (drops.token(), ran.clone());
    let mut h = pool
        .post_task_with_result(skip, move || {
            let _token = token;
            r2.store(true, Ordering::SeqCst);
            3
        })
        .unwrap();

    let p2 = pool.clone();
    let shutdown = thread::spawn(move || p2.shutdown());
    wait_until("shutdown to start", || pool.is_shutdown());
    gate.open();
    shutdown.join().unwrap();

    let err = h
        .join_timeout(HANG)
        .expect("the skipped task's handle never resolved")
        .unwrap_err();
    assert!(err.is_not_run(), "{err}");
    assert_eq!(h.state(), TaskState::Cancelled);
    assert!(!ran.load(Ordering::SeqCst));
    assert_eq!(drops.get(), 1);
}

#[test]
fn a_queued_sequenced_task_skipped_at_shutdown_resolves_not_run() {
    let pool = Arc::new(pool(1));
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let gate = Gate::new();
    seq.post_task(gate.hold()).unwrap();
    gate.wait_started();
    let mut h = seq.post_task_with_result(|| 3).unwrap();
    let p2 = pool.clone();
    let shutdown = thread::spawn(move || p2.shutdown());
    wait_until("shutdown to start", || pool.is_shutdown());
    gate.open();
    shutdown.join().unwrap();
    let err = h
        .join_timeout(HANG)
        .expect("the skipped task's handle never resolved")
        .unwrap_err();
    assert!(err.is_not_run(), "{err}");
}

#[test]
fn a_delayed_task_pending_at_shutdown_resolves_not_run() {
    let pool = pool(1);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let drops = Drops::default();
    let (t1, t2) = (drops.token(), drops.token());
    let block = TaskTraits::new().shutdown_behavior(ShutdownBehavior::BlockShutdown);
    let mut a = pool
        .post_delayed_task_with_result(block, Duration::from_secs(3600), move || drop(t1))
        .unwrap();
    let mut b = seq
        .post_delayed_task_with_result(Duration::from_secs(3600), move || drop(t2))
        .unwrap();
    assert_eq!(a.state(), TaskState::Pending);
    pool.shutdown(); // delayed tasks never block shutdown, even block-shutdown ones
    for h in [&mut a, &mut b] {
        let err = h
            .join_timeout(HANG)
            .expect("a delayed task's handle never resolved")
            .unwrap_err();
        assert!(err.is_not_run(), "{err}");
    }
    assert_eq!(drops.get(), 2);
}

/// Awaits handles on a current-thread tokio runtime. The runtime's only thread is never blocked:
/// the task being awaited is released by *another tokio task on that same thread*, which could
/// not run if awaiting the handle blocked the thread.
#[test]
fn await_from_a_current_thread_tokio_runtime() {
    let pool = Arc::new(pool(2));
    let (done_tx, done_rx) = bounded(1);
    let p2 = pool.clone();
    let t = thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let out = rt.block_on(async move {
            let (go_tx, go_rx) = bounded::<()>(1);
            let held = p2
                .post_task_with_result(TaskTraits::default(), move || {
                    go_rx.recv_timeout(HANG).unwrap();
                    20
                })
                .unwrap();
            let quick = p2
                .post_task_with_result(TaskTraits::default(), || 22)
                .unwrap();
            // Runs on this same thread, only once the awaits below yield.
            let releaser = tokio::spawn(async move { go_tx.send(()).unwrap() });
            let (a, b) = tokio::join!(held, quick);
            releaser.await.unwrap();
            let ready = TaskHandle::ready(100).await.unwrap();
            let failed = TaskHandle::<u8>::failed(TaskError::new("no")).await;
            (a.unwrap() + b.unwrap(), ready, failed)
        });
        done_tx.send(out).unwrap();
    });
    let (sum, ready, failed) = done_rx
        .recv_timeout(HANG)
        .expect("awaiting a TaskHandle blocked or hung the runtime");
    t.join().unwrap();
    assert_eq!(sum, 42);
    assert_eq!(ready, 100);
    assert_eq!(failed.unwrap_err().to_string(), "task failed: no");
}

#[test]
fn await_many_handles_from_a_multi_thread_runtime() {
    let pool = pool(2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let handles: Vec<_> = (0..200u64)
        .map(|i| seq.post_task_with_result(move || i).unwrap())
        .collect();
    let sum = rt.block_on(async move {
        let mut sum = 0;
        for h in handles {
            sum += tokio::time::timeout(HANG, h).await.expect("hang").unwrap();
        }
        sum
    });
    assert_eq!(sum, (0..200).sum::<u64>());
}

#[test]
fn ready_and_failed_handles() {
    let mut h = TaskHandle::ready(String::from("cached"));
    assert_eq!(h.state(), TaskState::Completed);
    assert!(h.is_finished());
    assert!(!h.cancel());
    assert!(h.duration().is_none(), "a ready handle never ran");
    assert_eq!(h.try_result().unwrap().unwrap(), "cached");
    assert!(h.try_result().is_none());

    // `TaskError::new` is a failure (a task that returned an error), not a panic.
    let h: TaskHandle<u32> = TaskHandle::failed(TaskError::new("offline"));
    assert_eq!(h.state(), TaskState::Failed);
    assert!(h.is_finished());
    assert!(!h.cancel());
    let err = h.join().unwrap_err();
    assert!(err.is_failed() && !err.is_panic());
    assert_eq!(err.to_string(), "task failed: offline");

    let mut h = TaskHandle::ready(1).abort_on_drop();
    assert_eq!(h.join_timeout(Duration::ZERO).unwrap().unwrap(), 1);
}

/// `duration()` is bounded by what the task must have taken (it sleeps) and by the wall time the
/// test saw around it: both are guarantees, not timing assumptions.
#[test]
fn duration_measures_the_run() {
    let pool = pool(1);
    let nap = Duration::from_millis(3);
    let t0 = Instant::now();
    let mut h = pool
        .post_task_with_result(TaskTraits::default(), move || thread::sleep(nap))
        .unwrap();
    h.join_timeout(HANG).unwrap().unwrap();
    let wall = t0.elapsed();
    let d = h.duration().expect("a finished task has a duration");
    assert!(d >= nap, "{d:?} < {nap:?}");
    assert!(d <= wall, "{d:?} > {wall:?}");
}

/// Every runner kind (and the pool and the free function) posts with a result, immediate and
/// delayed, and runs the task where that runner promises.
#[test]
fn post_task_with_result_on_every_runner_kind() {
    let pool = pool(2);
    let t = TaskTraits::default();
    let d = Duration::from_millis(1);

    assert_eq!(
        pool.post_task_with_result(t, || 1).unwrap().join().unwrap(),
        1
    );
    assert_eq!(
        pool.post_delayed_task_with_result(t, d, || 2)
            .unwrap()
            .join()
            .unwrap(),
        2
    );

    let par = pool.create_task_runner(t);
    assert_eq!(par.post_task_with_result(|| 3).unwrap().join().unwrap(), 3);
    assert_eq!(
        par.post_delayed_task_with_result(d, || 4)
            .unwrap()
            .join()
            .unwrap(),
        4
    );

    let seq = pool.create_sequenced_task_runner(t);
    let s2 = seq.clone();
    assert!(seq
        .post_task_with_result(move || s2.runs_tasks_in_current_sequence())
        .unwrap()
        .join()
        .unwrap());
    let s2 = seq.clone();
    assert!(seq
        .post_delayed_task_with_result(d, move || s2.runs_tasks_in_current_sequence())
        .unwrap()
        .join()
        .unwrap());

    let st = pool.create_single_thread_task_runner(t);
    let s2 = st.clone();
    let tid = st
        .post_task_with_result(move || {
            assert!(s2.belongs_to_current_thread());
            thread::current().id()
        })
        .unwrap()
        .join()
        .unwrap();
    let s2 = st.clone();
    let tid2 = st
        .post_delayed_task_with_result(d, move || {
            assert!(s2.belongs_to_current_thread());
            thread::current().id()
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(
        tid, tid2,
        "a single-thread runner always uses its own thread"
    );
    assert_ne!(tid, thread::current().id());

    // The free function posts to the global pool.
    let h = taskrunner::post_task_with_result(t, || "global").unwrap();
    assert_eq!(h.join().unwrap(), "global");

    // After shutdown, every kind refuses and hands the closure back.
    pool.shutdown();
    let e = pool.post_task_with_result(t, || 5).unwrap_err();
    assert!(e.is_shutdown());
    assert_eq!((e.into_inner())(), 5);
    assert_eq!(
        (par.post_task_with_result(|| 6).unwrap_err().into_inner())(),
        6
    );
    assert_eq!(
        (seq.post_task_with_result(|| 7).unwrap_err().into_inner())(),
        7
    );
    assert_eq!(
        (st.post_task_with_result(|| 8).unwrap_err().into_inner())(),
        8
    );
    assert_eq!(
        (seq.post_delayed_task_with_result(d, || 9)
            .unwrap_err()
            .into_inner())(),
        9
    );
}

#[test]
fn handles_are_send_and_sync_and_debug() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<TaskHandle<u32>>();
    assert_send_sync::<TaskError>();
    let h = TaskHandle::ready(1);
    assert!(format!("{h:?}").contains("TaskHandle"));
    // A handle can be joined from another thread.
    let pool = pool(1);
    let h = pool
        .post_task_with_result(TaskTraits::default(), || 9)
        .unwrap();
    assert_eq!(thread::spawn(move || h.join().unwrap()).join().unwrap(), 9);
}

/// A closure whose drop signals that it started, then blocks until released.
struct SlowDrop {
    started: Sender<()>,
    release: Receiver<()>,
}

impl Drop for SlowDrop {
    fn drop(&mut self) {
        self.started.send(()).unwrap();
        let _ = self.release.recv_timeout(HANG);
    }
}

/// `is_finished()` must not report the end before the result is there: while shutdown is still
/// dropping a skipped task's closure, either the handle is not finished yet or its result is
/// already available.
#[test]
fn is_finished_implies_the_result_is_available() {
    let pool = Arc::new(pool(1));
    let (started_tx, started_rx) = bounded(1);
    let (release_tx, release_rx) = bounded::<()>(1);
    let slow = SlowDrop {
        started: started_tx,
        release: release_rx,
    };
    let mut h = pool
        .post_delayed_task_with_result(
            TaskTraits::default(),
            Duration::from_secs(3600),
            move || {
                drop(slow);
                1
            },
        )
        .unwrap();
    let p2 = pool.clone();
    let shutdown = thread::spawn(move || p2.shutdown()); // drops the delayed task unrun
    started_rx.recv_timeout(HANG).unwrap(); // ...and is inside its closure's drop now
    let finished = h.is_finished();
    let r = h.try_result();
    drop(release_tx);
    shutdown.join().unwrap();
    assert!(
        !finished || r.is_some(),
        "is_finished() was true but try_result() returned None (state {:?})",
        h.state()
    );
}
