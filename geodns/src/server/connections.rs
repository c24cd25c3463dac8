//! The open TCP connections, bounded in all and per client.
//!
//! Holding a DNS connection open costs a client nothing, so slots must not
//! go to whoever came first: when the table is full, a new connection
//! closes the one that has been idle longest (as gdnsd does), and when its
//! client (an IPv4 address or an IPv6 /64) is at its own limit, that
//! client's longest-idle connection goes instead. A connection is idle
//! from its accept or last answer until a complete message has arrived
//! (half a message does not count); one being answered is never closed,
//! and only when every connection is busy is a new one refused.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The bounds, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections in all.
    pub max_connections: usize,
    /// Open connections per client (IPv6: per /64).
    pub max_per_client: usize,
}

/// Why a connection was closed to make room (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// The table was full.
    LongestIdle,
    /// Its client was at its limit.
    PerClient,
}

/// A new connection that found no room: every candidate was busy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

/// What the table knows of one connection.
#[derive(Debug)]
struct Connection {
    client: IpAddr,
    /// Milliseconds since the table's epoch at the last accept or answer.
    last_active: AtomicU64,
    /// Whether a message is being answered.
    busy: AtomicBool,
    /// Cancelled to close the connection.
    close: CancellationToken,
}

#[derive(Debug, Default)]
struct Entries {
    by_id: HashMap<u64, Arc<Connection>>,
    per_client: HashMap<IpAddr, usize>,
    next_id: u64,
}

impl Entries {
    fn remove(&mut self, id: u64) -> Option<Arc<Connection>> {
        let connection = self.by_id.remove(&id)?;
        if let Some(count) = self.per_client.get_mut(&connection.client) {
            *count -= 1;
            if *count == 0 {
                self.per_client.remove(&connection.client);
            }
        }
        Some(connection)
    }

    /// The idle connection (of `client`, when given) that has waited longest.
    fn longest_idle(&self, client: Option<IpAddr>) -> Option<u64> {
        self.by_id
            .iter()
            .filter(|(_, connection)| client.is_none_or(|client| connection.client == client))
            .filter(|(_, connection)| !connection.busy.load(Ordering::Relaxed))
            // Ties (the same millisecond) go to the older connection.
            .min_by_key(|&(&id, connection)| (connection.last_active.load(Ordering::Relaxed), id))
            .map(|(&id, _)| id)
    }
}

/// Every open TCP connection.
#[derive(Debug)]
pub struct ConnectionTable {
    limits: Limits,
    epoch: Instant,
    entries: Mutex<Entries>,
}

impl ConnectionTable {
    /// An empty table with these bounds.
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            limits: Limits {
                max_connections: limits.max_connections.max(1),
                max_per_client: limits.max_per_client.max(1),
            },
            epoch: Instant::now(),
            entries: Mutex::default(),
        })
    }

    /// Makes room for a connection from `peer` and registers it; returns
    /// its slot and the connections closed for it.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<(Slot, Vec<Eviction>), Refused> {
        let client = client_key(peer);
        let mut evicted = Vec::new();
        let mut entries = self.entries.lock();
        if entries.per_client.get(&client).copied().unwrap_or(0) >= self.limits.max_per_client {
            let victim = entries.longest_idle(Some(client)).ok_or(Refused)?;
            close(entries.remove(victim));
            evicted.push(Eviction::PerClient);
        }
        if entries.by_id.len() >= self.limits.max_connections {
            let victim = entries.longest_idle(None).ok_or(Refused)?;
            close(entries.remove(victim));
            evicted.push(Eviction::LongestIdle);
        }
        let id = entries.next_id;
        entries.next_id += 1;
        let connection = Arc::new(Connection {
            client,
            last_active: AtomicU64::new(self.now()),
            busy: AtomicBool::new(false),
            close: CancellationToken::new(),
        });
        entries.by_id.insert(id, connection.clone());
        *entries.per_client.entry(client).or_default() += 1;
        drop(entries);
        Ok((
            Slot {
                table: self.clone(),
                id,
                connection,
            },
            evicted,
        ))
    }

    /// Connections open.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().by_id.len()
    }

    /// Whether no connection is open.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

fn close(connection: Option<Arc<Connection>>) {
    if let Some(connection) = connection {
        connection.close.cancel();
    }
}

/// One connection's place in the table; leaving it frees the place.
#[derive(Debug)]
pub struct Slot {
    table: Arc<ConnectionTable>,
    id: u64,
    connection: Arc<Connection>,
}

impl Slot {
    /// Cancelled when the table closes this connection to make room.
    pub fn closed(&self) -> &CancellationToken {
        &self.connection.close
    }

    /// A message has arrived: the connection is not idle until answered.
    pub fn busy(&self) {
        self.connection.busy.store(true, Ordering::Relaxed);
    }

    /// The message is answered: idle again from now.
    pub fn idle(&self) {
        self.connection
            .last_active
            .store(self.table.now(), Ordering::Relaxed);
        self.connection.busy.store(false, Ordering::Relaxed);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.table.entries.lock().remove(self.id);
    }
}

/// Connections are counted per IPv4 address and per IPv6 /64 (what one
/// host usually gets).
fn client_key(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V4(_) => peer,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let segments = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(
                    segments[0],
                    segments[1],
                    segments[2],
                    segments[3],
                    0,
                    0,
                    0,
                    0,
                ))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(max_connections: usize, max_per_client: usize) -> Arc<ConnectionTable> {
        ConnectionTable::new(Limits {
            max_connections,
            max_per_client,
        })
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_table_closes_the_longest_idle_connection() {
        let table = table(2, 10);
        let (oldest, _) = table.admit(ip("192.0.2.1")).unwrap();
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        let (newer, _) = table.admit(ip("192.0.2.2")).unwrap();
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        oldest.idle();
        let (_third, evicted) = table.admit(ip("192.0.2.3")).unwrap();
        assert_eq!(evicted, vec![Eviction::LongestIdle]);
        assert!(newer.closed().is_cancelled());
        assert!(!oldest.closed().is_cancelled());
        assert_eq!(table.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn busy_connections_are_never_closed() {
        let table = table(1, 10);
        let (only, _) = table.admit(ip("192.0.2.1")).unwrap();
        only.busy();
        assert_eq!(table.admit(ip("192.0.2.2")).unwrap_err(), Refused);
        only.idle();
        assert!(table.admit(ip("192.0.2.2")).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_at_its_limit_loses_its_own_connection() {
        let table = table(10, 2);
        let (other, _) = table.admit(ip("192.0.2.9")).unwrap();
        let (first, _) = table.admit(ip("2001:db8::1")).unwrap();
        let (_second, _) = table.admit(ip("2001:db8::2")).unwrap();
        let (_third, evicted) = table.admit(ip("2001:db8::3")).unwrap();
        assert_eq!(evicted, vec![Eviction::PerClient]);
        assert!(first.closed().is_cancelled());
        assert!(!other.closed().is_cancelled());
        drop(first);
        assert_eq!(table.len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn leaving_frees_the_place() {
        let table = table(1, 1);
        let (slot, _) = table.admit(ip("192.0.2.1")).unwrap();
        drop(slot);
        assert!(table.is_empty());
        let (_slot, evicted) = table.admit(ip("192.0.2.1")).unwrap();
        assert!(evicted.is_empty());
    }
}
