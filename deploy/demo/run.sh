#!/usr/bin/env bash
# The local demo: builds every binary in release mode, then starts an origin,
# three edges and geodns on loopback. Ctrl-C stops them all.
# --cluster adds etcd (apt-get install etcd-server) and two edges that
# announce themselves (docs/cluster.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
# The etcd client is generated from .proto files at build time.
if ! command -v protoc >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler >/dev/null
    else
        echo "protoc is needed to build: sudo apt-get install protobuf-compiler" >&2
        exit 1
    fi
fi
cargo build --release --bins
exec target/release/geocdn-demo "$@"
