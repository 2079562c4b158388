//! Batched I/O (`Batcher`): requests made while the pool is busy collapse into
//! a handful of dispatcher calls; each trigger (full, idle, max wait, explicit) closes a batch
//! exactly once; response `i` reaches request `i`; an error, a panic or a wrong response count
//! reaches every request of its batch and only that batch; `max_in_flight` bounds concurrent
//! dispatches; cancellation, timeouts and shutdown never leave a request pending; a malformed
//! answer is an error, never a panic or a hang.
//!
//! Nothing asserts on timing; timeouts only turn a hang into a failure.
#![cfg(feature = "batch")]
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use support::{must_return, wait_until, Blocker, TIMEOUT};
use taskrunner::batch::{BatchError, Batcher};
use taskrunner::PostTask;
use taskrunner::{SequencedTaskRunner, TaskError, TaskHandle, TaskState, TaskTraits, ThreadPool};

fn pool(workers: usize) -> ThreadPool {
    ThreadPool::builder().max_workers(workers).build().unwrap()
}

/// Joins with a generous timeout (a hang fails the test instead of blocking it).
#[track_caller]
fn join<T: Send + 'static>(mut h: TaskHandle<T>) -> Result<T, TaskError> {
    h.join_timeout(TIMEOUT)
        .expect("the handle did not resolve within the timeout")
}

/// A batcher closed only by size or `flush()`: for callers that are plain threads, which the
/// idle rule sees as "nothing queued".
fn manual_batcher<D>(pool: &ThreadPool, size: usize, d: D) -> Batcher<u32, u32>
where
    D: Fn(Vec<u32>) -> Result<Vec<u32>, Failure> + Send + Sync + 'static,
{
    Batcher::builder()
        .pool(pool)
        .max_batch_size(size)
        .flush_when_idle(false)
        .max_wait(Duration::MAX)
        .build(d)
}

/// [`manual_batcher`] with one in-flight slot and batches of one.
fn one_at_a_time<D>(pool: &ThreadPool, d: D) -> Batcher<u32, u32>
where
    D: Fn(Vec<u32>) -> Result<Vec<u32>, Failure> + Send + Sync + 'static,
{
    Batcher::builder()
        .pool(pool)
        .max_batch_size(1)
        .max_in_flight(1)
        .flush_when_idle(false)
        .max_wait(Duration::MAX)
        .build(d)
}

#[derive(Debug, PartialEq, Eq)]
struct Failure(&'static str);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Failure {}

// ---- batching collapses requests --------- ----------------------------------------

#[test]
fn thousand_tasks_making_four_sequential_requests_each_make_a_handful_of_batches() {
    const TASKS: u32 = 1000;
    const ROUNDS: u32 = 4;
    let pool = pool(2);
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let db = Batcher::builder()
        .pool(&pool)
        // The idle rule and the size limit decide here: a debug build's CPU phase of 1000
        // polls takes longer than the default 1 ms, which would cut it into time slices.
        .max_wait(Duration::from_secs(60))
        .build(move |keys: Vec<u32>| {
            c.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Failure>(keys.iter().map(|k| k * 10).collect())
        });
    let seqs: Vec<SequencedTaskRunner> = (0..16)
        .map(|_| pool.create_sequenced_task_runner(TaskTraits::default()))
        .collect();
    // Hold both workers while the 1000 tasks are posted, so that the CPU phase starts with all
    // of them queued (otherwise the workers could drain the queue faster than this thread
    // fills it, and the pool would look idle in between).
    let gates = [Blocker::new(), Blocker::new()];
    for g in &gates {
        pool.post_task(TaskTraits::default(), g.task()).unwrap();
    }
    for g in &gates {
        g.wait_started();
    }
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let db = db.clone();
            seqs[i as usize % seqs.len()]
                .post_future(async move {
                    let mut sum = 0;
                    for r in 0..ROUNDS {
                        // Sequential: each request depends on the previous round.
                        sum += db.call(i * ROUNDS + r).await.unwrap();
                    }
                    sum
                })
                .unwrap()
        })
        .collect();
    for g in &gates {
        g.release();
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let i = i as u32;
        let expected: u32 = (0..ROUNDS).map(|r| (i * ROUNDS + r) * 10).sum();
        assert_eq!(join(t).unwrap(), expected, "task {i}");
    }
    let stats = db.stats();
    let sizes = db.batch_sizes();
    println!(
        "{} dispatches, batch sizes {sizes:?}, {stats:?}",
        calls.load(Ordering::SeqCst)
    );
    assert_eq!(stats.requests, u64::from(TASKS * ROUNDS));
    assert_eq!(stats.dispatched_requests, u64::from(TASKS * ROUNDS));
    assert_eq!(sizes.iter().sum::<usize>(), (TASKS * ROUNDS) as usize);
    let dispatches = calls.load(Ordering::SeqCst);
    assert_eq!(dispatches as u64, stats.dispatches);
    assert!(
        (4..=40).contains(&dispatches),
        "4000 requests should make a handful of batches, not {dispatches} (sizes {sizes:?})"
    );
    assert!(
        sizes.iter().all(|&s| s <= 256),
        "max_batch_size is 256: {sizes:?}"
    );
}

#[test]
fn parallel_runner_callers_batch_as_well() {
    let pool = pool(2);
    let db = Batcher::builder()
        .pool(&pool)
        .max_wait(Duration::from_secs(60))
        .build_async(|keys: Vec<u32>| async move { Ok::<_, Failure>(keys) });
    let gate = [Blocker::new(), Blocker::new()];
    for g in &gate {
        pool.post_task(TaskTraits::default(), g.task()).unwrap();
        g.wait_started();
    }
    let tasks: Vec<_> = (0..300u32)
        .map(|i| {
            let db = db.clone();
            pool.post_future(TaskTraits::default(), async move {
                db.call(i).await.unwrap() + db.call(i + 1).await.unwrap()
            })
            .unwrap()
        })
        .collect();
    for g in &gate {
        g.release();
    }
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(join(t).unwrap(), 2 * i as u32 + 1);
    }
    let sizes = db.batch_sizes();
    println!(
        "parallel callers: {} dispatches, sizes {sizes:?}",
        db.dispatches()
    );
    assert_eq!(sizes.iter().sum::<usize>(), 600);
    assert!(
        db.dispatches() <= 30,
        "600 requests in {} dispatches",
        db.dispatches()
    );
}

// ---- triggers -------------------------------------------------------------------------------

#[test]
fn a_full_batch_is_dispatched_at_once_and_the_rest_waits_for_its_trigger() {
    let pool = pool(2);
    let db = manual_batcher(&pool, 4, |keys| Ok(keys.iter().map(|k| k + 1).collect()));
    let handles: Vec<_> = (0..10).map(|i| db.call(i)).collect();
    wait_until("two full batches are dispatched", || db.dispatches() == 2);
    assert_eq!(db.pending(), 2);
    let mut handles = handles.into_iter();
    for i in 0..8 {
        assert_eq!(join(handles.next().unwrap()).unwrap(), i + 1);
    }
    let rest: Vec<_> = handles.collect();
    assert!(rest.iter().all(|h| h.state() == TaskState::Pending));
    db.flush();
    for (i, h) in rest.into_iter().enumerate() {
        assert_eq!(join(h).unwrap(), 9 + i as u32);
    }
    assert_eq!(db.batch_sizes(), vec![4, 4, 2]);
    let s = db.stats();
    assert_eq!(
        (s.closed_full, s.closed_explicitly, s.closed_idle),
        (2, 1, 0)
    );
}

#[test]
fn a_batch_closes_when_the_submitting_work_goes_idle() {
    let pool = pool(1);
    let db = Batcher::builder()
        .pool(&pool)
        .max_wait(Duration::from_secs(60))
        .build(|keys: Vec<u32>| Ok::<_, Failure>(keys));
    // One task makes 50 requests without awaiting: the flush (best effort) cannot run before
    // the task ends, so they form one batch.
    let db2 = db.clone();
    let made = pool
        .post_task_with_result(TaskTraits::default(), move || {
            (0..50).map(|i| db2.call(i)).collect::<Vec<_>>()
        })
        .unwrap();
    for (i, h) in join(made).unwrap().into_iter().enumerate() {
        assert_eq!(join(h).unwrap(), i as u32);
    }
    assert_eq!(db.batch_sizes(), vec![50]);
    assert_eq!(db.stats().closed_idle, 1);
}

#[test]
fn the_tasks_queued_on_a_running_sequence_belong_to_the_cpu_phase() {
    // One sequence with 100 futures and a second, idle worker: while the sequence runs, its
    // queued polls are not in the pool's queue, so the idle worker would run the best-effort
    // flush after the first request. The marker left at the back of the sequence keeps the
    // flush parked until the sequence has run every poll that was queued.
    let pool = pool(2);
    let db = Batcher::builder()
        .pool(&pool)
        .max_wait(Duration::from_secs(60))
        .build(|keys: Vec<u32>| Ok::<_, Failure>(keys));
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let gate = Blocker::new();
    seq.post_task(gate.task()).unwrap();
    gate.wait_started();
    let tasks: Vec<_> = (0..100u32)
        .map(|i| {
            let db = db.clone();
            seq.post_future(async move { db.call(i).await.unwrap() })
                .unwrap()
        })
        .collect();
    gate.release();
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(join(t).unwrap(), i as u32);
    }
    assert_eq!(db.batch_sizes(), vec![100]);
}

#[test]
fn a_sequenced_task_that_joins_its_request_is_served_by_max_wait() {
    // The documented caveat: a blocking join keeps the sequence running, so the marker behind
    // it cannot run and the idle rule never closes the batch; max_wait does.
    let pool = pool(2);
    let db = Batcher::builder()
        .pool(&pool)
        .max_wait(Duration::from_millis(5))
        .build(|keys: Vec<u32>| Ok::<_, Failure>(keys));
    let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    let db2 = db.clone();
    let h = seq
        .post_task_with_result(move || db2.call(3).join().unwrap())
        .unwrap();
    assert_eq!(join(h).unwrap(), 3);
    let s = db.stats();
    assert_eq!((s.closed_idle, s.closed_max_wait), (0, 1), "{s:?}");
}

#[test]
fn max_wait_fires_on_the_delay_thread_while_every_worker_is_busy() {
    let pool = pool(1);
    let db = Batcher::builder()
        .pool(&pool)
        .max_wait(Duration::from_millis(5))
        .build(|keys: Vec<u32>| Ok::<_, Failure>(keys));
    let busy = Blocker::new();
    pool.post_task(TaskTraits::default(), busy.task()).unwrap();
    busy.wait_started();
    let h = db.call(7);
    // The only worker is blocked, so the idle flush cannot run; the timer closes the batch.
    wait_until("the max-wait timer closes the batch", || {
        db.stats().closed_max_wait == 1
    });
    assert_eq!(db.stats().closed_idle, 0);
    assert_eq!(h.state(), TaskState::Pending); // its dispatch waits for the worker
    busy.release();
    assert_eq!(join(h).unwrap(), 7);
    assert_eq!(db.dispatches(), 1);
}

#[test]
fn a_batch_is_dispatched_exactly_once_whichever_triggers_race() {
    // Every trigger armed at once, with a tiny max wait and many concurrent callers from
    // threads and tasks: each request is answered once, and every batch is dispatched once.
    let pool = pool(2);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let db = Batcher::builder()
        .pool(&pool)
        .max_batch_size(8)
        .max_wait(Duration::from_micros(50))
        .build(move |keys: Vec<u32>| {
            s2.lock().unwrap().extend(keys.iter().copied());
            Ok::<_, Failure>(keys)
        });
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                let hs: Vec<_> = (0..250).map(|i| db.call(t * 1000 + i)).collect();
                for (i, h) in hs.into_iter().enumerate() {
                    assert_eq!(join(h).unwrap(), t * 1000 + i as u32);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1000, "a request was dispatched twice or never");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 1000);
    let s = db.stats();
    assert_eq!(
        s.dispatches,
        s.closed_full + s.closed_idle + s.closed_max_wait,
        "every close dispatches once: {s:?}"
    );
}

// ---- failures reach every request of their batch, and only it ------------------------------

#[test]
fn a_dispatcher_error_reaches_every_request_of_its_batch_and_only_that_batch() {
    let pool = pool(2);
    let db = manual_batcher(&pool, 3, |keys| {
        if keys.contains(&666) {
            Err(Failure("no such shard"))
        } else {
            Ok(keys.iter().map(|k| k * 2).collect())
        }
    });
    let hs: Vec<_> = [1, 2, 3, 4, 666, 6, 7, 8, 9]
        .into_iter()
        .map(|k| db.call(k))
        .collect();
    let results: Vec<_> = hs.into_iter().map(join).collect();
    for (i, r) in results.iter().enumerate() {
        if (3..6).contains(&i) {
            let e = r.as_ref().unwrap_err();
            assert!(e.is_failed(), "{e:?}");
            assert_eq!(e.downcast_ref::<Failure>(), Some(&Failure("no such shard")));
        } else {
            assert!(r.is_ok(), "request {i} is not in the failing batch: {r:?}");
        }
    }
    // One shared original error, not three copies.
    assert_eq!(
        results[3].as_ref().unwrap_err(),
        results[5].as_ref().unwrap_err()
    );
    assert_eq!(*results[8].as_ref().unwrap(), 18);
}

#[test]
fn a_dispatcher_panic_reaches_every_request_of_its_batch_and_is_reported() {
    let reported = Arc::new(Mutex::new(Vec::new()));
    let r2 = reported.clone();
    let pool = ThreadPool::builder()
        .max_workers(2)
        .panic_handler(move |p| r2.lock().unwrap().push(p.message().to_owned()))
        .build()
        .unwrap();
    let db = manual_batcher(&pool, 2, |keys| {
        if keys.contains(&0) {
            panic!("dispatcher bug on key 0");
        }
        Ok(keys)
    });
    let hs: Vec<_> = [5, 0, 3, 4].into_iter().map(|k| db.call(k)).collect();
    let results: Vec<_> = hs.into_iter().map(join).collect();
    for r in &results[..2] {
        let e = r.as_ref().unwrap_err();
        assert!(e.is_panic());
        assert_eq!(e.panic_message(), Some("dispatcher bug on key 0"));
    }
    assert_eq!(*results[2].as_ref().unwrap(), 3);
    assert_eq!(*results[3].as_ref().unwrap(), 4);
    assert_eq!(
        *reported.lock().unwrap(),
        vec!["dispatcher bug on key 0".to_owned()]
    );
    // The pool and the batcher carry on.
    let h = db.call(9);
    db.flush();
    assert_eq!(join(h).unwrap(), 9);
}

/// A malformed answer (a wrong number of responses) fails its batch's requests; nothing panics
/// and nothing hangs.
#[test]
fn a_wrong_response_count_is_an_error_for_its_batch_not_a_panic_or_a_hang() {
    let pool = pool(2);
    let db = manual_batcher(&pool, 3, |keys| {
        let mut out = keys.clone();
        if keys.contains(&1) {
            out.pop(); // one short
        } else if keys.contains(&4) {
            out.push(0); // one too many
        }
        Ok(out)
    });
    let hs: Vec<_> = (0..9).map(|k| db.call(k)).collect();
    let results: Vec<_> = hs.into_iter().map(join).collect();
    for (i, r) in results.iter().enumerate() {
        match i {
            0..=2 => assert_eq!(
                r.as_ref().unwrap_err().downcast_ref::<BatchError>(),
                Some(&BatchError::WrongResponseCount {
                    expected: 3,
                    got: 2
                })
            ),
            3..=5 => assert_eq!(
                r.as_ref().unwrap_err().downcast_ref::<BatchError>(),
                Some(&BatchError::WrongResponseCount {
                    expected: 3,
                    got: 4
                })
            ),
            _ => assert_eq!(*r.as_ref().unwrap(), i as u32),
        }
    }
    let e = results[0].as_ref().unwrap_err();
    assert_eq!(
        e.to_string(),
        "task failed: the batch dispatcher returned 2 responses for 3 requests"
    );
}

#[test]
fn async_dispatcher_errors_and_panics_reach_their_batch() {
    let pool = pool(2);
    let io = pool.create_task_runner(TaskTraits::default());
    let db = Batcher::builder()
        .runner(pool.create_sequenced_task_runner(TaskTraits::default()))
        .max_batch_size(2)
        .flush_when_idle(false)
        .max_wait(Duration::MAX)
        .build_async(move |keys: Vec<u32>| {
            // "I/O": wait for a task on another runner without holding a worker.
            let round_trip = io
                .post_task_with_result(move || keys.iter().map(|k| k * 3).collect::<Vec<_>>())
                .unwrap();
            async move {
                let out = round_trip.await.unwrap();
                if out.contains(&0) {
                    panic!("async dispatcher panicked");
                }
                if out.contains(&3) {
                    return Err(Failure("timeout talking to the server"));
                }
                Ok(out)
            }
        });
    let hs: Vec<_> = [0, 5, 1, 6, 7, 8].into_iter().map(|k| db.call(k)).collect();
    let results: Vec<_> = hs.into_iter().map(join).collect();
    assert!(results[..2]
        .iter()
        .all(|r| r.as_ref().unwrap_err().is_panic()));
    assert!(results[2..4].iter().all(|r| r
        .as_ref()
        .unwrap_err()
        .downcast_ref::<Failure>()
        .is_some()));
    assert_eq!(*results[4].as_ref().unwrap(), 21);
    assert_eq!(*results[5].as_ref().unwrap(), 24);
    assert_eq!(db.dispatches(), 3);
}

// ---- routing ---------------------------------------------------------------------------

/// Two batchers on one pool, each with several batches in flight at once finishing out of
/// order, never deliver a response to the wrong request.
#[test]
fn two_batchers_and_concurrent_batches_never_swap_responses() {
    let pool = pool(4);
    let make = |mul: u32| {
        Batcher::builder()
            .pool(&pool)
            .max_batch_size(7)
            .max_in_flight(4)
            .build(move |keys: Vec<u32>| {
                // Later batches of different sizes finish earlier: out-of-order completion.
                std::thread::sleep(Duration::from_micros(u64::from(500 - keys[0] % 500)));
                Ok::<_, Failure>(keys.iter().map(|k| k * mul).collect())
            })
    };
    let (double, triple) = (make(2), make(3));
    let tasks: Vec<_> = (0..400u32)
        .map(|i| {
            let (d, t) = (double.clone(), triple.clone());
            pool.post_future(TaskTraits::default(), async move {
                let a = d.call(i);
                let b = t.call(i);
                let (a, b) = (a.await.unwrap(), b.await.unwrap());
                let c = d.call(b).await.unwrap();
                (a, b, c)
            })
            .unwrap()
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        let i = i as u32;
        assert_eq!(join(t).unwrap(), (2 * i, 3 * i, 6 * i));
    }
    assert_eq!(double.stats().dispatched_requests, 800);
    assert_eq!(triple.stats().dispatched_requests, 400);
}

// ---- in-flight limit ---------------------------------------------------------------------

#[test]
fn max_in_flight_bounds_concurrent_dispatches() {
    let pool = pool(4);
    let (now, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (n, p) = (now.clone(), peak.clone());
    let limited = Batcher::builder()
        .pool(&pool)
        .max_batch_size(1)
        .max_in_flight(2)
        .build(move |keys: Vec<u32>| {
            let inside = n.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(inside, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(2));
            n.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, Failure>(keys)
        });
    let hs: Vec<_> = (0..24).map(|i| limited.call(i)).collect();
    assert!(limited.in_flight() <= 2);
    for (i, h) in hs.into_iter().enumerate() {
        assert_eq!(join(h).unwrap(), i as u32);
    }
    let peak = peak.load(Ordering::SeqCst);
    assert!(
        peak <= 2,
        "{peak} dispatches ran at once, max_in_flight is 2"
    );
    assert_eq!(limited.dispatches(), 24);
    assert_eq!(limited.in_flight(), 0);
}

#[test]
fn batches_waiting_for_an_in_flight_slot_hold_no_worker() {
    // One slot, held by a dispatcher that waits; more batches close meanwhile. The pool's only
    // worker stays free for other work (the dispatcher blocks inside `blocking()` and the
    // waiting batches are callbacks, not tasks).
    let pool = pool(1);
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let db = one_at_a_time(&pool, move |keys| {
        if keys == [0] {
            release_rx.lock().unwrap().recv_timeout(TIMEOUT).unwrap();
        }
        Ok(keys)
    });
    let first = db.call(0);
    wait_until("the first dispatch is running", || {
        first.state() == TaskState::Running
    });
    let waiting: Vec<_> = (1..5).map(|i| db.call(i)).collect();
    let cpu = pool
        .post_task_with_result(TaskTraits::default(), || 6 * 7)
        .unwrap();
    assert_eq!(join(cpu).unwrap(), 42);
    assert!(waiting.iter().all(|h| h.state() == TaskState::Pending));
    release_tx.send(()).unwrap();
    assert_eq!(join(first).unwrap(), 0);
    for (i, h) in waiting.into_iter().enumerate() {
        assert_eq!(join(h).unwrap(), i as u32 + 1);
    }
}

// ---- cancellation, timeouts -----------------------------------------------------------------

#[test]
fn a_request_cancelled_before_dispatch_is_left_out_of_its_batch() {
    let pool = pool(2);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let db = manual_batcher(&pool, 100, move |keys| {
        s2.lock().unwrap().push(keys.clone());
        Ok(keys.iter().map(|k| k + 100).collect())
    });
    let (a, b, c) = (db.call(1), db.call(2), db.call(3));
    assert!(b.cancel());
    assert!(join(b).unwrap_err().is_cancelled());
    db.flush();
    // Response i still reaches request i with the cancelled one removed.
    assert_eq!(join(a).unwrap(), 101);
    assert_eq!(join(c).unwrap(), 103);
    assert_eq!(*seen.lock().unwrap(), vec![vec![1, 3]]);
    assert_eq!(db.stats().cancelled, 1);
    // A batch whose every request was cancelled makes no dispatcher call.
    let d = db.call(4);
    assert!(d.cancel());
    db.flush();
    let e = db.call(5);
    db.flush();
    assert_eq!(join(e).unwrap(), 105);
    assert_eq!(seen.lock().unwrap().len(), 2);
}

/// A dispatcher that never answers hangs nothing: a join can time out, requests not yet
/// dispatched can be cancelled, a batch timeout resolves dispatched requests, and the pool
/// keeps working.
#[test]
fn a_dispatcher_that_never_answers_hangs_nothing() {
    let pool = pool(1);
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Arc::new(Mutex::new(release_rx));
    let rx = release_rx.clone();
    let stuck = one_at_a_time(&pool, move |keys| {
        let _ = rx.lock().unwrap().recv_timeout(TIMEOUT); // "never" answers
        Ok(keys)
    });
    let mut first = stuck.call(1);
    wait_until("the stuck dispatch is running", || {
        first.state() == TaskState::Running
    });
    assert!(first.join_timeout(Duration::from_millis(20)).is_none());
    assert_eq!(first.state(), TaskState::Running);
    // Waiting for the only in-flight slot: cancellable, and it resolves at once.
    let second = stuck.call(2);
    assert!(second.cancel());
    assert!(join(second).unwrap_err().is_cancelled());
    // The pool's only worker is blocked in the dispatcher, yet other work runs (blocking()).
    let cpu = pool
        .post_task_with_result(TaskTraits::default(), || "still alive")
        .unwrap();
    assert_eq!(join(cpu).unwrap(), "still alive");
    // A batch timeout bounds dispatched requests.
    let rx = release_rx.clone();
    let bounded = Batcher::builder()
        .pool(&pool)
        .timeout(Duration::from_millis(10))
        .build(move |keys: Vec<u32>| {
            let _ = rx.lock().unwrap().recv_timeout(TIMEOUT);
            Ok::<_, Failure>(keys)
        });
    let h = bounded.call(3);
    assert!(join(h).unwrap_err().is_deadline_exceeded());
    assert_eq!(bounded.stats().timed_out, 1);
    // Release both dispatchers; the late answer of the bounded one is dropped.
    release_tx.send(()).unwrap();
    release_tx.send(()).unwrap();
    assert_eq!(join(first).unwrap(), 1);
}

// ---- shutdown ------------------------------------------------------------------------------

#[test]
fn shutdown_resolves_requests_of_an_open_batch_as_not_run() {
    for idle in [false, true] {
        let pool = pool(1);
        let busy = Blocker::new();
        pool.post_task(TaskTraits::default(), busy.task()).unwrap();
        busy.wait_started();
        // Nothing closes the batch before shutdown: no time limit, and the idle flush (when
        // on) is queued behind the busy worker.
        let db = Batcher::builder()
            .pool(&pool)
            .flush_when_idle(idle)
            .max_wait(Duration::MAX)
            .build(|keys: Vec<u32>| Ok::<_, Failure>(keys));
        let hs: Vec<_> = (0..3).map(|i| db.call(i)).collect();
        let p = pool.clone();
        let shutdown = std::thread::spawn(move || p.shutdown());
        wait_until("shutdown started", || pool.is_shutdown());
        busy.release();
        shutdown.join().unwrap();
        for h in hs {
            assert!(join(h).unwrap_err().is_not_run(), "idle flush {idle}");
        }
        // After shutdown a call resolves at once, as not run.
        assert!(join(db.call(9)).unwrap_err().is_not_run());
        assert_eq!(db.dispatches(), 0);
    }
}

#[test]
fn shutdown_resolves_batches_waiting_for_an_in_flight_slot() {
    let pool = pool(1);
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let db = one_at_a_time(&pool, move |keys| {
        if keys == [0] {
            release_rx.lock().unwrap().recv_timeout(TIMEOUT).unwrap();
        }
        Ok(keys)
    });
    let running = db.call(0);
    wait_until("the first dispatch is running", || {
        running.state() == TaskState::Running
    });
    let queued: Vec<_> = (1..4).map(|i| db.call(i)).collect();
    let p = pool.clone();
    let shutdown = std::thread::spawn(move || p.shutdown());
    wait_until("shutdown started", || pool.is_shutdown());
    // Shutdown waits for the running dispatch (skip-on-shutdown tasks that started finish).
    release_tx.send(()).unwrap();
    must_return("shutdown", move || shutdown.join().unwrap());
    assert_eq!(join(running).unwrap(), 0);
    for h in queued {
        assert!(join(h).unwrap_err().is_not_run());
    }
}

#[test]
fn async_callers_waiting_at_shutdown_are_resolved() {
    let pool = pool(1);
    let db = Batcher::builder()
        .pool(&pool)
        .flush_when_idle(false)
        .max_wait(Duration::MAX)
        .build_async(|keys: Vec<u32>| async move { Ok::<_, Failure>(keys) });
    let db2 = db.clone();
    let caller = pool
        .post_future(TaskTraits::default(), async move { db2.call(1).await })
        .unwrap();
    wait_until("the caller waits in the open batch", || db.pending() == 1);
    must_return("shutdown", {
        let p = pool.clone();
        move || p.shutdown()
    });
    // The caller's future was dropped unrun, or it saw its request resolve as not run.
    match join(caller) {
        Ok(inner) => assert!(inner.unwrap_err().is_not_run()),
        Err(e) => assert!(e.is_not_run() || e.is_cancelled(), "{e:?}"),
    }
}

// ---- deterministic: the collapse, exactly ------------------------------------------------

#[cfg(feature = "test-util")]
mod mock {
    use super::*;
    use taskrunner::testing::TestEnvironment;

    /// 10 children × 4 I/Os → 4 dispatches of 10, scaled up: with one
    /// thread running everything (seeded mode) the flush runs only once every task is waiting,
    /// so 1000 tasks × 4 sequential requests make exactly 4 dispatches of 1000.
    #[test]
    fn seeded_thousand_tasks_times_four_requests_make_exactly_four_dispatches() {
        for seed in [1, 7, 42] {
            let env = TestEnvironment::builder().seed(seed).build();
            let db = Batcher::builder()
                .pool(env.pool())
                .max_batch_size(4096)
                .build(|keys: Vec<u32>| Ok::<_, Failure>(keys));
            let seqs: Vec<_> = (0..16)
                .map(|_| {
                    env.pool()
                        .create_sequenced_task_runner(TaskTraits::default())
                })
                .collect();
            let mut tasks: Vec<_> = (0..1000u32)
                .map(|i| {
                    let db = db.clone();
                    seqs[i as usize % 16]
                        .post_future(async move {
                            let mut sum = 0;
                            for r in 0..4 {
                                sum += db.call(i * 4 + r).await.unwrap();
                            }
                            sum
                        })
                        .unwrap()
                })
                .collect();
            env.run_until_idle();
            for (i, t) in tasks.iter_mut().enumerate() {
                let i = i as u32;
                assert_eq!(t.try_result().unwrap().unwrap(), 16 * i + 6);
            }
            assert_eq!(db.batch_sizes(), vec![1000; 4], "seed {seed}");
            assert_eq!(db.stats().closed_idle, 4);
        }
    }

    #[test]
    fn max_wait_closes_a_lone_request_on_the_mock_clock() {
        let env = TestEnvironment::new();
        let db = Batcher::builder()
            .pool(env.pool())
            .flush_when_idle(false)
            .max_wait(Duration::from_millis(50))
            .build(|keys: Vec<u32>| Ok::<_, Failure>(keys));
        let mut h = db.call(5);
        env.run_until_idle();
        assert_eq!(db.dispatches(), 0);
        env.fast_forward_by(Duration::from_millis(49));
        assert_eq!(db.dispatches(), 0, "not a moment early");
        assert_eq!(h.state(), TaskState::Pending);
        env.fast_forward_by(Duration::from_millis(1));
        assert_eq!(db.dispatches(), 1);
        assert_eq!(h.try_result().unwrap().unwrap(), 5);
        assert_eq!(db.stats().closed_max_wait, 1);
        // The timer of a batch closed by size is cancelled, not left behind.
        let small = Batcher::builder()
            .pool(env.pool())
            .max_batch_size(1)
            .max_wait(Duration::from_secs(3600))
            .build(|keys: Vec<u32>| Ok::<_, Failure>(keys));
        let mut h = small.call(1);
        env.run_until_idle();
        assert_eq!(h.try_result().unwrap().unwrap(), 1);
        assert_eq!(env.pending_task_count(), 0);
    }

    /// A server that never answers, but keeps the request (and its waker) like real I/O.
    struct Unanswered(Arc<Mutex<Vec<std::task::Waker>>>);

    impl std::future::Future for Unanswered {
        type Output = Result<Vec<u32>, Failure>;
        fn poll(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Self::Output> {
            self.0.lock().unwrap().push(cx.waker().clone());
            std::task::Poll::Pending
        }
    }

    #[test]
    fn a_batch_timeout_follows_the_mock_clock() {
        let env = TestEnvironment::new();
        let server = Arc::new(Mutex::new(Vec::new()));
        let s2 = server.clone();
        let db = Batcher::builder()
            .pool(env.pool())
            .timeout(Duration::from_secs(2))
            .build_async(move |_: Vec<u32>| Unanswered(s2.clone()));
        let mut h = db.call(1);
        env.fast_forward_by(Duration::from_millis(1999));
        assert_eq!(h.state(), TaskState::Running);
        env.fast_forward_by(Duration::from_millis(1));
        assert!(h.try_result().unwrap().unwrap_err().is_deadline_exceeded());
        assert_eq!(db.stats().timed_out, 1);
        // The call itself still holds its slot until the server lets go of it.
        assert_eq!(db.in_flight(), 1);
        server.lock().unwrap().clear();
        assert_eq!(
            db.in_flight(),
            0,
            "the abandoned future was dropped with its slot"
        );
    }

    #[test]
    fn a_dispatch_future_that_can_never_finish_resolves_its_batch_as_not_run() {
        let env = TestEnvironment::new();
        let db = Batcher::builder()
            .pool(env.pool())
            // Pending forever, and nobody holds its waker: the runner drops it.
            .build_async(|_: Vec<u32>| std::future::pending::<Result<Vec<u32>, Failure>>());
        let mut h = db.call(1);
        env.run_until_idle();
        assert!(h.try_result().unwrap().unwrap_err().is_not_run());
        assert_eq!(db.in_flight(), 0);
    }
}
