//! `Dedicated`: the one thread of a `SingleThreadTaskRunner`, with a FIFO of its own.
//!
//! Its sequence has `Home::Dedicated`: posts append to this queue instead of a ready queue,
//! and the thread runs them one by one, in order. It competes with nothing on its thread, so it
//! needs no position stamps and no reorder buffer.
//!
//! | flag | set by | effect |
//! |---|---|---|
//! | `exit` | last runner handle dropped, or shutdown completed | the thread finishes what is queued (or discards it after shutdown) and exits |
//! | `dead` | the thread, as it exits (or at creation: no thread) | posts are refused (`ThreadExited`, or `ThreadSpawnFailed` if it never started); a post racing the exit is handed back to its poster |
//! | `busy` | the thread, while it runs a task | test environments wait for it to go quiet |

use std::collections::VecDeque;

use crate::base::shim::{thread, Arc, Condvar, Mutex};
use crate::base::unwind::{drop_each_quietly, AbortOnUnwind};
use crate::engine::scheduler::Sequence;
use crate::engine::task::Task;
use crate::engine::worker::WorkerShared;

/// What the dedicated thread needs from its pool.
pub(crate) trait DedicatedHost: Send + Sync + Sized + 'static {
    /// Runs one task of `seq` on this thread (shutdown rules, context, panics).
    fn run_dedicated(
        this: &Arc<Self>,
        seq: &Arc<Sequence>,
        task: Task,
        delayed: bool,
        me: &WorkerShared,
    );
    /// `true` once the pool's shutdown has completed (what is queued then never runs).
    fn shutdown_completed(&self) -> bool;
    /// `n` accepted tasks were dropped unrun (for the pool's count).
    fn dropped(&self, n: usize);
    fn thread_started(this: &Arc<Self>, d: &Arc<Dedicated>);
    fn thread_exiting(this: &Arc<Self>, d: &Arc<Dedicated>);
}

#[derive(Debug, Default)]
struct State {
    /// The queued tasks (and whether each was posted with a delay).
    queue: VecDeque<(Task, bool)>,
    exit: bool,
    dead: bool,
    busy: bool,
    spawn_failed: bool,
}

/// What keeps the thread alive (the runners' owner object, see `runner/single_thread.rs`),
/// type-erased: a view made later (`SequencedTaskRunner::current()` on this thread) upgrades
/// it to keep the thread alive too.
pub(crate) type OwnerRef = std::sync::Weak<dyn std::any::Any + Send + Sync>;

/// A dedicated thread's shared state.
#[derive(Debug)]
pub(crate) struct Dedicated {
    state: Mutex<State>,
    cv: Condvar,
    pub(crate) worker: WorkerShared,
    pub(crate) thread_id: Mutex<Option<std::thread::ThreadId>>,
    owner: Mutex<Option<OwnerRef>>,
}

impl Dedicated {
    pub(crate) fn new() -> Self {
        Dedicated {
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
            worker: WorkerShared::new(usize::MAX),
            thread_id: Mutex::new(None),
            owner: Mutex::new(None),
        }
    }

    /// Records the object that keeps the thread alive.
    pub(crate) fn set_owner(&self, owner: OwnerRef) {
        *self.owner.lock() = Some(owner);
    }

    /// The owner, if any runner still holds it.
    pub(crate) fn owner(&self) -> Option<std::sync::Arc<dyn std::any::Any + Send + Sync>> {
        self.owner
            .lock()
            .as_ref()
            .and_then(std::sync::Weak::upgrade)
    }

    /// Appends a task. Hands it back if the thread has exited (the caller drops it, and
    /// releases a block-shutdown item it holds).
    pub(crate) fn push(&self, task: Task, delayed: bool) -> Result<(), Task> {
        let mut s = self.state.lock();
        if s.dead {
            return Err(task);
        }
        let was_empty = s.queue.is_empty();
        s.queue.push_back((task, delayed));
        drop(s);
        if was_empty {
            self.cv.notify_one();
        }
        Ok(())
    }

    /// Seeded test mode: the calling (test) thread plays the dedicated thread.
    #[cfg(feature = "test-util")]
    pub(crate) fn adopt_current_thread(&self) {
        *self.thread_id.lock() = Some(std::thread::current().id());
    }

    /// Marks a runner that never got a thread (created after shutdown started, or the OS
    /// refused one).
    pub(crate) fn mark_dead(&self, spawn_failed: bool) {
        let mut s = self.state.lock();
        s.dead = true;
        s.spawn_failed = spawn_failed;
    }

    /// `true` if the thread has nothing queued and is not running a task.
    #[cfg(feature = "test-util")]
    pub(crate) fn is_quiet(&self) -> bool {
        let s = self.state.lock();
        s.queue.is_empty() && !s.busy
    }

    /// `true` once the thread has exited for good (or never started).
    pub(crate) fn is_dead(&self) -> bool {
        self.state.lock().dead
    }

    /// `true` if the thread could not be started.
    pub(crate) fn spawn_failed(&self) -> bool {
        self.state.lock().spawn_failed
    }

    /// Asks the thread to exit once it has nothing queued.
    pub(crate) fn request_exit(&self) {
        self.state.lock().exit = true;
        self.cv.notify_one();
    }

    /// Takes every queued task (poison, or shutdown completed): the caller drops them.
    pub(crate) fn take_queued(&self) -> Vec<(Task, bool)> {
        self.state.lock().queue.drain(..).collect()
    }

    /// `true` if the calling thread is this dedicated thread.
    pub(crate) fn is_current_thread(&self) -> bool {
        *self.thread_id.lock() == Some(std::thread::current().id())
    }

    /// Joins the thread (unless called from it).
    pub(crate) fn join(&self) {
        if self.is_current_thread() {
            return;
        }
        let h = self.worker.join.lock().take();
        if let Some(h) = h {
            let _ = h.join();
        }
    }

    /// Starts the thread. If the OS refuses, the runner is marked dead and every post to it is
    /// refused with `PostRefusal::ThreadSpawnFailed` (the closure handed back).
    #[cfg(not(loom))]
    pub(crate) fn start<H: DedicatedHost>(
        host: &Arc<H>,
        d: &Arc<Dedicated>,
        seq: Arc<Sequence>,
        name: String,
        stack_size: Option<usize>,
    ) -> bool {
        let h2 = Arc::clone(host);
        let d2 = Arc::clone(d);
        let mut b = thread::Builder::new().name(name);
        if let Some(sz) = stack_size {
            b = b.stack_size(sz);
        }
        // Held across the spawn, so a join can never see the thread without its handle.
        let mut slot = d.worker.join.lock();
        match b.spawn(move || dedicated_main(h2, d2, seq)) {
            Ok(h) => {
                *slot = Some(h);
                true
            }
            Err(e) => {
                drop(slot);
                tracing::error!(
                    target: "taskrunner",
                    error = %e,
                    "failed to spawn the thread of a single-thread runner; its posts are refused"
                );
                d.mark_dead(true);
                false
            }
        }
    }
}

fn dedicated_main<H: DedicatedHost>(host: Arc<H>, d: Arc<Dedicated>, seq: Arc<Sequence>) {
    let guard = AbortOnUnwind;
    *d.thread_id.lock() = Some(std::thread::current().id());
    H::thread_started(&host, &d);
    loop {
        let next = {
            let mut s = d.state.lock();
            s.busy = false;
            loop {
                if let Some(t) = s.queue.pop_front() {
                    s.busy = true;
                    break Some(t);
                }
                if s.exit {
                    s.dead = true;
                    break None;
                }
                d.cv.wait(&mut s);
            }
        };
        let Some((task, delayed)) = next else {
            break;
        };
        if host.shutdown_completed() {
            // Shutdown completed while tasks were still queued: they never run.
            crate::base::unwind::drop_quietly(task);
            host.dropped(1 + discard_queued(&d));
            continue;
        }
        H::run_dedicated(&host, &seq, task, delayed, &d.worker);
    }
    H::thread_exiting(&host, &d);
    drop(guard);
}

/// Drops tasks that can never run any more (shutdown completed): each in its own guard.
/// Returns how many.
pub(crate) fn discard_queued(d: &Dedicated) -> usize {
    let queued = d.take_queued();
    let n = queued.len();
    drop_each_quietly(queued);
    n
}
