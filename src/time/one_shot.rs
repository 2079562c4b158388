//! `OneShotTimer`: runs a task once, on a sequence, after a delay.

use std::fmt;
use std::panic::Location;
use std::time::Duration;

use crate::base::error::PostError;
use crate::base::shim::Arc;
use crate::runner::SequencedTaskRunner;
use crate::time::timer_core::{Kind, TimerCore, UserTask};

/// Runs a task once, on its sequence, no sooner than a delay from [`start`](Self::start)
/// (Chromium's `OneShotTimer`).
///
/// The timer belongs to the [`SequencedTaskRunner`] it was created with: its task always runs
/// there. Its methods may be called from any thread. Starting again replaces the task and the
/// deadline; [`stop`](Self::stop) (or dropping the timer) cancels the pending run, removes it
/// from the delay manager and frees the task at once. Time is the pool's [`Clock`](crate::time::Clock).
/// Like every delayed task, a pending run never blocks shutdown and never starts once shutdown
/// has started.
///
/// ```
/// use std::time::Duration;
/// use taskrunner::{ThreadPool, TaskTraits};
/// use taskrunner::time::OneShotTimer;
///
/// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
/// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
/// let timer = OneShotTimer::new(&seq);
/// let (tx, rx) = std::sync::mpsc::channel();
/// timer.start(Duration::from_millis(5), move || tx.send("fired").unwrap()).unwrap();
/// assert_eq!(rx.recv().unwrap(), "fired");
/// assert!(!timer.is_running()); // a one-shot timer stops when it fires
/// ```
pub struct OneShotTimer {
    core: Arc<TimerCore>,
    runner: SequencedTaskRunner,
}

impl OneShotTimer {
    /// A stopped timer whose task will run on `runner`'s sequence. Inside a sequenced task,
    /// `OneShotTimer::new(&SequencedTaskRunner::current().unwrap())` gives Chromium's "the
    /// sequence it was started on".
    ///
    /// ```
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # use taskrunner::time::OneShotTimer;
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let timer = OneShotTimer::new(&seq);
    /// assert!(!timer.is_running());
    /// assert!(timer.runner().is_same_sequence(&seq));
    /// ```
    pub fn new(runner: &SequencedTaskRunner) -> Self {
        let (inner, seq) = runner.parts();
        OneShotTimer {
            core: Arc::new(TimerCore::new(
                Kind::OneShot,
                Arc::clone(inner),
                Arc::clone(seq),
            )),
            runner: runner.clone(),
        }
    }

    /// Arms the timer: `task` runs once on the timer's sequence, no sooner than `delay` from
    /// now. A running timer is restarted: its old task is dropped (unless it is running right
    /// now, then it finishes) and the new deadline counts from this call.
    ///
    /// Refused like a delayed post (shutdown started, sequence poisoned, thread exited), with
    /// `task` handed back; the timer is then left as it was.
    ///
    /// A `delay` too large to represent as a point in time (`Duration::MAX`) means never: the
    /// timer is running (and holds one pending entry) but the task never runs, however far a
    /// test clock is moved; `stop`, dropping the timer, or shutdown releases it.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # use taskrunner::time::OneShotTimer;
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// # let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let timer = OneShotTimer::new(&seq);
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let tx2 = tx.clone();
    /// timer.start(Duration::from_secs(3600), move || tx.send("old").unwrap()).unwrap();
    /// timer.start(Duration::from_millis(1), move || tx2.send("new").unwrap()).unwrap(); // replaces it
    /// assert_eq!(rx.recv().unwrap(), "new");
    /// assert!(rx.recv().is_err()); // the old task was dropped, never run
    ///
    /// timer.start(Duration::MAX, || unreachable!("never")).unwrap(); // no overflow: never runs
    /// assert!(timer.is_running());
    /// assert!(timer.stop());
    /// ```
    #[track_caller]
    pub fn start<F>(&self, delay: Duration, task: F) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        TimerCore::start(
            &self.core,
            delay,
            task,
            |f| UserTask::Once(Box::new(f)),
            Location::caller(),
        )
    }

    /// Cancels the pending run and drops the task. After `stop` returns the task never
    /// starts; if it had already started it runs to the end. Returns `true` if a pending run
    /// was cancelled (that run then never happens), exactly when [`is_running`](Self::is_running)
    /// was `true`: a run at its deadline, or one posted by [`fire_now`](Self::fire_now) from
    /// another thread that has not started yet.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # use taskrunner::time::OneShotTimer;
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// # let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let timer = OneShotTimer::new(&seq);
    /// timer.start(Duration::from_secs(3600), || unreachable!()).unwrap();
    /// assert_eq!(pool.pending_delayed_tasks(), 1);
    /// assert!(timer.stop());
    /// assert!(!timer.is_running());
    /// assert_eq!(pool.pending_delayed_tasks(), 0); // removed at once, not at its deadline
    /// ```
    pub fn stop(&self) -> bool {
        self.core.stop(true)
    }

    /// Restarts the countdown with the same task and delay, counted from now. Returns `false`
    /// (and does nothing) if there is no task: never started, already fired, or stopped.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # use taskrunner::time::OneShotTimer;
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// # let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let timer = OneShotTimer::new(&seq);
    /// assert!(!timer.reset()); // nothing to reset
    /// timer.start(Duration::from_secs(3600), || ()).unwrap();
    /// assert!(timer.reset()); // the hour counts from now
    /// assert!(timer.is_running());
    /// ```
    #[track_caller]
    pub fn reset(&self) -> bool {
        TimerCore::reset(&self.core)
    }

    /// Runs the task now instead of at its deadline (the deadline is cancelled). Returns
    /// `false` if there was no task (never started, already fired, stopped) or the post was
    /// refused by shutdown.
    ///
    /// * Called on the timer's sequence, the task runs inside this call; the timer is stopped
    ///   when it returns.
    /// * From any other thread the run is posted to the sequence as an immediate task, and the
    ///   timer **stays running until that task starts**: [`is_running`](Self::is_running) is
    ///   `true` meanwhile, and a [`stop`](Self::stop) (or a [`reset`](Self::reset), or a new
    ///   `start`) before it starts cancels it, `stop` then returning `true`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// # use taskrunner::time::OneShotTimer;
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// # let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let timer = OneShotTimer::new(&seq);
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// timer.start(Duration::from_secs(3600), move || tx.send("now").unwrap()).unwrap();
    /// assert!(timer.fire_now()); // from this thread: posted to run next on the sequence
    /// assert_eq!(rx.recv().unwrap(), "now"); // long before the hour is up
    /// assert!(!timer.fire_now()); // the task was used up
    ///
    /// // A posted run is pending until it starts: stop cancels it and says so.
    /// let (gate, wait) = std::sync::mpsc::channel::<()>();
    /// seq.post_task(move || wait.recv().unwrap()).unwrap(); // keep the sequence busy
    /// timer.start(Duration::from_secs(3600), || unreachable!("cancelled")).unwrap();
    /// assert!(timer.fire_now());
    /// assert!(timer.is_running());
    /// assert!(timer.stop());
    /// assert!(!timer.is_running());
    /// gate.send(()).unwrap();
    /// ```
    #[track_caller]
    pub fn fire_now(&self) -> bool {
        TimerCore::fire_now(&self.core, Location::caller())
    }

    /// `true` while a run is pending: from `start` (or `reset`, or a `fire_now` from another
    /// thread) until the task starts or the timer is stopped.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # use taskrunner::time::OneShotTimer;
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// # let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let timer = OneShotTimer::new(&seq);
    /// assert!(!timer.is_running());
    /// timer.start(Duration::from_secs(3600), || ()).unwrap();
    /// assert!(timer.is_running());
    /// ```
    pub fn is_running(&self) -> bool {
        self.core.is_running()
    }

    /// The runner whose sequence the task runs on.
    ///
    /// ```
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # use taskrunner::time::OneShotTimer;
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// assert!(OneShotTimer::new(&seq).runner().is_same_sequence(&seq));
    /// ```
    pub fn runner(&self) -> &SequencedTaskRunner {
        &self.runner
    }
}

/// Dropping the timer stops it: the pending run is cancelled and the task freed.
impl Drop for OneShotTimer {
    fn drop(&mut self) {
        self.core.stop(true);
    }
}

impl fmt::Debug for OneShotTimer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.fmt(f)
    }
}
