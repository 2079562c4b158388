//! `post_repeating_task`: a repeating task without a timer object, stopped through its
//! [`RepeatingTaskHandle`] from any thread. Deprecated: [`repeat`](crate::time::repeat) does
//! the same on any runner (`RepeatMode::FixedRate` is the start-to-start schedule).

use std::fmt;
use std::panic::Location;
use std::time::Duration;

use crate::base::error::PostError;
use crate::base::shim::Arc;
use crate::base::traits::TaskTraits;
use crate::pool::ThreadPool;
use crate::runner::SequencedTaskRunner;
use crate::time::timer_core::{Kind, TimerCore, UserTask};

/// Controls a task posted with `post_repeating_task` ([`SequencedTaskRunner::post_repeating_task`],
/// [`ThreadPool::post_repeating_task`], [`post_repeating_task`]).
///
/// [`stop`](Self::stop) works from any thread and really stops: the pending run is removed
/// from the delay manager, the closure is freed at once (or when a run in progress ends), and
/// no run starts after `stop` returns. Clone-free and `Send + Sync`: share it in an `Arc` if
/// several owners may stop it.
///
/// **Dropping the handle does not stop the task** (like dropping a
/// [`TaskHandle`](crate::TaskHandle) does not cancel): the task then repeats until the pool
/// shuts down or winds down. Ask for [`stop_on_drop`](Self::stop_on_drop) to tie the task's
/// life to the handle. The handle does not keep the pool alive.
///
/// ```
/// # #![allow(deprecated)]
/// use std::time::Duration;
/// use taskrunner::{ThreadPool, TaskTraits};
///
/// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
/// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
/// let (tx, rx) = std::sync::mpsc::channel();
/// let handle = seq.post_repeating_task(Duration::from_millis(1), move || { let _ = tx.send(()); }).unwrap();
/// rx.recv().unwrap();
/// rx.recv().unwrap();
/// let stopper = std::thread::spawn(move || handle.stop()); // from another thread
/// assert!(stopper.join().unwrap());
/// while rx.recv().is_ok() {} // the closure (and its sender) was freed: the channel closes
/// ```
#[deprecated(
    note = "use `taskrunner::time::repeat(&runner, interval, RepeatMode::FixedRate, f)`, and `RepeatHandle::cancel` for `stop`"
)]
#[must_use = "dropping a RepeatingTaskHandle does not stop the task; keep it to stop the task, or use stop_on_drop()"]
pub struct RepeatingTaskHandle {
    core: Arc<TimerCore>,
    stop_on_drop: bool,
}

impl RepeatingTaskHandle {
    /// Stops the repeating task and frees its closure. Returns `true` if it was still
    /// repeating (`false` if it was already stopped, by this handle or by shutdown).
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// # use std::time::Duration;
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let h = pool.post_repeating_task(TaskTraits::default(), Duration::from_secs(60), || ()).unwrap();
    /// assert!(h.stop());
    /// assert!(!h.stop());
    /// assert_eq!(pool.pending_delayed_tasks(), 0);
    /// ```
    pub fn stop(&self) -> bool {
        self.core.stop(true)
    }

    /// `true` until the task is stopped (by [`stop`](Self::stop), or by the pool refusing its
    /// next run: shutdown).
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// # use std::time::Duration;
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let h = pool.post_repeating_task(TaskTraits::default(), Duration::from_secs(60), || ()).unwrap();
    /// assert!(h.is_running());
    /// pool.shutdown();
    /// assert!(!h.is_running());
    /// ```
    pub fn is_running(&self) -> bool {
        self.core.is_running()
    }

    /// Makes dropping this handle stop the task.
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// # use std::time::Duration;
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let h = pool.post_repeating_task(TaskTraits::default(), Duration::from_secs(60), || ()).unwrap();
    /// drop(h.stop_on_drop());
    /// assert_eq!(pool.pending_delayed_tasks(), 0);
    /// ```
    pub fn stop_on_drop(mut self) -> Self {
        self.stop_on_drop = true;
        self
    }
}

impl Drop for RepeatingTaskHandle {
    fn drop(&mut self) {
        if self.stop_on_drop {
            self.core.stop(true);
        }
    }
}

impl fmt::Debug for RepeatingTaskHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RepeatingTaskHandle")
            .field("timer", &self.core)
            .field("stop_on_drop", &self.stop_on_drop)
            .finish()
    }
}

/// Starts a repeating task on `runner`'s sequence: the shared body of every
/// `post_repeating_task`.
fn post_on<F>(
    runner: &SequencedTaskRunner,
    interval: Duration,
    f: F,
    posted_from: &'static Location<'static>,
) -> Result<RepeatingTaskHandle, PostError<F>>
where
    F: FnMut() + Send + 'static,
{
    assert!(
        !interval.is_zero(),
        "post_repeating_task: the interval must be greater than zero"
    );
    let (inner, seq) = runner.parts();
    let core = Arc::new(TimerCore::new(
        Kind::Repeating,
        Arc::clone(inner),
        Arc::clone(seq),
    ));
    TimerCore::start(
        &core,
        interval,
        f,
        |f| UserTask::Many(Box::new(f)),
        posted_from,
    )?;
    Ok(RepeatingTaskHandle {
        core,
        stop_on_drop: false,
    })
}

impl SequencedTaskRunner {
    /// Runs `f` on this sequence every `interval` (start to start, the first run one interval
    /// from now) until the returned handle's [`stop`](RepeatingTaskHandle::stop). Same
    /// schedule as a [`RepeatingTimer`](crate::time::RepeatingTimer); runs are delayed tasks, so they
    /// never block shutdown, and shutdown ends the repetition. Refused like
    /// [`post_delayed_task`](crate::PostTask::post_delayed_task), with `f` handed back.
    ///
    /// # Panics
    ///
    /// If `interval` is zero.
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// # use std::time::Duration;
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let s2 = seq.clone();
    /// let h = seq
    ///     .post_repeating_task(Duration::from_millis(1), move || { let _ = tx.send(s2.runs_tasks_in_current_sequence()); })
    ///     .unwrap();
    /// assert!(rx.recv().unwrap()); // runs on the sequence
    /// h.stop();
    /// ```
    #[deprecated(
        note = "use `taskrunner::time::repeat(&runner, interval, RepeatMode::FixedRate, f)`, and `RepeatHandle::cancel` for `stop`"
    )]
    #[track_caller]
    pub fn post_repeating_task<F>(
        &self,
        interval: Duration,
        f: F,
    ) -> Result<RepeatingTaskHandle, PostError<F>>
    where
        F: FnMut() + Send + 'static,
    {
        post_on(self, interval, f, Location::caller())
    }
}

impl ThreadPool {
    /// Runs `f` every `interval` with `traits`, until the returned handle's
    /// [`stop`](RepeatingTaskHandle::stop). The runs get a sequence of their own, so they never
    /// overlap (`f` is `FnMut`) even when one takes longer than the interval. Otherwise as
    /// [`SequencedTaskRunner::post_repeating_task`].
    ///
    /// # Panics
    ///
    /// If `interval` is zero.
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// # use std::time::Duration;
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let mut ticks = 0;
    /// let h = pool
    ///     .post_repeating_task(TaskTraits::default(), Duration::from_millis(1), move || { ticks += 1; let _ = tx.send(ticks); })
    ///     .unwrap();
    /// assert_eq!((rx.recv().unwrap(), rx.recv().unwrap()), (1, 2));
    /// assert!(h.stop());
    /// ```
    #[deprecated(
        note = "use `taskrunner::time::repeat(&runner, interval, RepeatMode::FixedRate, f)`, and `RepeatHandle::cancel` for `stop`"
    )]
    #[track_caller]
    pub fn post_repeating_task<F>(
        &self,
        traits: TaskTraits,
        interval: Duration,
        f: F,
    ) -> Result<RepeatingTaskHandle, PostError<F>>
    where
        F: FnMut() + Send + 'static,
    {
        post_on(
            &self.create_sequenced_task_runner(traits),
            interval,
            f,
            Location::caller(),
        )
    }
}

/// [`ThreadPool::post_repeating_task`] on the global pool.
///
/// # Panics
///
/// If `interval` is zero.
///
/// ```
/// # #![allow(deprecated)]
/// # use std::time::Duration;
/// let (tx, rx) = std::sync::mpsc::channel();
/// let h = taskrunner::time::post_repeating_task(Default::default(), Duration::from_millis(1), move || { let _ = tx.send(()); })
///     .unwrap();
/// rx.recv().unwrap();
/// assert!(h.stop());
/// ```
#[deprecated(
    note = "use `taskrunner::time::repeat(&runner, interval, RepeatMode::FixedRate, f)`, and `RepeatHandle::cancel` for `stop`"
)]
#[track_caller]
pub fn post_repeating_task<F>(
    traits: TaskTraits,
    interval: Duration,
    f: F,
) -> Result<RepeatingTaskHandle, PostError<F>>
where
    F: FnMut() + Send + 'static,
{
    crate::pool::global::current().post_repeating_task(traits, interval, f)
}
