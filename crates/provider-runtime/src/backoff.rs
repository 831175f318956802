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
}
