//! The priority scheduler: higher priorities first, then the oldest next task across
//! sequences, one task per dequeue; best-effort work never occupies every worker.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use support::{Blocker, Counter, Latch, Recorder};
use taskrunner::PostTask;
use taskrunner::{TaskPriority, TaskTraits, ThreadPool};

use TaskPriority::{BestEffort, UserBlocking, UserVisible};

/// A pool with one worker, held by a blocker so that everything posted next queues up.
fn blocked_single_worker_pool() -> (ThreadPool, Blocker) {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let blocker = Blocker::new();
    pool.post_task(TaskTraits::new().priority(UserBlocking), blocker.task())
        .unwrap();
    blocker.wait_started();
    (pool, blocker)
}

#[test]
fn higher_priority_tasks_run_first_with_one_worker() {
    let (pool, blocker) = blocked_single_worker_pool();
    let rec = Recorder::new();
    // Posted lowest priority first, so posting order alone would give the reverse.
    for p in [BestEffort, UserVisible, UserBlocking] {
        let traits = TaskTraits::new().priority(p);
        pool.post_task(traits, rec.task((p, "one-off"))).unwrap();
        pool.create_task_runner(traits)
            .post_task(rec.task((p, "parallel runner")))
            .unwrap();
        pool.create_sequenced_task_runner(traits)
            .post_task(rec.task((p, "sequenced")))
            .unwrap();
    }
    blocker.release();
    let order = rec.wait_for_len(9);
    let expected: Vec<_> = [UserBlocking, UserVisible, BestEffort]
        .into_iter()
        .flat_map(|p| [(p, "one-off"), (p, "parallel runner"), (p, "sequenced")])
        .collect();
    assert_eq!(order, expected);
    pool.shutdown();
}

#[test]
fn equal_priority_runs_the_oldest_next_task_first_not_round_robin() {
    let (pool, blocker) = blocked_single_worker_pool();
    let traits = TaskTraits::new().priority(UserVisible);
    let a = pool.create_sequenced_task_runner(traits);
    let b = pool.create_sequenced_task_runner(traits);
    let rec = Recorder::new();
    // A's three tasks are all older than B's: age order runs A to completion first, where
    // round robin between sequences would give A1 B1 A2 B2 A3 B3.
    for name in ["A1", "A2", "A3"] {
        a.post_task(rec.task(name)).unwrap();
    }
    for name in ["B1", "B2", "B3"] {
        b.post_task(rec.task(name)).unwrap();
    }
    blocker.release();
    assert_eq!(
        rec.wait_for_len(6),
        vec!["A1", "A2", "A3", "B1", "B2", "B3"]
    );
    pool.shutdown();
}

#[test]
fn equal_priority_sequences_interleave_by_post_order_one_task_per_dequeue() {
    let (pool, blocker) = blocked_single_worker_pool();
    let traits = TaskTraits::new().priority(UserVisible);
    let a = pool.create_sequenced_task_runner(traits);
    let b = pool.create_sequenced_task_runner(traits);
    let rec = Recorder::new();
    // If a worker drained a sequence per dequeue it would run A1 A2 A3 before B1.
    a.post_task(rec.task("A1")).unwrap();
    b.post_task(rec.task("B1")).unwrap();
    pool.post_task(traits, rec.task("P1")).unwrap();
    a.post_task(rec.task("A2")).unwrap();
    b.post_task(rec.task("B2")).unwrap();
    a.post_task(rec.task("A3")).unwrap();
    pool.post_task(traits, rec.task("P2")).unwrap();
    b.post_task(rec.task("B3")).unwrap();
    blocker.release();
    assert_eq!(
        rec.wait_for_len(8),
        vec!["A1", "B1", "P1", "A2", "B2", "A3", "P2", "B3"]
    );
    pool.shutdown();
}

#[test]
fn priority_dominates_age_across_sequences() {
    let (pool, blocker) = blocked_single_worker_pool();
    let low = pool.create_sequenced_task_runner(TaskTraits::new().priority(BestEffort));
    let high = pool.create_sequenced_task_runner(TaskTraits::new().priority(UserBlocking));
    let rec = Recorder::new();
    for i in 0..3 {
        low.post_task(rec.task(("low", i))).unwrap();
    }
    for i in 0..3 {
        high.post_task(rec.task(("high", i))).unwrap();
    }
    blocker.release();
    assert_eq!(
        rec.wait_for_len(6),
        vec![
            ("high", 0),
            ("high", 1),
            ("high", 2),
            ("low", 0),
            ("low", 1),
            ("low", 2)
        ]
    );
    pool.shutdown();
}

#[test]
fn best_effort_cap_leaves_a_worker_for_user_blocking_work() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    assert_eq!(
        pool.max_best_effort_workers(),
        1,
        "default cap with 2 workers"
    );
    let cap = pool.max_best_effort_workers();

    let be_started = Counter::new();
    let release_be = Latch::new(1);
    let be_done = Latch::new(4);
    let be = TaskTraits::new().priority(BestEffort);
    for i in 0..4 {
        let (started, release, done) = (be_started.clone(), release_be.clone(), be_done.clone());
        let task = move || {
            started.incr();
            release.wait();
            done.count_down();
        };
        if i % 2 == 0 {
            pool.post_task(be, task).unwrap();
        } else {
            // A second best-effort sequence competes too.
            pool.create_sequenced_task_runner(be)
                .post_task(task)
                .unwrap();
        }
    }
    be_started.wait_for(cap);

    // Every best-effort task the cap allows is blocked; a user-blocking task still runs.
    let ub_ran = Latch::new(1);
    let ub_ran2 = ub_ran.clone();
    pool.post_task(TaskTraits::new().priority(UserBlocking), move || {
        ub_ran2.count_down()
    })
    .unwrap();
    ub_ran.wait();
    // And user-visible work too, on a sequence.
    let uv_ran = Latch::new(1);
    let uv_ran2 = uv_ran.clone();
    pool.create_sequenced_task_runner(TaskTraits::new().priority(UserVisible))
        .post_task(move || uv_ran2.count_down())
        .unwrap();
    uv_ran.wait();

    assert!(!be_done.is_open());
    assert_eq!(
        be_started.get(),
        cap,
        "no more best-effort tasks than the cap may run at once"
    );
    release_be.count_down();
    be_done.wait();
    pool.shutdown();
}

#[test]
fn best_effort_cap_is_configurable_and_higher_priorities_use_the_other_workers() {
    let pool = ThreadPool::builder()
        .max_workers(4)
        .max_best_effort_workers(2)
        .build()
        .unwrap();
    assert_eq!(pool.max_best_effort_workers(), 2);
    let be_started = Counter::new();
    let release = Latch::new(1);
    let all_done = Latch::new(5 + 2);
    for _ in 0..5 {
        let (started, release, done) = (be_started.clone(), release.clone(), all_done.clone());
        pool.post_task(TaskTraits::new().priority(BestEffort), move || {
            started.incr();
            release.wait();
            done.count_down();
        })
        .unwrap();
    }
    be_started.wait_for(2);

    // Two user-blocking tasks that each wait for the other: they need both remaining workers
    // at the same time.
    let both = Latch::new(2);
    for _ in 0..2 {
        let (both, done) = (both.clone(), all_done.clone());
        pool.post_task(TaskTraits::new().priority(UserBlocking), move || {
            both.count_down();
            both.wait();
            done.count_down();
        })
        .unwrap();
    }
    both.wait();
    assert_eq!(be_started.get(), 2);
    release.count_down();
    all_done.wait();
    assert_eq!(be_started.get(), 5);
    pool.shutdown();
}

#[test]
fn best_effort_work_runs_when_nothing_else_is_queued() {
    // With one worker the cap is 1 (never 0): best-effort work is not starved on an idle pool.
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    assert_eq!(pool.max_best_effort_workers(), 1);
    let rec = Recorder::new();
    let seq = pool.create_sequenced_task_runner(TaskTraits::new().priority(BestEffort));
    for i in 0..10 {
        seq.post_task(rec.task(i)).unwrap();
    }
    assert_eq!(rec.wait_for_len(10), (0..10).collect::<Vec<_>>());
    pool.shutdown();
}
