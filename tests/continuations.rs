//! Continuations and deferred tasks: `TaskHandle::then` (it runs after its predecessor ends in
//! every possible way, as a new task on the runner it was given) and `Deferred` (a task with a
//! handle before it runs: run here, post, cancel, drop), plus the `TaskError` kinds and
//! `TaskState::Failed` they produce.
//!
//! The kelindar/async `After` bugs (seed S1(d)4: a continuation never ran after a panic, a
//! cancel, or an already finished predecessor; S1(d)5: it ran inside the predecessor's run) each
//! have a regression test named after the behaviour. Nothing asserts on timing: tasks are held
//! with latches and channels, timeouts only turn a hang into a failure.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::error::Error;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{bounded, unbounded};
use support::{must_return, Blocker, DropCounter, Latch, Recorder, TIMEOUT};
use taskrunner::cancel::Interrupted;
use taskrunner::PostTask;
use taskrunner::{
    Deferred, PostRefusal, SequencedTaskRunner, TaskError, TaskHandle, TaskState, TaskTraits,
    ThreadPool,
};

fn pool(workers: usize) -> ThreadPool {
    ThreadPool::builder().max_workers(workers).build().unwrap()
}

/// Joins `h`, failing the test instead of hanging.
#[track_caller]
fn join<T: Send + 'static>(h: TaskHandle<T>) -> Result<T, TaskError> {
    must_return("joining a continuation", move || h.join())
}

// ---- then: runs after every kind of end (S1(d)4) ---------------------------------------------

#[test]
fn then_receives_the_value_of_a_completed_predecessor() {
    let pool = pool(2);
    let h = pool
        .post_task_with_result(TaskTraits::default(), || 20)
        .unwrap();
    let next = h.then(&pool, |r| r.unwrap() + 1);
    assert_eq!(join(next).unwrap(), 21);
}

#[test]
fn then_runs_after_a_fallible_predecessor_fails_and_sees_the_original_error() {
    let pool = pool(2);
    let (task, h) = Deferred::fallible(|| {
        Err::<u32, _>(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused",
        ))
    });
    let seen = Arc::new(Mutex::new(None));
    let s = seen.clone();
    let next = h.then(&pool, move |r| {
        let e = r.unwrap_err();
        *s.lock().unwrap() = Some((e.is_failed(), e.attempts()));
        e.downcast_ref::<std::io::Error>().map(|io| io.kind())
    });
    task.run_on(&pool).unwrap();
    assert_eq!(
        join(next).unwrap(),
        Some(std::io::ErrorKind::ConnectionRefused)
    );
    assert_eq!(*seen.lock().unwrap(), Some((true, 1)));
}

// S1(d)4: kelindar's `After` skipped its continuations when the predecessor panicked.
#[test]
fn then_runs_after_the_predecessor_panics() {
    let pool = pool(2);
    let blocker = Blocker::new();
    let b = blocker.task();
    let h = pool
        .post_task_with_result(TaskTraits::default(), move || -> u32 {
            b();
            panic!("predecessor exploded")
        })
        .unwrap();
    blocker.wait_started();
    // Registered while the predecessor runs: the waker path.
    let next = h.then(&pool, |r| r.unwrap_err().panic_message().map(str::to_owned));
    blocker.release();
    assert_eq!(join(next).unwrap().as_deref(), Some("predecessor exploded"));
}

// S1(d)4: kelindar's `After` hung when the predecessor was cancelled before it ran.
#[test]
fn then_runs_when_the_predecessor_is_cancelled_before_it_starts() {
    let pool = pool(2);
    // Cancelled after `then` registered (the waker path)...
    let (task, h) = Deferred::new(|| 1u32);
    let next = h.then(&pool, |r| r.unwrap_err().is_cancelled());
    assert!(task.cancel());
    assert!(join(next).unwrap());

    // ...and cancelled through its own handle before `then` (the already-ended path).
    let h = pool
        .post_delayed_task_with_result(TaskTraits::default(), Duration::from_secs(3600), || 1u32)
        .unwrap();
    assert!(h.cancel());
    let next = h.then(&pool, |r| r.unwrap_err().is_cancelled());
    assert!(join(next).unwrap());
}

// S1(d)4: kelindar's `After` never ran a continuation added after the predecessor finished.
#[test]
fn then_runs_when_the_predecessor_finished_before_then_was_called() {
    let pool = pool(2);
    let h = pool
        .post_task_with_result(TaskTraits::default(), || "early")
        .unwrap();
    support::wait_until("the predecessor finished", || h.is_finished());
    let next = h.then(&pool, |r| format!("{} bird", r.unwrap()));
    assert_eq!(join(next).unwrap(), "early bird");

    // A ready-made handle, completed and failed.
    let next = TaskHandle::ready(1).then(&pool, |r| r.unwrap() * 10);
    assert_eq!(join(next).unwrap(), 10);
    let next = TaskHandle::<u8>::failed(TaskError::new("offline")).then(&pool, |r| {
        let e = r.unwrap_err();
        assert!(e.is_failed());
        e.to_string()
    });
    assert_eq!(join(next).unwrap(), "task failed: offline");
}

// S1(d)4 (the "never resolves" family): a delayed predecessor dropped by its pool's shutdown
// still releases its continuation, which runs (on another pool) and sees "not run".
#[test]
fn then_runs_when_shutdown_drops_a_delayed_predecessor() {
    let doomed = pool(1);
    let other = pool(1);
    let h = doomed
        .post_delayed_task_with_result(TaskTraits::default(), Duration::from_secs(3600), || 5)
        .unwrap();
    let next = h.then(&other, |r| r.unwrap_err().is_not_run());
    doomed.shutdown();
    assert!(join(next).unwrap());
}

#[test]
fn then_on_a_task_whose_result_was_already_taken_resolves_as_panicked_with_a_clear_message() {
    let pool = pool(1);
    let mut h = TaskHandle::ready(3);
    assert_eq!(h.try_result().unwrap().unwrap(), 3);
    let ran = Arc::new(AtomicBool::new(false));
    let r2 = ran.clone();
    let next = h.then(&pool, move |_| r2.store(true, Ordering::SeqCst));
    let err = join(next).unwrap_err();
    assert!(err.is_panic());
    assert!(
        err.panic_message().unwrap().contains("already taken"),
        "{err}"
    );
    assert!(!ran.load(Ordering::SeqCst));
}

// ---- then: a new task on the given runner (S1(d)5) ---------------------------------------------

#[test]
fn the_continuation_runs_as_a_new_task_on_the_given_sequence() {
    let pool = pool(2);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let other = pool.create_sequenced_task_runner(TaskTraits::default());
    let order = Recorder::new();
    let blocker = Blocker::new();
    let (b, o) = (blocker.task(), order.clone());
    let pred = seq
        .post_task_with_result(move || {
            b();
            o.push("predecessor");
            7
        })
        .unwrap();
    blocker.wait_started();
    // Queued on the sequence *before* the predecessor ends. Had the continuation run inside
    // the predecessor's run (kelindar), it would come before this task.
    seq.post_task(order.task("queued behind")).unwrap();
    let (o, s, s2) = (order.clone(), seq.clone(), other.clone());
    let next = pred.then(&seq, move |r| {
        o.push("continuation");
        (
            r.unwrap(),
            s.runs_tasks_in_current_sequence(),
            s2.runs_tasks_in_current_sequence(),
            SequencedTaskRunner::current().is_some_and(|c| c.is_same_sequence(&s)),
        )
    });
    blocker.release();
    assert_eq!(join(next).unwrap(), (7, true, false, true));
    assert_eq!(
        order.snapshot(),
        vec!["predecessor", "queued behind", "continuation"]
    );

    // Onto another sequence: it runs there, not on the predecessor's.
    let pred = seq.post_task_with_result(|| ()).unwrap();
    let (s, s2) = (seq.clone(), other.clone());
    let next = pred.then(&other, move |_| {
        (
            s.runs_tasks_in_current_sequence(),
            s2.runs_tasks_in_current_sequence(),
        )
    });
    assert_eq!(join(next).unwrap(), (false, true));
}

// S1(d)5: kelindar ran continuations on the predecessor's goroutine inside its run, inflating
// its duration and delaying its waiters. Here the predecessor's worker is free (and the
// predecessor resolved) while the continuation still runs: on a one-worker pool, a task posted
// after the predecessor runs while the continuation (on another pool) waits for that very task.
#[test]
fn a_continuation_does_not_run_inside_the_predecessors_run() {
    let one = pool(1);
    let other = pool(1);
    let released = Latch::new(1);
    let pred = one
        .post_task_with_result(TaskTraits::default(), || "pred")
        .unwrap();
    let l = released.clone();
    let next = pred.then(&other, move |r| {
        // Blocks until a task of the predecessor's (only) worker runs: had this run inside
        // the predecessor, that worker could never run it.
        assert!(l.wait_timeout(TIMEOUT), "the predecessor's worker is held");
        r.unwrap()
    });
    let l = released.clone();
    one.post_task(TaskTraits::default(), move || l.count_down())
        .unwrap();
    assert_eq!(join(next).unwrap(), "pred");
}

// S1(d)5: the predecessor's duration covers its work only. Observed through the one handle
// that still exists after `then`: the continuation's, whose duration covers the continuation
// alone; and the continuation sees a predecessor that has already finished (its result is
// taken from a resolved handle, never while it runs).
#[test]
fn a_continuation_has_its_own_duration_and_starts_after_the_predecessor_resolved() {
    let pool = pool(2);
    let pred_done = Arc::new(AtomicBool::new(false));
    let d = pred_done.clone();
    let pred = pool
        .post_task_with_result(TaskTraits::default(), move || {
            d.store(true, Ordering::SeqCst);
        })
        .unwrap();
    let d = pred_done.clone();
    let mut next = pred.then(&pool, move |r| {
        r.unwrap();
        d.load(Ordering::SeqCst)
    });
    let r = next.join_timeout(TIMEOUT).expect("the continuation ended");
    assert!(r.unwrap());
    assert!(next.duration().is_some());
    assert_eq!(next.state(), TaskState::Completed);
}

// ---- then: refusals and cancellation -----------------------------------------------------------

#[test]
fn a_refused_continuation_resolves_as_not_run_and_f_is_dropped_unrun() {
    let pool = pool(1);
    let closed = self::pool(1);
    closed.shutdown();
    let drops = DropCounter::new();
    let ran = Arc::new(AtomicBool::new(false));

    // The predecessor ends after `then`: the waker's post is refused.
    let blocker = Blocker::new();
    let pred = pool
        .post_task_with_result(TaskTraits::default(), blocker.task())
        .unwrap();
    blocker.wait_started();
    let (t, r) = (drops.token(), ran.clone());
    let next = pred.then(&closed, move |_| {
        t.keep();
        r.store(true, Ordering::SeqCst);
    });
    assert_eq!(next.state(), TaskState::Pending);
    blocker.release();
    assert!(join(next).unwrap_err().is_not_run());
    assert_eq!(drops.dropped(), 1);

    // Already ended: refused at once, inside `then`.
    let (t, r) = (drops.token(), ran.clone());
    let next = TaskHandle::ready(()).then(&closed, move |_| {
        t.keep();
        r.store(true, Ordering::SeqCst);
    });
    assert_eq!(next.state(), TaskState::Cancelled);
    assert!(next.join().unwrap_err().is_not_run());
    assert_eq!(drops.dropped(), 2);
    assert!(!ran.load(Ordering::SeqCst));
}

#[test]
fn cancelling_the_continuation_before_the_predecessor_ends_means_f_never_runs() {
    let pool = pool(1);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let blocker = Blocker::new();
    let pred = seq.post_task_with_result(blocker.task()).unwrap();
    blocker.wait_started();
    let drops = DropCounter::new();
    let ran = Arc::new(AtomicBool::new(false));
    let (t, r) = (drops.token(), ran.clone());
    let next = pred.then(&seq, move |_| {
        t.keep();
        r.store(true, Ordering::SeqCst);
    });
    assert!(next.cancel());
    assert!(!next.cancel());
    // Dropped at once, while the predecessor still runs: it can never run.
    assert_eq!(drops.dropped(), 1);
    assert_eq!(next.state(), TaskState::Cancelled);
    blocker.release();
    // The predecessor ends and its (cancelled) continuation is posted behind it: a task
    // posted after that point runs after it.
    support::wait_until("the predecessor finished", || blocker.finished());
    let probe = seq.post_task_with_result(|| ()).unwrap();
    join(probe).unwrap();
    assert!(!ran.load(Ordering::SeqCst));
    assert!(next.join().unwrap_err().is_cancelled());
}

#[test]
fn cancelling_an_abort_on_drop_continuation_by_dropping_it_means_f_never_runs() {
    let pool = pool(1);
    let (task, pred) = Deferred::new(|| 1);
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let next = pred
        .then(&pool, move |_| r.store(true, Ordering::SeqCst))
        .abort_on_drop();
    drop(next);
    task.run();
    // Every task posted to the one worker after the (cancelled) continuation ran behind it.
    join(
        pool.post_task_with_result(TaskTraits::default(), || ())
            .unwrap(),
    )
    .unwrap();
    assert!(!ran.load(Ordering::SeqCst));
}

// ---- then: chains ------------------------------------------------------------------------------

#[test]
fn a_chain_of_continuations_passes_values_and_recovers_from_a_panic() {
    let pool = pool(2);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let first = pool
        .post_task_with_result(TaskTraits::default(), || 2)
        .unwrap();
    let last = first
        .then(&seq, |r| r.unwrap() * 3)
        .then(&pool, |r| -> u32 {
            panic!("step 3 failed at {}", r.unwrap())
        })
        .then(&seq, |r| {
            r.unwrap_err()
                .panic_message()
                .unwrap()
                .trim_start_matches("step 3 failed at ")
                .parse::<u32>()
                .unwrap()
        })
        .then(&pool, |r| r.unwrap() + 1);
    assert_eq!(join(last).unwrap(), 7);
}

#[test]
fn a_long_chain_on_a_sequence_runs_every_link_in_order() {
    let pool = pool(2);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let (task, mut h) = Deferred::new(Vec::<u32>::new);
    for i in 0..2000u32 {
        h = h.then(&seq, move |r| {
            let mut v = r.unwrap();
            v.push(i);
            v
        });
    }
    task.run_on(&seq).unwrap();
    let v = join(h).unwrap();
    assert_eq!(v, (0..2000).collect::<Vec<_>>());
}

#[test]
fn a_chain_built_after_each_link_finished_still_runs() {
    let pool = pool(1);
    let mut h = TaskHandle::ready(0u32);
    for _ in 0..50 {
        h = h.then(&pool, |r| r.unwrap() + 1);
        support::wait_until("the link finished", || h.is_finished());
    }
    assert_eq!(join(h).unwrap(), 50);
}

#[test]
fn then_from_many_threads_each_continuation_runs_exactly_once() {
    let pool = pool(2);
    let runs = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = unbounded();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (pool, runs, tx) = (pool.clone(), runs.clone(), tx.clone());
            std::thread::spawn(move || {
                for i in 0..200u32 {
                    // Predecessors that end at all moments relative to `then`.
                    let pred = pool
                        .post_task_with_result(TaskTraits::default(), move || i)
                        .unwrap();
                    if i % 3 == 0 {
                        std::thread::yield_now();
                    }
                    let runs = runs.clone();
                    let next = pred.then(&pool, move |r| {
                        runs.fetch_add(1, Ordering::SeqCst);
                        r.unwrap() + t
                    });
                    tx.send((next, i + t)).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    for t in threads {
        t.join().unwrap();
    }
    let mut n = 0;
    for (h, want) in rx {
        assert_eq!(join(h).unwrap(), want);
        n += 1;
    }
    assert_eq!(n, 1600);
    assert_eq!(runs.load(Ordering::SeqCst), 1600);
}

// ---- then: mock time ---------------------------------------------------------------------------

#[cfg(feature = "test-util")]
#[test]
fn then_on_a_test_environment_runs_when_mock_time_reaches_the_predecessor() {
    use taskrunner::testing::TestEnvironment;
    let env = TestEnvironment::new();
    let seq = env
        .pool()
        .create_sequenced_task_runner(TaskTraits::default());
    let pred = seq
        .post_delayed_task_with_result(Duration::from_millis(100), || "late")
        .unwrap();
    let clock = env.clock().clone();
    let t0 = env.now();
    let s = seq.clone();
    let next = pred.then(&seq, move |r| {
        use taskrunner::time::Clock;
        (
            r.unwrap(),
            clock.now() - t0,
            s.runs_tasks_in_current_sequence(),
        )
    });
    env.fast_forward_by(Duration::from_millis(99));
    assert_eq!(next.state(), TaskState::Pending);
    env.fast_forward_by(Duration::from_millis(1));
    // The continuation was posted by the predecessor's end and ran inside the window.
    assert!(next.is_finished());
    assert_eq!(
        next.join().unwrap(),
        ("late", Duration::from_millis(100), true)
    );
}

// ---- Deferred ----------------------------------------------------------------------------------

#[test]
fn deferred_run_runs_on_this_thread() {
    let (task, h) = Deferred::new(|| std::thread::current().id());
    assert_eq!(h.state(), TaskState::Pending);
    assert!(!h.is_finished());
    task.run();
    assert_eq!(h.state(), TaskState::Completed);
    assert_eq!(h.join().unwrap(), std::thread::current().id());
}

#[test]
fn deferred_run_on_posts_to_the_runner() {
    let pool = pool(2);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let s = seq.clone();
    let (task, h) = Deferred::new(move || s.runs_tasks_in_current_sequence());
    task.run_on(&seq).unwrap();
    assert!(join(h).unwrap());

    let (task, h) = Deferred::new(|| 9);
    task.run_on(&pool).unwrap();
    assert_eq!(join(h).unwrap(), 9);
}

#[test]
fn deferred_run_on_after_shutdown_is_refused_and_the_handle_says_not_run() {
    let pool = pool(1);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    pool.shutdown();
    let drops = DropCounter::new();
    let t = drops.token();
    let (task, h) = Deferred::new(move || {
        t.keep();
        1
    });
    let refusal = task.run_on(&seq).unwrap_err();
    assert!(matches!(
        refusal,
        PostRefusal::ShutdownStarted | PostRefusal::ShutdownCompleted
    ));
    assert_eq!(drops.dropped(), 1, "the refused closure is dropped");
    assert_eq!(h.state(), TaskState::Cancelled);
    assert!(h.join().unwrap_err().is_not_run());
}

#[test]
fn deferred_cancel_resolves_cancelled_and_drops_the_closure_at_once() {
    let drops = DropCounter::new();
    let t = drops.token();
    let (task, h) = Deferred::new(move || {
        t.keep();
        1
    });
    assert!(task.cancel());
    assert_eq!(drops.dropped(), 1);
    assert_eq!(h.state(), TaskState::Cancelled);
    assert!(h.join().unwrap_err().is_cancelled());
}

#[test]
fn a_deferred_dropped_unrun_resolves_not_run_and_wakes_a_waiter() {
    let drops = DropCounter::new();
    let t = drops.token();
    let (task, h) = Deferred::new(move || {
        t.keep();
        1
    });
    let waiter = std::thread::spawn(move || h.join());
    std::thread::sleep(Duration::from_millis(5));
    drop(task);
    assert_eq!(drops.dropped(), 1);
    let r = must_return("the waiter", move || waiter.join().unwrap());
    assert!(r.unwrap_err().is_not_run());
}

#[test]
fn a_deferred_sent_through_a_channel_runs_where_it_is_received() {
    let (tx, rx) = bounded::<Deferred>(4);
    let mut handles = Vec::new();
    for i in 0..4u32 {
        let (task, h) = Deferred::new(move || i * i);
        tx.send(task).unwrap();
        handles.push(h);
    }
    drop(tx);
    let consumer = std::thread::spawn(move || {
        for task in rx {
            task.run();
        }
    });
    consumer.join().unwrap();
    let got: Vec<u32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(got, vec![0, 1, 4, 9]);

    // Left in a dropped channel: resolved, never pending forever (kelindar S1(d)2's shape).
    let (tx, rx) = bounded::<Deferred>(1);
    let (task, h) = Deferred::new(|| ());
    tx.send(task).unwrap();
    drop((tx, rx));
    assert!(h.join().unwrap_err().is_not_run());
}

#[test]
fn deferred_fallible_keeps_the_original_error_and_sets_failed() {
    #[derive(Debug)]
    struct Quota(u32);
    impl std::fmt::Display for Quota {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "quota exceeded by {}", self.0)
        }
    }
    impl Error for Quota {}

    let (task, h) = Deferred::fallible(|| Err::<(), _>(Quota(3)));
    task.run();
    assert_eq!(h.state(), TaskState::Failed);
    let e = h.join().unwrap_err();
    assert!(e.is_failed());
    assert!(!e.is_panic() && !e.is_cancelled() && !e.is_not_run() && !e.is_deadline_exceeded());
    assert_eq!(e.downcast_ref::<Quota>().unwrap().0, 3);
    assert!(e.downcast_ref::<std::io::Error>().is_none());
    assert_eq!(e.source().unwrap().to_string(), "quota exceeded by 3");
    assert_eq!(e.to_string(), "task failed: quota exceeded by 3");
    assert_eq!(e.attempts(), 1);
    // Clones share the original (equality is identity of the cause).
    assert_eq!(e.clone(), e);
    assert_ne!(e, TaskError::from_error(Quota(3)));

    let (task, h) = Deferred::fallible(|| Ok::<_, Quota>("fine"));
    task.run();
    assert_eq!(h.state(), TaskState::Completed);
    assert_eq!(h.join().unwrap(), "fine");

    // String errors work through `Into<Box<dyn Error>>`.
    let (task, h) = Deferred::fallible(|| Err::<(), _>("plain message"));
    task.run();
    assert_eq!(
        h.join().unwrap_err().to_string(),
        "task failed: plain message"
    );
}

#[test]
fn a_fallible_task_returning_interrupted_ends_cancelled_or_deadline_exceeded() {
    let (task, h) = Deferred::fallible(|| Err::<(), _>(Interrupted::DeadlineExceeded));
    task.run();
    assert_eq!(h.state(), TaskState::Cancelled);
    let e = h.join().unwrap_err();
    assert!(e.is_deadline_exceeded() && !e.is_cancelled() && !e.is_failed());
    assert!(e.source().is_none());

    let (task, h) = Deferred::fallible(|| Err::<(), _>(Interrupted::Cancelled));
    task.run();
    let e = h.join().unwrap_err();
    assert!(e.is_cancelled() && !e.is_deadline_exceeded());
}

#[test]
fn a_panic_inside_deferred_run_resolves_panicked_and_does_not_unwind_into_the_caller() {
    let drops = DropCounter::new();
    let t = drops.token();
    let (task, h) = Deferred::new(move || -> u32 {
        t.keep();
        panic!("deferred boom")
    });
    // `run` returns normally: no catch_unwind needed here.
    task.run();
    assert_eq!(drops.dropped(), 1);
    assert_eq!(h.state(), TaskState::Panicked);
    let e = h.join().unwrap_err();
    assert_eq!(e.panic_message(), Some("deferred boom"));

    // The same on a worker: the worker survives and runs the next task.
    let pool = pool(1);
    let (task, h) = Deferred::new(|| -> () { panic!("on a worker") });
    task.run_on(&pool).unwrap();
    assert!(join(h).unwrap_err().is_panic());
    assert_eq!(
        join(
            pool.post_task_with_result(TaskTraits::default(), || 1)
                .unwrap()
        )
        .unwrap(),
        1
    );
}

#[test]
fn handle_cancel_before_run_means_the_closure_never_runs_and_is_dropped_at_once() {
    let drops = DropCounter::new();
    let ran = Arc::new(AtomicBool::new(false));
    let (t, r) = (drops.token(), ran.clone());
    let (task, h) = Deferred::new(move || {
        t.keep();
        r.store(true, Ordering::SeqCst);
    });
    assert!(h.cancel());
    assert_eq!(
        drops.dropped(),
        1,
        "dropped by cancel, not when the task is run"
    );
    assert!(!h.cancel());
    task.run(); // a no-op
    assert!(!ran.load(Ordering::SeqCst));
    assert!(h.join().unwrap_err().is_cancelled());

    // Through a posted Deferred: cancelled while queued behind a blocker.
    let pool = pool(1);
    let blocker = Blocker::new();
    pool.post_task(TaskTraits::default(), blocker.task())
        .unwrap();
    blocker.wait_started();
    let (t, r) = (drops.token(), ran.clone());
    let (task, h) = Deferred::new(move || {
        t.keep();
        r.store(true, Ordering::SeqCst);
    });
    task.run_on(&pool).unwrap();
    assert!(h.cancel());
    assert_eq!(drops.dropped(), 2);
    blocker.release();
    join(
        pool.post_task_with_result(TaskTraits::default(), || ())
            .unwrap(),
    )
    .unwrap();
    assert!(!ran.load(Ordering::SeqCst));

    // `Deferred::cancel` after the handle cancelled it: `false`, nothing changes.
    let (task, h) = Deferred::new(|| ());
    assert!(h.cancel());
    assert!(!task.cancel());
    assert!(h.join().unwrap_err().is_cancelled());
}

// ---- TaskError kinds ---------------------------------------------------------------------------

#[test]
fn task_error_kinds_are_exclusive_and_terminal_states_match() {
    assert!(TaskState::Failed.is_terminal());
    let failed = TaskError::from_error("x");
    let deadline = TaskError::from_error(Interrupted::DeadlineExceeded);
    let cancelled = TaskError::from_error(Interrupted::Cancelled);
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let panicked = pool
        .post_task_with_result(TaskTraits::default(), || -> u8 { panic!("p") })
        .unwrap()
        .join()
        .unwrap_err();
    assert!(TaskError::new("p").is_failed());
    let kinds = |e: &TaskError| {
        [
            e.is_failed(),
            e.is_deadline_exceeded(),
            e.is_cancelled(),
            e.is_panic(),
            e.is_not_run(),
        ]
    };
    assert_eq!(kinds(&failed), [true, false, false, false, false]);
    assert_eq!(kinds(&deadline), [false, true, false, false, false]);
    assert_eq!(kinds(&cancelled), [false, false, true, false, false]);
    assert_eq!(kinds(&panicked), [false, false, false, true, false]);
    assert_eq!(deadline.to_string(), "task deadline exceeded");
    assert!(failed.source().is_some() && deadline.source().is_none());
    // A boxed error keeps its concrete type for downcasting.
    let boxed: Box<dyn Error + Send + Sync> = Box::new(std::fmt::Error);
    assert!(TaskError::from_error(boxed)
        .downcast_ref::<std::fmt::Error>()
        .is_some());
}
