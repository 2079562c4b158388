//! Refused posts say why and hand the closure back; invalid builder settings are clear errors.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::error::Error;
use std::time::Duration;

use support::{wait_until, Blocker, DropCounter, Recorder};
use taskrunner::PostTask;
use taskrunner::{PostError, PostRefusal, ShutdownBehavior, TaskTraits, ThreadPool};

#[test]
fn refused_post_after_shutdown_has_a_clear_message() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    pool.shutdown();
    let err = pool.post_task(TaskTraits::default(), || ()).unwrap_err();
    assert_eq!(err.reason(), PostRefusal::ShutdownCompleted);
    assert!(err.is_shutdown());
    let msg = err.to_string();
    assert!(
        msg.contains("refused") && msg.contains("shut down"),
        "{msg}"
    );
    assert!(
        !msg.ends_with('.'),
        "error messages carry no trailing period: {msg}"
    );
    let dbg = format!("{err:?}");
    assert!(dbg.contains("ShutdownCompleted"), "{dbg}");
    // Usable as a boxed error (the closure type needs no bounds for that).
    let boxed: Box<dyn Error> = Box::new(err);
    assert_eq!(boxed.to_string(), msg);
}

#[test]
fn refused_post_during_shutdown_has_a_clear_message() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let blocker = Blocker::new();
    pool.post_task(TaskTraits::default(), blocker.task())
        .unwrap();
    blocker.wait_started();
    let p2 = pool.clone();
    let shutting_down = std::thread::spawn(move || p2.shutdown());
    wait_until("shutdown has started", || pool.is_shutdown());

    let err = pool.post_task(TaskTraits::default(), || ()).unwrap_err();
    assert_eq!(err.reason(), PostRefusal::ShutdownStarted);
    assert!(err.is_shutdown());
    let msg = err.to_string();
    assert!(msg.contains("shutting down"), "{msg}");
    assert!(
        msg.contains("BlockShutdown"),
        "the message says what is still accepted: {msg}"
    );
    blocker.release();
    shutting_down.join().unwrap();
}

#[test]
fn into_inner_gives_back_the_very_closure_with_its_captures() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    pool.shutdown();
    let drops = DropCounter::new();
    let rec = Recorder::new();
    let (tok, r) = (drops.token(), rec.clone());
    let payload = vec![1, 2, 3];
    let err: PostError<_> = seq
        .post_task(move || {
            tok.keep();
            r.push(payload);
        })
        .unwrap_err();
    assert_eq!(
        drops.dropped(),
        0,
        "the refused closure is alive, inside the error"
    );
    let f = err.into_inner();
    assert_eq!(drops.dropped(), 0);
    f();
    assert_eq!(rec.snapshot(), vec![vec![1, 2, 3]]);
    assert_eq!(drops.dropped(), 1);
}

#[test]
fn dropping_a_refused_post_error_drops_the_closure_once() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    pool.shutdown();
    let drops = DropCounter::new();
    let tok = drops.token();
    let err = pool
        .post_delayed_task(TaskTraits::default(), Duration::from_secs(1), move || {
            tok.keep()
        })
        .unwrap_err();
    assert_eq!(drops.dropped(), 0);
    drop(err);
    assert_eq!(drops.dropped(), 1);
}

#[test]
fn delayed_block_shutdown_post_during_shutdown_is_refused_not_silently_dropped() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let blocker = Blocker::new();
    pool.post_task(TaskTraits::default(), blocker.task())
        .unwrap();
    blocker.wait_started();
    let p2 = pool.clone();
    let shutting_down = std::thread::spawn(move || p2.shutdown());
    wait_until("shutdown has started", || pool.is_shutdown());
    let block = TaskTraits::new().shutdown_behavior(ShutdownBehavior::BlockShutdown);
    let rec = Recorder::new();
    let err = pool
        .create_sequenced_task_runner(block)
        .post_delayed_task(Duration::from_millis(1), rec.task("handed back"))
        .unwrap_err();
    assert_eq!(err.reason(), PostRefusal::ShutdownStarted);
    err.into_inner()();
    assert_eq!(rec.snapshot(), vec!["handed back"]);
    blocker.release();
    shutting_down.join().unwrap();
}

#[test]
fn zero_workers_is_an_invalid_config_with_a_clear_message() {
    let err = ThreadPool::builder().max_workers(0).build().unwrap_err();
    assert!(err.is_invalid_config());
    assert!(!err.is_global_already_installed());
    let msg = err.to_string();
    assert!(
        msg.contains("max_workers") && msg.contains("at least 1"),
        "{msg}"
    );
    // Also rejected by build_global, without installing anything.
    let err = ThreadPool::builder()
        .max_workers(0)
        .build_global()
        .unwrap_err();
    assert!(err.is_invalid_config());
}

#[test]
fn zero_best_effort_workers_is_an_invalid_config() {
    let err = ThreadPool::builder()
        .max_workers(2)
        .max_best_effort_workers(0)
        .build()
        .unwrap_err();
    assert!(err.is_invalid_config());
    let msg = err.to_string();
    assert!(msg.contains("max_best_effort_workers (0)"), "{msg}");
    assert!(msg.contains("max_workers (2)"), "{msg}");
}

#[test]
fn best_effort_cap_above_max_workers_is_an_invalid_config() {
    let err = ThreadPool::builder()
        .max_workers(2)
        .max_best_effort_workers(3)
        .build()
        .unwrap_err();
    assert!(err.is_invalid_config());
    let msg = err.to_string();
    assert!(msg.contains("max_best_effort_workers (3)"), "{msg}");
    assert!(msg.contains("max_workers (2)"), "{msg}");
    assert!(!msg.ends_with('.'), "{msg}");
}

#[test]
fn best_effort_cap_equal_to_max_workers_is_accepted() {
    let pool = ThreadPool::builder()
        .max_workers(3)
        .max_best_effort_workers(3)
        .build()
        .unwrap();
    assert_eq!(pool.max_best_effort_workers(), 3);
    let pool = ThreadPool::builder()
        .max_workers(1)
        .max_best_effort_workers(1)
        .build()
        .unwrap();
    assert_eq!(pool.max_best_effort_workers(), 1);
}

#[test]
fn default_best_effort_cap_never_takes_every_worker_when_there_are_two_or_more() {
    for (workers, cap) in [(1, 1), (2, 1), (3, 2), (4, 2), (16, 2)] {
        let pool = ThreadPool::builder().max_workers(workers).build().unwrap();
        assert_eq!(pool.max_workers(), workers);
        assert_eq!(
            pool.max_best_effort_workers(),
            cap,
            "max_workers({workers})"
        );
    }
}

#[test]
fn build_errors_are_std_errors() {
    let err = ThreadPool::builder().max_workers(0).build().unwrap_err();
    let boxed: Box<dyn Error + Send + Sync> = Box::new(err);
    assert!(boxed.to_string().starts_with("invalid thread pool"));
}
