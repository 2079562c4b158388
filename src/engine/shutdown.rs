//! The shutdown protocol (Chromium's contract) and the pool's lifetime.
//!
//! 1. `shutdown()` sets the tracker's `STARTED` (posts are refused from now on, except
//!    immediate `BlockShutdown` ones until completion) and stops the delay manager (delayed
//!    tasks never run after shutdown starts).
//! 2. Workers skip every task that may not run any more (a queued skip or continue task, any
//!    delayed task) and run block tasks; each block task holds a tracker item from its post
//!    until it has run.
//! 3. The completion check runs after every event that can make it true (start, the last
//!    block item released, a running skip task ending after start): no item left, no skip task
//!    in any worker's running slot. Serialised by the completion lock; the tracker's CAS picks
//!    one winner.
//! 4. The winner runs the completion duties: every queued entry is discarded (handles resolve
//!    as not run), workers and dedicated threads are told to exit, waiters are released.
//! 5. `shutdown()` joins the threads (not the ones still running a continue-on-shutdown task,
//!    and never from one of the pool's own threads).
//!
//! See `tracker.rs` for the state word and `worker/thread.rs` for the running slot.

use std::time::Duration;

use crate::base::shim::{Arc, Ordering};
use crate::base::traits::ShutdownBehavior;
use crate::base::traits::TaskTraits;
use crate::base::unwind::drop_each_quietly;
use crate::engine::current;
use crate::engine::scheduler::{Home, Sequence, Work};
use crate::engine::worker::{Dedicated, RunningTask, WorkerShared};
use crate::engine::{Engine, ShutdownTimedOut};

impl Engine {
    /// Seeded test mode: starts shutdown without waiting (the test thread then runs what
    /// shutdown still needs).
    #[cfg(feature = "test-util")]
    pub(crate) fn start_shutdown_nowait(this: &Arc<Self>) {
        Engine::start_shutdown(this);
    }

    /// Starts shutdown (idempotent).
    pub(crate) fn start_shutdown(this: &Arc<Self>) {
        if this.tracker.start_shutdown() {
            tracing::debug!(target: "taskrunner", "thread pool shutdown started");
            // Everything may run during shutdown: fences would hold block-shutdown work forever.
            Engine::open_gate(this);
            // Delayed tasks never block shutdown and never run after it starts.
            Engine::drop_delayed(this, this.delay.stop());
        }
        Engine::maybe_complete_shutdown(this);
    }

    /// The completion check (see the module doc).
    pub(crate) fn maybe_complete_shutdown(this: &Arc<Self>) {
        if !this.tracker.shutdown_started() || this.tracker.shutdown_completed() {
            return;
        }
        let won = {
            let _g = this.completion.lock();
            this.tracker.pending_items() == 0
                && !this.group.workers().iter().any(|w| w.runs_skip_task())
                && !this
                    .dedicated
                    .lock()
                    .iter()
                    .any(|d| d.worker.runs_skip_task())
                && this.tracker.try_complete()
        };
        if won {
            Engine::complete_shutdown(this);
        }
    }

    /// The completion duties, run by whoever completed shutdown: discard everything queued,
    /// wake every worker so it exits, stop dedicated threads, release waiters.
    pub(crate) fn complete_shutdown(this: &Arc<Self>) {
        // Destructors of the discarded work run on this thread; one that calls `shutdown()`
        // must not wait for the end of these duties (see `shutdown_and_wait`).
        current::set_completing(Some(Engine::addr(this)));
        let _reset = ResetCompleting;
        let queued = this.group.complete();
        this.counters.dropped(Engine::discard(queued));
        Engine::drop_delayed(this, this.delay.stop());
        let dedicated: Vec<_> = this.dedicated.lock().clone();
        for d in dedicated {
            // What a dedicated thread has queued never runs now (it may still be running a
            // continue-on-shutdown task).
            this.counters
                .dropped(crate::engine::worker::discard_queued(&d) as u64);
            d.request_exit();
        }
        tracing::debug!(target: "taskrunner", "thread pool shutdown completed");
        this.tracker.signal_completed();
    }

    /// Drops entries that will never run (handles resolve as not run), each in its own guard.
    /// An entry of a sequence may have later entries of the same sequence parked in its reorder
    /// buffer, or held tasks behind it: those can never run either and are dropped too.
    /// Returns how many tasks were dropped (tickets of held sequences count as the tasks they
    /// stand for, which are dropped from the sequence).
    #[must_use = "the caller counts the dropped tasks"]
    pub(crate) fn discard(works: Vec<Work>) -> u64 {
        let mut seqs = Vec::new();
        let mut n = 0;
        for w in &works {
            if w.task.is_some() {
                n += 1;
            }
            if let Some(s) = &w.seq {
                if !s.is_parallel()
                    && !seqs
                        .iter()
                        .any(|x: &Arc<crate::engine::scheduler::Sequence>| Arc::ptr_eq(x, s))
                {
                    seqs.push(Arc::clone(s));
                }
            }
        }
        drop_each_quietly(works);
        for s in seqs {
            let buffered = s.take_buffered();
            let held = s.take_held_tasks();
            n += (buffered.len() + held.len()) as u64;
            drop_each_quietly(buffered);
            drop_each_quietly(held);
        }
        n
    }

    /// Drops delayed tasks that will never run (the delay manager stopped), counting them;
    /// timer callbacks are not tasks and are not counted.
    pub(crate) fn drop_delayed(this: &Arc<Self>, pending: Vec<crate::engine::delay::Delayed>) {
        let tasks = pending
            .iter()
            .filter(|d| !matches!(d.dest, crate::engine::delay::Destination::Inline))
            .count();
        this.counters.dropped(tasks as u64);
        drop_each_quietly(pending);
    }

    pub(crate) fn shutdown_and_wait(
        this: &Arc<Self>,
        timeout: Option<Duration>,
    ) -> Result<(), ShutdownTimedOut> {
        let addr = Engine::addr(this);
        let own_thread = current::is_thread_of(addr);
        if timeout.is_none() && own_thread && current::in_task() {
            panic!(
                "ThreadPool::shutdown() was called from inside a task of the same pool: it would wait for that task forever. \
                 Call it from outside the pool, or use shutdown_timeout()"
            );
        }
        if current::is_completing(addr) {
            // A destructor run by the completion duties themselves (a discarded task): shutdown
            // has completed; waiting for the end of the duties would wait for this very call.
            return Ok(());
        }
        Engine::start_shutdown(this);
        Engine::abandon_if_stalled(this);
        if own_thread && !current::in_task() && timeout.is_none() {
            // A destructor run by one of the pool's own threads (a discarded task, a
            // sequence-local value): that thread may be what shutdown waits for, so shutdown is
            // started and the call returns without waiting (see `ThreadPool::shutdown`).
            return Ok(());
        }
        if !this.tracker.wait_completed(timeout) {
            let mut running: Vec<RunningTask> = this
                .group
                .workers()
                .iter()
                .filter_map(|w| w.running())
                .collect();
            running.extend(
                this.dedicated
                    .lock()
                    .iter()
                    .filter_map(|d| d.worker.running()),
            );
            let running_skip = running
                .iter()
                .filter(|r| r.shutdown_behavior == ShutdownBehavior::SkipOnShutdown)
                .count();
            return Err(ShutdownTimedOut::new(
                running,
                this.tracker.pending_items() + running_skip,
            ));
        }
        if !own_thread {
            this.join_threads();
        }
        Ok(())
    }

    /// Shutdown of a pool whose workers cannot start: what is queued can never run, so it is
    /// discarded now (handles resolve as not run) and its shutdown items are released, instead
    /// of shutdown waiting for it forever.
    fn abandon_if_stalled(this: &Arc<Self>) {
        if !this.group.is_stalled() {
            return;
        }
        this.group.retry_start().run(this);
        let Some(works) = this.group.take_stalled_work() else {
            return;
        };
        tracing::error!(
            target: "taskrunner",
            entries = works.len(),
            "shutdown discards queued work that no thread can run (worker threads cannot be started)"
        );
        let blocks = works
            .iter()
            .filter(|w| match &w.seq {
                Some(s) => s.shutdown() == ShutdownBehavior::BlockShutdown,
                None => w.one_off_traits().shutdown_behavior == ShutdownBehavior::BlockShutdown,
            })
            .count();
        this.counters.dropped(Engine::discard(works));
        for _ in 0..blocks {
            Engine::check_completion(this, this.tracker.unregister_block());
        }
    }

    /// Joins worker and dedicated threads that have no continue-on-shutdown task running
    /// (those may outlive shutdown, as in Chromium). Never joins the calling thread.
    #[cfg(loom)]
    fn join_threads(&self) {}

    #[cfg(not(loom))]
    fn join_threads(&self) {
        let me = std::thread::current().id();
        let join = |h: Option<std::thread::JoinHandle<()>>| {
            if let Some(h) = h {
                if h.thread().id() != me {
                    let _ = h.join();
                }
            }
        };
        let continues = |w: &WorkerShared| {
            w.running()
                .is_some_and(|r| r.shutdown_behavior == ShutdownBehavior::ContinueOnShutdown)
        };
        for w in self
            .group
            .workers()
            .into_iter()
            .chain(self.group.take_exited())
        {
            if !continues(&w) {
                // Taken out first: the handle's lock must not be held while joining (the
                // worker may be running a destructor that takes it).
                let handle = w.join.lock().take();
                join(handle);
            }
        }
        let dedicated: Vec<_> = self.dedicated.lock().clone();
        for d in dedicated {
            if !continues(&d.worker) {
                d.join();
            }
        }
        join(self.delay.take_thread());
    }

    /// A dedicated thread is exiting. Once shutdown has started it stays listed, so that
    /// `shutdown()` joins it even if it exits before `join_threads` gets to it; before that, its
    /// owner joins it and the entry goes (the list stays bounded by live runners).
    /// A new sequence with a dedicated thread of its own (a single-thread runner's). After
    /// shutdown started the thread is never started, and every post to the sequence is
    /// refused.
    pub(crate) fn new_dedicated_sequence(
        this: &Arc<Self>,
        traits: TaskTraits,
    ) -> (Arc<Sequence>, Arc<Dedicated>) {
        #[cfg_attr(loom, allow(unused_variables))]
        let index = this.next_dedicated.fetch_add(1, Ordering::Relaxed);
        let d = Arc::new(Dedicated::new());
        let seq = Arc::new(Sequence::new(traits, Home::Dedicated(Arc::clone(&d))));
        if this.tracker.shutdown_started() {
            // No thread: every post is refused (by shutdown, or as ThreadExited).
            d.mark_dead(false);
            return (seq, d);
        }
        #[cfg(feature = "test-util")]
        if this.group.is_manual() {
            // Seeded single-thread test mode: every task runs on the test thread, so the
            // "dedicated thread" is that thread and the sequence competes in the group like any
            // other (thread affinity holds trivially).
            d.adopt_current_thread();
            return (Arc::new(Sequence::new(traits, Home::Pool)), d);
        }
        this.dedicated.lock().push(Arc::clone(&d));
        #[cfg(not(loom))]
        if !Dedicated::start(
            this,
            &d,
            Arc::clone(&seq),
            this.config.dedicated_thread_name(index),
            this.config.stack_size,
        ) {
            this.forget_dedicated(&d);
        }
        (seq, d)
    }

    pub(crate) fn forget_dedicated(&self, d: &Arc<Dedicated>) {
        if !self.tracker.shutdown_started() {
            self.dedicated.lock().retain(|x| !Arc::ptr_eq(x, d));
        }
    }

    // ---- lifetime ---------------------------------------------------------------------------

    /// The last user handle was dropped: wind down (queued immediate work still runs, pending
    /// delayed tasks are dropped, idle workers exit). Serialised with
    /// [`Engine::handle_revived`] by the lifecycle lock, and re-checks the count under it, so a
    /// handle that came back in between (`SequencedTaskRunner::current()` inside a
    /// still-running task) wins.
    pub(super) fn last_handle_dropped(this: &Arc<Self>) {
        let g = this.lifecycle.lock();
        if this.handles.load(Ordering::Acquire) != 0 {
            return;
        }
        let pending = this.delay.stop();
        this.group.set_terminating(true);
        drop(g);
        // Queued work still runs: a fence (or a pool never started) no longer holds it.
        Engine::open_gate(this);
        // Dropped after the lock: a destructor may revive a handle, which takes it again.
        Engine::drop_delayed(this, pending);
    }

    pub(super) fn handle_revived(this: &Arc<Self>) {
        let _g = this.lifecycle.lock();
        if !this.tracker.shutdown_started() {
            this.delay.reopen();
        }
        this.group.set_terminating(false);
    }

    /// Loom models: the real (private) shutdown entry point, without the wait.
    #[cfg(all(test, loom))]
    pub(crate) fn start_shutdown_for_loom(this: &Arc<Self>) {
        Engine::start_shutdown(this);
    }
}

/// Clears the "running completion duties" mark, also if a duty unwinds.
struct ResetCompleting;

impl Drop for ResetCompleting {
    fn drop(&mut self) {
        current::set_completing(None);
    }
}
