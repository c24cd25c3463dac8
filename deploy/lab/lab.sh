#!/usr/bin/env bash
# A multi-region lab on one Linux machine, in network namespaces.
#
#   lab.sh up [WORKDIR]     build the lab and start everything (idempotent)
#   lab.sh down             stop everything and remove the namespaces
#   lab.sh stop-edge REGION kill one edge (eu, us or ap)
#   lab.sh start-edge REGION
#
# Topology (one bridge, living in its own namespace):
#   geocdn-lab-dns       198.18.0.53   geodns (authoritative for cdn.example.com)
#   geocdn-lab-resolver  198.18.0.2    unbound, sending EDNS Client Subnet to geodns
#   geocdn-lab-origin    198.18.0.80   the sample origin
#   geocdn-lab-eu|us|ap  198.18.1.11-13  edges (HTTP :8080, /healthz on :9180)
#   geocdn-lab-client-eu|us|ap  100.64.1.10, 100.64.2.10, 100.64.3.10  clients
# The lab geo database places 100.64.1/24 in Amsterdam, 100.64.2/24 in New York
# and 100.64.3/24 in Tokyo. Nothing is added to the root namespace.
#
# Needs root, iproute2 and unbound; binaries from $BIN_DIR (default target/release).
# TTL sets the geo answer TTL (default 5s).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BIN_DIR=${BIN_DIR:-$root/target/release}
TTL=${TTL:-5s}
STATE=/run/geocdn-lab
PREFIX=geocdn-lab
BRIDGE_NS=$PREFIX-br
REGIONS=(eu us ap)
declare -A EDGE_IP=([eu]=198.18.1.11 [us]=198.18.1.12 [ap]=198.18.1.13)
declare -A CLIENT_IP=([eu]=100.64.1.10 [us]=100.64.2.10 [ap]=100.64.3.10)

namespaces() { ip netns list 2>/dev/null | awk '{ print $1 }' | grep "^$PREFIX-" || true; }

# Starts a program inside a namespace, in its own session, logging to WORK.
start_in() {
    local ns=$1 name=$2; shift 2
    ip netns exec "$ns" setsid "$@" >"$WORK/$name.log" 2>&1 < /dev/null &
    echo $! >"$WORK/$name.pid"
}

kill_namespace_processes() {
    local ns=$1 pids
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [ -n "$pids" ] && kill $pids 2>/dev/null || true
    for _ in $(seq 20); do
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        [ -z "$pids" ] && return 0
        sleep 0.1
    done
    kill -9 $pids 2>/dev/null || true
}

add_host() {
    local ns=$1 address=$2 other=$3 index=$4
    ip netns add "$ns"
    ip link add "v$index" type veth peer name eth0 netns "$ns"
    ip link set "v$index" netns "$BRIDGE_NS"
    ip -n "$BRIDGE_NS" link set "v$index" master br0 up
    ip -n "$ns" addr add "$address" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    # The other address block is on the same segment.
    ip -n "$ns" route add "$other" dev eth0
}

down() {
    for ns in $(namespaces); do kill_namespace_processes "$ns"; done
    for ns in $(namespaces); do ip netns del "$ns"; done
    rm -rf "$STATE"
}

write_configs() {
    cat >"$WORK/networks.csv" <<CSV
100.64.1.0/24,52.3676,4.9041,NL,EU
100.64.2.0/24,40.7128,-74.0060,US,NA
100.64.3.0/24,35.6762,139.6503,JP,AS
CSV
    "$BIN_DIR/geodns" geoip build "$WORK/networks.csv" "$WORK/lab.mmdb" >/dev/null
    cat >"$WORK/geodns.toml" <<TOML
[server]
listen = ["198.18.0.53:53"]
[admin]
listen = "198.18.0.53:9153"
token = "lab-token"
[geoip]
databases = ["lab.mmdb"]
[health]
interval = "300ms"
timeout = "250ms"
rise = 2
fall = 2
jitter = "50ms"
[zones."cdn.example.com"]
soa = { mname = "ns1.cdn.example.com", rname = "hostmaster.example.com", minimum = "5s" }
ns = ["ns1.cdn.example.com"]
[[zones."cdn.example.com".records]]
name = "ns1"
type = "A"
value = "198.18.0.53"
[services.www]
zone = "cdn.example.com"
names = ["www"]
ttl = "$TTL"
[[services.www.edges]]
name = "eu"
region = "eu"
location = { latitude = 50.1109, longitude = 8.6821 }
ipv4 = ["${EDGE_IP[eu]}"]
health = "http://${EDGE_IP[eu]}:9180/healthz"
[[services.www.edges]]
name = "us"
region = "us"
location = { latitude = 39.0438, longitude = -77.4874 }
ipv4 = ["${EDGE_IP[us]}"]
health = "http://${EDGE_IP[us]}:9180/healthz"
[[services.www.edges]]
name = "ap"
region = "ap"
location = { latitude = 35.6762, longitude = 139.6503 }
ipv4 = ["${EDGE_IP[ap]}"]
health = "http://${EDGE_IP[ap]}:9180/healthz"
TOML
    for region in "${REGIONS[@]}"; do
        cat >"$WORK/edge-$region.toml" <<TOML
[server]
listen = ["${EDGE_IP[$region]}:8080"]
name = "edge-$region"
[origin]
urls = ["http://198.18.0.80:8000"]
[cache]
capacity = "64MiB"
[admin]
listen = "${EDGE_IP[$region]}:9180"
token = "lab-token"
TOML
    done
    cat >"$WORK/unbound.conf" <<CONF
server:
    interface: 198.18.0.2
    port: 53
    access-control: 100.64.0.0/10 allow
    access-control: 198.18.0.0/15 allow
    username: ""
    chroot: ""
    directory: "$WORK"
    pidfile: "$WORK/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 1
    do-not-query-localhost: no
    # No validator: the lab has no path to the real root.
    module-config: "subnetcache iterator"
    # Send ECS (the client's /24) to geodns.
    send-client-subnet: 198.18.0.53
    max-client-subnet-ipv4: 24
    # example.com is not one of unbound's built-in local zones, but keep
    # the lab independent of that list.
    local-zone: "example.com." nodefault
    qname-minimisation: no
    cache-max-ttl: 60
stub-zone:
    name: "cdn.example.com"
    stub-addr: 198.18.0.53
CONF
}

start_edge() { start_in "$PREFIX-$1" "edge-$1" "$BIN_DIR/edge" run --config "$WORK/edge-$1.toml"; }

up() {
    WORK=${1:-$STATE}
    [ "$(id -u)" = 0 ] || { echo "lab.sh: needs root" >&2; exit 1; }
    for tool in ip unbound; do command -v "$tool" >/dev/null || { echo "lab.sh: needs $tool" >&2; exit 1; }; done
    for binary in geodns edge geocdn-demo; do
        [ -x "$BIN_DIR/$binary" ] || { echo "lab.sh: $BIN_DIR/$binary missing (cargo build --release)" >&2; exit 1; }
    done
    down
    mkdir -p "$WORK" "$STATE"
    echo "$WORK" >"$STATE/work"
    write_configs

    ip netns add "$BRIDGE_NS"
    ip -n "$BRIDGE_NS" link add br0 type bridge
    ip -n "$BRIDGE_NS" link set br0 up
    local index=0
    add_host "$PREFIX-dns" 198.18.0.53/15 100.64.0.0/10 $((index++))
    add_host "$PREFIX-resolver" 198.18.0.2/15 100.64.0.0/10 $((index++))
    add_host "$PREFIX-origin" 198.18.0.80/15 100.64.0.0/10 $((index++))
    for region in "${REGIONS[@]}"; do
        add_host "$PREFIX-$region" "${EDGE_IP[$region]}/15" 100.64.0.0/10 $((index++))
        add_host "$PREFIX-client-$region" "${CLIENT_IP[$region]}/10" 198.18.0.0/15 $((index++))
    done

    start_in "$PREFIX-origin" origin "$BIN_DIR/geocdn-demo" origin 198.18.0.80:8000
    for region in "${REGIONS[@]}"; do start_edge "$region"; done
    start_in "$PREFIX-dns" geodns "$BIN_DIR/geodns" run --config "$WORK/geodns.toml"
    start_in "$PREFIX-resolver" unbound unbound -d -c "$WORK/unbound.conf"
    echo "lab is up (logs and configs in $WORK); try:"
    echo "  ip netns exec $PREFIX-client-eu dig @198.18.0.2 www.cdn.example.com +short"
    echo "  ip netns exec $PREFIX-client-eu curl -si http://198.18.1.11:8080/hello.txt"
}

case "${1:-}" in
    up) up "${2:-}" ;;
    down) down ;;
    stop-edge) kill_namespace_processes "$PREFIX-$2" ;;
    start-edge) WORK=$(cat "$STATE/work"); start_edge "$2" ;;
    *) echo "usage: lab.sh up [WORKDIR] | down | stop-edge REGION | start-edge REGION" >&2; exit 2 ;;
esac
