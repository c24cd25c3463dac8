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

use super::cookie::{CookieView, OPTION_COOKIE, REPLY_LENGTH};

/// Longest name on the wire (RFC 1035 section 2.3.4).
const MAX_NAME: usize = 255;
const HEADER: usize = 12;
const TYPE_OPT: u16 = 41;
const OPTION_ECS: u16 = 8;
/// NSID (RFC 5001): answered on the full path, which adds the identity.
const OPTION_NSID: u16 = 3;
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
    /// The DO bit (RFC 3225), copied into the response.
    pub dnssec_ok: bool,
    /// The ECS option, if any.
    pub ecs: Option<EcsView>,
    /// The COOKIE option, if any.
    pub cookie: Option<CookieView>,
}

/// What the full path reads from the raw packet itself: the question as
/// sent and the OPT record, found by walking the sections. hickory-proto's
/// decoder drops ECS address octets beyond the source prefix (which RFC
/// 7871 section 6 makes a FORMERR) and, when it refuses a packet, leaves
/// nothing to build a proper FORMERR from (RFC 6891 section 7 wants the
/// OPT record in it).
#[derive(Debug, Clone, Copy, Default)]
pub struct RawQuery<'a> {
    /// The first question, name uncompressed, with type and class.
    pub question: Option<&'a [u8]>,
    /// The first OPT record of the additional section.
    pub opt: Option<RawOpt<'a>>,
}

/// An OPT record as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawOpt<'a> {
    /// The requestor's UDP payload size.
    pub payload: u16,
    /// EDNS version.
    pub version: u8,
    /// The DO bit.
    pub dnssec_ok: bool,
    /// The options (RDATA).
    pub options: &'a [u8],
}

/// The ECS option was present but malformed (or there were two): FORMERR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedEcs;

/// The COOKIE option had a length RFC 7873 does not allow (or there were
/// two): FORMERR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedCookie;

impl RawOpt<'_> {
    /// The ECS option, checked as strictly as the fast path checks it.
    pub fn ecs(&self) -> Result<Option<EcsView>, MalformedEcs> {
        let mut ecs = None;
        let mut rest = self.options;
        while !rest.is_empty() {
            let (Some(code), Some(length)) = (read_u16(rest, 0), read_u16(rest, 2)) else {
                return Err(MalformedEcs);
            };
            let Some(data) = rest.get(4..4 + usize::from(length)) else {
                return Err(MalformedEcs);
            };
            if code == OPTION_ECS {
                if ecs.is_some() {
                    return Err(MalformedEcs);
                }
                ecs = Some(parse_ecs(data).ok_or(MalformedEcs)?);
            }
            rest = &rest[4 + usize::from(length)..];
        }
        Ok(ecs)
    }

    /// The COOKIE option, checked as the fast path checks it.
    pub fn cookie(&self) -> Result<Option<CookieView>, MalformedCookie> {
        let mut cookie = None;
        let mut rest = self.options;
        while let (Some(code), Some(length)) = (read_u16(rest, 0), read_u16(rest, 2)) {
            let Some(data) = rest.get(4..4 + usize::from(length)) else {
                break;
            };
            if code == OPTION_COOKIE {
                if cookie.is_some() {
                    return Err(MalformedCookie);
                }
                cookie = Some(CookieView::parse(data).ok_or(MalformedCookie)?);
            }
            rest = &rest[4 + usize::from(length)..];
        }
        Ok(cookie)
    }
}

/// Walks `packet` for its question and OPT record, as far as it is well
/// formed; never fails, never reads out of bounds.
pub fn scan(packet: &[u8]) -> RawQuery<'_> {
    let mut raw = RawQuery::default();
    let Some(header) = packet.get(..HEADER) else {
        return raw;
    };
    let count = |at: usize| usize::from(u16::from_be_bytes([header[at], header[at + 1]]));
    let mut at = HEADER;
    for index in 0..count(4) {
        let Some(end) = skip_name(packet, at).map(|end| end + 4) else {
            return raw;
        };
        if end > packet.len() {
            return raw;
        }
        if index == 0 && uncompressed(packet, at) {
            raw.question = Some(&packet[at..end]);
        }
        at = end;
    }
    let (answers, authorities, additionals) = (count(6), count(8), count(10));
    for index in 0..answers + authorities + additionals {
        let Some(fixed) = skip_name(packet, at) else {
            return raw;
        };
        let (Some(kind), Some(class), Some(ttl_high), Some(length)) = (
            read_u16(packet, fixed),
            read_u16(packet, fixed + 2),
            read_u16(packet, fixed + 4),
            read_u16(packet, fixed + 8),
        ) else {
            return raw;
        };
        let data_at = fixed + 10;
        let Some(data) = packet.get(data_at..data_at + usize::from(length)) else {
            return raw;
        };
        if index >= answers + authorities && kind == TYPE_OPT && raw.opt.is_none() {
            raw.opt = Some(RawOpt {
                payload: class,
                version: (ttl_high & 0xFF) as u8,
                dnssec_ok: read_u16(packet, fixed + 6).is_some_and(|flags| flags & 0x8000 != 0),
                options: data,
            });
        }
        at = data_at + usize::from(length);
    }
    raw
}

/// The offset just past the name at `at` (labels or a compression pointer).
fn skip_name(packet: &[u8], mut at: usize) -> Option<usize> {
    for _ in 0..128 {
        let length = *packet.get(at)?;
        match length {
            0 => return Some(at + 1),
            1..=63 => at += 1 + usize::from(length),
            0xC0..=0xFF => {
                packet.get(at + 1)?;
                return Some(at + 2);
            }
            _ => return None,
        }
    }
    None
}

/// Whether the name at `at` is written out in full (no pointer) and within
/// the 255 octets of RFC 1035 section 2.3.4, so that it can be copied into
/// a response on its own and the response still decodes.
fn uncompressed(packet: &[u8], start: usize) -> bool {
    let mut at = start;
    while let Some(&length) = packet.get(at) {
        match length {
            0 => return at + 1 - start <= MAX_NAME_OCTETS,
            1..=63 => at += 1 + usize::from(length),
            _ => return false,
        }
    }
    false
}

/// The longest name on the wire, its final root label included.
const MAX_NAME_OCTETS: usize = 255;

fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
}

/// A FORMERR to a packet that could not be decoded: the header's ID,
/// opcode and RD, the question when it could be read, and an OPT record
/// when the query had one (RFC 6891 section 7).
pub fn format_error(packet: &[u8], raw: &RawQuery<'_>, max_payload: u16) -> Option<Vec<u8>> {
    let header = packet.get(..HEADER)?;
    let mut out = Vec::with_capacity(HEADER + 64);
    out.extend_from_slice(&header[..2]);
    out.push(0x80 | (header[2] & 0x79));
    out.push(1); // FORMERR
    let questions = u16::from(raw.question.is_some());
    out.extend_from_slice(&questions.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&u16::from(raw.opt.is_some()).to_be_bytes());
    if let Some(question) = raw.question {
        out.extend_from_slice(question);
    }
    if let Some(opt) = raw.opt {
        append_opt(&mut out, max_payload, opt.dnssec_ok, None, 0, None);
    }
    Some(out)
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
    let dnssec_ok = fixed[7] & 0x80 != 0;
    if extended_rcode != 0 || version != 0 {
        return None;
    }
    let rdlength = usize::from(u16::from_be_bytes([fixed[9], fixed[10]]));
    let options = packet.get(at + 11..)?;
    if options.len() != rdlength {
        return None;
    }
    let mut ecs = None;
    let mut cookie = None;
    let mut rest = options;
    while !rest.is_empty() {
        let code = u16::from_be_bytes([*rest.first()?, *rest.get(1)?]);
        let length = usize::from(u16::from_be_bytes([*rest.get(2)?, *rest.get(3)?]));
        let data = rest.get(4..4 + length)?;
        if code == OPTION_NSID {
            return None;
        }
        if code == OPTION_COOKIE {
            if cookie.is_some() {
                return None;
            }
            cookie = Some(CookieView::parse(data)?);
        }
        if code == OPTION_ECS {
            if ecs.is_some() {
                return None;
            }
            ecs = Some(parse_ecs(data)?);
        }
        rest = &rest[4 + length..];
    }
    Some(EdnsView {
        payload,
        dnssec_ok,
        ecs,
        cookie,
    })
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

/// Appends our OPT record: payload `max_payload`, version 0, DO as the
/// query had it (RFC 3225 section 3), the ECS option echoed with `scope`
/// when the query had one, and our COOKIE option when given.
pub fn append_opt(
    out: &mut Vec<u8>,
    max_payload: u16,
    dnssec_ok: bool,
    ecs: Option<EcsView>,
    scope: u8,
    cookie: Option<&[u8; REPLY_LENGTH]>,
) {
    out.push(0);
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&max_payload.to_be_bytes());
    out.extend_from_slice(&[0, 0, if dnssec_ok { 0x80 } else { 0 }, 0]);
    let rdlength_at = out.len();
    out.extend_from_slice(&[0, 0]);
    if let Some(ecs) = ecs {
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
        out.extend_from_slice(&OPTION_ECS.to_be_bytes());
        out.extend_from_slice(&(option_len as u16).to_be_bytes());
        out.extend_from_slice(&family.to_be_bytes());
        out.push(ecs.source);
        out.push(if ecs.source == 0 { 0 } else { scope });
        out.extend_from_slice(&bytes[..octets]);
    }
    if let Some(cookie) = cookie {
        out.extend_from_slice(&OPTION_COOKIE.to_be_bytes());
        out.extend_from_slice(&(REPLY_LENGTH as u16).to_be_bytes());
        out.extend_from_slice(cookie);
    }
    let rdlength = (out.len() - rdlength_at - 2) as u16;
    out[rdlength_at..rdlength_at + 2].copy_from_slice(&rdlength.to_be_bytes());
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
    fn scan_finds_question_and_opt() {
        let mut packet = query("example.com.", RecordType::A, Some(("198.51.100.0", 24)));
        let raw = scan(&packet);
        assert_eq!(raw.question.map(<[u8]>::len), Some(13 + 4));
        let opt = raw.opt.unwrap();
        assert_eq!((opt.version, opt.dnssec_ok), (0, false));
        assert_eq!(opt.ecs().unwrap().map(|ecs| ecs.source), Some(24));
        // One address octet more than /24 needs: option length and
        // RDLENGTH (low bytes) grow by one.
        let n = packet.len();
        packet[n - 8] += 1;
        packet[n - 12] += 1;
        packet.push(0);
        let opt = scan(&packet).opt.unwrap();
        assert_eq!(opt.ecs(), Err(MalformedEcs));
    }

    #[test]
    fn scan_survives_garbage() {
        for packet in [
            &[][..],
            &[0; 12],
            &[0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0xC0],
        ] {
            let raw = scan(packet);
            assert!(raw.question.is_none() && raw.opt.is_none());
        }
    }

    #[test]
    fn format_error_keeps_question_and_opt() {
        let mut packet = query("example.com.", RecordType::A, Some(("192.0.2.0", 24)));
        packet[2] |= 0x01;
        let raw = scan(&packet);
        let response = format_error(&packet, &raw, 1232).unwrap();
        let message = Message::from_vec(&response).unwrap();
        assert_eq!(
            message.metadata.response_code,
            hickory_proto::op::ResponseCode::FormErr
        );
        assert_eq!(message.queries.len(), 1);
        assert!(message.metadata.recursion_desired);
        assert!(message.edns.is_some());
    }

    #[test]
    fn appended_opt_decodes_with_hickory() {
        let mut packet = query("example.com.", RecordType::A, None);
        packet[11] = 1; // ARCOUNT
        let ecs = EcsView {
            address: "2001:db8::".parse().unwrap(),
            source: 56,
        };
        append_opt(&mut packet, 1232, true, Some(ecs), 48, None);
        let message = Message::from_vec(&packet).unwrap();
        let edns = message.edns.unwrap();
        assert_eq!(edns.max_payload(), 1232);
        assert!(edns.flags().dnssec_ok);
        let Some(EdnsOption::Subnet(subnet)) =
            edns.option(hickory_proto::rr::rdata::opt::EdnsCode::Subnet)
        else {
            panic!("ECS");
        };
        assert_eq!((subnet.source_prefix(), subnet.scope_prefix()), (56, 48));
    }
}
