//! `SingleFlight`: one execution per key among concurrent callers, the value / error / panic
//! reaching every waiter, entries removed on completion, different keys in parallel, async
//! callers mixed with blocking ones.
//!
//! Nothing here asserts on timing: the leader is held with a gate until the followers have
//! joined (`waiters`), and timeouts only turn a hang into a failure.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use taskrunner::sync::SingleFlight;
use taskrunner::{TaskTraits, ThreadPool};

const HANG: Duration = Duration::from_secs(30);

fn eventually(cond: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < HANG, "condition never became true");
        thread::yield_now();
    }
}

fn within_hang<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(HANG).expect("hung")
}

/// A gate shared by every caller's closure (only the leader's ever waits on it).
fn gate() -> (std::sync::mpsc::Sender<()>, Arc<Mutex<Receiver<()>>>) {
    let (tx, rx) = channel();
    (tx, Arc::new(Mutex::new(rx)))
}

#[test]
fn concurrent_callers_of_one_key_run_the_work_once_and_share_the_value() {
    const N: usize = 8;
    let flights = SingleFlight::<String, Arc<Vec<u8>>>::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let (release, gate) = gate();
    let callers: Vec<_> = (0..N)
        .map(|_| {
            let (flights, runs, gate) = (flights.clone(), runs.clone(), gate.clone());
            thread::spawn(move || {
                flights.call("blob".to_string(), || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    let _ = gate.lock().unwrap().recv_timeout(HANG);
                    Arc::new(vec![1, 2, 3])
                })
            })
        })
        .collect();
    // Everyone but the leader has joined the leader's call.
    eventually(|| flights.waiters("blob") == N - 1);
    release.send(()).unwrap();
    let results: Vec<_> = callers
        .into_iter()
        .map(|c| c.join().unwrap().unwrap())
        .collect();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let first = &results[0].0;
    for (v, shared) in &results {
        assert!(Arc::ptr_eq(v, first), "every caller gets the one value");
        assert!(*shared, "shared with others, for the leader too");
    }
    assert_eq!(flights.in_flight(), 0);
}

#[test]
fn different_keys_run_in_parallel() {
    let flights = SingleFlight::<u32, u32>::new();
    // Both works must be running at once to pass the barrier (a hang otherwise).
    let barrier = Arc::new(Barrier::new(2));
    let results = within_hang(move || {
        let hs: Vec<_> = (0..2)
            .map(|k| {
                let (flights, barrier) = (flights.clone(), barrier.clone());
                thread::spawn(move || {
                    flights.call(k, || {
                        barrier.wait();
                        k * 10
                    })
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect::<Vec<_>>()
    });
    assert_eq!(results, [(0, false), (10, false)]);
}

#[test]
fn the_entry_is_removed_on_completion_and_a_later_call_runs_again() {
    let flights = SingleFlight::new();
    let runs = AtomicUsize::new(0);
    let work = || runs.fetch_add(1, Ordering::SeqCst) + 1;
    assert_eq!(flights.call("k", work).unwrap(), (1, false));
    assert_eq!(flights.in_flight(), 0);
    assert_eq!(flights.call("k", work).unwrap(), (2, false)); // nothing cached
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[test]
fn a_panic_reaches_every_waiter_and_leaves_no_poisoned_key() {
    const N: usize = 5;
    let flights = SingleFlight::<&'static str, u32>::new();
    let (release, gate) = gate();
    let callers: Vec<_> = (0..N)
        .map(|_| {
            let (flights, gate) = (flights.clone(), gate.clone());
            thread::spawn(move || {
                flights.call("k", || -> u32 {
                    let _ = gate.lock().unwrap().recv_timeout(HANG);
                    panic!("backend exploded")
                })
            })
        })
        .collect();
    eventually(|| flights.waiters("k") == N - 1);
    release.send(()).unwrap();
    for c in callers {
        let err = c.join().unwrap().unwrap_err();
        assert!(err.is_panic());
        assert_eq!(err.panic_message(), Some("backend exploded"));
    }
    assert_eq!(flights.in_flight(), 0);
    assert_eq!(flights.call("k", || 5).unwrap(), (5, false));
}

#[test]
fn an_error_reaches_every_waiter() {
    let flights = SingleFlight::<u8, String>::new();
    let (release, gate) = gate();
    let callers: Vec<_> = (0..3)
        .map(|_| {
            let (flights, gate) = (flights.clone(), gate.clone());
            thread::spawn(move || {
                flights.try_call(1, || {
                    let _ = gate.lock().unwrap().recv_timeout(HANG);
                    Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "db timeout",
                    ))
                })
            })
        })
        .collect();
    eventually(|| flights.waiters(&1) == 2);
    release.send(()).unwrap();
    for c in callers {
        let err = c.join().unwrap().unwrap_err();
        assert!(err.is_failed());
        assert_eq!(
            err.downcast_ref::<std::io::Error>().unwrap().kind(),
            std::io::ErrorKind::TimedOut
        );
    }
    assert_eq!(flights.in_flight(), 0);
}

#[test]
fn async_followers_await_a_blocking_leader() {
    let flights = SingleFlight::<u8, &'static str>::new();
    let (release, gate) = gate();
    let (f, g) = (flights.clone(), gate.clone());
    let leader = thread::spawn(move || {
        f.call(1, || {
            let _ = g.lock().unwrap().recv_timeout(HANG);
            "from the leader"
        })
    });
    eventually(|| flights.in_flight() == 1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let followers: Vec<_> = (0..4)
        .map(|_| {
            let f = flights.clone();
            rt.spawn(async move { f.call_async(1, || async { "never runs" }).await })
        })
        .collect();
    eventually(|| flights.waiters(&1) == 4);
    release.send(()).unwrap();
    assert_eq!(leader.join().unwrap().unwrap(), ("from the leader", true));
    rt.block_on(async {
        for f in followers {
            let r = tokio::time::timeout(HANG, f).await.expect("hung").unwrap();
            assert_eq!(r.unwrap(), ("from the leader", true));
        }
    });
}

#[test]
fn an_async_leader_is_shared_with_blocking_and_async_followers() {
    let flights = SingleFlight::<u8, u32>::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let (f, r) = (flights.clone(), runs.clone());
    let leader = rt.spawn(async move {
        f.call_async(7, || async move {
            r.fetch_add(1, Ordering::SeqCst);
            release_rx.await.unwrap();
            99
        })
        .await
    });
    eventually(|| flights.in_flight() == 1);
    let f = flights.clone();
    let blocking_follower = thread::spawn(move || f.call(7, || 0));
    let f = flights.clone();
    let async_follower = rt.spawn(async move { f.call_async(7, || async { 0 }).await });
    eventually(|| flights.waiters(&7) == 2);
    release_tx.send(()).unwrap();
    assert_eq!(blocking_follower.join().unwrap().unwrap(), (99, true));
    rt.block_on(async {
        assert_eq!(leader.await.unwrap().unwrap(), (99, true));
        assert_eq!(async_follower.await.unwrap().unwrap(), (99, true));
    });
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(flights.in_flight(), 0);
}

#[test]
fn a_dropped_async_leader_releases_its_followers_with_a_cancellation() {
    let flights = SingleFlight::<u8, u32>::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .unwrap();
    let f = flights.clone();
    let leader = rt.spawn(async move { f.call_async(1, std::future::pending::<u32>).await });
    eventually(|| flights.in_flight() == 1);
    let f = flights.clone();
    let follower = thread::spawn(move || f.call(1, || 0));
    eventually(|| flights.waiters(&1) == 1);
    leader.abort(); // drops the leading future mid-flight
    let err = follower.join().unwrap().unwrap_err();
    assert!(err.is_cancelled());
    assert_eq!(flights.in_flight(), 0);
    assert_eq!(flights.call(1, || 3).unwrap(), (3, false));
}

#[test]
fn a_panicking_async_leader_reaches_its_followers() {
    let flights = SingleFlight::<u8, u32>::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (a, b) = rt.block_on(async {
        tokio::join!(
            flights.call_async(1, || async {
                tokio::task::yield_now().await;
                panic!("async boom")
            }),
            flights.call_async(1, || async { 0 }),
        )
    });
    assert_eq!(a.unwrap_err().panic_message(), Some("async boom"));
    assert_eq!(b.unwrap_err().panic_message(), Some("async boom"));
    assert_eq!(flights.in_flight(), 0);
}

#[test]
fn followers_on_a_one_worker_pool_do_not_deadlock() {
    // The leader's work waits for a pool task while a follower blocks the only worker.
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let flights = SingleFlight::<u8, u32>::new();
    let (release, gate) = gate();
    let (f, g) = (flights.clone(), gate.clone());
    let leader = thread::spawn(move || {
        f.call(1, || {
            let _ = g.lock().unwrap().recv_timeout(HANG);
            11
        })
    });
    eventually(|| flights.in_flight() == 1);
    let f = flights.clone();
    let follower = pool
        .post_task_with_result(TaskTraits::default(), move || f.call(1, || 0))
        .unwrap();
    eventually(|| flights.waiters(&1) == 1);
    // Needs a worker while the follower blocks the only one.
    let other = pool
        .post_task_with_result(TaskTraits::default(), || 5)
        .unwrap();
    let p = within_hang(move || other.join().unwrap());
    release.send(()).unwrap();
    assert_eq!(p, 5);
    assert_eq!(leader.join().unwrap().unwrap(), (11, true));
    assert_eq!(follower.join().unwrap().unwrap(), (11, true));
    pool.shutdown();
}
