//! Scopes: tasks that may borrow from the caller's stack, all joined before the scope returns
//! (the shape of `std::thread::scope` and `rayon::scope`, on this crate's pool and runners).
//!
//! # Protocol
//!
//! A scope owns a [`ScopeState`]: a count of *outstanding* tasks and the first panic payload.
//! Posting a task increments the count **before** the task leaves the poster, and each posted
//! task is wrapped in an [`ErasedTask`] whose last field, [`Done`], decrements it in its `Drop`.
//! The task's closure is dropped before `Done` is (field order; drop glue keeps dropping the
//! remaining fields even if one destructor panics), so the count reaches zero only once every
//! closure, run or not, is gone:
//!
//! | how a task ends | where `Done` drops |
//! |---|---|
//! | it ran (also if it panicked: the panic is caught and recorded) | on the worker, after the closure |
//! | the runner refused the post | in [`Scope`]'s post method; the closure itself never left the poster's typed slot ([`JobSlot`]) and is handed back |
//! | accepted, then discarded (shutdown, a pool winding down) | wherever the runner drops it |
//!
//! [`run_scope`] runs the body under `catch_unwind`, then waits for the count to reach zero
//! (with nothing that can unwind in between: an unwind there aborts), and only then returns or
//! resumes a panic. That wait is what makes the one lifetime erasure ([`erase_lifetime`])
//! sound.
//!
//! # Waiting inside a pool worker
//!
//! A scope opened inside a pool task blocks that worker until its tasks end. So that a
//! one-worker pool cannot deadlock, the wait raises the pool's capacity by one for its
//! duration, exactly like [`blocking`](crate::blocking) does (Chromium's
//! `ScopedBlockingCall`), but without `blocking`'s may-block debug check: a scope waits for
//! its own tasks, which is not the open-ended blocking that check is about
//! ([`wait_compensated`]). The groups ([`WaitGroup`](crate::sync::WaitGroup),
//! [`TaskGroup`](crate::fork_join::TaskGroup), [`SingleFlight`](crate::sync::SingleFlight)) wait the same way.
//!
//! A scope opened by a task of a sequence cannot post to that same sequence: the task would be
//! queued behind the scope's owner, which waits for it. [`Scope`]'s post methods refuse that
//! at once, with a panic that says so, instead of hanging.
//!
//! # Panics
//!
//! Payloads are kept as [`Payload`]s, whose destructor never unwinds. A task's panic is
//! reported like a plain task's (pool panic handler, runner's panic policy) with the location
//! of the post, then recorded for the scope to resume.

#![allow(unsafe_code)]

use std::fmt;
use std::marker::PhantomData;
use std::panic::{resume_unwind, Location};
use std::sync::Arc;

use crate::base::error::PostError;
use crate::base::shim::{Condvar, Mutex};
use crate::base::unwind::{catch, drop_quietly, Payload};
use crate::engine::{blocking_unchecked, report_task_panic};

use crate::handle::TaskError;
use crate::pool::ThreadPool;
use crate::runner::PostTask;

// ---- waiting on a worker ------------------------------------------------------------------

// ---- the shared state -----------------------------------------------------------------------

/// What a scope's tasks report to it.
struct Counts {
    /// Tasks posted and not yet finished or dropped.
    outstanding: usize,
    /// The first panic of a task (not joined through a [`ScopedHandle`]), by completion time.
    panic: Option<Payload>,
}

/// The state a scope shares with its tasks (`'static`: tasks hold it through [`Done`]).
struct ScopeState {
    counts: Mutex<Counts>,
    cv: Condvar,
}

impl ScopeState {
    fn new() -> Self {
        ScopeState {
            counts: Mutex::new(Counts {
                outstanding: 0,
                panic: None,
            }),
            cv: Condvar::new(),
        }
    }

    fn enter(&self) {
        self.counts.lock().outstanding += 1;
    }

    fn leave(&self) {
        let mut c = self.counts.lock();
        c.outstanding -= 1;
        if c.outstanding == 0 {
            self.cv.notify_all();
        }
    }

    /// Keeps the first payload; later ones are dropped (outside the lock).
    fn record_panic(&self, p: Payload) {
        let later = {
            let mut c = self.counts.lock();
            if c.panic.is_none() {
                c.panic = Some(p);
                None
            } else {
                Some(p)
            }
        };
        drop(later);
    }

    fn outstanding(&self) -> usize {
        self.counts.lock().outstanding
    }

    /// Blocks until every task posted in the scope has finished or been dropped. Never
    /// unwinds (the lock and the condvar do not panic).
    fn wait_all(&self) {
        if self.outstanding() == 0 {
            return;
        }
        blocking_unchecked(|| {
            let mut c = self.counts.lock();
            while c.outstanding > 0 {
                self.cv.wait(&mut c);
            }
        });
    }
}

/// Decrements the scope's count when dropped: the last field of every posted task.
struct Done(Arc<ScopeState>);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.leave();
    }
}

// ---- jobs and the erasure -----------------------------------------------------------------

/// A scoped job, run at most once.
trait RunOnce: Send {
    fn run_once(self, scope: &ScopeState, posted_from: &'static Location<'static>);
}

/// The object-safe side of a job: the job sits in a slot so that a refused post can take it
/// back out (the poster keeps a typed `Arc` to the same slot).
trait Job: Send + Sync {
    fn run(&self, scope: &ScopeState, posted_from: &'static Location<'static>);
}

struct JobSlot<J>(Mutex<Option<J>>);

impl<J: RunOnce> Job for JobSlot<J> {
    fn run(&self, scope: &ScopeState, posted_from: &'static Location<'static>) {
        // Not `if let Some(j) = self.0.lock().take()`: the guard would live through the run.
        let job = self.0.lock().take();
        if let Some(job) = job {
            // Whatever unwinds out of the job (its closure, or dropping a detached result)
            // is reported like a plain task's panic, then the scope's to resume.
            if let Err(p) = catch(|| job.run_once(scope, posted_from)) {
                report_task_panic(p.message(), posted_from);
                scope.record_panic(p);
            }
        }
    }
}

/// What is actually posted: `'static`, so any runner accepts it.
struct ErasedTask {
    /// Dropped first (declaration order), so the job's closure is gone before `done` counts
    /// the task as finished.
    job: Arc<dyn Job + 'static>,
    /// Where the task was posted (for the pool's panic handler).
    posted_from: &'static Location<'static>,
    done: Done,
}

impl ErasedTask {
    fn run(self) {
        self.job.run(&self.done.0, self.posted_from);
        // `self` drops here: `job`, then `done`.
    }
}

/// Erases the lifetime of a scoped job so that it can be posted to a runner that takes only
/// `'static` closures.
///
/// # Safety
///
/// The caller must have counted the job in its scope (`ScopeState::enter`) and must put the
/// returned `Arc` into an [`ErasedTask`] whose `done` decrements that count, so that the scope
/// cannot return before this `Arc` (and with it every `'scope` borrow inside the job) is
/// dropped.
unsafe fn erase_lifetime<'scope>(job: Arc<dyn Job + 'scope>) -> Arc<dyn Job + 'static> {
    // SAFETY: the two types differ only in the trait object's lifetime bound, so they have the
    // same layout. Nothing can use the job after `'scope` ends:
    // * the only `'static` copy of this `Arc` is the `job` field of one `ErasedTask`, which is
    //   dropped (job first, then `done`) when the task has run, when a runner refuses it (the
    //   poster drops the `PostError` before handing the closure back), or when a runner
    //   discards it unrun, on whatever thread;
    // * `run_scope` does not return, nor resume a panic, before the count of such tasks is
    //   zero: the body runs under `catch_unwind`, task panics are caught inside `JobSlot::run`,
    //   and the wait between the body and the return cannot unwind (an abort guard covers it);
    // * handles to results (`ScopedHandle<'scope, T>`) and `&'scope Scope` are bounded by
    //   `'scope`, which ends inside `run_scope`, before it returns.
    // A job that is never dropped (a user runner that leaks it) makes the scope wait forever,
    // which is a hang, not a dangling borrow.
    unsafe { std::mem::transmute::<Arc<dyn Job + 'scope>, Arc<dyn Job + 'static>>(job) }
}

/// A plain scoped task.
struct Plain<F>(F);

impl<F: FnOnce() + Send> RunOnce for Plain<F> {
    fn run_once(self, _scope: &ScopeState, _posted_from: &'static Location<'static>) {
        (self.0)();
    }
}

/// A scoped task with a result slot.
struct WithResult<F, T> {
    f: F,
    slot: SlotWriter<T>,
}

impl<F: FnOnce() -> T + Send, T: Send> RunOnce for WithResult<F, T> {
    fn run_once(self, scope: &ScopeState, posted_from: &'static Location<'static>) {
        let WithResult { f, slot } = self;
        let result = catch(f);
        if let Err(p) = &result {
            // Reported before the handle can see it, as the worker does for a plain task.
            report_task_panic(p.message(), posted_from);
        }
        slot.complete(result, scope);
    }
}

// ---- result slots -------------------------------------------------------------------------

enum SlotState<T> {
    Pending,
    Done(Result<T, Payload>),
    /// The task was dropped without running.
    NotRun,
    /// The handle was dropped before the task ended: a panic goes to the scope.
    Detached,
    /// The handle took the result (or handed a panic to the scope).
    Taken,
}

struct Slot<T> {
    state: Mutex<SlotState<T>>,
    cv: Condvar,
}

/// The task's side of a slot; marks it not-run if dropped unrun.
struct SlotWriter<T> {
    slot: Arc<Slot<T>>,
    written: bool,
}

impl<T> SlotWriter<T> {
    fn complete(mut self, result: Result<T, Payload>, scope: &ScopeState) {
        self.written = true;
        let mut s = self.slot.state.lock();
        match *s {
            SlotState::Pending => {
                *s = SlotState::Done(result);
                drop(s);
                self.slot.cv.notify_all();
            }
            _ => {
                drop(s);
                // Detached: nobody will join. A panic is the scope's; a value is dropped here,
                // inside the task, before the scope's count moves.
                if let Err(p) = result {
                    scope.record_panic(p);
                }
            }
        }
    }
}

impl<T> Drop for SlotWriter<T> {
    fn drop(&mut self) {
        if self.written {
            return;
        }
        let mut s = self.slot.state.lock();
        if matches!(*s, SlotState::Pending) {
            *s = SlotState::NotRun;
        }
        drop(s);
        self.slot.cv.notify_all();
    }
}

// ---- the public API ------------------------------------------------------------------------

/// A scope: posts tasks that may borrow anything that outlives the scope (`'env`), and joins
/// them all before [`ThreadPool::scope`] (or [`scope`]) returns. Handed to the scope's body;
/// tasks may capture `&Scope` to post more tasks into the same scope.
///
/// * **Joining.** The scope returns only once every task posted in it has finished **or been
///   dropped unrun** (refused, or discarded by a runner at shutdown), also when the body
///   panics.
/// * **Panics.** A panicking task does not stop the others. Once all are done, the scope
///   resumes a panic on the caller's thread: the body's own panic if it panicked, else the
///   first task panic by completion time (its original payload, with
///   [`resume_unwind`](std::panic::resume_unwind), as `rayon::scope` does; `std::thread::scope`
///   raises a generic panic instead). A panic taken through [`ScopedHandle::join`] counts as
///   handled and is not resumed. Like any task's panic, a scoped task's panic is also reported
///   to the pool's panic handler (with the location of the post) and the runner's
///   [`PanicPolicy`](crate::PanicPolicy) applies to it: `Poison` poisons the sequence (its
///   queued tasks are dropped, and the scope still returns), `Abort` aborts the process.
/// * **Refusals.** Posting returns `Err(PostError)` holding the closure, like every post in
///   this crate (still typed with the scope's lifetime: run it, drop it, or post it again);
///   it is no longer counted, so nothing waits for it.
/// * **Tasks dropped unrun** (the pool shut down and skipped them) are simply not run: the
///   scope still returns; a [`ScopedHandle`] for one reports
///   [`is_not_run`](TaskError::is_not_run).
/// * **Waiting inside a task.** The scope's owner blocks until its tasks end; when it is a pool
///   worker the pool runs one more worker meanwhile, so a one-worker pool is fine.
/// * **Posting to the owner's own sequence panics.** A scope opened inside a task of a
///   sequence (or on a single-thread runner's thread) cannot run a task on that same sequence:
///   the task would be queued behind the owner, which waits for it, so the scope could never
///   return. [`post_task_on`](Self::post_task_on) and
///   [`post_task_with_result_on`](Self::post_task_with_result_on) to that sequence panic at
///   once instead (the scope then resumes that panic after its other tasks ended). Post such
///   work to another runner, or, instead of a scope, reply to the sequence
///   (`post_task_and_reply_with_result`, [`TaskHandle::then`](crate::TaskHandle::then)) or
///   `.await` a handle in a future.
///
/// ```
/// use taskrunner::{PostTask, ThreadPool};
/// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
/// let mut data = vec![1, 2, 3, 4];
/// let total = std::sync::atomic::AtomicI32::new(0);
/// pool.scope(|s| {
///     let (left, right) = data.split_at_mut(2);
///     s.post_task(|| left.iter_mut().for_each(|x| *x *= 10)).unwrap();
///     s.post_task(|| right.iter_mut().for_each(|x| *x *= 10)).unwrap();
///     s.post_task(|| { total.fetch_add(1, std::sync::atomic::Ordering::SeqCst); }).unwrap();
/// });
/// assert_eq!(data, [10, 20, 30, 40]); // every task has finished: the borrows are over
/// assert_eq!(total.into_inner(), 1);
/// ```
pub struct Scope<'scope, 'env: 'scope> {
    state: Arc<ScopeState>,
    pool: ThreadPool,
    /// The sequence of the task that opened the scope, if it is a sequenced task.
    owner_seq: Option<u64>,
    // Invariant in both lifetimes, as `std::thread::Scope`.
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

/// The result of a task posted with [`Scope::post_task_with_result`]; joined inside the scope.
///
/// Dropping it without joining is fine: the scope still waits for the task, and a panic in it
/// is then resumed by the scope.
///
/// ```
/// # use taskrunner::PostTask;
/// let pool = taskrunner::ThreadPool::builder().max_workers(2).build().unwrap();
/// let words = ["a", "bb", "ccc"];
/// let total = pool.scope(|s| {
///     let handles: Vec<_> = words
///         .iter()
///         .map(|w| s.post_task_with_result(move || w.len()).unwrap())
///         .collect();
///     handles.into_iter().map(|h| h.join().unwrap()).sum::<usize>()
/// });
/// assert_eq!(total, 6);
/// ```
pub struct ScopedHandle<'scope, T> {
    slot: Arc<Slot<T>>,
    scope: Arc<ScopeState>,
    _scope: PhantomData<&'scope ()>,
}

impl<'scope, 'env> Scope<'scope, 'env> {
    /// Posts `f` to the scope's pool (default traits: it may run in parallel with everything
    /// else). `f` may borrow anything that outlives the scope. See [`Scope`] for the rules.
    ///
    /// ```
    /// # use taskrunner::PostTask;
    /// let pool = taskrunner::ThreadPool::builder().max_workers(2).build().unwrap();
    /// let mut hits = 0;
    /// pool.scope(|s| {
    ///     s.post_task(|| hits += 1).unwrap();
    /// });
    /// assert_eq!(hits, 1);
    /// ```
    #[track_caller]
    pub fn post_task<F>(&'scope self, f: F) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'scope,
    {
        self.post(&self.pool, Plain(f)).map_err(|e| e.map(|p| p.0))
    }

    /// Posts `f` to `runner` (any [`PostTask`]: a sequence keeps scoped tasks in order, a
    /// runner made with other [`TaskTraits`](crate::TaskTraits) gives them those traits), as a
    /// task of this scope. The runner may belong to another pool.
    ///
    /// # Panics
    ///
    /// If `runner` posts to the sequence of the task that opened the scope (see [`Scope`]):
    /// the scope would wait forever for a task queued behind itself.
    ///
    /// ```
    /// use taskrunner::{ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let log = std::sync::Mutex::new(Vec::new());
    /// pool.scope(|s| {
    ///     for i in 0..5 {
    ///         let log = &log;
    ///         s.post_task_on(&seq, move || log.lock().unwrap().push(i)).unwrap();
    ///     }
    /// });
    /// assert_eq!(log.into_inner().unwrap(), [0, 1, 2, 3, 4]);
    /// ```
    #[track_caller]
    pub fn post_task_on<R, F>(&'scope self, runner: &R, f: F) -> Result<(), PostError<F>>
    where
        R: PostTask + ?Sized,
        F: FnOnce() + Send + 'scope,
    {
        self.post(runner, Plain(f)).map_err(|e| e.map(|p| p.0))
    }

    /// Posts `f` to the scope's pool and returns a handle to join its result inside the scope.
    ///
    /// ```
    /// # use taskrunner::PostTask;
    /// let pool = taskrunner::ThreadPool::builder().max_workers(2).build().unwrap();
    /// let text = String::from("borrowed");
    /// let n = pool.scope(|s| s.post_task_with_result(|| text.len()).unwrap().join().unwrap());
    /// assert_eq!(n, 8);
    /// ```
    #[track_caller]
    pub fn post_task_with_result<F, T>(
        &'scope self,
        f: F,
    ) -> Result<ScopedHandle<'scope, T>, PostError<F>>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        self.post_task_with_result_on(&self.pool, f)
    }

    /// [`post_task_with_result`](Self::post_task_with_result) on a given runner. Panics, as
    /// [`post_task_on`](Self::post_task_on) does, if `runner` is the sequence of the task that
    /// opened the scope.
    ///
    /// ```
    /// use taskrunner::{ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let xs = [3, 4];
    /// let sum = pool.scope(|s| s.post_task_with_result_on(&seq, || xs.iter().sum::<i32>()).unwrap().join().unwrap());
    /// assert_eq!(sum, 7);
    /// ```
    #[track_caller]
    pub fn post_task_with_result_on<R, F, T>(
        &'scope self,
        runner: &R,
        f: F,
    ) -> Result<ScopedHandle<'scope, T>, PostError<F>>
    where
        R: PostTask + ?Sized,
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        let slot = Arc::new(Slot {
            state: Mutex::new(SlotState::Pending),
            cv: Condvar::new(),
        });
        let job = WithResult {
            f,
            slot: SlotWriter {
                slot: slot.clone(),
                written: false,
            },
        };
        // A refused job hands `f` back; its writer marks a slot nobody will see.
        self.post(runner, job).map_err(|e| e.map(|w| w.f))?;
        Ok(ScopedHandle {
            slot,
            scope: self.state.clone(),
            _scope: PhantomData,
        })
    }

    /// How many tasks posted in this scope have not finished (or been dropped) yet.
    ///
    /// ```
    /// let pool = taskrunner::ThreadPool::builder().max_workers(1).build().unwrap();
    /// pool.scope(|s| assert_eq!(s.outstanding(), 0));
    /// ```
    pub fn outstanding(&self) -> usize {
        self.state.outstanding()
    }

    /// Counts the job, erases its lifetime and posts it; on refusal the job comes back.
    #[track_caller]
    fn post<R, J>(&'scope self, runner: &R, job: J) -> Result<(), PostError<J>>
    where
        R: PostTask + ?Sized,
        J: RunOnce + 'scope,
    {
        if let (Some(owner), Some(target)) = (self.owner_seq, runner.sequence_token()) {
            if owner == target {
                // Checked before anything is counted: nothing of this post is left behind.
                panic!(
                    "a scoped task posted to the sequence of the task that opened the scope would never \
                     run: it is queued behind that task, which waits at the end of the scope for it, so \
                     the scope would wait forever. Post it to another runner (a parallel runner, or \
                     another sequence); or, instead of a scope, reply to this sequence with \
                     post_task_and_reply_with_result or TaskHandle::then, or `.await` a handle inside a \
                     future (post_future)"
                );
            }
        }
        let posted_from = Location::caller();
        let typed: Arc<JobSlot<J>> = Arc::new(JobSlot(Mutex::new(Some(job))));
        let as_dyn: Arc<dyn Job + 'scope> = typed.clone();
        self.state.enter();
        // SAFETY: counted just above, and the erased `Arc` goes straight into an `ErasedTask`
        // whose `Done` decrements the count (see `erase_lifetime`).
        let erased = unsafe { erase_lifetime(as_dyn) };
        let task = ErasedTask {
            job: erased,
            posted_from,
            done: Done(self.state.clone()),
        };
        match runner.post_task_from(move || task.run(), posted_from) {
            Ok(()) => Ok(()),
            Err(refused) => {
                let reason = refused.reason();
                // Drops the erased copy and un-counts the task; the job is still in the slot,
                // which only `typed` (correctly typed) now reaches.
                drop(refused);
                let job = typed
                    .0
                    .lock()
                    .take()
                    .expect("a refused scoped job is handed back exactly once");
                Err(PostError::new(reason, job))
            }
        }
    }
}

impl<T> ScopedHandle<'_, T> {
    /// Waits for the task and returns its value, or why there is none: it panicked
    /// ([`is_panic`](TaskError::is_panic), with the message; the panic is then considered
    /// handled and the scope does not resume it) or it was dropped unrun
    /// ([`is_not_run`](TaskError::is_not_run)). On a pool worker the pool runs one more
    /// worker while this waits.
    ///
    /// ```
    /// # use taskrunner::PostTask;
    /// let pool = taskrunner::ThreadPool::builder().max_workers(1).build().unwrap();
    /// pool.scope(|s| {
    ///     let h = s.post_task_with_result(|| -> u8 { panic!("bad") }).unwrap();
    ///     assert_eq!(h.join().unwrap_err().panic_message(), Some("bad"));
    /// }); // the joined panic is not resumed here
    /// ```
    pub fn join(self) -> Result<T, TaskError> {
        if !self.is_finished() {
            blocking_unchecked(|| {
                let mut s = self.slot.state.lock();
                while matches!(*s, SlotState::Pending) {
                    self.slot.cv.wait(&mut s);
                }
            });
        }
        let taken = std::mem::replace(&mut *self.slot.state.lock(), SlotState::Taken);
        match taken {
            SlotState::Done(Ok(v)) => Ok(v),
            SlotState::Done(Err(p)) => Err(TaskError::from_panic(p)),
            SlotState::NotRun => Err(TaskError::not_run()),
            SlotState::Pending | SlotState::Detached | SlotState::Taken => {
                unreachable!("a scoped handle is joined once, after its task ended")
            }
        }
    }

    /// `true` once the task has ended (ran, panicked, or was dropped unrun). Never blocks.
    ///
    /// ```
    /// # use taskrunner::PostTask;
    /// let pool = taskrunner::ThreadPool::builder().max_workers(1).build().unwrap();
    /// pool.scope(|s| {
    ///     let h = s.post_task_with_result(|| 1).unwrap();
    ///     while !h.is_finished() { std::thread::yield_now(); }
    ///     assert_eq!(h.join().unwrap(), 1);
    /// });
    /// ```
    pub fn is_finished(&self) -> bool {
        !matches!(*self.slot.state.lock(), SlotState::Pending)
    }
}

impl<T> Drop for ScopedHandle<'_, T> {
    fn drop(&mut self) {
        let mut s = self.slot.state.lock();
        match std::mem::replace(&mut *s, SlotState::Taken) {
            SlotState::Pending => *s = SlotState::Detached,
            SlotState::Done(Err(p)) => {
                drop(s);
                self.scope.record_panic(p);
            }
            SlotState::Done(Ok(value)) => {
                drop(s);
                drop_quietly(value); // nobody joined it
            }
            SlotState::NotRun | SlotState::Detached | SlotState::Taken => {}
        }
    }
}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("outstanding", &self.outstanding())
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for ScopedHandle<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Aborts if the wait between a scope's body and its return unwinds: tasks may still borrow
/// the caller's stack, so unwinding past it would leave them dangling.
struct AbortIfUnwinding;

impl Drop for AbortIfUnwinding {
    fn drop(&mut self) {
        eprintln!(
            "taskrunner: a scope's join unwound while tasks may still borrow its stack; aborting"
        );
        std::process::abort();
    }
}

fn run_scope<'env, F, T>(pool: ThreadPool, f: F) -> T
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
{
    #[cfg(feature = "test-util")]
    if pool.pool_ref().inner().group.is_manual() && crate::engine::drives_test_env() {
        panic!(
            "a scope on a seeded single-thread TestEnvironment's pool, opened on the thread that drives it, \
             would block forever: only this thread runs its tasks"
        );
    }
    let scope = Scope {
        state: Arc::new(ScopeState::new()),
        pool,
        owner_seq: crate::engine::running_sequence_ref(|s| s.token),
        scope: PhantomData,
        env: PhantomData,
    };
    let body = catch(|| f(&scope));
    let guard = AbortIfUnwinding;
    scope.state.wait_all();
    std::mem::forget(guard);
    let task_panic = scope.state.counts.lock().panic.take();
    match (body, task_panic) {
        (Err(body_panic), task_panic) => {
            drop(task_panic); // quietly (a `Payload`), before unwinding
            resume_unwind(body_panic.into_inner())
        }
        (Ok(value), Some(task_panic)) => {
            drop_quietly(value);
            resume_unwind(task_panic.into_inner())
        }
        (Ok(value), None) => value,
    }
}

impl ThreadPool {
    /// Opens a [`Scope`] on this pool: `f` posts tasks that may borrow from the caller's stack,
    /// and `scope` returns `f`'s value once all of them have finished (or were dropped unrun).
    /// If `f` or a task panicked, the panic is resumed after that (see [`Scope`]).
    ///
    /// ```
    /// # use taskrunner::PostTask;
    /// let pool = taskrunner::ThreadPool::builder().max_workers(2).build().unwrap();
    /// let mut chunks = [[1u32; 4]; 3];
    /// pool.scope(|s| {
    ///     for c in chunks.iter_mut() {
    ///         s.post_task(move || c.iter_mut().for_each(|x| *x += 1)).unwrap();
    ///     }
    /// });
    /// assert!(chunks.iter().flatten().all(|&x| x == 2));
    /// ```
    pub fn scope<'env, F, T>(&self, f: F) -> T
    where
        F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
    {
        run_scope(self.clone(), f)
    }
}

/// [`ThreadPool::scope`] on the global pool (the pool the crate's free functions use).
///
/// ```
/// # use taskrunner::PostTask;
/// let mut v = vec![0; 8];
/// taskrunner::fork_join::scope(|s| {
///     for (i, x) in v.iter_mut().enumerate() {
///         s.post_task(move || *x = i * i).unwrap();
///     }
/// });
/// assert_eq!(v[7], 49);
/// ```
pub fn scope<'env, F, T>(f: F) -> T
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
{
    let pool: ThreadPool = (*crate::pool::global::current()).clone();
    run_scope(pool, f)
}

#[cfg(all(test, not(loom)))]
mod tests {
    //! Small enough for Miri: `cargo +nightly miri test --lib scope::`.
    use super::*;
    use crate::base::unwind::panic_message;
    use crate::TaskTraits;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn pool(workers: usize) -> ThreadPool {
        ThreadPool::builder().max_workers(workers).build().unwrap()
    }

    #[test]
    fn tasks_borrow_the_stack_mutably_and_are_joined() {
        let pool = pool(2);
        let mut data = [1u64, 2, 3, 4];
        let shared = AtomicUsize::new(0);
        pool.scope(|s| {
            let (a, b) = data.split_at_mut(2);
            let shared = &shared;
            s.post_task(move || {
                a.iter_mut().for_each(|x| *x *= 2);
                shared.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
            s.post_task(move || {
                b.iter_mut().for_each(|x| *x *= 3);
                shared.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        });
        assert_eq!(data, [2, 4, 9, 12]);
        assert_eq!(shared.load(Ordering::SeqCst), 2);
        pool.shutdown();
    }

    #[test]
    fn a_task_panic_is_resumed_after_the_others_finished() {
        let pool = pool(2);
        let finished = AtomicUsize::new(0);
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.scope(|s| {
                s.post_task(|| panic!("scoped boom")).unwrap();
                s.post_task(|| {
                    finished.fetch_add(1, Ordering::SeqCst);
                })
                .unwrap();
            })
        }));
        let p = r.unwrap_err();
        assert_eq!(panic_message(&*p), "scoped boom");
        assert_eq!(finished.load(Ordering::SeqCst), 1);
        pool.shutdown();
    }

    #[test]
    fn refused_posts_hand_the_borrowing_closure_back() {
        let pool = pool(1);
        pool.shutdown();
        let mut hit = 0;
        pool.scope(|s| {
            let f = s.post_task(|| hit += 1).unwrap_err().into_inner();
            f(); // still ours: run it here
            assert_eq!(s.outstanding(), 0);
        });
        assert_eq!(hit, 1);
    }

    #[test]
    fn tasks_discarded_at_shutdown_release_the_scope() {
        let pool = pool(1);
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        let data = [1, 2, 3];
        let ran = AtomicUsize::new(0);
        pool.scope(|s| {
            // Occupies the only worker until shutdown has started.
            let h = s
                .post_task_with_result_on(
                    &pool.create_task_runner(
                        TaskTraits::new()
                            .shutdown_behavior(crate::ShutdownBehavior::ContinueOnShutdown),
                    ),
                    move || {
                        started_tx.send(()).unwrap();
                        release_rx.recv().unwrap();
                    },
                )
                .unwrap();
            started_rx.recv().unwrap();
            // Queued behind it; skipped by shutdown (default SkipOnShutdown), dropped unrun.
            let skipped = s
                .post_task_with_result(|| {
                    ran.fetch_add(data.len(), Ordering::SeqCst);
                })
                .unwrap();
            pool.shutdown();
            release_tx.send(()).unwrap();
            h.join().unwrap();
            assert!(skipped.join().unwrap_err().is_not_run());
        });
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_scope_inside_the_only_worker_completes() {
        let pool = pool(1);
        let p2 = pool.clone();
        let h = pool
            .post_task_with_result(TaskTraits::default(), move || {
                let mut v = [0u8; 2];
                p2.scope(|s| {
                    for x in v.iter_mut() {
                        s.post_task(move || *x = 7).unwrap();
                    }
                });
                v
            })
            .unwrap();
        assert_eq!(h.join().unwrap(), [7, 7]);
        pool.shutdown();
    }
}
