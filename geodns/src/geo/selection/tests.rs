use std::sync::Arc;

use geoip::{Continent, Coordinates, CountryCode};
use shared::EdgeStatus;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::config::HealthConfig;
use crate::geo::{Edge, Rule};
use crate::health::HealthTable;
use crate::metrics::DnsMetrics;

fn table() -> HealthTable {
    let metrics = DnsMetrics::register(&mut prometheus_client::registry::Registry::default());
    HealthTable::new(metrics, CancellationToken::new())
}

fn edge(table: &HealthTable, name: &str, region: &str, latitude: f64, longitude: f64) -> Edge {
    Edge {
        name: name.into(),
        region: region.into(),
        location: Coordinates::new(latitude, longitude).unwrap(),
        ipv4: vec!["192.0.2.1".parse().unwrap()],
        ipv6: Vec::new(),
        weight: 100,
        bias_km: 0.0,
        health: Some(table.entry(&format!("http://{name}/healthz"), name)),
        drained: false,
        announced: false,
    }
}

fn service(table: &HealthTable) -> Service {
    Service {
        name: "cdn".into(),
        ttl: 30,
        answers: 1,
        fallback: Fallback::Weighted,
        edges: vec![
            edge(table, "ams", "eu", 52.37, 4.90),
            edge(table, "nyc", "us", 40.71, -74.0),
            edge(table, "tyo", "ap", 35.68, 139.69),
        ],
        rules: Vec::new(),
        health: HealthConfig::default(),
    }
}

fn at(latitude: f64, longitude: f64, country: &str, continent: Continent) -> Location {
    Location {
        coordinates: Coordinates::new(latitude, longitude).unwrap(),
        country: Some(country.parse::<CountryCode>().unwrap()),
        continent: Some(continent),
    }
}

fn names(service: &Service, selection: &Selection) -> Vec<String> {
    selection
        .edges
        .iter()
        .map(|&i| service.edges[i].name.clone())
        .collect()
}

fn set(edge: &Edge, status: EdgeStatus) {
    edge.health
        .as_ref()
        .map(Arc::clone)
        .unwrap()
        .set_status(status);
}

#[test]
fn nearest_edge_wins() {
    let table = table();
    let service = service(&table);
    let paris = at(48.85, 2.35, "FR", Continent::EU);
    let selection = select(&service, Some(&paris), Family::V4);
    assert_eq!(names(&service, &selection), ["ams"]);
    assert_eq!(selection.reason, Reason::Nearest);
}

#[test]
fn answers_count_orders_by_distance() {
    let table = table();
    let mut service = service(&table);
    service.answers = 3;
    let boston = at(42.36, -71.06, "US", Continent::NA);
    assert_eq!(
        names(&service, &select(&service, Some(&boston), Family::V4)),
        ["nyc", "ams", "tyo"]
    );
}

#[test]
fn down_and_draining_edges_are_skipped() {
    let table = table();
    let service = service(&table);
    let paris = at(48.85, 2.35, "FR", Continent::EU);
    set(&service.edges[0], EdgeStatus::Draining);
    assert_eq!(
        names(&service, &select(&service, Some(&paris), Family::V4)),
        ["nyc"]
    );
    set(&service.edges[1], EdgeStatus::Down);
    assert_eq!(
        names(&service, &select(&service, Some(&paris), Family::V4)),
        ["tyo"]
    );
}

#[test]
fn operator_drained_edges_are_skipped_even_when_healthy() {
    let table = table();
    let mut service = service(&table);
    let paris = at(48.85, 2.35, "FR", Continent::EU);
    service.edges[0].drained = true;
    assert_eq!(
        names(&service, &select(&service, Some(&paris), Family::V4)),
        ["nyc"]
    );
}

#[test]
fn all_down_fails_open_to_nearest() {
    let table = table();
    let service = service(&table);
    for edge in &service.edges {
        set(edge, EdgeStatus::Down);
    }
    let paris = at(48.85, 2.35, "FR", Continent::EU);
    let selection = select(&service, Some(&paris), Family::V4);
    assert_eq!(names(&service, &selection), ["ams"]);
    assert_eq!(selection.reason, Reason::FailOpen);
}

#[test]
fn a_family_no_edge_has_is_not_an_outage() {
    let table = table();
    let service = service(&table);
    let paris = at(48.85, 2.35, "FR", Continent::EU);
    let selection = select(&service, Some(&paris), Family::V6);
    assert!(selection.edges.is_empty());
    assert_ne!(selection.reason, Reason::FailOpen);
}

#[test]
fn bias_moves_the_boundary() {
    let table = table();
    let mut service = service(&table);
    let reykjavik = at(64.15, -21.94, "IS", Continent::EU);
    assert_eq!(
        names(&service, &select(&service, Some(&reykjavik), Family::V4)),
        ["ams"]
    );
    service.edges[0].bias_km = 2500.0;
    assert_eq!(
        names(&service, &select(&service, Some(&reykjavik), Family::V4)),
        ["nyc"]
    );
}

#[test]
fn rules_pin_countries_and_continents() {
    let table = table();
    let mut service = service(&table);
    service.rules.push(Rule {
        countries: vec!["FR".parse().unwrap()],
        continents: vec![Continent::OC],
        regions: vec!["us".into()],
    });
    let paris = at(48.85, 2.35, "FR", Continent::EU);
    let selection = select(&service, Some(&paris), Family::V4);
    assert_eq!(names(&service, &selection), ["nyc"]);
    assert_eq!(selection.reason, Reason::Rule);
    let sydney = at(-33.87, 151.21, "AU", Continent::OC);
    assert_eq!(
        names(&service, &select(&service, Some(&sydney), Family::V4)),
        ["nyc"]
    );
    // A pinned region with no healthy edge falls back to plain ranking.
    set(&service.edges[1], EdgeStatus::Down);
    assert_eq!(
        names(&service, &select(&service, Some(&paris), Family::V4)),
        ["ams"]
    );
}

#[test]
fn unknown_location_uses_the_fallback() {
    let table = table();
    let mut service = service(&table);
    service.edges[2].weight = 500;
    let selection = select(&service, None, Family::V4);
    assert_eq!(names(&service, &selection), ["tyo"]);
    assert_eq!(selection.reason, Reason::Fallback);
    service.fallback = Fallback::Region("us".into());
    assert_eq!(
        names(&service, &select(&service, None, Family::V4)),
        ["nyc"]
    );
}

#[test]
fn only_edges_with_the_family_are_answered() {
    let table = table();
    let mut service = service(&table);
    service.edges[2].ipv6 = vec!["2001:db8::1".parse().unwrap()];
    let paris = at(48.85, 2.35, "FR", Continent::EU);
    assert_eq!(
        names(&service, &select(&service, Some(&paris), Family::V6)),
        ["tyo"]
    );
    service.edges[2].ipv6.clear();
    assert!(select(&service, Some(&paris), Family::V6).edges.is_empty());
}
