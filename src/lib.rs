//! # taskrunner
//!
//! Chromium's threading-and-tasks model for Rust: a worker pool with a **priority
//! scheduler**, **sequenced task runners** (many logical sequences multiplexed on a few
//! threads, each running its tasks one at a time in posting order), and a **delay manager**.
//!
//! ```
//! use std::time::Duration;
//! use taskrunner::{PostTask, ThreadPool, TaskTraits, TaskPriority};
//!
//! let pool = ThreadPool::builder().max_workers(2).build().unwrap();
//! let ui = pool.create_sequenced_task_runner(TaskTraits::new().priority(TaskPriority::UserBlocking));
//! let (tx, rx) = std::sync::mpsc::channel();
//! let tx2 = tx.clone();
//! ui.post_task(move || tx.send("first").unwrap()).unwrap();
//! ui.post_delayed_task(Duration::from_millis(5), move || tx2.send("delayed").unwrap()).unwrap();
//! assert_eq!(rx.recv().unwrap(), "first");
//! assert_eq!(rx.recv().unwrap(), "delayed");
//! pool.shutdown();
//! ```
//!
//! ## Model
//!
//! * **Traits say what a task is** ([`TaskTraits`]): priority (`BestEffort < UserVisible <
//!   UserBlocking`), shutdown behaviour, may-block. The pool decides how to run it.
//! * **Data flow**: post → sequence → priority queue of sequences → worker → run one task →
//!   re-queue; delayed → delay manager → ripe → tail of its sequence. See `DESIGN.md`.
//! * **Guarantees**: tasks of a sequence run in posting order, never concurrently, and each
//!   sees the effects of the previous one. A panicking task is caught and reported; its worker
//!   and its sequence carry on. A refused post hands the closure back in [`PostError`].
//! * **Shutdown** follows Chromium's contract ([`ThreadPool::shutdown`], [`ShutdownBehavior`]).
//!
//! ## What the types enforce
//!
//! Chromium checks at run time that a task's bound state is safe to move to another thread;
//! here the compiler does. A closure that captures something not `Send` cannot be posted:
//!
//! ```compile_fail
//! use std::rc::Rc;
//! let pool = taskrunner::ThreadPool::builder().build().unwrap();
//! let seq = pool.create_sequenced_task_runner(Default::default());
//! let not_send = Rc::new(5);
//! seq.post_task(move || println!("{not_send}")).unwrap(); // error: `Rc<i32>` cannot be sent between threads
//! ```
//!
//! The free functions ([`post_task`], [`create_sequenced_task_runner`], ...) use the global
//! pool ([`ThreadPool::global`]); install a configured one first with
//! [`ThreadPoolBuilder::build_global`].
//!
//! ## Where things are
//!
//! The crate root holds the core: [`ThreadPool`] and its builder, [`TaskTraits`], the runners
//! ([`TaskRunner`], [`SequencedTaskRunner`], [`SingleThreadTaskRunner`],
//! [`UpdateableSequencedTaskRunner`], [`KeyedTaskRunner`], all [`PostTask`]), sequence-bound
//! state ([`SequenceBound`], [`SequenceLocal`], [`SequenceChecker`]), handles ([`TaskHandle`],
//! [`Deferred`]), what the pool reports about itself ([`PoolMetrics`]), errors and the free
//! functions. Every posting method (`post_task`, delayed,
//! with a result, with a reply, `post_future`) comes from [`PostTask`], so bring it into scope
//! with `use taskrunner::PostTask`. What is built on the core lives in modules:
//!
//! | module | what |
//! |---|---|
//! | [`time`] | clocks, one-shot and repeating timers, repetition on any runner |
//! | [`executor`] | a bounded executor: submit, map, limits, timeouts, shutdown modes |
//! | [`fork_join`] | run many tasks and join them: `invoke_all`, `scope`, `TaskGroup`, `wait`, `consume` |
//! | [`retry`] | retries with backoff on any runner |
//! | [`cancel`] | cancellation tokens and the context orchestrated tasks run with |
//! | [`sync`] | an async mutex, a semaphore, wait groups, single-flight calls |
//! | `batch` | batched I/O (feature `batch`, on by default) |
//! | `registry` | task handles by numeric id, for script hosts and FFI (feature `registry`, on by default) |
//! | `testing` | mock time and seeded deterministic runs (feature `test-util`) |
//!
//! The guides in the repository's `docs/` folder explain each part with examples that run as
//! tests: `handles-and-ownership.md`, `timers.md`, `keyed.md`, `orchestration.md`,
//! `async-and-batching.md`, `runner-policies.md`, `shutdown.md`, `waiting-panics-and-time.md`,
//! `observability.md`, `testing.md`; `DESIGN.md` describes the architecture and `docs/performance.md` the
//! measurements against rayon, tokio and threadpool.

#![warn(missing_docs)]
// `deny`, not `forbid`: two modules allow `unsafe_code` (module-level), each for one
// justified use: src/fork_join/scope.rs for the lifetime erasure scoped tasks need
// (`scope::erase_lifetime`), src/base/location_cell.rs for reading back a `&'static Location` from
// an `AtomicPtr`. Both run under miri in CI. Nothing else in the crate may use `unsafe`.
#![deny(unsafe_code)]

mod base;
#[cfg(feature = "batch")]
pub mod batch;
pub mod cancel;
mod engine;
pub mod executor;
pub mod fork_join;
mod handle;
pub mod job;
pub mod metrics;
pub mod pipeline;
mod pool;
#[cfg(feature = "registry")]
pub mod registry;
pub mod retry;
mod runner;
pub mod sync;
#[cfg(feature = "test-util")]
pub mod testing;
pub mod time;

#[cfg(all(test, loom))]
mod loom_tests;

use crate::engine::Engine;
use std::panic::Location;
use std::time::Duration;

// The core, at the root: the pool, task traits, runners, handles, errors and the free
// functions. Everything built on top lives in the modules below.
pub use base::error::{BuildError, PostError, PostRefusal};
pub use base::traits::{DelayPolicy, PanicPolicy, ShutdownBehavior, TaskPriority, TaskTraits};
pub use engine::blocking::blocking;
pub use engine::metrics::PoolMetrics;
pub use engine::worker::RunningTask;
pub use handle::{AbortHandle, SharedHandle, TaskError, TaskHandle, TaskState};
pub use pool::{Fence, ShutdownTimedOut, TaskPanic, ThreadPool, ThreadPoolBuilder};
pub use runner::bound::{AsyncCall, SequenceBound};
pub use runner::checker::SequenceChecker;
pub use runner::keyed::{create_keyed_task_runner, KeyRunner, KeyedTaskRunner};
pub use runner::local::SequenceLocal;
pub use runner::{
    BoundedRunner, Deferred, DroppedTask, PostTask, QueuePolicy, SequencedTaskRunner,
    SingleThreadTaskRunner, TaskRunner, UpdateableSequencedTaskRunner,
};

use engine::PostDest;

/// Posts a one-off parallel task to the global pool. See [`ThreadPool::post_task`].
///
/// ```
/// let (tx, rx) = std::sync::mpsc::channel();
/// taskrunner::post_task(taskrunner::TaskTraits::default(), move || tx.send(3).unwrap()).unwrap();
/// assert_eq!(rx.recv().unwrap(), 3);
/// ```
#[track_caller]
pub fn post_task<F>(traits: TaskTraits, f: F) -> Result<(), PostError<F>>
where
    F: FnOnce() + Send + 'static,
{
    Engine::post(
        pool::global::current().pool_ref().inner(),
        PostDest::Parallel(traits),
        Duration::ZERO,
        f,
        Location::caller(),
    )
}

/// Posts a delayed one-off task to the global pool. See [`ThreadPool::post_delayed_task`].
///
/// ```
/// # use std::time::{Duration, Instant};
/// let (tx, rx) = std::sync::mpsc::channel();
/// let t0 = Instant::now();
/// taskrunner::post_delayed_task(Default::default(), Duration::from_millis(5), move || tx.send(Instant::now()).unwrap()).unwrap();
/// assert!(rx.recv().unwrap() - t0 >= Duration::from_millis(5));
/// ```
#[track_caller]
pub fn post_delayed_task<F>(traits: TaskTraits, delay: Duration, f: F) -> Result<(), PostError<F>>
where
    F: FnOnce() + Send + 'static,
{
    Engine::post(
        pool::global::current().pool_ref().inner(),
        PostDest::Parallel(traits),
        delay,
        f,
        Location::caller(),
    )
}

/// Posts a one-off task to the global pool and returns a handle to its result. See
/// [`ThreadPool::post_task_with_result`].
///
/// ```
/// let h = taskrunner::post_task_with_result(Default::default(), || 40 + 2).unwrap();
/// assert_eq!(h.join().unwrap(), 42);
/// ```
#[track_caller]
pub fn post_task_with_result<F, T>(traits: TaskTraits, f: F) -> Result<TaskHandle<T>, PostError<F>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Engine::post_with_result(
        pool::global::current().pool_ref().inner(),
        PostDest::Parallel(traits),
        Duration::ZERO,
        f,
        Location::caller(),
    )
}

/// Posts a delayed one-off task to the global pool and returns a handle to its result. See
/// [`PostTask::post_delayed_task_with_result`].
///
/// ```
/// use std::time::Duration;
/// let h = taskrunner::post_delayed_task_with_result(Default::default(), Duration::from_millis(2), || "later").unwrap();
/// assert_eq!(h.join().unwrap(), "later");
/// ```
#[track_caller]
pub fn post_delayed_task_with_result<F, T>(
    traits: TaskTraits,
    delay: Duration,
    f: F,
) -> Result<TaskHandle<T>, PostError<F>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Engine::post_with_result(
        pool::global::current().pool_ref().inner(),
        PostDest::Parallel(traits),
        delay,
        f,
        Location::caller(),
    )
}

/// Runs `task` on the global pool, then `reply` on the sequence that called this. See
/// [`PostTask::post_task_and_reply`].
///
/// ```
/// use taskrunner::PostTask;
/// let origin = taskrunner::create_sequenced_task_runner(Default::default());
/// let (tx, rx) = std::sync::mpsc::channel();
/// let o2 = origin.clone();
/// origin.post_task(move || {
///     taskrunner::post_task_and_reply(Default::default(), || (), move || {
///         tx.send(o2.runs_tasks_in_current_sequence()).unwrap()
///     })
///     .unwrap();
/// }).unwrap();
/// assert!(rx.recv().unwrap()); // the reply ran on the origin sequence
/// ```
#[track_caller]
pub fn post_task_and_reply<F, R>(
    traits: TaskTraits,
    task: F,
    reply: R,
) -> Result<(), PostError<(F, R)>>
where
    F: FnOnce() + Send + 'static,
    R: FnOnce() + Send + 'static,
{
    Engine::post_and_reply(
        pool::global::current().pool_ref().inner(),
        PostDest::Parallel(traits),
        Duration::ZERO,
        task,
        |t| t,
        handle::ReplyFn(reply),
        Location::caller(),
    )
    .map_err(|e| e.map(|(t, r)| (t, r.0)))
}

/// Runs `task` on the global pool, then `reply(value)` on the sequence that called this. See
/// [`PostTask::post_task_and_reply_with_result`].
///
/// ```
/// use taskrunner::PostTask;
/// let origin = taskrunner::create_sequenced_task_runner(Default::default());
/// let (tx, rx) = std::sync::mpsc::channel();
/// origin.post_task(move || {
///     taskrunner::post_task_and_reply_with_result(Default::default(), || 6 * 7, move |v: i32| {
///         tx.send(v).unwrap()
///     })
///     .unwrap();
/// }).unwrap();
/// assert_eq!(rx.recv().unwrap(), 42);
/// ```
#[track_caller]
pub fn post_task_and_reply_with_result<F, T, R>(
    traits: TaskTraits,
    task: F,
    reply: R,
) -> Result<(), PostError<(F, R)>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
    R: FnOnce(T) + Send + 'static,
{
    Engine::post_and_reply(
        pool::global::current().pool_ref().inner(),
        PostDest::Parallel(traits),
        Duration::ZERO,
        task,
        |t| t,
        reply,
        Location::caller(),
    )
}

/// Polls `fut` as one-off tasks with `traits` on the global pool. See
/// [`PostTask::post_future`].
///
/// ```
/// let h = taskrunner::post_future(Default::default(), async { 20 + 1 }).unwrap();
/// assert_eq!(h.join().unwrap(), 21);
/// ```
#[track_caller]
pub fn post_future<F>(traits: TaskTraits, fut: F) -> Result<TaskHandle<F::Output>, PostError<F>>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    pool::global::current().post_future(traits, fut)
}

/// A parallel runner on the global pool. See [`ThreadPool::create_task_runner`].
///
/// ```
/// # use taskrunner::PostTask;
/// let r = taskrunner::create_task_runner(Default::default());
/// let (tx, rx) = std::sync::mpsc::channel();
/// r.post_task(move || tx.send(1).unwrap()).unwrap();
/// assert_eq!(rx.recv().unwrap(), 1);
/// ```
pub fn create_task_runner(traits: TaskTraits) -> TaskRunner {
    pool::global::current().create_task_runner(traits)
}

/// A sequenced runner on the global pool. See [`ThreadPool::create_sequenced_task_runner`].
///
/// ```
/// # use taskrunner::PostTask;
/// let seq = taskrunner::create_sequenced_task_runner(Default::default());
/// let (tx, rx) = std::sync::mpsc::channel();
/// for i in 0..3 { let tx = tx.clone(); seq.post_task(move || tx.send(i).unwrap()).unwrap(); }
/// assert_eq!((rx.recv().unwrap(), rx.recv().unwrap(), rx.recv().unwrap()), (0, 1, 2));
/// ```
pub fn create_sequenced_task_runner(traits: TaskTraits) -> SequencedTaskRunner {
    pool::global::current().create_sequenced_task_runner(traits)
}

/// A single-thread runner on the global pool. See
/// [`ThreadPool::create_single_thread_task_runner`].
///
/// ```
/// # use taskrunner::PostTask;
/// let st = taskrunner::create_single_thread_task_runner(Default::default());
/// let (tx, rx) = std::sync::mpsc::channel();
/// st.post_task(move || tx.send(()).unwrap()).unwrap();
/// rx.recv().unwrap();
/// ```
pub fn create_single_thread_task_runner(traits: TaskTraits) -> SingleThreadTaskRunner {
    pool::global::current().create_single_thread_task_runner(traits)
}

/// The guides' code blocks run as doctests too, so the docs cannot drift from the code
/// (`docs/timers.md` and `docs/testing.md` show fragments and are not included).
#[cfg(all(doctest, feature = "test-util"))]
#[doc = include_str!("../docs/orchestration.md")]
struct OrchestrationGuide;

#[cfg(all(doctest, feature = "test-util", feature = "tokio"))]
#[doc = include_str!("../docs/async-and-batching.md")]
struct AsyncAndBatchingGuide;

#[cfg(all(doctest, feature = "test-util"))]
#[doc = include_str!("../docs/handles-and-ownership.md")]
struct HandlesGuide;

#[cfg(all(doctest, feature = "test-util"))]
#[doc = include_str!("../docs/keyed.md")]
struct KeyedGuide;

#[cfg(all(doctest, feature = "test-util"))]
#[doc = include_str!("../docs/runner-policies.md")]
struct RunnerPoliciesGuide;

#[cfg(all(doctest, feature = "test-util"))]
#[doc = include_str!("../docs/shutdown.md")]
struct ShutdownGuide;

#[cfg(doctest)]
#[doc = include_str!("../docs/observability.md")]
struct ObservabilityGuide;

#[cfg(doctest)]
#[doc = include_str!("../docs/waiting-panics-and-time.md")]
struct WaitingPanicsAndTimeGuide;

/// README.md's code blocks run as doctests as well.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct Readme;
