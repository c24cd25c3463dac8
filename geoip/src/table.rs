//! A [`Locator`] flattened into run tables.
//!
//! A server that answers from a database only needs, per address, the
//! place and who said so. Walking every network of the sources once and
//! keeping runs of equal places (see [`crate::runs`]) gives the same
//! answers as [`Locator::locate`] from a fraction of the memory: GeoLite2
//! City is 62 MB on disk, and its 190,000 places in 2.6 million runs take
//! 29 MB. The databases can then be dropped, and a file
//! changed or truncated under the server is never read again until the
//! next reload.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::database::GeoDb;
use crate::error::GeoIpError;
use crate::location::{Continent, CountryCode, Location};
use crate::locator::{Located, Locator, Source};
use crate::runs::{Address, Runs};

/// Index of a place in a [`FamilyTable`].
pub type PlaceId = u32;

/// Where a run of addresses is, and which source said so.
#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    /// The location; `None` when no source knows the addresses.
    pub location: Option<Location>,
    /// What decided.
    pub source: Source,
}

/// The place of addresses no source knows.
pub const UNKNOWN: PlaceId = 0;
/// The place of addresses in a barrier range: unknown too, but never merged
/// with the runs around it, so that no scope crosses into it.
pub const BARRIER: PlaceId = 1;

/// One address family: runs of places.
///
/// A place is kept as its location and the index of its source in a short
/// list (the databases, the named override places), since a table holds
/// many places and few sources.
#[derive(Debug, Clone)]
pub struct FamilyTable<A> {
    /// The runs, valued by place.
    pub runs: Runs<A, PlaceId>,
    /// Per place, its location; `UNKNOWN` and `BARRIER` first.
    locations: Vec<Option<Location>>,
    /// Per place, its source in `sources`.
    place_sources: Vec<u16>,
    sources: Vec<Source>,
}

impl<A: Address> FamilyTable<A> {
    fn new() -> Self {
        Self {
            runs: Runs::uniform(UNKNOWN),
            locations: vec![None, None],
            place_sources: vec![0, 0],
            sources: vec![Source::Unknown],
        }
    }

    /// Number of places.
    pub fn places(&self) -> usize {
        self.locations.len()
    }

    /// Per place, its location.
    pub fn locations(&self) -> &[Option<Location>] {
        &self.locations
    }

    /// Place `id`.
    pub fn place(&self, id: PlaceId) -> Place {
        let index = id as usize;
        Place {
            location: self.locations.get(index).copied().flatten(),
            source: self
                .place_sources
                .get(index)
                .and_then(|source| self.sources.get(usize::from(*source)))
                .cloned()
                .unwrap_or(Source::Unknown),
        }
    }

    fn heap_bytes(&self) -> usize {
        self.runs.heap_bytes()
            + self.locations.capacity() * std::mem::size_of::<Option<Location>>()
            + self.place_sources.capacity() * std::mem::size_of::<u16>()
    }
}

/// Every address of both families with its place.
#[derive(Debug, Clone)]
pub struct LocationTable {
    /// IPv4.
    pub v4: FamilyTable<u32>,
    /// IPv6, without the IPv4 data that databases keep under `::/96`.
    pub v6: FamilyTable<u128>,
}

impl LocationTable {
    /// Flattens `locator`. The IPv6 ranges in `barriers` (those in which
    /// databases alias IPv4 data) become [`BARRIER`] runs. Both families are
    /// walked at once, on two threads.
    ///
    /// Errors mean a database's tree or one of its records is corrupt.
    pub fn build(locator: &Locator, barriers: &[Ipv6Net]) -> Result<Self, GeoIpError> {
        std::thread::scope(|scope| {
            let v6 = scope.spawn(|| build_v6(locator, barriers));
            let v4 = build_v4(locator);
            let v6 = v6
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            Ok(Self { v4: v4?, v6: v6? })
        })
    }

    /// An empty table: every address unknown.
    pub fn empty() -> Self {
        Self {
            v4: FamilyTable::new(),
            v6: FamilyTable::new(),
        }
    }

    /// Locates `ip` as [`Locator::locate`] would, with `network` the widest
    /// block around it that has the same place. IPv4-mapped addresses are
    /// looked up as IPv4.
    pub fn locate(&self, ip: IpAddr) -> Located {
        let ip = ip.to_canonical();
        let (place, network) = match ip {
            IpAddr::V4(v4) => {
                let address = u32::from(v4);
                let run = self.v4.runs.find(address);
                let len = run.widest_prefix(address);
                (
                    self.v4.place(run.value),
                    IpNet::V4(Ipv4Net::new(v4, len).map_or(Ipv4Net::from(v4), |net| net.trunc())),
                )
            }
            IpAddr::V6(v6) => {
                let address = u128::from(v6);
                let run = self.v6.runs.find(address);
                let len = run.widest_prefix(address);
                (
                    self.v6.place(run.value),
                    IpNet::V6(Ipv6Net::new(v6, len).map_or(Ipv6Net::from(v6), |net| net.trunc())),
                )
            }
        };
        Located {
            ip,
            network,
            location: place.location,
            source: place.source,
        }
    }

    /// Whether any source places `ip`: [`LocationTable::locate`] without
    /// building the answer.
    pub fn is_located(&self, ip: IpAddr) -> bool {
        match ip.to_canonical() {
            IpAddr::V4(v4) => {
                let run = self.v4.runs.find(u32::from(v4));
                self.v4.locations[run.value as usize].is_some()
            }
            IpAddr::V6(v6) => {
                let run = self.v6.runs.find(u128::from(v6));
                self.v6.locations[run.value as usize].is_some()
            }
        }
    }

    /// Bytes held on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.v4.heap_bytes() + self.v6.heap_bytes()
    }
}

/// Hands out one id per distinct place of a family being built.
struct Interner<A> {
    table: FamilyTable<A>,
    ids: HashMap<PlaceKey, PlaceId, foldhash::fast::FixedState>,
    source_ids: HashMap<Source, u16>,
}

/// A place as a hashable key: coordinates by their bits, and the source.
type PlaceKey = (u64, u64, Option<CountryCode>, Option<Continent>, u16);

impl<A: Address> Interner<A> {
    fn new() -> Self {
        Self {
            table: FamilyTable::new(),
            ids: HashMap::default(),
            source_ids: HashMap::from([(Source::Unknown, 0)]),
        }
    }

    /// The index of `source`; sources past `u16::MAX` share the last.
    fn source(&mut self, source: Source) -> u16 {
        if let Some(id) = self.source_ids.get(&source) {
            return *id;
        }
        let id = u16::try_from(self.table.sources.len()).unwrap_or(u16::MAX);
        if id < u16::MAX {
            self.table.sources.push(source.clone());
        }
        self.source_ids.insert(source, id);
        id
    }

    fn id(&mut self, location: Location, source: u16) -> PlaceId {
        let key = (
            location.coordinates.latitude().to_bits(),
            location.coordinates.longitude().to_bits(),
            location.country,
            location.continent,
            source,
        );
        if let Some(id) = self.ids.get(&key) {
            return *id;
        }
        let id = self.table.locations.len() as PlaceId;
        self.table.locations.push(Some(location));
        self.table.place_sources.push(source);
        self.ids.insert(key, id);
        id
    }
}

/// How one family is walked.
struct Family<A> {
    /// An address of the family, to pick the databases that hold it.
    probe: IpAddr,
    /// The whole family, to find its overrides.
    everything: IpNet,
    /// The blocks walked in each database, in address order, in parts
    /// walked on threads of their own; each part covers from its first
    /// block's start to the next part's.
    parts: Vec<Vec<IpNet>>,
    /// A network as its first and last address, `None` for the other family.
    span: fn(IpNet) -> Option<(A, A)>,
    /// Ranges painted as [`BARRIER`] over everything else.
    barriers: Vec<(A, A)>,
}

fn span_v4(network: IpNet) -> Option<(u32, u32)> {
    match network {
        IpNet::V4(net) => {
            let start = u32::from(net.network());
            Some((start, start.network_end(net.prefix_len())))
        }
        IpNet::V6(_) => None,
    }
}

fn span_v6(network: IpNet) -> Option<(u128, u128)> {
    match network {
        IpNet::V6(net) => {
            let start = u128::from(net.network());
            Some((start, start.network_end(net.prefix_len())))
        }
        IpNet::V4(_) => None,
    }
}

fn build_v4(locator: &Locator) -> Result<FamilyTable<u32>, GeoIpError> {
    build_family(
        locator,
        Family {
            probe: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            everything: IpNet::V4(Ipv4Net::default()),
            // Two halves: IPv4 is most of the work, and two cores share it
            // with IPv6.
            parts: ["0.0.0.0/1", "128.0.0.0/1"]
                .iter()
                .map(|half| vec![half.parse().unwrap_or(IpNet::V4(Ipv4Net::default()))])
                .collect(),
            span: span_v4,
            barriers: Vec::new(),
        },
    )
}

fn build_v6(locator: &Locator, barriers: &[Ipv6Net]) -> Result<FamilyTable<u128>, GeoIpError> {
    let mut barriers: Vec<_> = barriers
        .iter()
        .filter_map(|net| span_v6(IpNet::V6(net.trunc())))
        .collect();
    barriers.sort();
    build_family(
        locator,
        Family {
            probe: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            everything: IpNet::V6(Ipv6Net::default()),
            parts: vec![outside_ipv4_compatible().map(IpNet::V6).collect()],
            span: span_v6,
            barriers,
        },
    )
}

/// Paints, from the bottom: unknown, the databases from last to first
/// (each only where it has a location, as a lookup falls through to the
/// next database where one has none), the overrides from the widest to the
/// most specific, and the barriers.
fn build_family<A: Address>(
    locator: &Locator,
    family: Family<A>,
) -> Result<FamilyTable<A>, GeoIpError> {
    let span = family.span;
    let painted: Vec<Result<Painted<A>, GeoIpError>> = std::thread::scope(|scope| {
        let mut parts = family.parts.iter();
        let first = parts.next();
        let others: Vec<_> = parts
            .map(|blocks| scope.spawn(move || paint_databases(locator, family.probe, blocks, span)))
            .collect();
        let mut painted = vec![paint_databases(
            locator,
            family.probe,
            first.map_or(&[][..], Vec::as_slice),
            span,
        )];
        painted.extend(others.into_iter().map(|handle| {
            handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        }));
        painted
    });
    let starts: Vec<A> = family
        .parts
        .iter()
        .map(|blocks| {
            blocks
                .first()
                .and_then(|block| span(*block))
                .map_or(A::ZERO, |(first, _)| first)
        })
        .collect();
    let (mut interner, mut runs) =
        join_parts(painted.into_iter().collect::<Result<_, _>>()?, &starts);
    let mut overrides: Vec<_> = locator
        .overrides()
        .networks_within(family.everything)
        .into_iter()
        .filter_map(|(network, value)| Some(((family.span)(network)?, network.prefix_len(), value)))
        .collect();
    overrides.sort_by_key(|(span, len, _)| (*len, span.0));
    for group in overrides.chunk_by(|a, b| a.1 == b.1) {
        let intervals: Vec<_> = group
            .iter()
            .map(|((first, last), _, value)| {
                let source = interner.source(Source::Override {
                    place: value.place.clone(),
                });
                (*first, *last, interner.id(value.location, source))
            })
            .collect();
        runs = runs.overlay(intervals);
    }
    runs = runs.overlay(
        family
            .barriers
            .iter()
            .map(|(first, last)| (*first, *last, BARRIER)),
    );
    let mut table = interner.table;
    table.runs = runs;
    table.locations.shrink_to_fit();
    table.place_sources.shrink_to_fit();
    Ok(table)
}

/// A part of a family painted on its own: its places and its runs.
type Painted<A> = (Interner<A>, Runs<A, PlaceId>);

/// Paints the databases of `probe`'s family over unknown inside `blocks`,
/// from the last database to the first.
fn paint_databases<A: Address>(
    locator: &Locator,
    probe: IpAddr,
    blocks: &[IpNet],
    span: fn(IpNet) -> Option<(A, A)>,
) -> Result<Painted<A>, GeoIpError> {
    let mut interner = Interner::new();
    let mut runs = Runs::uniform(UNKNOWN);
    let databases: Vec<_> = locator.databases_for(probe).collect();
    for (index, database) in databases.into_iter().rev() {
        let source = interner.source(Source::Database { index });
        let mut failure = None;
        let intervals =
            located_networks(database, blocks, &mut failure).filter_map(|(network, location)| {
                let (first, last) = span(network)?;
                Some((first, last, interner.id(location, source)))
            });
        runs = runs.overlay(intervals);
        if let Some(error) = failure {
            return Err(error);
        }
    }
    Ok((interner, runs))
}

/// One table from parts painted apart: part `i` gives the addresses from
/// `starts[i]` to the next start; its places join the first part's.
fn join_parts<A: Address>(parts: Vec<Painted<A>>, starts: &[A]) -> Painted<A> {
    let mut parts = parts.into_iter();
    let Some((mut interner, first)) = parts.next() else {
        return (Interner::new(), Runs::uniform(UNKNOWN));
    };
    if starts.len() < 2 {
        return (interner, first);
    }
    let mut builder = crate::runs::RunsBuilder::with_capacity(first.len() * 2);
    let end_of = |index: usize| starts.get(index + 1).and_then(|next| next.previous());
    for run in first
        .iter()
        .take_while(|run| end_of(0).is_none_or(|end| run.start <= end))
    {
        builder.push(run.start, run.value);
    }
    for (index, (part, runs)) in parts.enumerate() {
        let index = index + 1;
        let sources: Vec<u16> = part
            .table
            .sources
            .iter()
            .map(|source| interner.source(source.clone()))
            .collect();
        let ids: Vec<PlaceId> = (0..part.table.locations.len())
            .map(|id| match (id as PlaceId, part.table.locations[id]) {
                (UNKNOWN | BARRIER, _) | (_, None) => id as PlaceId,
                (_, Some(location)) => {
                    let source = sources[usize::from(part.table.place_sources[id])];
                    interner.id(location, source)
                }
            })
            .collect();
        let (start, end) = (starts[index], end_of(index));
        for run in runs.iter() {
            if run.end < start || end.is_some_and(|end| run.start > end) {
                continue;
            }
            builder.push(run.start.max(start), ids[run.value as usize]);
        }
    }
    (interner, builder.finish())
}

/// The networks of `database` inside `blocks` that have a location, in
/// address order. The first error ends the walk and is left in `failure`.
fn located_networks<'a>(
    database: &'a GeoDb,
    blocks: &'a [IpNet],
    failure: &'a mut Option<GeoIpError>,
) -> LocatedNetworks<'a> {
    LocatedNetworks {
        database,
        blocks: blocks.iter(),
        current: None,
        failure,
    }
}

type Networks<'a> = Box<dyn Iterator<Item = Result<crate::database::DbMatch, GeoIpError>> + 'a>;

struct LocatedNetworks<'a> {
    database: &'a GeoDb,
    blocks: std::slice::Iter<'a, IpNet>,
    current: Option<Networks<'a>>,
    failure: &'a mut Option<GeoIpError>,
}

impl Iterator for LocatedNetworks<'_> {
    type Item = (IpNet, Location);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(networks) = &mut self.current {
                match networks.next() {
                    Some(Ok(found)) => match found.location {
                        Some(location) => return Some((found.network, location)),
                        None => continue,
                    },
                    Some(Err(error)) => {
                        *self.failure = Some(error);
                        self.current = None;
                        self.blocks = [].iter();
                        return None;
                    }
                    None => self.current = None,
                }
            }
            let block = self.blocks.next()?;
            match self.database.networks_within(*block) {
                Ok(networks) => self.current = Some(Box::new(networks)),
                Err(error) => {
                    *self.failure = Some(error);
                    self.blocks = [].iter();
                    return None;
                }
            }
        }
    }
}

/// `::/0` without `::/96`, in address order: the 96 networks beside the
/// path from `::/0` down to `::/96`, deepest (lowest addresses) first.
/// Databases keep IPv4 under `::/96`; it is walked as IPv4.
fn outside_ipv4_compatible() -> impl Iterator<Item = Ipv6Net> {
    (0..96u8).rev().map(|depth| {
        let bit = 1u128 << (127 - u32::from(depth));
        Ipv6Net::new_assert(Ipv6Addr::from(bit), depth + 1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_ipv4_compatible_tiles_the_rest() {
        let blocks: Vec<_> = outside_ipv4_compatible().collect();
        assert_eq!(blocks.len(), 96);
        let mut next = 1u128 << 32;
        for block in blocks {
            assert_eq!(u128::from(block.network()), next, "{block}");
            next = u128::from(block.broadcast()).wrapping_add(1);
        }
        assert_eq!(next, 0, "the last block ends at the last address");
    }
}
