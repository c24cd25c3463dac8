//! `geodns geoip ...`: look addresses up the way geodns will, and build
//! databases from CSV.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use geoip::{GeoDb, Located, Locator, Preset, SchemaConfig, Source};
use serde::Serialize;

/// GeoIP subcommands.
#[derive(Debug, Subcommand)]
pub enum GeoipCommand {
    /// Locate addresses: overrides first, then the databases in order.
    Lookup {
        /// MaxMind-format database (.mmdb).
        db: PathBuf,
        /// Addresses to locate.
        #[arg(required = true)]
        ips: Vec<IpAddr>,
        /// Further databases consulted after the first, e.g. DB-IP's IPv6 file.
        #[arg(long = "db", value_name = "DB")]
        more_dbs: Vec<PathBuf>,
        /// Override file (.toml, or .csv in the networks CSV format); repeatable.
        #[arg(long, value_name = "FILE")]
        overrides: Vec<PathBuf>,
        /// Record layout; detected from the records when not given.
        #[arg(long, value_enum)]
        schema: Option<SchemaArg>,
        /// One JSON object per address instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Build a database from a CSV of network,latitude,longitude,country,continent.
    Build {
        /// Input CSV.
        csv: PathBuf,
        /// Output .mmdb (replaced atomically).
        out: PathBuf,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Record layouts selectable on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SchemaArg {
    /// `location.latitude`, `country.iso_code` (GeoLite2, GeoIP2, DB-IP City Lite).
    Maxmind,
    /// `latitude`, `country_code` at the root (@ip-location-db).
    Flat,
}

impl GeoipCommand {
    /// Runs the command, writing its report to `out`.
    pub fn run(self, out: &mut impl Write) -> anyhow::Result<()> {
        match self {
            Self::Lookup {
                db,
                ips,
                more_dbs,
                overrides,
                schema,
                json,
            } => {
                let config = SchemaConfig {
                    preset: schema.map(|schema| match schema {
                        SchemaArg::Maxmind => Preset::Maxmind,
                        SchemaArg::Flat => Preset::Flat,
                    }),
                    ..SchemaConfig::default()
                };
                let databases = std::iter::once(db)
                    .chain(more_dbs)
                    .map(|path| GeoDb::open_with(path, &config))
                    .collect::<Result<Vec<_>, _>>()?;
                let locator = Locator::new(crate::sources::load_overrides(&overrides)?, databases);
                for ip in ips {
                    let located = locator.locate(ip)?;
                    let report = Report::new(&locator, &located);
                    if json {
                        serde_json::to_writer(&mut *out, &report)?;
                        writeln!(out)?;
                    } else {
                        report.write_text(out)?;
                    }
                }
                Ok(())
            }
            Self::Build {
                csv,
                out: path,
                json,
            } => {
                let summary = geoip::build_from_csv(&csv, &path)?;
                if json {
                    serde_json::to_writer(&mut *out, &summary)?;
                    writeln!(out)?;
                } else {
                    writeln!(
                        out,
                        "wrote {} networks ({} bytes) to {}",
                        summary.networks,
                        summary.bytes,
                        path.display()
                    )?;
                }
                Ok(())
            }
        }
    }
}

/// One lookup as printed: the locator's answer with its source spelled out.
#[derive(Debug, Serialize)]
struct Report<'a> {
    ip: IpAddr,
    network: ipnet::IpNet,
    location: Option<&'a geoip::Location>,
    /// `override`, `database` or `unknown`.
    source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    place: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    database: Option<&'a Path>,
    #[serde(skip_serializing_if = "Option::is_none")]
    database_type: Option<&'a str>,
}

impl<'a> Report<'a> {
    fn new(locator: &'a Locator, located: &'a Located) -> Self {
        let mut report = Self {
            ip: located.ip,
            network: located.network,
            location: located.location.as_ref(),
            source: "unknown",
            place: None,
            database: None,
            database_type: None,
        };
        match &located.source {
            Source::Override { place } => {
                report.source = "override";
                report.place = place.as_deref();
            }
            Source::Database { index } => {
                report.source = "database";
                if let Some(db) = locator.databases().get(*index) {
                    report.database = Some(db.path());
                    report.database_type = Some(db.database_type());
                }
            }
            Source::Unknown => {}
        }
        report
    }

    fn write_text(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(out, "{}", self.ip)?;
        match self.location {
            Some(location) => {
                let place: Vec<String> = [
                    location.country.map(|code| code.to_string()),
                    location.continent.map(|code| code.to_string()),
                ]
                .into_iter()
                .flatten()
                .collect();
                if place.is_empty() {
                    writeln!(out, "  location  {}", location.coordinates)?;
                } else {
                    writeln!(
                        out,
                        "  location  {} ({})",
                        location.coordinates,
                        place.join(", ")
                    )?;
                }
            }
            None => writeln!(out, "  location  unknown")?,
        }
        writeln!(out, "  network   {}", self.network)?;
        match (self.source, self.place, self.database, self.database_type) {
            ("override", Some(place), ..) => writeln!(out, "  source    override (place {place})"),
            ("database", _, Some(path), Some(kind)) => {
                writeln!(out, "  source    {kind} ({})", path.display())
            }
            (source, ..) => writeln!(out, "  source    {source}"),
        }
    }
}
