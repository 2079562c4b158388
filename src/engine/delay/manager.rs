//! `DelayManager`: pending delayed tasks, and the service thread that forwards them when they
//! ripen.
//!
//! # Who holds what
//!
//! | data | held by | touched by |
//! |---|---|---|
//! | `inbox`: entries posted since the service thread last looked | lock-free (`Injector`) | posters (push), whoever drains it under `synced` |
//! | `pending` (entries by post number) and `staged` (keys drained by another thread than the service thread) | `synced` (one short lock) | the service thread, cancellations, snapshots, `stop` |
//! | the heap of keys | the service thread alone (no lock) | the service thread |
//!
//! A delayed post is a post number (`fetch_add`), one lock-free push and one load: it never
//! takes a lock the service thread holds, and it wakes the service thread only when its
//! deadline is earlier than the one the thread sleeps until (`armed`). The service thread
//! drains the inbox into `pending` and its heap, takes what is ripe, and hands the entries to
//! the pool's forward callback in (run time, post) order, all ripe ones at once. It never
//! forwards early: a key is ripe only when `clock.now() >= run_at`. It sleeps until the
//! earliest precise run time or the earliest flexible run time plus the leeway (flexible
//! entries may be forwarded that much late), so flexible entries within one leeway of each
//! other are forwarded after one wake-up.
//!
//! A pending task can be removed by its [`DelayId`] ([`cancel`](DelayManager::cancel)): the
//! canceller drains the inbox first (so an entry posted a moment ago is found too), takes the
//! entry out of `pending` and drops it outside the lock; its key stays in the heap as a
//! tombstone, skipped when it comes up.
//!
//! # The wake protocol
//!
//! `armed` says what the service thread sleeps until, in nanoseconds after `epoch` plus one:
//!
//! | `armed` | meaning | a post with deadline `at` |
//! |---|---|---|
//! | `AWAKE` (0) | the thread is awake: it drains the inbox before it sleeps again | does nothing |
//! | `d` | the thread sleeps until `d` | wakes it if `at < d` (only the poster whose CAS `d -> AWAKE` wins unparks); a flexible post's `at` is its run time plus the leeway |
//! | `u64::MAX` | the thread sleeps until a post (nothing pending) | wakes it (unless `at` is "never") |
//!
//! A lost wake-up is ruled out by a store-fence-load pair on each side: the poster pushes, then
//! `fence(SeqCst)`, then loads `armed`; the service thread stores `armed`, then
//! `fence(SeqCst)`, then checks the inbox. Either the poster sees the armed deadline (and wakes
//! the thread if its own is earlier) or the thread sees the entry (and does not sleep). Every
//! other way an entry reaches the service thread (drained by a canceller into `staged`, a
//! rebuild request, `stop`, a manual clock that moved) is followed by an unpark, whose token
//! makes a park that comes after it return at once.
//!
//! | flag | meaning |
//! |---|---|
//! | `stopped` | shutdown started or the pool was dropped: nothing is accepted or forwarded, `pending` was emptied, the thread exits. A post that finds it set after its push (a fence-ordered re-check) drains the inbox itself and hands its task back |
//! | `thread_running` | a service thread exists (started lazily by the first delayed post). The thread clears it on exit and then re-checks `stopped`, so a manager reopened meanwhile is never left without one |
//! | `manual` | a test environment forwards ripe entries itself ([`take_ripe`](DelayManager::take_ripe)); no service thread |
//!
//! Model-checked: `loom_tests/delay_handoff.rs` (post vs stop, post vs a sleeping service
//! thread, service exit vs reopen).

use std::time::{Duration, Instant};

use crate::base::clock::Clock;
use crate::base::deadline::Deadline;
use crate::base::shim::{
    fence, thread, Arc, AtomicBool, AtomicU64, AtomicUsize, Injector, Mutex, Ordering, Steal,
};
use crate::base::unwind::drop_each_quietly;
use crate::engine::delay::{DelayId, Delayed, Destination, Key, KeyHeap, Pending};
use crate::engine::task::Task;

/// `armed` while the service thread is awake.
const AWAKE: u64 = 0;

#[derive(Debug, Default)]
struct Synced {
    pending: Pending,
    /// Keys drained by another thread than the service thread, for its heap.
    staged: Vec<Key>,
    /// Manual mode only: the heap (no service thread owns one).
    manual_heap: KeyHeap,
    thread: Option<thread::JoinHandle<()>>,
}

/// Shared with the service thread and a manual clock's waker (which must not keep the whole
/// pool alive).
#[derive(Debug)]
struct Shared {
    inbox: Injector<Delayed>,
    /// Post numbers: ids, and the tie-breaker for equal deadlines.
    next_seq: AtomicU64,
    /// See the wake protocol in the module doc.
    armed: AtomicU64,
    stopped: AtomicBool,
    thread_running: AtomicBool,
    waker_registered: AtomicBool,
    manual: AtomicBool,
    /// A canceller found the heap mostly tombstones: the service thread rebuilds it.
    rebuild: AtomicBool,
    /// Keys in the service thread's heap, as it last reported (live ones and tombstones).
    heap_keys: AtomicUsize,
    /// Origin of `armed`'s nanoseconds.
    epoch: Instant,
    /// Tasks posted while the manager stopped and dropped here (`refuse_after_stop`): the
    /// pool's count of dropped tasks includes them.
    dropped: AtomicU64,
    /// How late a flexible entry may be forwarded.
    leeway: Duration,
    /// Times the service thread woke from a sleep (`PoolMetrics::delay_wakeups`).
    wakeups: AtomicU64,
    synced: Mutex<Synced>,
    /// The service thread, for waking it (a lock of its own: a waker never waits for the
    /// service thread's work).
    service: Mutex<Option<thread::Thread>>,
}

impl Shared {
    /// `at` as `armed` counts it: nanoseconds after `epoch` plus one (never `AWAKE`);
    /// `u64::MAX` for "never".
    fn ns(&self, at: Deadline) -> u64 {
        match at.instant() {
            None => u64::MAX,
            Some(at) => {
                let ns = at.saturating_duration_since(self.epoch).as_nanos();
                u64::try_from(ns).unwrap_or(u64::MAX - 1).min(u64::MAX - 2) + 1
            }
        }
    }

    fn wake_service(&self) {
        if let Some(t) = &*self.service.lock() {
            t.unpark();
        }
    }

    /// Moves everything in the inbox into `pending`, its keys to `staged` (or the manual heap).
    /// Returns how many entries moved.
    fn drain_inbox(&self, s: &mut Synced) -> usize {
        let manual = self.manual.load(Ordering::Relaxed);
        let mut n = 0;
        loop {
            match self.inbox.steal() {
                Steal::Success(d) => {
                    let key = s.pending.insert(d);
                    if manual {
                        s.manual_heap.push(key);
                    } else {
                        s.staged.push(key);
                    }
                    n += 1;
                }
                Steal::Empty => return n,
                Steal::Retry => {}
            }
        }
    }

    /// [`drain_inbox`](Self::drain_inbox) by a thread other than the service thread: the
    /// service thread learns of the staged keys through an unpark (after the lock is released).
    fn drain_for_others(&self) -> crate::base::shim::MutexGuard<'_, Synced> {
        let mut s = self.synced.lock();
        let moved = self.drain_inbox(&mut s);
        if moved > 0 && !self.manual.load(Ordering::Relaxed) {
            // Unparking under the lock is fine: `service` is a different lock, never held
            // while taking `synced`.
            self.wake_service();
        }
        s
    }

    /// The post's side of the wake protocol, after its push.
    fn after_push(&self, at: u64) {
        let armed = self.armed.load(Ordering::Relaxed);
        if at < armed
            && self
                .armed
                .compare_exchange(armed, AWAKE, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.wake_service();
        }
    }

    /// The service thread's side of the wake protocol: arms `next` and returns `true` if it may
    /// sleep (nothing arrived meanwhile). After a `false`, or after waking, `armed` is `AWAKE`.
    fn prepare_sleep(&self, next: Deadline) -> bool {
        self.armed.store(self.ns(next), Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let sleep = self.inbox.is_empty()
            && !self.stopped.load(Ordering::Relaxed)
            && !self.rebuild.load(Ordering::Relaxed);
        if !sleep {
            self.armed.store(AWAKE, Ordering::Relaxed);
        }
        sleep
    }

    /// After a sleep: awake again (posts stop trying to wake the thread).
    fn woke(&self) {
        self.armed.store(AWAKE, Ordering::Relaxed);
    }

    /// One turn of the service thread while awake: drains the inbox and the staged keys into
    /// `heap`, and moves what is ripe at `now()` into `ripe`. `now` is read after the drain, so
    /// an entry drained here that is already due is forwarded in this same turn.
    fn service_turn(
        &self,
        heap: &mut KeyHeap,
        now: impl FnOnce() -> Instant,
        ripe: &mut Vec<Delayed>,
    ) {
        let mut s = self.synced.lock();
        let s = &mut *s;
        self.drain_inbox(s);
        if self.rebuild.swap(false, Ordering::Relaxed) {
            // Every key in `staged` names an entry in `pending`: the rebuild covers them.
            s.staged.clear();
            *heap = KeyHeap::default();
            heap.extend(s.pending.keys());
        } else {
            heap.extend(s.staged.drain(..));
        }
        if s.staged.capacity() > 1024 {
            s.staged = Vec::new();
        }
        heap.pop_ripe(&mut s.pending, now(), ripe);
        self.heap_keys.store(heap.len(), Ordering::Relaxed);
    }

    /// The service thread saw `stopped`: returns `true` if it should exit, `false` if the
    /// manager was reopened meanwhile and no other service thread took over (it then keeps
    /// serving). See `thread_running` in the module doc.
    fn exit_or_resume(&self) -> bool {
        self.thread_running.store(false, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if self.stopped.load(Ordering::SeqCst) {
            return true;
        }
        // Reopened. Either a post already started a new thread (it saw `false`), or it will
        // not (it saw `true` before our store): then this thread carries on.
        self.thread_running
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
    }
}

/// The result of [`DelayManager::add`].
#[must_use = "a start request obliges the caller to start the service thread"]
#[derive(Debug)]
pub(crate) struct Added {
    pub(crate) id: DelayId,
    /// No service thread runs yet: the caller starts one ([`DelayManager::start_thread`]).
    pub(crate) start_thread: bool,
    /// The clock's waker is not registered yet: the caller registers it.
    pub(crate) register_waker: bool,
}

#[derive(Debug)]
pub(crate) struct DelayManager {
    shared: Arc<Shared>,
}

impl DelayManager {
    /// A manager whose flexible entries are all precise (loom models).
    #[cfg(all(test, loom))]
    pub(crate) fn new() -> Self {
        Self::with_leeway(Duration::ZERO)
    }

    /// A manager that may forward a flexible entry up to `leeway` after its run time.
    pub(crate) fn with_leeway(leeway: Duration) -> Self {
        DelayManager {
            shared: Arc::new(Shared {
                inbox: Injector::new(),
                next_seq: AtomicU64::new(0),
                armed: AtomicU64::new(AWAKE),
                stopped: AtomicBool::new(false),
                thread_running: AtomicBool::new(false),
                waker_registered: AtomicBool::new(false),
                manual: AtomicBool::new(false),
                rebuild: AtomicBool::new(false),
                heap_keys: AtomicUsize::new(0),
                epoch: Instant::now(),
                dropped: AtomicU64::new(0),
                leeway,
                wakeups: AtomicU64::new(0),
                synced: Mutex::new(Synced::default()),
                service: Mutex::new(None),
            }),
        }
    }

    /// Adds a delayed task. Hands it back if the manager is stopped.
    pub(crate) fn add(
        &self,
        run_at: Deadline,
        task: Task,
        dest: Destination,
    ) -> Result<Added, Task> {
        let sh = &*self.shared;
        if sh.stopped.load(Ordering::Acquire) {
            return Err(task);
        }
        let seq = sh.next_seq.fetch_add(1, Ordering::Relaxed);
        let flexible = dest.is_flexible();
        sh.inbox.push(Delayed {
            run_at,
            seq,
            task,
            dest,
            flexible,
        });
        fence(Ordering::SeqCst);
        if sh.stopped.load(Ordering::Acquire) {
            return self.refuse_after_stop(seq);
        }
        // The latest time it may be forwarded: the service thread must be awake by then.
        let latest = if flexible {
            run_at.later_by(sh.leeway)
        } else {
            run_at
        };
        sh.after_push(sh.ns(latest));
        let manual = sh.manual.load(Ordering::Relaxed);
        let start_thread = !manual
            && !sh.thread_running.load(Ordering::SeqCst)
            && !sh.thread_running.swap(true, Ordering::SeqCst);
        let register_waker = !manual
            && !sh.waker_registered.load(Ordering::Relaxed)
            && !sh.waker_registered.swap(true, Ordering::Relaxed);
        Ok(Added {
            id: DelayId::new(seq),
            start_thread,
            register_waker,
        })
    }

    /// A post that pushed while the manager stopped: the stop may have drained the inbox
    /// before the push. Drains it again (under the lock, where `stopped` is stable) and hands
    /// the post's own task back; whatever else was there was accepted by a stopping manager
    /// and is dropped, as `stop` would have.
    #[cold]
    fn refuse_after_stop(&self, seq: u64) -> Result<Added, Task> {
        let sh = &*self.shared;
        let mut s = sh.synced.lock();
        if !sh.stopped.load(Ordering::Acquire) {
            // Reopened meanwhile: the entry is accepted after all. Make sure a service thread
            // will see it.
            drop(s);
            sh.wake_service();
            let manual = sh.manual.load(Ordering::Relaxed);
            let start_thread = !manual && !sh.thread_running.swap(true, Ordering::SeqCst);
            return Ok(Added {
                id: DelayId::new(seq),
                start_thread,
                register_waker: false,
            });
        }
        let mut others = Vec::new();
        let mut own = None;
        loop {
            match sh.inbox.steal() {
                Steal::Success(d) if d.seq == seq => own = Some(d.task),
                Steal::Success(d) => others.push(d),
                Steal::Empty => break,
                Steal::Retry => {}
            }
        }
        // Entries drained by a canceller before the stop are in `pending`; `stop` took them.
        drop(std::mem::take(&mut s.staged));
        drop(s);
        let tasks = others
            .iter()
            .filter(|d| !matches!(d.dest, Destination::Inline))
            .count();
        if tasks > 0 {
            sh.dropped.fetch_add(tasks as u64, Ordering::Relaxed);
        }
        drop_each_quietly(others);
        match own {
            Some(task) => Err(task),
            // `stop` took it (and dropped it, as it drops every pending task).
            None => Ok(Added {
                id: DelayId::new(seq),
                start_thread: false,
                register_waker: false,
            }),
        }
    }

    /// Removes a pending task; `None` if it already ripened, was cancelled, or was dropped by
    /// `stop`. The caller drops the returned entry (its closure) outside every lock.
    pub(crate) fn cancel(&self, id: DelayId) -> Option<Delayed> {
        let sh = &*self.shared;
        let mut s = sh.drain_for_others();
        let taken = s.pending.take(id)?;
        // Mostly tombstones now: let the heap's owner rebuild it, so that memory follows the
        // live entries (the service thread would otherwise sleep on them until a deadline).
        let keys = s.staged.len() + sh.heap_keys.load(Ordering::Relaxed);
        let sparse = keys > 256 && s.pending.len() * 4 < keys;
        if sparse && sh.manual.load(Ordering::Relaxed) {
            let s = &mut *s;
            s.manual_heap.settle(&s.pending);
        }
        let rebuild = sparse && !sh.manual.load(Ordering::Relaxed);
        drop(s);
        if rebuild && !sh.rebuild.swap(true, Ordering::Relaxed) {
            sh.wake_service();
        }
        Some(taken)
    }

    /// Registers the clock's waker (once per manager): a manual clock that moves wakes the
    /// service thread (an unpark: a clock that moves just before the thread parks makes the
    /// park return at once).
    #[cfg(not(loom))]
    pub(crate) fn register_clock_waker(&self, clock: &dyn Clock) {
        let shared = Arc::clone(&self.shared);
        clock.register_waker(std::sync::Arc::new(move || shared.wake_service()));
    }

    #[cfg(loom)]
    pub(crate) fn register_clock_waker(&self, _clock: &dyn Clock) {}

    /// Starts the service thread (after `add` asked for it). `forward` receives every batch of
    /// ripe entries; it runs on the service thread, without the manager's lock.
    #[cfg(not(loom))]
    pub(crate) fn start_thread(
        &self,
        name: String,
        clock: std::sync::Arc<dyn Clock>,
        on_start: impl FnOnce() + Send + 'static,
        forward: impl FnMut(&mut Vec<Delayed>) + Send + 'static,
    ) {
        let shared = Arc::clone(&self.shared);
        let spawned = thread::Builder::new()
            .name(name)
            .spawn(move || service_main(shared, clock, on_start, forward));
        match spawned {
            Ok(h) => {
                let old = self.shared.synced.lock().thread.replace(h);
                drop(old); // a previous service thread that exited: detach it
            }
            Err(e) => {
                // The entries stay pending; the next delayed post tries again.
                self.shared.thread_running.store(false, Ordering::SeqCst);
                tracing::error!(target: "taskrunner", error = %e, "failed to spawn the delay service thread");
            }
        }
    }

    /// Stops forwarding and returns every pending task (for the caller to drop outside the
    /// lock). `reopen` undoes a stop caused by the pool being dropped when a handle comes back.
    pub(crate) fn stop(&self) -> Vec<Delayed> {
        let sh = &*self.shared;
        let mut s = sh.synced.lock();
        sh.stopped.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let mut all = Vec::new();
        loop {
            match sh.inbox.steal() {
                Steal::Success(d) => all.push(d),
                Steal::Empty => break,
                Steal::Retry => {}
            }
        }
        s.staged = Vec::new();
        s.manual_heap.clear();
        all.extend(s.pending.take_all());
        drop(s);
        sh.wake_service();
        all
    }

    /// The service thread's handle (if one was started), for joining after `stop`.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn take_thread(&self) -> Option<thread::JoinHandle<()>> {
        self.shared.synced.lock().thread.take()
    }

    pub(crate) fn reopen(&self) {
        let _s = self.shared.synced.lock();
        self.shared.stopped.store(false, Ordering::SeqCst);
    }

    /// `true` if this manager forwards only when a test environment tells it to.
    #[cfg(feature = "test-util")]
    pub(crate) fn is_manual(&self) -> bool {
        self.shared.manual.load(Ordering::Relaxed)
    }

    /// Test environments: no service thread; ripe tasks are forwarded by [`take_ripe`].
    #[cfg(feature = "test-util")]
    pub(crate) fn set_manual(&self) {
        self.shared.manual.store(true, Ordering::Relaxed);
    }

    /// Manual mode (test environments, loom models): pops what is ripe at `now`, in (run time,
    /// post) order, as the service thread would.
    #[cfg(any(feature = "test-util", all(test, loom)))]
    pub(crate) fn take_ripe(&self, now: Instant) -> Vec<Delayed> {
        let mut out = Vec::new();
        let mut s = self.shared.drain_for_others();
        let s = &mut *s;
        s.manual_heap.pop_ripe(&mut s.pending, now, &mut out);
        out
    }

    /// `true` if the delayed task `id` has not been forwarded (or cancelled) yet.
    #[cfg(feature = "test-util")]
    pub(crate) fn is_pending(&self, id: DelayId) -> bool {
        self.shared.drain_for_others().pending.contains(id)
    }

    /// Manual mode: the earliest pending run time (`None` if nothing will ever be due).
    #[cfg(feature = "test-util")]
    pub(crate) fn next_run_at(&self) -> Option<Instant> {
        let mut s = self.shared.drain_for_others();
        let s = &mut *s;
        s.manual_heap.settle(&s.pending);
        s.manual_heap.next_run_at().instant()
    }

    /// Times the service thread woke from a sleep, by a deadline or a post.
    pub(crate) fn wakeups(&self) -> u64 {
        self.shared.wakeups.load(Ordering::Relaxed)
    }

    /// Tasks it dropped itself (posted while it stopped; see `refuse_after_stop`).
    pub(crate) fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Pending delayed tasks (a snapshot).
    pub(crate) fn len(&self) -> usize {
        self.shared.drain_for_others().pending.len()
    }

    /// Loom models: no service thread; the model forwards with [`take_ripe`](Self::take_ripe).
    #[cfg(all(test, loom))]
    pub(crate) fn set_manual_for_loom(&self) {
        self.shared.manual.store(true, Ordering::Relaxed);
        self.shared.waker_registered.store(true, Ordering::Relaxed);
    }
}

/// Linux lets a sleeping thread wake up to 50 µs late by default ("timer slack", to batch
/// wake-ups). That alone would exceed our lateness budget, so the service thread asks for 1 ns
/// slack on itself: it wakes rarely (once per earliest deadline), so this costs little power.
/// Writing our own thread's slack needs no privilege; a failure leaves the default.
#[cfg(all(target_os = "linux", not(loom)))]
fn tighten_timer_slack() {
    // The knob is /proc/<tid>/timerslack_ns; /proc/thread-self links to <pid>/task/<tid>.
    let tid = std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name().map(|t| t.to_owned()));
    if let Some(tid) = tid {
        let knob = std::path::Path::new("/proc")
            .join(tid)
            .join("timerslack_ns");
        let _ = std::fs::write(knob, "1");
    }
}

#[cfg(not(all(target_os = "linux", not(loom))))]
fn tighten_timer_slack() {}

#[cfg(not(loom))]
fn service_main(
    shared: Arc<Shared>,
    clock: std::sync::Arc<dyn Clock>,
    on_start: impl FnOnce(),
    mut forward: impl FnMut(&mut Vec<Delayed>),
) {
    tighten_timer_slack();
    *shared.service.lock() = Some(thread::current());
    on_start();
    let mut heap = KeyHeap::default();
    let mut ripe = Vec::new();
    loop {
        if shared.stopped.load(Ordering::SeqCst) {
            if shared.exit_or_resume() {
                return;
            }
            continue;
        }
        shared.service_turn(&mut heap, || clock.now(), &mut ripe);
        if !ripe.is_empty() {
            forward(&mut ripe);
            ripe.clear();
            continue;
        }
        let next = heap.next_wake(shared.leeway);
        if !shared.prepare_sleep(next) {
            continue;
        }
        match next.instant().and_then(|at| clock.real_time_until(at)) {
            Some(d) if d.is_zero() => {}
            Some(d) => {
                thread::park_timeout(d);
                shared.wakeups.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                thread::park();
                shared.wakeups.fetch_add(1, Ordering::Relaxed);
            }
        }
        shared.woke();
    }
}

/// Loom models: the service thread's protocol without a clock or timeouts. Serves until
/// `done()` holds, forwarding whatever is ripe at `now` through `forward`, and parks (without
/// a timeout: every deadline in these models is already due, or "never") when it may sleep. A
/// lost wake-up leaves it parked forever, which loom reports.
#[cfg(all(test, loom))]
pub(crate) fn loom_service(
    manager: &DelayManager,
    now: Instant,
    mut forward: impl FnMut(Vec<Delayed>),
    done: impl Fn() -> bool,
) {
    let shared = &*manager.shared;
    *shared.service.lock() = Some(thread::current());
    let mut heap = KeyHeap::default();
    let mut ripe = Vec::new();
    while !done() {
        if shared.stopped.load(Ordering::SeqCst) {
            if shared.exit_or_resume() {
                return;
            }
            continue;
        }
        shared.service_turn(&mut heap, || now, &mut ripe);
        if !ripe.is_empty() {
            forward(std::mem::take(&mut ripe));
            continue;
        }
        if done() {
            return;
        }
        if shared.prepare_sleep(heap.next_wake(shared.leeway)) {
            thread::park();
            shared.woke();
        }
    }
}
