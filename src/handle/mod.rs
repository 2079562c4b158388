//! Task handles: the result of a posted task, joinable, cancellable, awaitable.
//!
//! One allocation holds both the closure and the result cell ([`cell::Cell`]): the queued task
//! refers to it as `Arc<dyn RunCell>`, the handle as `Arc<dyn HandleCell<T>>`.

mod cell;
mod error;
mod task_handle;

pub(crate) use cell::{new_cell, CellJob};
pub use error::TaskError;
pub use task_handle::{TaskHandle, TaskState};
