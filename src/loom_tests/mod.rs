//! Loom models of the scheduler's state machines, run against the real code through the
//! `crate::sync` shim. Run with (this is `ci/loom.sh`):
//!
//! ```text
//! RUSTFLAGS="--cfg loom -C debug-assertions" LOOM_MAX_PREEMPTIONS=2 \
//!   cargo test --lib --release --target-dir target/loom -- loom_ --test-threads=2
//! ```
//!
//! Every model drives the real scheduler code: `Sequence::push/take_task/did_run/clear`,
//! `Tracker`, `Group::push_sequence/push_one_off/next_work/try_reclaim/complete`, `Parker`,
//! `Wakeups::run`, `run_sequence_task`, the one-off run path, and `Inner`'s post, forward and
//! shutdown paths. Worker threads are model threads running [`worker_loop`], which is
//! `worker_main`'s loop minus its thread-local bookkeeping; no model starts an OS thread. A
//! worker is created the real way ([`new_worker`]: a post makes the group request a spawn, the
//! model takes the request out of the `Wakeups` and runs the worker itself), so the group's
//! worker accounting is the production one.
//!
//! Assertions inside task closures would be swallowed by the worker's `catch_unwind`, so tasks
//! only record what they saw in a [`Probe`] and the model asserts afterwards. A lost wake-up
//! shows up as a loom deadlock (every thread blocked), a double enqueue as a failed
//! `debug_assert` in `Sequence::take_task` (the models are built with debug assertions).
//!
//! Times: release build, 2 cores, one model at a time. At the CI bound of 2 preemptions the
//! whole run (`--test-threads=2`, 32 models: the table below, the `handle` and `timer` files,
//! and the four `loom_keyed_*` models in `src/keyed.rs`) takes about 8 s of model checking; the
//! 17 models in this table take about 65 s at bound 3 (every model passes there too). "Executions" is what loom explored at bound 2
//! (`--nocapture` prints it).
//!
//! | model | state machine / transition covered | executions | time |
//! |---|---|---|---|
//! | `loom_sequence_post_while_running` | sequence `Running → Queued` (`did_run` finds the poster's task; the post is `Push::Done`) vs `Running → Idle` then `Idle → Queued` (`Push::Enqueue`): exactly one enqueue duty, no task lost, happens-before task 1 → task 2 across threads | 45 | 0.01 s |
//! | `loom_sequence_two_posters_race` | sequence `Idle → Queued` by two `Inner::post`s: exactly one group entry, both tasks run one at a time | 42 | 0.01 s |
//! | `loom_sequence_post_while_queued` | post to a `Queued` sequence while the worker pops it (`next_work`, `take_task`) and runs it: no second group entry, FIFO, happens-before; or post after it drained, waking the worker | 11 | < 0.01 s |
//! | `loom_sequence_two_posters_vs_worker` | the same with two concurrent posters (three threads) | 250 | 0.02 s |
//! | `loom_shutdown_block_register_vs_start` | tracker `items += 1` (register on idle → queued, under the sequence lock) vs `STARTED` + completion check: refused only after completion, else completion waits for `did_run` → `unregister_block`; shutdown always completes | 315 | 0.01 s |
//! | `loom_shutdown_skip_run_vs_start` | running slot (`may_run` under the slot lock) vs `STARTED` + the completion check's slot scan: a skip task is skipped, or runs and completion waits for its `after_run` | 337 | 0.02 s |
//! | `loom_shutdown_block_post_vs_shutdown` | `Inner::post` of a block one-off (item taken before boxing) vs `Inner::start_shutdown`, live worker: `Ok` means it runs before completion, a refusal hands the closure back | 5225 | 0.32 s |
//! | `loom_shutdown_block_sequence_post_vs_shutdown` | the same through a block-shutdown sequence (post item, then the sequence's own, then the post item released) | 18393 | 1.13 s |
//! | `loom_shutdown_requeue_vs_complete` | `next_work` re-queuing a skip sequence vs `Group::complete` (real shutdown path): re-run before shutdown, drained, or discarded, never left queued; nothing runs after completion; the worker exits | 331 | 0.02 s |
//! | `loom_shutdown_block_requeue_vs_start` | the same for a block sequence: its last task runs and `did_run` → `unregister_block` completes shutdown on the worker | 207 | 0.01 s |
//! | `loom_delay_forward_vs_shutdown` | `Inner::forward_ripe` of a delayed block task vs shutdown, live worker: registered after `STARTED` it is skipped and unregisters; never runs after completion; shutdown completes | 4099 | 0.38 s |
//! | `loom_delay_add_vs_stop` | `DelayManager::add` (starts the service thread) vs `stop()`: refused, taken back, or forwarded then dropped; never left in the heap; the service thread always exits | 322 | 0.03 s |
//! | `loom_delay_add_vs_shutdown_with_worker` | the whole delayed path (add → service thread → `forward_ripe` → inbox → worker) vs shutdown: a skip task runs only if it started before shutdown, never after completion; every thread exits | 15541 | 1.96 s |
//! | `loom_group_park_vs_post` | inbox + `sleepy` handshake, idle stack, `Parker` vs `push_sequence` + `Wakeups::run`: no lost wake-up, the worker runs the task | 15 | < 0.01 s |
//! | `loom_group_park_vs_post_one_off` | the same through `push_one_off` | 15 | < 0.01 s |
//! | `loom_group_reclaim_vs_post` | idle timeout (`try_reclaim`) vs a post: the worker stays and runs the task, or leaves and the post requests exactly one replacement | 16 | < 0.01 s |
//! | `loom_group_two_parked_two_posts_then_terminate` | two parked workers, two posts, then `set_terminating` (last handle dropped): queued work still runs, both workers exit | 1816 | 0.13 s |
//!
//! The models were checked against deliberately broken copies of the code; each of these was
//! caught: `Parker::park` not consuming a pending wake-up; `ensure_enough_workers` not
//! unparking; the parking worker not draining the inbox after raising `sleepy`; a post reading
//! `sleepy` before pushing into the inbox; `may_run` checked outside the slot lock; a skip
//! task's `after_run` not running the completion check; a block-sequence post without its
//! post item; `Sequence::push` enqueuing a busy sequence; `did_run` dropping the rest of the
//! queue; `register_block` ignoring `COMPLETED`; `DelayManager::add` ignoring `stopped`; the
//! service thread ignoring `stopped`. Making every tracker ordering `Relaxed` is *not* caught:
//! in the paths modelled, each decision that depends on the state word is also ordered by a
//! lock (slot, completion, sequence, inbox) or by a read-modify-write on the word itself.
//!
//! Limits: loom threads share one OS thread's thread-locals, so no model runs two sequenced
//! tasks on two model workers at once (`TaskScope` would interleave); loom's timed waits never
//! time out, so idle timeouts are modelled by taking the timeout branch directly; the bounded
//! spin before parking is compiled out under loom (as in `worker_main`); dedicated threads
//! (single-thread runners) are not modelled.

mod delay_handoff;
mod future_task;
mod group_wakeups;
mod handle;
mod orchestration;
mod sequence_state;
mod shutdown;
mod timer;

use std::panic::Location;

use crate::pool::Inner;
use crate::scheduler::OneOff;
use crate::sync::{Arc, AtomicUsize, Mutex, Ordering};
use crate::task::Task;
use crate::traits::TaskTraits;
use crate::worker::{run_one_off_for_loom, run_sequence_task, Finished, Work, WorkerShared};

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
        inner: Option<&Arc<Inner>>,
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
    pub(super) fn task(&self, id: usize, inner: Option<&Arc<Inner>>) -> Task {
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

/// How a [`worker_loop`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum LoopEnd {
    /// `next_work` said `Exit`.
    Exit,
    /// The worker was idle and the model's `done` condition held (instead of parking).
    Done,
    /// The worker timed out while idle and `try_reclaim` removed it from the pool.
    Reclaimed,
}

/// The worker loop of `worker_main`, run on a model thread: ask the group for work (handing
/// back the previous piece), perform the wake-ups after the locks are released, run the task
/// through the real run paths; with nothing to do, ask once more allowing a park (`Retry`;
/// under loom the bounded spin is skipped, as in `worker_main`), then park.
///
/// `done` is checked when the worker is idle, before it parks: a model returns once its tasks
/// have run instead of parking forever. With `time_out_first_idle`, the first idle turn takes
/// the idle-timeout branch (`try_reclaim`, and if that fails, consume the pending wake-up)
/// instead of parking; `Parker::park` under loom never times out, so this is how models reach
/// that branch.
pub(super) fn worker_loop(
    inner: &Arc<Inner>,
    me: &Arc<WorkerShared>,
    mut finished: Option<Finished>,
    done: &dyn Fn() -> bool,
    mut time_out_first_idle: bool,
) -> LoopEnd {
    let mut may_park = false;
    loop {
        let (work, mut wakeups) = inner.group.next_work(me, finished.take(), may_park);
        assert!(
            wakeups.take_spawns().is_empty(),
            "next_work asked for a new worker although every worker is awake or idle"
        );
        wakeups.run(inner);
        match work {
            Work::Sequence(seq, priority) => {
                may_park = false;
                let requeue = run_sequence_task(inner, seq, me);
                finished = Some(Finished { priority, requeue });
            }
            Work::Single(one, priority) => {
                may_park = false;
                run_one_off_for_loom(inner, one, me);
                finished = Some(Finished {
                    priority,
                    requeue: None,
                });
            }
            Work::Retry => may_park = true,
            Work::Idle => {
                may_park = false;
                if done() {
                    return LoopEnd::Done;
                }
                if time_out_first_idle {
                    time_out_first_idle = false;
                    if inner.group.try_reclaim(me) {
                        return LoopEnd::Reclaimed;
                    }
                    // Not on the idle stack any more: whoever popped this worker unparks it;
                    // consume that wake-up, as `worker_main` does.
                }
                me.parker.park(None);
            }
            Work::Exit => return LoopEnd::Exit,
        }
    }
}

/// Creates a worker the way the pool does (single-threaded set-up, before the model's threads
/// start): a post makes the group request a spawn; the model takes the request, and the new
/// worker takes and runs that first task. Returns the worker, awake, with the `Finished` it
/// hands back on its next `next_work` (it still counts as running).
pub(super) fn new_worker(inner: &Arc<Inner>) -> (Arc<WorkerShared>, Finished) {
    let one = OneOff {
        task: Task::new(Box::new(|| {}), Location::caller()),
        traits: TaskTraits::default(),
    };
    let mut wakeups = inner.group.push_one_off(one, false);
    let mut spawns = wakeups.take_spawns();
    wakeups.run(inner);
    assert_eq!(spawns.len(), 1, "a post with no awake worker requests one");
    let me = spawns.pop().expect("one spawn");
    let (work, mut wakeups) = inner.group.next_work(&me, None, false);
    assert!(wakeups.take_spawns().is_empty());
    wakeups.run(inner);
    let Work::Single(one, priority) = work else {
        panic!("the new worker must get the one-off that requested it, got {work:?}");
    };
    run_one_off_for_loom(inner, one, &me);
    (
        me,
        Finished {
            priority,
            requeue: None,
        },
    )
}
