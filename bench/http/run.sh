#!/usr/bin/env bash
# edge, Varnish and nginx proxy_cache side by side in front of one origin,
# on this machine, in one run.
#
# 1. Hit throughput and p99 latency with wrk (-t1 -c64) for 1 KiB and
#    100 KiB objects, runs alternating between the caches after a warm-up.
# 2. Coalescing: 200 concurrent requests for one cold key to a 1 s origin;
#    origin requests counted, wall time measured. Then the same for a
#    response that turns out uncacheable (no-store).
# 3. Resident memory of each cache after the runs.
# 4. HTTPS against nginx: bench/http/https.sh, run at the end.
#
# Usage: bench/http/run.sh   (DURATION=10 ROUNDS=2 to change)
# Needs: wrk, varnish, nginx (apt install wrk varnish nginx), python3.
set -euo pipefail

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
ORIGIN=127.0.0.20:9000
declare -A ADDR=([edge]=127.0.0.23:8080 [varnish]=127.0.0.21:8080 [nginx]=127.0.0.22:8080)

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
chmod 755 "$work"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

for tool in wrk varnishd nginx python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install wrk varnish nginx" >&2; exit 1; }
done

(cd "$root" && cargo build --release -q -p edge)

python3 "$here/origin.py" "${ORIGIN%:*}" "${ORIGIN#*:}" &
pids+=($!)

cat > "$work/edge.toml" <<TOML
[server]
listen = ["${ADDR[edge]}"]
name = "bench-edge"
[origin]
urls = ["http://$ORIGIN"]
[cache]
capacity = "256MiB"
[admin]
listen = "127.0.0.23:9180"
TOML
"$root/target/release/edge" run --config "$work/edge.toml" >"$work/edge.log" 2>&1 &
pids+=($!); edge_pid=$!

cat > "$work/default.vcl" <<'VCL'
vcl 4.1;
backend default { .host = "127.0.0.20"; .port = "9000"; }
sub vcl_backend_response {
    set beresp.grace = 1h;
    if (beresp.status >= 500 && bereq.is_bgfetch) { return (abandon); }
}
VCL
varnishd -F -a "${ADDR[varnish]}" -f "$work/default.vcl" -s malloc,256m -n "$work/varnish" >"$work/varnish.log" 2>&1 &
pids+=($!); varnish_pid=$!

mkdir -p "$work/nginx/cache" "$work/nginx/logs"
cat > "$work/nginx/nginx.conf" <<CONF
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush off;
    keepalive_requests 1000000;
    proxy_cache_path $work/nginx/cache levels=1:2 keys_zone=bench:64m max_size=256m inactive=1h;
    server {
        listen ${ADDR[nginx]};
        location / {
            proxy_pass http://$ORIGIN;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache bench;
            proxy_cache_lock on;
            proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;
        }
    }
}
CONF
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" -g 'daemon off;' &
pids+=($!); nginx_pid=$!

for _ in $(seq 50); do
    ok=1
    for server in edge varnish nginx; do curl -sf -o /dev/null "http://${ADDR[$server]}/1k" || ok=0; done
    [ $ok = 1 ] && break
    sleep 0.2
done

declare -A rps p99
for round in $(seq "$ROUNDS"); do
    for object in 1k 100k; do
        for server in edge varnish nginx; do
            url="http://${ADDR[$server]}/$object"
            curl -sf -o /dev/null "$url"; curl -sf -o /dev/null "$url"
            out=$(wrk -t1 -c64 -d"${DURATION}s" --latency "$url")
            rate=$(echo "$out" | awk '/Requests\/sec/ { print $2 }')
            tail=$(echo "$out" | awk '/ 99%/ { v = $2; if (v ~ /us$/) { sub("us", "", v); v /= 1000 } else if (v ~ /ms$/) { sub("ms", "", v) } else if (v ~ /s$/) { sub("s", "", v); v *= 1000 }; print v }')
            rps[$server,$object]="${rps[$server,$object]:-} $rate"
            p99[$server,$object]="${p99[$server,$object]:-} $tail"
            printf 'round %d %-5s %-8s %10.0f req/s  p99 %6.2f ms\n' "$round" "$object" "$server" "$rate" "$tail"
        done
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo
echo "| object | edge req/s | Varnish req/s | nginx req/s | edge / best | edge p99 ms | Varnish p99 | nginx p99 |"
echo "|---|---|---|---|---|---|---|---|"
for object in 1k 100k; do
    e=$(echo "${rps[edge,$object]}" | median); v=$(echo "${rps[varnish,$object]}" | median); n=$(echo "${rps[nginx,$object]}" | median)
    pe=$(echo "${p99[edge,$object]}" | median); pv=$(echo "${p99[varnish,$object]}" | median); pn=$(echo "${p99[nginx,$object]}" | median)
    awk -v o="$object" -v e="$e" -v v="$v" -v n="$n" -v pe="$pe" -v pv="$pv" -v pn="$pn" \
        'BEGIN { best = v > n ? v : n; printf "| %s | %.0f | %.0f | %.0f | %.2f | %.2f | %.2f | %.2f |\n", o, e, v, n, e / best, pe, pv, pn }'
done

echo
echo "coalescing: 200 concurrent requests for one cold key, origin answers after 1 s"
stats() { curl -sf "http://$ORIGIN/stats"; }
count() { python3 -c "import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2], 0))" "$(stats)" "$1"; }
for path in slow slow-nostore; do
    for server in edge varnish nginx; do
        before=$(count "/$path")
        result=$(python3 "$here/coalesce.py" "http://${ADDR[$server]}/$path?$server-$RANDOM" 200)
        after=$(count "/$path")
        printf '  %-13s %-8s %5s s  %3d origin requests  (%s failed)\n' "$path" "$server" "${result% *}" $((after - before)) "${result#* }"
    done
done

# Resident memory, counting the edge's sealed bodies (memfds sent with
# sendfile are not mapped pages, so VmRSS alone would leave them out):
# anonymous + file-backed resident pages + the sizes of its memfds.
rss() {
    local kb memfd=0 fd
    kb=$(awk '/RssAnon|RssFile/ { s += $2 } END { print s }' "/proc/$1/status")
    for fd in /proc/"$1"/fd/*; do
        case "$(readlink "$fd" 2>/dev/null)" in
            /memfd:edge-body*) memfd=$((memfd + $(stat -L -c %s "$fd" 2>/dev/null || echo 0))) ;;
        esac
    done
    awk -v kb="$kb" -v m="$memfd" 'BEGIN { printf "%.0f MB", (kb * 1024 + m) / 1048576 }'
}
varnish_child=$(pgrep -P "$varnish_pid" | head -1 || true)
echo
echo "resident memory after the runs: edge $(rss "$edge_pid"), varnish child $( [ -n "$varnish_child" ] && rss "$varnish_child" || echo '?')"

# Churn: distinct 100 KiB objects through 256 MiB caches for FILL seconds
# (about 1 GiB or more at this origin's pace), then resident memory.
FILL=${FILL:-15}
cat > "$work/distinct.lua" <<'LUA'
local n = 0
request = function()
    n = n + 1
    return wrk.format(nil, "/100k?churn=" .. n)
end
LUA
echo "churn: distinct 100 KiB objects for ${FILL}s into 256 MiB (capacity)"
for server in edge varnish; do
    out=$(wrk -t1 -c16 -d"${FILL}s" -s "$work/distinct.lua" "http://${ADDR[$server]}/")
    requests=$(echo "$out" | awk '/requests in/ { print $1 }')
    pid=$edge_pid; [ $server = varnish ] && pid=$varnish_child
    printf '  %-8s %6d objects (%5.0f MiB) -> resident %s\n' "$server" "$requests" "$(awk -v n="$requests" 'BEGIN { print n * 100 / 1024 }')" "$(rss "$pid")"
done

# HTTPS: edge and nginx on one certificate (hits, full and resumed handshakes).
echo
echo "HTTPS (bench/http/https.sh)"
DURATION=$DURATION ROUNDS=$ROUNDS bash "$here/https.sh"
