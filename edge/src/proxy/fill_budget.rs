//! The bound on memory held by responses being filled into the cache.
//!
//! A miss that may be stored is read whole before it is stored, so each
//! concurrent distinct miss holds up to `max_object_size` that the store
//! does not count yet; a random query string would otherwise turn that into
//! an out-of-memory attack. Every fill reserves its bytes here before it
//! reads them (the whole `Content-Length` up front, or step by step as an
//! unsized body arrives, and once more for the sealed copy while it is made).
//! A fill that cannot reserve streams the rest of the response to its client
//! and stores nothing, so memory stays under the store's capacity plus this
//! budget.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use prometheus_client::metrics::gauge::Gauge;

/// Bytes in use by fills, bounded by `cache.fill_memory`.
#[derive(Debug)]
pub struct FillBudget {
    limit: usize,
    in_use: AtomicUsize,
    gauge: Gauge,
}

impl FillBudget {
    /// A budget of `limit` bytes, its use reported in `gauge`.
    pub fn new(limit: usize, gauge: Gauge) -> Arc<Self> {
        Arc::new(Self {
            limit,
            in_use: AtomicUsize::new(0),
            gauge,
        })
    }

    /// Reserves `bytes`, or `None` when they would exceed the budget.
    pub fn reserve(self: &Arc<Self>, bytes: usize) -> Option<Reservation> {
        let mut reservation = Reservation {
            budget: self.clone(),
            bytes: 0,
        };
        reservation.grow_to(bytes).then_some(reservation)
    }

    /// The share of the budget in use, from 0 to 1.
    pub fn share(&self) -> f64 {
        self.in_use.load(Ordering::Relaxed) as f64 / self.limit.max(1) as f64
    }

    /// Bytes in use.
    pub fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Relaxed)
    }

    fn take(&self, bytes: usize) -> bool {
        let taken = self
            .in_use
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.limit)
            })
            .is_ok();
        if taken {
            self.gauge.inc_by(bytes as i64);
        }
        taken
    }

    fn give_back(&self, bytes: usize) {
        self.in_use.fetch_sub(bytes, Ordering::AcqRel);
        self.gauge.dec_by(bytes as i64);
    }
}

/// Bytes one fill holds; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<FillBudget>,
    bytes: usize,
}

impl Reservation {
    /// Grows the reservation to `total` bytes (never shrinks it); `false`
    /// when the budget has no room, leaving the reservation as it was.
    pub fn grow_to(&mut self, total: usize) -> bool {
        let more = total.saturating_sub(self.bytes);
        if more == 0 {
            return true;
        }
        if !self.budget.take(more) {
            return false;
        }
        self.bytes = total;
        true
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.budget.give_back(self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stay_within_the_budget_and_are_given_back() {
        let gauge = Gauge::default();
        let budget = FillBudget::new(100, gauge.clone());
        let mut first = budget.reserve(60).unwrap();
        assert!(budget.reserve(50).is_none());
        assert!(!first.grow_to(101));
        assert_eq!(first.bytes(), 60);
        let second = budget.reserve(40).unwrap();
        assert_eq!(gauge.get(), 100);
        drop(second);
        assert!(first.grow_to(100));
        assert_eq!(budget.in_use(), 100);
        drop(first);
        assert_eq!(budget.in_use(), 0);
        assert_eq!(gauge.get(), 0);
    }
}
