//! IPv6 ranges that carry an IPv4 address, and how to locate them.
//!
//! MaxMind-format databases store IPv4 networks once, under `::/96`, and
//! point `::ffff:0:0/96` (IPv4-mapped), `2001::/32` (Teredo) and `2002::/16`
//! (6to4) at the same subtree. A client in one of these ranges is where its
//! embedded IPv4 address is, so we locate that address (as gdnsd does), and
//! give the ECS scope back in the family of the query: an IPv4 scope of /24
//! for a mapped client is /120. A client outside them must never get a scope
//! wide enough to cover one of them, since the same bits mean a different
//! place there.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::Ipv6Net;

/// An IPv6 range whose addresses embed an IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alias {
    /// `::a.b.c.d` (IPv4-compatible, RFC 4291), where the databases keep IPv4.
    Compatible,
    /// `::ffff:a.b.c.d` (IPv4-mapped, RFC 4291).
    Mapped,
    /// `2001:0:S:S:F:P:C:C` (RFC 4380): the client address is the last 32
    /// bits, inverted.
    Teredo,
    /// `2002:a.b.c.d::/48` (RFC 3056).
    SixToFour,
}

/// Every alias range, for checks that a scope does not cross one.
pub const ALIAS_RANGES: [(Alias, Ipv6Net); 4] = [
    (
        Alias::Compatible,
        Ipv6Net::new_assert(Ipv6Addr::UNSPECIFIED, 96),
    ),
    (
        Alias::Mapped,
        Ipv6Net::new_assert(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96),
    ),
    (
        Alias::Teredo,
        Ipv6Net::new_assert(Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 32),
    ),
    (
        Alias::SixToFour,
        Ipv6Net::new_assert(Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16),
    ),
];

impl Alias {
    /// The alias range `address` is in, if any.
    pub fn of(address: Ipv6Addr) -> Option<Alias> {
        ALIAS_RANGES
            .iter()
            .find(|(_, range)| range.contains(&address))
            .map(|(alias, _)| *alias)
    }

    /// The IPv4 address embedded in `address` (which must be in this range).
    pub fn embedded(self, address: Ipv6Addr) -> Ipv4Addr {
        let bits = u128::from(address);
        match self {
            Alias::Compatible | Alias::Mapped => Ipv4Addr::from(bits as u32),
            Alias::Teredo => Ipv4Addr::from(!(bits as u32)),
            Alias::SixToFour => Ipv4Addr::from((bits >> 80) as u32),
        }
    }

    /// Where the embedded address starts: the IPv6 prefix length that an
    /// IPv4 prefix length is added to.
    fn offset(self) -> u8 {
        match self {
            Alias::Compatible | Alias::Mapped | Alias::Teredo => 96,
            Alias::SixToFour => 16,
        }
    }

    /// The IPv6 scope that covers the same clients as the IPv4 scope
    /// `v4_scope` around the embedded address.
    ///
    /// For Teredo the embedded address follows the server address, flags
    /// and port, so the scope covers them too: narrower than the IPv4 block,
    /// never wider, so never wrong.
    pub fn v6_scope(self, v4_scope: u8) -> u8 {
        (self.offset() + v4_scope.min(32)).min(128)
    }
}

/// The address to look a client up by: the embedded IPv4 address for alias
/// ranges, else the address itself; with the alias, to map scopes back.
pub fn lookup_address(client: IpAddr) -> (IpAddr, Option<Alias>) {
    match client {
        IpAddr::V4(_) => (client, None),
        IpAddr::V6(v6) => match Alias::of(v6) {
            // `::` and `::1` are not IPv4 clients.
            Some(Alias::Compatible) if u128::from(v6) <= 1 => (client, None),
            Some(alias) => (IpAddr::V4(alias.embedded(v6)), Some(alias)),
            None => (client, None),
        },
    }
}

/// The alias ranges as barriers for the location table: no run, and so no
/// scope, reaches into one from outside.
pub fn barriers() -> Vec<Ipv6Net> {
    ALIAS_RANGES.iter().map(|(_, range)| *range).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn embedded_addresses_are_found() {
        assert_eq!(
            lookup_address(ip("::ffff:198.51.100.7")),
            (ip("198.51.100.7"), Some(Alias::Mapped))
        );
        assert_eq!(
            lookup_address(ip("2002:c633:6407::1")),
            (ip("198.51.100.7"), Some(Alias::SixToFour))
        );
        // Teredo: client 198.51.100.7 is stored inverted in the last 32 bits.
        assert_eq!(
            lookup_address(ip("2001:0:4136:e378:8000:63bf:39cc:9bf8")),
            (ip("198.51.100.7"), Some(Alias::Teredo))
        );
        assert_eq!(
            lookup_address(ip("::198.51.100.7")),
            (ip("198.51.100.7"), Some(Alias::Compatible))
        );
        assert_eq!(lookup_address(ip("::1")), (ip("::1"), None));
        assert_eq!(lookup_address(ip("2001:db8::1")), (ip("2001:db8::1"), None));
        assert_eq!(lookup_address(ip("2001:1::1")), (ip("2001:1::1"), None));
    }

    #[test]
    fn scopes_come_back_in_the_query_family() {
        assert_eq!(Alias::Mapped.v6_scope(24), 120);
        assert_eq!(Alias::SixToFour.v6_scope(24), 40);
        assert_eq!(Alias::Teredo.v6_scope(32), 128);
    }
}
