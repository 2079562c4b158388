//! `Deadline`: the one place where the crate turns "now + a duration" into a point in time.
//!
//! A duration too large for [`Instant`] (`Duration::MAX`, or any that overflows) means **no
//! limit**: the deadline is [`Deadline::NEVER`], which is never reached, sorts after every real
//! instant, and leaves a wait unbounded. Nothing in the crate adds a `Duration` to an `Instant`
//! directly (a unit test scans the sources for it), so no API that takes a duration can panic
//! with "overflow when adding duration to instant".

use std::cmp::Ordering;
use std::time::{Duration, Instant};

/// A point in time, or never.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Deadline(Option<Instant>);

impl Deadline {
    /// Never reached.
    pub(crate) const NEVER: Deadline = Deadline(None);

    /// `now + d`, or [`NEVER`](Self::NEVER) if that is not representable.
    #[inline]
    pub(crate) fn after(now: Instant, d: Duration) -> Deadline {
        Deadline(now.checked_add(d))
    }

    /// `Instant::now() + d` by the real clock, or never.
    #[inline]
    pub(crate) fn real_after(d: Duration) -> Deadline {
        Self::after(Instant::now(), d)
    }

    /// A deadline at `at`.
    #[inline]
    pub(crate) fn at(at: Instant) -> Deadline {
        Deadline(Some(at))
    }

    /// The instant, unless this is never.
    #[inline]
    pub(crate) fn instant(self) -> Option<Instant> {
        self.0
    }

    /// `true` for [`NEVER`](Self::NEVER).
    #[inline]
    pub(crate) fn is_never(self) -> bool {
        self.0.is_none()
    }

    /// `true` once `now` has reached the deadline (never for `NEVER`).
    #[inline]
    pub(crate) fn is_reached(self, now: Instant) -> bool {
        self.0.is_some_and(|at| now >= at)
    }

    /// `d` later, or never if that is not representable (never stays never).
    #[inline]
    pub(crate) fn later_by(self, d: Duration) -> Deadline {
        match self.0 {
            Some(at) => Self::after(at, d),
            None => Deadline::NEVER,
        }
    }

    /// How long from `now` until the deadline: `None` for never (wait without limit),
    /// `Some(ZERO)` once reached.
    #[inline]
    pub(crate) fn remaining(self, now: Instant) -> Option<Duration> {
        self.0.map(|at| at.saturating_duration_since(now))
    }
}

impl Default for Deadline {
    /// No limit.
    fn default() -> Self {
        Deadline::NEVER
    }
}

impl Ord for Deadline {
    /// Earlier first; never last.
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.0, other.0) {
            (Some(a), Some(b)) => a.cmp(&b),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        }
    }
}

impl PartialOrd for Deadline {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// `now + d`, saturating to "no limit" (`None`). Shorthand for `Deadline::after(..).instant()`.
#[inline]
#[cfg_attr(not(feature = "test-util"), allow(dead_code))]
pub(crate) fn instant_after(now: Instant, d: Duration) -> Option<Instant> {
    Deadline::after(now, d).instant()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_durations_mean_never() {
        let now = Instant::now();
        assert!(Deadline::after(now, Duration::MAX).is_never());
        assert_eq!(Deadline::after(now, Duration::MAX).remaining(now), None);
        assert!(!Deadline::NEVER.is_reached(now));
        let soon = Deadline::after(now, Duration::from_secs(1));
        assert!(soon < Deadline::NEVER);
        assert!(soon.is_reached(now + Duration::from_secs(1)));
        assert_eq!(
            soon.remaining(now + Duration::from_secs(5)),
            Some(Duration::ZERO)
        );
    }

    /// Keeps raw `Instant + Duration` out of the crate: every deadline goes through this
    /// module, which saturates instead of panicking on overflow.
    #[test]
    fn no_raw_instant_arithmetic_outside_this_module() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut offenders = Vec::new();
        scan(&root, &mut offenders);
        assert!(
            offenders.is_empty(),
            "add durations to instants through crate::base::deadline (saturating), not with `+`/`checked_add`:\n{}",
            offenders.join("\n")
        );
    }

    fn scan(dir: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                scan(&path, out);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") || path.ends_with("deadline.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let mut in_tests = false;
            let mut prev = "";
            for (i, line) in text.lines().enumerate() {
                let code = line.trim_start();
                if code.starts_with("#[cfg(test)]") || code.starts_with("mod tests") {
                    // Unit tests may build instants freely (they are not part of the library).
                    in_tests = true;
                }
                if in_tests || code.starts_with("//") {
                    continue;
                }
                if is_raw_instant_arithmetic(code, prev) {
                    out.push(format!("{}:{}: {}", path.display(), i + 1, code));
                }
                prev = code;
            }
        }
    }

    /// Instant-looking operands on the left of `+` / `+=`, or `Instant::checked_add`.
    fn is_raw_instant_arithmetic(code: &str, prev: &str) -> bool {
        const INSTANT_NAMES: [&str; 12] = [
            "now()",
            "now",
            "Instant::now()",
            "start",
            "started",
            "deadline",
            "run_at",
            "at",
            "t0",
            "next_at",
            "first",
            "when",
        ];
        let instant_ish = |l: &str| l.contains("now") || l.contains("Instant");
        if code.contains(".checked_add(") && (instant_ish(code) || instant_ish(prev)) {
            return true;
        }
        if code.contains("+ Duration::") {
            return true;
        }
        for name in INSTANT_NAMES {
            for op in [" + ", " += "] {
                let pat = format!("{name}{op}");
                if let Some(pos) = code.find(&pat) {
                    let before = code[..pos].chars().last();
                    let whole_word = before.is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
                        || name.contains('(');
                    if whole_word {
                        return true;
                    }
                }
            }
        }
        false
    }
}
