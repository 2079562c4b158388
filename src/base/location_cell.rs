//! [`LocationCell`]: an atomic `Option<&'static Location<'static>>`, the one place outside
//! `scope.rs` that needs `unsafe`.
//!
//! A worker records where its running task was posted from on every task (a plain store), and
//! shutdown reads it from another thread to say which task it waits for. crossbeam's
//! `AtomicCell` of a reference goes through an integer and loses the pointer's provenance
//! (miri reports the load as undefined behaviour); a lock would cost two atomic operations per
//! task. An `AtomicPtr` keeps provenance, and turning the pointer back into a reference is
//! sound because only `&'static` references are ever stored.
#![allow(unsafe_code)]

use std::panic::Location;

use crate::base::shim::{AtomicPtr, Ordering};

/// An atomic cell holding either nothing or a `&'static Location<'static>`.
#[derive(Debug)]
pub(crate) struct LocationCell(AtomicPtr<Location<'static>>);

impl Default for LocationCell {
    fn default() -> Self {
        LocationCell(AtomicPtr::new(std::ptr::null_mut()))
    }
}

impl LocationCell {
    /// Records `loc` (replacing what was there).
    #[inline]
    pub(crate) fn store(&self, loc: &'static Location<'static>) {
        // The pointer is only ever read back as a shared reference (`load`), never written
        // through: the `*mut` is what `AtomicPtr` stores, not a licence to mutate.
        self.0
            .store(std::ptr::from_ref(loc).cast_mut(), Ordering::Release);
    }

    /// The last location stored, if any.
    #[inline]
    pub(crate) fn load(&self) -> Option<&'static Location<'static>> {
        let p = self.0.load(Ordering::Acquire);
        // SAFETY: `p` is null or was made by `store` from a `&'static Location<'static>`, with
        // its provenance (an `AtomicPtr` keeps it). A `'static` referent is never freed, and it
        // is never mutated (nothing writes through the pointer), so a shared `'static`
        // reference to it is valid for as long as the caller holds it.
        unsafe { p.as_ref() }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn holds_the_last_location_stored() {
        let cell = LocationCell::default();
        assert!(cell.load().is_none());
        let here = Location::caller();
        cell.store(here);
        assert_eq!(cell.load().map(|l| l.line()), Some(here.line()));
        let there = Location::caller();
        cell.store(there);
        assert!(std::ptr::eq(cell.load().unwrap(), there));
    }

    #[test]
    #[allow(clippy::disallowed_methods, clippy::disallowed_types)] // real threads, not loom's
    fn another_thread_reads_what_one_stored() {
        let cell = std::sync::Arc::new(LocationCell::default());
        let here = Location::caller();
        let c = cell.clone();
        std::thread::spawn(move || c.store(here)).join().unwrap();
        assert!(std::ptr::eq(cell.load().unwrap(), here));
    }
}
