#!/usr/bin/env bash
# Serve A/B: benches/serve.sh with short settings, run for two crier binaries in turn, ROUNDS
# times (A, B, A, B, ...), so that the machine's drift hits both alike. Prints, per run, the
# save-to-served latency rows (as it is and gzip, for each of serve.sh's two pollers), the
# median of crier's own update steps, and crier's resident memory after its start and after the
# last round of edits.
#
#   bash benches/ab_serve.sh OLD_BIN NEW_BIN
#
# Knobs: ROUNDS=2, LAT_POSTS=80, EDITS=200 (and serve.sh's own).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ "$#" -eq 2 ] || { echo "usage: bash benches/ab_serve.sh OLD_BIN NEW_BIN" >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "| run | binary | served | posts | p50 ms | p90 ms | p99 ms | max ms | min ms | mean ms | update step median | VmRSS after start, after the edits (MB) |"
echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
for round in $(seq "${ROUNDS:-2}"); do
  for side in A B; do
    bin=$1; [ "$side" = B ] && bin=$2
    SKIP_CARGO=1 CRIER_BIN=$bin RESULTS=$out/results.md LAT_POSTS=${LAT_POSTS:-80} EDITS=${EDITS:-200} \
      WRK_SECS=2 REPS=1 bash "$REPO/benches/serve.sh" > "$out/run.md" 2> "$out/run.log"
    step=$(grep -o 'had median [0-9.]* ms' "$out/run.md" | head -1 | grep -o '[0-9.]* ms')
    rss=$(grep -E '^\| after (start|[0-9]+ edits)' "$out/run.md" | awk -F'|' '{ gsub(/ /, "", $3); print $3 }' | sed -n '1p;$p' | paste -sd, -)
    awk '/^\| served \| posts \| p50 ms/ { on = 1; next } on && !/^\|/ { exit } on && !/^\|---/' "$out/run.md" | while read -r row; do
      echo "| $round | $side |${row#|} $step | $rss |"
    done
  done
done
