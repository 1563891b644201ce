#!/usr/bin/env bash
# Build benchmark: `crier build` vs Hugo building RSS feeds for the same corpus.
#
#   bash benches/build.sh [N...]          (from the repo root; default: 10000 100000)
#
# For each N it generates (or reuses) a synthetic corpus under
# $CRIER_BENCH_DIR/corpus-N (default /tmp/crier-bench), then measures, side by
# side and interleaved in the same run, REPS times each:
#   crier cold   target/release/crier build --posts CORPUS --feeds NEWDIR --base-url URL
#   crier warm   the same again into the now-filled NEWDIR (nothing changed)
#   hugo         hugo --quiet on a minimal site whose contentDir is the corpus'
#                Hugo twin, into a fresh destination (RSS for home, categories, tags)
# with /usr/bin/time -f '%e %M' (wall seconds, peak RSS KiB), and prints the
# medians as a markdown table, which it also writes to benches/results-build.md.
#
# Environment knobs:
#   REPS=3               measurements per tool and N (median reported)
#   HUGO_SLOW_SECS=600   a Hugo run slower than this stops further Hugo reps for that N
#   HUGO_MEM_GB=         cap Hugo's address space (prlimit --as) at this many GiB: a run that
#                        needs more stops with Go's out-of-memory error instead of pushing the
#                        machine into swap or the OOM killer (at 1,000,000 posts)
#   SKIP_CARGO=1         do not run `cargo build --release` first (use the binary as is)
#   CRIER_BIN=path       crier binary (default target/release/crier)
#   CRIER_BENCH_DIR=dir  cache/work dir (default /tmp/crier-bench)
#   KEEP=1               keep the run's output dirs (feeds, Hugo site) for inspection
#   RESULTS=path         results file (default benches/results-build.md)
#
# Needs python3 (stdlib), GNU time and hugo; installs the Debian packages `time`
# and `hugo` with apt-get if they are missing (the only network it uses).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# crier reads config/crier.toml from the working directory when no --config is
# given (posts per feed, title, ...): always run from the repo root.
cd "$REPO"
BENCHES="$REPO/benches"
BENCH_DIR=${CRIER_BENCH_DIR:-/tmp/crier-bench}
REPS=${REPS:-3}
HUGO_SLOW_SECS=${HUGO_SLOW_SECS:-600}
CRIER=${CRIER_BIN:-$REPO/target/release/crier}
RESULTS=${RESULTS:-$BENCHES/results-build.md}
BASE_URL=https://news.example.com/
FEED_LIMIT=20

if [ "$#" -gt 0 ]; then SIZES=("$@"); else SIZES=(10000 100000); fi
for n in "${SIZES[@]}"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "build.sh: bad size '$n'" >&2; exit 2; }
done

BENCH_NAME=bench
# shellcheck source=benches/lib.sh
. "$REPO/benches/lib.sh"
[ -x /usr/bin/time ] || apt_install time
command -v hugo >/dev/null || apt_install hugo
command -v python3 >/dev/null || { echo "build.sh: python3 is needed" >&2; exit 2; }
HUGO_VERSION=$(hugo version 2>/dev/null | head -n1)

CRIER_OK=0
CRIER_NOTE=""
if [ "${SKIP_CARGO:-0}" != 1 ]; then
  log "cargo build --release"
  if ! (cd "$REPO" && cargo build --release --quiet) >&2; then
    CRIER_NOTE="cargo build --release failed; "
  fi
fi
if [ -x "$CRIER" ] && help_out=$("$CRIER" build --help 2>&1) && grep -q -- '--posts' <<<"$help_out"; then
  CRIER_OK=1
else
  CRIER_NOTE+="crier not measured: $CRIER missing or \`crier build --help\` does not offer --posts"
  log "$CRIER_NOTE"
fi
CRIER_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "no commit yet")
if [ -n "$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  CRIER_REV+=" (+ uncommitted changes)"
fi

# ---------------------------------------------------------------- helpers

# write_hugo_site DIR CONTENTDIR
# Config keys are those of Hugo 0.111 (Debian bookworm): `rssLimit` (0.114+
# reads services.rss.limit, set too), kinds taxonomy (= term list) and term,
# `_build` in a `cascade` with `_target`.
write_hugo_site() {
  local site=$1 content=$2
  mkdir -p "$site"
  cat > "$site/config.toml" <<EOF
title = "crier bench"
baseURL = "$BASE_URL"
languageCode = "zh-cn"
hasCJKLanguage = true
contentDir = "$content"
# Only the RSS feeds of home, the taxonomy term lists and each term.
disableKinds = ["section", "sitemap", "robotsTXT", "404"]
rssLimit = $FEED_LIMIT

[services.rss]
limit = $FEED_LIMIT

[taxonomies]
category = "categories"
tag = "tags"

[outputs]
home = ["RSS"]
section = []
taxonomy = ["RSS"]
term = ["RSS"]
page = []

# Posts carry raw HTML paragraphs: render them, as crier does.
[markup.goldmark.renderer]
unsafe = true

# Regular pages get a permalink and stay in every list, but no file is written.
[[cascade]]
[cascade._build]
render = "link"
list = "always"
[cascade._target]
kind = "page"
EOF
}

# measure OUT_VAR_PREFIX LOGFILE OKCODES cmd...   -> sets ${prefix}_wall ${prefix}_rss ${prefix}_rc
measure() {
  local prefix=$1 logf=$2 okcodes=$3; shift 3
  local tf rc=0 line
  tf=$(mktemp)
  /usr/bin/time -f '%e %M' -o "$tf" "$@" >"$logf" 2>&1 || rc=$?
  line=$(tail -n1 "$tf"); rm -f "$tf"
  printf -v "${prefix}_wall" '%s' "${line% *}"
  printf -v "${prefix}_rss" '%s' "${line#* }"
  printf -v "${prefix}_rc" '%s' "$rc"
  if [[ " $okcodes " != *" $rc "* ]]; then
    log "command failed (exit $rc): $*"
    tail -n 20 "$logf" | sed 's/^/    /' >&2
    return 1
  fi
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{ if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }
mb() { awk -v k="$1" 'BEGIN{ printf "%.1f", k/1024 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b+0 == 0) print "n/a"; else printf "%.2f", a/b }'; }

# ---------------------------------------------------------------- run
mkdir -p "$BENCH_DIR"
RUN=$(mktemp -d "$BENCH_DIR/run.XXXXXX")
cleanup() { if [ "${KEEP:-0}" != 1 ]; then rm -rf "$RUN"; else log "kept $RUN"; fi; }
trap cleanup EXIT

NOTES=()
TABLE="| N | tool | wall s | peak RSS MB | ratio hugo/crier (wall / RSS) |
|---:|---|---:|---:|---|"

for n in "${SIZES[@]}"; do
  ensure_corpus "$n"
  corpus_mb=$(du -sm "$CORPUS_DIR/posts" | cut -f1)
  site="$RUN/hugo-site-$n"
  write_hugo_site "$site" "$CORPUS_DIR/hugo"

  cw=(); cr=(); ww=(); wr=(); hw=(); hr=()
  hugo_stop=0; hugo_checked=0; crier_rcs=""
  for ((r = 1; r <= REPS; r++)); do
    if [ "$CRIER_OK" = 1 ]; then
      out="$RUN/crier-out-$n-$r"; rm -rf "$out"; mkdir -p "$out"
      log "N=$n rep $r/$REPS: crier cold"
      if measure c "$RUN/crier-cold.log" "0 1" "$CRIER" build --posts "$CORPUS_DIR/posts" --feeds "$out" --base-url "$BASE_URL"; then
        cw+=("$c_wall"); cr+=("$c_rss"); crier_rcs+=" $c_rc"
        log "  ${c_wall}s $(mb "$c_rss") MB (exit $c_rc, $(find "$out" -type f | wc -l) files)"
        log "N=$n rep $r/$REPS: crier warm (no change)"
        if measure c "$RUN/crier-warm.log" "0 1" "$CRIER" build --posts "$CORPUS_DIR/posts" --feeds "$out" --base-url "$BASE_URL"; then
          ww+=("$c_wall"); wr+=("$c_rss")
          log "  ${c_wall}s $(mb "$c_rss") MB (exit $c_rc)"
        fi
      fi
      [ "${KEEP:-0}" = 1 ] || rm -rf "$out"
    fi
    if [ "$hugo_stop" = 0 ]; then
      dest="$RUN/hugo-out-$n-$r"; rm -rf "$dest"
      log "N=$n rep $r/$REPS: hugo"
      HUGO_CMD=(hugo)
      [ -n "${HUGO_MEM_GB:-}" ] && HUGO_CMD=(prlimit --as=$((HUGO_MEM_GB * 1024 * 1024 * 1024)) hugo)
      if measure h "$RUN/hugo.log" "0" "${HUGO_CMD[@]}" --quiet --source "$site" --destination "$dest" \
          --cacheDir "$RUN/hugo-cache"; then
        hw+=("$h_wall"); hr+=("$h_rss")
        log "  ${h_wall}s $(mb "$h_rss") MB ($(find "$dest" -name index.xml | wc -l) feeds)"
        if [ "$hugo_checked" = 0 ]; then
          python3 "$BENCHES/check_hugo.py" "$dest" "$CORPUS_DIR/stats.json" --limit "$FEED_LIMIT" >&2 \
            || NOTES+=("N=$n: Hugo output failed check_hugo.py (see log)")
          hugo_checked=1
        fi
        if awk -v w="$h_wall" -v s="$HUGO_SLOW_SECS" 'BEGIN{ exit !(w > s) }'; then
          hugo_stop=1
          [ "$r" -lt "$REPS" ] && NOTES+=("N=$n: a Hugo run took ${h_wall}s (> ${HUGO_SLOW_SECS}s), so Hugo was measured $r time(s) only")
        fi
      else
        hugo_stop=1
        NOTES+=("N=$n: Hugo run $r failed after ${h_wall}s at $(mb "$h_rss") MB peak RSS (exit $h_rc${HUGO_MEM_GB:+, address space capped at ${HUGO_MEM_GB} GiB}): $(grep -m1 -E 'fatal error|out of memory|Error' "$RUN/hugo.log" | cut -c1-200 || true)")
      fi
      [ "${KEEP:-0}" = 1 ] || rm -rf "$dest"
    fi
  done

  if [ "${#hw[@]}" -gt 0 ]; then
    hwm=$(median "${hw[@]}"); hrm=$(median "${hr[@]}")
  else
    hwm=""; hrm=""
    [ "$hugo_stop" = 1 ] || NOTES+=("N=$n: Hugo failed; see $RUN/hugo.log (run with KEEP=1 to keep it)")
  fi
  row() { # label wall rss
    if [ -z "$2" ]; then echo "| $n | $1 | n/a | n/a | n/a |"; return; fi
    local rt="—"
    [ -n "$hwm" ] && [ "$1" != hugo ] && rt="$(ratio "$hwm" "$2") / $(ratio "$hrm" "$3")"
    echo "| $n | $1 | $2 | $(mb "$3") | $rt |"
  }
  if [ "$CRIER_OK" = 1 ] && [ "${#cw[@]}" -gt 0 ]; then
    TABLE+=$'\n'"$(row "crier cold" "$(median "${cw[@]}")" "$(median "${cr[@]}")")"
    if [ "${#ww[@]}" -gt 0 ]; then
      TABLE+=$'\n'"$(row "crier warm" "$(median "${ww[@]}")" "$(median "${wr[@]}")")"
    else
      TABLE+=$'\n'"$(row "crier warm" "" "")"
    fi
    [[ "$crier_rcs" == *1* ]] && NOTES+=("N=$n: crier exited 1 (some posts skipped) in at least one run")
  else
    TABLE+=$'\n'"$(row "crier cold" "" "")"$'\n'"$(row "crier warm" "" "")"
    [ "$CRIER_OK" = 1 ] && NOTES+=("N=$n: crier build failed; see $RUN/crier-cold.log (KEEP=1 keeps it)")
  fi
  TABLE+=$'\n'"$(row hugo "$hwm" "$hrm")"
  NOTES+=("N=$n: corpus ${corpus_mb} MB on disk; runs: crier ${#cw[@]} cold / ${#ww[@]} warm, hugo ${#hw[@]}")
done

[ -n "$CRIER_NOTE" ] && NOTES+=("$CRIER_NOTE")

echo
echo "$TABLE"

{
  echo "# Build benchmark: crier vs Hugo (RSS feeds)"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- nproc: $(nproc); memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo); load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- hugo: $HUGO_VERSION"
  echo "- crier: $CRIER_REV"
  echo "- command: \`bash benches/build.sh ${SIZES[*]}\` (REPS=$REPS, median of the runs)"
  echo
  echo "$TABLE"
  echo
  echo "Ratio column: Hugo's median divided by that crier row's median (wall / peak RSS); above 1 means crier is faster / smaller."
  echo
  echo "What is built: crier builds its full output for the corpus (\`crier build --posts CORPUS --feeds DIR --base-url $BASE_URL\`),"
  echo "run from the repo root so it reads config/crier.toml there (posts per feed, title, ...),"
  echo "cold into an empty dir, then warm into the same dir with nothing changed. Hugo builds RSS 2.0 only"
  echo "(home, categories and tags lists, each category and tag; $FEED_LIMIT items each, its internal"
  echo "RSS template, which puts the post's plain-text summary, not its full HTML, in \`description\`); posts"
  echo "get a permalink but no HTML page is written (\`_build.render = \"link\"\`). Corpus from"
  echo "\`benches/gen_corpus.py\` (about 5.6 KiB of Chinese HTML per post, 50 categories, 300 tags, a quarter"
  echo "of the posts with two tags); Hugo reads a twin that differs only in writing two tags as a YAML list."
  echo "Files are in the page cache for every run (no cache dropping)."
  echo
  echo "Notes:"
  for note in "${NOTES[@]}"; do echo "- $note"; done
} > "$RESULTS"
log "wrote $RESULTS"
