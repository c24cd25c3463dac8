//! The fill ring: which edge of the region owns a key.
//!
//! Rendezvous (highest random weight) hashing: every edge scores
//! `hash(edge name, key)` and the highest score owns the key. Every edge
//! computes the same order from the same member list with no coordination,
//! and when an edge joins or leaves only the keys it owns move. A miss on
//! a non-owner is fetched from the edges ranked above this one (the owner
//! first, the next ones if it is down), never from those below: an edge
//! that ranks itself first goes to the parent or origin.
//!
//! A peer whose health checks fail ([`super::peer_check`]) is skipped, so a
//! frozen owner costs a miss its timeout only until it is noticed, not
//! until its lease expires.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use arc_swap::ArcSwap;
use hyper::Uri;

/// One edge of the ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its `server.name`.
    pub name: String,
    /// Its client-facing base URL.
    pub base: Uri,
    /// Its health document, checked while it is in the ring.
    pub health: Option<Uri>,
}

/// A peer in the ring with what its checks saw.
#[derive(Debug)]
pub struct RingPeer {
    /// Who.
    pub peer: Peer,
    up: AtomicBool,
    failures: AtomicU32,
}

/// Consecutive failed checks that take a peer out of fills.
const FALL: u32 = 2;

impl RingPeer {
    fn new(peer: Peer) -> Self {
        Self {
            peer,
            // A member just announced is most likely serving.
            up: AtomicBool::new(true),
            failures: AtomicU32::new(0),
        }
    }

    /// Whether fills may ask it.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Records a check: any HTTP answer means it serves; `FALL`
    /// consecutive failures mean it does not.
    pub fn record_check(&self, answered: bool) {
        if answered {
            self.failures.store(0, Ordering::Relaxed);
            if !self.up.swap(true, Ordering::Relaxed) {
                tracing::info!(peer = self.peer.name, "fill peer answers again");
            }
        } else if self.failures.fetch_add(1, Ordering::Relaxed) + 1 >= FALL
            && self.up.swap(false, Ordering::Relaxed)
        {
            tracing::warn!(peer = self.peer.name, "fill peer does not answer; skipped");
        }
    }
}

/// This edge's view of its region.
#[derive(Debug)]
pub struct Ring {
    own: String,
    configured: Vec<Peer>,
    members: ArcSwap<Vec<Arc<RingPeer>>>,
    attempts: usize,
}

impl Ring {
    /// A ring of `configured` peers (this edge, named `own`, may be among
    /// them); at most `attempts` peers are tried per miss.
    pub fn new(own: &str, configured: Vec<Peer>, attempts: usize) -> Self {
        let ring = Self {
            own: own.to_string(),
            configured,
            members: ArcSwap::from_pointee(Vec::new()),
            attempts,
        };
        ring.set_announced(Vec::new());
        ring
    }

    /// Replaces the peers learnt from etcd; configured peers stay, and win
    /// over an announcement with the same name. Peers that did not change
    /// keep their check state.
    pub fn set_announced(&self, announced: Vec<Peer>) {
        let mut peers = self.configured.clone();
        for peer in announced {
            if !peers.iter().any(|known| known.name == peer.name) {
                peers.push(peer);
            }
        }
        peers.retain(|peer| peer.name != self.own);
        peers.sort_by(|a, b| a.name.cmp(&b.name));
        let current = self.members.load();
        let members = peers
            .into_iter()
            .map(|peer| {
                current
                    .iter()
                    .find(|known| known.peer == peer)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(RingPeer::new(peer)))
            })
            .collect();
        self.members.store(Arc::new(members));
    }

    /// The other edges of the ring, by name.
    pub fn peers(&self) -> Arc<Vec<Arc<RingPeer>>> {
        self.members.load_full()
    }

    /// Whether `address` is the address in the URL of one of the peers.
    pub fn has_address(&self, address: std::net::IpAddr) -> bool {
        self.peers().iter().any(|member| {
            member
                .peer
                .base
                .host()
                .map(|host| host.trim_start_matches('[').trim_end_matches(']'))
                .and_then(|host| host.parse::<std::net::IpAddr>().ok())
                .is_some_and(|peer| peer.to_canonical() == address)
        })
    }

    /// The peers to ask for `key`, best first: those that rank above this
    /// edge, at most `attempts` of them. Empty when this edge owns the key.
    pub fn ask_for(&self, key: &str) -> Vec<Uri> {
        let peers = self.members.load();
        if peers.is_empty() || self.attempts == 0 {
            return Vec::new();
        }
        let own_score = score(&self.own, key);
        let mut above: Vec<(u64, &Peer)> = peers
            .iter()
            .filter(|member| member.is_up())
            .map(|member| (score(&member.peer.name, key), &member.peer))
            .filter(|(peer_score, peer)| {
                (*peer_score, peer.name.as_str()) > (own_score, self.own.as_str())
            })
            .collect();
        above.sort_by(|a, b| (b.0, &b.1.name).cmp(&(a.0, &a.1.name)));
        above
            .into_iter()
            .take(self.attempts)
            .map(|(_, peer)| peer.base.clone())
            .collect()
    }
}

/// The rendezvous weight of `name` for `key`: FNV-1a over both, then a
/// SplitMix64 finaliser so that similar names spread well. Fixed here (not
/// `std`'s hasher, which may change between releases) so that edges of
/// different versions agree.
fn score(name: &str, key: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for byte in name.bytes().chain([0xff]).chain(key.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(PRIME);
    }
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str) -> Peer {
        Peer {
            name: name.into(),
            base: format!("http://{name}:8080").parse().unwrap(),
            health: None,
        }
    }

    fn rings(names: &[&str]) -> Vec<Ring> {
        names
            .iter()
            .map(|own| Ring::new(own, names.iter().map(|name| peer(name)).collect(), 8))
            .collect()
    }

    #[test]
    fn every_edge_agrees_on_the_owner() {
        let rings = rings(&["a", "b", "c"]);
        let mut owned = [0usize; 3];
        for index in 0..3000 {
            let key = format!("http://cdn.test/object/{index}");
            // The owner asks nobody; the others ask the owner first.
            let owners: Vec<usize> = (0..3)
                .filter(|&i| rings[i].ask_for(&key).is_empty())
                .collect();
            assert_eq!(owners.len(), 1, "{key}");
            let owner = owners[0];
            owned[owner] += 1;
            let owner_base: Uri = format!("http://{}:8080", ["a", "b", "c"][owner])
                .parse()
                .unwrap();
            for (i, ring) in rings.iter().enumerate() {
                if i != owner {
                    assert_eq!(ring.ask_for(&key)[0], owner_base);
                }
            }
        }
        for count in owned {
            assert!((800..1200).contains(&count), "uneven spread: {owned:?}");
        }
    }

    #[test]
    fn a_leaving_edge_moves_only_its_keys() {
        let before = Ring::new("a", vec![peer("b"), peer("c"), peer("d")], 1);
        let after = Ring::new("a", vec![peer("b"), peer("c")], 1);
        let d: Uri = "http://d:8080".parse().unwrap();
        for index in 0..2000 {
            let key = format!("/k/{index}");
            let old = before.ask_for(&key);
            if old.first() != Some(&d) {
                assert_eq!(
                    old,
                    after.ask_for(&key),
                    "{key} moved although d did not own it"
                );
            }
        }
    }

    #[test]
    fn announced_peers_merge_with_configured_ones() {
        let ring = Ring::new("a", vec![peer("b")], 2);
        ring.set_announced(vec![peer("a"), peer("c"), peer("b")]);
        let names: Vec<String> = ring
            .peers()
            .iter()
            .map(|member| member.peer.name.clone())
            .collect();
        assert_eq!(names, ["b", "c"]);
        assert!(Ring::new("a", Vec::new(), 2).ask_for("/x").is_empty());
    }

    #[test]
    fn peers_that_fail_their_checks_are_skipped_until_they_answer() {
        let ring = Ring::new("a", vec![peer("b")], 2);
        let key = (0..100)
            .map(|index| format!("/k/{index}"))
            .find(|key| !ring.ask_for(key).is_empty())
            .unwrap();
        let b = ring.peers()[0].clone();
        b.record_check(false);
        assert!(!ring.ask_for(&key).is_empty(), "one failure is not enough");
        b.record_check(false);
        assert!(
            ring.ask_for(&key).is_empty(),
            "down: straight to the origin"
        );
        // A membership update keeps what the checks saw.
        ring.set_announced(vec![peer("b")]);
        assert!(ring.ask_for(&key).is_empty());
        b.record_check(true);
        assert!(!ring.ask_for(&key).is_empty());
    }
}
