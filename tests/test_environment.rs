#![cfg(feature = "test-util")]
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]
//! The deterministic test environment (issue 4, multi-threaded mode).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use taskrunner::{Clock, RepeatingTimer, TaskTraits, TestEnvironment};

#[test]
fn equal_deadlines_across_many_sequences_run_in_post_order() {
    let env = TestEnvironment::builder().workers(1).build();
    let log = Arc::new(Mutex::new(Vec::new()));
    let seqs: Vec<_> = (0..20)
        .map(|_| {
            env.pool()
                .create_sequenced_task_runner(TaskTraits::default())
        })
        .collect();
    for round in 0..5 {
        for (i, s) in seqs.iter().enumerate() {
            let log = log.clone();
            s.post_delayed_task(Duration::from_millis(100), move || {
                log.lock().unwrap().push((round, i))
            })
            .unwrap();
        }
    }
    env.fast_forward_by(Duration::from_millis(100));
    let got = log.lock().unwrap().clone();
    let want: Vec<_> = (0..5).flat_map(|r| (0..20).map(move |i| (r, i))).collect();
    assert_eq!(got, want, "one worker, equal deadlines: posting order");
}

#[test]
fn an_hourly_repeating_timer_runs_through_a_simulated_day_in_real_milliseconds() {
    let env = TestEnvironment::new();
    let seq = env
        .pool()
        .create_sequenced_task_runner(TaskTraits::default());
    let runs = Arc::new(AtomicU32::new(0));
    let timer = RepeatingTimer::new(&seq);
    let r = runs.clone();
    timer
        .start(Duration::from_secs(3600), move || {
            r.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    let real = Instant::now();
    env.fast_forward_by(Duration::from_secs(24 * 3600));
    assert_eq!(runs.load(Ordering::SeqCst), 24);
    assert!(
        real.elapsed() < Duration::from_secs(20),
        "a simulated day must not take real time (took {:?})",
        real.elapsed()
    );
    timer.stop();
    env.run_until_idle();
    assert_eq!(env.pending_task_count(), 0);
}

#[test]
fn run_until_idle_runs_tasks_that_post_tasks_but_leaves_delayed_ones() {
    let env = TestEnvironment::new();
    let seq = env
        .pool()
        .create_sequenced_task_runner(TaskTraits::default());
    let n = Arc::new(AtomicU32::new(0));
    let (n2, s2) = (n.clone(), seq.clone());
    seq.post_task(move || {
        for _ in 0..10 {
            let (n3, s3) = (n2.clone(), s2.clone());
            s2.post_task(move || {
                n3.fetch_add(1, Ordering::SeqCst);
                let n4 = n3.clone();
                s3.post_delayed_task(Duration::from_secs(1), move || {
                    n4.fetch_add(100, Ordering::SeqCst);
                })
                .unwrap();
            })
            .unwrap();
        }
    })
    .unwrap();
    let t0 = env.now();
    env.run_until_idle();
    assert_eq!(n.load(Ordering::SeqCst), 10);
    assert_eq!(env.now(), t0, "run_until_idle never moves time");
    assert_eq!(env.pending_task_count(), 10);
    assert_eq!(env.next_pending_delay(), Some(Duration::from_secs(1)));
    env.fast_forward_until_no_tasks_remain();
    assert_eq!(n.load(Ordering::SeqCst), 1010);
}

#[test]
fn the_clock_never_moves_by_itself_and_zero_fast_forward_runs_what_is_due() {
    let env = TestEnvironment::new();
    let t0 = env.now();
    let h = env
        .pool()
        .post_delayed_task_with_result(TaskTraits::default(), Duration::from_millis(5), || 1)
        .unwrap();
    std::thread::sleep(Duration::from_millis(30)); // real time passes...
    assert_eq!(env.now(), t0); // ...mock time does not
    assert!(!h.is_finished());
    env.advance_clock(Duration::from_millis(5));
    assert!(!h.is_finished(), "advance_clock runs nothing");
    env.fast_forward_by(Duration::ZERO);
    assert_eq!(
        env.now(),
        t0 + Duration::from_millis(5),
        "zero fast-forward moves no time"
    );
    assert!(h.is_finished());
}

#[test]
fn follow_ups_inside_the_window_run_inside_it_in_natural_order() {
    let env = TestEnvironment::new();
    let seq = env
        .pool()
        .create_sequenced_task_runner(TaskTraits::default());
    let log = Arc::new(Mutex::new(Vec::new()));
    let clock = env.clock().clone();
    let t0 = env.now();
    let (l, s, c) = (log.clone(), seq.clone(), clock.clone());
    seq.post_delayed_task(Duration::from_millis(10), move || {
        l.lock().unwrap().push(c.now() - t0);
        let (l2, c2) = (l.clone(), c.clone());
        s.post_delayed_task(Duration::from_millis(10), move || {
            l2.lock().unwrap().push(c2.now() - t0)
        })
        .unwrap();
    })
    .unwrap();
    env.fast_forward_by(Duration::from_millis(25));
    assert_eq!(
        *log.lock().unwrap(),
        vec![Duration::from_millis(10), Duration::from_millis(20)],
        "each task ran exactly at its deadline by the mock clock"
    );
    assert_eq!(env.now() - t0, Duration::from_millis(25));
}

#[test]
fn fast_forward_from_inside_a_task_panics_with_advice() {
    let env = Arc::new(TestEnvironment::new());
    let e2 = env.clone();
    let h = env
        .pool()
        .post_task_with_result(TaskTraits::default(), move || {
            e2.fast_forward_by(Duration::from_secs(1));
        })
        .unwrap();
    env.run_until_idle();
    let err = h.join().unwrap_err();
    let msg = err.panic_message().unwrap();
    assert!(msg.contains("from inside a task"), "{msg}");
    assert!(msg.contains("test's own thread"), "{msg}");
}

#[test]
fn single_thread_runners_are_waited_for_too() {
    let env = TestEnvironment::new();
    let st = env
        .pool()
        .create_single_thread_task_runner(TaskTraits::default());
    let n = Arc::new(AtomicU32::new(0));
    for _ in 0..50 {
        let n = n.clone();
        st.post_delayed_task(Duration::from_millis(1), move || {
            n.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    env.fast_forward_by(Duration::from_millis(1));
    assert_eq!(n.load(Ordering::SeqCst), 50);
}
