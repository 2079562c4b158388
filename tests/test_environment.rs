//! The deterministic test environment: threaded and seeded modes.
#![cfg(feature = "test-util")]
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use taskrunner::testing::TestEnvironment;
use taskrunner::time::{Clock, RepeatingTimer};
use taskrunner::PostTask;
use taskrunner::{TaskPriority, TaskTraits};

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

// ---- seeded single-thread mode ---------------------------------------------------------------

fn seeded_log(seed: u64) -> Vec<String> {
    let env = TestEnvironment::builder().seed(seed).build();
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut seqs = Vec::new();
    for name in ["a", "b", "c", "d"] {
        let seq = env
            .pool()
            .create_sequenced_task_runner(TaskTraits::default());
        for i in 0..3 {
            let log = log.clone();
            seq.post_task(move || log.lock().unwrap().push(format!("{name}{i}")))
                .unwrap();
        }
        seqs.push(seq);
    }
    for i in 0..3 {
        let log = log.clone();
        env.pool()
            .post_task(TaskTraits::default(), move || {
                log.lock().unwrap().push(format!("p{i}"))
            })
            .unwrap();
    }
    env.run_until_idle();
    let v = log.lock().unwrap().clone();
    v
}

#[test]
fn a_seed_replays_the_same_interleaving_exactly() {
    for seed in 0..10 {
        assert_eq!(seeded_log(seed), seeded_log(seed), "seed {seed}");
    }
}

#[test]
fn different_seeds_explore_different_legal_interleavings() {
    let logs: std::collections::HashSet<Vec<String>> = (0..30).map(seeded_log).collect();
    assert!(
        logs.len() > 5,
        "only {} distinct orders in 30 seeds",
        logs.len()
    );
    for log in &logs {
        assert_eq!(log.len(), 15);
        for name in ["a", "b", "c", "d"] {
            let pos: Vec<usize> = (0..3)
                .map(|i| log.iter().position(|x| *x == format!("{name}{i}")).unwrap())
                .collect();
            assert!(pos[0] < pos[1] && pos[1] < pos[2], "FIFO broken in {log:?}");
        }
    }
}

#[test]
fn priorities_hold_in_every_seed() {
    for seed in 0..20 {
        let env = TestEnvironment::builder().seed(seed).build();
        let log = Arc::new(Mutex::new(Vec::new()));
        for p in [
            TaskPriority::BestEffort,
            TaskPriority::UserVisible,
            TaskPriority::UserBlocking,
        ] {
            for _ in 0..3 {
                let l = log.clone();
                let seq = env.pool().create_sequenced_task_runner(p.into());
                seq.post_task(move || l.lock().unwrap().push(p)).unwrap();
            }
        }
        env.run_until_idle();
        let got = log.lock().unwrap().clone();
        let mut sorted = got.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(got, sorted, "seed {seed}: higher priorities first");
    }
}

#[test]
fn seeded_mode_runs_everything_on_the_test_thread_including_single_thread_runners() {
    let env = TestEnvironment::builder().seed(3).build();
    let me = std::thread::current().id();
    let st = env
        .pool()
        .create_single_thread_task_runner(TaskTraits::default());
    let st2 = st.clone();
    let h1 = st
        .post_task_with_result(move || {
            (std::thread::current().id(), st2.belongs_to_current_thread())
        })
        .unwrap();
    let seq = env
        .pool()
        .create_sequenced_task_runner(TaskTraits::default());
    let h2 = seq
        .post_delayed_task_with_result(Duration::from_secs(5), || std::thread::current().id())
        .unwrap();
    env.fast_forward_by(Duration::from_secs(5));
    assert_eq!(h1.join().unwrap(), (me, true));
    assert_eq!(h2.join().unwrap(), me);
}

#[test]
fn joining_an_unfinished_task_on_the_driving_thread_panics_with_advice() {
    let env = TestEnvironment::builder().seed(1).build();
    let h = env
        .pool()
        .post_task_with_result(TaskTraits::default(), || 1)
        .unwrap();
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h.join())).unwrap_err();
    let msg = err
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| err.downcast_ref::<String>().cloned())
        .unwrap();
    assert!(msg.contains("run_until_idle"), "{msg}");
}

#[test]
fn seeded_environment_runs_block_shutdown_work_when_dropped() {
    let ran = Arc::new(AtomicU32::new(0));
    {
        let env = TestEnvironment::builder().seed(9).build();
        let r = ran.clone();
        env.pool()
            .post_task(
                TaskTraits::new().shutdown_behavior(taskrunner::ShutdownBehavior::BlockShutdown),
                move || {
                    r.fetch_add(1, Ordering::SeqCst);
                },
            )
            .unwrap();
    }
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

#[test]
fn seeded_timers_follow_the_mock_clock() {
    let env = TestEnvironment::builder().seed(5).build();
    let seq = env
        .pool()
        .create_sequenced_task_runner(TaskTraits::default());
    let runs = Arc::new(AtomicU32::new(0));
    let timer = RepeatingTimer::new(&seq);
    let r = runs.clone();
    timer
        .start(Duration::from_secs(60), move || {
            r.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    env.fast_forward_by(Duration::from_secs(600));
    assert_eq!(runs.load(Ordering::SeqCst), 10);
}

#[test]
fn joining_a_delayed_task_that_is_not_due_panics_instead_of_hanging() {
    let env = TestEnvironment::new();
    let h = env
        .pool()
        .post_delayed_task_with_result(TaskTraits::default(), Duration::from_secs(60), || 3)
        .unwrap();
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h.join())).unwrap_err();
    let msg = err
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| err.downcast_ref::<String>().cloned())
        .unwrap();
    assert!(msg.contains("fast_forward_by"), "{msg}");
    // Joining an immediate task from the driving thread is fine: workers run it.
    let h = env
        .pool()
        .post_task_with_result(TaskTraits::default(), || 4)
        .unwrap();
    assert_eq!(h.join().unwrap(), 4);
    // And a delayed one after the clock got there.
    let h = env
        .pool()
        .post_delayed_task_with_result(TaskTraits::default(), Duration::from_secs(1), || 5)
        .unwrap();
    env.fast_forward_by(Duration::from_secs(1));
    assert_eq!(h.join().unwrap(), 5);
}

#[test]
fn install_as_global_redirects_free_functions_in_its_scope_only() {
    let env = TestEnvironment::new();
    let env_thread_names = |h: taskrunner::TaskHandle<Option<String>>| h.join().unwrap();
    {
        let _guard = env.install_as_global();
        // From the test thread: the free functions post to the environment's pool.
        let h = taskrunner::post_task_with_result(TaskTraits::default(), || {
            // From a task of the environment's pool: still the environment.
            let inner = taskrunner::post_task_with_result(TaskTraits::default(), || {
                std::thread::current().name().map(str::to_owned)
            })
            .unwrap();
            (std::thread::current().name().map(str::to_owned), inner)
        })
        .unwrap();
        env.run_until_idle();
        let (outer, inner) = h.join().unwrap();
        env.run_until_idle();
        assert!(outer.unwrap().starts_with("taskrunner-test"));
        assert!(env_thread_names(inner)
            .unwrap()
            .starts_with("taskrunner-test"));
        // Another thread is not affected.
        let other = std::thread::spawn(|| {
            taskrunner::post_task_with_result(TaskTraits::default(), || {
                std::thread::current().name().map(str::to_owned)
            })
            .unwrap()
            .join()
            .unwrap()
        })
        .join()
        .unwrap();
        assert!(!other.unwrap().starts_with("taskrunner-test"));
    }
    // Guard dropped: back to the process-wide pool.
    let h = taskrunner::post_task_with_result(TaskTraits::default(), || {
        std::thread::current().name().map(str::to_owned)
    })
    .unwrap();
    assert!(!h.join().unwrap().unwrap().starts_with("taskrunner-test"));
}

#[test]
fn join_timeout_obeys_the_mock_clock() {
    let env = TestEnvironment::new();
    let h = env
        .pool()
        .post_delayed_task_with_result(TaskTraits::default(), Duration::from_secs(60), || 1)
        .unwrap();
    // Another thread waits with a 10 s timeout of *mock* time: real time does not end it...
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let mut h = h;
        started_tx.send(()).unwrap();
        let first = h.join_timeout(Duration::from_secs(10)).is_none();
        (first, h)
    });
    started_rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert!(
        !waiter.is_finished(),
        "a mock-time timeout must not elapse in real time"
    );
    // ...the test moving the clock past it does.
    env.advance_clock(Duration::from_secs(10));
    let (timed_out, mut h) = waiter.join().unwrap();
    assert!(timed_out);
    // And a join_timeout on the driving thread that only mock time could end is misuse.
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        h.join_timeout(Duration::from_secs(1))
    }))
    .unwrap_err();
    let msg = err
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| err.downcast_ref::<String>().cloned())
        .unwrap();
    assert!(msg.contains("fast_forward_by"), "{msg}");
    env.fast_forward_by(Duration::from_secs(60));
    assert_eq!(h.join_timeout(Duration::from_secs(1)).unwrap().unwrap(), 1);
}
