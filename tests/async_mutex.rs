//! `AsyncMutex`: FIFO hand-off (an unlock hands the lock to the oldest waiter, which wakes up
//! owning it), no barging by a later locker, cancelled lockers
//! never keep or lose the lock, and mutual exclusion holds across awaits for many `post_future`
//! tasks and blocking threads at once.
//!
//! The hand-off tests poll lock futures by hand with a recording waker, so every interleaving
//! they check is exact. Nothing asserts on timing.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use support::{wait_until, TIMEOUT};
use taskrunner::sync::{AsyncMutex, AsyncMutexGuard};
use taskrunner::PostTask;
use taskrunner::{TaskError, TaskHandle, TaskTraits, ThreadPool};

/// A waker that records that it was woken.
#[derive(Default)]
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Flag {
    fn take(&self) -> bool {
        self.0.swap(false, Ordering::SeqCst)
    }
}

/// A lock future polled by hand, with its own recording waker.
struct Locker<'a, T> {
    fut: Pin<Box<dyn Future<Output = AsyncMutexGuard<'a, T>> + 'a>>,
    flag: Arc<Flag>,
}

impl<'a, T> Locker<'a, T> {
    fn new(m: &'a AsyncMutex<T>) -> Self {
        Locker {
            fut: Box::pin(m.lock()),
            flag: Arc::new(Flag::default()),
        }
    }

    fn poll(&mut self) -> Option<AsyncMutexGuard<'a, T>> {
        let waker = Waker::from(self.flag.clone());
        match self.fut.as_mut().poll(&mut Context::from_waker(&waker)) {
            Poll::Ready(g) => Some(g),
            Poll::Pending => None,
        }
    }

    fn woken(&self) -> bool {
        self.flag.take()
    }
}

fn pool(workers: usize) -> ThreadPool {
    ThreadPool::builder().max_workers(workers).build().unwrap()
}

#[track_caller]
fn join<T: Send + 'static>(mut h: TaskHandle<T>) -> Result<T, TaskError> {
    h.join_timeout(TIMEOUT)
        .expect("the handle did not resolve within the timeout")
}

/// An unlock hands the lock to the waiter: a third locker arriving after the hand-off must not
/// get in beside the woken one.
#[test]
fn a_third_locker_after_a_hand_off_does_not_get_in() {
    let m = AsyncMutex::new(0);
    let t1 = m.try_lock().expect("T1 takes the free lock");
    let mut t2 = Locker::new(&m);
    assert!(t2.poll().is_none(), "T2 waits while T1 holds the lock");
    assert_eq!(m.waiting(), 1);

    drop(t1); // hand-off: T2 owns the lock now, before it even runs
    assert!(t2.woken());
    assert!(m.is_locked());
    assert_eq!(m.waiting(), 0);

    // T3 arrives after the hand-off, before T2 has run.
    assert!(m.try_lock().is_none(), "T3 got in while T2 owns the lock");
    let mut t3 = Locker::new(&m);
    assert!(t3.poll().is_none(), "T3 got in while T2 owns the lock");

    let mut g2 = t2.poll().expect("T2 was handed the lock");
    *g2 += 1;
    assert!(t3.poll().is_none(), "T3 got in while T2 holds the guard");
    assert!(!t3.woken());

    drop(g2); // hand-off to T3
    assert!(t3.woken());
    let g3 = t3.poll().expect("T3 is next");
    assert_eq!(*g3, 1);
    assert!(m.try_lock().is_none());
    drop(g3);
    assert!(!m.is_locked());
    assert_eq!(*m.try_lock().unwrap(), 1);
}

#[test]
fn a_third_locker_after_a_hand_off_does_not_get_in_with_real_tasks_and_threads() {
    // The same scenario on a pool: T2 is a post_future task, T3 a thread.
    let pool = pool(2);
    let m = Arc::new(AsyncMutex::new(()));
    let inside = Arc::new(AtomicUsize::new(0));
    let t1 = m.try_lock().unwrap();
    let (m2, in2) = (m.clone(), inside.clone());
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let release_rx = Arc::new(Mutex::new(release_rx));
    let rx = release_rx.clone();
    let io = pool.create_task_runner(TaskTraits::new().may_block(true));
    let t2 = pool
        .post_future(TaskTraits::default(), async move {
            let _g = m2.lock().await;
            assert_eq!(in2.fetch_add(1, Ordering::SeqCst), 0);
            // Hold the lock across an await until the test says so.
            let wait = io
                .post_task_with_result(move || {
                    let _ = rx.lock().unwrap().recv_timeout(TIMEOUT);
                })
                .unwrap();
            wait.await.unwrap();
            in2.fetch_sub(1, Ordering::SeqCst);
        })
        .unwrap();
    wait_until("T2 waits for the lock", || m.waiting() == 1);
    drop(t1);
    wait_until("T2 is inside", || inside.load(Ordering::SeqCst) == 1);
    let (m3, in3) = (m.clone(), inside.clone());
    let t3 = std::thread::spawn(move || {
        assert!(m3.try_lock().is_none(), "T3 got in while T2 holds the lock");
        let _g = m3.lock_blocking();
        assert_eq!(
            in3.fetch_add(1, Ordering::SeqCst),
            0,
            "T2 and T3 both inside"
        );
        in3.fetch_sub(1, Ordering::SeqCst);
    });
    wait_until("T3 waits for the lock", || m.waiting() == 1);
    release_tx.send(()).unwrap();
    join(t2).unwrap();
    t3.join().unwrap();
    assert!(!m.is_locked());
}

#[test]
fn waiters_are_served_in_arrival_order() {
    let m = AsyncMutex::new(Vec::new());
    let held = m.try_lock().unwrap();
    let mut lockers: Vec<_> = (0..6).map(|_| Locker::new(&m)).collect();
    for l in &mut lockers {
        assert!(l.poll().is_none());
    }
    assert_eq!(m.waiting(), 6);
    drop(held);
    // Each unlock wakes exactly the next waiter in line, already owning the lock.
    for i in 0..6 {
        for (j, l) in lockers.iter().enumerate() {
            assert_eq!(l.woken(), j == i, "after {i} hand-offs, locker {j}");
        }
        for (j, l) in lockers.iter_mut().enumerate().skip(i + 1) {
            assert!(l.poll().is_none(), "locker {j} jumped the queue");
        }
        let mut g = lockers[i].poll().expect("the woken locker owns the lock");
        g.push(i);
    }
    assert_eq!(*m.try_lock().unwrap(), vec![0, 1, 2, 3, 4, 5]);
}

#[test]
fn blocking_waiters_are_served_in_arrival_order() {
    let m = Arc::new(AsyncMutex::new(Vec::new()));
    let held = m.try_lock().unwrap();
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let m2 = m.clone();
            let t = std::thread::spawn(move || m2.lock_blocking().push(i));
            wait_until("the thread queued", || m.waiting() == i + 1);
            t
        })
        .collect();
    drop(held);
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(*m.try_lock().unwrap(), vec![0, 1, 2, 3]);
}

#[test]
fn a_dropped_waiter_leaves_the_queue() {
    let m = AsyncMutex::new(0);
    let held = m.try_lock().unwrap();
    let (mut a, mut b, mut c) = (Locker::new(&m), Locker::new(&m), Locker::new(&m));
    assert!(a.poll().is_none() && b.poll().is_none() && c.poll().is_none());
    drop(b);
    assert_eq!(m.waiting(), 2);
    drop(held);
    assert!(a.woken());
    drop(a.poll().unwrap());
    assert!(c.woken(), "the hand-off skipped the dropped waiter");
    drop(c.poll().unwrap());
    assert!(!m.is_locked());
}

#[test]
fn a_waiter_dropped_after_being_handed_the_lock_passes_it_on() {
    let m = AsyncMutex::new(0);
    let held = m.try_lock().unwrap();
    let (mut a, mut b) = (Locker::new(&m), Locker::new(&m));
    assert!(a.poll().is_none() && b.poll().is_none());
    drop(held); // handed to `a`
    assert!(a.woken());
    assert!(m.is_locked());
    drop(a); // cancelled before it picked the lock up
    assert!(b.woken(), "the lock was lost with the dropped waiter");
    let g = b.poll().unwrap();
    assert!(m.try_lock().is_none());
    drop(g);

    // Nobody left to pass it to: the lock becomes free.
    let held = m.try_lock().unwrap();
    let mut a = Locker::new(&m);
    assert!(a.poll().is_none());
    drop(held);
    drop(a);
    assert!(!m.is_locked());
    assert!(m.try_lock().is_some());
}

#[test]
fn an_unpolled_lock_future_takes_no_place_in_the_queue() {
    let m = AsyncMutex::new(());
    let held = m.try_lock().unwrap();
    let idle = m.lock(); // never polled
    assert_eq!(m.waiting(), 0);
    drop(held);
    drop(idle);
    assert!(m.try_lock().is_some());
}

#[test]
fn mutual_exclusion_holds_across_awaits_for_many_tasks() {
    const TASKS: usize = 200;
    const ROUNDS: usize = 5;
    let pool = pool(4);
    let io = pool.create_task_runner(TaskTraits::default());
    let m = Arc::new(AsyncMutex::new(0usize));
    let inside = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let seqs: Vec<_> = (0..8)
        .map(|_| pool.create_sequenced_task_runner(TaskTraits::default()))
        .collect();
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let (m, inside, peak, io) = (m.clone(), inside.clone(), peak.clone(), io.clone());
            let fut = async move {
                for _ in 0..ROUNDS {
                    let mut g = m.lock().await;
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    let before = *g;
                    // A real await while holding the lock: another task's result.
                    let step = io.post_task_with_result(|| 1usize).unwrap();
                    *g = before + step.await.unwrap();
                    inside.fetch_sub(1, Ordering::SeqCst);
                }
            };
            // Half on sequences, half as parallel futures.
            if i % 2 == 0 {
                seqs[i % seqs.len()].post_future(fut).unwrap()
            } else {
                pool.post_future(TaskTraits::default(), fut).unwrap()
            }
        })
        .collect();
    for t in tasks {
        join(t).unwrap();
    }
    assert_eq!(
        peak.load(Ordering::SeqCst),
        1,
        "two lockers were inside at once"
    );
    assert_eq!(*m.try_lock().unwrap(), TASKS * ROUNDS, "an update was lost");
}

#[test]
fn blocking_and_async_lockers_exclude_each_other() {
    let pool = pool(2);
    let m = Arc::new(AsyncMutex::new(0usize));
    let inside = Arc::new(AtomicUsize::new(0));
    let check = |inside: &AtomicUsize| {
        assert_eq!(
            inside.fetch_add(1, Ordering::SeqCst),
            0,
            "two lockers inside"
        );
    };
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (m, inside) = (m.clone(), inside.clone());
            std::thread::spawn(move || {
                for _ in 0..200 {
                    let mut g = m.lock_blocking();
                    check(&inside);
                    *g += 1;
                    std::thread::yield_now();
                    inside.fetch_sub(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (m, inside) = (m.clone(), inside.clone());
            let h = pool
                .post_task_with_result(TaskTraits::default(), || ())
                .unwrap();
            pool.post_future(TaskTraits::default(), async move {
                let mut g = m.lock().await;
                check(&inside);
                h.await.unwrap();
                *g += 1;
                inside.fetch_sub(1, Ordering::SeqCst);
            })
            .unwrap()
        })
        .collect();
    // A blocking task (may-block) locks too.
    let (m2, in2) = (m.clone(), inside.clone());
    let blocking_task = pool
        .post_task_with_result(TaskTraits::new().may_block(true), move || {
            for _ in 0..50 {
                let mut g = m2.lock_blocking();
                check(&in2);
                *g += 1;
                in2.fetch_sub(1, Ordering::SeqCst);
            }
        })
        .unwrap();
    for t in threads {
        t.join().unwrap();
    }
    for t in tasks {
        join(t).unwrap();
    }
    join(blocking_task).unwrap();
    assert_eq!(*m.try_lock().unwrap(), 4 * 200 + 50 + 50);
}

#[test]
fn a_panic_while_holding_the_lock_releases_it() {
    let pool = pool(2);
    let m = Arc::new(AsyncMutex::new(1));
    let m2 = m.clone();
    let h = pool
        .post_future(TaskTraits::default(), async move {
            let mut g = m2.lock().await;
            *g = 2;
            panic!("bug while holding the lock");
        })
        .unwrap();
    assert!(join(h).unwrap_err().is_panic());
    let m3 = m.clone();
    let after = pool
        .post_future(TaskTraits::default(), async move { *m3.lock().await })
        .unwrap();
    assert_eq!(
        join(after).unwrap(),
        2,
        "no poisoning: the write before the panic stays"
    );
}

#[test]
fn a_cancelled_task_waiting_for_the_lock_does_not_keep_it() {
    let pool = pool(2);
    let m = Arc::new(AsyncMutex::new(0));
    let held = m.try_lock().unwrap();
    let m2 = m.clone();
    let waiter = pool
        .post_future(TaskTraits::default(), async move {
            *m2.lock().await += 1;
        })
        .unwrap();
    wait_until("the task waits for the lock", || m.waiting() == 1);
    drop(held); // handed to the task...
    waiter.cancel(); // ...which may be cancelled before or after it runs
    let _ = join(waiter);
    // Either it ran and released the lock, or its dropped future passed the lock on.
    let mut g = None;
    wait_until("the lock is free again", || {
        g = m.try_lock();
        g.is_some()
    });
    assert!(*g.unwrap() <= 1);
}

#[test]
fn guards_and_lock_futures_are_send_for_post_future() {
    fn assert_send<T: Send>(_: &T) {}
    let m = Arc::new(AsyncMutex::new(String::new()));
    let fut = async move {
        let mut g = m.lock().await;
        std::future::ready(()).await; // held across an await
        g.push('x');
    };
    assert_send(&fut);
    let pool = pool(1);
    join(pool.post_future(TaskTraits::default(), fut).unwrap()).unwrap();
}

#[test]
fn into_inner_default_and_debug() {
    let m: AsyncMutex<Vec<u8>> = AsyncMutex::default();
    m.try_lock().unwrap().push(3);
    let held = m.try_lock().unwrap();
    assert_eq!(
        format!("{m:?}"),
        "AsyncMutex { locked: true, waiting: 0, .. }"
    );
    assert_eq!(format!("{held:?}"), "AsyncMutexGuard([3])");
    drop(held);
    assert_eq!(m.into_inner(), vec![3]);
    assert_eq!(AsyncMutex::from(5).into_inner(), 5);
}
