//! Opening the geolocation sources named in `[geoip]`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use geoip::{GeoDb, LocationTable, Locator, Overrides};

use crate::config::GeoipConfig;

/// Opens the databases and override files of `config`; relative paths are
/// taken from `base_dir` (the config file's directory).
pub fn open_locator(config: &GeoipConfig, base_dir: &Path) -> anyhow::Result<Locator> {
    let databases = config
        .databases
        .iter()
        .map(|path| GeoDb::open_with(base_dir.join(path), &config.schema))
        .collect::<Result<Vec<_>, _>>()?;
    let overrides: Vec<PathBuf> = config
        .overrides
        .iter()
        .map(|path| base_dir.join(path))
        .collect();
    Ok(Locator::new(load_overrides(&overrides)?, databases))
}

/// Loads and merges override files, by extension (`.toml` or `.csv`).
pub fn load_overrides(paths: &[PathBuf]) -> anyhow::Result<Overrides> {
    let mut merged = Overrides::new();
    for path in paths {
        let overrides = load_override_file(path)?;
        merged
            .merge(overrides)
            .with_context(|| format!("{}", path.display()))?;
    }
    Ok(merged)
}

fn load_override_file(path: &Path) -> anyhow::Result<Overrides> {
    match path.extension().and_then(|ext| ext.to_str()) {
        Some("csv") => {
            let rows = geoip::read_network_csv(path)?;
            Ok(Overrides::from_rows(rows).with_context(|| format!("{}", path.display()))?)
        }
        Some("toml") => Ok(shared::config::load::<Overrides>(path)?),
        _ => anyhow::bail!(
            "{}: override files must end in .toml or .csv",
            path.display()
        ),
    }
}

/// The geolocation sources as the server keeps them: flattened into a
/// [`LocationTable`] at load, with a description of where they came from.
/// The databases themselves are not kept: the table answers every lookup
/// from about a third of their memory, and a database file rewritten or
/// truncated in place is never read again until the next reload.
#[derive(Debug)]
pub struct Places {
    /// Every address with its place (shared with the answer maps).
    pub table: Arc<LocationTable>,
    /// The databases the table was built from, in lookup order.
    pub databases: Vec<DatabaseInfo>,
    /// Overridden networks.
    pub overrides: usize,
    /// How long flattening took.
    pub took: std::time::Duration,
}

/// What is known of a database once its table is built.
#[derive(Debug, Clone)]
pub struct DatabaseInfo {
    /// The file.
    pub path: PathBuf,
    /// Its `database_type`, e.g. `GeoLite2-City`.
    pub database_type: String,
    /// When it was built (seconds since the Unix epoch).
    pub build_epoch: u64,
}

impl Places {
    /// Flattens `locator`; errors mean a database is corrupt.
    pub fn build(locator: &Locator) -> anyhow::Result<Self> {
        let started = std::time::Instant::now();
        let table = Arc::new(LocationTable::build(
            locator,
            &crate::geo::alias::barriers(),
        )?);
        Ok(Self {
            table,
            databases: locator
                .databases()
                .iter()
                .map(|db| DatabaseInfo {
                    path: db.path().to_path_buf(),
                    database_type: db.database_type().to_string(),
                    build_epoch: db.build_epoch(),
                })
                .collect(),
            overrides: locator.overrides().len(),
            took: started.elapsed(),
        })
    }

    /// No sources: every client is unlocated.
    pub fn empty() -> Self {
        Self {
            table: Arc::new(LocationTable::empty()),
            databases: Vec::new(),
            overrides: 0,
            took: std::time::Duration::ZERO,
        }
    }
}
