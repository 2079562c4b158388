//! `SequenceChecker`: a debug-build check that code runs on the sequence it is bound to.
//!
//! Two twins with the same API: under `debug_assertions` a real check; otherwise a zero-sized
//! type whose methods do nothing (and `called_on_valid_sequence` returns `true`).

#[cfg(debug_assertions)]
mod imp {
    use std::sync::atomic::{AtomicU64, Ordering};

    use crate::engine::current;

    /// Checks that it is used from one sequence only.
    ///
    /// Binds to the sequence (or, outside pool tasks, the thread) that creates it. After
    /// [`detach`](SequenceChecker::detach) it re-binds to the next sequence that checks it
    /// (construct on one sequence, then hand over to another). In release builds it is a
    /// zero-sized no-op.
    ///
    /// ```
    /// use taskrunner::{PostTask, SequenceChecker, ThreadPool, TaskTraits};
    /// let pool = ThreadPool::builder().max_workers(2).build().unwrap();
    /// let seq = pool.create_sequenced_task_runner(TaskTraits::default());
    /// let mut checker = SequenceChecker::new(); // bound to this (main) thread
    /// assert!(checker.called_on_valid_sequence());
    /// checker.detach(); // the next check binds it
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let tx2 = tx.clone();
    /// let checker = std::sync::Arc::new(checker);
    /// let c2 = checker.clone();
    /// seq.post_task(move || tx.send(c2.called_on_valid_sequence()).unwrap()).unwrap();
    /// assert!(rx.recv().unwrap());
    /// let c3 = checker.clone();
    /// seq.post_task(move || tx2.send(c3.called_on_valid_sequence()).unwrap()).unwrap();
    /// assert!(rx.recv().unwrap());
    /// # #[cfg(debug_assertions)]
    /// assert!(!checker.called_on_valid_sequence()); // main thread is another sequence
    /// ```
    #[derive(Debug)]
    pub struct SequenceChecker {
        /// The bound token; 0 = detached.
        bound: AtomicU64,
    }

    impl SequenceChecker {
        /// A checker bound to the current sequence (or thread, outside pool tasks).
        ///
        /// ```
        /// let c = taskrunner::SequenceChecker::new();
        /// assert!(c.called_on_valid_sequence());
        /// ```
        pub fn new() -> Self {
            SequenceChecker {
                bound: AtomicU64::new(current::current_token()),
            }
        }

        /// A checker bound to nothing yet: the first check binds it.
        ///
        /// ```
        /// let c = taskrunner::SequenceChecker::detached();
        /// assert!(c.called_on_valid_sequence()); // binds here
        /// ```
        pub fn detached() -> Self {
            SequenceChecker {
                bound: AtomicU64::new(0),
            }
        }

        /// `true` if called on the bound sequence (binding it first if detached).
        ///
        /// ```
        /// let c = taskrunner::SequenceChecker::new();
        /// assert!(c.called_on_valid_sequence());
        /// let ok = std::thread::scope(|s| s.spawn(|| c.called_on_valid_sequence()).join().unwrap());
        /// # #[cfg(debug_assertions)]
        /// assert!(!ok); // another thread is another sequence
        /// ```
        pub fn called_on_valid_sequence(&self) -> bool {
            let me = current::current_token();
            match self
                .bound
                .compare_exchange(0, me, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => true,
                Err(bound) => bound == me,
            }
        }

        /// Panics, naming both sequences, unless called on the bound sequence.
        ///
        /// ```should_panic
        /// let c = taskrunner::SequenceChecker::new();
        /// std::thread::scope(|s| s.spawn(|| c.check()).join().unwrap());
        /// # #[cfg(not(debug_assertions))]
        /// # panic!("release build: the checker is a no-op");
        /// ```
        #[track_caller]
        pub fn check(&self) {
            if !self.called_on_valid_sequence() {
                let bound = self.bound.load(Ordering::Acquire);
                let me = current::current_token();
                let thread = std::thread::current();
                panic!(
                    "SequenceChecker: called on sequence {me} (thread '{}') but the checker is bound to sequence {bound}; \
                     this code must only run on its owning sequence (post to it, or call detach() when handing it over)",
                    thread.name().unwrap_or("<unnamed>")
                );
            }
        }

        /// Unbinds: the next check binds to whichever sequence makes it.
        ///
        /// ```
        /// let mut c = taskrunner::SequenceChecker::new();
        /// c.detach();
        /// let ok = std::thread::scope(|s| s.spawn(|| c.called_on_valid_sequence()).join().unwrap());
        /// assert!(ok);
        /// ```
        pub fn detach(&mut self) {
            *self.bound.get_mut() = 0;
        }
    }
}

#[cfg(not(debug_assertions))]
mod imp {
    /// Release-build twin of the debug `SequenceChecker`: zero-sized, every check passes.
    ///
    /// ```
    /// assert!(taskrunner::SequenceChecker::new().called_on_valid_sequence());
    /// ```
    #[derive(Debug)]
    pub struct SequenceChecker(());

    impl SequenceChecker {
        /// A checker (no-op in release builds).
        ///
        /// ```
        /// let _c = taskrunner::SequenceChecker::new();
        /// ```
        pub fn new() -> Self {
            SequenceChecker(())
        }
        /// A detached checker (no-op in release builds).
        ///
        /// ```
        /// let _c = taskrunner::SequenceChecker::detached();
        /// ```
        pub fn detached() -> Self {
            SequenceChecker(())
        }
        /// Always `true` in release builds.
        ///
        /// ```
        /// assert!(taskrunner::SequenceChecker::new().called_on_valid_sequence());
        /// ```
        pub fn called_on_valid_sequence(&self) -> bool {
            true
        }
        /// Does nothing in release builds.
        ///
        /// ```
        /// taskrunner::SequenceChecker::new().check();
        /// ```
        #[track_caller]
        pub fn check(&self) {}
        /// Does nothing in release builds.
        ///
        /// ```
        /// taskrunner::SequenceChecker::new().detach();
        /// ```
        pub fn detach(&mut self) {}
    }
}

pub use imp::SequenceChecker;

impl Default for SequenceChecker {
    fn default() -> Self {
        Self::new()
    }
}
