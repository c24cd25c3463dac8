#!/usr/bin/env bash
# edge and nginx (OpenSSL) over HTTPS, same certificate, same origin, on this
# machine, in one run.
#
# 1. Hits over TLS with keep-alive: wrk (HTTP/1.1, -t1 -c64) for 1 KiB and
#    100 KiB objects, and h2load (HTTP/2, 64 connections x 10 streams) for
#    1 KiB.
# 2. Full TLS 1.3 handshakes per second: openssl s_time -new, 2 client
#    processes, one request per connection.
# 3. Resumed handshakes per second: openssl s_time -reuse, the same way.
# The edge's handshake metric, printed after each, shows which kind ran.
#
# The certificate is ECDSA P-256; the key exchange is what the clients
# offer first (X25519 for wrk and OpenSSL 3.0). There is no kTLS in this
# kernel, so both servers encrypt in user space: each 100 KiB response is
# copied and sealed in 16 KiB records, which is what bounds that line.
#
# Usage: bench/http/https.sh   (DURATION=10 ROUNDS=2 to change)
# Needs: wrk, h2load, nginx, openssl (apt install wrk nghttp2-client nginx openssl), python3.
set -euo pipefail

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
ORIGIN=127.0.0.30:9000
declare -A ADDR=([edge]=127.0.0.33:8443 [nginx]=127.0.0.32:8443)
SERVERS=(edge nginx)

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

for tool in wrk h2load nginx openssl python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install wrk nghttp2-client nginx openssl" >&2; exit 1; }
done

(cd "$root" && cargo build --release -q -p edge)

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$work/key.pem" -out "$work/cert.pem" -days 2 -subj /CN=bench.test \
    -addext subjectAltName=DNS:bench.test 2>/dev/null

python3 "$here/origin.py" "${ORIGIN%:*}" "${ORIGIN#*:}" &
pids+=($!)

cat > "$work/edge.toml" <<TOML
[server]
listen = ["127.0.0.33:8080"]
name = "bench-edge"
[tls]
listen = ["${ADDR[edge]}"]
[[tls.certificates]]
certificate = "$work/cert.pem"
key = "$work/key.pem"
[origin]
urls = ["http://$ORIGIN"]
[cache]
capacity = "256MiB"
[admin]
listen = "127.0.0.33:9180"
TOML
"$root/target/release/edge" run --config "$work/edge.toml" >"$work/edge.log" 2>&1 &
pids+=($!); declare -A PID=([edge]=$!)

mkdir -p "$work/nginx/cache" "$work/nginx/logs"
cat > "$work/nginx/nginx.conf" <<CONF
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    proxy_cache_path $work/nginx/cache levels=1:2 keys_zone=bench:64m max_size=256m inactive=1h;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:20m;
    ssl_session_tickets on;
    server {
        listen ${ADDR[nginx]} ssl http2;
        server_name bench.test;
        ssl_certificate $work/cert.pem;
        ssl_certificate_key $work/key.pem;
        location / {
            proxy_pass http://$ORIGIN;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache bench;
            proxy_cache_lock on;
        }
    }
}
CONF
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" -g 'daemon off;' &
pids+=($!); PID[nginx]=$!

url() { echo "https://bench.test:${ADDR[$1]##*:}/$2"; }
resolve() { echo "bench.test:${ADDR[$1]##*:}:${ADDR[$1]%:*}"; }
for _ in $(seq 50); do
    ok=1
    for server in "${SERVERS[@]}"; do
        curl -skf -o /dev/null --resolve "$(resolve "$server")" "$(url "$server" 1k)" || ok=0
    done
    [ $ok = 1 ] && break
    sleep 0.2
done

# wrk and h2load take the address from the URL: give them addresses, and
# the name by SNI / Host where they can.
direct() { echo "https://${ADDR[$1]}/$2"; }
handshakes() {
    curl -sf http://127.0.0.33:9180/metrics | awk -v kind="$1" '$1 ~ "^edge_tls_handshakes_total" && $1 ~ "kind=\"" kind "\"" { s += $2 } END { print s + 0 }'
}

# CPU seconds (user + system) used so far by a server, workers included.
cpu() {
    local total=0 pid
    for pid in "${PID[$1]}" $(pgrep -P "${PID[$1]}" || true); do
        total=$(awk -v t="$total" '{ print t + ($14 + $15) / 100 }' "/proc/$pid/stat")
    done
    echo "$total"
}

declare -A rate cost
record() { rate[$1,$2]="${rate[$1,$2]:-} $3"; printf 'round %d %-22s %-6s %10.0f /s\n' "$round" "$2" "$1" "$3"; }
for round in $(seq "$ROUNDS"); do
    for object in 1k 100k; do
        for server in "${SERVERS[@]}"; do
            curl -skf -o /dev/null --resolve "$(resolve "$server")" "$(url "$server" "$object")"
            out=$(wrk -t1 -c64 -d"${DURATION}s" -H "Host: bench.test" "$(direct "$server" "$object")")
            record "$server" "hits-h1-$object" "$(echo "$out" | awk '/Requests\/sec/ { print $2 }')"
        done
    done
    for server in "${SERVERS[@]}"; do
        out=$(h2load -c64 -m10 -D"$DURATION" --warm-up-time=1 "$(direct "$server" 1k)" 2>&1)
        record "$server" "hits-h2-1k" "$(echo "$out" | awk '/^finished in/ { gsub(",", "", $4); print $4 }')"
    done
    for mode in new reuse; do
        line=full-handshakes; [ $mode = reuse ] && line=resumed-handshakes
        for server in "${SERVERS[@]}"; do
            full_before=$(handshakes full); resumed_before=$(handshakes resumed)
            cpu_before=$(cpu "$server")
            jobs=()
            for client in 1 2; do
                openssl s_time -connect "${ADDR[$server]}" -"$mode" -time "$DURATION" -www /1k >"$work/s_time.$client" 2>&1 &
                jobs+=($!)
            done
            wait "${jobs[@]}" || true
            # "N connections in T real seconds": wall time, both clients.
            count=$(cat "$work"/s_time.* | awk '/connections in [0-9]+ real seconds/ { n += $1 } END { print n + 0 }')
            record "$server" "$line" "$(cat "$work"/s_time.* | awk '/connections in [0-9]+ real seconds/ { n += $1; if ($4 > t) t = $4 } END { print (t > 0 ? n / t : 0) }')"
            # The clients share the machine: the server's CPU per handshake
            # is the figure that does not depend on them.
            micros=$(awk -v a="$cpu_before" -v b="$(cpu "$server")" -v n="$count" 'BEGIN { print (n > 0 ? (b - a) * 1e6 / n : 0) }')
            cost[$server,$line]="${cost[$server,$line]:-} $micros"
            printf '    %s server CPU per handshake: %.0f us\n' "$server" "$micros"
            rm -f "$work"/s_time.*
            if [ "$server" = edge ]; then
                echo "    edge handshakes in that run: full $(( $(handshakes full) - full_before )), resumed $(( $(handshakes resumed) - resumed_before ))"
            fi
        done
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo
echo "| line | edge /s | nginx /s | edge / nginx |"
echo "|---|---|---|---|"
for line in hits-h1-1k hits-h1-100k hits-h2-1k full-handshakes resumed-handshakes; do
    e=$(echo "${rate[edge,$line]}" | median); n=$(echo "${rate[nginx,$line]}" | median)
    awk -v l="$line" -v e="$e" -v n="$n" 'BEGIN { printf "| %s | %.0f | %.0f | %.2f |\n", l, e, n, (n > 0 ? e / n : 0) }'
done
echo
echo "| server CPU per handshake | edge us | nginx us | nginx / edge |"
echo "|---|---|---|---|"
for line in full-handshakes resumed-handshakes; do
    e=$(echo "${cost[edge,$line]}" | median); n=$(echo "${cost[nginx,$line]}" | median)
    awk -v l="$line" -v e="$e" -v n="$n" 'BEGIN { printf "| %s | %.0f | %.0f | %.2f |\n", l, e, n, (e > 0 ? n / e : 0) }'
done
