//! Per-runner control: `flush` waits for what was posted before it (and only that), `close`
//! refuses later posts with the closure handed back while queued tasks follow the runner's
//! shutdown behaviour, and nothing posted around a close is lost. Timeouts only turn a hang
//! into a failure; nothing asserts on timing.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use taskrunner::{PostRefusal, PostTask, ShutdownBehavior, TaskPriority, TaskTraits, ThreadPool};

const HANG: Duration = Duration::from_secs(20);

fn skip() -> TaskTraits {
    TaskTraits::new().shutdown_behavior(ShutdownBehavior::SkipOnShutdown)
}

fn block() -> TaskTraits {
    TaskTraits::new().shutdown_behavior(ShutdownBehavior::BlockShutdown)
}

#[test]
fn flush_waits_for_every_task_posted_before_it_on_each_kind_of_sequence() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let single = pool.create_single_thread_task_runner(TaskTraits::default());
    let updateable = pool.create_updateable_sequenced_task_runner(TaskTraits::default());
    let n = Arc::new(AtomicUsize::new(0));
    for _ in 0..20 {
        for post in [
            &|f: Box<dyn FnOnce() + Send>| seq.post_task(f).map_err(|_| ()),
            &|f: Box<dyn FnOnce() + Send>| single.post_task(f).map_err(|_| ()),
            &|f: Box<dyn FnOnce() + Send>| updateable.post_task(f).map_err(|_| ()),
        ] as [&dyn Fn(Box<dyn FnOnce() + Send>) -> Result<(), ()>; 3]
        {
            let n = n.clone();
            post(Box::new(move || {
                std::thread::sleep(Duration::from_micros(200));
                n.fetch_add(1, Ordering::SeqCst);
            }))
            .unwrap();
        }
    }
    seq.flush().unwrap();
    single.flush().unwrap();
    updateable.flush().unwrap();
    assert_eq!(n.load(Ordering::SeqCst), 60);
}

#[test]
fn flush_does_not_wait_for_delayed_tasks_that_are_not_due() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let (tx, rx) = mpsc::channel();
    seq.post_delayed_task(Duration::from_secs(3600), || ())
        .unwrap();
    seq.post_task(move || tx.send(()).unwrap()).unwrap();
    seq.flush().unwrap();
    rx.try_recv()
        .expect("the immediate task ran before flush returned");
    assert_eq!(pool.pending_delayed_tasks(), 1);
}

#[test]
fn flush_from_a_task_of_its_own_sequence_panics_instead_of_hanging() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let s2 = seq.clone();
    let h = seq
        .post_task_with_result(move || {
            let _ = s2.flush();
        })
        .unwrap();
    let err = h.join().unwrap_err();
    let msg = err.panic_message().unwrap_or_default().to_owned();
    assert!(msg.contains("flush"), "{msg}");
}

#[test]
fn close_refuses_later_posts_and_hands_the_closure_back() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let other = pool.create_sequenced_task_runner(TaskTraits::default());
    assert!(!seq.is_closed());
    assert!(seq.close());
    assert!(!seq.close());
    let (tx, rx) = mpsc::channel();
    let err = seq.post_task(move || tx.send(7).unwrap()).unwrap_err();
    assert_eq!(err.reason(), PostRefusal::RunnerClosed);
    (err.into_inner())(); // the closure came back, whole
    assert_eq!(rx.try_recv().unwrap(), 7);
    assert!(seq
        .post_delayed_task(Duration::from_millis(1), || ())
        .is_err());
    assert!(seq.post_task_with_result(|| ()).is_err());
    assert_eq!(pool.metrics().posts_refused(), 3);
    // The pool and its other runners go on.
    assert_eq!(
        other.post_task_with_result(|| 1).unwrap().join().unwrap(),
        1
    );
    assert!(!pool.is_shutdown());
}

mod support;
use support::hold;

#[test]
fn queued_tasks_follow_the_runners_shutdown_behaviour_after_close() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let skipping = pool.create_sequenced_task_runner(skip());
    let blocking = pool.create_sequenced_task_runner(block());
    let release = hold(&pool);
    let order = Arc::new(Mutex::new(Vec::new()));
    let skipped: Vec<_> = (0..3)
        .map(|i| {
            let o = order.clone();
            skipping
                .post_task_with_result(move || o.lock().unwrap().push(("skip", i)))
                .unwrap()
        })
        .collect();
    let kept: Vec<_> = (0..3)
        .map(|i| {
            let o = order.clone();
            blocking
                .post_task_with_result(move || o.lock().unwrap().push(("block", i)))
                .unwrap()
        })
        .collect();
    assert!(skipping.close());
    assert!(blocking.close());
    release.release();
    for h in skipped {
        let err = h.join().unwrap_err();
        assert!(err.is_not_run(), "{err:?}");
    }
    for h in kept {
        h.join().unwrap();
    }
    assert_eq!(
        *order.lock().unwrap(),
        vec![("block", 0), ("block", 1), ("block", 2)]
    );
    // flush still works on a closed runner: its marker queues behind the others.
    skipping.flush().unwrap();
    blocking.flush().unwrap();
}

#[test]
fn a_delayed_task_of_a_closed_runner_is_dropped_when_it_ripens() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let seq = pool.create_sequenced_task_runner(block());
    let h = seq
        .post_delayed_task_with_result(Duration::from_millis(5), || ())
        .unwrap();
    seq.close();
    let err = h.join().unwrap_err();
    assert!(err.is_not_run(), "{err:?}");
}

#[test]
fn the_running_task_finishes_after_close() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let seq = pool.create_sequenced_task_runner(skip());
    let (started_tx, started) = mpsc::channel();
    let (go_tx, go) = mpsc::channel::<()>();
    let h = seq
        .post_task_with_result(move || {
            started_tx.send(()).unwrap();
            go.recv().unwrap();
            "finished"
        })
        .unwrap();
    started.recv_timeout(HANG).unwrap();
    seq.close();
    go_tx.send(()).unwrap();
    assert_eq!(h.join().unwrap(), "finished");
}

#[test]
fn nothing_posted_around_a_close_is_lost() {
    for round in 0..20 {
        let pool = ThreadPool::builder().max_workers(2).build().unwrap();
        let seq = pool.create_sequenced_task_runner(skip().priority(TaskPriority::UserVisible));
        let poster = seq.clone();
        let race = support::posts_around_close(
            3,
            200,
            round % 2 == 1,
            move |_, _, task| poster.post_task_with_result(task).map_err(|e| e.reason()),
            || {
                seq.close();
            },
        );
        assert_eq!(pool.metrics().posts_refused(), race.refused as u64);
    }
}
