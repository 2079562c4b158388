//! The delay manager: never early, equal deadlines in post order, ripe tasks appended at the
//! tail of their sequence, driven by the pool's `Clock` (a manual one here, with no sleeping).
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::time::{Duration, Instant};

use support::{Blocker, DropCounter, ManualClock, Recorder};
use taskrunner::time::Clock;
use taskrunner::PostTask;
use taskrunner::{TaskTraits, ThreadPool};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn manual_pool(max_workers: usize) -> (ThreadPool, ManualClock) {
    let clock = ManualClock::new();
    let pool = ThreadPool::builder()
        .max_workers(max_workers)
        .clock(clock.clone())
        .build()
        .unwrap();
    (pool, clock)
}

#[test]
fn delayed_task_never_runs_before_its_delay() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let runner = pool.create_task_runner(TaskTraits::default());
    let st = pool.create_single_thread_task_runner(TaskTraits::default());
    let rec: Recorder<(&str, Duration, Duration)> = Recorder::new();
    let delays = [1u64, 7, 15, 30, 45];
    for &d in &delays {
        let delay = ms(d);
        let t0 = Instant::now();
        let r = rec.clone();
        pool.post_delayed_task(TaskTraits::default(), delay, move || {
            r.push(("pool", delay, t0.elapsed()))
        })
        .unwrap();
        let t0 = Instant::now();
        let r = rec.clone();
        seq.post_delayed_task(delay, move || r.push(("sequenced", delay, t0.elapsed())))
            .unwrap();
        let t0 = Instant::now();
        let r = rec.clone();
        runner
            .post_delayed_task(delay, move || r.push(("parallel", delay, t0.elapsed())))
            .unwrap();
        let t0 = Instant::now();
        let r = rec.clone();
        st.post_delayed_task(delay, move || {
            r.push(("single-thread", delay, t0.elapsed()))
        })
        .unwrap();
    }
    for (kind, requested, waited) in rec.wait_for_len(4 * delays.len()) {
        assert!(
            waited >= requested,
            "{kind} task with delay {requested:?} ran after only {waited:?}"
        );
    }
    pool.shutdown();
}

#[test]
fn manual_clock_drives_delayed_tasks_without_real_waiting() {
    let (pool, clock) = manual_pool(1);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let rec = Recorder::new();
    seq.post_delayed_task(ms(10), rec.task("10ms")).unwrap();
    seq.post_delayed_task(ms(20), rec.task("20ms")).unwrap();
    assert_eq!(pool.pending_delayed_tasks(), 2);
    assert_eq!(
        clock.wakers(),
        1,
        "the pool registered a waker with its clock"
    );
    assert_eq!(
        pool.now(),
        clock.now(),
        "the pool reads time from its clock"
    );

    clock.advance(ms(15));
    assert_eq!(rec.wait_for_len(1), vec!["10ms"]);
    // The clock stands at 15 ms: the 20 ms task cannot be ripe, whatever the real time is.
    assert_eq!(pool.pending_delayed_tasks(), 1);
    assert_eq!(rec.snapshot(), vec!["10ms"]);

    clock.advance(ms(5));
    assert_eq!(rec.wait_for_len(2), vec!["10ms", "20ms"]);
    assert_eq!(pool.pending_delayed_tasks(), 0);
    pool.shutdown();
}

#[test]
fn delayed_tasks_with_equal_deadlines_run_in_post_order() {
    let (pool, clock) = manual_pool(1);
    let rec = Recorder::new();
    let seqs: Vec<_> = (0..4)
        .map(|_| pool.create_sequenced_task_runner(TaskTraits::default()))
        .collect();
    let runner = pool.create_task_runner(TaskTraits::default());
    // Same clock reading, same delay: the deadlines are exactly equal. Mixed destinations, so
    // the order can only come from the (run time, post number) tie-break.
    for i in 0..40 {
        match i % 3 {
            0 => seqs[i % 4].post_delayed_task(ms(5), rec.task(i)).unwrap(),
            1 => runner.post_delayed_task(ms(5), rec.task(i)).unwrap(),
            _ => pool
                .post_delayed_task(TaskTraits::default(), ms(5), rec.task(i))
                .unwrap(),
        }
    }
    assert_eq!(pool.pending_delayed_tasks(), 40);
    clock.advance(ms(5));
    assert_eq!(rec.wait_for_len(40), (0..40).collect::<Vec<_>>());
    pool.shutdown();
}

#[test]
fn delayed_tasks_ripen_in_deadline_order_not_post_order() {
    let (pool, clock) = manual_pool(1);
    let rec = Recorder::new();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    seq.post_delayed_task(ms(30), rec.task(30)).unwrap();
    seq.post_delayed_task(ms(10), rec.task(10)).unwrap();
    seq.post_delayed_task(ms(20), rec.task(20)).unwrap();
    pool.post_delayed_task(TaskTraits::default(), ms(25), rec.task(25))
        .unwrap();
    clock.advance(ms(30)); // all ripe at once
    assert_eq!(rec.wait_for_len(4), vec![10, 20, 25, 30]);
    pool.shutdown();
}

/// Chromium's rule: a delayed task is appended to its sequence when it ripens, so it runs after
/// the tasks posted (without delay) before that moment, even ones posted after it.
#[test]
fn delayed_task_posted_before_a_long_task_runs_after_tasks_queued_before_it_ripened() {
    let (pool, clock) = manual_pool(2);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let rec = Recorder::new();
    let long = Blocker::new();

    seq.post_delayed_task(ms(10), rec.task("delayed")).unwrap();
    let (r, long_task) = (rec.clone(), long.task());
    seq.post_task(move || {
        r.push("long");
        long_task();
    })
    .unwrap();
    seq.post_task(rec.task("T1")).unwrap();
    seq.post_task(rec.task("T2")).unwrap();
    long.wait_started();
    clock.advance(ms(10)); // ripens while the long task runs
    support::wait_until("the delayed task was forwarded", || {
        pool.pending_delayed_tasks() == 0
    });
    long.release();
    assert_eq!(rec.wait_for_len(4), vec!["long", "T1", "T2", "delayed"]);
    pool.shutdown();
}

#[test]
fn ripe_delayed_tasks_are_appended_at_the_tail_of_their_sequence() {
    let (pool, clock) = manual_pool(2);
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let rec = Recorder::new();
    seq.post_delayed_task(ms(20), rec.task("D20")).unwrap();
    seq.post_delayed_task(ms(10), rec.task("D10")).unwrap();
    seq.post_task(rec.task("I1")).unwrap();
    clock.advance(ms(10));
    assert_eq!(rec.wait_for_len(2), vec!["I1", "D10"]);
    seq.post_task(rec.task("I2")).unwrap();
    assert_eq!(rec.wait_for_len(3), vec!["I1", "D10", "I2"]);
    clock.advance(ms(10));
    assert_eq!(rec.wait_for_len(4), vec!["I1", "D10", "I2", "D20"]);
    pool.shutdown();
}

#[test]
fn pending_delayed_tasks_counts_tasks_not_yet_ripe() {
    let (pool, clock) = manual_pool(1);
    assert_eq!(pool.pending_delayed_tasks(), 0);
    let rec = Recorder::new();
    for i in 1..=5u32 {
        pool.post_delayed_task(TaskTraits::default(), ms(u64::from(i) * 10), rec.task(i))
            .unwrap();
    }
    assert_eq!(pool.pending_delayed_tasks(), 5);
    for ripe in 1..=5usize {
        clock.advance(ms(10));
        rec.wait_for_len(ripe);
        assert_eq!(pool.pending_delayed_tasks(), 5 - ripe);
    }
    assert_eq!(rec.snapshot(), vec![1, 2, 3, 4, 5]);
    pool.shutdown();
}

#[test]
fn delayed_post_before_any_worker_exists_runs_once_ripe() {
    let (pool, clock) = manual_pool(2);
    assert_eq!(pool.live_workers(), 0);
    let rec = Recorder::new();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    seq.post_delayed_task(ms(1), rec.task("seq")).unwrap();
    pool.post_delayed_task(TaskTraits::default(), ms(1), rec.task("pool"))
        .unwrap();
    // Nothing is ripe (the clock has not moved), so no worker is needed yet.
    assert_eq!(pool.live_workers(), 0);
    clock.advance(ms(1));
    let mut ran = rec.wait_for_len(2);
    ran.sort_unstable();
    assert_eq!(ran, vec!["pool", "seq"]);
    assert!(pool.live_workers() >= 1);
    pool.shutdown();
}

#[test]
fn delayed_task_on_a_real_clock_runs_without_any_other_activity() {
    // The service thread must wake by itself at the deadline (no post or clock waker needed).
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let rec = Recorder::new();
    pool.post_delayed_task(TaskTraits::default(), ms(20), rec.task("late"))
        .unwrap();
    pool.post_delayed_task(TaskTraits::default(), ms(5), rec.task("early"))
        .unwrap();
    assert_eq!(rec.wait_for_len(2), vec!["early", "late"]);
    pool.shutdown();
}

#[test]
fn zero_delay_is_an_immediate_post() {
    let (pool, _clock) = manual_pool(1);
    let rec = Recorder::new();
    pool.create_sequenced_task_runner(TaskTraits::default())
        .post_delayed_task(Duration::ZERO, rec.task(1))
        .unwrap();
    // The manual clock never moves, so only an immediate post can run.
    assert_eq!(rec.wait_for_len(1), vec![1]);
    assert_eq!(pool.pending_delayed_tasks(), 0);
    pool.shutdown();
}

#[test]
fn pending_delayed_tasks_are_dropped_unrun_at_shutdown() {
    let (pool, clock) = manual_pool(1);
    let drops = DropCounter::new();
    let rec = Recorder::new();
    for _ in 0..3 {
        let tok = drops.token();
        let r = rec.clone();
        pool.post_delayed_task(TaskTraits::default(), ms(10), move || {
            tok.keep();
            r.push(());
        })
        .unwrap();
    }
    pool.shutdown();
    assert_eq!(drops.dropped(), 3);
    assert_eq!(pool.pending_delayed_tasks(), 0);
    clock.advance(ms(20));
    assert!(rec.snapshot().is_empty());
}
