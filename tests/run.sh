#!/usr/bin/env bash
# The README's test command: installs what the tests need (when run as root
# on a Debian-like machine), runs every test of the workspace, and says at
# the end how many were skipped and why.
#
# A test whose tool is missing fails with the line that installs it, unless
# GEOCDN_TESTS_ALLOW_MISSING=1 is set: then it is skipped, and counted here.
# Arguments are passed to `cargo test` (a test name, `-- --nocapture`...).
set -euo pipefail
cd "$(dirname "$0")/.."

# protoc builds etcd's gRPC API; etcd, unbound, dig, iproute2, openssl,
# curl, promtool and pebble are started or called by the tests.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    missing=()
    # protoc needs the well-known types (libprotobuf-dev), which
    # --no-install-recommends would leave out.
    [ -e /usr/include/google/protobuf/descriptor.proto ] || missing+=(libprotobuf-dev)
    for pair in protoc:protobuf-compiler etcd:etcd-server openssl:openssl ip:iproute2 unbound:unbound dig:bind9-dnsutils curl:curl promtool:prometheus pebble:pebble; do
        command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing: ${missing[*]}" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
fi

# The package test builds .debs with cargo-deb.
if ! command -v cargo-deb >/dev/null; then
    echo "installing: cargo-deb" >&2
    cargo install cargo-deb --version 3.8.0 --locked --quiet
fi

skipped=$(mktemp)
trap 'rm -f "$skipped"' EXIT
export GEOCDN_TESTS_SKIPPED_FILE="$skipped"
status=0
cargo test --workspace "$@" || status=$?

count=$(wc -l < "$skipped")
if [ "$count" -gt 0 ]; then
    echo
    echo "SKIPPED: $count test(s) did not run (GEOCDN_TESTS_ALLOW_MISSING=1):"
    sort "$skipped" | uniq -c | sed 's/^/  /'
else
    echo
    echo "no test was skipped"
fi
exit "$status"
