//! The operator's own networks, placed by hand.
//!
//! Overrides take precedence over every database: private ranges a database
//! cannot know, ISPs it gets wrong, test networks. Among overrides the longest
//! prefix wins. They come from TOML (with named places) or from the networks
//! CSV format.
//!
//! ```toml
//! [places.amsterdam]
//! latitude = 52.37
//! longitude = 4.90
//! country = "NL"
//!
//! [[networks]]
//! network = "10.1.0.0/16"
//! place = "amsterdam"
//!
//! [[networks]]
//! network = "10.2.0.0/16"
//! latitude = 40.71
//! longitude = -74.01
//! country = "US"
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;
use serde::Deserialize;

use crate::countries;
use crate::location::{Continent, Coordinates, CountryCode, Location};
use crate::network_csv::{self, NetworkRow};

/// Where an overridden network is.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// The location given for it.
    pub location: Location,
    /// The named place it refers to, if it used one.
    pub place: Option<String>,
}

/// A table of overridden networks with longest-prefix lookup.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    v4: PrefixMap<Ipv4Net, Override>,
    v6: PrefixMap<Ipv6Net, Override>,
    /// Every network's start address and length, sorted, per family: lets
    /// [`Overrides::uniform_prefix_len`] find the nearest foreign network in
    /// O(log n).
    starts_v4: Vec<(u128, u8)>,
    starts_v6: Vec<(u128, u8)>,
}

/// The same network given twice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("network {0} is overridden twice")]
pub struct DuplicateNetwork(pub IpNet);

impl Overrides {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a table from networks CSV rows (see [`crate::network_csv`]).
    pub fn from_rows(rows: impl IntoIterator<Item = NetworkRow>) -> Result<Self, DuplicateNetwork> {
        let mut overrides = Self::new();
        for row in rows {
            overrides.insert(
                row.network,
                Override {
                    location: row.location,
                    place: None,
                },
            )?;
        }
        Ok(overrides)
    }

    /// Adds one network (host bits are cleared).
    pub fn insert(&mut self, network: IpNet, value: Override) -> Result<(), DuplicateNetwork> {
        let network = network.trunc();
        let (previous, starts, start) = match network {
            IpNet::V4(net) => (
                self.v4.insert(net, value),
                &mut self.starts_v4,
                u128::from(u32::from(net.network())),
            ),
            IpNet::V6(net) => (
                self.v6.insert(net, value),
                &mut self.starts_v6,
                u128::from(net.network()),
            ),
        };
        if previous.is_some() {
            return Err(DuplicateNetwork(network));
        }
        let key = (start, network.prefix_len());
        let position = starts.partition_point(|entry| *entry < key);
        starts.insert(position, key);
        Ok(())
    }

    /// Adds every network of `other`; fails on the first network both define.
    pub fn merge(&mut self, other: Overrides) -> Result<(), DuplicateNetwork> {
        for (net, value) in other.v4.into_iter() {
            self.insert(IpNet::V4(net), value)?;
        }
        for (net, value) in other.v6.into_iter() {
            self.insert(IpNet::V6(net), value)?;
        }
        Ok(())
    }

    /// The most specific overridden network holding `ip`, if any.
    pub fn lookup(&self, ip: IpAddr) -> Option<(IpNet, &Override)> {
        match ip.to_canonical() {
            IpAddr::V4(ip) => self
                .v4
                .get_lpm(&Ipv4Net::from(ip))
                .map(|(net, value)| (IpNet::V4(net), value)),
            IpAddr::V6(ip) => self
                .v6
                .get_lpm(&Ipv6Net::from(ip))
                .map(|(net, value)| (IpNet::V6(net), value)),
        }
    }

    /// Overridden networks inside `block` (including `block` itself).
    pub fn networks_within(&self, block: IpNet) -> Vec<(IpNet, &Override)> {
        match block.trunc() {
            IpNet::V4(block) => self
                .v4
                .children(&block)
                .map(|(net, value)| (IpNet::V4(net), value))
                .collect(),
            IpNet::V6(block) => self
                .v6
                .children(&block)
                .map(|(net, value)| (IpNet::V6(net), value))
                .collect(),
        }
    }

    /// Number of overridden networks.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shortest prefix length, at least `decided_len`, at which the block
    /// around `ip` contains no overridden network that leaves `ip` out.
    ///
    /// A database network that decided an address may enclose an override
    /// elsewhere in it; the answer is then only uniform over a smaller block.
    /// That block ends where `ip` first parts ways with the nearest such
    /// network, and the nearest in bit order is one of the two neighbours of
    /// `ip` among the sorted network starts (networks that contain `ip` are
    /// skipped: they start at or before it).
    pub fn uniform_prefix_len(&self, ip: IpAddr, decided_len: u8) -> u8 {
        let (starts, address, width) = match ip.to_canonical() {
            IpAddr::V4(ip) => (&self.starts_v4, u128::from(u32::from(ip)), 32),
            IpAddr::V6(ip) => (&self.starts_v6, u128::from(ip), 128),
        };
        let contains_ip =
            |&(start, len): &(u128, u8)| common_prefix_len(start, address, width) >= len;
        let split = starts.partition_point(|&(start, _)| start <= address);
        let before = starts[..split]
            .iter()
            .rev()
            .find(|entry| !contains_ip(entry));
        let after = starts.get(split);
        [before, after]
            .into_iter()
            .flatten()
            .map(|&(start, _)| common_prefix_len(start, address, width) + 1)
            .fold(decided_len, u8::max)
            .min(width)
    }
}

/// Leading bits `a` and `b` share, within a `width`-bit family.
fn common_prefix_len(a: u128, b: u128, width: u8) -> u8 {
    let shared = (a ^ b).leading_zeros() as u8;
    shared.saturating_sub(128 - width).min(width)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverrides {
    #[serde(default)]
    places: BTreeMap<String, RawPlace>,
    #[serde(default)]
    networks: Vec<RawNetwork>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlace {
    latitude: f64,
    longitude: f64,
    country: Option<CountryCode>,
    continent: Option<Continent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    network: String,
    place: Option<String>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    country: Option<CountryCode>,
    continent: Option<Continent>,
}

fn location(
    latitude: f64,
    longitude: f64,
    country: Option<CountryCode>,
    continent: Option<Continent>,
) -> Result<Location, String> {
    Ok(Location {
        coordinates: Coordinates::new(latitude, longitude).map_err(|error| error.to_string())?,
        country,
        continent: continent.or_else(|| country.and_then(countries::continent_of)),
    })
}

impl RawOverrides {
    fn build(self) -> Result<Overrides, String> {
        let mut places = BTreeMap::new();
        for (name, place) in self.places {
            let resolved = location(
                place.latitude,
                place.longitude,
                place.country,
                place.continent,
            )
            .map_err(|error| format!("places.{name}: {error}"))?;
            places.insert(name, resolved);
        }
        let mut overrides = Overrides::new();
        for (index, raw) in self.networks.into_iter().enumerate() {
            let context = |error: String| format!("networks[{index}] ({}): {error}", raw.network);
            let network = network_csv::parse_network(&raw.network).map_err(context)?;
            let resolved = match (&raw.place, raw.latitude, raw.longitude) {
                (Some(name), None, None) => {
                    let place = places
                        .get(name)
                        .ok_or_else(|| context(format!("unknown place \"{name}\"")))?;
                    Override {
                        location: Location {
                            country: raw.country.or(place.country),
                            continent: raw.continent.or(place.continent),
                            ..*place
                        },
                        place: Some(name.clone()),
                    }
                }
                (None, Some(latitude), Some(longitude)) => Override {
                    location: location(latitude, longitude, raw.country, raw.continent)
                        .map_err(context)?,
                    place: None,
                },
                _ => {
                    return Err(context(
                        "give either place or both latitude and longitude".into(),
                    ));
                }
            };
            overrides
                .insert(network, resolved)
                .map_err(|error| context(error.to_string()))?;
        }
        Ok(overrides)
    }
}

impl<'de> Deserialize<'de> for Overrides {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        RawOverrides::deserialize(deserializer)?
            .build()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
