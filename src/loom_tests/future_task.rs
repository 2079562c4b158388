//! Loom models of the `post_future` engine's state word (`src/runner/future_task.rs`), driving the real
//! `FutureTask` (poll task, waker, cancel, abandon) through [`FakeRunner`], a runner that
//! records posted poll tasks for the model to run (and can refuse posts, as a shut-down pool
//! does). The futures are hand-written: they store their waker under a lock and complete once
//! a flag is set, the usual register-then-check protocol.
//!
//! | model | race | what must hold |
//! |---|---|---|
//! | `loom_future_wake_during_poll` | a wake from another thread vs the poll in progress (`RUNNING → NOTIFIED`, or `IDLE → SCHEDULED`, or before the first poll) | no lost wake-up: the future completes; every posted poll task polls once; at most one re-post |
//! | `loom_future_two_wakes_while_idle` | two wakes of an idle future from two threads | exactly one poll task posted, one poll |
//! | `loom_future_cancel_vs_wake_vs_poll` | `cancel()` vs a wake vs the poll tasks, from the first poll on | the future is dropped exactly once; the handle ends in exactly one state: `Cancelled` iff `cancel()` returned `true`, else the value |
//! | `loom_future_refused_wake_vs_cancel` | a wake whose re-post is refused (shutdown) vs `cancel()` whose drop task is refused, on an idle future | one of them takes the duty: the future is dropped once (by that thread), the handle resolves `Cancelled` iff `cancel()` returned `true`, else "not run" |

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;

use super::model;
use crate::base::error::{PostError, PostRefusal};
use crate::base::shim::Mutex;
use crate::handle::{TaskHandle, TaskState};
use crate::runner::future_task::spawn_future;
use crate::runner::PostTask;

type Posted = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Queue {
    tasks: Vec<Posted>,
    posted: usize,
}

/// A runner that records posts; the model runs them. `refuse` makes it refuse every post, as
/// a pool whose shutdown started.
#[derive(Clone)]
struct FakeRunner {
    q: std::sync::Arc<Mutex<Queue>>,
    refuse: Arc<AtomicBool>,
}

impl FakeRunner {
    fn new() -> Self {
        FakeRunner {
            q: std::sync::Arc::new(Mutex::new(Queue::default())),
            refuse: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Posts accepted so far.
    fn posted(&self) -> usize {
        self.q.lock().posted
    }

    /// Runs posted tasks (and what they post) until none is left; returns how many ran.
    fn drain(&self) -> usize {
        let mut n = 0;
        loop {
            let next = self.q.lock().tasks.pop();
            match next {
                Some(f) => {
                    f();
                    n += 1;
                }
                None => return n,
            }
        }
    }
}

impl PostTask for FakeRunner {
    fn post_task<F>(&self, f: F) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        if self.refuse.load(SeqCst) {
            return Err(PostError::new(PostRefusal::ShutdownStarted, f));
        }
        let mut q = self.q.lock();
        q.tasks.push(Box::new(f));
        q.posted += 1;
        Ok(())
    }

    fn post_delayed_task<F>(&self, _delay: Duration, f: F) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.post_task(f)
    }

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn max_concurrency(&self) -> usize {
        1
    }
}

/// The shared side of a [`Flagged`] future: the flag that completes it, its registered waker,
/// and counters.
#[derive(Clone)]
struct Probe {
    flag: Arc<AtomicBool>,
    waker: Arc<Mutex<Option<Waker>>>,
    polls: Arc<AtomicUsize>,
    drops: Arc<AtomicUsize>,
}

impl Probe {
    fn new() -> Self {
        Probe {
            flag: Arc::new(AtomicBool::new(false)),
            waker: Arc::new(Mutex::new(None)),
            polls: Arc::new(AtomicUsize::new(0)),
            drops: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Sets the flag, then wakes the registered waker (if the future registered one yet).
    fn fire(&self) {
        self.flag.store(true, SeqCst);
        let w = self.waker.lock().take();
        if let Some(w) = w {
            w.wake();
        }
    }

    fn future(&self) -> Flagged {
        Flagged(self.clone())
    }
}

/// Pending until its probe's flag is set (registers its waker first, then checks), then ready
/// with 7. Counts its polls and its drop.
struct Flagged(Probe);

impl Future for Flagged {
    type Output = u32;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        let p = &self.0;
        p.polls.fetch_add(1, SeqCst);
        *p.waker.lock() = Some(cx.waker().clone());
        if p.flag.load(SeqCst) {
            Poll::Ready(7)
        } else {
            Poll::Pending
        }
    }
}

impl Drop for Flagged {
    fn drop(&mut self) {
        self.0.drops.fetch_add(1, SeqCst);
        // A waker stored by the future must not keep the task alive after the end.
        drop(self.0.waker.lock().take());
    }
}

#[test]
fn loom_future_wake_during_poll() {
    model(|| {
        let runner = FakeRunner::new();
        let probe = Probe::new();
        let h = spawn_future(&runner, probe.future()).unwrap();
        let r2 = runner.clone();
        let worker = thread::spawn(move || r2.drain());
        let p2 = probe.clone();
        let waker = thread::spawn(move || p2.fire());
        waker.join().unwrap();
        worker.join().unwrap();
        runner.drain(); // a re-post made after the worker's last look
        assert!(h.is_finished(), "lost wake-up: the future never completed");
        assert_eq!(h.join().unwrap(), 7);
        let posted = runner.posted();
        assert_eq!(
            probe.polls.load(SeqCst),
            posted,
            "each poll task polls once"
        );
        assert!(
            posted <= 2,
            "at most one re-post for one wake ({posted} posts)"
        );
        assert_eq!(probe.drops.load(SeqCst), 1);
    });
}

#[test]
fn loom_future_two_wakes_while_idle() {
    model(|| {
        let runner = FakeRunner::new();
        let probe = Probe::new();
        let h = spawn_future(&runner, probe.future()).unwrap();
        assert_eq!(runner.drain(), 1); // first poll: pending, idle
        probe.flag.store(true, SeqCst);
        let w1 = probe
            .waker
            .lock()
            .take()
            .expect("the first poll registered");
        let w2 = w1.clone();
        let t1 = thread::spawn(move || w1.wake());
        let t2 = thread::spawn(move || w2.wake());
        t1.join().unwrap();
        t2.join().unwrap();
        assert_eq!(
            runner.posted(),
            2,
            "two wakes of an idle future post one poll"
        );
        assert_eq!(runner.drain(), 1);
        assert_eq!(probe.polls.load(SeqCst), 2);
        assert_eq!(h.join().unwrap(), 7);
    });
}

#[test]
fn loom_future_cancel_vs_wake_vs_poll() {
    model(|| {
        let runner = FakeRunner::new();
        let probe = Probe::new();
        let h = spawn_future(&runner, probe.future()).unwrap();
        let r2 = runner.clone();
        let worker = thread::spawn(move || r2.drain());
        let p2 = probe.clone();
        let waker = thread::spawn(move || p2.fire());
        let cancelled = h.cancel();
        waker.join().unwrap();
        worker.join().unwrap();
        runner.drain();
        assert_eq!(
            probe.drops.load(SeqCst),
            1,
            "the future is dropped exactly once"
        );
        assert!(h.is_finished());
        let state = h.state();
        let r = h.join();
        if cancelled {
            assert_eq!(state, TaskState::Cancelled);
            assert!(r.unwrap_err().is_cancelled());
        } else {
            assert_eq!(state, TaskState::Completed);
            assert_eq!(r.unwrap(), 7);
        }
    });
}

#[test]
fn loom_future_refused_wake_vs_cancel() {
    model(|| {
        let runner = FakeRunner::new();
        let probe = Probe::new();
        let h: TaskHandle<u32> = spawn_future(&runner, probe.future()).unwrap();
        assert_eq!(runner.drain(), 1); // pending, idle
        runner.refuse.store(true, SeqCst); // shutdown started
        let p2 = probe.clone();
        let waker = thread::spawn(move || p2.fire());
        let cancelled = h.cancel();
        waker.join().unwrap();
        assert_eq!(runner.posted(), 1, "nothing more was accepted");
        assert_eq!(
            probe.drops.load(SeqCst),
            1,
            "dropped once, by the refused thread"
        );
        assert_eq!(probe.polls.load(SeqCst), 1);
        assert!(h.is_finished(), "a refused re-post resolves the handle");
        let e = h.join().unwrap_err();
        if cancelled {
            assert!(e.is_cancelled());
        } else {
            assert!(e.is_not_run());
        }
    });
}
