#!/usr/bin/env bash
# Runs each fuzz target for SECONDS (default 1800) on one core, then shrinks its corpus.
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`); CI does not run this,
# it replays the committed corpora instead (tests/fuzz_corpus.rs).
# Usage: fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-1800}
shift || true
targets=("${@:-post body request}")
read -r -a targets <<<"${targets[*]}"
mkdir -p fuzz/logs
for target in "${targets[@]}"; do
    # A post up to 64 KiB; an input slower than 10 s is reported as a hang (a lost linear bound).
    cargo +nightly fuzz run -O "$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=4096 \
        -print_final_stats=1 >"fuzz/logs/$target.log" 2>&1 || echo "$target: stopped with a finding, see fuzz/logs/$target.log"
    cargo +nightly fuzz cmin -O "$target" "fuzz/corpus/$target" >>"fuzz/logs/$target.log" 2>&1
done
