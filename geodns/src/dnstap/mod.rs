//! The query log, in dnstap.
//!
//! Opt-in (`[dnstap]`). The UDP threads and TCP tasks hand each sampled
//! response to a bounded queue and go on; one writer thread encodes and
//! writes them. When the writer falls behind (a slow disk), responses are
//! dropped from the log and counted, never waited for. Client addresses
//! are cut to a prefix before they are queued, so whole addresses are never
//! kept unless configured.

mod frames;
mod message;

use std::fs::File;
use std::io::BufWriter;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use ipnet::IpNet;
use prometheus_client::metrics::counter::Counter;
use prost::Message as _;

use crate::config::DnstapConfig;
use frames::FrameWriter;
use message::{Dnstap, Message};

/// How long written frames may sit in the buffer before they are flushed.
const FLUSH_INTERVAL: Duration = Duration::from_millis(500);

/// Over which transport a response went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
}

/// One response waiting to be written.
struct Entry {
    client: SocketAddr,
    transport: Transport,
    query_time: SystemTime,
    response_time: SystemTime,
    response: Vec<u8>,
}

/// The sending side, cloned into every UDP thread and TCP task.
#[derive(Clone)]
pub struct QueryLog {
    queue: SyncSender<Entry>,
    sample: u64,
    seen: Arc<AtomicU64>,
    ipv4_prefix: u8,
    ipv6_prefix: u8,
    dropped: Counter,
}

impl std::fmt::Debug for QueryLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryLog")
            .field("sample", &self.sample)
            .finish_non_exhaustive()
    }
}

/// The writer thread; joined at shutdown so that the file ends with STOP.
#[derive(Debug)]
pub struct QueryLogWriter {
    thread: std::thread::JoinHandle<()>,
}

impl QueryLogWriter {
    /// Waits until every queued message is written and the stream is closed.
    /// Every [`QueryLog`] must have been dropped first.
    pub fn finish(self) {
        let _ = self.thread.join();
    }
}

impl QueryLog {
    /// Creates (or truncates) the file of `config` and starts the writer.
    /// `server_identity` names the server when `config.identity` does not.
    pub fn open(
        config: &DnstapConfig,
        server_identity: Option<&str>,
        written: Counter,
        dropped: Counter,
    ) -> anyhow::Result<(Self, QueryLogWriter)> {
        // Query logs say who asked what: not for every user of the host.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o640)
            .open(&config.path)
            .with_context(|| format!("dnstap.path: cannot create {}", config.path.display()))?;
        let frames = FrameWriter::start(BufWriter::with_capacity(64 << 10, file))
            .with_context(|| format!("dnstap.path: cannot write {}", config.path.display()))?;
        let (queue, receiver) = std::sync::mpsc::sync_channel(config.queue);
        let identity = config
            .identity
            .as_deref()
            .or(server_identity)
            .map(|name| name.as_bytes().to_vec());
        let path = config.path.clone();
        let thread = std::thread::Builder::new()
            .name("dnstap".into())
            .spawn(move || {
                if let Err(error) = write_all(frames, &receiver, identity, &written) {
                    tracing::error!(path = %path.display(), %error, "dnstap log failed; no more responses are logged");
                }
            })?;
        tracing::info!(path = %config.path.display(), sample = config.sample, "logging responses in dnstap");
        Ok((
            Self {
                queue,
                sample: u64::from(config.sample.max(1)),
                seen: Arc::new(AtomicU64::new(0)),
                ipv4_prefix: config.ipv4_prefix,
                ipv6_prefix: config.ipv6_prefix,
                dropped,
            },
            QueryLogWriter { thread },
        ))
    }

    /// Whether the next response is to be logged (one in `sample`).
    /// Asked before taking the times, so unlogged responses cost one add.
    pub fn sampled(&self) -> bool {
        self.sample == 1
            || self
                .seen
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(self.sample)
    }

    /// Queues `response`, sent to `client`, for the log; never blocks.
    pub fn record(
        &self,
        client: SocketAddr,
        transport: Transport,
        query_time: SystemTime,
        response: &[u8],
    ) {
        if response.is_empty() {
            return;
        }
        let entry = Entry {
            client: SocketAddr::new(self.truncate(client.ip()), client.port()),
            transport,
            query_time,
            response_time: SystemTime::now(),
            response: response.to_vec(),
        };
        match self.queue.try_send(entry) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.inc();
            }
        }
    }

    fn truncate(&self, ip: IpAddr) -> IpAddr {
        let ip = ip.to_canonical();
        let prefix = match ip {
            IpAddr::V4(_) => self.ipv4_prefix,
            IpAddr::V6(_) => self.ipv6_prefix,
        };
        IpNet::new(ip, prefix).map_or(ip, |net| net.network())
    }
}

/// The writer loop: until every sender is gone, then STOP.
fn write_all(
    mut frames: FrameWriter<BufWriter<File>>,
    receiver: &Receiver<Entry>,
    identity: Option<Vec<u8>>,
    written: &Counter,
) -> std::io::Result<()> {
    let version = Some(format!("geodns {}", env!("CARGO_PKG_VERSION")).into_bytes());
    let mut payload = Vec::with_capacity(1024);
    let mut unflushed = false;
    loop {
        let entry = match receiver.recv_timeout(FLUSH_INTERVAL) {
            Ok(entry) => entry,
            Err(RecvTimeoutError::Timeout) => {
                if unflushed {
                    frames.flush()?;
                    unflushed = false;
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let dnstap = Dnstap {
            identity: identity.clone(),
            version: version.clone(),
            message: Some(message_of(entry)),
            r#type: message::DNSTAP_MESSAGE,
        };
        payload.clear();
        dnstap.encode(&mut payload).map_err(std::io::Error::other)?;
        frames.frame(&payload)?;
        written.inc();
        unflushed = true;
    }
    frames.stop().map(|_| ())
}

fn message_of(entry: Entry) -> Message {
    let (family, address) = match entry.client.ip() {
        IpAddr::V4(ip) => (message::INET, ip.octets().to_vec()),
        IpAddr::V6(ip) => (message::INET6, ip.octets().to_vec()),
    };
    let (query_sec, query_nsec) = split_time(entry.query_time);
    let (response_sec, response_nsec) = split_time(entry.response_time);
    Message {
        r#type: message::AUTH_RESPONSE,
        socket_family: Some(family),
        socket_protocol: Some(match entry.transport {
            Transport::Udp => message::UDP,
            Transport::Tcp => message::TCP,
        }),
        query_address: Some(address),
        query_port: Some(u32::from(entry.client.port())),
        query_time_sec: Some(query_sec),
        query_time_nsec: Some(query_nsec),
        response_time_sec: Some(response_sec),
        response_time_nsec: Some(response_nsec),
        response_message: Some(entry.response),
    }
}

fn split_time(time: SystemTime) -> (u64, u32) {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    (since.as_secs(), since.subsec_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(sample: u32, directory: &std::path::Path) -> (QueryLog, QueryLogWriter) {
        let config = DnstapConfig {
            path: directory.join("log.dnstap"),
            identity: None,
            sample,
            ipv4_prefix: 24,
            ipv6_prefix: 48,
            queue: 2,
        };
        QueryLog::open(&config, None, Counter::default(), Counter::default()).unwrap()
    }

    #[test]
    fn one_in_sample_is_logged() {
        let directory = tempfile::tempdir().unwrap();
        let (log, writer) = log(4, directory.path());
        let sampled = (0..400).filter(|_| log.sampled()).count();
        assert_eq!(sampled, 100);
        drop(log);
        writer.finish();
    }

    #[test]
    fn clients_are_cut_to_their_prefix() {
        let directory = tempfile::tempdir().unwrap();
        let (log, writer) = log(1, directory.path());
        let cut = |ip: &str| log.truncate(ip.parse().unwrap()).to_string();
        assert_eq!(cut("198.51.100.77"), "198.51.100.0");
        assert_eq!(cut("::ffff:198.51.100.77"), "198.51.100.0");
        assert_eq!(cut("2001:db8:1:2:3::4"), "2001:db8:1::");
        drop(log);
        writer.finish();
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let directory = tempfile::tempdir().unwrap();
        let (log, writer) = log(1, directory.path());
        let client: SocketAddr = "127.0.0.1:53000".parse().unwrap();
        // The writer drains as it goes; far more than the queue of 2 at once
        // must find it full at least once, and never block.
        for _ in 0..10_000 {
            log.record(client, Transport::Udp, SystemTime::now(), &[0; 512]);
        }
        assert!(log.dropped.get() > 0);
        drop(log);
        writer.finish();
    }
}
