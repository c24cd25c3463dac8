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
//!
//! The cache is bounded in bytes (the process budget `server.answer_cache_size`
//! shared out among the loops), and a question's blocks together may take
//! at most a sixteenth of it, so one wildcard name asked from many subnets
//! cannot take the rest. Eviction is S3-FIFO (`quick_cache`): a question
//! enters a small probation queue and reaches the main one only if it is
//! asked again, so a flood of random names churns the probation queue and
//! leaves the answers real clients keep asking for in place.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use quick_cache::Weighter;
use quick_cache::unsync::Cache;

/// Bytes counted per question besides its name: the table slot, the two
/// prefix maps and the queue links.
const QUESTION_OVERHEAD: u64 = 256;
/// Bytes counted per block besides its template and counters: the prefix
/// map node and the entry itself.
const BLOCK_OVERHEAD: u64 = 128;
/// The share of the budget one question may take.
const QUESTION_SHARE: u64 = 16;
/// Bytes per cached question assumed when sizing the table up front.
const TYPICAL_QUESTION: u64 = 768;

/// One cached response.
#[derive(Debug, Clone)]
pub struct Cached {
    /// The response without OPT; ID zero, RD and CD clear.
    pub template: Box<[u8]>,
    /// ECS scope to send (the block's prefix, or 0 for static answers).
    pub scope: u8,
    /// Counters the full path bumped for this answer, bumped again per hit.
    pub counters: Box<[Counter]>,
    /// What the rate limiter charges it to.
    pub class: super::rate_limit::ResponseClass,
}

impl Cached {
    /// The bytes this entry is counted for.
    fn weight(&self) -> u64 {
        BLOCK_OVERHEAD
            + self.template.len() as u64
            + (self.counters.len() * std::mem::size_of::<Counter>()) as u64
    }
}

/// The answers to one question, by client block.
#[derive(Debug, Default)]
struct Blocks {
    v4: PrefixMap<Ipv4Net, Cached>,
    v6: PrefixMap<Ipv6Net, Cached>,
    /// Sum of the weights of the entries.
    bytes: u64,
}

impl Blocks {
    fn insert(&mut self, block: IpNet, cached: Cached) {
        self.bytes += cached.weight();
        let replaced = match block.trunc() {
            IpNet::V4(net) => self.v4.insert(net, cached),
            IpNet::V6(net) => self.v6.insert(net, cached),
        };
        if let Some(replaced) = replaced {
            self.bytes -= replaced.weight();
        }
    }

    fn get(&self, client: IpAddr) -> Option<&Cached> {
        match client {
            IpAddr::V4(ip) => self.v4.get_lpm(&Ipv4Net::from(ip)).map(|(_, hit)| hit),
            IpAddr::V6(ip) => self.v6.get_lpm(&Ipv6Net::from(ip)).map(|(_, hit)| hit),
        }
    }
}

/// Weighs a question by its name and its blocks.
#[derive(Debug, Clone, Copy)]
struct QuestionWeight;

impl Weighter<Box<[u8]>, Blocks> for QuestionWeight {
    fn weight(&self, key: &Box<[u8]>, blocks: &Blocks) -> u64 {
        QUESTION_OVERHEAD + key.len() as u64 + blocks.bytes
    }
}

/// What every loop's cache reports, summed over the process.
#[derive(Debug, Clone, Default)]
pub struct CacheMetrics {
    /// Bytes held by all answer caches.
    pub bytes: Gauge,
    /// Plain UDP queries answered from a cache.
    pub hits: Counter,
    /// Plain UDP queries that took the full path.
    pub misses: Counter,
}

/// The answer cache of one receive loop.
pub struct AnswerCache {
    generation: (u64, u64),
    questions: Cache<Box<[u8]>, Blocks, QuestionWeight>,
    /// Bytes one question may take.
    question_limit: u64,
    metrics: CacheMetrics,
    /// The weight last added to `metrics.bytes`.
    reported: u64,
}

impl std::fmt::Debug for AnswerCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerCache")
            .field("generation", &self.generation)
            .field("questions", &self.questions.len())
            .field("bytes", &self.questions.weight())
            .finish()
    }
}

impl AnswerCache {
    /// An empty cache of at most `budget` bytes, reporting to `metrics`.
    pub fn new(budget: u64, metrics: CacheMetrics) -> Self {
        let budget = budget.max(QUESTION_SHARE * (QUESTION_OVERHEAD + 512));
        let questions = Cache::with_weighter(
            (budget / TYPICAL_QUESTION).max(16) as usize,
            budget,
            QuestionWeight,
        );
        Self {
            generation: (0, 0),
            questions,
            question_limit: budget / QUESTION_SHARE,
            metrics,
            reported: 0,
        }
    }

    /// Drops everything if `generation` (snapshot generation, health epoch) changed.
    pub fn validate(&mut self, generation: (u64, u64)) {
        if self.generation != generation {
            self.questions.clear();
            self.generation = generation;
            self.report();
        }
    }

    /// The cached answer to `key` for a client at `client`, counted as a
    /// hit or a miss.
    pub fn get(&self, key: &[u8], client: IpAddr) -> Option<&Cached> {
        let found = self
            .questions
            .get(key)
            .and_then(|blocks| blocks.get(client));
        match found {
            Some(_) => self.metrics.hits.inc(),
            None => self.metrics.misses.inc(),
        };
        found
    }

    /// Files `cached` under `key` for every client in `block`.
    pub fn insert(&mut self, key: &[u8], block: IpNet, cached: Cached) {
        let question_limit = self.question_limit;
        if let Some(mut blocks) = self.questions.get_mut(key) {
            if blocks.bytes + cached.weight() > question_limit {
                // Start the question afresh rather than grow past its share.
                *blocks = Blocks::default();
            }
            blocks.insert(block, cached);
        } else {
            let mut blocks = Blocks::default();
            blocks.insert(block, cached);
            self.questions.insert(key.into(), blocks);
        }
        self.report();
    }

    /// Number of questions held.
    pub fn len(&self) -> usize {
        self.questions.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.questions.is_empty()
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.questions.weight()
    }

    /// Moves the process gauge by what this cache gained or lost.
    fn report(&mut self) {
        let now = self.questions.weight();
        self.metrics.bytes.inc_by(now as i64 - self.reported as i64);
        self.reported = now;
    }
}

impl Drop for AnswerCache {
    fn drop(&mut self) {
        self.metrics.bytes.dec_by(self.reported as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached(byte: u8, scope: u8) -> Cached {
        Cached {
            template: vec![byte; 100].into(),
            scope,
            counters: Box::new([]),
            class: crate::answer::rate_limit::ResponseClass::MALFORMED,
        }
    }

    fn cache(budget: u64) -> AnswerCache {
        AnswerCache::new(budget, CacheMetrics::default())
    }

    #[test]
    fn longest_block_wins_and_families_are_separate() {
        let mut cache = cache(1 << 20);
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
        let metrics = CacheMetrics::default();
        let mut cache = AnswerCache::new(1 << 20, metrics.clone());
        cache.validate((1, 0));
        cache.insert(b"k", "0.0.0.0/0".parse().unwrap(), cached(1, 0));
        cache.validate((1, 0));
        assert_eq!(cache.len(), 1);
        assert!(metrics.bytes.get() > 0);
        cache.validate((1, 1));
        assert!(cache.is_empty());
        assert_eq!(metrics.bytes.get(), 0);
    }

    #[test]
    fn random_names_stay_within_the_budget_and_leave_asked_answers_in_place() {
        let budget = 256 * 1024;
        let metrics = CacheMetrics::default();
        let mut cache = AnswerCache::new(budget, metrics.clone());
        let everyone: IpNet = "0.0.0.0/0".parse().unwrap();
        let client: IpAddr = "192.0.2.1".parse().unwrap();
        let popular: Vec<Vec<u8>> = (0..50).map(|n| format!("www{n}").into_bytes()).collect();
        for name in &popular {
            cache.insert(name, everyone, cached(1, 0));
        }
        for round in 0..20_000u32 {
            for name in popular.iter().skip(round as usize % 10).step_by(10) {
                if cache.get(name, client).is_none() {
                    cache.insert(name, everyone, cached(1, 0));
                }
            }
            let random = format!("{round:08x}.random");
            if cache.get(random.as_bytes(), client).is_none() {
                cache.insert(random.as_bytes(), everyone, cached(2, 0));
            }
            assert!(cache.bytes() <= budget, "{} > {budget}", cache.bytes());
        }
        let kept = popular
            .iter()
            .filter(|name| cache.get(name, client).is_some())
            .count();
        assert_eq!(kept, popular.len());
        assert_eq!(metrics.bytes.get() as u64, cache.bytes());
    }

    #[test]
    fn one_question_takes_at_most_its_share() {
        let budget = 1 << 20;
        let mut cache = cache(budget);
        for n in 0..65_536u32 {
            let block = IpNet::new(IpAddr::from((n << 8).to_be_bytes()), 24).unwrap();
            cache.insert(b"*.wildcard", block, cached(1, 24));
        }
        assert!(cache.bytes() <= budget / QUESTION_SHARE + 1024);
    }
}
