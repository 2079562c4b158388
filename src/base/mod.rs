//! The base every other layer stands on: errors, task traits, the clock, deadlines, panic
//! helpers, and the synchronisation shim (std / parking_lot / crossbeam in builds, loom in
//! model checks). Nothing here knows about pools, runners or tasks in flight.

pub(crate) mod clock;
pub(crate) mod deadline;
pub(crate) mod error;
pub(crate) mod location_cell;
pub(crate) mod shim;
pub(crate) mod traits;
pub(crate) mod unwind;
