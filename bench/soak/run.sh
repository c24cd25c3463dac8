#!/usr/bin/env bash
# Soak: an edge under mixed load (hits, misses, HTTP/2, slow and silent
# clients, abandoned requests) for MINUTES, sampling RSS, descriptors and hit
# latency every 5 s; fails on errors or growth. Not part of CI's run.
#
# Usage: bench/soak/run.sh [MINUTES]   (default 30)
# Needs: python3; h2load (apt install nghttp2-client) for the HTTP/2 part.
set -euo pipefail

MINUTES=${1:-30}
ORIGIN=127.0.0.30:9000
EDGE=127.0.0.31:8080
ADMIN=127.0.0.31:9180

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

command -v h2load >/dev/null || echo "h2load not found (apt-get install nghttp2-client): HTTP/2 bursts skipped" >&2
(cd "$root" && cargo build --release -q -p edge)

python3 "$root/bench/http/origin.py" "${ORIGIN%:*}" "${ORIGIN#*:}" 2>"$work/origin.log" &
pids+=($!)
cat > "$work/edge.toml" <<TOML
[server]
listen = ["$EDGE"]
name = "soak-edge"
[origin]
urls = ["http://$ORIGIN"]
[cache]
capacity = "16MiB"
[admin]
listen = "$ADMIN"
TOML
"$root/target/release/edge" run --config "$work/edge.toml" >"$work/edge.log" 2>&1 &
pids+=($!); edge_pid=$!
for _ in $(seq 50); do
    curl -sf "http://$ADMIN/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done

python3 "$here/soak.py" "$EDGE" "$ADMIN" "$edge_pid" "$MINUTES" "$work/timeline.csv"
status=$?
echo "timeline: $work/timeline.csv; edge log: $work/edge.log"
exit $status
