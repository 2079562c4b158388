//! The job's bookkeeping: how many workers run, how many are queued, when one more may start,
//! when a worker goes on, gives way or leaves, and when `join` may return. It knows nothing of
//! the pool: it tells its caller how many workers to post ([`Spawn`]) and is told when a queued
//! worker starts or is dropped unrun, so the loom models drive it directly
//! (`src/loom_tests/job.rs`).
//!
//! # State
//!
//! One mutex guards [`State`]; `cancelled` and `priority` are mirrored in atomics so that
//! `should_yield` reads them without the lock. The job's callback (`max`) is always called
//! **without** the lock held (it may be slow, and it may call back into the job), and its
//! answer is capped at what the pool can run at once, the joiner counting as one worker, so a
//! job never puts more threads to work than the pool has.
//!
//! | field | meaning |
//! |---|---|
//! | `running` | workers inside the worker loop: pool workers and the joining thread |
//! | `queued` | tickets of the current generation posted and not yet started or dropped |
//! | `generation` | bumped by a priority change: older tickets leave at once when they start, and workers of an older generation give way after their current call |
//! | `epoch` | bumped by every change a joiner waits for: a worker leaving, a concurrency increase, a cancel |
//! | `cancelled` | no worker starts or goes on; `join` returns once `running` is 0 |
//!
//! # Transitions
//!
//! | who | step | under the lock |
//! |---|---|---|
//! | `schedule` (post, notify, priority change, a worker that gives way) | `m = max(running)` unlocked, then | `k = m - running - queued`; `queued += k`; the caller posts `k` tickets |
//! | a ticket starts | `worker_start`: leaves if stale or cancelled; else `m = max(running)` unlocked, then | if `running < m`: `running += 1`, takes the lowest free id |
//! | a ticket is dropped unrun (refused, shutdown) | `ticket_dropped` | `queued -= 1` if current |
//! | a worker's call returns | `worker_next`: `m = max(running - 1)` unlocked, then | leave if cancelled, stopping, or `running - 1 >= m` (`running -= 1`, `epoch += 1`); give way if asked or stale (`running -= 1`, `queued += 1`, the caller posts one ticket); else call again |
//! | the joiner | `join`: reads `(running, epoch)`, `m = max(running)` unlocked, then | if either changed, look again; if `running < m`, run as one more worker; if `running == 0` (so `m == 0`), done; else wait for `epoch` to move |
//!
//! Why `join` cannot miss its wake-up: it decides to wait only under the lock, after checking
//! that `epoch` and `running` are what it based its decision on, and every transition that can
//! change that decision bumps `epoch` and notifies under the same lock. Why `join` cannot
//! return while a worker runs: it returns only if `running` was 0 both when it called `max` and
//! when it rechecked under the lock. A ticket that starts later asks the callback again (and
//! finds 0, unless more work arrived, which it then does); after a cancel none starts.

use crate::base::shim::{AtomicBool, AtomicU8, Condvar, Mutex, MutexGuard, Ordering};
use crate::base::traits::TaskPriority;
use crate::base::unwind::{catch, drop_quietly, Payload};
use crate::handle::TaskError;

/// The job's max-concurrency callback, given the number of workers running.
pub(crate) type MaxFn = Box<dyn Fn(usize) -> usize + Send + Sync>;

/// Post `n` worker tickets of generation `gen` at `priority`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spawn {
    pub(crate) gen: u64,
    pub(crate) priority: TaskPriority,
    pub(crate) n: usize,
}

/// What a worker does after a call of the worker function returned.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Call it again on this thread, same id.
    Again,
    /// Left, and one ticket was reserved in its place: post it.
    GiveWay(Spawn),
    /// Left.
    Exit,
}

/// A running worker: its id (unique among running workers) and the generation it started in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    pub(crate) id: usize,
    pub(crate) gen: u64,
}

#[derive(Debug, Default)]
struct State {
    running: usize,
    queued: usize,
    generation: u64,
    epoch: u64,
    waiters: usize,
    cancelled: bool,
    /// Which worker ids are taken (bit set).
    ids: Vec<u64>,
    /// The first panic of a worker or of the callback, for every joiner.
    panic: Option<TaskError>,
}

impl State {
    fn take_id(&mut self) -> usize {
        for (i, word) in self.ids.iter_mut().enumerate() {
            if *word != u64::MAX {
                let bit = (!*word).trailing_zeros() as usize;
                *word |= 1 << bit;
                return i * 64 + bit;
            }
        }
        self.ids.push(1);
        (self.ids.len() - 1) * 64
    }

    fn free_id(&mut self, id: usize) {
        self.ids[id / 64] &= !(1 << (id % 64));
    }
}

pub(crate) struct JobCore {
    state: Mutex<State>,
    changed: Condvar,
    cancelled: AtomicBool,
    priority: AtomicU8,
    max: MaxFn,
    /// How many workers may run at once (the joiner included): the pool's worker count, or
    /// its best-effort limit while the job is best-effort.
    cap: usize,
    cap_best_effort: usize,
}

impl JobCore {
    /// `caps`: how many workers may run at once, and how many while the job is best-effort.
    pub(crate) fn new(priority: TaskPriority, caps: (usize, usize), max: MaxFn) -> Self {
        JobCore {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            cancelled: AtomicBool::new(false),
            priority: AtomicU8::new(priority.index() as u8),
            max,
            cap: caps.0.max(1),
            cap_best_effort: caps.1.max(1),
        }
    }

    /// The callback, caught (a panic cancels the job, is kept for `join`, and counts as 0;
    /// `on_panic` reports it first, to the pool's panic handler), and capped at what the pool
    /// can run at once.
    fn max_concurrency(&self, workers: usize, on_panic: &dyn Fn(&Payload)) -> usize {
        let cap = if self.priority() == TaskPriority::BestEffort {
            self.cap_best_effort
        } else {
            self.cap
        };
        match catch(|| (self.max)(workers)) {
            Ok(m) => m.min(cap),
            Err(p) => {
                on_panic(&p);
                self.record_panic(p);
                0
            }
        }
    }

    #[inline]
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    #[inline]
    pub(crate) fn priority(&self) -> TaskPriority {
        TaskPriority::from_index(self.priority.load(Ordering::Relaxed))
    }

    /// Wakes a waiting joiner; the caller bumped `epoch` under the lock.
    fn changed(&self, s: &mut MutexGuard<'_, State>) {
        s.epoch += 1;
        if s.waiters > 0 {
            self.changed.notify_all();
        }
    }

    /// How many more workers to post, reserved as queued.
    pub(crate) fn schedule(&self, on_panic: &dyn Fn(&Payload)) -> Option<Spawn> {
        let running = {
            let s = self.state.lock();
            if s.cancelled {
                return None;
            }
            s.running
        };
        let m = self.max_concurrency(running, on_panic);
        let mut s = self.state.lock();
        if s.cancelled {
            return None;
        }
        let n = m.saturating_sub(s.running + s.queued);
        if n == 0 {
            return None;
        }
        s.queued += n;
        Some(Spawn {
            gen: s.generation,
            priority: self.priority(),
            n,
        })
    }

    /// A ticket of generation `gen` was dropped without starting.
    pub(crate) fn ticket_dropped(&self, gen: u64) {
        let mut s = self.state.lock();
        if s.generation == gen {
            s.queued -= 1;
        }
    }

    /// A ticket of generation `gen` starts: `Some` if it becomes a running worker.
    pub(crate) fn worker_start(&self, gen: u64, on_panic: &dyn Fn(&Payload)) -> Option<Slot> {
        let running = {
            let mut s = self.state.lock();
            if s.generation != gen {
                return None;
            }
            s.queued -= 1;
            if s.cancelled {
                return None;
            }
            s.running
        };
        let m = self.max_concurrency(running, on_panic);
        let mut s = self.state.lock();
        if s.cancelled || s.running >= m {
            return None;
        }
        s.running += 1;
        Some(Slot {
            id: s.take_id(),
            gen,
        })
    }

    /// A worker's call returned. `give_way`: higher or equal priority work waits in the pool;
    /// `stop`: the pool is shutting down and the job does not block shutdown.
    pub(crate) fn worker_next(
        &self,
        slot: Slot,
        give_way: bool,
        stop: bool,
        on_panic: &dyn Fn(&Payload),
    ) -> Next {
        if self.is_cancelled() || stop {
            self.leave(slot);
            return Next::Exit;
        }
        let others = self.state.lock().running - 1;
        let m = self.max_concurrency(others, on_panic);
        let mut s = self.state.lock();
        if s.cancelled || s.running > m {
            self.leave_locked(&mut s, slot);
            return Next::Exit;
        }
        if give_way || s.generation != slot.gen {
            self.leave_locked(&mut s, slot);
            s.queued += 1;
            return Next::GiveWay(Spawn {
                gen: s.generation,
                priority: self.priority(),
                n: 1,
            });
        }
        Next::Again
    }

    /// A running worker leaves (its call panicked, or it was told to).
    pub(crate) fn leave(&self, slot: Slot) {
        let mut s = self.state.lock();
        self.leave_locked(&mut s, slot);
    }

    fn leave_locked(&self, s: &mut MutexGuard<'_, State>, slot: Slot) {
        s.running -= 1;
        s.free_id(slot.id);
        self.changed(s);
    }

    /// The joining thread: runs `run(id)` as one more worker while the job wants one, waits
    /// (through `block`, a blocking scope on a pool worker) while it is at its concurrency,
    /// and returns once no worker runs and the job wants none (or it was cancelled).
    pub(crate) fn join(
        &self,
        mut run: impl FnMut(usize),
        block: impl Fn(&mut dyn FnMut()),
        on_panic: &dyn Fn(&Payload),
    ) {
        loop {
            let (running, epoch) = {
                let s = self.state.lock();
                (s.running, s.epoch)
            };
            let m = if self.is_cancelled() {
                0
            } else {
                self.max_concurrency(running, on_panic)
            };
            let mut s = self.state.lock();
            if s.epoch != epoch || s.running != running {
                continue;
            }
            if !s.cancelled && running < m {
                s.running += 1;
                let id = s.take_id();
                drop(s);
                run(id);
                self.leave(Slot { id, gen: 0 });
                continue;
            }
            if running == 0 {
                return;
            }
            s.waiters += 1;
            block(&mut || self.changed.wait(&mut s));
            s.waiters -= 1;
        }
    }

    /// A worker (or the callback) panicked: keep the first payload for `join`, cancel.
    pub(crate) fn record_panic(&self, p: Payload) {
        let mut s = self.state.lock();
        if s.panic.is_none() {
            s.panic = Some(TaskError::from_panic(p));
            drop(s);
        } else {
            drop(s);
            drop_quietly(p);
        }
        self.cancel();
    }

    /// The first panic, as every joiner reports it (the payload goes to the first
    /// `into_panic`).
    pub(crate) fn panic(&self) -> Option<TaskError> {
        self.state.lock().panic.clone()
    }

    pub(crate) fn cancel(&self) {
        let mut s = self.state.lock();
        s.cancelled = true;
        self.cancelled.store(true, Ordering::Release);
        self.changed(&mut s);
    }

    /// More work arrived: wake the joiner (the caller then schedules).
    pub(crate) fn notify(&self) {
        let mut s = self.state.lock();
        self.changed(&mut s);
    }

    /// A new priority: tickets queued so far leave when they start, workers give way after
    /// their current call. `false` if it is the current one.
    pub(crate) fn set_priority(&self, p: TaskPriority) -> bool {
        let mut s = self.state.lock();
        if self.priority() == p {
            return false;
        }
        self.priority.store(p.index() as u8, Ordering::Relaxed);
        s.generation += 1;
        s.queued = 0;
        true
    }

    /// No worker runs, and the job wants none (or was cancelled).
    pub(crate) fn is_completed(&self, on_panic: &dyn Fn(&Payload)) -> bool {
        let running = self.state.lock().running;
        running == 0 && (self.is_cancelled() || self.max_concurrency(0, on_panic) == 0)
    }

    /// Workers running now (the joining thread included).
    pub(crate) fn running(&self) -> usize {
        self.state.lock().running
    }
}

#[cfg(all(test, loom))]
impl JobCore {
    /// Tickets of the current generation reserved and not yet started or dropped.
    pub(crate) fn queued(&self) -> usize {
        self.state.lock().queued
    }
}
