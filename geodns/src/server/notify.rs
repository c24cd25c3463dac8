//! DNS NOTIFY (RFC 1996) to a zone's secondaries, so that they transfer a
//! changed zone at once instead of at their next SOA refresh.
//!
//! One task per secondary and serial: the NOTIFY carries the zone's SOA,
//! and is retried with a doubling timeout until the secondary answers it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Record, RecordType};
use tokio::net::UdpSocket;

use crate::metrics::DnsMetrics;
use crate::snapshot::Snapshot;
use crate::zone::Zone;

/// Sends per secondary before giving up (RFC 1996 3.6 leaves it to us).
const ATTEMPTS: u32 = 5;

/// Wait for the first answer; doubled at each retry (2 + 4 + ... + 32 s).
const FIRST_TIMEOUT: Duration = Duration::from_secs(2);

/// Notifies the secondaries of every zone of `current` that is new or whose
/// serial differs from `previous` (every zone at start, with no previous).
/// Must be called inside a Tokio runtime.
pub fn notify_changed_zones(
    previous: Option<&Snapshot>,
    current: &Snapshot,
    metrics: &Arc<DnsMetrics>,
) {
    for zone in current.zones.iter() {
        if zone.notify_targets().is_empty() {
            continue;
        }
        let unchanged = previous
            .and_then(|previous| previous.find_zone(zone.apex()))
            .is_some_and(|old| old.apex() == zone.apex() && old.serial() == zone.serial());
        if unchanged {
            continue;
        }
        for &secondary in zone.notify_targets() {
            let message = notify_message(zone);
            let metrics = metrics.clone();
            let zone_name = zone.origin().to_string();
            let serial = zone.serial();
            tokio::spawn(async move {
                let result = notify(secondary, &message).await;
                match &result {
                    Ok(()) => tracing::info!(
                        zone = zone_name,
                        serial,
                        %secondary,
                        "secondary acknowledged NOTIFY"
                    ),
                    Err(failure) => tracing::warn!(
                        zone = zone_name,
                        serial,
                        %secondary,
                        "NOTIFY not acknowledged: {failure}"
                    ),
                }
                metrics.notified(match result {
                    Ok(()) => "acknowledged",
                    Err(Failure::Refused(_)) => "refused",
                    Err(Failure::Unanswered(_) | Failure::Socket(_)) => "unanswered",
                });
            });
        }
    }
}

/// Why a secondary did not acknowledge.
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// It answered with an error code.
    #[error("the secondary answered {0}")]
    Refused(ResponseCode),
    /// No answer after every attempt.
    #[error("no answer after {0} attempts")]
    Unanswered(u32),
    /// We could not send.
    #[error("{0}")]
    Socket(#[from] std::io::Error),
}

/// The NOTIFY for `zone`: its apex SOA as question and, as RFC 1996 3.7
/// allows, the SOA itself as a hint of the new serial.
fn notify_message(zone: &Zone) -> Message {
    let mut message = Message::new(rand::random(), MessageType::Query, OpCode::Notify);
    message.metadata.authoritative = true;
    message.add_query(Query::query(zone.origin().clone(), RecordType::SOA));
    let soa: Record = zone.soa().clone();
    message.add_answer(soa);
    message
}

/// Sends `message` to `secondary` until it answers or the attempts run out.
async fn notify(secondary: SocketAddr, message: &Message) -> Result<(), Failure> {
    let local = match secondary.ip() {
        IpAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        IpAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(secondary).await?;
    let wire = message
        .to_vec()
        .map_err(|error| std::io::Error::other(error.to_string()))?;
    let mut timeout = FIRST_TIMEOUT;
    let mut buffer = vec![0u8; 4096];
    for _ in 0..ATTEMPTS {
        socket.send(&wire).await?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let received = tokio::time::timeout_at(deadline, socket.recv(&mut buffer)).await;
            let Ok(received) = received else { break };
            // An ICMP unreachable shows up as an error: retry later.
            let Ok(length) = received else { break };
            let Ok(reply) = Message::from_vec(&buffer[..length]) else {
                continue;
            };
            if !is_reply_to(&reply, message) {
                continue;
            }
            return match reply.metadata.response_code {
                ResponseCode::NoError => Ok(()),
                code => Err(Failure::Refused(code)),
            };
        }
        if tokio::time::Instant::now() < deadline {
            tokio::time::sleep_until(deadline).await;
        }
        timeout *= 2;
    }
    Err(Failure::Unanswered(ATTEMPTS))
}

/// Whether `reply` answers `sent`: same ID, a NOTIFY response, same zone.
fn is_reply_to(reply: &Message, sent: &Message) -> bool {
    reply.metadata.id == sent.metadata.id
        && reply.metadata.message_type == MessageType::Response
        && reply.metadata.op_code == OpCode::Notify
        && reply
            .queries
            .first()
            .zip(sent.queries.first())
            .is_none_or(|(got, asked)| got.name() == asked.name())
}
