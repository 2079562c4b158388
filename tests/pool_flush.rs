//! `ThreadPool::flush`: returns once nothing is queued or running — whatever runner posted
//! it, whether it panicked, was poisoned away or dropped by a closed runner, and including
//! chains of tasks that post the next one. Delayed tasks that are not due are not waited for.
//! Timeouts only turn a hang into a failure; nothing asserts on timing.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use taskrunner::{PanicPolicy, PostTask, TaskTraits, ThreadPool};

mod support;
use support::must_return;

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

fn bump(n: &Arc<AtomicUsize>) -> impl FnOnce() + Send + 'static {
    let n = n.clone();
    move || {
        n.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn flush_waits_for_the_tasks_of_every_kind_of_runner() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let par = pool.create_task_runner(TaskTraits::default());
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let single = pool.create_single_thread_task_runner(TaskTraits::default());
    let updateable = pool.create_updateable_sequenced_task_runner(TaskTraits::default());
    let keyed = pool.create_keyed_task_runner::<u32>(TaskTraits::default());
    let n = counter();
    for i in 0..40_u32 {
        let slow = {
            let n = n.clone();
            move || {
                std::thread::sleep(Duration::from_micros(100));
                n.fetch_add(1, Ordering::SeqCst);
            }
        };
        pool.post_task(TaskTraits::default(), bump(&n)).unwrap();
        par.post_task(slow).unwrap();
        seq.post_task(bump(&n)).unwrap();
        single.post_task(bump(&n)).unwrap();
        updateable.post_task(bump(&n)).unwrap();
        keyed.post_task(i % 4, bump(&n)).unwrap();
        drop(
            pool.post_task_with_result(TaskTraits::default(), bump(&n))
                .unwrap(),
        );
    }
    must_return("flush", move || pool.flush());
    assert_eq!(n.load(Ordering::SeqCst), 280);
}

#[test]
fn flush_waits_for_a_chain_of_tasks_that_post_the_next_one() {
    fn link(pool: ThreadPool, left: usize, n: Arc<AtomicUsize>) {
        n.fetch_add(1, Ordering::SeqCst);
        if left > 0 {
            let p = pool.clone();
            pool.post_task(TaskTraits::default(), move || link(p, left - 1, n))
                .unwrap();
        }
    }
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let n = counter();
    let (p, n2) = (pool.clone(), n.clone());
    pool.post_task(TaskTraits::default(), move || link(p, 499, n2))
        .unwrap();
    pool.flush();
    assert_eq!(n.load(Ordering::SeqCst), 500);
}

#[test]
fn delayed_tasks_that_are_not_due_are_not_waited_for() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let n = counter();
    pool.post_delayed_task(TaskTraits::default(), Duration::from_secs(3600), bump(&n))
        .unwrap();
    pool.post_task(TaskTraits::default(), bump(&n)).unwrap();
    let p = pool.clone();
    must_return("flush", move || p.flush());
    assert_eq!(n.load(Ordering::SeqCst), 1);
    assert_eq!(pool.pending_delayed_tasks(), 1);
}

#[test]
fn panics_poisoned_sequences_and_closed_runners_do_not_hold_flush_up() {
    let pool = ThreadPool::builder()
        .max_workers(1)
        .panic_handler(|_| {})
        .build()
        .unwrap();
    // A panicking task.
    pool.post_task(TaskTraits::default(), || panic!("boom"))
        .unwrap();
    // A poisoned sequence with tasks queued behind the panic (dropped when they come up).
    let poisoned =
        pool.create_sequenced_task_runner(TaskTraits::new().panic_policy(PanicPolicy::Poison));
    poisoned.post_task(|| panic!("poison")).unwrap();
    for _ in 0..5 {
        poisoned.post_task(|| ()).unwrap();
    }
    // A poisoned updateable runner: its held tasks are dropped at once.
    let held = pool.create_updateable_sequenced_task_runner(
        TaskTraits::new().panic_policy(PanicPolicy::Poison),
    );
    held.post_task(|| panic!("poison held")).unwrap();
    for _ in 0..5 {
        held.post_task(|| ()).unwrap();
    }
    // A closed runner whose queued tasks are dropped.
    let closed = pool.create_sequenced_task_runner(TaskTraits::default());
    let gate = support::Blocker::new();
    closed.post_task(gate.task()).unwrap();
    gate.wait_started();
    for _ in 0..5 {
        closed.post_task(|| ()).unwrap();
    }
    closed.close();
    gate.release();
    let p = pool.clone();
    must_return("flush", move || p.flush());
    assert_eq!(pool.metrics().tasks_panicked(), 3);
}

#[test]
fn flush_with_posters_running_returns_and_a_second_flush_sees_everything() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let n = counter();
    let threads = 3;
    let per = 1_000;
    let barrier = Arc::new(Barrier::new(threads + 1));
    let posters: Vec<_> = (0..threads)
        .map(|_| {
            let (pool, barrier, n) = (pool.clone(), barrier.clone(), n.clone());
            std::thread::spawn(move || {
                barrier.wait();
                for _ in 0..per {
                    pool.post_task(TaskTraits::default(), bump(&n)).unwrap();
                }
            })
        })
        .collect();
    barrier.wait();
    let p = pool.clone();
    must_return("flush while posting", move || p.flush());
    for t in posters {
        t.join().unwrap();
    }
    pool.flush();
    assert_eq!(n.load(Ordering::SeqCst), threads * per);
}

#[test]
fn flush_from_a_task_of_the_same_pool_panics_instead_of_hanging() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let p = pool.clone();
    let h = pool
        .post_task_with_result(TaskTraits::default(), move || p.flush())
        .unwrap();
    let err = h.join().unwrap_err();
    let msg = err.panic_message().unwrap_or_default().to_owned();
    assert!(msg.contains("would wait for itself"), "{msg}");
    // From a task of another pool it is fine.
    let other = ThreadPool::builder().max_workers(1).build().unwrap();
    let p = pool.clone();
    other
        .post_task_with_result(TaskTraits::default(), move || p.flush())
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn flush_after_shutdown_returns_at_once() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    pool.post_task(TaskTraits::default(), || ()).unwrap();
    pool.shutdown();
    let p = pool.clone();
    must_return("flush after shutdown", move || p.flush());
}
