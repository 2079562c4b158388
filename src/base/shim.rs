//! The synchronisation shim: every lock, condition variable, atomic, `Arc` and thread the
//! scheduler uses comes from here, so that `--cfg loom` swaps all of them for loom's
//! model-checked versions and the loom models run the real scheduler code.
//!
//! Normal builds use `parking_lot` locks and `std` atomics. The loom arm wraps loom's `Mutex`
//! so that `lock()` returns the guard directly (the `parking_lot` shape), which keeps every call
//! site identical in both builds. `clippy.toml` forbids the direct types elsewhere in `src/`.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

#[cfg(not(loom))]
mod imp {
    pub(crate) use std::sync::atomic::{
        fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
    };
    pub(crate) use std::sync::Arc;
    pub(crate) use std::thread;

    /// The ready queues: crossbeam's injector and work-stealing deques (see `deque` under loom
    /// for the model's stand-in).
    pub(crate) use crossbeam_deque::{Injector, Steal, Stealer, Worker as Deque};

    #[cfg(not(miri))]
    pub(crate) use self::plock::{Condvar, Mutex, MutexGuard};
    #[cfg(miri)]
    pub(crate) use self::stdlock::{Condvar, Mutex, MutexGuard};

    #[cfg(not(miri))]
    mod plock {
        /// A mutex whose `lock()` returns the guard (parking_lot's API).
        pub(crate) type Mutex<T> = parking_lot::Mutex<T>;
        /// The guard of [`Mutex`].
        pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

        /// A condition variable used with [`Mutex`].
        #[derive(Debug, Default)]
        pub(crate) struct Condvar(parking_lot::Condvar);

        impl Condvar {
            pub(crate) fn new() -> Self {
                Self(parking_lot::Condvar::new())
            }
            pub(crate) fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
                self.0.wait(guard);
            }
            /// Returns `true` if the wait timed out.
            pub(crate) fn wait_for<T>(
                &self,
                guard: &mut MutexGuard<'_, T>,
                d: std::time::Duration,
            ) -> bool {
                self.0.wait_for(guard, d).timed_out()
            }
            pub(crate) fn notify_one(&self) {
                self.0.notify_one();
            }
            pub(crate) fn notify_all(&self) {
                self.0.notify_all();
            }
        }
    }

    /// Under miri: std's lock and condition variable with parking_lot's shape (no poisoning).
    /// parking_lot parks through a raw `futex` syscall whose argument types miri rejects; std's
    /// futex calls are ones miri models.
    #[cfg(miri)]
    mod stdlock {
        use std::sync::PoisonError;

        /// std's mutex with parking_lot's `lock()` shape.
        #[derive(Debug, Default)]
        pub(crate) struct Mutex<T>(std::sync::Mutex<T>);

        /// The guard of [`Mutex`]; an `Option` so that [`Condvar::wait`] can hand it over.
        #[derive(Debug)]
        pub(crate) struct MutexGuard<'a, T>(Option<std::sync::MutexGuard<'a, T>>);

        impl<T> Mutex<T> {
            pub(crate) const fn new(t: T) -> Self {
                Self(std::sync::Mutex::new(t))
            }
            pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
                MutexGuard(Some(self.0.lock().unwrap_or_else(PoisonError::into_inner)))
            }
            pub(crate) fn into_inner(self) -> T {
                self.0.into_inner().unwrap_or_else(PoisonError::into_inner)
            }
            pub(crate) fn get_mut(&mut self) -> &mut T {
                self.0.get_mut().unwrap_or_else(PoisonError::into_inner)
            }
        }

        impl<T> std::ops::Deref for MutexGuard<'_, T> {
            type Target = T;
            fn deref(&self) -> &T {
                self.0.as_ref().expect("guard present")
            }
        }
        impl<T> std::ops::DerefMut for MutexGuard<'_, T> {
            fn deref_mut(&mut self) -> &mut T {
                self.0.as_mut().expect("guard present")
            }
        }

        /// std's condition variable taking the shim's guard by `&mut`.
        #[derive(Debug, Default)]
        pub(crate) struct Condvar(std::sync::Condvar);

        impl Condvar {
            pub(crate) fn new() -> Self {
                Self(std::sync::Condvar::new())
            }
            pub(crate) fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
                let g = guard.0.take().expect("guard present");
                guard.0 = Some(self.0.wait(g).unwrap_or_else(PoisonError::into_inner));
            }
            /// Returns `true` if the wait timed out.
            pub(crate) fn wait_for<T>(
                &self,
                guard: &mut MutexGuard<'_, T>,
                d: std::time::Duration,
            ) -> bool {
                let g = guard.0.take().expect("guard present");
                let (g, r) = self
                    .0
                    .wait_timeout(g, d)
                    .unwrap_or_else(PoisonError::into_inner);
                guard.0 = Some(g);
                r.timed_out()
            }
            pub(crate) fn notify_one(&self) {
                self.0.notify_one();
            }
            pub(crate) fn notify_all(&self) {
                self.0.notify_all();
            }
        }
    }
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::sync::atomic::{
        fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
    };
    pub(crate) use loom::sync::Arc;
    pub(crate) use loom::thread;

    pub(crate) use super::deque::{Deque, Injector, Steal, Stealer};

    /// A loom mutex with parking_lot's `lock()` shape.
    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    /// The guard of [`Mutex`]; an `Option` so that [`Condvar::wait`] can hand it to loom.
    #[derive(Debug)]
    pub(crate) struct MutexGuard<'a, T>(Option<loom::sync::MutexGuard<'a, T>>);

    impl<T> Mutex<T> {
        pub(crate) fn new(t: T) -> Self {
            Self(loom::sync::Mutex::new(t))
        }
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            MutexGuard(Some(self.0.lock().unwrap()))
        }
    }

    impl<T> std::ops::Deref for MutexGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            self.0.as_ref().expect("guard present")
        }
    }
    impl<T> std::ops::DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            self.0.as_mut().expect("guard present")
        }
    }

    /// A loom condition variable taking the shim's guard by `&mut`.
    #[derive(Debug)]
    pub(crate) struct Condvar(loom::sync::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Self(loom::sync::Condvar::new())
        }
        pub(crate) fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
            let g = guard.0.take().expect("guard present");
            guard.0 = Some(self.0.wait(g).unwrap());
        }
        pub(crate) fn wait_for<T>(
            &self,
            guard: &mut MutexGuard<'_, T>,
            d: std::time::Duration,
        ) -> bool {
            let g = guard.0.take().expect("guard present");
            let (g, r) = self.0.wait_timeout(g, d).unwrap();
            guard.0 = Some(g);
            r.timed_out()
        }
        pub(crate) fn notify_one(&self) {
            self.0.notify_one();
        }
        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }
}

pub(crate) use imp::*;

/// Under loom: crossbeam-deque is not loom-aware (its atomics would be invisible to the model),
/// so the ready queues are stand-ins with the same API, built on the shim's `Mutex`. The
/// protocols around the queues (sequence state, sleep and wake, shutdown) are what the models
/// check; the queues themselves are crossbeam's, tested by crossbeam.
#[cfg(loom)]
mod deque {
    use std::collections::VecDeque;

    use super::imp::{Arc, Mutex};

    /// The result of a steal (crossbeam's `Steal`).
    #[derive(Debug)]
    pub(crate) enum Steal<T> {
        Empty,
        Success(T),
        #[allow(dead_code)]
        Retry,
    }

    impl<T> Steal<T> {
        pub(crate) fn success(self) -> Option<T> {
            match self {
                Steal::Success(t) => Some(t),
                _ => None,
            }
        }
    }

    /// A shared FIFO (crossbeam's `Injector`).
    #[derive(Debug)]
    pub(crate) struct Injector<T>(Mutex<VecDeque<T>>);

    impl<T> Injector<T> {
        pub(crate) fn new() -> Self {
            Injector(Mutex::new(VecDeque::new()))
        }
        pub(crate) fn push(&self, t: T) {
            self.0.lock().push_back(t);
        }
        pub(crate) fn steal(&self) -> Steal<T> {
            match self.0.lock().pop_front() {
                Some(t) => Steal::Success(t),
                None => Steal::Empty,
            }
        }
        /// Moves up to half of the entries (at most 4 under the model) into `dest` and pops one.
        pub(crate) fn steal_batch_and_pop(&self, dest: &Deque<T>) -> Steal<T> {
            // One lock at a time (the source's, then the destination's): no lock order to keep.
            let (first, batch) = {
                let mut q = self.0.lock();
                let Some(first) = q.pop_front() else {
                    return Steal::Empty;
                };
                let n = (q.len() / 2).min(4);
                (first, q.drain(..n).collect::<Vec<_>>())
            };
            dest.q.lock().extend(batch);
            Steal::Success(first)
        }
        pub(crate) fn is_empty(&self) -> bool {
            self.0.lock().is_empty()
        }
        pub(crate) fn len(&self) -> usize {
            self.0.lock().len()
        }
    }

    /// A worker's own deque (crossbeam's `Worker`): FIFO or LIFO for its owner, stolen from the
    /// front by others.
    #[derive(Debug)]
    pub(crate) struct Deque<T> {
        q: Arc<Mutex<VecDeque<T>>>,
        lifo: bool,
    }

    impl<T> Deque<T> {
        pub(crate) fn new_fifo() -> Self {
            Deque {
                q: Arc::new(Mutex::new(VecDeque::new())),
                lifo: false,
            }
        }
        pub(crate) fn new_lifo() -> Self {
            Deque {
                q: Arc::new(Mutex::new(VecDeque::new())),
                lifo: true,
            }
        }
        pub(crate) fn push(&self, t: T) {
            self.q.lock().push_back(t);
        }
        pub(crate) fn pop(&self) -> Option<T> {
            let mut q = self.q.lock();
            if self.lifo {
                q.pop_back()
            } else {
                q.pop_front()
            }
        }
        pub(crate) fn is_empty(&self) -> bool {
            self.q.lock().is_empty()
        }
        pub(crate) fn len(&self) -> usize {
            self.q.lock().len()
        }
        pub(crate) fn stealer(&self) -> Stealer<T> {
            Stealer {
                q: Arc::clone(&self.q),
            }
        }
    }

    /// Steals from a worker's deque (crossbeam's `Stealer`).
    #[derive(Debug)]
    pub(crate) struct Stealer<T> {
        q: Arc<Mutex<VecDeque<T>>>,
    }

    impl<T> Stealer<T> {
        pub(crate) fn steal(&self) -> Steal<T> {
            match self.q.lock().pop_front() {
                Some(t) => Steal::Success(t),
                None => Steal::Empty,
            }
        }
        pub(crate) fn steal_batch_and_pop(&self, dest: &Deque<T>) -> Steal<T> {
            let (first, batch) = {
                let mut q = self.q.lock();
                let Some(first) = q.pop_front() else {
                    return Steal::Empty;
                };
                let n = q.len() / 2;
                (first, q.drain(..n).collect::<Vec<_>>())
            };
            dest.q.lock().extend(batch);
            Steal::Success(first)
        }
        pub(crate) fn is_empty(&self) -> bool {
            self.q.lock().is_empty()
        }
        pub(crate) fn len(&self) -> usize {
            self.q.lock().len()
        }
    }
}
