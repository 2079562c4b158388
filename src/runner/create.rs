//! The pool's runner constructors. They live with the runners (the facade in `pool/` knows
//! nothing of them); the rustdoc page of [`ThreadPool`] shows them with its other methods.

use crate::base::traits::TaskTraits;
use crate::engine::Engine;
use crate::pool::ThreadPool;
use crate::runner::{
    SequencedTaskRunner, SingleThreadTaskRunner, TaskRunner, UpdateableSequencedTaskRunner,
};

impl ThreadPool {
    /// A runner whose tasks run in parallel, in no particular order.
    ///
    /// ```
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let r = pool.create_task_runner(TaskTraits::default());
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// r.post_task(move || tx.send(5).unwrap()).unwrap();
    /// assert_eq!(rx.recv().unwrap(), 5);
    /// ```
    pub fn create_task_runner(&self, traits: TaskTraits) -> TaskRunner {
        TaskRunner::new(self.pool_ref().clone(), traits)
    }

    /// A runner whose tasks run one at a time, in posting order, on any worker.
    ///
    /// ```
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let s2 = seq.clone();
    /// seq.post_task(move || tx.send(s2.runs_tasks_in_current_sequence()).unwrap()).unwrap();
    /// assert!(rx.recv().unwrap());
    /// ```
    pub fn create_sequenced_task_runner(&self, traits: TaskTraits) -> SequencedTaskRunner {
        SequencedTaskRunner::new(self.pool_ref().clone(), traits)
    }

    /// A sequenced runner whose priority can be updated later (see
    /// [`UpdateableSequencedTaskRunner`]).
    ///
    /// ```
    /// # use taskrunner::{ThreadPool, TaskPriority, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let seq = pool.create_updateable_sequenced_task_runner(TaskPriority::UserVisible.into());
    /// assert_eq!(seq.priority(), TaskPriority::UserVisible);
    /// ```
    pub fn create_updateable_sequenced_task_runner(
        &self,
        traits: TaskTraits,
    ) -> UpdateableSequencedTaskRunner {
        UpdateableSequencedTaskRunner::new(self.pool_ref().clone(), traits)
    }

    /// A runner with a dedicated thread of its own. The thread is joined when the last clone of
    /// the runner (or of a view from `as_sequenced`) is dropped outside the pool's threads
    /// (after it has run what was queued), or by `shutdown()`. Created after shutdown started,
    /// the runner has no thread and refuses every post.
    ///
    /// ```
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let st = pool.create_single_thread_task_runner(TaskTraits::default());
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// for _ in 0..2 {
    ///     let tx = tx.clone();
    ///     st.post_task(move || tx.send(std::thread::current().id()).unwrap()).unwrap();
    /// }
    /// assert_eq!(rx.recv().unwrap(), rx.recv().unwrap());
    /// ```
    pub fn create_single_thread_task_runner(&self, traits: TaskTraits) -> SingleThreadTaskRunner {
        let (seq, d) = Engine::new_dedicated_sequence(self.pool_inner(), traits);
        SingleThreadTaskRunner::new(self.pool_ref().clone(), seq, d)
    }
}
