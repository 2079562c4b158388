//! `Tracker`: post/run admission and shutdown accounting (Chromium's TaskTracker).
//!
//! # The state word
//!
//! One `AtomicU64`:
//!
//! | bits | meaning |
//! |---|---|
//! | 0 (`STARTED`) | shutdown has started |
//! | 1 (`COMPLETED`) | shutdown has completed |
//! | 2.. (`ITEM` units) | number of `BlockShutdown` tasks registered and not yet run (or dropped) |
//!
//! Every `BlockShutdown` task that may still run holds one item: an immediate one from its
//! admission, a delayed one from the moment it ripens and is forwarded (delayed tasks never
//! block shutdown before that), until it has run, or was dropped unrun (a poisoned sequence's
//! queue). Registration is refused once `COMPLETED` is set, so a block post either counts (and
//! shutdown waits for it) or is refused.
//!
//! # Running skip-on-shutdown tasks
//!
//! Chromium also counts running `SkipOnShutdown` tasks in this word; that costs two contended
//! read-modify-writes per task on one shared cache line. Here each worker records its running
//! task in its own slot instead ([`WorkerShared`](crate::engine::worker::WorkerShared)): it records the
//! task, then checks `STARTED` ([`Tracker::may_run`]); shutdown sets `STARTED` first and then
//! scans the slots. Both sides are `SeqCst` store-then-load (a Dekker handshake), so either the
//! worker saw `STARTED` (and skips the task) or the scan sees the task (and waits for it).
//!
//! # Completion
//!
//! Shutdown completes when `STARTED` is set, there are 0 items and no slot holds a running
//! skip task. Every event that can make this true (start, last block unregistration, a skip task
//! ending after start) runs the completion check, serialised by the pool's completion lock; the
//! check ends with a CAS from exactly `STARTED` (0 items) to `STARTED | COMPLETED`, so a block
//! registration that slips in makes it fail, and exactly one check wins.
//!
//! | transition | who | rule |
//! |---|---|---|
//! | `items += 1` | poster (immediate block task), or the delay manager's forward (ripe one) | refused if `COMPLETED` |
//! | `items -= 1` | the worker that ran or skipped the task, or whoever dropped it unrun | if the result is `STARTED` with 0 items, run the completion check |
//! | set `STARTED` | `shutdown()` | then run the completion check |
//! | set `COMPLETED` | the completion check's CAS winner | then the completion duties |

use std::time::{Duration, Instant};

use crate::base::deadline::Deadline;
use crate::base::error::PostRefusal;
use crate::base::shim::{AtomicU64, Condvar, Mutex, Ordering};
use crate::base::traits::ShutdownBehavior;

const STARTED: u64 = 1;
const COMPLETED: u64 = 2;
const ITEM: u64 = 4;

/// Returned by operations after which shutdown may have become completable.
#[must_use = "a Check result obliges the caller to run the completion check"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Completion {
    /// Nothing to do.
    None,
    /// Shutdown has started and the last block item is gone: run the completion check.
    Check,
}

#[derive(Debug)]
pub(crate) struct Tracker {
    state: AtomicU64,
    done: Mutex<bool>,
    done_cv: Condvar,
}

impl Tracker {
    pub(crate) fn new() -> Self {
        Tracker {
            state: AtomicU64::new(0),
            done: Mutex::new(false),
            done_cv: Condvar::new(),
        }
    }

    /// Admission of a post (before the closure is boxed, so a refusal can hand it back).
    #[inline]
    pub(crate) fn will_post(
        &self,
        behavior: ShutdownBehavior,
        delayed: bool,
    ) -> Result<(), PostRefusal> {
        let s = self.state.load(Ordering::Acquire);
        if s & (STARTED | COMPLETED) == 0 {
            return Ok(());
        }
        self.will_post_slow(s, behavior, delayed)
    }

    #[cold]
    fn will_post_slow(
        &self,
        s: u64,
        behavior: ShutdownBehavior,
        delayed: bool,
    ) -> Result<(), PostRefusal> {
        if s & COMPLETED != 0 {
            Err(PostRefusal::ShutdownCompleted)
        } else if behavior != ShutdownBehavior::BlockShutdown || delayed {
            Err(PostRefusal::ShutdownStarted)
        } else {
            Ok(())
        }
    }

    /// Registers a `BlockShutdown` source (sequence going idle → queued, or a one-off task).
    pub(crate) fn register_block(&self) -> Result<(), PostRefusal> {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s & COMPLETED != 0 {
                return Err(PostRefusal::ShutdownCompleted);
            }
            match self
                .state
                .compare_exchange_weak(s, s + ITEM, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(actual) => s = actual,
            }
        }
    }

    /// A block source drained (or a block one-off task finished).
    pub(crate) fn unregister_block(&self) -> Completion {
        let prev = self.state.fetch_sub(ITEM, Ordering::AcqRel);
        debug_assert!(prev >= ITEM, "shutdown item count underflow");
        if prev - ITEM == STARTED {
            Completion::Check
        } else {
            Completion::None
        }
    }

    /// May a task with this behaviour start now? Workers call it right after recording the
    /// task in their running slot (see the module doc). Immediate block tasks always run; everything else (skip,
    /// continue, and delayed tasks of any behaviour) only before shutdown starts.
    #[inline]
    pub(crate) fn may_run(&self, behavior: ShutdownBehavior, was_delayed: bool) -> bool {
        // `SeqCst`: the worker's side of the running-slot handshake (worker/thread.rs).
        (behavior == ShutdownBehavior::BlockShutdown && !was_delayed)
            || self.state.load(Ordering::SeqCst) & STARTED == 0
    }

    /// The completion check's final step: `STARTED` with 0 items → `COMPLETED`. `true` for the
    /// one caller that wins.
    pub(crate) fn try_complete(&self) -> bool {
        self.state
            .compare_exchange(
                STARTED,
                STARTED | COMPLETED,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Sets `STARTED`; `true` for the call that started shutdown.
    pub(crate) fn start_shutdown(&self) -> bool {
        // `SeqCst`: shutdown's side of the running-slot handshake (worker/thread.rs); the
        // fence states it for loom, which treats `SeqCst` accesses as `AcqRel`.
        let first = self.state.fetch_or(STARTED, Ordering::SeqCst) & STARTED == 0;
        #[cfg(loom)]
        crate::base::shim::fence(Ordering::SeqCst);
        first
    }

    pub(crate) fn shutdown_started(&self) -> bool {
        // `SeqCst`: read after a running slot was cleared (see `WorkerShared::end`).
        self.state.load(Ordering::SeqCst) & STARTED != 0
    }

    pub(crate) fn shutdown_completed(&self) -> bool {
        self.state.load(Ordering::Acquire) & COMPLETED != 0
    }

    /// Items still blocking shutdown (a snapshot).
    pub(crate) fn pending_items(&self) -> usize {
        (self.state.load(Ordering::Acquire) / ITEM) as usize
    }

    /// Wakes every thread waiting in [`wait_completed`](Self::wait_completed). Called by the
    /// completer after the completion duties.
    pub(crate) fn signal_completed(&self) {
        let mut done = self.done.lock();
        *done = true;
        drop(done);
        self.done_cv.notify_all();
    }

    /// Waits (in real time) until the completion duties have run; `false` on timeout.
    pub(crate) fn wait_completed(&self, timeout: Option<Duration>) -> bool {
        // A timeout too large for `Instant` waits forever.
        let deadline = timeout.map_or(Deadline::NEVER, Deadline::real_after);
        let mut done = self.done.lock();
        while !*done {
            match deadline.remaining(Instant::now()) {
                None => self.done_cv.wait(&mut done),
                Some(left) if left.is_zero() => return false,
                Some(left) => {
                    self.done_cv.wait_for(&mut done, left);
                }
            }
        }
        true
    }
}

#[cfg(feature = "test-util")]
/// Counts the tasks posted to a test environment's pool and not yet run, so that
/// `TestEnvironment::run_until_idle` knows when the pool is quiet. Only test environments
/// pay for the counting.
#[derive(Debug)]
pub(crate) struct TestHooks {
    in_flight: std::sync::atomic::AtomicUsize,
    lock: crate::base::shim::Mutex<()>,
    cv: crate::base::shim::Condvar,
}

#[cfg(feature = "test-util")]
impl TestHooks {
    pub(crate) fn new() -> Self {
        TestHooks {
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            lock: crate::base::shim::Mutex::new(()),
            cv: crate::base::shim::Condvar::new(),
        }
    }

    /// A task entered the pool's queues.
    #[inline]
    pub(crate) fn posted(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
    }

    /// A task ran (or was skipped or dropped).
    #[inline]
    pub(crate) fn ran(&self) {
        if self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            // Taking the lock orders this wake-up after a waiter's check.
            drop(self.lock.lock());
            self.cv.notify_all();
        }
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Blocks until every counted task has run.
    pub(crate) fn wait_quiet(&self) {
        let mut g = self.lock.lock();
        while self.in_flight() != 0 {
            self.cv.wait(&mut g);
        }
    }
}
