#!/usr/bin/env bash
# Scan index benchmark (issue 12), at N posts (default 100000), in one run:
#
#   bash benches/index.sh [N]        (from anywhere; it runs from the repo root)
#
# REPS times, interleaved:
#   cold   crier build into an empty feeds folder with no state (everything read and written)
#   floor  examples/floor.rs: read every post file, then gzip + brotli + write every document
#          that cold build made (no rendering): what any generator of this output must spend
# then, on the last cold build's folder:
#   quick  crier build with nothing changed (5 runs)
#   one    crier build after one post file was touched (its fingerprint changes; 3 runs)
#   start  crier serve from the scan index: spawn to the first 200 on /feeds/feed.rss, to the
#          catch-up step, and resident memory 3 s after it (benches/start_probe.py; 3 runs)
# with /usr/bin/time -f '%e %M'. Writes benches/results-index.md.
#
# Every cold build and floor run writes into a folder of its own, and nothing is deleted until the
# end: on an ext4 without a journal (this VM's), creating a file within a minute of deleting many
# costs the kernel a look at each recently freed inode (recently_deleted() in fs/ext4/ialloc.c),
# which put 12 % of a cold build's CPU time there when it ran right after the last run's rm -rf.
# That cost falls on whichever run follows a deletion, so it is kept off all of them; this script's
# own cleanup at the end puts it on anything run on that file system in the next few minutes (a
# second run right after the first measured its cold builds 1.35x slower by medians, with two to
# three times the system CPU), so leave five minutes between runs. User CPU, recorded beside the
# wall times, is not touched by it.
#
#   REPS=3  SKIP_CARGO=1  CRIER_BENCH_DIR=/tmp/crier-bench  RESULTS=path
#   POSTS_DIR=path  a corpus already generated (gen_corpus.py N DIR, without the Hugo twin)
#   NO_FLOOR=1      skip the floor (it writes a second copy of the output: 19 GB at 1,000,000)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
BENCHES="$REPO/benches"
BENCH_DIR=${CRIER_BENCH_DIR:-/tmp/crier-bench}
N=${1:-100000}
REPS=${REPS:-3}
RESULTS=${RESULTS:-$BENCHES/results-index.md}
CRIER=$REPO/target/release/crier
FLOOR=$REPO/target/release/examples/floor
BENCH_NAME=index-bench
# shellcheck source=benches/lib.sh
. "$REPO/benches/lib.sh"
[ -x /usr/bin/time ] || apt_install time
if [ "${SKIP_CARGO:-0}" != 1 ]; then
  log "cargo build --release (crier and examples/floor)"
  cargo build --release --quiet && cargo build --release --quiet --example floor
fi
if [ -n "${POSTS_DIR:-}" ]; then
  POSTS=$POSTS_DIR
else
  ensure_corpus "$N"
  POSTS="$CORPUS_DIR/posts"
fi
WORK=$(mktemp -d "$BENCH_DIR/index.XXXXXX")
trap '[ "${KEEP:-0}" = 1 ] || rm -rf "$WORK"' EXIT

timed() { # timed OUTFILE CMD... -> prints "wall_s peak_kb user_s system_s", keeps the output
  local out=$1; shift
  /usr/bin/time -f '%e %M %U %S' -o "$WORK/time" "$@" > "$out" 2>&1 || true
  tail -n1 "$WORK/time"
}
median() { # median NUMBER... (each argument's first word) -> the median
  printf '%s\n' "$@" | awk '{print $1}' | sort -g | awk '{v[NR] = $1} END {if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2)}'
}
ratio() { # ratio ARRAY_A ARRAY_B -> median of A over median of B, to two places
  local -n a=$1 b=$2
  awk -v x="$(median "${a[@]}")" -v y="$(median "${b[@]}")" 'BEGIN {if (y > 0) printf "%.2f×", x / y; else printf "n/a"}'
}
declare -a COLD FLOOR_S COLD_CPU FLOOR_CPU COLD_U FLOOR_U QUICK ONE START
for rep in $(seq "$REPS"); do
  SITE=$WORK/site-$rep  # the last one is the folder the later runs use
  BUILD=("$CRIER" build --posts "$POSTS" --feeds "$SITE/feeds" --base-url https://news.example.com/)
  mkdir -p "$SITE"
  sync  # the last run's writes are flushed before this one starts, not during it
  read -r s kb user sys < <(timed "$WORK/cold.log" "${BUILD[@]}")
  COLD+=("$s s, $((kb / 1024)) MB"); log "cold $rep: $s s $kb KB"
  COLD_CPU+=("$user + $sys s"); COLD_U+=("$user")
  sync
  [ "${NO_FLOOR:-0}" = 1 ] && continue
  # Its own total: the documents it is given are loaded first, untimed.
  timed "$WORK/floor.log" "$FLOOR" "$POSTS" "$SITE/feeds" "$WORK/floor-$rep" 3 3 > /dev/null
  s=$(grep -o 'total [0-9.]* s' "$WORK/floor.log" | cut -d' ' -f2)
  FLOOR_S+=("$s s"); log "floor $rep: $(grep '^floor:' "$WORK/floor.log")"
  read -r user sys < <(sed -n 's/^floor cpu: user \([0-9.]*\) s, system \([0-9.]*\) s$/\1 \2/p' "$WORK/floor.log") || true
  FLOOR_CPU+=("$user + $sys s"); FLOOR_U+=("$user")
done
FLOOR_DETAIL=$(grep '^floor:' "$WORK/floor.log" 2>/dev/null || echo "not run (NO_FLOOR=1)")
DOCS=$(tail -n1 "$WORK/cold.log")
sync
for i in 1 2 3 4 5; do
  read -r s kb _ < <(timed "$WORK/quick.log" "${BUILD[@]}")
  QUICK+=("$s s, $((kb / 1024)) MB"); log "quick $i: $s s"
done
QUICK_DETAIL=$(head -n1 "$WORK/quick.log")
for i in 1 2 3; do
  touch "$(find "$POSTS" -type f | sed -n "$((i * 977))p")"
  read -r s kb _ < <(timed "$WORK/one.log" "${BUILD[@]}")
  ONE+=("$s s, $((kb / 1024)) MB"); log "one changed $i: $s s"
done
ONE_DETAIL=$(grep -h "posts read" "$WORK/one.log" | head -n1)
for i in 1 2 3; do
  python3 "$BENCHES/start_probe.py" "$CRIER" serve --posts "$POSTS" --feeds "$SITE/feeds" \
    --base-url https://news.example.com/ --listen 127.0.0.1:0 > "$WORK/start.log"
  START+=("$(head -n3 "$WORK/start.log" | tr '\n' ';')")
  log "start $i: ${START[-1]}"
done

{
  echo "# Scan index benchmark: $N posts"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ); nproc: $(nproc); load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- crier: $(git rev-parse --short HEAD); command: \`bash benches/index.sh $N\` (REPS=$REPS${POSTS_DIR:+, POSTS_DIR=$POSTS_DIR}${NO_FLOOR:+, NO_FLOOR=$NO_FLOOR})"
  echo "- corpus: $POSTS ($(du -sh "$POSTS" | cut -f1)); config/crier.toml from the repo root"
  echo "- cold build's summary: $DOCS"
  echo
  echo "| run | each run (wall, peak RSS; the floor's own total) |"
  echo "|---|---|"
  echo "| cold build (empty feeds folder, no state) | $(IFS=';'; echo "${COLD[*]}") |"
  echo "| floor: read the posts, compress and write the same documents (examples/floor.rs) | $(IFS=';'; echo "${FLOOR_S[*]}") |"
  echo "| cold build, CPU (user + system) | $(IFS=';'; echo "${COLD_CPU[*]}") |"
  echo "| floor, CPU of its timed part (user + system) | $(IFS=';'; echo "${FLOOR_CPU[*]}") |"
  echo "| build, nothing changed | $(IFS=';'; echo "${QUICK[*]}") |"
  echo "| build, one post file touched | $(IFS=';'; echo "${ONE[*]}") |"
  echo
  echo "- floor detail (last run): $FLOOR_DETAIL"
  echo "- by medians: wall $(ratio COLD FLOOR_S), user CPU $(ratio COLD_U FLOOR_U) (system CPU is mostly the file system's: see the header)"
  echo "- nothing changed: $QUICK_DETAIL"
  echo "- one touched: $ONE_DETAIL"
  echo
  echo "crier serve from the scan index (benches/start_probe.py), each run:"
  echo
  for s in "${START[@]}"; do echo "- $s"; done
} > "$RESULTS"
cat "$RESULTS"
