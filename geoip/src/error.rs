//! Errors of the geoip crate. Each names the file (and line, for text input)
//! so that an operator can act on it without reading code.

use std::net::IpAddr;
use std::path::PathBuf;

/// Why a database, override file or CSV could not be used.
#[derive(Debug, thiserror::Error)]
pub enum GeoIpError {
    /// The file is missing, unreadable, truncated or not a MaxMind DB.
    #[error("{path}: cannot open MaxMind database: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What the reader said.
        source: maxminddb::MaxMindDbError,
    },
    /// No record in the database has coordinates at the configured paths.
    #[error(
        "{path}: no coordinates found at {tried} in database type \"{database_type}\"; set the latitude and longitude paths of the schema"
    )]
    NoCoordinates {
        /// The database file.
        path: PathBuf,
        /// The field paths that were tried.
        tried: String,
        /// The database type from its metadata.
        database_type: String,
    },
    /// A record could not be decoded (corrupt data section, wrong type at a path).
    #[error("{path}: cannot decode the record for {ip}: {source}")]
    Decode {
        /// The database file.
        path: PathBuf,
        /// The address that was looked up.
        ip: IpAddr,
        /// What the decoder said.
        source: maxminddb::MaxMindDbError,
    },
    /// A line of a CSV or TOML input is invalid.
    #[error("{path}:{line}: {message}")]
    BadLine {
        /// The input file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What is wrong with it.
        message: String,
    },
    /// An input file is invalid as a whole (no line can be blamed).
    #[error("{path}: {message}")]
    BadFile {
        /// The input file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The database writer refused the data.
    #[error("{path}: cannot build database: {source}")]
    Build {
        /// The output file.
        path: PathBuf,
        /// What the writer said.
        source: mmdb_writer::Error,
    },
}
