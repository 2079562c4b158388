//! Cooperative cancellation: [`CancellationToken`], the [`Interrupted`] reason, and the
//! [`TaskContext`] that orchestrated tasks (executor, fork/join, consume, retries) run with.
//!
//! A token is a shared flag that moves **once** from live to cancelled, with a reason:
//! `Cancelled` (someone called [`cancel`](CancellationToken::cancel)) or `DeadlineExceeded`
//! (a deadline set with [`cancel_after`](CancellationToken::cancel_after) passed). Tokens form a
//! tree: cancelling a parent cancels every child with the parent's reason, never the reverse.
//!
//! ```
//! use taskrunner::cancel::{CancellationToken, Interrupted};
//! let parent = CancellationToken::new();
//! let child = parent.child();
//! assert!(parent.cancel());
//! assert!(child.is_cancelled());
//! assert_eq!(child.check(), Err(Interrupted::Cancelled));
//! ```
//!
//! # State machine (`TokenState::state`)
//!
//! | transition | by | rule |
//! |---|---|---|
//! | `LIVE → CANCELLED / DEADLINE` | `cancel`, `cancel_with`, a deadline task, a parent | CAS; the winner alone takes the callbacks (under the lock) and runs them, outside it |
//!
//! Callbacks registered after the transition run at once, on the registering thread: the
//! registration takes the lock and sees `fired`, so no callback is lost or run twice.
//! A dropped child removes its registration from the parent, so a long-lived parent (an
//! executor's token) does not accumulate one entry per finished task.

use std::cell::RefCell;
use std::error::Error;
use std::fmt;
use std::time::Duration;

use crate::base::deadline::Deadline;
use crate::base::shim::{Arc, AtomicU8, Condvar, Mutex, Ordering};

const LIVE: u8 = 0;
const CANCELLED: u8 = 1;
const DEADLINE: u8 = 2;

/// Why a token was cancelled; also the error a task returns (with `?` on
/// [`TaskContext::check`]) when it gives up because of it.
///
/// A fallible task that returns an error converting from `Interrupted` ends its handle as
/// cancelled or deadline-exceeded rather than failed (see
/// [`TaskError::from_error`](crate::TaskError::from_error)).
///
/// ```
/// use taskrunner::cancel::{CancellationToken, Interrupted};
/// let t = CancellationToken::new();
/// assert_eq!(t.check(), Ok(()));
/// t.cancel();
/// assert_eq!(t.check(), Err(Interrupted::Cancelled));
/// assert_eq!(Interrupted::DeadlineExceeded.to_string(), "deadline exceeded");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Interrupted {
    /// The token (or an ancestor) was cancelled explicitly.
    Cancelled,
    /// The token's (or an ancestor's) deadline passed.
    DeadlineExceeded,
}

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Interrupted::Cancelled => "cancelled",
            Interrupted::DeadlineExceeded => "deadline exceeded",
        })
    }
}

impl Error for Interrupted {}

type Callback = Box<dyn FnOnce(Interrupted) + Send>;

#[derive(Default)]
struct Callbacks {
    slots: Vec<Option<Callback>>,
    free: Vec<usize>,
    fired: bool,
}

struct TokenState {
    state: AtomicU8,
    callbacks: Mutex<Callbacks>,
    cv: Condvar,
    /// Our registration in the parent's callbacks (removed when we are dropped).
    parent: Option<(Arc<TokenState>, usize)>,
}

impl TokenState {
    fn new(parent: Option<(Arc<TokenState>, usize)>) -> Self {
        TokenState {
            state: AtomicU8::new(LIVE),
            callbacks: Mutex::new(Callbacks::default()),
            cv: Condvar::new(),
            parent,
        }
    }

    fn reason(&self) -> Option<Interrupted> {
        match self.state.load(Ordering::Acquire) {
            LIVE => None,
            CANCELLED => Some(Interrupted::Cancelled),
            _ => Some(Interrupted::DeadlineExceeded),
        }
    }

    fn fire(&self, why: Interrupted) -> bool {
        let to = match why {
            Interrupted::Cancelled => CANCELLED,
            Interrupted::DeadlineExceeded => DEADLINE,
        };
        if self
            .state
            .compare_exchange(LIVE, to, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        let taken: Vec<Callback> = {
            let mut c = self.callbacks.lock();
            c.fired = true;
            c.free.clear();
            c.slots.drain(..).flatten().collect()
        };
        self.cv.notify_all();
        for cb in taken {
            // A panicking callback must not stop the others (nor unwind into `cancel`'s caller
            // half-way through); its payload is dropped without unwinding.
            if let Err(p) = crate::base::unwind::catch(|| cb(why)) {
                tracing::error!(
                    target: "taskrunner",
                    message = %p.message(),
                    "a cancellation callback panicked"
                );
            }
        }
        true
    }

    /// Registers `cb`; `Err(cb)` if the token already fired (the caller runs it).
    fn register(&self, cb: Callback) -> Result<usize, Callback> {
        let mut c = self.callbacks.lock();
        if c.fired {
            return Err(cb);
        }
        Ok(match c.free.pop() {
            Some(i) => {
                c.slots[i] = Some(cb);
                i
            }
            None => {
                c.slots.push(Some(cb));
                c.slots.len() - 1
            }
        })
    }

    fn deregister(&self, key: usize) {
        let cb = {
            let mut c = self.callbacks.lock();
            if c.fired || key >= c.slots.len() {
                return;
            }
            let cb = c.slots[key].take();
            if cb.is_some() {
                c.free.push(key);
            }
            cb
        };
        drop(cb); // outside the lock
    }
}

impl Drop for TokenState {
    fn drop(&mut self) {
        if let Some((parent, key)) = self.parent.take() {
            parent.deregister(key);
        }
    }
}

/// A cooperative cancellation signal shared by clones, with an optional deadline and children.
///
/// Tasks poll it ([`is_cancelled`](Self::is_cancelled), [`check`](Self::check)) or register a
/// callback ([`on_cancel`](Self::on_cancel)); nothing is interrupted forcibly. The executor,
/// fork/join and retries give each task a child of their own token through
/// [`TaskContext`], and [`TaskHandle::cancel`](crate::TaskHandle::cancel) on such a task also
/// cancels its token.
///
/// ```
/// use taskrunner::cancel::{CancellationToken, Interrupted};
/// let parent = CancellationToken::new();
/// let child = parent.child();
/// assert!(!child.is_cancelled());
/// parent.cancel();
/// assert_eq!(child.reason(), Some(Interrupted::Cancelled));
/// ```
#[derive(Clone)]
pub struct CancellationToken {
    inner: Arc<TokenState>,
}

impl Default for CancellationToken {
    fn default() -> Self {
        Self::new()
    }
}

impl CancellationToken {
    /// A new, live token with no parent.
    ///
    /// ```
    /// assert!(!taskrunner::cancel::CancellationToken::new().is_cancelled());
    /// ```
    pub fn new() -> Self {
        CancellationToken {
            inner: Arc::new(TokenState::new(None)),
        }
    }

    /// A token that is cancelled (with the same reason) when this one is, and can also be
    /// cancelled on its own without affecting this one.
    ///
    /// ```
    /// let parent = taskrunner::cancel::CancellationToken::new();
    /// let child = parent.child();
    /// child.cancel();
    /// assert!(child.is_cancelled());
    /// assert!(!parent.is_cancelled());
    /// ```
    pub fn child(&self) -> CancellationToken {
        // Build the child first, then register a weak link to it in the parent; a parent that
        // already fired cancels the child at once.
        let child_inner = Arc::new_cyclic_compat(|weak: WeakTokenState| {
            let cb: Callback = Box::new(move |why| {
                if let Some(c) = upgrade(&weak) {
                    c.fire(why);
                }
            });
            match self.inner.register(cb) {
                Ok(key) => TokenState::new(Some((self.inner.clone(), key))),
                Err(_) => TokenState::new(None),
            }
        });
        let child = CancellationToken { inner: child_inner };
        if let Some(why) = self.inner.reason() {
            child.inner.fire(why);
        }
        child
    }

    /// Cancels the token (reason [`Interrupted::Cancelled`]) and its children. `true` if this
    /// call cancelled it, `false` if it already was.
    ///
    /// ```
    /// let t = taskrunner::cancel::CancellationToken::new();
    /// assert!(t.cancel());
    /// assert!(!t.cancel());
    /// ```
    pub fn cancel(&self) -> bool {
        self.inner.fire(Interrupted::Cancelled)
    }

    /// Cancels the token with a given reason. `true` if this call cancelled it.
    ///
    /// ```
    /// use taskrunner::cancel::{CancellationToken, Interrupted};
    /// let t = CancellationToken::new();
    /// t.cancel_with(Interrupted::DeadlineExceeded);
    /// assert_eq!(t.reason(), Some(Interrupted::DeadlineExceeded));
    /// ```
    pub fn cancel_with(&self, reason: Interrupted) -> bool {
        self.inner.fire(reason)
    }

    /// `true` once the token (or an ancestor) is cancelled.
    ///
    /// ```
    /// let t = taskrunner::cancel::CancellationToken::new();
    /// t.cancel();
    /// assert!(t.is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.inner.state.load(Ordering::Acquire) != LIVE
    }

    /// Why the token was cancelled, or `None` while it is live.
    ///
    /// ```
    /// let t = taskrunner::cancel::CancellationToken::new();
    /// assert_eq!(t.reason(), None);
    /// ```
    pub fn reason(&self) -> Option<Interrupted> {
        self.inner.reason()
    }

    /// `Err(reason)` once cancelled, for `?` in a task that gives up.
    ///
    /// ```
    /// fn step(t: &taskrunner::cancel::CancellationToken) -> Result<u32, taskrunner::cancel::Interrupted> {
    ///     t.check()?;
    ///     Ok(1)
    /// }
    /// let t = taskrunner::cancel::CancellationToken::new();
    /// assert_eq!(step(&t), Ok(1));
    /// t.cancel();
    /// assert!(step(&t).is_err());
    /// ```
    pub fn check(&self) -> Result<(), Interrupted> {
        match self.reason() {
            None => Ok(()),
            Some(why) => Err(why),
        }
    }

    /// Runs `f` once when the token is cancelled, on the cancelling thread; at once (on this
    /// thread) if it already is. Dropping every clone of a live token drops its callbacks
    /// uncalled. A panic in `f` is caught and reported.
    ///
    /// ```
    /// use std::sync::{Arc, atomic::{AtomicBool, Ordering}};
    /// let t = taskrunner::cancel::CancellationToken::new();
    /// let seen = Arc::new(AtomicBool::new(false));
    /// let s = seen.clone();
    /// t.on_cancel(move |_why| s.store(true, Ordering::SeqCst));
    /// t.cancel();
    /// assert!(seen.load(Ordering::SeqCst));
    /// ```
    pub fn on_cancel<F>(&self, f: F)
    where
        F: FnOnce(Interrupted) + Send + 'static,
    {
        if let Err(cb) = self.inner.register(Box::new(f)) {
            let why = self.reason().unwrap_or(Interrupted::Cancelled);
            cb(why);
        }
    }

    /// The closure a deadline timer runs: cancels the token with
    /// [`Interrupted::DeadlineExceeded`]; it holds the token weakly, so a pending timer keeps
    /// nothing alive. [`cancel_after`](Self::cancel_after) schedules it.
    pub(crate) fn deadline_fire(&self) -> impl FnOnce() + Send + 'static {
        let weak = downgrade(&self.inner);
        move || {
            if let Some(inner) = upgrade(&weak) {
                inner.fire(Interrupted::DeadlineExceeded);
            }
        }
    }

    /// Blocks until the token is cancelled. On a pool worker the pool runs another worker
    /// meanwhile (as for every wait of the crate), so waiting from a task cannot starve the
    /// pool.
    ///
    /// ```
    /// let t = taskrunner::cancel::CancellationToken::new();
    /// let t2 = t.clone();
    /// std::thread::spawn(move || t2.cancel());
    /// t.wait();
    /// assert!(t.is_cancelled());
    /// ```
    pub fn wait(&self) {
        self.wait_until(Deadline::NEVER);
    }

    /// Blocks until the token is cancelled or `timeout` (real time) passes; `true` if it is
    /// cancelled. A `timeout` too large to represent as a point in time (`Duration::MAX`)
    /// waits without limit, like [`wait`](Self::wait).
    ///
    /// ```
    /// use std::time::Duration;
    /// let t = taskrunner::cancel::CancellationToken::new();
    /// assert!(!t.wait_timeout(Duration::from_millis(1)));
    /// t.cancel();
    /// assert!(t.wait_timeout(Duration::MAX)); // cancelled: returns at once
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_until(Deadline::real_after(timeout))
    }

    /// Waits for the token until `deadline` (real time); `true` if it is cancelled.
    fn wait_until(&self, deadline: Deadline) -> bool {
        if self.is_cancelled() {
            return true;
        }
        crate::engine::blocking::blocking_unchecked(|| {
            let mut c = self.inner.callbacks.lock();
            while !c.fired {
                match deadline.remaining(std::time::Instant::now()) {
                    None => self.inner.cv.wait(&mut c),
                    Some(left) if left.is_zero() => return false,
                    Some(left) => {
                        self.inner.cv.wait_for(&mut c, left);
                    }
                }
            }
            true
        })
    }

    /// Number of live callback registrations (tests: a dropped child deregisters).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn registrations(&self) -> usize {
        self.inner
            .callbacks
            .lock()
            .slots
            .iter()
            .filter(|s| s.is_some())
            .count()
    }
}

impl fmt::Debug for CancellationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancellationToken")
            .field("reason", &self.reason())
            .finish()
    }
}

// Weak references (loom's `Arc` has none: under loom a child keeps its parent link strong,
// which only matters for memory, not for the protocol).
#[cfg(not(loom))]
type WeakTokenState = std::sync::Weak<TokenState>;
#[cfg(not(loom))]
fn downgrade(a: &Arc<TokenState>) -> WeakTokenState {
    Arc::downgrade(a)
}
#[cfg(not(loom))]
fn upgrade(w: &WeakTokenState) -> Option<Arc<TokenState>> {
    w.upgrade()
}

trait NewCyclic {
    fn new_cyclic_compat(f: impl FnOnce(WeakTokenState) -> TokenState) -> Arc<TokenState>;
}

#[cfg(not(loom))]
impl NewCyclic for Arc<TokenState> {
    fn new_cyclic_compat(f: impl FnOnce(WeakTokenState) -> TokenState) -> Arc<TokenState> {
        Arc::new_cyclic(|w| f(w.clone()))
    }
}

#[cfg(loom)]
type WeakTokenState = Arc<std::sync::Mutex<Option<Arc<TokenState>>>>;
#[cfg(loom)]
fn downgrade(a: &Arc<TokenState>) -> WeakTokenState {
    Arc::new(std::sync::Mutex::new(Some(a.clone())))
}
#[cfg(loom)]
fn upgrade(w: &WeakTokenState) -> Option<Arc<TokenState>> {
    w.lock().unwrap().clone()
}
#[cfg(loom)]
impl NewCyclic for Arc<TokenState> {
    fn new_cyclic_compat(f: impl FnOnce(WeakTokenState) -> TokenState) -> Arc<TokenState> {
        let slot: WeakTokenState = Arc::new(std::sync::Mutex::new(None));
        let a = Arc::new(f(slot.clone()));
        *slot.lock().unwrap() = Some(a.clone());
        a
    }
}

thread_local! {
    static CONTEXT: RefCell<Option<TaskContext>> = const { RefCell::new(None) };
}

/// What an orchestrated task knows about itself: its cancellation token and which attempt this
/// is. Tasks of the [`Executor`](crate::executor::Executor), fork/join ([`invoke_all`](crate::fork_join::invoke_all),
/// [`consume`](crate::fork_join::consume)) and [`retry`](crate::retry::retry) run inside one; plain posted tasks do
/// not. Reach it with [`TaskContext::current`], or take it as an argument where an API offers
/// that (`Executor::submit_with_context`).
///
/// ```
/// use taskrunner::cancel::TaskContext;
/// assert!(TaskContext::current().is_none()); // not inside an orchestrated task
/// let ctx = TaskContext::new(taskrunner::cancel::CancellationToken::new());
/// let seen = ctx.scope(|| TaskContext::current().unwrap().attempt());
/// assert_eq!(seen, 1);
/// ```
#[derive(Clone, Debug)]
pub struct TaskContext {
    token: CancellationToken,
    attempt: u32,
}

impl TaskContext {
    /// A context with `token`, at attempt 1.
    ///
    /// ```
    /// let ctx = taskrunner::cancel::TaskContext::new(taskrunner::cancel::CancellationToken::new());
    /// assert!(!ctx.is_cancelled());
    /// ```
    pub fn new(token: CancellationToken) -> Self {
        TaskContext { token, attempt: 1 }
    }

    pub(crate) fn with_attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    /// The context of the orchestrated task running on this thread, if any.
    ///
    /// See [`TaskContext`] for an example.
    pub fn current() -> Option<TaskContext> {
        CONTEXT.with(|c| c.borrow().clone())
    }

    /// Runs `f` with this context as [`current`](Self::current), restoring the previous one
    /// afterwards (also when `f` panics).
    ///
    /// See [`TaskContext`] for an example.
    pub fn scope<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Restore(Option<TaskContext>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let prev = self.0.take();
                CONTEXT.with(|c| *c.borrow_mut() = prev);
            }
        }
        let prev = CONTEXT.with(|c| c.borrow_mut().replace(self.clone()));
        let _restore = Restore(prev);
        f()
    }

    /// The task's cancellation token.
    ///
    /// ```
    /// let ctx = taskrunner::cancel::TaskContext::new(taskrunner::cancel::CancellationToken::new());
    /// ctx.token().cancel();
    /// assert!(ctx.is_cancelled());
    /// ```
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// `true` once the task's token is cancelled (explicitly or by its deadline).
    ///
    /// See [`token`](Self::token) for an example.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// `Err(reason)` once the task's token is cancelled: `ctx.check()?` in a fallible task ends
    /// it as cancelled or deadline-exceeded.
    ///
    /// ```
    /// let ctx = taskrunner::cancel::TaskContext::new(taskrunner::cancel::CancellationToken::new());
    /// assert!(ctx.check().is_ok());
    /// ```
    pub fn check(&self) -> Result<(), Interrupted> {
        self.token.check()
    }

    /// Which attempt this is: 1 for the first run, 2 for the first retry, and so on.
    ///
    /// See [`TaskContext`] for an example.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_child_deregisters_from_its_parent() {
        let parent = CancellationToken::new();
        for _ in 0..1000 {
            let c = parent.child();
            assert!(!c.is_cancelled());
        }
        assert_eq!(parent.registrations(), 0);
        let kept = parent.child();
        assert_eq!(parent.registrations(), 1);
        drop(kept);
        assert_eq!(parent.registrations(), 0);
    }

    #[test]
    fn a_child_of_a_cancelled_parent_is_born_cancelled_with_its_reason() {
        let parent = CancellationToken::new();
        parent.cancel_with(Interrupted::DeadlineExceeded);
        let c = parent.child();
        assert_eq!(c.reason(), Some(Interrupted::DeadlineExceeded));
        let grandchild = c.child();
        assert!(grandchild.is_cancelled());
    }

    #[test]
    fn grandchildren_follow_the_root_and_callbacks_run_once() {
        use std::sync::atomic::{AtomicUsize, Ordering as O};
        let root = CancellationToken::new();
        let g = root.child().child();
        let n = std::sync::Arc::new(AtomicUsize::new(0));
        let n2 = n.clone();
        g.on_cancel(move |why| {
            assert_eq!(why, Interrupted::Cancelled);
            n2.fetch_add(1, O::SeqCst);
        });
        assert!(root.cancel());
        assert!(!root.cancel());
        assert!(g.is_cancelled());
        assert_eq!(n.load(O::SeqCst), 1);
        // Registered after the fact: runs at once, on this thread.
        let n3 = n.clone();
        g.on_cancel(move |_| {
            n3.fetch_add(1, O::SeqCst);
        });
        assert_eq!(n.load(O::SeqCst), 2);
    }

    #[test]
    fn a_panicking_callback_does_not_stop_the_others() {
        use std::sync::atomic::{AtomicBool, Ordering as O};
        let t = CancellationToken::new();
        let ran = std::sync::Arc::new(AtomicBool::new(false));
        t.on_cancel(|_| panic!("callback bug"));
        let r = ran.clone();
        t.on_cancel(move |_| r.store(true, O::SeqCst));
        t.cancel();
        assert!(ran.load(O::SeqCst));
    }

    #[test]
    fn context_scope_nests_and_restores() {
        let a = TaskContext::new(CancellationToken::new()).with_attempt(3);
        let b = TaskContext::new(CancellationToken::new());
        a.scope(|| {
            assert_eq!(TaskContext::current().unwrap().attempt(), 3);
            b.scope(|| assert_eq!(TaskContext::current().unwrap().attempt(), 1));
            assert_eq!(TaskContext::current().unwrap().attempt(), 3);
        });
        assert!(TaskContext::current().is_none());
    }
}
