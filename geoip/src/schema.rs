//! Where in a database record the coordinates, country and continent live.
//!
//! Databases in the MaxMind format agree on the container but not on the
//! record layout. MaxMind's GeoLite2/GeoIP2 City and DB-IP's own City Lite
//! nest them (`location.latitude`, `country.iso_code`, doubles); flat
//! databases such as the `@ip-location-db` packages put `latitude`,
//! `longitude` and `country_code` at the root as 32-bit floats. Rather than
//! trusting the `database_type` string, [`detect`] samples records and picks
//! the layout that actually yields coordinates; configuration can name the
//! preset or override single paths.

use std::fmt;

use maxminddb::{LookupResult, PathElement, Reader, WithinOptions};
use serde::Deserialize;

/// Deepest field path accepted; real schemas use two levels.
const MAX_DEPTH: usize = 8;

/// A dotted path to a field of a record, such as `location.latitude`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath(Vec<String>);

/// A field path that is empty, too deep or has an empty segment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid field path \"{0}\": expected dotted keys such as location.latitude (at most 8 levels)"
)]
pub struct InvalidFieldPath(String);

impl FieldPath {
    /// Parses `a.b.c`.
    pub fn parse(text: &str) -> Result<Self, InvalidFieldPath> {
        let keys: Vec<String> = text.split('.').map(str::to_string).collect();
        if keys.iter().any(String::is_empty) || keys.len() > MAX_DEPTH {
            return Err(InvalidFieldPath(text.to_string()));
        }
        Ok(Self(keys))
    }

    fn of(keys: &[&str]) -> Self {
        Self(keys.iter().map(|key| key.to_string()).collect())
    }

    /// Decodes the value at this path, `None` when a key is absent.
    pub(crate) fn decode<'a, T, S>(
        &self,
        record: &LookupResult<'a, S>,
    ) -> Result<Option<T>, maxminddb::MaxMindDbError>
    where
        T: Deserialize<'a>,
        S: AsRef<[u8]>,
    {
        // Built on the stack: this runs for every DNS query that misses the answer cache.
        let elements: [PathElement<'_>; MAX_DEPTH] = std::array::from_fn(|i| {
            self.0
                .get(i)
                .map_or(PathElement::Index(0), |key| PathElement::Key(key))
        });
        record.decode_path(&elements[..self.0.len()])
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

impl<'de> Deserialize<'de> for FieldPath {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The record layouts we know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// MaxMind GeoLite2/GeoIP2 City and DB-IP City Lite: `location.latitude`...
    Maxmind,
    /// Flat layouts such as `@ip-location-db`: `latitude`, `country_code` at the root.
    Flat,
}

impl Preset {
    /// The field paths of this layout.
    pub fn schema(self) -> Schema {
        match self {
            Self::Maxmind => Schema {
                latitude: FieldPath::of(&["location", "latitude"]),
                longitude: FieldPath::of(&["location", "longitude"]),
                countries: vec![
                    FieldPath::of(&["country", "iso_code"]),
                    FieldPath::of(&["registered_country", "iso_code"]),
                ],
                continent: Some(FieldPath::of(&["continent", "code"])),
            },
            Self::Flat => Schema {
                latitude: FieldPath::of(&["latitude"]),
                longitude: FieldPath::of(&["longitude"]),
                countries: vec![FieldPath::of(&["country_code"])],
                continent: None,
            },
        }
    }
}

/// Field paths used to read a location out of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    /// Latitude in degrees (double or float).
    pub latitude: FieldPath,
    /// Longitude in degrees (double or float).
    pub longitude: FieldPath,
    /// Country code paths, tried in order (GeoLite2 sometimes has only the
    /// registered country).
    pub countries: Vec<FieldPath>,
    /// Continent code path; when absent the continent is derived from the country.
    pub continent: Option<FieldPath>,
}

/// A number stored as double, float or integer: databases disagree on which
/// (GeoLite2 uses doubles, the flat DB-IP packages 32-bit floats), and the
/// MaxMind decoder does not convert between them on its own.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct AnyNumber(pub(crate) f64);

impl<'de> Deserialize<'de> for AnyNumber {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = AnyNumber;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E>(self, value: f64) -> Result<AnyNumber, E> {
                Ok(AnyNumber(value))
            }
            fn visit_f32<E>(self, value: f32) -> Result<AnyNumber, E> {
                // A float holds about 7 significant digits: round away the
                // widening noise (52.3717f32 is 52.371700286865234 as f64) at
                // 1e-5 degrees, about a metre.
                Ok(AnyNumber((f64::from(value) * 1e5).round() / 1e5))
            }
            fn visit_i64<E>(self, value: i64) -> Result<AnyNumber, E> {
                Ok(AnyNumber(value as f64))
            }
            fn visit_u64<E>(self, value: u64) -> Result<AnyNumber, E> {
                Ok(AnyNumber(value as f64))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// How to choose the schema: the `[geoip.schema]` configuration section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaConfig {
    /// A known layout; detected from the records when absent.
    pub preset: Option<Preset>,
    /// Overrides the latitude path.
    pub latitude: Option<FieldPath>,
    /// Overrides the longitude path.
    pub longitude: Option<FieldPath>,
    /// Overrides the country code path.
    pub country: Option<FieldPath>,
    /// Overrides the continent code path.
    pub continent: Option<FieldPath>,
}

impl SchemaConfig {
    /// Applies the per-field overrides on top of `base`.
    pub(crate) fn apply(&self, mut base: Schema) -> Schema {
        if let Some(path) = &self.latitude {
            base.latitude = path.clone();
        }
        if let Some(path) = &self.longitude {
            base.longitude = path.clone();
        }
        if let Some(path) = &self.country {
            base.countries = vec![path.clone()];
        }
        if let Some(path) = &self.continent {
            base.continent = Some(path.clone());
        }
        base
    }
}

/// Records sampled by [`detect`] at most.
const SAMPLE_RECORDS: usize = 2_000;
/// Records with coordinates that settle the question early.
const ENOUGH_HITS: usize = 50;

/// Picks the preset whose latitude path yields a number in most sampled records.
///
/// `None` when no preset finds any coordinates.
pub fn detect<S: AsRef<[u8]>>(reader: &Reader<S>) -> Option<Preset> {
    let presets = [Preset::Maxmind, Preset::Flat];
    let mut hits = [0usize; 2];
    let Ok(networks) = reader.networks(WithinOptions::default()) else {
        return None;
    };
    for record in networks.take(SAMPLE_RECORDS).flatten() {
        for (preset, count) in presets.iter().zip(hits.iter_mut()) {
            if preset.schema().has_coordinates(&record) {
                *count += 1;
            }
        }
        if hits.iter().any(|&count| count >= ENOUGH_HITS) {
            break;
        }
    }
    let (preset, count) = presets
        .into_iter()
        .zip(hits)
        .max_by_key(|(_, count)| *count)?;
    (count > 0).then_some(preset)
}

impl Schema {
    /// Whether `record` has a numeric latitude and longitude at this schema's paths.
    pub(crate) fn has_coordinates<S: AsRef<[u8]>>(&self, record: &LookupResult<'_, S>) -> bool {
        matches!(self.latitude.decode::<AnyNumber, S>(record), Ok(Some(_)))
            && matches!(self.longitude.decode::<AnyNumber, S>(record), Ok(Some(_)))
    }

    /// Whether any of the first sampled records has coordinates at these paths.
    pub(crate) fn samples_have_coordinates<S: AsRef<[u8]>>(&self, reader: &Reader<S>) -> bool {
        let Ok(networks) = reader.networks(WithinOptions::default()) else {
            return false;
        };
        networks
            .take(SAMPLE_RECORDS)
            .flatten()
            .any(|record| self.has_coordinates(&record))
    }

    /// Both coordinate paths, for messages.
    pub(crate) fn describe_coordinates(&self) -> String {
        format!("{}/{}", self.latitude, self.longitude)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_parse_and_print() {
        let path = FieldPath::parse("location.latitude").unwrap();
        assert_eq!(path.to_string(), "location.latitude");
        assert!(FieldPath::parse("").is_err());
        assert!(FieldPath::parse("a..b").is_err());
        assert!(FieldPath::parse("a.b.c.d.e.f.g.h.i").is_err());
    }

    #[test]
    fn overrides_replace_single_paths() {
        let config = SchemaConfig {
            latitude: Some(FieldPath::parse("geo.lat").unwrap()),
            ..SchemaConfig::default()
        };
        let schema = config.apply(Preset::Maxmind.schema());
        assert_eq!(schema.latitude.to_string(), "geo.lat");
        assert_eq!(schema.longitude.to_string(), "location.longitude");
    }
}
