#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn limits() -> Limits {
    Limits {
        max_connections: 8,
        max_per_client: 4,
        header_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(20),
        send_timeout: Duration::from_secs(60),
        max_abandoned_requests: 3,
    }
}

fn address(last: u8) -> IpAddr {
    IpAddr::from([198, 51, 100, last])
}

fn admit(table: &Arc<ConnectionTable>, peer: IpAddr) -> Result<Admitted, CloseReason> {
    table.admit(peer, &mut Vec::new())
}

#[tokio::test(start_paused = true)]
async fn silent_connection_closes_after_header_timeout() {
    let table = ConnectionTable::new(limits());
    let silent = admit(&table, address(1)).unwrap();
    tokio::time::advance(Duration::from_secs(4)).await;
    assert!(table.reap().is_empty());
    tokio::time::advance(Duration::from_millis(1100)).await;
    assert_eq!(table.reap(), vec![CloseReason::HeaderTimeout]);
    assert_eq!(
        silent.connection().close_reason(),
        Some(CloseReason::HeaderTimeout)
    );
}

#[tokio::test(start_paused = true)]
async fn trickled_head_is_not_kept_alive_by_its_bytes() {
    let table = ConnectionTable::new(limits());
    let slow = admit(&table, address(1)).unwrap();
    table.reap();
    slow.connection().on_read();
    for _ in 0..5 {
        tokio::time::advance(Duration::from_secs(1)).await;
        table.reap();
        slow.connection().on_read();
    }
    tokio::time::advance(Duration::from_millis(500)).await;
    assert_eq!(table.reap(), vec![CloseReason::HeaderTimeout]);
}

#[tokio::test(start_paused = true)]
async fn keep_alive_connection_gets_the_idle_timeout() {
    let table = ConnectionTable::new(limits());
    let admitted = admit(&table, address(1)).unwrap();
    let connection = admitted.connection().clone();
    let mut request = connection.request_started();
    tokio::time::advance(Duration::from_secs(30)).await;
    // In flight and bytes moving: never idle.
    connection.on_write();
    table.reap();
    assert!(table.reap().is_empty());
    request.complete();
    drop(request);
    tokio::time::advance(Duration::from_secs(19)).await;
    assert!(table.reap().is_empty());
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(table.reap(), vec![CloseReason::IdleTimeout]);
}

#[tokio::test(start_paused = true)]
async fn stalled_response_closes_after_send_timeout() {
    let table = ConnectionTable::new(limits());
    let admitted = admit(&table, address(1)).unwrap();
    let _request = admitted.connection().request_started();
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(table.reap(), vec![CloseReason::SendTimeout]);
}

#[tokio::test(start_paused = true)]
async fn client_at_its_limit_loses_its_own_longest_idle_connection() {
    let table = ConnectionTable::new(limits());
    let mut attacker = Vec::new();
    for _ in 0..4 {
        attacker.push(admit(&table, address(1)).unwrap());
        tokio::time::advance(Duration::from_millis(300)).await;
        table.reap();
    }
    let busy = admit(&table, address(2)).unwrap();
    let mut closed = Vec::new();
    let fifth = table.admit(address(1), &mut closed).unwrap();
    assert_eq!(closed, vec![CloseReason::Evicted]);
    assert!(attacker[0].connection().close_reason().is_some());
    assert!(busy.connection().close_reason().is_none());
    // Its busy connections are kept: refused when nothing of its is idle.
    drop(attacker);
    let _requests: Vec<_> = (0..3).map(|_| admit(&table, address(1)).unwrap()).collect();
    let _held: Vec<_> = _requests
        .iter()
        .map(|admitted| admitted.connection().request_started())
        .collect();
    let _fifth_request = fifth.connection().request_started();
    assert_eq!(
        admit(&table, address(1)).unwrap_err(),
        CloseReason::RefusedPerClient
    );
}

#[tokio::test(start_paused = true)]
async fn full_table_closes_longest_idle_first() {
    let table = ConnectionTable::new(limits());
    let mut open = Vec::new();
    for last in 0..8 {
        open.push(admit(&table, address(last)).unwrap());
        // Under the pressure limit: nothing is overdue yet.
        tokio::time::advance(Duration::from_millis(100)).await;
        table.reap();
    }
    let _busy = open[0].connection().request_started();
    let mut closed = Vec::new();
    let _new = table.admit(address(100), &mut closed).unwrap();
    assert_eq!(closed, vec![CloseReason::Evicted]);
    assert!(open[0].connection().close_reason().is_none(), "busy kept");
    assert_eq!(
        open[1].connection().close_reason(),
        Some(CloseReason::Evicted),
        "the longest idle goes"
    );
}

#[tokio::test(start_paused = true)]
async fn full_table_of_busy_connections_refuses() {
    let table = ConnectionTable::new(limits());
    let open: Vec<_> = (0..8)
        .map(|last| admit(&table, address(last)).unwrap())
        .collect();
    let _requests: Vec<_> = open
        .iter()
        .map(|admitted| admitted.connection().request_started())
        .collect();
    assert_eq!(
        admit(&table, address(100)).unwrap_err(),
        CloseReason::RefusedFull
    );
}

#[tokio::test(start_paused = true)]
async fn pressure_shortens_idle_limits() {
    let table = ConnectionTable::new(limits());
    let open: Vec<_> = (0..7)
        .map(|last| admit(&table, address(last)).unwrap())
        .collect();
    tokio::time::advance(Duration::from_millis(1100)).await;
    assert_eq!(table.reap().len(), 7);
    drop(open);
    let _few: Vec<_> = (0..3)
        .map(|last| admit(&table, address(last)).unwrap())
        .collect();
    tokio::time::advance(Duration::from_millis(1100)).await;
    assert!(table.reap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn abandoned_requests_beyond_the_budget_close_the_connection() {
    let table = ConnectionTable::new(limits());
    let admitted = admit(&table, address(1)).unwrap();
    for _ in 0..3 {
        drop(admitted.connection().request_started());
    }
    assert_eq!(admitted.connection().close_reason(), None);
    let mut finished = admitted.connection().request_started();
    finished.complete();
    drop(finished);
    assert_eq!(admitted.connection().close_reason(), None);
    drop(admitted.connection().request_started());
    assert_eq!(
        admitted.connection().close_reason(),
        Some(CloseReason::Abandoned)
    );
}

#[test]
fn ipv6_clients_are_counted_per_64() {
    let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
    let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
    let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
    assert_eq!(ClientKey::of(a), ClientKey::of(b));
    assert_ne!(ClientKey::of(a), ClientKey::of(c));
    let mapped: IpAddr = "::ffff:198.51.100.1".parse().unwrap();
    assert_eq!(ClientKey::of(mapped), ClientKey::of(address(1)));
}

#[tokio::test(start_paused = true)]
async fn closed_connections_free_their_slots() {
    let table = ConnectionTable::new(limits());
    let open: Vec<_> = (0..4).map(|_| admit(&table, address(1)).unwrap()).collect();
    assert_eq!(table.open(), 4);
    drop(open);
    assert_eq!(table.open(), 0);
    let _again: Vec<_> = (0..4).map(|_| admit(&table, address(1)).unwrap()).collect();
}
