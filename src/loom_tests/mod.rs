//! Loom models of the scheduler's state machines, run against the real code through the
//! `crate::sync` shim. Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --lib --release loom_
//! ```
