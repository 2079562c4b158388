//! Reporting a task's panic to its pool: poison the sequence under
//! [`PanicPolicy::Poison`], log it and call the pool's panic handler, abort under
//! [`PanicPolicy::Abort`]. The catching itself is in `base::unwind`.

use std::panic::Location;

use crate::base::traits::PanicPolicy;
use crate::engine::current;

/// Reports a panic that a task caught itself (to resolve a handle), exactly as the worker
/// reports a plain task's panic: under [`PanicPolicy::Poison`] the running sequence is
/// poisoned first (its queue is dropped and later posts are refused), then the panic is logged
/// and passed to the pool's panic handler, and under [`PanicPolicy::Abort`] the process aborts.
/// Call it *before* resolving the handle, so that nobody who hears of the panic can still post
/// to a sequence that is about to be poisoned.
///
/// Outside a pool task (a `PostTask` implemented outside this crate ran the closure on a thread
/// of its own) there is no policy or handler: the panic is logged.
pub(crate) fn report_task_panic(message: String, posted_from: &'static Location<'static>) {
    let pool = if current::in_task() {
        current::current_pool()
    } else {
        None
    };
    let Some(pool) = pool else {
        tracing::error!(target: "taskrunner", posted_from = %posted_from, "task panicked: {message}");
        return;
    };
    pool.counters.panicked();
    current::with_running_runner(|r| r.count_panic());
    let policy = current::panic_policy();
    if policy == PanicPolicy::Poison {
        if let Some((queued, behavior)) =
            current::running_sequence_ref(|s| (s.poison(), s.shutdown()))
        {
            crate::engine::Engine::drop_never_run(&pool, behavior, queued);
        }
    }
    pool.report_panic_message(posted_from, message);
    if policy == PanicPolicy::Abort {
        abort_for_policy(posted_from);
    }
}

/// `PanicPolicy::Abort`: the task's panic has been reported; end the process.
pub(crate) fn abort_for_policy(posted_from: &'static Location<'static>) -> ! {
    eprintln!(
        "taskrunner: a task posted from {posted_from} panicked under PanicPolicy::Abort; aborting"
    );
    std::process::abort();
}
