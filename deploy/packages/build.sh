#!/usr/bin/env bash
# Builds target/debian/geodns_*.deb and target/debian/edge_*.deb.
#
# Usage: deploy/packages/build.sh [--profile dev] [--deb-version VERSION]
#   --profile dev     package the debug binaries (quicker; what the tests use)
#   --deb-version V   the package version (default: the crate version)
# Needs: cargo-deb (cargo install cargo-deb --locked), gzip.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
profile=release
deb_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile=$2; shift 2 ;;
        --deb-version) deb_args+=(--deb-version "$2"); shift 2 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
command -v cargo-deb >/dev/null || { echo "missing cargo-deb: cargo install cargo-deb --locked" >&2; exit 1; }

cd "$root"
cargo build -q --profile "$profile" -p geodns -p edge --bins
# Man pages and completions from the command-line definitions.
assets="$root/target/package-assets"
rm -rf "$assets"
cargo run -q --profile "$profile" -p packages -- "$assets"
gzip -9n "$assets"/*/man/*.1
for package in geodns edge; do
    cargo deb -q --no-build --strip --profile "$profile" -p "$package" "${deb_args[@]}"
done
