//! Repetition on any runner: [`repeat`], the [`Repeat`] builder, [`RepeatMode`] and the
//! [`RepeatHandle`] that really stops it.
//!
//! Every repetition owns a [`CancellationToken`]; [`RepeatHandle::cancel`], that token (or a
//! parent token given with [`Repeat::token`]), the runner shutting down, and the closure itself
//! (with [`Repeat::start_with_flow`]) all end it for real: no run starts after the cancel
//! returns. [`RepeatHandle::wait`] returns as soon as it has ended, no run is in progress and
//! the closure has been dropped; waiting after a cancel never hangs.
//!
//! This is the crate's one way to repeat a task. It works on anything that implements
//! [`PostTask`] — the pool, a parallel runner, a sequence, a single-thread runner, a key of a
//! keyed runner, your own runner — and offers both schedules of [`RepeatMode`]. On the crate's
//! runners a cancel also takes the pending run out of the delay manager at once (see
//! [`ThreadPool::pending_delayed_tasks`](crate::ThreadPool::pending_delayed_tasks)).
//! [`RepeatingTimer`](crate::time::RepeatingTimer) is Chromium's timer object for a sequence
//! (restart, reset); the deprecated `post_repeating_task` is `repeat` with
//! [`RepeatMode::FixedRate`].
//!
//! # How it runs
//!
//! Each run is a delayed post to the runner. The next run is posted only once the current one
//! has ended, so runs never overlap (the closure is `FnMut`), even on a parallel runner. The
//! closure lives in the repetition's state between runs and is *borrowed* by a run; a post that
//! is still pending carries only a small reference to that state and a generation number, so a
//! cancel frees the closure at once and the pending post, when it comes due, finds a newer
//! generation and does nothing.
//!
//! # State (`State`, under one short lock)
//!
//! | field | meaning |
//! |---|---|
//! | `stopped` | terminal: no run starts any more (set by cancel, the token, `Break`, a refused or dropped post) |
//! | `running` | a run has borrowed the closure (and on which thread) |
//! | `gen` | the generation of the one post that may start the next run; bumped by every reschedule and by the stop |
//! | `f` | the closure, while no run has borrowed it and the repetition is not stopped |
//! | `runner` | a clone of the runner, until the repetition stops |
//! | `released` | stopped and the closure dropped: with `running` clear, what `wait` waits for |
//!
//! **Cancel vs run.** Both take the lock; whoever takes it first wins. A run that took it first
//! has borrowed the closure and finishes; when it ends it sees `stopped`, drops the closure
//! and posts nothing. Otherwise the run finds `stopped` (or a stale generation) and returns.
//! So after `cancel` returns no run starts, and the closure is freed before `cancel` returns
//! unless a run was in progress (then right after that run ends). Nothing is dropped and no
//! user code runs under the lock.
//!
//! # Durations
//!
//! An interval or first delay too large to represent as an [`Instant`] (`Duration::MAX`) means
//! "not within any representable time": the next run is posted with that delay (the runner
//! treats it as never, but a shutdown still drops it and ends the repetition). A `FixedRate`
//! tick that would overflow is never, too: it is not mistaken for a tick in the past.
//!
//! # Panics
//!
//! A panicking run is caught and reported like a plain task's panic (the runner's panic
//! policy, then the pool's panic handler, with the location of the call that started the
//! repetition) *before* the next run is scheduled: under `PanicPolicy::Poison` the sequence is
//! poisoned first, refuses the next run, and the repetition ends.

use std::any::Any;
use std::fmt;
use std::ops::ControlFlow;
use std::panic::Location;
use std::sync::{Arc, Weak};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use crate::base::deadline::Deadline;
use crate::base::error::PostError;
use crate::base::shim::{AtomicU64, Condvar, Mutex, Ordering};
use crate::base::unwind::{catch, drop_quietly};
use crate::cancel::{CancellationToken, TaskContext};
use crate::engine::{blocking_unchecked, report_task_panic};
use crate::handle::TaskHandle;
use crate::runner::PostTask;

/// When the next run of a repetition starts.
///
/// * `FixedDelay`: `interval` after the previous run **ends** (runs are spaced by `interval`
///   whatever they cost; the schedule drifts by the run time).
/// * `FixedRate`: at `first + k × interval` on the runner's clock ([`PostTask::now`]), where
///   `first` is the first run's time. If a run overruns one or more ticks, the missed ticks
///   are **skipped, not bursted**: the next run is at the first tick that has not yet passed
///   (a tick exactly at the end of the run still counts). This is tokio's
///   `MissedTickBehavior::Skip`.
///
/// ```
/// use taskrunner::time::RepeatMode;
/// assert_eq!(RepeatMode::default(), RepeatMode::FixedDelay);
/// assert_ne!(RepeatMode::FixedDelay, RepeatMode::FixedRate);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum RepeatMode {
    /// The next run starts `interval` after the previous one ended (the default).
    #[default]
    FixedDelay,
    /// Runs start on the ticks `first + k × interval`; overrun ticks are skipped.
    FixedRate,
}

/// The closure of a repetition, type-erased (plain `FnMut()` or `FnMut() -> ControlFlow`).
trait RepeatFn: Send + 'static {
    fn call(&mut self) -> ControlFlow<()>;
    /// For handing the user's closure back when the first post is refused.
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

struct Plain<F>(F);

impl<F: FnMut() + Send + 'static> RepeatFn for Plain<F> {
    fn call(&mut self) -> ControlFlow<()> {
        (self.0)();
        ControlFlow::Continue(())
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

struct Flow<F>(F);

impl<F: FnMut() -> ControlFlow<()> + Send + 'static> RepeatFn for Flow<F> {
    fn call(&mut self) -> ControlFlow<()> {
        (self.0)()
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// Configures a repetition: interval, [`RepeatMode`], first delay, and an optional parent
/// [`CancellationToken`]; then [`start`](Self::start) it on a runner. [`repeat`] is the short
/// form.
///
/// ```
/// use std::time::Duration;
/// use taskrunner::ThreadPool;
/// use taskrunner::cancel::CancellationToken;
/// use taskrunner::time::{Repeat, RepeatMode};
///
/// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
/// let stop_all = CancellationToken::new();
/// let (tx, rx) = std::sync::mpsc::channel();
/// let h = Repeat::new(Duration::from_millis(1), RepeatMode::FixedRate)
///     .initial_delay(Duration::ZERO) // first run at once
///     .token(stop_all.clone())
///     .start(&pool, move || { let _ = tx.send(()); })
///     .unwrap();
/// rx.recv().unwrap();
/// stop_all.cancel(); // cancelling the token stops the repetition
/// assert!(!h.is_running());
/// h.wait();
/// ```
#[derive(Clone, Debug)]
pub struct Repeat {
    interval: Duration,
    mode: RepeatMode,
    initial_delay: Option<Duration>,
    token: Option<CancellationToken>,
}

impl Repeat {
    /// A repetition every `interval` with `mode`; the first run is one interval after the start
    /// unless [`initial_delay`](Self::initial_delay) says otherwise. An interval too large to
    /// represent (`Duration::MAX`) means the next run never comes (see the module docs).
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::time::{Repeat, RepeatMode};
    /// let r = Repeat::new(Duration::from_secs(1), RepeatMode::FixedRate);
    /// assert_eq!(r.get_interval(), Duration::from_secs(1));
    /// assert_eq!(r.get_mode(), RepeatMode::FixedRate);
    /// ```
    pub fn new(interval: Duration, mode: RepeatMode) -> Self {
        Repeat {
            interval,
            mode,
            initial_delay: None,
            token: None,
        }
    }

    /// The delay before the first run (default: one `interval`). `Duration::ZERO` runs it at
    /// once (posted as an immediate task). In `FixedRate` mode the ticks are counted from the
    /// first run.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::time::{Repeat, RepeatMode};
    /// let r = Repeat::new(Duration::from_secs(1), RepeatMode::FixedDelay).initial_delay(Duration::ZERO);
    /// assert_eq!(r.get_initial_delay(), Duration::ZERO);
    /// ```
    #[must_use]
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = Some(delay);
        self
    }

    /// Ties the repetition to `token`: cancelling it (or any of its ancestors) stops the
    /// repetition as [`RepeatHandle::cancel`] does. The repetition runs with a *child* of it
    /// ([`RepeatHandle::token`]), so cancelling one repetition does not cancel the parent.
    ///
    /// ```
    /// # use std::time::Duration;
    /// use taskrunner::ThreadPool;
    /// use taskrunner::cancel::CancellationToken;
    /// use taskrunner::time::{Repeat, RepeatMode};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let parent = CancellationToken::new();
    /// let h = Repeat::new(Duration::from_secs(60), RepeatMode::FixedDelay)
    ///     .token(parent.clone())
    ///     .start(&pool, || ())
    ///     .unwrap();
    /// parent.cancel();
    /// assert!(!h.is_running());
    /// ```
    #[must_use]
    pub fn token(mut self, token: CancellationToken) -> Self {
        self.token = Some(token);
        self
    }

    /// The interval.
    ///
    /// See [`new`](Self::new) for an example.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The mode.
    ///
    /// See [`new`](Self::new) for an example.
    pub fn mode(&self) -> RepeatMode {
        self.mode
    }

    /// The delay before the first run: the one set with [`initial_delay`](Self::initial_delay),
    /// or one interval.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::time::{Repeat, RepeatMode};
    /// let r = Repeat::new(Duration::from_secs(2), RepeatMode::FixedDelay);
    /// assert_eq!(r.first_delay(), Duration::from_secs(2));
    /// assert_eq!(r.initial_delay(Duration::ZERO).first_delay(), Duration::ZERO);
    /// ```
    pub fn first_delay(&self) -> Duration {
        self.initial_delay.unwrap_or(self.interval)
    }

    /// Renamed [`interval`](Self::interval).
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// use std::time::Duration;
    /// use taskrunner::time::{Repeat, RepeatMode};
    /// let r = Repeat::new(Duration::from_secs(1), RepeatMode::FixedRate);
    /// assert_eq!(r.get_interval(), r.interval());
    /// ```
    #[deprecated(note = "renamed `interval`")]
    pub fn get_interval(&self) -> Duration {
        self.interval()
    }

    /// Renamed [`mode`](Self::mode).
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// use std::time::Duration;
    /// use taskrunner::time::{Repeat, RepeatMode};
    /// let r = Repeat::new(Duration::from_secs(1), RepeatMode::FixedRate);
    /// assert_eq!(r.get_mode(), r.mode());
    /// ```
    #[deprecated(note = "renamed `mode`")]
    pub fn get_mode(&self) -> RepeatMode {
        self.mode()
    }

    /// Renamed [`first_delay`](Self::first_delay).
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// use std::time::Duration;
    /// use taskrunner::time::{Repeat, RepeatMode};
    /// let r = Repeat::new(Duration::from_secs(1), RepeatMode::FixedRate);
    /// assert_eq!(r.get_initial_delay(), r.first_delay());
    /// ```
    #[deprecated(note = "renamed `first_delay`")]
    pub fn get_initial_delay(&self) -> Duration {
        self.first_delay()
    }

    /// Starts running `f` on `runner` until the returned handle is cancelled (or the token,
    /// shutdown, ... see [`RepeatHandle`]). A refused first post (the runner is shutting down)
    /// hands `f` back.
    ///
    /// A panicking run is caught and reported exactly like a plain task's panic: the runner's
    /// [`PanicPolicy`](crate::PanicPolicy) applies, and the pool's panic handler sees it with
    /// the location of this call as the task's posted-from location. Then the next run is
    /// scheduled: under `Isolate` (the default) the repetition **carries on**; under `Poison`
    /// the sequence was poisoned by the panic and refuses the next run, which ends the
    /// repetition; under `Abort` the process has aborted.
    ///
    /// # Panics
    ///
    /// If the interval is zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{ThreadPool, TaskTraits};
    /// use taskrunner::time::{Repeat, RepeatMode};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let mut n = 0;
    /// let h = Repeat::new(Duration::from_millis(1), RepeatMode::FixedDelay)
    ///     .start(&seq, move || { n += 1; let _ = tx.send(n); })
    ///     .unwrap();
    /// assert_eq!((rx.recv().unwrap(), rx.recv().unwrap()), (1, 2));
    /// assert!(h.cancel());
    /// h.wait();
    /// pool.shutdown();
    /// let refused = Repeat::new(Duration::from_millis(1), RepeatMode::FixedDelay).start(&seq, || ());
    /// assert!(refused.is_err()); // the closure is handed back: refused.unwrap_err().into_inner()
    /// ```
    #[track_caller]
    pub fn start<R, F>(&self, runner: &R, f: F) -> Result<RepeatHandle, PostError<F>>
    where
        R: PostTask + Clone + Send + Sync + 'static,
        F: FnMut() + Send + 'static,
    {
        self.start_erased(runner, Plain(f)).map_err(|e| {
            let reason = e.reason();
            PostError::new(reason, e.into_inner().0)
        })
    }

    /// Like [`start`](Self::start), for a closure that decides itself when to stop: returning
    /// [`ControlFlow::Break`] ends the repetition after this run (as a cancel would; the
    /// closure is dropped).
    ///
    /// ```
    /// use std::ops::ControlFlow;
    /// use std::time::Duration;
    /// use taskrunner::ThreadPool;
    /// use taskrunner::time::{Repeat, RepeatMode};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let mut left = 3;
    /// let h = Repeat::new(Duration::from_millis(1), RepeatMode::FixedRate)
    ///     .start_with_flow(&pool, move || {
    ///         left -= 1;
    ///         if left == 0 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    ///     })
    ///     .unwrap();
    /// h.wait(); // ends by itself
    /// assert_eq!(h.runs(), 3);
    /// ```
    #[track_caller]
    pub fn start_with_flow<R, F>(&self, runner: &R, f: F) -> Result<RepeatHandle, PostError<F>>
    where
        R: PostTask + Clone + Send + Sync + 'static,
        F: FnMut() -> ControlFlow<()> + Send + 'static,
    {
        self.start_erased(runner, Flow(f)).map_err(|e| {
            let reason = e.reason();
            PostError::new(reason, e.into_inner().0)
        })
    }

    #[track_caller]
    fn start_erased<R, W>(&self, runner: &R, w: W) -> Result<RepeatHandle, PostError<W>>
    where
        R: PostTask + Clone + Send + Sync + 'static,
        W: RepeatFn,
    {
        assert!(
            !self.interval.is_zero(),
            "repeat: the interval must be greater than zero"
        );
        let token = match &self.token {
            Some(parent) => parent.child(),
            None => CancellationToken::new(),
        };
        let first_delay = self.first_delay();
        let now = runner.now();
        // A first run at "never" has no ticks to count: any instant will do.
        let first = Deadline::after(now, first_delay).instant().unwrap_or(now);
        let shared = Arc::new(Shared {
            sync: Mutex::new(State {
                stopped: false,
                running: None,
                gen: 1,
                f: Some(Box::new(w)),
                runner: Some(runner.clone()),
                first,
                index: 0,
                starting: true,
                released: false,
                pending: None,
            }),
            cv: Condvar::new(),
            runs: AtomicU64::new(0),
            interval: self.interval,
            mode: self.mode,
            token: token.clone(),
            posted_from: Location::caller(),
        });
        let tick = Tick {
            shared: Arc::clone(&shared),
            gen: 1,
            armed: true,
        };
        let posted_from = shared.posted_from;
        let first_post =
            match runner.post_with_result_from(first_delay, move || tick.run(), posted_from) {
                Ok(h) => h,
                Err(e) => {
                    let reason = e.reason();
                    drop(e); // the tick's drop marks the repetition stopped (keeping `f`: starting)
                    let (f, r) = {
                        let mut s = shared.sync.lock();
                        s.stopped = true;
                        (s.f.take(), s.runner.take())
                    };
                    drop(r);
                    let w = *f
                        .expect("the closure stays in the state until the start ends")
                        .into_any()
                        .downcast::<W>()
                        .expect("the closure has the type it was stored with");
                    return Err(PostError::new(reason, w));
                }
            };
        let (leftover, unneeded) = {
            let mut s = shared.sync.lock();
            s.starting = false;
            if s.stopped {
                // The first post was dropped unrun meanwhile (shutdown), or a stop came first.
                (s.f.take(), Some(first_post))
            } else {
                s.pending = Some(first_post);
                (None, None)
            }
        };
        if let Some(h) = unneeded {
            h.cancel();
        }
        if leftover.is_some() {
            shared.release(leftover);
        }
        let weak: Weak<Shared<R>> = Arc::downgrade(&shared);
        // Runs at once if the token is already cancelled.
        token.on_cancel(move |_| {
            if let Some(s) = weak.upgrade() {
                s.stop();
            }
        });
        Ok(RepeatHandle {
            shared,
            cancel_on_drop: false,
        })
    }
}

/// Runs `f` on `runner` every `interval` with `mode`, the first run one interval from now,
/// until the returned handle's [`cancel`](RepeatHandle::cancel) (or the runner shuts down).
/// Short for `Repeat::new(interval, mode).start(runner, f)`; see [`Repeat`] for the options
/// (first delay, a parent token, a closure that stops itself) and for panics.
///
/// # Panics
///
/// If `interval` is zero.
///
/// ```
/// use std::time::Duration;
/// use taskrunner::ThreadPool;
/// use taskrunner::time::{repeat, RepeatMode};
///
/// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
/// let (tx, rx) = std::sync::mpsc::channel();
/// let heartbeat = repeat(&pool, Duration::from_millis(1), RepeatMode::FixedDelay, move || {
///     let _ = tx.send("beat");
/// })
/// .unwrap();
/// assert_eq!(rx.recv().unwrap(), "beat");
/// assert!(heartbeat.cancel()); // really stops it
/// heartbeat.wait(); // and waiting afterwards returns
/// while rx.recv().is_ok() {} // the closure (and its sender) was dropped
/// ```
#[track_caller]
pub fn repeat<R, F>(
    runner: &R,
    interval: Duration,
    mode: RepeatMode,
    f: F,
) -> Result<RepeatHandle, PostError<F>>
where
    R: PostTask + Clone + Send + Sync + 'static,
    F: FnMut() + Send + 'static,
{
    Repeat::new(interval, mode).start(runner, f)
}

struct State<R> {
    /// Terminal: no run starts any more.
    stopped: bool,
    /// A run has borrowed `f`, on this thread.
    running: Option<ThreadId>,
    /// The generation of the one pending post that may start the next run.
    gen: u64,
    f: Option<Box<dyn RepeatFn>>,
    runner: Option<R>,
    /// FixedRate: the time of tick 0 (the first run).
    first: Instant,
    /// FixedRate: the index of the tick the pending post is for.
    index: u64,
    /// The first post is being made: a refusal hands `f` back, so an abandoned tick keeps it.
    starting: bool,
    /// Stopped, and the closure has been dropped (what `wait` waits for, with no run in
    /// progress).
    released: bool,
    /// The pending post's handle: a stop cancels it, which on the crate's runners also takes
    /// the entry out of the delay manager at once.
    pending: Option<TaskHandle<()>>,
}

struct Shared<R> {
    sync: Mutex<State<R>>,
    /// Signalled when the repetition may have become finished (stopped, no run in progress,
    /// closure dropped).
    cv: Condvar,
    runs: AtomicU64,
    interval: Duration,
    mode: RepeatMode,
    token: CancellationToken,
    /// Where the repetition was started: what a panicking run is reported with.
    posted_from: &'static Location<'static>,
}

/// A pending post's hold on the repetition. Dropped unrun (shutdown, a poisoned sequence), it
/// ends the repetition: its generation will never run.
struct Tick<R: PostTask + Clone + Send + Sync + 'static> {
    shared: Arc<Shared<R>>,
    gen: u64,
    armed: bool,
}

impl<R: PostTask + Clone + Send + Sync + 'static> Tick<R> {
    fn run(mut self) {
        self.armed = false;
        Shared::fire(&self.shared, self.gen);
    }
}

impl<R: PostTask + Clone + Send + Sync + 'static> Drop for Tick<R> {
    fn drop(&mut self) {
        if self.armed {
            self.shared.abandoned(self.gen);
        }
    }
}

impl<R: PostTask + Clone + Send + Sync + 'static> Shared<R> {
    /// The post of generation `gen` runs.
    fn fire(this: &Arc<Self>, gen: u64) {
        let (mut f, runner) = {
            let mut s = this.sync.lock();
            if s.stopped || s.gen != gen || s.running.is_some() {
                return; // stale
            }
            let (f, runner) = match (s.f.take(), s.runner.clone()) {
                (Some(f), Some(runner)) => (f, runner),
                (f, _) => {
                    s.f = f; // cannot happen while not stopped; leave the state as it was
                    return;
                }
            };
            s.running = Some(thread::current().id());
            (f, runner)
        };
        this.runs.fetch_add(1, Ordering::Relaxed);
        let ctx = TaskContext::new(this.token.clone());
        let outcome = ctx.scope(|| catch(|| f.call()));
        let flow = match outcome {
            Ok(flow) => flow,
            Err(payload) => {
                // Reported like any task's panic before the next run is scheduled: under
                // `Poison` the sequence is poisoned now and refuses that run. No lock is held
                // (the panic handler is user code).
                report_task_panic(payload.message(), this.posted_from);
                ControlFlow::Continue(())
            }
        };
        let now = runner.now();
        let (next, leftover, newly_stopped) = {
            let mut s = this.sync.lock();
            s.running = None;
            if s.stopped || flow.is_break() {
                let newly = !s.stopped;
                s.stopped = true;
                s.gen += 1;
                (None, Some((f, s.runner.take())), newly)
            } else {
                s.gen += 1;
                let delay = match this.mode {
                    RepeatMode::FixedDelay => this.interval,
                    RepeatMode::FixedRate => {
                        let index = next_tick_index(s.first, s.index, this.interval, now);
                        s.index = index;
                        // A tick too far to represent is never (not "now").
                        tick_time(s.first, index, this.interval)
                            .remaining(now)
                            .unwrap_or(Duration::MAX)
                    }
                };
                s.f = Some(f);
                (Some((s.gen, delay)), None, false)
            }
        };
        if let Some((f, r)) = leftover {
            drop_quietly(r);
            this.release(Some(f));
        }
        if newly_stopped {
            this.token.cancel();
        }
        if let Some((gen, delay)) = next {
            let tick = Tick {
                shared: Arc::clone(this),
                gen,
                armed: true,
            };
            // A refused post drops the tick unrun: `abandoned` stops the repetition.
            if let Ok(h) = runner.post_with_result_from(delay, move || tick.run(), this.posted_from)
            {
                let (old, unneeded) = {
                    let mut s = this.sync.lock();
                    if !s.stopped && s.gen == gen {
                        (s.pending.replace(h), None)
                    } else {
                        (s.pending.take(), Some(h)) // stopped meanwhile
                    }
                };
                drop(old);
                if let Some(h) = unneeded {
                    h.cancel();
                }
            }
        }
        drop(runner);
    }

    /// The post of generation `gen` was dropped without running.
    fn abandoned(&self, gen: u64) {
        let (f, r, pending) = {
            let mut s = self.sync.lock();
            if s.stopped || s.gen != gen {
                return;
            }
            s.stopped = true;
            s.gen += 1;
            // While starting, `start` hands the closure back or releases it.
            let f = if s.starting { None } else { s.f.take() };
            (f, s.runner.take(), s.pending.take())
        };
        drop(pending);
        drop_quietly(r);
        if f.is_some() {
            self.release(f);
        }
        self.token.cancel();
    }

    /// Drops the closure of a stopped repetition (no lock held), then marks it released and
    /// wakes `wait`.
    fn release(&self, f: Option<Box<dyn RepeatFn>>) {
        drop_quietly(f);
        let mut s = self.sync.lock();
        s.released = true;
        self.cv.notify_all();
    }
}

/// What the handle needs of the repetition, whatever its runner type.
trait Control: Send + Sync {
    fn stop(&self) -> bool;
    fn is_running(&self) -> bool;
    fn is_finished(&self) -> bool;
    fn wait(&self, timeout: Option<Duration>) -> bool;
    fn runs(&self) -> u64;
    fn token(&self) -> &CancellationToken;
    fn interval(&self) -> Duration;
    fn mode(&self) -> RepeatMode;
}

impl<R: PostTask + Clone + Send + Sync + 'static> Control for Shared<R> {
    fn stop(&self) -> bool {
        let (f, r, pending) = {
            let mut s = self.sync.lock();
            if s.stopped {
                return false;
            }
            s.stopped = true;
            s.gen += 1;
            // `None` while a run has borrowed it: that run releases it when it ends.
            let f = s.f.take();
            if f.is_none() && s.running.is_none() && !s.starting {
                s.released = true; // nothing left to drop
                self.cv.notify_all();
            }
            (f, s.runner.take(), s.pending.take())
        };
        if let Some(h) = pending {
            // Outside the lock: the cancelled post's tick is dropped here, and finds the
            // repetition stopped.
            h.cancel();
        }
        drop_quietly(r);
        if f.is_some() {
            self.release(f);
        }
        self.token.cancel();
        true
    }

    fn is_running(&self) -> bool {
        !self.sync.lock().stopped
    }

    fn is_finished(&self) -> bool {
        let s = self.sync.lock();
        s.stopped && s.running.is_none() && s.released
    }

    fn wait(&self, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map_or(Deadline::NEVER, Deadline::real_after);
        {
            let s = self.sync.lock();
            if s.running == Some(thread::current().id()) {
                panic!(
                    "RepeatHandle::wait was called from inside one of its own runs: it waits for that run to end, \
                     which would never happen (cancel() from a run is fine; wait elsewhere)"
                );
            }
            if s.stopped && s.running.is_none() && s.released {
                return true;
            }
        }
        blocking_unchecked(|| {
            let mut s = self.sync.lock();
            while !(s.stopped && s.running.is_none() && s.released) {
                match deadline.instant() {
                    Some(d) => {
                        let now = Instant::now();
                        if now >= d {
                            return false;
                        }
                        self.cv.wait_for(&mut s, d - now);
                    }
                    None => self.cv.wait(&mut s),
                }
            }
            true
        })
    }

    fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    fn token(&self) -> &CancellationToken {
        &self.token
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn mode(&self) -> RepeatMode {
        self.mode
    }
}

/// The first tick after `last` that has not passed at `now` (a tick exactly at `now` has not).
fn next_tick_index(first: Instant, last: u64, interval: Duration, now: Instant) -> u64 {
    let elapsed = now.saturating_duration_since(first).as_nanos();
    let step = interval.as_nanos().max(1);
    let due = elapsed.div_ceil(step);
    let due = u64::try_from(due).unwrap_or(u64::MAX);
    due.max(last.saturating_add(1))
}

/// The time of tick `index`; never if it is too far to represent.
fn tick_time(first: Instant, index: u64, interval: Duration) -> Deadline {
    let nanos = interval.as_nanos().saturating_mul(u128::from(index));
    // More than `Duration::MAX` nanoseconds saturates to it, which is never anyway.
    let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
    let offset = Duration::new(secs, (nanos % 1_000_000_000) as u32);
    Deadline::after(first, offset)
}

/// Controls a repetition started with [`repeat`] or [`Repeat::start`].
///
/// * [`cancel`](Self::cancel) **really stops it**, from any thread (also from inside a run):
///   no run starts after `cancel` returns; a run already in progress finishes. The closure is
///   dropped at once, or right after the run in progress ends.
/// * [`wait`](Self::wait) returns once the repetition has stopped (for any reason), no run
///   is in progress and the closure has been dropped; after a cancel it never hangs.
/// * The repetition also stops when its [`token`](Self::token) (or a parent given with
///   [`Repeat::token`]) is cancelled, when the closure returns `Break`
///   ([`Repeat::start_with_flow`]), and when the runner refuses or drops its next run:
///   shutdown, or a sequence poisoned by a panic under
///   [`PanicPolicy::Poison`](crate::PanicPolicy). Stopping for any reason cancels
///   [`token`](Self::token).
/// * **Dropping the handle does not stop it** (as for [`TaskHandle`](crate::TaskHandle)),
///   unless it was made [`cancel_on_drop`](Self::cancel_on_drop). A repetition keeps a clone
///   of its runner until it stops, so while it repeats it keeps the pool alive: cancel it, or
///   shut the pool down.
/// * A cancel takes the pending run out of the crate's runners' delay manager at once (it
///   no longer counts in
///   [`pending_delayed_tasks`](crate::ThreadPool::pending_delayed_tasks)); a next run that
///   was being scheduled when the cancel came is withdrawn as soon as its post is made. On a
///   runner of
///   your own, the pending post is cancelled through its [`TaskHandle`](crate::TaskHandle)
///   and, if the runner cannot withdraw it, stays queued until its time comes (then it does
///   nothing); it holds neither the closure nor the runner.
///
/// `Send + Sync`; not `Clone` (share it in an `Arc` if several owners may cancel it).
///
/// ```
/// use std::time::Duration;
/// use taskrunner::ThreadPool;
/// use taskrunner::time::{repeat, RepeatMode};
/// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
/// let h = repeat(&pool, Duration::from_secs(3600), RepeatMode::FixedRate, || ()).unwrap();
/// assert!(h.is_running());
/// let h2 = std::sync::Arc::new(h);
/// let h3 = h2.clone();
/// std::thread::spawn(move || h3.cancel()).join().unwrap();
/// h2.wait();
/// assert!(h2.is_finished());
/// assert_eq!(h2.runs(), 0);
/// ```
#[must_use = "dropping a RepeatHandle does not stop the repetition; keep it to cancel it, or use cancel_on_drop()"]
pub struct RepeatHandle {
    shared: Arc<dyn Control>,
    cancel_on_drop: bool,
}

impl RepeatHandle {
    /// Stops the repetition: no run starts after this returns (one in progress finishes), and
    /// the closure is dropped now or right after that run. Returns `true` if this call stopped
    /// it, `false` if it had already stopped (cancelled, its token, shutdown, `Break`).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::ThreadPool;
    /// # use taskrunner::time::{repeat, RepeatMode};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let h = repeat(&pool, Duration::from_secs(60), RepeatMode::FixedDelay, || ()).unwrap();
    /// assert!(h.cancel());
    /// assert!(!h.cancel());
    /// assert!(h.token().is_cancelled());
    /// ```
    pub fn cancel(&self) -> bool {
        self.shared.stop()
    }

    /// `true` until the repetition stops (for any reason). A run may still be finishing after
    /// it turns `false`: see [`is_finished`](Self::is_finished).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::ThreadPool;
    /// # use taskrunner::time::{repeat, RepeatMode};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let h = repeat(&pool, Duration::from_secs(60), RepeatMode::FixedDelay, || ()).unwrap();
    /// assert!(h.is_running());
    /// pool.shutdown(); // the runner shutting down ends the repetition
    /// assert!(!h.is_running());
    /// h.wait();
    /// ```
    pub fn is_running(&self) -> bool {
        self.shared.is_running()
    }

    /// `true` once the repetition has stopped, no run is in progress and the closure has been
    /// dropped: what [`wait`](Self::wait) waits for.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::ThreadPool;
    /// # use taskrunner::time::{repeat, RepeatMode};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let h = repeat(&pool, Duration::from_secs(60), RepeatMode::FixedDelay, || ()).unwrap();
    /// assert!(!h.is_finished());
    /// h.cancel();
    /// assert!(h.is_finished()); // no run was in progress
    /// ```
    pub fn is_finished(&self) -> bool {
        self.shared.is_finished()
    }

    /// How many runs have started so far.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::ThreadPool;
    /// # use taskrunner::time::{repeat, RepeatMode};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let h = repeat(&pool, Duration::from_millis(1), RepeatMode::FixedDelay, move || { let _ = tx.send(()); }).unwrap();
    /// rx.recv().unwrap();
    /// h.cancel();
    /// h.wait();
    /// assert!(h.runs() >= 1);
    /// ```
    pub fn runs(&self) -> u64 {
        self.shared.runs()
    }

    /// Blocks until the repetition has stopped, no run is in progress and the closure has been
    /// dropped. Returns at once after [`cancel`](Self::cancel) if no run was in progress,
    /// otherwise when that run ends.
    /// Without a cancel it waits for another reason to stop (token, `Break`, shutdown). On a
    /// pool worker the pool runs one more worker while this blocks.
    ///
    /// # Panics
    ///
    /// If called from inside one of the repetition's own runs (it would wait for itself).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::ThreadPool;
    /// # use taskrunner::time::{repeat, RepeatMode};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let h = repeat(&pool, Duration::from_millis(1), RepeatMode::FixedRate, || ()).unwrap();
    /// h.cancel();
    /// h.wait();
    /// assert!(h.is_finished());
    /// ```
    pub fn wait(&self) {
        self.shared.wait(None);
    }

    /// [`wait`](Self::wait) for at most `timeout` (real time); `true` if the repetition is
    /// finished. A timeout too large to represent (`Duration::MAX`) means no limit.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::ThreadPool;
    /// # use taskrunner::time::{repeat, RepeatMode};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let h = repeat(&pool, Duration::from_secs(60), RepeatMode::FixedDelay, || ()).unwrap();
    /// assert!(!h.wait_timeout(Duration::from_millis(1)));
    /// h.cancel();
    /// assert!(h.wait_timeout(Duration::from_secs(10)));
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.shared.wait(Some(timeout))
    }

    /// The repetition's token: cancelling it stops the repetition, and it is cancelled when
    /// the repetition stops for any reason. Runs see it as
    /// [`TaskContext::current()`](crate::cancel::TaskContext::current)'s token, so a run can stop its
    /// own repetition with `TaskContext::current().unwrap().token().cancel()`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::ThreadPool;
    /// # use taskrunner::time::{repeat, RepeatMode};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let h = repeat(&pool, Duration::from_secs(60), RepeatMode::FixedDelay, || ()).unwrap();
    /// h.token().cancel();
    /// assert!(!h.is_running());
    /// ```
    pub fn token(&self) -> CancellationToken {
        self.shared.token().clone()
    }

    /// The interval between runs.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::ThreadPool;
    /// # use taskrunner::time::{repeat, RepeatMode};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let h = repeat(&pool, Duration::from_secs(5), RepeatMode::FixedRate, || ()).unwrap().cancel_on_drop();
    /// assert_eq!((h.interval(), h.mode()), (Duration::from_secs(5), RepeatMode::FixedRate));
    /// ```
    pub fn interval(&self) -> Duration {
        self.shared.interval()
    }

    /// The schedule.
    ///
    /// See [`interval`](Self::interval) for an example.
    pub fn mode(&self) -> RepeatMode {
        self.shared.mode()
    }

    /// Makes dropping this handle cancel the repetition.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::ThreadPool;
    /// # use taskrunner::time::{repeat, RepeatMode};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let h = repeat(&pool, Duration::from_secs(60), RepeatMode::FixedDelay, || ()).unwrap().cancel_on_drop();
    /// let token = h.token();
    /// drop(h);
    /// assert!(token.is_cancelled());
    /// ```
    pub fn cancel_on_drop(mut self) -> Self {
        self.cancel_on_drop = true;
        self
    }
}

impl Drop for RepeatHandle {
    fn drop(&mut self) {
        if self.cancel_on_drop {
            self.shared.stop();
        }
    }
}

impl fmt::Debug for RepeatHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RepeatHandle")
            .field("interval", &self.shared.interval())
            .field("mode", &self.shared.mode())
            .field("is_running", &self.shared.is_running())
            .field("runs", &self.shared.runs())
            .field("cancel_on_drop", &self.cancel_on_drop)
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn fixed_rate_skips_missed_ticks_and_keeps_a_tick_at_the_end_of_the_run() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // A run of tick 0 that ends before tick 1: next is tick 1.
        assert_eq!(next_tick_index(t0, 0, ms(100), t0 + ms(30)), 1);
        // Ends exactly on tick 1: tick 1 has not passed.
        assert_eq!(next_tick_index(t0, 0, ms(100), t0 + ms(100)), 1);
        // Overran ticks 1 and 2: skipped, next is 3.
        assert_eq!(next_tick_index(t0, 0, ms(100), t0 + ms(250)), 3);
        // A run that took no time at its own tick: the next one.
        assert_eq!(next_tick_index(t0, 4, ms(100), t0 + ms(400)), 5);
        assert_eq!(tick_time(t0, 3, ms(100)).instant(), Some(t0 + ms(300)));
        assert!(tick_time(t0, 2, Duration::MAX).is_never());
        assert!(tick_time(t0, u64::MAX, Duration::from_secs(1000)).is_never());
    }
}
