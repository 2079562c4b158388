#![allow(clippy::disallowed_types, clippy::disallowed_methods)]
//! Keyed sequences (`KeyedTaskRunner<K>`): per-key FIFO and mutual exclusion, parallelism
//! across keys, retirement of idle keys (bounded memory), post vs retirement races, panics,
//! poison, delayed and cancelled tasks, shutdown.
//!
//! Nothing here asserts on timing: timeouts only turn a hang into a failure.

use std::convert::Infallible;
use std::hash::{Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use taskrunner::executor::Executor;
use taskrunner::fork_join::{invoke_all, TaskGroup};
use taskrunner::retry::{retry, RetryPolicy};
use taskrunner::time::{repeat, RepeatMode};
use taskrunner::{
    Deferred, KeyRunner, KeyedTaskRunner, PanicPolicy, PostRefusal, PostTask, SequencedTaskRunner,
    ShutdownBehavior, TaskTraits, ThreadPool,
};

/// Generous: only turns a hang into a failure.
const T: Duration = Duration::from_secs(30);

fn quiet_pool(workers: usize) -> ThreadPool {
    ThreadPool::builder()
        .max_workers(workers)
        .panic_handler(|_| {})
        .build()
        .unwrap()
}

/// `TASKRUNNER_STRESS_SCALE` (default 1.0) scales the stress loops; never below 1 iteration.
fn scaled(n: usize) -> usize {
    let scale: f64 = std::env::var("TASKRUNNER_STRESS_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s: &f64| *s > 0.0)
        .unwrap_or(1.0);
    ((n as f64 * scale) as usize).max(1)
}

/// Polls `cond` until it holds; panics with `what` after [`T`].
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + T;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// An n-party barrier whose wait gives up after a timeout (so a broken runner fails the test
/// instead of hanging it). `wait` returns `true` if all parties arrived.
struct TimedBarrier {
    arrived: Mutex<usize>,
    cv: Condvar,
    parties: usize,
}

impl TimedBarrier {
    fn new(parties: usize) -> Arc<Self> {
        Arc::new(TimedBarrier {
            arrived: Mutex::new(0),
            cv: Condvar::new(),
            parties,
        })
    }

    fn wait(&self, timeout: Duration) -> bool {
        let mut n = self.arrived.lock().unwrap();
        *n += 1;
        self.cv.notify_all();
        let (n, _) = self
            .cv
            .wait_timeout_while(n, timeout, |n| *n < self.parties)
            .unwrap();
        *n >= self.parties
    }
}

struct DropCount(Arc<AtomicUsize>);
impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A key that counts its live copies, to prove the runner frees retired keys (the map's copy
/// and the entry's copy), not just forgets them.
struct TrackedKey {
    id: u64,
    live: Arc<AtomicIsize>,
}

impl TrackedKey {
    fn new(id: u64, live: &Arc<AtomicIsize>) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        TrackedKey {
            id,
            live: Arc::clone(live),
        }
    }
}

impl Clone for TrackedKey {
    fn clone(&self) -> Self {
        TrackedKey::new(self.id, &self.live)
    }
}

impl Drop for TrackedKey {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl PartialEq for TrackedKey {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl Eq for TrackedKey {}
impl Hash for TrackedKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

/// A tiny deterministic generator (xorshift), so stress runs are reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn keyed_runner_is_send_sync_clone_and_debug() {
    fn assert_traits<T: Send + Sync + Clone + std::fmt::Debug + 'static>() {}
    assert_traits::<KeyedTaskRunner<u64>>();
    assert_traits::<KeyedTaskRunner<String>>();
    let pool = quiet_pool(1);
    let keyed = pool.create_keyed_task_runner::<u64>(TaskTraits::default());
    assert!(format!("{keyed:?}").contains("live_keys: 0"));
}

/// Many posting threads, many keys, keys shared between threads: the tasks of one key never
/// overlap, and each thread's posts to a key run in the order it posted them.
#[test]
fn per_key_fifo_and_mutual_exclusion_under_many_posters() {
    const THREADS: usize = 6;
    const KEYS: usize = 48;
    let per_thread = scaled(3000);

    struct KeyState {
        busy: AtomicBool,
        /// Per posting thread: 1 + the index of its last task that ran for this key.
        last: Vec<AtomicUsize>,
    }
    let keys: Arc<Vec<KeyState>> = Arc::new(
        (0..KEYS)
            .map(|_| KeyState {
                busy: AtomicBool::new(false),
                last: (0..THREADS).map(|_| AtomicUsize::new(0)).collect(),
            })
            .collect(),
    );
    let overlaps = Arc::new(AtomicUsize::new(0));
    let reorders = Arc::new(AtomicUsize::new(0));

    let pool = quiet_pool(4);
    let keyed = pool.create_keyed_task_runner::<usize>(TaskTraits::default());
    let (done_tx, done_rx) = mpsc::channel::<()>();

    let posters: Vec<_> = (0..THREADS)
        .map(|t| {
            let (keyed, keys, done_tx) = (keyed.clone(), keys.clone(), done_tx.clone());
            let (overlaps, reorders) = (overlaps.clone(), reorders.clone());
            thread::spawn(move || {
                let mut rng = Rng(0x9E37_79B9 + t as u64);
                for i in 0..per_thread {
                    let k = (rng.next() % KEYS as u64) as usize;
                    let (keys, done_tx) = (keys.clone(), done_tx.clone());
                    let (overlaps, reorders) = (overlaps.clone(), reorders.clone());
                    keyed
                        .post_task(k, move || {
                            let s = &keys[k];
                            if s.busy.swap(true, Ordering::SeqCst) {
                                overlaps.fetch_add(1, Ordering::SeqCst);
                            }
                            if s.last[t].load(Ordering::SeqCst) > i {
                                reorders.fetch_add(1, Ordering::SeqCst);
                            }
                            s.last[t].store(i + 1, Ordering::SeqCst);
                            if i % 7 == 0 {
                                thread::yield_now(); // widen the window for an overlap
                            }
                            s.busy.store(false, Ordering::SeqCst);
                            done_tx.send(()).unwrap();
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    for p in posters {
        p.join().unwrap();
    }
    drop(done_tx);
    for n in 0..THREADS * per_thread {
        done_rx
            .recv_timeout(T)
            .unwrap_or_else(|e| panic!("only {n} tasks ran: {e}"));
    }
    assert_eq!(
        overlaps.load(Ordering::SeqCst),
        0,
        "tasks of a key overlapped"
    );
    assert_eq!(
        reorders.load(Ordering::SeqCst),
        0,
        "tasks of a key ran out of order"
    );
    wait_until("every key retired", || keyed.live_keys() == 0);
}

/// Two keys' tasks run at the same time: each waits at a two-party barrier, which only opens
/// if both are running at once. (A broken runner times the barrier out instead of hanging.)
#[test]
fn different_keys_run_in_parallel() {
    let pool = quiet_pool(2);
    let keyed = pool.create_keyed_task_runner::<&'static str>(TaskTraits::default());
    let barrier = TimedBarrier::new(2);
    let (b1, b2) = (barrier.clone(), barrier.clone());
    let a = keyed
        .post_task_with_result("a", move || b1.wait(T))
        .unwrap();
    let b = keyed
        .post_task_with_result("b", move || b2.wait(T))
        .unwrap();
    assert!(a.join().unwrap(), "key a's task never met key b's");
    assert!(b.join().unwrap(), "key b's task never met key a's");
}

/// The same with four keys on four workers, while each key also has a queue behind it.
#[test]
fn four_keys_overlap_and_each_keeps_its_order() {
    let pool = quiet_pool(4);
    let keyed = pool.create_keyed_task_runner::<u32>(TaskTraits::default());
    let barrier = TimedBarrier::new(4);
    let (tx, rx) = mpsc::channel();
    let mut met = Vec::new();
    for k in 0..4 {
        let b = barrier.clone();
        met.push(keyed.post_task_with_result(k, move || b.wait(T)).unwrap());
        for i in 0..10 {
            let tx = tx.clone();
            keyed
                .post_task(k, move || tx.send((k, i)).unwrap())
                .unwrap();
        }
    }
    drop(tx);
    for h in met {
        assert!(h.join().unwrap(), "the four keys did not run at once");
    }
    let seen: Vec<(u32, u32)> = rx.iter().collect();
    assert_eq!(seen.len(), 40);
    for k in 0..4 {
        let order: Vec<u32> = seen.iter().filter(|s| s.0 == k).map(|s| s.1).collect();
        assert_eq!(order, (0..10).collect::<Vec<_>>());
    }
}

/// 100k distinct keys, posted in batches of 10k: the map never holds more than the batch, and
/// after each batch is joined it is empty again. Every copy of every key is freed.
#[test]
fn idle_keys_are_retired_so_memory_stays_bounded_over_100k_keys() {
    const TOTAL: u64 = 100_000;
    const BATCH: u64 = 10_000;
    let live_key_copies = Arc::new(AtomicIsize::new(0));
    let pool = quiet_pool(2);
    let keyed = pool.create_keyed_task_runner::<TrackedKey>(TaskTraits::default());
    let ran = Arc::new(AtomicUsize::new(0));
    let mut peak = 0;
    for batch in 0..TOTAL / BATCH {
        let handles: Vec<_> = (0..BATCH)
            .map(|i| {
                let ran = ran.clone();
                let key = TrackedKey::new(batch * BATCH + i, &live_key_copies);
                let h = keyed
                    .post_task_with_result(key, move || {
                        ran.fetch_add(1, Ordering::Relaxed);
                    })
                    .unwrap();
                if i % 1000 == 0 {
                    peak = peak.max(keyed.live_keys());
                }
                h
            })
            .collect();
        peak = peak.max(keyed.live_keys());
        for h in handles {
            h.join().unwrap();
        }
        // Exact, not eventual: a task's key is retired before its handle resolves.
        assert_eq!(keyed.live_keys(), 0, "batch {batch} left keys behind");
    }
    assert_eq!(ran.load(Ordering::Relaxed) as u64, TOTAL);
    assert!(peak as u64 <= BATCH, "peak of {peak} live keys");
    assert_eq!(
        live_key_copies.load(Ordering::SeqCst),
        0,
        "retired keys were not freed"
    );
}

/// Posts race with the retirement of the same key: a poster often waits until the key's
/// previous task has finished (its ticket is being released, its entry retired) and posts
/// right then. Per key: never two tasks at once, strict posting order, nothing lost.
#[test]
fn posts_racing_retirement_never_overlap_reorder_or_lose_tasks() {
    const OWNERS: usize = 4;
    const KEYS_PER_OWNER: usize = 8;
    const SHARED_KEYS: usize = 2;
    const SHARERS: usize = 2;
    let rounds = scaled(1500);

    struct KeyState {
        busy: AtomicBool,
        /// Index of the next task expected (owned keys) or number of runs (shared keys).
        next: AtomicUsize,
    }
    let n_keys = OWNERS * KEYS_PER_OWNER + SHARED_KEYS;
    let keys: Arc<Vec<KeyState>> = Arc::new(
        (0..n_keys)
            .map(|_| KeyState {
                busy: AtomicBool::new(false),
                next: AtomicUsize::new(0),
            })
            .collect(),
    );
    let violations = Arc::new(AtomicUsize::new(0));
    let pool = quiet_pool(4);
    let keyed = pool.create_keyed_task_runner::<usize>(TaskTraits::default());

    let mut threads = Vec::new();
    for o in 0..OWNERS {
        let (keyed, keys, violations) = (keyed.clone(), keys.clone(), violations.clone());
        threads.push(thread::spawn(move || {
            let mut rng = Rng(0xDEAD_BEEF + o as u64);
            for j in 0..rounds {
                for kk in 0..KEYS_PER_OWNER {
                    let k = o * KEYS_PER_OWNER + kk;
                    let (keys2, violations) = (keys.clone(), violations.clone());
                    keyed
                        .post_task(k, move || {
                            let s = &keys2[k];
                            if s.busy.swap(true, Ordering::SeqCst) {
                                violations.fetch_add(1, Ordering::SeqCst);
                            }
                            if s.next.load(Ordering::SeqCst) != j {
                                violations.fetch_add(1, Ordering::SeqCst);
                            }
                            s.busy.store(false, Ordering::SeqCst);
                            // The task's last effect; its ticket is released right after.
                            s.next.store(j + 1, Ordering::SeqCst);
                        })
                        .unwrap();
                    if rng.next() % 2 == 0 {
                        // Post the next one exactly while this one retires the key.
                        let deadline = Instant::now() + T;
                        while keys[k].next.load(Ordering::SeqCst) <= j {
                            assert!(Instant::now() < deadline, "key {k} stuck at task {j}");
                            thread::yield_now();
                        }
                    }
                }
            }
        }));
    }
    for s in 0..SHARERS {
        let (keyed, keys, violations) = (keyed.clone(), keys.clone(), violations.clone());
        threads.push(thread::spawn(move || {
            let mut rng = Rng(0xC0FF_EE00 + s as u64);
            for _ in 0..rounds {
                let k = OWNERS * KEYS_PER_OWNER + (rng.next() % SHARED_KEYS as u64) as usize;
                let (keys, violations) = (keys.clone(), violations.clone());
                keyed
                    .post_task(k, move || {
                        let st = &keys[k];
                        if st.busy.swap(true, Ordering::SeqCst) {
                            violations.fetch_add(1, Ordering::SeqCst);
                        }
                        st.next.fetch_add(1, Ordering::SeqCst);
                        st.busy.store(false, Ordering::SeqCst);
                    })
                    .unwrap();
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    wait_until("every owned key ran all its tasks", || {
        (0..OWNERS * KEYS_PER_OWNER).all(|k| keys[k].next.load(Ordering::SeqCst) == rounds)
    });
    wait_until("every shared-key task ran", || {
        (0..SHARED_KEYS)
            .map(|i| {
                keys[OWNERS * KEYS_PER_OWNER + i]
                    .next
                    .load(Ordering::SeqCst)
            })
            .sum::<usize>()
            == SHARERS * rounds
    });
    assert_eq!(violations.load(Ordering::SeqCst), 0);
    wait_until("every key retired", || keyed.live_keys() == 0);
}

/// A panicking task (default `Isolate` policy) is reported through its handle; the key's next
/// task still runs, and the key is retired afterwards.
#[test]
fn a_panic_in_a_keyed_task_does_not_wedge_the_key() {
    let panics = Arc::new(AtomicUsize::new(0));
    let p2 = panics.clone();
    let pool = ThreadPool::builder()
        .max_workers(2)
        .panic_handler(move |_| {
            p2.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let keyed = pool.create_keyed_task_runner::<u32>(TaskTraits::default());
    let boom = keyed
        .post_task_with_result(1, || -> u32 { panic!("bad record") })
        .unwrap();
    let next = keyed.post_task_with_result(1, || 2).unwrap();
    assert_eq!(boom.join().unwrap_err().panic_message(), Some("bad record"));
    assert_eq!(next.join().unwrap(), 2);

    // Fire-and-forget panics on many keys, each followed by a task that must still run.
    let mut after = Vec::new();
    for k in 10..60 {
        keyed.post_task(k, || panic!("again")).unwrap();
        after.push(keyed.post_task_with_result(k, move || k).unwrap());
    }
    for (h, k) in after.into_iter().zip(10..) {
        assert_eq!(h.join().unwrap(), k);
    }
    assert_eq!(keyed.live_keys(), 0, "a panicked key was not retired");
    pool.shutdown();
    assert_eq!(panics.load(Ordering::SeqCst), 51);
}

/// Under `PanicPolicy::Poison` a panic poisons its key only: later posts for it are refused
/// (closure handed back) until `clear_poison`; other keys carry on.
#[test]
fn poison_policy_poisons_only_the_key_until_cleared() {
    let pool = quiet_pool(2);
    let keyed =
        pool.create_keyed_task_runner::<u32>(TaskTraits::new().panic_policy(PanicPolicy::Poison));
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    keyed.post_task(1, move || gate_rx.recv().unwrap()).unwrap();
    let boom = keyed
        .post_task_with_result(1, || panic!("corrupt"))
        .unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let d = DropCount(drops.clone());
    let behind = keyed.post_task_with_result(1, move || drop(d)).unwrap();
    gate_tx.send(()).unwrap();
    assert!(boom.join().unwrap_err().is_panic());
    assert!(behind.join().unwrap_err().is_not_run());
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "the queued closure was freed"
    );

    // The key stays poisoned even though nothing of it is queued any more.
    assert!(keyed.is_live(&1));
    let (tx, rx) = mpsc::channel();
    let err = keyed
        .post_task(1, move || tx.send("rescued").unwrap())
        .unwrap_err();
    assert_eq!(err.reason(), PostRefusal::SequencePoisoned);
    err.into_inner()();
    assert_eq!(rx.recv().unwrap(), "rescued");

    // Other keys are unaffected and retire as usual.
    assert_eq!(
        keyed
            .post_task_with_result(2, || 2)
            .unwrap()
            .join()
            .unwrap(),
        2
    );
    assert_eq!(keyed.live_keys(), 1, "only the poisoned key is kept");

    assert!(!keyed.clear_poison(&2), "key 2 is not poisoned");
    assert!(keyed.clear_poison(&1));
    assert_eq!(
        keyed
            .post_task_with_result(1, || 1)
            .unwrap()
            .join()
            .unwrap(),
        1
    );
    assert_eq!(keyed.live_keys(), 0);
}

/// A delayed task keeps its key live (its place in the key's order); cancelling it frees the
/// closure and the key at once; shutdown drops pending delayed tasks and retires their keys.
#[test]
fn delayed_tasks_hold_their_key_until_run_cancelled_or_dropped() {
    let pool = quiet_pool(2);
    let keyed = pool.create_keyed_task_runner::<&'static str>(TaskTraits::default());

    let drops = Arc::new(AtomicUsize::new(0));
    let d = DropCount(drops.clone());
    keyed
        .post_delayed_task("later", Duration::from_secs(3600), move || drop(d))
        .unwrap();
    // An immediate task of the same key runs (it is first in the key's order) and the key
    // stays live for the delayed one.
    assert_eq!(
        keyed
            .post_task_with_result("later", || 1)
            .unwrap()
            .join()
            .unwrap(),
        1
    );
    assert!(keyed.is_live("later"));

    let d2 = DropCount(drops.clone());
    let h = keyed
        .post_delayed_task_with_result("cancel", Duration::from_secs(3600), move || drop(d2))
        .unwrap();
    assert!(keyed.is_live("cancel"));
    assert!(h.cancel());
    assert_eq!(drops.load(Ordering::SeqCst), 1, "cancel freed the closure");
    assert!(!keyed.is_live("cancel"), "cancel released the key");
    assert_eq!(keyed.live_keys(), 1);

    // A short delay runs, in order after what the key had queued.
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    keyed
        .post_delayed_task("soon", Duration::from_millis(1), move || {
            tx.send("delayed").unwrap()
        })
        .unwrap();
    assert_eq!(rx.recv_timeout(T).unwrap(), "delayed");
    keyed
        .post_task("soon", move || tx2.send("after").unwrap())
        .unwrap();
    assert_eq!(rx.recv_timeout(T).unwrap(), "after");

    pool.shutdown();
    wait_until("shutdown dropped the delayed closure", || {
        drops.load(Ordering::SeqCst) == 2
    });
    wait_until("the delayed task's key retired", || keyed.live_keys() == 0);
}

/// After shutdown every post is refused and the closure handed back; nothing is left live.
#[test]
fn shutdown_refuses_posts_and_hands_the_closure_back() {
    let pool = quiet_pool(1);
    let keyed = pool.create_keyed_task_runner::<u32>(TaskTraits::default());
    pool.shutdown();

    let (tx, rx) = mpsc::channel();
    let err = keyed.post_task(5, move || tx.send(5).unwrap()).unwrap_err();
    assert!(err.is_shutdown());
    assert_eq!(err.reason(), PostRefusal::ShutdownCompleted);
    err.into_inner()();
    assert_eq!(rx.recv().unwrap(), 5);

    let err = keyed.post_task_with_result(6, || 6).unwrap_err();
    assert_eq!(err.into_inner()(), 6);
    let (tx, rx) = mpsc::channel();
    let err = keyed
        .post_delayed_task(7, Duration::from_millis(1), move || tx.send(7).unwrap())
        .unwrap_err();
    err.into_inner()();
    assert_eq!(rx.recv().unwrap(), 7);
    let err = keyed
        .post_delayed_task_with_result(8, Duration::from_millis(1), || 8)
        .unwrap_err();
    assert_eq!(err.into_inner()(), 8);

    assert_eq!(keyed.live_keys(), 0, "a refused post left its key behind");
}

/// Shutdown while keys have queued work: the running task finishes, the queued ones are
/// dropped unrun (skip-on-shutdown), and every key is retired.
#[test]
fn shutdown_drops_queued_keyed_tasks_and_retires_their_keys() {
    let pool = quiet_pool(1);
    let keyed = pool.create_keyed_task_runner::<u32>(TaskTraits::default());
    let (started_tx, started_rx) = mpsc::channel();
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    keyed
        .post_task(1, move || {
            started_tx.send(()).unwrap();
            gate_rx.recv().unwrap();
        })
        .unwrap();
    started_rx.recv_timeout(T).unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let drops = Arc::new(AtomicUsize::new(0));
    for k in [1, 1, 2, 3] {
        let (ran, d) = (ran.clone(), DropCount(drops.clone()));
        keyed
            .post_task(k, move || {
                let _d = d;
                ran.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
    }
    assert_eq!(keyed.live_keys(), 3);
    let p2 = pool.clone();
    let shutdown = thread::spawn(move || p2.shutdown());
    wait_until("shutdown started", || pool.is_shutdown());
    gate_tx.send(()).unwrap();
    shutdown.join().unwrap();
    wait_until("queued closures dropped", || {
        drops.load(Ordering::SeqCst) == 4
    });
    assert_eq!(
        ran.load(Ordering::SeqCst),
        0,
        "a queued task ran after shutdown"
    );
    wait_until("every key retired", || keyed.live_keys() == 0);
}

/// Block-shutdown keyed runners: shutdown waits for every key's queued work.
#[test]
fn block_shutdown_keys_finish_their_queues_before_shutdown_returns() {
    let pool = quiet_pool(2);
    let keyed = pool.create_keyed_task_runner::<u32>(
        TaskTraits::new().shutdown_behavior(ShutdownBehavior::BlockShutdown),
    );
    let ran = Arc::new(AtomicUsize::new(0));
    for i in 0..30 {
        let ran = ran.clone();
        keyed
            .post_task(i % 3, move || {
                ran.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
    }
    pool.shutdown();
    assert_eq!(ran.load(Ordering::SeqCst), 30);
    wait_until("every key retired", || keyed.live_keys() == 0);
}

/// Clones share the keys, and `runs_tasks_in_current_sequence` names the running key.
#[test]
fn clones_share_keys_and_know_the_current_key() {
    let pool = quiet_pool(2);
    let keyed = pool.create_keyed_task_runner::<String>(TaskTraits::default());
    let other = keyed.clone();
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    keyed
        .post_task("k".to_owned(), move || gate_rx.recv().unwrap())
        .unwrap();
    assert!(other.is_live("k"));
    let probe = keyed.clone();
    let h = other
        .post_task_with_result("k".to_owned(), move || {
            (
                probe.runs_tasks_in_current_sequence("k"),
                probe.runs_tasks_in_current_sequence("j"),
            )
        })
        .unwrap();
    gate_tx.send(()).unwrap();
    assert_eq!(h.join().unwrap(), (true, false));
    assert!(!keyed.runs_tasks_in_current_sequence("k"));
    assert_eq!(other.live_keys(), 0);
}

/// A keyed task can post the next step for its own key (the way to chain work on a key).
#[test]
fn a_task_can_repost_to_its_own_key() {
    let pool = quiet_pool(2);
    let keyed = pool.create_keyed_task_runner::<u8>(TaskTraits::default());
    let (tx, rx) = mpsc::channel();
    fn step(keyed: KeyedTaskRunner<u8>, n: u32, tx: mpsc::Sender<u32>) {
        tx.send(n).unwrap();
        if n < 100 {
            let k2 = keyed.clone();
            keyed.post_task(1, move || step(k2, n + 1, tx)).unwrap();
        }
    }
    let k2 = keyed.clone();
    keyed.post_task(1, move || step(k2, 0, tx)).unwrap();
    let got: Vec<u32> = (0..=100).map(|_| rx.recv_timeout(T).unwrap()).collect();
    assert_eq!(got, (0..=100).collect::<Vec<_>>());
    wait_until("the key retired", || keyed.live_keys() == 0);
}

/// The free function uses the global pool.
#[test]
fn global_keyed_runner_orders_and_retires() {
    let keyed = taskrunner::create_keyed_task_runner::<u64>(TaskTraits::default());
    let hs: Vec<_> = (0..20)
        .map(|i| keyed.post_task_with_result(i % 2, move || i).unwrap())
        .collect();
    let got: Vec<u64> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    assert_eq!(keyed.live_keys(), 0);
}

// ---- per-key views: `KeyedTaskRunner::runner` ------------------------------------------------

/// The payload of a caught panic, as text.
fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// `f` must panic with the advice for a wait on one's own sequence.
#[track_caller]
fn assert_waits_on_own_sequence_panic(what: &str, f: impl FnOnce()) {
    let payload = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(()) => panic!("{what}: returned instead of panicking"),
        Err(p) => p,
    };
    let msg = panic_message(&*payload);
    assert!(msg.contains("would wait forever"), "{what}: {msg}");
}

#[test]
fn a_key_runner_is_send_sync_clone_and_debug() {
    fn assert_traits<T: Send + Sync + Clone + std::fmt::Debug + PostTask + 'static>() {}
    assert_traits::<KeyRunner<u64>>();
    assert_traits::<KeyRunner<String>>();
    let pool = quiet_pool(1);
    let keyed = pool.create_keyed_task_runner::<String>(TaskTraits::default());
    let view = keyed.runner("host-a".to_owned());
    assert!(format!("{view:?}").contains("host-a"));
    assert_eq!(view.key(), "host-a");
    assert_eq!(PostTask::max_concurrency(&view), 1);
    let before = pool.now();
    assert!(PostTask::now(&view) >= before);
    assert_eq!(keyed.live_keys(), 0, "a view does not make its key live");
}

/// Posts for a key through its view and through the keyed runner, mixed at random from several
/// threads: one FIFO per key (each thread's posts run in its posting order) and one task at a
/// time per key.
#[test]
fn posts_through_the_view_and_the_keyed_runner_share_one_fifo_per_key() {
    const THREADS: usize = 3;
    const KEYS: u32 = 8;
    let per_thread = scaled(2_000);
    let pool = quiet_pool(4);
    let keyed = pool.create_keyed_task_runner::<u32>(TaskTraits::default());
    // Per key: whether a task is running, and the last index seen from each thread.
    type KeyLog = (AtomicBool, Mutex<[Option<usize>; THREADS]>);
    let logs: Arc<Vec<KeyLog>> = Arc::new(
        (0..KEYS)
            .map(|_| (AtomicBool::new(false), Mutex::new([None; THREADS])))
            .collect(),
    );
    let violations = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let posters: Vec<_> = (0..THREADS)
        .map(|t| {
            let (keyed, logs, violations, done) = (
                keyed.clone(),
                logs.clone(),
                violations.clone(),
                done.clone(),
            );
            thread::spawn(move || {
                let views: Vec<KeyRunner<u32>> = (0..KEYS).map(|k| keyed.runner(k)).collect();
                let mut rng = Rng(0x9E37_79B9 + t as u64);
                for i in 0..per_thread {
                    let r = rng.next();
                    let key = (r % u64::from(KEYS)) as u32;
                    let (logs, violations, done) = (logs.clone(), violations.clone(), done.clone());
                    let task = move || {
                        let (running, last) = &logs[key as usize];
                        if running.swap(true, Ordering::SeqCst) {
                            violations.fetch_add(1, Ordering::SeqCst); // overlap
                        }
                        {
                            let mut last = last.lock().unwrap();
                            if last[t].is_some_and(|prev| prev >= i) {
                                violations.fetch_add(1, Ordering::SeqCst); // reordered
                            }
                            last[t] = Some(i);
                        }
                        running.store(false, Ordering::SeqCst);
                        done.fetch_add(1, Ordering::SeqCst);
                    };
                    match (r >> 32) % 3 {
                        0 => keyed.post_task(key, task).unwrap(),
                        1 => views[key as usize].post_task(task).unwrap(),
                        // Through the trait, with an explicit posted-from location.
                        _ => PostTask::post_task(&views[key as usize], task).unwrap(),
                    }
                }
            })
        })
        .collect();
    for p in posters {
        p.join().unwrap();
    }
    wait_until("every task ran", || {
        done.load(Ordering::SeqCst) == THREADS * per_thread
    });
    assert_eq!(violations.load(Ordering::SeqCst), 0);
    wait_until("every key retired", || keyed.live_keys() == 0);
}

/// `retry` through a view: every attempt runs on that key's sequence, while another key's
/// tasks run on their own (the retrying key does not hold them up), and a failing retry ends
/// with its attempt count.
#[test]
fn retry_through_the_view_runs_on_the_keys_sequence_and_other_keys_stay_independent() {
    let pool = quiet_pool(2);
    let keyed = pool.create_keyed_task_runner::<&'static str>(TaskTraits::default());
    let other_key_ran = Arc::new(AtomicBool::new(false));
    let off_key = Arc::new(AtomicUsize::new(0));
    let attempts = Arc::new(AtomicUsize::new(0));
    let (probe, ran, off, n) = (
        keyed.clone(),
        other_key_ran.clone(),
        off_key.clone(),
        attempts.clone(),
    );
    // Fails until a task of another key has run: that key must not wait for this one.
    let policy = RetryPolicy::attempts(u32::MAX)
        .base_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(2));
    let h = retry(&keyed.runner("a.example"), policy, move || {
        if !probe.runs_tasks_in_current_sequence("a.example")
            || probe.runs_tasks_in_current_sequence("b.example")
        {
            off.fetch_add(1, Ordering::SeqCst);
        }
        let attempt = n.fetch_add(1, Ordering::SeqCst) + 1;
        if ran.load(Ordering::SeqCst) {
            Ok(attempt)
        } else {
            Err("the other key has not run yet")
        }
    });
    let probe = keyed.clone();
    let b = keyed
        .runner("b.example")
        .post_task_with_result(move || {
            other_key_ran.store(true, Ordering::SeqCst);
            probe.runs_tasks_in_current_sequence("b.example")
        })
        .unwrap();
    assert!(b.join().unwrap());
    let made = h.join().unwrap();
    assert!(made >= 1);
    assert_eq!(attempts.load(Ordering::SeqCst), made);
    assert_eq!(
        off_key.load(Ordering::SeqCst),
        0,
        "an attempt ran off its key"
    );

    // Exhausted: the last error and the attempt count, each attempt on the key.
    let (probe, off) = (keyed.clone(), off_key.clone());
    let h = retry(
        &keyed.runner("a.example"),
        RetryPolicy::attempts(3).base_delay(Duration::ZERO),
        move || {
            if !probe.runs_tasks_in_current_sequence("a.example") {
                off.fetch_add(1, Ordering::SeqCst);
            }
            Err::<(), _>("down")
        },
    );
    let err = h.join().unwrap_err();
    assert!(err.is_failed());
    assert_eq!(err.attempts(), 3);
    assert_eq!(off_key.load(Ordering::SeqCst), 0);
    wait_until("both keys retired", || keyed.live_keys() == 0);
}

/// A panicking attempt posted through the view is reported with the line that called `retry`
/// (the view records the location it is given), and under `Poison` it poisons the key like a
/// panic of a plain keyed task, until `clear_poison`.
#[test]
fn a_panicking_retry_through_the_view_reports_its_caller_and_poisons_the_key() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let pool = ThreadPool::builder()
        .max_workers(2)
        .panic_handler(move |p| s.lock().unwrap().push(p.posted_from().line()))
        .build()
        .unwrap();
    let keyed =
        pool.create_keyed_task_runner::<u8>(TaskTraits::new().panic_policy(PanicPolicy::Poison));
    let view = keyed.runner(1);
    let line = line!() + 1;
    let h = retry(&view, RetryPolicy::attempts(3), || -> Result<(), &str> {
        panic!("bug")
    });
    let err = h.join().unwrap_err();
    assert!(err.is_panic());
    assert_eq!(err.attempts(), 1);
    assert_eq!(*seen.lock().unwrap(), vec![line]);

    assert!(keyed.is_live(&1), "a poisoned key is kept");
    let refused = view.post_task(|| ()).unwrap_err();
    assert_eq!(refused.reason(), PostRefusal::SequencePoisoned);
    let refused = keyed.post_task(1, || ()).unwrap_err();
    assert_eq!(refused.reason(), PostRefusal::SequencePoisoned);
    assert_eq!(
        keyed
            .runner(2)
            .post_task_with_result(|| 2)
            .unwrap()
            .join()
            .unwrap(),
        2
    );
    assert!(keyed.clear_poison(&1));
    assert_eq!(view.post_task_with_result(|| 5).unwrap().join().unwrap(), 5);
}

/// Helpers that post on a caller's behalf through the view (`Deferred::run_on` posts with
/// `post_task_from`, `repeat` with `post_delayed_task_from`) record the caller's line as the task's
/// origin, as a sequence does: shutdown's report of running tasks names it.
#[test]
fn tasks_posted_through_the_view_on_a_callers_behalf_record_the_callers_line() {
    fn running_task_line(post: impl FnOnce(&KeyRunner<u8>, Box<dyn FnOnce() + Send>) -> u32) {
        let pool = quiet_pool(1);
        let keyed = pool.create_keyed_task_runner::<u8>(TaskTraits::default());
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        let line = post(
            &keyed.runner(1),
            Box::new(move || {
                started_tx.send(()).unwrap();
                let _ = gate_rx.recv_timeout(T);
            }),
        );
        started_rx.recv_timeout(T).unwrap();
        // The task blocks until released, so shutdown cannot finish within the timeout.
        let err = pool
            .shutdown_timeout(Duration::from_millis(10))
            .unwrap_err();
        let lines: Vec<u32> = err.running().iter().map(|r| r.posted_from.line()).collect();
        assert_eq!(lines, [line]);
        assert!(err.running()[0].sequenced);
        drop(gate_tx);
    }
    running_task_line(|view, f| {
        let (task, _handle) = Deferred::new(f);
        let line = line!() + 1;
        task.run_on(view).unwrap();
        line
    });
    running_task_line(|view, f| {
        let mut f = Some(f);
        let line = line!() + 1;
        let h = repeat(
            view,
            Duration::from_millis(1),
            RepeatMode::FixedDelay,
            move || {
                if let Some(f) = f.take() {
                    f();
                }
            },
        )
        .unwrap();
        drop(h); // does not stop it; the pool's shutdown does
        line
    });
}

/// A future run through the view (`post_future`) is polled on the key's
/// sequence, before and after it awaits, and its polls are ordered with the key's other tasks.
#[test]
fn a_future_on_the_view_is_polled_on_the_keys_sequence() {
    let pool = quiet_pool(2);
    let keyed = pool.create_keyed_task_runner::<u32>(TaskTraits::default());
    let view = keyed.runner(4);
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    // Another key's task the future waits for.
    let elsewhere = keyed
        .runner(5)
        .post_task_with_result(move || {
            gate_rx.recv_timeout(T).unwrap();
            10
        })
        .unwrap();
    let probe = keyed.clone();
    let h = view
        .post_future(async move {
            let before = probe.runs_tasks_in_current_sequence(&4);
            let v = elsewhere.await.unwrap();
            let after = probe.runs_tasks_in_current_sequence(&4);
            (before, v, after)
        })
        .unwrap();
    gate_tx.send(()).unwrap();
    assert_eq!(h.join().unwrap(), (true, 10, true));

    let (v2, probe) = (view.clone(), keyed.clone());
    let first = keyed.post_task_with_result(4, || 1).unwrap();
    let h = view
        .post_future(async move {
            let got = first.await.unwrap();
            (
                got,
                v2.runs_tasks_in_current_sequence(),
                probe.runs_tasks_in_current_sequence(&5),
            )
        })
        .unwrap();
    assert_eq!(h.join().unwrap(), (1, true, false));
    wait_until("the keys retired", || keyed.live_keys() == 0);
}

/// After shutdown every post through the view is refused with the closure (or future)
/// handed back, and no key is left live.
#[test]
fn the_view_refuses_after_shutdown_and_hands_the_closure_back() {
    let pool = quiet_pool(1);
    let keyed = pool.create_keyed_task_runner::<u32>(TaskTraits::default());
    let view = keyed.runner(5);
    pool.shutdown();

    let (tx, rx) = mpsc::channel();
    let t = tx.clone();
    let err = view.post_task(move || t.send(1).unwrap()).unwrap_err();
    assert!(err.is_shutdown());
    assert_eq!(err.reason(), PostRefusal::ShutdownCompleted);
    err.into_inner()();
    let t = tx.clone();
    let err = PostTask::post_task(&view, move || t.send(2).unwrap()).unwrap_err();
    err.into_inner()();
    let t = tx.clone();
    let err =
        PostTask::post_delayed_task(&view, Duration::from_millis(1), move || t.send(3).unwrap())
            .unwrap_err();
    err.into_inner()();
    let err = view
        .post_delayed_task(Duration::from_millis(1), move || tx.send(4).unwrap())
        .unwrap_err();
    err.into_inner()();
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), [1, 2, 3, 4]);

    assert_eq!(
        view.post_task_with_result(|| 6).unwrap_err().into_inner()(),
        6
    );
    let err = view
        .post_delayed_task_with_result(Duration::from_millis(1), || 7)
        .unwrap_err();
    assert_eq!(err.into_inner()(), 7);
    let err = view.post_future(async { 8 }).unwrap_err();
    assert!(err.is_shutdown());
    let err = view.post_future(async { 9 }).unwrap_err();
    assert!(err.is_shutdown());
    // retry resolves at once with "not run" (its first attempt was refused).
    let h = retry(&view, RetryPolicy::attempts(3), || Ok::<_, &str>(()));
    assert!(h.join().unwrap_err().is_not_run());

    assert_eq!(keyed.live_keys(), 0, "a refused post left its key behind");
}

/// A task of key k that blocks on work queued to key k behind it panics with advice at once,
/// exactly as on a `SequencedTaskRunner`: a handle from the view or the keyed runner, an
/// `invoke_all` batch, and a `TaskGroup` and an `Executor` made on the view while the key was
/// idle (so the key's sequence did not exist yet). From another key the same waits just work.
#[test]
fn a_wait_from_a_key_on_work_queued_to_that_key_panics_as_on_a_sequence() {
    let pool = quiet_pool(2);
    let keyed = pool.create_keyed_task_runner::<u32>(TaskTraits::default());
    let view = keyed.runner(1);
    assert!(!keyed.is_live(&1));
    // Made while the key is idle: its sequence does not exist yet.
    let exec = Executor::builder().runner(view.clone()).build().unwrap();
    let group = TaskGroup::new(&view);
    let (v, k) = (view.clone(), keyed.clone());
    let mut checked = view
        .post_task_with_result(move || {
            let h = v.post_task_with_result(|| 1).unwrap();
            assert_waits_on_own_sequence_panic("a view's handle", || {
                let _ = h.join();
            });
            let h = k.post_task_with_result(1, || 2).unwrap();
            assert_waits_on_own_sequence_panic("a keyed handle", || {
                let _ = h.join();
            });
            assert_waits_on_own_sequence_panic("invoke_all on the view", || {
                let _ = invoke_all(&v, (0..2).map(|i| move || Ok::<_, Infallible>(i)), None).join();
            });
            assert_waits_on_own_sequence_panic("a TaskGroup made while the key was idle", || {
                group.spawn(|_| Ok::<(), Infallible>(()));
                let _ = group.wait();
            });
            assert_waits_on_own_sequence_panic("an Executor made while the key was idle", || {
                exec.submit(|| ()).unwrap();
                exec.wait_idle();
            });
            // The work queued behind this task: it runs once this task ends.
            v.post_task_with_result(|| 3).unwrap()
        })
        .unwrap();
    let queued = checked
        .join_timeout(T)
        .expect("a wait on work queued behind it, on its own key, hung instead of panicking")
        .unwrap();
    assert_eq!(queued.join().unwrap(), 3);

    // From a task of another key, waiting for key 1 is fine.
    let v = view.clone();
    let h = keyed
        .runner(2)
        .post_task_with_result(move || {
            let a = v.post_task_with_result(|| 10).unwrap().join().unwrap();
            let b: i32 = invoke_all(&v, (1..=2).map(|i| move || Ok::<_, Infallible>(i)), None)
                .join()
                .into_iter()
                .map(Result::unwrap)
                .sum();
            a + b
        })
        .unwrap();
    assert_eq!(h.join().unwrap(), 13);
    wait_until("the keys retired", || keyed.live_keys() == 0);
}

/// A view made once keeps working across its key's retirements: each post after the key was
/// retired starts a fresh sequence for it, which sees everything the old one did.
#[test]
fn a_view_keeps_posting_after_its_key_was_retired() {
    let pool = quiet_pool(2);
    let keyed = pool.create_keyed_task_runner::<String>(TaskTraits::default());
    let view = keyed.runner("doc".to_owned());
    let total = Arc::new(AtomicUsize::new(0));
    let mut sequences: Vec<SequencedTaskRunner> = Vec::new();
    for round in 1..=5 {
        let t = total.clone();
        let h = view
            .post_task_with_result(move || {
                // Not atomic as a whole: only correct if rounds never overlap.
                let seen = t.load(Ordering::SeqCst);
                t.store(seen + round, Ordering::SeqCst);
                (seen, SequencedTaskRunner::current().unwrap())
            })
            .unwrap();
        let (seen, seq) = h.join().unwrap();
        assert_eq!(
            seen,
            (1..round).sum::<usize>(),
            "round {round} saw the earlier rounds"
        );
        wait_until("the key retired", || !keyed.is_live("doc"));
        assert!(
            sequences.iter().all(|s| !s.is_same_sequence(&seq)),
            "round {round} reused a retired sequence"
        );
        sequences.push(seq);
    }
    // Through `PostTask` too, and mixed with the keyed runner's own posts.
    let (tx, rx) = mpsc::channel();
    let t = tx.clone();
    PostTask::post_task(&view, move || t.send("view").unwrap()).unwrap();
    keyed
        .post_task("doc".to_owned(), move || tx.send("keyed").unwrap())
        .unwrap();
    assert_eq!(rx.recv_timeout(T).unwrap(), "view");
    assert_eq!(rx.recv_timeout(T).unwrap(), "keyed");
    wait_until("the key retired", || keyed.live_keys() == 0);
}
