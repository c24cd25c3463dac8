//! The ECS scope prefix of geo answers (RFC 7871 section 7.2.1).
//!
//! The scope tells resolvers how widely they may cache an answer. It must
//! never be wider than the block in which every address gets the same answer
//! (else clients are misrouted), and should be as wide as that block (else
//! resolver caches fill with duplicates). The locator's network is a safe
//! start: one database record, minus any override inside it. From there we
//! widen one bit at a time, checking only the sibling half that the wider
//! block adds, and stop at the first network whose answer differs (as gdnsd
//! merges neighbouring networks). Results are remembered per service, family
//! and health epoch, so each block is walked once.

use std::collections::HashMap;
use std::net::IpAddr;

use geoip::{Located, Locator};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use parking_lot::Mutex;
use prefix_trie::PrefixMap;

use super::alias;
use super::selection::{Family, select};
use super::service::Service;
use crate::zone::ServiceId;

/// Networks examined per widening before we settle for what is proven.
const WALK_BUDGET: usize = 4096;

/// Blocks proven uniform, with the edges every address in them gets.
#[derive(Default)]
struct Proven {
    v4: PrefixMap<Ipv4Net, Vec<usize>>,
    v6: PrefixMap<Ipv6Net, Vec<usize>>,
}

impl Proven {
    fn find(&self, ip: IpAddr) -> Option<(IpNet, &Vec<usize>)> {
        match ip {
            IpAddr::V4(ip) => self
                .v4
                .get_lpm(&Ipv4Net::from(ip))
                .map(|(net, edges)| (IpNet::V4(net), edges)),
            IpAddr::V6(ip) => self
                .v6
                .get_lpm(&Ipv6Net::from(ip))
                .map(|(net, edges)| (IpNet::V6(net), edges)),
        }
    }

    fn insert(&mut self, block: IpNet, edges: Vec<usize>) {
        match block {
            IpNet::V4(net) => self.v4.insert(net, edges),
            IpNet::V6(net) => self.v6.insert(net, edges),
        };
    }
}

/// Proven blocks of one health epoch.
#[derive(Default)]
struct Memo {
    epoch: u64,
    proven: HashMap<(ServiceId, Family), Proven>,
}

/// Which answer a scope is wanted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScopeKey {
    /// The service.
    pub service_id: ServiceId,
    /// A or AAAA.
    pub family: Family,
    /// The health epoch the answer was computed in.
    pub epoch: u64,
}

/// Finds and remembers merged scope blocks. One per snapshot.
#[derive(Default)]
pub struct ScopeFinder {
    memo: Mutex<Memo>,
}

impl std::fmt::Debug for ScopeFinder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopeFinder").finish_non_exhaustive()
    }
}

impl ScopeFinder {
    /// The widest block around `located.ip` over which `service` gives the
    /// same `edges` for the family of `key`.
    pub fn merged_block(
        &self,
        locator: &Locator,
        service: &Service,
        key: ScopeKey,
        located: &Located,
        edges: &[usize],
    ) -> IpNet {
        let ip = located.ip;
        let slot = (key.service_id, key.family);
        {
            let mut memo = self.memo.lock();
            if memo.epoch != key.epoch {
                *memo = Memo {
                    epoch: key.epoch,
                    proven: HashMap::new(),
                };
            }
            if let Some((block, proven_edges)) = memo.proven.get(&slot).and_then(|p| p.find(ip))
                && proven_edges == edges
                && block.prefix_len() <= located.network.prefix_len()
            {
                return block;
            }
        }
        let block = widen(locator, service, key.family, located, edges);
        let mut memo = self.memo.lock();
        if memo.epoch == key.epoch {
            memo.proven
                .entry(slot)
                .or_default()
                .insert(block, edges.to_vec());
        }
        block
    }
}

/// Widens `located.network` while every network in the added half gets `edges`.
fn widen(
    locator: &Locator,
    service: &Service,
    family: Family,
    located: &Located,
    edges: &[usize],
) -> IpNet {
    let mut block = located.network;
    // With several databases for this family, a gap in one may be filled by
    // another; proving uniformity would need all of them. Stay safe.
    let mut databases = locator.databases_for(located.ip);
    let (Some((_, database)), None) = (databases.next(), databases.next()) else {
        return block;
    };
    let mut budget = WALK_BUDGET;
    let mut verdicts: HashMap<Option<PlaceKey>, bool> = HashMap::new();
    while block.prefix_len() > 0 {
        let Some(wider) = block.supernet() else { break };
        if alias::covers_alias(wider) {
            // The databases alias these to IPv4 data that their walk does
            // not show: the same bits mean other places there.
            break;
        }
        let sibling = sibling_of(block, wider);
        let mut same = |location: Option<&geoip::Location>| {
            // Neighbouring networks mostly share a few records: rank each place once.
            *verdicts
                .entry(location.map(place_key))
                .or_insert_with(|| select(service, location, family).edges == edges)
        };
        let mut uniform = true;
        // An override that holds the whole sibling decides all of it.
        let covering = locator
            .overrides()
            .lookup(sibling.addr())
            .filter(|(net, _)| net.prefix_len() <= sibling.prefix_len());
        let inner = locator.overrides().networks_within(sibling);
        for (_, value) in covering
            .iter()
            .map(|(n, v)| (n, *v))
            .chain(inner.iter().map(|(n, v)| (n, *v)))
        {
            budget = budget.saturating_sub(1);
            if !same(Some(&value.location)) {
                uniform = false;
                break;
            }
        }
        if uniform && covering.is_none() {
            match database.networks_within(sibling) {
                Ok(networks) => {
                    for network in networks {
                        budget = budget.saturating_sub(1);
                        match network {
                            Ok(found) if same(found.location.as_ref()) => {}
                            _ => {
                                uniform = false;
                                break;
                            }
                        }
                        if budget == 0 {
                            uniform = false;
                            break;
                        }
                    }
                }
                Err(_) => uniform = false,
            }
        }
        if !uniform || budget == 0 {
            break;
        }
        block = wider;
    }
    block
}

/// A location as a hashable key (coordinates by their bits).
type PlaceKey = (
    u64,
    u64,
    Option<geoip::CountryCode>,
    Option<geoip::Continent>,
);

fn place_key(location: &geoip::Location) -> PlaceKey {
    (
        location.coordinates.latitude().to_bits(),
        location.coordinates.longitude().to_bits(),
        location.country,
        location.continent,
    )
}

/// The other half of `wider` next to `block`.
fn sibling_of(block: IpNet, wider: IpNet) -> IpNet {
    let (first, second) = match wider.subnets(block.prefix_len()) {
        Ok(mut halves) => (halves.next(), halves.next()),
        Err(_) => (None, None),
    };
    match (first, second) {
        (Some(first), Some(second)) => {
            if first == block {
                second
            } else {
                first
            }
        }
        _ => block,
    }
}
