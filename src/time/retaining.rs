//! `RetainingOneShotTimer`: a one-shot timer that keeps its task, so `reset` re-arms it.

use std::fmt;
use std::panic::Location;
use std::time::Duration;

use crate::base::error::PostError;
use crate::base::shim::Arc;
use crate::runner::SequencedTaskRunner;
use crate::time::timer_core::{Kind, TimerCore, UserTask};

/// A one-shot timer that keeps its task after it fired and after [`stop`](Self::stop), so
/// that [`reset`](Self::reset) arms it again with the same task and delay (Chromium's
/// `RetainingOneShotTimer`; the usual building block of a debounce).
///
/// The task is `FnMut` since it may run many times, one run per arming, always on the
/// timer's sequence. Dropping the timer stops it and frees the task. Everything else is as
/// for [`OneShotTimer`](crate::time::OneShotTimer).
///
/// ```
/// use std::time::Duration;
/// use taskrunner::{ThreadPool, TaskTraits};
/// use taskrunner::time::RetainingOneShotTimer;
///
/// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
/// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
/// let timer = RetainingOneShotTimer::new(&seq);
/// let (tx, rx) = std::sync::mpsc::channel();
/// timer.start(Duration::from_millis(1), move || tx.send("saved").unwrap()).unwrap();
/// assert_eq!(rx.recv().unwrap(), "saved");
/// assert!(!timer.is_running());
/// assert!(timer.reset()); // the same task, armed again
/// assert_eq!(rx.recv().unwrap(), "saved");
/// ```
pub struct RetainingOneShotTimer {
    core: Arc<TimerCore>,
    runner: SequencedTaskRunner,
}

impl RetainingOneShotTimer {
    /// A stopped timer with no task, whose task will run on `runner`'s sequence.
    ///
    /// ```
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # use taskrunner::time::RetainingOneShotTimer;
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let timer = RetainingOneShotTimer::new(&seq);
    /// assert!(!timer.is_running());
    /// assert!(!timer.reset()); // no task yet
    /// ```
    pub fn new(runner: &SequencedTaskRunner) -> Self {
        let (inner, seq) = runner.parts();
        RetainingOneShotTimer {
            core: Arc::new(TimerCore::new(
                Kind::Retaining,
                Arc::clone(inner),
                Arc::clone(seq),
            )),
            runner: runner.clone(),
        }
    }

    /// Arms the timer with a new task and delay, replacing (and dropping) the old task.
    /// Refusals as for [`OneShotTimer::start`](crate::time::OneShotTimer::start).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # use taskrunner::time::RetainingOneShotTimer;
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// # let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let timer = RetainingOneShotTimer::new(&seq);
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let mut n = 0;
    /// timer.start(Duration::from_millis(1), move || { n += 1; tx.send(n).unwrap() }).unwrap();
    /// assert_eq!(rx.recv().unwrap(), 1);
    /// timer.reset();
    /// assert_eq!(rx.recv().unwrap(), 2); // the task kept its state between runs
    /// ```
    #[track_caller]
    pub fn start<F>(&self, delay: Duration, task: F) -> Result<(), PostError<F>>
    where
        F: FnMut() + Send + 'static,
    {
        TimerCore::start(
            &self.core,
            delay,
            task,
            |f| UserTask::Many(Box::new(f)),
            Location::caller(),
        )
    }

    /// Cancels the pending run (removed from the delay manager at once) but keeps the task,
    /// so a later [`reset`](Self::reset) re-arms it. No run starts after `stop` returns. Returns
    /// `true` if a pending run was cancelled.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # use taskrunner::time::RetainingOneShotTimer;
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// # let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let timer = RetainingOneShotTimer::new(&seq);
    /// timer.start(Duration::from_secs(3600), || ()).unwrap();
    /// assert!(timer.stop());
    /// assert_eq!(pool.pending_delayed_tasks(), 0);
    /// assert!(timer.reset()); // the task was kept
    /// assert!(timer.is_running());
    /// ```
    pub fn stop(&self) -> bool {
        self.core.stop(false)
    }

    /// Arms the timer again with the kept task and the last delay, counted from now (whether
    /// it is running, has fired, or was stopped). `false` if it has no task (never started) or
    /// the post was refused.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # use taskrunner::time::RetainingOneShotTimer;
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// # let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let timer = RetainingOneShotTimer::new(&seq);
    /// assert!(!timer.reset());
    /// timer.start(Duration::from_secs(3600), || ()).unwrap();
    /// assert!(timer.reset());
    /// assert_eq!(pool.pending_delayed_tasks(), 1); // the old entry was replaced, not kept
    /// ```
    #[track_caller]
    pub fn reset(&self) -> bool {
        TimerCore::reset(&self.core)
    }

    /// `true` while a run is pending.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # use taskrunner::time::RetainingOneShotTimer;
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// # let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let timer = RetainingOneShotTimer::new(&seq);
    /// timer.start(Duration::from_secs(3600), || ()).unwrap();
    /// assert!(timer.is_running());
    /// timer.stop();
    /// assert!(!timer.is_running());
    /// ```
    pub fn is_running(&self) -> bool {
        self.core.is_running()
    }

    /// The runner whose sequence the task runs on.
    ///
    /// ```
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # use taskrunner::time::RetainingOneShotTimer;
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// assert!(RetainingOneShotTimer::new(&seq).runner().is_same_sequence(&seq));
    /// ```
    pub fn runner(&self) -> &SequencedTaskRunner {
        &self.runner
    }
}

/// Dropping the timer stops it and frees the task.
impl Drop for RetainingOneShotTimer {
    fn drop(&mut self) {
        self.core.stop(true);
    }
}

impl fmt::Debug for RetainingOneShotTimer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.fmt(f)
    }
}
