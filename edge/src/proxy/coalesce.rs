//! One origin fetch for many concurrent misses.
//!
//! The first miss for a key becomes the leader and fetches; later misses
//! wait for its outcome. When the response was stored they are served from
//! the cache. When it turned out not storable, every waiter is released at
//! once to fetch on its own in parallel (not one by one), and the key is
//! remembered as uncacheable for a while so the next wave does not wait at
//! all (Varnish calls this hit-for-miss).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;

/// How long a key stays known as uncacheable.
const REMEMBER_UNCACHEABLE: Duration = Duration::from_secs(30);
/// Keys remembered as uncacheable at most.
const MAX_REMEMBERED: usize = 100_000;

/// What the leader's fetch came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stored: look it up.
    Stored,
    /// Not storable: fetch yourself.
    Uncacheable,
    /// The fetch failed: fetch yourself (or fail).
    Failed,
    /// Storable, but the fill memory budget had no room this time: fetch
    /// yourself; nothing is remembered about the key.
    NoRoom,
}

#[derive(Debug, Default)]
struct Inner {
    in_flight: Mutex<HashMap<String, watch::Receiver<Option<Outcome>>>>,
    uncacheable: Mutex<HashMap<String, Instant>>,
}

/// The in-flight table.
#[derive(Debug, Clone, Default)]
pub struct Coalescer {
    inner: Arc<Inner>,
}

/// A miss's part in the fetch of its key.
pub enum Role {
    /// Fetch, then report with [`Leader::finish`].
    Leader(Leader),
    /// Wait for the leader.
    Waiter(watch::Receiver<Option<Outcome>>),
}

/// The fetching miss. Dropping it without finishing reports `Failed`.
pub struct Leader {
    key: String,
    sender: watch::Sender<Option<Outcome>>,
    inner: Arc<Inner>,
    finished: bool,
}

impl Leader {
    /// Reports the outcome and releases every waiter.
    pub fn finish(mut self, outcome: Outcome) {
        self.report(outcome);
    }

    fn report(&mut self, outcome: Outcome) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.inner.in_flight.lock().remove(&self.key);
        if outcome == Outcome::Uncacheable {
            let mut remembered = self.inner.uncacheable.lock();
            if remembered.len() >= MAX_REMEMBERED {
                let now = Instant::now();
                remembered.retain(|_, until| *until > now);
                if remembered.len() >= MAX_REMEMBERED {
                    remembered.clear();
                }
            }
            remembered.insert(self.key.clone(), Instant::now() + REMEMBER_UNCACHEABLE);
        }
        let _ = self.sender.send(Some(outcome));
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        self.report(Outcome::Failed);
    }
}

impl Coalescer {
    /// Joins the fetch of `key`, leading it if nobody is.
    pub fn join(&self, key: &str) -> Role {
        let mut in_flight = self.inner.in_flight.lock();
        if let Some(receiver) = in_flight.get(key) {
            return Role::Waiter(receiver.clone());
        }
        let (sender, receiver) = watch::channel(None);
        in_flight.insert(key.to_string(), receiver);
        Role::Leader(Leader {
            key: key.to_string(),
            sender,
            inner: self.inner.clone(),
            finished: false,
        })
    }

    /// Whether `key` recently turned out uncacheable.
    pub fn known_uncacheable(&self, key: &str) -> bool {
        let mut remembered = self.inner.uncacheable.lock();
        match remembered.get(key) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                remembered.remove(key);
                false
            }
            None => false,
        }
    }

    /// Forgets that `key` was uncacheable (after a purge, say).
    pub fn forget(&self, key: &str) {
        self.inner.uncacheable.lock().remove(key);
    }
}

/// Waits up to `timeout` for the leader; `None` on timeout.
pub async fn wait(
    mut receiver: watch::Receiver<Option<Outcome>>,
    timeout: Duration,
) -> Option<Outcome> {
    let outcome = tokio::time::timeout(timeout, receiver.wait_for(Option::is_some)).await;
    match outcome {
        Ok(Ok(value)) => *value,
        Ok(Err(_)) => Some(Outcome::Failed),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_leader_many_waiters() {
        let coalescer = Coalescer::default();
        let Role::Leader(leader) = coalescer.join("k") else {
            panic!("leader")
        };
        let waiters: Vec<_> = (0..10)
            .map(|_| match coalescer.join("k") {
                Role::Waiter(receiver) => tokio::spawn(wait(receiver, Duration::from_secs(5))),
                Role::Leader(_) => panic!("second leader"),
            })
            .collect();
        leader.finish(Outcome::Stored);
        for waiter in waiters {
            assert_eq!(waiter.await.unwrap(), Some(Outcome::Stored));
        }
        assert!(
            matches!(coalescer.join("k"), Role::Leader(_)),
            "next miss leads again"
        );
    }

    #[tokio::test]
    async fn dropped_leader_releases_waiters_and_uncacheable_is_remembered() {
        let coalescer = Coalescer::default();
        let Role::Leader(leader) = coalescer.join("k") else {
            panic!("leader")
        };
        let Role::Waiter(receiver) = coalescer.join("k") else {
            panic!("waiter")
        };
        drop(leader);
        assert_eq!(
            wait(receiver, Duration::from_secs(5)).await,
            Some(Outcome::Failed)
        );

        let Role::Leader(leader) = coalescer.join("u") else {
            panic!("leader")
        };
        leader.finish(Outcome::Uncacheable);
        assert!(coalescer.known_uncacheable("u"));
        coalescer.forget("u");
        assert!(!coalescer.known_uncacheable("u"));
    }
}
