//! `BoundedRunner`: a sequenced or single-thread runner with a queue of limited capacity.
//!
//! # How it works
//!
//! The runner keeps its waiting tasks in its own queue (a `VecDeque` under one mutex) and has
//! at most one **pump** task on the sequence beneath it. A pump takes the oldest task, posts
//! the next pump if more wait (before running the task, so a panic cannot strand the queue),
//! and runs the task. Tasks of the runner therefore run one at a time, in order, on the
//! sequence, and the queue is what the capacity limits; a full queue is handled by the
//! [`QueuePolicy`] at the post.
//!
//! | field (under the lock) | meaning |
//! |---|---|
//! | `queue` | tasks posted and not yet taken by a pump |
//! | `pumping` | a pump is posted and has not found the queue empty: it or a successor will take every queued task |
//!
//! | transition | by | rule |
//! |---|---|---|
//! | push | poster | with room (or after the policy made room); if `!pumping`: `pumping = true`, post a pump (unlocked). The closure of a post that starts a pump waits in a slot, so that a refused pump hands it back; the refusal empties the queue (tasks other posters queued meanwhile are dropped, as the sequence would drop them) and clears `pumping` |
//! | take | pump | pops the front; `pumping` stays true if more wait (and posts the next pump), else becomes false; wakes the blocked posters once the queue is down to three quarters of its capacity |
//! | a pump dropped unrun (shutdown, a poisoned or closed sequence) | its drop guard | empties the queue, clears `pumping`, wakes every blocked poster (their posts then start a pump and learn the reason) |
//! | evict | poster under `DropOldest` | pops the front, hands it to the dropped-task callback (unlocked) |
//! | wait | poster under `Block` | `waiters += 1`; while full: a condition-variable wait (a blocking scope on a pool worker); `waiters -= 1` |
//!
//! Model-checked in `src/loom_tests/bounded.rs`: a post racing the last pump's take never
//! leaves a task without a pump; a blocked poster is woken by the pump that makes room.

use std::collections::VecDeque;
use std::fmt;
use std::panic::Location;
use std::time::{Duration, Instant};

use crate::base::error::{PostError, PostRefusal};
use crate::base::shim::{Arc, AtomicU64, Condvar, Mutex, Ordering};
use crate::base::unwind::{catch, drop_quietly};
use crate::engine::{blocking_unchecked, report_task_panic, PoolLink};
use crate::runner::generic::Slot;
use crate::runner::PostTask;

/// What a [`BoundedRunner`] does with a post while its queue is full.
///
/// ```
/// use taskrunner::QueuePolicy;
/// assert_ne!(QueuePolicy::Reject, QueuePolicy::Block);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QueuePolicy {
    /// Refuse it: the post returns [`PostRefusal::QueueFull`] with the closure handed back.
    Reject,
    /// Accept it and drop the oldest waiting task instead, handing that task to the
    /// [`on_dropped`](BoundedRunner::on_dropped) callback (or dropping it: a task with a
    /// handle then ends as not run).
    DropOldest,
    /// Make the poster wait until there is room. On a pool worker the wait is a blocking scope
    /// (the pool runs one more worker meanwhile). A task of the runner itself is never made to
    /// wait for its own runner (it would wait for itself): its post is accepted beyond the
    /// capacity.
    Block,
}

/// A task the queue dropped to make room ([`QueuePolicy::DropOldest`]): run it elsewhere, or
/// drop it (a task with a handle then ends as not run).
pub struct DroppedTask {
    f: Box<dyn FnOnce() + Send>,
    posted_from: &'static Location<'static>,
}

impl DroppedTask {
    /// Runs the task here, on the calling thread.
    ///
    /// ```
    /// use taskrunner::{PostTask, QueuePolicy, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default())
    ///     .bounded(1, QueuePolicy::DropOldest)
    ///     .on_dropped(|task| task.run()); // run evicted work inline instead of losing it
    /// # let (release, hold) = std::sync::mpsc::channel::<()>();
    /// # let (started, running) = std::sync::mpsc::channel();
    /// # seq.post_task(move || { started.send(()).unwrap(); hold.recv().unwrap(); }).unwrap();
    /// # running.recv().unwrap();
    /// for i in 0..3 {
    ///     let tx = tx.clone();
    ///     seq.post_task(move || tx.send(i).unwrap()).unwrap();
    /// }
    /// # release.send(()).unwrap();
    /// let mut got: Vec<i32> = (0..3).map(|_| rx.recv().unwrap()).collect();
    /// got.sort();
    /// assert_eq!(got, vec![0, 1, 2]); // none lost: two ran inline when evicted
    /// ```
    pub fn run(self) {
        (self.f)();
    }

    /// Where the task was posted from.
    ///
    /// ```
    /// # use taskrunner::{PostTask, QueuePolicy, TaskTraits, ThreadPool};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default())
    ///     .bounded(1, QueuePolicy::DropOldest)
    ///     .on_dropped(move |task| tx.send(task.posted_from().line()).unwrap());
    /// # let (release, hold) = std::sync::mpsc::channel::<()>();
    /// # let (started, running) = std::sync::mpsc::channel();
    /// # seq.post_task(move || { started.send(()).unwrap(); hold.recv().unwrap(); }).unwrap();
    /// # running.recv().unwrap();
    /// seq.post_task(|| ()).unwrap();
    /// let line = line!() - 1;
    /// seq.post_task(|| ()).unwrap(); // evicts the one above
    /// assert_eq!(rx.recv().unwrap(), line);
    /// # release.send(()).unwrap();
    /// ```
    pub fn posted_from(&self) -> &'static Location<'static> {
        self.posted_from
    }
}

impl fmt::Debug for DroppedTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DroppedTask")
            .field("posted_from", &self.posted_from)
            .finish_non_exhaustive()
    }
}

type OnDropped = std::sync::Arc<dyn Fn(DroppedTask) + Send + Sync>;

struct Queued {
    f: Box<dyn FnOnce() + Send>,
    posted_from: &'static Location<'static>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Queued>,
    pumping: bool,
    /// Posters waiting for room (`Block`).
    waiters: usize,
    on_dropped: Option<OnDropped>,
}

struct Shared<R> {
    inner: R,
    capacity: usize,
    /// Blocked posters are woken when the queue is down to this.
    low_water: usize,
    policy: QueuePolicy,
    state: Mutex<State>,
    room: Condvar,
    rejected: AtomicU64,
    dropped: AtomicU64,
}

/// A sequenced or single-thread runner whose queue of waiting tasks holds at most `capacity`
/// tasks; a post to a full queue follows the [`QueuePolicy`]. Made with
/// [`SequencedTaskRunner::bounded`](crate::SequencedTaskRunner::bounded) or
/// [`SingleThreadTaskRunner::bounded`](crate::SingleThreadTaskRunner::bounded). Tasks run one
/// at a time in posting order on the runner beneath, exactly as posted there; the task running
/// does not count against the capacity. Clones share the queue.
///
/// Every posting variant works ([`PostTask`]): with a result, with a reply, futures. A
/// delayed task counts against the capacity only once it is due: it joins the tail of the
/// queue then, even if the queue is full (nothing can be handed back at that point). Its
/// timing is precise, whatever the [`DelayPolicy`](crate::DelayPolicy) of the runner beneath.
///
/// ```
/// use taskrunner::{PostRefusal, PostTask, QueuePolicy, TaskTraits, ThreadPool};
/// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
/// let seq = pool.create_sequenced_task_runner(TaskTraits::default()).bounded(2, QueuePolicy::Reject);
/// let (release, hold) = std::sync::mpsc::channel::<()>();
/// let (started, running) = std::sync::mpsc::channel();
/// seq.post_task(move || { started.send(()).unwrap(); hold.recv().unwrap(); }).unwrap();
/// running.recv().unwrap(); // the first task runs (it does not count)
/// seq.post_task(|| ()).unwrap();
/// seq.post_task(|| ()).unwrap();
/// let err = seq.post_task(|| ()).unwrap_err(); // two wait: full
/// assert_eq!(err.reason(), PostRefusal::QueueFull);
/// assert_eq!(seq.rejected(), 1);
/// release.send(()).unwrap();
/// ```
pub struct BoundedRunner<R> {
    shared: Arc<Shared<R>>,
}

impl<R> Clone for BoundedRunner<R> {
    fn clone(&self) -> Self {
        BoundedRunner {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<R> fmt::Debug for BoundedRunner<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedRunner")
            .field("capacity", &self.shared.capacity)
            .field("policy", &self.shared.policy)
            .field("len", &self.shared.state.lock().queue.len())
            .finish_non_exhaustive()
    }
}

impl<R> BoundedRunner<R>
where
    R: PostTask + Send + Sync + 'static,
{
    /// Bounds `inner`'s queue (use the `bounded` methods of the runners).
    pub(crate) fn new(inner: R, capacity: usize, policy: QueuePolicy) -> Self {
        assert!(
            capacity > 0,
            "a bounded runner needs a capacity of at least 1"
        );
        BoundedRunner {
            shared: Arc::new(Shared {
                inner,
                capacity,
                low_water: capacity - capacity.div_ceil(4),
                policy,
                state: Mutex::new(State::default()),
                room: Condvar::new(),
                rejected: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
            }),
        }
    }

    /// Sets what happens to a task dropped to make room ([`QueuePolicy::DropOldest`]): the
    /// callback gets it, on the posting thread, after the post. Without one, the task is
    /// dropped (a task with a handle ends as not run). Applies to every clone.
    ///
    /// See [`DroppedTask::run`] for an example.
    #[must_use]
    pub fn on_dropped(self, callback: impl Fn(DroppedTask) + Send + Sync + 'static) -> Self {
        self.shared.state.lock().on_dropped = Some(std::sync::Arc::new(callback));
        self
    }

    /// The runner beneath.
    ///
    /// ```
    /// use taskrunner::{QueuePolicy, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let bounded = seq.clone().bounded(4, QueuePolicy::Block);
    /// assert!(bounded.inner().is_same_sequence(&seq));
    /// ```
    pub fn inner(&self) -> &R {
        &self.shared.inner
    }

    /// The capacity: how many tasks may wait.
    ///
    /// ```
    /// # use taskrunner::{QueuePolicy, TaskTraits, ThreadPool};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let r = pool.create_sequenced_task_runner(TaskTraits::default()).bounded(16, QueuePolicy::Reject);
    /// assert_eq!(r.capacity(), 16);
    /// assert_eq!(r.policy(), QueuePolicy::Reject);
    /// ```
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// The policy for a full queue.
    ///
    /// See [`capacity`](Self::capacity) for an example.
    pub fn policy(&self) -> QueuePolicy {
        self.shared.policy
    }

    /// Tasks waiting now (not counting the one running).
    ///
    /// ```
    /// # use taskrunner::{QueuePolicy, TaskTraits, ThreadPool};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let r = pool.create_sequenced_task_runner(TaskTraits::default()).bounded(16, QueuePolicy::Reject);
    /// assert_eq!(r.len(), 0);
    /// assert!(r.is_empty());
    /// ```
    pub fn len(&self) -> usize {
        self.shared.state.lock().queue.len()
    }

    /// `true` if no task waits.
    ///
    /// See [`len`](Self::len) for an example.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Posts refused because the queue was full ([`QueuePolicy::Reject`]).
    ///
    /// See [`BoundedRunner`] for an example.
    pub fn rejected(&self) -> u64 {
        self.shared.rejected.load(Ordering::Relaxed)
    }

    /// Tasks dropped to make room ([`QueuePolicy::DropOldest`]).
    ///
    /// ```
    /// use taskrunner::{PostTask, QueuePolicy, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default()).bounded(1, QueuePolicy::DropOldest);
    /// let (release, hold) = std::sync::mpsc::channel::<()>();
    /// let (started, running) = std::sync::mpsc::channel();
    /// seq.post_task(move || { started.send(()).unwrap(); hold.recv().unwrap(); }).unwrap();
    /// running.recv().unwrap();
    /// let first = seq.post_task_with_result(|| 1).unwrap();
    /// let second = seq.post_task_with_result(|| 2).unwrap(); // the first makes room
    /// release.send(()).unwrap();
    /// assert!(first.join().unwrap_err().is_not_run());
    /// assert_eq!(second.join().unwrap(), 2);
    /// assert_eq!(seq.dropped(), 1);
    /// ```
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Queues `f`, applying the policy when full.
    fn push<F>(&self, f: F, posted_from: &'static Location<'static>) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        let sh = &*self.shared;
        let mut s = sh.state.lock();
        let mut evicted = None;
        if s.queue.len() >= sh.capacity {
            match sh.policy {
                QueuePolicy::Reject => {
                    drop(s);
                    sh.rejected.fetch_add(1, Ordering::Relaxed);
                    return Err(PostError::new(PostRefusal::QueueFull, f));
                }
                QueuePolicy::DropOldest => {
                    evicted = s.queue.pop_front();
                    sh.dropped.fetch_add(1, Ordering::Relaxed);
                }
                QueuePolicy::Block => {
                    if !self.is_own_task() {
                        crate::engine::check_can_block("a post to a full bounded runner");
                        s.waiters += 1;
                        while s.queue.len() >= sh.capacity {
                            blocking_unchecked(|| sh.room.wait(&mut s));
                        }
                        s.waiters -= 1;
                    }
                }
            }
        }
        let on_dropped = evicted.as_ref().and(s.on_dropped.clone());
        let result = if s.pumping {
            s.queue.push_back(Queued {
                f: Box::new(f),
                posted_from,
            });
            drop(s);
            Ok(())
        } else {
            // This post starts a pump: keep the closure where a refusal can take it back.
            s.pumping = true;
            let (mine, theirs) = Slot::new(f);
            s.queue.push_back(Queued {
                f: Box::new(move || {
                    if let Some(f) = theirs.take() {
                        f();
                    }
                }),
                posted_from,
            });
            drop(s);
            match self.post_pump(posted_from) {
                Ok(()) => Ok(()),
                // The refused pump abandoned the queue; our closure is still in its slot,
                // unless a post under `DropOldest` evicted it meanwhile and its callback ran it.
                Err(reason) => match mine.take() {
                    Some(f) => Err(PostError::new(reason, f)),
                    None => Ok(()),
                },
            }
        };
        if let Some(old) = evicted {
            let task = DroppedTask {
                f: old.f,
                posted_from: old.posted_from,
            };
            match on_dropped {
                Some(cb) => cb(task),
                None => drop_quietly(task),
            }
        }
        result
    }

    /// `true` if the calling thread runs a task of this runner's sequence.
    fn is_own_task(&self) -> bool {
        self.shared
            .inner
            .sequence_token()
            .is_some_and(|t| crate::engine::current_token() == t)
    }

    /// Posts a pump to the runner beneath. A pump refused, or dropped unrun later (shutdown,
    /// a poisoned or closed sequence), abandons the queue as it is dropped.
    fn post_pump(&self, posted_from: &'static Location<'static>) -> Result<(), PostRefusal> {
        let pump = Pump(Some(self.clone()));
        self.shared
            .inner
            .post_task_from(move || pump.run(), posted_from)
            .map_err(|e| e.reason())
    }

    /// Nothing will take the queue any more (a pump was refused or dropped unrun): drops every
    /// queued task, clears `pumping`, wakes every blocked poster.
    fn abandon(&self) {
        let sh = &*self.shared;
        let mut s = sh.state.lock();
        s.pumping = false;
        let all: Vec<Queued> = s.queue.drain(..).collect();
        drop(s);
        sh.room.notify_all();
        crate::base::unwind::drop_each_quietly(all);
    }

    /// One turn on the sequence: take the oldest task, post the next pump if more wait, run
    /// the task (a panic is reported like the task's own, with where it was posted from).
    fn pump(&self) {
        let sh = &*self.shared;
        let mut s = sh.state.lock();
        let Some(task) = s.queue.pop_front() else {
            s.pumping = false;
            return;
        };
        let more = !s.queue.is_empty();
        s.pumping = more;
        // Blocked posters are woken once a quarter of the queue is free (all of it for tiny
        // queues), not for every slot: one wake-up lets several of them in.
        let wake = s.waiters > 0 && s.queue.len() <= sh.low_water;
        drop(s);
        if wake {
            sh.room.notify_all();
        }
        if more {
            // Refused: the pump's guard abandoned the queue.
            let _ = self.post_pump(task.posted_from);
        }
        let posted_from = task.posted_from;
        if let Err(p) = catch(task.f) {
            report_task_panic(p.message(), posted_from);
        }
    }
}

/// A posted pump; dropped without running, it abandons the queue.
struct Pump<R: PostTask + Send + Sync + 'static>(Option<BoundedRunner<R>>);

impl<R: PostTask + Send + Sync + 'static> Pump<R> {
    fn run(mut self) {
        let runner = self.0.take().expect("a pump runs once");
        runner.pump();
    }
}

impl<R: PostTask + Send + Sync + 'static> Drop for Pump<R> {
    fn drop(&mut self) {
        if let Some(runner) = self.0.take() {
            runner.abandon();
        }
    }
}

impl<R> PostTask for BoundedRunner<R>
where
    R: PostTask + Send + Sync + 'static,
{
    #[track_caller]
    fn post_task<F>(&self, f: F) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.push(f, Location::caller())
    }

    #[track_caller]
    fn post_delayed_task<F>(&self, delay: Duration, f: F) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.post_delayed_task_from(delay, f, Location::caller())
    }

    fn now(&self) -> Instant {
        self.shared.inner.now()
    }

    fn max_concurrency(&self) -> usize {
        self.shared.inner.max_concurrency()
    }

    fn post_task_from<F>(
        &self,
        f: F,
        posted_from: &'static Location<'static>,
    ) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.push(f, posted_from)
    }

    fn post_delayed_task_from<F>(
        &self,
        delay: Duration,
        f: F,
        posted_from: &'static Location<'static>,
    ) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        if delay.is_zero() {
            return self.push(f, posted_from);
        }
        // When due, it joins the queue (whatever the room), from the delay thread: it must
        // not wait behind the tasks of the sequence it is meant to join.
        let me = self.clone();
        let (slot, theirs) = Slot::new(f);
        let due = move || {
            if let Some(f) = theirs.take() {
                me.push_due(f, posted_from);
            }
        };
        let refused = match self.shared.inner.pool_link() {
            Some(link) => crate::engine::Engine::add_timer_callback(
                &link.0,
                delay,
                Box::new(due),
                posted_from,
            )
            .is_none()
            .then_some(PostRefusal::ShutdownStarted),
            None => self
                .shared
                .inner
                .post_delayed_task_from(delay, due, posted_from)
                .err()
                .map(|e| e.reason()),
        };
        match refused {
            None => Ok(()),
            Some(reason) => Err(PostError::new(
                reason,
                slot.take().expect("a refused task never ran"),
            )),
        }
    }

    fn sequence_token(&self) -> Option<u64> {
        self.shared.inner.sequence_token()
    }

    fn pool_link(&self) -> Option<PoolLink> {
        self.shared.inner.pool_link()
    }
}

impl<R> BoundedRunner<R>
where
    R: PostTask + Send + Sync + 'static,
{
    /// A delayed task that is due joins the queue without the policy (it runs on the sequence
    /// beneath, so it can neither wait nor be handed back).
    fn push_due<F>(&self, f: F, posted_from: &'static Location<'static>)
    where
        F: FnOnce() + Send + 'static,
    {
        let sh = &*self.shared;
        let mut s = sh.state.lock();
        let start_pump = !s.pumping;
        s.pumping = true;
        s.queue.push_back(Queued {
            f: Box::new(f),
            posted_from,
        });
        drop(s);
        if start_pump {
            let _ = self.post_pump(posted_from);
        }
    }
}
