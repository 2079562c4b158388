//! Loom models of the scheduler's state machines, run against the real code through the
//! `crate::base::shim` shim. Run with (this is `ci/loom.sh`):
//!
//! ```text
//! RUSTFLAGS="--cfg loom -C debug-assertions" LOOM_MAX_PREEMPTIONS=2 \
//!   cargo test --lib --release --target-dir target/loom -- loom_ --test-threads=2
//! ```
//!
//! Every model drives the real code: `Sequence::begin/finish` and the held-mode tickets, the
//! group's ready queues, searching and parking (`Group::push/notify/park_begin`, the worker
//! loop `worker_loop` itself, run on model threads), the running slot and the tracker, and
//! `Engine`'s post, forward, run and shutdown paths. Under loom the ready queues are the shim's
//! stand-ins for crossbeam's deques (same API, built on the shim's lock), since crossbeam's
//! atomics are invisible to loom. A worker is created the real way: a post makes the group ask
//! for a thread (`Wake`), and `Host::spawn` starts the worker loop on a model thread
//! (`Host::spawn` of the engine, under `cfg(loom)`); a model ends by telling the pool its last handle is gone
//! ([`stop_workers`]), which makes the workers exit once nothing is left, and joins them.
//!
//! Assertions inside task closures would be swallowed by the worker's `catch_unwind`, so tasks
//! only record what they saw in a [`Probe`] and the model asserts afterwards. A lost wake-up
//! shows up as a loom deadlock (every thread blocked).
//!
//! | model | state machine / transition covered |
//! |---|---|
//! | `loom_sequence_entries_taken_out_of_order` | two entries of one sequence taken by two workers at once: one runs, the other waits in the reorder buffer and is handed on by `finish`, or finds the sequence idle at its turn; both run once, in order, with happens-before |
//! | `loom_sequence_post_while_running` | a post (position + entry) while the previous entry runs: the unlocked `finish` CAS vs the buffering CAS |
//! | `loom_sequence_three_entries_two_workers` | three entries, two workers, arbitrary take order |
//! | `loom_sequence_held_ticket_vs_update_priority` | a held sequence's ticket taken while `update_priority` re-issues tickets: every task runs exactly once, in order |
//! | `loom_group_post_starts_a_worker` | the first post asks for a worker (`Wake`), which runs the task and parks |
//! | `loom_group_park_vs_post` | the last searcher parking (`end_search`, `park_begin`, fence, look) vs a post's fence and `searching` load: no lost wake-up |
//! | `loom_group_park_vs_post_sequenced` | the same through a sequence entry |
//! | `loom_group_two_posts_two_workers` | two posts on a two-worker pool: the second finds the first worker searching or starts another; both run, nothing is stranded |
//! | `loom_group_reclaim_vs_post` | an idle worker's timeout (`try_reclaim`) vs a post: it stays and runs the task, or leaves and the post starts a new one |
//! | `loom_group_blocking_scope_end_vs_post` | a blocking scope ends with two workers awake: both stand down without taking work while a post that woke nobody (every worker counted awake) races them; the last to stand down looks after its own `active` decrement, so the task runs |
//! | `loom_group_terminate_with_parked_workers` | two parked workers, posts, then the last handle dropped: queued work still runs, both exit |
//! | `loom_shutdown_skip_run_vs_start` | the running slot's handshake: a skip task is skipped, or runs and completion waits for it |
//! | `loom_shutdown_block_post_vs_shutdown` | `Engine::post` of a block one-off (item taken before boxing) vs shutdown: `Ok` means it runs before completion |
//! | `loom_shutdown_block_sequence_post_vs_shutdown` | the same through a block sequence |
//! | `loom_shutdown_post_vs_complete` | a skip post racing completion: it runs before completion or is discarded, never stranded |
//! | `loom_delay_forward_vs_shutdown` | forwarding a ripe block task vs shutdown with a live worker: never runs after completion; completion happens |
//! | `loom_delay_add_vs_stop` | `DelayManager::add` vs `stop`: refused, or taken back; never left behind |
//! | `loom_delay_flexible_post_wakes_a_thread_sleeping_until_later` | a flexible post whose run time plus the leeway is earlier than the service thread's armed deadline wakes it |
//!
//! Plus the `handle`, `orchestration`, `future_task`, `timer`, `repeat`, `flow`, `job`, `bounded` and `gate` files and the `loom_keyed_*`
//! models in `src/runner/keyed.rs`. At the CI bound of 2 preemptions the whole run takes under a
//! minute on 2 cores (`--nocapture` prints the executions explored per model).
//!
//! Limits: loom threads share one OS thread's thread-locals, so no model runs two sequenced
//! tasks on two model workers at once through `run_work` (`TaskScope` would interleave): the
//! sequence models drive `begin`/`finish` directly; loom's timed waits never time out, so idle
//! timeouts are asked for explicitly (`WorkerShared::time_out_next_park`); the bounded spin
//! before parking is compiled out under loom; dedicated threads are not modelled.

mod bounded;
mod delay_handoff;
mod flow;
mod future_task;
mod gate;
mod group_wakeups;
mod handle;
mod job;
mod orchestration;
mod parallel_runner;
mod repeat;
mod sequence_state;
mod shutdown;
mod timer;

use std::panic::Location;

use crate::base::shim::{Arc, AtomicUsize, Mutex, Ordering};
use crate::engine::task::Task;
use crate::engine::Engine;
/// Runs `f` under loom with the preemption bound from `LOOM_MAX_PREEMPTIONS` (default 2).
pub(super) fn model<F>(f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    // A plain std counter: it counts executions, outside the model.
    let iterations = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&iterations);
    let run = move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f();
    };
    if std::env::var_os("LOOM_LOG").is_some() {
        // As `loom::model` does: print loom's trace of each execution (with `LOOM_LOCATION=1`,
        // the source location of every operation), so a failure shows its interleaving.
        let subscriber = tracing_subscriber::fmt::Subscriber::builder()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("LOOM_LOG"))
            .with_test_writer()
            .without_time()
            .finish();
        tracing::subscriber::with_default(subscriber, || b.check(run));
    } else {
        b.check(run);
    }
    // Shown with `--nocapture`: how much of the interleaving space the model covered.
    eprintln!(
        "{}: {} executions explored",
        std::thread::current().name().unwrap_or("model"),
        iterations.load(std::sync::atomic::Ordering::Relaxed)
    );
}

/// One task run, as recorded by the task itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Run {
    /// The task's id.
    pub(super) id: usize,
    /// The id of the task that ran before it on the probe, read with a *relaxed* load: a stale
    /// value means the two runs were not ordered by happens-before (or overlapped).
    pub(super) saw: usize,
    /// Shutdown had already completed when the task started.
    pub(super) after_completion: bool,
}

/// What the tasks of a model did: which ran (in which order, seeing what) and how many were
/// dropped (run or discarded: every task is dropped exactly once).
/// Clones share the record.
#[derive(Clone, Debug)]
pub(super) struct Probe(Arc<Record>);

#[derive(Debug)]
struct Record {
    last: AtomicUsize,
    dropped: AtomicUsize,
    log: Mutex<Vec<Run>>,
}

/// Counts the drop of the closure that holds it.
struct DropTally(Probe);

impl Drop for DropTally {
    fn drop(&mut self) {
        (self.0).0.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

impl Probe {
    pub(super) fn new() -> Self {
        Probe(Arc::new(Record {
            last: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
        }))
    }

    /// A closure recording its run as task `id`. With `inner`, it also records whether
    /// shutdown had completed when it started.
    pub(super) fn closure(
        &self,
        id: usize,
        inner: Option<&Arc<Engine>>,
    ) -> impl FnOnce() + Send + 'static {
        let tally = DropTally(self.clone());
        let inner = inner.cloned();
        move || {
            let probe = &(tally.0).0;
            let after_completion = inner
                .as_ref()
                .is_some_and(|i| i.tracker.shutdown_completed());
            let saw = probe.last.load(Ordering::Relaxed);
            probe.last.store(id, Ordering::Relaxed);
            probe.log.lock().push(Run {
                id,
                saw,
                after_completion,
            });
        }
    }

    /// [`closure`](Self::closure) as a scheduler task.
    pub(super) fn task(&self, id: usize, inner: Option<&Arc<Engine>>) -> Task {
        Task::new(Box::new(self.closure(id, inner)), Location::caller())
    }

    /// The runs so far, in order.
    pub(super) fn runs(&self) -> Vec<Run> {
        self.0.log.lock().clone()
    }

    /// The ids that ran, in order.
    pub(super) fn ran_ids(&self) -> Vec<usize> {
        self.runs().iter().map(|r| r.id).collect()
    }

    /// Tasks dropped so far (ran or discarded).
    pub(super) fn dropped(&self) -> usize {
        self.0.dropped.load(Ordering::SeqCst)
    }

    /// Asserts that the runs form one chain ordered by happens-before: each run saw the one
    /// before it (sequenced tasks: mutual exclusion plus happens-before between consecutive
    /// tasks).
    pub(super) fn assert_chained(&self) {
        let mut prev = 0;
        for r in self.runs() {
            assert_eq!(
                r.saw, prev,
                "task {} did not see task {prev}'s effects (no happens-before, or overlap)",
                r.id
            );
            prev = r.id;
        }
    }
}

/// Ends a model: the pool's last handle is gone, so workers exit once nothing is left (parked
/// ones are woken for it); joins every worker thread.
pub(super) fn stop_workers(inner: &Arc<Engine>) {
    inner.group.set_terminating(true);
    loop {
        let mut workers = inner.group.workers();
        workers.extend(inner.group.take_exited());
        let handles: Vec<_> = workers
            .iter()
            .filter_map(|w| w.join.lock().take())
            .collect();
        if handles.is_empty() {
            break;
        }
        for h in handles {
            h.join().unwrap();
        }
    }
}
