//! Flexible delays (`DelayPolicy::FlexibleNoSooner` with the pool's timer leeway): never
//! early, sharing the delay thread's wake-ups, on every kind of runner, under a test clock,
//! cancelled and at shutdown.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{wait_until, Counter};
use taskrunner::{DelayPolicy, PostTask, TaskTraits, ThreadPool};

fn flexible() -> TaskTraits {
    TaskTraits::new().delay_policy(DelayPolicy::FlexibleNoSooner)
}

fn pool(leeway: Duration) -> ThreadPool {
    ThreadPool::builder()
        .max_workers(2)
        .timer_leeway(leeway)
        .build()
        .unwrap()
}

#[test]
fn a_flexible_task_never_runs_before_its_run_time() {
    let pool = pool(Duration::from_millis(5));
    let early = Arc::new(Mutex::new(Vec::new()));
    let done = Counter::new();
    let n = 200;
    for i in 0..n {
        let delay = Duration::from_micros(137 * (i % 50) as u64);
        let due = Instant::now() + delay;
        let (early, done) = (early.clone(), done.clone());
        pool.post_delayed_task(flexible(), delay, move || {
            if Instant::now() < due {
                early.lock().unwrap().push(i);
            }
            done.incr();
        })
        .unwrap();
    }
    done.wait_for(n);
    assert!(
        early.lock().unwrap().is_empty(),
        "ran early: {:?}",
        early.lock().unwrap()
    );
}

#[test]
fn flexible_tasks_within_one_leeway_share_a_wake_up() {
    // Twenty timers 1 ms apart, a leeway of 500 ms: the delay thread sleeps until the first
    // run time plus the leeway and forwards all of them at once.
    let pool = pool(Duration::from_millis(500));
    let before = pool.metrics().delay_wakeups();
    let t0 = Instant::now();
    let ran = Arc::new(Mutex::new(Vec::new()));
    for i in 0..20u64 {
        let ran = ran.clone();
        pool.post_delayed_task(flexible(), Duration::from_millis(1 + i), move || {
            ran.lock().unwrap().push(t0.elapsed());
        })
        .unwrap();
    }
    wait_until("all twenty ran", || ran.lock().unwrap().len() == 20);
    let woke = pool.metrics().delay_wakeups() - before;
    // One wake-up for all twenty (a spurious one or two are allowed), not twenty.
    assert!(woke <= 3, "{woke} wake-ups");
    for at in ran.lock().unwrap().iter() {
        assert!(*at >= Duration::from_millis(1));
    }
}

#[test]
fn a_precise_task_due_earlier_wakes_the_thread_for_itself() {
    // One worker, so that the two run in the order they are forwarded.
    let pool = ThreadPool::builder()
        .max_workers(1)
        .timer_leeway(Duration::from_secs(10))
        .build()
        .unwrap();
    let t0 = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    let tx2 = tx.clone();
    // The flexible one could wait up to ten seconds; the precise one must not.
    pool.post_delayed_task(flexible(), Duration::from_millis(1), move || {
        tx2.send("flexible").unwrap()
    })
    .unwrap();
    pool.post_delayed_task(
        TaskTraits::default(),
        Duration::from_millis(20),
        move || tx.send("precise").unwrap(),
    )
    .unwrap();
    // Both run after the precise one's wake-up: the flexible one is ripe by then and goes in
    // the same batch, before it (earlier run time).
    assert_eq!(rx.recv().unwrap(), "flexible");
    assert_eq!(rx.recv().unwrap(), "precise");
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_flexible_runner_keeps_its_order_and_its_traits() {
    let pool = pool(Duration::from_millis(3));
    let seq = pool.create_sequenced_task_runner(flexible());
    let order = Arc::new(Mutex::new(Vec::new()));
    let done = Counter::new();
    for i in 0..50u64 {
        let (order, done) = (order.clone(), done.clone());
        // Run times 20 ms apart, far more than posting all fifty takes.
        seq.post_delayed_task(Duration::from_millis(20 * (i % 5)), move || {
            order.lock().unwrap().push(i);
            done.incr();
        })
        .unwrap();
    }
    done.wait_for(50);
    // Delayed tasks of one sequence run in (run time, post) order.
    let got = order.lock().unwrap().clone();
    let mut want: Vec<u64> = (0..50).collect();
    want.sort_by_key(|i| (i % 5, *i));
    assert_eq!(got, want);
    // Timers and posts with a result on that runner are flexible too, and still run.
    let h = seq
        .post_delayed_task_with_result(Duration::from_millis(1), || 5)
        .unwrap();
    assert_eq!(h.join().unwrap(), 5);
}

#[test]
fn cancelling_a_flexible_task_drops_it() {
    let pool = pool(Duration::from_millis(1));
    let ran = Counter::new();
    let r = ran.clone();
    let h = pool
        .post_delayed_task_with_result(flexible(), Duration::from_millis(50), move || r.incr())
        .unwrap();
    h.cancel();
    assert!(h.join().unwrap_err().is_cancelled());
    std::thread::sleep(Duration::from_millis(80));
    assert_eq!(ran.get(), 0);
    assert_eq!(pool.pending_delayed_tasks(), 0);
}

#[test]
fn shutdown_drops_pending_flexible_tasks() {
    let pool = pool(Duration::from_millis(1));
    let ran = Counter::new();
    let r = ran.clone();
    let h = pool
        .post_delayed_task_with_result(flexible(), Duration::from_secs(60), move || r.incr())
        .unwrap();
    pool.shutdown();
    assert!(h.join().unwrap_err().is_not_run());
    assert_eq!(ran.get(), 0);
}

#[cfg(feature = "test-util")]
#[test]
fn under_a_test_clock_flexible_tasks_run_at_their_run_time() {
    use taskrunner::testing::TestEnvironment;
    let env = TestEnvironment::new();
    let seq = env.pool().create_sequenced_task_runner(flexible());
    let ran = Counter::new();
    let r = ran.clone();
    seq.post_delayed_task(Duration::from_millis(10), move || r.incr())
        .unwrap();
    env.fast_forward_by(Duration::from_millis(9));
    assert_eq!(ran.get(), 0);
    env.fast_forward_by(Duration::from_millis(1));
    assert_eq!(ran.get(), 1);
}
