//! `SequenceBound<T>`: state that lives on one sequence and is reached only through posts.

use std::fmt;
use std::panic::Location;

use std::time::Duration;

use crate::base::error::PostError;
use crate::base::shim::{Arc, Mutex};
use crate::engine::{Engine, PostDest};
use crate::handle::TaskHandle;
use crate::runner::PostTask;
use crate::runner::SequencedTaskRunner;

/// Owns a `T` that lives on a sequence: it is constructed by a task of that sequence, used only
/// by closures posted to it, and destroyed by a task of it when the `SequenceBound` is dropped.
/// Every call runs on the sequence, one at a time and in order, so `T` needs no lock and no
/// `Sync` bound — only `Send`, to travel to the sequence once.
///
/// This is Chromium's `SequenceBound`, with the rule "never touch the object off its sequence"
/// enforced by the types: there is no way to borrow the `T` from the owner's side.
///
/// ```
/// use taskrunner::{SequenceBound, ThreadPool, TaskTraits};
/// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
/// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
/// let account = SequenceBound::new(seq, || 100_i64).unwrap();
/// account.post(|balance| *balance -= 30).unwrap();
/// let h = account.post_with_result(|balance| *balance).unwrap();
/// assert_eq!(h.join().unwrap(), 70);
/// ```
///
/// The state cannot leave its sequence: a closure cannot return a borrow of it...
///
/// ```compile_fail
/// # use taskrunner::{SequenceBound, ThreadPool, TaskTraits};
/// # let pool = ThreadPool::builder().build().unwrap();
/// # let seq = pool.create_sequenced_task_runner(TaskTraits::default());
/// let bound = SequenceBound::new(seq, || vec![1u8]).unwrap();
/// let escaped = bound.post_with_result(|v: &mut Vec<u8>| v).unwrap(); // error: borrowed data escapes
/// ```
///
/// ...nor can the owner reach into it directly:
///
/// ```compile_fail
/// # use taskrunner::{SequenceBound, ThreadPool, TaskTraits};
/// # let pool = ThreadPool::builder().build().unwrap();
/// # let seq = pool.create_sequenced_task_runner(TaskTraits::default());
/// let bound = SequenceBound::new(seq, || 5u32).unwrap();
/// let v: &u32 = &*bound; // error: SequenceBound has no Deref / accessor
/// ```
///
/// and a `T` that cannot be sent to another thread cannot be bound at all:
///
/// ```compile_fail
/// # use taskrunner::{SequenceBound, ThreadPool, TaskTraits};
/// # let pool = ThreadPool::builder().build().unwrap();
/// # let seq = pool.create_sequenced_task_runner(TaskTraits::default());
/// let bound = SequenceBound::new(seq, || std::rc::Rc::new(5)).unwrap(); // error: Rc is not Send
/// ```
pub struct SequenceBound<T: Send + 'static> {
    runner: SequencedTaskRunner,
    /// Touched only by tasks of `runner`'s sequence, which run one at a time: the lock is never
    /// contended and exists only because safe Rust needs *some* `Sync` cell to share the slot
    /// with those tasks.
    slot: Arc<Mutex<Option<T>>>,
}

impl<T: Send + 'static> SequenceBound<T> {
    /// Constructs the state on `runner`'s sequence by posting `make`. Refused (closure handed
    /// back) like any post.
    ///
    /// ```
    /// # use taskrunner::{SequenceBound, ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let made_on = SequenceBound::new(seq.clone(), String::new).unwrap();
    /// assert!(made_on.runner().is_same_sequence(&seq));
    /// ```
    #[track_caller]
    pub fn new<F>(runner: SequencedTaskRunner, make: F) -> Result<Self, PostError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
    {
        let slot: Arc<Mutex<Option<T>>> = Arc::new(Mutex::new(None));
        let s2 = Arc::clone(&slot);
        let (pool, seq) = runner.parts();
        Engine::post_mapped(
            pool,
            PostDest::Sequence(seq),
            Duration::ZERO,
            make,
            move |make| move || *s2.lock() = Some(make()),
            Location::caller(),
        )?;
        Ok(SequenceBound { runner, slot })
    }

    /// The runner of the sequence the state lives on.
    ///
    /// See [`SequenceBound::new`] for an example.
    pub fn runner(&self) -> &SequencedTaskRunner {
        &self.runner
    }

    /// Posts `f(&mut state)` to the state's sequence.
    ///
    /// ```
    /// # use taskrunner::{SequenceBound, ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// # let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let log = SequenceBound::new(seq, Vec::<String>::new).unwrap();
    /// log.post(|l| l.push("hello".into())).unwrap();
    /// assert_eq!(log.post_with_result(|l| l.len()).unwrap().join().unwrap(), 1);
    /// ```
    #[track_caller]
    pub fn post<F>(&self, f: F) -> Result<(), PostError<F>>
    where
        F: FnOnce(&mut T) + Send + 'static,
    {
        let slot = Arc::clone(&self.slot);
        let (pool, seq) = self.runner.parts();
        Engine::post_mapped(
            pool,
            PostDest::Sequence(seq),
            Duration::ZERO,
            f,
            move |f| move || with_state(&slot, f),
            Location::caller(),
        )
    }

    /// Posts `f(&mut state)` and returns a handle to its result.
    ///
    /// ```
    /// # use taskrunner::{SequenceBound, ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// # let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let counter = SequenceBound::new(seq, || 0u32).unwrap();
    /// let h = counter.post_with_result(|c| { *c += 1; *c }).unwrap();
    /// assert_eq!(h.join().unwrap(), 1);
    /// ```
    #[track_caller]
    pub fn post_with_result<F, R>(&self, f: F) -> Result<TaskHandle<R>, PostError<F>>
    where
        F: FnOnce(&mut T) -> R + Send + 'static,
        R: Send + 'static,
    {
        let slot = Arc::clone(&self.slot);
        let (pool, seq) = self.runner.parts();
        Engine::post_mapped_with_result(
            pool,
            PostDest::Sequence(seq),
            Duration::ZERO,
            f,
            move |f| move || with_state(&slot, f),
            Location::caller(),
        )
    }

    /// Starts a call whose result is sent back to the *caller's* sequence: finish it with
    /// [`then`](AsyncCall::then). Chromium's `AsyncCall(..).Then(..)`.
    ///
    /// ```
    /// # use taskrunner::{PostTask, SequenceBound, ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let cache = SequenceBound::new(pool.create_sequenced_task_runner(TaskTraits::default()), || vec![7u8]).unwrap();
    /// let ui = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let ui2 = ui.clone();
    /// ui.post_task(move || {
    ///     cache.async_call(|c| c[0]).then(move |v| tx.send((v, ui2.runs_tasks_in_current_sequence())).unwrap()).unwrap();
    /// }).unwrap();
    /// assert_eq!(rx.recv().unwrap(), (7, true));
    /// ```
    pub fn async_call<F, R>(&self, f: F) -> AsyncCall<'_, T, F>
    where
        F: FnOnce(&mut T) -> R + Send + 'static,
        R: Send + 'static,
    {
        AsyncCall { bound: self, f }
    }
}

fn with_state<T, R>(slot: &Mutex<Option<T>>, f: impl FnOnce(&mut T) -> R) -> R {
    let mut guard = slot.lock();
    let state = guard.as_mut().expect(
        "SequenceBound state is missing: its constructor panicked (or was skipped at shutdown)",
    );
    f(state)
}

impl<T: Send + 'static> Drop for SequenceBound<T> {
    /// Posts the destruction of the state to its sequence (after every call posted before).
    /// If the sequence refuses it (shutdown), the state is dropped by whoever holds the last
    /// reference: queued calls that were skipped, or this thread. `T: Send` makes that sound.
    fn drop(&mut self) {
        let slot = Arc::clone(&self.slot);
        let _ = self.runner.post_task(move || {
            let state = slot.lock().take();
            drop(state);
        });
    }
}

impl<T: Send + 'static> fmt::Debug for SequenceBound<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SequenceBound")
            .field("runner", &self.runner)
            .finish_non_exhaustive()
    }
}

/// A call on a [`SequenceBound`] waiting for its reply; see
/// [`SequenceBound::async_call`].
#[must_use = "nothing is posted until `then` is called"]
pub struct AsyncCall<'a, T: Send + 'static, F> {
    bound: &'a SequenceBound<T>,
    f: F,
}

impl<T: Send + 'static, F> AsyncCall<'_, T, F> {
    /// Posts the call; `reply(result)` then runs on the sequence that called `then`. Refused
    /// with [`PostRefusal::NoCurrentSequence`](crate::PostRefusal::NoCurrentSequence) outside a
    /// sequenced task; the call closure is handed back on refusal.
    ///
    /// See [`SequenceBound::async_call`] for an example.
    #[track_caller]
    pub fn then<R, Rep>(self, reply: Rep) -> Result<(), PostError<F>>
    where
        F: FnOnce(&mut T) -> R + Send + 'static,
        R: Send + 'static,
        Rep: FnOnce(R) + Send + 'static,
    {
        let slot = Arc::clone(&self.bound.slot);
        let (pool, seq) = self.bound.runner.parts();
        Engine::post_and_reply(
            pool,
            PostDest::Sequence(seq),
            Duration::ZERO,
            self.f,
            move |f| move || with_state(&slot, f),
            reply,
            Location::caller(),
        )
        .map_err(|e| e.map(|(f, _reply)| f))
    }
}

impl<T: Send + 'static, F> fmt::Debug for AsyncCall<'_, T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncCall").finish_non_exhaustive()
    }
}
