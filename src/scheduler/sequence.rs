//! `Sequence`: a FIFO of tasks that run one at a time, in posting order, on any worker.
//!
//! # State machine
//!
//! The state lives with the queue under the sequence's own short lock (never held while a task
//! runs, never held while taking the group lock):
//!
//! | state | meaning | where the sequence is |
//! |---|---|---|
//! | `Idle` | queue empty, nobody owns it | nowhere (only in runner handles) |
//! | `Queued` | queue non-empty, waiting for a worker | in its home's ready queue (or about to be pushed by the caller that got `Push::Enqueue` / `AfterRun::Requeue`) |
//! | `Running` | a worker is running its front task | held by exactly one worker |
//!
//! | transition | by | caller's duty |
//! |---|---|---|
//! | `Idle → Queued` (`push` on an idle sequence) | poster | `Push::Enqueue`: push into the home's ready queue |
//! | `Queued/Running → same` (`push` otherwise) | poster | none: the sequence is already owned (`Push::Done`) |
//! | `Queued → Running` (`take_task`) | worker that popped it | run the returned task, then call `did_run` |
//! | `Running → Queued` (`did_run`, queue non-empty) | that worker | `AfterRun::Requeue`: push with the fresh key |
//! | `Running → Idle` (`did_run`, queue empty) | that worker | `AfterRun::Idle`: nothing (a block-shutdown sequence unregisters) |
//! | `Running/Queued → Idle` (`clear`) | the worker or the shutdown completer that owns it | drop the returned tasks outside any lock |
//!
//! Invariant (Chromium 2.11.1): a sequence is in at most one place; only `Push::Enqueue` and
//! `AfterRun::Requeue` put it into a ready queue, and each is returned to exactly one caller.
//! Because a post to a `Queued` or `Running` sequence never touches the group, posting to a busy
//! sequence costs one uncontended lock and a `VecDeque` push. Happens-before between task N and
//! task N+1 comes from this lock: `did_run` (after N) and `take_task` (before N+1) both take it.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::fmt;

use crate::scheduler::SortKey;
use crate::sync::{Arc, AtomicBool, AtomicU8, Mutex, Ordering};
use crate::task::Task;
use crate::tracker::{Completion, Tracker};
use crate::traits::{PanicPolicy, ShutdownBehavior, TaskPriority, TaskTraits};
use crate::worker::Dedicated;

/// Where a sequence's tasks run.
#[derive(Debug)]
pub(crate) enum Home {
    /// Any worker of the pool's thread group.
    Pool,
    /// One dedicated thread (a `SingleThreadTaskRunner`).
    Dedicated(Arc<Dedicated>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Idle,
    Queued,
    Running,
}

struct Synced {
    queue: VecDeque<Task>,
    state: State,
}

/// Result of [`Sequence::push`].
#[must_use = "an Enqueue result obliges the caller to push the sequence into its ready queue"]
#[derive(Debug)]
pub(crate) enum Push {
    /// The sequence went idle → queued: the caller must enqueue it with this key.
    Enqueue(SortKey),
    /// The sequence was already owned (queued or running); nothing more to do.
    Done,
    /// The sequence was idle and shutdown forbids registering it: the task is handed back.
    Refused(Task),
}

/// Result of [`Sequence::did_run`].
#[must_use = "a Requeue result obliges the caller to push the sequence back"]
#[derive(Debug)]
pub(crate) enum AfterRun {
    /// More tasks: push the sequence back with this key.
    Requeue(SortKey),
    /// Drained: the sequence is idle. Carries the tracker's verdict for block sequences.
    Idle(Completion),
}

/// Sequence-local values by slot id.
type LocalMap = HashMap<u64, Box<dyn Any + Send>>;

/// A FIFO of tasks that run one at a time.
pub(crate) struct Sequence {
    /// Unique token (shared number space with task order numbers).
    pub(crate) token: u64,
    priority: AtomicU8,
    pub(crate) shutdown: ShutdownBehavior,
    pub(crate) may_block: bool,
    pub(crate) panic_policy: PanicPolicy,
    /// Set once a task panicked under `PanicPolicy::Poison`; later posts are refused.
    poisoned: AtomicBool,
    pub(crate) home: Home,
    synced: Mutex<Synced>,
    /// Sequence-local storage (`SequenceLocal` slots), created on first use and dropped with the
    /// sequence. Only tasks of this sequence touch it, one at a time: the lock is uncontended.
    /// Boxed so that a sequence that never uses it pays one pointer, not a whole map.
    locals: Mutex<Option<Box<LocalMap>>>,
}

impl Sequence {
    pub(crate) fn new(traits: TaskTraits, home: Home) -> Self {
        Sequence {
            token: crate::task::next_id(),
            priority: AtomicU8::new(traits.get_priority() as u8),
            shutdown: traits.get_shutdown_behavior(),
            may_block: traits.get_may_block(),
            panic_policy: traits.get_panic_policy(),
            poisoned: AtomicBool::new(false),
            home,
            synced: Mutex::new(Synced {
                queue: VecDeque::new(),
                state: State::Idle,
            }),
            locals: Mutex::new(None),
        }
    }

    pub(crate) fn priority(&self) -> TaskPriority {
        TaskPriority::from_index(self.priority.load(Ordering::Relaxed))
    }

    /// Changes the priority used for keys computed from now on.
    pub(crate) fn set_priority(&self, p: TaskPriority) {
        self.priority.store(p as u8, Ordering::Relaxed);
    }

    fn key_for(&self, task: &Task) -> SortKey {
        SortKey {
            priority: self.priority(),
            order: task.order,
        }
    }

    /// Appends a task (see the state table). Registration with the tracker happens under the
    /// sequence lock, as in Chromium, so a refused registration leaves the sequence idle.
    pub(crate) fn push(&self, task: Task, tracker: &Tracker) -> Push {
        let mut g = self.synced.lock();
        if g.state == State::Idle {
            debug_assert!(g.queue.is_empty(), "an idle sequence has no tasks");
            let admitted = if self.shutdown == ShutdownBehavior::BlockShutdown {
                tracker.register_block()
            } else {
                tracker.can_register_other()
            };
            if admitted.is_err() {
                return Push::Refused(task);
            }
            let key = self.key_for(&task);
            g.state = State::Queued;
            g.queue.push_back(task);
            Push::Enqueue(key)
        } else {
            g.queue.push_back(task);
            Push::Done
        }
    }

    /// Queued → Running: the worker that popped the sequence takes its front task.
    pub(crate) fn take_task(&self) -> Task {
        let mut g = self.synced.lock();
        debug_assert_eq!(
            g.state,
            State::Queued,
            "only a queued sequence can be taken"
        );
        g.state = State::Running;
        g.queue
            .pop_front()
            .expect("a queued sequence always has a task")
    }

    /// Running → Queued (more tasks) or Idle (drained).
    pub(crate) fn did_run(&self, tracker: &Tracker) -> AfterRun {
        let mut g = self.synced.lock();
        debug_assert_eq!(g.state, State::Running, "did_run without take_task");
        match g.queue.front() {
            Some(next) => {
                let key = self.key_for(next);
                g.state = State::Queued;
                AfterRun::Requeue(key)
            }
            None => {
                g.state = State::Idle;
                // An idle sequence keeps no large buffer from a burst.
                if g.queue.capacity() > 16 {
                    g.queue = VecDeque::new();
                }
                drop(g);
                if self.shutdown == ShutdownBehavior::BlockShutdown {
                    AfterRun::Idle(tracker.unregister_block())
                } else {
                    AfterRun::Idle(Completion::None)
                }
            }
        }
    }

    /// Drops every queued task (shutdown skips them) and makes the sequence idle. The caller
    /// owns the sequence (it is running or was popped from a ready queue) and drops the returned
    /// tasks after releasing its locks. Never called on block-shutdown sequences while they are
    /// registered, so there is no tracker bookkeeping.
    pub(crate) fn clear(&self) -> VecDeque<Task> {
        let mut g = self.synced.lock();
        debug_assert_ne!(g.state, State::Idle, "clear of an idle sequence");
        g.state = State::Idle;
        std::mem::take(&mut g.queue)
    }

    /// Takes the queued tasks of a sequence whose continue-on-shutdown task is still running,
    /// without changing its state: when that task ends, `did_run` finds the queue empty and
    /// the sequence goes idle. Used once shutdown has completed, when none of them can run.
    pub(crate) fn drain_pending(&self) -> VecDeque<Task> {
        std::mem::take(&mut self.synced.lock().queue)
    }

    /// Marks the sequence poisoned: later posts are refused.
    pub(crate) fn mark_poisoned(&self) {
        self.poisoned.store(true, Ordering::Release);
    }

    /// Poisons the sequence (a task panicked under `PanicPolicy::Poison`) and returns the
    /// queued tasks for the caller (the worker running the sequence) to drop.
    pub(crate) fn poison(&self) -> VecDeque<Task> {
        self.mark_poisoned();
        std::mem::take(&mut self.synced.lock().queue)
    }

    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    /// Takes the value of local slot `id` out (so that a slot's closure may use other slots).
    pub(crate) fn take_local(&self, id: u64) -> Option<Box<dyn Any + Send>> {
        self.locals.lock().as_mut().and_then(|m| m.remove(&id))
    }

    /// Puts a value into local slot `id`, returning the previous one.
    pub(crate) fn put_local(&self, id: u64, v: Box<dyn Any + Send>) -> Option<Box<dyn Any + Send>> {
        self.locals
            .lock()
            .get_or_insert_with(Box::default)
            .insert(id, v)
    }

    #[cfg(all(test, loom))]
    pub(crate) fn state(&self) -> State {
        self.synced.lock().state
    }
}

impl Drop for Sequence {
    /// Sequence-local values are dropped here, when the last reference to the sequence goes
    /// (possibly on a worker, after the last task): a panicking destructor is caught and logged
    /// instead of unwinding through the scheduler, and the values are dropped in the sequence's
    /// context (its token is current), as Chromium destroys SequenceLocalStorage in the
    /// sequence's environment.
    fn drop(&mut self) {
        let locals = self.locals.lock().take();
        // Normally empty (an idle sequence has no tasks); each task and each local value is
        // dropped in its own guard, so two panicking destructors never abort the process.
        let queued = std::mem::take(&mut self.synced.lock().queue);
        if !queued.is_empty() {
            crate::unwind::drop_each_quietly(queued);
        }
        if let Some(locals) = locals {
            let scope = crate::current::TaskScope::enter(self.token, None, self.may_block);
            crate::unwind::drop_each_quietly(locals.into_values());
            let _ = scope.exit();
        }
    }
}

impl fmt::Debug for Sequence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sequence")
            .field("token", &self.token)
            .field("priority", &self.priority())
            .field("shutdown", &self.shutdown)
            .finish_non_exhaustive()
    }
}
