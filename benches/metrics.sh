#!/usr/bin/env bash
# Metrics overhead: serving throughput with metrics, subscriber counting and their listener on,
# against the same binary with all of it off, side by side in one run:
#
#   bash benches/metrics.sh          (from anywhere; it runs from the repo root)
#
# Two `crier serve` processes publish the bundled sample posts (posts/): OFF has no
# metrics_listen and count_subscribers = false; ON has metrics_listen and counts subscribers
# (access_log stays off in both: a log line per request is a choice with its own cost). Each
# measurement is wrk -t2 -c32 -d${WRK_SECS}s against one of them, alternating OFF, ON, OFF, ON
# (REPS each), so the machine's drift hits both alike; the other process idles meanwhile.
# Three loads on /feed.rss:
#   200   Accept-Encoding: gzip, one User-Agent (a reader polling hard);
#   304   If-None-Match with the gzip ETag (a well-behaved poller);
#   new   200 as above, but every request from a User-Agent never seen before (each one a new
#         client for the subscriber counts: the worst case for them).
# Prints medians and the ON/OFF ratio, and writes them to benches/results-metrics.md.
#
# Knobs: WRK_SECS=10, REPS=3, SKIP_CARGO=1, CRIER_BIN=path, RESULTS=path.
# Installs Debian's wrk with apt-get when missing.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
BENCHES="$REPO/benches"
WRK_SECS=${WRK_SECS:-10}
REPS=${REPS:-3}
CRIER=${CRIER_BIN:-$REPO/target/release/crier}
RESULTS=${RESULTS:-$BENCHES/results-metrics.md}
BENCH_NAME=metrics-bench
# shellcheck source=benches/lib.sh
. "$REPO/benches/lib.sh"

command -v wrk >/dev/null || apt_install wrk
[ "${SKIP_CARGO:-}" = 1 ] || cargo build --release --quiet

run=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$run"
}
trap cleanup EXIT

# start NAME EXTRA_CONFIG -> the served address, in $run/NAME.addr
start() {
  local name=$1 extra=$2
  mkdir -p "$run/$name"
  cat > "$run/$name/crier.toml" <<EOF
posts = "$REPO/posts"
feeds = "$run/$name/feeds"
state_dir = "$run/$name/state"
base_url = "https://news.example.com/"
listen = "127.0.0.1:0"
$extra
EOF
  "$CRIER" serve --config "$run/$name/crier.toml" 2> "$run/$name/log" &
  pids+=($!)
  for _ in $(seq 100); do
    grep -q 'published:' "$run/$name/log" 2>/dev/null && break
    sleep 0.1
  done
  grep -o 'serving .* on http://[0-9.:]*' "$run/$name/log" | sed 's|.*http://||' > "$run/$name.addr"
}

start off "count_subscribers = false"
start on "metrics_listen = \"127.0.0.1:0\"
count_subscribers = true"
grep -q 'metrics on http://' "$run/on/log" || { log "the ON side has no metrics listener"; exit 1; }

cat > "$run/new.lua" <<'EOF'
-- Every request from a User-Agent never seen before.
local n = 0
request = function()
  n = n + 1
  wrk.headers["User-Agent"] = "bench-reader/" .. n .. " (" .. math.random(1, 1e9) .. ")"
  return wrk.format("GET", "/feed.rss")
end
EOF

# measure SIDE LOAD -> requests per second
measure() {
  local side=$1 load=$2 address etag args=()
  address=$(cat "$run/$side.addr")
  args=(-t2 -c32 "-d${WRK_SECS}s" -H "Accept-Encoding: gzip")
  case $load in
    200) args+=(-H "User-Agent: newsboat/2.30.1 (Linux x86_64)") ;;
    304)
      etag=$(curl -s -o /dev/null -D - -H 'Accept-Encoding: gzip' "http://$address/feed.rss" | tr -d '\r' \
        | sed -n 's/^[Ee][Tt][Aa][Gg]: //p')
      args+=(-H "User-Agent: newsboat/2.30.1 (Linux x86_64)" -H "If-None-Match: $etag") ;;
    new) args+=(-s "$run/new.lua") ;;
  esac
  wrk "${args[@]}" "http://$address/feed.rss" | awk '/Requests\/sec/ {print $2}'
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

{
  echo "# Metrics overhead: serving throughput, metrics on vs off"
  echo
  echo "\`bash benches/metrics.sh\` on $(date -u +%Y-%m-%d), $(nproc) cores, wrk -t2 -c32 -d${WRK_SECS}s, $REPS runs per side and load, alternating; medians."
  echo
  echo "| load | off req/s | on req/s | on/off |"
  echo "|---|---:|---:|---:|"
} > "$run/results.md"
for load in 200 304 new; do
  : > "$run/off.$load"; : > "$run/on.$load"
  for _ in $(seq "$REPS"); do
    for side in off on; do
      measure "$side" "$load" >> "$run/$side.$load"
    done
  done
  off=$(median < "$run/off.$load")
  on=$(median < "$run/on.$load")
  ratio=$(awk -v a="$on" -v b="$off" 'BEGIN {printf "%.3f", a / b}')
  log "$load: off $off, on $on, on/off $ratio (runs: off $(tr '\n' ' ' < "$run/off.$load"); on $(tr '\n' ' ' < "$run/on.$load"))"
  echo "| $load | $off | $on | $ratio |" >> "$run/results.md"
done
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
echo >> "$run/results.md"
echo "Resident memory after the runs: off $(rss "${pids[0]}") KiB, on $(rss "${pids[1]}") KiB (the ON side remembers every new client of the \`new\` load, up to 200,000)." >> "$run/results.md"
cat "$run/results.md"
cp "$run/results.md" "$RESULTS"
