//! The shared bench harness: every peer behind two small traits, so that one generic bench
//! body measures all of them in the same run (the parking_lot-benchmark style).
//!
//! * [`Executor`]: "post one closure" (parallel, unordered). Implemented for taskrunner
//!   (`ThreadPool::post_task`), rayon (`spawn`, `spawn_fifo`), tokio multi-thread (`spawn` of a
//!   future that runs the closure, and `spawn_blocking`), the threadpool crate, and the floor.
//! * [`StrandExecutor`] / [`Strand`]: "make a strand, post closures to it" (FIFO, one at a time).
//!   Implemented for taskrunner's `SequencedTaskRunner`, the floor's hand-rolled strand, and
//!   tokio's mpsc actor (one task per strand draining boxed closures).
//!
//! The **floor** is the simplest pool worth having: `BENCH_WORKERS` std threads pulling messages
//! from one `crossbeam_channel::unbounded`. A message is a boxed closure, or a strand to run one
//! task of (so re-submitting a strand costs no allocation: the floor is deliberately lean).
//!
//! Every pool uses `BENCH_WORKERS` workers (default 2).

// Each bench binary uses a subset of this module.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use taskrunner::PostTask;
use taskrunner::{SequencedTaskRunner, TaskTraits};

/// A boxed closure, as the floor and tokio's actors carry it.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

/// How long a waiter gives a workload before declaring it hung (a bug, not a slow machine).
const HANG: Duration = Duration::from_secs(120);

/// `name` from the environment as a positive integer, or `default`.
pub(crate) fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => panic!("{name}={v:?} is not a positive integer"),
        },
        Err(_) => default,
    }
}

/// Worker threads of every pool (`BENCH_WORKERS`, default 2: the bench machine has 2 cores).
pub(crate) fn workers() -> usize {
    env_usize("BENCH_WORKERS", 2)
}

/// The criterion settings every workload uses: few samples, short windows, flat sampling
/// (each iteration is already a large batch of tasks).
pub(crate) fn criterion() -> criterion::Criterion {
    criterion::Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args()
}

/// Tiny deterministic PRNG (xorshift64*), so that workloads are the same for every peer and
/// every run without the `rand` crate.
#[derive(Clone, Debug)]
pub(crate) struct XorShift(u64);

impl XorShift {
    pub(crate) fn new(seed: u64) -> Self {
        XorShift(seed.max(1))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..=max` (the modulo bias is irrelevant at these ranges).
    pub(crate) fn below_incl(&mut self, max: u64) -> u64 {
        self.next_u64() % (max + 1)
    }
}

/// A count-down latch reused across iterations: tasks count down, one external thread waits.
///
/// Benches leak one per workload and capture `&'static Latch`, so that a task's capture is one
/// pointer and no task touches a shared reference count.
#[derive(Debug)]
pub(crate) struct Latch {
    left: AtomicUsize,
    tx: Sender<()>,
    rx: Receiver<()>,
}

impl Latch {
    pub(crate) fn leak() -> &'static Latch {
        let (tx, rx) = crossbeam_channel::bounded(1);
        Box::leak(Box::new(Latch {
            left: AtomicUsize::new(0),
            tx,
            rx,
        }))
    }

    /// Arms the latch for `n` count-downs. Only call while no task of the previous round runs.
    pub(crate) fn reset(&self, n: usize) {
        assert!(n > 0);
        while self.rx.try_recv().is_ok() {}
        self.left.store(n, Ordering::Release);
    }

    #[inline]
    pub(crate) fn count_down(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _ = self.tx.send(());
        }
    }

    /// Count-downs still missing (0 once `wait` returned; a wrapped, huge value means some task
    /// counted down twice).
    pub(crate) fn remaining(&self) -> usize {
        self.left.load(Ordering::Acquire)
    }

    /// Blocks until the count reaches zero. Panics after two minutes: a lost task is a bug.
    pub(crate) fn wait(&self) {
        if self.rx.recv_timeout(HANG).is_err() {
            panic!(
                "workload hung: {} count-downs missing after {HANG:?}",
                self.left.load(Ordering::Acquire)
            );
        }
    }
}

// ---- parallel executors ---------------------------------------------------------------------

/// "Post one closure; it runs on some worker, in no particular order."
pub(crate) trait Executor {
    fn name(&self) -> &'static str;
    fn post<F: FnOnce() + Send + 'static>(&self, f: F);
}

/// taskrunner: `ThreadPool::post_task` with default traits on a pool instance.
#[derive(Debug)]
pub(crate) struct Taskrunner {
    pub(crate) pool: taskrunner::ThreadPool,
}

impl Taskrunner {
    pub(crate) fn new(workers: usize) -> Self {
        let pool = taskrunner::ThreadPool::builder()
            .max_workers(workers)
            .thread_name("bench")
            .build()
            .expect("build taskrunner pool");
        Taskrunner { pool }
    }
}

impl Drop for Taskrunner {
    fn drop(&mut self) {
        self.pool.shutdown();
    }
}

impl Executor for Taskrunner {
    fn name(&self) -> &'static str {
        "taskrunner"
    }

    #[inline]
    fn post<F: FnOnce() + Send + 'static>(&self, f: F) {
        if self.pool.post_task(TaskTraits::default(), f).is_err() {
            panic!("taskrunner refused a post");
        }
    }
}

/// taskrunner: `TaskRunner::post_task` on a parallel runner of a pool instance, named or not
/// (what a runner's identity, and a name's counting, cost over posting on the pool).
#[derive(Debug)]
pub(crate) struct TaskrunnerRunner {
    pub(crate) runner: taskrunner::TaskRunner,
    name: &'static str,
    _pool: Taskrunner,
}

impl TaskrunnerRunner {
    pub(crate) fn new(workers: usize, named: bool) -> Self {
        let pool = Taskrunner::new(workers);
        let runner = pool.pool.create_task_runner(TaskTraits::default());
        let (runner, name) = if named {
            (runner.named("bench"), "taskrunner_named_runner")
        } else {
            (runner, "taskrunner_runner")
        };
        TaskrunnerRunner {
            runner,
            name,
            _pool: pool,
        }
    }
}

impl Executor for TaskrunnerRunner {
    fn name(&self) -> &'static str {
        self.name
    }

    #[inline]
    fn post<F: FnOnce() + Send + 'static>(&self, f: F) {
        use taskrunner::PostTask;
        if self.runner.post_task(f).is_err() {
            panic!("taskrunner refused a post");
        }
    }
}

/// rayon `ThreadPool::spawn` (LIFO-ish from inside, injector FIFO from outside).
#[derive(Debug)]
pub(crate) struct RayonSpawn(pub(crate) rayon::ThreadPool);

/// rayon `ThreadPool::spawn_fifo`.
#[derive(Debug)]
pub(crate) struct RayonSpawnFifo(pub(crate) rayon::ThreadPool);

pub(crate) fn rayon_pool(workers: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .build()
        .expect("build rayon pool")
}

impl Executor for RayonSpawn {
    fn name(&self) -> &'static str {
        "rayon_spawn"
    }

    #[inline]
    fn post<F: FnOnce() + Send + 'static>(&self, f: F) {
        self.0.spawn(f);
    }
}

impl Executor for RayonSpawnFifo {
    fn name(&self) -> &'static str {
        "rayon_spawn_fifo"
    }

    #[inline]
    fn post<F: FnOnce() + Send + 'static>(&self, f: F) {
        self.0.spawn_fifo(f);
    }
}

/// A tokio multi-thread runtime with `workers` workers and at most `workers` blocking threads.
pub(crate) fn tokio_runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .max_blocking_threads(workers)
        .enable_time()
        .build()
        .expect("build tokio runtime")
}

/// tokio `Runtime::spawn` of a future that runs the closure.
#[derive(Debug)]
pub(crate) struct TokioSpawn(pub(crate) tokio::runtime::Runtime);

/// tokio `Runtime::spawn_blocking` (the blocking pool, capped at `workers` threads).
#[derive(Debug)]
pub(crate) struct TokioSpawnBlocking(pub(crate) tokio::runtime::Runtime);

impl Executor for TokioSpawn {
    fn name(&self) -> &'static str {
        "tokio_spawn"
    }

    #[inline]
    fn post<F: FnOnce() + Send + 'static>(&self, f: F) {
        drop(self.0.spawn(async move { f() }));
    }
}

impl Executor for TokioSpawnBlocking {
    fn name(&self) -> &'static str {
        "tokio_spawn_blocking"
    }

    #[inline]
    fn post<F: FnOnce() + Send + 'static>(&self, f: F) {
        drop(self.0.spawn_blocking(f));
    }
}

/// The threadpool crate.
#[derive(Debug)]
pub(crate) struct ThreadPoolCrate(pub(crate) threadpool::ThreadPool);

impl ThreadPoolCrate {
    pub(crate) fn new(workers: usize) -> Self {
        ThreadPoolCrate(threadpool::ThreadPool::new(workers))
    }
}

impl Executor for ThreadPoolCrate {
    fn name(&self) -> &'static str {
        "threadpool"
    }

    #[inline]
    fn post<F: FnOnce() + Send + 'static>(&self, f: F) {
        self.0.execute(f);
    }
}

// ---- the floor --------------------------------------------------------------------------------

/// What the floor's threads pull from the channel.
pub(crate) enum Msg {
    /// A one-off closure.
    Run(Job),
    /// Run the front task of this strand (it is scheduled: see [`FloorStrand`]).
    Strand(Arc<StrandInner>),
    /// Exit (one per thread, sent by `Drop`).
    Stop,
}

/// N std threads pulling from one unbounded crossbeam channel.
pub(crate) struct Floor {
    tx: Sender<Msg>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Floor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Floor")
            .field("threads", &self.threads.len())
            .finish()
    }
}

impl Floor {
    pub(crate) fn new(workers: usize) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded::<Msg>();
        let threads = (0..workers)
            .map(|i| {
                let rx = rx.clone();
                std::thread::Builder::new()
                    .name(format!("floor-{i}"))
                    .spawn(move || {
                        while let Ok(msg) = rx.recv() {
                            match msg {
                                Msg::Run(f) => f(),
                                Msg::Strand(s) => StrandInner::run_one(s),
                                Msg::Stop => break,
                            }
                        }
                    })
                    .expect("spawn floor thread")
            })
            .collect();
        Floor { tx, threads }
    }

    /// A new strand on this floor.
    pub(crate) fn new_strand(&self) -> FloorStrand {
        FloorStrand(Arc::new(StrandInner {
            q: Mutex::new(StrandQueue {
                jobs: VecDeque::new(),
                scheduled: false,
            }),
            tx: self.tx.clone(),
        }))
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        for _ in &self.threads {
            let _ = self.tx.send(Msg::Stop);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Executor for Floor {
    fn name(&self) -> &'static str {
        "floor_channel"
    }

    #[inline]
    fn post<F: FnOnce() + Send + 'static>(&self, f: F) {
        self.tx
            .send(Msg::Run(Box::new(f)))
            .expect("floor channel closed");
    }
}

/// A hand-rolled strand on the floor: a locked FIFO plus a `scheduled` flag.
///
/// Invariant: `scheduled` is true exactly while one `Msg::Strand` for this strand is in the
/// channel or being run, and then `jobs` is non-empty until that run pops. So at most one
/// thread runs the strand's tasks at a time, in FIFO order. Happens-before from task N to task
/// N+1: the runner of N takes the lock after N (to check for more), the runner of N+1 takes it
/// before popping N+1. After each task the strand goes back to the channel's tail (one task per
/// turn, like a taskrunner sequence), without allocating: the message carries the `Arc`.
#[derive(Clone)]
pub(crate) struct FloorStrand(Arc<StrandInner>);

pub(crate) struct StrandInner {
    q: Mutex<StrandQueue>,
    tx: Sender<Msg>,
}

struct StrandQueue {
    jobs: VecDeque<Job>,
    scheduled: bool,
}

impl StrandInner {
    fn run_one(this: Arc<StrandInner>) {
        let job = this
            .q
            .lock()
            .jobs
            .pop_front()
            .expect("a scheduled strand has a job");
        job();
        let more = {
            let mut q = this.q.lock();
            if q.jobs.is_empty() {
                q.scheduled = false;
                false
            } else {
                true
            }
        };
        if more {
            let tx = this.tx.clone();
            tx.send(Msg::Strand(this)).expect("floor channel closed");
        }
    }
}

impl Strand for FloorStrand {
    #[inline]
    fn post<F: FnOnce() + Send + 'static>(&self, f: F) {
        let job: Job = Box::new(f);
        let schedule = {
            let mut q = self.0.q.lock();
            q.jobs.push_back(job);
            !std::mem::replace(&mut q.scheduled, true)
        };
        if schedule {
            self.0
                .tx
                .send(Msg::Strand(Arc::clone(&self.0)))
                .expect("floor channel closed");
        }
    }
}

// ---- strands ----------------------------------------------------------------------------------

/// A handle that posts closures which run one at a time, in posting order.
pub(crate) trait Strand: Clone + Send + Sync + 'static {
    fn post<F: FnOnce() + Send + 'static>(&self, f: F);
}

/// Something that makes strands.
pub(crate) trait StrandExecutor {
    type S: Strand;
    fn name(&self) -> &'static str;
    fn strand(&self) -> Self::S;
}

impl Strand for SequencedTaskRunner {
    #[inline]
    fn post<F: FnOnce() + Send + 'static>(&self, f: F) {
        if self.post_task(f).is_err() {
            panic!("taskrunner refused a sequenced post");
        }
    }
}

impl StrandExecutor for Taskrunner {
    type S = SequencedTaskRunner;

    fn name(&self) -> &'static str {
        "taskrunner_sequenced"
    }

    fn strand(&self) -> SequencedTaskRunner {
        self.pool
            .create_sequenced_task_runner(TaskTraits::default())
    }
}

impl StrandExecutor for Floor {
    type S = FloorStrand;

    fn name(&self) -> &'static str {
        "floor_strand"
    }

    fn strand(&self) -> FloorStrand {
        self.new_strand()
    }
}

/// tokio's actor pattern: one spawned task per strand, draining boxed closures from an
/// unbounded mpsc channel. The actor exits when every sender is gone.
#[derive(Debug)]
pub(crate) struct TokioActors(pub(crate) tokio::runtime::Runtime);

/// A handle to one tokio actor.
#[derive(Clone, Debug)]
pub(crate) struct TokioActor(tokio::sync::mpsc::UnboundedSender<Job>);

impl Strand for TokioActor {
    #[inline]
    fn post<F: FnOnce() + Send + 'static>(&self, f: F) {
        if self.0.send(Box::new(f)).is_err() {
            panic!("tokio actor is gone");
        }
    }
}

impl StrandExecutor for TokioActors {
    type S = TokioActor;

    fn name(&self) -> &'static str {
        "tokio_mpsc_actor"
    }

    fn strand(&self) -> TokioActor {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
        drop(self.0.spawn(async move {
            while let Some(job) = rx.recv().await {
                job();
            }
        }));
        TokioActor(tx)
    }
}

// ---- the floor's strand design on other pools ------------------------------------------------

/// Strands for pools that have no strand of their own (rayon, the threadpool crate): the
/// floor's design (a locked FIFO plus a `scheduled` flag, one task per turn), re-submitted to
/// the pool as a closure. Unlike the floor, every turn costs the pool's own boxing of that
/// closure: this is what a user of that pool would write.
#[derive(Debug)]
pub(crate) struct OnPool<E> {
    pool: Arc<E>,
    name: &'static str,
}

impl<E: Executor> OnPool<E> {
    pub(crate) fn new(pool: E, name: &'static str) -> Self {
        OnPool {
            pool: Arc::new(pool),
            name,
        }
    }
}

/// A strand of [`OnPool`]: same invariant as [`FloorStrand`].
pub(crate) struct PoolStrand<E>(Arc<PoolStrandInner<E>>);

impl<E> Clone for PoolStrand<E> {
    fn clone(&self) -> Self {
        PoolStrand(Arc::clone(&self.0))
    }
}

pub(crate) struct PoolStrandInner<E> {
    q: Mutex<StrandQueue>,
    pool: Arc<E>,
}

impl<E: Executor + Send + Sync + 'static> PoolStrandInner<E> {
    fn submit(this: Arc<Self>) {
        let pool = Arc::clone(&this.pool);
        pool.post(move || Self::run_one(this));
    }

    fn run_one(this: Arc<Self>) {
        let job = this
            .q
            .lock()
            .jobs
            .pop_front()
            .expect("a scheduled strand has a job");
        job();
        let more = {
            let mut q = this.q.lock();
            if q.jobs.is_empty() {
                q.scheduled = false;
                false
            } else {
                true
            }
        };
        if more {
            Self::submit(this);
        }
    }
}

impl<E: Executor + Send + Sync + 'static> Strand for PoolStrand<E> {
    #[inline]
    fn post<F: FnOnce() + Send + 'static>(&self, f: F) {
        let job: Job = Box::new(f);
        let schedule = {
            let mut q = self.0.q.lock();
            q.jobs.push_back(job);
            !std::mem::replace(&mut q.scheduled, true)
        };
        if schedule {
            PoolStrandInner::submit(Arc::clone(&self.0));
        }
    }
}

impl<E: Executor + Send + Sync + 'static> StrandExecutor for OnPool<E> {
    type S = PoolStrand<E>;

    fn name(&self) -> &'static str {
        self.name
    }

    fn strand(&self) -> PoolStrand<E> {
        PoolStrand(Arc::new(PoolStrandInner {
            q: Mutex::new(StrandQueue {
                jobs: VecDeque::new(),
                scheduled: false,
            }),
            pool: Arc::clone(&self.pool),
        }))
    }
}

// ---- a gate ---------------------------------------------------------------------------------

/// Blocks the tasks it hands out until it is opened: used to hold a destination (every worker,
/// or one strand) busy while something is measured about what queues up behind it.
#[derive(Debug)]
pub(crate) struct Gate {
    started: (Sender<()>, Receiver<()>),
    release: (Sender<()>, Receiver<()>),
}

impl Gate {
    pub(crate) fn new() -> Self {
        Gate {
            started: crossbeam_channel::unbounded(),
            release: crossbeam_channel::unbounded(),
        }
    }

    /// A closure that reports it started, then blocks until `open`.
    pub(crate) fn blocker(&self) -> impl FnOnce() + Send + 'static {
        let started = self.started.0.clone();
        let release = self.release.1.clone();
        move || {
            started.send(()).expect("gate dropped");
            release.recv_timeout(HANG).expect("gate never opened");
        }
    }

    /// Waits until `k` blockers are running.
    pub(crate) fn wait_started(&self, k: usize) {
        for _ in 0..k {
            self.started
                .1
                .recv_timeout(HANG)
                .expect("blocker never started");
        }
    }

    /// Releases `k` blockers.
    pub(crate) fn open(&self, k: usize) {
        for _ in 0..k {
            self.release.0.send(()).expect("gate dropped");
        }
    }
}

// ---- delayed executors ----------------------------------------------------------------------

/// "Run this closure no sooner than `delay` from now."
pub(crate) trait DelayedExecutor {
    fn name(&self) -> &'static str;
    fn post_delayed<F: FnOnce() + Send + 'static>(&self, delay: Duration, f: F);
}

impl DelayedExecutor for Taskrunner {
    fn name(&self) -> &'static str {
        "taskrunner"
    }

    #[inline]
    fn post_delayed<F: FnOnce() + Send + 'static>(&self, delay: Duration, f: F) {
        if self
            .pool
            .post_delayed_task(TaskTraits::default(), delay, f)
            .is_err()
        {
            panic!("taskrunner refused a delayed post");
        }
    }
}

/// tokio's idiom: `spawn(async move { sleep(delay).await; f() })`. The sleep starts when the
/// spawned task is first polled, not at the post (so it can never fire early by the poster's
/// clock, and a late first poll shows up as lateness).
#[derive(Debug)]
pub(crate) struct TokioSleep(pub(crate) tokio::runtime::Runtime);

impl DelayedExecutor for TokioSleep {
    fn name(&self) -> &'static str {
        "tokio_sleep"
    }

    #[inline]
    fn post_delayed<F: FnOnce() + Send + 'static>(&self, delay: Duration, f: F) {
        drop(self.0.spawn(async move {
            tokio::time::sleep(delay).await;
            f();
        }));
    }
}

/// The delayed floor: one timer thread owning a `BinaryHeap` of deadlines, fed through a
/// crossbeam channel; due closures go to the [`Floor`]'s channel. A post is a clock read, a box
/// and a channel send; the heap work happens on the timer thread.
pub(crate) struct HeapTimerFloor {
    timer_tx: Option<Sender<(std::time::Instant, Job)>>,
    timer: Option<JoinHandle<()>>,
    floor: Floor,
}

impl std::fmt::Debug for HeapTimerFloor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeapTimerFloor")
            .field("floor", &self.floor)
            .finish_non_exhaustive()
    }
}

/// A heap entry: earliest deadline first, then posting order.
struct Due {
    at: std::time::Instant,
    seq: u64,
    job: Job,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest deadline.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl HeapTimerFloor {
    pub(crate) fn new(workers: usize) -> Self {
        let floor = Floor::new(workers);
        let run_tx = floor.tx.clone();
        let (timer_tx, rx) = crossbeam_channel::unbounded::<(std::time::Instant, Job)>();
        let timer = std::thread::Builder::new()
            .name("floor-timer".into())
            .spawn(move || {
                let mut heap = std::collections::BinaryHeap::<Due>::new();
                let mut seq = 0u64;
                loop {
                    let now = std::time::Instant::now();
                    while heap.peek().is_some_and(|d| d.at <= now) {
                        let due = heap.pop().expect("peeked");
                        run_tx
                            .send(Msg::Run(due.job))
                            .expect("floor channel closed");
                    }
                    let got = match heap.peek() {
                        Some(d) => match rx.recv_deadline(d.at) {
                            Ok(m) => Some(m),
                            Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
                            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                        },
                        None => match rx.recv() {
                            Ok(m) => Some(m),
                            Err(_) => break,
                        },
                    };
                    // Take everything already queued before looking at the clock again.
                    for (at, job) in got.into_iter().chain(rx.try_iter()) {
                        heap.push(Due { at, seq, job });
                        seq += 1;
                    }
                }
            })
            .expect("spawn floor timer thread");
        HeapTimerFloor {
            timer_tx: Some(timer_tx),
            timer: Some(timer),
            floor,
        }
    }
}

impl Drop for HeapTimerFloor {
    fn drop(&mut self) {
        // Closing the channel stops the timer thread (pending entries are dropped); the floor's
        // own drop then stops its threads.
        drop(self.timer_tx.take());
        if let Some(t) = self.timer.take() {
            let _ = t.join();
        }
    }
}

impl DelayedExecutor for HeapTimerFloor {
    fn name(&self) -> &'static str {
        "floor_heap_timer"
    }

    #[inline]
    fn post_delayed<F: FnOnce() + Send + 'static>(&self, delay: Duration, f: F) {
        let at = std::time::Instant::now() + delay;
        self.timer_tx
            .as_ref()
            .expect("timer running")
            .send((at, Box::new(f)))
            .expect("floor timer gone");
    }
}
