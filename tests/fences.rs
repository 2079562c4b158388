//! Fences (`ThreadPool::begin_fence`, `begin_best_effort_fence`) and pools built not started
//! (`build_not_started`, `start`): accepted but not started, counted, lifted by shutdown and
//! by the pool winding down, on every kind of runner.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use support::{hold, must_return, wait_until, Counter, Recorder};
use taskrunner::{PostTask, ShutdownBehavior, TaskPriority, TaskTraits, ThreadPool};

fn pause() {
    std::thread::sleep(Duration::from_millis(30));
}

#[test]
fn a_fence_holds_every_kind_of_task_until_it_is_dropped() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let par = pool.create_task_runner(TaskTraits::default());
    let st = pool.create_single_thread_task_runner(TaskTraits::default());
    // Start the dedicated thread before the fence, so it is waiting when tasks arrive.
    st.post_task_with_result(|| ()).unwrap().join().unwrap();
    let ran = Counter::new();
    let order = Recorder::new();
    let fence = pool.begin_fence();
    for i in 0..5 {
        let r = ran.clone();
        pool.post_task(TaskTraits::default(), move || r.incr())
            .unwrap();
        seq.post_task(order.task(i)).unwrap();
        let r = ran.clone();
        par.post_task(move || r.incr()).unwrap();
        let r = ran.clone();
        st.post_task(move || r.incr()).unwrap();
    }
    let r = ran.clone();
    pool.post_delayed_task(TaskTraits::default(), Duration::from_millis(1), move || {
        r.incr()
    })
    .unwrap();
    pause();
    assert_eq!(ran.get(), 0, "a task started under the fence");
    assert_eq!(order.len(), 0);
    drop(fence);
    ran.wait_for(16);
    assert_eq!(order.wait_for_len(5), vec![0, 1, 2, 3, 4]);
}

#[test]
fn fences_are_counted() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let (a, b) = (pool.begin_fence(), pool.begin_fence());
    let ran = Counter::new();
    let r = ran.clone();
    pool.post_task(TaskTraits::default(), move || r.incr())
        .unwrap();
    drop(a);
    pause();
    assert_eq!(ran.get(), 0, "one fence is still up");
    drop(b);
    ran.wait_for(1);
}

#[test]
fn a_best_effort_fence_holds_only_best_effort_work_even_on_one_worker() {
    // One worker, whose best-effort limit is that worker: a best-effort sequence that was
    // running when the fence went up must not take the only worker away from foreground work.
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let be =
        pool.create_sequenced_task_runner(TaskTraits::new().priority(TaskPriority::BestEffort));
    let blocker = support::Blocker::new();
    be.post_task(blocker.task()).unwrap();
    blocker.wait_started();
    let be_ran = Counter::new();
    let r = be_ran.clone();
    be.post_task(move || r.incr()).unwrap();
    let fence = pool.begin_best_effort_fence();
    blocker.release(); // the sequence's next task now waits for the fence
    let fg = pool
        .post_task_with_result(TaskTraits::default(), || "foreground")
        .unwrap();
    let one_off_be = pool
        .post_task_with_result(TaskTraits::new().priority(TaskPriority::BestEffort), || {
            "be"
        })
        .unwrap();
    assert_eq!(
        must_return("foreground under a best-effort fence", move || fg.join()).unwrap(),
        "foreground"
    );
    pause();
    assert_eq!(be_ran.get(), 0);
    assert!(!one_off_be.is_finished());
    drop(fence);
    be_ran.wait_for(1);
    assert_eq!(one_off_be.join().unwrap(), "be");
}

#[test]
fn shutdown_lifts_fences_so_block_shutdown_work_runs() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let fence = pool.begin_fence();
    let block = pool
        .post_task_with_result(
            TaskTraits::new().shutdown_behavior(ShutdownBehavior::BlockShutdown),
            || "ran",
        )
        .unwrap();
    let skip = pool
        .post_task_with_result(TaskTraits::default(), || "skipped")
        .unwrap();
    let p = pool.clone();
    must_return("shutdown with a fence up", move || p.shutdown());
    assert_eq!(block.join().unwrap(), "ran");
    assert!(skip.join().unwrap_err().is_not_run());
    drop(fence); // lowering after shutdown is harmless
}

#[test]
fn a_pool_built_not_started_runs_nothing_until_started() {
    let pool = ThreadPool::builder()
        .max_workers(2)
        .build_not_started()
        .unwrap();
    assert!(!pool.is_started());
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let order = Recorder::new();
    for i in 0..3 {
        seq.post_task(order.task(i)).unwrap();
    }
    let delayed = pool
        .post_delayed_task_with_result(TaskTraits::default(), Duration::from_millis(1), || 7)
        .unwrap();
    pause();
    assert_eq!(order.len(), 0);
    assert!(
        !delayed.is_finished(),
        "a ripe delayed task ran before start"
    );
    pool.start();
    pool.start(); // idempotent
    assert!(pool.is_started());
    assert_eq!(order.wait_for_len(3), vec![0, 1, 2]);
    assert_eq!(delayed.join().unwrap(), 7);
}

#[test]
fn a_pool_never_started_still_runs_its_work_when_dropped_or_shut_down() {
    let pool = ThreadPool::builder()
        .max_workers(1)
        .build_not_started()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    pool.post_task(TaskTraits::default(), move || tx.send(1).unwrap())
        .unwrap();
    drop(pool); // the last handle: queued work still runs
    assert_eq!(rx.recv_timeout(support::TIMEOUT).unwrap(), 1);

    let pool = ThreadPool::builder()
        .max_workers(1)
        .build_not_started()
        .unwrap();
    let block = pool
        .post_task_with_result(
            TaskTraits::new().shutdown_behavior(ShutdownBehavior::BlockShutdown),
            || 1,
        )
        .unwrap();
    let p = pool.clone();
    must_return("shutdown of a pool never started", move || p.shutdown());
    assert_eq!(block.join().unwrap(), 1);
    assert!(pool.is_started(), "shutdown started it");
}

#[test]
fn fences_racing_posts_from_many_threads_lose_nothing() {
    let pool = ThreadPool::builder().max_workers(3).build().unwrap();
    let seq =
        pool.create_sequenced_task_runner(TaskTraits::new().priority(TaskPriority::BestEffort));
    let ran = Arc::new(AtomicUsize::new(0));
    let per = 2_000;
    let posters: Vec<_> = (0..3)
        .map(|t| {
            let (pool, seq, ran) = (pool.clone(), seq.clone(), ran.clone());
            std::thread::spawn(move || {
                for i in 0..per {
                    let ran = ran.clone();
                    let f = move || {
                        ran.fetch_add(1, SeqCst);
                    };
                    if (i + t) % 3 == 0 {
                        seq.post_task(f).unwrap();
                    } else {
                        let p = if i % 2 == 0 {
                            TaskPriority::BestEffort
                        } else {
                            TaskPriority::UserVisible
                        };
                        pool.post_task(TaskTraits::new().priority(p), f).unwrap();
                    }
                }
            })
        })
        .collect();
    for round in 0..50 {
        let f = if round % 2 == 0 {
            pool.begin_fence()
        } else {
            pool.begin_best_effort_fence()
        };
        std::thread::yield_now();
        drop(f);
    }
    for p in posters {
        p.join().unwrap();
    }
    wait_until("every task ran", || ran.load(SeqCst) == 3 * per);
}

#[test]
fn a_held_sequence_keeps_its_order_across_a_fence() {
    // One worker, held: the sequence's tasks queue up, then meet the fence.
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let order = Recorder::new();
    let blocker = hold(&pool);
    for i in 0..20 {
        seq.post_task(order.task(i)).unwrap();
    }
    let fence = pool.begin_fence();
    blocker.release();
    pause();
    assert_eq!(
        order.len(),
        0,
        "ran under the fence: {:?}",
        order.snapshot()
    );
    drop(fence);
    assert_eq!(order.wait_for_len(20), (0..20).collect::<Vec<_>>());
}
