//! Where a batcher runs its dispatches: the pool (with traits) or one of the runners.

use std::future::Future;
use std::panic::Location;
use std::time::Duration;

use crate::base::shim::Arc;
use crate::base::traits::TaskTraits;
use crate::engine::{Engine, PostDest};
use crate::pool::ThreadPool;
use crate::runner::PostTask;
use crate::runner::{SequencedTaskRunner, SingleThreadTaskRunner, TaskRunner};

/// The runner a batcher posts its dispatch tasks to (static dispatch over the flavours).
#[derive(Clone, Debug)]
pub(crate) enum Place {
    Pool(ThreadPool, TaskTraits),
    Parallel(TaskRunner),
    Sequenced(SequencedTaskRunner),
    SingleThread(SingleThreadTaskRunner),
}

impl Place {
    /// The pool behind the place: flush tasks, timers and the clock come from it.
    pub(crate) fn inner(&self) -> &Arc<Engine> {
        match self {
            Place::Pool(p, _) => p.pool_ref().inner(),
            Place::Parallel(r) => r.pool_inner(),
            Place::Sequenced(r) => r.pool_inner(),
            Place::SingleThread(r) => r.pool_inner(),
        }
    }

    /// Posts a dispatch task, reported as posted from `posted_from` (where the batcher was
    /// built); `false` if refused (the closure was dropped, which resolves its requests as not
    /// run).
    pub(crate) fn post<F>(&self, f: F, posted_from: &'static Location<'static>) -> bool
    where
        F: FnOnce() + Send + 'static,
    {
        let post = |dest: PostDest<'_>, f: F| {
            Engine::post(self.inner(), dest, Duration::ZERO, f, posted_from).is_ok()
        };
        match self {
            Place::Pool(_, t) => post(PostDest::Parallel(*t), f),
            Place::Parallel(r) => post(PostDest::Parallel(r.traits()), f),
            Place::Sequenced(r) => post(PostDest::Sequence(r.parts().1), f),
            // Its sequence is private to the runner: the task reports this line instead.
            Place::SingleThread(r) => r.post_task(f).is_ok(),
        }
    }

    /// Polls a dispatch future as tasks of the place; `false` if refused (the future was
    /// dropped, which resolves its requests as not run).
    pub(crate) fn post_future<F>(&self, fut: F) -> bool
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match self {
            Place::Pool(p, t) => p.post_future(*t, fut).is_ok(),
            Place::Parallel(r) => r.post_future(fut).is_ok(),
            Place::Sequenced(r) => r.post_future(fut).is_ok(),
            Place::SingleThread(r) => r.post_future(fut).is_ok(),
        }
    }
}

/// A runner a [`Batcher`](crate::batch::Batcher) can run its dispatches on (see
/// [`BatcherBuilder::runner`](crate::batch::BatcherBuilder::runner)): a [`TaskRunner`] (dispatches in
/// parallel, up to `max_in_flight`), a [`SequencedTaskRunner`] (one dispatch at a time, in
/// order) or a [`SingleThreadTaskRunner`] (one at a time, on its own thread). Sealed.
///
/// ```
/// use taskrunner::{TaskTraits, ThreadPool};
/// use taskrunner::batch::Batcher;
/// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
/// let io = pool.create_task_runner(TaskTraits::new().may_block(true));
/// let batcher = Batcher::builder()
///     .runner(io)
///     .build(|reqs: Vec<u8>| Ok::<_, std::convert::Infallible>(reqs));
/// assert_eq!(batcher.call(7).join().unwrap(), 7);
/// ```
pub trait DispatchRunner: sealed::Sealed {}

/// A [`Place`] behind a public, unnameable type (the sealed trait's method must not expose a
/// crate-private type).
#[derive(Debug)]
pub struct SealedPlace(pub(crate) Place);

pub(crate) mod sealed {
    /// Turns a runner into a [`Place`](super::Place).
    pub trait Sealed {
        /// The place this runner stands for.
        #[doc(hidden)]
        fn into_place(self) -> super::SealedPlace;
    }
}

impl sealed::Sealed for TaskRunner {
    fn into_place(self) -> SealedPlace {
        SealedPlace(Place::Parallel(self))
    }
}
impl DispatchRunner for TaskRunner {}

impl sealed::Sealed for SequencedTaskRunner {
    fn into_place(self) -> SealedPlace {
        SealedPlace(Place::Sequenced(self))
    }
}
impl DispatchRunner for SequencedTaskRunner {}

impl sealed::Sealed for SingleThreadTaskRunner {
    fn into_place(self) -> SealedPlace {
        SealedPlace(Place::SingleThread(self))
    }
}
impl DispatchRunner for SingleThreadTaskRunner {}
