//! `HandleRegistry`: ids, bounds, automatic cleanup on a manual clock, the wren.go state codes,
//! cleanup semantics, and the concurrency the script host relies on (many waiters on one id,
//! cancel racing completion from many threads).
#![cfg(all(feature = "test-util", feature = "registry"))]
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::error::Error;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use taskrunner::registry::{HandleId, HandleRegistry, RegistryError};
use taskrunner::testing::ManualClock;
use taskrunner::{Deferred, TaskError, TaskHandle, TaskState, TaskTraits, ThreadPool};

/// Turns a hang into a failure; never a timing assertion.
const HANG: Duration = Duration::from_secs(20);

/// Counts drops (to prove a closure or a value was freed).
#[derive(Clone, Default)]
struct Drops(Arc<AtomicUsize>);

#[derive(Debug)]
struct DropToken(Arc<AtomicUsize>);

impl Drop for DropToken {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Drops {
    fn token(&self) -> DropToken {
        DropToken(self.0.clone())
    }
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Runs `f` on another thread; fails (instead of hanging) if it does not return in `HANG`.
fn must_return<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(HANG)
        .unwrap_or_else(|_| panic!("{what} did not return"))
}

/// A task blocked until released: `(handle, started, release)`.
fn blocked_task(
    pool: &ThreadPool,
    value: &str,
) -> (TaskHandle<String>, mpsc::Receiver<()>, mpsc::Sender<()>) {
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let value = value.to_string();
    let h = pool
        .post_task_with_result(TaskTraits::default(), move || {
            started_tx.send(()).unwrap();
            release_rx.recv_timeout(HANG).unwrap();
            value
        })
        .unwrap();
    (h, started_rx, release_tx)
}

#[test]
fn ids_start_at_one_and_never_repeat() {
    let reg = HandleRegistry::new(1000);
    let first = reg.insert(TaskHandle::ready(0)).unwrap();
    assert_eq!(first.as_u64(), 1);
    let mut seen = vec![first];
    for i in 0..200 {
        let id = reg.insert(TaskHandle::ready(i)).unwrap();
        if i % 3 == 0 {
            assert!(reg.cleanup(id)); // freed ids are not handed out again
        }
        seen.push(id);
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "ids are unique");
    assert!(seen.iter().all(|id| id.as_u64() >= 1));
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "ids increase");
}

#[test]
fn ids_round_trip_through_f64_and_are_refused_above_2_pow_53() {
    // Ids cross to scripts as doubles only when exact.
    let reg = HandleRegistry::new(8);
    let id = reg.insert(TaskHandle::ready("v")).unwrap();
    let as_script_number = id.to_f64().unwrap();
    assert_eq!(HandleId::from_f64(as_script_number), Some(id));
    assert_eq!(
        reg.get(HandleId::from_f64(as_script_number).unwrap()),
        Ok("v")
    );

    let limit = 1u64 << 53;
    assert_eq!(HandleId::from_u64(limit).to_f64(), Some(limit as f64));
    assert_eq!(
        HandleId::from_f64(limit as f64),
        Some(HandleId::from_u64(limit))
    );
    assert_eq!(HandleId::from_u64(limit + 1).to_f64(), None);
    assert_eq!(HandleId::from_u64(u64::MAX).to_f64(), None);
    assert_eq!(HandleId::from_f64((limit + 2) as f64), None);
    assert_eq!(HandleId::from_f64(0.5), None);
    assert_eq!(HandleId::from_f64(-0.0), Some(HandleId::from_u64(0)));
    assert_eq!(HandleId::from_f64(f64::INFINITY), None);
    assert_eq!(HandleId::from_u64(7).as_u64(), 7);
}

#[test]
fn a_full_registry_purges_expired_entries_then_hands_the_handle_back() {
    let clock = ManualClock::new();
    let reg = HandleRegistry::builder()
        .capacity(2)
        .retain_collected_for(Duration::from_secs(10))
        .clock(clock.clone())
        .build();
    let a = reg.insert(TaskHandle::ready(1)).unwrap();
    let _b = reg.insert(TaskHandle::ready(2)).unwrap();
    let full = reg.insert(TaskHandle::ready(3)).unwrap_err();
    assert_eq!(full.capacity(), 2);
    assert_eq!(
        full.into_inner().join().unwrap(),
        3,
        "the same handle comes back"
    );

    assert_eq!(reg.get(a), Ok(1)); // read: expires 10 s from now
    clock.advance(Duration::from_secs(9));
    assert!(reg.insert(TaskHandle::ready(4)).is_err(), "not expired yet");
    clock.advance(Duration::from_secs(1));
    let c = reg
        .insert(TaskHandle::ready(5))
        .expect("the expired entry was purged to make room");
    assert_eq!(reg.get(a), Err(RegistryError::NotFound));
    assert_eq!(reg.get(c), Ok(5));
    assert_eq!(reg.len(), 2);
}

#[test]
fn not_found_and_not_ready() {
    let reg = HandleRegistry::new(8);
    let nowhere = HandleId::from_u64(12345);
    assert_eq!(reg.get(nowhere), Err(RegistryError::NotFound));
    assert_eq!(reg.wait(nowhere), Err(RegistryError::NotFound));
    assert_eq!(reg.is_ready(nowhere), Err(RegistryError::NotFound));
    assert_eq!(reg.state(nowhere), Err(RegistryError::NotFound));
    assert_eq!(reg.state_code(nowhere), Err(RegistryError::NotFound));
    assert_eq!(reg.cancel(nowhere), Err(RegistryError::NotFound));
    assert_eq!(reg.take(nowhere), Err(RegistryError::NotFound));
    assert!(!reg.cleanup(nowhere));
    assert!(reg.remove(nowhere).is_none());

    let (task, handle) = Deferred::new(|| 9);
    let id = reg.insert(handle).unwrap();
    assert_eq!(reg.get(id), Err(RegistryError::NotReady));
    assert_eq!(reg.take(id), Err(RegistryError::NotReady));
    assert_eq!(
        reg.wait_timeout(id, Duration::from_millis(5)),
        Err(RegistryError::NotReady)
    );
    assert_eq!(reg.is_ready(id), Ok(false));
    assert_eq!(reg.state(id), Ok(TaskState::Pending));
    assert_eq!(reg.state_code(id), Ok(0));
    task.run();
    assert_eq!(reg.is_ready(id), Ok(true));
    assert_eq!(reg.get(id), Ok(9));

    assert_eq!(RegistryError::NotFound.to_string(), "future not found");
    assert_eq!(RegistryError::NotReady.to_string(), "future not ready");
    // `TaskError::new` is a failure (not a panic).
    let failed = RegistryError::Failed(TaskError::new("boom"));
    assert_eq!(failed.to_string(), "future failed: task failed: boom");
    assert!(failed.source().is_some());
}

#[test]
fn state_codes_for_every_end_state() {
    let pool = ThreadPool::builder()
        .max_workers(2)
        .panic_handler(|_| {})
        .build()
        .unwrap();
    let reg: HandleRegistry<u32> = HandleRegistry::new(16);

    let completed = reg
        .insert(
            pool.post_task_with_result(TaskTraits::default(), || 1)
                .unwrap(),
        )
        .unwrap();
    let panicked = reg
        .insert(
            pool.post_task_with_result(TaskTraits::default(), || -> u32 { panic!("bad") })
                .unwrap(),
        )
        .unwrap();
    let (task, h) = Deferred::fallible(|| "x".parse::<u32>());
    let failed = reg.insert(h).unwrap();
    task.run();
    let cancelled = reg
        .insert(
            pool.post_delayed_task_with_result(
                TaskTraits::default(),
                Duration::from_secs(3600),
                || 4,
            )
            .unwrap(),
        )
        .unwrap();
    assert_eq!(reg.cancel(cancelled), Ok(true));
    let (task, h) = Deferred::new(|| 5u32);
    let not_run = reg.insert(h).unwrap();
    drop(task);

    let (h, started, release) = {
        let (started_tx, started_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let h = pool
            .post_task_with_result(TaskTraits::default(), move || {
                started_tx.send(()).unwrap();
                release_rx.recv_timeout(HANG).unwrap();
                6u32
            })
            .unwrap();
        (h, started_rx, release_tx)
    };
    let running = reg.insert(h).unwrap();
    started.recv_timeout(HANG).unwrap();

    for id in [completed, panicked] {
        let _ = must_return("wait", {
            let reg = reg.clone();
            move || reg.wait(id)
        });
    }
    assert_eq!(reg.state(completed), Ok(TaskState::Completed));
    assert_eq!(reg.state_code(completed), Ok(1));
    assert_eq!(reg.state(panicked), Ok(TaskState::Panicked));
    assert_eq!(reg.state_code(panicked), Ok(2));
    assert_eq!(reg.state(failed), Ok(TaskState::Failed));
    assert_eq!(reg.state_code(failed), Ok(2));
    assert!(reg
        .get(failed)
        .unwrap_err()
        .task_error()
        .unwrap()
        .downcast_ref::<std::num::ParseIntError>()
        .is_some());
    assert_eq!(reg.state(cancelled), Ok(TaskState::Cancelled));
    assert_eq!(reg.state_code(cancelled), Ok(3));
    assert_eq!(reg.state_code(not_run), Ok(3));
    assert!(reg
        .get(not_run)
        .unwrap_err()
        .task_error()
        .unwrap()
        .is_not_run());
    assert_eq!(reg.state(running), Ok(TaskState::Running));
    assert_eq!(reg.state_code(running), Ok(0));
    assert_eq!(
        reg.cancel(running),
        Ok(false),
        "a running task is not cancelled"
    );
    release.send(()).unwrap();
    assert_eq!(
        must_return("wait", {
            let reg = reg.clone();
            move || reg.wait(running)
        }),
        Ok(6)
    );
    assert_eq!(reg.state_code(running), Ok(1));
    pool.shutdown();
}

#[test]
fn cleanup_of_a_pending_entry_cancels_it_and_frees_its_closure() {
    // Cleanup of a pending entry cancels its work rather than losing track of it.
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let reg = HandleRegistry::new(8);
    let drops = Drops::default();
    let token = drops.token();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let h = pool
        .post_delayed_task_with_result(
            TaskTraits::default(),
            Duration::from_millis(20),
            move || {
                let _keep = &token;
                r.fetch_add(1, Ordering::SeqCst);
            },
        )
        .unwrap();
    let id = reg.insert(h).unwrap();
    assert!(reg.cleanup(id));
    assert_eq!(drops.count(), 1, "cancelled: the closure was freed at once");
    assert!(!reg.cleanup(id), "already removed");
    assert_eq!(reg.get(id), Err(RegistryError::NotFound));
    assert_eq!(reg.len(), 0);
    pool.shutdown();
    assert_eq!(ran.load(Ordering::SeqCst), 0, "it never ran");
}

#[test]
fn cleanup_of_a_running_entry_removes_it_and_drops_the_value_when_the_task_ends() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let reg: HandleRegistry<DropToken> = HandleRegistry::new(8);
    let drops = Drops::default();
    let token = drops.token();
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let h = pool
        .post_task_with_result(TaskTraits::default(), move || {
            started_tx.send(()).unwrap();
            release_rx.recv_timeout(HANG).unwrap();
            token
        })
        .unwrap();
    let id = reg.insert(h).unwrap();
    started_rx.recv_timeout(HANG).unwrap();
    assert!(reg.cleanup(id));
    assert_eq!(reg.is_ready(id), Err(RegistryError::NotFound));
    release_tx.send(()).unwrap();
    pool.shutdown(); // the running task finishes; nobody holds its value
    assert_eq!(drops.count(), 1);
}

#[test]
fn remove_hands_the_handle_back_without_cancelling_and_take_moves_the_value() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let reg = HandleRegistry::new(8);
    let h = pool
        .post_delayed_task_with_result(TaskTraits::default(), Duration::from_millis(1), || 7)
        .unwrap();
    let id = reg.insert(h).unwrap();
    let h = reg.remove(id).unwrap();
    assert_eq!(h.join().unwrap(), 7, "not cancelled: it ran");
    assert_eq!(reg.get(id), Err(RegistryError::NotFound));

    // Already observed: the registry hands back a finished handle with the outcome.
    let id = reg
        .insert(TaskHandle::failed(TaskError::new("no")))
        .unwrap();
    assert_eq!(reg.state_code(id), Ok(2));
    let h = reg.remove(id).unwrap();
    assert_eq!(h.state(), TaskState::Failed);
    assert_eq!(h.join().unwrap_err().to_string(), "task failed: no");

    // take: non-Clone values, moved out once.
    let vreg: HandleRegistry<Vec<u8>> = HandleRegistry::new(4);
    let id = vreg.insert(TaskHandle::ready(vec![1, 2])).unwrap();
    assert_eq!(vreg.take(id), Ok(vec![1, 2]));
    assert_eq!(vreg.take(id), Err(RegistryError::NotFound));
    assert!(vreg.is_empty());
    pool.shutdown();
}

#[test]
fn read_results_are_removed_after_the_retention_time_on_the_registry_clock() {
    let clock = ManualClock::new();
    let reg = HandleRegistry::builder()
        .capacity(100)
        .retain_collected_for(Duration::from_secs(60))
        .clock(clock.clone())
        .build();
    let read_by_get = reg.insert(TaskHandle::ready("a")).unwrap();
    let read_by_wait = reg.insert(TaskHandle::ready("b")).unwrap();
    let polled_only = reg.insert(TaskHandle::ready("c")).unwrap();
    let never_read = reg.insert(TaskHandle::ready("d")).unwrap();

    assert_eq!(reg.get(read_by_get), Ok("a"));
    clock.advance(Duration::from_secs(30));
    assert_eq!(reg.wait(read_by_wait), Ok("b"));
    assert_eq!(reg.is_ready(polled_only), Ok(true)); // not a read of the value
    assert_eq!(reg.state_code(polled_only), Ok(1));
    // Reading again does not extend the retention.
    clock.advance(Duration::from_secs(29));
    assert_eq!(reg.get(read_by_get), Ok("a"));
    assert_eq!(reg.len(), 4);

    clock.advance(Duration::from_secs(1)); // 60 s after the first read of "a"
    assert_eq!(reg.len(), 3);
    assert_eq!(reg.get(read_by_get), Err(RegistryError::NotFound));
    assert_eq!(reg.ids(), vec![read_by_wait, polled_only, never_read]);

    clock.advance(Duration::from_secs(30)); // 60 s after "b" was awaited
    assert_eq!(reg.purge_expired(), 1);
    assert_eq!(reg.ids(), vec![polled_only, never_read]);

    clock.advance(Duration::from_secs(3600 * 24));
    assert_eq!(reg.len(), 2, "entries never read stay until cleanup");
    assert!(reg.cleanup(polled_only));
    assert!(reg.cleanup(never_read));
    assert!(reg.is_empty());
}

#[test]
fn many_threads_waiting_on_one_id_all_get_the_value() {
    let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    let reg = HandleRegistry::new(8);
    let (h, started, release) = blocked_task(&pool, "shared result");
    let id = reg.insert(h).unwrap();
    started.recv_timeout(HANG).unwrap();
    let waiters = 8;
    let ready = Arc::new(Barrier::new(waiters + 1));
    let (tx, rx) = mpsc::channel();
    for _ in 0..waiters {
        let (reg, ready, tx) = (reg.clone(), ready.clone(), tx.clone());
        std::thread::spawn(move || {
            ready.wait();
            tx.send(reg.wait(id)).unwrap();
        });
    }
    ready.wait();
    release.send(()).unwrap();
    for _ in 0..waiters {
        let got = rx.recv_timeout(HANG).expect("a waiter hung");
        assert_eq!(got.as_deref(), Ok("shared result"));
    }
    assert_eq!(reg.get(id).as_deref(), Ok("shared result"));
    pool.shutdown();
}

#[test]
fn a_blocking_wait_holds_no_registry_lock() {
    let reg = HandleRegistry::new(8);
    let (task, handle) = Deferred::new(|| 1);
    let pending = reg.insert(handle).unwrap();
    let (tx, rx) = mpsc::channel();
    let r2 = reg.clone();
    std::thread::spawn(move || tx.send(r2.wait(pending)).unwrap());
    // While that thread waits, every other call goes through.
    must_return("registry calls during a wait", {
        let reg = reg.clone();
        move || {
            for i in 0..100 {
                let id = reg.insert(TaskHandle::ready(i)).unwrap();
                assert_eq!(reg.get(id), Ok(i));
                assert!(reg.cleanup(id));
            }
            assert_eq!(reg.is_ready(pending), Ok(false));
            assert_eq!(reg.len(), 1);
        }
    });
    task.run();
    assert_eq!(rx.recv_timeout(HANG).unwrap(), Ok(1));
}

#[test]
fn a_wait_ends_when_its_entry_is_cancelled_or_cleaned_up() {
    let reg: HandleRegistry<u8> = HandleRegistry::new(8);
    let (_task1, h1) = Deferred::new(|| 1u8);
    let (_task2, h2) = Deferred::new(|| 2u8);
    let a = reg.insert(h1).unwrap();
    let b = reg.insert(h2).unwrap();
    let (tx, rx) = mpsc::channel();
    for id in [a, b] {
        let (reg, tx) = (reg.clone(), tx.clone());
        std::thread::spawn(move || tx.send((id, reg.wait(id))).unwrap());
    }
    // Give the waiters a moment to block (not needed for correctness: either order works).
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(reg.cancel(a), Ok(true));
    assert!(reg.cleanup(b));
    let mut results: Vec<_> = (0..2).map(|_| rx.recv_timeout(HANG).unwrap()).collect();
    results.sort_by_key(|(id, _)| *id);
    assert!(results[0]
        .1
        .as_ref()
        .unwrap_err()
        .task_error()
        .unwrap()
        .is_cancelled());
    match &results[1].1 {
        Err(RegistryError::NotFound) => {}
        Err(RegistryError::Failed(e)) if e.is_cancelled() => {}
        other => panic!("unexpected outcome of a wait on a cleaned-up entry: {other:?}"),
    }
}

#[test]
fn cancel_racing_completion_from_many_threads_never_panics_nor_replaces_a_value() {
    // Cancel racing completion never panics and never replaces a value.
    let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    let reg = HandleRegistry::new(64);
    for round in 0..300u32 {
        let h = pool
            .post_task_with_result(TaskTraits::default(), move || round)
            .unwrap();
        let id = reg.insert(h).unwrap();
        let go = Arc::new(Barrier::new(4));
        let cancelled = Arc::new(Mutex::new(Vec::new()));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (reg, go, cancelled) = (reg.clone(), go.clone(), cancelled.clone());
                std::thread::spawn(move || {
                    go.wait();
                    if t % 2 == 0 {
                        cancelled.lock().unwrap().push(reg.cancel(id).unwrap());
                        let _ = reg.state_code(id).unwrap();
                        reg.wait(id)
                    } else {
                        let _ = reg.is_ready(id).unwrap();
                        reg.wait(id)
                    }
                })
            })
            .collect();
        let outcomes: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let any_cancel_won = cancelled.lock().unwrap().iter().any(|&c| c);
        let first = outcomes[0].clone();
        assert!(
            outcomes.iter().all(|o| *o == first),
            "every reader sees the same outcome"
        );
        match first {
            Ok(v) => {
                assert_eq!(v, round);
                assert!(!any_cancel_won, "a cancel that won cannot leave a value");
                assert_eq!(reg.state_code(id), Ok(1));
            }
            Err(RegistryError::Failed(e)) => {
                assert!(e.is_cancelled());
                assert!(any_cancel_won);
                assert_eq!(reg.state_code(id), Ok(3));
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
        assert!(reg.cleanup(id));
    }
    assert!(reg.is_empty());
    pool.shutdown();
}

#[test]
fn the_registry_is_send_sync_and_shared_by_clones() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<HandleRegistry<String>>();
    assert_send_sync::<HandleId>();
    assert_send_sync::<RegistryError>();
    let reg = HandleRegistry::new(4);
    let clone = reg.clone();
    let id = reg.insert(TaskHandle::ready(1)).unwrap();
    assert_eq!(clone.get(id), Ok(1));
    let shared = Arc::new(reg);
    assert_eq!(shared.len(), 1);
}
