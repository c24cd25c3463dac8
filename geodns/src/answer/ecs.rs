//! EDNS Client Subnet (RFC 7871) as the authoritative side sees it.
//!
//! The option is read from the raw packet by [`super::wire`], strictly, for
//! both paths: RFC 7871 section 6 says "If the ADDRESS has bits set beyond
//! SOURCE PREFIX-LENGTH [...] the receiver MUST respond with FORMERR", and
//! the address must have exactly the octets the prefix needs. A source
//! prefix of 0 means the resolver wants no tailoring: we answer for the
//! resolver's own address with scope 0 (section 7.1.2).

use std::net::IpAddr;

use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use ipnet::IpNet;

use super::wire::EcsView;

/// A valid ECS option from a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientSubnetQuery {
    /// The client network, host bits clear, in the option's own family.
    pub network: IpNet,
}

impl ClientSubnetQuery {
    /// The option as read from the wire.
    pub fn from_view(view: EcsView) -> Self {
        Self {
            network: IpNet::new(view.address, view.source)
                .unwrap_or_else(|_| IpNet::from(view.address)),
        }
    }

    /// The address to locate when the option asks for tailoring.
    pub fn locate_address(&self) -> Option<IpAddr> {
        (self.network.prefix_len() > 0).then(|| self.network.addr())
    }

    /// The option for the response: same family, address and source prefix,
    /// with `scope` (section 7.2.1), which is in the same family.
    pub fn reply(&self, scope: u8) -> EdnsOption {
        EdnsOption::Subnet(ClientSubnet::new(
            self.network.addr(),
            self.network.prefix_len(),
            scope,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_zero_asks_for_no_tailoring() {
        let ecs = ClientSubnetQuery::from_view(EcsView {
            address: "0.0.0.0".parse().unwrap(),
            source: 0,
        });
        assert_eq!(ecs.locate_address(), None);
        let ecs = ClientSubnetQuery::from_view(EcsView {
            address: "198.51.100.0".parse().unwrap(),
            source: 24,
        });
        assert_eq!(ecs.network.to_string(), "198.51.100.0/24");
        assert_eq!(ecs.locate_address(), Some("198.51.100.0".parse().unwrap()));
    }
}
