//! A panicking task is caught and reported; its worker and its sequence carry on.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::time::Duration;

use support::{Counter, DropCounter, Recorder};
use taskrunner::PostTask;
use taskrunner::{ShutdownBehavior, TaskPanic, TaskTraits, ThreadPool};

/// What the panic handler saw: (message, file, line).
type Seen = Recorder<(String, &'static str, u32)>;

fn pool_with_handler(max_workers: usize) -> (ThreadPool, Seen) {
    let seen = Seen::new();
    let s2 = seen.clone();
    let pool = ThreadPool::builder()
        .max_workers(max_workers)
        .idle_timeout(Duration::from_secs(3600))
        .panic_handler(move |p: &TaskPanic| {
            s2.push((
                p.message().to_owned(),
                p.posted_from().file(),
                p.posted_from().line(),
            ))
        })
        .build()
        .unwrap();
    (pool, seen)
}

#[test]
fn panicking_task_does_not_kill_its_worker() {
    let (pool, seen) = pool_with_handler(1);
    let threads = Recorder::new();
    let t = threads.clone();
    pool.post_task(TaskTraits::default(), move || {
        t.push(std::thread::current().id());
        panic!("first task fails");
    })
    .unwrap();
    let others = Counter::new();
    for _ in 0..3 {
        let o = others.clone();
        pool.post_task(TaskTraits::default(), move || o.incr())
            .unwrap();
    }
    let t = threads.clone();
    pool.post_task(TaskTraits::default(), move || {
        t.push(std::thread::current().id())
    })
    .unwrap();
    let ids = threads.wait_for_len(2);
    assert_eq!(others.get(), 3);
    assert_eq!(
        ids[0], ids[1],
        "the same (only) worker ran the task after the panic"
    );
    assert_eq!(pool.live_workers(), 1);
    assert_eq!(seen.wait_for_len(1)[0].0, "first task fails");
    pool.shutdown();
}

#[test]
fn next_task_of_a_panicking_sequence_runs() {
    let (pool, seen) = pool_with_handler(2);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let rec = Recorder::new();
    seq.post_task(rec.task(0)).unwrap();
    seq.post_task(|| panic!("middle task fails")).unwrap();
    seq.post_task(rec.task(2)).unwrap();
    seq.post_task(|| panic!("another one")).unwrap();
    seq.post_task(rec.task(4)).unwrap();
    assert_eq!(rec.wait_for_len(3), vec![0, 2, 4]);
    let msgs: Vec<String> = seen.wait_for_len(2).into_iter().map(|s| s.0).collect();
    assert_eq!(msgs, vec!["middle task fails", "another one"]);
    pool.shutdown();
}

#[test]
fn panic_handler_sees_the_message_and_the_posting_location() {
    let (pool, seen) = pool_with_handler(1);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let code = 42;
    let a = (line!(), seq.post_task(move || panic!("formatted {code}")));
    a.1.unwrap();
    let t = TaskTraits::default();
    let b = (line!(), pool.post_task(t, || panic!("static str")));
    b.1.unwrap();
    let c = (line!(), seq.post_task(|| std::panic::panic_any(7u8)));
    c.1.unwrap();
    let got = seen.wait_for_len(3);
    let mut got_sorted = got.clone();
    got_sorted.sort_by_key(|g| g.2);
    assert_eq!(
        got_sorted,
        vec![
            ("formatted 42".to_owned(), file!(), a.0),
            ("static str".to_owned(), file!(), b.0),
            ("<non-string panic payload>".to_owned(), file!(), c.0),
        ]
    );
    pool.shutdown();
}

#[test]
fn panic_in_the_panic_handler_is_survived() {
    let calls = Counter::new();
    let c2 = calls.clone();
    let pool = ThreadPool::builder()
        .max_workers(1)
        .panic_handler(move |p| {
            c2.incr();
            panic!("the handler itself fails on: {}", p.message());
        })
        .build()
        .unwrap();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let rec = Recorder::new();
    seq.post_task(|| panic!("one")).unwrap();
    seq.post_task(rec.task("after one")).unwrap();
    pool.post_task(TaskTraits::default(), || panic!("two"))
        .unwrap();
    seq.post_task(rec.task("after two")).unwrap();
    assert_eq!(rec.wait_for_len(2), vec!["after one", "after two"]);
    calls.wait_for(2);
    assert_eq!(pool.live_workers(), 1);
    pool.shutdown();
}

#[test]
fn panicking_task_without_a_handler_is_contained() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let rec = Recorder::new();
    seq.post_task(|| panic!("no handler installed")).unwrap();
    seq.post_task(rec.task(1)).unwrap();
    assert_eq!(rec.wait_for_len(1), vec![1]);
    pool.shutdown();
}

/// A panic while a task's captures are dropped (after it ran, or when shutdown discards it) is
/// contained too.
#[test]
fn panicking_destructor_of_a_task_capture_is_contained() {
    struct PanicOnDrop(DropCounter);
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            let _t = self.0.token();
            panic!("destructor fails");
        }
    }
    let (pool, seen) = pool_with_handler(1);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let drops = DropCounter::new();
    let rec = Recorder::new();

    let bomb = PanicOnDrop(drops.clone());
    let r = rec.clone();
    seq.post_task(move || {
        let _b = &bomb;
        r.push("ran");
    })
    .unwrap();
    seq.post_task(rec.task("next")).unwrap();
    assert_eq!(rec.wait_for_len(2), vec!["ran", "next"]);
    assert_eq!(drops.dropped(), 1);
    assert_eq!(seen.wait_for_len(1)[0].0, "destructor fails");

    // Discarded at shutdown: the queued task's destructor panics inside shutdown's cleanup.
    let blocker = support::Blocker::new();
    seq.post_task(blocker.task()).unwrap();
    let bomb = PanicOnDrop(drops.clone());
    seq.post_task(move || {
        let _b = &bomb;
    })
    .unwrap();
    blocker.wait_started();
    let (p2, b2) = (pool.clone(), blocker.clone());
    let releaser = std::thread::spawn(move || {
        support::wait_until("shutdown has started", || p2.is_shutdown());
        b2.release();
    });
    let p3 = pool.clone();
    support::must_return(
        "shutdown() discarding a task whose destructor panics",
        move || p3.shutdown(),
    );
    releaser.join().unwrap();
    assert_eq!(drops.dropped(), 2);
}

#[test]
fn block_shutdown_task_that_panics_still_lets_shutdown_complete() {
    let (pool, seen) = pool_with_handler(1);
    let block = TaskTraits::new().shutdown_behavior(ShutdownBehavior::BlockShutdown);
    let seq = pool.create_sequenced_task_runner(block);
    let rec = Recorder::new();
    seq.post_task(|| panic!("block task fails")).unwrap();
    seq.post_task(rec.task("after")).unwrap();
    pool.post_task(block, || panic!("one-off block task fails"))
        .unwrap();
    let p2 = pool.clone();
    support::must_return(
        "shutdown() after panicking block-shutdown tasks",
        move || p2.shutdown(),
    );
    assert_eq!(rec.snapshot(), vec!["after"]);
    assert_eq!(seen.snapshot().len(), 2);
}
