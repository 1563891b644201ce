#!/usr/bin/env bash
# A/B benchmark of two crier binaries (say, before and after a refactor) on the same corpus,
# interleaved in one run so that the machine's noise hits both alike:
#
#   bash benches/ab.sh OLD_BIN NEW_BIN [N...]     (default N: 100000)
#
# For each N, REPS times, alternating A and B: `crier build` into an empty feeds folder (cold),
# then again into the filled one (warm: nothing changed). /usr/bin/time gives wall seconds and
# peak RSS; the medians and the B/A ratios go to stdout and to $RESULTS
# (default benches/results-ab.md). Corpora come from gen_corpus.py, cached as for build.sh.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
BENCHES="$REPO/benches"
BENCH_DIR=${CRIER_BENCH_DIR:-/tmp/crier-bench}
REPS=${REPS:-5}
RESULTS=${RESULTS:-$BENCHES/results-ab.md}
[ "$#" -ge 2 ] || { echo "usage: bash benches/ab.sh OLD_BIN NEW_BIN [N...]" >&2; exit 2; }
A=$1 B=$2
shift 2
if [ "$#" -gt 0 ]; then SIZES=("$@"); else SIZES=(100000); fi

BENCH_NAME=ab
# shellcheck source=benches/lib.sh
. "$BENCHES/lib.sh"
[ -x /usr/bin/time ] || apt_install time

# run BIN POSTS FEEDS -> "seconds kib"
# (from $BENCH_DIR, so that neither binary picks up a config file it may not know).
run() {
  if ! (cd "$BENCH_DIR" && /usr/bin/time -f '%e %M' -o "$BENCH_DIR/ab.time" \
    "$1" build --posts "$2" --feeds "$3" --base-url https://news.example.com/ >"$BENCH_DIR/ab.out" 2>&1); then
    tail -n 5 "$BENCH_DIR/ab.out" >&2
    echo "ab: $1 build failed" >&2
    exit 1
  fi
  cat "$BENCH_DIR/ab.time"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

{
  echo "# crier A/B: $(basename "$A") vs $(basename "$B")"
  echo
  echo "A = \`$A\`, B = \`$B\`; median of $REPS interleaved runs each, $(nproc) cores, $(date -u +%Y-%m-%d)."
  echo
  echo "| posts | A cold | B cold | B/A cold | A warm | B warm | B/A warm | A peak RSS | B peak RSS |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
} > "$BENCH_DIR/ab.md"

for n in "${SIZES[@]}"; do
  ensure_corpus "$n"
  declare -A samples=()
  for rep in $(seq "$REPS"); do
    for side in A B; do
      bin=${!side}
      feeds="$BENCH_DIR/ab-feeds-$side"
      rm -rf "$feeds"
      read -r cold rss < <(run "$bin" "$CORPUS_DIR/posts" "$feeds")
      read -r warm _ < <(run "$bin" "$CORPUS_DIR/posts" "$feeds")
      samples[$side-cold]+="$cold "
      samples[$side-warm]+="$warm "
      samples[$side-rss]+="$rss "
      log "N=$n rep $rep $side: cold ${cold}s (${rss} KiB), warm ${warm}s"
    done
  done
  m() { tr ' ' '\n' <<<"${samples[$1]}" | grep . | median; }
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b / a }'; }
  ac=$(m A-cold) bc=$(m B-cold) aw=$(m A-warm) bw=$(m B-warm) ar=$(m A-rss) br=$(m B-rss)
  echo "| $n | ${ac} s | ${bc} s | $(ratio "$ac" "$bc") | ${aw} s | ${bw} s | $(ratio "$aw" "$bw") | $((ar / 1024)) MB | $((br / 1024)) MB |" >> "$BENCH_DIR/ab.md"
  rm -rf "$BENCH_DIR"/ab-feeds-*
done
cp "$BENCH_DIR/ab.md" "$RESULTS"
cat "$RESULTS"
