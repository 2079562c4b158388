//! `UpdateableSequencedTaskRunner`: a sequenced runner whose priority can change.

use std::ops::Deref;

use crate::base::shim::Arc;
use crate::base::traits::{TaskPriority, TaskTraits};
use crate::engine::scheduler::{Home, Sequence, Work};
use crate::engine::{Engine, PoolRef};
use crate::runner::SequencedTaskRunner;

/// A [`SequencedTaskRunner`] whose priority can be changed while it has work queued
/// (Chromium's `UpdateableSequencedTaskRunner`). Derefs to the sequenced runner for posting.
///
/// [`update_priority`](Self::update_priority) affects every task not yet started, including a
/// sequence already waiting in the pool's queue (it is re-keyed at once). The task running now
/// keeps the priority it started with.
///
/// ```
/// use taskrunner::{PostTask, ThreadPool, TaskPriority, TaskTraits};
/// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
/// let seq = pool.create_updateable_sequenced_task_runner(TaskPriority::BestEffort.into());
/// seq.update_priority(TaskPriority::UserBlocking);
/// assert_eq!(seq.priority(), TaskPriority::UserBlocking);
/// let h = seq.post_task_with_result(|| 1).unwrap(); // Deref: every SequencedTaskRunner method
/// assert_eq!(h.join().unwrap(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct UpdateableSequencedTaskRunner {
    runner: SequencedTaskRunner,
}

impl UpdateableSequencedTaskRunner {
    pub(crate) fn new(pool: PoolRef, traits: TaskTraits) -> Self {
        // Its tasks wait in the sequence itself (held mode), so that work already queued can
        // be re-keyed.
        let seq = Arc::new(Sequence::new_held(traits, Home::Pool));
        UpdateableSequencedTaskRunner {
            runner: SequencedTaskRunner::from_parts(pool, seq, None),
        }
    }

    /// Sets the priority of every task of this sequence that has not started yet.
    ///
    /// ```
    /// # use taskrunner::{ThreadPool, TaskPriority, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let seq = pool.create_updateable_sequenced_task_runner(TaskTraits::default());
    /// seq.update_priority(TaskPriority::BestEffort);
    /// assert_eq!(seq.priority(), TaskPriority::BestEffort);
    /// ```
    pub fn update_priority(&self, priority: TaskPriority) {
        let (inner, seq) = self.runner.parts();
        // Every ticket already queued goes stale; as many fresh ones as there are tasks waiting
        // are queued at the new priority.
        let (epoch, n) = seq.set_priority_held(priority);
        for _ in 0..n {
            Engine::push_work(inner, Work::ticket(Arc::clone(seq), epoch));
        }
    }

    /// The plain sequenced runner (same sequence).
    ///
    /// ```
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let u = pool.create_updateable_sequenced_task_runner(TaskTraits::default());
    /// assert!(u.as_sequenced().is_same_sequence(&u));
    /// ```
    pub fn as_sequenced(&self) -> &SequencedTaskRunner {
        &self.runner
    }
}

impl Deref for UpdateableSequencedTaskRunner {
    type Target = SequencedTaskRunner;
    fn deref(&self) -> &SequencedTaskRunner {
        &self.runner
    }
}
