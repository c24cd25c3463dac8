//! IP geolocation for geodns.
//!
//! Turns an address into a place: coordinates, country and continent, plus
//! the network block over which that answer holds. Sources are the
//! operator's overrides (longest prefix wins) and then MaxMind-format
//! databases: GeoLite2/GeoIP2 City, DB-IP City Lite in its nested or flat
//! layout, or databases built from CSV with [`build_from_csv`].
//!
//! ```no_run
//! use geoip::{GeoDb, Locator, Overrides, great_circle_km};
//!
//! let db = GeoDb::open("GeoLite2-City.mmdb")?;
//! let locator = Locator::new(Overrides::new(), vec![db]);
//! let found = locator.locate("193.0.0.1".parse().unwrap())?;
//! if let Some(location) = found.location {
//!     println!("{} in {}", location.coordinates, found.network);
//! }
//! # Ok::<(), geoip::GeoIpError>(())
//! ```
//!
//! This crate knows nothing of DNS or HTTP.

mod builder;
mod countries;
mod database;
mod distance;
mod error;
mod location;
mod locator;
mod network_csv;
mod overrides;
pub mod runs;
mod schema;
mod table;

// The public interface is:
pub use builder::{BuildSummary, DATABASE_TYPE, build_database, build_from_csv};
pub use countries::{centroid_of, continent_of};
pub use database::{DbMatch, GeoDb};
pub use distance::{EARTH_RADIUS_KM, great_circle_km};
pub use error::GeoIpError;
pub use location::{
    Continent, Coordinates, CountryCode, InvalidContinent, InvalidCoordinates, InvalidCountryCode,
    Location,
};
pub use locator::{Located, Locator, Source};
pub use network_csv::{NetworkRow, parse_network_csv, read_network_csv};
pub use overrides::{DuplicateNetwork, Override, Overrides};
pub use schema::{FieldPath, InvalidFieldPath, Preset, Schema, SchemaConfig};
pub use table::{BARRIER, FamilyTable, LocationTable, Place, PlaceId, UNKNOWN};
