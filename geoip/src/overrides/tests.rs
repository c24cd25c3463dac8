use super::*;

fn at(latitude: f64, longitude: f64) -> Override {
    Override {
        location: Location {
            coordinates: Coordinates::new(latitude, longitude).unwrap(),
            country: None,
            continent: None,
        },
        place: None,
    }
}

fn table(networks: &[&str]) -> Overrides {
    let mut overrides = Overrides::new();
    for (index, network) in networks.iter().enumerate() {
        overrides
            .insert(network.parse().unwrap(), at(index as f64, 0.0))
            .unwrap();
    }
    overrides
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn longest_prefix_wins() {
    let overrides = table(&["10.0.0.0/8", "10.1.0.0/16", "2001:db8::/32"]);
    let (net, value) = overrides.lookup(ip("10.1.2.3")).unwrap();
    assert_eq!(net.to_string(), "10.1.0.0/16");
    assert_eq!(value.location.coordinates.latitude(), 1.0);
    assert_eq!(
        overrides.lookup(ip("10.2.0.1")).unwrap().0.to_string(),
        "10.0.0.0/8"
    );
    assert_eq!(
        overrides.lookup(ip("2001:db8::1")).unwrap().0.to_string(),
        "2001:db8::/32"
    );
    assert!(overrides.lookup(ip("192.0.2.1")).is_none());
}

#[test]
fn ipv4_mapped_addresses_use_the_ipv4_table() {
    let overrides = table(&["10.0.0.0/8"]);
    assert!(overrides.lookup(ip("::ffff:10.0.0.1")).is_some());
}

#[test]
fn duplicates_are_rejected() {
    let mut overrides = table(&["10.0.0.0/8"]);
    assert!(
        overrides
            .insert("10.0.0.0/8".parse().unwrap(), at(0.0, 0.0))
            .is_err()
    );
}

#[test]
fn uniform_prefix_excludes_foreign_overrides() {
    let overrides = table(&["10.1.0.0/16", "10.0.0.0/8"]);
    // 10.2.3.4 decided by 10.0.0.0/8 but 10.1.0.0/16 is inside: 10.2.0.0/15 is
    // the widest block around it free of 10.1/16.
    assert_eq!(overrides.uniform_prefix_len(ip("10.2.3.4"), 8), 15);
    // Inside 10.1.0.0/16 nothing more specific exists.
    assert_eq!(overrides.uniform_prefix_len(ip("10.1.9.9"), 16), 16);
    // A database /4 around 11.0.0.1 encloses both overrides.
    assert_eq!(overrides.uniform_prefix_len(ip("11.0.0.1"), 4), 8);
    assert_eq!(overrides.uniform_prefix_len(ip("200.0.0.1"), 1), 1);
}

#[test]
fn uniform_prefix_matches_brute_force() {
    let overrides = table(&[
        "10.0.0.0/8",
        "10.1.0.0/16",
        "10.1.128.0/17",
        "10.200.0.0/24",
        "172.16.0.0/12",
        "192.168.1.0/24",
    ]);
    let networks: Vec<Ipv4Net> = overrides.v4.iter().map(|(net, _)| net).collect();
    let mut state = 0x1234_5678_u32;
    for _ in 0..20_000 {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        // Concentrate samples around the overrides.
        let address = std::net::Ipv4Addr::from(if state.is_multiple_of(2) {
            state
        } else {
            0x0A00_0000 | (state >> 8)
        });
        let decided = (state % 9) as u8;
        let got = overrides.uniform_prefix_len(IpAddr::V4(address), decided);
        // Brute force: the shortest length >= decided whose block around the
        // address contains no network that leaves the address out.
        let expected = (decided..=32)
            .find(|&len| {
                let block = Ipv4Net::new(address, len).unwrap().trunc();
                networks
                    .iter()
                    .all(|net| !block.contains(net) || net.contains(&address))
                    && networks.iter().all(|net| {
                        // Partial overlap is impossible for prefixes; a network
                        // holding the block holds the address.
                        !net.contains(&block) || net.contains(&address)
                    })
            })
            .unwrap();
        assert_eq!(got, expected, "{address} decided /{decided}");
    }
}

#[test]
fn toml_with_places_and_inline_coordinates() {
    let overrides: Overrides = toml::from_str(
        r#"
        [places.amsterdam]
        latitude = 52.37
        longitude = 4.90
        country = "NL"

        [[networks]]
        network = "10.1.0.0/16"
        place = "amsterdam"

        [[networks]]
        network = "2001:db8:1::/48"
        latitude = 40.71
        longitude = -74.01
        country = "US"
        "#,
    )
    .unwrap();
    let (_, amsterdam) = overrides.lookup(ip("10.1.0.1")).unwrap();
    assert_eq!(amsterdam.place.as_deref(), Some("amsterdam"));
    assert_eq!(amsterdam.location.continent, Some(Continent::EU));
    let (_, new_york) = overrides.lookup(ip("2001:db8:1::5")).unwrap();
    assert_eq!(new_york.location.country.unwrap().as_str(), "US");
}

#[test]
fn toml_errors_name_the_entry() {
    let cases = [
        (
            "[[networks]]\nnetwork = \"10.0.0.0/8\"\nplace = \"nowhere\"\n",
            "networks[0] (10.0.0.0/8): unknown place \"nowhere\"",
        ),
        (
            "[[networks]]\nnetwork = \"10.0.0.0/8\"\nlatitude = 1.0\n",
            "networks[0] (10.0.0.0/8): give either place",
        ),
        (
            "[[networks]]\nnetwork = \"10.0.0.300/8\"\nlatitude = 1.0\nlongitude = 1.0\n",
            "invalid network",
        ),
        (
            "[places.x]\nlatitude = 100.0\nlongitude = 0.0\n",
            "places.x: invalid coordinates",
        ),
    ];
    for (text, expected) in cases {
        let message = toml::from_str::<Overrides>(text).unwrap_err().to_string();
        assert!(message.contains(expected), "{text}: {message}");
    }
}
