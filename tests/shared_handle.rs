//! `SharedHandle`: one task's outcome read by many waiters, blocking and async, with the same
//! waiting rules as `TaskHandle::join`. Timeouts only turn a hang into a failure.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::sync::{mpsc, Arc, Barrier};
use std::time::Duration;

use taskrunner::testing::TestEnvironment;
use taskrunner::{PostTask, TaskState, TaskTraits, ThreadPool};

mod support;
use support::TIMEOUT;

#[test]
fn every_waiter_gets_a_clone_of_the_value_while_the_task_runs_once() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (gate_tx, gate) = mpsc::channel::<()>();
    let r2 = runs.clone();
    let shared = pool
        .post_task_with_result(TaskTraits::default(), move || {
            gate.recv().unwrap();
            r2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            vec![1, 2, 3]
        })
        .unwrap()
        .shared();
    assert!(shared.try_get().is_none());
    let start = Arc::new(Barrier::new(9));
    let waiters: Vec<_> = (0..8)
        .map(|_| {
            let (shared, start) = (shared.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                shared.join().unwrap()
            })
        })
        .collect();
    start.wait();
    gate_tx.send(()).unwrap();
    for w in waiters {
        assert_eq!(w.join().unwrap(), vec![1, 2, 3]);
    }
    assert_eq!(shared.join().unwrap(), vec![1, 2, 3]);
    assert_eq!(shared.try_get().unwrap().unwrap(), vec![1, 2, 3]);
    assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(shared.state(), TaskState::Completed);
}

#[test]
fn async_and_blocking_waiters_mix() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let (gate_tx, gate) = mpsc::channel::<()>();
    let shared = pool
        .post_task_with_result(TaskTraits::default(), move || {
            gate.recv().unwrap();
            String::from("ready")
        })
        .unwrap()
        .shared();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let futures: Vec<_> = (0..5).map(|_| rt.spawn(shared.clone())).collect();
    let blocking = {
        let s = shared.clone();
        std::thread::spawn(move || s.join().unwrap())
    };
    std::thread::sleep(Duration::from_millis(5));
    gate_tx.send(()).unwrap();
    for f in futures {
        assert_eq!(rt.block_on(f).unwrap().unwrap(), "ready");
    }
    assert_eq!(blocking.join().unwrap(), "ready");
}

#[test]
fn failures_and_cancellation_reach_every_waiter() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let panicked = pool
        .post_task_with_result(TaskTraits::default(), || -> u8 { panic!("boom") })
        .unwrap()
        .shared();
    let other = panicked.clone();
    assert_eq!(panicked.join().unwrap_err().panic_message(), Some("boom"));
    assert_eq!(other.join().unwrap_err().panic_message(), Some("boom"));

    let delayed = pool
        .post_delayed_task_with_result(TaskTraits::default(), Duration::from_secs(3600), || 1)
        .unwrap()
        .shared();
    assert!(delayed.join_timeout(Duration::from_millis(2)).is_none());
    assert!(delayed.clone().cancel());
    assert!(delayed.join().unwrap_err().is_cancelled());
    assert!(delayed
        .join_timeout(TIMEOUT)
        .unwrap()
        .unwrap_err()
        .is_cancelled());
}

#[test]
fn waiters_inside_pool_tasks_do_not_use_up_the_workers() {
    // One worker: three tasks wait for a task that can only run after them (it ripens later).
    // Each join is a blocking scope, so the pool runs another worker meanwhile.
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let target = pool
        .post_delayed_task_with_result(TaskTraits::default(), Duration::from_millis(20), || 9u32)
        .unwrap()
        .shared();
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let t = target.clone();
            pool.post_task_with_result(TaskTraits::default(), move || t.join().unwrap())
                .unwrap()
        })
        .collect();
    for w in waiters {
        assert_eq!(w.join().unwrap(), 9);
    }
}

#[test]
fn a_wait_from_the_tasks_own_sequence_panics_instead_of_hanging() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let (tx, rx) = mpsc::channel();
    let s2 = seq.clone();
    let outer = seq
        .post_task_with_result(move || {
            let later = s2.post_task_with_result(|| 1).unwrap().shared();
            tx.send(later.clone()).unwrap();
            later.join()
        })
        .unwrap();
    let err = outer.join().unwrap_err();
    assert!(err.is_panic(), "{err:?}");
    // The task itself ran after all, and its outcome is there for everyone else.
    let later = rx.recv().unwrap();
    assert_eq!(later.join().unwrap(), 1);
}

#[test]
fn a_shared_handle_works_in_a_test_environment() {
    let env = TestEnvironment::new();
    let h = env
        .pool()
        .post_delayed_task_with_result(TaskTraits::default(), Duration::from_secs(60), || "tick")
        .unwrap()
        .shared();
    env.fast_forward_by(Duration::from_secs(59));
    assert!(h.try_get().is_none());
    env.fast_forward_by(Duration::from_secs(1));
    assert_eq!(h.try_get().unwrap().unwrap(), "tick");
    assert_eq!(h.clone().join().unwrap(), "tick");
}
