//! `blocking`: tell the pool a task is about to block, so CPU work is not starved meanwhile.

use crate::base::shim::Arc;
use crate::engine::current;
use crate::engine::Engine;

/// Runs `f`, which is expected to block (file or network I/O, waiting on a lock or a channel),
/// and lets the pool run one more worker while it does, so that CPU-bound tasks are not starved
/// by blocked workers (Chromium's `ScopedBlockingCall` with `WILL_BLOCK`). Returns `f`'s value.
///
/// Only tasks posted with [`TaskTraits::may_block(true)`](crate::TaskTraits::may_block) may
/// block: in debug builds, calling this from a pool task without that trait panics with a
/// message saying so. Outside pool workers (the main thread, a single-thread runner's own
/// thread) it runs `f` without adjusting anything (the may-block check above still applies in
/// debug builds).
///
/// ```
/// use taskrunner::{PostTask, ThreadPool, TaskTraits};
/// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
/// let io = TaskTraits::new().may_block(true);
/// let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
/// let blocked = pool.post_task_with_result(io, move || taskrunner::blocking(|| release_rx.recv().unwrap())).unwrap();
/// // The only worker is blocked, yet CPU work still runs on a compensating worker:
/// let cpu = pool.post_task_with_result(TaskTraits::default(), || 2 + 2).unwrap();
/// assert_eq!(cpu.join().unwrap(), 4);
/// release_tx.send(()).unwrap();
/// blocked.join().unwrap();
/// ```
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    if cfg!(debug_assertions) && current::in_task() && !current::may_block() {
        panic!(
            "taskrunner::blocking() called from a task without the may-block trait: post blocking work \
             with TaskTraits::new().may_block(true) (or to a runner created with it) so the pool can plan for it"
        );
    }
    blocking_unchecked(f)
}

/// [`blocking`] without the may-block check: for the crate's own waits (a join, a scope, a
/// group, a semaphore, a full executor queue...), which any task may do. On a pool worker the
/// pool runs one more worker while `f` blocks (Chromium's `ScopedBlockingCall`), so a pool can
/// never deadlock on its own waits; elsewhere `f` just runs. Call it around the part that
/// actually blocks, after any fast path, so that a wait that need not block costs nothing.
pub(crate) fn blocking_unchecked<R>(f: impl FnOnce() -> R) -> R {
    let _scope = if current::is_worker() && current::in_task() {
        // Only the outermost scope of a task adjusts the pool: nested scopes block the same
        // worker, which was already compensated for.
        let outermost = current::blocking_depth(true) == 0;
        let inner = if outermost {
            current::current_pool().map(|inner| {
                let best_effort = current::is_best_effort();
                // What this worker kept for itself goes where other workers take it at once.
                crate::engine::worker::flush_local_before_blocking(
                    &inner.group,
                    Engine::addr(&inner),
                );
                inner.group.begin_blocking(best_effort).run(&inner);
                (inner, best_effort)
            })
        } else {
            None
        };
        Some(BlockingScope { inner })
    } else {
        None
    };
    f()
}

/// Gives the capacity back when the outermost scope ends, also if `f` panics; restores the
/// nesting depth for nested ones.
struct BlockingScope {
    inner: Option<(Arc<Engine>, bool)>,
}

impl Drop for BlockingScope {
    fn drop(&mut self) {
        current::blocking_depth(false);
        if let Some((inner, best_effort)) = &self.inner {
            inner.group.end_blocking(*best_effort);
        }
    }
}

/// Panics instead of blocking forever on the thread that drives a seeded single-thread
/// `TestEnvironment` (only that thread runs its tasks). `what` names the wait.
pub(crate) fn check_can_block(what: &str) {
    #[cfg(feature = "test-util")]
    if crate::engine::current::drives_seeded_env() {
        panic!(
            "{what} on the thread that drives a seeded single-thread TestEnvironment would block forever: \
             only this thread runs its tasks. Run them first (env.run_until_idle(), fast_forward_by), \
             or wait with a timeout."
        );
    }
    #[cfg(not(feature = "test-util"))]
    let _ = what;
}

/// Panics with advice if the calling task runs on the sequence `token` (if any): the wait
/// named `what` is for work queued on that sequence, behind the caller, so it could never end.
#[track_caller]
pub(crate) fn check_not_own_sequence(token: Option<u64>, what: &str) {
    if let Some(t) = token {
        crate::engine::current::assert_not_waiting_on_own_sequence(t, what);
    }
}
