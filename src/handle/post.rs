//! Posting a task whose outcome someone receives: a [`TaskHandle`] (the closure and the result
//! cell share one allocation, queued as the engine's `Job::Cell`), or a reply posted back to
//! the sequence that posted. These are the engine's `post` plus a cell or a reply; the engine
//! itself knows nothing of handles.

use std::panic::Location;
use std::time::Duration;
#[cfg(feature = "test-util")]
use std::time::Instant;

use crate::base::error::{PostError, PostRefusal};
use crate::base::shim::Arc;
use crate::engine::current;
use crate::engine::delay::DelayId;
use crate::engine::scheduler::Sequence;
use crate::engine::task::{BoxedFn, Job, Task};
use crate::engine::{Engine, PoolRef, PostDest};
use crate::handle::cell::HandleCell;
use crate::handle::{new_queued_cell, HandleHost, Reply, TaskHandle};
use std::sync::Arc as StdArc;

impl Engine {
    /// Like [`post`](Engine::post), returning a handle to the task's result. The closure and
    /// the result cell share one allocation.
    pub(crate) fn post_with_result<F, T>(
        this: &Arc<Self>,
        dest: PostDest<'_>,
        delay: Duration,
        f: F,
        posted_from: &'static Location<'static>,
    ) -> Result<TaskHandle<T>, PostError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        Engine::post_mapped_with_result(this, dest, delay, f, |f| f, posted_from)
    }

    /// [`post_with_result`](Engine::post_with_result) of `wrap(f)`, handing back `f` on refusal.
    pub(crate) fn post_mapped_with_result<F, G, T>(
        this: &Arc<Self>,
        dest: PostDest<'_>,
        delay: Duration,
        f: F,
        wrap: impl FnOnce(F) -> G,
        posted_from: &'static Location<'static>,
    ) -> Result<TaskHandle<T>, PostError<F>>
    where
        G: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        match Engine::admit(this, &dest, delay) {
            Ok(block) => {
                let (job, cell) = new_queued_cell(wrap(f));
                let sequence = match &dest {
                    PostDest::Sequence(s) => s.token,
                    _ => 0,
                };
                let entry = Engine::submit(
                    this,
                    dest,
                    delay,
                    Task::from_job(Job::Cell(job), posted_from),
                    block,
                );
                let handle = Engine::handle_of(this, cell, sequence);
                Ok(match entry {
                    Some(id) => handle.with_delay_entry(this, id),
                    None => handle,
                })
            }
            Err(reason) => Err(PostError::new(reason, f)),
        }
    }

    /// Queues an empty task at the tail of `seq` (even if its runner was closed) and returns
    /// its handle: when the handle resolves, whether the marker ran or was dropped, every
    /// task queued on `seq` before it has run or been dropped. A runner's `flush`.
    pub(crate) fn post_marker(
        this: &Arc<Self>,
        seq: &Arc<Sequence>,
        posted_from: &'static Location<'static>,
    ) -> Result<TaskHandle<()>, PostRefusal> {
        let dest = PostDest::Sequence(seq);
        let block = Engine::admit_past_close(this, &dest)?;
        let (job, cell) = new_queued_cell(|| ());
        // Untracked: a named runner does not count its flush markers as its tasks.
        Engine::submit_untracked(
            this,
            dest,
            Duration::ZERO,
            Task::from_job(Job::Cell(job), posted_from),
            block,
        );
        Ok(Engine::handle_of(this, cell, seq.token))
    }

    /// The handle of a cell queued on this pool (`sequence`: the sequence's token, 0 for a
    /// one-off task), aware of a test environment's mock clock and seeded mode.
    fn handle_of<T: Send + 'static>(
        this: &Arc<Self>,
        cell: StdArc<dyn HandleCell<T>>,
        sequence: u64,
    ) -> TaskHandle<T> {
        let handle = TaskHandle::from_cell(cell).on_sequence(sequence);
        #[cfg(feature = "test-util")]
        let handle = handle
            .on_seeded_pool(this.group.is_manual())
            .on_mock_pool(this);
        #[cfg(not(feature = "test-util"))]
        let _ = this;
        handle
    }

    /// Post-and-reply: runs `wrap(task)` at `dest`, then posts `reply(value)` to the sequence
    /// that is current at the call. See `PostTask::post_task_and_reply_with_result`.
    pub(crate) fn post_and_reply<F, G, T, R>(
        this: &Arc<Self>,
        dest: PostDest<'_>,
        delay: Duration,
        task: F,
        wrap: impl FnOnce(F) -> G,
        reply: R,
        posted_from: &'static Location<'static>,
    ) -> Result<(), PostError<(F, R)>>
    where
        G: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
        R: Reply<T>,
    {
        let Some((origin_seq, origin_pool)) = current::current_sequence() else {
            return Err(PostError::new(
                PostRefusal::NoCurrentSequence,
                (task, reply),
            ));
        };
        let block = match Engine::admit(this, &dest, delay) {
            Ok(b) => b,
            Err(reason) => return Err(PostError::new(reason, (task, reply))),
        };
        let origin = PoolRef::from_inner(&origin_pool);
        let task = wrap(task);
        let job: BoxedFn = Box::new(move || {
            let value = task();
            // The reply goes back to the origin sequence with the value moved into it. If the
            // origin refuses it (shutdown, or its thread exited), the reply is dropped here,
            // unrun: it is `Send`, so dropping it on this sequence is sound, and unlike
            // Chromium (which leaks it) nothing leaks.
            let _ = Engine::post(
                origin.inner(),
                PostDest::Sequence(&origin_seq),
                Duration::ZERO,
                move || reply.call(value),
                posted_from,
            );
        });
        let _ = Engine::submit(this, dest, delay, Task::new(job, posted_from), block);
        Ok(())
    }
}

impl HandleHost for Engine {
    fn cancel_delayed(&self, id: DelayId) {
        self.cancel_delayed_task(id);
    }

    #[cfg(feature = "test-util")]
    fn delay_pending(&self, id: DelayId) -> bool {
        self.delay.is_pending(id)
    }

    #[cfg(feature = "test-util")]
    fn now(&self) -> Instant {
        self.clock.now()
    }

    #[cfg(feature = "test-util")]
    fn is_mock(&self) -> bool {
        self.delay.is_manual()
    }

    #[cfg(feature = "test-util")]
    fn is_seeded(&self) -> bool {
        self.group.is_manual()
    }
}
