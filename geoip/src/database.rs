//! Reading MaxMind-format databases (GeoLite2/GeoIP2, DB-IP, our own builds).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use maxminddb::{LookupResult, Reader};

use crate::countries;
use crate::error::GeoIpError;
use crate::location::{Continent, Coordinates, CountryCode, Location};
use crate::schema::{self, AnyNumber, Schema, SchemaConfig};

/// A MaxMind DB read into memory, with the schema used to read it.
///
/// Lookups only read it, so one `GeoDb` is shared by every thread. The file
/// is read whole when opened rather than mapped: a database rewritten or
/// truncated in place by an updater (which a mapping would turn into a
/// SIGBUS on the next lookup) changes nothing until the next reload, which
/// then checks the new file before using it.
#[derive(Debug)]
pub struct GeoDb {
    reader: Reader<Vec<u8>>,
    schema: Schema,
    path: PathBuf,
    decoded: DecodedRecords,
    families: Families,
}

/// Which address families a database has any record for.
///
/// DB-IP ships IPv4 and IPv6 as two files, and the IPv6 file is an IPv6
/// tree with an empty IPv4 part: asked for an IPv4 address it only says "no
/// data". Knowing that, a lookup consults one database per family, and ECS
/// scopes can be widened over it alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Families {
    ipv4: bool,
    ipv6: bool,
}

/// Locations already decoded, by record offset.
///
/// Many networks share one record (every network of a city, every
/// country-level network of a country), and decoding a record means
/// skipping through its names in a dozen languages. Sharded so threads
/// rarely meet on a lock; bounded so a hostile sweep cannot grow it forever.
#[derive(Debug, Default)]
struct DecodedRecords {
    shards:
        [parking_lot::Mutex<HashMap<usize, Option<Location>, foldhash::fast::FixedState>>; SHARDS],
}

const SHARDS: usize = 16;
/// Records remembered per shard (GeoLite2 City has about 150,000 in all).
const RECORDS_PER_SHARD: usize = 32_768;

impl DecodedRecords {
    fn get_or_decode<E>(
        &self,
        offset: usize,
        decode: impl FnOnce() -> Result<Option<Location>, E>,
    ) -> Result<Option<Location>, E> {
        let shard = &self.shards[offset % SHARDS];
        if let Some(found) = shard.lock().get(&offset) {
            return Ok(*found);
        }
        let location = decode()?;
        let mut records = shard.lock();
        if records.len() >= RECORDS_PER_SHARD {
            records.clear();
        }
        records.insert(offset, location);
        Ok(location)
    }
}

/// The outcome of one database lookup.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DbMatch {
    /// The database network that holds the address: every address in it has
    /// the same record (or the same lack of one).
    pub network: IpNet,
    /// Where the record places the address; `None` when the database does not
    /// cover it or the record has neither coordinates nor a known country.
    pub location: Option<Location>,
}

impl GeoDb {
    /// Opens `path`, detecting the record layout from its contents.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, GeoIpError> {
        Self::open_with(path, &SchemaConfig::default())
    }

    /// Opens `path` with the layout chosen or overridden by `config`.
    ///
    /// Fails when the file is not a MaxMind DB or when no sampled record has
    /// coordinates at the resulting paths: a database that would place
    /// nobody is a configuration error, not something to discover in traffic.
    pub fn open_with(path: impl AsRef<Path>, config: &SchemaConfig) -> Result<Self, GeoIpError> {
        let path = path.as_ref().to_path_buf();
        if path.is_dir() {
            return Err(GeoIpError::BadFile {
                path,
                message: "is a directory, expected a .mmdb file".into(),
            });
        }
        let reader = read_whole(&path)?;
        let preset = match config.preset {
            Some(preset) => Some(preset),
            None => schema::detect(&reader),
        };
        let no_coordinates = |tried: String| GeoIpError::NoCoordinates {
            path: path.clone(),
            tried,
            database_type: reader.metadata().database_type.clone(),
        };
        let Some(preset) = preset else {
            return Err(no_coordinates(
                "location.latitude/location.longitude and latitude/longitude".into(),
            ));
        };
        let schema = config.apply(preset.schema());
        if !schema.samples_have_coordinates(&reader) {
            return Err(no_coordinates(schema.describe_coordinates()));
        }
        let families = families_of(&reader);
        Ok(Self {
            reader,
            schema,
            path,
            decoded: DecodedRecords::default(),
            families,
        })
    }

    /// Finds the record for `ip`.
    ///
    /// An address the database does not cover is not an error: the result has
    /// no location and the network says how far that gap extends. Errors mean
    /// the record itself is corrupt or of the wrong type.
    pub fn lookup(&self, ip: IpAddr) -> Result<DbMatch, GeoIpError> {
        let ip = ip.to_canonical();
        if ip.is_ipv6() && self.reader.metadata().ip_version == 4 {
            return Ok(DbMatch {
                network: whole_family(ip),
                location: None,
            });
        }
        let decode_error = |source| GeoIpError::Decode {
            path: self.path.clone(),
            ip,
            source,
        };
        let record = self.reader.lookup(ip).map_err(decode_error)?;
        let network = matched_network(ip, &record);
        let location = self.location(&record).map_err(decode_error)?;
        Ok(DbMatch { network, location })
    }

    /// Every database network inside `block`, including networks without
    /// data (gaps), and the enclosing network when `block` lies inside one.
    ///
    /// Used to merge neighbouring networks that get the same answer. Errors
    /// mean the tree or a record is corrupt.
    pub fn networks_within(
        &self,
        block: IpNet,
    ) -> Result<impl Iterator<Item = Result<DbMatch, GeoIpError>> + '_, GeoIpError> {
        let decode_error = move |source| GeoIpError::Decode {
            path: self.path.clone(),
            ip: block.addr(),
            source,
        };
        if block.addr().is_ipv6() && self.ip_version() == 4 {
            let gap = DbMatch {
                network: block,
                location: None,
            };
            return Ok(Box::new(std::iter::once(Ok(gap)))
                as Box<dyn Iterator<Item = Result<DbMatch, GeoIpError>>>);
        }
        let network = ipnetwork::IpNetwork::new(block.addr(), block.prefix_len())
            .map_err(|error| decode_error(maxminddb::MaxMindDbError::InvalidNetwork(error)))?;
        let options = maxminddb::WithinOptions::default().include_networks_without_data();
        let records = self.reader.within(network, options).map_err(decode_error)?;
        Ok(Box::new(records.map(move |record| {
            let record = record.map_err(decode_error)?;
            let ip = record.network().map_or(block.addr(), |net| net.ip());
            let network = matched_network(ip, &record);
            let location = self.location(&record).map_err(decode_error)?;
            Ok(DbMatch { network, location })
        })))
    }

    fn location(
        &self,
        record: &LookupResult<'_, Vec<u8>>,
    ) -> Result<Option<Location>, maxminddb::MaxMindDbError> {
        let Some(offset) = record.offset() else {
            return Ok(None);
        };
        self.decoded
            .get_or_decode(offset, || self.decode_location(record))
    }

    fn decode_location(
        &self,
        record: &LookupResult<'_, Vec<u8>>,
    ) -> Result<Option<Location>, maxminddb::MaxMindDbError> {
        let mut country = None;
        for path in &self.schema.countries {
            if let Some(code) = path.decode::<&str, _>(record)? {
                country = code.parse::<CountryCode>().ok();
                if country.is_some() {
                    break;
                }
            }
        }
        let continent = match &self.schema.continent {
            Some(path) => path
                .decode::<&str, _>(record)?
                .and_then(|code| code.parse::<Continent>().ok()),
            None => None,
        }
        .or_else(|| country.and_then(countries::continent_of));
        let latitude = self.schema.latitude.decode::<AnyNumber, _>(record)?;
        let longitude = self.schema.longitude.decode::<AnyNumber, _>(record)?;
        let coordinates = match (latitude, longitude) {
            (Some(AnyNumber(latitude)), Some(AnyNumber(longitude))) => {
                Coordinates::new(latitude, longitude).ok()
            }
            _ => None,
        }
        // Records that name only a country are placed at its representative point.
        .or_else(|| country.and_then(countries::centroid_of));
        Ok(coordinates.map(|coordinates| Location {
            coordinates,
            country,
            continent,
        }))
    }

    /// The file this database was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The `database_type` string from the metadata, e.g. `GeoLite2-City`.
    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// 4 for IPv4-only databases, 6 for databases that cover both families.
    pub fn ip_version(&self) -> u16 {
        self.reader.metadata().ip_version
    }

    /// Whether the database has a record for any address of the family of
    /// `ip`: a lookup in a database that has none can only find a gap.
    pub fn holds_family_of(&self, ip: IpAddr) -> bool {
        if ip.to_canonical().is_ipv4() {
            self.families.ipv4
        } else {
            self.families.ipv6
        }
    }

    /// When the database was built, in seconds since the Unix epoch.
    pub fn build_epoch(&self) -> u64 {
        self.reader.metadata().build_epoch
    }

    /// The field paths in use.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }
}

/// Probes the search tree for records of each family. IPv4 data sits under
/// `::/96` in an IPv6 tree, so IPv6 data is looked for in the 96 blocks that
/// make up the rest of the space; aliases of the IPv4 part are skipped.
/// Each probe stops at the first record, and empty subtrees end at once.
fn families_of(reader: &Reader<Vec<u8>>) -> Families {
    let has_data = |network: ipnetwork::IpNetwork| {
        reader
            .within(network, maxminddb::WithinOptions::default())
            .is_ok_and(|mut records| records.next().is_some())
    };
    let ipv4 =
        ipnetwork::IpNetwork::new(std::net::Ipv4Addr::UNSPECIFIED.into(), 0).is_ok_and(has_data);
    let ipv6 = reader.metadata().ip_version == 6
        && (1..=96u8).any(|len| {
            // The half beside the path to ::/96 at depth `len`.
            let start = std::net::Ipv6Addr::from(1u128 << (128 - u32::from(len)));
            ipnetwork::IpNetwork::new(start.into(), len).is_ok_and(has_data)
        });
    Families { ipv4, ipv6 }
}

/// Reads the database at `path` into memory and checks its metadata and
/// search tree header. Only regular files are read (a device or a FIFO named
/// by mistake would never end).
fn read_whole(path: &Path) -> Result<Reader<Vec<u8>>, GeoIpError> {
    let open_error = |source: maxminddb::MaxMindDbError| GeoIpError::Open {
        path: path.to_path_buf(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(|error| open_error(error.into()))?;
    if !metadata.is_file() {
        return Err(GeoIpError::BadFile {
            path: path.to_path_buf(),
            message: "is not a regular file, expected a .mmdb file".into(),
        });
    }
    let bytes = std::fs::read(path).map_err(|error| open_error(error.into()))?;
    Reader::from_source(bytes).map_err(open_error)
}

/// The network of the record, in the family of the address looked up.
fn matched_network(ip: IpAddr, record: &LookupResult<'_, Vec<u8>>) -> IpNet {
    let Ok(network) = record.network() else {
        return IpNet::from(ip);
    };
    match (ip, network.ip()) {
        // An IPv6 database without an IPv4 subtree answers IPv4 lookups at an
        // IPv6 node above ::/96; map it back onto the IPv4 space.
        (IpAddr::V4(_), IpAddr::V6(_)) => {
            let prefix = network.prefix().saturating_sub(96);
            IpNet::new(ip, prefix).map_or_else(|_| whole_family(ip), |net| net.trunc())
        }
        _ => IpNet::new(ip, network.prefix()).map_or_else(|_| IpNet::from(ip), |net| net.trunc()),
    }
}

/// `0.0.0.0/0` or `::/0`, whichever matches `ip`.
fn whole_family(ip: IpAddr) -> IpNet {
    match ip {
        IpAddr::V4(_) => IpNet::V4(ipnet::Ipv4Net::default()),
        IpAddr::V6(_) => IpNet::V6(ipnet::Ipv6Net::default()),
    }
}
