//! From query bytes to response bytes.
//!
//! The transports hand every datagram or TCP frame to [`Responder::respond`]
//! and send back what it returns. It reads one immutable snapshot and never
//! blocks. Protocol behaviour lives here: REFUSED outside our zones (never an
//! open resolver), NXDOMAIN and NODATA with the SOA (RFC 2308), EDNS(0)
//! echoed and BADVERS for versions above 0 (RFC 6891), ECS (RFC 7871), TC
//! when a UDP answer does not fit, ANY per RFC 8482, and zone transfers only
//! for allowed clients over TCP.

mod ecs;
mod geo;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};

pub use ecs::{ClientSubnetQuery, MalformedEcs, client_subnet};
pub use geo::{GeoDecision, decide, records as geo_records};

use crate::geo::Family;
use crate::health::HealthTable;
use crate::metrics::{DnsMetrics, Transport};
use crate::snapshot::Snapshot;
use crate::zone::Resolution;

/// CNAME hops followed inside our zones before giving up.
const MAX_CNAME_CHAIN: usize = 8;
/// Payload assumed for clients without EDNS (RFC 1035 section 2.3.4).
const CLASSIC_UDP_PAYLOAD: usize = 512;

/// Answers queries from the current snapshot.
#[derive(Debug, Clone)]
pub struct Responder {
    snapshot: Arc<ArcSwap<Snapshot>>,
    health: Arc<HealthTable>,
    metrics: Arc<DnsMetrics>,
    max_udp_payload: u16,
}

/// The parts of a response before encoding.
struct Draft {
    rcode: ResponseCode,
    authoritative: bool,
    answers: Vec<Record>,
    authorities: Vec<Record>,
    additionals: Vec<Record>,
    ecs_scope: Option<u8>,
}

impl Draft {
    fn new(rcode: ResponseCode) -> Self {
        Self {
            rcode,
            authoritative: false,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
            ecs_scope: None,
        }
    }
}

impl Responder {
    /// A responder over `snapshot`.
    pub fn new(
        snapshot: Arc<ArcSwap<Snapshot>>,
        health: Arc<HealthTable>,
        metrics: Arc<DnsMetrics>,
        max_udp_payload: u16,
    ) -> Self {
        Self {
            snapshot,
            health,
            metrics,
            max_udp_payload: max_udp_payload.max(512),
        }
    }

    /// The response to `query` from `peer`, or `None` to send nothing (the
    /// packet is too short to answer, or is itself a response).
    pub fn respond(&self, query: &[u8], peer: IpAddr, transport: Transport) -> Option<Vec<u8>> {
        let started = Instant::now();
        let Some(header) = query.get(..12) else {
            self.metrics.dropped();
            return None;
        };
        if header[2] & 0x80 != 0 {
            // A response: answering it could start a packet loop.
            self.metrics.dropped();
            return None;
        }
        let id = u16::from_be_bytes([header[0], header[1]]);
        let request = match Message::from_vec(query) {
            Ok(request) => request,
            Err(error) => {
                tracing::debug!(%peer, %error, "malformed query");
                let opcode = OpCode::from_u8((header[2] >> 3) & 0x0F);
                let mut response = Message::error_msg(id, opcode, ResponseCode::FormErr);
                response.metadata.recursion_desired = header[2] & 0x01 != 0;
                self.metrics.query(
                    transport,
                    RecordType::Unknown(0),
                    ResponseCode::FormErr,
                    started.elapsed().as_secs_f64(),
                );
                return response.to_vec().ok();
            }
        };
        let qtype = request
            .queries
            .first()
            .map_or(RecordType::Unknown(0), Query::query_type);
        let (bytes, rcode) = self.respond_to(&request, peer, transport);
        self.metrics
            .query(transport, qtype, rcode, started.elapsed().as_secs_f64());
        bytes
    }

    fn respond_to(
        &self,
        request: &Message,
        peer: IpAddr,
        transport: Transport,
    ) -> (Option<Vec<u8>>, ResponseCode) {
        let edns = request.edns.as_ref();
        let finish = |draft: Draft, ecs: Option<&ClientSubnetQuery>| {
            let rcode = draft.rcode;
            (self.encode(request, draft, ecs, transport), rcode)
        };
        if request.metadata.op_code != OpCode::Query {
            return finish(Draft::new(ResponseCode::NotImp), None);
        }
        if request.queries.len() != 1 {
            return finish(Draft::new(ResponseCode::FormErr), None);
        }
        if edns.is_some_and(|edns| edns.version() > 0) {
            // RFC 6891 section 6.1.3: BADVERS, with our (version 0) OPT.
            return finish(Draft::new(ResponseCode::BADVERS), None);
        }
        let ecs = match client_subnet(edns) {
            Ok(ecs) => ecs,
            Err(MalformedEcs) => return finish(Draft::new(ResponseCode::FormErr), None),
        };
        self.metrics.ecs(ecs.is_some());
        let query = &request.queries[0];
        if query.query_class() != DNSClass::IN && query.query_class() != DNSClass::ANY {
            return finish(Draft::new(ResponseCode::Refused), ecs.as_ref());
        }
        let snapshot = self.snapshot.load();
        let draft = match query.query_type() {
            RecordType::AXFR | RecordType::IXFR => self.transfer(&snapshot, query, peer, transport),
            _ => {
                let client = ecs
                    .as_ref()
                    .and_then(ClientSubnetQuery::locate_address)
                    .unwrap_or(peer);
                self.lookup(&snapshot, query, client)
            }
        };
        finish(draft, ecs.as_ref())
    }

    /// Answers a normal query, following CNAMEs inside our zones.
    fn lookup(&self, snapshot: &Snapshot, query: &Query, client: IpAddr) -> Draft {
        let qtype = query.query_type();
        let mut name: Name = query.name().clone();
        let mut draft = Draft::new(ResponseCode::NoError);
        for hop in 0..=MAX_CNAME_CHAIN {
            let lower = LowerName::new(&name);
            let Some(zone) = snapshot.find_zone(&lower) else {
                if hop == 0 {
                    // Not ours: never recurse, never guess.
                    draft.rcode = ResponseCode::Refused;
                }
                return draft;
            };
            if hop == 0 {
                draft.authoritative = true;
            }
            match zone.resolve(&lower, qtype) {
                Resolution::Records(records) => {
                    draft.answers.extend(records);
                    return draft;
                }
                Resolution::Cname(alias) => {
                    let target = match &alias.data {
                        RData::CNAME(target) => target.0.clone(),
                        _ => return draft,
                    };
                    draft.answers.push(*alias);
                    if qtype == RecordType::CNAME {
                        return draft;
                    }
                    name = target;
                }
                Resolution::Geo(service_id) => {
                    let family = match qtype {
                        RecordType::AAAA => Family::V6,
                        _ => Family::V4,
                    };
                    let epoch = self.health.epoch();
                    if let Some(decision) = decide(snapshot, service_id, family, client, epoch) {
                        if let Some(counters) = snapshot.counters.get(service_id) {
                            if decision
                                .located
                                .as_ref()
                                .is_none_or(|found| found.location.is_none())
                            {
                                counters.unlocated.inc();
                            }
                            if let Some(&first) = decision.selection.edges.first() {
                                counters.answered(first, decision.selection.reason);
                            }
                            if decision.selection.reason == crate::geo::Reason::FailOpen {
                                counters.fail_open.inc();
                            }
                        }
                        let records =
                            geo_records(snapshot, service_id, family, &decision.selection, &name);
                        draft.ecs_scope = Some(decision.scope);
                        if records.is_empty() {
                            draft.authorities.push(zone.negative_soa());
                        }
                        draft.answers.extend(records);
                    }
                    return draft;
                }
                Resolution::NoData => {
                    draft.authorities.push(zone.negative_soa());
                    return draft;
                }
                Resolution::NxDomain => {
                    // RFC 6604: the code describes the last name in the chain.
                    draft.rcode = ResponseCode::NXDomain;
                    draft.authorities.push(zone.negative_soa());
                    return draft;
                }
                Resolution::Referral { ns, glue } => {
                    if hop == 0 {
                        draft.authoritative = false;
                        draft.authorities.extend(ns.iter().cloned());
                        draft.additionals.extend(glue);
                    }
                    return draft;
                }
            }
        }
        tracing::debug!(name = %query.name(), "CNAME chain too long");
        draft
    }

    /// AXFR (and IXFR, answered with the full zone per RFC 1995 section 4)
    /// for allowed clients over TCP; REFUSED for everyone else.
    fn transfer(
        &self,
        snapshot: &Snapshot,
        query: &Query,
        peer: IpAddr,
        transport: Transport,
    ) -> Draft {
        let lower = LowerName::new(query.name());
        let zone = match snapshot.find_zone(&lower) {
            Some(zone) if zone.apex() == &lower => zone,
            _ => return Draft::new(ResponseCode::Refused),
        };
        if transport != Transport::Tcp || !zone.transfer_allowed(peer) {
            return Draft::new(ResponseCode::Refused);
        }
        let mut draft = Draft::new(ResponseCode::NoError);
        draft.authoritative = true;
        draft.answers.push(zone.soa().clone());
        draft
            .answers
            .extend(zone.rrsets().flat_map(|set| set.records.iter().cloned()));
        draft.answers.push(zone.soa().clone());
        draft
    }

    /// Encodes the response, truncating for UDP when it does not fit.
    fn encode(
        &self,
        request: &Message,
        draft: Draft,
        ecs: Option<&ClientSubnetQuery>,
        transport: Transport,
    ) -> Option<Vec<u8>> {
        let mut response = Message::new(
            request.metadata.id,
            MessageType::Response,
            request.metadata.op_code,
        );
        response.metadata.response_code = draft.rcode;
        response.metadata.authoritative = draft.authoritative;
        response.metadata.recursion_desired = request.metadata.recursion_desired;
        response.metadata.checking_disabled = request.metadata.checking_disabled;
        response.queries = request.queries.clone();
        response.answers = draft.answers;
        response.authorities = draft.authorities;
        response.additionals = draft.additionals;
        let limit = match (transport, &request.edns) {
            (Transport::Tcp, _) => usize::from(u16::MAX),
            (Transport::Udp, Some(edns)) => {
                usize::from(edns.max_payload().clamp(512, self.max_udp_payload))
            }
            (Transport::Udp, None) => CLASSIC_UDP_PAYLOAD,
        };
        if request.edns.is_some() {
            let mut edns = Edns::new();
            edns.set_max_payload(self.max_udp_payload);
            edns.set_version(0);
            edns.set_dnssec_ok(false);
            if let Some(ecs) = ecs {
                // Static answers are the same everywhere: scope 0.
                let scope = if ecs.network.prefix_len() == 0 {
                    0
                } else {
                    draft.ecs_scope.unwrap_or(0)
                };
                edns.options_mut().insert(ecs.reply(scope));
            }
            response.set_edns(edns);
        }
        let bytes = match response.to_vec() {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::warn!(%error, "cannot encode response");
                let mut failure = Message::error_msg(
                    request.metadata.id,
                    request.metadata.op_code,
                    ResponseCode::ServFail,
                );
                failure.queries = request.queries.clone();
                return failure.to_vec().ok();
            }
        };
        if bytes.len() <= limit {
            return Some(bytes);
        }
        // RFC 2181 section 9: set TC and let the client retry over TCP.
        response.answers.clear();
        response.authorities.clear();
        response.additionals.clear();
        response.metadata.truncation = true;
        response.to_vec().ok()
    }
}
