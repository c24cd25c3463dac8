//! Locating an address: overrides first, then the databases in order.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::database::GeoDb;
use crate::error::GeoIpError;
use crate::location::Location;
use crate::overrides::Overrides;

/// Which source decided a lookup.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Source {
    /// An operator override, possibly through a named place.
    Override {
        /// The named place, if the override used one.
        place: Option<String>,
    },
    /// A database, by position in the locator's list.
    Database {
        /// Index into the locator's databases.
        index: usize,
    },
    /// Nothing knows the address.
    Unknown,
}

/// The result of [`Locator::locate`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Located {
    /// The address looked up (IPv4-mapped IPv6 addresses as IPv4).
    pub ip: IpAddr,
    /// The widest block around `ip` in which every address gets this same
    /// result from the same sources: what an ECS scope may safely claim.
    pub network: IpNet,
    /// Where the address is; `None` when unknown.
    pub location: Option<Location>,
    /// What decided.
    pub source: Source,
}

/// Overrides plus an ordered list of databases.
///
/// Several databases serve split sources such as DB-IP's separate IPv4 and
/// IPv6 files, or a private database placed before a commercial one.
#[derive(Debug, Default)]
pub struct Locator {
    overrides: Overrides,
    databases: Vec<GeoDb>,
}

impl Locator {
    /// Combines the sources; overrides win, then databases in the given order.
    pub fn new(overrides: Overrides, databases: Vec<GeoDb>) -> Self {
        Self {
            overrides,
            databases,
        }
    }

    /// The databases, in lookup order.
    pub fn databases(&self) -> &[GeoDb] {
        &self.databases
    }

    /// The databases a lookup of `ip` consults, with their positions: those
    /// that hold records of its family (an IPv4-only file cannot answer for
    /// IPv6, nor DB-IP's IPv6 file for IPv4).
    pub fn databases_for(&self, ip: IpAddr) -> impl Iterator<Item = (usize, &GeoDb)> {
        self.databases
            .iter()
            .enumerate()
            .filter(move |(_, db)| db.holds_family_of(ip))
    }

    /// The override table.
    pub fn overrides(&self) -> &Overrides {
        &self.overrides
    }

    /// Locates `ip`. An address nobody knows is `Source::Unknown`, not an error.
    pub fn locate(&self, ip: IpAddr) -> Result<Located, GeoIpError> {
        let ip = ip.to_canonical();
        let (decided_len, location, source) = match self.overrides.lookup(ip) {
            Some((network, value)) => (
                network.prefix_len(),
                Some(value.location),
                Source::Override {
                    place: value.place.clone(),
                },
            ),
            None => self.locate_in_databases(ip)?,
        };
        let len = self.overrides.uniform_prefix_len(ip, decided_len);
        let network = IpNet::new(ip, len).map_or(IpNet::from(ip), |net| net.trunc());
        Ok(Located {
            ip,
            network,
            location,
            source,
        })
    }

    fn locate_in_databases(
        &self,
        ip: IpAddr,
    ) -> Result<(u8, Option<Location>, Source), GeoIpError> {
        // Each database consulted narrows the block: the answer is the same
        // only where every database consulted so far gives the same result.
        let mut len = 0;
        for (index, database) in self.databases_for(ip) {
            let found = database.lookup(ip)?;
            len = len.max(found.network.prefix_len());
            if let Some(location) = found.location {
                return Ok((len, Some(location), Source::Database { index }));
            }
        }
        Ok((len, None, Source::Unknown))
    }
}
