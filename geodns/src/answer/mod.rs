//! From query bytes to response bytes.
//!
//! The transports hand every datagram or TCP frame here. Plain UDP queries
//! are first looked up in the receive loop's [`AnswerCache`]; everything
//! else, and every miss, takes the full path: decode with hickory-proto,
//! resolve against one immutable snapshot, encode. Protocol behaviour lives
//! in the full path: REFUSED outside our zones (never an open resolver),
//! NXDOMAIN and NODATA with the SOA (RFC 2308), EDNS(0) echoed and BADVERS
//! for versions above 0 (RFC 6891), ECS (RFC 7871), TC when a UDP answer
//! does not fit, ANY per RFC 8482, and zone transfers only for allowed
//! clients over TCP.

mod cache;
mod chaos;
pub mod cookie;
mod ecs;
mod geo;
pub mod rate_limit;
mod wire;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption, NSIDPayload};
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, RecordType};
use ipnet::IpNet;
use prometheus_client::metrics::counter::Counter;
use shared::log_limit::LogLimiter;

pub use cache::{AnswerCache, CacheMetrics, Cached};
pub use ecs::ClientSubnetQuery;
pub use geo::{GeoDecision, decide, records as geo_records};
pub use wire::{EcsView, EdnsView, MalformedEcs, QueryView, RawOpt, RawQuery};

use crate::geo::{Family, Reason};
use crate::health::HealthTable;
use crate::metrics::{DnsMetrics, Transport};
use crate::snapshot::Snapshot;
use crate::zone::Resolution;
use cookie::{CookieView, ServerCookies};
use rate_limit::{RateLimiter, ResponseClass, Verdict};

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
    ecs_present: Counter,
    ecs_absent: Counter,
    malformed: Arc<MalformedWarnings>,
    /// UDP response rate limiting; `None` when off.
    limiter: Option<Arc<RateLimiter>>,
    /// DNS server cookies.
    cookies: ServerCookies,
}

/// Warnings about malformed queries, one line per reason every ten seconds
/// for the whole process (a flood of bad packets is one line, with the
/// count of those left out).
#[derive(Debug)]
struct MalformedWarnings {
    undecodable: LogLimiter,
    ecs: LogLimiter,
}

impl MalformedWarnings {
    fn new() -> Self {
        Self {
            undecodable: LogLimiter::new(MALFORMED_WARNING_INTERVAL),
            ecs: LogLimiter::new(MALFORMED_WARNING_INTERVAL),
        }
    }
}

/// At most one warning per reason in this time.
const MALFORMED_WARNING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// A response before encoding, with what the cache needs to know about it.
struct Answered {
    message: Message,
    ecs: Option<ClientSubnetQuery>,
    /// The ECS scope of a client-dependent answer; `None` for answers that
    /// are the same for everyone.
    scope: Option<u8>,
    /// Counters bumped for this answer.
    counters: Vec<Counter>,
    /// Whether the answer may be served to other clients from the cache.
    cacheable: bool,
    /// The NSID option's payload, when the query asked and we have one.
    nsid: Option<String>,
    /// What the rate limiter charges it to.
    class: ResponseClass,
    /// Our COOKIE option, when the query had one.
    cookie: Option<[u8; cookie::REPLY_LENGTH]>,
    /// Whether the query's server cookie is one of ours: its source
    /// address is proven.
    verified: bool,
}

impl Answered {
    fn new(request: &Message, rcode: ResponseCode) -> Self {
        let mut message = Message::new(
            request.metadata.id,
            MessageType::Response,
            request.metadata.op_code,
        );
        message.metadata.response_code = rcode;
        message.metadata.recursion_desired = request.metadata.recursion_desired;
        message.metadata.checking_disabled = request.metadata.checking_disabled;
        message.queries = request.queries.clone();
        Self {
            message,
            ecs: None,
            scope: None,
            counters: Vec::new(),
            cacheable: false,
            nsid: None,
            class: ResponseClass::MALFORMED,
            cookie: None,
            verified: false,
        }
    }

    fn rcode(&self) -> ResponseCode {
        self.message.metadata.response_code
    }
}

impl Responder {
    /// A responder over `snapshot`, its UDP answers limited by `limiter`,
    /// its server cookies made with `cookies`.
    pub fn new(
        snapshot: Arc<ArcSwap<Snapshot>>,
        health: Arc<HealthTable>,
        metrics: Arc<DnsMetrics>,
        max_udp_payload: u16,
        limiter: Option<RateLimiter>,
        cookies: ServerCookies,
    ) -> Self {
        Self {
            snapshot,
            ecs_present: metrics.ecs_counter(true),
            ecs_absent: metrics.ecs_counter(false),
            health,
            metrics,
            max_udp_payload: max_udp_payload.max(512),
            malformed: Arc::new(MalformedWarnings::new()),
            limiter: limiter.map(Arc::new),
            cookies,
        }
    }

    /// Answers a UDP datagram into `out`, from `cache` when it can; returns
    /// `false` when nothing should be sent.
    pub fn respond_udp(
        &self,
        cache: &mut AnswerCache,
        packet: &[u8],
        peer: IpAddr,
        out: &mut Vec<u8>,
    ) -> bool {
        let started = Instant::now();
        let Some(view) = QueryView::parse(packet) else {
            return match self.respond_classified(packet, peer, Transport::Udp) {
                Some((bytes, class, verified)) => {
                    *out = bytes;
                    self.within_rate(peer, class, verified, out)
                }
                None => false,
            };
        };
        let snapshot = self.snapshot.load();
        let epoch = snapshot
            .geo
            .answers(&snapshot.services, self.health.epoch())
            .epoch;
        cache.validate((snapshot.generation, epoch));
        let ecs = view.edns.and_then(|edns| edns.ecs);
        // In the family the scope is given in: that of the option, or the
        // peer's (IPv4-mapped peers get IPv6 scopes, see `geo::alias`).
        let client = ecs
            .filter(|ecs| ecs.source > 0)
            .map_or(peer, |ecs| ecs.address);
        if let Some(cached) = cache.get(view.key(), client) {
            self.write_cached(&view, cached, peer, out);
            cached.counters.iter().for_each(|counter| {
                counter.inc();
            });
            self.ecs_counter(ecs.is_some()).inc();
            self.metrics.latency(started.elapsed());
            let verified =
                query_cookie(&view).is_some_and(|cookie| self.cookies.verified(&cookie, peer));
            return self.within_rate(peer, cached.class, verified, out);
        }
        let Ok(request) = Message::from_vec(packet) else {
            return false;
        };
        let raw = wire::scan(packet);
        let answered = self.answer(&snapshot, &request, &raw, peer, Transport::Udp);
        if answered.cacheable
            && let Some(cached) = template(&answered)
        {
            let prefix = answered.scope.unwrap_or(0);
            let block = IpNet::new(client, prefix).unwrap_or_else(|_| IpNet::from(client));
            cache.insert(view.key(), block, cached);
        }
        let (class, verified) = (answered.class, answered.verified);
        let Some(bytes) = self.finish(&request, answered, Transport::Udp) else {
            return false;
        };
        *out = bytes;
        self.metrics.latency(started.elapsed());
        self.within_rate(peer, class, verified, out)
    }

    /// Applies the rate limit to the UDP response in `out` for `peer`:
    /// `false` when it is not to be sent, `out` truncated when it slips.
    /// A query with a `verified` server cookie proved its address: never
    /// limited.
    fn within_rate(
        &self,
        peer: IpAddr,
        class: ResponseClass,
        verified: bool,
        out: &mut Vec<u8>,
    ) -> bool {
        let Some(limiter) = self.limiter.as_ref().filter(|_| !verified) else {
            return true;
        };
        match limiter.check(peer, class) {
            Verdict::Send => true,
            Verdict::Slip => {
                rate_limit::truncate(out);
                self.metrics.rate_limit_slipped.inc();
                true
            }
            Verdict::Drop => {
                self.metrics.rate_limit_dropped.inc();
                false
            }
        }
    }

    /// The response to any packet (the full path), or `None` to send
    /// nothing (too short to answer, or itself a response).
    pub fn respond(&self, packet: &[u8], peer: IpAddr, transport: Transport) -> Option<Vec<u8>> {
        self.respond_classified(packet, peer, transport)
            .map(|(bytes, ..)| bytes)
    }

    /// The responses to a TCP message: one, or for a zone transfer as many
    /// as the zone needs, each within the 64 KiB a TCP message can carry
    /// (RFC 5936 section 2.2): the first starts with the SOA, the last ends
    /// with it.
    pub fn respond_tcp(&self, packet: &[u8], peer: IpAddr) -> Vec<Vec<u8>> {
        let transfer = packet.get(2).is_some_and(|flags| flags & 0x80 == 0)
            && Message::from_vec(packet).is_ok_and(|request| {
                request.metadata.op_code == OpCode::Query
                    && request.queries.len() == 1
                    && request.queries[0].query_type() == RecordType::AXFR
            });
        if !transfer {
            return self
                .respond(packet, peer, Transport::Tcp)
                .into_iter()
                .collect();
        }
        let started = Instant::now();
        let Ok(request) = Message::from_vec(packet) else {
            return Vec::new();
        };
        let raw = wire::scan(packet);
        let snapshot = self.snapshot.load();
        let answered = self.answer(&snapshot, &request, &raw, peer, Transport::Tcp);
        let messages = if answered.rcode() == ResponseCode::NoError {
            self.transfer_messages(&request, answered)
        } else {
            self.finish(&request, answered, Transport::Tcp)
                .into_iter()
                .collect()
        };
        self.metrics.latency(started.elapsed());
        messages
    }

    /// A zone transfer's records cut into messages that each fit in one TCP
    /// message. Records are measured one by one, uncompressed, so that a
    /// chunk always fits whatever compression then saves.
    fn transfer_messages(&self, request: &Message, answered: Answered) -> Vec<Vec<u8>> {
        /// Room kept for the header, question and OPT.
        const BUDGET: usize = u16::MAX as usize - 1024;
        let records = answered.message.answers;
        let mut chunks: Vec<Vec<hickory_proto::rr::Record>> = vec![Vec::new()];
        let mut size = 0;
        for record in records {
            let length = hickory_proto::serialize::binary::BinEncodable::to_bytes(&record)
                .map_or(BUDGET, |bytes| bytes.len());
            if size + length > BUDGET && !chunks.last().is_some_and(Vec::is_empty) {
                chunks.push(Vec::new());
                size = 0;
            }
            size += length;
            if let Some(chunk) = chunks.last_mut() {
                chunk.push(record);
            }
        }
        chunks
            .into_iter()
            .filter_map(|chunk| {
                let mut part = Answered::new(request, ResponseCode::NoError);
                part.message.metadata.authoritative = true;
                part.message.answers = chunk;
                part.nsid = answered.nsid.clone();
                part.cookie = answered.cookie;
                self.finish(request, part, Transport::Tcp)
            })
            .collect()
    }

    /// [`Responder::respond`], with the class the rate limiter charges and
    /// whether the query's server cookie is verified.
    fn respond_classified(
        &self,
        packet: &[u8],
        peer: IpAddr,
        transport: Transport,
    ) -> Option<(Vec<u8>, ResponseClass, bool)> {
        let started = Instant::now();
        let Some(header) = packet.get(..12) else {
            self.metrics.dropped();
            return None;
        };
        if header[2] & 0x80 != 0 {
            // A response: answering it could start a packet loop.
            self.metrics.dropped();
            return None;
        }
        let raw = wire::scan(packet);
        let request = match Message::from_vec(packet) {
            Ok(request) => request,
            Err(error) => {
                if let Some(left_out) = self.malformed.undecodable.admit() {
                    tracing::warn!(%peer, %error, left_out, "malformed query answered with FORMERR");
                }
                self.metrics
                    .query_counter(transport, RecordType::Unknown(0), ResponseCode::FormErr)
                    .inc();
                return wire::format_error(packet, &raw, self.max_udp_payload)
                    .map(|bytes| (bytes, ResponseClass::MALFORMED, false));
            }
        };
        let snapshot = self.snapshot.load();
        let answered = self.answer(&snapshot, &request, &raw, peer, transport);
        let (class, verified) = (answered.class, answered.verified);
        let bytes = self.finish(&request, answered, transport);
        self.metrics.latency(started.elapsed());
        bytes.map(|bytes| (bytes, class, verified))
    }

    fn ecs_counter(&self, present: bool) -> &Counter {
        if present {
            &self.ecs_present
        } else {
            &self.ecs_absent
        }
    }

    /// Decides the response and bumps its counters.
    fn answer(
        &self,
        snapshot: &Snapshot,
        request: &Message,
        raw: &RawQuery<'_>,
        peer: IpAddr,
        transport: Transport,
    ) -> Answered {
        let qtype = request
            .queries
            .first()
            .map_or(RecordType::Unknown(0), Query::query_type);
        let mut answered = self.compose(snapshot, request, raw, peer, transport);
        answered.class = ResponseClass::of(&answered.message);
        answered.counters.push(
            self.metrics
                .query_counter(transport, qtype, answered.rcode()),
        );
        for counter in &answered.counters {
            counter.inc();
        }
        answered
    }

    /// The response for a decoded request, per the protocol rules above.
    fn compose(
        &self,
        snapshot: &Snapshot,
        request: &Message,
        raw: &RawQuery<'_>,
        peer: IpAddr,
        transport: Transport,
    ) -> Answered {
        if request.metadata.op_code != OpCode::Query {
            return Answered::new(request, ResponseCode::NotImp);
        }
        if request.queries.len() != 1 {
            return Answered::new(request, ResponseCode::FormErr);
        }
        let edns = request.edns.as_ref();
        if edns.is_some_and(|edns| edns.version() > 0) {
            // RFC 6891 section 6.1.3: BADVERS, with our (version 0) OPT.
            return Answered::new(request, ResponseCode::BADVERS);
        }
        let ecs = match raw.opt.map_or(Ok(None), |opt| opt.ecs()) {
            Ok(ecs) => ecs.map(ClientSubnetQuery::from_view),
            Err(MalformedEcs) => {
                if let Some(left_out) = self.malformed.ecs.admit() {
                    tracing::warn!(%peer, left_out, "malformed ECS option answered with FORMERR");
                }
                return Answered::new(request, ResponseCode::FormErr);
            }
        };
        let cookie = match raw.opt.map_or(Ok(None), |opt| opt.cookie()) {
            Ok(cookie) => cookie,
            // RFC 7873 section 5.2.2.
            Err(wire::MalformedCookie) => return Answered::new(request, ResponseCode::FormErr),
        };
        self.ecs_counter(ecs.is_some()).inc();
        let query = &request.queries[0];
        let mut answered = if query.query_class() == DNSClass::CH {
            let (rcode, record) = chaos::answer(request, &snapshot.config.server);
            let mut answered = Answered::new(request, rcode);
            answered.message.metadata.authoritative = record.is_some();
            answered.message.answers.extend(record);
            answered
        } else if query.query_class() != DNSClass::IN && query.query_class() != DNSClass::ANY {
            Answered::new(request, ResponseCode::Refused)
        } else {
            match query.query_type() {
                RecordType::AXFR | RecordType::IXFR => {
                    self.transfer(snapshot, request, peer, transport)
                }
                _ => {
                    let client = ecs
                        .as_ref()
                        .and_then(ClientSubnetQuery::locate_address)
                        .unwrap_or(peer);
                    let mut answered = self.lookup(snapshot, request, client);
                    // Names outside our zones are never cached: anyone
                    // can make up as many as they like.
                    answered.cacheable = answered.rcode() != ResponseCode::Refused;
                    answered
                }
            }
        };
        answered.ecs = ecs;
        if let Some(cookie) = cookie {
            answered.cookie = Some(self.cookies.reply(&cookie, peer));
            answered.verified = self.cookies.verified(&cookie, peer);
        }
        // RFC 5001: the identity goes only to queries that ask for it.
        answered.nsid = snapshot
            .config
            .server
            .identity
            .clone()
            .filter(|_| edns.is_some_and(|edns| edns.option(EdnsCode::NSID).is_some()));
        answered
    }

    /// Answers a normal query, following CNAMEs inside our zones.
    fn lookup(&self, snapshot: &Snapshot, request: &Message, client: IpAddr) -> Answered {
        let mut answered = Answered::new(request, ResponseCode::NoError);
        let query = &request.queries[0];
        let qtype = query.query_type();
        let mut name: Name = query.name().clone();
        let response = &mut answered.message;
        for hop in 0..=MAX_CNAME_CHAIN {
            let lower = LowerName::new(&name);
            let Some(zone) = snapshot.find_zone(&lower) else {
                if hop == 0 {
                    // Not ours: never recurse, never guess.
                    response.metadata.response_code = ResponseCode::Refused;
                }
                return answered;
            };
            if hop == 0 {
                response.metadata.authoritative = true;
            }
            if let Some(challenge) = snapshot.acme_txt.get(&lower) {
                // A DNS-01 answer an edge is publishing: TXT only.
                if qtype == RecordType::TXT {
                    response.answers.extend(challenge.iter().cloned());
                } else {
                    response.authorities.push(zone.negative_soa());
                }
                return answered;
            }
            match zone.resolve(&lower, qtype) {
                Resolution::Records(records) => {
                    if qtype == RecordType::NS {
                        // Addresses of in-zone servers save the resolver a lookup.
                        response.additionals.extend(zone.glue_for(&records));
                    }
                    response.answers.extend(records);
                    return answered;
                }
                Resolution::Cname(alias) => {
                    let RData::CNAME(target) = &alias.data else {
                        return answered;
                    };
                    let target = target.0.clone();
                    response.answers.push(*alias);
                    if qtype == RecordType::CNAME {
                        return answered;
                    }
                    name = target;
                }
                Resolution::Geo(service_id) => {
                    let family = if qtype == RecordType::AAAA {
                        Family::V6
                    } else {
                        Family::V4
                    };
                    let answers = snapshot
                        .geo
                        .answers(&snapshot.services, self.health.epoch());
                    if let Some(decision) = decide(&answers, service_id, family, client) {
                        let records =
                            geo_records(snapshot, service_id, family, &decision.selection, &name);
                        if records.is_empty() {
                            response.authorities.push(zone.negative_soa());
                        }
                        response.answers.extend(records);
                        answered.scope = Some(decision.scope);
                        if let Some(counters) = snapshot.counters.get(service_id) {
                            let (lookup, _) = crate::geo::alias::lookup_address(client);
                            if !snapshot.places.table.is_located(lookup) {
                                answered.counters.push(counters.unlocated.clone());
                            }
                            if let Some(&first) = decision.selection.edges.first() {
                                answered
                                    .counters
                                    .extend(counters.answered(first, decision.selection.reason));
                            }
                            if decision.selection.reason == Reason::FailOpen {
                                answered.counters.push(counters.fail_open.clone());
                                if let Some(left_out) = counters.fail_open_warning_due() {
                                    tracing::warn!(
                                        service = snapshot.services[service_id].name,
                                        left_out,
                                        "every edge of the service is down: answering as if all were up"
                                    );
                                }
                            }
                        }
                    }
                    return answered;
                }
                Resolution::NoData => {
                    response.authorities.push(zone.negative_soa());
                    return answered;
                }
                Resolution::NxDomain => {
                    // RFC 6604: the code describes the last name in the chain.
                    response.metadata.response_code = ResponseCode::NXDomain;
                    response.authorities.push(zone.negative_soa());
                    return answered;
                }
                Resolution::Referral { ns, glue } => {
                    if hop == 0 {
                        response.metadata.authoritative = false;
                        response.authorities.extend(ns.iter().cloned());
                        response.additionals.extend(glue);
                    }
                    return answered;
                }
            }
        }
        tracing::debug!(name = %query.name(), "CNAME chain too long");
        answered
    }

    /// AXFR (and IXFR, answered with the full zone per RFC 1995 section 4)
    /// for allowed clients over TCP; REFUSED for everyone else.
    fn transfer(
        &self,
        snapshot: &Snapshot,
        request: &Message,
        peer: IpAddr,
        transport: Transport,
    ) -> Answered {
        let query = &request.queries[0];
        let lower = LowerName::new(query.name());
        let zone = match snapshot.find_zone(&lower) {
            Some(zone) if zone.apex() == &lower => zone,
            _ => return Answered::new(request, ResponseCode::Refused),
        };
        if transport != Transport::Tcp || !zone.transfer_allowed(peer) {
            return Answered::new(request, ResponseCode::Refused);
        }
        let mut answered = Answered::new(request, ResponseCode::NoError);
        let response = &mut answered.message;
        response.metadata.authoritative = true;
        response.answers.push(zone.soa().clone());
        response
            .answers
            .extend(zone.rrsets().flat_map(|set| set.records.iter().cloned()));
        response.answers.push(zone.soa().clone());
        answered
    }

    /// Adds OPT (with ECS) and encodes, truncating for UDP when it does not fit.
    fn finish(
        &self,
        request: &Message,
        answered: Answered,
        transport: Transport,
    ) -> Option<Vec<u8>> {
        let Answered {
            mut message,
            ecs,
            scope,
            nsid,
            cookie,
            ..
        } = answered;
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
            // RFC 3225 section 3: DO is copied into the response.
            edns.set_dnssec_ok(
                request
                    .edns
                    .as_ref()
                    .is_some_and(|edns| edns.flags().dnssec_ok),
            );
            if let Some(ecs) = ecs {
                // Answers the same everywhere get scope 0 (RFC 7871 section 7.2.1).
                let scope = if ecs.network.prefix_len() == 0 {
                    0
                } else {
                    scope.unwrap_or(0)
                };
                edns.options_mut().insert(ecs.reply(scope));
            }
            if let Some(payload) = nsid.and_then(|nsid| NSIDPayload::new(nsid).ok()) {
                edns.options_mut().insert(EdnsOption::NSID(payload));
            }
            if let Some(cookie) = cookie {
                edns.options_mut()
                    .insert(EdnsOption::Unknown(cookie::OPTION_COOKIE, cookie.to_vec()));
            }
            message.set_edns(edns);
        }
        let bytes = match message.to_vec() {
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
        message.answers.clear();
        message.authorities.clear();
        message.additionals.clear();
        message.metadata.truncation = true;
        let truncated = message.to_vec().ok()?;
        if truncated.len() <= limit {
            return Some(truncated);
        }
        // The questions alone overflow (a query with many of them): the
        // first is echoed, then none, so that the response always fits.
        message.queries.truncate(1);
        if let Some(bytes) = message.to_vec().ok().filter(|bytes| bytes.len() <= limit) {
            return Some(bytes);
        }
        message.queries.clear();
        message.to_vec().ok()
    }

    /// Builds the response to `view` from a cached template.
    fn write_cached(&self, view: &QueryView<'_>, cached: &Cached, peer: IpAddr, out: &mut Vec<u8>) {
        let question = view.question();
        let limit = match view.edns {
            Some(edns) => usize::from(edns.payload.clamp(512, self.max_udp_payload)),
            None => CLASSIC_UDP_PAYLOAD,
        };
        let cookie = query_cookie(view).map(|cookie| self.cookies.reply(&cookie, peer));
        let opt_len = view.edns.map_or(0, |edns| {
            11 + edns
                .ecs
                .map_or(0, |ecs| 8 + usize::from(ecs.source).div_ceil(8))
                + cookie.map_or(0, |_| 4 + cookie::REPLY_LENGTH)
        });
        out.clear();
        if cached.template.len() + opt_len <= limit {
            out.extend_from_slice(&cached.template);
        } else {
            // Header and question only, TC set: the client retries over TCP.
            out.extend_from_slice(&cached.template[..12]);
            out[2] |= 0x02;
            out[6..12].fill(0);
            out.extend_from_slice(question);
        }
        let id = view.id();
        out[0] = id[0];
        out[1] = id[1];
        let (rd, cd) = view.copied_flags();
        out[2] |= rd;
        out[3] |= cd;
        // Same name, same length: the client's letter case goes back as sent.
        if let Some(slot) = out.get_mut(12..12 + question.len()) {
            slot.copy_from_slice(question);
        }
        if let Some(edns) = view.edns {
            let additional = u16::from_be_bytes([out[10], out[11]]).saturating_add(1);
            out[10..12].copy_from_slice(&additional.to_be_bytes());
            wire::append_opt(
                out,
                self.max_udp_payload,
                edns.dnssec_ok,
                edns.ecs,
                cached.scope,
                cookie.as_ref(),
            );
        }
    }
}

/// The COOKIE option of a plain query.
fn query_cookie(view: &QueryView<'_>) -> Option<CookieView> {
    view.edns.and_then(|edns| edns.cookie)
}

/// The cacheable form of an answer: encoded without OPT, ID 0, RD/CD clear.
fn template(answered: &Answered) -> Option<Cached> {
    if u16::from(answered.rcode()) > 15 {
        return None;
    }
    let mut message = answered.message.clone();
    message.metadata.id = 0;
    message.metadata.recursion_desired = false;
    message.metadata.checking_disabled = false;
    message.edns = None;
    let bytes = message.to_vec().ok()?;
    Some(Cached {
        template: bytes.into_boxed_slice(),
        scope: answered.scope.unwrap_or(0),
        counters: answered.counters.clone().into_boxed_slice(),
        class: answered.class,
    })
}
