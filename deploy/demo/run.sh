#!/usr/bin/env bash
# The local demo: builds every binary in release mode, then starts an origin,
# three edges and geodns on loopback. Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --bins
exec target/release/geocdn-demo
