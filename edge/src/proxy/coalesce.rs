//! One origin fetch for many concurrent misses.
//!
//! The first miss for a key becomes the leader and fetches; later misses
//! wait for its outcome. When the response was stored they are served from
//! the cache. When it turned out not storable, every waiter is released at
//! once to fetch on its own in parallel (not one by one), and the key is
//! remembered as uncacheable for a while so the next wave does not wait at
//! all (Varnish calls this hit-for-miss).
//!
//! The fetch belongs to the key, not to the client that started it: it runs
//! in a task of its own, and every client that leads or waits holds an
//! [`Interest`] in it. When the leading client goes away the fetch goes on
//! for the waiters; only when nobody is interested any more is it cancelled,
//! so clients that abandon their requests still cannot make the origin
//! work for nobody.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::AbortHandle;

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
    /// Not stored for a reason that says nothing about the key (no room in
    /// the fill memory budget, a 206 to a request for the whole object):
    /// fetch yourself; nothing is remembered about the key.
    NotStoredThisTime,
}

/// One fetch in flight: who still wants it, and how to cancel it.
#[derive(Debug, Default)]
struct Flight {
    holders: AtomicUsize,
    task: Mutex<Option<AbortHandle>>,
}

/// A client's interest in a fetch; the last one dropped cancels the fetch
/// (when its task was registered with [`Interest::cancel_when_unwanted`]).
#[derive(Debug)]
pub struct Interest(Arc<Flight>);

impl Interest {
    fn new(flight: &Arc<Flight>) -> Self {
        flight.holders.fetch_add(1, Ordering::AcqRel);
        Self(flight.clone())
    }

    /// Cancels `task` once nobody is interested in the fetch any more.
    pub fn cancel_when_unwanted(&self, task: AbortHandle) {
        *self.0.task.lock() = Some(task);
    }
}

impl Drop for Interest {
    fn drop(&mut self) {
        if self.0.holders.fetch_sub(1, Ordering::AcqRel) == 1
            && let Some(task) = self.0.task.lock().take()
        {
            task.abort();
        }
    }
}

/// A key's fetch in flight: where its outcome will be announced, and who wants it.
type InFlight = (watch::Receiver<Option<Outcome>>, Arc<Flight>);

#[derive(Debug, Default)]
struct Inner {
    in_flight: Mutex<HashMap<String, InFlight>>,
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
    Waiter(Waiter),
}

/// A miss waiting for the fetch of its key.
pub struct Waiter {
    receiver: watch::Receiver<Option<Outcome>>,
    interest: Interest,
}

impl Waiter {
    /// Waits up to `timeout` for the fetch's outcome (`None` on timeout),
    /// keeping the fetch wanted meanwhile.
    pub async fn outcome(self, timeout: Duration) -> Option<Outcome> {
        let outcome = wait(self.receiver, timeout).await;
        drop(self.interest);
        outcome
    }
}

/// The fetching miss. Dropping it without finishing reports `Failed`.
pub struct Leader {
    key: String,
    sender: watch::Sender<Option<Outcome>>,
    inner: Arc<Inner>,
    flight: Arc<Flight>,
    finished: bool,
}

impl Leader {
    /// An interest in this fetch, for the client that leads it.
    pub fn interest(&self) -> Interest {
        Interest::new(&self.flight)
    }

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
        if let Some((receiver, flight)) = in_flight.get(key) {
            return Role::Waiter(Waiter {
                receiver: receiver.clone(),
                interest: Interest::new(flight),
            });
        }
        let (sender, receiver) = watch::channel(None);
        let flight = Arc::new(Flight::default());
        in_flight.insert(key.to_string(), (receiver, flight.clone()));
        Role::Leader(Leader {
            key: key.to_string(),
            sender,
            inner: self.inner.clone(),
            flight,
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

    /// Forgets every key starting with `prefix` that was uncacheable: the
    /// variants of a purged URL, or every URL under a purged prefix. The
    /// set is bounded, so this is too.
    pub fn forget_prefix(&self, prefix: &str) {
        self.inner
            .uncacheable
            .lock()
            .retain(|key, _| !key.starts_with(prefix));
    }

    /// Forgets every key known as uncacheable (after a full purge).
    pub fn forget_all(&self) {
        self.inner.uncacheable.lock().clear();
    }
}

/// Waits up to `timeout` for the leader; `None` on timeout.
async fn wait(
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
                Role::Waiter(waiter) => tokio::spawn(waiter.outcome(Duration::from_secs(5))),
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
        let Role::Waiter(waiter) = coalescer.join("k") else {
            panic!("waiter")
        };
        drop(leader);
        assert_eq!(
            waiter.outcome(Duration::from_secs(5)).await,
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

    #[tokio::test]
    async fn a_fetch_goes_on_while_anyone_wants_it_and_stops_when_nobody_does() {
        let coalescer = Coalescer::default();
        let Role::Leader(leader) = coalescer.join("k") else {
            panic!("leader")
        };
        let first_client = leader.interest();
        let fetch = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(leader);
        });
        first_client.cancel_when_unwanted(fetch.abort_handle());
        let Role::Waiter(waiter) = coalescer.join("k") else {
            panic!("waiter")
        };
        drop(first_client);
        tokio::task::yield_now().await;
        assert!(!fetch.is_finished(), "a waiter still wants it");
        assert_eq!(waiter.outcome(Duration::from_millis(10)).await, None);
        assert!(fetch.await.unwrap_err().is_cancelled(), "nobody wants it");
        assert!(matches!(coalescer.join("k"), Role::Leader(_)));
    }
}
