//! Bounded runners (`SequencedTaskRunner::bounded`, `SingleThreadTaskRunner::bounded`): the
//! three policies for a full queue, order, counts, posters racing, panics, delayed tasks and
//! shutdown.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{must_return, wait_until, Blocker, Counter, Recorder};
use taskrunner::{
    BoundedRunner, PanicPolicy, PostRefusal, PostTask, QueuePolicy, SequencedTaskRunner,
    TaskTraits, ThreadPool,
};

fn pool(workers: usize) -> ThreadPool {
    ThreadPool::builder().max_workers(workers).build().unwrap()
}

/// A bounded runner whose sequence is held by a running blocker (so posts only queue).
fn held(
    pool: &ThreadPool,
    cap: usize,
    policy: QueuePolicy,
) -> (BoundedRunner<SequencedTaskRunner>, Blocker) {
    let r = pool
        .create_sequenced_task_runner(TaskTraits::default())
        .bounded(cap, policy);
    let b = Blocker::new();
    r.post_task(b.task()).unwrap();
    b.wait_started();
    (r, b)
}

#[test]
fn reject_hands_the_closure_back_and_keeps_the_order() {
    let pool = pool(2);
    let (r, blocker) = held(&pool, 3, QueuePolicy::Reject);
    let order = Recorder::new();
    for i in 0..3 {
        r.post_task(order.task(i)).unwrap();
    }
    assert_eq!(r.len(), 3);
    let err = r.post_task(order.task(99)).unwrap_err();
    assert_eq!(err.reason(), PostRefusal::QueueFull);
    assert!(err.to_string().contains("queue is full"));
    // Nothing lost: the refused closure is ours to run.
    err.into_inner()();
    assert_eq!(r.rejected(), 1);
    blocker.release();
    assert_eq!(order.wait_for_len(4), vec![99, 0, 1, 2]);
    assert!(r.is_empty());
}

#[test]
fn drop_oldest_evicts_the_oldest_waiting_task_and_reports_it() {
    let pool = pool(2);
    let evicted = Arc::new(Mutex::new(Vec::new()));
    let (r, blocker) = held(&pool, 2, QueuePolicy::DropOldest);
    let e2 = evicted.clone();
    let r = r.on_dropped(move |task| e2.lock().unwrap().push(task.posted_from().line()));
    let handles: Vec<_> = (0..5)
        .map(|i| r.post_task_with_result(move || i).unwrap())
        .collect();
    assert_eq!(r.dropped(), 3);
    assert_eq!(evicted.lock().unwrap().len(), 3);
    blocker.release();
    let outcomes: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
    for (i, o) in outcomes.iter().enumerate() {
        if i < 3 {
            assert!(o.as_ref().unwrap_err().is_not_run(), "task {i} was evicted");
        } else {
            assert_eq!(*o.as_ref().unwrap(), i);
        }
    }
}

#[test]
fn an_evicted_task_can_run_elsewhere() {
    let pool = pool(2);
    let (r, blocker) = held(&pool, 1, QueuePolicy::DropOldest);
    let r = r.on_dropped(|task| task.run());
    let ran = Counter::new();
    for _ in 0..10 {
        let ran = ran.clone();
        r.post_task(move || ran.incr()).unwrap();
    }
    assert_eq!(ran.get(), 9, "nine ran inline as they were evicted");
    blocker.release();
    ran.wait_for(10);
}

#[test]
fn block_makes_the_poster_wait_for_room() {
    let pool = pool(2);
    let (r, blocker) = held(&pool, 2, QueuePolicy::Block);
    let order = Recorder::new();
    r.post_task(order.task(0)).unwrap();
    r.post_task(order.task(1)).unwrap();
    let posted = Arc::new(AtomicUsize::new(0));
    let poster = {
        let (r, order, posted) = (r.clone(), order.clone(), posted.clone());
        std::thread::spawn(move || {
            r.post_task(order.task(2)).unwrap();
            posted.store(1, SeqCst);
        })
    };
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(posted.load(SeqCst), 0, "the post did not wait for room");
    blocker.release();
    poster.join().unwrap();
    assert_eq!(order.wait_for_len(3), vec![0, 1, 2]);
}

#[test]
fn a_blocking_post_from_a_pool_task_is_compensated() {
    // One worker: the posting task holds it while it waits; the runner's tasks need a worker.
    let pool = pool(1);
    let r = pool
        .create_sequenced_task_runner(TaskTraits::default())
        .bounded(2, QueuePolicy::Block);
    let ran = Counter::new();
    let (r2, ran2) = (r.clone(), ran.clone());
    let h = pool
        .post_task_with_result(TaskTraits::default(), move || {
            for _ in 0..50 {
                let ran = ran2.clone();
                r2.post_task(move || ran.incr()).unwrap();
            }
        })
        .unwrap();
    must_return(
        "posting 50 into a queue of 2 from the only worker",
        move || h.join().unwrap(),
    );
    ran.wait_for(50);
}

#[test]
fn a_task_posting_to_its_own_full_runner_is_not_made_to_wait() {
    let pool = pool(2);
    let r = pool
        .create_sequenced_task_runner(TaskTraits::default())
        .bounded(1, QueuePolicy::Block);
    let ran = Counter::new();
    let (r2, ran2) = (r.clone(), ran.clone());
    r.post_task(move || {
        for _ in 0..5 {
            let ran = ran2.clone();
            r2.post_task(move || ran.incr()).unwrap();
        }
    })
    .unwrap();
    ran.wait_for(5);
}

#[test]
fn posters_racing_a_full_queue_lose_nothing_and_keep_their_order() {
    for policy in [
        QueuePolicy::Block,
        QueuePolicy::Reject,
        QueuePolicy::DropOldest,
    ] {
        let pool = pool(3);
        let cap = 4;
        let r = pool
            .create_sequenced_task_runner(TaskTraits::default())
            .bounded(cap, policy);
        let evicted = Arc::new(AtomicUsize::new(0));
        let e2 = evicted.clone();
        let r = r.on_dropped(move |_| {
            e2.fetch_add(1, SeqCst);
        });
        let seen = Arc::new(Mutex::new(vec![Vec::new(); 4]));
        let over = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let per = 2_000;
        let posters: Vec<_> = (0..4)
            .map(|t| {
                let (r, seen, over, refused) =
                    (r.clone(), seen.clone(), over.clone(), refused.clone());
                std::thread::spawn(move || {
                    for i in 0..per {
                        let (seen, over, r2) = (seen.clone(), over.clone(), r.clone());
                        let task = move || {
                            if r2.len() > cap {
                                over.fetch_add(1, SeqCst);
                            }
                            seen.lock().unwrap()[t].push(i);
                        };
                        if r.post_task(task).is_err() {
                            refused.fetch_add(1, SeqCst);
                        }
                    }
                })
            })
            .collect();
        for p in posters {
            p.join().unwrap();
        }
        let total = 4 * per;
        wait_until("every accepted task ran or was evicted", || {
            let ran: usize = seen.lock().unwrap().iter().map(Vec::len).sum();
            ran + evicted.load(SeqCst) + refused.load(SeqCst) == total
        });
        assert_eq!(over.load(SeqCst), 0, "{policy:?}: more than {cap} waited");
        for (t, s) in seen.lock().unwrap().iter().enumerate() {
            assert!(
                s.windows(2).all(|w| w[0] < w[1]),
                "{policy:?}: poster {t} out of order"
            );
        }
        assert_eq!(r.rejected() as usize, refused.load(SeqCst));
        assert_eq!(r.dropped() as usize, evicted.load(SeqCst));
        if policy == QueuePolicy::Block {
            assert_eq!(refused.load(SeqCst) + evicted.load(SeqCst), 0);
        }
    }
}

#[test]
fn a_panicking_task_is_reported_and_the_queue_goes_on() {
    let pool = pool(2);
    let r = pool
        .create_sequenced_task_runner(TaskTraits::default())
        .bounded(8, QueuePolicy::Block);
    r.post_task(|| panic!("bad task")).unwrap();
    let h = r.post_task_with_result(|| 3).unwrap();
    assert_eq!(h.join().unwrap(), 3);
    wait_until("the panic is counted", || {
        pool.metrics().tasks_panicked() == 1
    });
}

#[test]
fn a_poisoned_sequence_drops_the_queue_and_wakes_blocked_posters() {
    let pool = pool(2);
    let (r, blocker) = {
        let r = pool
            .create_sequenced_task_runner(TaskTraits::new().panic_policy(PanicPolicy::Poison))
            .bounded(1, QueuePolicy::Block);
        let b = Blocker::new();
        let b2 = b.clone();
        r.post_task(move || {
            b2.task()();
            panic!("poison");
        })
        .unwrap();
        b.wait_started();
        (r, b)
    };
    let queued = r.post_task_with_result(|| ()).unwrap();
    let poster = {
        let r = r.clone();
        std::thread::spawn(move || r.post_task(|| ()).map_err(|e| e.reason()))
    };
    std::thread::sleep(Duration::from_millis(20));
    blocker.release();
    assert!(queued.join().unwrap_err().is_not_run());
    assert_eq!(poster.join().unwrap(), Err(PostRefusal::SequencePoisoned));
    assert_eq!(
        r.post_task(|| ()).unwrap_err().reason(),
        PostRefusal::SequencePoisoned
    );
}

#[test]
fn shutdown_wakes_blocked_posters_with_the_reason() {
    let pool = pool(2);
    let (r, blocker) = held(&pool, 1, QueuePolicy::Block);
    let queued = r.post_task_with_result(|| ()).unwrap();
    let poster = {
        let r = r.clone();
        std::thread::spawn(move || r.post_task(|| ()).map_err(|e| e.is_shutdown()))
    };
    std::thread::sleep(Duration::from_millis(20));
    let shut = {
        let p = pool.clone();
        std::thread::spawn(move || p.shutdown())
    };
    wait_until("shutdown has started", || pool.is_shutdown());
    blocker.release();
    shut.join().unwrap();
    assert_eq!(poster.join().unwrap(), Err(true));
    assert!(queued.join().unwrap_err().is_not_run());
    assert!(r.post_task(|| ()).unwrap_err().is_shutdown());
}

#[test]
fn a_delayed_task_joins_the_queue_when_due_even_if_it_is_full() {
    let pool = pool(2);
    let (r, blocker) = held(&pool, 1, QueuePolicy::Reject);
    let order = Recorder::new();
    r.post_delayed_task(Duration::from_millis(5), order.task("delayed"))
        .unwrap();
    r.post_task(order.task("immediate")).unwrap();
    wait_until("the delayed task is due and queued", || r.len() == 2);
    blocker.release();
    assert_eq!(order.wait_for_len(2), vec!["immediate", "delayed"]);
}

#[test]
fn a_single_thread_runner_can_be_bounded() {
    let pool = pool(1);
    let st = pool.create_single_thread_task_runner(TaskTraits::default());
    let r = st.clone().bounded(2, QueuePolicy::Block);
    let order = Recorder::new();
    for i in 0..100 {
        let (order, st) = (order.clone(), st.clone());
        r.post_task(move || {
            assert!(st.runs_tasks_in_current_sequence());
            order.push(i);
        })
        .unwrap();
    }
    assert_eq!(order.wait_for_len(100), (0..100).collect::<Vec<_>>());
}

#[test]
#[should_panic(expected = "capacity of at least 1")]
fn a_zero_capacity_is_refused_at_once() {
    let pool = pool(1);
    let _ = pool
        .create_sequenced_task_runner(TaskTraits::default())
        .bounded(0, QueuePolicy::Reject);
}
