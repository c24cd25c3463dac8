//! The in-memory store: LRU bounded in bytes, sharded so cores do not
//! contend on one lock.
//!
//! Each shard is a `parking_lot::Mutex` around an `lru::LruCache` and a
//! byte counter; an insert evicts least-recently-used entries until the
//! shard is back under its share of the budget. Entries are `Arc`s whose
//! bodies are `Bytes`, so a hit clones two reference counts and copies no
//! body. Responses with `Vary` are stored per variant: the primary key maps
//! to the varying header names and to the variant keys, so purges and
//! invalidations find every variant without scanning.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hyper::header::{HeaderMap, HeaderName};
use lru::LruCache;
use parking_lot::Mutex;

use super::entry::StoredResponse;

/// Variants of one primary key.
#[derive(Debug, Default)]
struct Group {
    vary: Vec<HeaderName>,
    keys: Vec<String>,
}

#[derive(Debug)]
struct Shard {
    entries: LruCache<String, Arc<StoredResponse>>,
    groups: HashMap<String, Group>,
    used: usize,
}

/// The byte-bounded store.
#[derive(Debug)]
pub struct Store {
    shards: Box<[Mutex<Shard>]>,
    shard_capacity: usize,
    hasher: std::collections::hash_map::RandomState,
    evictions: AtomicU64,
}

/// Separates the primary key from the varying header values.
const VARIANT_SEPARATOR: char = '\u{0}';

impl Store {
    /// A store of `capacity` bytes, sharded so cores do not contend (four
    /// shards per CPU, at least 16) but never so finely that an object of
    /// `max_object_size` would not fit its shard: each shard holds at least
    /// two of them.
    pub fn new(capacity: usize, max_object_size: usize) -> Self {
        let per_cpu = std::thread::available_parallelism()
            .map_or(4, |n| n.get())
            .max(4)
            * 4;
        let fitting = capacity / max_object_size.saturating_mul(2).max(1);
        Self::with_shards(capacity, per_cpu.min(fitting).max(1))
    }

    /// A store with an explicit shard count (1 gives one global LRU order).
    pub fn with_shards(capacity: usize, shards: usize) -> Self {
        let shards = shards.max(1);
        Self {
            shards: (0..shards)
                .map(|_| {
                    Mutex::new(Shard {
                        entries: LruCache::unbounded(),
                        groups: HashMap::new(),
                        used: 0,
                    })
                })
                .collect(),
            shard_capacity: capacity / shards,
            hasher: std::collections::hash_map::RandomState::new(),
            evictions: AtomicU64::new(0),
        }
    }

    fn shard(&self, primary: &str) -> &Mutex<Shard> {
        let index = (self.hasher.hash_one(primary) as usize) % self.shards.len();
        &self.shards[index]
    }

    /// The stored response for `primary` matching `request`'s varying headers.
    pub fn get(&self, primary: &str, request: &HeaderMap) -> Option<Arc<StoredResponse>> {
        let mut shard = self.shard(primary).lock();
        let key = match shard.groups.get(primary) {
            Some(group) => variant_key(primary, &group.vary, request),
            None => primary.to_string(),
        };
        shard.entries.get(&key).cloned()
    }

    /// Stores `response`; returns `false` when it alone exceeds the shard budget.
    pub fn insert(&self, primary: &str, response: StoredResponse) -> bool {
        let vary: Vec<HeaderName> = response.vary.iter().map(|(name, _)| name.clone()).collect();
        let key = if vary.is_empty() {
            primary.to_string()
        } else {
            let mut key = primary.to_string();
            for (_, value) in &response.vary {
                key.push(VARIANT_SEPARATOR);
                if let Some(value) = value {
                    key.push_str(&String::from_utf8_lossy(value.as_bytes()));
                }
            }
            key
        };
        let size = response.size() + key.len();
        if size > self.shard_capacity {
            return false;
        }
        let mut shard = self.shard(primary).lock();
        let shard = &mut *shard;
        // A new Vary spec replaces the old variants.
        let group = shard.groups.entry(primary.to_string()).or_default();
        if group.vary != vary {
            for old in std::mem::take(&mut group.keys) {
                if let Some(entry) = shard.entries.pop(&old) {
                    shard.used -= entry.size() + old.len();
                }
            }
            group.vary = vary;
        }
        if !group.keys.contains(&key) {
            group.keys.push(key.clone());
        }
        if let Some(previous) = shard.entries.put(key.clone(), Arc::new(response)) {
            shard.used -= previous.size() + key.len();
        }
        shard.used += size;
        while shard.used > self.shard_capacity {
            let Some((evicted_key, entry)) = shard.entries.pop_lru() else {
                break;
            };
            shard.used -= entry.size() + evicted_key.len();
            forget(&mut shard.groups, &evicted_key);
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
        true
    }

    /// Removes every variant of `primary`; returns how many entries went.
    pub fn remove(&self, primary: &str) -> usize {
        let mut shard = self.shard(primary).lock();
        let shard = &mut *shard;
        let keys = shard
            .groups
            .remove(primary)
            .map(|group| group.keys)
            .unwrap_or_default();
        let mut removed = 0;
        for key in keys {
            if let Some(entry) = shard.entries.pop(&key) {
                shard.used -= entry.size() + key.len();
                removed += 1;
            }
        }
        removed
    }

    /// Removes every entry whose primary key starts with `prefix`.
    pub fn remove_prefix(&self, prefix: &str) -> usize {
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            let shard = &mut *shard;
            let primaries: Vec<String> = shard
                .groups
                .keys()
                .filter(|key| key.starts_with(prefix))
                .cloned()
                .collect();
            for primary in primaries {
                for key in shard
                    .groups
                    .remove(&primary)
                    .map(|group| group.keys)
                    .unwrap_or_default()
                {
                    if let Some(entry) = shard.entries.pop(&key) {
                        shard.used -= entry.size() + key.len();
                        removed += 1;
                    }
                }
            }
        }
        removed
    }

    /// Removes everything.
    pub fn clear(&self) -> usize {
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            removed += shard.entries.len();
            shard.entries.clear();
            shard.groups.clear();
            shard.used = 0;
        }
        removed
    }

    /// Bytes charged to stored entries.
    pub fn used_bytes(&self) -> usize {
        self.shards.iter().map(|shard| shard.lock().used).sum()
    }

    /// Stored entries (variants count separately).
    pub fn objects(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().entries.len())
            .sum()
    }

    /// The byte budget.
    pub fn capacity(&self) -> usize {
        self.shard_capacity * self.shards.len()
    }

    /// Entries evicted for space so far.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }
}

fn forget(groups: &mut HashMap<String, Group>, key: &str) {
    let primary = key.split(VARIANT_SEPARATOR).next().unwrap_or(key);
    if let Some(group) = groups.get_mut(primary) {
        group.keys.retain(|existing| existing != key);
        if group.keys.is_empty() {
            groups.remove(primary);
        }
    }
}

fn variant_key(primary: &str, vary: &[HeaderName], request: &HeaderMap) -> String {
    let mut key = primary.to_string();
    for name in vary {
        key.push(VARIANT_SEPARATOR);
        if let Some(value) = super::vary::request_value(request, name) {
            key.push_str(&value);
        }
    }
    key
}

#[cfg(test)]
mod tests;
