//! The CSV format for the operator's own networks:
//! `network,latitude,longitude,country,continent`.
//!
//! One network per line (CIDR, or a bare address for a single host), country
//! and continent optional (the continent is derived from the country when
//! left empty). A first line starting with `network` is taken as a header;
//! lines starting with `#` are comments. Fields hold no commas, so a value
//! may be quoted (as spreadsheets export) but never needs to be. The same format feeds both the
//! override table and the `.mmdb` builder, so a file can move from one to the
//! other unchanged.

use std::collections::HashMap;
use std::io::Read;
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;

use crate::countries;
use crate::error::GeoIpError;
use crate::location::{Continent, Coordinates, CountryCode, Location};

/// One line of a networks CSV.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkRow {
    /// The network, host bits clear.
    pub network: IpNet,
    /// Where its addresses are.
    pub location: Location,
    /// 1-based line it came from, for messages.
    pub line: u64,
}

/// Reads a networks CSV file.
pub fn read_network_csv(path: impl AsRef<Path>) -> Result<Vec<NetworkRow>, GeoIpError> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|source| GeoIpError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_network_csv(path, file)
}

/// Parses networks CSV text from `input`; `path` names it in messages.
pub fn parse_network_csv(path: &Path, mut input: impl Read) -> Result<Vec<NetworkRow>, GeoIpError> {
    let mut text = String::new();
    input
        .read_to_string(&mut text)
        .map_err(|source| GeoIpError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let mut rows = Vec::new();
    let mut first_line_of: HashMap<IpNet, u64> = HashMap::new();
    for (index, raw_line) in text.lines().enumerate() {
        let line = index as u64 + 1;
        let content = raw_line.trim();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = content.split(',').map(unquote).collect();
        if rows.is_empty() && fields.first() == Some(&"network") {
            continue;
        }
        let bad = |message: String| GeoIpError::BadLine {
            path: path.to_path_buf(),
            line,
            message,
        };
        let row = parse_row(&fields, line).map_err(bad)?;
        if let Some(previous) = first_line_of.insert(row.network, line) {
            return Err(bad(format!(
                "network {} is already defined on line {previous}",
                row.network
            )));
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Trims a field and drops the quotes spreadsheet exports put around it.
fn unquote(field: &str) -> &str {
    let field = field.trim();
    field
        .strip_prefix('"')
        .and_then(|inner| inner.strip_suffix('"'))
        .unwrap_or(field)
        .trim()
}

fn parse_row(fields: &[&str], line: u64) -> Result<NetworkRow, String> {
    if !(3..=5).contains(&fields.len()) {
        return Err(format!(
            "expected network,latitude,longitude[,country[,continent]], found {} fields",
            fields.len()
        ));
    }
    let field = |index: usize| fields.get(index).copied().unwrap_or("");
    let network = parse_network(field(0))?;
    let number = |index: usize, name: &str| {
        field(index)
            .parse::<f64>()
            .map_err(|_| format!("invalid {name} \"{}\"", field(index)))
    };
    let coordinates = Coordinates::new(number(1, "latitude")?, number(2, "longitude")?)
        .map_err(|error| error.to_string())?;
    let country = match field(3) {
        "" => None,
        text => Some(
            text.parse::<CountryCode>()
                .map_err(|error| error.to_string())?,
        ),
    };
    let continent = match field(4) {
        "" => country.and_then(countries::continent_of),
        text => Some(
            text.parse::<Continent>()
                .map_err(|error| error.to_string())?,
        ),
    };
    Ok(NetworkRow {
        network,
        location: Location {
            coordinates,
            country,
            continent,
        },
        line,
    })
}

/// Parses a CIDR (host bits must be clear) or a bare address.
pub(crate) fn parse_network(text: &str) -> Result<IpNet, String> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    let network: IpNet = text
        .parse()
        .map_err(|_| format!("invalid network \"{text}\": expected CIDR such as 192.0.2.0/24"))?;
    if network.trunc() != network {
        return Err(format!(
            "network \"{text}\" has host bits set; did you mean {}?",
            network.trunc()
        ));
    }
    Ok(network)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<NetworkRow>, GeoIpError> {
        parse_network_csv(Path::new("nets.csv"), text.as_bytes())
    }

    #[test]
    fn parses_header_comments_and_optional_columns() {
        let rows = parse(
            "network,latitude,longitude,country,continent\n\
             # Amsterdam office\n\
             192.0.2.0/24, 52.37, 4.90, NL, EU\n\
             2001:db8::/32,40.71,-74.0,us\n\
             198.51.100.7,35.68,139.69\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].network.to_string(), "192.0.2.0/24");
        assert_eq!(rows[0].line, 3);
        assert_eq!(rows[1].location.continent, Some(Continent::NA));
        assert_eq!(rows[2].network.to_string(), "198.51.100.7/32");
        assert_eq!(rows[2].location.country, None);
    }

    #[test]
    fn bad_lines_are_named() {
        let cases = [
            ("10.0.0.0/8,91,0\n", "nets.csv:1: invalid coordinates"),
            (
                "10.0.0.0/8,north,0\n",
                "nets.csv:1: invalid latitude \"north\"",
            ),
            (
                "x\n10.0.0.1/8,1,1\n",
                "nets.csv:1: expected network,latitude",
            ),
            (
                "10.0.0.0/8,1,1\n10.0.0.1/8,1,1\n",
                "nets.csv:2: network \"10.0.0.1/8\" has host bits set; did you mean 10.0.0.0/8?",
            ),
            (
                "10.0.0.0/8,1,1,NLD\n",
                "nets.csv:1: invalid country code \"NLD\"",
            ),
            (
                "10.0.0.0/8,1,1,NL,XX\n",
                "nets.csv:1: invalid continent code \"XX\"",
            ),
            (
                "10.0.0.0/8,1,1\n\n10.0.0.0/8,2,2\n",
                "nets.csv:3: network 10.0.0.0/8 is already defined on line 1",
            ),
            (
                "10.0.0.0/33,1,1\n",
                "nets.csv:1: invalid network \"10.0.0.0/33\"",
            ),
        ];
        for (text, expected) in cases {
            let message = parse(text).unwrap_err().to_string();
            assert!(message.starts_with(expected), "{text:?}: {message}");
        }
    }
}
