//! `Gate`: fences (nothing starts, or no best-effort task starts) and a pool built not
//! started. Chromium's `CanRunPolicy`.
//!
//! # State
//!
//! `state` counts the fences up: bits 0-31 full fences (a pool not started yet counts as one),
//! bits 32-63 best-effort fences; `open` (under the lock) says shutdown or the pool's wind-down
//! opened the gate for good (`state` is then 0 and stays 0: fences raised or lowered later
//! change nothing). `held` keeps the entries workers took while their priority was fenced.
//! `state` changes only under the lock.
//!
//! | who | step | rule |
//! |---|---|---|
//! | a worker about to run an entry | `state` load (one load when no fence is up; a second for an entry no fence covers) | if fenced: under the lock, re-check; if still fenced, push to `held` and look for other work |
//! | a worker about to run the next task of a sequence it runs, or a dedicated thread | same check | if fenced: a pool worker asks for a compensating worker first (outside the lock, as a blocking scope does), then waits on `lifted` under the lock while fenced |
//! | `Fence` drop, `start`, shutdown, wind-down | under the lock: `state -= ..` (or `open = true`) | takes the held entries whose priority may now run, notifies `lifted`; the caller pushes them to the ready queues |
//!
//! A worker that read `state` as 0 just as a fence went up may still start its task (the fence
//! is not a barrier for tasks already taken, as in Chromium). An entry is never lost between
//! the two sides: a worker holds it only after re-checking under the lock, and a lifter empties
//! `held` under the same lock after changing `state`. Model-checked in
//! `src/loom_tests/gate.rs`.

use crate::base::shim::{AtomicBool, AtomicU64, Condvar, Mutex, Ordering};
use crate::base::traits::TaskPriority;
use crate::engine::scheduler::Work;

const FULL: u64 = 1;
const BEST_EFFORT: u64 = 1 << 32;
const FULL_MASK: u64 = BEST_EFFORT - 1;

#[derive(Default)]
struct Held {
    works: Vec<Work>,
    open: bool,
}

pub(crate) struct Gate {
    state: AtomicU64,
    held: Mutex<Held>,
    lifted: Condvar,
    /// Built not started, and `start` not called yet (its full fence is up).
    not_started: AtomicBool,
}

/// Which fence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FenceKind {
    /// Nothing starts.
    Full,
    /// No best-effort task starts.
    BestEffort,
}

impl FenceKind {
    fn unit(self) -> u64 {
        match self {
            FenceKind::Full => FULL,
            FenceKind::BestEffort => BEST_EFFORT,
        }
    }
}

fn blocks(state: u64, p: TaskPriority) -> bool {
    state & FULL_MASK != 0 || (p == TaskPriority::BestEffort && state >= BEST_EFFORT)
}

impl Gate {
    /// `started == false`: the pool runs nothing until [`start`](Self::start).
    pub(crate) fn new(started: bool) -> Self {
        Gate {
            state: AtomicU64::new(if started { 0 } else { FULL }),
            held: Mutex::new(Held::default()),
            lifted: Condvar::new(),
            not_started: AtomicBool::new(!started),
        }
    }

    /// Starts a pool built not started (lowers its fence); `None` if it was started already.
    pub(crate) fn start(&self) -> Option<Vec<Work>> {
        self.not_started
            .swap(false, Ordering::AcqRel)
            .then(|| self.lower(FenceKind::Full))
    }

    pub(crate) fn is_started(&self) -> bool {
        !self.not_started.load(Ordering::Acquire)
    }

    /// `true` if some fence is up (one load: the common path).
    #[inline]
    pub(crate) fn is_up(&self) -> bool {
        self.state.load(Ordering::Acquire) != 0
    }

    /// A worker took `work` while a fence was up: keeps it if its priority is fenced (`None`),
    /// or gives it back to run. An entry the fences up do not cover (a foreground one under a
    /// best-effort fence) goes back without the lock.
    #[cold]
    #[inline(never)]
    pub(crate) fn hold(&self, work: Work) -> Option<Work> {
        let p = work.priority();
        if !blocks(self.state.load(Ordering::Acquire), p) {
            return Some(work);
        }
        let mut h = self.held.lock();
        if !blocks(self.state.load(Ordering::Acquire), p) {
            return Some(work);
        }
        h.works.push(work);
        None
    }

    /// Waits while a task of priority `p` may not start. `on_wait` runs once, without the
    /// lock, before the first wait (a pool worker asks for a compensating worker); what it
    /// returns comes back for the caller to undo after.
    #[cold]
    #[inline(never)]
    pub(crate) fn wait_open<U>(&self, p: TaskPriority, on_wait: impl FnOnce() -> U) -> Option<U> {
        if !blocks(self.state.load(Ordering::Acquire), p) {
            return None;
        }
        let undo = on_wait();
        let mut h = self.held.lock();
        while blocks(self.state.load(Ordering::Acquire), p) {
            self.lifted.wait(&mut h);
        }
        Some(undo)
    }

    /// Raises a fence of `kind` (nothing once the gate is open for good).
    pub(crate) fn raise(&self, kind: FenceKind) {
        let h = self.held.lock();
        if !h.open {
            self.state.fetch_add(kind.unit(), Ordering::AcqRel);
        }
    }

    /// Lowers one fence of `kind`; returns the held entries that may run now (for the caller
    /// to push to the ready queues).
    pub(crate) fn lower(&self, kind: FenceKind) -> Vec<Work> {
        let mut h = self.held.lock();
        if h.open {
            return Vec::new();
        }
        let prev = self.state.fetch_sub(kind.unit(), Ordering::AcqRel);
        debug_assert!(
            match kind {
                FenceKind::Full => prev & FULL_MASK != 0,
                FenceKind::BestEffort => prev >= BEST_EFFORT,
            },
            "a fence lowered more often than raised"
        );
        self.release(&mut h)
    }

    /// Opens the gate for good (shutdown, the pool winding down): every fence counts as down
    /// (so the common path is back to one load that finds 0), a pool not started counts as
    /// started, and every held entry may run.
    pub(crate) fn open_for_good(&self) -> Vec<Work> {
        let mut h = self.held.lock();
        h.open = true;
        self.state.store(0, Ordering::Release);
        self.not_started.store(false, Ordering::Release);
        self.release(&mut h)
    }

    fn release(&self, h: &mut Held) -> Vec<Work> {
        self.lifted.notify_all();
        if h.open {
            return std::mem::take(&mut h.works);
        }
        let state = self.state.load(Ordering::Acquire);
        let (go, stay): (Vec<Work>, Vec<Work>) = std::mem::take(&mut h.works)
            .into_iter()
            .partition(|w| !blocks(state, w.priority()));
        h.works = stay;
        go
    }

    /// Entries held by a fence (loom models).
    #[cfg(all(test, loom))]
    pub(crate) fn held_len(&self) -> usize {
        self.held.lock().works.len()
    }
}
