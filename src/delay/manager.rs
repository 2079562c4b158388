//! `DelayManager`: the heap behind a lock, and its service thread.
//!
//! | flag | meaning |
//! |---|---|
//! | `thread_running` | a service thread exists (started lazily by the first delayed post) |
//! | `stopped` | shutdown started or the pool was dropped: nothing is accepted or forwarded, the heap was emptied, the thread exits |
//!
//! The service thread pops every ripe task under the lock, releases it, and forwards them in
//! (run time, post number) order, so equal deadlines run in posting order and a ripe task lands
//! at the *tail* of its sequence, after tasks posted before it ripened. It never forwards
//! early: a task is ripe only when `clock.now() >= run_at`. Wake-ups (a new earliest task, a
//! manual clock moving, stop) are signalled after the lock is released.
//!
//! A pending task can be removed by the [`DelayId`] that [`add`](DelayManager::add) returned
//! ([`cancel`](DelayManager::cancel)): it is taken out of the heap at once and handed back for
//! the caller to drop outside the lock, so a cancelled task's closure is freed immediately, not
//! at its deadline. Timers use this (`crate::timer`). Cancelling the earliest task does not
//! wake the service thread: it finds the new earliest deadline when it next wakes (the heap's
//! top is always live, so at worst it re-arms once).

#[cfg(any(feature = "test-util", all(test, loom)))]
use std::time::Instant;

use crate::clock::Clock;
use crate::deadline::Deadline;
use crate::delay::{DelayHeap, DelayId, Delayed, Destination};
use crate::pool::Inner;
use crate::sync::{thread, Arc, Condvar, Mutex};
use crate::task::Task;

#[derive(Debug, Default)]
struct Synced {
    heap: DelayHeap,
    thread_running: bool,
    /// The service thread's handle, for `shutdown()` to join.
    thread: Option<thread::JoinHandle<()>>,
    stopped: bool,
    waker_registered: bool,
    /// Test environments forward ripe tasks themselves (`take_ripe`): no service thread.
    manual: bool,
}

/// The lock and condition variable, shared with a manual clock's waker (which must not keep
/// the whole pool alive).
#[derive(Debug)]
struct Shared {
    synced: Mutex<Synced>,
    cv: Condvar,
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

    /// Adds a delayed task and returns its id (for [`cancel`](Self::cancel)). Hands the task
    /// back if the manager is stopped.
    pub(crate) fn add(
        &self,
        inner: &Arc<Inner>,
        run_at: Deadline,
        task: Task,
        dest: Destination,
    ) -> Result<DelayId, Task> {
        let mut s = self.shared.synced.lock();
        if s.stopped {
            return Err(task);
        }
        let seq = task.order;
        let (id, earliest) = s.heap.push(Delayed {
            run_at,
            seq,
            task,
            dest,
        });
        let start = !s.thread_running && !s.manual;
        if start {
            s.thread_running = true;
        }
        let register = !s.waker_registered && !s.manual;
        s.waker_registered = true;
        drop(s);
        if register {
            self.register_clock_waker(&*inner.clock);
        }
        if start {
            let inner2 = Arc::clone(inner);
            let spawned = thread::Builder::new()
                .name(inner.config.service_thread_name())
                .spawn(move || service_main(inner2));
            match spawned {
                Ok(h) => {
                    let old = self.shared.synced.lock().thread.replace(h);
                    drop(old); // a previous service thread that exited: detach it
                }
                Err(e) => {
                    self.shared.synced.lock().thread_running = false;
                    tracing::error!(target: "taskrunner", error = %e, "failed to spawn the delay service thread");
                }
            }
        } else if earliest {
            self.shared.cv.notify_one();
        }
        Ok(id)
    }

    /// Removes a pending task; `None` if it already ripened, was cancelled, or was dropped by
    /// `stop`. The caller drops the returned entry (its closure) outside every lock.
    pub(crate) fn cancel(&self, id: DelayId) -> Option<Delayed> {
        self.shared.synced.lock().heap.cancel(id)
    }

    #[cfg(not(loom))]
    fn register_clock_waker(&self, clock: &dyn Clock) {
        let shared = Arc::clone(&self.shared);
        clock.register_waker(std::sync::Arc::new(move || {
            // Taking the lock orders this wake-up after the waiter's check of the clock.
            drop(shared.synced.lock());
            shared.cv.notify_all();
        }));
    }

    #[cfg(loom)]
    fn register_clock_waker(&self, _clock: &dyn Clock) {}

    /// Stops forwarding and returns every pending task (for the caller to drop outside the
    /// lock). `reopen` undoes a stop caused by the pool being dropped when a handle comes back.
    pub(crate) fn stop(&self) -> Vec<Delayed> {
        let mut s = self.shared.synced.lock();
        s.stopped = true;
        let all = s.heap.take_all();
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

    /// Pops what is ripe at `now`, in (run time, post) order, as the service thread would.
    #[cfg(any(feature = "test-util", all(test, loom)))]
    pub(crate) fn take_ripe(&self, now: Instant) -> Vec<Delayed> {
        let mut out = Vec::new();
        self.shared.synced.lock().heap.pop_ripe(now, &mut out);
        out
    }

    /// `true` if the delayed task `id` has not been forwarded (or cancelled) yet.
    #[cfg(feature = "test-util")]
    pub(crate) fn is_pending(&self, id: DelayId) -> bool {
        self.shared.synced.lock().heap.contains(id)
    }

    /// The earliest pending run time.
    #[cfg(feature = "test-util")]
    pub(crate) fn next_run_at(&self) -> Option<Instant> {
        self.shared.synced.lock().heap.next_run_at()
    }

    /// Pending delayed tasks (a snapshot).
    pub(crate) fn len(&self) -> usize {
        self.shared.synced.lock().heap.len()
    }

    /// Loom models: make `add` behave as if the service thread were already running (it
    /// starts none), so a model forwards ripe tasks itself with
    /// [`take_ripe_for_loom`](Self::take_ripe_for_loom).
    #[cfg(all(test, loom))]
    pub(crate) fn without_service_thread_for_loom(&self) {
        let mut s = self.shared.synced.lock();
        s.thread_running = true;
        s.waker_registered = true;
    }

    /// Loom models: pops what is ripe at `now`, as the service thread would.
    #[cfg(all(test, loom))]
    pub(crate) fn take_ripe_for_loom(&self, now: Instant) -> Vec<Delayed> {
        self.take_ripe(now)
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

fn service_main(inner: Arc<Inner>) {
    tighten_timer_slack();
    crate::current::set_thread_of(Arc::as_ptr(&inner) as usize);
    let shared = Arc::clone(&inner.delay.shared);
    let mut ripe = Vec::new();
    loop {
        {
            let mut s = shared.synced.lock();
            loop {
                if s.stopped {
                    s.thread_running = false;
                    return;
                }
                s.heap.pop_ripe(inner.clock.now(), &mut ripe);
                if !ripe.is_empty() {
                    break;
                }
                match s.heap.next_run_at() {
                    None => shared.cv.wait(&mut s),
                    Some(at) => match inner.clock.real_time_until(at) {
                        Some(d) => {
                            shared.cv.wait_for(&mut s, d);
                        }
                        None => shared.cv.wait(&mut s),
                    },
                }
            }
        }
        Inner::forward_ripe_batch(&inner, ripe.drain(..));
    }
}
