//! Jobs (`ThreadPool::post_job`): worker counts that follow the max-concurrency callback, the
//! joiner's help, yielding to more urgent work, cancellation, priority changes, panics and
//! shutdown.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{hold, must_return, wait_until, Latch, TIMEOUT};
use taskrunner::job::{JobDelegate, JobHandle};
use taskrunner::{ShutdownBehavior, TaskPriority, TaskTraits, ThreadPool};

/// A set of items a job processes: each item's run count, the next unclaimed one, and how many
/// calls of the worker function run at once (now and at most).
struct Work {
    runs: Vec<AtomicU8>,
    next: AtomicUsize,
    active: AtomicUsize,
    peak: AtomicUsize,
    /// Sleep per item, to let concurrency build up.
    pause: Duration,
}

impl Work {
    fn new(n: usize, pause: Duration) -> Arc<Self> {
        Arc::new(Work {
            runs: (0..n).map(|_| AtomicU8::new(0)).collect(),
            next: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            pause,
        })
    }

    fn left(&self) -> usize {
        self.runs.len().saturating_sub(self.next.load(SeqCst))
    }

    /// The worker function: claims items one at a time until none is left or it should yield.
    fn process(&self, d: &JobDelegate<'_>) {
        let now = self.active.fetch_add(1, SeqCst) + 1;
        self.peak.fetch_max(now, SeqCst);
        while !d.should_yield() {
            let i = self.next.fetch_add(1, SeqCst);
            if i >= self.runs.len() {
                break;
            }
            self.runs[i].fetch_add(1, SeqCst);
            if !self.pause.is_zero() {
                std::thread::sleep(self.pause);
            }
        }
        self.active.fetch_sub(1, SeqCst);
    }

    fn assert_each_ran_once(&self) {
        for (i, r) in self.runs.iter().enumerate() {
            assert_eq!(r.load(SeqCst), 1, "item {i}");
        }
    }
}

fn post(pool: &ThreadPool, traits: TaskTraits, work: &Arc<Work>, cap: usize) -> JobHandle {
    let (w, m) = (work.clone(), work.clone());
    pool.post_job(traits, move |d| w.process(d), move |_| m.left().min(cap))
        .unwrap()
}

#[test]
fn every_item_runs_once_and_concurrency_stays_within_the_callback() {
    let pool = ThreadPool::builder().max_workers(4).build().unwrap();
    for cap in [1, 2, 3, 8] {
        let work = Work::new(300, Duration::from_micros(100));
        let job = post(&pool, TaskTraits::default(), &work, cap);
        job.join().unwrap();
        work.assert_each_ran_once();
        // The joiner is one of the workers the callback allows, and of the pool's four.
        assert!(work.peak.load(SeqCst) <= cap.min(4), "cap {cap}");
    }
}

#[test]
fn many_workers_really_run_at_once() {
    let pool = ThreadPool::builder().max_workers(3).build().unwrap();
    // Each call waits until three calls run together: only a job that starts three workers
    // (with the joiner, or without it) gets past.
    let together = Latch::new(3);
    let t = together.clone();
    let passed = Arc::new(AtomicUsize::new(0));
    let p = passed.clone();
    let job = pool
        .post_job(
            TaskTraits::default(),
            move |_| {
                t.count_down();
                assert!(t.wait_timeout(TIMEOUT));
                p.fetch_add(1, SeqCst);
            },
            {
                let passed = passed.clone();
                move |_| 3usize.saturating_sub(passed.load(SeqCst))
            },
        )
        .unwrap();
    job.join().unwrap();
    assert!(passed.load(SeqCst) >= 3);
}

#[test]
fn task_ids_are_unique_among_running_workers() {
    let pool = ThreadPool::builder().max_workers(4).build().unwrap();
    let ids = Arc::new(Mutex::new(HashSet::new()));
    let clash = Arc::new(AtomicBool::new(false));
    let left = Arc::new(AtomicUsize::new(400));
    let (i2, c2, l2) = (ids.clone(), clash.clone(), left.clone());
    let job = pool
        .post_job(
            TaskTraits::default(),
            move |d| {
                if !i2.lock().unwrap().insert(d.task_id()) {
                    c2.store(true, SeqCst);
                }
                if d.task_id() >= 4 {
                    c2.store(true, SeqCst);
                }
                if l2
                    .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    std::thread::sleep(Duration::from_micros(50));
                }
                i2.lock().unwrap().remove(&d.task_id());
            },
            {
                let left = left.clone();
                move |_| left.load(SeqCst).min(4)
            },
        )
        .unwrap();
    job.join().unwrap();
    assert!(!clash.load(SeqCst), "two running workers shared an id");
    assert_eq!(left.load(SeqCst), 0);
}

#[test]
fn join_does_the_work_when_every_worker_is_busy() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let blocker = hold(&pool);
    let work = Work::new(50, Duration::ZERO);
    let job = post(&pool, TaskTraits::default(), &work, 4);
    let w = work.clone();
    must_return("join on a busy pool", move || job.join().unwrap());
    w.assert_each_ran_once();
    blocker.release();
}

#[test]
fn join_from_a_pool_task_is_a_blocking_scope() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let work = Work::new(100, Duration::from_micros(20));
    let (p2, w2) = (pool.clone(), work.clone());
    let outer = pool
        .post_task_with_result(TaskTraits::default(), move || {
            post(&p2, TaskTraits::default(), &w2, 2).join()
        })
        .unwrap();
    must_return("join inside the only worker", move || outer.join())
        .unwrap()
        .unwrap();
    work.assert_each_ran_once();
}

#[test]
fn a_detached_job_completes() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let work = Work::new(200, Duration::ZERO);
    drop(post(&pool, TaskTraits::default(), &work, 2));
    wait_until("the detached job is done", || {
        work.left() == 0 && work.active.load(SeqCst) == 0
    });
    work.assert_each_ran_once();
}

#[test]
fn more_work_and_a_notify_start_workers_again() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let left = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let (l2, d2) = (left.clone(), done.clone());
    let job = pool
        .post_job(
            TaskTraits::default(),
            move |d| {
                while !d.should_yield()
                    && l2
                        .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                {
                    d2.fetch_add(1, SeqCst);
                }
            },
            {
                let left = left.clone();
                move |_| left.load(SeqCst)
            },
        )
        .unwrap();
    assert!(job.is_completed());
    for round in 1..=5 {
        left.fetch_add(20, SeqCst);
        job.notify_concurrency_increase();
        wait_until("the pool's workers took the new work", || {
            done.load(SeqCst) == round * 20
        });
        wait_until("the job is complete again", || job.is_completed());
    }
    job.join().unwrap();
    assert_eq!(done.load(SeqCst), 100);
}

#[test]
fn a_waiting_joiner_takes_new_work_after_a_notify() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let other = hold(&pool);
    // The first item holds the pool's other worker until released; the joiner then waits.
    let held = Latch::new(1);
    let release = Latch::new(1);
    let left = Arc::new(AtomicUsize::new(1));
    let by_joiner = Arc::new(AtomicUsize::new(0));
    let (h2, r2, l2, bj) = (
        held.clone(),
        release.clone(),
        left.clone(),
        by_joiner.clone(),
    );
    let job = pool
        .post_job(
            TaskTraits::default(),
            move |d| {
                while l2
                    .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    if d.is_joining_thread() {
                        bj.fetch_add(1, SeqCst);
                    } else {
                        h2.count_down();
                        assert!(r2.wait_timeout(TIMEOUT));
                    }
                }
            },
            {
                let left = left.clone();
                move |_| left.load(SeqCst).min(2)
            },
        )
        .unwrap();
    held.wait();
    let joiner = {
        let job = job.clone();
        std::thread::spawn(move || job.join())
    };
    std::thread::sleep(Duration::from_millis(20)); // the joiner is waiting by now (or soon)
    left.fetch_add(5, SeqCst);
    job.notify_concurrency_increase();
    // Both workers are still held: only the joiner can take the new items.
    wait_until("the joiner took the new items", || {
        by_joiner.load(SeqCst) == 5
    });
    release.count_down();
    other.release();
    joiner.join().unwrap().unwrap();
    assert_eq!(left.load(SeqCst), 0);
}

#[test]
fn cancel_stops_running_workers_and_starts_no_more() {
    let pool = ThreadPool::builder().max_workers(3).build().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let in_call = Latch::new(2);
    let (c2, ic) = (calls.clone(), in_call.clone());
    let job = pool
        .post_job(
            TaskTraits::default(),
            move |d| {
                c2.fetch_add(1, SeqCst);
                ic.count_down();
                while !d.should_yield() {
                    std::thread::yield_now();
                }
            },
            |_| 2, // never completes by itself
        )
        .unwrap();
    in_call.wait();
    job.cancel();
    let calls_before = calls.load(SeqCst);
    must_return("join after cancel", move || job.join()).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        calls.load(SeqCst),
        calls_before,
        "a call started after the cancel"
    );
}

#[test]
fn workers_yield_to_more_urgent_work() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let yielded = Arc::new(AtomicUsize::new(0));
    let urgent_ran = Arc::new(AtomicBool::new(false));
    let running = Latch::new(1);
    let (y2, u2, r2) = (yielded.clone(), urgent_ran.clone(), running.clone());
    let left = Arc::new(AtomicUsize::new(1));
    let l2 = left.clone();
    let job = pool
        .post_job(
            TaskTraits::new().priority(TaskPriority::BestEffort),
            move |d| {
                r2.count_down();
                // Works until told to yield; finishes only once the urgent task has run.
                while !d.should_yield() {
                    if u2.load(SeqCst) {
                        l2.store(0, SeqCst);
                        return;
                    }
                    std::thread::yield_now();
                }
                y2.fetch_add(1, SeqCst);
            },
            {
                let left = left.clone();
                move |_| left.load(SeqCst)
            },
        )
        .unwrap();
    running.wait();
    let u3 = urgent_ran.clone();
    pool.post_task(
        TaskTraits::new().priority(TaskPriority::UserBlocking),
        move || u3.store(true, SeqCst),
    )
    .unwrap();
    wait_until("the job completes", || job.is_completed());
    assert!(urgent_ran.load(SeqCst));
    assert!(yielded.load(SeqCst) >= 1, "the worker never yielded");
    job.join().unwrap();
}

#[test]
fn best_effort_jobs_keep_to_the_best_effort_limit_until_raised() {
    let pool = ThreadPool::builder()
        .max_workers(4)
        .max_best_effort_workers(1)
        .build()
        .unwrap();
    let work = Work::new(60, Duration::from_micros(300));
    let job = post(
        &pool,
        TaskTraits::new().priority(TaskPriority::BestEffort),
        &work,
        4,
    );
    wait_until("a third of the work is done", || work.left() <= 40);
    assert_eq!(
        work.peak.load(SeqCst),
        1,
        "best effort ran on more than one worker"
    );
    job.update_priority(TaskPriority::UserVisible);
    assert_eq!(job.priority(), TaskPriority::UserVisible);
    job.join().unwrap();
    work.assert_each_ran_once();
    assert!(work.peak.load(SeqCst) <= 4);
}

#[test]
fn priority_changes_racing_the_workers_lose_nothing() {
    let pool = ThreadPool::builder()
        .max_workers(3)
        .max_best_effort_workers(1)
        .build()
        .unwrap();
    for round in 0..20 {
        let work = Work::new(200, Duration::ZERO);
        let job = post(&pool, TaskTraits::default(), &work, 3);
        for p in [
            TaskPriority::BestEffort,
            TaskPriority::UserBlocking,
            TaskPriority::UserVisible,
        ] {
            job.update_priority(p);
            std::thread::yield_now();
        }
        if round % 2 == 0 {
            job.join().unwrap();
        } else {
            drop(job);
            wait_until("the detached job is done", || {
                work.left() == 0 && work.active.load(SeqCst) == 0
            });
        }
        work.assert_each_ran_once();
    }
}

#[test]
fn a_panicking_worker_cancels_the_job_and_join_reports_it() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let job = pool
        .post_job(
            TaskTraits::default(),
            move |_| {
                c2.fetch_add(1, SeqCst);
                panic!("item 7 is malformed");
            },
            |_| 2,
        )
        .unwrap();
    let err = job.join().unwrap_err();
    assert!(err.is_panic());
    assert_eq!(err.panic_message(), Some("item 7 is malformed"));
    let after = calls.load(SeqCst);
    assert!(after >= 1);
    // The workers survived and nothing more of the job runs.
    let h = pool
        .post_task_with_result(TaskTraits::default(), || 5)
        .unwrap();
    assert_eq!(h.join().unwrap(), 5);
    pool.flush();
    assert_eq!(calls.load(SeqCst), after);
    assert!(pool.metrics().tasks_panicked() >= 1);
}

#[test]
fn every_clone_that_joins_sees_the_panic() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let job = pool
        .post_job(TaskTraits::default(), |_| panic!("once"), |_| 1)
        .unwrap();
    let other = job.clone();
    assert_eq!(job.join().unwrap_err().panic_message(), Some("once"));
    assert_eq!(other.join().unwrap_err().panic_message(), Some("once"));
}

#[test]
fn a_panicking_callback_cancels_the_job() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let asked = Arc::new(AtomicUsize::new(0));
    let a2 = asked.clone();
    let job = pool
        .post_job(
            TaskTraits::default(),
            |_| {},
            move |_| {
                if a2.fetch_add(1, SeqCst) >= 3 {
                    panic!("bad count");
                }
                1
            },
        )
        .unwrap();
    let err = job.join().unwrap_err();
    assert!(err.panic_message().unwrap().contains("bad count"));
}

#[test]
fn join_from_inside_its_own_worker_panics_with_a_message() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let slot: Arc<Mutex<Option<JobHandle>>> = Arc::new(Mutex::new(None));
    let (tx, rx) = std::sync::mpsc::channel();
    let s2 = slot.clone();
    let job = pool
        .post_job(
            TaskTraits::default(),
            move |_| {
                let Some(h) = s2.lock().unwrap().take() else {
                    return;
                };
                let r = catch_unwind(AssertUnwindSafe(move || h.join()));
                let msg = match r {
                    Ok(_) => "returned".to_string(),
                    Err(p) => p
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_default(),
                };
                tx.send(msg).unwrap();
            },
            {
                let slot = slot.clone();
                // Wants a worker until one took the handle.
                move |_| usize::from(slot.lock().unwrap().is_some())
            },
        )
        .unwrap();
    // Hand a clone to the job's own worker, and say there is work: the first call finds it.
    *slot.lock().unwrap() = Some(job.clone());
    job.notify_concurrency_increase();
    let msg = rx.recv_timeout(TIMEOUT).unwrap();
    assert!(msg.contains("inside the job's own worker"), "{msg}");
}

#[test]
fn posting_after_shutdown_hands_both_closures_back() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    pool.shutdown();
    let err = pool
        .post_job(TaskTraits::default(), |_| {}, |_| 7)
        .unwrap_err();
    assert!(err.is_shutdown());
    let (_worker, max) = err.into_inner();
    assert_eq!(max(0), 7);
    assert_eq!(pool.metrics().posts_refused(), 1);
}

#[test]
fn shutdown_stops_a_skip_job_and_join_finishes_it_on_the_caller() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    // Enough work (about 150 ms per worker) that shutdown, started as soon as the job runs,
    // finds most of it left.
    let work = Work::new(6_000, Duration::from_micros(50));
    let job = post(
        &pool,
        TaskTraits::new().shutdown_behavior(ShutdownBehavior::SkipOnShutdown),
        &work,
        2,
    );
    wait_until("the job started", || work.left() < 5_990);
    let p = pool.clone();
    must_return("shutdown with a skip job running", move || p.shutdown());
    assert!(work.left() > 0, "shutdown waited for a skip job");
    let w = work.clone();
    must_return("join after shutdown", move || job.join().unwrap());
    w.assert_each_ran_once();
}

#[test]
fn a_block_shutdown_job_completes_before_shutdown_returns() {
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let work = Work::new(500, Duration::from_micros(50));
    let job = post(
        &pool,
        TaskTraits::new().shutdown_behavior(ShutdownBehavior::BlockShutdown),
        &work,
        2,
    );
    wait_until("the job started", || work.left() < 500);
    let p = pool.clone();
    must_return("shutdown with a block job running", move || p.shutdown());
    assert_eq!(work.left(), 0, "shutdown returned before the job was done");
    assert_eq!(work.active.load(SeqCst), 0);
    work.assert_each_ran_once();
    drop(job);
}

#[test]
fn the_global_pool_runs_jobs() {
    let work = Work::new(100, Duration::ZERO);
    let (w, m) = (work.clone(), work.clone());
    let job = taskrunner::job::post_job(
        TaskTraits::default(),
        move |d| w.process(d),
        move |_| m.left().min(2),
    )
    .unwrap();
    job.join().unwrap();
    work.assert_each_ran_once();
}
