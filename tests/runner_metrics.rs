//! Named runners and their metrics, the pool's dropped count and time histograms, and the
//! control of parallel and keyed runners (flush, close), progress of executors and consumers.
//! Every figure is checked exactly against a known workload; timeouts only turn a hang into a
//! failure.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use taskrunner::executor::Executor;
use taskrunner::fork_join::consume;
use taskrunner::metrics::MetricKind;
use taskrunner::{
    Deferred, PanicPolicy, PostRefusal, PostTask, ShutdownBehavior, TaskPriority, TaskTraits,
    ThreadPool,
};

mod support;
use support::{hold, posts_around_close, wait_until};

fn skip() -> TaskTraits {
    TaskTraits::new().shutdown_behavior(ShutdownBehavior::SkipOnShutdown)
}

fn block() -> TaskTraits {
    TaskTraits::new().shutdown_behavior(ShutdownBehavior::BlockShutdown)
}

// ---- the pool's dropped count ---------------------------------------------------------------

#[test]
fn every_accepted_task_is_started_or_dropped_once_the_pool_shut_down() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let release = hold(&pool);
    let seq = pool.create_sequenced_task_runner(skip());
    let single = pool.create_single_thread_task_runner(skip());
    let blocking = pool.create_task_runner(block());
    for _ in 0..5 {
        pool.post_task(skip(), || ()).unwrap();
        seq.post_task(|| ()).unwrap();
        blocking.post_task(|| ()).unwrap();
        pool.post_delayed_task(block(), Duration::from_secs(3600), || ())
            .unwrap();
    }
    let (gate_tx, gate) = mpsc::channel::<()>();
    let (in_tx, in_single) = mpsc::channel();
    single
        .post_task(move || {
            in_tx.send(()).unwrap();
            gate.recv().unwrap();
        })
        .unwrap();
    in_single.recv_timeout(support::TIMEOUT).unwrap();
    for _ in 0..4 {
        single.post_task(|| ()).unwrap();
    }
    let accepted = 1 + 5 * 4 + 1 + 4;
    let shutting = {
        let pool = pool.clone();
        std::thread::spawn(move || pool.shutdown())
    };
    wait_until("shutdown started", || pool.is_shutdown());
    release.release();
    gate_tx.send(()).unwrap();
    shutting.join().unwrap();
    let m = pool.metrics();
    // Started: the blocker, the 5 block-shutdown tasks, and the single-thread task that held
    // its thread. Dropped: 5 skip one-offs, 5 skip sequenced, 5 delayed, 4 queued behind the
    // single-thread task.
    assert_eq!(m.tasks_started(), 1 + 5 + 1, "{m}");
    assert_eq!(m.tasks_dropped(), 5 + 5 + 5 + 4, "{m}");
    assert_eq!(m.tasks_started() + m.tasks_dropped(), accepted as u64);
}

#[test]
fn tasks_dropped_by_a_closed_runner_or_a_poisoned_sequence_are_counted() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let release = hold(&pool);
    let closing = pool.create_task_runner(TaskTraits::default());
    let poisoned =
        pool.create_sequenced_task_runner(TaskTraits::new().panic_policy(PanicPolicy::Poison));
    for _ in 0..3 {
        closing.post_task(|| ()).unwrap();
    }
    poisoned.post_task(|| panic!("poison")).unwrap();
    for _ in 0..2 {
        poisoned.post_task(|| ()).unwrap();
    }
    closing.close();
    release.release();
    pool.flush();
    let m = pool.metrics();
    assert_eq!(m.tasks_dropped(), 3 + 2, "{m}");
    assert_eq!(m.tasks_panicked(), 1);
    assert_eq!(
        m.tasks_started(),
        1 + 1,
        "the blocker and the panicking task"
    );
}

#[test]
fn a_delayed_task_cancelled_through_its_handle_counts_as_dropped() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let h = pool
        .post_delayed_task_with_result(TaskTraits::default(), Duration::from_secs(3600), || ())
        .unwrap();
    let ran = pool
        .post_task_with_result(TaskTraits::default(), || ())
        .unwrap();
    assert!(h.cancel());
    ran.join().unwrap();
    pool.shutdown();
    let m = pool.metrics();
    assert_eq!((m.tasks_started(), m.tasks_dropped()), (1, 1), "{m}");
}

#[test]
fn a_named_sequences_timer_runs_count_as_its_tasks() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let seq = pool
        .create_sequenced_task_runner(TaskTraits::default())
        .named("ticks");
    let (tx, rx) = mpsc::channel();
    let fired = taskrunner::time::OneShotTimer::new(&seq);
    fired
        .start(Duration::from_millis(1), move || tx.send(()).unwrap())
        .unwrap();
    rx.recv_timeout(support::TIMEOUT).unwrap();
    let stopped = taskrunner::time::OneShotTimer::new(&seq);
    stopped.start(Duration::from_secs(3600), || ()).unwrap();
    assert!(stopped.stop());
    seq.flush().unwrap();
    let m = seq.metrics().unwrap();
    assert_eq!((m.ran(), m.dropped(), m.queued()), (1, 1, 0), "{m}");
}

// ---- time histograms ------------------------------------------------------------------------

#[test]
fn one_task_in_every_n_posted_from_a_thread_is_timed() {
    for (every, expect) in [(1, 160), (16, 10), (0, 0)] {
        let pool = ThreadPool::builder()
            .max_workers(2)
            .sample_task_times(every)
            .build()
            .unwrap();
        // A fresh thread: its sampling countdown starts at the first post.
        let poster = pool.clone();
        std::thread::spawn(move || {
            for _ in 0..160 {
                poster.post_task(TaskTraits::default(), || ()).unwrap();
            }
        })
        .join()
        .unwrap();
        pool.flush();
        let m = pool.metrics();
        assert_eq!(m.queue_time().count(), expect, "every {every}: {m}");
        assert_eq!(m.run_time().count(), expect, "every {every}: {m}");
    }
}

#[test]
fn queue_and_run_times_measure_the_wait_and_the_work() {
    let pool = ThreadPool::builder()
        .max_workers(1)
        .sample_task_times(1)
        .build()
        .unwrap();
    let release = hold(&pool);
    let h = pool
        .post_task_with_result(TaskTraits::default(), || {
            std::thread::sleep(Duration::from_millis(5))
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    release.release();
    h.join().unwrap();
    pool.flush();
    let m = pool.metrics();
    // The held task itself (posted before the hold) waited little; the second waited ≥ 20 ms
    // and ran ≥ 5 ms. Quantiles are bucket upper edges: never below the true value.
    assert_eq!(m.queue_time().count(), 2);
    assert!(m.queue_time().quantile(1.0).unwrap() >= Duration::from_millis(20));
    assert!(m.run_time().quantile(1.0).unwrap() >= Duration::from_millis(20));
    assert!(m.run_time().mean().unwrap() >= Duration::from_millis(5));
}

#[test]
fn delayed_tasks_are_timed_from_when_they_ripened() {
    let pool = ThreadPool::builder()
        .max_workers(1)
        .sample_task_times(1)
        .build()
        .unwrap();
    let h = pool
        .post_delayed_task_with_result(TaskTraits::default(), Duration::from_millis(30), || ())
        .unwrap();
    h.join().unwrap();
    pool.flush();
    let q = pool.metrics().queue_time();
    assert_eq!(q.count(), 1);
    // Its 30 ms delay is not queue time.
    assert!(q.quantile(1.0).unwrap() < Duration::from_millis(30), "{q}");
}

// ---- named runners --------------------------------------------------------------------------

#[test]
fn a_named_runner_counts_queued_running_ran_panicked_and_dropped_exactly() {
    let pool = ThreadPool::builder()
        .max_workers(1)
        .sample_task_times(1)
        .build()
        .unwrap();
    let release = hold(&pool);
    let r = pool.create_task_runner(skip()).named("jobs");
    let handles: Vec<_> = (0..4)
        .map(|i| {
            r.post_task_with_result(move || {
                if i == 3 {
                    panic!("job 3");
                }
            })
            .unwrap()
        })
        .collect();
    r.post_delayed_task(Duration::from_secs(3600), || ())
        .unwrap();
    let m = r.metrics().unwrap();
    assert_eq!(
        (m.queued(), m.running(), m.ran(), m.dropped()),
        (5, 0, 0, 0)
    );
    release.release();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().is_err(), i == 3);
    }
    // The runner counted each task before its handle resolved.
    let m = r.metrics().unwrap();
    assert_eq!(
        (m.queued(), m.running(), m.ran(), m.panicked(), m.dropped()),
        (1, 0, 4, 1, 0),
        "{m}"
    );
    assert_eq!(m.queue_time().count(), 4);
    assert_eq!(m.run_time().count(), 4);
    pool.shutdown();
    let m = r.metrics().unwrap();
    assert_eq!((m.queued(), m.dropped()), (0, 1), "the delayed task: {m}");
}

#[test]
fn a_named_sequence_sees_itself_running_and_counts_its_poisoned_tail_as_dropped() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let seq = pool
        .create_sequenced_task_runner(TaskTraits::new().panic_policy(PanicPolicy::Poison))
        .named("ledger");
    let probe = seq.clone();
    let (go_tx, go) = mpsc::channel::<()>();
    let first = seq
        .post_task_with_result(move || {
            go.recv().unwrap();
            probe.metrics().unwrap()
        })
        .unwrap();
    seq.post_task(|| panic!("bad entry")).unwrap();
    let tail: Vec<_> = (0..3)
        .map(|_| seq.post_task_with_result(|| ()).unwrap())
        .collect();
    go_tx.send(()).unwrap();
    let inside = first.join().unwrap();
    assert_eq!((inside.running(), inside.queued()), (1, 4), "{inside}");
    for h in tail {
        assert!(h.join().unwrap_err().is_not_run());
    }
    let m = seq.metrics().unwrap();
    assert_eq!(
        (m.ran(), m.panicked(), m.dropped(), m.queued()),
        (2, 1, 3, 0),
        "{m}"
    );
}

#[test]
fn naming_costs_nothing_to_unnamed_runners_and_lists_only_live_named_ones() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let a = pool.create_sequenced_task_runner(TaskTraits::default());
    assert!(a.metrics().is_none());
    assert!(pool.metrics().runners().is_empty());
    let b = pool
        .create_single_thread_task_runner(TaskTraits::default())
        .named("ui");
    let c = pool.create_task_runner(TaskTraits::default()).named("cpu");
    let d = pool
        .create_keyed_task_runner::<u8>(TaskTraits::default())
        .named("per-key");
    let names: Vec<String> = pool
        .metrics()
        .runners()
        .iter()
        .map(|r| r.name().to_owned())
        .collect();
    assert_eq!(names, ["ui", "cpu", "per-key"]);
    drop((b, c));
    let names: Vec<String> = pool
        .metrics()
        .runners()
        .iter()
        .map(|r| r.name().to_owned())
        .collect();
    assert_eq!(names, ["per-key"], "dropped runners leave the list");
    // A second name replaces the first and keeps the counts.
    d.post_task(1, || ()).unwrap();
    d.flush();
    let d = d.named("by-key");
    let m = d.metrics().unwrap();
    assert_eq!((m.name(), m.ran()), ("by-key", 1));
}

#[test]
fn names_reach_panic_reports_of_every_kind_of_runner() {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let pool = ThreadPool::builder()
        .max_workers(2)
        .panic_handler(move |p| {
            tx.lock()
                .unwrap()
                .send(p.runner_name().map(str::to_owned))
                .unwrap()
        })
        .build()
        .unwrap();
    let parallel = pool.create_task_runner(TaskTraits::default()).named("par");
    parallel.post_task(|| panic!("p")).unwrap();
    assert_eq!(
        rx.recv_timeout(support::TIMEOUT).unwrap().as_deref(),
        Some("par")
    );
    let keyed = pool
        .create_keyed_task_runner::<u8>(TaskTraits::default())
        .named("keyed");
    keyed.post_task(9, || panic!("k")).unwrap();
    assert_eq!(
        rx.recv_timeout(support::TIMEOUT).unwrap().as_deref(),
        Some("keyed")
    );
    // A panic a task catches and reports itself (a retry's attempt) names the runner too.
    let h = taskrunner::retry::retry(
        &parallel,
        taskrunner::retry::RetryPolicy::never(),
        || -> Result<(), &str> { panic!("attempt") },
    );
    assert!(h.join().is_err());
    assert_eq!(
        rx.recv_timeout(support::TIMEOUT).unwrap().as_deref(),
        Some("par")
    );
    let unnamed = pool.create_task_runner(TaskTraits::default());
    unnamed.post_task(|| panic!("u")).unwrap();
    assert_eq!(rx.recv_timeout(support::TIMEOUT).unwrap(), None);
}

#[test]
fn metrics_export_every_figure_under_a_stable_name() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let db = pool
        .create_sequenced_task_runner(TaskTraits::default())
        .named("db");
    db.post_task_with_result(|| ()).unwrap().join().unwrap();
    let mut seen = std::collections::HashMap::new();
    pool.metrics().for_each(|name, kind, value| {
        assert!(
            seen.insert(name.to_owned(), (kind, value)).is_none(),
            "{name} twice"
        );
    });
    for gauge in [
        "workers",
        "idle_workers",
        "ready.user_blocking",
        "ready.user_visible",
        "ready.best_effort",
        "ready_in_local_queues",
        "delayed",
        "queue_time.p50_us",
        "run_time.p99_us",
        "runner.db.queued",
        "runner.db.running",
        "runner.db.queue_time.p99_us",
    ] {
        assert_eq!(seen[gauge].0, MetricKind::Gauge, "{gauge}");
    }
    for counter in [
        "tasks_started",
        "tasks_panicked",
        "tasks_dropped",
        "posts_refused",
        "queue_time.count",
        "run_time.count",
        "runner.db.ran",
        "runner.db.panicked",
        "runner.db.dropped",
    ] {
        assert_eq!(seen[counter].0, MetricKind::Counter, "{counter}");
    }
    assert_eq!(seen["tasks_started"].1, 1);
    assert_eq!(seen["runner.db.ran"].1, 1);
}

// ---- parallel runners: flush and close ------------------------------------------------------

#[test]
fn a_parallel_runner_flush_waits_for_its_own_tasks_only() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let mine = pool.create_task_runner(TaskTraits::default());
    let other = pool.create_task_runner(TaskTraits::default());
    let (gate_tx, gate) = mpsc::channel::<()>();
    let stuck = other
        .post_task_with_result(move || gate.recv().unwrap())
        .unwrap();
    let n = Arc::new(AtomicUsize::new(0));
    for _ in 0..200 {
        let n = n.clone();
        mine.post_task(move || {
            n.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    mine.post_delayed_task(Duration::from_secs(3600), || ())
        .unwrap();
    mine.flush(); // returns while `other` is still stuck and the delayed task waits
    assert_eq!(n.load(Ordering::SeqCst), 200);
    assert!(!stuck.is_finished());
    gate_tx.send(()).unwrap();
    stuck.join().unwrap();
}

#[test]
fn a_parallel_runner_flush_under_concurrent_posting_covers_what_was_posted_before_it() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let r = pool.create_task_runner(TaskTraits::default());
    let ran = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poster = {
        let (r, ran, stop) = (r.clone(), ran.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut posted = 0;
            while !stop.load(Ordering::SeqCst) && posted < 20_000 {
                let ran = ran.clone();
                r.post_task(move || {
                    ran.fetch_add(1, Ordering::SeqCst);
                })
                .unwrap();
                posted += 1;
                if posted % 64 == 0 {
                    std::thread::yield_now();
                }
            }
            posted
        })
    };
    for _ in 0..20 {
        let before = Arc::new(AtomicUsize::new(0));
        let mine = 50;
        for _ in 0..mine {
            let before = before.clone();
            r.post_task(move || {
                before.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        }
        r.flush();
        assert_eq!(before.load(Ordering::SeqCst), mine);
    }
    stop.store(true, Ordering::SeqCst);
    let posted = poster.join().unwrap();
    r.flush();
    assert_eq!(ran.load(Ordering::SeqCst), posted);
}

#[test]
fn a_parallel_runner_flush_from_its_own_task_panics_instead_of_hanging() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let r = pool.create_task_runner(TaskTraits::default());
    let inner = r.clone();
    let err = r
        .post_task_with_result(move || inner.flush())
        .unwrap()
        .join()
        .unwrap_err();
    assert!(err.is_panic());
    assert!(format!("{err}").contains("would wait for itself"), "{err}");
    // From a task of another runner it is fine.
    let other = pool.create_task_runner(TaskTraits::default());
    let r2 = r.clone();
    other
        .post_task_with_result(move || r2.flush())
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn a_closed_parallel_runner_refuses_posts_and_its_queue_follows_its_shutdown_behaviour() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let release = hold(&pool);
    let skipping = pool.create_task_runner(skip());
    let blocking = pool.create_task_runner(block());
    let dropped: Vec<_> = (0..3)
        .map(|_| skipping.post_task_with_result(|| ()).unwrap())
        .collect();
    let kept: Vec<_> = (0..3)
        .map(|i| blocking.post_task_with_result(move || i).unwrap())
        .collect();
    let delayed = blocking
        .post_delayed_task_with_result(Duration::from_millis(1), || ())
        .unwrap();
    assert!(skipping.close() && blocking.close());
    assert!(!skipping.close());
    let err = skipping.post_task(|| ()).unwrap_err();
    assert_eq!(err.reason(), PostRefusal::RunnerClosed);
    release.release();
    for h in dropped {
        assert!(h.join().unwrap_err().is_not_run());
    }
    for (i, h) in kept.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), i);
    }
    assert!(
        delayed.join().unwrap_err().is_not_run(),
        "delayed never run after close"
    );
    skipping.flush();
    blocking.flush();
    // The pool and other runners go on.
    pool.create_task_runner(skip())
        .post_task_with_result(|| ())
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn nothing_posted_around_a_parallel_runner_close_is_lost() {
    for round in 0..20 {
        let pool = ThreadPool::builder().max_workers(2).build().unwrap();
        let r = pool.create_task_runner(skip().priority(TaskPriority::UserVisible));
        let poster = r.clone();
        let race = posts_around_close(
            3,
            200,
            round % 2 == 1,
            move |_, _, task| poster.post_task_with_result(task).map_err(|e| e.reason()),
            || {
                r.close();
            },
        );
        r.flush();
        let m = pool.metrics();
        assert_eq!(m.posts_refused(), race.refused as u64, "round {round}");
        assert_eq!(m.tasks_dropped(), race.not_run as u64, "round {round}");
    }
}

// ---- keyed runners: flush and close ---------------------------------------------------------

#[test]
fn a_keyed_flush_waits_for_every_key() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let keyed = pool
        .create_keyed_task_runner::<u32>(TaskTraits::default())
        .named("keys");
    let n = Arc::new(AtomicUsize::new(0));
    for i in 0..300 {
        let n = n.clone();
        keyed
            .post_task(i % 17, move || {
                std::thread::sleep(Duration::from_micros(50));
                n.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
    }
    keyed.flush();
    assert_eq!(n.load(Ordering::SeqCst), 300);
    let m = keyed.metrics().unwrap();
    assert_eq!((m.ran(), m.queued(), m.running()), (300, 0, 0), "{m}");
}

#[test]
fn a_keyed_flush_from_one_of_its_keys_panics_instead_of_hanging() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let keyed = pool.create_keyed_task_runner::<u8>(TaskTraits::default());
    let inner = keyed.clone();
    let err = keyed
        .post_task_with_result(1, move || inner.flush())
        .unwrap()
        .join()
        .unwrap_err();
    assert!(err.is_panic(), "{err:?}");
}

#[test]
fn a_closed_keyed_runner_refuses_new_and_live_keys_and_drops_their_queues() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let release = hold(&pool);
    let keyed = pool.create_keyed_task_runner::<u8>(skip()).named("k");
    let queued: Vec<_> = (0..4)
        .map(|k| keyed.post_task_with_result(k, || ()).unwrap())
        .collect();
    assert!(keyed.close());
    assert!(keyed.is_closed());
    for key in [0, 200] {
        let err = keyed.post_task(key, || ()).unwrap_err();
        assert_eq!(err.reason(), PostRefusal::RunnerClosed);
    }
    release.release();
    for h in queued {
        assert!(h.join().unwrap_err().is_not_run());
    }
    keyed.flush();
    let m = keyed.metrics().unwrap();
    assert_eq!((m.ran(), m.dropped()), (0, 4), "{m}");
    wait_until("keys retired", || keyed.live_keys() == 0);
}

#[test]
fn nothing_posted_to_new_keys_around_a_keyed_close_is_lost() {
    for round in 0..20 {
        let pool = ThreadPool::builder().max_workers(2).build().unwrap();
        let keyed = pool.create_keyed_task_runner::<usize>(skip());
        let poster = keyed.clone();
        let per = 150;
        // Mostly fresh keys: each post may create a sequence as the close runs.
        posts_around_close(
            3,
            per,
            round % 2 == 1,
            move |p, i, task| {
                poster
                    .post_task_with_result(p * per + i, task)
                    .map_err(|e| e.reason())
            },
            || {
                keyed.close();
            },
        );
        // After the close, no key accepts anything.
        assert!(keyed.post_task(0, || ()).is_err());
    }
}

// ---- progress -------------------------------------------------------------------------------

#[test]
fn an_executor_reports_progress_exactly_through_failures_panics_and_cancels() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let exec = Executor::builder()
        .pool(&pool)
        .max_workers(1)
        .name("exec")
        .build()
        .unwrap();
    let (gate_tx, gate) = mpsc::channel::<()>();
    let first = exec.submit(move || gate.recv().unwrap()).unwrap();
    let ok: Vec<_> = (0..5).map(|i| exec.submit(move || i).unwrap()).collect();
    let failed = exec.submit_fallible(|| Err::<(), _>("no")).unwrap();
    let panicked = exec.submit(|| -> u8 { panic!("boom") }).unwrap();
    let cancelled = exec.submit(|| ()).unwrap();
    assert!(cancelled.cancel());
    let p = exec.progress();
    assert_eq!(p.total(), 9);
    assert!(p.finished() <= 1, "{p}");
    gate_tx.send(()).unwrap();
    first.join().unwrap();
    for h in ok {
        h.join().unwrap();
    }
    assert!(failed.join().is_err() && panicked.join().is_err());
    assert!(exec.wait_idle());
    let p = exec.progress();
    assert_eq!(
        (p.total(), p.finished(), p.failed(), p.succeeded()),
        (9, 9, 3, 6),
        "{p}"
    );
    // Its runner carries its name (flushed: the runner's task may still be finishing after the
    // executor's last task ended).
    pool.flush();
    let metrics = pool.metrics();
    let runner = &metrics.runners()[0];
    assert_eq!(runner.name(), "exec");
    // The executor runs several of its tasks inside one task of its runner; the panic its
    // task caught is counted by the runner all the same.
    assert!(runner.ran() >= 1, "{runner}");
    assert_eq!(runner.panicked(), 1, "{runner}");
    assert!(format!("{exec:?}").contains("\"exec\""));
}

#[test]
fn a_consumer_reports_progress_while_it_runs() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    let (gate_tx, gate) = mpsc::channel::<()>();
    let (first, first_h) = Deferred::new(move || gate.recv().unwrap());
    tx.send(first).unwrap();
    for _ in 0..4 {
        tx.send(Deferred::new(|| ()).0).unwrap();
    }
    let consumer = consume(&pool, rx, 1);
    wait_until("the first task running", || {
        first_h.state() == taskrunner::TaskState::Running
    });
    assert_eq!(consumer.waiting(), 4);
    assert_eq!(consumer.progress().ran, 0);
    gate_tx.send(()).unwrap();
    drop(tx);
    let report = consumer.join();
    assert_eq!(report.ran, 5);
}
