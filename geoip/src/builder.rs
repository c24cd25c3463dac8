//! Building `.mmdb` files from the networks CSV format.
//!
//! Tests, the demo and operators with private address plans need databases
//! that no vendor sells. The output uses the MaxMind City layout
//! (`location.latitude`, `country.iso_code`, `continent.code`), so it opens
//! with the default schema detection here and with any other MaxMind reader.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::error::GeoIpError;
use crate::network_csv::{self, NetworkRow};

/// The `database_type` written to the metadata.
pub const DATABASE_TYPE: &str = "GeoCDN-City";

/// What a build produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BuildSummary {
    /// Networks written.
    pub networks: usize,
    /// Size of the file in bytes.
    pub bytes: usize,
}

#[derive(Serialize)]
struct Record {
    location: RecordLocation,
    #[serde(skip_serializing_if = "Option::is_none")]
    country: Option<IsoCode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    continent: Option<ContinentCode>,
}

#[derive(Serialize)]
struct RecordLocation {
    latitude: f64,
    longitude: f64,
}

#[derive(Serialize)]
struct IsoCode {
    iso_code: String,
}

#[derive(Serialize)]
struct ContinentCode {
    code: String,
}

/// Reads a networks CSV and writes the database to `out`.
pub fn build_from_csv(csv: &Path, out: &Path) -> Result<BuildSummary, GeoIpError> {
    let rows = network_csv::read_network_csv(csv)?;
    if rows.is_empty() {
        return Err(GeoIpError::BadFile {
            path: csv.to_path_buf(),
            message: "no networks in file".into(),
        });
    }
    build_database(&rows, out)
}

/// Writes `rows` as a database to `out`.
///
/// Nested networks are fine in any order: more specific networks win over
/// the networks that contain them. The file is written beside `out` and
/// renamed into place, so a process that has the old file mapped keeps
/// reading the old data until it reopens.
pub fn build_database(rows: &[NetworkRow], out: &Path) -> Result<BuildSummary, GeoIpError> {
    let build_error = |source| GeoIpError::Build {
        path: out.to_path_buf(),
        source,
    };
    let mut writer = mmdb_writer::Writer::builder(DATABASE_TYPE)
        .description(&[("en", "GeoCDN networks database built from CSV")])
        .build();
    let mut ordered: Vec<&NetworkRow> = rows.iter().collect();
    // Later inserts win in the writer; insert wide networks first.
    ordered.sort_by_key(|row| row.network.prefix_len());
    for row in ordered {
        let record = Record {
            location: RecordLocation {
                latitude: row.location.coordinates.latitude(),
                longitude: row.location.coordinates.longitude(),
            },
            country: row.location.country.map(|code| IsoCode {
                iso_code: code.to_string(),
            }),
            continent: row.location.continent.map(|code| ContinentCode {
                code: code.to_string(),
            }),
        };
        writer.insert(row.network, &record).map_err(build_error)?;
    }
    let bytes = writer.to_bytes().map_err(build_error)?;
    write_atomically(out, &bytes)?;
    Ok(BuildSummary {
        networks: rows.len(),
        bytes: bytes.len(),
    })
}

fn write_atomically(out: &Path, bytes: &[u8]) -> Result<(), GeoIpError> {
    let io_error = |source| GeoIpError::Io {
        path: out.to_path_buf(),
        source,
    };
    let file_name = out.file_name().ok_or_else(|| GeoIpError::BadFile {
        path: out.to_path_buf(),
        message: "output path has no file name".into(),
    })?;
    let mut temporary_name = file_name.to_os_string();
    temporary_name.push(format!(".tmp{}", std::process::id()));
    let temporary = out.with_file_name(temporary_name);
    let result = std::fs::File::create(&temporary)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temporary, out));
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result.map_err(io_error)
}
