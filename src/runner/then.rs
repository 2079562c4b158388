//! `TaskHandle::then`: a continuation posted as a new task when the predecessor ends.

use std::panic::Location;
use std::sync::Arc;
use std::task::{Wake, Waker};

use crate::base::shim::Mutex;
use crate::handle::cell::new_cell;
use crate::handle::{TaskError, TaskHandle};
use crate::runner::PostTask;

/// Woken once, when the predecessor's cell resolves: posts the continuation.
struct PostOnWake {
    post: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl Wake for PostOnWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        let post = self.post.lock().take();
        if let Some(p) = post {
            p();
        }
    }
}

impl<T: Send + 'static> TaskHandle<T> {
    /// Runs `f` with this task's outcome, as a **new task posted to `runner`**, once this task
    /// ends in any state: completed, failed, panicked, cancelled (also before it started), or
    /// already ended before `then` was called. Returns the continuation's handle.
    ///
    /// The continuation never runs on the predecessor's worker inside its run (so it does not
    /// inflate the predecessor's duration or delay its waiters), and it always runs: the bugs
    /// of kelindar/async's `After` (a hang after a panic, a cancel, or an already finished
    /// predecessor) cannot happen. If `runner` refuses the post (shutdown), the continuation's
    /// handle resolves as not run. Cancelling the continuation's handle before it starts means
    /// `f` never runs.
    ///
    /// ```
    /// use taskrunner::{PostTask, ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let h = pool.post_task_with_result(TaskTraits::default(), || -> u32 { panic!("boom") }).unwrap();
    /// let next = h.then(&seq, |r| match r {
    ///     Ok(v) => format!("got {v}"),
    ///     Err(e) => format!("recovered from: {}", e.panic_message().unwrap()),
    /// });
    /// assert_eq!(next.join().unwrap(), "recovered from: boom");
    ///
    /// // Already finished before `then`: still runs.
    /// let done = taskrunner::TaskHandle::ready(20);
    /// assert_eq!(done.then(&pool, |r| r.unwrap() + 1).join().unwrap(), 21);
    /// ```
    #[track_caller]
    pub fn then<R, U, F>(self, runner: &R, f: F) -> TaskHandle<U>
    where
        R: PostTask + Clone + Send + Sync + 'static,
        U: Send + 'static,
        F: FnOnce(Result<T, TaskError>) -> U + Send + 'static,
    {
        let pred_cell = self.cell.clone();
        let mut pred = self;
        let (job, cell) = new_cell(move || {
            // The predecessor has ended (this runs after its waker fired); the result is
            // missing only if it was taken before `then` (try_result / join_timeout).
            let outcome = pred.try_result().expect(
                "TaskHandle::then: the predecessor's result was already taken (by try_result or join_timeout) before `then`",
            );
            f(outcome)
        });
        let link = runner.pool_link();
        let runner = runner.clone();
        let posted_from = Location::caller();
        let post = move || {
            // A panic goes through the pool's panic handler and the runner's panic policy,
            // like a plain task's, before the continuation's handle resolves.
            let run = move || {
                let _ = job.run_with(&|msg| {
                    crate::engine::panics::report_task_panic(msg.to_owned(), posted_from)
                });
            };
            // Refused: dropping the closure drops the job unrun, so the handle says not run.
            drop(runner.post_task_from(run, posted_from));
        };
        let handle = TaskHandle::from_cell(cell).for_pool(link);
        let waker = Waker::from(Arc::new(PostOnWake {
            post: Mutex::new(Some(Box::new(post))),
        }));
        // Under the cell's lock: either it has ended (post now) or our waker is stored before
        // `finish` takes it. The predecessor handle was moved into the continuation, so no
        // other poller can overwrite the waker.
        let ended = {
            let mut s = pred_cell.core().sync.lock();
            if s.done {
                true
            } else {
                s.waker = Some(waker.clone());
                false
            }
        };
        if ended {
            waker.wake();
        }
        handle
    }
}
