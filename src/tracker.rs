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
//! | 2.. (`ITEM` units) | number of *items blocking shutdown* |
//!
//! Items are (a) `BlockShutdown` sources from registration until they drain: a sequence from
//! its idle → queued transition until it goes idle again, a one-off task from post until it has
//! run; and (b) `SkipOnShutdown` tasks while they run. `ContinueOnShutdown` tasks are never
//! items and delayed tasks are not items until they are forwarded.
//!
//! | transition | who | rule |
//! |---|---|---|
//! | `items += 1` (register) | poster, on idle → queued of a block source | refused if `COMPLETED` |
//! | `items += 1` (before run) | worker, before a skip task | refused (task skipped) if `STARTED` |
//! | `items -= 1` | worker, after a skip task or when a block source drains | if the result is `STARTED` with 0 items, CAS to `STARTED|COMPLETED`; the CAS winner completes shutdown |
//! | set `STARTED` | `shutdown()` | if there are 0 items, CAS to `COMPLETED` as above |
//!
//! Every change is a read-modify-write on the one word, so a racing post and shutdown are
//! ordered: either the poster's increment happens first (and shutdown waits for it) or the
//! poster sees `STARTED` and backs out. Exactly one party observes "started, zero items" and
//! wins the CAS to `COMPLETED`; it then runs the completion duties (drain queues, wake
//! everyone). The loom models in `loom_tests` cover post-vs-shutdown and run-vs-shutdown.

use std::time::{Duration, Instant};

use crate::error::PostRefusal;
use crate::sync::{AtomicU64, Condvar, Mutex, Ordering};
use crate::traits::ShutdownBehavior;

const STARTED: u64 = 1;
const COMPLETED: u64 = 2;
const ITEM: u64 = 4;

/// What a worker may do with the task it is about to run.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunPermit {
    /// Run it; nothing to report afterwards.
    Run,
    /// Run it, then call [`Tracker::after_counted_run`]: it is an item blocking shutdown.
    RunCounted,
    /// Do not run it (shutdown started): drop it instead.
    Skip,
}

/// Returned by operations that may complete shutdown.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Completion {
    /// Nothing to do.
    None,
    /// This caller completed shutdown and must run the completion duties.
    Completed,
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

    /// May a non-block source go idle → queued? (No once shutdown started.)
    #[inline]
    pub(crate) fn can_register_other(&self) -> Result<(), PostRefusal> {
        let s = self.state.load(Ordering::Acquire);
        if s & COMPLETED != 0 {
            Err(PostRefusal::ShutdownCompleted)
        } else if s & STARTED != 0 {
            Err(PostRefusal::ShutdownStarted)
        } else {
            Ok(())
        }
    }

    /// A block source drained (or a block one-off task finished).
    pub(crate) fn unregister_block(&self) -> Completion {
        self.remove_item()
    }

    /// Decides whether a task may run now.
    #[inline]
    pub(crate) fn before_run(&self, behavior: ShutdownBehavior, was_delayed: bool) -> RunPermit {
        match behavior {
            ShutdownBehavior::BlockShutdown if !was_delayed => RunPermit::Run,
            ShutdownBehavior::SkipOnShutdown => {
                let mut s = self.state.load(Ordering::Relaxed);
                loop {
                    if s & STARTED != 0 {
                        return RunPermit::Skip;
                    }
                    match self.state.compare_exchange_weak(
                        s,
                        s + ITEM,
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => return RunPermit::RunCounted,
                        Err(actual) => s = actual,
                    }
                }
            }
            // Continue tasks, and delayed block tasks (which behave as skip-but-uncounted: the
            // block source they belong to already counts while they run).
            _ => {
                if self.state.load(Ordering::Acquire) & STARTED != 0 {
                    RunPermit::Skip
                } else {
                    RunPermit::Run
                }
            }
        }
    }

    /// A `RunCounted` task finished.
    pub(crate) fn after_counted_run(&self) -> Completion {
        self.remove_item()
    }

    fn remove_item(&self) -> Completion {
        let prev = self.state.fetch_sub(ITEM, Ordering::AcqRel);
        debug_assert!(prev >= ITEM, "shutdown item count underflow");
        if prev - ITEM == STARTED {
            self.try_complete()
        } else {
            Completion::None
        }
    }

    fn try_complete(&self) -> Completion {
        match self.state.compare_exchange(
            STARTED,
            STARTED | COMPLETED,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => Completion::Completed,
            Err(_) => Completion::None,
        }
    }

    /// Sets `STARTED`. Returns `(first, completion)`: whether this call started shutdown, and
    /// whether it also completed it (no items).
    pub(crate) fn start_shutdown(&self) -> (bool, Completion) {
        let prev = self.state.fetch_or(STARTED, Ordering::AcqRel);
        if prev & STARTED != 0 {
            return (false, Completion::None);
        }
        if prev == 0 {
            (true, self.try_complete())
        } else {
            (true, Completion::None)
        }
    }

    pub(crate) fn shutdown_started(&self) -> bool {
        self.state.load(Ordering::Acquire) & STARTED != 0
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
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut done = self.done.lock();
        while !*done {
            match deadline {
                None => self.done_cv.wait(&mut done),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return false;
                    }
                    self.done_cv.wait_for(&mut done, d - now);
                }
            }
        }
        true
    }
}
