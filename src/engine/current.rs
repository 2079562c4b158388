//! The per-thread "what is running here" context: the sequence token that
//! `runs_tasks_in_current_sequence`, `SequencedTaskRunner::current` and `SequenceChecker` read.
//!
//! A worker installs the context for the duration of each task and restores the previous one
//! afterwards. Sequenced tasks install their sequence (so `current()` works); one-off parallel
//! tasks install only a token unique to that task (Chromium: "no handle from an unsequenced
//! task"). A thread that is not running any pool task has a token of its own, so checkers
//! degrade to thread checks there, as in Chromium.

use std::cell::{Cell, RefCell};

use crate::base::shim::Arc;
use crate::base::traits::PanicPolicy;
use crate::engine::runner_stats::RunnerStats;
use crate::engine::scheduler::Sequence;
use crate::engine::task::next_id;
use crate::engine::Engine;
use std::sync::Arc as StdArc;

/// What the running task is: installed by the worker for each task. Plain `Cell`s with no
/// destructor, so that every access is a plain thread-local load or store (a thread-local with
/// a destructor checks its registration on each access); the running task's sequence, which
/// holds an `Arc`, lives in `TASK_SEQ` and is touched only when a sequence is installed or
/// removed (`HAS_SEQ`).
struct TaskCtx {
    /// The token of the task running on this thread, or 0 when none is.
    token: Cell<u64>,
    /// `MAY_BLOCK`, `BEST_EFFORT`, `HAS_SEQ` and the panic policy (`POLICY_*`).
    flags: Cell<u8>,
    /// Tokens for one-off tasks run on this thread, taken from the process-wide counter a
    /// block at a time (`next` .. `end`), so that a one-off task costs no shared counter.
    next_token: Cell<u64>,
    token_end: Cell<u64>,
}

/// The running task declared may-block.
const MAY_BLOCK: u8 = 1;
/// The running task was taken at best-effort priority (for `blocking()` accounting).
const BEST_EFFORT: u8 = 2;
/// `TASK_SEQ` holds the running task's sequence.
const HAS_SEQ: u8 = 4;
/// Bits 3-4: the panic policy of the running task (for panics that orchestration tasks catch
/// themselves and report through `unwind::report_task_panic`).
const POLICY_SHIFT: u8 = 3;

fn policy_bits(p: PanicPolicy) -> u8 {
    (match p {
        PanicPolicy::Isolate => 0,
        PanicPolicy::Poison => 1,
        PanicPolicy::Abort => 2,
    }) << POLICY_SHIFT
}

fn policy_of(flags: u8) -> PanicPolicy {
    match (flags >> POLICY_SHIFT) & 3 {
        0 => PanicPolicy::Isolate,
        1 => PanicPolicy::Poison,
        _ => PanicPolicy::Abort,
    }
}

/// How many one-off tokens a thread takes at a time.
const TOKEN_BLOCK: u64 = 1024;

thread_local! {
    static TASK: TaskCtx = const {
        TaskCtx {
            token: Cell::new(0),
            flags: Cell::new(0),
            next_token: Cell::new(0),
            token_end: Cell::new(0),
        }
    };
    /// The sequence of the running task, when it is sequenced.
    static TASK_SEQ: RefCell<Option<Arc<Sequence>>> = const { RefCell::new(None) };
    /// A token for this thread when it is not running a pool task (lazily assigned).
    static THREAD_TOKEN: Cell<u64> = const { Cell::new(0) };
    /// The pool this thread works for (set once per worker or dedicated thread).
    static POOL: RefCell<Option<Arc<Engine>>> = const { RefCell::new(None) };
    /// This thread is a worker of a pool's thread group (not a dedicated thread).
    static IS_WORKER: Cell<bool> = const { Cell::new(false) };
    /// A test environment installed as the global pool for this thread's scope.
    #[cfg(feature = "test-util")]
    static GLOBAL_OVERRIDE: RefCell<Option<Arc<Engine>>> = const { RefCell::new(None) };
    /// The pool this thread belongs to (worker, dedicated or delay service thread), by address;
    /// 0 on other threads.
    static THREAD_OF: Cell<usize> = const { Cell::new(0) };
    /// The pool whose shutdown-completion duties this thread is running (by address), or 0.
    static COMPLETING: Cell<usize> = const { Cell::new(0) };
    /// Nesting depth of `blocking()` scopes on this thread (only the outermost counts).
    static BLOCKING_DEPTH: Cell<u32> = const { Cell::new(0) };
    /// This thread drives seeded single-thread test environments (count): a blocking join here
    /// could never finish, since only this thread runs their tasks.
    #[cfg(feature = "test-util")]
    static DRIVES_TEST_ENV: Cell<u32> = const { Cell::new(0) };
    /// Of those, the seeded single-thread ones (count): there *any* blocking wait for pool
    /// work would hang, since only this thread runs their tasks.
    #[cfg(feature = "test-util")]
    static DRIVES_SEEDED_ENV: Cell<u32> = const { Cell::new(0) };
}

/// The token of whatever is running on this thread: the running task's sequence, or this
/// thread's own token when no pool task runs here.
pub(crate) fn current_token() -> u64 {
    let t = TASK.with(|t| t.token.get());
    if t != 0 {
        return t;
    }
    THREAD_TOKEN.with(|c| {
        if c.get() == 0 {
            c.set(next_id());
        }
        c.get()
    })
}

/// Panics with advice if the calling task runs on the sequence `token`: a blocking wait there
/// for work queued on the same sequence (behind the caller) could never end, since the
/// sequence runs one task at a time and the caller is that task. `what` names the wait
/// (`"TaskHandle::join"`).
#[track_caller]
pub(crate) fn assert_not_waiting_on_own_sequence(token: u64, what: &str) {
    if token != 0 && TASK.with(|t| t.token.get()) == token {
        panic!(
            "{what} would wait forever: the work it waits for is queued on the sequence that is \
             running this very task, and a sequence runs one task at a time. Don't block on your own \
             sequence: use post_task_and_reply_with_result, TaskHandle::then, or `.await` the handle \
             inside a future (post_future) instead"
        );
    }
}

/// Marks this thread as one of the threads of the pool at `pool` (an `Arc::as_ptr` address),
/// for its lifetime.
pub(crate) fn set_thread_of(pool: usize) {
    THREAD_OF.with(|c| c.set(pool));
}

/// `true` on a worker, dedicated or delay service thread of the pool at `pool`.
pub(crate) fn is_thread_of(pool: usize) -> bool {
    THREAD_OF.with(Cell::get) == pool
}

/// This thread runs (`Some`) or finished (`None`) the shutdown-completion duties of a pool.
pub(crate) fn set_completing(pool: Option<usize>) {
    COMPLETING.with(|c| c.set(pool.unwrap_or(0)));
}

/// `true` while this thread runs the shutdown-completion duties of the pool at `pool`.
pub(crate) fn is_completing(pool: usize) -> bool {
    COMPLETING.with(Cell::get) == pool
}

/// `true` while a pool task runs on this thread.
pub(crate) fn in_task() -> bool {
    TASK.with(|t| t.token.get()) != 0
}

/// Seeded test mode: this thread starts (`+1`) or stops (`-1`) driving an environment.
#[cfg(feature = "test-util")]
pub(crate) fn drive_test_env(delta: i32) {
    DRIVES_TEST_ENV.with(|c| c.set(c.get().saturating_add_signed(delta)));
}

/// Seeded test mode: this thread starts (`+1`) or stops (`-1`) driving a seeded environment.
#[cfg(feature = "test-util")]
pub(crate) fn drive_seeded_env(delta: i32) {
    DRIVES_SEEDED_ENV.with(|c| c.set(c.get().saturating_add_signed(delta)));
}

/// `true` if this thread drives a seeded single-thread test environment.
#[cfg(feature = "test-util")]
pub(crate) fn drives_seeded_env() -> bool {
    DRIVES_SEEDED_ENV.with(Cell::get) > 0
}

/// `true` if this thread drives a test environment.
#[cfg(feature = "test-util")]
pub(crate) fn drives_test_env() -> bool {
    DRIVES_TEST_ENV.with(Cell::get) > 0
}

/// Installs (or, with `None`, removes) this thread's global-pool override; returns the old one.
#[cfg(feature = "test-util")]
pub(crate) fn set_global_override(p: Option<Arc<Engine>>) -> Option<Arc<Engine>> {
    GLOBAL_OVERRIDE.with(|g| std::mem::replace(&mut *g.borrow_mut(), p))
}

/// The pool the free functions should use instead of the global one, if any: this thread's
/// override, or the pool whose thread this is if it acts as the global pool.
#[cfg(feature = "test-util")]
pub(crate) fn global_override() -> Option<Arc<Engine>> {
    if let Some(p) = GLOBAL_OVERRIDE.with(|g| g.borrow().clone()) {
        return Some(p);
    }
    current_pool().filter(|p| p.acts_as_global.load(std::sync::atomic::Ordering::Acquire))
}

/// The panic policy of the running task (`Isolate` outside tasks).
pub(crate) fn panic_policy() -> PanicPolicy {
    policy_of(TASK.with(|t| t.flags.get()))
}

/// Whether the running task was taken at best-effort priority.
pub(crate) fn is_best_effort() -> bool {
    TASK.with(|t| t.flags.get()) & BEST_EFFORT != 0
}

/// Enters (`true`) or leaves (`false`) a `blocking()` scope; returns the depth before entering
/// / after leaving, so only the outermost scope (depth 0) adjusts the pool.
pub(crate) fn blocking_depth(enter: bool) -> u32 {
    BLOCKING_DEPTH.with(|d| {
        if enter {
            let before = d.get();
            d.set(before + 1);
            before
        } else {
            let after = d.get() - 1;
            d.set(after);
            after
        }
    })
}

/// Marks this thread as a thread-group worker.
pub(crate) fn set_worker() {
    IS_WORKER.with(|w| w.set(true));
}

/// `true` on a thread-group worker.
pub(crate) fn is_worker() -> bool {
    IS_WORKER.with(Cell::get)
}

/// Whether the task running on this thread declared may-block (false outside tasks).
pub(crate) fn may_block() -> bool {
    TASK.with(|t| t.flags.get()) & MAY_BLOCK != 0
}

/// The running task's sequence and pool, if the running task is sequenced.
pub(crate) fn current_sequence() -> Option<(Arc<Sequence>, Arc<Engine>)> {
    let seq = TASK_SEQ.with(|s| s.borrow().clone())?;
    let pool = POOL.with(|p| p.borrow().clone())?;
    Some((seq, pool))
}

thread_local! {
    /// The named runner whose task runs on this thread (for panic reports that the task
    /// catches itself, and their counts).
    static RUNNER: RefCell<Option<StdArc<RunnerStats>>> = const { RefCell::new(None) };
    /// The address of the parallel runner whose task runs on this thread (0: none), so that
    /// the runner's `flush` can refuse to wait for itself.
    static PARALLEL_RUNNER: Cell<usize> = const { Cell::new(0) };
}

/// Marks the parallel runner (by address) whose task is about to run; returns the previous
/// mark, to be put back when the task ends.
pub(crate) fn set_parallel_runner(addr: usize) -> usize {
    PARALLEL_RUNNER.with(|p| p.replace(addr))
}

/// The address of the parallel runner whose task runs on this thread (0: none).
pub(crate) fn parallel_runner() -> usize {
    PARALLEL_RUNNER.with(|p| p.get())
}

/// Installs the named runner of the task about to run; returns the one it replaces (to be
/// put back when the task ends).
pub(crate) fn set_running_runner(
    runner: Option<StdArc<RunnerStats>>,
) -> Option<StdArc<RunnerStats>> {
    RUNNER.with(|r| std::mem::replace(&mut *r.borrow_mut(), runner))
}

/// The name of the named runner whose task runs on this thread.
pub(crate) fn running_runner_name() -> Option<StdArc<str>> {
    RUNNER.with(|r| r.borrow().as_ref().map(|s| s.name()))
}

/// Runs `f` on the counters of the named runner whose task runs on this thread.
pub(crate) fn with_running_runner(f: impl FnOnce(&RunnerStats)) {
    RUNNER.with(|r| {
        if let Some(s) = r.borrow().as_deref() {
            f(s)
        }
    });
}

/// Runs `f` on the sequence of the running task (borrowed from TLS, no clone).
pub(crate) fn running_sequence_ref<R>(f: impl FnOnce(&Sequence) -> R) -> Option<R> {
    TASK_SEQ.with(|s| s.borrow().as_deref().map(f))
}

/// The pool this thread works for, if it is one of a pool's threads.
pub(crate) fn current_pool() -> Option<Arc<Engine>> {
    POOL.with(|p| p.borrow().clone())
}

/// Marks this thread as a thread of `pool` for its lifetime.
pub(crate) fn set_thread_pool(pool: Arc<Engine>) {
    POOL.with(|p| *p.borrow_mut() = Some(pool));
}

/// Forgets the pool (on thread exit, so the `Arc` is released before the thread's TLS dies).
pub(crate) fn clear_thread_pool() {
    let old = POOL.with(|p| p.borrow_mut().take());
    drop(old);
}

/// Installs a task's context; `exit` restores what was there before. Moves the sequence `Arc`
/// in and out of the thread-local rather than cloning it; a one-off task run outside any
/// sequence touches only the destructor-free part of the context.
pub(crate) struct TaskScope {
    prev_token: u64,
    prev_flags: u8,
    prev_seq: Option<Arc<Sequence>>,
}

/// What a task is, for [`TaskScope::enter_task`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct TaskKind {
    pub(crate) may_block: bool,
    pub(crate) best_effort: bool,
    pub(crate) policy: PanicPolicy,
}

impl TaskScope {
    /// A context for dropping a task's captures (or values) in a sequence's name.
    #[inline]
    pub(crate) fn enter(token: u64, seq: Option<Arc<Sequence>>, may_block: bool) -> Self {
        Self::enter_task(
            token,
            seq,
            TaskKind {
                may_block,
                best_effort: false,
                policy: PanicPolicy::Isolate,
            },
        )
        .0
    }

    /// The context of a task about to run. `token` 0 takes a fresh one-off token. Returns the
    /// scope and the token installed.
    #[inline]
    pub(crate) fn enter_task(
        token: u64,
        seq: Option<Arc<Sequence>>,
        kind: TaskKind,
    ) -> (Self, u64) {
        let flags = if kind.may_block { MAY_BLOCK } else { 0 }
            | if kind.best_effort { BEST_EFFORT } else { 0 }
            | if seq.is_some() { HAS_SEQ } else { 0 }
            | policy_bits(kind.policy);
        let (token, prev_token, prev_flags) = TASK.with(|t| {
            let token = if token != 0 {
                token
            } else {
                let next = t.next_token.get();
                if next < t.token_end.get() {
                    t.next_token.set(next + 1);
                    next
                } else {
                    let block = crate::engine::task::next_ids(TOKEN_BLOCK);
                    t.next_token.set(block + 1);
                    t.token_end.set(block + TOKEN_BLOCK);
                    block
                }
            };
            (token, t.token.replace(token), t.flags.replace(flags))
        });
        let prev_seq = if seq.is_some() || prev_flags & HAS_SEQ != 0 {
            TASK_SEQ.with(|s| std::mem::replace(&mut *s.borrow_mut(), seq))
        } else {
            None
        };
        let scope = TaskScope {
            prev_token,
            prev_flags,
            prev_seq,
        };
        (scope, token)
    }

    /// Restores the previous context and gives back the sequence that was installed.
    #[inline]
    pub(crate) fn exit(self) -> Option<Arc<Sequence>> {
        let flags = TASK.with(|t| {
            t.token.set(self.prev_token);
            t.flags.replace(self.prev_flags)
        });
        if flags & HAS_SEQ != 0 || self.prev_seq.is_some() {
            TASK_SEQ.with(|s| std::mem::replace(&mut *s.borrow_mut(), self.prev_seq))
        } else {
            None
        }
    }
}
