//! SIGHUP: the configuration file is read and checked again, as
//! `check-config` would, and applied live when it is valid; an invalid one
//! changes nothing and says why. The cache, open connections and in-flight
//! requests carry on.
//!
//! Applied live: origins and their TLS settings, the parent, cache rules,
//! TTLs, keys and targeted fields, served hosts, HTTPS redirect and HSTS,
//! trusted proxies and peers, the request body limit, per-client and idle
//! limits, the admin token and allowed networks, and the certificate files
//! (re-read in any case). What was sized or bound at start keeps its value
//! until a restart, and a change to it is named in the log
//! ([`needs_restart`]).

use crate::config::Config;

/// The settings `new` changes that only a restart applies.
pub fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let checks: [(&'static str, bool); 23] = [
        ("server.listen", old.server.listen != new.server.listen),
        (
            "server.handover_socket",
            old.server.handover_socket != new.server.handover_socket,
        ),
        ("server.name", old.server.name != new.server.name),
        (
            "server.proxy_protocol",
            old.server.proxy_protocol != new.server.proxy_protocol
                || old.server.proxy_protocol_from != new.server.proxy_protocol_from,
        ),
        (
            "server.max_header_size",
            old.server.max_header_size != new.server.max_header_size,
        ),
        (
            "server.header_timeout",
            old.server.header_timeout != new.server.header_timeout,
        ),
        (
            "server.max_connections",
            old.server.max_connections != new.server.max_connections,
        ),
        (
            "server.shutdown_timeout",
            old.server.shutdown_timeout != new.server.shutdown_timeout,
        ),
        ("tls.listen", old.tls.listen != new.tls.listen),
        (
            "tls.min_version",
            old.tls.min_version != new.tls.min_version,
        ),
        (
            "tls.watch_interval",
            old.tls.watch_interval != new.tls.watch_interval,
        ),
        ("tls.admin", old.tls.admin != new.tls.admin),
        ("cache.capacity", old.cache.capacity != new.cache.capacity),
        (
            "cache.max_object_size",
            old.cache.max_object_size != new.cache.max_object_size,
        ),
        (
            "cache.fill_memory",
            old.cache.fill_memory != new.cache.fill_memory,
        ),
        ("admin.listen", old.admin.listen != new.admin.listen),
        (
            "admin.max_connections",
            old.admin.max_connections != new.admin.max_connections,
        ),
        ("cluster", old.cluster != new.cluster),
        ("announce", old.announce != new.announce),
        ("fill.peers", old.fill.peers != new.fill.peers),
        (
            "fill.from_cluster",
            old.fill.from_cluster != new.fill.from_cluster
                || old.fill.peer_attempts != new.fill.peer_attempts,
        ),
        ("acme", old.acme != new.acme),
        ("access_log", old.access_log != new.access_log),
    ];
    checks
        .into_iter()
        .filter_map(|(key, changed)| changed.then_some(key))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Config {
        shared::config::parse("edge.toml", text).unwrap()
    }

    #[test]
    fn only_what_was_sized_at_start_needs_a_restart() {
        let old = parse("[origin]\nurls = [\"http://127.0.0.1:9\"]\n");
        let live = parse(
            "[origin]\nurls = [\"http://127.0.0.1:10\"]\n[cache]\ndefault_ttl = \"1m\"\n[admin]\ntoken = \"t\"\n",
        );
        assert_eq!(needs_restart(&old, &live), Vec::<&str>::new());
        let sized = parse(
            "[server]\nlisten = [\"127.0.0.1:81\"]\n[origin]\nurls = [\"http://127.0.0.1:9\"]\n[cache]\ncapacity = \"1GiB\"\n",
        );
        assert_eq!(
            needs_restart(&old, &sized),
            ["server.listen", "cache.capacity"]
        );
    }
}
