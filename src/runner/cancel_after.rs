//! [`CancellationToken::cancel_after`]: a deadline for a token, on a runner's clock. It lives
//! with the runners because it schedules its timer through one (for the crate's own runners,
//! on the delay manager's thread).

use std::time::Duration;

use crate::base::deadline::Deadline;
use crate::cancel::CancellationToken;
use crate::runner::PostTask;

impl CancellationToken {
    /// Sets a deadline: the token is cancelled with [`Interrupted::DeadlineExceeded`](crate::cancel::Interrupted::DeadlineExceeded) after
    /// `timeout`, measured on `runner`'s clock (a mock clock in a `TestEnvironment`, with the
    /// `test-util` feature). No thread sleeps: for the pool and its
    /// runners the delay manager's own thread fires it, so a deadline fires on time even when
    /// every worker is busy (and the token's [`on_cancel`](CancellationToken::on_cancel) callbacks run
    /// there: keep them short). If the token is cancelled another way first, the timer entry is
    /// removed at once. Returns `false` if the pool refused the timer (shutdown); the token is
    /// then unchanged.
    ///
    /// A `timeout` too large to represent as a point in time (`Duration::MAX`) means **no
    /// deadline**: nothing is scheduled and the token is never cancelled by time (the call
    /// still returns `false` once the pool is shutting down, as for any other timeout).
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::ThreadPool;
    /// use taskrunner::cancel::{CancellationToken, Interrupted};
    /// let pool = ThreadPool::builder().max_workers(1).build().unwrap();
    /// let t = CancellationToken::new();
    /// assert!(t.cancel_after(&pool, Duration::from_millis(1)));
    /// t.wait();
    /// assert_eq!(t.reason(), Some(Interrupted::DeadlineExceeded));
    ///
    /// let forever = CancellationToken::new();
    /// assert!(forever.cancel_after(&pool, Duration::MAX)); // no limit: nothing to schedule
    /// assert_eq!(pool.pending_delayed_tasks(), 0);
    /// assert!(!forever.wait_timeout(Duration::from_millis(1)));
    /// ```
    #[track_caller]
    pub fn cancel_after<R: PostTask + ?Sized>(&self, runner: &R, timeout: Duration) -> bool {
        let fire = self.deadline_fire();
        #[cfg(not(loom))]
        if let Some(link) = runner.pool_link() {
            let pool = link.0;
            if Deadline::after(pool.clock.now(), timeout).is_never() {
                // No limit: nothing will ever fire, so nothing is scheduled.
                return !pool.tracker.shutdown_started();
            }
            let Some(id) = crate::engine::Engine::add_timer_callback(
                &pool,
                timeout,
                Box::new(fire),
                std::panic::Location::caller(),
            ) else {
                return false;
            };
            let pool = std::sync::Arc::downgrade(&pool);
            self.on_cancel(move |_| {
                if let Some(p) = pool.upgrade() {
                    // Outside every lock of ours; the entry's closure holds only a weak link.
                    crate::base::unwind::drop_quietly(p.delay.cancel(id));
                }
            });
            return true;
        }
        if Deadline::after(runner.now(), timeout).is_never() {
            return true;
        }
        runner.post_delayed_task(timeout, fire).is_ok()
    }
}
