//! The bounded executor (issue 5, parts 2-5) on real pools: concurrency, the bounded queue,
//! shutdown and drop, cancellation, deadlines seen while running, map / try_map / map_iter.
//! Time-dependent parts (retry backoff, deadlines before start, map totals) are in
//! `executor_time.rs`, under the mock clock.
//!
//! Timeouts only turn a hang into a failure; nothing asserts on how long anything took.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use taskrunner::cancel::{CancellationToken, Interrupted, TaskContext};
use taskrunner::executor::{Executor, ShutdownMode, SubmitOptions, SubmitRefusal};
use taskrunner::sync::Semaphore;
use taskrunner::{TaskHandle, TaskState, TaskTraits, ThreadPool};

const TIMEOUT: Duration = Duration::from_secs(30);

fn pool(workers: usize) -> ThreadPool {
    ThreadPool::builder().max_workers(workers).build().unwrap()
}

fn exec(pool: &ThreadPool, workers: usize, capacity: usize) -> Executor {
    Executor::builder()
        .pool(pool)
        .max_workers(workers)
        .queue_capacity(capacity)
        .build()
        .unwrap()
}

/// A task body that reports it started, then waits for the gate (or its token, or a hang
/// timeout).
fn gated(started: Sender<()>, gate: Receiver<()>) -> impl FnOnce() + Send + 'static {
    move || {
        started.send(()).unwrap();
        let _ = gate.recv_timeout(TIMEOUT);
    }
}

/// Occupies `exec`'s only slot until the returned sender is used (or dropped).
fn occupy(exec: &Executor) -> (Sender<()>, TaskHandle<()>) {
    let (release, gate) = channel();
    let (started_tx, started) = channel();
    let h = exec.submit(gated(started_tx, gate)).unwrap();
    started.recv_timeout(TIMEOUT).unwrap();
    (release, h)
}

fn join_all<T: Send + 'static>(hs: Vec<TaskHandle<T>>) -> Vec<T> {
    hs.into_iter().map(|h| h.join().unwrap()).collect()
}

/// Tracks how many bodies run at once, and the most ever seen.
#[derive(Default)]
struct Concurrency {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Concurrency {
    fn enter(&self) {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
    }
    fn exit(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

// ---- concurrency ----------------------------------------------------------------------------

#[test]
fn concurrency_never_exceeds_max_workers() {
    let pool = pool(4);
    let exec = exec(&pool, 2, 100);
    let c = Arc::new(Concurrency::default());
    let hs: Vec<_> = (0..40)
        .map(|i| {
            let c = c.clone();
            exec.submit(move || {
                c.enter();
                std::thread::sleep(Duration::from_micros(200));
                c.exit();
                i
            })
            .unwrap()
        })
        .collect();
    assert_eq!(join_all(hs), (0..40).collect::<Vec<_>>());
    let max = c.max.load(Ordering::SeqCst);
    assert!((1..=2).contains(&max), "{max} tasks ran at once");
    assert!(exec.wait_idle());
    assert_eq!((exec.running(), exec.queued(), exec.in_flight()), (0, 0, 0));
}

#[test]
fn a_semaphore_limit_is_shared_by_two_executors() {
    let pool = pool(4);
    let (a, b) = (exec(&pool, 4, 100), exec(&pool, 4, 100));
    let limit = Semaphore::new(2);
    let c = Arc::new(Concurrency::default());
    let mut hs = Vec::new();
    for i in 0..30 {
        let c = c.clone();
        let e = if i % 2 == 0 { &a } else { &b };
        hs.push(
            e.submit_with_limit(&limit, move || {
                c.enter();
                std::thread::sleep(Duration::from_micros(200));
                c.exit();
            })
            .unwrap(),
        );
    }
    join_all(hs);
    let max = c.max.load(Ordering::SeqCst);
    assert!((1..=2).contains(&max), "{max} limited tasks ran at once");
    assert_eq!(limit.available(), 2, "every permit came back");
}

#[test]
fn an_executor_on_a_sequence_runs_tasks_in_submission_order() {
    let pool = pool(3);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let exec = Executor::builder().runner(seq).build().unwrap();
    assert_eq!(exec.max_workers(), 1);
    let log = Arc::new(Mutex::new(Vec::new()));
    let hs: Vec<_> = (0..20)
        .map(|i| {
            let log = log.clone();
            exec.submit(move || log.lock().unwrap().push(i)).unwrap()
        })
        .collect();
    join_all(hs);
    assert_eq!(*log.lock().unwrap(), (0..20).collect::<Vec<_>>());
}

#[test]
fn a_submitted_task_runs_without_anything_else_happening() {
    // A bare `submit` runs: no enclosing block or explicit start is needed.
    let pool = pool(1);
    let exec = exec(&pool, 1, 1);
    let h = exec.submit(|| "ran").unwrap();
    assert_eq!(h.join().unwrap(), "ran");
}

#[test]
fn builder_rejects_zero_workers_and_zero_capacity() {
    // queue_capacity = 0 is an error, not an unbounded queue.
    let pool = pool(1);
    assert!(Executor::builder()
        .pool(&pool)
        .max_workers(0)
        .build()
        .is_err());
    assert!(Executor::builder()
        .pool(&pool)
        .queue_capacity(0)
        .build()
        .is_err());
    let e = Executor::builder().pool(&pool).build().unwrap();
    assert_eq!((e.max_workers(), e.queue_capacity()), (1, 10));
}

#[test]
fn panics_and_errors_end_their_handles() {
    let pool = pool(2);
    let exec = exec(&pool, 2, 10);
    let p = exec.submit(|| -> u8 { panic!("boom") }).unwrap();
    let f = exec
        .submit_fallible(|| Err::<u8, _>(std::io::Error::other("io down")))
        .unwrap();
    let err = p.join().unwrap_err();
    assert_eq!(err.panic_message(), Some("boom"));
    let err = f.join().unwrap_err();
    assert!(err.is_failed());
    assert_eq!(
        err.downcast_ref::<std::io::Error>().unwrap().to_string(),
        "io down"
    );
    // The executor carries on.
    assert_eq!(exec.submit(|| 1).unwrap().join().unwrap(), 1);
}

// ---- the bounded queue ----------------------------------------------------------------------

#[test]
fn try_submit_on_a_full_queue_hands_the_closure_back() {
    let pool = pool(1);
    let exec = exec(&pool, 1, 2);
    let (release, busy) = occupy(&exec);
    let q1 = exec.try_submit(|| 1).unwrap();
    let q2 = exec.try_submit(|| 2).unwrap();
    assert_eq!(exec.queued(), 2);
    let err = exec.try_submit(|| 3).unwrap_err();
    assert_eq!(err.reason(), SubmitRefusal::Full);
    assert!(err.to_string().contains("full"));
    assert_eq!(err.into_inner()(), 3, "the closure came back intact");
    release.send(()).unwrap();
    busy.join().unwrap();
    assert_eq!((q1.join().unwrap(), q2.join().unwrap()), (1, 2));
}

#[test]
fn submit_blocks_while_the_queue_is_full_and_resumes_when_room_frees() {
    let pool = pool(1);
    let exec = Arc::new(exec(&pool, 1, 1));
    let (release, busy) = occupy(&exec);
    let queued = exec.submit(|| "queued").unwrap();
    let (done_tx, done) = channel();
    let e = exec.clone();
    let submitter = std::thread::spawn(move || {
        let h = e.submit(|| "late").unwrap();
        done_tx.send(()).unwrap();
        h.join().unwrap()
    });
    // Blocked: the queue holds one task and the slot is busy.
    assert_eq!(
        done.recv_timeout(Duration::from_millis(50)),
        Err(RecvTimeoutError::Timeout)
    );
    release.send(()).unwrap(); // the queued task starts, which frees the queue place
    done.recv_timeout(TIMEOUT).unwrap();
    busy.join().unwrap();
    assert_eq!(queued.join().unwrap(), "queued");
    assert_eq!(submitter.join().unwrap(), "late");
}

#[test]
fn a_submit_blocked_on_a_full_queue_wakes_with_shutdown_and_gets_its_closure_back() {
    // A submit blocked on a full queue wakes up with a refusal (and its closure back) when
    // the executor shuts down; it never panics.
    let pool = pool(1);
    let exec = Arc::new(exec(&pool, 1, 1));
    let (release, busy) = occupy(&exec);
    let queued = exec.submit(|| 1).unwrap();
    let e = exec.clone();
    let submitter = std::thread::spawn(move || match e.submit(|| 2) {
        Ok(_) => panic!("admitted after shutdown"),
        Err(err) => (err.reason(), err.into_inner()()),
    });
    std::thread::sleep(Duration::from_millis(20)); // let it block (not required for the outcome)
    exec.shutdown(ShutdownMode::NoWait);
    assert_eq!(
        submitter.join().unwrap(),
        (SubmitRefusal::Shutdown, 2),
        "woken with Shutdown, closure handed back"
    );
    release.send(()).unwrap();
    busy.join().unwrap();
    assert_eq!(
        queued.join().unwrap(),
        1,
        "queued work still ran (no cancel)"
    );
}

#[test]
fn submit_timeout_gives_up_and_hands_the_closure_back() {
    let pool = pool(1);
    let exec = exec(&pool, 1, 1);
    let (release, busy) = occupy(&exec);
    let _queued = exec.submit(|| ()).unwrap();
    let err = exec
        .submit_timeout(|| 9, Duration::from_millis(10))
        .unwrap_err();
    assert_eq!(err.reason(), SubmitRefusal::TimedOut);
    assert_eq!(err.into_inner()(), 9);
    release.send(()).unwrap();
    busy.join().unwrap();
    assert!(exec.wait_idle());
}

#[test]
fn a_task_submitting_follow_up_work_is_not_blocked_by_its_own_full_queue() {
    // A crawler page task that submits its links: with a blocking submit into its own full
    // queue it would wait for a slot that only it can free.
    let pool = pool(1);
    let exec = Arc::new(exec(&pool, 1, 1));
    let e = exec.clone();
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    let parent = exec
        .submit(move || {
            let children: Vec<_> = (0..5)
                .map(|_| {
                    let d = d.clone();
                    e.submit(move || {
                        d.fetch_add(1, Ordering::SeqCst);
                    })
                    .unwrap()
                })
                .collect();
            children.len()
        })
        .unwrap();
    assert_eq!(parent.join().unwrap(), 5);
    assert!(exec.wait_idle());
    assert_eq!(done.load(Ordering::SeqCst), 5);
}

// ---- shutdown and drop ----------------------------------------------------------------------

#[test]
fn shutdown_without_drain_returns_while_tasks_are_still_queued() {
    // A shutdown without `drain` returns at once, with tasks still queued.
    let pool = pool(1);
    let exec = exec(&pool, 1, 10);
    let (release, busy) = occupy(&exec);
    let ran = Arc::new(AtomicUsize::new(0));
    let queued: Vec<_> = (0..3)
        .map(|i| {
            let ran = ran.clone();
            exec.submit(move || {
                ran.fetch_add(1, Ordering::SeqCst);
                i
            })
            .unwrap()
        })
        .collect();
    // Returns although the running task cannot end before `release` below.
    exec.shutdown(ShutdownMode::NoWait);
    assert!(exec.is_shutdown());
    assert!(queued.iter().all(|h| h.state() == TaskState::Pending));
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    // ... and the queued tasks still run in the background.
    release.send(()).unwrap();
    busy.join().unwrap();
    assert_eq!(join_all(queued), vec![0, 1, 2]);
}

#[test]
fn cancel_pending_leaves_every_handle_cancelled_or_completed() {
    // A cancelling shutdown resolves every queued handle: none stays pending.
    let pool = pool(1);
    let exec = exec(&pool, 1, 10);
    let (started_tx, started) = channel();
    let running = exec
        .submit_with_context(move |ctx| {
            started_tx.send(()).unwrap();
            // Stops when the executor cancels its token.
            assert!(ctx.token().wait_timeout(TIMEOUT));
            Ok::<_, Interrupted>("stopped early")
        })
        .unwrap();
    started.recv_timeout(TIMEOUT).unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let queued: Vec<_> = (0..5)
        .map(|_| {
            let ran = ran.clone();
            exec.submit(move || ran.store(true, Ordering::SeqCst))
                .unwrap()
        })
        .collect();
    exec.shutdown(ShutdownMode::CancelNoWait);
    for h in &queued {
        assert!(h.is_finished(), "a queued handle is resolved at once");
        assert_eq!(h.state(), TaskState::Cancelled);
    }
    assert_eq!(running.join().unwrap(), "stopped early");
    for h in queued {
        assert!(h.join().unwrap_err().is_cancelled());
    }
    assert!(
        !ran.load(Ordering::SeqCst),
        "a cancelled queued task never ran"
    );
}

#[test]
fn cancel_with_drain_waits_for_the_running_tasks() {
    let pool = pool(2);
    let exec = exec(&pool, 2, 10);
    let (started_tx, started) = channel();
    let stopped = Arc::new(AtomicBool::new(false));
    let s = stopped.clone();
    let h = exec
        .submit_with_context(move |ctx| {
            started_tx.send(()).unwrap();
            let why = ctx.token().wait_timeout(TIMEOUT);
            std::thread::sleep(Duration::from_millis(5));
            s.store(true, Ordering::SeqCst);
            Ok::<_, Interrupted>(why)
        })
        .unwrap();
    started.recv_timeout(TIMEOUT).unwrap();
    exec.shutdown(ShutdownMode::Cancel);
    assert!(stopped.load(Ordering::SeqCst), "drain waited for it");
    assert!(h.join().unwrap(), "it saw the executor's token cancelled");
}

#[test]
fn dropping_the_executor_drains_it() {
    let pool = pool(2);
    let exec = exec(&pool, 2, 50);
    let done = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..20)
        .map(|_| {
            let done = done.clone();
            exec.submit(move || {
                std::thread::sleep(Duration::from_micros(300));
                done.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap()
        })
        .collect();
    drop(exec);
    assert_eq!(
        done.load(Ordering::SeqCst),
        20,
        "drop waited for every task"
    );
    assert!(hs.iter().all(|h| h.state() == TaskState::Completed));
}

#[test]
fn dropping_with_cancel_mode_cancels_what_is_queued() {
    let pool = pool(1);
    let exec = Executor::builder()
        .pool(&pool)
        .max_workers(1)
        .on_drop(ShutdownMode::Cancel)
        .build()
        .unwrap();
    let (release, busy) = occupy(&exec);
    let queued = exec.submit(|| ()).unwrap();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(10));
        release.send(()).unwrap();
    });
    drop(exec); // cancels `queued`, waits for `busy`
    assert!(busy.is_finished());
    assert!(queued.join().unwrap_err().is_cancelled());
    releaser.join().unwrap();
}

#[test]
fn draining_from_inside_an_own_task_panics_and_dropping_there_does_not_wait() {
    let pool = pool(2);
    let exec = Arc::new(exec(&pool, 2, 10));
    let e = exec.clone();
    let h = exec
        .submit(move || e.shutdown(ShutdownMode::Drain))
        .unwrap();
    let err = h.join().unwrap_err();
    assert!(
        err.panic_message()
            .unwrap()
            .contains("inside one of the executor's own tasks"),
        "{err}"
    );
    let e = exec.clone();
    let h = exec.submit(move || e.wait_idle()).unwrap();
    assert!(h.join().unwrap_err().is_panic());

    // The last reference dropped inside its own task: shuts down without waiting for itself.
    let (release, gate) = channel::<()>();
    let e = exec.clone();
    let h = exec
        .submit(move || {
            gate.recv_timeout(TIMEOUT).unwrap();
            drop(e);
            "dropped inside"
        })
        .unwrap();
    drop(exec);
    release.send(()).unwrap();
    assert_eq!(h.join().unwrap(), "dropped inside");
}

#[test]
fn wait_idle_waits_for_earlier_tasks_and_returns_on_shutdown() {
    let pool = pool(2);
    let exec = Arc::new(exec(&pool, 2, 10));
    let n = Arc::new(AtomicUsize::new(0));
    for _ in 0..10 {
        let n = n.clone();
        exec.submit(move || {
            std::thread::sleep(Duration::from_micros(200));
            n.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    assert!(exec.wait_idle());
    assert_eq!(n.load(Ordering::SeqCst), 10);

    let (release, busy) = occupy(&exec);
    let e = exec.clone();
    let waiter = std::thread::spawn(move || e.wait_idle());
    std::thread::sleep(Duration::from_millis(10)); // not required for the outcome
    exec.shutdown(ShutdownMode::NoWait);
    assert!(!waiter.join().unwrap(), "returned because of the shutdown");
    release.send(()).unwrap();
    busy.join().unwrap();
}

#[test]
fn a_pool_shutdown_under_the_executor_resolves_every_handle() {
    let pool = pool(1);
    let exec = exec(&pool, 1, 10);
    let (release, busy) = occupy(&exec);
    let queued: Vec<_> = (0..4).map(|i| exec.submit(move || i).unwrap()).collect();
    let p = pool.clone();
    let stopper = std::thread::spawn(move || p.shutdown());
    std::thread::sleep(Duration::from_millis(10));
    release.send(()).unwrap();
    stopper.join().unwrap();
    busy.join().unwrap();
    for h in queued {
        match h.join() {
            Ok(_) => {}
            Err(e) => assert!(e.is_not_run(), "{e}"),
        }
    }
    assert!(exec.wait_idle_timeout(TIMEOUT));
}

// ---- cancellation ---------------------------------------------------------------------------

#[test]
fn cancelling_a_queued_task_resolves_it_at_once_and_it_never_runs() {
    // A cancelled queued task resolves at once and never runs.
    let pool = pool(1);
    let exec = exec(&pool, 1, 10);
    let (release, busy) = occupy(&exec);
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let h = exec
        .submit(move || r.store(true, Ordering::SeqCst))
        .unwrap();
    assert!(h.cancel());
    assert_eq!(h.state(), TaskState::Cancelled);
    assert_eq!(exec.queued(), 0, "its queue place is free again");
    release.send(()).unwrap();
    busy.join().unwrap();
    assert!(exec.wait_idle());
    assert!(!ran.load(Ordering::SeqCst));
    assert!(h.join().unwrap_err().is_cancelled());
}

#[test]
fn cancelling_a_callers_token_resolves_its_queued_task_at_once() {
    let pool = pool(1);
    let exec = exec(&pool, 1, 10);
    let (release, busy) = occupy(&exec);
    let stop = CancellationToken::new();
    let h = exec
        .submit_with(SubmitOptions::new().token(stop.clone()), |_| {
            Ok::<_, Interrupted>("ran")
        })
        .unwrap();
    stop.cancel();
    assert!(
        h.is_finished(),
        "resolved by the cancel, not when a slot frees"
    );
    assert!(h.join().unwrap_err().is_cancelled());
    release.send(()).unwrap();
    busy.join().unwrap();
}

#[test]
fn the_callers_token_and_the_executors_shutdown_both_reach_a_running_task() {
    // A task with a caller's token is still reached by the executor's shutdown.
    let pool = pool(2);
    let exec = exec(&pool, 2, 10);
    let run = |exec: &Executor, stop: &CancellationToken| {
        let (started_tx, started) = channel();
        let h = exec
            .submit_with(SubmitOptions::new().token(stop.clone()), move |ctx| {
                started_tx.send(()).unwrap();
                assert!(ctx.token().wait_timeout(TIMEOUT));
                Err::<(), _>(ctx.check().unwrap_err())
            })
            .unwrap();
        started.recv_timeout(TIMEOUT).unwrap();
        h
    };
    let stop = CancellationToken::new();
    let h = run(&exec, &stop);
    stop.cancel();
    assert!(h.join().unwrap_err().is_cancelled(), "the caller's token");

    let h = run(&exec, &CancellationToken::new());
    exec.shutdown(ShutdownMode::Cancel);
    assert!(h.join().unwrap_err().is_cancelled(), "the executor's token");
}

#[test]
fn cancel_racing_completion_ends_in_exactly_one_terminal_state() {
    // Cancel racing completion never panics and never overwrites a completed result.
    let pool = pool(2);
    let exec = Arc::new(exec(&pool, 2, 64));
    for i in 0..300 {
        let h = Arc::new(exec.submit(move || i).unwrap());
        let h2 = h.clone();
        let canceller = std::thread::spawn(move || h2.cancel());
        let cancelled = canceller.join().unwrap();
        let mut h = Arc::try_unwrap(h).unwrap();
        let result = h.join_timeout(TIMEOUT).expect("the task ended");
        let state = h.state();
        match result {
            Ok(v) => {
                assert_eq!(v, i);
                assert!(!cancelled, "cancel() said yes but the value came");
                assert_eq!(state, TaskState::Completed);
            }
            Err(e) => {
                // `cancel()` may have found the task just started (it returns false then) and
                // the task stopped on its token before calling the closure.
                assert!(e.is_cancelled(), "{e}");
                assert_eq!(state, TaskState::Cancelled);
            }
        }
    }
}

#[test]
fn a_deadline_passing_while_the_task_runs_is_seen_and_a_returned_value_is_kept() {
    // A value returned after the deadline passed during the run is kept, not replaced.
    let pool = pool(2);
    let exec = exec(&pool, 2, 10);
    let opts = SubmitOptions::new().timeout(Duration::from_millis(20));
    let h = exec
        .submit_with(opts.clone(), |ctx| {
            let give_up = Instant::now() + TIMEOUT;
            while ctx.check().is_ok() && Instant::now() < give_up {
                std::thread::sleep(Duration::from_millis(1));
            }
            // Seen as a deadline, not a cancel; the task still returns a value.
            Ok::<_, Interrupted>(ctx.check())
        })
        .unwrap();
    assert_eq!(h.join().unwrap(), Err(Interrupted::DeadlineExceeded));

    // Giving up with `?` ends the handle as deadline exceeded, distinct from cancelled.
    let h = exec
        .submit_with(opts, |ctx| {
            assert!(ctx.token().wait_timeout(TIMEOUT));
            ctx.check()?;
            Ok::<_, Interrupted>(())
        })
        .unwrap();
    let err = h.join().unwrap_err();
    assert!(err.is_deadline_exceeded());
    assert!(!err.is_cancelled());
}

// ---- map ------------------------------------------------------------------------------------

#[test]
fn map_returns_results_in_input_order() {
    let pool = pool(4);
    let exec = exec(&pool, 4, 8);
    // Later items finish first.
    let out = exec.map((0..32u64).rev(), |x| {
        std::thread::sleep(Duration::from_micros(x * 20));
        x
    });
    let out: Vec<_> = out.into_iter().map(Result::unwrap).collect();
    assert_eq!(out, (0..32).rev().collect::<Vec<_>>());
}

#[test]
fn map_over_zipped_inputs_stops_at_the_shortest() {
    let pool = pool(2);
    let exec = exec(&pool, 2, 8);
    let names = vec!["a", "b", "c", "d"];
    let counts = vec![1usize, 2, 3];
    let out = exec.map(names.into_iter().zip(counts), |(s, n)| s.repeat(n));
    let out: Vec<_> = out.into_iter().map(Result::unwrap).collect();
    assert_eq!(out, vec!["a", "bb", "ccc"]);
}

#[test]
fn map_reports_a_panicking_item_without_stopping_the_others() {
    let pool = pool(2);
    let exec = exec(&pool, 2, 8);
    let out = exec.map(0..5, |x: i32| {
        assert!(x != 2, "item two");
        x
    });
    assert!(out[2].as_ref().unwrap_err().is_panic());
    assert_eq!(
        out.iter()
            .filter_map(|r| r.as_ref().ok())
            .collect::<Vec<_>>(),
        vec![&0, &1, &3, &4]
    );
}

#[test]
fn try_map_returns_the_first_error_in_input_order_and_cancels_the_rest() {
    let pool = pool(1);
    let exec = exec(&pool, 1, 16);
    let ran = Arc::new(Mutex::new(Vec::new()));
    let r = ran.clone();
    let err = exec
        .try_map(0..8u32, move |x| {
            r.lock().unwrap().push(x);
            match x {
                1 => Err(std::io::Error::other("item 1 failed")),
                2 => {
                    // Running when the error is found: its token is cancelled.
                    let ctx = TaskContext::current().unwrap();
                    assert!(ctx.token().wait_timeout(TIMEOUT));
                    Err(std::io::Error::other("item 2 stopped"))
                }
                _ => Ok(x),
            }
        })
        .unwrap_err();
    assert_eq!(
        err.downcast_ref::<std::io::Error>().unwrap().to_string(),
        "item 1 failed"
    );
    assert!(exec.wait_idle());
    let ran = ran.lock().unwrap();
    // One slot: item 2 may have started before the error was seen (then its token was
    // cancelled); nothing after it ran.
    assert!(
        *ran == [0, 1] || *ran == [0, 1, 2],
        "items after the failure ran: {ran:?}"
    );
}

#[test]
fn map_iter_submits_lazily_within_its_window() {
    // map_iter pulls its input lazily, within its window.
    let pool = pool(2);
    let exec = exec(&pool, 2, 100);
    let pulled = Arc::new(AtomicUsize::new(0));
    let p = pulled.clone();
    let input = (0..1000u32).inspect(move |_| {
        p.fetch_add(1, Ordering::SeqCst);
    });
    let mut it = exec.map_iter(input, |x| x * 3).window(5);
    assert_eq!(
        pulled.load(Ordering::SeqCst),
        0,
        "nothing before the first next()"
    );
    for consumed in 1..=20u32 {
        assert_eq!(it.next().unwrap().unwrap(), (consumed - 1) * 3);
        std::thread::sleep(Duration::from_micros(100)); // a slow consumer
        let ahead = pulled.load(Ordering::SeqCst) - consumed as usize;
        assert!(ahead <= 5, "{ahead} items submitted ahead of the consumer");
    }
    drop(it);
    assert!(exec.wait_idle());
    assert!(pulled.load(Ordering::SeqCst) <= 25);
}

#[test]
fn dropping_map_iter_early_cancels_the_unconsumed_items() {
    let pool = pool(1);
    let exec = exec(&pool, 1, 100);
    let ran = Arc::new(Mutex::new(Vec::new()));
    let r = ran.clone();
    let (started_tx, started) = channel();
    let started_tx = Mutex::new(started_tx);
    let mut it = exec
        .map_iter(0..100u32, move |x| {
            r.lock().unwrap().push(x);
            if x == 1 {
                // Holds the only slot until its token is cancelled.
                started_tx.lock().unwrap().send(()).unwrap();
                let ctx = TaskContext::current().unwrap();
                assert!(ctx.token().wait_timeout(TIMEOUT));
            }
            x
        })
        .window(4);
    assert_eq!(it.next().unwrap().unwrap(), 0);
    started.recv_timeout(TIMEOUT).unwrap(); // item 1 runs; 2, 3 (and maybe 4) wait
    drop(it);
    assert!(exec.wait_idle());
    assert_eq!(*ran.lock().unwrap(), vec![0, 1], "queued items never ran");
}

#[test]
fn map_timeout_reports_items_not_done_in_time() {
    let pool = pool(2);
    let exec = exec(&pool, 1, 10);
    let (release, gate) = channel::<()>();
    let gate = Mutex::new(gate);
    let out = exec.map_timeout(0..3, Duration::from_millis(30), move |x: u32| {
        // Never done before the deadline: the first holds the only slot until released.
        let _ = gate.lock().unwrap().recv_timeout(TIMEOUT);
        x
    });
    assert_eq!(out.len(), 3);
    for r in &out {
        assert!(r.as_ref().unwrap_err().is_deadline_exceeded(), "{r:?}");
    }
    drop(release);
    assert!(exec.wait_idle());
}

// ---- stress ---------------------------------------------------------------------------------

#[test]
fn concurrent_submitters_cancels_and_a_shutdown_leave_no_handle_pending() {
    let pool = pool(3);
    let exec = Arc::new(exec(&pool, 2, 8));
    let limit = Semaphore::new(2);
    let stop = CancellationToken::new();
    let submitters: Vec<_> = (0..4)
        .map(|t| {
            let (exec, limit, stop) = (exec.clone(), limit.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut hs = Vec::new();
                for i in 0..300u32 {
                    let opts = match (i + t) % 4 {
                        0 => SubmitOptions::new(),
                        1 => SubmitOptions::new().limit(&limit),
                        2 => SubmitOptions::new().token(stop.clone()),
                        _ => SubmitOptions::new().timeout(Duration::from_micros(50)),
                    };
                    let h = match exec.submit_with(opts, move |ctx| {
                        if i % 7 == 0 {
                            std::thread::sleep(Duration::from_micros(50));
                        }
                        ctx.check()?;
                        Ok::<_, Interrupted>(i)
                    }) {
                        Ok(h) => h,
                        Err(e) => {
                            assert_eq!(e.reason(), SubmitRefusal::Shutdown);
                            break;
                        }
                    };
                    if i % 5 == 0 {
                        h.cancel();
                    }
                    hs.push(h);
                }
                hs
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(5));
    stop.cancel();
    std::thread::sleep(Duration::from_millis(5));
    exec.shutdown(ShutdownMode::Cancel);
    for s in submitters {
        for mut h in s.join().unwrap() {
            let r = h.join_timeout(TIMEOUT).expect("every handle ends");
            assert!(h.state().is_terminal());
            if let Err(e) = r {
                assert!(e.is_cancelled() || e.is_deadline_exceeded(), "{e}");
            }
        }
    }
    // A task stops counting (and its slot is given back) just after it resolved its handle:
    // give the last one a moment.
    let until = Instant::now() + TIMEOUT;
    while exec.in_flight() != 0 || exec.running() != 0 || limit.available() != 2 {
        assert!(
            Instant::now() < until,
            "a slot or a permit was never given back"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(exec.queued(), 0);
}

/// Cancelling a task in its retry backoff (or waiting for a permit) resolves the handle at
/// once, and the executor's bookkeeping follows at once too: neither `wait_idle` nor a
/// draining shutdown waits out the stale backoff (60 s here).
#[test]
fn a_task_cancelled_in_backoff_or_waiting_for_a_permit_does_not_keep_the_executor_busy() {
    let p = pool(2);
    let ex = exec(&p, 2, 10);
    let policy = taskrunner::retry::RetryPolicy::attempts(3).base_delay(Duration::from_secs(60));
    let (tx, first_failed) = channel();
    let h = ex
        .submit_with_retry(policy, move || {
            let _ = tx.send(());
            Err::<(), _>("transient")
        })
        .unwrap();
    first_failed.recv_timeout(TIMEOUT).unwrap();
    // Wait until the failed attempt has returned and given its slot back: the task is then in
    // its backoff (a cancel during the attempt would let the attempt's error stand).
    let until = Instant::now() + TIMEOUT;
    while ex.running() != 0 {
        assert!(Instant::now() < until, "the first attempt never ended");
        std::thread::sleep(Duration::from_millis(1));
    }
    // A second task waits for the only permit of a semaphore held here.
    let sem = Semaphore::new(1);
    let held = sem.acquire();
    let waiting = ex.submit_with_limit(&sem, || 1).unwrap();
    h.cancel(); // in its backoff: resolves at once
    waiting.cancel(); // never ran: resolves at once
    let start = Instant::now();
    assert!(
        ex.wait_idle_timeout(Duration::from_secs(20)),
        "the executor stayed busy"
    );
    assert!(start.elapsed() < Duration::from_secs(20));
    assert!(h.join().unwrap_err().is_cancelled());
    assert!(waiting.join().unwrap_err().is_cancelled());
    drop(held);
    ex.shutdown(ShutdownMode::Drain);
    assert_eq!(sem.available(), 1);
}

/// A blocked submission honours the caller's token: a `submit_with` blocked on
/// a full queue returns once the caller's token is cancelled, with a handle that is already
/// cancelled (the task never runs).
#[test]
fn a_submit_blocked_on_a_full_queue_returns_when_the_callers_token_is_cancelled() {
    let p = pool(1);
    let ex = exec(&p, 1, 1);
    let (release, running) = occupy(&ex);
    let _queued = ex.submit(|| ()).unwrap(); // the queue (capacity 1) is now full
    let token = CancellationToken::new();
    let t = token.clone();
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let (tx, rx) = channel();
    let submitter = std::thread::spawn(move || {
        let h = ex
            .submit_with(SubmitOptions::new().token(t), move |_| {
                r.store(true, Ordering::SeqCst);
                Ok::<_, std::io::Error>(())
            })
            .unwrap();
        tx.send(()).unwrap();
        (ex, h)
    });
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(50)),
        Err(RecvTimeoutError::Timeout),
        "the submit should block while the queue is full"
    );
    token.cancel();
    rx.recv_timeout(TIMEOUT)
        .expect("the blocked submit never returned");
    let (ex, h) = submitter.join().unwrap();
    assert!(h.join().unwrap_err().is_cancelled());
    release.send(()).unwrap();
    running.join().unwrap();
    ex.shutdown(ShutdownMode::Drain);
    assert!(!ran.load(Ordering::SeqCst));
}
