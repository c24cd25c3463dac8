//! Encoded answers kept per UDP receive loop.
//!
//! An answer depends on the question, the snapshot, the health epoch and,
//! for geo names, on which block of addresses the client is in; the ECS
//! scope computed with the answer is exactly such a block (the widest in
//! which every address gets the same answer). So each entry is the encoded
//! response, minus what differs per query (ID, RD/CD, question letter case,
//! OPT), filed under the question and the block, and found again by
//! longest-prefix match on the client address. Static answers are filed
//! under `0.0.0.0/0` and `::/0`.
//!
//! Each receive loop owns its cache: no locks on the hit path. The whole
//! cache is dropped when the snapshot or the health epoch changes.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;
use prometheus_client::metrics::counter::Counter;

/// Questions remembered at most; a flood of random names cannot grow memory further.
const MAX_QUESTIONS: usize = 100_000;
/// Blocks remembered per question at most.
const MAX_BLOCKS_PER_QUESTION: usize = 65_536;

/// One cached response.
#[derive(Debug, Clone)]
pub struct Cached {
    /// The response without OPT; ID zero, RD and CD clear.
    pub template: Box<[u8]>,
    /// ECS scope to send (the block's prefix, or 0 for static answers).
    pub scope: u8,
    /// Counters the full path bumped for this answer, bumped again per hit.
    pub counters: Box<[Counter]>,
}

#[derive(Debug, Default)]
struct Blocks {
    v4: PrefixMap<Ipv4Net, Cached>,
    v6: PrefixMap<Ipv6Net, Cached>,
}

impl Blocks {
    fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }
}

/// The answer cache of one receive loop.
#[derive(Debug, Default)]
pub struct AnswerCache {
    generation: (u64, u64),
    questions: HashMap<Box<[u8]>, Blocks>,
}

impl AnswerCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops everything if `generation` (snapshot generation, health epoch) changed.
    pub fn validate(&mut self, generation: (u64, u64)) {
        if self.generation != generation {
            self.questions.clear();
            self.generation = generation;
        }
    }

    /// The cached answer to `key` for a client at `client`.
    pub fn get(&self, key: &[u8], client: IpAddr) -> Option<&Cached> {
        let blocks = self.questions.get(key)?;
        match client {
            IpAddr::V4(ip) => blocks
                .v4
                .get_lpm(&Ipv4Net::from(ip))
                .map(|(_, cached)| cached),
            IpAddr::V6(ip) => blocks
                .v6
                .get_lpm(&Ipv6Net::from(ip))
                .map(|(_, cached)| cached),
        }
    }

    /// Files `cached` under `key` for every client in `block`.
    pub fn insert(&mut self, key: &[u8], block: IpNet, cached: Cached) {
        if !self.questions.contains_key(key) && self.questions.len() >= MAX_QUESTIONS {
            self.questions.clear();
        }
        let blocks = self.questions.entry(key.into()).or_default();
        if blocks.len() >= MAX_BLOCKS_PER_QUESTION {
            *blocks = Blocks::default();
        }
        match block.trunc() {
            IpNet::V4(net) => blocks.v4.insert(net, cached),
            IpNet::V6(net) => blocks.v6.insert(net, cached),
        };
    }

    /// Number of questions held.
    pub fn len(&self) -> usize {
        self.questions.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.questions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached(byte: u8, scope: u8) -> Cached {
        Cached {
            template: vec![byte].into(),
            scope,
            counters: Box::new([]),
        }
    }

    #[test]
    fn longest_block_wins_and_families_are_separate() {
        let mut cache = AnswerCache::new();
        cache.insert(b"k", "0.0.0.0/0".parse().unwrap(), cached(1, 0));
        cache.insert(b"k", "10.0.0.0/15".parse().unwrap(), cached(2, 15));
        assert_eq!(
            cache
                .get(b"k", "10.1.2.3".parse().unwrap())
                .unwrap()
                .template[0],
            2
        );
        assert_eq!(
            cache
                .get(b"k", "11.0.0.1".parse().unwrap())
                .unwrap()
                .template[0],
            1
        );
        assert!(cache.get(b"k", "2001:db8::1".parse().unwrap()).is_none());
        assert!(cache.get(b"other", "10.1.2.3".parse().unwrap()).is_none());
    }

    #[test]
    fn new_generation_empties_the_cache() {
        let mut cache = AnswerCache::new();
        cache.validate((1, 0));
        cache.insert(b"k", "0.0.0.0/0".parse().unwrap(), cached(1, 0));
        cache.validate((1, 0));
        assert_eq!(cache.len(), 1);
        cache.validate((1, 1));
        assert!(cache.is_empty());
    }
}
