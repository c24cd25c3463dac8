//! Which answer every client network gets, computed off the query path.
//!
//! Two layers, both run tables over the whole address space (see
//! [`geoip::runs`]):
//!
//! - **Rankings**, per service and question family: places that rank the
//!   service's edges in the same order (and fall under the same rule) form
//!   one class, and neighbouring places of one class one run. They change
//!   only with the snapshot: the sources, the edges, the rules.
//! - **Answers**, per health state: each class gives one selection under
//!   the current health, and neighbouring classes with the same selection
//!   merge. So a health change costs one pass over the ranking runs, and a
//!   query one binary search.
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
use geoip::runs::{Address, Runs};
use geoip::{BARRIER, FamilyTable, Location, LocationTable, UNKNOWN};
use parking_lot::Mutex;

use super::selection::{Family, Selection, effective_km, select};
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

/// Places of one family grouped by how they rank the edges.
#[derive(Debug)]
struct FamilyRanking<A> {
    runs: Runs<A, ClassId>,
}

/// How the edges of one service, for one question family, rank from
/// every client network.
#[derive(Debug)]
struct RankingMap {
    classes: Vec<Class>,
    v4: FamilyRanking<u32>,
    v6: FamilyRanking<u128>,
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
        let mut class_of_places = |table_places: &[geoip::Place]| -> Vec<ClassId> {
            table_places
                .iter()
                .enumerate()
                .map(|(id, place)| match (id as u32, place.location) {
                    (BARRIER, _) => 1,
                    (UNKNOWN, _) | (_, None) => 0,
                    (_, Some(location)) => {
                        let key = class_key(service, &with_family, &location);
                        *ids.entry(key).or_insert_with(|| {
                            classes.push(Class::Located(location));
                            (classes.len() - 1) as ClassId
                        })
                    }
                })
                .collect()
        };
        let v4_classes = class_of_places(&table.v4.places);
        let v6_classes = class_of_places(&table.v6.places);
        Self {
            v4: rank_family(&table.v4, &v4_classes),
            v6: rank_family(&table.v6, &v6_classes),
            classes,
        }
    }
}

fn rank_family<A: Address>(table: &FamilyTable<A>, class_of: &[ClassId]) -> FamilyRanking<A> {
    FamilyRanking {
        runs: table.runs.map(|place| class_of[place as usize]),
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
    let rule = service.rules.iter().position(|rule| {
        location
            .country
            .is_some_and(|country| rule.countries.contains(&country))
            || location
                .continent
                .is_some_and(|continent| rule.continents.contains(&continent))
    });
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
    /// The classes the selections are for.
    ranking: Arc<RankingMap>,
    /// Per class: the edges and why.
    selections: Vec<Selection>,
    /// Runs of equal chosen edges, which the scopes are cut from: unlocated
    /// clients whose fallback picks what their located neighbours get merge
    /// with them, as in gdnsd.
    v4: Runs<u32, AnswerId>,
    v6: Runs<u128, AnswerId>,
}

/// The class of barrier runs, which [`RankingMap::build`] makes second.
const BARRIER_CLASS: ClassId = 1;

impl AnswerTable {
    fn build(ranking: &Arc<RankingMap>, service: &Service, family: Family) -> Self {
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
        let answer_of: Vec<AnswerId> = selections
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
        Self {
            v4: ranking.v4.runs.map(|class| answer_of[class as usize]),
            v6: ranking.v6.runs.map(|class| answer_of[class as usize]),
            ranking: ranking.clone(),
            selections,
        }
    }

    fn lookup(&self, client: IpAddr) -> (&Selection, u8) {
        let (class, scope) = match client.to_canonical() {
            IpAddr::V4(v4) => {
                let address = u32::from(v4);
                let class = self.ranking.v4.runs.find(address).value;
                (class, self.v4.find(address).widest_prefix(address))
            }
            IpAddr::V6(v6) => {
                let address = u128::from(v6);
                let class = self.ranking.v6.runs.find(address).value;
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
    pub fn build(services: &[Service], table: &LocationTable, epoch: u64) -> Self {
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
        let answers = compute_answers(&rankings, services, epoch);
        Self {
            rankings,
            answers: ArcSwap::from_pointee(answers),
            refreshing: Mutex::new(()),
            rankings_took,
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
                let fresh = Arc::new(compute_answers(&self.rankings, services, epoch));
                self.answers.store(fresh.clone());
                Guard::from_inner(fresh)
            }
            None => current,
        }
    }

    /// Runs in all ranking maps.
    pub fn ranking_runs(&self) -> usize {
        self.rankings
            .iter()
            .flat_map(|pair| {
                let shared = Arc::ptr_eq(&pair[0], &pair[1]);
                pair.iter().take(if shared { 1 } else { 2 })
            })
            .map(|map| map.v4.runs.len() + map.v6.runs.len())
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
            .map(|map| map.v4.runs.heap_bytes() + map.v6.runs.heap_bytes())
            .sum();
        rankings + self.answers.load().heap_bytes()
    }
}

fn compute_answers(
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
                AnswerTable::build(&pair[0], service, Family::V4),
                AnswerTable::build(&pair[1], service, Family::V6),
            ]
        })
        .collect();
    AnswerMap {
        epoch,
        tables,
        took: started.elapsed(),
    }
}
