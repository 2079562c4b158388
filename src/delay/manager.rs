//! `DelayManager`: pending delayed tasks, and the service thread that forwards them when they
//! ripen.
//!
//! # Who holds what
//!
//! | data | held by | touched by |
//! |---|---|---|
//! | the slab of entries, and `staged` (keys posted since the service thread last looked) | `synced` (one short lock) | posters (insert + push a key), cancel (take), the service thread (swap `staged`, take ripe entries) |
//! | the heap of keys | the service thread alone (no lock) | the service thread |
//!
//! A delayed post therefore costs one short lock, a slab insert and a `Vec` push: it never
//! waits for heap work, and it wakes the service thread only when its deadline is earlier
//! than the one the thread sleeps until (`armed`). The service thread merges the staged keys
//! into its heap outside the lock, takes what is ripe under it, and hands the entries to the
//! pool's forward callback in (run time, post) order, all ripe ones at once. It never forwards
//! early: a key is ripe only when `clock.now() >= run_at`.
//!
//! | flag | meaning |
//! |---|---|
//! | `thread_running` | a service thread exists (started lazily by the first delayed post) |
//! | `stopped` | shutdown started or the pool was dropped: nothing is accepted or forwarded, the slab was emptied, the thread exits |
//! | `manual` | a test environment forwards ripe entries itself ([`take_ripe`](DelayManager::take_ripe)); no service thread |
//!
//! A pending task can be removed by its [`DelayId`] ([`cancel`](DelayManager::cancel)): it is
//! taken out of the slab at once and handed back for the caller to drop outside the lock; its
//! key stays in the heap as a tombstone, skipped when it comes up.

use std::time::Instant;

use crate::clock::Clock;
use crate::deadline::Deadline;
use crate::delay::{DelayId, Delayed, Destination, Key, KeyHeap, Slab};
use crate::sync::{thread, Arc, Condvar, Mutex};
use crate::task::Task;

#[derive(Debug, Default)]
struct Synced {
    slab: Slab,
    /// Keys posted since the service thread last looked.
    staged: Vec<Key>,
    /// Manual mode only: the heap (no service thread owns one).
    manual_heap: KeyHeap,
    /// Post numbers (the tie-breaker for equal deadlines).
    next_seq: u64,
    /// What the service thread sleeps until (`NEVER`: it waits for a post).
    armed: Deadline,
    /// The service thread is waiting on the condition variable.
    waiting: bool,
    /// Keys in the service thread's heap, as it last reported (live ones and tombstones).
    heap_keys: usize,
    thread_running: bool,
    thread: Option<thread::JoinHandle<()>>,
    stopped: bool,
    waker_registered: bool,
    manual: bool,
}

/// The lock and condition variable, shared with the service thread and a manual clock's waker
/// (which must not keep the whole pool alive).
#[derive(Debug)]
struct Shared {
    synced: Mutex<Synced>,
    cv: Condvar,
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
    pub(crate) fn new() -> Self {
        DelayManager {
            shared: Arc::new(Shared {
                synced: Mutex::new(Synced::default()),
                cv: Condvar::new(),
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
        let mut s = self.shared.synced.lock();
        if s.stopped {
            return Err(task);
        }
        let seq = s.next_seq;
        s.next_seq += 1;
        let key = s.slab.insert(Delayed {
            run_at,
            seq,
            task,
            dest,
        });
        let id = key.id();
        let wake = s.waiting && run_at < s.armed;
        if s.manual {
            s.manual_heap.push(key);
        } else {
            s.staged.push(key);
        }
        let start_thread = !s.thread_running && !s.manual;
        if start_thread {
            s.thread_running = true;
        }
        let register_waker = !s.waker_registered && !s.manual;
        s.waker_registered = true;
        drop(s);
        if wake {
            self.shared.cv.notify_one();
        }
        Ok(Added {
            id,
            start_thread,
            register_waker,
        })
    }

    /// Removes a pending task; `None` if it already ripened, was cancelled, or was dropped by
    /// `stop`. The caller drops the returned entry (its closure) outside every lock.
    pub(crate) fn cancel(&self, id: DelayId) -> Option<Delayed> {
        let mut s = self.shared.synced.lock();
        let taken = s.slab.take(id)?;
        // Mostly tombstones now: let the heap's owner rebuild it, so that memory follows the
        // live entries (the service thread would otherwise sleep on them until a deadline).
        let keys = s.staged.len() + s.heap_keys;
        let sparse = keys > 256 && s.slab.len() * 4 < keys;
        if sparse && s.manual {
            let s = &mut *s;
            s.manual_heap.settle(&s.slab);
        }
        let wake = sparse && s.waiting;
        drop(s);
        if wake {
            self.shared.cv.notify_one();
        }
        Some(taken)
    }

    /// Registers the clock's waker (once per manager): a manual clock that moves wakes the
    /// service thread.
    #[cfg(not(loom))]
    pub(crate) fn register_clock_waker(&self, clock: &dyn Clock) {
        let shared = Arc::clone(&self.shared);
        clock.register_waker(std::sync::Arc::new(move || {
            // Taking the lock orders this wake-up after the waiter's check of the clock.
            drop(shared.synced.lock());
            shared.cv.notify_all();
        }));
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
                self.shared.synced.lock().thread_running = false;
                tracing::error!(target: "taskrunner", error = %e, "failed to spawn the delay service thread");
            }
        }
    }

    /// Stops forwarding and returns every pending task (for the caller to drop outside the
    /// lock). `reopen` undoes a stop caused by the pool being dropped when a handle comes back.
    pub(crate) fn stop(&self) -> Vec<Delayed> {
        let mut s = self.shared.synced.lock();
        s.stopped = true;
        s.staged = Vec::new();
        s.manual_heap.clear();
        let all = s.slab.take_all();
        drop(s);
        self.shared.cv.notify_all();
        all
    }

    /// The service thread's handle (if one was started), for joining after `stop`.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn take_thread(&self) -> Option<thread::JoinHandle<()>> {
        self.shared.synced.lock().thread.take()
    }

    pub(crate) fn reopen(&self) {
        self.shared.synced.lock().stopped = false;
    }

    /// `true` if this manager forwards only when a test environment tells it to.
    #[cfg(feature = "test-util")]
    pub(crate) fn is_manual(&self) -> bool {
        self.shared.synced.lock().manual
    }

    /// Test environments: no service thread; ripe tasks are forwarded by [`take_ripe`].
    #[cfg(feature = "test-util")]
    pub(crate) fn set_manual(&self) {
        self.shared.synced.lock().manual = true;
    }

    /// Manual mode (test environments, loom models): pops what is ripe at `now`, in (run time,
    /// post) order, as the service thread would.
    #[cfg(any(feature = "test-util", all(test, loom)))]
    pub(crate) fn take_ripe(&self, now: Instant) -> Vec<Delayed> {
        let mut out = Vec::new();
        let mut s = self.shared.synced.lock();
        let s = &mut *s;
        s.manual_heap.pop_ripe(&mut s.slab, now, &mut out);
        out
    }

    /// `true` if the delayed task `id` has not been forwarded (or cancelled) yet.
    #[cfg(feature = "test-util")]
    pub(crate) fn is_pending(&self, id: DelayId) -> bool {
        self.shared.synced.lock().slab.contains(id)
    }

    /// Manual mode: the earliest pending run time (`None` if nothing will ever be due).
    #[cfg(feature = "test-util")]
    pub(crate) fn next_run_at(&self) -> Option<Instant> {
        let mut s = self.shared.synced.lock();
        let s = &mut *s;
        s.manual_heap.settle(&s.slab);
        s.manual_heap.next_run_at().instant()
    }

    /// Pending delayed tasks (a snapshot).
    pub(crate) fn len(&self) -> usize {
        self.shared.synced.lock().slab.len()
    }

    /// Loom models: no service thread; the model forwards with [`take_ripe`](Self::take_ripe).
    #[cfg(all(test, loom))]
    pub(crate) fn set_manual_for_loom(&self) {
        let mut s = self.shared.synced.lock();
        s.manual = true;
        s.waker_registered = true;
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
    on_start();
    let mut heap = KeyHeap::default();
    let mut staged = Vec::new();
    let mut ripe = Vec::new();
    loop {
        {
            let mut s = shared.synced.lock();
            loop {
                if s.stopped {
                    s.thread_running = false;
                    return;
                }
                // New keys: merged into the heap after the lock is released.
                std::mem::swap(&mut s.staged, &mut staged);
                if !staged.is_empty() {
                    break;
                }
                let now = clock.now();
                heap.pop_ripe(&mut s.slab, now, &mut ripe);
                s.heap_keys = heap.len();
                if s.staged.capacity() > 1024 && s.staged.is_empty() {
                    s.staged = Vec::new();
                }
                if !ripe.is_empty() {
                    break;
                }
                let next = heap.next_run_at();
                s.armed = next;
                s.waiting = true;
                match next.instant().and_then(|at| clock.real_time_until(at)) {
                    Some(d) => {
                        shared.cv.wait_for(&mut s, d);
                    }
                    None => shared.cv.wait(&mut s),
                }
                s.waiting = false;
                s.armed = Deadline::NEVER;
            }
        }
        if !staged.is_empty() {
            heap.extend(staged.drain(..));
            if staged.capacity() > 1024 {
                staged = Vec::new();
            }
            continue;
        }
        forward(&mut ripe);
        ripe.clear();
    }
}
