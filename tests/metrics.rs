//! `ThreadPool::metrics`: every counter counts exactly under a known workload, including
//! shutdown, panics, refusals and posts from many threads at once; the gauges see what is
//! queued. Timeouts only turn a hang into a failure; nothing asserts on timing.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use taskrunner::{PanicPolicy, PostTask, ShutdownBehavior, TaskPriority, TaskTraits, ThreadPool};

const HANG: Duration = Duration::from_secs(20);

mod support;
use support::Blocker;

/// A pool whose only worker is held by a task until the blocker is released.
fn held_pool() -> (ThreadPool, Blocker) {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let blocker = Blocker::new();
    pool.post_task(TaskTraits::default(), blocker.task())
        .unwrap();
    blocker.wait_started();
    (pool, blocker)
}

#[test]
fn a_fresh_pool_counts_nothing() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let m = pool.metrics();
    assert_eq!(m.tasks_started(), 0);
    assert_eq!(m.tasks_panicked(), 0);
    assert_eq!(m.posts_refused(), 0);
    assert_eq!(m.delayed(), 0);
    assert_eq!(m.ready_in_local_queues(), 0);
    for p in [
        TaskPriority::BestEffort,
        TaskPriority::UserVisible,
        TaskPriority::UserBlocking,
    ] {
        assert_eq!(m.ready(p), 0);
    }
}

#[test]
fn every_kind_of_runner_counts_each_task_it_starts() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let par = pool.create_task_runner(TaskTraits::default());
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let single = pool.create_single_thread_task_runner(TaskTraits::default());
    let keyed = pool.create_keyed_task_runner::<u32>(TaskTraits::default());
    let (tx, rx) = mpsc::channel();
    for i in 0..50_u32 {
        let t = tx.clone();
        par.post_task(move || t.send(()).unwrap()).unwrap();
        let t = tx.clone();
        seq.post_task(move || t.send(()).unwrap()).unwrap();
        let t = tx.clone();
        single.post_task(move || t.send(()).unwrap()).unwrap();
        let t = tx.clone();
        keyed.post_task(i % 3, move || t.send(()).unwrap()).unwrap();
        let t = tx.clone();
        pool.post_delayed_task(TaskTraits::default(), Duration::from_millis(1), move || {
            t.send(()).unwrap()
        })
        .unwrap();
    }
    let joined: Vec<_> = (0..50)
        .map(|i| {
            pool.post_task_with_result(TaskTraits::default(), move || i)
                .unwrap()
        })
        .collect();
    for _ in 0..250 {
        rx.recv_timeout(HANG).unwrap();
    }
    for h in joined {
        h.join().unwrap();
    }
    assert_eq!(pool.metrics().tasks_started(), 300);
}

#[test]
fn posts_from_many_threads_are_all_counted() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let threads = 4;
    let per_thread = 2_000;
    let barrier = Arc::new(Barrier::new(threads));
    let (tx, rx) = mpsc::channel();
    let posters: Vec<_> = (0..threads)
        .map(|_| {
            let (pool, barrier, tx) = (pool.clone(), barrier.clone(), tx.clone());
            std::thread::spawn(move || {
                let seq = pool.create_sequenced_task_runner(TaskTraits::default());
                barrier.wait();
                for i in 0..per_thread {
                    let tx = tx.clone();
                    if i % 2 == 0 {
                        seq.post_task(move || tx.send(()).unwrap()).unwrap();
                    } else {
                        pool.post_task(TaskTraits::default(), move || tx.send(()).unwrap())
                            .unwrap();
                    }
                }
            })
        })
        .collect();
    for p in posters {
        p.join().unwrap();
    }
    for _ in 0..threads * per_thread {
        rx.recv_timeout(HANG).unwrap();
    }
    assert_eq!(
        pool.metrics().tasks_started(),
        (threads * per_thread) as u64
    );
}

#[test]
fn tasks_that_post_tasks_are_counted_too() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let (tx, rx) = mpsc::channel();
    let p2 = pool.clone();
    pool.post_task(TaskTraits::default(), move || {
        for _ in 0..100 {
            let tx = tx.clone();
            // Kept in the worker's local queue, or stolen: counted either way.
            p2.post_task(TaskTraits::default(), move || tx.send(()).unwrap())
                .unwrap();
        }
    })
    .unwrap();
    for _ in 0..100 {
        rx.recv_timeout(HANG).unwrap();
    }
    assert_eq!(pool.metrics().tasks_started(), 101);
}

#[test]
fn panics_are_counted_once_each_whoever_catches_them() {
    let (seen_tx, seen) = mpsc::channel();
    let pool = ThreadPool::builder()
        .max_workers(2)
        .panic_handler(move |_| {
            let _ = seen_tx.send(());
        })
        .build()
        .unwrap();
    for _ in 0..3 {
        pool.post_task(TaskTraits::default(), || panic!("plain"))
            .unwrap();
    }
    let handles: Vec<_> = (0..2)
        .map(|_| {
            pool.post_task_with_result(TaskTraits::default(), || -> u32 { panic!("joined") })
                .unwrap()
        })
        .collect();
    let poisoned =
        pool.create_sequenced_task_runner(TaskTraits::new().panic_policy(PanicPolicy::Poison));
    poisoned.post_task(|| panic!("poisons")).unwrap();
    for _ in 0..6 {
        seen.recv_timeout(HANG).unwrap();
    }
    for h in handles {
        assert!(h.join().is_err());
    }
    let m = pool.metrics();
    assert_eq!(m.tasks_panicked(), 6);
    assert_eq!(m.tasks_started(), 6);
    // The poisoned sequence refuses what comes next: a refusal, counted.
    assert!(poisoned.post_task(|| ()).is_err());
    assert_eq!(pool.metrics().posts_refused(), 1);
}

#[test]
fn refusals_after_shutdown_are_counted_and_skipped_tasks_never_start() {
    let (pool, release) = held_pool();
    let skip = TaskTraits::new().shutdown_behavior(ShutdownBehavior::SkipOnShutdown);
    let block = TaskTraits::new().shutdown_behavior(ShutdownBehavior::BlockShutdown);
    let seq = pool.create_sequenced_task_runner(skip);
    for _ in 0..5 {
        pool.post_task(skip, || ()).unwrap();
        seq.post_task(|| ()).unwrap();
    }
    for _ in 0..2 {
        pool.post_task(block, || ()).unwrap();
    }
    let shutting = {
        let pool = pool.clone();
        std::thread::spawn(move || pool.shutdown())
    };
    // Refused once shutdown started (the running task still holds the only worker).
    let t0 = std::time::Instant::now();
    while !pool.is_shutdown() {
        assert!(t0.elapsed() < HANG);
        std::thread::yield_now();
    }
    let mut refused = 0;
    refused += u64::from(pool.post_task(skip, || ()).is_err());
    refused += u64::from(seq.post_task(|| ()).is_err());
    refused += u64::from(
        pool.post_delayed_task(block, Duration::from_millis(1), || ())
            .is_err(),
    );
    assert_eq!(refused, 3);
    release.release();
    shutting.join().unwrap();
    let m = pool.metrics();
    // The holder and the two block-shutdown tasks ran; the ten skip tasks never started.
    assert_eq!(m.tasks_started(), 3);
    assert_eq!(m.posts_refused(), 3);
    assert_eq!(m.tasks_panicked(), 0);
}

#[test]
fn ready_counts_what_waits_by_priority_and_empties_as_it_runs() {
    let (pool, release) = held_pool();
    let seq =
        pool.create_sequenced_task_runner(TaskTraits::new().priority(TaskPriority::UserVisible));
    for _ in 0..3 {
        pool.post_task(TaskTraits::new().priority(TaskPriority::BestEffort), || ())
            .unwrap();
        seq.post_task(|| ()).unwrap();
    }
    let (tx, rx) = mpsc::channel();
    pool.post_task(
        TaskTraits::new().priority(TaskPriority::UserBlocking),
        move || tx.send(()).unwrap(),
    )
    .unwrap();
    pool.post_delayed_task(TaskTraits::default(), Duration::from_secs(3600), || ())
        .unwrap();
    let m = pool.metrics();
    assert_eq!(m.ready(TaskPriority::BestEffort), 3);
    assert_eq!(m.ready(TaskPriority::UserVisible), 3);
    assert_eq!(m.ready(TaskPriority::UserBlocking), 1);
    assert_eq!(m.delayed(), 1);
    assert_eq!(m.workers(), 1);
    assert_eq!(m.idle_workers(), 0);
    assert!(m.to_string().contains("ready 1/3/3"), "{m}");
    release.release();
    rx.recv_timeout(HANG).unwrap();
    let t0 = std::time::Instant::now();
    while pool.metrics().tasks_started() < 8 {
        assert!(t0.elapsed() < HANG);
        std::thread::yield_now();
    }
    let m = pool.metrics();
    assert_eq!(m.ready(TaskPriority::BestEffort), 0);
    assert_eq!(m.ready(TaskPriority::UserVisible), 0);
    assert_eq!(m.ready(TaskPriority::UserBlocking), 0);
    assert_eq!(m.delayed(), 1);
}

#[test]
fn a_panic_is_counted_before_its_joiner_hears_of_it() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    for n in 1..=20_u64 {
        let h = pool
            .post_task_with_result(TaskTraits::default(), || -> u32 { panic!("joined") })
            .unwrap();
        assert!(h.join().is_err());
        assert_eq!(pool.metrics().tasks_panicked(), n);
    }
    // A retried attempt's panic is caught by the retry and reported once.
    let h = taskrunner::retry::retry(
        &pool,
        taskrunner::retry::RetryPolicy::attempts(1),
        || -> Result<u32, std::io::Error> { panic!("attempt") },
    );
    assert!(h.join().is_err());
    assert_eq!(pool.metrics().tasks_panicked(), 21);
}
