//! `Dedicated`: the one thread of a `SingleThreadTaskRunner`.
//!
//! Its sequence has `Home::Dedicated`: the idle → queued transition calls [`Dedicated::schedule`]
//! instead of pushing into the group. The thread runs the sequence until it is idle, then waits.
//!
//! | flag | set by | effect |
//! |---|---|---|
//! | `scheduled` | poster on `Push::Enqueue` | the thread wakes and runs the sequence until idle |
//! | `exit` | last runner handle dropped, or shutdown completed | the thread finishes what is queued (or discards it after shutdown) and exits |
//! | `dead` | the thread, as it exits (or at creation after shutdown started: no thread) | posts are refused with `PostRefusal::ThreadExited`; a post racing the exit is discarded (and its block-shutdown item released) |
//!
//! `ThreadOwner` (held by `SingleThreadTaskRunner` clones and their sequenced views) asks the
//! thread to exit when the last holder drops, and joins it unless the drop happens on a pool
//! thread or after shutdown started (then `shutdown()` joins it, or it exits by itself).

use std::sync::{Arc as StdArc, Weak as StdWeak};

use crate::current;
use crate::pool::Inner;
use crate::scheduler::Sequence;
use crate::sync::{thread, Arc, Condvar, Mutex};
use crate::traits::ShutdownBehavior;
use crate::worker::{run_sequence_task, AbortOnUnwind, WorkerShared};

#[derive(Debug, Default)]
struct Flags {
    scheduled: bool,
    exit: bool,
    /// The thread has exited: a late schedule discards the tasks instead of stranding them.
    dead: bool,
    /// The thread is running its sequence (test environments wait for it to finish).
    busy: bool,
    /// The thread could not be started (posts are refused with `ThreadSpawnFailed`).
    spawn_failed: bool,
}

/// Owns the dedicated thread: when the last runner holding it drops, the thread finishes what
/// is queued and is joined (unless the drop happens on that very thread). A plain std `Arc`:
/// this is ownership, not part of any protocol loom models.
#[derive(Debug)]
pub(crate) struct ThreadOwner {
    d: Arc<Dedicated>,
    inner: Arc<Inner>,
}

impl ThreadOwner {
    pub(crate) fn new(d: Arc<Dedicated>, inner: Arc<Inner>) -> StdArc<Self> {
        let owner = StdArc::new(ThreadOwner { d, inner });
        *owner.d.owner.lock() = Some(StdArc::downgrade(&owner));
        owner
    }

    pub(crate) fn dedicated(&self) -> &Arc<Dedicated> {
        &self.d
    }
}

impl Drop for ThreadOwner {
    /// Asks the thread to finish what is queued and exit, then joins it, except where joining
    /// could wait on something that waits on us: on a pool thread (a task dropping the last
    /// handle would block its worker), or once shutdown started (the thread may be running a
    /// continue-on-shutdown task; `shutdown()` joins what it safely can).
    fn drop(&mut self) {
        self.d.request_exit();
        if current::current_pool().is_none() && !self.inner.tracker.shutdown_started() {
            self.d.join();
        }
    }
}

/// A dedicated thread's shared state.
#[derive(Debug)]
pub(crate) struct Dedicated {
    flags: Mutex<Flags>,
    cv: Condvar,
    pub(crate) worker: WorkerShared,
    pub(crate) thread_id: Mutex<Option<std::thread::ThreadId>>,
    owner: Mutex<Option<StdWeak<ThreadOwner>>>,
}

impl Dedicated {
    pub(crate) fn new() -> Self {
        Dedicated {
            flags: Mutex::new(Flags::default()),
            cv: Condvar::new(),
            worker: WorkerShared::new(usize::MAX),
            thread_id: Mutex::new(None),
            owner: Mutex::new(None),
        }
    }

    /// The sequence went idle → queued. If the thread exited after the poster's admission
    /// check (a race; posts are normally refused with `ThreadExited` up front), the tasks are
    /// discarded rather than stranded, and a block-shutdown registration is released.
    pub(crate) fn schedule(&self, inner: &Arc<Inner>, seq: &Sequence) {
        let mut f = self.flags.lock();
        if f.dead {
            drop(f);
            tracing::warn!(target: "taskrunner", "task posted to a single-thread runner whose thread has exited; dropped");
            crate::unwind::drop_each_quietly(seq.clear());
            if seq.shutdown == ShutdownBehavior::BlockShutdown {
                Inner::check_completion(inner, inner.tracker.unregister_block());
            }
            return;
        }
        f.scheduled = true;
        drop(f);
        self.cv.notify_one();
    }

    /// Seeded test mode: the calling (test) thread plays the dedicated thread.
    #[cfg(feature = "test-util")]
    pub(crate) fn adopt_current_thread(&self) {
        *self.thread_id.lock() = Some(std::thread::current().id());
    }

    /// Marks a runner that never got a thread (created after shutdown started).
    pub(crate) fn mark_dead(&self) {
        self.flags.lock().dead = true;
    }

    /// `true` if the thread has nothing scheduled and is not running its sequence.
    #[cfg(feature = "test-util")]
    pub(crate) fn is_quiet(&self) -> bool {
        let f = self.flags.lock();
        !f.scheduled && !f.busy
    }

    /// `true` if the thread could not be started.
    pub(crate) fn spawn_failed(&self) -> bool {
        self.flags.lock().spawn_failed
    }

    /// `true` once the thread has exited for good.
    pub(crate) fn is_dead(&self) -> bool {
        self.flags.lock().dead
    }

    /// The owner, if any runner still holds it.
    pub(crate) fn owner(&self) -> Option<StdArc<ThreadOwner>> {
        self.owner.lock().as_ref().and_then(StdWeak::upgrade)
    }

    /// Asks the thread to exit once it has nothing queued.
    pub(crate) fn request_exit(&self) {
        let mut f = self.flags.lock();
        f.exit = true;
        drop(f);
        self.cv.notify_one();
    }

    /// `true` if the calling thread is this dedicated thread.
    pub(crate) fn is_current_thread(&self) -> bool {
        *self.thread_id.lock() == Some(std::thread::current().id())
    }

    /// Starts the thread. If the OS refuses, the runner is marked dead and every post to it is
    /// refused with `PostRefusal::ThreadSpawnFailed` (the closure handed back).
    pub(crate) fn start(inner: &Arc<Inner>, d: &Arc<Dedicated>, seq: Arc<Sequence>, name: String) {
        let inner2 = Arc::clone(inner);
        let d2 = Arc::clone(d);
        let mut b = thread::Builder::new().name(name);
        if let Some(sz) = inner.config.stack_size {
            b = b.stack_size(sz);
        }
        // Held across the spawn, so a join can never see the thread without its handle.
        let mut slot = d.worker.join.lock();
        match b.spawn(move || dedicated_main(inner2, d2, seq)) {
            Ok(h) => *slot = Some(h),
            Err(e) => {
                drop(slot);
                tracing::error!(
                    target: "taskrunner",
                    error = %e,
                    "failed to spawn the thread of a single-thread runner; its posts are refused"
                );
                let mut f = d.flags.lock();
                f.dead = true;
                f.spawn_failed = true;
                drop(f);
                inner.forget_dedicated(d);
            }
        }
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
}

fn dedicated_main(inner: Arc<Inner>, d: Arc<Dedicated>, seq: Arc<Sequence>) {
    let guard = AbortOnUnwind;
    *d.thread_id.lock() = Some(std::thread::current().id());
    current::set_thread_pool(Arc::clone(&inner));
    current::set_thread_of(Arc::as_ptr(&inner) as usize);
    loop {
        {
            let mut f = d.flags.lock();
            while !f.scheduled && !f.exit {
                d.cv.wait(&mut f);
            }
            if !f.scheduled {
                f.dead = true; // exit requested and nothing queued
                break;
            }
            f.scheduled = false;
            f.busy = true;
        }
        // Run the sequence until it goes idle: it competes with nothing on this thread.
        while let Some((_key, s)) = run_sequence_task(&inner, Arc::clone(&seq), &d.worker) {
            if inner.tracker.shutdown_completed() {
                // Shutdown completed while tasks were still queued: they never run.
                crate::unwind::drop_each_quietly(s.clear());
                break;
            }
        }
        d.flags.lock().busy = false;
    }
    inner.forget_dedicated(&d);
    current::clear_thread_pool();
    drop(guard);
}
