//! `Executor::map` and friends: one task per input, results in input order.

use std::collections::VecDeque;
use std::error::Error;
use std::fmt;
use std::panic::Location;
use std::sync::Arc;
use std::task::{Wake, Waker};
use std::time::Duration;

use crate::base::shim::{Condvar, Mutex};
use crate::cancel::CancellationToken;
use crate::engine::blocking_unchecked;
use crate::handle::{TaskError, TaskHandle};
use crate::retry::RetryPolicy;
use crate::runner::PostTask;

use super::core::{Core, Wait};
use super::facade::{once, once_fallible, Attempt, Plan};
use super::options::SubmitOptions;
use super::Executor;

/// Wakes a map waiting for "this handle ended, or the map's token was cancelled".
struct Signal {
    fired: Mutex<bool>,
    cv: Condvar,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        *self.fired.lock() = true;
        self.cv.notify_all();
    }
}

impl Signal {
    fn fired(&self) -> bool {
        *self.fired.lock()
    }

    fn wait(&self) {
        let mut fired = self.fired.lock();
        while !*fired {
            self.cv.wait(&mut fired);
        }
        *fired = false;
    }
}

/// Joins `h`; a wait is a blocking scope, and one that could never end (the caller is a task
/// of the executor's own sequence) panics.
#[track_caller]
fn join_one<R, T>(core: &Core<R>, h: TaskHandle<T>, what: &str) -> Result<T, TaskError>
where
    R: PostTask + Clone + Send + Sync + 'static,
    T: Send + 'static,
{
    if h.is_finished() {
        return h.join();
    }
    core.check_not_own_sequence(what);
    blocking_unchecked(|| h.join())
}

/// Joins `handles` in order. With `stop`, a handle that has not ended when `stop` is
/// cancelled is cancelled and reported with `stop`'s reason (the map does not wait for it).
/// Waits are blocking scopes (see [`join_one`]).
fn collect<R, T>(
    core: &Core<R>,
    handles: Vec<TaskHandle<T>>,
    stop: Option<&CancellationToken>,
) -> Vec<Result<T, TaskError>>
where
    R: PostTask + Clone + Send + Sync + 'static,
    T: Send + 'static,
{
    let Some(stop) = stop else {
        return handles
            .into_iter()
            .map(|h| join_one(core, h, "Executor::map"))
            .collect();
    };
    let signal = Arc::new(Signal {
        fired: Mutex::new(false),
        cv: Condvar::new(),
    });
    let s = signal.clone();
    stop.on_cancel(move |_| s.wake_by_ref());
    let waker = Waker::from(signal.clone());
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        loop {
            if h.is_finished() {
                out.push(h.join());
                break;
            }
            if let Some(why) = stop.reason() {
                h.cancel();
                out.push(Err(TaskError::interrupted(why)));
                break;
            }
            h.wake_when_done(&waker);
            if !signal.fired() {
                core.check_not_own_sequence("Executor::map");
                blocking_unchecked(|| signal.wait());
            } else {
                signal.wait(); // already fired: does not block
            }
        }
    }
    out
}

impl<R> Executor<R>
where
    R: PostTask + Clone + Send + Sync + 'static,
{
    /// Runs `f` on every item, at most [`max_workers`](Self::max_workers) at once, and
    /// returns the results **in input order** once all have ended. A panicking item gives its
    /// `Err` without stopping the others. Submission blocks while the queue is full, so a
    /// long input is fed as room frees up.
    ///
    /// Several inputs: zip them; the map stops at the shortest, as [`Iterator::zip`] does.
    ///
    /// Like every executor wait (see [`Executor`]), waiting for the items on a pool worker is a
    /// blocking scope (the pool runs one more worker meanwhile), a panicking item is reported
    /// to the pool's panic handler with this call as its posted-from location, and calling
    /// this from a task of the sequence the executor runs on panics (the items would be queued
    /// behind the caller). The same holds for [`try_map`](Self::try_map),
    /// [`map_with`](Self::map_with), [`map_with_retry`](Self::map_with_retry),
    /// [`map_timeout`](Self::map_timeout) and [`map_iter`](Self::map_iter)'s `next`.
    ///
    /// ```
    /// let exec = taskrunner::executor::Executor::new(4);
    /// let out = exec.map(vec!["a", "bb", "ccc"], |s: &str| s.len());
    /// assert_eq!(out.into_iter().map(Result::unwrap).collect::<Vec<_>>(), vec![1, 2, 3]);
    ///
    /// let (xs, ys) = (vec![1, 2, 3], vec![10, 20]);
    /// let sums = exec.map(xs.into_iter().zip(ys), |(x, y)| x + y);
    /// assert_eq!(sums.into_iter().map(Result::unwrap).collect::<Vec<_>>(), vec![11, 22]);
    /// ```
    #[track_caller]
    pub fn map<I, T, F>(
        &self,
        items: impl IntoIterator<Item = I>,
        f: F,
    ) -> Vec<Result<T, TaskError>>
    where
        I: Send + 'static,
        T: Send + 'static,
        F: Fn(I) -> T + Send + Sync + 'static,
    {
        let posted_from = Location::caller();
        let f = Arc::new(f);
        let handles: Vec<_> = items
            .into_iter()
            .map(|item| {
                let f = f.clone();
                self.submit_attempt(Plan::once(), once(move || f(item)), posted_from)
            })
            .collect();
        collect(&self.core, handles, None)
    }

    /// Runs a fallible `f` on every item and returns all values in input order, or the
    /// **first error in input order**. Once that error is known, the items after it are
    /// cancelled: those not started never run, running ones see their token cancelled. Items
    /// before it are waited for (one of them might fail too, and it would come first).
    ///
    /// ```
    /// let exec = taskrunner::executor::Executor::new(2);
    /// let ok = exec.try_map(vec!["1", "2"], |s: &str| s.parse::<u32>());
    /// assert_eq!(ok.unwrap(), vec![1, 2]);
    /// let err = exec.try_map(vec!["1", "x", "3"], |s: &str| s.parse::<u32>()).unwrap_err();
    /// assert!(err.downcast_ref::<std::num::ParseIntError>().is_some());
    /// ```
    #[track_caller]
    pub fn try_map<I, T, E, F>(
        &self,
        items: impl IntoIterator<Item = I>,
        f: F,
    ) -> Result<Vec<T>, TaskError>
    where
        I: Send + 'static,
        T: Send + 'static,
        E: Into<Box<dyn Error + Send + Sync + 'static>>,
        F: Fn(I) -> Result<T, E> + Send + Sync + 'static,
    {
        let posted_from = Location::caller();
        let f = Arc::new(f);
        let handles: Vec<_> = items
            .into_iter()
            .map(|item| {
                let f = f.clone();
                self.submit_attempt(Plan::once(), once_fallible(move || f(item)), posted_from)
            })
            .collect();
        let mut out = Vec::with_capacity(handles.len());
        let mut rest = handles.into_iter();
        while let Some(h) = rest.next() {
            match join_one(&self.core, h, "Executor::try_map") {
                Ok(v) => out.push(v),
                Err(e) => {
                    // Last first: cancelling a running item frees its slot, and the next
                    // queued item must already be cancelled by then, or it would start.
                    for h in rest.rev() {
                        h.cancel();
                    }
                    return Err(e);
                }
            }
        }
        Ok(out)
    }

    /// Like [`map`](Self::map) for a fallible `f`, each item retried by `policy` (the item is
    /// cloned for each attempt). Each result is the item's value or its last error (with
    /// [`attempts`](TaskError::attempts)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::cancel::TaskContext;
    /// use taskrunner::executor::Executor;
    /// use taskrunner::retry::RetryPolicy;
    /// let exec = Executor::new(2);
    /// let policy = RetryPolicy::attempts(3).base_delay(Duration::ZERO);
    /// let out = exec.map_with_retry(vec![1u32, 2], policy, |x| {
    ///     let attempt = TaskContext::current().unwrap().attempt();
    ///     if attempt < x { Err("not yet") } else { Ok(x * 10) }
    /// });
    /// assert_eq!(out.into_iter().map(Result::unwrap).collect::<Vec<_>>(), vec![10, 20]);
    /// ```
    #[track_caller]
    pub fn map_with_retry<I, T, E, F>(
        &self,
        items: impl IntoIterator<Item = I>,
        policy: RetryPolicy,
        f: F,
    ) -> Vec<Result<T, TaskError>>
    where
        I: Clone + Send + 'static,
        T: Send + 'static,
        E: Into<Box<dyn Error + Send + Sync + 'static>>,
        F: Fn(I) -> Result<T, E> + Send + Sync + 'static,
    {
        self.map_with(items, SubmitOptions::new().retry(policy), f)
    }

    /// The general map: a fallible `f` per item with [`SubmitOptions`] applied to every item
    /// (retries, a shared [`Semaphore`](crate::sync::Semaphore) limit). Here the `timeout` /
    /// `deadline` is the map's **total** time: when it passes, every item not done is
    /// cancelled (not started: never runs; running: its token is cancelled) and reported as
    /// [`is_deadline_exceeded`](TaskError::is_deadline_exceeded), and the map returns without
    /// waiting for them. A `token` does the same when cancelled (reported as cancelled).
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::executor::{Executor, SubmitOptions};
    /// let exec = Executor::new(2);
    /// let opts = SubmitOptions::new().timeout(Duration::from_secs(30));
    /// let out = exec.map_with(vec![3u64, 4], opts, |x| Ok::<_, std::io::Error>(x * x));
    /// assert_eq!(out.into_iter().map(Result::unwrap).collect::<Vec<_>>(), vec![9, 16]);
    /// ```
    #[track_caller]
    pub fn map_with<I, T, E, F>(
        &self,
        items: impl IntoIterator<Item = I>,
        options: SubmitOptions,
        f: F,
    ) -> Vec<Result<T, TaskError>>
    where
        I: Clone + Send + 'static,
        T: Send + 'static,
        E: Into<Box<dyn Error + Send + Sync + 'static>>,
        F: Fn(I) -> Result<T, E> + Send + Sync + 'static,
    {
        let posted_from = Location::caller();
        let (plan, stop) = self.map_plan(options);
        let f = Arc::new(f);
        let handles: Vec<_> = items
            .into_iter()
            .map(|item| {
                let f = f.clone();
                let attempt: Attempt<T> =
                    Box::new(move || f(item.clone()).map_err(TaskError::from_error));
                self.submit_attempt(plan.clone(), attempt, posted_from)
            })
            .collect();
        collect(&self.core, handles, stop.as_ref())
    }

    /// [`map`](Self::map) with a total time limit (on the runner's clock): items not done
    /// when `total` has passed are cancelled and reported as
    /// [`is_deadline_exceeded`](TaskError::is_deadline_exceeded); the map returns then.
    ///
    /// ```
    /// use std::time::Duration;
    /// let exec = taskrunner::executor::Executor::new(2);
    /// let out = exec.map_timeout(0..3, Duration::from_secs(30), |x: i32| x + 1);
    /// assert_eq!(out.into_iter().map(Result::unwrap).collect::<Vec<_>>(), vec![1, 2, 3]);
    /// ```
    #[track_caller]
    pub fn map_timeout<I, T, F>(
        &self,
        items: impl IntoIterator<Item = I>,
        total: Duration,
        f: F,
    ) -> Vec<Result<T, TaskError>>
    where
        I: Send + 'static,
        T: Send + 'static,
        F: Fn(I) -> T + Send + Sync + 'static,
    {
        let posted_from = Location::caller();
        let (plan, stop) = self.map_plan(SubmitOptions::new().timeout(total));
        let f = Arc::new(f);
        let handles: Vec<_> = items
            .into_iter()
            .map(|item| {
                let f = f.clone();
                self.submit_attempt(plan.clone(), once(move || f(item)), posted_from)
            })
            .collect();
        collect(&self.core, handles, stop.as_ref())
    }

    /// The per-item plan of a map, and the map's own token (cancelled at the total deadline
    /// or by the caller's token) if it has one.
    fn map_plan(&self, options: SubmitOptions) -> (Plan, Option<CancellationToken>) {
        let now = self.core.runner.now();
        let deadline = Plan::deadline_of(&options, now);
        let stop = (deadline.is_some() || options.token.is_some()).then(|| {
            let stop = options
                .token
                .as_ref()
                .map_or_else(CancellationToken::new, CancellationToken::child);
            if let Some(d) = deadline {
                stop.cancel_after(&self.core.runner, d.saturating_duration_since(now));
            }
            stop
        });
        let plan = Plan {
            policy: options.retry.unwrap_or_else(RetryPolicy::never),
            gate: options.limit,
            timer: None, // the map's token carries the deadline to every item
            deadline,
            token: stop.clone(),
        };
        (plan, stop)
    }

    /// A **lazy**, ordered map: items are pulled from `items` and submitted only as the
    /// results are consumed, at most [`window`](MapIter::window) ahead of the consumer
    /// (default `max_workers × 2`), never the whole input at once. Results come in input order. Dropping the iterator early cancels the items
    /// submitted but not consumed (not started: never run; running: token cancelled).
    ///
    /// ```
    /// let exec = taskrunner::executor::Executor::new(2);
    /// let mut it = exec.map_iter(1.., |x: u64| x * 2).window(4); // an endless input
    /// assert_eq!(it.next().unwrap().unwrap(), 2);
    /// assert_eq!(it.next().unwrap().unwrap(), 4);
    /// drop(it); // cancels what was submitted ahead
    /// ```
    #[track_caller]
    pub fn map_iter<'a, I, T, F, It>(&'a self, items: It, f: F) -> MapIter<'a, T>
    where
        It: IntoIterator<Item = I>,
        It::IntoIter: 'a,
        I: Send + 'static,
        T: Send + 'static,
        F: Fn(I) -> T + Send + Sync + 'static,
    {
        let posted_from = Location::caller();
        let mut items = items.into_iter();
        let f = Arc::new(f);
        let pull = move || {
            let Some(item) = items.next() else {
                return Pulled::End;
            };
            let f = f.clone();
            match self.core.admit(Wait::Block) {
                Ok(epoch) => Pulled::Item(self.launch(
                    epoch,
                    Plan::once(),
                    once(move || f(item)),
                    posted_from,
                )),
                Err(_) => Pulled::Refused,
            }
        };
        let core = &*self.core;
        MapIter {
            join: Box::new(move |h| join_one(core, h, "MapIter::next")),
            pull: Box::new(pull),
            window: self.core.max_workers.saturating_mul(2),
            inflight: VecDeque::new(),
            pulling: true,
        }
    }
}

enum Pulled<T> {
    Item(TaskHandle<T>),
    /// The executor was shut down: this item was not submitted, and no more will be.
    Refused,
    End,
}

/// The lazy ordered iterator of [`Executor::map_iter`]: yields each item's result in input
/// order. Dropping it cancels the submitted items not yet consumed.
///
/// If the executor is shut down, the item that could not be submitted yields a
/// [`TaskError`] with [`is_not_run`](TaskError::is_not_run), after the items submitted before
/// it, and the iteration ends.
///
/// ```
/// let exec = taskrunner::executor::Executor::new(2);
/// let out: Vec<u32> = exec.map_iter(vec![1, 2, 3], |x: u32| x + 1).map(Result::unwrap).collect();
/// assert_eq!(out, vec![2, 3, 4]);
/// ```
pub struct MapIter<'a, T: Send + 'static> {
    pull: Box<dyn FnMut() -> Pulled<T> + 'a>,
    /// Joins one handle (a blocking scope; panics on the executor's own sequence).
    #[allow(clippy::type_complexity)]
    join: Box<dyn Fn(TaskHandle<T>) -> Result<T, TaskError> + 'a>,
    window: usize,
    inflight: VecDeque<TaskHandle<T>>,
    pulling: bool,
}

impl<T: Send + 'static> MapIter<'_, T> {
    /// At most `n` items submitted ahead of the consumer (at least 1).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// let exec = taskrunner::executor::Executor::new(2);
    /// let pulled = AtomicUsize::new(0);
    /// let input = (0..100).inspect(|_| { pulled.fetch_add(1, Ordering::SeqCst); });
    /// let mut it = exec.map_iter(input, |x: i32| x).window(3);
    /// assert_eq!(it.next().unwrap().unwrap(), 0);
    /// assert!(pulled.load(Ordering::SeqCst) <= 1 + 3);
    /// ```
    #[must_use]
    pub fn window(mut self, n: usize) -> Self {
        self.window = n.max(1);
        self
    }

    fn fill(&mut self) {
        while self.pulling && self.inflight.len() < self.window {
            match (self.pull)() {
                Pulled::Item(h) => self.inflight.push_back(h),
                Pulled::Refused => {
                    self.inflight
                        .push_back(TaskHandle::failed(TaskError::not_run()));
                    self.pulling = false;
                }
                Pulled::End => self.pulling = false,
            }
        }
    }
}

impl<T: Send + 'static> Iterator for MapIter<'_, T> {
    type Item = Result<T, TaskError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.fill();
        let h = self.inflight.pop_front()?;
        Some((self.join)(h))
    }
}

impl<T: Send + 'static> Drop for MapIter<'_, T> {
    fn drop(&mut self) {
        // Last first (see `try_map`).
        for h in self.inflight.iter().rev() {
            h.cancel();
        }
    }
}

impl<T: Send + 'static> fmt::Debug for MapIter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapIter")
            .field("window", &self.window)
            .field("in_flight", &self.inflight.len())
            .field("exhausted", &!self.pulling)
            .finish_non_exhaustive()
    }
}
