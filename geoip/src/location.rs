//! Where an address is: coordinates plus, when known, country and continent.
//!
//! Each type can only hold a valid value (coordinates in range, two-letter
//! uppercase country codes, one of the seven continent codes), so code that
//! receives one never checks it again.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A point on the globe in decimal degrees (WGS 84, as GeoIP databases use).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Coordinates {
    latitude: f64,
    longitude: f64,
}

/// Coordinates out of range or not numbers.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "invalid coordinates ({latitude}, {longitude}): latitude must be within -90..=90 and longitude within -180..=180"
)]
pub struct InvalidCoordinates {
    /// The latitude given.
    pub latitude: f64,
    /// The longitude given.
    pub longitude: f64,
}

impl Coordinates {
    /// 0°, 0°: a placeholder where no location can be known, such as an
    /// edge checked without its geoip sources.
    pub const ZERO: Self = Self {
        latitude: 0.0,
        longitude: 0.0,
    };

    /// Checks the ranges: latitude -90..=90, longitude -180..=180.
    pub fn new(latitude: f64, longitude: f64) -> Result<Self, InvalidCoordinates> {
        if (-90.0..=90.0).contains(&latitude) && (-180.0..=180.0).contains(&longitude) {
            Ok(Self {
                latitude,
                longitude,
            })
        } else {
            Err(InvalidCoordinates {
                latitude,
                longitude,
            })
        }
    }

    /// Degrees north (negative: south).
    pub fn latitude(self) -> f64 {
        self.latitude
    }

    /// Degrees east (negative: west).
    pub fn longitude(self) -> f64 {
        self.longitude
    }
}

impl fmt::Display for Coordinates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.4}, {:.4}", self.latitude, self.longitude)
    }
}

impl<'de> Deserialize<'de> for Coordinates {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            latitude: f64,
            longitude: f64,
        }
        let raw = Raw::deserialize(deserializer)?;
        Self::new(raw.latitude, raw.longitude).map_err(serde::de::Error::custom)
    }
}

/// An ISO 3166-1 alpha-2 country code such as `NL`, stored uppercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountryCode([u8; 2]);

/// Text that is not two ASCII letters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid country code \"{0}\": expected two letters such as NL or US")]
pub struct InvalidCountryCode(pub String);

impl CountryCode {
    /// The code as text, e.g. `"NL"`.
    pub fn as_str(&self) -> &str {
        // Only ASCII letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl FromStr for CountryCode {
    type Err = InvalidCountryCode;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Ok(Self([a.to_ascii_uppercase(), b.to_ascii_uppercase()]))
            }
            _ => Err(InvalidCountryCode(text.to_string())),
        }
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for CountryCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CountryCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The seven continent codes that GeoIP databases use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Continent {
    /// Africa.
    AF,
    /// Antarctica.
    AN,
    /// Asia.
    AS,
    /// Europe.
    EU,
    /// North America.
    NA,
    /// Oceania.
    OC,
    /// South America.
    SA,
}

/// Text that is not one of the seven continent codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid continent code \"{0}\": expected one of AF, AN, AS, EU, NA, OC, SA")]
pub struct InvalidContinent(pub String);

impl Continent {
    /// The two-letter code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AF => "AF",
            Self::AN => "AN",
            Self::AS => "AS",
            Self::EU => "EU",
            Self::NA => "NA",
            Self::OC => "OC",
            Self::SA => "SA",
        }
    }
}

impl FromStr for Continent {
    type Err = InvalidContinent;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let &[first, second] = text.as_bytes() else {
            return Err(InvalidContinent(text.to_string()));
        };
        Ok(
            match [first.to_ascii_uppercase(), second.to_ascii_uppercase()] {
                [b'A', b'F'] => Self::AF,
                [b'A', b'N'] => Self::AN,
                [b'A', b'S'] => Self::AS,
                [b'E', b'U'] => Self::EU,
                [b'N', b'A'] => Self::NA,
                [b'O', b'C'] => Self::OC,
                [b'S', b'A'] => Self::SA,
                _ => return Err(InvalidContinent(text.to_string())),
            },
        )
    }
}

impl fmt::Display for Continent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a lookup knows about an address's place.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Location {
    /// Where on the globe.
    pub coordinates: Coordinates,
    /// Country, when the source names one.
    pub country: Option<CountryCode>,
    /// Continent, from the source or derived from the country.
    pub continent: Option<Continent>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinates_out_of_range_are_rejected() {
        assert!(Coordinates::new(90.5, 0.0).is_err());
        assert!(Coordinates::new(0.0, -180.5).is_err());
        assert!(Coordinates::new(f64::NAN, 0.0).is_err());
        assert!(Coordinates::new(-90.0, 180.0).is_ok());
    }

    #[test]
    fn country_codes_are_uppercased_and_checked() {
        assert_eq!("nl".parse::<CountryCode>().unwrap().as_str(), "NL");
        assert!("NLD".parse::<CountryCode>().is_err());
        assert!("N1".parse::<CountryCode>().is_err());
        assert!("".parse::<CountryCode>().is_err());
    }

    #[test]
    fn continents_parse_case_insensitively() {
        assert_eq!("eu".parse::<Continent>().unwrap(), Continent::EU);
        assert!("XX".parse::<Continent>().is_err());
    }
}
