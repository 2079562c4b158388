//! The default post paths of [`PostTask`](super::PostTask) for runners defined outside the
//! crate: everything goes through the runner's own `post_task_from` / `post_delayed_task_from`.
//! The crate's runners override these with the engine's single-allocation paths.
//!
//! A refused post must hand the caller's closure back, but what is posted is a wrapper
//! around it; so the closure waits in a slot shared with the wrapper, and a refusal takes it
//! back out (one extra allocation, on this path only).

use std::panic::Location;
use std::time::Duration;

use crate::base::error::{PostError, PostRefusal};
use crate::base::shim::{Arc, Mutex};
use crate::engine::{Engine, PoolRef, PostDest};
use crate::handle::{Reply, TaskHandle};
use crate::runner::Deferred;

use super::PostTask;

/// A value shared between a posted wrapper and its poster, taken exactly once.
pub(crate) struct Slot<T>(Arc<Mutex<Option<T>>>);

impl<T> Slot<T> {
    pub(crate) fn new(t: T) -> (Self, Self) {
        let a = Arc::new(Mutex::new(Some(t)));
        (Slot(Arc::clone(&a)), Slot(a))
    }

    pub(crate) fn take(&self) -> Option<T> {
        self.0.lock().take()
    }
}

pub(super) fn post_with_result<P, F, T>(
    runner: &P,
    delay: Duration,
    f: F,
    posted_from: &'static Location<'static>,
) -> Result<TaskHandle<T>, PostError<F>>
where
    P: PostTask + ?Sized,
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (mine, theirs) = Slot::new(f);
    let (task, handle) = Deferred::new(move || match theirs.take() {
        Some(f) => f(),
        None => unreachable!("a posted task runs once, and only if its post was accepted"),
    });
    match runner.post_delayed_task_from(delay, move || task.run_reporting(posted_from), posted_from)
    {
        Ok(()) => Ok(handle),
        Err(e) => {
            let reason = e.reason();
            drop(e); // the wrapper, with the task's half of the slot
            let f = mine.take().expect("a refused task never ran");
            Err(PostError::new(reason, f))
        }
    }
}

pub(super) fn post_and_reply<P, F, T, R>(
    runner: &P,
    delay: Duration,
    task: F,
    reply: R,
    posted_from: &'static Location<'static>,
) -> Result<(), PostError<(F, R)>>
where
    P: PostTask + ?Sized,
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
    R: Reply<T>,
{
    let Some((origin_seq, origin_pool)) = crate::engine::current::current_sequence() else {
        return Err(PostError::new(
            PostRefusal::NoCurrentSequence,
            (task, reply),
        ));
    };
    let origin = PoolRef::from_inner(&origin_pool);
    let (mine, theirs) = Slot::new((task, reply));
    let posted = runner.post_delayed_task_from(
        delay,
        move || {
            let Some((task, reply)) = theirs.take() else {
                return;
            };
            let value = task();
            // As on the crate's runners: a reply the origin refuses is dropped here, unrun.
            let _ = Engine::post(
                origin.inner(),
                PostDest::Sequence(&origin_seq),
                Duration::ZERO,
                move || reply.call(value),
                posted_from,
            );
        },
        posted_from,
    );
    match posted {
        Ok(()) => Ok(()),
        Err(e) => {
            let reason = e.reason();
            drop(e);
            let both = mine.take().expect("a refused task never ran");
            Err(PostError::new(reason, both))
        }
    }
}
