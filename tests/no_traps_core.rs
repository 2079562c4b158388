//! Regression tests for traps a user could fall into in the pool's core: blocking waits inside
//! tasks, waits that could never end, panics that used to abort the process, destructors that
//! call `shutdown()`, threads that cannot start, durations too large for `Instant`, mock time,
//! errors that must compose with `?`, and memory kept after a burst.
//!
//! Scenarios that used to abort the process run in a child process (this test binary, re-run
//! with one test selected): the parent asserts that the child exited normally.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use support::{must_return, Blocker, Latch};
use taskrunner::PostTask;
use taskrunner::{
    PostRefusal, SequenceBound, ShutdownBehavior, TaskError, TaskHandle, TaskPriority, TaskTraits,
    ThreadPool, ThreadPoolBuilder,
};

const CHILD_ENV: &str = "TASKRUNNER_NO_TRAPS_CHILD";
const SURVIVED: &str = "child scenario survived";

/// In the parent: re-runs this test binary with only `test` selected and `CHILD_ENV` set, and
/// asserts the child ran the scenario to its end (no abort, no hang). In the child: runs
/// `scenario` and prints the marker. Returns `true` in the child (the caller returns at once).
#[track_caller]
fn in_child_process(test: &str, scenario: impl FnOnce()) -> bool {
    if std::env::var(CHILD_ENV).as_deref() == Ok(test) {
        scenario();
        println!("{SURVIVED}");
        return true;
    }
    let exe = std::env::current_exe().unwrap();
    let out = must_return("the child process", {
        let test = test.to_owned();
        move || {
            std::process::Command::new(exe)
                .args([test.as_str(), "--exact", "--nocapture", "--test-threads=1"])
                .env(CHILD_ENV, &test)
                .output()
                .unwrap()
        }
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(SURVIVED),
        "the scenario did not survive in a child process ({:?}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    false
}

fn block() -> TaskTraits {
    TaskTraits::new().shutdown_behavior(ShutdownBehavior::BlockShutdown)
}

// ---- 1. blocking waits inside pool tasks ----------------------------------------------------

#[test]
fn join_inside_a_task_of_a_one_worker_pool_compensates() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let p2 = pool.clone();
    let outer = pool
        .post_task_with_result(TaskTraits::default(), move || {
            let inner = p2
                .post_task_with_result(TaskTraits::default(), || 6 * 7)
                .unwrap();
            inner.join().unwrap()
        })
        .unwrap();
    assert_eq!(
        must_return("the outer join", move || outer.join()).unwrap(),
        42
    );
}

#[test]
fn join_timeout_and_nested_joins_compensate_too() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let p2 = pool.clone();
    let outer = pool
        .post_task_with_result(TaskTraits::default(), move || {
            // Three levels deep on one worker: each level waits for the next.
            let p3 = p2.clone();
            let mid = p2
                .post_task_with_result(TaskTraits::default(), move || {
                    let mut leaf = p3
                        .post_task_with_result(TaskTraits::default(), || 1)
                        .unwrap();
                    leaf.join_timeout(Duration::MAX).unwrap().unwrap() + 1
                })
                .unwrap();
            mid.join().unwrap() + 1
        })
        .unwrap();
    assert_eq!(
        must_return("the outer join", move || outer.join()).unwrap(),
        3
    );
}

#[test]
fn many_tasks_joining_each_other_on_a_small_pool_all_finish() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let done = Latch::new(8);
    for _ in 0..8 {
        let p = pool.clone();
        let d = done.clone();
        pool.post_task(TaskTraits::default(), move || {
            let h = p
                .post_task_with_result(TaskTraits::default(), || 1)
                .unwrap();
            assert_eq!(h.join().unwrap(), 1);
            d.count_down();
        })
        .unwrap();
    }
    done.wait();
}

fn assert_own_sequence_panic(r: Result<impl Sized, Box<dyn std::any::Any + Send>>) {
    let payload = match r {
        Ok(_) => panic!("joining a task queued behind the caller must panic"),
        Err(p) => p,
    };
    let msg = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default();
    assert!(msg.contains("would wait forever"), "{msg}");
    assert!(
        msg.contains("post_task_and_reply") && msg.contains("then") && msg.contains(".await"),
        "the message names the fixes: {msg}"
    );
}

#[test]
fn joining_a_task_queued_behind_the_caller_on_its_own_sequence_panics_at_once() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let s2 = seq.clone();
    let checked = seq
        .post_task_with_result(move || {
            let h = s2.post_task_with_result(|| 1).unwrap();
            assert_own_sequence_panic(catch_unwind(AssertUnwindSafe(|| h.join())));
            // join_timeout cannot succeed either: it answers at once instead of sleeping.
            let mut h = s2.post_task_with_result(|| 2).unwrap();
            assert!(h.join_timeout(Duration::from_secs(3600)).is_none());
            h
        })
        .unwrap();
    let h = must_return("the checking task", move || checked.join().unwrap());
    assert_eq!(must_return("the queued task", move || h.join()).unwrap(), 2);
}

#[test]
fn joining_a_task_queued_behind_the_caller_on_its_own_thread_panics_at_once() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let st = pool.create_single_thread_task_runner(TaskTraits::default());
    let st2 = st.clone();
    let checked = st
        .post_task_with_result(move || {
            let h = st2.post_task_with_result(|| 1).unwrap();
            assert_own_sequence_panic(catch_unwind(AssertUnwindSafe(|| h.join())));
        })
        .unwrap();
    must_return("the checking task", move || checked.join().unwrap());
}

#[test]
fn sequence_bound_join_from_its_own_sequence_panics_at_once() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let bound = Arc::new(SequenceBound::new(seq.clone(), || 5_u32).unwrap());
    let b2 = bound.clone();
    let checked = seq
        .post_task_with_result(move || {
            let h = b2.post_with_result(|v| *v).unwrap();
            assert_own_sequence_panic(catch_unwind(AssertUnwindSafe(|| h.join())));
        })
        .unwrap();
    must_return("the checking task", move || checked.join().unwrap());
    // From elsewhere the same call is fine.
    assert_eq!(bound.post_with_result(|v| *v).unwrap().join().unwrap(), 5);
}

// ---- 2. panics are contained ----------------------------------------------------------------

/// Panics when dropped (once).
struct PanicOnDrop(&'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        // Unconditionally: dropping two of these in one unwinding collection aborts.
        panic!("{}", self.0);
    }
}

/// A panic payload whose own destructor panics.
struct PayloadPanicsOnDrop;

impl Drop for PayloadPanicsOnDrop {
    fn drop(&mut self) {
        panic!("the payload's destructor panicked");
    }
}

#[test]
fn two_discarded_tasks_with_panicking_destructors_queued_behind_a_running_task() {
    if in_child_process(
        "two_discarded_tasks_with_panicking_destructors_queued_behind_a_running_task",
        || {
            let pool = ThreadPool::builder().max_workers(1).build().unwrap();
            let seq = pool.create_sequenced_task_runner(TaskTraits::default());
            let blocker = Blocker::new();
            seq.post_task(blocker.task()).unwrap();
            blocker.wait_started();
            for name in ["first destructor", "second destructor", "third destructor"] {
                let token = PanicOnDrop(name);
                seq.post_task(move || drop(token)).unwrap();
            }
            let p = pool.clone();
            let shut = std::thread::spawn(move || p.shutdown());
            std::thread::sleep(Duration::from_millis(20));
            blocker.release();
            shut.join().unwrap();
        },
    ) {}
}

#[test]
fn two_delayed_tasks_with_panicking_destructors_dropped_at_shutdown() {
    if in_child_process(
        "two_delayed_tasks_with_panicking_destructors_dropped_at_shutdown",
        || {
            let pool = ThreadPool::builder().max_workers(1).build().unwrap();
            let seq = pool.create_sequenced_task_runner(TaskTraits::default());
            for name in ["first", "second", "third"] {
                let token = PanicOnDrop(name);
                pool.post_delayed_task(
                    TaskTraits::default(),
                    Duration::from_secs(3600),
                    move || drop(token),
                )
                .unwrap();
                let token = PanicOnDrop(name);
                seq.post_delayed_task(Duration::from_secs(3600), move || drop(token))
                    .unwrap();
            }
            pool.shutdown();
        },
    ) {}
}

#[test]
fn a_panic_payload_whose_drop_panics_does_not_abort() {
    if in_child_process("a_panic_payload_whose_drop_panics_does_not_abort", || {
        let handled = Arc::new(AtomicUsize::new(0));
        let h2 = handled.clone();
        let pool = ThreadPool::builder()
            .max_workers(1)
            .panic_handler(move |_| {
                h2.fetch_add(1, Ordering::SeqCst);
                std::panic::panic_any(PayloadPanicsOnDrop);
            })
            .build()
            .unwrap();
        // From a plain task, from a task with a handle, and from the panic handler itself.
        pool.post_task(block(), || std::panic::panic_any(PayloadPanicsOnDrop))
            .unwrap();
        let h = pool
            .post_task_with_result(block(), || -> u8 {
                std::panic::panic_any(PayloadPanicsOnDrop)
            })
            .unwrap();
        let err = h.join().unwrap_err();
        assert!(err.is_panic());
        drop(err); // the payload travels with the error; dropping it here is the user's panic
        pool.shutdown();
        assert_eq!(handled.load(Ordering::SeqCst), 2);
        // The worker survived all of it.
        let pool2 = ThreadPool::builder().max_workers(1).build().unwrap();
        assert_eq!(
            pool2
                .post_task_with_result(TaskTraits::default(), || 1)
                .unwrap()
                .join()
                .unwrap(),
            1
        );
    }) {}
}

#[test]
fn a_destructor_that_shuts_its_own_pool_down_never_deadlocks() {
    struct ShutsDown(ThreadPool, bool);
    impl Drop for ShutsDown {
        fn drop(&mut self) {
            if self.1 {
                let _ = self.0.shutdown_timeout(Duration::from_millis(50));
            } else {
                self.0.shutdown();
            }
        }
    }
    let rounds = (300.0 * support::scale()) as usize + 20;
    for round in 0..rounds {
        must_return(
            "a shutdown racing a destructor that calls shutdown",
            move || {
                let pool = ThreadPool::builder().max_workers(2).build().unwrap();
                let seq = pool.create_sequenced_task_runner(TaskTraits::default());
                let blocker = Blocker::new();
                seq.post_task(blocker.task()).unwrap();
                for i in 0..4 {
                    let token = ShutsDown(pool.clone(), (round + i) % 2 == 0);
                    seq.post_task(move || drop(token)).unwrap();
                    let token = ShutsDown(pool.clone(), (round + i) % 2 == 1);
                    pool.post_delayed_task(
                        TaskTraits::default(),
                        Duration::from_secs(60),
                        move || drop(token),
                    )
                    .unwrap();
                }
                blocker.wait_started();
                let p = pool.clone();
                let shut = std::thread::spawn(move || p.shutdown());
                blocker.release();
                shut.join().unwrap();
                assert!(pool.is_shutdown());
            },
        );
    }
}

// ---- 3. worker threads that cannot start ----------------------------------------------------

#[test]
fn a_pool_whose_threads_cannot_start_fails_to_build() {
    let err = ThreadPool::builder()
        .max_workers(2)
        .stack_size(1 << 60)
        .build()
        .unwrap_err();
    assert!(err.is_thread_spawn());
    assert!(!err.is_invalid_config());
    assert!(
        err.to_string().contains("could not start a worker thread"),
        "{err}"
    );
}

#[test]
fn worker_counts_are_validated() {
    for n in [usize::MAX, ThreadPoolBuilder::MAX_WORKERS + 1] {
        let err = ThreadPool::builder().max_workers(n).build().unwrap_err();
        assert!(err.is_invalid_config());
        let msg = err.to_string();
        assert!(msg.contains("between 1 and"), "{msg}");
        assert!(
            msg.contains(&ThreadPoolBuilder::MAX_WORKERS.to_string()),
            "{msg}"
        );
    }
    assert!(ThreadPool::builder()
        .max_workers(0)
        .build()
        .unwrap_err()
        .is_invalid_config());
}

// ---- 4. durations ---------------------------------------------------------------------------

#[test]
fn a_task_delayed_by_duration_max_never_runs_and_can_be_cancelled() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let never = seq
        .post_delayed_task_with_result(Duration::MAX, || "never")
        .unwrap();
    let also_never = pool
        .post_delayed_task_with_result(
            TaskTraits::default(),
            Duration::MAX - Duration::from_nanos(1),
            || 0,
        )
        .unwrap();
    assert_eq!(pool.pending_delayed_tasks(), 2);
    // Other work runs normally meanwhile.
    assert_eq!(seq.post_task_with_result(|| 1).unwrap().join().unwrap(), 1);
    let mut never = never;
    assert!(never.join_timeout(Duration::from_millis(20)).is_none());
    assert!(never.cancel());
    assert!(never.join().unwrap_err().is_cancelled());
    pool.shutdown();
    assert!(also_never.join().unwrap_err().is_not_run());
}

#[test]
fn durations_too_large_for_instant_mean_no_limit() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let mut done = pool
        .post_task_with_result(TaskTraits::default(), || 3)
        .unwrap();
    assert_eq!(done.join_timeout(Duration::MAX).unwrap().unwrap(), 3);
    let mut ready = TaskHandle::ready(4);
    assert_eq!(ready.join_timeout(Duration::MAX).unwrap().unwrap(), 4);
    // A wait that must last until another thread finishes the task.
    let blocker = Blocker::new();
    let mut h = pool
        .post_task_with_result(TaskTraits::default(), blocker.task())
        .unwrap();
    blocker.wait_started();
    let b2 = blocker.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(10));
        b2.release();
    });
    assert!(must_return("join_timeout(MAX)", move || h.join_timeout(Duration::MAX)).is_some());
    assert!(pool.shutdown_timeout(Duration::MAX).is_ok());
}

#[cfg(feature = "test-util")]
#[test]
fn mock_time_a_fifty_year_task_runs_after_fifty_years_and_a_max_one_never() {
    let env = taskrunner::testing::TestEnvironment::new();
    let seq = env
        .pool()
        .create_sequenced_task_runner(TaskTraits::default());
    let ran = Arc::new(Mutex::new(Vec::new()));
    let (r1, r2) = (ran.clone(), ran.clone());
    let fifty_years = Duration::from_secs(50 * 365 * 24 * 3600);
    seq.post_delayed_task(Duration::MAX, move || r1.lock().unwrap().push("never"))
        .unwrap();
    seq.post_delayed_task(fifty_years, move || r2.lock().unwrap().push("fifty years"))
        .unwrap();
    env.fast_forward_by(fifty_years - Duration::from_secs(1));
    assert!(ran.lock().unwrap().is_empty());
    env.fast_forward_by(Duration::from_secs(1));
    assert_eq!(*ran.lock().unwrap(), vec!["fifty years"]);
    env.fast_forward_by(fifty_years * 4);
    assert_eq!(
        *ran.lock().unwrap(),
        vec!["fifty years"],
        "a Duration::MAX task never runs"
    );
    assert_eq!(env.pool().pending_delayed_tasks(), 1);
}

// ---- 5. mock time is exact ------------------------------------------------------------------

#[cfg(feature = "test-util")]
#[test]
fn tasks_ripe_at_the_same_mock_instant_run_in_priority_order() {
    // Many best-effort tasks posted first, then one urgent task, all due at the same instant:
    // forwarding them one by one would give the worker time to start a best-effort task
    // before the urgent one is queued.
    let rounds = (20.0 * support::scale()) as usize + 5;
    const BEST_EFFORT: usize = 2000;
    for _ in 0..rounds {
        let env = taskrunner::testing::TestEnvironment::builder()
            .workers(1)
            .build();
        // Start the worker first, so that it is parked (not starting) when the tasks ripen.
        env.pool().post_task(TaskTraits::default(), || ()).unwrap();
        env.run_until_idle();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut expected = Vec::new();
        let post = |p: TaskPriority, i: usize| {
            let o = order.clone();
            env.pool()
                .post_delayed_task(
                    TaskTraits::new().priority(p),
                    Duration::from_millis(10),
                    move || o.lock().unwrap().push((p, i)),
                )
                .unwrap();
        };
        for i in 0..BEST_EFFORT {
            post(TaskPriority::BestEffort, i);
        }
        post(TaskPriority::UserVisible, BEST_EFFORT);
        post(TaskPriority::UserBlocking, BEST_EFFORT + 1);
        expected.push((TaskPriority::UserBlocking, BEST_EFFORT + 1));
        expected.push((TaskPriority::UserVisible, BEST_EFFORT));
        expected.extend((0..BEST_EFFORT).map(|i| (TaskPriority::BestEffort, i)));
        env.fast_forward_by(Duration::from_millis(10));
        assert_eq!(*order.lock().unwrap(), expected);
    }
}

#[cfg(feature = "test-util")]
#[test]
fn join_timeout_on_the_driving_thread_waits_for_a_task_that_needs_no_mock_time() {
    let env = taskrunner::testing::TestEnvironment::new();
    let mut h = env
        .pool()
        .post_task_with_result(TaskTraits::default(), || {
            std::thread::sleep(Duration::from_millis(5));
            9
        })
        .unwrap();
    assert_eq!(h.join_timeout(Duration::from_secs(1)).unwrap().unwrap(), 9);
}

// ---- 6. errors compose with `?` -------------------------------------------------------------

fn assert_error<E: std::error::Error + Send + Sync + 'static>() {}

#[test]
fn every_core_error_is_a_send_sync_error() {
    assert_error::<PostRefusal>();
    // A closure that is Send but not Sync (it captures a Receiver).
    assert_error::<taskrunner::PostError<mpsc::Receiver<u8>>>();
    assert_error::<TaskError>();
    assert_error::<taskrunner::BuildError>();
    assert_error::<taskrunner::ShutdownTimedOut>();
}

#[test]
fn question_mark_works_whatever_the_closure_captures() {
    fn post_recv(pool: &ThreadPool) -> Result<u8, Box<dyn std::error::Error + Send + Sync>> {
        let (tx, rx) = mpsc::channel::<u8>();
        let h = pool.post_task_with_result(TaskTraits::default(), move || rx.recv())?;
        tx.send(7)?;
        Ok(h.join()??)
    }
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    assert_eq!(post_recv(&pool).unwrap(), 7);
    pool.shutdown();
    let err = post_recv(&pool).unwrap_err();
    assert!(err.to_string().contains("shut down"), "{err}");
    let reason: PostRefusal = pool
        .post_task(TaskTraits::default(), || ())
        .unwrap_err()
        .into();
    assert_eq!(reason, PostRefusal::ShutdownCompleted);
}

#[test]
fn task_error_new_is_a_failure_and_a_panic_payload_can_be_taken_back() {
    let e = TaskError::new("no such user");
    assert!(e.is_failed() && !e.is_panic());
    assert_eq!(e.panic_message(), None);
    assert_eq!(e.to_string(), "task failed: no such user");

    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let h = pool
        .post_task_with_result(TaskTraits::default(), || -> u8 {
            std::panic::panic_any(17_u64)
        })
        .unwrap();
    let err = h.join().unwrap_err();
    let copy = err.clone();
    assert_eq!(err.into_panic().downcast_ref::<u64>(), Some(&17));
    // The clone's payload was taken by the first: it gets the message instead.
    assert!(copy
        .try_into_panic()
        .unwrap()
        .downcast_ref::<String>()
        .is_some());
    let resumed = catch_unwind(AssertUnwindSafe(|| {
        let h = pool
            .post_task_with_result(TaskTraits::default(), || -> u8 { panic!("again") })
            .unwrap();
        std::panic::resume_unwind(h.join().unwrap_err().into_panic())
    }));
    assert_eq!(resumed.unwrap_err().downcast_ref::<&str>(), Some(&"again"));
}

#[test]
fn an_abort_handle_cancels_while_another_thread_is_blocked_in_join() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let blocker = Blocker::new();
    pool.post_task(TaskTraits::default(), blocker.task())
        .unwrap();
    blocker.wait_started();
    let h = pool
        .post_task_with_result(TaskTraits::default(), || 1)
        .unwrap();
    let abort = h.abort_handle();
    let joiner = std::thread::spawn(move || h.join());
    std::thread::sleep(Duration::from_millis(10));
    assert!(abort.clone().cancel());
    let r = must_return("the blocked join", move || joiner.join().unwrap());
    assert!(r.unwrap_err().is_cancelled());
    assert!(abort.is_finished());
    blocker.release();
}

#[test]
fn posted_from_is_the_callers_line_for_every_core_post() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let pool = ThreadPool::builder()
        .max_workers(1)
        .panic_handler(move |p| s2.lock().unwrap().push(p.posted_from().file().to_owned()))
        .build()
        .unwrap();
    let seq = pool.create_sequenced_task_runner(block());
    pool.post_task(block(), || panic!("a")).unwrap();
    seq.post_task(|| panic!("b")).unwrap();
    let _ = seq
        .post_task_with_result(|| -> u8 { panic!("c") })
        .unwrap()
        .join();
    let h = TaskHandle::ready(1).then(&seq, |_| -> u8 { panic!("d") });
    let _ = h.join();
    let (d, h) = taskrunner::Deferred::new(|| -> u8 { panic!("e") });
    d.run_on(&seq).unwrap();
    let _ = h.join();
    let bound = SequenceBound::new(seq.clone(), || 0_u8).unwrap();
    bound.post(|_| panic!("f")).unwrap();
    drop(bound);
    pool.shutdown();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 6, "{seen:?}");
    for file in seen.iter() {
        assert!(file.ends_with("no_traps_core.rs"), "posted from {file}");
    }
}

#[test]
fn then_and_deferred_panics_follow_the_runner_panic_policy() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let poison = TaskTraits::new().panic_policy(taskrunner::PanicPolicy::Poison);
    let seq = pool.create_sequenced_task_runner(poison);
    let h = TaskHandle::ready(1).then(&seq, |_| -> u8 { panic!("continuation") });
    assert!(h.join().unwrap_err().is_panic());
    let err = seq.post_task(|| ()).unwrap_err();
    assert_eq!(err.reason(), PostRefusal::SequencePoisoned);
}

/// The address-space size of this process (`VmSize` of `/proc/self/status`), in bytes.
fn address_space() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// Sets the soft address-space limit (the hard one stays, so it can be raised again).
#[allow(unsafe_code)]
fn set_address_space_limit(bytes: Option<u64>) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `getrlimit`/`setrlimit` read and write the plain struct passed by pointer.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_AS, &mut lim), 0);
        lim.rlim_cur = bytes.unwrap_or(lim.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_AS, &lim), 0);
    }
}

#[test]
fn when_worker_threads_cannot_start_posts_are_refused_and_shutdown_does_not_wait() {
    if in_child_process(
        "when_worker_threads_cannot_start_posts_are_refused_and_shutdown_does_not_wait",
        || {
            const STACK: usize = 512 << 20;
            let pool = ThreadPool::builder()
                .max_workers(2)
                .stack_size(STACK)
                .build()
                .expect("the start check passes before the limit is lowered");
            // From now on a worker's stack no longer fits into the address space.
            set_address_space_limit(Some(address_space() + (STACK as u64) / 4));
            let first = pool
                .post_task_with_result(block(), || "ran")
                .expect("the first post queues the task; starting its worker fails");
            let refused = pool.post_task(TaskTraits::default(), || ()).unwrap_err();
            assert_eq!(refused.reason(), PostRefusal::ThreadSpawnFailed);
            let refused = pool
                .create_sequenced_task_runner(TaskTraits::default())
                .post_task_with_result(|| 1)
                .unwrap_err();
            assert_eq!(refused.reason(), PostRefusal::ThreadSpawnFailed);
            assert!(refused.to_string().contains("no thread could be started"));
            // Threads can start again: posts are accepted and what was queued runs.
            set_address_space_limit(None);
            let second = pool
                .post_task_with_result(TaskTraits::default(), || 2)
                .unwrap();
            assert_eq!(second.join().unwrap(), 2);
            assert_eq!(first.join().unwrap(), "ran");

            // Stalled again with block-shutdown work queued: shutdown discards it instead of
            // waiting for a thread that can never start.
            let pool = ThreadPool::builder()
                .max_workers(1)
                .stack_size(STACK)
                .build()
                .unwrap();
            set_address_space_limit(Some(address_space() + (STACK as u64) / 4));
            let queued = pool.post_task_with_result(block(), || "never").unwrap();
            pool.shutdown();
            set_address_space_limit(None);
            assert!(queued.join().unwrap_err().is_not_run());
        },
    ) {}
}
