//! Chromium's shutdown contract, case by case:
//!
//! | behaviour | not started at shutdown | running at shutdown |
//! |---|---|---|
//! | `ContinueOnShutdown` | never runs | not waited for |
//! | `SkipOnShutdown` | never runs | waited for |
//! | `BlockShutdown` | runs (if posted before completion); waited for | waited for |
//!
//! plus: delayed tasks never block shutdown and never run after it started; posts after
//! shutdown are refused with the closure handed back; `shutdown_timeout`; idempotence; calling
//! `shutdown()` from a task of the pool is a clear panic, never a hang.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{
    must_return, wait_until, Blocker, Counter, DropCounter, ManualClock, Recorder, ThreadExitProbe,
};
use taskrunner::time::Clock;
use taskrunner::PostTask;
use taskrunner::{PostRefusal, ShutdownBehavior, TaskTraits, ThreadPool};

use ShutdownBehavior::{BlockShutdown, ContinueOnShutdown, SkipOnShutdown};

fn traits(b: ShutdownBehavior) -> TaskTraits {
    TaskTraits::new().shutdown_behavior(b)
}

/// Releases `blocker` from another thread once `pool`'s shutdown has started, so the blocker is
/// guaranteed to be running when shutdown begins and to finish only after.
fn release_once_shutdown_started(
    pool: &ThreadPool,
    blocker: &Blocker,
) -> std::thread::JoinHandle<()> {
    let (pool, blocker) = (pool.clone(), blocker.clone());
    std::thread::spawn(move || {
        wait_until("shutdown has started", || pool.is_shutdown());
        blocker.release();
    })
}

#[test]
fn not_started_skip_and_continue_tasks_never_run_and_are_dropped_by_shutdown() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let blocker = Blocker::new();
    pool.post_task(traits(SkipOnShutdown), blocker.task())
        .unwrap();
    blocker.wait_started();

    let ran = Counter::new();
    let drops = DropCounter::new();
    let mut posted = 0;
    for b in [SkipOnShutdown, ContinueOnShutdown] {
        let seq = pool.create_sequenced_task_runner(traits(b));
        let par = pool.create_task_runner(traits(b));
        for _ in 0..5 {
            let (tok, r) = (drops.token(), ran.clone());
            seq.post_task(move || {
                tok.keep();
                r.incr();
            })
            .unwrap();
            let (tok, r) = (drops.token(), ran.clone());
            par.post_task(move || {
                tok.keep();
                r.incr();
            })
            .unwrap();
            let (tok, r) = (drops.token(), ran.clone());
            pool.post_task(traits(b), move || {
                tok.keep();
                r.incr();
            })
            .unwrap();
            posted += 3;
        }
    }
    let releaser = release_once_shutdown_started(&pool, &blocker);
    pool.shutdown();
    releaser.join().unwrap();
    assert!(blocker.finished());
    assert_eq!(ran.get(), 0, "queued skip/continue tasks must never run");
    assert_eq!(
        drops.dropped(),
        posted,
        "every skipped closure is destroyed by the time shutdown returns"
    );
}

#[test]
fn tasks_queued_behind_a_running_task_of_the_same_sequence_are_skipped_and_dropped() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let seq = pool.create_sequenced_task_runner(traits(SkipOnShutdown));
    let blocker = Blocker::new();
    seq.post_task(blocker.task()).unwrap();
    let ran = Counter::new();
    let drops = DropCounter::new();
    for _ in 0..10 {
        let (tok, r) = (drops.token(), ran.clone());
        seq.post_task(move || {
            tok.keep();
            r.incr();
        })
        .unwrap();
    }
    blocker.wait_started();
    let releaser = release_once_shutdown_started(&pool, &blocker);
    pool.shutdown();
    releaser.join().unwrap();
    assert!(blocker.finished(), "a running skip task is waited for");
    assert_eq!(ran.get(), 0);
    assert_eq!(drops.dropped(), 10);
}

#[test]
fn running_skip_on_shutdown_task_is_waited_for() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let blocker = Blocker::new();
    let seq_blocker = Blocker::new();
    // Lingering after release: a shutdown that did not wait would return before `finished`.
    pool.post_task(
        traits(SkipOnShutdown),
        blocker.lingering_task(Duration::from_millis(50)),
    )
    .unwrap();
    pool.create_sequenced_task_runner(traits(SkipOnShutdown))
        .post_task(seq_blocker.lingering_task(Duration::from_millis(50)))
        .unwrap();
    blocker.wait_started();
    seq_blocker.wait_started();
    let r1 = release_once_shutdown_started(&pool, &blocker);
    let r2 = release_once_shutdown_started(&pool, &seq_blocker);
    pool.shutdown();
    assert!(blocker.finished());
    assert!(seq_blocker.finished());
    r1.join().unwrap();
    r2.join().unwrap();
}

#[test]
fn running_continue_on_shutdown_task_is_not_waited_for() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let blocker = Blocker::new();
    pool.post_task(traits(ContinueOnShutdown), blocker.task())
        .unwrap();
    let seq_blocker = Blocker::new();
    pool.create_sequenced_task_runner(traits(ContinueOnShutdown))
        .post_task(seq_blocker.task())
        .unwrap();
    blocker.wait_started();
    seq_blocker.wait_started();

    let p2 = pool.clone();
    must_return(
        "shutdown() with a running continue-on-shutdown task",
        move || p2.shutdown(),
    );
    assert!(pool.is_shutdown());
    assert!(!blocker.finished() && !seq_blocker.finished());
    // The tasks are still running and finish normally afterwards.
    blocker.release();
    seq_blocker.release();
    wait_until("the continue-on-shutdown tasks finish", || {
        blocker.finished() && seq_blocker.finished()
    });
}

#[test]
fn block_shutdown_tasks_posted_before_shutdown_all_run_and_are_waited_for() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let blocker = Blocker::new();
    pool.post_task(traits(SkipOnShutdown), blocker.task())
        .unwrap();
    blocker.wait_started();

    let rec = Recorder::new();
    let seq = pool.create_sequenced_task_runner(traits(BlockShutdown));
    let par = pool.create_task_runner(traits(BlockShutdown));
    for i in 0..5 {
        seq.post_task(rec.task(format!("seq-{i}"))).unwrap();
        par.post_task(rec.task(format!("par-{i}"))).unwrap();
        pool.post_task(traits(BlockShutdown), rec.task(format!("pool-{i}")))
            .unwrap();
    }
    // A block-shutdown task that, running during shutdown, posts more block-shutdown work (to
    // its own sequence and as a one-off) and tries to post skip work.
    let (r, s2, p2) = (rec.clone(), seq.clone(), pool.clone());
    let refused = Recorder::new();
    let refused2 = refused.clone();
    seq.post_task(move || {
        assert!(
            p2.is_shutdown(),
            "runs after the blocker, so during shutdown"
        );
        s2.post_task(r.task("nested-seq".to_owned())).unwrap();
        p2.post_task(traits(BlockShutdown), r.task("nested-pool".to_owned()))
            .unwrap();
        let skip = p2.post_task(traits(SkipOnShutdown), || ());
        refused2.push(skip.map_err(|e| e.reason()));
        let delayed = s2.post_delayed_task(Duration::from_millis(1), || ());
        refused2.push(delayed.map_err(|e| e.reason()));
    })
    .unwrap();

    let releaser = release_once_shutdown_started(&pool, &blocker);
    pool.shutdown();
    releaser.join().unwrap();

    let mut ran = rec.snapshot();
    assert_eq!(ran.len(), 17, "every block-shutdown task ran: {ran:?}");
    let seq_order: Vec<_> = ran
        .iter()
        .filter(|s| s.starts_with("seq-"))
        .cloned()
        .collect();
    assert_eq!(
        seq_order,
        (0..5).map(|i| format!("seq-{i}")).collect::<Vec<_>>()
    );
    ran.sort();
    assert!(ran.contains(&"nested-seq".to_owned()) && ran.contains(&"nested-pool".to_owned()));
    assert_eq!(
        refused.snapshot(),
        vec![
            Err(PostRefusal::ShutdownStarted),
            Err(PostRefusal::ShutdownStarted)
        ],
        "during shutdown only immediate block-shutdown posts are accepted"
    );
}

#[test]
fn delayed_tasks_never_block_shutdown_and_never_run() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let ran = Counter::new();
    let drops = DropCounter::new();
    for b in [BlockShutdown, SkipOnShutdown, ContinueOnShutdown] {
        let (tok, r) = (drops.token(), ran.clone());
        pool.post_delayed_task(traits(b), Duration::from_secs(3600), move || {
            tok.keep();
            r.incr();
        })
        .unwrap();
        let (tok, r) = (drops.token(), ran.clone());
        pool.create_sequenced_task_runner(traits(b))
            .post_delayed_task(Duration::from_secs(3600), move || {
                tok.keep();
                r.incr();
            })
            .unwrap();
    }
    assert_eq!(pool.pending_delayed_tasks(), 6);
    let p2 = pool.clone();
    must_return(
        "shutdown() with pending delayed block-shutdown tasks",
        move || p2.shutdown(),
    );
    assert_eq!(ran.get(), 0);
    assert_eq!(
        drops.dropped(),
        6,
        "pending delayed tasks are dropped at shutdown"
    );
    assert_eq!(pool.pending_delayed_tasks(), 0);
}

/// A delayed block-shutdown task that ripened (was forwarded to its sequence) but had not
/// started when shutdown began is skipped, while the immediate block-shutdown task queued
/// behind it on the same sequence still runs.
#[test]
fn ripe_delayed_block_shutdown_task_not_yet_started_is_skipped_at_shutdown() {
    let clock = ManualClock::new();
    let pool = ThreadPool::builder()
        .max_workers(1)
        .clock(clock.clone())
        .build()
        .unwrap();
    let blocker = Blocker::new();
    pool.post_task(traits(SkipOnShutdown), blocker.task())
        .unwrap();
    blocker.wait_started();

    let rec = Recorder::new();
    let drops = DropCounter::new();
    let seq = pool.create_sequenced_task_runner(traits(BlockShutdown));
    let (tok, r) = (drops.token(), rec.clone());
    seq.post_delayed_task(Duration::from_millis(5), move || {
        tok.keep();
        r.push("delayed-seq");
    })
    .unwrap();
    let (tok, r) = (drops.token(), rec.clone());
    pool.post_delayed_task(traits(BlockShutdown), Duration::from_millis(5), move || {
        tok.keep();
        r.push("delayed-pool");
    })
    .unwrap();
    clock.advance(Duration::from_millis(5));
    wait_until("the delayed tasks were forwarded", || {
        pool.pending_delayed_tasks() == 0
    });
    seq.post_task(rec.task("immediate-seq")).unwrap();

    let releaser = release_once_shutdown_started(&pool, &blocker);
    pool.shutdown();
    releaser.join().unwrap();
    assert_eq!(rec.snapshot(), vec!["immediate-seq"]);
    assert_eq!(drops.dropped(), 2);
}

#[test]
fn posts_after_shutdown_are_refused_and_hand_the_closure_back() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let seq = pool.create_sequenced_task_runner(traits(BlockShutdown));
    let par = pool.create_task_runner(traits(BlockShutdown));
    let st = pool.create_single_thread_task_runner(traits(BlockShutdown));
    pool.shutdown();

    let drops = DropCounter::new();
    let ran = Recorder::new();
    let task = |tag: &'static str| {
        let (tok, r) = (drops.token(), ran.clone());
        move || {
            tok.keep();
            r.push(tag);
        }
    };
    let refusals = vec![
        pool.post_task(traits(BlockShutdown), task("pool"))
            .unwrap_err(),
        pool.post_delayed_task(
            traits(SkipOnShutdown),
            Duration::from_millis(1),
            task("pool-delayed"),
        )
        .unwrap_err(),
        seq.post_task(task("seq")).unwrap_err(),
        seq.post_delayed_task(Duration::from_millis(1), task("seq-delayed"))
            .unwrap_err(),
        par.post_task(task("par")).unwrap_err(),
        par.post_delayed_task(Duration::from_millis(1), task("par-delayed"))
            .unwrap_err(),
        st.post_task(task("single")).unwrap_err(),
        st.post_delayed_task(Duration::from_millis(1), task("single-delayed"))
            .unwrap_err(),
        st.as_sequenced()
            .post_task(task("single-as-seq"))
            .unwrap_err(),
    ];
    assert_eq!(
        drops.dropped(),
        0,
        "refused closures are not dropped, they are handed back"
    );
    assert!(ran.snapshot().is_empty());
    for err in refusals {
        assert_eq!(err.reason(), PostRefusal::ShutdownCompleted);
        assert!(err.is_shutdown());
        let f = err.into_inner();
        f(); // nothing was lost: the caller can still run it
    }
    assert_eq!(
        ran.snapshot(),
        vec![
            "pool",
            "pool-delayed",
            "seq",
            "seq-delayed",
            "par",
            "par-delayed",
            "single",
            "single-delayed",
            "single-as-seq"
        ]
    );
    assert_eq!(drops.dropped(), 9);
}

#[test]
fn posts_while_shutdown_is_in_progress_are_refused_unless_immediate_block_shutdown() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let blocker = Blocker::new();
    pool.post_task(traits(SkipOnShutdown), blocker.task())
        .unwrap();
    blocker.wait_started();
    let p2 = pool.clone();
    let shutting_down = std::thread::spawn(move || p2.shutdown());
    wait_until("shutdown has started", || pool.is_shutdown());

    let handed_back = Recorder::new();
    for b in [SkipOnShutdown, ContinueOnShutdown] {
        let err = pool.post_task(traits(b), handed_back.task(1)).unwrap_err();
        assert_eq!(err.reason(), PostRefusal::ShutdownStarted);
        err.into_inner()();
        let err = pool
            .create_sequenced_task_runner(traits(b))
            .post_task(handed_back.task(2))
            .unwrap_err();
        assert_eq!(err.reason(), PostRefusal::ShutdownStarted);
        err.into_inner()();
    }
    let err = pool
        .post_delayed_task(
            traits(BlockShutdown),
            Duration::from_millis(1),
            handed_back.task(3),
        )
        .unwrap_err();
    assert_eq!(err.reason(), PostRefusal::ShutdownStarted);
    err.into_inner()();
    assert_eq!(handed_back.snapshot(), vec![1, 2, 1, 2, 3]);

    // Immediate block-shutdown posts are still accepted, and run before shutdown completes.
    let ran = Arc::new(AtomicBool::new(false));
    let r2 = ran.clone();
    pool.create_sequenced_task_runner(traits(BlockShutdown))
        .post_task(move || r2.store(true, Ordering::SeqCst))
        .unwrap();
    blocker.release();
    shutting_down.join().unwrap();
    assert!(ran.load(Ordering::SeqCst));
}

#[test]
fn shutdown_timeout_reports_the_running_task_and_where_it_was_posted() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let blocker = Blocker::new();
    let skip = traits(SkipOnShutdown);
    let posted = (line!(), pool.post_task(skip, blocker.task()));
    posted.1.unwrap();
    blocker.wait_started();

    let err = pool
        .shutdown_timeout(Duration::from_millis(50))
        .expect_err("a running skip task keeps shutdown from completing");
    assert!(pool.is_shutdown());
    assert_eq!(err.running().len(), 1);
    let running = err.running()[0];
    assert_eq!(running.posted_from.line(), posted.0);
    assert_eq!(running.posted_from.file(), file!());
    assert_eq!(running.shutdown_behavior, SkipOnShutdown);
    assert!(!running.sequenced);
    assert!(err.pending_items() >= 1);
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("{}:{}", file!(), posted.0)),
        "the message names the task's posting location: {msg}"
    );

    // Shutdown completes by itself once the task finishes; a second call waits for that.
    blocker.release();
    let p2 = pool.clone();
    must_return(
        "shutdown() after a timed-out shutdown_timeout()",
        move || p2.shutdown(),
    );
    assert!(blocker.finished());
    assert!(pool.shutdown_timeout(Duration::from_secs(1)).is_ok());
}

#[test]
fn shutdown_timeout_is_ok_when_shutdown_is_quick() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let ran = Counter::new();
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    for _ in 0..10 {
        let r = ran.clone();
        seq.post_task(move || r.incr()).unwrap();
    }
    ran.wait_for(10);
    assert!(pool.shutdown_timeout(support::TIMEOUT).is_ok());
    assert!(pool.is_shutdown());
}

#[test]
fn shutdown_is_idempotent_and_safe_to_call_from_several_threads() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let blocker = Blocker::new();
    pool.post_task(traits(BlockShutdown), blocker.task())
        .unwrap();
    blocker.wait_started();
    let callers: Vec<_> = (0..3)
        .map(|_| {
            let p = pool.clone();
            std::thread::spawn(move || p.shutdown())
        })
        .collect();
    wait_until("shutdown has started", || pool.is_shutdown());
    blocker.release();
    for c in callers {
        c.join().unwrap();
    }
    assert!(
        blocker.finished(),
        "every caller returned only after completion"
    );
    pool.shutdown();
    pool.shutdown();
    assert!(pool.shutdown_timeout(Duration::ZERO).is_ok());
}

#[test]
fn shutdown_called_from_a_task_of_the_same_pool_panics_instead_of_hanging() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let p2 = pool.clone();
    pool.create_sequenced_task_runner(TaskTraits::default())
        .post_task(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p2.shutdown()));
            let msg = match r {
                Ok(()) => None,
                Err(payload) => Some(
                    payload
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_default(),
                ),
            };
            tx.send(msg).unwrap();
        })
        .unwrap();
    let msg = rx
        .recv_timeout(support::TIMEOUT)
        .expect("shutdown() from inside a task must not hang")
        .expect("shutdown() from inside a task must panic");
    assert!(
        msg.contains("inside a task") && msg.contains("shutdown"),
        "the panic says what went wrong: {msg}"
    );
    // The pool is still usable and shuts down normally from outside.
    let ran = Counter::new();
    let r = ran.clone();
    pool.post_task(TaskTraits::default(), move || r.incr())
        .unwrap();
    ran.wait_for(1);
    pool.shutdown();
}

#[test]
fn single_thread_runner_block_shutdown_tasks_run_at_shutdown() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let st = pool.create_single_thread_task_runner(traits(BlockShutdown));
    let blocker = Blocker::new();
    st.post_task(blocker.task()).unwrap();
    let rec = Recorder::new();
    for i in 0..5 {
        st.post_task(rec.task(i)).unwrap();
    }
    blocker.wait_started();
    let releaser = release_once_shutdown_started(&pool, &blocker);
    pool.shutdown();
    releaser.join().unwrap();
    assert_eq!(rec.snapshot(), vec![0, 1, 2, 3, 4]);
    let err = st.post_task(|| ()).unwrap_err();
    assert_eq!(err.reason(), PostRefusal::ShutdownCompleted);
    must_return(
        "dropping a single-thread runner after shutdown",
        move || drop(st),
    );
}

#[test]
fn single_thread_runner_skip_tasks_queued_at_shutdown_never_run() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let st = pool.create_single_thread_task_runner(traits(SkipOnShutdown));
    let blocker = Blocker::new();
    st.post_task(blocker.task()).unwrap();
    let ran = Counter::new();
    let drops = DropCounter::new();
    for _ in 0..5 {
        let (tok, r) = (drops.token(), ran.clone());
        st.post_task(move || {
            tok.keep();
            r.incr();
        })
        .unwrap();
    }
    blocker.wait_started();
    let releaser = release_once_shutdown_started(&pool, &blocker);
    pool.shutdown();
    releaser.join().unwrap();
    assert!(blocker.finished());
    assert_eq!(ran.get(), 0);
    assert_eq!(drops.dropped(), 5);
    must_return(
        "dropping a single-thread runner after shutdown",
        move || drop(st),
    );
}

/// Regression test: the worker that completes shutdown discards the rest of the sequence it
/// was running *after* waking `shutdown()`; shutdown must still wait for that (it joins the
/// worker) before returning. A slow destructor widens the window.
#[test]
fn skipped_tasks_are_dropped_before_shutdown_returns_even_with_slow_destructors() {
    struct SlowDrop(support::DropToken);
    impl Drop for SlowDrop {
        fn drop(&mut self) {
            std::thread::sleep(Duration::from_millis(20));
            self.0.keep();
        }
    }
    for _ in 0..3 {
        let pool = ThreadPool::builder().max_workers(1).build().unwrap();
        let seq = pool.create_sequenced_task_runner(traits(SkipOnShutdown));
        let blocker = Blocker::new();
        seq.post_task(blocker.task()).unwrap();
        let drops = DropCounter::new();
        let slow = SlowDrop(drops.token());
        seq.post_task(move || {
            let _s = &slow;
        })
        .unwrap();
        blocker.wait_started();
        let releaser = release_once_shutdown_started(&pool, &blocker);
        pool.shutdown();
        assert_eq!(drops.dropped(), 1, "dropped before shutdown() returned");
        releaser.join().unwrap();
    }
}

/// A clock that arms a thread-exit probe on the pool's delay thread (the only thread that
/// calls `now()` from a thread named `*-delay`), so the test can tell when that thread is gone.
#[derive(Debug)]
struct ProbingClock(ThreadExitProbe);

impl Clock for ProbingClock {
    fn now(&self) -> Instant {
        thread_local! {
            static ARMED: Cell<bool> = const { Cell::new(false) };
        }
        let on_delay_thread = std::thread::current()
            .name()
            .is_some_and(|n| n.ends_with("-delay"));
        if on_delay_thread && !ARMED.with(|a| a.replace(true)) {
            self.0.arm();
        }
        Instant::now()
    }
}

/// `shutdown()` joins the worker, single-thread and delay threads before it returns: each
/// thread's exit hooks (thread-local destructors, which run before a thread can be joined)
/// have all run by then. The hooks are slow on purpose, to widen the window in which a thread
/// that was not joined would still be exiting.
#[test]
fn shutdown_joins_the_worker_single_thread_and_delay_threads() {
    let probe = ThreadExitProbe::new();
    let pool = ThreadPool::builder()
        .max_workers(1)
        .clock(ProbingClock(probe.clone()))
        .build()
        .unwrap();
    let st = pool.create_single_thread_task_runner(TaskTraits::default());
    let armed = Counter::new();
    let (p, a) = (probe.clone(), armed.clone());
    pool.post_task(TaskTraits::default(), move || {
        support::on_thread_exit(|| std::thread::sleep(Duration::from_millis(30)));
        p.arm();
        a.incr();
    })
    .unwrap();
    let (p, a) = (probe.clone(), armed.clone());
    st.post_task(move || {
        support::on_thread_exit(|| std::thread::sleep(Duration::from_millis(100)));
        p.arm();
        a.incr();
    })
    .unwrap();
    let a = armed.clone();
    pool.post_delayed_task(TaskTraits::default(), Duration::from_millis(1), move || {
        a.incr()
    })
    .unwrap();
    armed.wait_for(3); // the delayed task ran, so the delay thread has called now() too
    assert_eq!(probe.exited(), 0);
    pool.shutdown();
    assert_eq!(
        probe.exited(),
        3,
        "shutdown() returned before every pool thread (worker, single-thread, delay) was joined"
    );
    drop(st);
}

#[test]
fn single_thread_runner_created_after_shutdown_refuses_posts_and_starts_no_thread() {
    let pool = ThreadPool::builder()
        .max_workers(1)
        .thread_name("late")
        .build()
        .unwrap();
    pool.shutdown();
    let st = pool.create_single_thread_task_runner(traits(BlockShutdown));
    let rec = Recorder::new();
    let err = st.post_task(rec.task(1)).unwrap_err();
    assert!(err.is_shutdown(), "{err}");
    err.into_inner()();
    assert_eq!(rec.snapshot(), vec![1]);
    assert!(st.as_sequenced().post_task(|| ()).is_err());
    assert_eq!(support::threads_named("late-"), 0);
    must_return("dropping a thread-less single-thread runner", move || {
        drop(st)
    });
}
