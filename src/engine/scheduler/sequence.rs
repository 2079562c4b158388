//! `Sequence`: tasks that run one at a time, in posting order, on any worker.
//!
//! # Two ways to queue
//!
//! * **Direct** (every pool sequence except updateable ones). A post stamps its task with the
//!   sequence's next *position* (`next_pos`, one `fetch_add`) and puts the entry straight into
//!   the ready queue of the sequence's priority, beside one-off tasks: posting never takes a
//!   lock, and the ready queue's FIFO order is the pool's age order across sources. A worker
//!   that takes an entry runs it only if it is the sequence's next position and no task of the
//!   sequence is running; otherwise it leaves the entry in the sequence's reorder buffer, where
//!   the worker running the sequence finds it when it finishes ([`Sequence::finish`]).
//! * **Held** (updateable sequences, whose queued work must be re-keyable). Tasks wait in the
//!   sequence's own FIFO; the ready queue holds one *ticket* per task ("run the next task"),
//!   stamped with an epoch. [`Sequence::set_priority_held`] bumps the epoch (every outstanding
//!   ticket goes stale) and the caller re-issues the right number of tickets at the new
//!   priority.
//!
//! # The state word (`state`)
//!
//! | bits | meaning |
//! |---|---|
//! | 0 `RUNNING` | a worker runs a task of this sequence (it alone may change `next_run`) |
//! | 1 `BUFFERED` | the reorder buffer (direct) is not empty |
//! | 2 `POISONED` | a task panicked under `PanicPolicy::Poison`: nothing more runs |
//! | 32.. `next_run` | direct: the position that runs next (wrapping `u32`) |
//!
//! Direct mode transitions:
//!
//! | transition | by | rule |
//! |---|---|---|
//! | `pos = next_pos++` | poster, or the delay manager forwarding a ripe task | the entry carries `pos` |
//! | `(p, idle) → (p, RUNNING)` | the worker holding entry `p` | CAS in [`begin`](Sequence::begin): it runs `p` |
//! | entry `q` not runnable → buffer | the worker holding `q` | if `q` directly follows the running position, first a bounded spin re-trying the CAS above ([`wait_for_predecessor`](Sequence::wait_for_predecessor)); then under the cold lock: set `BUFFERED` by CAS (re-checking runnability), then insert; it moves on |
//! | `(p, RUNNING) → (p+1, idle)` | the running worker, `BUFFERED` clear | CAS in [`finish`](Sequence::finish) |
//! | `(p, RUNNING, BUFFERED)` → run `p+1` from the buffer | the running worker | under the cold lock, if the buffer's front is `p+1`: it keeps `RUNNING` |
//! | `(p, RUNNING, BUFFERED) → (p+1, idle)` | the running worker | under the cold lock, when `p+1` is still in transit (its holder finds it runnable) |
//!
//! Invariants: a position is run (or skipped) exactly once, in order: the worker holding entry
//! `p` runs it only from `(p, idle)`, which only the run of `p-1` produces, and an entry parked
//! in the buffer is found by the run of its predecessor (the `BUFFERED` bit is set before the
//! predecessor's unlocked `finish` CAS can succeed, and the insertion happens under the lock
//! the predecessor's locked `finish` takes). Happens-before between consecutive tasks comes
//! from the state word: `finish` releases, `begin` acquires. The loom models in
//! `src/loom_tests/sequence_state.rs` check each transition.
//!
//! Held mode: outstanding valid tickets + `deferred` = tasks waiting in `held` (every change
//! is made under the cold lock). A ticket taken while the sequence runs becomes `deferred`;
//! the running worker runs one more task per deferred ticket before going idle.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::fmt;

use crate::base::shim::{Arc, AtomicU32, AtomicU64, Mutex, Ordering};
use crate::base::traits::{ShutdownBehavior, TaskPriority, TaskTraits};
use crate::engine::runner_stats::RunnerStats;
use crate::engine::scheduler::Work;
use crate::engine::task::Task;
use crate::engine::worker::Dedicated;
use std::sync::Arc as StdArc;

const RUNNING: u64 = 1;
const BUFFERED: u64 = 2;
const POISONED: u64 = 4;
const POS_SHIFT: u32 = 32;

#[inline]
fn pos_of(state: u64) -> u32 {
    (state >> POS_SHIFT) as u32
}

#[inline]
fn with_pos(state: u64, pos: u32) -> u64 {
    (state & 0xFFFF_FFFF) | ((pos as u64) << POS_SHIFT)
}

/// Where a sequence's tasks run.
#[derive(Debug)]
pub(crate) enum Home {
    /// Any worker of the pool's thread group.
    Pool,
    /// One dedicated thread (a `SingleThreadTaskRunner`).
    Dedicated(Arc<Dedicated>),
}

/// Sequence-local values by slot id.
type LocalMap = HashMap<u64, Box<dyn Any + Send>>;

/// The rarely used part of a sequence, allocated on first use and freed once empty, so that an
/// idle sequence keeps no buffer.
#[derive(Default)]
struct Cold {
    /// Direct mode: entries taken by a worker before their turn, by position.
    buffer: VecDeque<Work>,
    /// Held mode: the queued tasks, each with whether it was posted with a delay.
    held: VecDeque<(Task, bool)>,
    /// Held mode: tickets taken while the sequence was running.
    deferred: u32,
    /// `SequenceLocal` values.
    locals: Option<Box<LocalMap>>,
    /// A named runner's name and counters (kept for the sequence's life).
    stats: Option<StdArc<RunnerStats>>,
}

impl Cold {
    fn is_empty(&self) -> bool {
        self.buffer.is_empty()
            && self.held.is_empty()
            && self.deferred == 0
            && self.locals.as_ref().is_none_or(|l| l.is_empty())
            && self.stats.is_none()
    }
}

/// What [`Sequence::begin`] decided about an entry.
#[must_use = "a Run result obliges the caller to run the entry and then call finish"]
pub(crate) enum Begin {
    /// Run this entry now (the caller owns the sequence until `finish` returns `None`).
    Run(Work),
    /// The entry is parked in the reorder buffer, or it was a stale or deferred ticket: the
    /// caller has nothing to do.
    Later,
}

/// A FIFO of tasks that run one at a time.
pub(crate) struct Sequence {
    /// Unique token (shared number space with thread and one-off task tokens).
    pub(crate) token: u64,
    state: AtomicU64,
    /// Direct mode: the position the next post gets. Held mode: the epoch (tickets with
    /// another epoch are stale), changed only under the cold lock. It lives here rather than
    /// in the cold part so that it never starts again from 0 when the cold part is freed: a
    /// stale ticket still queued must stay stale.
    next_pos: AtomicU32,
    /// Bits 0-7: packed `TaskTraits` (the priority part is live: `set_priority`); bit 8: held
    /// mode; bit 9: closed; bit 10: named; bit 11: a parallel runner's identity.
    traits: AtomicU32,
    pub(crate) home: Home,
    cold: Mutex<Option<Box<Cold>>>,
}

const HELD: u32 = 1 << 8;
/// In the traits word: the runner was closed (`close`): posts are refused, and queued tasks
/// run only if they would run at shutdown.
const CLOSED: u32 = 1 << 9;
/// In the traits word: the runner has a name and counters ([`RunnerStats`]), kept in the cold
/// part (so that an unnamed sequence pays nothing, and a named one no bytes of its own).
const NAMED: u32 = 1 << 10;
/// In the traits word: not a sequence but a parallel runner's identity (see
/// [`Sequence::new_parallel`]).
const PARALLEL: u32 = 1 << 11;

impl Sequence {
    /// A direct-mode sequence.
    pub(crate) fn new(traits: TaskTraits, home: Home) -> Self {
        Self::with_mode(traits, home, false)
    }

    /// A held-mode sequence (its queued work can be re-keyed: updateable runners).
    pub(crate) fn new_held(traits: TaskTraits, home: Home) -> Self {
        Self::with_mode(traits, home, true)
    }

    /// A parallel runner's identity (see [`ParallelRunner`]): its tasks run as one-off tasks,
    /// in parallel, but carry this object in their ready-queue entry (the slot a sequenced
    /// entry uses for its sequence), so that the runner can be closed, flushed and named. Only
    /// the traits word and the cold part are used; `state` stays 0 (never poisoned).
    fn new_parallel(traits: TaskTraits) -> Self {
        let s = Self::with_mode(traits, Home::Pool, false);
        s.traits.fetch_or(PARALLEL, Ordering::Relaxed);
        s
    }

    /// A direct-mode pool sequence that starts with a named runner's counters (a key of a
    /// named keyed runner), built without taking its lock.
    pub(crate) fn with_stats(traits: TaskTraits, stats: StdArc<RunnerStats>) -> Self {
        let cold = Box::new(Cold {
            stats: Some(stats),
            ..Cold::default()
        });
        let s = Self::with_mode_and_cold(traits, Home::Pool, false, Some(cold));
        s.traits.fetch_or(NAMED, Ordering::Relaxed);
        s
    }

    fn with_mode(traits: TaskTraits, home: Home, held: bool) -> Self {
        Self::with_mode_and_cold(traits, home, held, None)
    }

    fn with_mode_and_cold(
        traits: TaskTraits,
        home: Home,
        held: bool,
        cold: Option<Box<Cold>>,
    ) -> Self {
        Sequence {
            token: crate::engine::task::next_id(),
            state: AtomicU64::new(0),
            next_pos: AtomicU32::new(0),
            traits: AtomicU32::new(traits.pack() as u32 | if held { HELD } else { 0 }),
            home,
            cold: Mutex::new(cold),
        }
    }

    /// `true` for a parallel runner's identity ([`Sequence::new_parallel`]).
    #[inline]
    pub(crate) fn is_parallel(&self) -> bool {
        self.traits.load(Ordering::Relaxed) & PARALLEL != 0
    }

    #[inline]
    pub(crate) fn traits(&self) -> TaskTraits {
        TaskTraits::unpack(self.traits.load(Ordering::Relaxed) as u8)
    }

    #[inline]
    pub(crate) fn priority(&self) -> TaskPriority {
        self.traits().priority
    }

    #[inline]
    pub(crate) fn shutdown(&self) -> ShutdownBehavior {
        self.traits().shutdown_behavior
    }

    #[inline]
    pub(crate) fn may_block(&self) -> bool {
        self.traits().may_block
    }

    /// `true` for a held-mode (updateable) sequence.
    #[inline]
    pub(crate) fn is_held(&self) -> bool {
        self.traits.load(Ordering::Relaxed) & HELD != 0
    }

    /// Changes the priority of a direct sequence for entries posted from now on.
    pub(crate) fn set_priority(&self, p: TaskPriority) {
        let mut cur = self.traits.load(Ordering::Relaxed);
        loop {
            let t = TaskTraits::unpack(cur as u8).priority(p);
            let new = (cur & !0xFF) | t.pack() as u32;
            match self
                .traits
                .compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    // ---- direct mode ------------------------------------------------------------------------

    /// The position for a new entry (a post, or a ripe delayed task).
    #[inline]
    pub(crate) fn next_position(&self) -> u32 {
        self.next_pos.fetch_add(1, Ordering::Relaxed)
    }

    /// Seeded test mode: `true` if `work` (an entry of this sequence) may run now: a ticket,
    /// or the entry at the position that runs next while nothing of the sequence runs.
    #[cfg(feature = "test-util")]
    pub(crate) fn is_turn(&self, work: &Work) -> bool {
        if self.is_held() {
            return true;
        }
        let s = self.state.load(Ordering::Acquire);
        s & RUNNING == 0 && pos_of(s) == work.meta
    }

    /// A worker took `work` (an entry of this sequence) from a ready queue. See the state table.
    pub(crate) fn begin(&self, work: Work) -> Begin {
        if self.is_held() {
            return self.begin_ticket(work);
        }
        let pos = work.meta;
        let s = self.state.load(Ordering::Acquire);
        if s & RUNNING == 0
            && pos_of(s) == pos
            && self
                .state
                .compare_exchange(s, s | RUNNING, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            return Begin::Run(work);
        }
        self.begin_slow(work)
    }

    #[cold]
    fn begin_slow(&self, work: Work) -> Begin {
        let pos = work.meta;
        if self.wait_for_predecessor(pos) {
            return Begin::Run(work);
        }
        let mut cold = self.cold.lock();
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            if s & RUNNING == 0 && pos_of(s) == pos {
                match self.state.compare_exchange(
                    s,
                    s | RUNNING,
                    Ordering::Acquire,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        Self::free_if_empty(&mut cold);
                        return Begin::Run(work);
                    }
                    Err(actual) => {
                        s = actual;
                        continue;
                    }
                }
            }
            // Not its turn: announce the buffer *before* releasing the lock, so that the
            // predecessor's unlocked `finish` fails and takes the locked path.
            match self
                .state
                .compare_exchange(s, s | BUFFERED, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(actual) => s = actual,
            }
        }
        let c = cold.get_or_insert_with(Box::default);
        let next_run = pos_of(s);
        // Sorted by distance from `next_run`; entries usually arrive in order (push_back).
        let dist = |w: &Work| w.meta.wrapping_sub(next_run);
        let d = pos.wrapping_sub(next_run);
        let at = c
            .buffer
            .iter()
            .rposition(|w| dist(w) < d)
            .map_or(0, |i| i + 1);
        c.buffer.insert(at, work);
        Begin::Later
    }

    /// `work` is the entry right after the running one: its predecessor is most often in its
    /// last few hundred nanoseconds (the poster of `pos` typically saw the previous task's
    /// result, so that task has only `finish` left). Spins briefly for the `(pos, idle)` state
    /// and takes `RUNNING` if it comes; parking the entry in the buffer instead would allocate
    /// the cold part and put the next run behind the cold lock. `true`: the caller runs `pos`.
    /// Only the fast path's CAS is repeated, so this changes no transition of the state table.
    fn wait_for_predecessor(&self, pos: u32) -> bool {
        #[cfg(not(loom))]
        const SPINS: u32 = 6; // crossbeam Backoff: about 2^0 + .. + 2^6 spin hints in all
        #[cfg(loom)]
        const SPINS: u32 = 1;
        let mut spins = 0;
        loop {
            let s = self.state.load(Ordering::Acquire);
            if s & (RUNNING | BUFFERED | POISONED) == 0 && pos_of(s) == pos {
                if self
                    .state
                    .compare_exchange(s, s | RUNNING, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return true;
                }
            } else if s & (BUFFERED | POISONED) != 0
                || s & RUNNING == 0
                || pos_of(s).wrapping_add(1) != pos
            {
                return false; // not the next one, or the slow path must decide
            }
            if spins == SPINS {
                return false;
            }
            spins += 1;
            #[cfg(not(loom))]
            for _ in 0..1u32 << spins {
                std::hint::spin_loop();
            }
            #[cfg(loom)]
            crate::base::shim::thread::yield_now();
        }
    }

    /// The task at the current position has run (or was skipped). Returns the next entry if it
    /// is already waiting in the buffer: the caller keeps the sequence and runs it. `None`: the
    /// sequence was released.
    pub(crate) fn finish(&self) -> Option<Work> {
        if self.is_held() {
            return self.finish_held();
        }
        let s = self.state.load(Ordering::Relaxed);
        debug_assert!(s & RUNNING != 0, "finish without begin");
        if s & BUFFERED == 0 {
            let next = with_pos(s & !RUNNING, pos_of(s).wrapping_add(1));
            if self
                .state
                .compare_exchange(s, next, Ordering::Release, Ordering::Relaxed)
                .is_ok()
            {
                return None;
            }
        }
        self.finish_slow()
    }

    #[cold]
    fn finish_slow(&self) -> Option<Work> {
        let mut cold = self.cold.lock();
        // Under the lock nobody else changes the word except `poison` (an atomic OR) and
        // `begin_slow` (which needs this lock): CAS to keep a concurrent POISONED.
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            let next_run = pos_of(s).wrapping_add(1);
            let c = cold.as_mut();
            let front_is_next = c
                .as_ref()
                .and_then(|c| c.buffer.front())
                .is_some_and(|w| w.meta == next_run);
            let remaining = c.as_ref().map_or(0, |c| c.buffer.len()) - usize::from(front_is_next);
            let mut flags = s & POISONED;
            if front_is_next {
                flags |= RUNNING;
            }
            if remaining > 0 {
                flags |= BUFFERED;
            }
            let new = ((next_run as u64) << POS_SHIFT) | flags;
            match self
                .state
                .compare_exchange(s, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    let taken = if front_is_next {
                        cold.as_mut().and_then(|c| c.buffer.pop_front())
                    } else {
                        None
                    };
                    Self::free_if_empty(&mut cold);
                    return taken;
                }
                Err(actual) => s = actual,
            }
        }
    }

    // ---- held mode --------------------------------------------------------------------------

    /// Held mode: queues `task` and returns the epoch and priority its ticket must carry.
    pub(crate) fn push_held(&self, task: Task, delayed: bool) -> (u32, TaskPriority) {
        let mut cold = self.cold.lock();
        let c = cold.get_or_insert_with(Box::default);
        c.held.push_back((task, delayed));
        (self.epoch(), self.priority())
    }

    /// Held mode: the current epoch (read or changed under the cold lock).
    #[inline]
    fn epoch(&self) -> u32 {
        self.next_pos.load(Ordering::Relaxed)
    }

    /// Held mode: makes every outstanding ticket stale (under the cold lock).
    fn bump_epoch(&self) -> u32 {
        let e = self.epoch().wrapping_add(1);
        self.next_pos.store(e, Ordering::Relaxed);
        e
    }

    /// Held mode: sets the priority and makes every outstanding ticket stale. Returns the new
    /// epoch and how many tickets the caller must issue at the new priority.
    pub(crate) fn set_priority_held(&self, p: TaskPriority) -> (u32, usize) {
        let cold = self.cold.lock();
        self.set_priority(p);
        let epoch = self.bump_epoch();
        match cold.as_ref() {
            Some(c) => (epoch, c.held.len() - c.deferred as usize),
            None => (epoch, 0),
        }
    }

    fn begin_ticket(&self, ticket: Work) -> Begin {
        let mut cold = self.cold.lock();
        let Some(c) = cold.as_mut() else {
            return Begin::Later; // stale: nothing is held
        };
        if ticket.meta != self.epoch() {
            return Begin::Later;
        }
        let s = self.state.load(Ordering::Acquire);
        if s & RUNNING != 0 {
            c.deferred += 1;
            return Begin::Later;
        }
        let Some((task, delayed)) = c.held.pop_front() else {
            debug_assert!(false, "a valid ticket without a held task");
            return Begin::Later;
        };
        self.state.fetch_or(RUNNING, Ordering::Acquire);
        Self::free_if_empty(&mut cold);
        Begin::Run(ticket.with_task(task, delayed))
    }

    fn finish_held(&self) -> Option<Work> {
        let mut cold = self.cold.lock();
        if let Some(c) = cold.as_mut() {
            if c.deferred > 0 {
                c.deferred -= 1;
                if let Some((task, delayed)) = c.held.pop_front() {
                    return Some(Work::held_run(task, delayed));
                }
            }
        }
        self.state.fetch_and(!RUNNING, Ordering::Release);
        Self::free_if_empty(&mut cold);
        None
    }

    // ---- poison, shutdown, locals -----------------------------------------------------------

    /// Marks the sequence poisoned: later posts are refused, queued entries are dropped unrun
    /// when they come up.
    /// Names the sequence's runner (for spans, panic reports, `Debug` and its metrics).
    /// Returns the counters if this call created them (the caller registers them with the
    /// pool); a second name replaces the first and keeps the counts.
    pub(crate) fn set_name(&self, name: StdArc<str>) -> Option<StdArc<RunnerStats>> {
        let mut cold = self.cold.lock();
        let c = cold.get_or_insert_with(Box::default);
        let created = match &c.stats {
            Some(stats) => {
                stats.set_name(name);
                None
            }
            None => {
                let stats = StdArc::new(RunnerStats::new(name));
                c.stats = Some(StdArc::clone(&stats));
                Some(stats)
            }
        };
        self.traits.fetch_or(NAMED, Ordering::Release);
        created
    }

    /// Gives the sequence a runner's counters shared with other sequences (every key of a
    /// named keyed runner).
    pub(crate) fn share_stats(&self, stats: &StdArc<RunnerStats>) {
        let mut cold = self.cold.lock();
        cold.get_or_insert_with(Box::default).stats = Some(StdArc::clone(stats));
        self.traits.fetch_or(NAMED, Ordering::Release);
    }

    /// `true` if the runner was named (its posts are tracked).
    #[inline]
    pub(crate) fn is_named(&self) -> bool {
        self.traits.load(Ordering::Acquire) & NAMED != 0
    }

    /// The named runner's counters.
    pub(crate) fn stats(&self) -> Option<StdArc<RunnerStats>> {
        if !self.is_named() {
            return None;
        }
        self.cold.lock().as_ref().and_then(|c| c.stats.clone())
    }

    /// The runner's name, if it was given one.
    pub(crate) fn name(&self) -> Option<StdArc<str>> {
        self.stats().map(|s| s.name())
    }

    /// Closes the sequence's runner; `true` if this call closed it.
    pub(crate) fn close(&self) -> bool {
        self.traits.fetch_or(CLOSED, Ordering::Release) & CLOSED == 0
    }

    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.traits.load(Ordering::Acquire) & CLOSED != 0
    }

    pub(crate) fn mark_poisoned(&self) {
        self.state.fetch_or(POISONED, Ordering::Release);
    }

    /// Poisons the sequence and takes what it holds (reorder buffer, held tasks) for the
    /// caller (the worker running it) to drop. Entries still in ready queues are dropped when
    /// a worker takes them.
    pub(crate) fn poison(&self) -> Vec<Task> {
        self.mark_poisoned();
        self.take_held_tasks()
    }

    /// Held mode: the queued tasks, taken out (and the deferred tickets cancelled) so that they
    /// can be dropped: a poisoned or shut-down sequence. Direct mode: nothing (buffered entries
    /// keep their positions and are dropped when their turn comes).
    pub(crate) fn take_held_tasks(&self) -> Vec<Task> {
        let mut cold = self.cold.lock();
        let out = match cold.as_mut() {
            Some(c) if !c.held.is_empty() => {
                c.deferred = 0;
                self.bump_epoch();
                c.held.drain(..).map(|(task, _)| task).collect()
            }
            _ => Vec::new(),
        };
        Self::free_if_empty(&mut cold);
        out
    }

    /// Shutdown has completed: the entries parked in the reorder buffer can never run.
    pub(crate) fn take_buffered(&self) -> Vec<Work> {
        let mut cold = self.cold.lock();
        let out = match cold.as_mut() {
            Some(c) => c.buffer.drain(..).collect(),
            None => Vec::new(),
        };
        self.state.fetch_and(!BUFFERED, Ordering::Relaxed);
        Self::free_if_empty(&mut cold);
        out
    }

    #[inline]
    pub(crate) fn is_poisoned(&self) -> bool {
        self.state.load(Ordering::Acquire) & POISONED != 0
    }

    /// Takes the value of local slot `id` out (so that a slot's closure may use other slots).
    pub(crate) fn take_local(&self, id: u64) -> Option<Box<dyn Any + Send>> {
        let mut cold = self.cold.lock();
        let v = cold
            .as_mut()
            .and_then(|c| c.locals.as_mut())
            .and_then(|m| m.remove(&id));
        Self::free_if_empty(&mut cold);
        v
    }

    /// Puts a value into local slot `id`, returning the previous one.
    pub(crate) fn put_local(&self, id: u64, v: Box<dyn Any + Send>) -> Option<Box<dyn Any + Send>> {
        self.cold
            .lock()
            .get_or_insert_with(Box::default)
            .locals
            .get_or_insert_with(Box::default)
            .insert(id, v)
    }

    fn free_if_empty(cold: &mut Option<Box<Cold>>) {
        if cold.as_ref().is_some_and(|c| c.is_empty()) {
            *cold = None;
        }
    }

    /// The position that runs next (loom models and tests).
    #[cfg(test)]
    pub(crate) fn next_run(&self) -> u32 {
        pos_of(self.state.load(Ordering::Acquire))
    }

    /// `true` while a task of the sequence runs (loom models and tests).
    #[cfg(test)]
    pub(crate) fn is_running(&self) -> bool {
        self.state.load(Ordering::Acquire) & RUNNING != 0
    }
}

impl Drop for Sequence {
    /// Sequence-local values are dropped here, when the last reference to the sequence goes
    /// (possibly on a worker, after the last task): each value and each leftover task in its
    /// own guard, so a panicking destructor is caught and logged instead of unwinding through
    /// the scheduler, and in the sequence's context (its token is current), as Chromium
    /// destroys SequenceLocalStorage in the sequence's environment.
    fn drop(&mut self) {
        let Some(cold) = self.cold.lock().take() else {
            return;
        };
        let Cold {
            buffer,
            held,
            locals,
            ..
        } = *cold;
        crate::base::unwind::drop_each_quietly(buffer);
        crate::base::unwind::drop_each_quietly(held.into_iter().map(|(task, _)| task));
        if let Some(locals) = locals {
            let scope =
                crate::engine::current::TaskScope::enter(self.token, None, self.may_block());
            crate::base::unwind::drop_each_quietly(locals.into_values());
            let _ = scope.exit();
        }
    }
}

/// A parallel runner's identity (`TaskRunner`): a [`Sequence`] in parallel mode, held here
/// once, and once more by each of the runner's ready-queue entries (its tasks queued or
/// running). So the runner's tasks in flight are the sequence's strong count minus this one
/// reference ([`in_flight`](Self::in_flight)), which costs a task nothing beyond the entry's
/// reference. A delayed task holds the `ParallelRunner` instead, so that it is not in flight
/// until it ripens.
#[derive(Debug)]
pub(crate) struct ParallelRunner {
    pub(crate) seq: Arc<Sequence>,
    /// The counters of a named runner (also in the sequence's cold part), here for posts to
    /// find without taking the cold lock. A plain std `OnceLock`: set once, by `named`.
    stats: std::sync::OnceLock<StdArc<RunnerStats>>,
}

impl ParallelRunner {
    pub(crate) fn new(traits: TaskTraits) -> Self {
        ParallelRunner {
            seq: Arc::new(Sequence::new_parallel(traits)),
            stats: std::sync::OnceLock::new(),
        }
    }

    /// Names the runner; returns its counters if this call created them.
    pub(crate) fn set_name(&self, name: StdArc<str>) -> Option<StdArc<RunnerStats>> {
        let created = self.seq.set_name(name);
        if let Some(stats) = &created {
            let _ = self.stats.set(StdArc::clone(stats));
        }
        created
    }

    /// The named runner's counters.
    #[inline]
    pub(crate) fn stats(&self) -> Option<&StdArc<RunnerStats>> {
        self.stats.get()
    }

    /// The runner's tasks in the ready queues or running. When it reads 0, every task that
    /// was in flight has run and its effects are visible: an entry's reference is dropped
    /// (`Release`) after its task ran, and the fence after a zero read acquires it.
    pub(crate) fn in_flight(&self) -> usize {
        let n = Arc::strong_count(&self.seq) - 1;
        if n == 0 {
            crate::base::shim::fence(Ordering::Acquire);
        }
        n
    }
}

impl fmt::Debug for Sequence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sequence")
            .field("token", &self.token)
            .field("priority", &self.priority())
            .field("shutdown", &self.shutdown())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::panic::Location;

    fn seq() -> Arc<Sequence> {
        Arc::new(Sequence::new(TaskTraits::default(), Home::Pool))
    }

    fn entry(s: &Arc<Sequence>) -> Work {
        let pos = s.next_position();
        Work::sequenced(
            Task::new(Box::new(|| {}), Location::caller()),
            Arc::clone(s),
            pos,
            false,
        )
    }

    #[test]
    fn a_sequence_is_at_most_one_cache_line_with_its_counts() {
        // 48 bytes + the `Arc`'s two counts: an idle sequence costs 64 bytes.
        assert!(
            std::mem::size_of::<Sequence>() <= 48,
            "{}",
            std::mem::size_of::<Sequence>()
        );
    }

    #[test]
    fn entries_run_in_position_order_whatever_order_workers_take_them() {
        let s = seq();
        let (a, b, c) = (entry(&s), entry(&s), entry(&s));
        // c and b arrive before a: both are buffered.
        assert!(matches!(s.begin(c), Begin::Later));
        assert!(matches!(s.begin(b), Begin::Later));
        let Begin::Run(a) = s.begin(a) else {
            panic!("a is next")
        };
        assert_eq!(a.meta, 0);
        let b = s.finish().expect("b was waiting in the buffer");
        assert_eq!(b.meta, 1);
        let c = s.finish().expect("then c");
        assert_eq!(c.meta, 2);
        assert!(s.finish().is_none());
        assert!(!s.is_running());
        assert_eq!(s.next_run(), 3);
        assert!(s.cold.lock().is_none(), "an idle sequence keeps no buffer");
    }

    #[test]
    fn a_later_entry_waits_while_the_sequence_runs() {
        let s = seq();
        let (a, b) = (entry(&s), entry(&s));
        let Begin::Run(_a) = s.begin(a) else { panic!() };
        assert!(matches!(s.begin(b), Begin::Later));
        assert!(s.finish().is_some());
        assert!(s.finish().is_none());
    }

    #[test]
    fn the_next_entry_in_transit_finds_the_sequence_idle() {
        let s = seq();
        let (a, b, c) = (entry(&s), entry(&s), entry(&s));
        let Begin::Run(_) = s.begin(a) else { panic!() };
        assert!(matches!(s.begin(c), Begin::Later)); // c buffered, b in transit
        assert!(s.finish().is_none(), "b is not in the buffer yet");
        let Begin::Run(_) = s.begin(b) else {
            panic!("b is next and the sequence idle")
        };
        assert_eq!(s.finish().map(|w| w.meta), Some(2));
        assert!(s.finish().is_none());
    }

    #[test]
    fn held_tickets_run_the_queue_in_order_and_rekey() {
        let s = Arc::new(Sequence::new_held(TaskTraits::default(), Home::Pool));
        let mut tickets = Vec::new();
        for _ in 0..3 {
            let (epoch, _) = s.push_held(Task::new(Box::new(|| {}), Location::caller()), false);
            tickets.push(Work::ticket(Arc::clone(&s), epoch));
        }
        let t3 = tickets.pop().unwrap();
        let t2 = tickets.pop().unwrap();
        let t1 = tickets.pop().unwrap();
        let Begin::Run(_) = s.begin(t1) else { panic!() };
        assert!(
            matches!(s.begin(t2), Begin::Later),
            "deferred while running"
        );
        assert!(s.finish().is_some(), "runs the deferred one");
        // Re-key: t3 goes stale, one fresh ticket covers the one task left.
        let (epoch, n) = s.set_priority_held(TaskPriority::BestEffort);
        assert_eq!(n, 1);
        assert!(s.finish().is_none());
        assert!(matches!(s.begin(t3), Begin::Later), "stale");
        let Begin::Run(_) = s.begin(Work::ticket(Arc::clone(&s), epoch)) else {
            panic!()
        };
        assert!(s.finish().is_none());
        assert!(s.cold.lock().is_none());
    }

    #[test]
    fn a_name_keeps_the_counters_and_frees_nothing_early() {
        let s = seq();
        assert!(s.name().is_none() && s.stats().is_none());
        assert!(
            s.set_name("first".into()).is_some(),
            "the first name creates counters"
        );
        assert!(
            s.set_name("second".into()).is_none(),
            "a later name keeps them"
        );
        assert_eq!(s.name().as_deref(), Some("second"));
        let (a, b) = (entry(&s), entry(&s));
        let Begin::Run(_) = s.begin(a) else { panic!() };
        assert!(s.finish().is_none());
        let Begin::Run(_) = s.begin(b) else { panic!() };
        assert!(s.finish().is_none());
        assert_eq!(
            s.name().as_deref(),
            Some("second"),
            "the cold part keeps the name"
        );
    }

    #[test]
    fn a_parallel_runner_counts_the_entries_that_hold_it() {
        let p = ParallelRunner::new(TaskTraits::default());
        assert!(p.seq.is_parallel() && !seq().is_parallel());
        assert_eq!(p.in_flight(), 0);
        let entries: Vec<_> = (0..2)
            .map(|_| {
                Work::of_runner(
                    Task::new(Box::new(|| {}), Location::caller()),
                    Arc::clone(&p.seq),
                    false,
                )
            })
            .collect();
        assert_eq!(p.in_flight(), 2);
        drop(entries);
        assert_eq!(p.in_flight(), 0);
        assert!(!p.seq.is_poisoned());
    }
}
