//! `RepeatingTimer`: runs a task every period, start to start, until stopped.

use std::fmt;
use std::panic::Location;
use std::time::Duration;

use crate::base::error::PostError;
use crate::base::shim::Arc;
use crate::runner::SequencedTaskRunner;
use crate::time::timer_core::{Kind, TimerCore, UserTask};

/// Runs a task every `period` on its sequence until stopped (Chromium's `RepeatingTimer`).
///
/// The first run is one period after [`start`](Self::start). When a run is due, the next one
/// is scheduled (at now + period) *before* the task is invoked, so the period is measured start
/// to start and a slow task does not stretch it; scheduling latency does shift the phase a
/// little every run (no catch-up: a run that is late by several periods is followed by one
/// run, a period later). Runs never overlap: they are tasks of one sequence.
///
/// [`stop`](Self::stop) (or dropping the timer) really stops: the pending entry is removed
/// from the delay manager and the task is freed at once (or, if a run is in progress, as soon
/// as it ends), and no run starts after `stop` returns. This differs from Chromium, whose
/// `RepeatingTimer` keeps its task after `Stop()`: here `stop` is final until the next `start`.
/// A panicking run is reported by the pool like any task panic; the timer keeps running.
///
/// ```
/// use std::time::Duration;
/// use taskrunner::{ThreadPool, TaskTraits};
/// use taskrunner::time::RepeatingTimer;
///
/// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
/// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
/// let timer = RepeatingTimer::new(&seq);
/// let (tx, rx) = std::sync::mpsc::channel();
/// let mut n = 0;
/// timer.start(Duration::from_millis(1), move || { n += 1; let _ = tx.send(n); }).unwrap();
/// assert_eq!((rx.recv().unwrap(), rx.recv().unwrap(), rx.recv().unwrap()), (1, 2, 3));
/// timer.stop();
/// assert!(!timer.is_running());
/// ```
pub struct RepeatingTimer {
    core: Arc<TimerCore>,
    runner: SequencedTaskRunner,
}

impl RepeatingTimer {
    /// A stopped timer whose task will run on `runner`'s sequence.
    ///
    /// ```
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # use taskrunner::time::RepeatingTimer;
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// assert!(!RepeatingTimer::new(&seq).is_running());
    /// ```
    pub fn new(runner: &SequencedTaskRunner) -> Self {
        let (inner, seq) = runner.parts();
        RepeatingTimer {
            core: Arc::new(TimerCore::new(
                Kind::Repeating,
                Arc::clone(inner),
                Arc::clone(seq),
            )),
            runner: runner.clone(),
        }
    }

    /// Starts (or restarts, replacing the task and the period) the timer: `task` runs every
    /// `period`, the first time one period from now. Refusals as for
    /// [`OneShotTimer::start`](crate::time::OneShotTimer::start).
    ///
    /// A `period` too large to represent as a point in time (`Duration::MAX`) means the first
    /// run never comes (the timer is running until stopped).
    ///
    /// # Panics
    ///
    /// If `period` is zero (the timer would spin).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # use taskrunner::time::RepeatingTimer;
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// # let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let timer = RepeatingTimer::new(&seq);
    /// timer.start(Duration::from_secs(60), || ()).unwrap();
    /// assert!(timer.is_running());
    /// assert_eq!(pool.pending_delayed_tasks(), 1); // one pending run at a time
    /// ```
    #[track_caller]
    pub fn start<F>(&self, period: Duration, task: F) -> Result<(), PostError<F>>
    where
        F: FnMut() + Send + 'static,
    {
        assert!(
            !period.is_zero(),
            "RepeatingTimer::start: the period must be greater than zero"
        );
        TimerCore::start(
            &self.core,
            period,
            task,
            |f| UserTask::Many(Box::new(f)),
            Location::caller(),
        )
    }

    /// Stops the timer and frees the task (see the type's docs). Returns `true` if it was
    /// running.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # use taskrunner::time::RepeatingTimer;
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// # let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let timer = RepeatingTimer::new(&seq);
    /// timer.start(Duration::from_secs(60), || ()).unwrap();
    /// assert!(timer.stop());
    /// assert_eq!(pool.pending_delayed_tasks(), 0);
    /// assert!(!timer.reset()); // the task is gone: start again to run something
    /// ```
    pub fn stop(&self) -> bool {
        self.core.stop(true)
    }

    /// Restarts the period from now with the same task (the next run is one period from this
    /// call). `false` if the timer is not started (never, or stopped) or the post was refused.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # use taskrunner::time::RepeatingTimer;
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// # let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let timer = RepeatingTimer::new(&seq);
    /// assert!(!timer.reset());
    /// timer.start(Duration::from_secs(60), || ()).unwrap();
    /// assert!(timer.reset());
    /// assert_eq!(pool.pending_delayed_tasks(), 1);
    /// ```
    #[track_caller]
    pub fn reset(&self) -> bool {
        TimerCore::reset(&self.core)
    }

    /// `true` from `start` until `stop` (or until the pool refuses the next run: shutdown).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # use taskrunner::time::RepeatingTimer;
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// # let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let timer = RepeatingTimer::new(&seq);
    /// timer.start(Duration::from_secs(60), || ()).unwrap();
    /// assert!(timer.is_running());
    /// pool.shutdown(); // pending delayed work is dropped: the timer learns it stopped
    /// assert!(!timer.is_running());
    /// ```
    pub fn is_running(&self) -> bool {
        self.core.is_running()
    }

    /// The runner whose sequence the task runs on.
    ///
    /// ```
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # use taskrunner::time::RepeatingTimer;
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// assert!(RepeatingTimer::new(&seq).runner().is_same_sequence(&seq));
    /// ```
    pub fn runner(&self) -> &SequencedTaskRunner {
        &self.runner
    }
}

/// Dropping the timer stops it and frees the task.
impl Drop for RepeatingTimer {
    fn drop(&mut self) {
        self.core.stop(true);
    }
}

impl fmt::Debug for RepeatingTimer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.fmt(f)
    }
}
