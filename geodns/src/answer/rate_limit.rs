//! Response rate limiting for UDP (RRL, as BIND, Knot and NSD have it).
//!
//! A spoofed flood makes an authoritative server reflect its answers at a
//! victim. Each response is charged to a bucket for the client's prefix and
//! the response's class: a positive answer by name and type, a negative
//! answer by the zone whose SOA proves it (so that random names share one
//! bucket), an error by its code. Past `responses_per_second` a response
//! is dropped, but every `slip`-th is sent truncated instead: a real client
//! behind a flooded prefix gets TC and asks again over TCP, which a spoofer
//! cannot. The table has a fixed number of buckets, so memory does not
//! grow with the flood; keys that collide share one.

use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::time::Instant;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{LowerName, RecordType};
use ipnet::IpNet;
use parking_lot::Mutex;

use crate::config::RateLimitConfig;

/// What to do with a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the rate: send it.
    Send,
    /// Over the rate, slipped: send it truncated.
    Slip,
    /// Over the rate: send nothing.
    Drop,
}

/// The class a response is charged to, before the client's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResponseClass(u64);

impl ResponseClass {
    /// Errors without a decodable message (FORMERR to garbage).
    pub const MALFORMED: Self = Self(0x6d61_6c66_6f72_6d65);

    /// The class of `message`: positive answers by question, negative
    /// answers by the zone of their SOA, errors by code.
    pub fn of(message: &Message) -> Self {
        let mut hasher = std::hash::DefaultHasher::new();
        let rcode = message.metadata.response_code;
        rcode.low().hash(&mut hasher);
        match rcode {
            ResponseCode::NoError if !message.answers.is_empty() => {
                if let Some(query) = message.queries.first() {
                    LowerName::new(query.name()).hash(&mut hasher);
                    query.query_type().hash(&mut hasher);
                }
            }
            ResponseCode::NoError | ResponseCode::NXDomain => {
                let zone = message
                    .authorities
                    .iter()
                    .find(|record| record.record_type() == RecordType::SOA)
                    .map(|soa| LowerName::new(&soa.name));
                zone.hash(&mut hasher);
            }
            _ => {}
        }
        Self(hasher.finish())
    }
}

/// One bucket.
#[derive(Debug, Default, Clone, Copy)]
struct Bucket {
    key: u64,
    /// Responses left this second.
    tokens: u32,
    /// When the bucket was last filled, in seconds since the start.
    second: u64,
    /// Limited responses, for the slip.
    limited: u32,
}

/// The rate limiter of one server, shared by its UDP loops.
#[derive(Debug)]
pub struct RateLimiter {
    rate: u32,
    slip: u32,
    ipv4_prefix: u8,
    ipv6_prefix: u8,
    exempt: Vec<IpNet>,
    buckets: Box<[Mutex<Bucket>]>,
    hasher: std::hash::RandomState,
    started: Instant,
}

impl RateLimiter {
    /// A limiter for `config`; `None` when rate limiting is off.
    pub fn new(config: &RateLimitConfig) -> Option<Self> {
        (config.responses_per_second > 0).then(|| Self {
            rate: config.responses_per_second,
            slip: config.slip,
            ipv4_prefix: config.ipv4_prefix.min(32),
            ipv6_prefix: config.ipv6_prefix.min(128),
            exempt: config.exempt.clone(),
            buckets: (0..config.table_size.max(1))
                .map(|_| Mutex::new(Bucket::default()))
                .collect(),
            hasher: std::hash::RandomState::new(),
            started: Instant::now(),
        })
    }

    /// Charges a response of `class` to `client` and says what to do with it.
    pub fn check(&self, client: IpAddr, class: ResponseClass) -> Verdict {
        let client = client.to_canonical();
        if self.exempt.iter().any(|network| network.contains(&client)) {
            return Verdict::Send;
        }
        let prefix = match client {
            IpAddr::V4(_) => self.ipv4_prefix,
            IpAddr::V6(_) => self.ipv6_prefix,
        };
        let block = IpNet::new(client, prefix).map_or(IpNet::from(client), |net| net.trunc());
        let key = self.hasher.hash_one((block, class));
        let now = self.started.elapsed().as_secs();
        let index = (key % self.buckets.len() as u64) as usize;
        let mut bucket = self.buckets[index].lock();
        if bucket.key != key {
            *bucket = Bucket {
                key,
                tokens: self.rate,
                second: now,
                limited: 0,
            };
        } else if now > bucket.second {
            let refill = u64::from(self.rate).saturating_mul(now - bucket.second);
            bucket.tokens = u64::from(bucket.tokens)
                .saturating_add(refill)
                .min(u64::from(self.rate)) as u32;
            bucket.second = now;
        }
        if bucket.tokens > 0 {
            bucket.tokens -= 1;
            return Verdict::Send;
        }
        bucket.limited = bucket.limited.wrapping_add(1);
        if self.slip > 0 && bucket.limited.is_multiple_of(self.slip) {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }
}

/// Cuts the response in `out` to its header and question with TC set: the
/// client asks again over TCP.
pub fn truncate(out: &mut Vec<u8>) {
    let question = super::wire::scan(out).question.map_or(0, <[u8]>::len);
    if out.len() < 12 {
        return;
    }
    out.truncate(12 + question);
    out[2] |= 0x02;
    out[4..6].copy_from_slice(&u16::from(question > 0).to_be_bytes());
    out[6..12].fill(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: u32, slip: u32) -> RateLimiter {
        RateLimiter::new(&RateLimitConfig {
            responses_per_second: rate,
            slip,
            exempt: vec!["127.0.0.0/8".parse().unwrap()],
            ..RateLimitConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn a_prefix_over_the_rate_is_limited_and_slips() {
        let limiter = limiter(5, 2);
        let class = ResponseClass::MALFORMED;
        let flood: IpAddr = "198.51.100.7".parse().unwrap();
        let verdicts: Vec<Verdict> = (0..11).map(|_| limiter.check(flood, class)).collect();
        assert!(verdicts[..5].iter().all(|&v| v == Verdict::Send));
        assert_eq!(
            &verdicts[5..],
            &[
                Verdict::Drop,
                Verdict::Slip,
                Verdict::Drop,
                Verdict::Slip,
                Verdict::Drop,
                Verdict::Slip
            ]
        );
        // The same /24 shares the bucket; another /24 and loopback do not.
        assert_ne!(
            limiter.check("198.51.100.200".parse().unwrap(), class),
            Verdict::Send
        );
        assert_eq!(
            limiter.check("198.51.101.7".parse().unwrap(), class),
            Verdict::Send
        );
        for _ in 0..20 {
            assert_eq!(
                limiter.check("127.0.0.1".parse().unwrap(), class),
                Verdict::Send
            );
        }
    }

    #[test]
    fn off_when_the_rate_is_zero() {
        assert!(
            RateLimiter::new(&RateLimitConfig {
                responses_per_second: 0,
                ..RateLimitConfig::default()
            })
            .is_none()
        );
    }

    #[test]
    fn truncation_keeps_header_and_question() {
        let mut message = Message::query();
        message.add_query(hickory_proto::op::Query::query(
            hickory_proto::rr::Name::from_ascii("www.cdn.test.").unwrap(),
            RecordType::A,
        ));
        message.metadata.message_type = hickory_proto::op::MessageType::Response;
        message.add_answer(hickory_proto::rr::Record::from_rdata(
            hickory_proto::rr::Name::from_ascii("www.cdn.test.").unwrap(),
            10,
            hickory_proto::rr::RData::A("192.0.2.1".parse().unwrap()),
        ));
        let mut bytes = message.to_vec().unwrap();
        truncate(&mut bytes);
        let cut = Message::from_vec(&bytes).unwrap();
        assert!(cut.metadata.truncation);
        assert_eq!(cut.queries.len(), 1);
        assert!(cut.answers.is_empty());
    }
}
