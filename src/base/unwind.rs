//! Panic helpers: catch a panic, report it, and drop what is left without ever unwinding into
//! the scheduler.
//!
//! Three rules hold everywhere in the crate:
//!
//! 1. **A payload is dropped quietly.** A panic payload is an arbitrary `Box<dyn Any + Send>`;
//!    its own destructor may panic, and that second payload's destructor may panic again.
//!    [`drop_payload`] drops it under `catch_unwind`, level after level, and after
//!    [`MAX_NESTED_PAYLOADS`] levels leaks the rest rather than unwind.
//! 2. **Discarded work is dropped one item at a time.** When a batch of tasks is discarded
//!    (shutdown skips a sequence's queue, the delay heap is emptied), dropping the whole
//!    collection at once would abort the process at the *second* panicking destructor ("panic in
//!    a destructor during cleanup"): [`drop_each_quietly`] drops each element in its own guard.
//! 3. **Every task panic reaches the pool the same way.** A plain task's panic is caught by the
//!    worker; tasks that catch their own panic to resolve a handle (executor, retries, repeats,
//!    fork/join) call [`report_task_panic`], which applies the running task's
//!    [`PanicPolicy`](crate::PanicPolicy) and the pool's panic handler exactly as the worker
//!    would.

use std::any::Any;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};

/// How many nested panicking payload destructors are unwound before the rest is leaked.
pub(crate) const MAX_NESTED_PAYLOADS: usize = 8;

/// A caught panic payload whose destructor never unwinds (see the module doc).
pub(crate) struct Payload(Option<Box<dyn Any + Send>>);

impl Payload {
    /// Wraps a payload (one made by the crate, e.g. a message with advice added).
    pub(crate) fn new(payload: Box<dyn Any + Send>) -> Self {
        Payload(Some(payload))
    }

    /// The panic message (`"<non-string panic payload>"` if it is not a string).
    pub(crate) fn message(&self) -> String {
        match &self.0 {
            Some(p) => panic_message(&**p),
            None => String::new(),
        }
    }

    /// The raw payload, for callers that hand it on (`TaskError::into_panic`).
    pub(crate) fn into_inner(mut self) -> Box<dyn Any + Send> {
        self.0.take().expect("a payload is taken once")
    }
}

impl Drop for Payload {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            drop_payload(p);
        }
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Payload").field(&self.message()).finish()
    }
}

/// Runs `f`, catching a panic. The payload comes back wrapped so that dropping it is safe.
#[inline]
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, Payload> {
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|p| Payload(Some(p)))
}

/// Drops a panic payload; a destructor that panics is caught, and so is the payload of that
/// panic, up to [`MAX_NESTED_PAYLOADS`] levels, after which the remainder is leaked.
pub(crate) fn drop_payload(payload: Box<dyn Any + Send>) {
    let mut next = Some(payload);
    for _ in 0..MAX_NESTED_PAYLOADS {
        let Some(p) = next.take() else {
            return;
        };
        match panic::catch_unwind(AssertUnwindSafe(move || drop(p))) {
            Ok(()) => return,
            Err(again) => {
                tracing::error!(target: "taskrunner", "a panic payload's destructor panicked");
                next = Some(again);
            }
        }
    }
    if let Some(p) = next {
        // Leaking a pathological payload is the only way left that neither unwinds nor aborts.
        std::mem::forget(p);
    }
}

/// Drops `x` (a task, or anything holding closures) without letting a panicking destructor
/// unwind into the caller. For a collection of several tasks use [`drop_each_quietly`].
pub(crate) fn drop_quietly<T>(x: T) {
    if let Err(p) = panic::catch_unwind(AssertUnwindSafe(move || drop(x))) {
        tracing::error!(
            target: "taskrunner",
            message = %panic_message(&*p),
            "a task's destructor panicked while it was discarded"
        );
        drop_payload(p);
    }
}

/// Drops every element of `items` in its own guard: two panicking destructors in one batch
/// are each caught and reported (dropping the collection whole would abort at the second).
pub(crate) fn drop_each_quietly<I: IntoIterator>(items: I) {
    // Iteration itself does not run element destructors; only `drop_quietly` does. If the
    // iterator's own destructor panics (it holds no elements by then), that is caught too.
    let mut iter = items.into_iter();
    loop {
        match panic::catch_unwind(AssertUnwindSafe(|| iter.next())) {
            Ok(Some(x)) => drop_quietly(x),
            Ok(None) => break,
            Err(p) => {
                drop_payload(p);
                break;
            }
        }
    }
    drop_quietly(iter);
}

/// The message of a panic payload (`"<non-string panic payload>"` if it is not a string).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_owned()
    }
}

/// Aborts the process if the scheduler itself unwinds: a panic there would leave the group's
/// counters and sequence states inconsistent (task panics are caught long before this).
pub(crate) struct AbortOnUnwind;

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("taskrunner: internal error: the scheduler panicked; aborting");
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct PanicsOnDrop(u32);
    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            if self.0 > 0 {
                // The payload of this panic panics again when dropped, `self.0 - 1` more times.
                std::panic::panic_any(PanicsOnDrop(self.0 - 1));
            }
        }
    }

    #[test]
    fn nested_panicking_payloads_are_dropped_or_leaked_but_never_unwind() {
        drop_payload(Box::new(PanicsOnDrop(3)));
        drop_payload(Box::new(PanicsOnDrop(50)));
        let caught = catch(|| std::panic::panic_any(PanicsOnDrop(4))).unwrap_err();
        assert_eq!(caught.message(), "<non-string panic payload>");
        drop(caught);
    }

    #[test]
    fn each_element_is_dropped_in_its_own_guard() {
        let v = vec![
            PanicsOnDrop(1),
            PanicsOnDrop(0),
            PanicsOnDrop(2),
            PanicsOnDrop(1),
        ];
        drop_each_quietly(v);
        let d: std::collections::VecDeque<_> = [PanicsOnDrop(1), PanicsOnDrop(1)].into();
        drop_each_quietly(d);
    }

    #[test]
    fn messages_of_str_and_string_payloads() {
        assert_eq!(catch(|| panic!("plain")).unwrap_err().message(), "plain");
        let n = 3;
        assert_eq!(catch(|| panic!("n = {n}")).unwrap_err().message(), "n = 3");
    }
}
