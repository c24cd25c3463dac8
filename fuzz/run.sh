#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer's coverage instrumentation on the
# stable toolchain and runs each for a bounded time.
#
#   fuzz/run.sh [seconds per target] [target...]
#
# Without targets, runs all of them. Corpora grow in fuzz/corpus/<target>
# (seeded from fuzz/seeds/<target>); a crash is saved in
# fuzz/artifacts/<target>/ and makes the script fail. Reproduce one with
#   fuzz/target/<host triple>/release/<target> fuzz/artifacts/<target>/crash-...
set -euo pipefail
cd "$(dirname "$0")"

seconds=${1:-30}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^geocdn-fuzz$')
fi

# What cargo-fuzz passes, minus the sanitizer (which needs nightly):
# SanitizerCoverage's 8-bit counters, PC table and comparison tracing.
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
-Cdebug-assertions -Coverflow-checks"
export CARGO_TERM_COLOR=never
# An explicit target keeps the flags off build scripts and proc-macros.
host=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --locked --bins --target "$host"
bin="target/$host/release"

failed=()
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "artifacts/$target"
    seeds=()
    [ -d "seeds/$target" ] && seeds=("seeds/$target")
    echo "fuzz: $target for ${seconds}s"
    if ! "$bin/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len=4096 -print_final_stats=1 -artifact_prefix="artifacts/$target/" \
        "corpus/$target" "${seeds[@]}" 2> "artifacts/$target/log"; then
        tail -n 40 "artifacts/$target/log"
        failed+=("$target")
    else
        grep -E '^(stat::number_of_executed_units|stat::new_units_added)' "artifacts/$target/log" \
            | sed "s/^/fuzz: $target /" || true
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: crashes in ${failed[*]} (inputs in fuzz/artifacts)" >&2
    exit 1
fi
