//! `KeyedTaskRunner<K>`: one sequence per key, created on the first post for the key and
//! retired when the key has nothing queued, delayed or running.
//!
//! # Protocol
//!
//! A sharded map (`KeyMap`) holds one `Entry` per live key: the key's sequence and an
//! in-flight counter. Every posted closure carries a `Ticket` on its entry; the ticket is taken
//! (counter + 1, under the shard lock) before the post and released (counter − 1, no lock)
//! when the closure has run or has been dropped unrun (refused post, cancelled handle,
//! shutdown). Whoever takes the counter to zero takes the shard lock again and removes the
//! entry if it is still the key's entry and its counter is still zero.
//!
//! | key state | map | counter | meaning |
//! |---|---|---|---|
//! | `Absent` | no entry | — | nothing of the key is queued, delayed or running |
//! | `Live(n)` | entry `E` | `n ≥ 1` | `n` tickets of `E` exist (queued, delayed or running closures, or posts in progress) |
//! | `Draining` | entry `E` | `0` | the last ticket was just released; its releaser is on its way to the shard lock |
//! | `Pinned` | entry `E` | any | a task panicked under [`PanicPolicy::Poison`]: `E`'s sequence refuses posts; kept until [`KeyedTaskRunner::clear_poison`] or the last runner handle is dropped |
//!
//! | transition | by | under the shard lock | duty |
//! |---|---|---|---|
//! | `Absent → Live(1)` | poster | yes | create a fresh sequence, insert `E`; post to it after unlocking |
//! | `Live(n) → Live(n+1)`, `Draining → Live(1)` | poster | yes | post to `E`'s sequence after unlocking |
//! | `Live(n) → Live(n−1)`, `n ≥ 2` | ticket release | no | none |
//! | `Live(1) → Draining` | ticket release | no | take the lock and try to retire `E` |
//! | `Draining → Absent` | that releaser | yes | only if `E` is still the key's entry, its counter is 0 and it is not pinned: remove it, drop it after unlocking |
//! | `Live/Draining → Pinned` | release of a ticket whose closure panicked (`Poison` policy) | yes | none: the retire step leaves pinned entries alone |
//! | `Pinned → Absent` | `clear_poison`, or the last runner handle dropped | yes | remove `E` |
//!
//! # Invariants
//!
//! 1. **One live sequence per key.** A new sequence is created only in `Absent`, and a key
//!    becomes `Absent` only when its retirer saw the counter at zero *under the lock*. Counter
//!    increments happen only under that lock, so no post can slip in between the check and the
//!    removal; a post that wins the lock first (`Draining → Live(1)`) makes the retirer's check
//!    fail, and the entry stays. So every closure posted to the old sequence has finished or
//!    been dropped before the new sequence gets its first task.
//! 2. **FIFO and happens-before across incarnations.** The last closure of the old sequence
//!    finishes, then releases its ticket (`fetch_sub`, `Release`); the retirer reads zero
//!    (`AcqRel`/`Acquire`) and unlocks; the next poster locks and posts. Task, release, retire,
//!    post and the new task are therefore ordered, so the new task sees every effect of the
//!    old ones, exactly as within one sequence.
//! 3. **Nothing is lost.** A ticket is released exactly once, by the closure's own wrapper
//!    (`Keyed`), whether it ran, panicked, was refused or was dropped unrun. The closure
//!    field is dropped before the ticket, so even an unrun closure's destructor finishes before
//!    the key can retire.
//! 4. **The map lock is a leaf.** It is never held while a task runs, while a closure (or an
//!    entry, which owns a sequence) is dropped, or while any other lock of the pool is taken.
//!    Posting happens after unlocking. Of user code only `K`'s `Hash`, `Eq` and `Clone` run
//!    under it (and `K`'s drop for pinned keys in `close`).
//! 5. **Bounded memory.** The map holds live and pinned keys only; a shard's table shrinks when
//!    it is less than a quarter full, so a burst of keys does not keep its peak capacity.
//!
//! The protocol is model-checked with loom (`loom_keyed_*` below) on the real `KeyMap`.
//!
//! # What it does not cover
//!
//! Work posted *directly* to the key's sequence (through `SequencedTaskRunner::current()` or
//! as the reply of a `post_task_and_reply` made from a keyed task) holds no ticket: it runs in
//! order on that sequence but does not keep the key alive. To continue work on the same key,
//! post through the `KeyedTaskRunner` (cheap to clone into the task) or its `KeyRunner` view,
//! which posts through the map like `KeyedTaskRunner::post_task`.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::panic::Location;
use std::time::{Duration, Instant};

use crate::base::error::{PostError, PostRefusal};
use crate::base::shim::{Arc, AtomicBool, AtomicUsize, Mutex, Ordering};
use crate::base::traits::{PanicPolicy, TaskTraits};
use crate::engine::current;
use crate::engine::runner_stats::{RunnerMetrics, RunnerStats};
use crate::engine::scheduler::{Home, Sequence};
use crate::engine::{check_can_block, check_not_own_sequence, Engine, PoolRef, PostDest};
use crate::handle::TaskHandle;
use crate::runner::{PoolLink, PostTask};
use crate::ThreadPool;
use std::sync::Arc as StdArc;

/// Hands out **one sequence per key**, on demand: tasks posted for the same key run one at a
/// time in posting order (FIFO, each seeing the effects of the one before), tasks of different
/// keys run in parallel. A key whose sequence has nothing queued, delayed or running is
/// retired, so memory is bounded by the number of live keys, not by the number of keys ever
/// seen.
///
/// This is the "Kafka partition" or "per-user ordering" pattern without the hand-rolled parts:
/// no fixed partition count (so no head-of-line blocking between unrelated keys that hash to
/// the same partition), no map of runners that only grows, and no per-key mutex that blocks a
/// worker thread. See `docs/keyed.md` for the comparison and the retirement protocol.
///
/// Cheap to clone (one reference count); `Send + Sync`. All clones share the keys. Created by
/// [`ThreadPool::create_keyed_task_runner`] or [`create_keyed_task_runner`] (global pool);
/// every key's sequence has the runner's [`TaskTraits`].
///
/// **Panics** follow the traits' [`PanicPolicy`]: `Isolate` (default) reports the panic and
/// the key's next task runs; `Poison` poisons the key (its queued tasks are dropped and later
/// posts for it are refused with [`PostRefusal::SequencePoisoned`](crate::PostRefusal::SequencePoisoned)
/// until [`clear_poison`](Self::clear_poison)); other keys are unaffected.
///
/// **Shutdown**: posts are refused like any sequenced post and the closure is handed back in
/// the [`PostError`].
///
/// **Chaining**: to continue work on a key, post through the `KeyedTaskRunner` (clone it into
/// the task) or through the key's [`KeyRunner`] (see [`runner`](Self::runner)). Work posted *directly* to the key's sequence from one of its tasks (through
/// [`SequencedTaskRunner::current`](crate::SequencedTaskRunner::current), or as the reply of a
/// `post_task_and_reply`) runs in order on that sequence but does not keep the key alive: once
/// the key is retired, a later post for it may start a new sequence that runs alongside it.
///
/// ```
/// use std::sync::mpsc;
/// use taskrunner::{PostTask, ThreadPool, TaskTraits};
///
/// let pool = ThreadPool::builder().max_workers(4).build().unwrap();
/// let per_user = pool.create_keyed_task_runner::<u32>(TaskTraits::default());
/// let (tx, rx) = mpsc::channel();
/// for event in 0..30 {
///     let user = event % 3;
///     let tx = tx.clone();
///     per_user.post_task(user, move || tx.send((user, event)).unwrap()).unwrap();
/// }
/// drop(tx);
/// let seen: Vec<(u32, u32)> = rx.iter().collect();
/// for user in 0..3 {
///     let events: Vec<u32> = seen.iter().filter(|(u, _)| *u == user).map(|(_, e)| *e).collect();
///     assert!(events.windows(2).all(|w| w[0] < w[1]), "per-user order kept");
///     assert_eq!(events.len(), 10);
/// }
/// ```
pub struct KeyedTaskRunner<K> {
    inner: Arc<KeyedInner<K>>,
}

struct KeyedInner<K> {
    pool: PoolRef,
    traits: TaskTraits,
    map: Arc<KeyMap<K, Arc<Sequence>>>,
    /// `close` was called: posts are refused, and every key's sequence is closed (a sequence
    /// created after the close is closed by its poster, which checks again after taking its
    /// ticket: the close's sweep of the map and the poster's insertion take the same shard
    /// lock, so one of them sees the other).
    closed: AtomicBool,
    /// The counters of a named runner, shared by every key's sequence (set once, by `named`).
    stats: std::sync::OnceLock<StdArc<RunnerStats>>,
}

impl<K> Drop for KeyedInner<K> {
    /// The last runner handle is gone, so no post can come any more: let go of pinned
    /// (poisoned) keys, which would otherwise keep the map alive through their entries.
    fn drop(&mut self) {
        self.map.close();
    }
}

impl<K> Clone for KeyedTaskRunner<K> {
    fn clone(&self) -> Self {
        KeyedTaskRunner {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K> fmt::Debug for KeyedTaskRunner<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedTaskRunner")
            .field("name", &self.inner.stats.get().map(|s| s.name()))
            .field("traits", &self.inner.traits)
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .field("live_keys", &self.inner.map.len())
            .finish_non_exhaustive()
    }
}

impl ThreadPool {
    /// A runner that gives each key its own sequence on demand; see [`KeyedTaskRunner`].
    ///
    /// ```
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let by_account = pool.create_keyed_task_runner::<String>(TaskTraits::default());
    /// let h = by_account.post_task_with_result("alice".to_owned(), || 40 + 2).unwrap();
    /// assert_eq!(h.join().unwrap(), 42);
    /// assert_eq!(by_account.live_keys(), 0); // alice's sequence was retired
    /// ```
    pub fn create_keyed_task_runner<K>(&self, traits: TaskTraits) -> KeyedTaskRunner<K>
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
    {
        KeyedTaskRunner::new(self.pool_ref().clone(), traits, self.max_workers())
    }
}

/// A keyed runner on the global pool. See [`ThreadPool::create_keyed_task_runner`].
///
/// ```
/// # use taskrunner::PostTask;
/// let by_user = taskrunner::create_keyed_task_runner::<u64>(Default::default());
/// let (tx, rx) = std::sync::mpsc::channel();
/// for i in 0..3 {
///     let tx = tx.clone();
///     by_user.post_task(7, move || tx.send(i).unwrap()).unwrap();
/// }
/// assert_eq!((rx.recv().unwrap(), rx.recv().unwrap(), rx.recv().unwrap()), (0, 1, 2));
/// ```
pub fn create_keyed_task_runner<K>(traits: TaskTraits) -> KeyedTaskRunner<K>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    crate::pool::global::current().create_keyed_task_runner(traits)
}

impl<K> KeyedTaskRunner<K>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    fn new(pool: PoolRef, traits: TaskTraits, max_workers: usize) -> Self {
        let pin_on_panic = traits.panic_policy == PanicPolicy::Poison;
        KeyedTaskRunner {
            inner: Arc::new(KeyedInner {
                pool,
                traits,
                map: Arc::new(KeyMap::new(shard_count(max_workers), pin_on_panic)),
                closed: AtomicBool::new(false),
                stats: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Posts `f` to the end of `key`'s sequence, creating the sequence if the key is not live.
    /// Never runs `f` inside the call. Refused like [`SequencedTaskRunner::post_task`]
    /// (shutdown, or a poisoned key), with the closure handed back.
    ///
    /// [`SequencedTaskRunner::post_task`]: crate::SequencedTaskRunner::post_task
    ///
    /// ```
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let keyed = pool.create_keyed_task_runner::<&'static str>(TaskTraits::default());
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// keyed.post_task("orders", move || tx.send("ran").unwrap()).unwrap();
    /// assert_eq!(rx.recv().unwrap(), "ran");
    /// ```
    #[track_caller]
    pub fn post_task<F>(&self, key: K, f: F) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.post_at(key, Duration::ZERO, f, Location::caller())
    }

    /// Posts `f` to be appended to `key`'s sequence no sooner than `delay` from now (by the
    /// pool's clock). The key stays live (and its sequence kept) while the task waits, so it
    /// keeps its place in the key's order; cancel or shut down to release it early.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let keyed = pool.create_keyed_task_runner::<u8>(TaskTraits::default());
    /// keyed.post_delayed_task(1, Duration::from_secs(3600), || ()).unwrap();
    /// assert!(keyed.is_live(&1)); // a delayed task keeps its key live
    /// pool.shutdown(); // drops the pending delayed task...
    /// assert!(!keyed.is_live(&1)); // ...and the key with it
    /// ```
    #[track_caller]
    pub fn post_delayed_task<F>(&self, key: K, delay: Duration, f: F) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.post_at(key, delay, f, Location::caller())
    }

    /// Posts `f` to `key`'s sequence and returns a [`TaskHandle`] to its result. Cancelling
    /// the handle before the task starts drops the closure at once and releases the key.
    ///
    /// ```
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let keyed = pool.create_keyed_task_runner::<u64>(TaskTraits::default());
    /// let h = keyed.post_task_with_result(9, || "done").unwrap();
    /// assert_eq!(h.join().unwrap(), "done");
    /// ```
    #[track_caller]
    pub fn post_task_with_result<F, T>(&self, key: K, f: F) -> Result<TaskHandle<T>, PostError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.post_with_result_from(key, Duration::ZERO, f, Location::caller())
    }

    /// Posts a delayed task to `key`'s sequence and returns a [`TaskHandle`] to its result.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let keyed = pool.create_keyed_task_runner::<u64>(TaskTraits::default());
    /// let h = keyed.post_delayed_task_with_result(3, Duration::from_secs(3600), || ()).unwrap();
    /// assert!(keyed.is_live(&3));
    /// assert!(h.cancel()); // the closure is dropped now, and the key retired with it
    /// assert!(!keyed.is_live(&3));
    /// ```
    #[track_caller]
    pub fn post_delayed_task_with_result<F, T>(
        &self,
        key: K,
        delay: Duration,
        f: F,
    ) -> Result<TaskHandle<T>, PostError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.post_with_result_from(key, delay, f, Location::caller())
    }

    /// `true` if called from a task of `key`'s sequence.
    ///
    /// ```
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let keyed = pool.create_keyed_task_runner::<u32>(TaskTraits::default());
    /// assert!(!keyed.runs_tasks_in_current_sequence(&1));
    /// let k2 = keyed.clone();
    /// let h = keyed
    ///     .post_task_with_result(1, move || (k2.runs_tasks_in_current_sequence(&1), k2.runs_tasks_in_current_sequence(&2)))
    ///     .unwrap();
    /// assert_eq!(h.join().unwrap(), (true, false));
    /// ```
    pub fn runs_tasks_in_current_sequence<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let token = current::current_token();
        self.inner
            .map
            .with_value(key, |seq| seq.token == token)
            .unwrap_or(false)
    }

    /// `true` if `key` has a sequence right now (something queued, delayed or running for it,
    /// or it is poisoned). A snapshot: it may change as soon as it is returned.
    ///
    /// ```
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let keyed = pool.create_keyed_task_runner::<String>(TaskTraits::default());
    /// assert!(!keyed.is_live("bob")); // lookups by &str work for String keys
    /// ```
    pub fn is_live<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.inner.map.with_value(key, |_| ()).is_some()
    }

    /// Un-poisons `key` (see [`PanicPolicy::Poison`]): its poisoned sequence is forgotten and
    /// the next post for the key starts a fresh one. Returns `false` if the key was not
    /// poisoned. Closures still held by the old sequence are dropped unrun.
    ///
    /// ```
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits, PanicPolicy, PostRefusal};
    /// let pool = ThreadPool::builder().max_workers(1).panic_handler(|_| {}).build().unwrap();
    /// let keyed = pool.create_keyed_task_runner::<u8>(TaskTraits::new().panic_policy(PanicPolicy::Poison));
    /// let (gate, wait) = std::sync::mpsc::channel::<()>();
    /// keyed.post_task(1, move || wait.recv().unwrap()).unwrap();
    /// let boom = keyed.post_task_with_result(1, || panic!("bad input")).unwrap();
    /// let behind = keyed.post_task_with_result(1, || ()).unwrap();
    /// gate.send(()).unwrap();
    /// assert!(boom.join().unwrap_err().is_panic());
    /// assert!(behind.join().unwrap_err().is_not_run()); // dropped by the poison
    /// let refused = keyed.post_task(1, || ()).unwrap_err();
    /// assert_eq!(refused.reason(), PostRefusal::SequencePoisoned);
    /// assert!(keyed.clear_poison(&1));
    /// assert_eq!(keyed.post_task_with_result(1, || 5).unwrap().join().unwrap(), 5);
    /// ```
    pub fn clear_poison<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        // A key whose sequence is poisoned counts as poisoned even if the panicking task has
        // not finished yet (it pins the key at its end): its handle may already have resolved.
        self.inner.map.unpin(key, |seq| seq.is_poisoned())
    }

    /// A view of `key` as a runner of its own: a [`KeyRunner`] that posts to the key's
    /// sequence exactly as [`post_task(key, ..)`](Self::post_task) does, and implements
    /// [`PostTask`], so everything generic over `PostTask` works per key: [`retry`],
    /// [`repeat`](crate::time::repeat), [`post_future`](PostTask::post_future),
    /// [`invoke_all`](crate::fork_join::invoke_all), [`TaskGroup`](crate::fork_join::TaskGroup), an
    /// [`Executor`](crate::executor::Executor) built on it, [`TaskHandle::then`]. Posts through the view
    /// and through this runner share one FIFO per key.
    ///
    /// The view does not keep the key live: the key is still retired when idle and recreated by
    /// the next post, through the view or not.
    ///
    /// [`retry`]: crate::retry::retry
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use taskrunner::{ThreadPool, TaskTraits};
    /// use taskrunner::retry::{retry, RetryPolicy};
    ///
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let per_host = pool.create_keyed_task_runner::<String>(TaskTraits::default());
    /// let calls = Arc::new(AtomicU32::new(0));
    /// let (c, probe) = (calls.clone(), per_host.clone());
    /// let policy = RetryPolicy::attempts(5).base_delay(Duration::from_millis(1));
    /// // Every attempt runs on the host's sequence, in order with the host's other tasks.
    /// let h = retry(&per_host.runner("example.org".to_owned()), policy, move || {
    ///     let on_host = probe.runs_tasks_in_current_sequence("example.org");
    ///     if c.fetch_add(1, Ordering::SeqCst) < 2 { Err("connection reset") } else { Ok(on_host) }
    /// });
    /// assert!(h.join().unwrap());
    /// assert_eq!(calls.load(Ordering::SeqCst), 3);
    /// // The key is retired once its sequence has finished the last attempt, which is just
    /// // after the handle resolved:
    /// let t0 = std::time::Instant::now();
    /// while per_host.live_keys() != 0 {
    ///     assert!(t0.elapsed() < Duration::from_secs(10));
    ///     std::thread::yield_now();
    /// }
    /// ```
    pub fn runner(&self, key: K) -> KeyRunner<K> {
        KeyRunner {
            keyed: self.clone(),
            key,
        }
    }

    fn post_at<F>(
        &self,
        key: K,
        delay: Duration,
        f: F,
        posted_from: &'static Location<'static>,
    ) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        if self.is_closed() {
            return Err(PostError::new(PostRefusal::RunnerClosed, f));
        }
        let (ticket, entry) = self.acquire(key);
        Engine::post_mapped(
            self.inner.pool.inner(),
            PostDest::Sequence(&entry.value),
            delay,
            Keyed { f, ticket },
            |k| move || k.run(),
            posted_from,
        )
        .map_err(|e| e.map(Keyed::into_inner))
    }

    fn post_with_result_from<F, T>(
        &self,
        key: K,
        delay: Duration,
        f: F,
        posted_from: &'static Location<'static>,
    ) -> Result<TaskHandle<T>, PostError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if self.is_closed() {
            return Err(PostError::new(PostRefusal::RunnerClosed, f));
        }
        let (ticket, entry) = self.acquire(key);
        Engine::post_mapped_with_result(
            self.inner.pool.inner(),
            PostDest::Sequence(&entry.value),
            delay,
            Keyed { f, ticket },
            |k| move || k.run(),
            posted_from,
        )
        .map_err(|e| e.map(Keyed::into_inner))
    }

    /// A ticket on `key`'s entry, plus the entry itself to borrow the destination from (the
    /// ticket moves into the posted closure while the destination is still borrowed).
    fn acquire(&self, key: K) -> (SeqTicket<K>, Arc<Entry<K, Arc<Sequence>>>) {
        let traits = self.inner.traits;
        let stats = self.inner.stats.get();
        let ticket = KeyMap::acquire(&self.inner.map, key, || {
            let seq = match stats {
                // Built with its counters in place: no lock of the sequence is taken under the
                // map lock.
                Some(stats) => Sequence::with_stats(traits, StdArc::clone(stats)),
                None => Sequence::new(traits, Home::Pool),
            };
            Arc::new(seq)
        });
        let entry = Arc::clone(&ticket.entry);
        if self.inner.closed.load(Ordering::SeqCst) {
            // Closed while this post took its ticket: the close may have swept the map before
            // the entry was created. The post is then refused at admission.
            entry.value.close();
        }
        (ticket, entry)
    }

    /// Gives the runner a name (for all its clones): it is the `runner` field of the spans of
    /// every key's tasks, is given to the pool's panic handler, shows in `Debug`, and the
    /// runner keeps [metrics](Self::metrics) across all its keys from then on (also listed in
    /// [`PoolMetrics::runners`](crate::PoolMetrics::runners)). As for
    /// [`SequencedTaskRunner::named`](crate::SequencedTaskRunner::named), each task of a named
    /// runner costs one more small allocation and a few atomic adds; a later name replaces
    /// the earlier one.
    ///
    /// ```
    /// use taskrunner::{ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let per_user = pool.create_keyed_task_runner::<u32>(TaskTraits::default()).named("per-user");
    /// assert_eq!(per_user.name().as_deref(), Some("per-user"));
    /// for user in 0..4 {
    ///     per_user.post_task(user, || ()).unwrap();
    /// }
    /// per_user.flush();
    /// assert_eq!(per_user.metrics().unwrap().ran(), 4);
    /// ```
    #[must_use]
    pub fn named(self, name: impl Into<StdArc<str>>) -> Self {
        let name = name.into();
        let mut created = false;
        let stats = self.inner.stats.get_or_init(|| {
            created = true;
            StdArc::new(RunnerStats::new(StdArc::clone(&name)))
        });
        if created {
            self.inner.pool.inner().counters.register_runner(stats);
            // Keys already live take the counters too (new ones get them when created).
            for seq in self.inner.map.values() {
                seq.share_stats(stats);
            }
        } else {
            stats.set_name(name);
        }
        self
    }

    /// Blocks until every task posted to this runner before the call, on any key, has run
    /// (or been dropped): it queues an empty task behind each live key's tasks and waits for
    /// them all. Delayed tasks that are not due yet are not waited for; keys first posted
    /// during the call may or may not be. On a pool worker the wait is a blocking scope.
    ///
    /// # Panics
    ///
    /// If called from a task of one of this runner's keys (it would wait for itself), or on
    /// the thread that drives a seeded single-thread `TestEnvironment`.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use taskrunner::{ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let keyed = pool.create_keyed_task_runner::<u32>(TaskTraits::default());
    /// let n = Arc::new(AtomicUsize::new(0));
    /// for i in 0..100 {
    ///     let n = n.clone();
    ///     keyed.post_task(i % 7, move || { n.fetch_add(1, Ordering::SeqCst); }).unwrap();
    /// }
    /// keyed.flush();
    /// assert_eq!(n.load(Ordering::SeqCst), 100);
    /// ```
    #[track_caller]
    pub fn flush(&self) {
        let seqs = self.inner.map.values();
        for seq in &seqs {
            check_not_own_sequence(Some(seq.token), "KeyedTaskRunner::flush");
        }
        check_can_block("KeyedTaskRunner::flush");
        let pool = self.inner.pool.inner();
        let markers: Vec<_> = seqs
            .iter()
            // A refused marker (a poisoned key, shutdown): nothing of that key is left to run.
            .filter_map(|seq| Engine::post_marker(pool, seq, Location::caller()).ok())
            .collect();
        drop(seqs);
        for m in markers {
            let _ = m.join();
        }
    }
}

impl<K> KeyedTaskRunner<K> {
    /// How many keys have a sequence right now (keys with something queued, delayed or
    /// running, plus poisoned keys). Idle keys are retired, so this returns to 0 when all work
    /// is done. A snapshot.
    ///
    /// ```
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let keyed = pool.create_keyed_task_runner::<u32>(TaskTraits::default());
    /// let handles: Vec<_> = (0..100).map(|k| keyed.post_task_with_result(k, move || k).unwrap()).collect();
    /// assert!(keyed.live_keys() <= 100);
    /// for h in handles { h.join().unwrap(); }
    /// assert_eq!(keyed.live_keys(), 0);
    /// ```
    pub fn live_keys(&self) -> usize {
        self.inner.map.len()
    }

    /// The runner's name, if it was given one ([`named`](KeyedTaskRunner::named)).
    ///
    /// ```
    /// let pool = taskrunner::ThreadPool::builder().max_workers(1).build().unwrap();
    /// assert!(pool.create_keyed_task_runner::<u8>(Default::default()).name().is_none());
    /// ```
    pub fn name(&self) -> Option<StdArc<str>> {
        self.inner.stats.get().map(|s| s.name())
    }

    /// The runner's own metrics, over all its keys, if it was [named](KeyedTaskRunner::named);
    /// see [`RunnerMetrics`].
    ///
    /// ```
    /// let pool = taskrunner::ThreadPool::builder().max_workers(1).build().unwrap();
    /// let keyed = pool.create_keyed_task_runner::<u8>(Default::default());
    /// assert!(keyed.metrics().is_none());
    /// assert_eq!(keyed.named("k").metrics().unwrap().ran(), 0);
    /// ```
    pub fn metrics(&self) -> Option<RunnerMetrics> {
        self.inner.stats.get().map(|s| s.snapshot())
    }

    /// Closes the runner, for every clone and every key, while the pool goes on: later posts
    /// are refused with [`PostRefusal::RunnerClosed`] (the closure handed back), and the tasks
    /// already queued on any key follow the runner's shutdown behaviour, as for
    /// [`SequencedTaskRunner::close`](crate::SequencedTaskRunner::close): immediate
    /// `BlockShutdown` tasks still run in order, the others are dropped (their handles end as
    /// not run). Returns `true` if this call closed it.
    ///
    /// ```
    /// use taskrunner::{PostRefusal, ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let keyed = pool.create_keyed_task_runner::<u8>(TaskTraits::default());
    /// assert!(keyed.close());
    /// assert!(!keyed.close());
    /// let err = keyed.post_task(1, || ()).unwrap_err();
    /// assert_eq!(err.reason(), PostRefusal::RunnerClosed);
    /// ```
    pub fn close(&self) -> bool {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return false;
        }
        for seq in self.inner.map.values() {
            seq.close();
        }
        true
    }

    /// `true` once the runner was [closed](KeyedTaskRunner::close).
    ///
    /// ```
    /// let pool = taskrunner::ThreadPool::builder().max_workers(1).build().unwrap();
    /// let keyed = pool.create_keyed_task_runner::<u8>(Default::default());
    /// assert!(!keyed.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }
}

/// One key of a [`KeyedTaskRunner`] seen as a runner of its own, made by
/// [`KeyedTaskRunner::runner`]: every post goes to that key's sequence through the keyed
/// runner, exactly as [`KeyedTaskRunner::post_task`] with the key does, so posts through the
/// view and through the keyed runner form one FIFO per key, one task at a time. It implements
/// [`PostTask`], so the crate's orchestration ([`retry`](crate::retry::retry),
/// [`repeat`](crate::time::repeat), [`post_future`](PostTask::post_future),
/// [`invoke_all`](crate::fork_join::invoke_all), [`TaskGroup`](crate::fork_join::TaskGroup),
/// [`Executor`](crate::executor::Executor), [`TaskHandle::then`], [`Deferred::run_on`](crate::Deferred::run_on), ...)
/// works per key.
///
/// * [`max_concurrency`](PostTask::max_concurrency) is 1, [`now`](PostTask::now) is the
///   pool's clock.
/// * Refusals are those of the keyed runner (shutdown, a poisoned key), with the closure
///   handed back in the [`PostError`].
/// * The view does not keep its key live: an idle key is retired as usual, and the next post
///   through the view (or the keyed runner) starts a fresh sequence for it, after everything
///   of the old one has finished.
/// * A future posted with [`post_future`](PostTask::post_future) is polled as tasks of the
///   key; one waiting for a wake-up does not keep the key live either, so its next poll may
///   run on a fresh sequence of the key, still after every earlier task of the key.
/// * A wait that could never end (from a task of the key, for work queued to the key behind
///   it) panics with advice, as for a [`SequencedTaskRunner`](crate::SequencedTaskRunner).
///
/// Cheap to clone (a reference count and a copy of the key); `Send + Sync`.
///
/// ```
/// use std::sync::mpsc;
/// use taskrunner::{Deferred, KeyRunner, PostTask, ThreadPool, TaskTraits};
///
/// /// Generic code: knows nothing about keys.
/// fn post_two<R: PostTask>(r: &R, tx: mpsc::Sender<&'static str>) {
///     let tx2 = tx.clone();
///     r.post_task(move || tx.send("first").unwrap()).unwrap();
///     r.post_task(move || tx2.send("second").unwrap()).unwrap();
/// }
///
/// let pool = ThreadPool::builder().max_workers(4).build().unwrap();
/// let per_user = pool.create_keyed_task_runner::<u32>(TaskTraits::default());
/// let user7: KeyRunner<u32> = per_user.runner(7);
/// let (tx, rx) = mpsc::channel();
/// let t = tx.clone();
/// per_user.post_task(7, move || t.send("direct").unwrap()).unwrap();
/// post_two(&user7, tx);
/// let order: Vec<_> = rx.iter().collect();
/// assert_eq!(order, ["direct", "first", "second"]); // one FIFO for user 7
///
/// // A task with a result, through `PostTask`.
/// let (task, handle) = Deferred::new(|| 6 * 7);
/// task.run_on(&user7).unwrap();
/// assert_eq!(handle.join().unwrap(), 42);
/// assert_eq!(user7.max_concurrency(), 1);
/// ```
pub struct KeyRunner<K> {
    keyed: KeyedTaskRunner<K>,
    key: K,
}

impl<K: Clone> Clone for KeyRunner<K> {
    fn clone(&self) -> Self {
        KeyRunner {
            keyed: self.keyed.clone(),
            key: self.key.clone(),
        }
    }
}

impl<K: fmt::Debug> fmt::Debug for KeyRunner<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRunner")
            .field("key", &self.key)
            .field("traits", &self.keyed.inner.traits)
            .finish_non_exhaustive()
    }
}

impl<K> KeyRunner<K>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    /// The key this view posts to.
    ///
    /// ```
    /// # use taskrunner::{ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let keyed = pool.create_keyed_task_runner::<&'static str>(TaskTraits::default());
    /// assert_eq!(*keyed.runner("orders").key(), "orders");
    /// ```
    pub fn key(&self) -> &K {
        &self.key
    }

    /// The keyed runner this view belongs to.
    ///
    /// ```
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let keyed = pool.create_keyed_task_runner::<u8>(TaskTraits::default());
    /// let view = keyed.runner(1);
    /// let h = view.keyed().post_task_with_result(2, || "another key").unwrap();
    /// assert_eq!(h.join().unwrap(), "another key");
    /// ```
    pub fn keyed(&self) -> &KeyedTaskRunner<K> {
        &self.keyed
    }

    /// `true` if called from a task of this key's sequence
    /// ([`KeyedTaskRunner::runs_tasks_in_current_sequence`] with this view's key).
    ///
    /// ```
    /// # use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// # let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let keyed = pool.create_keyed_task_runner::<u32>(TaskTraits::default());
    /// let (one, two) = (keyed.runner(1), keyed.runner(2));
    /// assert!(!one.runs_tasks_in_current_sequence());
    /// let h = one
    ///     .post_task_with_result({
    ///         let one = one.clone();
    ///         move || (one.runs_tasks_in_current_sequence(), two.runs_tasks_in_current_sequence())
    ///     })
    ///     .unwrap();
    /// assert_eq!(h.join().unwrap(), (true, false));
    /// ```
    pub fn runs_tasks_in_current_sequence(&self) -> bool {
        self.keyed.runs_tasks_in_current_sequence(&self.key)
    }
}

impl<K> PostTask for KeyRunner<K>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    #[track_caller]
    fn post_task<F>(&self, f: F) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.post_task_from(f, Location::caller())
    }

    #[track_caller]
    fn post_delayed_task<F>(&self, delay: Duration, f: F) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.post_delayed_task_from(delay, f, Location::caller())
    }

    fn now(&self) -> Instant {
        self.keyed.inner.pool.inner().clock.now()
    }

    fn max_concurrency(&self) -> usize {
        1
    }

    fn post_task_from<F>(
        &self,
        f: F,
        posted_from: &'static Location<'static>,
    ) -> Result<(), PostError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.keyed
            .post_at(self.key.clone(), Duration::ZERO, f, posted_from)
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
        self.keyed.post_at(self.key.clone(), delay, f, posted_from)
    }

    fn post_with_result_from<F, T>(
        &self,
        delay: Duration,
        f: F,
        posted_from: &'static Location<'static>,
    ) -> Result<TaskHandle<T>, PostError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.keyed
            .post_with_result_from(self.key.clone(), delay, f, posted_from)
    }
    /// The token of the key's sequence while the key is live. A task of the key holds the
    /// key live, so asked from one (when a wait is checked), this is that task's sequence;
    /// asked while the key is idle, there is no sequence yet (`None`).
    fn sequence_token(&self) -> Option<u64> {
        self.keyed.inner.map.with_value(&self.key, |seq| seq.token)
    }

    fn pool_link(&self) -> Option<PoolLink> {
        Some(PoolLink(self.keyed.inner.pool.inner().clone()))
    }
}

/// Most shards a keyed runner uses, whatever the pool's size.
const MAX_SHARDS: usize = 64;

/// Shards for a pool of `max_workers`: about four per worker, so that posters and finishing
/// tasks rarely meet on one lock, few enough (4 to 64, a power of two) that `live_keys` stays
/// cheap. Bounded before any arithmetic, so no worker count can overflow it.
fn shard_count(max_workers: usize) -> usize {
    if cfg!(loom) {
        return 2;
    }
    (max_workers.clamp(1, MAX_SHARDS / 4) * 4)
        .next_power_of_two()
        .clamp(4, MAX_SHARDS)
}

/// A posted closure with its ticket. Field order matters: `f` is dropped before `ticket`, so a
/// closure dropped unrun has finished its destructor before its key can retire.
struct Keyed<K: Hash + Eq, F> {
    f: F,
    ticket: SeqTicket<K>,
}

/// The ticket a keyed closure carries: on an entry whose value is the key's sequence.
type SeqTicket<K> = Ticket<K, Arc<Sequence>>;

impl<K: Hash + Eq, F> Keyed<K, F> {
    /// Runs the closure, then releases the ticket. If the closure panics, the ticket is
    /// released while unwinding and says so (`running` is still set). So does a closure that
    /// returns after poisoning the key's sequence: one that caught a panic and reported it as
    /// the task's (a retry attempt, a future's poll, a `Deferred`), under `Poison`.
    fn run<T>(self) -> T
    where
        F: FnOnce() -> T,
    {
        let Keyed { f, mut ticket } = self;
        ticket.running = true;
        let value = f();
        ticket.running = ticket.entry.value.is_poisoned();
        drop(ticket);
        value
    }

    /// The closure of a refused post; the ticket is released here.
    fn into_inner(self) -> F {
        let Keyed { f, ticket } = self;
        drop(ticket);
        f
    }
}

// ---- the protocol: a sharded map of counted entries -----------------------------------------

/// One shard of a [`KeyMap`].
type Shard<K, V> = Mutex<HashMap<K, Arc<Entry<K, V>>, KeyHasher>>;

/// Randomly seeded hashing (HashDoS resistance), except under loom, whose models must be
/// deterministic: there the shard of a key and the order of a table never change between runs.
#[cfg(not(loom))]
type KeyHasher = std::collections::hash_map::RandomState;
#[cfg(loom)]
type KeyHasher = std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher>;

/// The sharded key → entry map. Generic over the per-key value so that the loom models can run
/// the real protocol without a pool.
struct KeyMap<K, V> {
    shards: Box<[Shard<K, V>]>,
    /// Picks the shard; independent of the tables' own hashers, so a shard's keys still spread
    /// over all of its table's buckets.
    shard_hasher: KeyHasher,
    /// A closure that panics pins its entry (the `Poison` policy).
    pin_on_panic: bool,
    /// Set when the last runner handle is gone; no entry is pinned after that. Written before,
    /// and read under, the shard locks.
    closed: AtomicBool,
    /// Unit tests: runs between a release taking the count to zero and the retire step, so a
    /// test can post into that window deterministically (`Draining → Live(1)`).
    #[cfg(all(test, not(loom)))]
    before_retire: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
}

/// One live key: its value (the key's sequence) and the number of tickets on it.
struct Entry<K, V> {
    key: K,
    value: V,
    /// Tickets alive. Incremented only under the shard lock; decremented without it.
    inflight: AtomicUsize,
    /// Never retired (poisoned). Read and written under the shard lock.
    pinned: AtomicBool,
    /// Back to the map, for the release. This cycle (map → entry → map) lasts only while the
    /// entry is mapped: retired entries leave the map, pinned ones are let go by `close`.
    map: Arc<KeyMap<K, V>>,
}

/// A counted claim on an entry, held by one posted closure. Released on drop.
struct Ticket<K: Hash + Eq, V> {
    entry: Arc<Entry<K, V>>,
    /// The closure is running; a drop while set means it panicked.
    running: bool,
}

impl<K: Hash + Eq, V> Drop for Ticket<K, V> {
    fn drop(&mut self) {
        self.entry.map.release(&self.entry, self.running);
    }
}

/// Tables larger than this shrink when less than a quarter full.
const MIN_RETAINED: usize = 64;

impl<K, V> KeyMap<K, V> {
    fn new(shards: usize, pin_on_panic: bool) -> Self {
        debug_assert!(shards.is_power_of_two());
        KeyMap {
            shards: (0..shards)
                .map(|_| Mutex::new(HashMap::with_hasher(KeyHasher::default())))
                .collect(),
            shard_hasher: KeyHasher::default(),
            pin_on_panic,
            closed: AtomicBool::new(false),
            #[cfg(all(test, not(loom)))]
            before_retire: std::sync::OnceLock::new(),
        }
    }

    /// Live keys (a snapshot, one shard at a time).
    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// The values of the live keys (a snapshot, one shard at a time). The caller drops them,
    /// after every shard lock was let go.
    fn values(&self) -> Vec<V>
    where
        V: Clone,
    {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            out.extend(shard.lock().values().map(|e| e.value.clone()));
        }
        out
    }

    /// Lets go of every pinned entry and stops pinning new ones (the last runner handle is
    /// gone). Entries with tickets still retire the normal way.
    fn close(&self) {
        // Ordered before each shard's unlock below, so a `pin` that takes a shard lock after
        // this function swept that shard sees `closed`.
        self.closed.store(true, Ordering::Relaxed);
        for shard in self.shards.iter() {
            let mut released = Vec::new();
            shard.lock().retain(|_, e| {
                if e.pinned.load(Ordering::Relaxed) {
                    released.push(Arc::clone(e));
                    false
                } else {
                    true
                }
            });
            drop(released); // after the unlock: entries own sequences
        }
    }
}

impl<K: Hash + Eq, V> KeyMap<K, V> {
    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> &Shard<K, V> {
        let h = self.shard_hasher.hash_one(key) as usize;
        &self.shards[h & (self.shards.len() - 1)]
    }

    /// Takes a ticket on `key`'s entry, creating the entry (with `make()`) if the key is
    /// absent. `Absent → Live(1)` or `Live(n)/Draining → Live(n+1)`.
    fn acquire(this: &Arc<Self>, key: K, make: impl FnOnce() -> V) -> Ticket<K, V>
    where
        K: Clone,
    {
        let mut map = this.shard(&key).lock();
        let entry = if let Some(e) = map.get(&key) {
            // Under the lock: a releaser that saw zero cannot remove the entry before we
            // unlock, and after that it sees this increment and leaves the entry alone.
            e.inflight.fetch_add(1, Ordering::Relaxed);
            Arc::clone(e)
        } else {
            let e = Arc::new(Entry {
                key: key.clone(),
                value: make(),
                inflight: AtomicUsize::new(1),
                pinned: AtomicBool::new(false),
                map: Arc::clone(this),
            });
            map.insert(key, Arc::clone(&e));
            return Ticket {
                entry: e,
                running: false,
            };
        };
        drop(map);
        // `key` (the caller's copy, not needed for a live key) is dropped after the unlock.
        Ticket {
            entry,
            running: false,
        }
    }

    /// Releases one ticket of `entry`; `panicked` if its closure panicked.
    fn release(&self, entry: &Arc<Entry<K, V>>, panicked: bool) {
        if panicked && self.pin_on_panic {
            self.pin(entry);
        }
        // Release: the closure's effects (and its destructor) happen-before whoever sees the
        // count reach zero. Acquire: the last releaser sees every earlier release.
        if entry.inflight.fetch_sub(1, Ordering::AcqRel) == 1 {
            #[cfg(all(test, not(loom)))]
            if let Some(hook) = self.before_retire.get() {
                hook();
            }
            self.retire(entry);
        }
    }

    /// `Live/Draining → Pinned`, before the panicking closure's ticket is released.
    #[cold]
    fn pin(&self, entry: &Entry<K, V>) {
        let _map = self.shard(&entry.key).lock();
        if !self.closed.load(Ordering::Relaxed) {
            entry.pinned.store(true, Ordering::Relaxed);
        }
    }

    /// `Draining → Absent`, if nobody took a ticket since the count reached zero.
    fn retire(&self, entry: &Arc<Entry<K, V>>) {
        let removed = {
            let mut map = self.shard(&entry.key).lock();
            let still_mapped = map.get(&entry.key).is_some_and(|e| Arc::ptr_eq(e, entry));
            // Acquire: if another releaser took the count to zero after us (a poster revived
            // the entry in between), its closure's effects are ordered before the removal too.
            if still_mapped
                && entry.inflight.load(Ordering::Acquire) == 0
                && !entry.pinned.load(Ordering::Relaxed)
            {
                let removed = map.remove_entry(&entry.key);
                if map.capacity() > MIN_RETAINED && map.len() * 4 < map.capacity() {
                    // Amortised: at least half of the remaining keys must go before the next
                    // shrink, and each one costs O(1) of the rehash.
                    let keep = (map.len() * 2).max(MIN_RETAINED);
                    map.shrink_to(keep);
                }
                removed
            } else {
                None
            }
        };
        drop(removed); // after the unlock: the entry owns a sequence (and a key)
    }

    /// `Pinned → Absent`. Returns `false` if the key is not pinned.
    fn unpin<Q>(&self, key: &Q, poisoned: impl Fn(&V) -> bool) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let removed = {
            let mut map = self.shard(key).lock();
            match map.get(key) {
                Some(e) if e.pinned.load(Ordering::Relaxed) || poisoned(&e.value) => {
                    map.remove_entry(key)
                }
                _ => None,
            }
        };
        let unpinned = removed.is_some();
        drop(removed);
        unpinned
    }

    /// `f(value)` of `key`'s entry, under the shard lock (keep `f` trivial).
    fn with_value<Q, R>(&self, key: &Q, f: impl FnOnce(&V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shard(key).lock().get(key).map(|e| f(&e.value))
    }

    #[cfg(all(test, not(loom)))]
    fn capacity(&self) -> usize {
        self.shards.iter().map(|s| s.lock().capacity()).sum()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn shard_count_is_bounded_for_any_worker_count() {
        assert_eq!(shard_count(0), 4);
        assert_eq!(shard_count(1), 4);
        assert_eq!(shard_count(3), 16);
        assert_eq!(shard_count(16), 64);
        for n in [17, 1 << 20, usize::MAX / 4 + 1, usize::MAX - 1, usize::MAX] {
            assert_eq!(shard_count(n), MAX_SHARDS, "{n} workers");
        }
    }

    #[test]
    fn tickets_share_an_entry_and_the_last_one_retires_it() {
        let map = Arc::new(KeyMap::<u32, u32>::new(4, false));
        let a = KeyMap::acquire(&map, 1, || 10);
        let b = KeyMap::acquire(&map, 1, || unreachable!("the key is live"));
        assert!(Arc::ptr_eq(&a.entry, &b.entry));
        assert_eq!(map.len(), 1);
        drop(a);
        assert_eq!(map.len(), 1);
        drop(b);
        assert_eq!(map.len(), 0);
        // A fresh incarnation after retirement.
        let c = KeyMap::acquire(&map, 1, || 11);
        assert_eq!(c.entry.value, 11);
    }

    #[test]
    fn a_burst_of_keys_does_not_keep_its_peak_capacity() {
        let map = Arc::new(KeyMap::<u32, ()>::new(4, false));
        let tickets: Vec<_> = (0..20_000)
            .map(|k| KeyMap::acquire(&map, k, || ()))
            .collect();
        assert!(map.capacity() >= 20_000);
        drop(tickets);
        assert_eq!(map.len(), 0);
        assert!(
            map.capacity() <= 4 * 2 * MIN_RETAINED,
            "capacity {} after every key retired",
            map.capacity()
        );
    }

    #[test]
    fn a_panicked_ticket_pins_its_entry_until_unpinned_or_closed() {
        let map = Arc::new(KeyMap::<u32, ()>::new(4, true));
        let mut t = KeyMap::acquire(&map, 1, || ());
        t.running = true; // as if its closure panicked
        drop(t);
        assert_eq!(map.len(), 1, "pinned");
        assert!(map.unpin(&1, |_| false));
        assert!(!map.unpin(&1, |_| false));
        assert_eq!(map.len(), 0);

        let mut t = KeyMap::acquire(&map, 2, || ());
        t.running = true;
        drop(t);
        map.close();
        assert_eq!(map.len(), 0, "close lets go of pinned entries");
        let mut t = KeyMap::acquire(&map, 3, || ());
        t.running = true;
        drop(t);
        assert_eq!(map.len(), 0, "no pinning after close");
    }

    /// `Draining → Live(1)` on a real pool: a post lands between the last release and the
    /// retire step. It must join the same incarnation (same sequence, run after the finished
    /// task), and the retire step must then leave the entry alone.
    #[test]
    fn a_post_in_the_retire_window_revives_the_same_sequence() {
        use crate::{SequencedTaskRunner, TaskTraits, ThreadPool};
        use std::sync::mpsc;
        const T: Duration = Duration::from_secs(30);

        let pool = ThreadPool::builder().max_workers(2).build().unwrap();
        let keyed = pool.create_keyed_task_runner::<u32>(TaskTraits::default());
        let (in_window_tx, in_window_rx) = mpsc::channel::<()>();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let armed = AtomicBool::new(true);
        let hook = Mutex::new((in_window_tx, go_rx));
        let installed = keyed.inner.map.before_retire.set(Box::new(move || {
            if armed.swap(false, Ordering::SeqCst) {
                let g = hook.lock();
                g.0.send(()).unwrap();
                g.1.recv_timeout(T)
                    .expect("the test never opened the window");
            }
        }));
        assert!(installed.is_ok());

        let first = keyed
            .post_task_with_result(1, || {
                SequencedTaskRunner::current().expect("a keyed task runs in a sequence")
            })
            .unwrap();
        // The first task has finished and released its ticket; its releaser waits in the hook.
        in_window_rx.recv_timeout(T).unwrap();
        let probe = keyed.clone();
        let second = keyed
            .post_task_with_result(1, move || {
                let seq = SequencedTaskRunner::current().expect("a keyed task runs in a sequence");
                (seq, probe.is_live(&1))
            })
            .unwrap();
        go_tx.send(()).unwrap();
        let first_seq = first.join().unwrap();
        let (second_seq, live_while_running) = second.join().unwrap();
        assert!(
            first_seq.is_same_sequence(&second_seq),
            "the revived key got a second sequence"
        );
        assert!(
            live_while_running,
            "the retire step removed a revived entry"
        );
        assert_eq!(keyed.live_keys(), 0);
    }

    #[test]
    fn without_poison_a_panic_does_not_pin() {
        let map = Arc::new(KeyMap::<u32, ()>::new(4, false));
        let mut t = KeyMap::acquire(&map, 1, || ());
        t.running = true;
        drop(t);
        assert_eq!(map.len(), 0);
    }
}

/// Loom models of the retirement protocol, on the real `KeyMap` (see the module doc's tables).
/// Run with `ci/loom.sh` (filter `loom_`).
#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use crate::base::shim::thread;
    use crate::loom_tests::model;

    /// Values record which incarnation of the key an entry is.
    type Map = KeyMap<u8, u32>;

    /// A new incarnation exists only once the old one has no ticket left, and the old one's
    /// releases happen-before it (the relaxed `witness` store is visible).
    fn check_new_incarnation(old: &Entry<u8, u32>, new: &Ticket<u8, u32>, witness: &AtomicUsize) {
        if new.entry.value != old.value {
            assert_eq!(
                old.inflight.load(Ordering::Relaxed),
                0,
                "two live incarnations"
            );
            assert_eq!(witness.load(Ordering::Relaxed), 1, "no happens-before");
        }
    }

    /// `Live(1) → Draining → Absent` (the task finishes) vs a post for the same key.
    #[test]
    fn loom_keyed_post_vs_retire() {
        model(|| {
            let map = Arc::new(Map::new(2, false));
            let witness = Arc::new(AtomicUsize::new(0));
            let t1 = KeyMap::acquire(&map, 0, || 1);
            let old = Arc::clone(&t1.entry);
            let w = Arc::clone(&witness);
            let finisher = thread::spawn(move || {
                w.store(1, Ordering::Relaxed); // the task's last effect
                drop(t1);
            });
            let m = Arc::clone(&map);
            let (o, w) = (Arc::clone(&old), Arc::clone(&witness));
            let poster = thread::spawn(move || {
                let t2 = KeyMap::acquire(&m, 0, || 2);
                check_new_incarnation(&o, &t2, &w);
                drop(t2);
            });
            finisher.join().unwrap();
            poster.join().unwrap();
            assert_eq!(map.len(), 0, "idle key not retired");
            assert_eq!(old.inflight.load(Ordering::Relaxed), 0);
        });
    }

    /// Two tickets finish concurrently (both may see zero in turn after a revival) while a
    /// poster takes a third: exactly one incarnation at a time, and the key ends retired.
    #[test]
    fn loom_keyed_two_finishers_and_a_poster() {
        model(|| {
            let map = Arc::new(Map::new(2, false));
            let witness = Arc::new(AtomicUsize::new(0));
            let t1 = KeyMap::acquire(&map, 0, || 1);
            let t2 = KeyMap::acquire(&map, 0, || unreachable!());
            let old = Arc::clone(&t1.entry);
            let done = Arc::new(AtomicUsize::new(0));
            let finish = |t: Ticket<u8, u32>| {
                let (w, d) = (Arc::clone(&witness), Arc::clone(&done));
                thread::spawn(move || {
                    if d.fetch_add(1, Ordering::Relaxed) == 1 {
                        w.store(1, Ordering::Relaxed); // the last task's effect
                    }
                    drop(t);
                })
            };
            let a = finish(t1);
            let b = finish(t2);
            let m = Arc::clone(&map);
            let (o, w) = (Arc::clone(&old), Arc::clone(&witness));
            let poster = thread::spawn(move || {
                let t3 = KeyMap::acquire(&m, 0, || 2);
                check_new_incarnation(&o, &t3, &w);
                drop(t3);
            });
            a.join().unwrap();
            b.join().unwrap();
            poster.join().unwrap();
            assert_eq!(map.len(), 0, "idle key not retired");
        });
    }

    /// The last task finishes while two posters arrive: whichever incarnations they get, the
    /// second incarnation never coexists with a ticket of the first.
    #[test]
    fn loom_keyed_retire_vs_two_posters() {
        model(|| {
            let map = Arc::new(Map::new(2, false));
            let witness = Arc::new(AtomicUsize::new(0));
            let t1 = KeyMap::acquire(&map, 0, || 1);
            let old = Arc::clone(&t1.entry);
            let w = Arc::clone(&witness);
            let finisher = thread::spawn(move || {
                w.store(1, Ordering::Relaxed);
                drop(t1);
            });
            let post = |value: u32| {
                let (m, o, w) = (Arc::clone(&map), Arc::clone(&old), Arc::clone(&witness));
                thread::spawn(move || {
                    let t = KeyMap::acquire(&m, 0, || value);
                    check_new_incarnation(&o, &t, &w);
                    drop(t);
                })
            };
            let p1 = post(2);
            let p2 = post(3);
            finisher.join().unwrap();
            p1.join().unwrap();
            p2.join().unwrap();
            assert_eq!(map.len(), 0, "idle key not retired");
        });
    }

    /// A panicking ticket pins its entry (`Poison`) while the last runner handle closes the
    /// map: the entry is never left pinned in a closed map (which would leak it).
    #[test]
    fn loom_keyed_pin_vs_close() {
        model(|| {
            let map = Arc::new(Map::new(2, true));
            let mut t = KeyMap::acquire(&map, 0, || 1);
            let panicker = thread::spawn(move || {
                t.running = true;
                drop(t);
            });
            let m = Arc::clone(&map);
            let closer = thread::spawn(move || m.close());
            panicker.join().unwrap();
            closer.join().unwrap();
            assert_eq!(map.len(), 0, "pinned entry left in a closed map");
        });
    }
}
