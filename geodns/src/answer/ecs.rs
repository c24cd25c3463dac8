//! EDNS Client Subnet (RFC 7871) as the authoritative side sees it.
//!
//! RFC 7871 section 6: "If the ADDRESS has bits set beyond SOURCE
//! PREFIX-LENGTH [...] the receiver MUST respond with FORMERR"; a source
//! prefix longer than the family allows is malformed too (hickory's decoder
//! rejects that and unknown families already). A source prefix of 0 means
//! the resolver wants no tailoring: we answer for the resolver's own address
//! with scope 0 (section 7.1.2).

use std::net::IpAddr;

use hickory_proto::op::Edns;
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use ipnet::IpNet;

/// A valid ECS option from a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientSubnetQuery {
    /// The client network, host bits clear.
    pub network: IpNet,
}

impl ClientSubnetQuery {
    /// The address to locate when the option asks for tailoring.
    pub fn locate_address(&self) -> Option<IpAddr> {
        (self.network.prefix_len() > 0).then(|| self.network.addr())
    }

    /// The option for the response: same family, address and source prefix,
    /// with `scope` (section 7.2.1).
    pub fn reply(&self, scope: u8) -> EdnsOption {
        EdnsOption::Subnet(ClientSubnet::new(
            self.network.addr(),
            self.network.prefix_len(),
            scope,
        ))
    }
}

/// The option was present but malformed: answer FORMERR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedEcs;

/// Reads the ECS option of `edns`, if any.
pub fn client_subnet(edns: Option<&Edns>) -> Result<Option<ClientSubnetQuery>, MalformedEcs> {
    let Some(EdnsOption::Subnet(subnet)) = edns.and_then(|edns| edns.option(EdnsCode::Subnet))
    else {
        return Ok(None);
    };
    let network = IpNet::new(subnet.addr(), subnet.source_prefix()).map_err(|_| MalformedEcs)?;
    if network.trunc().addr() != subnet.addr() {
        return Err(MalformedEcs);
    }
    Ok(Some(ClientSubnetQuery { network }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edns_with(subnet: ClientSubnet) -> Edns {
        let mut edns = Edns::new();
        edns.options_mut().insert(EdnsOption::Subnet(subnet));
        edns
    }

    #[test]
    fn valid_subnet_is_read() {
        let edns = edns_with(ClientSubnet::new("198.51.100.0".parse().unwrap(), 24, 0));
        let ecs = client_subnet(Some(&edns)).unwrap().unwrap();
        assert_eq!(ecs.network.to_string(), "198.51.100.0/24");
        assert_eq!(ecs.locate_address(), Some("198.51.100.0".parse().unwrap()));
    }

    #[test]
    fn bits_beyond_source_prefix_are_malformed() {
        let edns = edns_with(ClientSubnet::new("198.51.100.1".parse().unwrap(), 24, 0));
        assert_eq!(client_subnet(Some(&edns)), Err(MalformedEcs));
    }

    #[test]
    fn source_prefix_zero_asks_for_no_tailoring() {
        let edns = edns_with(ClientSubnet::new("0.0.0.0".parse().unwrap(), 0, 0));
        let ecs = client_subnet(Some(&edns)).unwrap().unwrap();
        assert_eq!(ecs.locate_address(), None);
    }

    #[test]
    fn absent_option_is_none() {
        assert_eq!(client_subnet(Some(&Edns::new())), Ok(None));
        assert_eq!(client_subnet(None), Ok(None));
    }
}
