//! The UDP fast path against the full path. A first query warms the
//! answer cache; a second is then answered from it where the fast path
//! takes it. For any two queries, the fast path sends nothing exactly when
//! the full path would, and otherwise the same message (compared decoded,
//! or byte for byte when it does not decode). Server cookies are on.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use geodns::answer::{AnswerCache, CacheMetrics};
use geodns::metrics::Transport;
use hickory_proto::op::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let (first, second) = rest.split_at(usize::from(split).min(rest.len()));
    let peer = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 200));
    let responder = geocdn_fuzz::responder();
    let mut cache = AnswerCache::new(1 << 20, CacheMetrics::default());
    let mut out = Vec::new();
    for query in [first, second] {
        let _ = responder.respond_udp(&mut cache, query, peer, &mut out);
    }
    // Server cookies carry the time in seconds: a pair that straddles a
    // second is asked again.
    for attempt in 0..2 {
        let mut fast = Vec::new();
        let sent = responder.respond_udp(&mut cache, second, peer, &mut fast);
        let full = responder.respond(second, peer, Transport::Udp);
        let same = match (sent, &full) {
            (false, None) => true,
            (true, Some(full)) => match (Message::from_vec(&fast), Message::from_vec(full)) {
                (Ok(fast), Ok(full)) => fast == full,
                _ => &fast == full,
            },
            _ => false,
        };
        if same {
            return;
        }
        assert!(
            attempt == 0,
            "fast path sent {sent} {fast:?}, full path {full:?}"
        );
    }
});
