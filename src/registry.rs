//! [`HandleRegistry`]: task handles kept by numeric id, for scripting hosts and FFI.
//!
//! ```
//! use taskrunner::registry::HandleRegistry;
//! use taskrunner::{PostTask, TaskTraits, ThreadPool};
//!
//! let pool = ThreadPool::builder().max_workers(1).build().unwrap();
//! let reg = HandleRegistry::new(100);
//! let id = reg.insert(pool.post_task_with_result(TaskTraits::default(), || 6 * 7).unwrap()).unwrap();
//! assert_eq!(reg.wait(id).unwrap(), 42);
//! ```
//!
//! A script (Lua, Python through pyo3, Wren, rhai, a C caller) cannot hold a Rust
//! [`TaskHandle`]; it holds a number. The registry keeps handles in a map by id and gives
//! scripts `await`, `isReady`, `get`, `cancel`, `getState` and `cleanup` by id (the shape of
//! wren.go's `AsyncManager` script API):
//!
//! * racing `cancel` and completion never panics and never overwrites a result: the handle's
//!   single CAS decides, the registry only reads it;
//! * the registry is **bounded** and cleans up by itself: a result that was read (by
//!   [`get`](HandleRegistry::get) or [`wait`](HandleRegistry::wait)) is removed after
//!   [`retain_collected_for`](HandleRegistryBuilder::retain_collected_for);
//! * [`cleanup`](HandleRegistry::cleanup) of a handle whose task has not ended **cancels** it
//!   rather than losing track of work that keeps running;
//! * ids are `u64` ([`HandleId`]) with a checked conversion to the doubles scripts store
//!   numbers in;
//! * a blocking [`wait`](HandleRegistry::wait) on a pool worker is a blocking scope (the pool
//!   runs one more worker while it blocks), and a timeout too large to represent
//!   (`Duration::MAX`) means no limit, as does a retention too long to represent.
//!
//! # Locks
//!
//! One lock over the table (id → entry, plus the expiry queue), one small lock per entry (its
//! handle, the result once observed). Order: table, then entry; never the reverse. A blocking
//! [`wait`](HandleRegistry::wait) holds neither while it sleeps: it waits on the entry's condition
//! variable, which the handle wakes (through a [`Waker`] registered at insert) when the task
//! ends. `TaskHandle::cancel` may run user code (the closure's destructor, token callbacks) and
//! wakes that waker, so [`cancel`](HandleRegistry::cancel) checks the handle out of its entry
//! and calls it with no lock held; other callers wait the moment it takes. Handles and results
//! are dropped with no lock held.
//!
//! # Automatic cleanup
//!
//! The first time an entry's outcome is read, its expiry (now + retention, on the registry's
//! [`Clock`]) is appended to a queue; expiries are appended in time order, so a purge pops
//! expired ids from the front: amortised O(1) per entry, no background thread. Purges happen in
//! [`insert`](HandleRegistry::insert), [`len`](HandleRegistry::len),
//! [`ids`](HandleRegistry::ids) and [`purge_expired`](HandleRegistry::purge_expired).

use std::collections::{HashMap, VecDeque};
use std::error::Error;
use std::fmt;
use std::sync::{Arc, Weak};
use std::task::{Wake, Waker};
use std::time::{Duration, Instant};

use crate::base::clock::{Clock, SystemClock};
use crate::base::deadline::Deadline;
use crate::base::shim::{AtomicU64, Condvar, Mutex, MutexGuard, Ordering};
use crate::base::unwind::{catch, drop_quietly};
use crate::engine::blocking_unchecked;
use crate::handle::{TaskError, TaskHandle, TaskState};

/// The largest id a script's double can hold exactly: 2^53.
const MAX_EXACT_F64: u64 = 1 << 53;

/// The id of a handle in a [`HandleRegistry`]: ids start at 1 and are never reused by a
/// registry.
///
/// Scripting languages often store numbers as `f64`, which is exact only up to 2^53; the
/// checked conversions [`to_f64`](Self::to_f64) and [`from_f64`](Self::from_f64) refuse what
/// would not round-trip.
///
/// ```
/// use taskrunner::registry::HandleId;
/// let id = HandleId::from_u64(42);
/// assert_eq!(id.as_u64(), 42);
/// assert_eq!(HandleId::from_f64(id.to_f64().unwrap()), Some(id));
/// assert_eq!(HandleId::from_u64((1 << 53) + 1).to_f64(), None);
/// assert_eq!(id.to_string(), "42");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HandleId(u64);

impl HandleId {
    /// The id with this number (for ids received from a host as integers).
    ///
    /// ```
    /// assert_eq!(taskrunner::registry::HandleId::from_u64(7).as_u64(), 7);
    /// ```
    pub const fn from_u64(n: u64) -> Self {
        HandleId(n)
    }

    /// The id as a number.
    ///
    /// ```
    /// assert_eq!(taskrunner::registry::HandleId::from_u64(3).as_u64(), 3);
    /// ```
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// The id as a double, or `None` above 2^53 (where a double can no longer hold every
    /// integer, so the script would get a different id back).
    ///
    /// ```
    /// use taskrunner::registry::HandleId;
    /// assert_eq!(HandleId::from_u64(1 << 53).to_f64(), Some(9007199254740992.0));
    /// assert_eq!(HandleId::from_u64((1 << 53) + 1).to_f64(), None);
    /// ```
    pub fn to_f64(self) -> Option<f64> {
        (self.0 <= MAX_EXACT_F64).then_some(self.0 as f64)
    }

    /// The id a script passed as a double: `None` unless it is a whole number in
    /// `0..=2^53` (negative, fractional, NaN, infinite or larger values are refused).
    ///
    /// ```
    /// use taskrunner::registry::HandleId;
    /// assert_eq!(HandleId::from_f64(5.0), Some(HandleId::from_u64(5)));
    /// assert_eq!(HandleId::from_f64(5.5), None);
    /// assert_eq!(HandleId::from_f64(-1.0), None);
    /// assert_eq!(HandleId::from_f64(f64::NAN), None);
    /// assert_eq!(HandleId::from_f64(1e300), None);
    /// ```
    pub fn from_f64(x: f64) -> Option<Self> {
        if x.is_finite() && x >= 0.0 && x.fract() == 0.0 && x <= MAX_EXACT_F64 as f64 {
            Some(HandleId(x as u64))
        } else {
            None
        }
    }
}

impl fmt::Display for HandleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why a registry call by id could not give a value.
///
/// The messages follow wren.go's script API ("future not found", "future not ready").
///
/// ```
/// use taskrunner::registry::{HandleId, HandleRegistry, RegistryError};
/// let reg: HandleRegistry<u8> = HandleRegistry::new(8);
/// let err = reg.get(HandleId::from_u64(99)).unwrap_err();
/// assert_eq!(err, RegistryError::NotFound);
/// assert_eq!(err.to_string(), "future not found");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistryError {
    /// No entry with this id: never inserted, cleaned up, taken, or expired after its result
    /// was read.
    NotFound,
    /// The task has not ended yet (non-blocking calls only).
    NotReady,
    /// The task ended without a value: it panicked, returned an error, was cancelled, or was
    /// dropped unrun. The [`TaskError`] says which.
    Failed(TaskError),
}

impl RegistryError {
    /// The task's error, for [`Failed`](Self::Failed).
    ///
    /// ```
    /// use taskrunner::TaskError;
    /// use taskrunner::registry::RegistryError;
    /// let e = RegistryError::Failed(TaskError::new("boom"));
    /// assert!(e.task_error().unwrap().is_failed());
    /// assert_eq!(e.task_error().unwrap().to_string(), "task failed: boom");
    /// assert_eq!(e.to_string(), "future failed: task failed: boom");
    /// assert!(RegistryError::NotReady.task_error().is_none());
    /// ```
    pub fn task_error(&self) -> Option<&TaskError> {
        match self {
            RegistryError::Failed(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryError::NotFound => f.write_str("future not found"),
            RegistryError::NotReady => f.write_str("future not ready"),
            RegistryError::Failed(e) => write!(f, "future failed: {e}"),
        }
    }
}

impl Error for RegistryError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            RegistryError::Failed(e) => Some(e),
            _ => None,
        }
    }
}

/// [`HandleRegistry::insert`] found the registry full (after purging expired entries); the
/// handle is handed back. It is an [`Error`] (`Send + Sync + 'static` for a `T: Send +
/// 'static`), so `?` works with it.
///
/// ```
/// use taskrunner::TaskHandle;
/// use taskrunner::registry::HandleRegistry;
/// let reg = HandleRegistry::new(1);
/// reg.insert(TaskHandle::ready(1)).unwrap();
/// let full = reg.insert(TaskHandle::ready(2)).unwrap_err();
/// assert_eq!(full.capacity(), 1);
/// assert_eq!(full.to_string(), "handle registry is full (capacity 1)");
/// assert_eq!(full.into_inner().join().unwrap(), 2);
///
/// fn register(reg: &HandleRegistry<u8>) -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
///     Ok(reg.insert(TaskHandle::ready(3))?.as_u64())
/// }
/// assert!(register(&reg).is_err()); // still full
/// ```
pub struct RegistryFull<T> {
    handle: TaskHandle<T>,
    capacity: usize,
}

impl<T> RegistryFull<T> {
    /// The handle that was not inserted.
    ///
    /// See [`RegistryFull`] for an example.
    pub fn into_inner(self) -> TaskHandle<T> {
        self.handle
    }

    /// The registry's capacity.
    ///
    /// See [`RegistryFull`] for an example.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

impl<T> fmt::Debug for RegistryFull<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryFull")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for RegistryFull<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "handle registry is full (capacity {})", self.capacity)
    }
}

impl<T> Error for RegistryFull<T> {}

/// The wren numbering of a state: 0 pending (or running), 1 completed, 2 failed (panicked or
/// returned an error), 3 cancelled (including dropped unrun and deadline exceeded).
const fn code_of(state: TaskState) -> u8 {
    match state {
        TaskState::Pending | TaskState::Running => 0,
        TaskState::Completed => 1,
        TaskState::Panicked | TaskState::Failed => 2,
        TaskState::Cancelled => 3,
    }
}

struct Slot<T> {
    /// `None` while checked out by a cancel (`busy`) and after the entry was removed.
    handle: Option<TaskHandle<T>>,
    busy: bool,
    /// The outcome, moved out of the handle the first time it was seen ended.
    result: Option<Result<T, TaskError>>,
    /// The outcome was read (get / wait): the entry is in the expiry queue.
    collected: bool,
    /// Removed from the table (cleanup, take, remove, expiry): waiters give up.
    removed: bool,
}

impl<T: Send + 'static> Slot<T> {
    /// Moves the outcome out of the handle if the task has ended.
    fn observe(&mut self) {
        if self.result.is_some() {
            return;
        }
        if let Some(h) = &mut self.handle {
            if h.is_finished() {
                self.result = Some(h.try_result().unwrap_or_else(|| {
                    Err(TaskError::new(
                        "the task's result was taken from its handle before it was registered",
                    ))
                }));
            }
        }
    }

    fn state(&self) -> TaskState {
        match &self.handle {
            Some(h) if self.result.is_some() => h.state(),
            Some(h) => match h.state() {
                TaskState::Pending => TaskState::Pending,
                _ => TaskState::Running, // a terminal state not yet stored counts as running
            },
            None => TaskState::Running,
        }
    }
}

struct Entry<T> {
    slot: Mutex<Slot<T>>,
    cv: Condvar,
}

impl<T: Send + 'static> Entry<T> {
    /// Locks the slot once no cancel has the handle checked out.
    /// The entry's slot once no `cancel` is running user code on it (a short wait, a blocking
    /// scope if it happens on a pool worker).
    fn lock_idle(&self) -> MutexGuard<'_, Slot<T>> {
        let s = self.slot.lock();
        if !s.busy {
            return s;
        }
        drop(s);
        blocking_unchecked(|| {
            let mut s = self.slot.lock();
            while s.busy {
                self.cv.wait(&mut s);
            }
            s
        })
    }
}

/// Wakes an entry's waiters when its task ends (registered in the handle at insert).
struct EntryWaker<T>(Weak<Entry<T>>);

impl<T: Send + 'static> Wake for EntryWaker<T> {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(e) = self.0.upgrade() {
            // Taking the lock orders this wake after a waiter's check: no lost wake-up.
            let _g = e.slot.lock();
            e.cv.notify_all();
        }
    }
}

struct Table<T> {
    entries: HashMap<u64, Arc<Entry<T>>>,
    /// `(expiry, id)` of collected entries, in expiry order.
    expiries: VecDeque<(Instant, u64)>,
}

struct RegistryState<T> {
    table: Mutex<Table<T>>,
    next_id: AtomicU64,
    capacity: usize,
    retain: Duration,
    clock: Arc<dyn Clock>,
}

/// Builds a [`HandleRegistry`]: capacity (default 10 000), how long a read result is kept
/// (default 60 s), and the clock that measures it (default [`SystemClock`]).
///
/// ```
/// use std::time::Duration;
/// use taskrunner::registry::HandleRegistry;
/// let reg: HandleRegistry<String> = HandleRegistry::builder()
///     .capacity(100)
///     .retain_collected_for(Duration::from_secs(5))
///     .build();
/// assert_eq!(reg.capacity(), 100);
/// assert_eq!(reg.retention(), Duration::from_secs(5));
/// ```
#[derive(Debug)]
pub struct HandleRegistryBuilder {
    capacity: usize,
    retain: Duration,
    clock: Arc<dyn Clock>,
}

impl HandleRegistryBuilder {
    /// The most entries the registry holds (at least 1).
    ///
    /// See [`HandleRegistryBuilder`] for an example.
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// How long an entry is kept after its outcome was first read by
    /// [`get`](HandleRegistry::get) or [`wait`](HandleRegistry::wait). `Duration::ZERO` removes
    /// it at the next purge; `Duration::MAX` keeps it until [`cleanup`](HandleRegistry::cleanup).
    ///
    /// See [`HandleRegistryBuilder`] for an example.
    #[must_use]
    pub fn retain_collected_for(mut self, retain: Duration) -> Self {
        self.retain = retain;
        self
    }

    /// The clock retention is measured on (a `ManualClock` in tests, for
    /// example a `TestEnvironment`'s `env.clock().clone()`).
    ///
    /// ```
    /// # #[cfg(feature = "test-util")] {
    /// use std::time::Duration;
    /// use taskrunner::TaskHandle;
    /// use taskrunner::registry::HandleRegistry;
    /// use taskrunner::testing::ManualClock;
    /// let clock = ManualClock::new();
    /// let reg = HandleRegistry::builder()
    ///     .retain_collected_for(Duration::from_secs(60))
    ///     .clock(clock.clone())
    ///     .build();
    /// let id = reg.insert(TaskHandle::ready(1)).unwrap();
    /// assert_eq!(reg.get(id), Ok(1)); // read: expires in 60 s
    /// clock.advance(Duration::from_secs(60));
    /// assert_eq!(reg.len(), 0);
    /// # }
    /// ```
    #[must_use]
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The registry.
    ///
    /// # Panics
    ///
    /// If the capacity is zero.
    ///
    /// See [`HandleRegistryBuilder`] for an example.
    pub fn build<T: Send + 'static>(self) -> HandleRegistry<T> {
        assert!(
            self.capacity > 0,
            "HandleRegistry: the capacity must be at least 1"
        );
        HandleRegistry {
            inner: Arc::new(RegistryState {
                table: Mutex::new(Table {
                    entries: HashMap::new(),
                    expiries: VecDeque::new(),
                }),
                next_id: AtomicU64::new(1),
                capacity: self.capacity,
                retain: self.retain,
                clock: self.clock,
            }),
        }
    }
}

/// Task handles by numeric id, for scripting hosts and FFI: insert a [`TaskHandle`], give the
/// script its [`HandleId`], and answer the script's `await` / `isReady` / `get` / `cancel` /
/// `getState` / `cleanup` calls by id. `Send + Sync`; clones share the same registry.
///
/// * **Reading results.** The outcome is moved out of the handle into the entry the first
///   time it is seen; [`get`](Self::get) and [`wait`](Self::wait) return clones (`T: Clone`), so
///   any number of reads, from any number of threads, see the same value.
///   [`take`](Self::take) moves it out instead and removes the entry.
/// * **Bounded.** [`insert`](Self::insert) into a full registry first purges expired entries,
///   then hands the handle back ([`RegistryFull`]).
/// * **Automatic cleanup.** An entry whose outcome was read is removed
///   [`retain_collected_for`](HandleRegistryBuilder::retain_collected_for) later (default 60 s)
///   on the registry's clock. Entries never read stay until [`cleanup`](Self::cleanup),
///   [`take`](Self::take) or [`remove`](Self::remove).
/// * **States** ([`state_code`](Self::state_code)) use wren.go's numbers: 0 pending or running,
///   1 completed, 2 failed (panicked or returned an error), 3 cancelled (cancelled, dropped
///   unrun at shutdown, or deadline exceeded). [`state`](Self::state) gives the full
///   [`TaskState`].
///
/// ```
/// use taskrunner::{PostTask, ThreadPool, TaskTraits};
/// use taskrunner::registry::{HandleRegistry, RegistryError};
/// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
/// let reg = HandleRegistry::new(1000);
/// let id = reg.insert(pool.post_task_with_result(TaskTraits::default(), || 6 * 7).unwrap()).unwrap();
/// let script_id = id.to_f64().unwrap(); // what the script holds
/// let id = taskrunner::registry::HandleId::from_f64(script_id).unwrap();
/// assert_eq!(reg.wait(id), Ok(42));
/// assert_eq!(reg.get(id), Ok(42)); // read again
/// assert_eq!(reg.state_code(id), Ok(1));
/// assert!(reg.cleanup(id));
/// assert_eq!(reg.get(id), Err(RegistryError::NotFound));
/// ```
pub struct HandleRegistry<T> {
    inner: Arc<RegistryState<T>>,
}

impl<T> Clone for HandleRegistry<T> {
    fn clone(&self) -> Self {
        HandleRegistry {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> fmt::Debug for HandleRegistry<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandleRegistry")
            .field("entries", &self.inner.table.lock().entries.len())
            .field("capacity", &self.inner.capacity)
            .field("retain_collected_for", &self.inner.retain)
            .finish()
    }
}

impl HandleRegistry<()> {
    /// A builder (capacity 10 000, retention 60 s, [`SystemClock`]).
    ///
    /// See [`HandleRegistryBuilder`] for an example.
    pub fn builder() -> HandleRegistryBuilder {
        HandleRegistryBuilder {
            capacity: 10_000,
            retain: Duration::from_secs(60),
            clock: Arc::new(SystemClock),
        }
    }
}

impl<T: Send + 'static> HandleRegistry<T> {
    /// A registry of at most `capacity` entries, keeping read results 60 s, on the system
    /// clock.
    ///
    /// # Panics
    ///
    /// If `capacity` is zero.
    ///
    /// ```
    /// let reg: taskrunner::registry::HandleRegistry<u32> = taskrunner::registry::HandleRegistry::new(16);
    /// assert_eq!(reg.capacity(), 16);
    /// assert!(reg.is_empty());
    /// ```
    pub fn new(capacity: usize) -> Self {
        HandleRegistry::builder().capacity(capacity).build()
    }

    /// Registers `handle` and returns its id (unique, at least 1). When the registry is full,
    /// expired entries are purged first; if it is still full the handle is handed back.
    ///
    /// ```
    /// use taskrunner::TaskHandle;
    /// use taskrunner::registry::HandleRegistry;
    /// let reg = HandleRegistry::new(2);
    /// let a = reg.insert(TaskHandle::ready('a')).unwrap();
    /// let b = reg.insert(TaskHandle::ready('b')).unwrap();
    /// assert!(a.as_u64() >= 1 && a != b);
    /// assert!(reg.insert(TaskHandle::ready('c')).is_err()); // full
    /// ```
    pub fn insert(&self, handle: TaskHandle<T>) -> Result<HandleId, RegistryFull<T>> {
        let entry = Arc::new_cyclic(|weak: &Weak<Entry<T>>| {
            // Registered before the entry exists: if the task has already ended, this wake
            // finds no entry and does nothing (the first read sees the end anyway).
            let waker = Waker::from(Arc::new(EntryWaker(weak.clone())));
            handle.wake_when_done(&waker);
            Entry {
                slot: Mutex::new(Slot {
                    handle: None,
                    busy: false,
                    result: None,
                    collected: false,
                    removed: false,
                }),
                cv: Condvar::new(),
            }
        });
        entry.slot.lock().handle = Some(handle);
        let mut expired = Vec::new();
        let id = {
            let mut t = self.inner.table.lock();
            if t.entries.len() >= self.inner.capacity {
                self.purge_locked(&mut t, &mut expired);
            }
            if t.entries.len() >= self.inner.capacity {
                None
            } else {
                let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
                t.entries.insert(id, Arc::clone(&entry));
                Some(id)
            }
        };
        drop_quietly(expired);
        match id {
            Some(id) => Ok(HandleId(id)),
            None => {
                let handle = entry
                    .slot
                    .lock()
                    .handle
                    .take()
                    .expect("the handle was just stored");
                Err(RegistryFull {
                    handle,
                    capacity: self.inner.capacity,
                })
            }
        }
    }

    /// `true` once the task has ended (in any state); never blocks.
    ///
    /// ```
    /// # use std::time::Duration;
    /// use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// use taskrunner::registry::HandleRegistry;
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let reg = HandleRegistry::new(8);
    /// let slow = reg.insert(pool.post_delayed_task_with_result(TaskTraits::default(), Duration::from_secs(60), || 1).unwrap()).unwrap();
    /// assert_eq!(reg.is_ready(slow), Ok(false));
    /// reg.cancel(slow).unwrap();
    /// assert_eq!(reg.is_ready(slow), Ok(true)); // cancelled counts as ready
    /// ```
    pub fn is_ready(&self, id: HandleId) -> Result<bool, RegistryError> {
        let e = self.entry(id)?;
        let mut s = e.lock_idle();
        if s.removed {
            return Err(RegistryError::NotFound);
        }
        s.observe();
        Ok(s.result.is_some())
    }

    /// The task's state now.
    ///
    /// ```
    /// use taskrunner::{TaskError, TaskHandle, TaskState};
    /// use taskrunner::registry::HandleRegistry;
    /// let reg = HandleRegistry::new(8);
    /// let id = reg.insert(TaskHandle::<u8>::failed(TaskError::new("boom"))).unwrap();
    /// assert_eq!(reg.state(id), Ok(TaskState::Failed));
    /// ```
    pub fn state(&self, id: HandleId) -> Result<TaskState, RegistryError> {
        let e = self.entry(id)?;
        let mut s = e.lock_idle();
        if s.removed {
            return Err(RegistryError::NotFound);
        }
        s.observe();
        Ok(s.state())
    }

    /// The state as wren.go's script API numbered it: 0 pending (or running), 1 completed,
    /// 2 failed (panicked or returned an error), 3 cancelled (cancelled, dropped unrun, or
    /// deadline exceeded).
    ///
    /// ```
    /// use taskrunner::{TaskError, TaskHandle};
    /// use taskrunner::registry::HandleRegistry;
    /// let reg = HandleRegistry::new(8);
    /// let ok = reg.insert(TaskHandle::ready(1)).unwrap();
    /// let bad = reg.insert(TaskHandle::failed(TaskError::new("x"))).unwrap();
    /// assert_eq!((reg.state_code(ok), reg.state_code(bad)), (Ok(1), Ok(2)));
    /// ```
    pub fn state_code(&self, id: HandleId) -> Result<u8, RegistryError> {
        self.state(id).map(code_of)
    }

    /// Cancels the task: one that has not started never runs (state 3). One that is running
    /// has its [`CancellationToken`](crate::cancel::CancellationToken) cancelled if it runs with one
    /// (executor, fork/join, retry tasks) and keeps whatever it returns. `Ok(true)` if this
    /// call cancelled it; `Ok(false)` if it had already started or ended. Safe against a
    /// completion racing it: the result of a task that finished first is kept.
    ///
    /// ```
    /// # use std::time::Duration;
    /// use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// use taskrunner::registry::HandleRegistry;
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let reg = HandleRegistry::new(8);
    /// let id = reg.insert(pool.post_delayed_task_with_result(TaskTraits::default(), Duration::from_secs(60), || 1).unwrap()).unwrap();
    /// assert_eq!(reg.cancel(id), Ok(true));
    /// assert_eq!(reg.cancel(id), Ok(false));
    /// assert_eq!(reg.state_code(id), Ok(3));
    /// assert!(reg.get(id).unwrap_err().task_error().unwrap().is_cancelled());
    /// ```
    pub fn cancel(&self, id: HandleId) -> Result<bool, RegistryError> {
        let e = self.entry(id)?;
        let handle = {
            let mut s = e.lock_idle();
            if s.removed {
                return Err(RegistryError::NotFound);
            }
            s.observe();
            if s.result.is_some() {
                return Ok(false);
            }
            s.busy = true;
            s.handle.take()
        };
        // No lock held: cancelling drops the closure and runs token callbacks (user code), and
        // the handle wakes this entry's waker.
        let outcome = catch(|| handle.as_ref().is_some_and(TaskHandle::cancel));
        {
            let mut s = e.slot.lock();
            s.handle = handle;
            s.busy = false;
            e.cv.notify_all();
        }
        match outcome {
            Ok(cancelled) => Ok(cancelled),
            // The caller's own panic (a destructor or token callback of its task): resumed.
            Err(payload) => std::panic::resume_unwind(payload.into_inner()),
        }
    }

    /// Removes the entry; `true` if there was one. A task that has not ended is **cancelled**
    /// first (as by [`cancel`](Self::cancel): pending → never runs; running → its token is
    /// cancelled and its result dropped when it ends), so no work goes on untracked. Use [`remove`](Self::remove) to take the
    /// handle out without cancelling. A [`wait`](Self::wait) in progress on this id returns
    /// `NotFound` (or the outcome, if the task ended first).
    ///
    /// ```
    /// # use std::time::Duration;
    /// use std::sync::{Arc, atomic::{AtomicBool, Ordering}};
    /// use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// use taskrunner::registry::HandleRegistry;
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let reg = HandleRegistry::new(8);
    /// let ran = Arc::new(AtomicBool::new(false));
    /// let r = ran.clone();
    /// let id = reg.insert(pool.post_delayed_task_with_result(TaskTraits::default(), Duration::from_millis(5), move || r.store(true, Ordering::SeqCst)).unwrap()).unwrap();
    /// assert!(reg.cleanup(id)); // pending: cancelled, it never runs
    /// assert!(!reg.cleanup(id));
    /// pool.shutdown();
    /// assert!(!ran.load(Ordering::SeqCst));
    /// ```
    pub fn cleanup(&self, id: HandleId) -> bool {
        let Some((handle, result)) = self.detach(id) else {
            return false;
        };
        if let Some(h) = &handle {
            if !h.is_finished() {
                h.cancel();
            }
        }
        drop_quietly(handle);
        drop_quietly(result);
        true
    }

    /// Removes the entry and returns its task's outcome (moved, not cloned) if the task has
    /// ended. `NotReady` (the entry stays) while it runs. Never blocks.
    ///
    /// ```
    /// use taskrunner::TaskHandle;
    /// use taskrunner::registry::{HandleRegistry, RegistryError};
    /// let reg = HandleRegistry::new(8);
    /// let id = reg.insert(TaskHandle::ready(vec![1, 2, 3])).unwrap(); // Vec: no Clone needed
    /// assert_eq!(reg.take(id), Ok(vec![1, 2, 3]));
    /// assert_eq!(reg.take(id), Err(RegistryError::NotFound));
    /// ```
    pub fn take(&self, id: HandleId) -> Result<T, RegistryError> {
        let e = self.entry(id)?;
        let (result, handle) = {
            let mut s = e.lock_idle();
            if s.removed {
                return Err(RegistryError::NotFound);
            }
            s.observe();
            let Some(result) = s.result.take() else {
                return Err(RegistryError::NotReady);
            };
            s.removed = true;
            e.cv.notify_all();
            (result, s.handle.take())
        };
        self.inner.table.lock().entries.remove(&id.0);
        drop_quietly(handle);
        result.map_err(RegistryError::Failed)
    }

    /// Removes the entry and hands its handle back, **without** cancelling anything (the
    /// caller takes over). If the outcome had already been moved into the registry, the
    /// returned handle is an already-finished one with that outcome. `None` if there is no
    /// such entry.
    ///
    /// ```
    /// use taskrunner::TaskHandle;
    /// use taskrunner::registry::HandleRegistry;
    /// let reg = HandleRegistry::new(8);
    /// let id = reg.insert(TaskHandle::ready(5)).unwrap();
    /// assert!(reg.is_ready(id).unwrap()); // the outcome moved into the registry
    /// let h = reg.remove(id).unwrap();
    /// assert_eq!(h.join().unwrap(), 5);
    /// assert!(reg.remove(id).is_none());
    /// ```
    pub fn remove(&self, id: HandleId) -> Option<TaskHandle<T>> {
        let (handle, result) = self.detach(id)?;
        match result {
            Some(Ok(v)) => {
                drop_quietly(handle);
                Some(TaskHandle::ready(v))
            }
            Some(Err(e)) => {
                drop_quietly(handle);
                Some(TaskHandle::failed(e))
            }
            None => handle,
        }
    }

    /// Marks an entry removed, takes its handle and result, and removes it from the table.
    #[allow(clippy::type_complexity)]
    fn detach(
        &self,
        id: HandleId,
    ) -> Option<(Option<TaskHandle<T>>, Option<Result<T, TaskError>>)> {
        let e = self.entry(id).ok()?;
        let taken = {
            let mut s = e.lock_idle();
            if s.removed {
                return None;
            }
            s.observe();
            s.removed = true;
            e.cv.notify_all();
            (s.handle.take(), s.result.take())
        };
        self.inner.table.lock().entries.remove(&id.0);
        Some(taken)
    }

    /// Removes the entries whose outcome was read more than the retention time ago; returns
    /// how many.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::TaskHandle;
    /// use taskrunner::registry::HandleRegistry;
    /// let reg = HandleRegistry::builder().retain_collected_for(Duration::ZERO).build();
    /// let id = reg.insert(TaskHandle::ready(1)).unwrap();
    /// assert_eq!(reg.purge_expired(), 0); // never read: kept
    /// reg.get(id).unwrap();
    /// assert_eq!(reg.purge_expired(), 1);
    /// ```
    pub fn purge_expired(&self) -> usize {
        let mut expired = Vec::new();
        {
            let mut t = self.inner.table.lock();
            self.purge_locked(&mut t, &mut expired);
        }
        let n = expired.len();
        for e in &expired {
            let mut s = e.lock_idle();
            s.removed = true;
            e.cv.notify_all();
        }
        drop_quietly(expired);
        n
    }

    /// Pops expired ids off the expiry queue; the removed entries go to `out` (dropped by the
    /// caller, after unlocking).
    fn purge_locked(&self, t: &mut Table<T>, out: &mut Vec<Arc<Entry<T>>>) {
        if t.expiries.is_empty() {
            return;
        }
        let now = self.inner.clock.now();
        while let Some(&(at, id)) = t.expiries.front() {
            if at > now {
                break;
            }
            t.expiries.pop_front();
            if let Some(e) = t.entries.remove(&id) {
                out.push(e);
            }
        }
    }

    /// The number of entries (after purging expired ones).
    ///
    /// ```
    /// use taskrunner::TaskHandle;
    /// use taskrunner::registry::HandleRegistry;
    /// let reg = HandleRegistry::new(8);
    /// reg.insert(TaskHandle::ready(())).unwrap();
    /// assert_eq!(reg.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.purge_expired();
        self.inner.table.lock().entries.len()
    }

    /// `true` if there are no entries (after purging expired ones).
    ///
    /// ```
    /// let reg: taskrunner::registry::HandleRegistry<()> = taskrunner::registry::HandleRegistry::new(8);
    /// assert!(reg.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ids of the entries, in ascending order (after purging expired ones).
    ///
    /// ```
    /// use taskrunner::TaskHandle;
    /// use taskrunner::registry::HandleRegistry;
    /// let reg = HandleRegistry::new(8);
    /// let a = reg.insert(TaskHandle::ready(1)).unwrap();
    /// let b = reg.insert(TaskHandle::ready(2)).unwrap();
    /// assert_eq!(reg.ids(), vec![a, b]);
    /// ```
    pub fn ids(&self) -> Vec<HandleId> {
        self.purge_expired();
        let mut ids: Vec<HandleId> = self
            .inner
            .table
            .lock()
            .entries
            .keys()
            .map(|&k| HandleId(k))
            .collect();
        ids.sort_unstable();
        ids
    }

    /// The most entries the registry holds.
    ///
    /// See [`new`](Self::new) for an example.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// How long an entry is kept after its outcome was first read.
    ///
    /// See [`HandleRegistryBuilder`] for an example.
    pub fn retention(&self) -> Duration {
        self.inner.retain
    }

    fn entry(&self, id: HandleId) -> Result<Arc<Entry<T>>, RegistryError> {
        self.inner
            .table
            .lock()
            .entries
            .get(&id.0)
            .cloned()
            .ok_or(RegistryError::NotFound)
    }

    /// Queues the entry for removal after the retention time (first read only).
    fn note_collected(&self, id: HandleId) {
        let mut t = self.inner.table.lock();
        // `now` under the table lock: expiries are queued in time order. A retention too long
        // to represent never expires.
        if let Some(at) = Deadline::after(self.inner.clock.now(), self.inner.retain).instant() {
            if t.entries.contains_key(&id.0) {
                t.expiries.push_back((at, id.0));
            }
        }
    }
}

impl<T: Clone + Send + 'static> HandleRegistry<T> {
    /// The task's value (a clone), or why there is none; never blocks: `NotReady` while the
    /// task has not ended. The first read starts the entry's retention time.
    ///
    /// ```
    /// # use std::time::Duration;
    /// use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// use taskrunner::registry::{HandleRegistry, RegistryError};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let reg = HandleRegistry::new(8);
    /// let id = reg.insert(pool.post_delayed_task_with_result(TaskTraits::default(), Duration::from_secs(60), || 1).unwrap()).unwrap();
    /// assert_eq!(reg.get(id), Err(RegistryError::NotReady));
    /// assert_eq!(reg.get(id).unwrap_err().to_string(), "future not ready");
    /// ```
    pub fn get(&self, id: HandleId) -> Result<T, RegistryError> {
        let e = self.entry(id)?;
        let (out, first) = {
            let mut s = e.lock_idle();
            if s.removed {
                return Err(RegistryError::NotFound);
            }
            s.observe();
            match Self::read(&mut s) {
                Some(read) => read,
                None => return Err(RegistryError::NotReady),
            }
        };
        if first {
            self.note_collected(id);
        }
        out
    }

    /// Blocks until the task ends and returns its value (a clone), or why there is none (the
    /// script's `await`). Any number of threads may wait on one id; each gets the value. No
    /// registry lock is held while waiting, and on a pool worker the wait is a blocking scope
    /// (the pool runs one more worker meanwhile). The first read starts the entry's retention
    /// time.
    ///
    /// ```
    /// use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// use taskrunner::registry::HandleRegistry;
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let reg = HandleRegistry::new(8);
    /// let id = reg.insert(pool.post_task_with_result(TaskTraits::default(), || "hello".to_string()).unwrap()).unwrap();
    /// let reg2 = reg.clone();
    /// let other = std::thread::spawn(move || reg2.wait(id));
    /// assert_eq!(reg.wait(id).unwrap(), "hello");
    /// assert_eq!(other.join().unwrap().unwrap(), "hello");
    /// ```
    pub fn wait(&self, id: HandleId) -> Result<T, RegistryError> {
        self.wait_inner(id, Deadline::NEVER)
    }

    /// [`wait`](Self::wait) for at most `timeout` (real time); `NotReady` if the task has not
    /// ended by then (it keeps running). A timeout too large to represent (`Duration::MAX`)
    /// means no limit.
    ///
    /// ```
    /// # use std::time::Duration;
    /// use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// use taskrunner::registry::{HandleRegistry, RegistryError};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let reg = HandleRegistry::new(8);
    /// let id = reg.insert(pool.post_delayed_task_with_result(TaskTraits::default(), Duration::from_secs(60), || 1).unwrap()).unwrap();
    /// assert_eq!(reg.wait_timeout(id, Duration::from_millis(1)), Err(RegistryError::NotReady));
    /// ```
    pub fn wait_timeout(&self, id: HandleId, timeout: Duration) -> Result<T, RegistryError> {
        self.wait_inner(id, Deadline::real_after(timeout))
    }

    /// The outcome if it can be read now: `None` to wait (running, or another caller is
    /// cancelling it).
    #[allow(clippy::type_complexity)]
    fn try_read(
        s: &mut Slot<T>,
    ) -> Option<Result<(Result<T, RegistryError>, bool), RegistryError>> {
        if s.busy {
            return None;
        }
        if s.removed {
            return Some(Err(RegistryError::NotFound));
        }
        s.observe();
        Self::read(s).map(Ok)
    }

    fn wait_inner(&self, id: HandleId, deadline: Deadline) -> Result<T, RegistryError> {
        let e = self.entry(id)?;
        let now = {
            let mut s = e.slot.lock();
            Self::try_read(&mut s)
        };
        let (out, first) = match now {
            Some(r) => r?,
            None => {
                if deadline.is_never() {
                    crate::engine::check_can_block("HandleRegistry::wait");
                }
                // The wait is a blocking scope: the pool runs one more worker meanwhile.
                blocking_unchecked(|| {
                    let mut s = e.slot.lock();
                    loop {
                        if let Some(r) = Self::try_read(&mut s) {
                            return r;
                        }
                        match deadline.instant() {
                            Some(d) => {
                                let now = Instant::now();
                                if now >= d {
                                    return Err(RegistryError::NotReady);
                                }
                                e.cv.wait_for(&mut s, d - now);
                            }
                            None => e.cv.wait(&mut s),
                        }
                    }
                })?
            }
        };
        if first {
            self.note_collected(id);
        }
        out
    }

    /// A clone of the outcome, and whether this was the first read; `None` while pending.
    fn read(s: &mut Slot<T>) -> Option<(Result<T, RegistryError>, bool)> {
        let out = match s.result.as_ref()? {
            Ok(v) => Ok(v.clone()),
            Err(e) => Err(RegistryError::Failed(e.clone())),
        };
        let first = !s.collected;
        s.collected = true;
        Some((out, first))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn state_codes_follow_wren() {
        assert_eq!(code_of(TaskState::Pending), 0);
        assert_eq!(code_of(TaskState::Running), 0);
        assert_eq!(code_of(TaskState::Completed), 1);
        assert_eq!(code_of(TaskState::Panicked), 2);
        assert_eq!(code_of(TaskState::Failed), 2);
        assert_eq!(code_of(TaskState::Cancelled), 3);
    }

    #[test]
    fn a_full_insert_hands_the_same_handle_back_and_burns_no_id() {
        let reg = HandleRegistry::new(1);
        let a = reg.insert(TaskHandle::ready(1)).unwrap();
        let full = reg.insert(TaskHandle::ready(2)).unwrap_err();
        assert_eq!(full.into_inner().join().unwrap(), 2);
        assert!(reg.cleanup(a));
        let b = reg.insert(TaskHandle::ready(3)).unwrap();
        assert_eq!(b.as_u64(), a.as_u64() + 1);
    }
}
