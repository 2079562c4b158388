//! `SingleFlight`: concurrent calls with the same key share one execution (Go's
//! `singleflight`).
//!
//! # Protocol
//!
//! The map from key to in-flight [`Call`] is guarded by one lock. The first caller for a key
//! (the *leader*) inserts a `Call` and runs the work on its own thread (or in its own future);
//! callers that find the key in the map (*followers*) count themselves in `dups` under the map
//! lock and wait on the `Call`. On completion, whatever the outcome (value, error, panic, or an
//! async leader dropped mid-flight), the leader first removes the key from the map, then reads
//! `dups`: no follower can join after the removal, and every one that joined before it is
//! counted (its increment happened under the map lock the leader took after it). If there are
//! followers, the outcome is stored in the `Call` and every waiter (blocked thread or future)
//! is woken. Nothing is cached: the next call for the key runs the work again, and a panic
//! leaves no poisoned entry.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::ThreadId;

use crate::base::shim::{AtomicUsize, Condvar, Mutex, Ordering};
use crate::base::unwind::catch;
use crate::engine::blocking_unchecked;
use crate::handle::TaskError;
use crate::sync::wait_group::WakerList;

struct CallState<V> {
    /// Set once, by the leader, if anyone else joined.
    result: Option<Result<V, TaskError>>,
    wakers: WakerList,
}

/// One execution in flight.
struct Call<V> {
    /// The thread a blocking leader runs the work on (`None` for an async leader).
    leader: Option<ThreadId>,
    /// Callers that joined this execution (not counting the leader).
    dups: AtomicUsize,
    state: Mutex<CallState<V>>,
    cv: Condvar,
}

struct Flights<K, V> {
    calls: Mutex<HashMap<K, Arc<Call<V>>>>,
}

enum Role<V> {
    Leader(Arc<Call<V>>),
    Follower(Arc<Call<V>>),
}

/// Suppresses duplicate work: while a call for a key is in flight, other calls with the same
/// key wait for it and get its outcome instead of running their own (Go's `singleflight`).
/// Clones share the in-flight calls.
///
/// * The first caller (the leader) runs the work on its own thread (or, with
///   [`call_async`](Self::call_async), in its own future); the others block (or `.await`).
/// * Every caller gets the value (cloned), or the error: a [`try_call`](Self::try_call) error
///   ([`TaskError::is_failed`], the original kept as its source) or a panic
///   ([`TaskError::is_panic`] with the message and the payload, which
///   [`TaskError::into_panic`] hands back — the leader gets it as an error too, it is not
///   resumed). The work runs on the caller's own thread, not as a task of its own, so its
///   panic is not reported to a pool's panic handler: it is the callers' error.
/// * The returned `bool` says whether the outcome was **shared** with at least one other
///   caller; it is `true` for the leader as well when someone joined it (as in Go).
/// * The key is removed when the call completes, whatever the outcome: nothing is cached, a
///   later call runs the work again, and a panic leaves no poisoned key.
/// * A blocked follower on a pool worker lets the pool run one more worker meanwhile (as
///   [`blocking`](crate::blocking)).
/// * A blocking call for a key whose work is running **on the same thread** (the work calls
///   back into the group with its own key) could never return: it panics at once instead.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// let flights = taskrunner::sync::SingleFlight::<&str, u64>::new();
/// let runs = Arc::new(AtomicUsize::new(0));
/// let (started_tx, started) = std::sync::mpsc::channel();
/// let (release, gate) = std::sync::mpsc::channel::<()>();
/// let (f, r) = (flights.clone(), runs.clone());
/// let leader = std::thread::spawn(move || f.call("user:7", || {
///     r.fetch_add(1, Ordering::SeqCst);
///     started_tx.send(()).unwrap();
///     gate.recv().unwrap(); // hold the flight open
///     42
/// }));
/// started.recv().unwrap(); // the leader's call is in flight
/// let (f, r) = (flights.clone(), runs.clone());
/// let follower = std::thread::spawn(move || f.call("user:7", || { r.fetch_add(1, Ordering::SeqCst); 0 }));
/// while flights.waiters("user:7") == 0 { std::thread::yield_now(); }
/// release.send(()).unwrap();
/// assert_eq!(leader.join().unwrap().unwrap(), (42, true));
/// assert_eq!(follower.join().unwrap().unwrap(), (42, true));
/// assert_eq!(runs.load(Ordering::SeqCst), 1);
/// assert_eq!(flights.in_flight(), 0); // removed on completion: the next call runs again
/// ```
pub struct SingleFlight<K, V> {
    inner: Arc<Flights<K, V>>,
}

impl<K, V> SingleFlight<K, V>
where
    K: Hash + Eq + Clone,
    V: Clone,
{
    /// An empty group.
    ///
    /// ```
    /// let f = taskrunner::sync::SingleFlight::<u32, String>::new();
    /// assert_eq!(f.in_flight(), 0);
    /// ```
    pub fn new() -> Self {
        SingleFlight {
            inner: Arc::new(Flights {
                calls: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Runs `f` for `key`, unless a call for `key` is already in flight: then waits for that
    /// call and returns its outcome. `Ok((value, shared))`, or the panic of whoever ran the
    /// work as a [`TaskError`].
    ///
    /// # Panics
    ///
    /// If the call for `key` in flight is being run by this very thread (`f` of that call
    /// called back with the same key): it would wait for itself.
    ///
    /// ```
    /// let f = taskrunner::sync::SingleFlight::new();
    /// assert_eq!(f.call("k", || 1).unwrap(), (1, false)); // nobody else asked
    /// let err = f.call("k", || -> i32 { panic!("backend down") }).unwrap_err();
    /// assert_eq!(err.panic_message(), Some("backend down"));
    /// assert_eq!(f.call("k", || 2).unwrap(), (2, false)); // not cached, not poisoned
    /// ```
    #[track_caller]
    pub fn call<F>(&self, key: K, f: F) -> Result<(V, bool), TaskError>
    where
        F: FnOnce() -> V,
    {
        self.run(key, || Ok(f()))
    }

    /// Like [`call`](Self::call) for fallible work: an `Err` from `f` reaches every caller as a
    /// failed [`TaskError`] (the original error is its [`source`](std::error::Error::source)
    /// and can be downcast). Panics as `call` does when it would wait for itself.
    ///
    /// ```
    /// let f = taskrunner::sync::SingleFlight::<&str, Vec<u8>>::new();
    /// let err = f
    ///     .try_call("config", || std::fs::read("/definitely/not/here"))
    ///     .unwrap_err();
    /// assert!(err.is_failed());
    /// assert!(err.downcast_ref::<std::io::Error>().is_some());
    /// ```
    #[track_caller]
    pub fn try_call<F, E>(&self, key: K, f: F) -> Result<(V, bool), TaskError>
    where
        F: FnOnce() -> Result<V, E>,
        E: Into<Box<dyn Error + Send + Sync + 'static>>,
    {
        self.run(key, || f().map_err(TaskError::from_error))
    }

    /// The async form of [`call`](Self::call): the future joins or leads the call for `key`
    /// when first polled. A leader runs `make()`'s future inside its own; followers `.await`
    /// the outcome without blocking a thread. Sync and async callers of one key share the
    /// same call. If a leading future is dropped before its work completes, its followers get
    /// a cancelled [`TaskError`] and the key is removed.
    ///
    /// ```
    /// let f = taskrunner::sync::SingleFlight::<u8, &str>::new();
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let (a, b) = rt.block_on(async {
    ///     tokio::join!(
    ///         f.call_async(1, || async { tokio::task::yield_now().await; "row" }),
    ///         f.call_async(1, || async { "never runs" }),
    ///     )
    /// });
    /// assert_eq!(a.unwrap(), ("row", true));
    /// assert_eq!(b.unwrap(), ("row", true));
    /// ```
    pub fn call_async<F, Fut>(
        &self,
        key: K,
        make: F,
    ) -> impl Future<Output = Result<(V, bool), TaskError>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        let this = self.clone();
        async move {
            match this.role(&key, None) {
                Role::Follower(call) => Follow { call, key: None }.await,
                Role::Leader(call) => {
                    let guard = Leader {
                        flights: this.inner.clone(),
                        key: Some(key),
                        call,
                    };
                    let outcome = match catch(make) {
                        Ok(fut) => CatchUnwind(Box::pin(fut)).await,
                        Err(p) => Err(TaskError::from_panic(p)),
                    };
                    guard.complete(outcome)
                }
            }
        }
    }

    /// How many keys have a call in flight.
    ///
    /// See [`SingleFlight`] for an example.
    pub fn in_flight(&self) -> usize {
        self.inner.calls.lock().len()
    }

    /// How many callers are waiting for the in-flight call of `key` (0 if none is in flight).
    ///
    /// See [`SingleFlight`] for an example.
    pub fn waiters<Q>(&self, key: &Q) -> usize
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.inner
            .calls
            .lock()
            .get(key)
            .map_or(0, |c| c.dups.load(Ordering::Acquire))
    }

    /// Joins the call in flight for `key` or leads a new one (run by `leader`'s thread, if it
    /// is a blocking call).
    fn role(&self, key: &K, leader: Option<ThreadId>) -> Role<V> {
        let mut calls = self.inner.calls.lock();
        if let Some(c) = calls.get(key) {
            c.dups.fetch_add(1, Ordering::AcqRel);
            return Role::Follower(c.clone());
        }
        let c = Arc::new(Call {
            leader,
            dups: AtomicUsize::new(0),
            state: Mutex::new(CallState {
                result: None,
                wakers: WakerList::default(),
            }),
            cv: Condvar::new(),
        });
        calls.insert(key.clone(), c.clone());
        Role::Leader(c)
    }

    #[track_caller]
    fn run(
        &self,
        key: K,
        work: impl FnOnce() -> Result<V, TaskError>,
    ) -> Result<(V, bool), TaskError> {
        let me = std::thread::current().id();
        match self.role(&key, Some(me)) {
            Role::Follower(call) => {
                if call.leader == Some(me) {
                    // Counted as a follower: un-count it, or the leader would think its outcome
                    // is shared (nothing would be wrong, but `waiters` would be off by one).
                    call.dups.fetch_sub(1, Ordering::AcqRel);
                    panic!(
                        "SingleFlight::call would wait forever: the call in flight for this key is being \
                         run by this very thread (its work called back into the group with the same \
                         key), and it waits for itself. Use another key, or run the inner work directly"
                    );
                }
                follow_blocking(&call)
            }
            Role::Leader(call) => {
                let guard = Leader {
                    flights: self.inner.clone(),
                    key: Some(key),
                    call,
                };
                let outcome = catch(work).unwrap_or_else(|p| Err(TaskError::from_panic(p)));
                guard.complete(outcome)
            }
        }
    }
}

/// The leader's duty to complete its call; dropped uncompleted (an async leader dropped
/// mid-flight), it completes it as cancelled.
struct Leader<K: Hash + Eq, V: Clone> {
    flights: Arc<Flights<K, V>>,
    key: Option<K>,
    call: Arc<Call<V>>,
}

impl<K: Hash + Eq, V: Clone> Leader<K, V> {
    fn complete(mut self, outcome: Result<V, TaskError>) -> Result<(V, bool), TaskError> {
        let shared = self.finish(&outcome);
        outcome.map(|v| (v, shared))
    }

    /// Removes the key, then hands the outcome to the followers, if any; `true` if there were.
    fn finish(&mut self, outcome: &Result<V, TaskError>) -> bool {
        let Some(key) = self.key.take() else {
            return false;
        };
        {
            let mut calls = self.flights.calls.lock();
            if calls.get(&key).is_some_and(|c| Arc::ptr_eq(c, &self.call)) {
                calls.remove(&key);
            }
        }
        // Every follower counted itself under the map lock, before the removal above.
        let shared = self.call.dups.load(Ordering::Acquire) > 0;
        if shared {
            let wakers = {
                let mut s = self.call.state.lock();
                s.result = Some(outcome.clone());
                s.wakers.take_all()
            };
            self.call.cv.notify_all();
            for w in wakers {
                w.wake();
            }
        }
        shared
    }
}

impl<K: Hash + Eq, V: Clone> Drop for Leader<K, V> {
    fn drop(&mut self) {
        if self.key.is_some() {
            self.finish(&Err(TaskError::cancelled()));
        }
    }
}

/// A follower's blocking wait.
fn follow_blocking<V: Clone>(call: &Call<V>) -> Result<(V, bool), TaskError> {
    let ready = call.state.lock().result.is_some();
    if !ready {
        crate::engine::check_can_block("a SingleFlight follower's wait");
        blocking_unchecked(|| {
            let mut s = call.state.lock();
            while s.result.is_none() {
                call.cv.wait(&mut s);
            }
        });
    }
    let outcome = call.state.lock().result.clone();
    outcome
        .expect("the leader stored the outcome")
        .map(|v| (v, true))
}

/// A follower's wait as a future.
struct Follow<V> {
    call: Arc<Call<V>>,
    key: Option<usize>,
}

impl<V: Clone> Future for Follow<V> {
    type Output = Result<(V, bool), TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut s = this.call.state.lock();
        if let Some(outcome) = &s.result {
            let outcome = outcome.clone();
            s.wakers.remove(&mut this.key);
            return Poll::Ready(outcome.map(|v| (v, true)));
        }
        s.wakers.register(&mut this.key, cx.waker());
        Poll::Pending
    }
}

impl<V> Drop for Follow<V> {
    fn drop(&mut self) {
        if self.key.is_some() {
            self.call.state.lock().wakers.remove(&mut self.key);
        }
    }
}

/// Polls the leader's future, turning a panic into an error (the future is not polled again).
struct CatchUnwind<Fut>(Pin<Box<Fut>>);

impl<Fut: Future> Future for CatchUnwind<Fut> {
    type Output = Result<Fut::Output, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = &mut self.get_mut().0;
        match catch(|| fut.as_mut().poll(cx)) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(p) => Poll::Ready(Err(TaskError::from_panic(p))),
        }
    }
}

impl<K, V> Clone for SingleFlight<K, V> {
    fn clone(&self) -> Self {
        SingleFlight {
            inner: self.inner.clone(),
        }
    }
}

impl<K, V> Default for SingleFlight<K, V>
where
    K: Hash + Eq + Clone,
    V: Clone,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> fmt::Debug for SingleFlight<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SingleFlight")
            .field("in_flight", &self.inner.calls.lock().len())
            .finish()
    }
}
