//! Which answer every client network gets, computed off the query path.
//!
//! Built on the place table of the snapshot ([`geoip::LocationTable`], runs
//! of addresses with one place), in two layers:
//!
//! - **Rankings**, per service and question family: places that rank the
//!   service's edges in the same order (and fall under the same rule) form
//!   one class. They change only with the snapshot: the sources, the edges,
//!   the rules.
//! - **Answers**, per health state: each class gives one selection under
//!   the current health, and neighbouring places with the same chosen
//!   edges merge into one run (see [`geoip::runs`]). So a health change
//!   costs one pass over the place runs, and a query two binary searches
//!   (the place, for why it got its answer, and the answer run, for the
//!   scope).
//!
//! The ECS scope of an answer is the widest network around the client that
//! stays inside its answer run, which makes scopes exact: as wide as the
//! block of addresses that get the same answer, and never wider (gdnsd
//! merges the same way). The IPv6 ranges that embed IPv4 addresses are
//! barrier runs (see [`super::alias`]), so no scope crosses one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, Guard};
use geoip::runs::Runs;
use geoip::{BARRIER, Location, LocationTable, PlaceId, UNKNOWN};
use parking_lot::Mutex;

use super::selection::{Family, Selection, effective_km, matching_rule, select};
use super::service::Service;

/// A ranking class: index into [`RankingMap::classes`].
type ClassId = u32;
/// A distinct set of chosen edges in an [`AnswerTable`].
type AnswerId = u32;

/// What a class stands for.
#[derive(Debug, Clone, Copy)]
enum Class {
    /// Clients with a location; any one of the class ranks the edges alike.
    Located(Location),
    /// Clients no source knows.
    Unlocated,
    /// Addresses inside an alias range: never looked up, never merged.
    Barrier,
}

/// How the edges of one service, for one question family, rank from
/// every place.
#[derive(Debug)]
struct RankingMap {
    classes: Vec<Class>,
    /// Per IPv4 place, its class.
    v4: Vec<ClassId>,
    /// Per IPv6 place, its class.
    v6: Vec<ClassId>,
}

/// The class key: the rule that applies and the order of the edges.
type ClassKey = (Option<usize>, Vec<u16>);

impl RankingMap {
    fn build(service: &Service, family: Family, table: &LocationTable) -> Self {
        let mut classes = vec![Class::Unlocated, Class::Barrier];
        let mut ids: HashMap<ClassKey, ClassId> = HashMap::new();
        let with_family: Vec<usize> = (0..service.edges.len())
            .filter(|&index| has_family(service, index, family))
            .collect();
        let mut class_of_places = |locations: &[Option<Location>]| -> Vec<ClassId> {
            locations
                .iter()
                .enumerate()
                .map(|(id, location)| match (id as PlaceId, location) {
                    (BARRIER, _) => BARRIER_CLASS,
                    (UNKNOWN, _) | (_, None) => UNLOCATED_CLASS,
                    (_, Some(location)) => {
                        let key = class_key(service, &with_family, location);
                        *ids.entry(key).or_insert_with(|| {
                            classes.push(Class::Located(*location));
                            (classes.len() - 1) as ClassId
                        })
                    }
                })
                .collect()
        };
        let v4 = class_of_places(table.v4.locations());
        let v6 = class_of_places(table.v6.locations());
        Self { classes, v4, v6 }
    }

    fn heap_bytes(&self) -> usize {
        (self.v4.capacity() + self.v6.capacity()) * std::mem::size_of::<ClassId>()
            + self.classes.capacity() * std::mem::size_of::<Class>()
    }
}

fn has_family(service: &Service, index: usize, family: Family) -> bool {
    let edge = &service.edges[index];
    match family {
        Family::V4 => !edge.ipv4.is_empty(),
        Family::V6 => !edge.ipv6.is_empty(),
    }
}

/// What [`select`] depends on besides health: the first rule that matches
/// and the order of every edge by ranked distance, then weight, then name.
fn class_key(service: &Service, with_family: &[usize], location: &Location) -> ClassKey {
    let rule = matching_rule(service, location);
    let distance: Vec<f64> = with_family
        .iter()
        .map(|&index| effective_km(&service.edges[index], location))
        .collect();
    let mut order: Vec<usize> = (0..with_family.len()).collect();
    order.sort_by(|&a, &b| {
        let (edge_a, edge_b) = (
            &service.edges[with_family[a]],
            &service.edges[with_family[b]],
        );
        distance[a]
            .total_cmp(&distance[b])
            .then_with(|| edge_b.weight.cmp(&edge_a.weight))
            .then_with(|| edge_a.name.cmp(&edge_b.name))
    });
    (
        rule,
        order.iter().map(|&at| with_family[at] as u16).collect(),
    )
}

/// The answers of one service and question family under one health state.
#[derive(Debug)]
struct AnswerTable {
    /// The places the answers are for.
    table: Arc<LocationTable>,
    /// The classes of those places.
    ranking: Arc<RankingMap>,
    /// Per class: the edges and why.
    selections: Vec<Selection>,
    /// Runs of equal chosen edges, which the scopes are cut from: unlocated
    /// clients whose fallback picks what their located neighbours get merge
    /// with them, as in gdnsd.
    v4: Runs<u32, AnswerId>,
    v6: Runs<u128, AnswerId>,
}

/// The class of places no source knows, which [`RankingMap::build`] makes first.
const UNLOCATED_CLASS: ClassId = 0;
/// The class of barrier runs, which [`RankingMap::build`] makes second.
const BARRIER_CLASS: ClassId = 1;

impl AnswerTable {
    fn build(
        table: &Arc<LocationTable>,
        ranking: &Arc<RankingMap>,
        service: &Service,
        family: Family,
    ) -> Self {
        let selections: Vec<Selection> = ranking
            .classes
            .iter()
            .map(|class| match class {
                Class::Located(location) => select(service, Some(location), family),
                Class::Unlocated | Class::Barrier => select(service, None, family),
            })
            .collect();
        let mut ids: HashMap<&[usize], AnswerId> = HashMap::new();
        let mut next = 0;
        let answer_of_class: Vec<AnswerId> = selections
            .iter()
            .enumerate()
            .map(|(class, selection)| {
                let mut fresh = || {
                    next += 1;
                    next - 1
                };
                if class as ClassId == BARRIER_CLASS {
                    // Its own answer, so that it never merges.
                    return fresh();
                }
                *ids.entry(&selection.edges).or_insert_with(fresh)
            })
            .collect();
        let answer_of = |classes: &[ClassId]| -> Vec<AnswerId> {
            classes
                .iter()
                .map(|class| answer_of_class[*class as usize])
                .collect()
        };
        let (v4_answers, v6_answers) = (answer_of(&ranking.v4), answer_of(&ranking.v6));
        Self {
            v4: table.v4.runs.map(|place| v4_answers[place as usize]),
            v6: table.v6.runs.map(|place| v6_answers[place as usize]),
            table: table.clone(),
            ranking: ranking.clone(),
            selections,
        }
    }

    fn lookup(&self, client: IpAddr) -> (&Selection, u8) {
        let (class, scope) = match client.to_canonical() {
            IpAddr::V4(v4) => {
                let address = u32::from(v4);
                let place = self.table.v4.runs.find(address).value;
                let class = self.ranking.v4[place as usize];
                (class, self.v4.find(address).widest_prefix(address))
            }
            IpAddr::V6(v6) => {
                let address = u128::from(v6);
                let place = self.table.v6.runs.find(address).value;
                let class = self.ranking.v6[place as usize];
                if class == BARRIER_CLASS {
                    // `::1` and the like: the fallback, for this address only.
                    (class, 128)
                } else {
                    (class, self.v6.find(address).widest_prefix(address))
                }
            }
        };
        (&self.selections[class as usize], scope)
    }

    fn heap_bytes(&self) -> usize {
        self.v4.heap_bytes() + self.v6.heap_bytes()
    }
}

/// Every service's answers under one health state.
#[derive(Debug)]
pub struct AnswerMap {
    /// The health epoch the answers were computed in.
    pub epoch: u64,
    /// Per service, per question family (A, AAAA).
    tables: Vec<[AnswerTable; 2]>,
    /// How long computing it took.
    pub took: Duration,
}

impl AnswerMap {
    /// The answer for a client at `client` (an IPv4 address for clients in
    /// IPv6 alias ranges), and the scope over which it holds, in the family
    /// of `client`. `None` for an unknown service.
    pub fn lookup(
        &self,
        service: usize,
        family: Family,
        client: IpAddr,
    ) -> Option<(&Selection, u8)> {
        let tables = self.tables.get(service)?;
        Some(tables[family_index(family)].lookup(client))
    }

    /// Runs in all answer tables.
    pub fn runs(&self) -> usize {
        self.tables
            .iter()
            .flatten()
            .map(|table| table.v4.len() + table.v6.len())
            .sum()
    }

    /// Bytes held by the answer tables.
    pub fn heap_bytes(&self) -> usize {
        self.tables
            .iter()
            .flatten()
            .map(AnswerTable::heap_bytes)
            .sum()
    }
}

fn family_index(family: Family) -> usize {
    match family {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

/// The geo maps of a snapshot: rankings, and answers kept current with
/// health.
pub struct GeoMaps {
    /// Per service, per question family; both families share one map when
    /// the same edges have both.
    rankings: Vec<[Arc<RankingMap>; 2]>,
    answers: ArcSwap<AnswerMap>,
    refreshing: Mutex<()>,
    /// How long building the rankings took.
    pub rankings_took: Duration,
    table: Arc<LocationTable>,
}

impl std::fmt::Debug for GeoMaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoMaps")
            .field("services", &self.rankings.len())
            .field("epoch", &self.answers.load().epoch)
            .finish_non_exhaustive()
    }
}

impl GeoMaps {
    /// Ranks the edges of `services` from every network of `table`, and
    /// computes the answers under the health of `epoch`.
    pub fn build(services: &[Service], table: &Arc<LocationTable>, epoch: u64) -> Self {
        let started = Instant::now();
        let rankings: Vec<[Arc<RankingMap>; 2]> = services
            .iter()
            .map(|service| {
                let v4 = Arc::new(RankingMap::build(service, Family::V4, table));
                let same_edges = (0..service.edges.len()).all(|index| {
                    has_family(service, index, Family::V4) == has_family(service, index, Family::V6)
                });
                let v6 = if same_edges {
                    v4.clone()
                } else {
                    Arc::new(RankingMap::build(service, Family::V6, table))
                };
                [v4, v6]
            })
            .collect();
        let rankings_took = started.elapsed();
        let answers = compute_answers(table, &rankings, services, epoch);
        Self {
            rankings,
            answers: ArcSwap::from_pointee(answers),
            refreshing: Mutex::new(()),
            rankings_took,
            table: table.clone(),
        }
    }

    /// The answers as last computed, whatever their epoch.
    pub fn current(&self) -> Arc<AnswerMap> {
        self.answers.load_full()
    }

    /// Whether the answers were computed in `epoch`.
    pub fn is_current(&self, epoch: u64) -> bool {
        self.answers.load().epoch == epoch
    }

    /// The answers, recomputed first if they are older than `epoch` (the
    /// health table's). When another thread is already recomputing, the
    /// previous answers are returned rather than waiting. The guard costs
    /// no reference count: this is read once per query.
    pub fn answers(&self, services: &[Service], epoch: u64) -> Guard<Arc<AnswerMap>> {
        let current = self.answers.load();
        if current.epoch == epoch {
            return current;
        }
        match self.refreshing.try_lock() {
            Some(_guard) => {
                let current = self.answers.load();
                if current.epoch == epoch {
                    return current;
                }
                let fresh = Arc::new(compute_answers(
                    &self.table,
                    &self.rankings,
                    services,
                    epoch,
                ));
                self.answers.store(fresh.clone());
                Guard::from_inner(fresh)
            }
            None => current,
        }
    }

    /// Ranking classes in all ranking maps.
    pub fn ranking_classes(&self) -> usize {
        self.rankings
            .iter()
            .flat_map(|pair| {
                let shared = Arc::ptr_eq(&pair[0], &pair[1]);
                pair.iter().take(if shared { 1 } else { 2 })
            })
            .map(|map| map.classes.len())
            .sum()
    }

    /// Bytes held by the ranking maps and the current answers.
    pub fn heap_bytes(&self) -> usize {
        let rankings: usize = self
            .rankings
            .iter()
            .flat_map(|pair| {
                let shared = Arc::ptr_eq(&pair[0], &pair[1]);
                pair.iter().take(if shared { 1 } else { 2 })
            })
            .map(|map| map.heap_bytes())
            .sum();
        rankings + self.answers.load().heap_bytes()
    }
}

fn compute_answers(
    table: &Arc<LocationTable>,
    rankings: &[[Arc<RankingMap>; 2]],
    services: &[Service],
    epoch: u64,
) -> AnswerMap {
    let started = Instant::now();
    let tables = rankings
        .iter()
        .zip(services)
        .map(|(pair, service)| {
            [
                AnswerTable::build(table, &pair[0], service, Family::V4),
                AnswerTable::build(table, &pair[1], service, Family::V6),
            ]
        })
        .collect();
    AnswerMap {
        epoch,
        tables,
        took: started.elapsed(),
    }
}
