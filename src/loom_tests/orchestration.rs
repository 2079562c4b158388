//! Loom models of the orchestration core's races, driving the real code: `TaskHandle::then`
//! (`src/runner/then.rs`) over a real cell, `Promise` (`src/handle/promise.rs`),
//! `CancellationToken` (`src/cancel.rs`), `Semaphore` (`src/sync/semaphore.rs`) and the retry engine
//! (`src/retry.rs`, through `retry_with`). Runners are a [`FakeRunner`] that records posts
//! (immediate and delayed alike) for the model to run.
//!
//! | model | race | what must hold |
//! |---|---|---|
//! | `loom_then_register_vs_finish` | `then` (checks `done` / stores its waker under the cell lock) vs the worker finishing the predecessor (`finish` takes the waker) | the continuation is posted exactly once, and sees the value |
//! | `loom_then_register_vs_abandon` | the same vs the predecessor dropped unrun | posted exactly once, sees "not run" |
//! | `loom_promise_cancel_vs_complete` | `handle.cancel()` vs `start()` + `complete()` | one terminal state; a produced value is kept; `cancel` wins iff `start` lost; a winning cancel cancels the token |
//! | `loom_promise_cancel_vs_drop` | `handle.cancel()` vs an unresolved promise dropped | cancelled xor not run; the token is cancelled iff the cancel won |
//! | `loom_token_cancel_vs_child` | `parent.cancel()` vs `parent.child()` | the child ends cancelled, with the parent's reason |
//! | `loom_token_cancel_vs_on_cancel` | two cancels (different reasons) vs `on_cancel` | one cancel wins; the callback runs exactly once, with the winner's reason |
//! | `loom_semaphore_drop_vs_acquire_then` | a permit drop vs `acquire_then` vs a third `try_acquire` | the permit is handed over or returned, never both: never two holders, the callback runs once, no permit lost |
//! | `loom_semaphore_two_drops_vs_handoff_chain` | two permits dropped at once while a queued callback gives its permit straight back (the `handing` loop) | every queued callback served once, no permit lost or duplicated |
//! | `loom_semaphore_blocking_acquire_vs_handoff_chain` | a blocked `acquire()` vs two concurrent drops and a hand-off chain that ends with a free permit | no lost wake-up (loom reports a deadlock otherwise), no permit lost |
//! | `loom_retry_cancel_vs_relaunch` | `handle.cancel()` vs the retry's next attempt being launched and run | the handle resolves; its attempt count is the attempts made; at most the one attempt already dispatched starts after the cancel |

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;

use std::time::{Duration, Instant};

use super::model;
use crate::base::error::PostError;
use crate::base::shim::Mutex;
use crate::cancel::{CancellationToken, Interrupted};
use crate::handle::{new_cell, Promise, TaskError, TaskHandle, TaskState};
use crate::retry::{retry_with, RetryPolicy};
use crate::runner::PostTask;
use crate::sync::semaphore::{Permit, Semaphore};

type Posted = Box<dyn FnOnce() + Send>;

/// A runner that records what is posted (delayed posts too, ignoring the delay); the model
/// runs the closures itself.
#[derive(Clone)]
pub(super) struct FakeRunner(std::sync::Arc<Mutex<Vec<Posted>>>);

impl FakeRunner {
    pub(super) fn new() -> Self {
        FakeRunner(std::sync::Arc::new(Mutex::new(Vec::new())))
    }

    fn take(&self) -> Vec<Posted> {
        std::mem::take(&mut *self.0.lock())
    }

    /// Takes the last closure posted, if any (to run it, or to drop it unrun).
    pub(super) fn take_one(&self) -> Option<Posted> {
        self.0.lock().pop()
    }

    /// Runs the last closure posted, if any; `false` when none was left.
    pub(super) fn run_one(&self) -> bool {
        let next = self.take_one();
        match next {
            Some(f) => {
                f();
                true
            }
            None => false,
        }
    }

    /// Runs posted closures (and what they post) until none is left; returns how many ran.
    pub(super) fn drain(&self) -> usize {
        let mut n = 0;
        while self.run_one() {
            n += 1;
        }
        n
    }
}

impl PostTask for FakeRunner {
    fn post_task<F>(&self, f: F) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.0.lock().push(Box::new(f));
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

// ---- then --------------------------------------------------------------------------------------

#[test]
fn loom_then_register_vs_finish() {
    model(|| {
        let runner = FakeRunner::new();
        let (job, cell) = new_cell(|| 7_u32);
        let pred = TaskHandle::from_cell(cell);
        let worker = thread::spawn(move || {
            let r = job.run();
            drop(job);
            r
        });
        let next = pred.then(&runner, |r| r.map(|v| v + 1));
        assert!(worker.join().unwrap().is_ok());
        let posts = runner.take();
        assert_eq!(posts.len(), 1, "the continuation is posted exactly once");
        for p in posts {
            p();
        }
        assert_eq!(next.join().unwrap().unwrap(), 8);
    });
}

#[test]
fn loom_then_register_vs_abandon() {
    model(|| {
        let runner = FakeRunner::new();
        let (job, cell) = new_cell(|| 7_u32);
        let pred = TaskHandle::from_cell(cell);
        let dropper = thread::spawn(move || drop(job));
        let next = pred.then(&runner, |r| r.map_err(|e| e.is_not_run()));
        dropper.join().unwrap();
        let posts = runner.take();
        assert_eq!(posts.len(), 1, "the continuation is posted exactly once");
        for p in posts {
            p();
        }
        assert_eq!(next.join().unwrap(), Err(true));
    });
}

// ---- Promise -----------------------------------------------------------------------------------

#[test]
fn loom_promise_cancel_vs_complete() {
    model(|| {
        let token = CancellationToken::new();
        let (p, h) = Promise::<u32>::new(Some(token.clone()));
        let worker = thread::spawn(move || {
            if !p.start() {
                assert!(p.is_cancelled());
                return (false, false); // dropped: cannot replace the cancel
            }
            let completed = p.complete(Ok(7), None);
            (true, completed)
        });
        let cancelled = h.cancel();
        let (started, completed) = worker.join().unwrap();
        assert_eq!(cancelled, !started, "exactly one CAS out of PENDING");
        assert_eq!(
            completed, started,
            "a started promise's value is never refused"
        );
        if cancelled {
            assert!(token.is_cancelled(), "a winning cancel cancels the token");
        }
        assert!(h.is_finished());
        let state = h.state();
        match h.join() {
            Ok(v) => assert_eq!((v, state), (7, TaskState::Completed)),
            Err(e) => {
                assert!(e.is_cancelled() && cancelled);
                assert_eq!(state, TaskState::Cancelled);
            }
        }
    });
}

#[test]
fn loom_promise_cancel_vs_drop() {
    model(|| {
        let token = CancellationToken::new();
        let (p, h) = Promise::<u32>::new(Some(token.clone()));
        let dropper = thread::spawn(move || drop(p));
        let cancelled = h.cancel();
        dropper.join().unwrap();
        // Never started: the token is cancelled only by a cancel that won.
        assert_eq!(token.is_cancelled(), cancelled);
        assert_eq!(h.state(), TaskState::Cancelled);
        let e = h.join().unwrap_err();
        assert_eq!(e.is_cancelled(), cancelled);
        assert_eq!(e.is_not_run(), !cancelled);
    });
}

// ---- CancellationToken -------------------------------------------------------------------------

#[test]
fn loom_token_cancel_vs_child() {
    model(|| {
        let parent = CancellationToken::new();
        let p2 = parent.clone();
        let canceller = thread::spawn(move || p2.cancel_with(Interrupted::DeadlineExceeded));
        let child = parent.child();
        assert!(canceller.join().unwrap());
        assert_eq!(child.reason(), Some(Interrupted::DeadlineExceeded));
    });
}

#[test]
fn loom_token_cancel_vs_on_cancel() {
    model(|| {
        let t = CancellationToken::new();
        let seen: Arc<Mutex<Vec<Interrupted>>> = Arc::new(Mutex::new(Vec::new()));
        let (t1, t2) = (t.clone(), t.clone());
        let a = thread::spawn(move || t1.cancel());
        let b = thread::spawn(move || t2.cancel_with(Interrupted::DeadlineExceeded));
        let s = seen.clone();
        t.on_cancel(move |why| s.lock().push(why));
        let (won_a, won_b) = (a.join().unwrap(), b.join().unwrap());
        assert!(won_a ^ won_b, "exactly one cancel wins");
        let why = if won_a {
            Interrupted::Cancelled
        } else {
            Interrupted::DeadlineExceeded
        };
        assert_eq!(t.reason(), Some(why));
        assert_eq!(*seen.lock(), vec![why], "the callback ran exactly once");
    });
}

// ---- Semaphore ---------------------------------------------------------------------------------

#[test]
fn loom_semaphore_drop_vs_acquire_then() {
    model(|| {
        let s = Semaphore::new(1);
        let held = s.try_acquire().unwrap();
        let holders = Arc::new(AtomicUsize::new(1));
        let two_holders = Arc::new(AtomicBool::new(false));
        let got: Arc<Mutex<Option<Permit>>> = Arc::new(Mutex::new(None));
        let served = Arc::new(AtomicUsize::new(0));

        let h1 = holders.clone();
        let dropper = thread::spawn(move || {
            h1.fetch_sub(1, SeqCst);
            drop(held);
        });
        let (s3, h3, two3) = (s.clone(), holders.clone(), two_holders.clone());
        let third = thread::spawn(move || {
            if let Some(p) = s3.try_acquire() {
                if h3.fetch_add(1, SeqCst) + 1 > 1 {
                    two3.store(true, SeqCst);
                }
                h3.fetch_sub(1, SeqCst);
                drop(p);
            }
        });
        let (h2, two2, g, sv) = (
            holders.clone(),
            two_holders.clone(),
            got.clone(),
            served.clone(),
        );
        s.acquire_then(move |p| {
            if h2.fetch_add(1, SeqCst) + 1 > 1 {
                two2.store(true, SeqCst);
            }
            sv.fetch_add(1, SeqCst);
            *g.lock() = Some(p);
        });
        dropper.join().unwrap();
        third.join().unwrap();
        assert!(!two_holders.load(SeqCst), "two holders of one permit");
        assert_eq!(served.load(SeqCst), 1, "the callback runs exactly once");
        assert_eq!(s.available(), 0, "handed over, not also returned");
        holders.fetch_sub(1, SeqCst);
        drop(got.lock().take());
        assert_eq!(s.available(), 1, "no permit lost");
    });
}

#[test]
fn loom_semaphore_two_drops_vs_handoff_chain() {
    model(|| {
        let s = Semaphore::new(2);
        let (p1, p2) = (s.try_acquire().unwrap(), s.try_acquire().unwrap());
        let first = Arc::new(AtomicUsize::new(0));
        let f = first.clone();
        // Gives its permit straight back (a refused post): the nested drop goes through the
        // hand-off loop of whichever thread is handing.
        s.acquire_then(move |p| {
            f.fetch_add(1, SeqCst);
            drop(p);
        });
        let got: Arc<Mutex<Vec<Permit>>> = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        s.acquire_then(move |p| g.lock().push(p));
        let a = thread::spawn(move || drop(p1));
        let b = thread::spawn(move || drop(p2));
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(first.load(SeqCst), 1);
        assert_eq!(got.lock().len(), 1, "the second callback was served once");
        assert_eq!(s.available(), 1);
        got.lock().clear();
        assert_eq!(s.available(), 2);
    });
}

#[test]
fn loom_semaphore_blocking_acquire_vs_handoff_chain() {
    model(|| {
        // Two permits held; two queued callbacks (the first gives its permit straight back);
        // a blocking acquirer; both permits dropped at once. A wake-up the acquirer consumed
        // while callbacks were still queued must be repeated when the chain ends with a free
        // permit.
        let s = Semaphore::new(2);
        let (p1, p2) = (s.try_acquire().unwrap(), s.try_acquire().unwrap());
        s.acquire_then(drop);
        let kept: Arc<Mutex<Option<Permit>>> = Arc::new(Mutex::new(None));
        let k = kept.clone();
        s.acquire_then(move |p| *k.lock() = Some(p));
        let s2 = s.clone();
        let blocked = thread::spawn(move || drop(s2.acquire()));
        let a = thread::spawn(move || drop(p1));
        drop(p2);
        a.join().unwrap();
        blocked.join().unwrap();
        assert!(kept.lock().is_some());
        assert_eq!(s.available(), 1);
        drop(kept.lock().take());
        assert_eq!(s.available(), 2);
    });
}

// ---- retry -------------------------------------------------------------------------------------

#[test]
fn loom_retry_cancel_vs_relaunch() {
    model(|| {
        let runner = FakeRunner::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let cancel_returned = Arc::new(AtomicBool::new(false));
        let late = Arc::new(AtomicUsize::new(0));
        let (c, cr, l) = (calls.clone(), cancel_returned.clone(), late.clone());
        let policy = RetryPolicy::attempts(3).base_delay(Duration::ZERO);
        let h = retry_with(
            &runner,
            policy,
            CancellationToken::new(),
            None,
            Box::new(move || -> Result<(), TaskError> {
                if cr.load(SeqCst) {
                    l.fetch_add(1, SeqCst);
                }
                c.fetch_add(1, SeqCst);
                Err(TaskError::from_error("transient"))
            }),
        );
        // Attempt 1 runs and fails: the relaunch (the "backoff") is posted.
        assert_eq!(runner.drain_one(), 1);
        assert_eq!(calls.load(SeqCst), 1);
        let r2 = runner.clone();
        let worker = thread::spawn(move || r2.drain());
        h.cancel();
        cancel_returned.store(true, SeqCst);
        worker.join().unwrap();
        runner.drain();
        assert!(h.is_finished(), "the handle always resolves");
        let made = calls.load(SeqCst);
        assert!(
            late.load(SeqCst) <= 1,
            "attempts kept starting after the cancel"
        );
        let e = h.join().unwrap_err();
        assert_eq!(e.attempts() as usize, made, "{e:?}");
        assert!(e.is_cancelled() || e.is_failed(), "{e:?}");
    });
}

impl FakeRunner {
    /// Runs exactly one posted closure (not what it posts); returns how many ran (0 or 1).
    fn drain_one(&self) -> usize {
        let next = self.0.lock().pop();
        next.map(|f| f()).map_or(0, |()| 1)
    }
}
