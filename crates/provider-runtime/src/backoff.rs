//! Per-object exponential backoff of failed reconciles: the first failure is retried after the
//! base delay, each further one after twice the previous delay, up to the maximum; a success
//! forgets the object. One slow or broken object thus costs the queue less and less, and never
//! delays the others (their delays are their own).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Failure counts by object key.
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl Default for Backoff {
    /// 15 s, doubling up to 5 minutes.
    fn default() -> Self {
        Self::new(Duration::from_secs(15), Duration::from_secs(300))
    }
}

impl Backoff {
    /// Backoff from `base` doubling up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Records a failure of `key` and returns how long to wait before the next try.
    pub fn failed(&self, key: &str) -> Duration {
        let n = {
            let mut failures = self
                .failures
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let n = failures.entry(key.to_string()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// Forgets the failures of `key` (it reconciled).
    pub fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }

    /// How many objects are backing off.
    pub fn len(&self) -> usize {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// No object is backing off.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Requeue delays of objects waiting for something no watch reports (a workload API starting to
/// answer): the base delay after anything the reconciler sees changed, doubling while nothing
/// does, up to the maximum. A control plane whose pods are starting is looked at every few
/// seconds; one that has waited unchanged for an hour costs a reconcile every few minutes.
#[derive(Debug)]
pub struct Waits {
    base: Duration,
    max: Duration,
    /// By object key: the state last seen and how many times in a row it was seen.
    seen: Mutex<HashMap<String, (u64, u32)>>,
}

impl Waits {
    /// Waits from `base` doubling up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// `key` is still waiting, in the observed state `state` (a hash of what the reconciler
    /// read): how long until it is looked at again.
    pub fn still_waiting(&self, key: &str, state: u64) -> Duration {
        let n = {
            let mut seen = self
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let entry = seen.entry(key.to_string()).or_insert((state, 0));
            if entry.0 != state {
                *entry = (state, 0);
            }
            entry.1 = entry.1.saturating_add(1);
            entry.1
        };
        let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// `key` no longer waits (settled, or gone).
    pub fn done(&self, key: &str) {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }

    /// How many objects are waiting.
    pub fn len(&self) -> usize {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// No object is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_per_object_up_to_the_maximum_and_a_success_resets() {
        let b = Backoff::default();
        let secs = |d: Duration| d.as_secs();
        assert_eq!(secs(b.failed("a")), 15);
        assert_eq!(secs(b.failed("a")), 30);
        assert_eq!(secs(b.failed("b")), 15, "another object has its own count");
        assert_eq!(secs(b.failed("a")), 60);
        assert_eq!(secs(b.failed("a")), 120);
        assert_eq!(secs(b.failed("a")), 240);
        assert_eq!(secs(b.failed("a")), 300);
        for _ in 0..100 {
            assert_eq!(secs(b.failed("a")), 300, "no overflow, capped");
        }
        b.succeeded("a");
        assert_eq!(secs(b.failed("a")), 15);
        b.succeeded("a");
        b.succeeded("b");
        assert!(b.is_empty());
    }

    #[test]
    fn waits_double_while_the_state_is_unchanged_and_restart_when_it_changes() {
        let w = Waits::new(Duration::from_secs(10), Duration::from_secs(300));
        let secs = |d: Duration| d.as_secs();
        assert_eq!(secs(w.still_waiting("a", 1)), 10);
        assert_eq!(secs(w.still_waiting("a", 1)), 20);
        assert_eq!(secs(w.still_waiting("a", 1)), 40);
        assert_eq!(
            secs(w.still_waiting("b", 1)),
            10,
            "another object has its own count"
        );
        assert_eq!(
            secs(w.still_waiting("a", 2)),
            10,
            "something changed: look again soon"
        );
        for _ in 0..100 {
            w.still_waiting("a", 2);
        }
        assert_eq!(secs(w.still_waiting("a", 2)), 300, "capped");
        w.done("a");
        assert_eq!(secs(w.still_waiting("a", 2)), 10);
        w.done("a");
        w.done("b");
        assert!(w.is_empty());
    }
}
