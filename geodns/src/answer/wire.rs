//! Reading a query straight from the wire, just far enough to answer it
//! from the answer cache, and writing the parts of a response that differ
//! between clients (header ID and flags, question case, OPT with ECS).
//!
//! Only plain queries take this path: one question of class IN, no answer
//! or authority records, at most an OPT record of EDNS version 0, and
//! nothing after it. Everything else (including every malformed packet)
//! returns `None` here and goes through hickory-proto's full decoder, which
//! produces the proper error responses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Longest name on the wire (RFC 1035 section 2.3.4).
const MAX_NAME: usize = 255;
const HEADER: usize = 12;
const TYPE_OPT: u16 = 41;
const OPTION_ECS: u16 = 8;
const CLASS_IN: u16 = 1;

/// A plain query, borrowed from the packet.
#[derive(Debug)]
pub struct QueryView<'a> {
    packet: &'a [u8],
    question_end: usize,
    /// Lowercased question name in wire form, followed by the type: the cache key.
    key: [u8; MAX_NAME + 2],
    key_len: usize,
    /// The question type.
    pub qtype: u16,
    /// EDNS, when the query has an OPT record.
    pub edns: Option<EdnsView>,
}

/// The OPT record of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdnsView {
    /// The requestor's UDP payload size.
    pub payload: u16,
    /// The ECS option, if any.
    pub ecs: Option<EcsView>,
}

/// A well-formed ECS option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EcsView {
    /// The address, host bits clear.
    pub address: IpAddr,
    /// SOURCE PREFIX-LENGTH.
    pub source: u8,
}

impl<'a> QueryView<'a> {
    /// Parses `packet`, or `None` when it is anything but a plain query.
    pub fn parse(packet: &'a [u8]) -> Option<Self> {
        let header = packet.get(..HEADER)?;
        // QR clear, opcode QUERY, TC clear; Z and RCODE clear.
        if header[2] & 0xFA != 0 || header[3] & 0x4F != 0 {
            return None;
        }
        let count = |at: usize| u16::from_be_bytes([header[at], header[at + 1]]);
        if count(4) != 1 || count(6) != 0 || count(8) != 0 || count(10) > 1 {
            return None;
        }
        let mut key = [0u8; MAX_NAME + 2];
        let mut at = HEADER;
        let mut key_len = 0;
        loop {
            let length = usize::from(*packet.get(at)?);
            if length > 63 {
                // Compression pointers have no place in a question.
                return None;
            }
            let label = packet.get(at..at + 1 + length)?;
            if key_len + label.len() > MAX_NAME {
                return None;
            }
            for (slot, byte) in key[key_len..key_len + label.len()].iter_mut().zip(label) {
                *slot = byte.to_ascii_lowercase();
            }
            key_len += label.len();
            at += 1 + length;
            if length == 0 {
                break;
            }
        }
        let qtype = u16::from_be_bytes([*packet.get(at)?, *packet.get(at + 1)?]);
        let qclass = u16::from_be_bytes([*packet.get(at + 2)?, *packet.get(at + 3)?]);
        if qclass != CLASS_IN || matches!(qtype, 251..=255) || qtype == TYPE_OPT {
            // IXFR, AXFR, MAILB, MAILA, ANY: the full path.
            return None;
        }
        key[key_len..key_len + 2].copy_from_slice(&qtype.to_be_bytes());
        key_len += 2;
        let question_end = at + 4;
        let edns = if count(10) == 1 {
            Some(parse_opt(packet, question_end)?)
        } else if packet.len() == question_end {
            None
        } else {
            return None;
        };
        Some(Self {
            packet,
            question_end,
            key,
            key_len,
            qtype,
            edns,
        })
    }

    /// Cache key: lowercased name and type.
    pub fn key(&self) -> &[u8] {
        &self.key[..self.key_len]
    }

    /// The question section as sent (original letter case).
    pub fn question(&self) -> &[u8] {
        &self.packet[HEADER..self.question_end]
    }

    /// The 16-bit ID.
    pub fn id(&self) -> [u8; 2] {
        [self.packet[0], self.packet[1]]
    }

    /// RD (byte 2, bit 0) and CD (byte 3, bit 4), copied into responses.
    pub fn copied_flags(&self) -> (u8, u8) {
        (self.packet[2] & 0x01, self.packet[3] & 0x10)
    }
}

/// Parses the OPT record that must end the packet.
fn parse_opt(packet: &[u8], at: usize) -> Option<EdnsView> {
    // Root owner name, then type, class (payload), TTL, RDLENGTH.
    let fixed = packet.get(at..at + 11)?;
    if fixed[0] != 0 || u16::from_be_bytes([fixed[1], fixed[2]]) != TYPE_OPT {
        return None;
    }
    let payload = u16::from_be_bytes([fixed[3], fixed[4]]);
    let (extended_rcode, version) = (fixed[5], fixed[6]);
    if extended_rcode != 0 || version != 0 {
        return None;
    }
    let rdlength = usize::from(u16::from_be_bytes([fixed[9], fixed[10]]));
    let options = packet.get(at + 11..)?;
    if options.len() != rdlength {
        return None;
    }
    let mut ecs = None;
    let mut rest = options;
    while !rest.is_empty() {
        let code = u16::from_be_bytes([*rest.first()?, *rest.get(1)?]);
        let length = usize::from(u16::from_be_bytes([*rest.get(2)?, *rest.get(3)?]));
        let data = rest.get(4..4 + length)?;
        if code == OPTION_ECS {
            if ecs.is_some() {
                return None;
            }
            ecs = Some(parse_ecs(data)?);
        }
        rest = &rest[4 + length..];
    }
    Some(EdnsView { payload, ecs })
}

/// RFC 7871 section 6, strictly: known family, prefix within it, exactly
/// the address octets the prefix needs, no bits set beyond it.
fn parse_ecs(data: &[u8]) -> Option<EcsView> {
    let family = u16::from_be_bytes([*data.first()?, *data.get(1)?]);
    let source = *data.get(2)?;
    let address = data.get(4..)?;
    if address.len() != usize::from(source).div_ceil(8) {
        return None;
    }
    let address = match family {
        1 if source <= 32 => {
            let mut octets = [0u8; 4];
            octets.get_mut(..address.len())?.copy_from_slice(address);
            IpAddr::V4(Ipv4Addr::from(octets))
        }
        2 if source <= 128 => {
            let mut octets = [0u8; 16];
            octets.get_mut(..address.len())?.copy_from_slice(address);
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        _ => return None,
    };
    let masked = ipnet::IpNet::new(address, source).ok()?.trunc().addr();
    (masked == address).then_some(EcsView { address, source })
}

/// Appends our OPT record: payload `max_payload`, version 0, no flags, and
/// the ECS option echoed with `scope` when the query had one.
pub fn append_opt(out: &mut Vec<u8>, max_payload: u16, ecs: Option<EcsView>, scope: u8) {
    out.push(0);
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&max_payload.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    match ecs {
        None => out.extend_from_slice(&[0, 0]),
        Some(ecs) => {
            let octets = usize::from(ecs.source).div_ceil(8);
            let (family, bytes): (u16, [u8; 16]) = match ecs.address {
                IpAddr::V4(v4) => {
                    let mut bytes = [0u8; 16];
                    bytes[..4].copy_from_slice(&v4.octets());
                    (1, bytes)
                }
                IpAddr::V6(v6) => (2, v6.octets()),
            };
            let option_len = 4 + octets;
            out.extend_from_slice(&((option_len + 4) as u16).to_be_bytes());
            out.extend_from_slice(&OPTION_ECS.to_be_bytes());
            out.extend_from_slice(&(option_len as u16).to_be_bytes());
            out.extend_from_slice(&family.to_be_bytes());
            out.push(ecs.source);
            out.push(if ecs.source == 0 { 0 } else { scope });
            out.extend_from_slice(&bytes[..octets]);
        }
    }
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::{Edns, Message, Query};
    use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
    use hickory_proto::rr::{Name, RecordType};

    use super::*;

    fn query(name: &str, qtype: RecordType, ecs: Option<(&str, u8)>) -> Vec<u8> {
        let mut message = Message::query();
        message.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        if let Some((address, prefix)) = ecs {
            let mut edns = Edns::new();
            edns.options_mut()
                .insert(EdnsOption::Subnet(ClientSubnet::new(
                    address.parse().unwrap(),
                    prefix,
                    0,
                )));
            message.set_edns(edns);
        }
        message.to_vec().unwrap()
    }

    #[test]
    fn plain_query_is_read() {
        let packet = query(
            "WwW.Example.COM.",
            RecordType::A,
            Some(("198.51.100.0", 24)),
        );
        let view = QueryView::parse(&packet).unwrap();
        assert_eq!(view.qtype, 1);
        assert_eq!(&view.key()[..4], b"\x03www");
        let edns = view.edns.unwrap();
        assert_eq!(
            edns.ecs,
            Some(EcsView {
                address: "198.51.100.0".parse().unwrap(),
                source: 24
            })
        );
        assert_eq!(view.question().len(), 17 + 4);
    }

    #[test]
    fn key_ignores_case() {
        let upper = query("WWW.EXAMPLE.COM.", RecordType::A, None);
        let lower = query("www.example.com.", RecordType::A, None);
        assert_eq!(
            QueryView::parse(&upper).unwrap().key(),
            QueryView::parse(&lower).unwrap().key()
        );
    }

    #[test]
    fn unusual_queries_take_the_full_path() {
        assert!(QueryView::parse(&query("example.com.", RecordType::ANY, None)).is_none());
        assert!(QueryView::parse(&query("example.com.", RecordType::AXFR, None)).is_none());
        let mut trailing = query("example.com.", RecordType::A, None);
        trailing.push(0);
        assert!(QueryView::parse(&trailing).is_none());
        let mut response = query("example.com.", RecordType::A, None);
        response[2] |= 0x80;
        assert!(QueryView::parse(&response).is_none());
        assert!(QueryView::parse(&[0u8; 11]).is_none());
    }

    #[test]
    fn ecs_is_checked_strictly() {
        assert_eq!(
            parse_ecs(&[0, 1, 24, 0, 192, 0, 2]).map(|e| e.source),
            Some(24)
        );
        assert!(
            parse_ecs(&[0, 1, 23, 0, 192, 0, 3]).is_none(),
            "bits beyond prefix"
        );
        assert!(
            parse_ecs(&[0, 1, 33, 0, 1, 2, 3, 4, 5]).is_none(),
            "prefix too long"
        );
        assert!(parse_ecs(&[0, 3, 8, 0, 1]).is_none(), "unknown family");
        assert!(
            parse_ecs(&[0, 1, 24, 0, 192, 0, 2, 0]).is_none(),
            "extra octet"
        );
        assert_eq!(parse_ecs(&[0, 2, 0, 0]).map(|e| e.source), Some(0));
    }

    #[test]
    fn appended_opt_decodes_with_hickory() {
        let mut packet = query("example.com.", RecordType::A, None);
        packet[11] = 1; // ARCOUNT
        let ecs = EcsView {
            address: "2001:db8::".parse().unwrap(),
            source: 56,
        };
        append_opt(&mut packet, 1232, Some(ecs), 48);
        let message = Message::from_vec(&packet).unwrap();
        let edns = message.edns.unwrap();
        assert_eq!(edns.max_payload(), 1232);
        let Some(EdnsOption::Subnet(subnet)) =
            edns.option(hickory_proto::rr::rdata::opt::EdnsCode::Subnet)
        else {
            panic!("ECS");
        };
        assert_eq!((subnet.source_prefix(), subnet.scope_prefix()), (56, 48));
    }
}
