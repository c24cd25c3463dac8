//! Great-circle distance between two points.
//!
//! The haversine formula on a sphere of the Earth's mean radius: within 0.5 %
//! of the ellipsoidal distance everywhere, which is far finer than the
//! accuracy of any IP geolocation and cheap enough for the DNS answer path.

use crate::location::Coordinates;

/// Mean Earth radius in kilometres (IUGG).
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

/// Distance in kilometres along the Earth's surface.
pub fn great_circle_km(a: Coordinates, b: Coordinates) -> f64 {
    let (lat_a, lat_b) = (a.latitude().to_radians(), b.latitude().to_radians());
    let d_lat = lat_b - lat_a;
    let d_lon = (b.longitude() - a.longitude()).to_radians();
    let h = (d_lat / 2.0).sin().powi(2) + lat_a.cos() * lat_b.cos() * (d_lon / 2.0).sin().powi(2);
    // Rounding can push h a hair above 1 for antipodal points.
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(latitude: f64, longitude: f64) -> Coordinates {
        Coordinates::new(latitude, longitude).unwrap()
    }

    #[test]
    fn same_point_is_zero() {
        let amsterdam = point(52.37, 4.90);
        assert!(great_circle_km(amsterdam, amsterdam).abs() < 1e-9);
    }

    #[test]
    fn known_city_pairs() {
        // Reference values from the ellipsoidal (Vincenty) distance; the sphere
        // must be within 0.5 %.
        let cases = [
            ((52.3676, 4.9041), (40.7128, -74.0060), 5863.0), // Amsterdam - New York
            ((51.5074, -0.1278), (48.8566, 2.3522), 343.9),   // London - Paris
            ((35.6762, 139.6503), (-33.8688, 151.2093), 7823.0), // Tokyo - Sydney
        ];
        for ((lat_a, lon_a), (lat_b, lon_b), expected) in cases {
            let got = great_circle_km(point(lat_a, lon_a), point(lat_b, lon_b));
            assert!(
                (got - expected).abs() / expected < 0.005,
                "{got} vs {expected}"
            );
        }
    }

    #[test]
    fn symmetric_and_crosses_the_antimeridian() {
        let fiji = point(-17.7, 178.0);
        let samoa = point(-13.8, -172.1);
        let d = great_circle_km(fiji, samoa);
        assert!((d - great_circle_km(samoa, fiji)).abs() < 1e-9);
        assert!(d < 1200.0, "{d}");
    }

    #[test]
    fn antipodes_are_half_the_circumference() {
        let d = great_circle_km(point(0.0, 0.0), point(0.0, 180.0));
        assert!((d - std::f64::consts::PI * EARTH_RADIUS_KM).abs() < 1e-6);
    }
}
