//! Per-runner control for the runners that own a sequence: a name, `flush`, `close`,
//! `is_closed`.
//! The methods are documented on [`SequencedTaskRunner`] and [`SingleThreadTaskRunner`];
//! both share these bodies.

use std::panic::Location;
use std::sync::Arc as StdArc;

use crate::base::error::PostRefusal;
use crate::base::shim::Arc;
use crate::engine::scheduler::Sequence;
use crate::engine::{check_can_block, check_not_own_sequence, Engine};
use crate::runner::{SequencedTaskRunner, SingleThreadTaskRunner, UpdateableSequencedTaskRunner};

/// Waits until everything queued on `seq` before the call has run or been dropped.
fn flush(
    pool: &Arc<Engine>,
    seq: &Arc<Sequence>,
    what: &str,
    posted_from: &'static Location<'static>,
) -> Result<(), PostRefusal> {
    check_not_own_sequence(Some(seq.token), what);
    check_can_block(what);
    let marker = Engine::post_marker(pool, seq, posted_from)?;
    // `Err` when the marker itself was dropped (a closed runner, shutdown): its turn came all
    // the same, so everything before it has run or been dropped.
    let _ = marker.join();
    Ok(())
}

impl SequencedTaskRunner {
    /// Gives the runner a name (for all its clones): it appears as the `runner` field of its
    /// tasks' tracing spans, in the pool's panic reports
    /// ([`TaskPanic::runner_name`](crate::TaskPanic::runner_name)) and in `Debug`. Naming
    /// costs its tasks nothing; a name given later replaces the earlier one.
    ///
    /// ```
    /// use taskrunner::{TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let db = pool.create_sequenced_task_runner(TaskTraits::default()).named("db");
    /// assert_eq!(db.name().as_deref(), Some("db"));
    /// assert!(format!("{db:?}").contains("\"db\""));
    /// ```
    #[must_use]
    pub fn named(self, name: impl Into<StdArc<str>>) -> Self {
        self.parts().1.set_name(name.into());
        self
    }

    /// The runner's name, if it was given one ([`named`](Self::named)).
    ///
    /// ```
    /// let pool = taskrunner::ThreadPool::builder().max_workers(1).build().unwrap();
    /// assert!(pool.create_sequenced_task_runner(Default::default()).name().is_none());
    /// ```
    pub fn name(&self) -> Option<StdArc<str>> {
        self.parts().1.name()
    }

    /// Blocks until every task posted to this runner before the call has run (or been dropped:
    /// a closed runner, shutdown, a poisoned sequence). Delayed tasks that are not due yet are
    /// not waited for (as Chromium's `FlushForTesting`); a task posted meanwhile by another
    /// thread may or may not have run. It queues an empty task behind the others and waits
    /// for its turn, so it works on a closed runner too; on a pool worker the wait is a
    /// blocking scope.
    ///
    /// `Err` if that empty task is refused, and then nothing was waited for: the pool is
    /// shutting down (and this runner's tasks are not `BlockShutdown`), or the sequence was
    /// poisoned.
    ///
    /// # Panics
    ///
    /// If called from a task of this sequence (it would wait for itself), or on the thread
    /// that drives a seeded single-thread `TestEnvironment`.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let n = Arc::new(AtomicUsize::new(0));
    /// for _ in 0..100 {
    ///     let n = n.clone();
    ///     seq.post_task(move || { n.fetch_add(1, Ordering::SeqCst); }).unwrap();
    /// }
    /// seq.flush().unwrap();
    /// assert_eq!(n.load(Ordering::SeqCst), 100);
    /// ```
    #[track_caller]
    pub fn flush(&self) -> Result<(), PostRefusal> {
        let (pool, seq) = self.parts();
        flush(pool, seq, "SequencedTaskRunner::flush", Location::caller())
    }

    /// Closes the runner, for every clone of it, while the pool goes on: later posts are
    /// refused with [`PostRefusal::RunnerClosed`] (the closure handed back), and the tasks
    /// already queued follow the runner's shutdown behaviour, as at pool shutdown:
    /// immediate `BlockShutdown` tasks still run, in order; the others never start (they are
    /// dropped, and their handles end as not run). A task running now finishes. Returns
    /// `true` if this call closed it. A post racing the close is either refused or queued
    /// and treated like the tasks already queued.
    ///
    /// ```
    /// use taskrunner::{PostRefusal, PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// assert!(seq.close());
    /// assert!(seq.is_closed());
    /// let err = seq.post_task(|| ()).unwrap_err();
    /// assert_eq!(err.reason(), PostRefusal::RunnerClosed);
    /// // The pool and its other runners go on.
    /// assert!(pool.create_sequenced_task_runner(TaskTraits::default()).post_task(|| ()).is_ok());
    /// ```
    pub fn close(&self) -> bool {
        self.parts().1.close()
    }

    /// `true` once the runner was [closed](Self::close).
    ///
    /// ```
    /// let pool = taskrunner::ThreadPool::builder().max_workers(1).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(Default::default());
    /// let view = seq.clone();
    /// seq.close();
    /// assert!(view.is_closed()); // every clone
    /// ```
    pub fn is_closed(&self) -> bool {
        self.parts().1.is_closed()
    }
}

impl SingleThreadTaskRunner {
    /// Gives the runner a name (for all its clones and views); as
    /// [`SequencedTaskRunner::named`].
    ///
    /// ```
    /// use taskrunner::{TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let ui = pool.create_single_thread_task_runner(TaskTraits::default()).named("ui");
    /// assert_eq!(ui.name().as_deref(), Some("ui"));
    /// assert_eq!(ui.as_sequenced().name().as_deref(), Some("ui"));
    /// ```
    #[must_use]
    pub fn named(self, name: impl Into<StdArc<str>>) -> Self {
        self.parts().1.set_name(name.into());
        self
    }

    /// The runner's name, if it was given one ([`named`](Self::named)).
    ///
    /// ```
    /// let pool = taskrunner::ThreadPool::builder().max_workers(1).build().unwrap();
    /// assert!(pool.create_single_thread_task_runner(Default::default()).name().is_none());
    /// ```
    pub fn name(&self) -> Option<StdArc<str>> {
        self.parts().1.name()
    }

    /// Blocks until every task posted to this runner before the call has run (or been
    /// dropped); as [`SequencedTaskRunner::flush`].
    ///
    /// # Panics
    ///
    /// If called on this runner's own thread (it would wait for itself).
    ///
    /// ```
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let st = pool.create_single_thread_task_runner(TaskTraits::default());
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// st.post_task(move || tx.send(1).unwrap()).unwrap();
    /// st.flush().unwrap();
    /// assert_eq!(rx.try_recv().unwrap(), 1); // already ran
    /// ```
    #[track_caller]
    pub fn flush(&self) -> Result<(), PostRefusal> {
        let (pool, seq) = self.parts();
        flush(
            pool,
            seq,
            "SingleThreadTaskRunner::flush",
            Location::caller(),
        )
    }

    /// Closes the runner while the pool goes on; as [`SequencedTaskRunner::close`]. The
    /// runner's thread is still joined when the last clone is dropped (or at shutdown).
    ///
    /// ```
    /// use taskrunner::{PostTask, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let st = pool.create_single_thread_task_runner(TaskTraits::default());
    /// assert!(st.close());
    /// assert!(!st.close()); // already closed
    /// assert!(st.post_task(|| ()).is_err());
    /// ```
    pub fn close(&self) -> bool {
        self.parts().1.close()
    }

    /// `true` once the runner was [closed](Self::close).
    ///
    /// ```
    /// let pool = taskrunner::ThreadPool::builder().max_workers(1).build().unwrap();
    /// let st = pool.create_single_thread_task_runner(Default::default());
    /// assert!(!st.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.parts().1.is_closed()
    }
}

impl UpdateableSequencedTaskRunner {
    /// Gives the runner a name; as [`SequencedTaskRunner::named`] (whose other methods,
    /// [`name`](SequencedTaskRunner::name) among them, this runner has through `Deref`).
    ///
    /// ```
    /// use taskrunner::{TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let jobs = pool.create_updateable_sequenced_task_runner(TaskTraits::default()).named("jobs");
    /// assert_eq!(jobs.name().as_deref(), Some("jobs"));
    /// ```
    #[must_use]
    pub fn named(self, name: impl Into<StdArc<str>>) -> Self {
        self.parts().1.set_name(name.into());
        self
    }
}
