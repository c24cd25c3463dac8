//! Pauses between reconnection attempts.

use std::time::SystemTime;

/// Exponential backoff with full jitter between reconnection attempts, so
/// that a fleet does not reconnect in lockstep when etcd comes back.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: std::time::Duration,
    min: std::time::Duration,
    max: std::time::Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(
            std::time::Duration::from_millis(200),
            std::time::Duration::from_secs(10),
        )
    }
}

impl Backoff {
    /// From `min`, doubling up to `max`.
    pub fn new(min: std::time::Duration, max: std::time::Duration) -> Self {
        Self {
            next: min,
            min,
            max,
        }
    }

    /// The pause before the next attempt (between half and all of the current step).
    pub fn next_delay(&mut self) -> std::time::Duration {
        let step = self.next;
        self.next = (self.next * 2).min(self.max);
        let nanos = u64::try_from(step.as_nanos()).unwrap_or(u64::MAX);
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| since.subsec_nanos());
        let jitter = u64::from(seed) % (nanos / 2 + 1);
        std::time::Duration::from_nanos(nanos / 2 + jitter)
    }

    /// Back to the shortest pause after a success.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_resets() {
        let mut backoff = Backoff::new(
            std::time::Duration::from_millis(100),
            std::time::Duration::from_millis(400),
        );
        let delays: Vec<_> = (0..4).map(|_| backoff.next_delay()).collect();
        assert!(delays[0] <= std::time::Duration::from_millis(100));
        assert!(delays[3] >= std::time::Duration::from_millis(200));
        assert!(delays[3] <= std::time::Duration::from_millis(400));
        backoff.reset();
        assert!(backoff.next_delay() <= std::time::Duration::from_millis(100));
    }
}
