//! Pipelines: items flowing through stages, each stage with its own workers (or its own
//! sequence per key), bounded queues between stages, per-stage retries, and a status per item.
//!
//! ```
//! use taskrunner::pipeline::{Order, Pipeline};
//! use taskrunner::ThreadPool;
//!
//! let pool = ThreadPool::builder().max_workers(4).build().unwrap();
//! let p = Pipeline::<&str>::builder(&pool)
//!     .stage("parse", 2, |line: &str| line.trim().parse::<u64>())
//!     .stage("square", 2, |n: u64| Ok::<_, std::convert::Infallible>(n * n))
//!     .order(Order::Input)
//!     .build();
//! let out = p.run(["3", " 4", "x", "5"]);
//! assert_eq!(*out[0].as_ref().unwrap(), 9);
//! assert_eq!(*out[1].as_ref().unwrap(), 16);
//! let err = out[2].as_ref().unwrap_err();
//! assert_eq!((err.stage(), err.stage_name()), (0, "parse")); // failed at the first stage
//! assert_eq!(*out[3].as_ref().unwrap(), 25);
//! ```
//!
//! # How it runs
//!
//! Each stage is an [`Executor`] on the pool (its worker count is the executor's
//! `max_workers`, its queue the executor's bounded queue), or, for a keyed stage, a
//! [`KeyedTaskRunner`] whose queue is bounded by a [`Semaphore`]. An item's task in stage `k`
//! runs the stage's function and hands the output to stage `k + 1` itself: a submission that
//! **blocks while that stage's queue is full**, so a slow stage holds back the stages before
//! it, down to [`PipelineRun::submit`] (each blocked submission is a blocking scope, so the
//! pool runs another worker meanwhile). A retrying stage runs through the executor's retries
//! (backoff on the delay thread) and hands its output on from a continuation. Results come out of [`PipelineRun::results`] in input order or in completion
//! order.
//!
//! A stage's function that fails (after its retries) or panics ends the item there: its result
//! is a [`PipelineError`] naming the stage; a panic is also reported to the pool's panic
//! handler. The item's [`ItemStatus`] says where each item is at any moment.

use std::any::Any;
use std::collections::BTreeMap;
use std::error::Error;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::panic::Location;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use crate::base::shim::{AtomicU64, Mutex, Ordering};
use crate::base::unwind::catch;
use crate::engine::report_task_panic;
use crate::executor::{Executor, ShutdownMode};
use crate::handle::TaskError;
use crate::pool::ThreadPool;
use crate::retry::RetryPolicy;
use crate::runner::keyed::KeyedTaskRunner;
use crate::runner::TaskRunner;
use crate::sync::semaphore::Semaphore;
use crate::TaskTraits;

type Item = Box<dyn Any + Send>;
type StageFn = Arc<dyn Fn(Item) -> Result<Item, TaskError> + Send + Sync>;
type CloneFn = Arc<dyn Fn(&Item) -> Item + Send + Sync>;
type KeyFn = Arc<dyn Fn(&Item) -> u64 + Send + Sync>;

/// In which order [`PipelineRun::results`] yields results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Order {
    /// The order items were submitted in (a result waits for the ones before it).
    #[default]
    Input,
    /// The order items finished in.
    Completion,
}

/// Where an item is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ItemStatus {
    /// Waiting in the queue of stage `stage`.
    Queued {
        /// The stage (0 for the first).
        stage: usize,
    },
    /// Being processed by stage `stage` (for a retrying stage, also while it waits to try
    /// again).
    Running {
        /// The stage (0 for the first).
        stage: usize,
    },
    /// Through every stage; its result is (or was) in the results.
    Done,
    /// Ended at stage `stage` (its function failed after its retries, or panicked).
    Failed {
        /// The stage (0 for the first).
        stage: usize,
    },
}

const QUEUED: u32 = 0;
const RUNNING: u32 = 1;
const DONE: u32 = 2;
const FAILED: u32 = 3;

impl ItemStatus {
    fn encode(state: u32, stage: usize) -> u32 {
        state | ((stage as u32) << 2)
    }

    fn decode(v: u32) -> Self {
        let stage = (v >> 2) as usize;
        match v & 3 {
            QUEUED => ItemStatus::Queued { stage },
            RUNNING => ItemStatus::Running { stage },
            DONE => ItemStatus::Done,
            _ => ItemStatus::Failed { stage },
        }
    }
}

/// Why an item has no result: the stage it failed at, and the stage's error (its function's
/// error after its last attempt, a panic, or "not run" if the stage was shut down).
#[derive(Clone)]
pub struct PipelineError {
    stage: usize,
    name: Arc<str>,
    error: TaskError,
}

impl PipelineError {
    /// The stage the item failed at (0 for the first).
    ///
    /// See the [module](crate::pipeline) example.
    pub fn stage(&self) -> usize {
        self.stage
    }

    /// That stage's name.
    ///
    /// See the [module](crate::pipeline) example.
    pub fn stage_name(&self) -> &str {
        &self.name
    }

    /// The stage's error (`downcast_ref` gives the function's own error back; `is_panic`,
    /// `attempts`).
    ///
    /// ```
    /// use taskrunner::pipeline::Pipeline;
    /// use taskrunner::ThreadPool;
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let p = Pipeline::<&str>::builder(&pool).stage("parse", 1, |s: &str| s.parse::<i32>()).build();
    /// let err = p.run(["x"]).remove(0).unwrap_err();
    /// assert!(err.error().downcast_ref::<std::num::ParseIntError>().is_some());
    /// ```
    pub fn error(&self) -> &TaskError {
        &self.error
    }
}

impl fmt::Debug for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineError")
            .field("stage", &self.stage)
            .field("name", &self.name)
            .field("error", &self.error)
            .finish()
    }
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pipeline stage {} ({}) failed: {}",
            self.stage, self.name, self.error
        )
    }
}

impl Error for PipelineError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.error)
    }
}

enum Kind {
    Workers(usize),
    Keyed(KeyFn),
}

struct StageSpec {
    name: Arc<str>,
    kind: Kind,
    f: StageFn,
    retry: Option<(RetryPolicy, CloneFn)>,
    /// Where the stage was added: what its panics are reported at.
    added_at: &'static Location<'static>,
}

/// Builds a [`Pipeline`] whose items enter as `I` and leave as `O` (the last stage's output).
/// Start with [`Pipeline::builder`].
///
/// ```
/// use taskrunner::pipeline::Pipeline;
/// let pool = taskrunner::ThreadPool::builder().max_workers(1).build().unwrap();
/// let b = Pipeline::<u8>::builder(&pool).capacity(8);
/// assert!(format!("{b:?}").contains("capacity: 8"));
/// ```
pub struct PipelineBuilder<I, O> {
    pool: ThreadPool,
    stages: Vec<StageSpec>,
    capacity: usize,
    order: Order,
    traits: TaskTraits,
    _types: PhantomData<fn(I) -> O>,
}

impl<I: Send + 'static, O: Send + 'static> PipelineBuilder<I, O> {
    #[track_caller]
    fn push<P, E, F>(mut self, name: &str, kind: Kind, f: F) -> PipelineBuilder<I, P>
    where
        P: Send + 'static,
        E: Into<Box<dyn Error + Send + Sync + 'static>>,
        F: Fn(O) -> Result<P, E> + Send + Sync + 'static,
    {
        let f: StageFn = Arc::new(move |item: Item| {
            let input = *item
                .downcast::<O>()
                .unwrap_or_else(|_| unreachable!("a stage gets its input type"));
            f(input)
                .map(|p| Box::new(p) as Item)
                .map_err(TaskError::from_error)
        });
        self.stages.push(StageSpec {
            name: name.into(),
            kind,
            f,
            retry: None,
            added_at: Location::caller(),
        });
        PipelineBuilder {
            pool: self.pool,
            stages: self.stages,
            capacity: self.capacity,
            order: self.order,
            traits: self.traits,
            _types: PhantomData,
        }
    }

    /// Adds a stage: `f` turns each item into the next stage's input, on up to `workers`
    /// workers at once (at least 1).
    ///
    /// See the [module](crate::pipeline) example.
    #[track_caller]
    pub fn stage<P, E, F>(self, name: &str, workers: usize, f: F) -> PipelineBuilder<I, P>
    where
        P: Send + 'static,
        E: Into<Box<dyn Error + Send + Sync + 'static>>,
        F: Fn(O) -> Result<P, E> + Send + Sync + 'static,
    {
        self.push(name, Kind::Workers(workers.max(1)), f)
    }

    /// Adds a keyed stage: items with the same key (`key(&item)`) go through `f` one at a
    /// time, in the order they reached this stage (one sequence per key); items of different
    /// keys in parallel.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use taskrunner::pipeline::Pipeline;
    /// use taskrunner::ThreadPool;
    /// let pool = ThreadPool::builder().max_workers(4).build().unwrap();
    /// let log = Arc::new(Mutex::new(Vec::new()));
    /// let l = log.clone();
    /// let p = Pipeline::<(u32, u32)>::builder(&pool)
    ///     .keyed_stage("per-account", |&(account, _)| account, move |(account, seq)| {
    ///         l.lock().unwrap().push((account, seq));
    ///         Ok::<_, std::convert::Infallible>(seq)
    ///     })
    ///     .build();
    /// p.run((0..20).map(|i| (i % 2, i)));
    /// let log = log.lock().unwrap();
    /// for account in 0..2 {
    ///     let seqs: Vec<u32> = log.iter().filter(|e| e.0 == account).map(|e| e.1).collect();
    ///     assert!(seqs.windows(2).all(|w| w[0] < w[1])); // in order per account
    /// }
    /// ```
    #[track_caller]
    pub fn keyed_stage<P, E, K, KF, F>(self, name: &str, key: KF, f: F) -> PipelineBuilder<I, P>
    where
        P: Send + 'static,
        E: Into<Box<dyn Error + Send + Sync + 'static>>,
        K: Hash,
        KF: Fn(&O) -> K + Send + Sync + 'static,
        F: Fn(O) -> Result<P, E> + Send + Sync + 'static,
    {
        let hasher = std::collections::hash_map::RandomState::new();
        let key: KeyFn = Arc::new(move |item: &Item| {
            let input = item
                .downcast_ref::<O>()
                .unwrap_or_else(|| unreachable!("a stage gets its input type"));
            hasher.hash_one(key(input))
        });
        self.push(name, Kind::Keyed(key), f)
    }

    /// Adds a stage like [`stage`](Self::stage) whose failed attempts are retried: an
    /// attempt that returns an error runs again, on a clone of its input, after the policy's
    /// wait (on the delay thread: no worker waits), up to the policy's attempts; the item
    /// fails at this stage only after the last. A panic is not retried.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use taskrunner::pipeline::Pipeline;
    /// use taskrunner::retry::RetryPolicy;
    /// use taskrunner::ThreadPool;
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let calls = Arc::new(AtomicU32::new(0));
    /// let c = calls.clone();
    /// let policy = RetryPolicy::attempts(3).base_delay(Duration::from_millis(1));
    /// let p = Pipeline::<u32>::builder(&pool)
    ///     .retrying_stage("flaky fetch", 1, policy, move |n: u32| {
    ///         if c.fetch_add(1, SeqCst) == 0 { Err("timeout") } else { Ok(n) }
    ///     })
    ///     .build();
    /// assert_eq!(*p.run([7]).remove(0).as_ref().unwrap(), 7); // failed once, then succeeded
    /// assert_eq!(calls.load(SeqCst), 2);
    /// ```
    #[track_caller]
    pub fn retrying_stage<P, E, F>(
        self,
        name: &str,
        workers: usize,
        policy: RetryPolicy,
        f: F,
    ) -> PipelineBuilder<I, P>
    where
        O: Clone,
        P: Send + 'static,
        E: Into<Box<dyn Error + Send + Sync + 'static>>,
        F: Fn(O) -> Result<P, E> + Send + Sync + 'static,
    {
        let clone: CloneFn = Arc::new(|item: &Item| {
            let input = item
                .downcast_ref::<O>()
                .unwrap_or_else(|| unreachable!("a stage gets its input type"));
            Box::new(input.clone()) as Item
        });
        let mut next = self.push(name, Kind::Workers(workers.max(1)), f);
        next.stages.last_mut().expect("just added").retry = Some((policy, clone));
        next
    }

    /// How many items may wait in each stage's queue (default 64; for a keyed stage, how many
    /// may be in it, waiting or running). A stage whose queue is full holds back the stage
    /// before it.
    ///
    /// ```
    /// use taskrunner::pipeline::Pipeline;
    /// use taskrunner::ThreadPool;
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let p = Pipeline::<u8>::builder(&pool).capacity(4).stage("id", 1, |x: u8| Ok::<_, String>(x)).build();
    /// assert_eq!(p.run(0..=255).len(), 256);
    /// ```
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// The order of the results (default [`Order::Input`]).
    ///
    /// See the [module](crate::pipeline) example.
    #[must_use]
    pub fn order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }

    /// The traits of the stages' tasks (default: the default traits).
    ///
    /// ```
    /// use taskrunner::pipeline::Pipeline;
    /// use taskrunner::{TaskPriority, TaskTraits, ThreadPool};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let p = Pipeline::<u8>::builder(&pool)
    ///     .traits(TaskTraits::new().priority(TaskPriority::BestEffort))
    ///     .stage("background", 1, |x: u8| Ok::<_, String>(x))
    ///     .build();
    /// assert_eq!(p.run([1]).len(), 1);
    /// ```
    #[must_use]
    pub fn traits(mut self, traits: TaskTraits) -> Self {
        self.traits = traits;
        self
    }

    /// Builds the pipeline (a template: each [`start`](Pipeline::start) or
    /// [`run`](Pipeline::run) processes its own items).
    ///
    /// # Panics
    ///
    /// If it has no stage.
    pub fn build(self) -> Pipeline<I, O> {
        assert!(
            !self.stages.is_empty(),
            "a pipeline needs at least one stage"
        );
        Pipeline {
            pool: self.pool,
            stages: Arc::from(self.stages),
            capacity: self.capacity,
            order: self.order,
            traits: self.traits,
            _types: PhantomData,
        }
    }
}

/// A pipeline: stages that items flow through (see the [module](crate::pipeline) docs). Build
/// one with [`Pipeline::builder`]; run items with [`run`](Self::run), or stream them with
/// [`start`](Self::start).
pub struct Pipeline<I, O = I> {
    pool: ThreadPool,
    stages: Arc<[StageSpec]>,
    capacity: usize,
    order: Order,
    traits: TaskTraits,
    _types: PhantomData<fn(I) -> O>,
}

impl<I: Send + 'static> Pipeline<I, I> {
    /// A builder for a pipeline on `pool` whose items enter as `I`.
    ///
    /// See the [module](crate::pipeline) example.
    pub fn builder(pool: &ThreadPool) -> PipelineBuilder<I, I> {
        PipelineBuilder {
            pool: pool.clone(),
            stages: Vec::new(),
            capacity: 64,
            order: Order::Input,
            traits: TaskTraits::default(),
            _types: PhantomData,
        }
    }
}

impl<I: Send + 'static, O: Send + 'static> Pipeline<I, O> {
    /// Starts a run: submit items, then read the results.
    ///
    /// ```
    /// use taskrunner::pipeline::{ItemStatus, Order, Pipeline};
    /// use taskrunner::ThreadPool;
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let p = Pipeline::<u32>::builder(&pool)
    ///     .stage("double", 2, |x: u32| Ok::<_, String>(x * 2))
    ///     .order(Order::Completion)
    ///     .build();
    /// let run = p.start();
    /// let ids: Vec<_> = (0..10).map(|x| run.submit(x)).collect();
    /// let mut results: Vec<u32> = run.results().map(|(_, r)| r.unwrap()).collect();
    /// results.sort();
    /// assert_eq!(results, (0..10).map(|x| x * 2).collect::<Vec<_>>());
    /// assert_eq!(ids.len(), 10);
    /// ```
    pub fn start(&self) -> PipelineRun<I, O> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let stages = self
            .stages
            .iter()
            .map(|spec| match &spec.kind {
                Kind::Workers(n) => StageRt::Exec(
                    Executor::builder()
                        .pool(&self.pool)
                        .traits(self.traits)
                        .name(spec.name.clone())
                        .max_workers(*n)
                        .queue_capacity(self.capacity)
                        .on_drop(ShutdownMode::NoWait)
                        .build()
                        .expect("a stage has workers and a queue"),
                ),
                Kind::Keyed(_) => StageRt::Keyed {
                    runner: self.pool.create_keyed_task_runner(self.traits),
                    gate: Semaphore::new(self.capacity),
                },
            })
            .collect();
        PipelineRun {
            shared: Arc::new(RunShared {
                specs: Arc::clone(&self.stages),
                stages,
                parallel: self.pool.create_task_runner(self.traits),
                status: Mutex::new(Vec::new()),
                results: tx,
            }),
            rx,
            submitted: AtomicU64::new(0),
            order: self.order,
            _types: PhantomData,
        }
    }

    /// Runs every item of `items` through the pipeline and returns their results, in input
    /// order or completion order as built. Submits from the calling thread (waiting while
    /// the first stage is full).
    ///
    /// See the [module](crate::pipeline) example.
    pub fn run(&self, items: impl IntoIterator<Item = I>) -> Vec<Result<O, PipelineError>> {
        let run = self.start();
        for item in items {
            run.submit(item);
        }
        run.results().map(|(_, r)| r).collect()
    }
}

impl<I, O> fmt::Debug for PipelineBuilder<I, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.stages.iter().map(|s| &*s.name).collect();
        f.debug_struct("PipelineBuilder")
            .field("stages", &names)
            .field("capacity", &self.capacity)
            .field("order", &self.order)
            .finish_non_exhaustive()
    }
}

impl<I, O> fmt::Debug for Pipeline<I, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.stages.iter().map(|s| &*s.name).collect();
        f.debug_struct("Pipeline")
            .field("stages", &names)
            .field("capacity", &self.capacity)
            .field("order", &self.order)
            .finish_non_exhaustive()
    }
}

enum StageRt {
    Exec(Executor<TaskRunner>),
    Keyed {
        runner: KeyedTaskRunner<u64>,
        gate: Semaphore,
    },
}

/// What a run's tasks share.
struct RunShared {
    specs: Arc<[StageSpec]>,
    stages: Vec<StageRt>,
    /// For continuations of retried stages.
    parallel: TaskRunner,
    /// Per item, its encoded [`ItemStatus`].
    status: Mutex<Vec<u32>>,
    results: Sender<(u64, Result<Item, PipelineError>)>,
}

impl RunShared {
    fn set_status(&self, id: u64, state: u32, stage: usize) {
        self.status.lock()[id as usize] = ItemStatus::encode(state, stage);
    }

    /// Puts item `id` into stage `k`'s queue (waiting while it is full).
    fn dispatch(self: &Arc<Self>, k: usize, id: u64, item: Item) {
        self.set_status(id, QUEUED, k);
        let spec = &self.specs[k];
        // Dropped without running (the stage refused it, or shutdown dropped its task), the
        // ticket ends the item as not run, so its result still comes out.
        let ticket = Ticket::new(self, k, id);
        let refused = match (&self.stages[k], &spec.retry) {
            (StageRt::Exec(exec), None) => exec
                .submit(move || ticket.take().run_stage(k, id, item))
                .is_err(),
            (StageRt::Exec(exec), Some((policy, clone))) => {
                let (f, clone) = (Arc::clone(&spec.f), Arc::clone(clone));
                let running = Arc::clone(self);
                let attempt = move || {
                    running.set_status(id, RUNNING, k);
                    f(clone(&item))
                };
                match exec.submit_with_retry(*policy, attempt) {
                    Ok(handle) => {
                        let runner = self.parallel.clone();
                        let _continuation = handle.then(&runner, move |outcome| {
                            ticket.take().after_stage(k, id, outcome);
                        });
                        false
                    }
                    Err(_) => true,
                }
            }
            (StageRt::Keyed { runner, gate }, _) => {
                let Kind::Keyed(key) = &spec.kind else {
                    unreachable!("a keyed stage has a key")
                };
                let key = match catch(|| key(&item)) {
                    Ok(key) => key,
                    Err(p) => {
                        // The item fails at this stage with the key function's panic.
                        let message = format!(
                            "pipeline stage {} ({}): the key function panicked: {}",
                            k,
                            spec.name,
                            p.message()
                        );
                        report_task_panic(message, spec.added_at);
                        ticket.take().fail(k, id, TaskError::from_panic(p));
                        return;
                    }
                };
                let permit = gate.acquire();
                runner
                    .post_task(key, move || {
                        let _permit = permit;
                        ticket.take().run_stage(k, id, item);
                    })
                    .is_err()
            }
        };
        // A refused submission dropped its closure, and the ticket in it: the item has ended.
        let _ = refused;
    }

    /// Runs stage `k` on item `id` (in the stage's task) and hands the outcome on.
    fn run_stage(self: &Arc<Self>, k: usize, id: u64, item: Item) {
        self.set_status(id, RUNNING, k);
        let f = &self.specs[k].f;
        let outcome = match catch(|| f(item)) {
            Ok(r) => r,
            Err(p) => {
                let message = format!(
                    "pipeline stage {} ({}) panicked: {}",
                    k,
                    self.specs[k].name,
                    p.message()
                );
                report_task_panic(message, self.specs[k].added_at);
                Err(TaskError::from_panic(p))
            }
        };
        self.after_stage(k, id, outcome);
    }

    fn after_stage(self: &Arc<Self>, k: usize, id: u64, outcome: Result<Item, TaskError>) {
        match outcome {
            Ok(out) if k + 1 < self.specs.len() => self.dispatch(k + 1, id, out),
            Ok(out) => {
                self.set_status(id, DONE, k);
                let _ = self.results.send((id, Ok(out)));
            }
            Err(e) => self.fail(k, id, e),
        }
    }

    fn fail(&self, k: usize, id: u64, error: TaskError) {
        self.set_status(id, FAILED, k);
        let err = PipelineError {
            stage: k,
            name: Arc::clone(&self.specs[k].name),
            error,
        };
        let _ = self.results.send((id, Err(err)));
    }
}

/// An item on its way through stage `k`: ended as not run if dropped before it is taken.
struct Ticket {
    shared: Option<Arc<RunShared>>,
    k: usize,
    id: u64,
}

impl Ticket {
    fn new(shared: &Arc<RunShared>, k: usize, id: u64) -> Self {
        Ticket {
            shared: Some(Arc::clone(shared)),
            k,
            id,
        }
    }

    /// The item goes on: the caller hands its outcome on.
    fn take(mut self) -> Arc<RunShared> {
        self.shared.take().expect("a ticket is taken once")
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            shared.fail(self.k, self.id, TaskError::not_run());
        }
    }
}

/// The number of an item in a run: its place in submission order, from 0.
pub type ItemId = u64;

/// One run of a [`Pipeline`]: [`submit`](Self::submit) items (from any thread), poll their
/// [`status`](Self::status), then read the [`results`](Self::results).
pub struct PipelineRun<I, O> {
    shared: Arc<RunShared>,
    rx: Receiver<(u64, Result<Item, PipelineError>)>,
    submitted: AtomicU64,
    order: Order,
    _types: PhantomData<fn(I) -> O>,
}

impl<I: Send + 'static, O: Send + 'static> PipelineRun<I, O> {
    /// Submits an item to the first stage, waiting while its queue is full (a blocking scope on
    /// a pool worker). Returns the item's id.
    ///
    /// See [`Pipeline::start`] for an example.
    pub fn submit(&self, item: I) -> ItemId {
        let id = {
            let mut status = self.shared.status.lock();
            let id = status.len() as u64;
            status.push(ItemStatus::encode(QUEUED, 0));
            id
        };
        self.submitted.fetch_add(1, Ordering::Relaxed);
        self.shared.dispatch(0, id, Box::new(item));
        id
    }

    /// Where item `id` is now (`None` for an id not submitted in this run). Once the run's
    /// [`results`](Self::results) are being read, ask [`Results::status`].
    ///
    /// ```
    /// use taskrunner::pipeline::{ItemStatus, Pipeline};
    /// use taskrunner::ThreadPool;
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let p = Pipeline::<u32>::builder(&pool).stage("slow", 1, |x: u32| {
    ///     std::thread::sleep(std::time::Duration::from_millis(20));
    ///     Ok::<_, String>(x)
    /// }).build();
    /// let run = p.start();
    /// let id = run.submit(5);
    /// assert!(matches!(run.status(id), Some(ItemStatus::Queued { stage: 0 } | ItemStatus::Running { stage: 0 } | ItemStatus::Done)));
    /// assert_eq!(run.status(99), None);
    /// ```
    pub fn status(&self, id: ItemId) -> Option<ItemStatus> {
        status_of(&self.shared, id)
    }

    /// How many items were submitted.
    ///
    /// ```
    /// # use taskrunner::pipeline::Pipeline;
    /// # let pool = taskrunner::ThreadPool::builder().max_workers(1).build().unwrap();
    /// let p = Pipeline::<u8>::builder(&pool).stage("id", 1, |x: u8| Ok::<_, String>(x)).build();
    /// let run = p.start();
    /// run.submit(1);
    /// assert_eq!(run.submitted(), 1);
    /// ```
    pub fn submitted(&self) -> u64 {
        self.submitted.load(Ordering::Relaxed)
    }

    /// Ends submission and yields every item's `(id, result)`, in the pipeline's
    /// [`Order`]; the iterator ends after the last.
    ///
    /// See [`Pipeline::start`] for an example.
    pub fn results(self) -> Results<O> {
        let expected = self.submitted();
        Results {
            rx: self.rx.clone(),
            expected,
            received: 0,
            order: self.order,
            pending: BTreeMap::new(),
            next: 0,
            shared: self.shared,
            _types: PhantomData,
        }
    }
}

impl<I, O> fmt::Debug for PipelineRun<I, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineRun")
            .field("submitted", &self.submitted.load(Ordering::Relaxed))
            .field("order", &self.order)
            .finish_non_exhaustive()
    }
}

/// The results of a run, as `(id, result)` (see [`PipelineRun::results`]).
pub struct Results<O> {
    rx: Receiver<(u64, Result<Item, PipelineError>)>,
    expected: u64,
    received: u64,
    order: Order,
    pending: BTreeMap<u64, Result<Item, PipelineError>>,
    next: u64,
    shared: Arc<RunShared>,
    _types: PhantomData<fn() -> O>,
}

impl<O> Results<O> {
    /// Where item `id` is now, as [`PipelineRun::status`] says.
    ///
    /// ```
    /// use taskrunner::pipeline::{ItemStatus, Pipeline};
    /// use taskrunner::ThreadPool;
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let p = Pipeline::<u32>::builder(&pool)
    ///     .stage("check", 1, |x: u32| if x > 0 { Ok(x) } else { Err("zero") })
    ///     .stage("store", 1, |x: u32| Ok::<_, String>(x))
    ///     .build();
    /// let run = p.start();
    /// let (good, bad) = (run.submit(1), run.submit(0));
    /// let mut results = run.results();
    /// assert_eq!(results.by_ref().count(), 2);
    /// assert_eq!(results.status(good), Some(ItemStatus::Done));
    /// assert_eq!(results.status(bad), Some(ItemStatus::Failed { stage: 0 }));
    /// ```
    pub fn status(&self, id: ItemId) -> Option<ItemStatus> {
        status_of(&self.shared, id)
    }
}

fn status_of(shared: &RunShared, id: ItemId) -> Option<ItemStatus> {
    shared
        .status
        .lock()
        .get(id as usize)
        .map(|&v| ItemStatus::decode(v))
}

impl<O: 'static> Iterator for Results<O> {
    type Item = (ItemId, Result<O, PipelineError>);

    fn next(&mut self) -> Option<Self::Item> {
        let typed = |(id, r): (u64, Result<Item, PipelineError>)| {
            let r = r.map(|item| {
                *item
                    .downcast::<O>()
                    .unwrap_or_else(|_| unreachable!("the last stage's output type"))
            });
            (id, r)
        };
        loop {
            if self.order == Order::Input {
                if let Some(r) = self.pending.remove(&self.next) {
                    self.next += 1;
                    return Some(typed((self.next - 1, r)));
                }
            }
            if self.received == self.expected {
                return None;
            }
            let (id, r) = self.rx.recv().ok()?;
            self.received += 1;
            match self.order {
                Order::Completion => return Some(typed((id, r))),
                Order::Input => {
                    self.pending.insert(id, r);
                }
            }
        }
    }
}

impl<O> fmt::Debug for Results<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Results")
            .field("expected", &self.expected)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}
