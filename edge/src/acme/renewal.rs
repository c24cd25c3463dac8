//! When to order again: in the window the CA suggests (ACME Renewal
//! Information, RFC 9773), else when about two thirds of the certificate's
//! lifetime have passed; and how long to wait after a failed order.
//!
//! Times are spread at random within a window, so that a fleet started
//! together does not order together, and so that the CA's load is spread
//! as RFC 9773 section 4.2 asks.

use std::time::{Duration, SystemTime};

/// A certificate's validity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// Not valid before.
    pub not_before: SystemTime,
    /// Not valid after.
    pub not_after: SystemTime,
}

/// The fraction of the lifetime after which a certificate is renewed,
/// and the spread before it: renewal falls between 60% and 66.7%.
const RENEW_AT: f64 = 2.0 / 3.0;
const SPREAD: f64 = 1.0 / 15.0;

/// The first wait after a failed order, doubled after each failure up to
/// [`MAX_BACKOFF`]. Let's Encrypt allows five failed validations per name
/// per hour; this makes at most five attempts in the first hour.
const FIRST_BACKOFF: Duration = Duration::from_secs(120);
const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);

/// When to renew a certificate of `validity` without a suggestion from
/// the CA; `random` is uniform in [0, 1).
pub fn by_lifetime(validity: Validity, random: f64) -> SystemTime {
    let lifetime = validity
        .not_after
        .duration_since(validity.not_before)
        .unwrap_or_default();
    validity.not_before + lifetime.mul_f64(RENEW_AT - SPREAD * random.clamp(0.0, 1.0))
}

/// A uniformly random time in the CA's suggested window (RFC 9773 section
/// 4.2); `random` is uniform in [0, 1).
pub fn in_window(start: SystemTime, end: SystemTime, random: f64) -> SystemTime {
    let width = end.duration_since(start).unwrap_or_default();
    start + width.mul_f64(random.clamp(0.0, 1.0))
}

/// How long to wait after the `failures`-th failure in a row (from 1).
pub fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(count: u64) -> Duration {
        Duration::from_secs(count * 86_400)
    }

    #[test]
    fn a_ninety_day_certificate_is_renewed_between_days_54_and_60() {
        let issued = SystemTime::UNIX_EPOCH + days(20_000);
        let validity = Validity {
            not_before: issued,
            not_after: issued + days(90),
        };
        assert_eq!(by_lifetime(validity, 0.0), issued + days(60));
        assert_eq!(by_lifetime(validity, 1.0), issued + days(54));
        let middle = by_lifetime(validity, 0.5);
        assert!(middle > issued + days(56) && middle < issued + days(58));
    }

    #[test]
    fn a_certificate_with_its_dates_backwards_is_renewed_at_once() {
        let now = SystemTime::UNIX_EPOCH + days(20_000);
        let validity = Validity {
            not_before: now,
            not_after: now - days(1),
        };
        assert_eq!(by_lifetime(validity, 0.5), now);
    }

    #[test]
    fn the_suggested_window_is_sampled_uniformly() {
        let start = SystemTime::UNIX_EPOCH + days(20_000);
        let end = start + days(2);
        assert_eq!(in_window(start, end, 0.0), start);
        assert_eq!(in_window(start, end, 0.5), start + days(1));
        assert_eq!(in_window(end, start, 0.5), end);
    }

    #[test]
    fn failures_back_off_from_two_minutes_to_six_hours() {
        assert_eq!(backoff(1), Duration::from_secs(120));
        assert_eq!(backoff(2), Duration::from_secs(240));
        let first_hour: Duration = (1..=5).map(backoff).sum();
        assert!(first_hour > Duration::from_secs(3600));
        assert_eq!(backoff(10), Duration::from_secs(6 * 3600));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(6 * 3600));
    }
}
