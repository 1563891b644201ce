#!/usr/bin/env bash
# Restart A/B: how soon two crier binaries answer after a restart from their scan index, on the
# same posts, alternated so that the machine's drift hits both alike.
#
#   bash benches/ab_start.sh OLD_BIN NEW_BIN POSTS_DIR
#
# Each binary first makes its own site with a cold `crier build` (the scan index is keyed by the
# binary, so neither can start from the other's), then ROUNDS times (default 3), A then B:
# `crier serve` on that site through benches/start_probe.py (spawn to the first 200 on
# /feeds/feed.rss, to the catch-up step, resident memory 3 s after). Runs from the repo root, as
# benches/index.sh does, so config/crier.toml is part of both configurations. The binaries must
# not be rebuilt while it runs (copy them somewhere first). KEEP=1 keeps the sites.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
[ "$#" -eq 3 ] || { echo "usage: bash benches/ab_start.sh OLD_BIN NEW_BIN POSTS_DIR" >&2; exit 2; }
BENCH_DIR=${CRIER_BENCH_DIR:-/tmp/crier-bench}
mkdir -p "$BENCH_DIR"
WORK=$(mktemp -d "$BENCH_DIR/ab-start.XXXXXX")
trap '[ "${KEEP:-0}" = 1 ] || rm -rf "$WORK"' EXIT
declare -A BIN=([A]=$1 [B]=$2)
POSTS=$3
echo "A: $1; B: $2; posts: $POSTS; $(date -u +%Y-%m-%dT%H:%M:%SZ), nproc $(nproc)"
for side in A B; do
  /usr/bin/time -f "$side cold build: %e s, %M KB" "${BIN[$side]}" build --posts "$POSTS" \
    --feeds "$WORK/$side/feeds" --base-url https://news.example.com/ 2>&1 | tail -n1
  sync
done
for round in $(seq "${ROUNDS:-3}"); do
  for side in A B; do
    probe=$(python3 benches/start_probe.py "${BIN[$side]}" serve --posts "$POSTS" --feeds "$WORK/$side/feeds" \
      --base-url https://news.example.com/ --listen 127.0.0.1:0)
    line=$(echo "$probe" | sed -n 1,3p | tr '\n' ';')
    echo "round $round, $side: $line"
  done
done
