//! Pool lifecycle: lazy workers, posting before any worker exists, no CPU when idle, winding
//! down when the last handle drops, thread names, and the auto traits of the handles.
//!
//! Every test here takes `SERIAL`: the CPU measurement needs the process to itself, and thread
//! counts are taken by name so other test files' threads never interfere.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use support::{
    process_cpu_time, process_thread_count, threads_named, wait_until, Counter, DropCounter,
    Recorder,
};
use taskrunner::PostTask;
use taskrunner::{
    PostError, SequenceChecker, SequencedTaskRunner, SingleThreadTaskRunner, TaskRunner,
    TaskTraits, ThreadPool,
};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn workers_start_lazily() {
    let _g = serial();
    let pool = ThreadPool::builder()
        .max_workers(3)
        .thread_name("lazy")
        .build()
        .unwrap();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let _runner = pool.create_task_runner(TaskTraits::default());
    assert_eq!(pool.live_workers(), 0, "building a pool starts no worker");
    assert_eq!(threads_named("lazy-"), 0);
    let ran = Counter::new();
    let r = ran.clone();
    seq.post_task(move || r.incr()).unwrap();
    ran.wait_for(1);
    assert!(pool.live_workers() >= 1);
    assert!(
        pool.live_workers() <= 1,
        "one task needs one worker, not max_workers"
    );
    pool.shutdown();
}

#[test]
fn posting_before_any_worker_exists_runs_the_tasks() {
    let _g = serial();
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    assert_eq!(pool.live_workers(), 0);
    let rec = Recorder::new();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    for i in 0..10 {
        seq.post_task(rec.task(i)).unwrap();
    }
    pool.post_task(TaskTraits::default(), rec.task(100))
        .unwrap();
    let mut ran = rec.wait_for_len(11);
    ran.sort_unstable();
    let mut expected: Vec<i32> = (0..10).collect();
    expected.push(100);
    assert_eq!(ran, expected);
    pool.shutdown();
}

#[test]
fn idle_pool_uses_no_cpu() {
    let _g = serial();
    let pool = ThreadPool::builder()
        .max_workers(2)
        .thread_name("idle")
        .build()
        .unwrap();
    // Exercise every kind of thread the pool has, then leave it idle with a far-away delayed
    // task pending (so the delay thread is waiting on a deadline, not on nothing).
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let st = pool.create_single_thread_task_runner(TaskTraits::default());
    let done = Counter::new();
    for _ in 0..200 {
        let d = done.clone();
        seq.post_task(move || d.incr()).unwrap();
        let d = done.clone();
        pool.post_task(TaskTraits::default(), move || d.incr())
            .unwrap();
    }
    let d = done.clone();
    st.post_task(move || d.incr()).unwrap();
    let d = done.clone();
    pool.post_delayed_task(TaskTraits::default(), Duration::from_millis(1), move || {
        d.incr()
    })
    .unwrap();
    pool.post_delayed_task(TaskTraits::default(), Duration::from_secs(3600), || ())
        .unwrap();
    done.wait_for(402);
    std::thread::sleep(Duration::from_millis(50)); // let every thread go back to sleep
    wait_until("workers, delay and single threads exist", || {
        threads_named("idle-") >= 3
    });

    let before = process_cpu_time();
    std::thread::sleep(Duration::from_millis(300));
    let used = process_cpu_time() - before;
    assert!(
        used < Duration::from_millis(50),
        "an idle pool must not spin: {used:?} of CPU in 300 ms"
    );
    drop(st);
    pool.shutdown();
}

#[test]
fn dropping_every_handle_lets_queued_tasks_finish_and_threads_exit() {
    let _g = serial();
    let pool = ThreadPool::builder()
        .max_workers(2)
        .thread_name("wind")
        .build()
        .unwrap();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let runner = pool.create_task_runner(TaskTraits::default());
    let st = pool.create_single_thread_task_runner(TaskTraits::default());
    let ran = Counter::new();
    for _ in 0..50 {
        let r = ran.clone();
        seq.post_task(move || {
            std::thread::sleep(Duration::from_millis(1));
            r.incr();
        })
        .unwrap();
        let r = ran.clone();
        runner.post_task(move || r.incr()).unwrap();
    }
    let r = ran.clone();
    st.post_task(move || r.incr()).unwrap();
    let delayed_drops = DropCounter::new();
    let tok = delayed_drops.token();
    let delayed_ran = Counter::new();
    let dr = delayed_ran.clone();
    pool.post_delayed_task(
        TaskTraits::default(),
        Duration::from_secs(3600),
        move || {
            tok.keep();
            dr.incr();
        },
    )
    .unwrap();
    // Thread names are set by each new thread itself, so wait for them to show up.
    wait_until("the worker, delay and single threads are running", || {
        threads_named("wind-") >= 3
    });
    let threads_with_pool = process_thread_count();

    drop((pool, seq, runner, st));
    ran.wait_for(101); // tasks queued before the drop still run
    wait_until(
        "every worker, delay and single thread of the pool exits",
        || threads_named("wind-") == 0,
    );
    // The process-wide `Threads:` count went down by at least as much (other test threads may
    // come and go meanwhile, which is why the exact check above counts threads by name).
    assert!(process_thread_count() < threads_with_pool);
    assert_eq!(delayed_ran.get(), 0);
    assert_eq!(
        delayed_drops.dropped(),
        1,
        "pending delayed tasks are dropped unrun"
    );
}

#[test]
fn idle_workers_exit_after_the_idle_timeout_and_come_back_on_demand() {
    let _g = serial();
    let pool = ThreadPool::builder()
        .max_workers(2)
        .thread_name("reclaim")
        .idle_timeout(Duration::from_millis(20))
        .build()
        .unwrap();
    let ran = Counter::new();
    let r = ran.clone();
    pool.post_task(TaskTraits::default(), move || r.incr())
        .unwrap();
    ran.wait_for(1);
    wait_until("the idle worker is reclaimed", || pool.live_workers() == 0);
    wait_until("its thread exits", || threads_named("reclaim-worker") == 0);
    let r = ran.clone();
    pool.post_task(TaskTraits::default(), move || r.incr())
        .unwrap();
    ran.wait_for(2);
    pool.shutdown();
}

#[test]
fn worker_threads_are_named_after_the_prefix() {
    let _g = serial();
    let pool = ThreadPool::builder()
        .max_workers(2)
        .thread_name("named")
        .build()
        .unwrap();
    let names = Recorder::new();
    let both = support::Latch::new(2);
    for _ in 0..2 {
        let (n, both) = (names.clone(), both.clone());
        pool.post_task(TaskTraits::default(), move || {
            both.count_down();
            both.wait(); // two tasks at once: two workers
            n.push(std::thread::current().name().map(str::to_owned));
        })
        .unwrap();
    }
    let mut got = names.wait_for_len(2);
    got.sort();
    assert_eq!(
        got,
        vec![
            Some("named-worker-0".to_owned()),
            Some("named-worker-1".to_owned())
        ]
    );
    pool.shutdown();

    let pool = ThreadPool::builder()
        .max_workers(1)
        .thread_name_fn(|i| format!("custom{i}"))
        .build()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    pool.post_task(TaskTraits::default(), move || {
        tx.send(std::thread::current().name().map(str::to_owned))
            .unwrap()
    })
    .unwrap();
    assert_eq!(
        rx.recv_timeout(support::TIMEOUT).unwrap().as_deref(),
        Some("custom0")
    );
    pool.shutdown();
}

#[test]
fn default_thread_names_use_the_crate_prefix() {
    let _g = serial();
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    pool.post_task(TaskTraits::default(), move || {
        tx.send(std::thread::current().name().map(str::to_owned))
            .unwrap()
    })
    .unwrap();
    let name = rx.recv_timeout(support::TIMEOUT).unwrap().unwrap();
    assert!(name.starts_with("taskrunner-worker-"), "{name}");
    pool.shutdown();
}

#[test]
fn never_more_workers_than_max_workers() {
    let _g = serial();
    let pool = ThreadPool::builder()
        .max_workers(3)
        .thread_name("cap")
        .build()
        .unwrap();
    let release = support::Latch::new(1);
    let started = Counter::new();
    let done = Counter::new();
    for _ in 0..10 {
        let (release, started, done) = (release.clone(), started.clone(), done.clone());
        pool.post_task(TaskTraits::default(), move || {
            started.incr();
            release.wait();
            done.incr();
        })
        .unwrap();
    }
    started.wait_for(3);
    assert_eq!(pool.live_workers(), 3);
    assert_eq!(threads_named("cap-worker"), 3);
    assert_eq!(started.get(), 3, "only max_workers tasks run at once");
    release.count_down();
    done.wait_for(10);
    pool.shutdown();
}

#[test]
fn handles_are_send_sync_and_clone() {
    let _g = serial();
    fn send_sync_clone<T: Send + Sync + Clone + 'static>() {}
    fn send_sync<T: Send + Sync>() {}
    send_sync_clone::<ThreadPool>();
    send_sync_clone::<TaskRunner>();
    send_sync_clone::<SequencedTaskRunner>();
    send_sync_clone::<SingleThreadTaskRunner>();
    send_sync_clone::<TaskTraits>();
    send_sync::<SequenceChecker>();
    fn send<T: Send>() {}
    send::<PostError<Box<dyn FnOnce() + Send>>>();
    // A refused post of a `Send + Sync` closure is itself `Send + Sync` (usable with `?`).
    send_sync::<PostError<fn()>>();
    send_sync::<taskrunner::BuildError>();
    send_sync::<taskrunner::ShutdownTimedOut>();
    fn copy<T: Copy>() {}
    copy::<TaskTraits>();
    copy::<taskrunner::TaskPriority>();
    copy::<taskrunner::ShutdownBehavior>();
}

#[test]
fn clones_share_one_pool() {
    let _g = serial();
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let clone = pool.clone();
    let seq = clone.create_sequenced_task_runner(TaskTraits::default());
    drop(clone);
    let ran = Counter::new();
    let r = ran.clone();
    seq.post_task(move || r.incr()).unwrap();
    ran.wait_for(1);
    pool.shutdown();
    assert!(
        seq.post_task(|| ()).is_err(),
        "the runner's pool is the one shut down"
    );
}
