//! What one client can make the edge hold: every open connection is in a
//! table that bounds them globally and per client address, and a reaper
//! closes those that hold a slot without using it.
//!
//! A connection is *idle* while no request on it is in flight (between
//! accept and the first complete request head, and between keep-alive
//! requests). Idle connections are closed:
//! - `header_timeout` after accept, or after the first byte of a request
//!   head, when the head is still incomplete (slow or silent clients, as
//!   Varnish's `timeout_idle` and nginx's `client_header_timeout` do);
//! - `idle_timeout` after their last response when no new request starts;
//! - after [`PRESSURE_IDLE`] when the table is more than three quarters
//!   full (shorter limits under pressure).
//!
//! A connection with requests in flight is closed when it moves no byte
//! for `send_timeout` (a client that stopped reading). When the table is
//! full, a new connection closes the longest-idle ones; when one client
//! address (IPv6: its /64) is at its limit, its own longest-idle one goes.
//! Only when nothing is idle is the new connection refused.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Idle limit (before a head and between requests) once the table is more
/// than three quarters full.
pub const PRESSURE_IDLE: Duration = Duration::from_secs(1);

/// How often the reaper looks at every connection.
pub const REAP_INTERVAL: Duration = Duration::from_millis(250);

/// Window over which abandoned requests are counted against
/// `max_abandoned_requests`.
const ABANDON_WINDOW: Duration = Duration::from_secs(10);

/// The bounds, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections in all.
    pub max_connections: usize,
    /// Open connections per client address (IPv6: per /64).
    pub max_per_client: usize,
    /// From accept, or from the first byte of a head, to the complete head.
    pub header_timeout: Duration,
    /// Between a response and the next request's first byte.
    pub idle_timeout: Duration,
    /// No byte moved while a request is in flight.
    pub send_timeout: Duration,
    /// Requests a client may abandon (HTTP/2 resets, closes before the
    /// response) per connection within ten seconds before it is closed.
    pub max_abandoned_requests: u32,
}

/// Why a connection was closed or refused (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// No complete request head in time.
    HeaderTimeout,
    /// Idle between requests for too long.
    IdleTimeout,
    /// Requests in flight and nothing moved.
    SendTimeout,
    /// Closed to make room for a new connection.
    Evicted,
    /// Too many abandoned requests (HTTP/2 rapid reset).
    Abandoned,
    /// Refused: the table was full and nothing was idle.
    RefusedFull,
    /// Refused: the client was at its limit and nothing of its was idle.
    RefusedPerClient,
    /// PROXY protocol: no valid header in time, or not from a trusted balancer.
    ProxyHeader,
}

impl CloseReason {
    /// Label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HeaderTimeout => "header_timeout",
            Self::IdleTimeout => "idle_timeout",
            Self::SendTimeout => "send_timeout",
            Self::Evicted => "evicted",
            Self::Abandoned => "abandoned_requests",
            Self::RefusedFull => "refused_full",
            Self::RefusedPerClient => "refused_per_client",
            Self::ProxyHeader => "proxy_header",
        }
    }
}

/// Who counts as one client for the per-client limit: an IPv4 address, or
/// the /64 of an IPv6 address (one host's usual allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ClientKey {
    V4(u32),
    V6(u64),
}

impl ClientKey {
    fn of(address: IpAddr) -> Self {
        match address {
            IpAddr::V4(v4) => Self::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(u32::from(v4)),
                None => Self::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// "Not set" for the millisecond stamps below.
const UNSET: u64 = u64::MAX;

/// One open connection's state, shared by its task, its byte stream and
/// the reaper. Times are milliseconds since the table's epoch.
#[derive(Debug)]
pub struct Connection {
    id: u64,
    client: ClientKey,
    clock: Arc<Clock>,
    in_flight: AtomicU32,
    requests: AtomicU64,
    idle_since: AtomicU64,
    head_started: AtomicU64,
    last_io: AtomicU64,
    abandoned: Mutex<(u64, u32)>,
    max_abandoned: u32,
    close: CancellationToken,
    reason: Mutex<Option<CloseReason>>,
}

impl Connection {
    /// Resolves when the connection should close (its reason is set).
    pub async fn closing(&self) {
        self.close.cancelled().await;
    }

    /// Why it was told to close, if it was.
    pub fn close_reason(&self) -> Option<CloseReason> {
        *self.reason.lock()
    }

    /// Bytes arrived: the first of an idle connection starts its head clock.
    pub fn on_read(&self) {
        let now = self.clock.now();
        self.last_io.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Relaxed) == 0 {
            let _ = self.head_started.compare_exchange(
                UNSET,
                now,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// Bytes left.
    pub fn on_write(&self) {
        self.last_io.store(self.clock.now(), Ordering::Relaxed);
    }

    /// A complete request head arrived; the guard ends the request.
    pub fn request_started(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.head_started.store(UNSET, Ordering::Relaxed);
        self.last_io.store(self.clock.now(), Ordering::Relaxed);
        RequestGuard {
            connection: self.clone(),
            completed: false,
        }
    }

    fn request_ended(&self, completed: bool) {
        let now = self.clock.now();
        if !completed {
            self.count_abandoned(now);
        }
        if self.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.idle_since.store(now, Ordering::Relaxed);
            self.head_started.store(UNSET, Ordering::Relaxed);
        }
    }

    fn count_abandoned(&self, now: u64) {
        let window = ABANDON_WINDOW.as_millis() as u64;
        let over = {
            let mut abandoned = self.abandoned.lock();
            if now.saturating_sub(abandoned.0) > window {
                *abandoned = (now, 0);
            }
            abandoned.1 += 1;
            abandoned.1 > self.max_abandoned
        };
        if over {
            self.tell_to_close(CloseReason::Abandoned);
        }
    }

    fn tell_to_close(&self, reason: CloseReason) -> bool {
        let mut current = self.reason.lock();
        if current.is_some() {
            return false;
        }
        *current = Some(reason);
        self.close.cancel();
        true
    }

    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0 && self.close_reason().is_none()
    }

    /// Why it must close now under `limits`, if it must.
    fn overdue(&self, now: u64, limits: &Limits, pressure: bool) -> Option<CloseReason> {
        let elapsed = |since: u64| Duration::from_millis(now.saturating_sub(since));
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            let last_io = self.last_io.load(Ordering::Relaxed);
            return (elapsed(last_io) > limits.send_timeout).then_some(CloseReason::SendTimeout);
        }
        let cap = |limit: Duration| {
            if pressure {
                limit.min(PRESSURE_IDLE)
            } else {
                limit
            }
        };
        let head_started = self.head_started.load(Ordering::Relaxed);
        if head_started != UNSET {
            return (elapsed(head_started) > cap(limits.header_timeout))
                .then_some(CloseReason::HeaderTimeout);
        }
        let idle_since = self.idle_since.load(Ordering::Relaxed);
        if self.requests.load(Ordering::Relaxed) == 0 {
            (elapsed(idle_since) > cap(limits.header_timeout)).then_some(CloseReason::HeaderTimeout)
        } else {
            (elapsed(idle_since) > cap(limits.idle_timeout)).then_some(CloseReason::IdleTimeout)
        }
    }
}

/// A request in flight on a connection; dropping it ends the request.
/// Marked complete once its response has been sent in full; one dropped
/// before counts as abandoned.
#[derive(Debug)]
pub struct RequestGuard {
    connection: Arc<Connection>,
    completed: bool,
}

impl RequestGuard {
    /// The response went out in full.
    pub fn complete(&mut self) {
        self.completed = true;
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.connection.request_ended(self.completed);
    }
}

/// A coarse clock the reaper advances: activity stamps cost an atomic load.
#[derive(Debug)]
struct Clock {
    epoch: Instant,
    now: AtomicU64,
}

impl Clock {
    fn now(&self) -> u64 {
        self.now.load(Ordering::Relaxed)
    }

    fn tick(&self) -> u64 {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.now.store(now, Ordering::Relaxed);
        now
    }
}

#[derive(Debug, Default)]
struct Open {
    connections: HashMap<u64, Arc<Connection>>,
    per_client: HashMap<ClientKey, usize>,
    next_id: u64,
}

/// Every open client connection.
#[derive(Debug)]
pub struct ConnectionTable {
    /// Replaced by a reload ([`ConnectionTable::set_limits`]).
    limits: parking_lot::RwLock<Limits>,
    clock: Arc<Clock>,
    open: Mutex<Open>,
    count: AtomicUsize,
}

/// A connection's place in the table; dropping it frees the slot.
#[derive(Debug)]
pub struct Admitted {
    table: Arc<ConnectionTable>,
    connection: Arc<Connection>,
}

impl Admitted {
    /// The connection's shared state.
    pub fn connection(&self) -> &Arc<Connection> {
        &self.connection
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.table.remove(&self.connection);
    }
}

impl ConnectionTable {
    /// An empty table.
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            limits: parking_lot::RwLock::new(Self::bounded(limits)),
            clock: Arc::new(Clock {
                epoch: Instant::now(),
                now: AtomicU64::new(0),
            }),
            open: Mutex::new(Open::default()),
            count: AtomicUsize::new(0),
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    fn bounded(limits: Limits) -> Limits {
        Limits {
            max_connections: limits.max_connections.max(1),
            max_per_client: limits.max_per_client.max(1),
            ..limits
        }
    }

    /// The bounds in force.
    pub fn limits(&self) -> Limits {
        *self.limits.read()
    }

    /// Applies reloaded bounds: open connections are held to them from the
    /// next sweep, new ones from their admission. `max_connections` and
    /// `header_timeout` stay (the descriptor budget and the HTTP/1 parser
    /// were sized with them at start).
    pub fn set_limits(&self, limits: Limits) {
        let mut current = self.limits.write();
        *current = Self::bounded(Limits {
            max_connections: current.max_connections,
            header_timeout: current.header_timeout,
            ..limits
        });
    }

    /// Takes a slot for a connection from `peer`, closing longest-idle
    /// connections to make room; the reason when it must be refused.
    /// Each closed one is returned so the caller can count it.
    pub fn admit(
        self: &Arc<Self>,
        peer: IpAddr,
        closed: &mut Vec<CloseReason>,
    ) -> Result<Admitted, CloseReason> {
        let client = ClientKey::of(peer);
        let now = self.clock.tick();
        let limits = self.limits();
        let mut open = self.open.lock();
        let of_client = open.per_client.get(&client).copied().unwrap_or(0);
        if of_client >= limits.max_per_client {
            let victim = open
                .connections
                .values()
                .filter(|connection| connection.client == client && connection.is_idle())
                .min_by_key(|connection| connection.idle_since.load(Ordering::Relaxed))
                .cloned();
            match victim {
                Some(victim) if victim.tell_to_close(CloseReason::Evicted) => {
                    closed.push(CloseReason::Evicted);
                }
                _ => return Err(CloseReason::RefusedPerClient),
            }
        } else if open.connections.len() >= limits.max_connections {
            // Close a batch, so that a flood of accepts at the limit does
            // not scan the table once per accept.
            let mut idle: Vec<&Arc<Connection>> = open
                .connections
                .values()
                .filter(|connection| connection.is_idle())
                .collect();
            if idle.is_empty() {
                return Err(CloseReason::RefusedFull);
            }
            let batch = (open.connections.len() / 64).clamp(1, idle.len());
            idle.select_nth_unstable_by_key(batch - 1, |connection| {
                connection.idle_since.load(Ordering::Relaxed)
            });
            for victim in &idle[..batch] {
                if victim.tell_to_close(CloseReason::Evicted) {
                    closed.push(CloseReason::Evicted);
                }
            }
        }
        let id = open.next_id;
        open.next_id += 1;
        let connection = Arc::new(Connection {
            id,
            client,
            clock: self.clock.clone(),
            in_flight: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            idle_since: AtomicU64::new(now),
            head_started: AtomicU64::new(UNSET),
            last_io: AtomicU64::new(now),
            abandoned: Mutex::new((now, 0)),
            max_abandoned: limits.max_abandoned_requests,
            close: CancellationToken::new(),
            reason: Mutex::new(None),
        });
        open.connections.insert(id, connection.clone());
        *open.per_client.entry(client).or_default() += 1;
        self.count.store(open.connections.len(), Ordering::Relaxed);
        Ok(Admitted {
            table: self.clone(),
            connection,
        })
    }

    fn remove(&self, connection: &Connection) {
        let mut open = self.open.lock();
        if open.connections.remove(&connection.id).is_some()
            && let Some(count) = open.per_client.get_mut(&connection.client)
        {
            *count -= 1;
            if *count == 0 {
                open.per_client.remove(&connection.client);
            }
        }
        self.count.store(open.connections.len(), Ordering::Relaxed);
    }

    /// Tells every overdue connection to close; returns why each was.
    pub fn reap(&self) -> Vec<CloseReason> {
        let now = self.clock.tick();
        let limits = self.limits();
        let open = self.open.lock();
        let pressure = open.connections.len() * 4 > limits.max_connections * 3;
        open.connections
            .values()
            .filter_map(|connection| {
                let reason = connection.overdue(now, &limits, pressure)?;
                connection.tell_to_close(reason).then_some(reason)
            })
            .collect()
    }

    /// Share of the connection slots in use, 0 to 1.
    pub fn utilisation(&self) -> f64 {
        self.open() as f64 / self.limits().max_connections as f64
    }
}

#[cfg(test)]
mod tests;
