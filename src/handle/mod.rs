//! Task handles: the result of a posted task, joinable, cancellable, awaitable.
//!
//! One allocation holds both the closure and the result cell ([`cell::Cell`]): the queued task
//! refers to it as `Arc<dyn RunCell>`, the handle as `Arc<dyn HandleCell<T>>`.

pub(crate) mod cell;
mod error;
mod post;
mod promise;
mod shared;
mod task_handle;

#[cfg(all(test, loom))]
pub(crate) use cell::new_cell;
pub(crate) use cell::{new_queued_cell, CellJob};
pub(crate) use promise::Promise;

/// Adapts a `FnOnce()` reply to the `FnOnce(())` shape of the with-result path while keeping
/// the original closure recoverable for refusals.
pub(crate) struct ReplyFn<R>(pub(crate) R);

/// A reply of the post-and-reply path: a `FnOnce(T)`, or a `FnOnce()` wrapped in [`ReplyFn`].
#[doc(hidden)]
pub trait Reply<T>: Send + 'static {
    fn call(self, value: T);
}

impl<T, F: FnOnce(T) + Send + 'static> Reply<T> for F {
    fn call(self, value: T) {
        self(value)
    }
}

impl<R: FnOnce() + Send + 'static> Reply<()> for ReplyFn<R> {
    fn call(self, _unit: ()) {
        (self.0)()
    }
}
pub use error::TaskError;
pub use shared::SharedHandle;
pub(crate) use task_handle::HandleHost;
pub use task_handle::{AbortHandle, TaskHandle, TaskState};
