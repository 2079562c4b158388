//! The worker loop, the worker's local queues, and its running slot.
//!
//! # Local queues
//!
//! Each worker owns two crossbeam deques that other workers may steal from:
//!
//! * `fifo`: a batch taken from an injector in one steal (fewer trips to the shared queue), and
//!   work posted by the worker's own tasks after `next`;
//! * `next`: one entry posted by the worker's own running task (a reply, the next hop of a
//!   ping-pong): the worker runs it as soon as the task ends, on a warm cache, without waking
//!   anybody. Other workers steal it only after a short grace period (Go's `runnext`), so a
//!   worker that finishes quickly keeps it; one that keeps running does not hold it hostage.
//!
//! A post from a task goes to the local queues only when no entry of the same or a higher
//! priority waits in the injectors (so nothing older is overtaken) and the local queues hold
//! that priority only; best-effort work always goes through its injector (the cap is counted
//! when it is taken). A worker takes local work only while no higher priority waits in an
//! injector.

use std::cell::{Cell, RefCell};
use std::panic::Location;
use std::rc::Rc;
use std::time::Duration;

use crate::base::location_cell::LocationCell;
use crate::engine::scheduler::Work;

use crate::base::shim::{thread, Arc, AtomicU64, Deque, Mutex, Ordering, Steal, Stealer};
use crate::base::traits::{ShutdownBehavior, TaskPriority};
use crate::base::unwind::AbortOnUnwind;
use crate::engine::tracker::Tracker;
use crate::engine::worker::{Group, Parker, Parking, Wake};

/// A task that was running when a report was taken (see
/// [`ShutdownTimedOut`](crate::ShutdownTimedOut)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunningTask {
    /// Where the task was posted from.
    pub posted_from: &'static Location<'static>,
    /// The priority it runs at.
    pub priority: TaskPriority,
    /// Its shutdown behaviour.
    pub shutdown_behavior: ShutdownBehavior,
    /// `true` for a task of a sequenced or single-thread runner.
    pub sequenced: bool,
}

/// What a worker needs from its pool: the group, and how to run one entry.
pub(crate) trait Host: Send + Sync + Sized + 'static {
    fn group(&self) -> &Group;
    /// Runs one entry taken from a ready queue (and whatever its sequence hands on).
    fn run(this: &Arc<Self>, work: Work, me: &WorkerShared);
    /// Idle workers exit after this long without work.
    fn idle_timeout(&self) -> Duration;
    /// Called on the worker's thread first and last (thread-local set-up and tear-down).
    fn thread_started(this: &Arc<Self>, me: &Arc<WorkerShared>);
    fn thread_exiting(&self);
    /// Starts a worker thread the group asked for.
    fn spawn(this: &Arc<Self>, worker: Arc<WorkerShared>);
    /// Drops entries that will never run (shutdown completed).
    fn discard(&self, works: Vec<Work>);
}

impl Wake {
    /// Performs the deferred side effect (starting a thread). Call with no lock held.
    #[inline]
    pub(crate) fn run<H: Host>(self, host: &Arc<H>) {
        if let Some(w) = self.spawn {
            H::spawn(host, w);
        }
    }
}

// ---- running slot -----------------------------------------------------------------------------

const SLOT_RUNNING: u64 = 1;
const SLOT_SEQUENCED: u64 = 2;

fn behavior_bits(b: ShutdownBehavior) -> u64 {
    match b {
        ShutdownBehavior::ContinueOnShutdown => 0,
        ShutdownBehavior::SkipOnShutdown => 1,
        ShutdownBehavior::BlockShutdown => 2,
    }
}

fn behavior_of(bits: u64) -> ShutdownBehavior {
    match bits {
        0 => ShutdownBehavior::ContinueOnShutdown,
        1 => ShutdownBehavior::SkipOnShutdown,
        _ => ShutdownBehavior::BlockShutdown,
    }
}

/// What a worker is running, for shutdown (which waits for running skip-on-shutdown tasks)
/// and reports. Two words instead of a lock:
///
/// | side | steps (`SeqCst`) |
/// |---|---|
/// | worker starting a task | 1. store the task's info with `RUNNING` 2. load the tracker's `STARTED`: set and the task may not run → clear the slot, skip |
/// | shutdown | 1. set `STARTED` 2. load every slot: a running skip task → wait for it (its end runs the completion check) |
///
/// Either the worker sees `STARTED` (and skips) or shutdown sees the slot (and waits): the
/// Dekker pattern, on `SeqCst` operations on both sides.
#[derive(Debug, Default)]
struct Slot {
    /// Bit 0 running, bit 1 sequenced, bits 2-3 shutdown behaviour, bits 4-5 priority.
    state: AtomicU64,
    /// Where the running task was posted from.
    posted_from: LocationCell,
}

/// The part of a worker that other threads may touch.
#[derive(Debug)]
pub(crate) struct WorkerShared {
    pub(crate) index: usize,
    pub(crate) parker: Parker,
    slot: Slot,
    fifo: Stealer<Work>,
    next: Stealer<Work>,
    /// The deques themselves, until the worker's thread takes them.
    deques: Mutex<Option<(Deque<Work>, Deque<Work>)>>,
    /// Loom models: the next park "times out" at once (loom's timed waits never time out).
    #[cfg(loom)]
    pub(crate) time_out_next_park: crate::base::shim::AtomicBool,
    /// The thread's handle, for joining at shutdown.
    pub(crate) join: Mutex<Option<thread::JoinHandle<()>>>,
}

impl WorkerShared {
    pub(crate) fn new(index: usize) -> Self {
        let fifo = Deque::new_fifo();
        let next = Deque::new_lifo();
        WorkerShared {
            index,
            parker: Parker::new(),
            slot: Slot::default(),
            fifo: fifo.stealer(),
            next: next.stealer(),
            deques: Mutex::new(Some((fifo, next))),
            join: Mutex::new(None),
            #[cfg(loom)]
            time_out_next_park: crate::base::shim::AtomicBool::new(false),
        }
    }

    /// Records a task as running if the tracker lets it start; `false` means skip it (see
    /// [`Slot`]).
    #[inline]
    pub(crate) fn begin(&self, tracker: &Tracker, info: RunningTask, was_delayed: bool) -> bool {
        self.slot.posted_from.store(info.posted_from);
        let bits = SLOT_RUNNING
            | if info.sequenced { SLOT_SEQUENCED } else { 0 }
            | behavior_bits(info.shutdown_behavior) << 2
            | (info.priority as u64) << 4;
        self.slot.state.store(bits, Ordering::SeqCst);
        // A `SeqCst` store then a `SeqCst` load is the Dekker handshake under the memory
        // model; loom treats `SeqCst` accesses as `AcqRel`, so under loom an explicit fence
        // states the same order (loom models `SeqCst` fences).
        #[cfg(loom)]
        crate::base::shim::fence(Ordering::SeqCst);
        if tracker.may_run(info.shutdown_behavior, was_delayed) {
            return true;
        }
        self.end();
        false
    }

    /// Clears the slot after the task ran (or was skipped). The caller then reads the tracker
    /// (`after_run`): the same handshake the other way round, so that either shutdown's scan
    /// sees the slot clear or the caller sees `STARTED` and runs the completion check.
    #[inline]
    pub(crate) fn end(&self) {
        self.slot.state.store(0, Ordering::SeqCst);
        #[cfg(loom)]
        crate::base::shim::fence(Ordering::SeqCst);
    }

    /// Entries in this worker's local queues (a snapshot).
    pub(crate) fn local_len(&self) -> usize {
        self.fifo.len() + self.next.len()
    }

    /// What runs here now (a snapshot).
    pub(crate) fn running(&self) -> Option<RunningTask> {
        let s = self.slot.state.load(Ordering::SeqCst);
        if s & SLOT_RUNNING == 0 {
            return None;
        }
        // A racy snapshot: the location may belong to the task that started just after.
        let posted_from = self.slot.posted_from.load()?;
        Some(RunningTask {
            posted_from,
            priority: TaskPriority::from_index(((s >> 4) & 3) as u8),
            shutdown_behavior: behavior_of((s >> 2) & 3),
            sequenced: s & SLOT_SEQUENCED != 0,
        })
    }

    /// `true` while a skip-on-shutdown task runs here (shutdown must wait for it).
    pub(crate) fn runs_skip_task(&self) -> bool {
        let s = self.slot.state.load(Ordering::SeqCst);
        s & SLOT_RUNNING != 0 && behavior_of((s >> 2) & 3) == ShutdownBehavior::SkipOnShutdown
    }

    /// `true` if one of the worker's local queues holds an entry (a racy look).
    pub(crate) fn has_local_work(&self) -> bool {
        !self.fifo.is_empty() || !self.next.is_empty()
    }

    /// Steals everything from the worker's local queues into `out` (shutdown, stalled pools).
    pub(crate) fn drain_local_into(&self, out: &mut Vec<Work>) {
        for s in [&self.fifo, &self.next] {
            loop {
                match s.steal() {
                    Steal::Success(w) => out.push(w),
                    Steal::Empty => break,
                    Steal::Retry => continue,
                }
            }
        }
    }

    /// Takes the worker's deques (once, by its thread).
    fn take_deques(&self) -> (Deque<Work>, Deque<Work>) {
        self.deques
            .lock()
            .take()
            .expect("a worker's deques are taken once, by its thread")
    }
}

// ---- local queues -----------------------------------------------------------------------------

/// A worker's own queues, reachable from its running tasks through a thread-local.
pub(crate) struct LocalQueues {
    /// The pool (by address) whose worker this is: posts to other pools never use these.
    pool: usize,
    fifo: Deque<Work>,
    next: Deque<Work>,
    /// The priority of what the local queues hold (they hold one priority at a time).
    prio: Cell<Option<TaskPriority>>,
    /// The workers to steal from, and the group's roster number it was copied at.
    victims: RefCell<(usize, Vec<Arc<WorkerShared>>)>,
}

impl LocalQueues {
    #[inline]
    fn is_empty(&self) -> bool {
        self.next.is_empty() && self.fifo.is_empty()
    }

    /// Records (and publishes to the group) the priority the local queues hold.
    #[inline]
    fn set_prio(&self, group: &Group, p: Option<TaskPriority>) {
        let old = self.prio.replace(p);
        group.local_changed(old, p);
    }

    #[inline]
    fn pop(&self, group: &Group) -> Option<Work> {
        let w = self.next.pop().or_else(|| self.fifo.pop());
        if self.prio.get().is_some() && self.is_empty() {
            self.set_prio(group, None);
        }
        w
    }

    /// Moves everything to the injectors (the worker is about to block or park).
    fn flush(&self, group: &Group) -> bool {
        let mut any = false;
        while let Some(w) = self.next.pop().or_else(|| self.fifo.pop()) {
            group.queue(w.priority()).push(w);
            any = true;
        }
        self.set_prio(group, None);
        any
    }
}

#[cfg(not(loom))]
thread_local! {
    static LOCAL: RefCell<Option<Rc<LocalQueues>>> = const { RefCell::new(None) };
}

/// A post made by a task running on a worker of the pool at `pool`: keeps `work` on this
/// worker when that overtakes nothing (see the module doc). Hands it back otherwise.
#[cfg(not(loom))]
#[inline]
pub(crate) fn try_keep_local(group: &Group, pool: usize, work: Work) -> Result<(), Work> {
    LOCAL.with(|l| {
        let l = l.borrow();
        let Some(local) = l.as_ref().filter(|l| l.pool == pool) else {
            return Err(work);
        };
        let p = work.priority();
        if p == TaskPriority::BestEffort || group.waiting_at_or_above(p) {
            return Err(work);
        }
        match local.prio.get() {
            Some(q) if q != p => return Err(work),
            _ => {}
        }
        // `next` holds the oldest local entry: later ones queue behind it in `fifo`.
        if local.next.is_empty() && local.fifo.is_empty() {
            local.next.push(work);
        } else {
            local.fifo.push(work);
        }
        local.set_prio(group, Some(p));
        Ok(())
    })
}

/// Under loom, model threads share the OS thread's thread-locals: no local fast path.
#[cfg(loom)]
#[inline]
pub(crate) fn try_keep_local(_group: &Group, _pool: usize, work: Work) -> Result<(), Work> {
    Err(work)
}

/// The calling worker is about to block (a blocking scope): its local entries go to the
/// injectors so that other workers take them at once.
pub(crate) fn flush_local_before_blocking(group: &Group, pool: usize) {
    #[cfg(not(loom))]
    LOCAL.with(|l| {
        if let Some(local) = l.borrow().as_ref().filter(|l| l.pool == pool) {
            local.flush(group);
        }
    });
    #[cfg(loom)]
    let _ = (group, pool);
}

// ---- the loop ---------------------------------------------------------------------------------

/// Starts the OS thread of a worker the group just created.
#[cfg(not(loom))]
pub(crate) fn spawn_worker<H: Host>(
    host: &Arc<H>,
    worker: Arc<WorkerShared>,
    name: String,
    stack_size: Option<usize>,
) -> std::io::Result<()> {
    let mut b = thread::Builder::new().name(name);
    if let Some(sz) = stack_size {
        b = b.stack_size(sz);
    }
    let h2 = Arc::clone(host);
    let w2 = Arc::clone(&worker);
    // Held across the spawn, so `shutdown()` can never see the worker without its handle.
    let mut slot = worker.join.lock();
    let h = b.spawn(move || worker_main(h2, w2))?;
    *slot = Some(h);
    Ok(())
}

/// How long a searching worker may take a task from another worker's `next` slot: only after
/// that worker had this long to finish its task and take it itself (Go uses 3 µs).
#[cfg(not(loom))]
const NEXT_GRACE: Duration = Duration::from_micros(3);

/// How long a searching worker spins before it parks: a few round trips of a busy pool, so
/// that a steady stream of posts finds it awake instead of paying a futex wake-up each.
#[cfg(not(loom))]
const SPIN: Duration = Duration::from_micros(50);

/// The worker thread.
pub(crate) fn worker_main<H: Host>(host: Arc<H>, me: Arc<WorkerShared>) {
    let guard = AbortOnUnwind;
    H::thread_started(&host, &me);
    let (fifo, next) = me.take_deques();
    let local = Rc::new(LocalQueues {
        pool: Arc::as_ptr(&host) as *const () as usize,
        fifo,
        next,
        prio: Cell::new(None),
        victims: RefCell::new((0, Vec::new())),
    });
    #[cfg(not(loom))]
    LOCAL.with(|l| *l.borrow_mut() = Some(Rc::clone(&local)));
    worker_loop(&host, &me, &local);
    #[cfg(not(loom))]
    LOCAL.with(|l| *l.borrow_mut() = None);
    // Nothing may be stranded here: the thread leaves only when nothing is left, or when
    // shutdown completed (what its own tasks posted since then can never run).
    let group = host.group();
    if group.is_completed() {
        let mut left = Vec::new();
        while let Some(w) = local.pop(group) {
            left.push(w);
        }
        host.discard(left);
    } else if local.flush(group) {
        group.notify().run(&host);
    }
    host.thread_exiting();
    drop(guard);
}

/// The loop proper (loom models run it on model threads).
pub(crate) fn worker_loop<H: Host>(host: &Arc<H>, me: &Arc<WorkerShared>, local: &LocalQueues) {
    let group = host.group();
    // A new or woken worker starts as a searcher: its waker counted it as one.
    let mut searching = true;
    loop {
        // With more workers awake than the pool may run (a blocking scope ended), stand down.
        let standing_down = group.over_capacity();
        if !standing_down {
            if let Some((work, be)) = take_work(group, local, true) {
                if searching {
                    searching = false;
                    if group.end_search() {
                        group.notify_if_work().run(host);
                    }
                }
                run(host, work, be, me);
                continue;
            }
            if !searching && group.begin_search() {
                searching = true;
            }
            if searching {
                if let Some((work, be)) = search(group, local, me) {
                    searching = false;
                    if group.end_search() {
                        group.notify_if_work().run(host);
                    }
                    run(host, work, be, me);
                    continue;
                }
            }
        }
        // Park (or stand down: a blocking scope ended and too many workers are awake).
        let was_last = searching && group.end_search();
        if local.flush(group) {
            group.notify().run(host);
        }
        if group.park_begin(me) == Parking::Exit {
            return;
        }
        if was_last || standing_down {
            // Posts made while this worker searched did not wake anybody: look once more
            // (after the fence in `notify_if_work`); this may wake this very worker. A worker
            // that stood down did not look at the queues at all, and a post made while the
            // pool was over capacity woke nobody (every worker counted as awake): after its
            // own `active` decrement it looks, so the last of them to stand down finds the
            // post, or the post found `active` below capacity and woke someone.
            group.notify_if_work().run(host);
        }
        if !park(me, host.idle_timeout()) {
            if group.try_reclaim(me) {
                return;
            }
            // Not registered as parked any more: whoever took this worker off the list is
            // about to unpark it (and counted it as a searcher). Consume that wake-up now.
            me.parker.park(None);
        }
        searching = true;
    }
}

/// Parks until woken (`true`) or the idle timeout (`false`).
#[cfg(not(loom))]
#[inline]
fn park(me: &WorkerShared, timeout: Duration) -> bool {
    me.parker.park(Some(timeout))
}

/// Under loom timed waits never time out: a model asks for a timeout explicitly.
#[cfg(loom)]
fn park(me: &WorkerShared, _timeout: Duration) -> bool {
    if me.time_out_next_park.swap(false, Ordering::SeqCst) {
        return false;
    }
    me.parker.park(None)
}

/// Loom models: a worker's loop on a model thread (no thread-locals: loom threads share the
/// OS thread's).
#[cfg(loom)]
pub(crate) fn run_worker_loop<H: Host>(host: &Arc<H>, me: &Arc<WorkerShared>) {
    let (fifo, next) = me.take_deques();
    let local = LocalQueues {
        pool: Arc::as_ptr(host) as *const () as usize,
        fifo,
        next,
        prio: Cell::new(None),
        victims: RefCell::new((0, Vec::new())),
    };
    worker_loop(host, me, &local);
}

/// Runs an entry; `be`: it holds a best-effort slot, released after the run.
#[inline]
fn run<H: Host>(host: &Arc<H>, work: Work, be: bool, me: &WorkerShared) {
    H::run(host, work, me);
    if be {
        host.group().release_be();
    }
}

/// One quick look: own queues (unless a higher priority waits), then the injectors from the
/// highest priority down. Returns the entry, and whether it holds a best-effort slot (only
/// best-effort entries are counted against the cap; they never sit in local queues).
#[inline]
fn take_work(group: &Group, local: &LocalQueues, strict: bool) -> Option<(Work, bool)> {
    if let Some(p) = local.prio.get() {
        if !group.waiting_above(p) {
            if let Some(w) = local.pop(group) {
                return Some((w, false));
            }
        }
    }
    for p in [TaskPriority::UserBlocking, TaskPriority::UserVisible] {
        let q = group.queue(p);
        if q.is_empty() {
            continue;
        }
        if strict && group.local_above(p) && local.prio.get().is_none_or(|l| l <= p) {
            // Another worker may keep more urgent entries: let the search steal them first (a
            // hint: after the grace period the search takes this queue's entries anyway).
            return None;
        }
        loop {
            // A batch only into empty local queues: they hold one priority at a time.
            let r = if local.is_empty() {
                q.steal_batch_and_pop(&local.fifo)
            } else {
                q.steal()
            };
            match r {
                Steal::Success(w) => {
                    if !local.fifo.is_empty() {
                        local.set_prio(group, Some(p));
                    }
                    return Some((w, false));
                }
                Steal::Empty => break,
                Steal::Retry => continue,
            }
        }
    }
    if let Some(w) = local.pop(group) {
        return Some((w, false));
    }
    if strict && group.local_above(TaskPriority::BestEffort) {
        return None;
    }
    group.steal_best_effort().map(|w| (w, true))
}

/// Searching: looks everywhere, other workers' queues included, spinning briefly (with
/// backoff) before giving up.
#[cfg(not(loom))]
fn search(group: &Group, local: &LocalQueues, me: &Arc<WorkerShared>) -> Option<(Work, bool)> {
    let start = std::time::Instant::now();
    let backoff = crossbeam_utils::Backoff::new();
    loop {
        let elapsed = start.elapsed();
        let past_grace = elapsed >= NEXT_GRACE;
        if let Some(w) = take_work(group, local, !past_grace) {
            return Some(w);
        }
        if let Some(w) = steal_from_others(group, local, me, past_grace) {
            return Some((w, false));
        }
        if elapsed >= SPIN || group.is_completed() {
            return None;
        }
        if backoff.is_completed() {
            thread::yield_now();
        } else {
            backoff.snooze();
        }
    }
}

/// Under loom: one look, no spinning (spinning only multiplies the explored states).
#[cfg(loom)]
fn search(group: &Group, local: &LocalQueues, me: &Arc<WorkerShared>) -> Option<(Work, bool)> {
    steal_from_others(group, local, me, true)
        .map(|w| (w, false))
        .or_else(|| take_work(group, local, false))
}

fn steal_from_others(
    group: &Group,
    local: &LocalQueues,
    me: &Arc<WorkerShared>,
    take_next: bool,
) -> Option<Work> {
    let mut victims = local.victims.borrow_mut();
    let (seen, copy) = &mut *victims;
    group.refresh_victims(seen, copy);
    for v in copy.iter() {
        if Arc::ptr_eq(v, me) {
            continue;
        }
        loop {
            let r = if local.is_empty() {
                v.fifo.steal_batch_and_pop(&local.fifo)
            } else {
                v.fifo.steal()
            };
            match r {
                Steal::Success(w) => {
                    if !local.fifo.is_empty() {
                        local.set_prio(group, Some(w.priority()));
                    }
                    return Some(w);
                }
                Steal::Empty => break,
                Steal::Retry => continue,
            }
        }
        if take_next {
            if let Steal::Success(w) = v.next.steal() {
                return Some(w);
            }
        }
    }
    None
}
