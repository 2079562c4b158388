//! `Group`: the thread group. One lock guards the ready queue, the idle stack and the counters;
//! every side effect (unpark, spawn, dropping discarded tasks) is returned as [`Wakeups`] and
//! performed after the lock is released, so no thread is ever woken under the group lock.
//!
//! Lock order: a sequence's lock is never held while the group lock is taken, and the group
//! lock is never held while a sequence lock is taken (the two are used one after the other).
//! The tracker is lock-free. The delay manager's lock is independent of both.

use crate::pool::Inner;
use crate::scheduler::{OneOff, ReadyQueue, Sequence, SortKey, Source};
use crate::sync::{Arc, Mutex};
use crate::traits::TaskPriority;
use crate::worker::WorkerShared;

/// What a worker should do next.
#[derive(Debug)]
pub(crate) enum Work {
    /// Run the front task of this sequence (taken at this priority).
    Sequence(Arc<Sequence>, TaskPriority),
    /// Run this one-off task.
    Single(OneOff, TaskPriority),
    /// Nothing to do: the worker is on the idle stack and should park.
    Idle,
    /// The worker must exit (shutdown completed, or the pool was dropped and is drained).
    Exit,
}

/// What a worker hands back with its next request.
#[derive(Debug)]
pub(crate) struct Finished {
    /// The priority the work was taken at (for the best-effort counter).
    pub(crate) priority: TaskPriority,
    /// A sequence that still has tasks and must be re-queued with this key.
    pub(crate) requeue: Option<(SortKey, Arc<Sequence>)>,
}

/// Side effects decided under the group lock, performed after it is released.
#[must_use = "wake-ups must be run after the group lock is released"]
#[derive(Debug, Default)]
pub(crate) struct Wakeups {
    unpark_one: Option<Arc<WorkerShared>>,
    unpark_more: Vec<Arc<WorkerShared>>,
    spawn: Vec<Arc<WorkerShared>>,
    discard: Vec<Source>,
}

impl Wakeups {
    fn unpark(&mut self, w: Arc<WorkerShared>) {
        if self.unpark_one.is_none() {
            self.unpark_one = Some(w);
        } else {
            self.unpark_more.push(w);
        }
    }

    /// Performs the deferred side effects. Must be called with no scheduler lock held.
    pub(crate) fn run(self, inner: &Arc<Inner>) {
        if let Some(w) = self.unpark_one {
            w.parker.unpark();
        }
        for w in self.unpark_more {
            w.parker.unpark();
        }
        for w in self.spawn {
            crate::worker::spawn_worker(inner, w);
        }
        for s in self.discard {
            inner.discard(s);
        }
    }

    #[cfg(all(test, loom))]
    pub(crate) fn unparks(&self) -> usize {
        usize::from(self.unpark_one.is_some()) + self.unpark_more.len()
    }

    /// Loom models: takes the worker spawn requests out, so that `run` only unparks and
    /// discards; the model runs each returned worker as a model thread of its own.
    #[cfg(all(test, loom))]
    pub(crate) fn take_spawns(&mut self) -> Vec<Arc<WorkerShared>> {
        std::mem::take(&mut self.spawn)
    }
}

#[derive(Debug, Default)]
struct Synced {
    queue: ReadyQueue,
    /// Tasks running now (taken and not yet handed back).
    running: usize,
    running_best_effort: usize,
    /// Parked workers, most recently idle last (LIFO: reuse warm threads, let cold ones time out).
    idle: Vec<Arc<WorkerShared>>,
    /// Every live worker (for shutdown reports and joins).
    workers: Vec<Arc<WorkerShared>>,
    next_index: usize,
    /// Shutdown completed: queued work is discarded, workers exit.
    completed: bool,
    /// Every handle to the pool is gone: workers exit once the queue is empty.
    terminating: bool,
}

/// The thread group.
#[derive(Debug)]
pub(crate) struct Group {
    synced: Mutex<Synced>,
    pub(crate) max_workers: usize,
    pub(crate) max_best_effort: usize,
}

impl Group {
    pub(crate) fn new(max_workers: usize, max_best_effort: usize) -> Self {
        Group {
            synced: Mutex::new(Synced::default()),
            max_workers,
            max_best_effort,
        }
    }

    /// Pushes a sequence that went idle → queued.
    pub(crate) fn push_sequence(&self, key: SortKey, seq: Arc<Sequence>) -> Wakeups {
        let mut w = Wakeups::default();
        let mut s = self.synced.lock();
        if s.completed {
            w.discard.push(Source::Sequence(seq));
        } else {
            s.queue.push_sequence(key, seq);
            self.ensure_enough_workers(&mut s, &mut w);
        }
        w
    }

    /// Pushes an immediate one-off task (`ripe`: a forwarded delayed one).
    pub(crate) fn push_one_off(&self, one: OneOff, ripe: bool) -> Wakeups {
        let mut w = Wakeups::default();
        let mut s = self.synced.lock();
        if s.completed {
            w.discard.push(Source::Single(one));
        } else {
            if ripe {
                s.queue.push_ripe_one_off(one);
            } else {
                s.queue.push_one_off(one);
            }
            self.ensure_enough_workers(&mut s, &mut w);
        }
        w
    }

    /// Hands back finished work and takes the next piece, in one critical section.
    pub(crate) fn next_work(
        &self,
        me: &Arc<WorkerShared>,
        finished: Option<Finished>,
    ) -> (Work, Wakeups) {
        let mut w = Wakeups::default();
        let mut s = self.synced.lock();
        if let Some(f) = finished {
            s.running -= 1;
            if f.priority == TaskPriority::BestEffort {
                s.running_best_effort -= 1;
            }
            if let Some((key, seq)) = f.requeue {
                if s.completed {
                    w.discard.push(Source::Sequence(seq));
                } else {
                    s.queue.push_sequence(key, seq);
                }
            }
        }
        let work = match s.queue.peek_priority() {
            Some(p)
                if p != TaskPriority::BestEffort
                    || s.running_best_effort < self.max_best_effort =>
            {
                let (source, prio) = s.queue.pop().expect("peeked");
                s.running += 1;
                if prio == TaskPriority::BestEffort {
                    s.running_best_effort += 1;
                }
                match source {
                    Source::Sequence(seq) => Work::Sequence(seq, prio),
                    Source::Single(one) => Work::Single(one, prio),
                }
            }
            _ => {
                if s.completed || (s.terminating && s.queue.is_empty()) {
                    Self::remove_worker(&mut s, me);
                    Work::Exit
                } else {
                    s.idle.push(Arc::clone(me));
                    Work::Idle
                }
            }
        };
        // Work left behind (a re-queued sequence, or more queued sources than workers) may need
        // another worker.
        self.ensure_enough_workers(&mut s, &mut w);
        (work, w)
    }

    /// Chromium's EnsureEnoughWorkers: wake or create workers until the awake ones cover the
    /// demand (running tasks + queued sources, best-effort demand capped).
    fn ensure_enough_workers(&self, s: &mut Synced, w: &mut Wakeups) {
        if s.completed {
            return;
        }
        let queued_be = s.queue.count(TaskPriority::BestEffort);
        let queued_fg = s.queue.len() - queued_be;
        let be_demand = (s.running_best_effort + queued_be)
            .min(self.max_best_effort)
            .max(s.running_best_effort);
        let fg_demand = (s.running - s.running_best_effort) + queued_fg;
        let desired = (be_demand + fg_demand).min(self.max_workers);
        let mut awake = s.workers.len() - s.idle.len();
        while awake < desired {
            if let Some(idle) = s.idle.pop() {
                w.unpark(idle);
            } else if s.workers.len() < self.max_workers {
                let index = s.next_index;
                s.next_index += 1;
                let worker = Arc::new(WorkerShared::new(index));
                s.workers.push(Arc::clone(&worker));
                w.spawn.push(worker);
            } else {
                break;
            }
            awake += 1;
        }
    }

    fn remove_worker(s: &mut Synced, me: &Arc<WorkerShared>) {
        if let Some(i) = s.workers.iter().position(|x| Arc::ptr_eq(x, me)) {
            s.workers.swap_remove(i);
        }
    }

    /// A worker timed out while idle: if it is still on the idle stack it leaves the pool.
    pub(crate) fn try_reclaim(&self, me: &Arc<WorkerShared>) -> bool {
        let mut s = self.synced.lock();
        match s.idle.iter().position(|x| Arc::ptr_eq(x, me)) {
            Some(i) => {
                s.idle.remove(i);
                Self::remove_worker(&mut s, me);
                true
            }
            None => false,
        }
    }

    /// A worker thread could not be spawned: forget it.
    pub(crate) fn spawn_failed(&self, me: &Arc<WorkerShared>) {
        let mut s = self.synced.lock();
        Self::remove_worker(&mut s, me);
    }

    /// Shutdown completed: take everything queued (to be discarded) and wake every idle
    /// worker so it exits. Later pushes are discarded too.
    pub(crate) fn complete(&self) -> Wakeups {
        let mut w = Wakeups::default();
        let mut s = self.synced.lock();
        s.completed = true;
        w.discard = s.queue.drain();
        for idle in std::mem::take(&mut s.idle) {
            w.unpark(idle);
        }
        w
    }

    /// Every handle is gone (`true`) or one came back (`false`). Idle workers are woken so they
    /// can exit once the queue is empty.
    pub(crate) fn set_terminating(&self, terminating: bool) -> Wakeups {
        let mut w = Wakeups::default();
        let mut s = self.synced.lock();
        s.terminating = terminating;
        if terminating {
            for idle in std::mem::take(&mut s.idle) {
                w.unpark(idle);
            }
        }
        w
    }

    /// A snapshot of every live worker.
    pub(crate) fn workers(&self) -> Vec<Arc<WorkerShared>> {
        self.synced.lock().workers.clone()
    }

    /// Queued sources (a snapshot; for tests and diagnostics).
    #[allow(dead_code)]
    pub(crate) fn queued(&self) -> usize {
        self.synced.lock().queue.len()
    }
}
