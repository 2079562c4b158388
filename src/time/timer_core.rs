//! `TimerCore`: the state one timer shares with its pending fire tasks (and, for
//! the deprecated `post_repeating_task`, with its handle). Every public timer type is a thin shell around it.
//!
//! # Generations
//!
//! Every fire task the core posts carries a fresh *generation* number; the core remembers the
//! one generation that is current. `start`, `reset`, `stop`, `fire_now` and the repeating
//! reschedule all make a new generation current, so every fire task posted before them is
//! *stale*: when it runs it finds its generation is not the current one and does nothing. The
//! pending entry of the old generation is also removed from the delay heap ([`DelayId`]), so it
//! is freed at once rather than at its deadline; the generation check covers the window where
//! the entry had already ripened and sits in the sequence's queue.
//!
//! # State (`state`: `generation << 1 | ARMED`)
//!
//! Written only under the `synced` lock, read lock-free by `is_running` and by the fire fast
//! path. Generations only grow, so a fire task that reads a generation *greater* than its own
//! is certainly stale and returns without locking; anything else is decided under the lock.
//!
//! | state | meaning |
//! |---|---|
//! | `g << 1 \| ARMED` | a fire task of generation `g` is pending (in the delay heap or the sequence's queue) and will run the task |
//! | `g << 1` | not armed: never started, stopped, fired (one-shot), or a fire was refused |
//!
//! | transition | by | under the lock |
//! |---|---|---|
//! | `→ g' \| ARMED` (`start`, `reset`) | any thread | post the fire of `g'` to the delay manager, make `g'` current, replace the task (`start`), remember the new entry's id; cancel the old entry after unlocking |
//! | `g \| ARMED → g` (fire of `g`, one-shot kinds) | the sequence | take the task (one-shot: consume it; retaining: borrow it), then run it unlocked |
//! | `g \| ARMED → g' \| ARMED` (fire of `g`, repeating) | the sequence | post the next fire (`g'`, at now + period) *before* borrowing and running the task: start-to-start period |
//! | `→ g'` (`fire_now` on the timer's sequence, one-shot) | the sequence | make `g'` current, not armed, take the pending id and the task; run it unlocked |
//! | `→ g' \| ARMED` (`fire_now` from elsewhere, one-shot) | any thread | make `g'` current and armed (the immediate run is pending, so `stop` cancels it and says so), take the pending id; post an immediate fire of `g'` after unlocking |
//! | `→ g'` (`stop`) | any thread | make `g'` current (every posted fire is stale), take the task (not for the retaining kind), take the pending id; cancel the entry and drop the task after unlocking |
//! | `g \| ARMED → g` (fire task of `g` dropped unrun: shutdown) | whoever dropped it | like `stop`, for the current generation only |
//!
//! **Stop vs fire.** Both take the lock; whoever takes it first wins. If the fire took it first
//! it has taken the task: the task has *started* and runs to the end (stop cannot interrupt it;
//! a borrowed task is then dropped instead of being given back). Otherwise the fire finds a
//! stale generation. So after `stop` returns no run starts, and the task is freed before `stop`
//! returns unless it was running (then when the run ends). Modelled by loom in
//! `src/loom_tests/timer.rs`.
//!
//! **Huge delays.** A delay too large to represent as a point in time (`Duration::MAX`) means
//! "never": the fire is kept in the delay heap at the end of time (see `crate::base::clock`), which
//! no clock reaches. The timer is running until stopped, and stopping it (or shutdown)
//! removes the entry as for any other delay.
//!
//! **Locks.** Lock order: the core lock, then the locks a post takes under it: the delay
//! manager's lock and, in admission, a dedicated thread's flags lock (the first delayed post may
//! also register the clock waker and spawn the delay service thread under it). Nothing is dropped and no user code runs under the core lock: old
//! tasks, cancelled entries and refused fire tasks are dropped after it is released (their
//! destructors may call back into the timer).

use std::fmt;
use std::panic::{self, Location};
use std::time::Duration;

use crate::base::deadline::Deadline;
use crate::base::error::{PostError, PostRefusal};
use crate::base::shim::{Arc, AtomicU64, Mutex, MutexGuard, Ordering};
use crate::base::unwind::drop_quietly;
use crate::engine::{
    current_token, BoxedFn, DelayId, Destination, Engine, PostDest, Sequence, Task,
};

const ARMED: u64 = 1;

/// Any non-zero delay: admission treats a timer's fire task as delayed whatever its delay.
const AS_DELAYED: Duration = Duration::from_nanos(1);

/// How a timer treats its task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Runs once; the task is consumed by the run, dropped by `stop`.
    OneShot,
    /// Runs once per arming; the task is kept after the run and after `stop`.
    Retaining,
    /// Runs every period until stopped; `stop` drops the task.
    Repeating,
}

/// The user's task.
pub(crate) enum UserTask {
    Once(Box<dyn FnOnce() + Send + 'static>),
    Many(Box<dyn FnMut() + Send + 'static>),
}

struct Synced {
    /// The current generation (see the module doc).
    gen: u64,
    /// The last generation handed out (a refused post's generation never becomes current).
    last_gen: u64,
    /// The task, while the timer holds it (not while a run has borrowed it).
    task: Option<UserTask>,
    /// A run has borrowed the task (retaining and repeating kinds).
    borrowed: bool,
    /// The borrowed task goes back into `task` when its run ends (cleared by `start`, which
    /// replaces it, and by `stop` of the kinds that drop their task).
    keep_borrowed: bool,
    /// The delay heap entry of the current generation's fire, while it is pending there.
    pending: Option<DelayId>,
    /// The delay (period) of the last `start`, for `reset` and the repeating reschedule.
    delay: Duration,
    /// Where the timer was last started from (the fire tasks' `posted_from`).
    posted_from: &'static Location<'static>,
}

pub(crate) struct TimerCore {
    kind: Kind,
    /// `generation << 1 | ARMED`; see the module doc.
    state: AtomicU64,
    synced: Mutex<Synced>,
    /// Where fire tasks go. Plain `Arc`s, not a counted runner handle: a pending fire task must
    /// not keep the pool from winding down (the public timer types hold a runner themselves).
    inner: Arc<Engine>,
    seq: Arc<Sequence>,
}

/// The queued side of one fire: runs the core's fire for its generation, or, dropped unrun
/// (shutdown, the pool winding down), tells the core that this generation will never fire.
struct Fire {
    core: Arc<TimerCore>,
    gen: u64,
    pending: bool,
}

impl Fire {
    fn run(mut self) {
        self.pending = false;
        TimerCore::fire(&self.core, self.gen);
    }
}

impl Drop for Fire {
    fn drop(&mut self) {
        if self.pending {
            self.core.abandoned(self.gen);
        }
    }
}

/// A refused post: why, and the fire task to drop once the core lock is released.
type Refused = (PostRefusal, Option<Task>);

impl TimerCore {
    pub(crate) fn new(kind: Kind, inner: Arc<Engine>, seq: Arc<Sequence>) -> Self {
        TimerCore {
            kind,
            state: AtomicU64::new(0),
            synced: Mutex::new(Synced {
                gen: 0,
                last_gen: 0,
                task: None,
                borrowed: false,
                keep_borrowed: false,
                pending: None,
                delay: Duration::ZERO,
                posted_from: Location::caller(),
            }),
            inner,
            seq,
        }
    }

    /// A fire of the current generation is pending.
    pub(crate) fn is_running(&self) -> bool {
        self.state.load(Ordering::Acquire) & ARMED != 0
    }

    /// Arms the timer with a new task: its first run is `delay` from now (by the pool's clock).
    /// A refusal hands `f` back and leaves the timer as it was.
    pub(crate) fn start<F>(
        this: &Arc<Self>,
        delay: Duration,
        f: F,
        wrap: impl FnOnce(F) -> UserTask,
        posted_from: &'static Location<'static>,
    ) -> Result<(), PostError<F>> {
        let (old_entry, old_task) = {
            let mut s = this.synced.lock();
            let old_entry = match Self::arm(this, &mut s, delay, posted_from) {
                Ok(old) => old,
                Err((reason, fire)) => {
                    drop(s);
                    drop_quietly(fire);
                    return Err(PostError::new(reason, f));
                }
            };
            s.delay = delay;
            s.posted_from = posted_from;
            if s.borrowed {
                // A run of the old task is in progress: it is dropped when that run ends.
                s.keep_borrowed = false;
            }
            (old_entry, s.task.replace(wrap(f)))
        };
        this.cancel_entry(old_entry);
        drop_quietly(old_task);
        Ok(())
    }

    /// Re-arms with the current task and delay (from now). `false` if there is no task to
    /// re-arm (one-shot already fired or stopped, repeating stopped, never started) or the post
    /// was refused; the timer is then left as it was. The new fire (and, for the repeating
    /// kind, every later one) reports the caller's location as where it was posted from.
    #[track_caller]
    pub(crate) fn reset(this: &Arc<Self>) -> bool {
        let posted_from = Location::caller();
        let (old_entry, refused) = {
            let mut s = this.synced.lock();
            let has_task = s.task.is_some() || (s.borrowed && s.keep_borrowed);
            if !has_task {
                return false;
            }
            let delay = s.delay;
            match Self::arm(this, &mut s, delay, posted_from) {
                Ok(old) => {
                    s.posted_from = posted_from;
                    (old, None)
                }
                Err((_, fire)) => (None, Some(fire)),
            }
        };
        this.cancel_entry(old_entry);
        let ok = refused.is_none();
        drop_quietly(refused);
        ok
    }

    /// Disarms: no run starts after this returns. With `release` (or for the kinds that do not
    /// retain their task) the task is dropped, here unless a run has borrowed it (then when
    /// that run ends). Returns whether the timer was armed.
    pub(crate) fn stop(&self, release: bool) -> bool {
        let (entry, task, was_armed) = {
            let mut s = self.synced.lock();
            let was_armed = self.is_running();
            s.last_gen += 1;
            s.gen = s.last_gen;
            self.set_state(s.gen, false);
            let task = if release || self.kind != Kind::Retaining {
                s.keep_borrowed = false;
                s.task.take()
            } else {
                None
            };
            (s.pending.take(), task, was_armed)
        };
        self.cancel_entry(entry);
        drop_quietly(task);
        was_armed
    }

    /// One-shot kinds: runs the task now instead of at its deadline. On the timer's own
    /// sequence the task runs inside this call (the timer is disarmed first); from anywhere
    /// else an immediate run is posted to the sequence and the timer stays armed until it
    /// starts, so `is_running` is `true` meanwhile and a `stop` before it starts cancels it
    /// (returning `true`). `false` if there is no task, or the post was refused (shutdown: the
    /// timer is then stopped, as by the pool).
    pub(crate) fn fire_now(this: &Arc<Self>, posted_from: &'static Location<'static>) -> bool {
        let on_sequence = this.on_sequence();
        let (task, gen, entry) = {
            let mut s = this.synced.lock();
            if s.task.is_none() {
                return false;
            }
            s.last_gen += 1;
            s.gen = s.last_gen;
            // Off the sequence the run is pending until its task starts: armed.
            this.set_state(s.gen, !on_sequence);
            let task = if on_sequence { s.task.take() } else { None };
            (task, s.gen, s.pending.take())
        };
        this.cancel_entry(entry);
        if let Some(task) = task {
            this.run_taken(task);
            return true;
        }
        let fire = Fire {
            core: Arc::clone(this),
            gen,
            pending: true,
        };
        // Posted outside the core lock: a post that races with shutdown may drop the task
        // inside the call, and the fire's drop takes the core lock.
        let posted = Engine::post(
            &this.inner,
            PostDest::Sequence(&this.seq),
            Duration::ZERO,
            move || fire.run(),
            posted_from,
        );
        // A refused fire is dropped unrun: `abandoned` stops the timer.
        posted.is_ok()
    }

    /// Posts a fire of a fresh generation `delay` from now and makes it current (armed).
    /// Returns the entry it replaces (to cancel after unlocking), or the refusal.
    fn arm(
        this: &Arc<Self>,
        s: &mut MutexGuard<'_, Synced>,
        delay: Duration,
        posted_from: &'static Location<'static>,
    ) -> Result<Option<DelayId>, Refused> {
        // Timer runs are delayed tasks whatever the delay (zero too): they never block
        // shutdown and never start once it has started.
        Engine::admit(&this.inner, &PostDest::Sequence(&this.seq), AS_DELAYED)
            .map_err(|reason| (reason, None))?;
        s.last_gen += 1;
        let gen = s.last_gen;
        let fire = Fire {
            core: Arc::clone(this),
            gen,
            pending: true,
        };
        let mut task = Task::new(Box::new(move || fire.run()) as BoxedFn, posted_from);
        // A named runner counts its timer's runs like its other tasks (its counters live in
        // the sequence's cold part, a leaf lock).
        if let Some(stats) = this.seq.stats() {
            task.job = stats.track(task.job, 0);
        }
        // A delay too large for `Instant` means never: the entry waits (stop or shutdown
        // removes it) but never ripens.
        let run_at = Deadline::after(this.inner.clock.now(), delay);
        let dest = Destination::Sequence(Arc::clone(&this.seq));
        match Engine::add_delayed(&this.inner, run_at, task, dest) {
            Ok(id) => {
                s.gen = gen;
                this.set_state(gen, true);
                Ok(s.pending.replace(id))
            }
            // The manager stopped after admission (shutdown, or the pool winding down).
            Err(task) => Err((PostRefusal::ShutdownStarted, Some(task))),
        }
    }

    /// The fire task of generation `gen` runs (on the timer's sequence).
    fn fire(this: &Arc<Self>, gen: u64) {
        if this.state.load(Ordering::Acquire) >> 1 > gen {
            return; // stale: a newer generation exists
        }
        let (task, refused) = {
            let mut s = this.synced.lock();
            if s.gen != gen {
                return;
            }
            s.pending = None;
            let mut refused = None;
            if this.kind == Kind::Repeating {
                // Start-to-start: the next run is scheduled before this one runs.
                let (delay, from) = (s.delay, s.posted_from);
                if let Err((_, fire)) = Self::arm(this, &mut s, delay, from) {
                    refused = fire;
                    this.set_state(gen, false);
                }
            } else {
                this.set_state(gen, false);
            }
            let task = s.task.take();
            if task.is_some() && this.kind != Kind::OneShot {
                s.borrowed = true;
                s.keep_borrowed = true;
            }
            (task, refused)
        };
        drop_quietly(refused);
        if let Some(task) = task {
            this.run_taken(task);
        }
    }

    /// Runs a task taken out of the slot; a borrowed (`Many`) task is given back afterwards,
    /// even if it panicked. The panic then continues to whoever runs this: the worker, which
    /// reports it like any task's panic (the pool's panic handler, the sequence's
    /// `PanicPolicy`), or the caller of an on-sequence `fire_now`.
    fn run_taken(&self, task: UserTask) {
        match task {
            UserTask::Once(f) => f(),
            UserTask::Many(mut f) => {
                let outcome = crate::base::unwind::catch(&mut f);
                let leftover = {
                    let mut s = self.synced.lock();
                    if s.borrowed && s.keep_borrowed && s.task.is_none() {
                        s.borrowed = false;
                        s.task = Some(UserTask::Many(f));
                        None
                    } else {
                        s.borrowed = false;
                        Some(f)
                    }
                };
                drop_quietly(leftover);
                if let Err(payload) = outcome {
                    panic::resume_unwind(payload.into_inner());
                }
            }
        }
    }

    /// A fire task of generation `gen` was dropped without running (shutdown, the pool winding
    /// down, the sequence's thread gone): if `gen` is current the timer will never fire again,
    /// so it is disarmed and, unless it retains its task, the task is freed.
    fn abandoned(&self, gen: u64) {
        let task = {
            let mut s = self.synced.lock();
            if s.gen != gen {
                return;
            }
            s.pending = None;
            self.set_state(gen, false);
            if self.kind == Kind::Retaining {
                None
            } else {
                s.keep_borrowed = false;
                s.task.take()
            }
        };
        drop_quietly(task);
    }

    fn set_state(&self, gen: u64, armed: bool) {
        self.state
            .store((gen << 1) | u64::from(armed), Ordering::Release);
    }

    /// Removes a replaced or stopped entry from the delay heap; its fire task (stale by now)
    /// is dropped here, outside every lock.
    fn cancel_entry(&self, id: Option<DelayId>) {
        if let Some(id) = id {
            self.inner.cancel_delayed_task(id);
        }
    }

    /// Whether the calling code runs on the timer's sequence.
    pub(crate) fn on_sequence(&self) -> bool {
        current_token() == self.seq.token
    }
}

impl fmt::Debug for TimerCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timer")
            .field("kind", &self.kind)
            .field("sequence", &self.seq.token)
            .field("is_running", &self.is_running())
            .finish_non_exhaustive()
    }
}
