//! Log lines a client can trigger, limited in rate.
//!
//! A flood of bad packets or requests must not become a flood of log lines:
//! each reason gets at most one line per interval, and the line that is
//! written says how many were left out since the previous one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// At most one line per interval for one reason, lock-free, for hot paths.
#[derive(Debug)]
pub struct LogLimiter {
    epoch: Instant,
    interval_ms: u64,
    /// Milliseconds since `epoch` from which the next line may be written
    /// (0: the first line is always written).
    next_due_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl LogLimiter {
    /// A limiter writing at most one line per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            epoch: Instant::now(),
            interval_ms: u64::try_from(interval.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
            next_due_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(left_out)` when a line is due now, with the number of lines
    /// left out since the previous one; `None` when this one is left out
    /// (and counted).
    pub fn admit(&self) -> Option<u64> {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let due = self.next_due_ms.load(Ordering::Relaxed);
        if now >= due
            && self
                .next_due_ms
                .compare_exchange(
                    due,
                    now.saturating_add(self.interval_ms),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_and_the_rest_counted() {
        let limiter = LogLimiter::new(Duration::from_millis(50));
        assert_eq!(limiter.admit(), Some(0));
        for _ in 0..99 {
            assert_eq!(limiter.admit(), None);
        }
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(limiter.admit(), Some(99));
        assert_eq!(limiter.admit(), None);
    }
}
