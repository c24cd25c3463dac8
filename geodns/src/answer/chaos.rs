//! Queries of class CHAOS: the server's identity (`id.server`,
//! `hostname.bind`) and version (`version.server`, `version.bind`), the
//! names operators and monitoring ask to tell servers of an anycast or NS
//! set apart (RFC 4892). Answered only with what the operator configured;
//! everything else of class CHAOS is refused.

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};

use crate::config::ServerConfig;

/// The CHAOS TXT names and which setting answers each.
const NAMES: [(&str, Setting); 4] = [
    ("id.server.", Setting::Identity),
    ("hostname.bind.", Setting::Identity),
    ("version.server.", Setting::Version),
    ("version.bind.", Setting::Version),
];

#[derive(Debug, Clone, Copy)]
enum Setting {
    Identity,
    Version,
}

/// The answer to a CHAOS query, with the TXT record when `server` has the
/// setting the name asks for and the type is TXT or ANY; REFUSED otherwise.
pub fn answer(request: &Message, server: &ServerConfig) -> (ResponseCode, Option<Record>) {
    let Some(query) = request.queries.first() else {
        return (ResponseCode::FormErr, None);
    };
    if !matches!(query.query_type(), RecordType::TXT | RecordType::ANY) {
        return (ResponseCode::Refused, None);
    }
    let asked = LowerName::new(query.name());
    let value = NAMES
        .iter()
        .find(|(name, _)| Name::from_ascii(name).is_ok_and(|name| LowerName::new(&name) == asked))
        .and_then(|(_, setting)| match setting {
            Setting::Identity => server.identity.as_deref(),
            Setting::Version => server.version.as_deref(),
        });
    let Some(value) = value else {
        return (ResponseCode::Refused, None);
    };
    let mut record = Record::from_rdata(
        query.name().clone(),
        0,
        RData::TXT(TXT::new(vec![value.to_owned()])),
    );
    record.dns_class = DNSClass::CH;
    (ResponseCode::NoError, Some(record))
}
