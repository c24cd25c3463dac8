//! Opening the geolocation sources named in `[geoip]`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use geoip::{GeoDb, Locator, Overrides};

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
