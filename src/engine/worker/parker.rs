//! `Parker`: a sticky wake-up flag plus a condition variable, one per worker.
//!
//! | `notified` | meaning |
//! |---|---|
//! | `false` | no wake-up pending; `park` sleeps |
//! | `true` | a wake-up is pending; the next `park` consumes it and returns at once |
//!
//! `unpark` sets the flag under the parker's own mutex and signals after releasing it, so a
//! wake-up sent before the worker starts waiting is consumed, not lost (the loom model
//! `loom_group_park_vs_post` checks this through the real group code).

use std::time::Duration;

use crate::base::shim::{Condvar, Mutex};

#[derive(Debug)]
pub(crate) struct Parker {
    notified: Mutex<bool>,
    cv: Condvar,
}

impl Parker {
    pub(crate) fn new() -> Self {
        Parker {
            notified: Mutex::new(false),
            cv: Condvar::new(),
        }
    }

    /// Sleeps until unparked or until `timeout` elapses. Returns `true` if a wake-up was
    /// consumed, `false` on timeout.
    pub(crate) fn park(&self, timeout: Option<Duration>) -> bool {
        let mut n = self.notified.lock();
        while !*n {
            match timeout {
                None => self.cv.wait(&mut n),
                Some(t) => {
                    if self.cv.wait_for(&mut n, t) && !*n {
                        return false;
                    }
                }
            }
        }
        *n = false;
        true
    }

    pub(crate) fn unpark(&self) {
        let mut n = self.notified.lock();
        *n = true;
        drop(n);
        self.cv.notify_one();
    }
}
