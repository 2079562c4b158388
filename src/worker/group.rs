//! `Group`: the thread group. One lock (`synced`) guards the ready queue, the idle stack and the
//! counters; posters do not take it on the hot path: they append to the **inbox**, a second,
//! short lock that workers drain into the ready queue under the group lock before every pick.
//! Every side effect (unpark, spawn, dropping discarded tasks) is returned as [`Wakeups`] and
//! performed after the locks are released, so no thread is ever woken under a scheduler lock.
//!
//! # Why an inbox
//!
//! With a single lock, every post contends with every worker's pick. The inbox lets a post cost
//! one short, mostly uncontended lock while workers are busy. Ordering is unchanged: a worker
//! drains the inbox under the group lock before it picks (skipping the lock when the inbox's
//! Release/Acquire non-empty hint says it is empty), so every post that completed
//! before the pick is considered, keyed exactly as if it had been pushed directly.
//!
//! # Not losing a wake-up: the `sleepy` handshake
//!
//! `sleepy` counts workers that could run more work but are not awake: parked workers plus
//! workers not yet spawned (`idle.len() + capacity - workers.len()`, where capacity is
//! `max_workers` plus tasks inside `blocking()`; always 0 in seeded test mode). It only changes under
//! the group lock.
//!
//! | side | steps (all `SeqCst`) |
//! |---|---|
//! | poster | 1. push into the inbox (inbox lock) 2. load `sleepy`: if 0, done; else take the group lock, drain, wake/spawn (`ensure_enough_workers`) |
//! | worker about to park | 1. (group lock held) `sleepy += 1` 2. drain the inbox again 3. if that found work, `sleepy -= 1` and run it; else stay on the idle stack and park |
//!
//! Either the poster's load sees the worker's increment (and wakes it), or the worker's second
//! drain sees the poster's item. The loom model `loom_group_park_vs_post` checks this.
//!
//! Lock order: group lock → inbox lock (the inbox lock is never held while taking any other
//! lock). A sequence's lock is never held together with either.

use crate::pool::Inner;
use crate::scheduler::{OneOff, ReadyQueue, Sequence, SortKey, Source};
use crate::sync::{Arc, AtomicBool, AtomicUsize, Condvar, Mutex, Ordering};
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
    /// Nothing to do right now, and the caller asked not to be parked: spin briefly on
    /// [`Group::has_pending`] and ask again.
    Retry,
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
    /// A test environment waits for the group to go quiet and it just did.
    notify_quiet: bool,
}

impl Wakeups {
    fn unpark(&mut self, w: Arc<WorkerShared>) {
        if self.unpark_one.is_none() {
            self.unpark_one = Some(w);
        } else {
            self.unpark_more.push(w);
        }
    }

    fn is_empty(&self) -> bool {
        self.unpark_one.is_none()
            && self.unpark_more.is_empty()
            && self.spawn.is_empty()
            && self.discard.is_empty()
            && !self.notify_quiet
    }

    /// Performs the deferred side effects. Must be called with no scheduler lock held.
    #[inline]
    pub(crate) fn run(self, inner: &Arc<Inner>) {
        if !self.is_empty() {
            self.run_slow(inner);
        }
    }

    #[cold]
    fn run_slow(self, inner: &Arc<Inner>) {
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
        if self.notify_quiet {
            inner.group.quiet_cv.notify_all();
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

/// A source that became ready when delayed tasks ripened (see [`Group::push_ripe_batch`]).
#[derive(Debug)]
pub(crate) enum Ready {
    /// A sequence that went idle → queued, with its key.
    Sequence(SortKey, Arc<Sequence>),
    /// A ripe one-off task (keyed by when it ripened).
    OneOff(OneOff),
}

/// Something posted, waiting in the inbox to be keyed into the ready queue.
#[derive(Debug)]
enum Pending {
    Sequence(SortKey, Arc<Sequence>),
    OneOff(OneOff),
    RipeOneOff(OneOff),
}

impl Pending {
    fn into_source(self) -> Source {
        match self {
            Pending::Sequence(_, s) => Source::Sequence(s),
            Pending::OneOff(o) | Pending::RipeOneOff(o) => Source::Single(o),
        }
    }
}

#[derive(Debug, Default)]
struct Inbox {
    items: Vec<Pending>,
    /// Shutdown completed: nothing is accepted (posters discard their item themselves).
    closed: bool,
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
    /// Workers that left their loop for good (completion or wind-down), still to be joined.
    /// Reclaimed idle workers are not kept: their threads are detached.
    exited: Vec<Arc<WorkerShared>>,
    next_index: usize,
    /// Tasks inside `blocking()` scopes: each raises the capacity by one (a compensating worker
    /// may run while it waits).
    blocked: usize,
    /// Of those, best-effort tasks: each also raises the best-effort cap by one (Chromium does
    /// the same), or blocked best-effort work would starve the rest.
    blocked_best_effort: usize,
    /// Shutdown completed: queued work is discarded, workers exit.
    completed: bool,
    /// Every handle to the pool is gone: workers exit once the queue is empty.
    terminating: bool,
    /// Test environments waiting in `wait_quiet`.
    quiet_waiters: usize,
    /// Seeded single-thread test mode: no worker threads; the test thread takes the work.
    manual: bool,
    /// The inbox's other buffer: swapped in on every drain so that draining never allocates.
    spare: Vec<Pending>,
}

/// The thread group.
#[derive(Debug)]
pub(crate) struct Group {
    synced: Mutex<Synced>,
    /// Signalled (after unlock) when the group goes quiet while a test environment waits.
    quiet_cv: Condvar,
    inbox: Mutex<Inbox>,
    /// Workers that could take work but are not awake (see the module doc). Written under the
    /// group lock only.
    sleepy: AtomicUsize,
    /// Hint that the inbox is non-empty, for spinning workers (written under the inbox lock;
    /// read without it, so it may be stale: the park handshake does not rely on it).
    pending: AtomicBool,
    /// No worker is alive and the last attempt to start one failed (the OS refused a thread):
    /// posts retry the start and are refused while it keeps failing (see `Inner::admit`).
    stalled: AtomicBool,
    /// Mirror of `Synced::manual` for lock-free reads (set once, before any post).
    #[cfg(feature = "test-util")]
    manual_flag: AtomicBool,
    pub(crate) max_workers: usize,
    pub(crate) max_best_effort: usize,
}

impl Group {
    pub(crate) fn new(max_workers: usize, max_best_effort: usize) -> Self {
        Group {
            synced: Mutex::new(Synced::default()),
            quiet_cv: Condvar::new(),
            inbox: Mutex::new(Inbox::default()),
            sleepy: AtomicUsize::new(max_workers),
            pending: AtomicBool::new(false),
            stalled: AtomicBool::new(false),
            #[cfg(feature = "test-util")]
            manual_flag: AtomicBool::new(false),
            max_workers,
            max_best_effort,
        }
    }

    /// Pushes a sequence that went idle → queued.
    pub(crate) fn push_sequence(&self, key: SortKey, seq: Arc<Sequence>) -> Wakeups {
        self.post(Pending::Sequence(key, seq))
    }

    /// Pushes sources that became ready together (tasks that ripened at one moment) in one
    /// step: a worker's drain sees all of them or none.
    pub(crate) fn push_ripe_batch(&self, ready: Vec<Ready>) -> Wakeups {
        {
            let mut ib = self.inbox.lock();
            if !ib.closed {
                ib.items.extend(ready.into_iter().map(|r| match r {
                    Ready::Sequence(key, seq) => Pending::Sequence(key, seq),
                    Ready::OneOff(one) => Pending::RipeOneOff(one),
                }));
                if !self.pending.load(Ordering::Relaxed) {
                    self.pending.store(true, Ordering::Release);
                }
                drop(ib);
                if self.sleepy.load(Ordering::SeqCst) == 0 {
                    return Wakeups::default();
                }
                return self.wake_slow();
            }
        }
        let mut w = Wakeups::default();
        w.discard.extend(ready.into_iter().map(|r| match r {
            Ready::Sequence(_, seq) => Source::Sequence(seq),
            Ready::OneOff(one) => Source::Single(one),
        }));
        w
    }

    /// Pushes an immediate one-off task (`ripe`: a forwarded delayed one).
    pub(crate) fn push_one_off(&self, one: OneOff, ripe: bool) -> Wakeups {
        self.post(if ripe {
            Pending::RipeOneOff(one)
        } else {
            Pending::OneOff(one)
        })
    }

    #[inline]
    fn post(&self, p: Pending) -> Wakeups {
        {
            let mut ib = self.inbox.lock();
            if !ib.closed {
                ib.items.push(p);
                if !self.pending.load(Ordering::Relaxed) {
                    // Release: a worker that sees the hint (Acquire) sees the item's post.
                    self.pending.store(true, Ordering::Release);
                }
                drop(ib);
                if self.sleepy.load(Ordering::SeqCst) == 0 {
                    return Wakeups::default();
                }
                return self.wake_slow();
            }
        }
        let mut w = Wakeups::default();
        w.discard.push(p.into_source());
        w
    }

    /// A post found that some worker may be asleep: drain and wake under the group lock.
    #[cold]
    fn wake_slow(&self) -> Wakeups {
        let mut w = Wakeups::default();
        let mut s = self.synced.lock();
        self.drain_inbox(&mut s, &mut w);
        self.ensure_enough_workers(&mut s, &mut w);
        w
    }

    /// [`drain_inbox`](Self::drain_inbox) unless the non-empty hint says there is nothing:
    /// saves the inbox lock on the hot path. Any post that happened-before this call is seen
    /// (the hint is stored with Release under the inbox lock and loaded with Acquire); a post
    /// racing with it is drained at the next pick, or by the park handshake, which always
    /// drains.
    #[inline]
    fn drain_inbox_if_pending(&self, s: &mut Synced, w: &mut Wakeups) {
        if self.pending.load(Ordering::Acquire) {
            self.drain_inbox(s, w);
        }
    }

    /// Moves everything from the inbox into the ready queue (group lock held).
    fn drain_inbox(&self, s: &mut Synced, w: &mut Wakeups) {
        let mut items = std::mem::take(&mut s.spare);
        {
            let mut ib = self.inbox.lock();
            if ib.items.is_empty() {
                drop(ib);
                s.spare = items;
                return;
            }
            std::mem::swap(&mut ib.items, &mut items);
            self.pending.store(false, Ordering::Relaxed);
        }
        for p in items.drain(..) {
            if s.completed {
                w.discard.push(p.into_source());
                continue;
            }
            match p {
                Pending::Sequence(mut key, seq) => {
                    // The priority may have been updated since the key was made.
                    key.priority = seq.priority();
                    s.queue.push_sequence(key, seq)
                }
                Pending::OneOff(one) => s.queue.push_one_off(one),
                Pending::RipeOneOff(one) => s.queue.push_ripe_one_off(one),
            }
        }
        s.spare = items;
    }

    /// A worker is about to park with nothing queued: give back the buffers of a burst (ready
    /// queue, inbox), so that memory follows the live work.
    fn shrink_if_idle(&self, s: &mut Synced) {
        const KEEP: usize = 64;
        s.queue.shrink_if_empty();
        if s.spare.capacity() > KEEP {
            s.spare = Vec::new();
        }
        let mut ib = self.inbox.lock();
        if ib.items.is_empty() && ib.items.capacity() > KEEP {
            ib.items = Vec::new();
        }
    }

    /// Workers that may run tasks at once: `max_workers`, plus one per task blocked in a
    /// `blocking()` scope.
    fn capacity(&self, s: &Synced) -> usize {
        self.max_workers + s.blocked
    }

    /// Best-effort tasks that may run at once (the cap, plus blocked best-effort tasks).
    fn best_effort_capacity(&self, s: &Synced) -> usize {
        self.max_best_effort + s.blocked_best_effort
    }

    fn update_sleepy(&self, s: &Synced) {
        if s.manual {
            // Nobody to wake: posts only fill the inbox.
            self.sleepy.store(0, Ordering::SeqCst);
            return;
        }
        let sleepy = s.idle.len() + self.capacity(s).saturating_sub(s.workers.len());
        self.sleepy.store(sleepy, Ordering::SeqCst);
    }

    /// Takes the best runnable source (group lock held), honouring the best-effort cap.
    fn pick(&self, s: &mut Synced) -> Option<Work> {
        if s.running >= self.capacity(s) {
            // More workers awake than capacity (a blocking scope just ended): stand down.
            return None;
        }
        match s.queue.peek_priority() {
            Some(p)
                if p != TaskPriority::BestEffort
                    || s.running_best_effort < self.best_effort_capacity(s) =>
            {
                let (source, prio) = s.queue.pop().expect("peeked");
                s.running += 1;
                if prio == TaskPriority::BestEffort {
                    s.running_best_effort += 1;
                }
                Some(match source {
                    Source::Sequence(seq) => Work::Sequence(seq, prio),
                    Source::Single(one) => Work::Single(one, prio),
                })
            }
            _ => None,
        }
    }

    /// `true` if something may be waiting in the inbox (a racy hint for spinning workers).
    #[inline]
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn has_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Hands back finished work and takes the next piece, in one critical section. With
    /// `may_park == false` an empty queue yields [`Work::Retry`] instead of registering the
    /// worker as idle.
    pub(crate) fn next_work(
        &self,
        me: &Arc<WorkerShared>,
        finished: Option<Finished>,
        may_park: bool,
    ) -> (Work, Wakeups) {
        let mut w = Wakeups::default();
        let mut s = self.synced.lock();
        let mut requeue = None;
        if let Some(f) = finished {
            s.running -= 1;
            if f.priority == TaskPriority::BestEffort {
                s.running_best_effort -= 1;
            }
            if let Some((key, seq)) = f.requeue {
                if s.completed {
                    w.discard.push(Source::Sequence(seq));
                } else {
                    requeue = Some((key, seq));
                }
            }
        }
        self.drain_inbox_if_pending(&mut s, &mut w);
        if let Some((mut key, seq)) = requeue {
            // Read under the group lock: either this sees a concurrent `update_priority`, or
            // that call (which takes this lock) finds the sequence in the heap afterwards.
            key.priority = seq.priority();
            // Fast path: if the sequence just run is still the best source, pushing it into the
            // heap and popping it again would hand it straight back. Same order, no heap work.
            let runnable = s.running < self.capacity(&s)
                && (key.priority != TaskPriority::BestEffort
                    || s.running_best_effort < self.best_effort_capacity(&s));
            if runnable && s.queue.best_key().is_none_or(|best| key > best) {
                s.running += 1;
                if key.priority == TaskPriority::BestEffort {
                    s.running_best_effort += 1;
                }
                self.ensure_enough_workers(&mut s, &mut w);
                return (Work::Sequence(seq, key.priority), w);
            }
            s.queue.push_sequence(key, seq);
        }
        let work = match self.pick(&mut s) {
            Some(work) => work,
            None if s.completed || (s.terminating && s.queue.is_empty()) => {
                Self::remove_worker(&mut s, me);
                s.exited.push(Arc::clone(me));
                // Workers parked earlier (e.g. by the best-effort cap) must exit too.
                for idle in std::mem::take(&mut s.idle) {
                    w.unpark(idle);
                }
                self.update_sleepy(&s);
                Work::Exit
            }
            None if !may_park => Work::Retry,
            None => {
                // About to park: announce it, then look at the inbox once more (the handshake
                // in the module doc).
                s.idle.push(Arc::clone(me));
                self.update_sleepy(&s);
                self.drain_inbox(&mut s, &mut w);
                match self.pick(&mut s) {
                    Some(work) => {
                        s.idle.pop();
                        self.update_sleepy(&s);
                        work
                    }
                    None => {
                        self.shrink_if_idle(&mut s);
                        Work::Idle
                    }
                }
            }
        };
        // Work left behind (a re-queued sequence, or more queued sources than workers) may need
        // another worker.
        self.ensure_enough_workers(&mut s, &mut w);
        if s.quiet_waiters > 0 && s.running == 0 && s.queue.is_empty() {
            w.notify_quiet = true;
        }
        (work, w)
    }

    /// Chromium's EnsureEnoughWorkers: wake or create workers until the awake ones cover the
    /// demand (running tasks + queued sources, best-effort demand capped).
    fn ensure_enough_workers(&self, s: &mut Synced, w: &mut Wakeups) {
        if s.completed || s.manual {
            return;
        }
        let queued_be = s.queue.count(TaskPriority::BestEffort);
        let queued_fg = s.queue.len() - queued_be;
        let be_demand = (s.running_best_effort + queued_be)
            .min(self.best_effort_capacity(s))
            .max(s.running_best_effort);
        let fg_demand = (s.running - s.running_best_effort) + queued_fg;
        let desired = (be_demand + fg_demand).min(self.capacity(s));
        let mut awake = s.workers.len() - s.idle.len();
        if awake >= desired {
            return;
        }
        while awake < desired {
            if let Some(idle) = s.idle.pop() {
                w.unpark(idle);
            } else if s.workers.len() < self.capacity(s) {
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
        self.update_sleepy(s);
    }

    fn remove_worker(s: &mut Synced, me: &Arc<WorkerShared>) {
        if let Some(i) = s.workers.iter().position(|x| Arc::ptr_eq(x, me)) {
            s.workers.swap_remove(i);
        }
    }

    /// A task entered a `blocking()` scope: one more worker may run meanwhile.
    pub(crate) fn begin_blocking(&self, best_effort: bool) -> Wakeups {
        let mut w = Wakeups::default();
        let mut s = self.synced.lock();
        s.blocked += 1;
        if best_effort {
            s.blocked_best_effort += 1;
        }
        // Publish the raised capacity *before* draining the inbox (the handshake a worker does
        // before it parks): a post that lands after the drain then sees `sleepy > 0` and takes
        // the group lock to wake someone, instead of leaving its task in the inbox while the
        // only worker blocks.
        self.update_sleepy(&s);
        self.drain_inbox(&mut s, &mut w);
        self.ensure_enough_workers(&mut s, &mut w);
        self.update_sleepy(&s);
        w
    }

    /// The scope ended: capacity goes back; excess workers stand down at their next pick.
    pub(crate) fn end_blocking(&self, best_effort: bool) {
        let mut s = self.synced.lock();
        s.blocked -= 1;
        if best_effort {
            s.blocked_best_effort -= 1;
        }
        self.update_sleepy(&s);
    }

    /// `seq`'s priority changed: re-key it if it is waiting in the queue (or the inbox), and
    /// wake a worker if that made work runnable (e.g. best-effort raised above the cap).
    pub(crate) fn update_priority(&self, seq: &Arc<Sequence>) -> Wakeups {
        let mut w = Wakeups::default();
        let mut s = self.synced.lock();
        self.drain_inbox(&mut s, &mut w);
        // The sequence's priority as of now (under the lock), not the caller's argument: two
        // racing updates then leave the key equal to whichever priority was stored last.
        if s.queue.update_sequence_priority(seq, seq.priority()) {
            self.ensure_enough_workers(&mut s, &mut w);
        }
        w
    }

    /// A worker timed out while idle: if it is still on the idle stack it leaves the pool.
    pub(crate) fn try_reclaim(&self, me: &Arc<WorkerShared>) -> bool {
        let mut s = self.synced.lock();
        match s.idle.iter().position(|x| Arc::ptr_eq(x, me)) {
            Some(i) => {
                s.idle.remove(i);
                Self::remove_worker(&mut s, me);
                self.update_sleepy(&s);
                true
            }
            None => false,
        }
    }

    /// A worker thread could not be spawned: forget it. With no worker left alive the group is
    /// stalled: nothing queued can run until a later start succeeds.
    pub(crate) fn spawn_failed(&self, me: &Arc<WorkerShared>) {
        let mut s = self.synced.lock();
        Self::remove_worker(&mut s, me);
        if s.workers.is_empty() {
            self.stalled.store(true, Ordering::SeqCst);
        }
        self.update_sleepy(&s);
    }

    /// A worker thread started: the group is not stalled.
    #[inline]
    pub(crate) fn spawn_succeeded(&self) {
        if self.stalled.load(Ordering::Relaxed) {
            self.stalled.store(false, Ordering::SeqCst);
        }
    }

    /// `true` while no worker is alive and the last start failed.
    #[inline]
    pub(crate) fn is_stalled(&self) -> bool {
        self.stalled.load(Ordering::Relaxed)
    }

    /// Stalled: asks for one worker to be started again (the caller runs the wake-ups, which
    /// spawn it; a failure marks the group stalled again).
    pub(crate) fn retry_start(&self) -> Wakeups {
        let mut w = Wakeups::default();
        let mut s = self.synced.lock();
        if s.workers.is_empty() && !s.completed && !s.manual {
            let index = s.next_index;
            s.next_index += 1;
            let worker = Arc::new(WorkerShared::new(index));
            s.workers.push(Arc::clone(&worker));
            w.spawn.push(worker);
            self.update_sleepy(&s);
        }
        w
    }

    /// Shutdown of a stalled group: takes everything queued (no thread can run it) so that the
    /// caller can discard it and release its shutdown items. `None` if a worker is alive.
    pub(crate) fn take_stalled_work(&self) -> Option<Vec<Source>> {
        let mut w = Wakeups::default();
        let mut s = self.synced.lock();
        if !s.workers.is_empty() || !self.is_stalled() {
            return None;
        }
        self.drain_inbox(&mut s, &mut w);
        let mut out = s.queue.drain();
        out.append(&mut w.discard);
        Some(out)
    }

    /// Shutdown completed: close the inbox, take everything queued (to be discarded) and wake
    /// every idle worker so it exits. Later pushes are discarded by their posters.
    pub(crate) fn complete(&self) -> Wakeups {
        let mut w = Wakeups::default();
        let mut s = self.synced.lock();
        s.completed = true;
        {
            let mut ib = self.inbox.lock();
            ib.closed = true;
            w.discard
                .extend(ib.items.drain(..).map(Pending::into_source));
        }
        w.discard.extend(s.queue.drain());
        for idle in std::mem::take(&mut s.idle) {
            w.unpark(idle);
        }
        self.update_sleepy(&s);
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
            self.update_sleepy(&s);
        }
        w
    }

    /// Takes the workers that exited and were not joined yet.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn take_exited(&self) -> Vec<Arc<WorkerShared>> {
        std::mem::take(&mut self.synced.lock().exited)
    }

    /// Test environments: blocks until no task runs and nothing is queued (inbox included).
    /// Workers signal `quiet_cv` when they find the group quiet while someone waits here.
    #[cfg(feature = "test-util")]
    pub(crate) fn wait_quiet(&self, inner: &Arc<Inner>) {
        let mut s = self.synced.lock();
        loop {
            let mut w = Wakeups::default();
            self.drain_inbox(&mut s, &mut w);
            self.ensure_enough_workers(&mut s, &mut w);
            if !w.is_empty() {
                drop(s);
                w.run(inner);
                s = self.synced.lock();
                continue;
            }
            if s.queue.is_empty() && s.running == 0 && !self.pending.load(Ordering::Acquire) {
                return;
            }
            s.quiet_waiters += 1;
            self.quiet_cv.wait(&mut s);
            s.quiet_waiters -= 1;
        }
    }

    /// Seeded single-thread test mode: from now on no worker thread is started or woken.
    #[cfg(feature = "test-util")]
    pub(crate) fn set_manual(&self) {
        let mut s = self.synced.lock();
        s.manual = true;
        self.manual_flag.store(true, Ordering::Release);
        self.update_sleepy(&s);
    }

    /// `true` in seeded single-thread test mode.
    #[cfg(feature = "test-util")]
    #[inline]
    pub(crate) fn is_manual(&self) -> bool {
        self.manual_flag.load(Ordering::Acquire)
    }

    /// Seeded test mode: the test thread takes a source chosen by `r` among the ready ones of
    /// the highest priority.
    #[cfg(feature = "test-util")]
    pub(crate) fn take_seeded(&self, r: u64) -> (Option<Work>, Wakeups) {
        let mut w = Wakeups::default();
        let mut s = self.synced.lock();
        self.drain_inbox(&mut s, &mut w);
        let work = s.queue.pop_random(r).map(|(source, prio)| {
            s.running += 1;
            if prio == TaskPriority::BestEffort {
                s.running_best_effort += 1;
            }
            match source {
                Source::Sequence(seq) => Work::Sequence(seq, prio),
                Source::Single(one) => Work::Single(one, prio),
            }
        });
        (work, w)
    }

    /// Seeded test mode: hands back what the test thread ran.
    #[cfg(feature = "test-util")]
    pub(crate) fn hand_back(&self, f: Finished) -> Wakeups {
        let mut w = Wakeups::default();
        let mut s = self.synced.lock();
        s.running -= 1;
        if f.priority == TaskPriority::BestEffort {
            s.running_best_effort -= 1;
        }
        if let Some((mut key, seq)) = f.requeue {
            if s.completed {
                w.discard.push(Source::Sequence(seq));
            } else {
                key.priority = seq.priority();
                s.queue.push_sequence(key, seq);
            }
        }
        w
    }

    /// Test environments: sources queued (inbox included) and tasks running, a snapshot.
    #[cfg(feature = "test-util")]
    pub(crate) fn load(&self) -> (usize, usize) {
        let s = self.synced.lock();
        (s.queue.len() + self.inbox.lock().items.len(), s.running)
    }

    /// A snapshot of every live worker.
    pub(crate) fn workers(&self) -> Vec<Arc<WorkerShared>> {
        self.synced.lock().workers.clone()
    }

    /// Queued sources, including those still in the inbox (a snapshot; loom models).
    #[cfg(all(test, loom))]
    pub(crate) fn queued(&self) -> usize {
        let s = self.synced.lock();
        s.queue.len() + self.inbox.lock().items.len()
    }
}
