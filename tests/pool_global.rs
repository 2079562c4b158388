//! The process-wide pool (its own test process: `build_global` can succeed only once per
//! process). Every test installs the same configured pool first, through `install()`.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::sync::mpsc;
use std::sync::Once;
use std::time::{Duration, Instant};

use support::{Recorder, TIMEOUT};
use taskrunner::PostTask;
use taskrunner::{SequencedTaskRunner, TaskPriority, TaskTraits, ThreadPool};

fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        ThreadPool::builder()
            .max_workers(3)
            .thread_name("glob")
            .build_global()
            .expect("the first build_global installs the pool");
    });
}

#[test]
fn build_global_installs_the_pool_that_global_returns() {
    install();
    let g = ThreadPool::global();
    assert_eq!(g.max_workers(), 3);
    assert!(
        std::ptr::eq(g, ThreadPool::global()),
        "always the same pool"
    );
    let (tx, rx) = mpsc::channel();
    g.post_task(TaskTraits::default(), move || {
        tx.send(std::thread::current().name().map(str::to_owned))
            .unwrap()
    })
    .unwrap();
    let name = rx.recv_timeout(TIMEOUT).unwrap().unwrap();
    assert!(name.starts_with("glob-worker-"), "{name}");
}

#[test]
fn second_build_global_is_an_error() {
    install();
    let err = ThreadPool::builder()
        .max_workers(1)
        .build_global()
        .unwrap_err();
    assert!(err.is_global_already_installed());
    assert!(!err.is_invalid_config());
    let msg = err.to_string();
    assert!(msg.contains("already installed"), "{msg}");
    // The installed pool is unchanged.
    assert_eq!(ThreadPool::global().max_workers(), 3);
}

#[test]
fn free_post_task_runs_on_the_global_pool() {
    install();
    let (tx, rx) = mpsc::channel();
    taskrunner::post_task(TaskTraits::default(), move || {
        tx.send(std::thread::current().name().map(str::to_owned))
            .unwrap()
    })
    .unwrap();
    let name = rx.recv_timeout(TIMEOUT).unwrap().unwrap();
    assert!(name.starts_with("glob-worker-"), "{name}");
}

#[test]
fn free_post_delayed_task_never_runs_early() {
    install();
    let (tx, rx) = mpsc::channel();
    let t0 = Instant::now();
    let delay = Duration::from_millis(15);
    taskrunner::post_delayed_task(TaskTraits::default(), delay, move || {
        tx.send(t0.elapsed()).unwrap()
    })
    .unwrap();
    let waited = rx.recv_timeout(TIMEOUT).unwrap();
    assert!(waited >= delay, "ran after {waited:?}");
}

#[test]
fn free_create_task_runner_posts_to_the_global_pool() {
    install();
    let runner = taskrunner::create_task_runner(TaskPriority::UserVisible.into());
    assert_eq!(runner.traits().priority, TaskPriority::UserVisible);
    let (tx, rx) = mpsc::channel();
    for i in 0..10 {
        let tx = tx.clone();
        runner.post_task(move || tx.send(i).unwrap()).unwrap();
    }
    let mut got: Vec<i32> = (0..10).map(|_| rx.recv_timeout(TIMEOUT).unwrap()).collect();
    got.sort_unstable();
    assert_eq!(got, (0..10).collect::<Vec<_>>());
}

#[test]
fn free_create_sequenced_task_runner_keeps_order() {
    install();
    let seq = taskrunner::create_sequenced_task_runner(TaskTraits::default());
    let rec = Recorder::new();
    for i in 0..200 {
        seq.post_task(rec.task(i)).unwrap();
    }
    let (tx, rx) = mpsc::channel();
    let s2 = seq.clone();
    seq.post_task(move || {
        let cur = SequencedTaskRunner::current().unwrap();
        tx.send(cur.is_same_sequence(&s2)).unwrap()
    })
    .unwrap();
    assert!(rx.recv_timeout(TIMEOUT).unwrap());
    assert_eq!(rec.wait_for_len(200), (0..200).collect::<Vec<_>>());
}

#[test]
fn free_create_single_thread_task_runner_uses_one_thread() {
    install();
    let st = taskrunner::create_single_thread_task_runner(TaskTraits::default());
    let rec = Recorder::new();
    for _ in 0..20 {
        let r = rec.clone();
        st.post_task(move || r.push(std::thread::current().id()))
            .unwrap();
    }
    let ids = rec.wait_for_len(20);
    assert!(ids.iter().all(|id| *id == ids[0]));
    let name = {
        let (tx, rx) = mpsc::channel();
        st.post_task(move || {
            tx.send(std::thread::current().name().map(str::to_owned))
                .unwrap()
        })
        .unwrap();
        rx.recv_timeout(TIMEOUT).unwrap().unwrap()
    };
    assert!(name.starts_with("glob-single-"), "{name}");
    // Dropping the runner joins its thread; the global pool carries on.
    support::must_return("dropping a global single-thread runner", move || drop(st));
    let (tx, rx) = mpsc::channel();
    taskrunner::post_task(TaskTraits::default(), move || tx.send(()).unwrap()).unwrap();
    rx.recv_timeout(TIMEOUT).unwrap();
}
