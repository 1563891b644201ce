#!/usr/bin/env bash
# Metrics overhead: serving throughput with metrics, subscriber counting and their listener on,
# against the same binary with all of it off, side by side in one run:
#
#   bash benches/metrics.sh          (from anywhere; it runs from the repo root)
#
# Two `crier serve` processes publish the bundled sample posts (posts/): OFF has no
# metrics_listen and count_subscribers = false; ON has metrics_listen and counts subscribers
# (access_log stays off in both: a log line per request is a choice with its own cost). Both
# run on CPU 0 and wrk (-t1 -c16 -d${WRK_SECS}s) on CPU 1, so that the load generator does not
# compete with the server it measures. Runs alternate OFF, ON, OFF, ON (REPS each), so the
# machine's drift hits both alike; the other process idles meanwhile. Besides requests per
# second, each run reports the server's CPU time per request (user + system, from /proc), the
# steadier figure on a shared machine.
# Three loads on /feed.rss:
#   200   Accept-Encoding: gzip, one User-Agent (a reader polling hard);
#   304   If-None-Match with the gzip ETag (a well-behaved poller);
#   new   200 as above, but every request from a User-Agent never seen before (a flood from one
#         address: past 16 readers per feed, each costs a hash and is not remembered);
#   close 200 as in `200`, one request per connection (how feed readers poll: one request to a
#         feed, then the connection closes).
# This machine's throughput varies by ±15 % from run to run, more than the effect measured, so
# the script also counts user-space instructions per request under valgrind (callgrind), which
# repeat exactly: crier started, then 1 or 4,001 requests (keep-alive, from python3), the
# difference divided by 4,000, for each side and for the 200 and new loads.
# Prints medians and the ON/OFF ratios, and writes them to benches/results-metrics.md.
#
# Knobs: WRK_SECS=5, REPS=9, SKIP_CARGO=1, CRIER_BIN=path, RESULTS=path, CALLGRIND=0 (skip it).
# Installs Debian's wrk and valgrind with apt-get when missing.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
BENCHES="$REPO/benches"
WRK_SECS=${WRK_SECS:-5}
REPS=${REPS:-9}
CRIER=${CRIER_BIN:-$REPO/target/release/crier}
RESULTS=${RESULTS:-$BENCHES/results-metrics.md}
BENCH_NAME=metrics-bench
# shellcheck source=benches/lib.sh
. "$REPO/benches/lib.sh"

command -v wrk >/dev/null || apt_install wrk
[ "${CALLGRIND:-1}" = 0 ] || command -v valgrind >/dev/null || apt_install valgrind
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
  taskset -c 0 "$CRIER" serve --log-level info,crier::daemon::audience=debug --config "$run/$name/crier.toml" \
    2> "$run/$name/log" &
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

# CPU time of process PID so far, in clock ticks (utime + stime).
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# measure SIDE LOAD -> "requests-per-second microseconds-of-CPU-per-request"
measure() {
  local side=$1 load=$2 address etag args=() pid before after out
  address=$(cat "$run/$side.addr")
  pid=${pids[0]}; [ "$side" = on ] && pid=${pids[1]}
  args=(-t1 -c16 "-d${WRK_SECS}s" -H "Accept-Encoding: gzip")
  case $load in
    200) args+=(-H "User-Agent: newsboat/2.30.1 (Linux x86_64)") ;;
    304)
      etag=$(curl -s -o /dev/null -D - -H 'Accept-Encoding: gzip' "http://$address/feed.rss" | tr -d '\r' \
        | sed -n 's/^[Ee][Tt][Aa][Gg]: //p')
      args+=(-H "User-Agent: newsboat/2.30.1 (Linux x86_64)" -H "If-None-Match: $etag") ;;
    new) args+=(-s "$run/new.lua") ;;
    close) args+=(-H "User-Agent: newsboat/2.30.1 (Linux x86_64)" -H "Connection: close") ;;
  esac
  before=$(ticks "$pid")
  out=$(taskset -c 1 wrk "${args[@]}" "http://$address/feed.rss")
  after=$(ticks "$pid")
  echo "$out" | awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" '
    /Requests\/sec/ {rps = $2} /requests in/ {n = $1}
    END {printf "%s %.2f\n", rps, t / hz * 1e6 / n}'
}

# median COLUMN < lines
median() { awk -v c="$1" '{print $c}' | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

{
  echo "# Metrics overhead: serving throughput, metrics on vs off"
  echo
  echo "\`bash benches/metrics.sh\` on $(date -u +%Y-%m-%d): crier on CPU 0, wrk -t1 -c16 -d${WRK_SECS}s on CPU 1, $REPS runs per side and load, alternating; medians. CPU is crier's user + system time per request."
  echo
  echo "| load | off req/s | on req/s | on/off | off CPU µs/req | on CPU µs/req | on/off |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
} > "$run/results.md"
for load in 200 304 new close; do
  : > "$run/off.$load"; : > "$run/on.$load"
  for _ in $(seq "$REPS"); do
    for side in off on; do
      measure "$side" "$load" >> "$run/$side.$load"
    done
  done
  off=$(median 1 < "$run/off.$load"); on=$(median 1 < "$run/on.$load")
  off_cpu=$(median 2 < "$run/off.$load"); on_cpu=$(median 2 < "$run/on.$load")
  ratio=$(awk -v a="$on" -v b="$off" 'BEGIN {printf "%.3f", a / b}')
  cpu_ratio=$(awk -v a="$on_cpu" -v b="$off_cpu" 'BEGIN {printf "%.3f", a / b}')
  log "$load: off $off req/s $off_cpu µs, on $on req/s $on_cpu µs (runs: off $(tr '\n' ',' < "$run/off.$load") on $(tr '\n' ',' < "$run/on.$load"))"
  echo "| $load | $off | $on | $ratio | $off_cpu | $on_cpu | $cpu_ratio |" >> "$run/results.md"
done
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
off_rss=$(rss "${pids[0]}"); on_rss=$(rss "${pids[1]}")
kill "${pids[@]}"; wait 2>/dev/null || true; pids=()
# The ON side saved its counts at the stop, after the `new` load's clients.
saved_line=$(grep -o 'saved the subscriber counts.*' "$run/on/log" | tail -1)

cat > "$run/client.py" <<'EOF'
import http.client, sys
host, port = sys.argv[1].rsplit(":", 1)
connection = http.client.HTTPConnection(host, int(port))
for i in range(int(sys.argv[2])):
    agent = "bench-reader/%d" % i if sys.argv[3] == "new" else "newsboat/2.30.1 (Linux x86_64)"
    connection.request("GET", "/feed.rss", headers={"Accept-Encoding": "gzip", "User-Agent": agent})
    connection.getresponse().read()
EOF
# instructions SIDE REQUESTS LOAD -> crier's user-space instructions from start to stop
instructions() {
  local side=$1 n=$2 load=$3 out="$run/cg.$1.$2.$3" address pid
  rm -rf "$run/$side/feeds" "$run/$side/state"
  valgrind --tool=callgrind --callgrind-out-file="$out" "$CRIER" serve --config "$run/$side/crier.toml" \
    2> "$out.log" &
  pid=$!
  for _ in $(seq 600); do grep -q 'published:' "$out.log" 2>/dev/null && break; sleep 0.1; done
  address=$(grep -o 'serving .* on http://[0-9.:]*' "$out.log" | sed 's|.*http://||')
  python3 "$run/client.py" "$address" "$n" "$load"
  kill -TERM "$pid"; wait "$pid" || true
  awk '/^totals:/ {print $2}' "$out"
}
if [ "${CALLGRIND:-1}" != 0 ]; then
  {
    echo
    echo "User-space instructions per request (callgrind; keep-alive; exact from run to run):"
    echo
    echo "| load | off | on | on − off | on/off |"
    echo "|---|---:|---:|---:|---:|"
  } >> "$run/results.md"
  for load in 200 new; do
    per=()
    for side in off on; do
      one=$(instructions "$side" 1 "$load"); many=$(instructions "$side" 4001 "$load")
      per+=($(( (many - one) / 4000 )))
    done
    log "instructions per request, $load: off ${per[0]}, on ${per[1]}"
    echo "| $load | ${per[0]} | ${per[1]} | $(( per[1] - per[0] )) | $(awk -v a="${per[1]}" -v b="${per[0]}" 'BEGIN {printf "%.3f", a / b}') |" >> "$run/results.md"
  done
fi
echo >> "$run/results.md"
echo "Resident memory after the wrk runs: off $off_rss KiB, on $on_rss KiB (the \`new\` load comes from one address, which counts as at most 16 readers of a feed: past them, a new User-Agent costs one more hash and is not remembered). At its stop the ON side ${saved_line:-did not log its save}." >> "$run/results.md"
cat "$run/results.md"
cp "$run/results.md" "$RESULTS"
