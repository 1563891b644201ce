#!/usr/bin/env bash
# Serve benchmark: `crier serve` on a 100,000-post corpus, in one run:
#
#   bash benches/serve.sh          (from anywhere; it runs from the repo root)
#
# 1. Startup: process start to the first /healthz 200 (the whole first publish), then the
#    time until a first change (a probe post) is served: crier may still be busy after /healthz.
#    Save-to-served latency (benches/serve_latency.py): LAT_POSTS new posts, one at a time,
#    each written to a temp file on the same file system and os.rename()d into
#    POSTS/zz-bench/, then /categories/cat7.rss polled (If-None-Match, keep-alive) until a
#    200 with a new ETag carries the new title, then with Accept-Encoding: gzip until the
#    gzip response carries it too (a second row, from the same rename). p50/p90/p99/max.
#    Posts alternate: polled back to back, and polled once every PACED_MS ms (two more rows).
# 2. Memory: crier's VmRSS after start, after the latency posts and after each of two rounds
#    of EDITS edits (write-temp-and-rename of its own posts with a new title, 5 ms apart).
# 3. Throughput, wrk -t2 -c32 -d${WRK_SECS}s, crier against nginx 1.x serving the feeds folder
#    crier wrote (etag on; gzip_static on), on /feed.rss and /categories/cat7.rss:
#    (a) 200 with Accept-Encoding: gzip, (b) 304 with If-None-Match: <that server's gzip ETag>,
#    (c) 200 without Accept-Encoding (the uncompressed bytes, which crier reads from their file).
#    Runs alternate crier, nginx, crier, nginx (REPS each); crier stays running and idle
#    while nginx is measured, and the other way round.
# Prints the results and writes them to benches/results-serve.md.
#
# The corpus is $CRIER_BENCH_DIR/corpus-100000/posts, shared with benches/build.sh (generated
# the same way when missing or stale). It is left unchanged: the benchmark's posts go in
# POSTS/zz-bench/, created at start and removed on exit. Feeds, logs and nginx's prefix go in
# a temp dir under $CRIER_BENCH_DIR (same file system as the corpus, for atomic renames).
#
# Environment knobs:
#   LAT_POSTS=800       posts for the latency part, half polled each way (at 400 a p99 is the 4th
#                       slowest, not 1 outlier)
#   PACED_MS=1          every other post is polled once per PACED_MS ms instead of back to back,
#                       which keeps the poller off the cores under test (0: all back to back)
#   STAGE=outside       where each new post is written before its rename: outside the posts
#                       folder, or `inside` it as a hidden file (the way `sed -i` saves)
#   EDITS=1000          edits per memory round (two rounds)
#   WRK_SECS=10         duration of each wrk run
#   SERVE_POSTS=100000  corpus size; POSTS_DIR=path a corpus already generated (gen_corpus.py N
#                       DIR, e.g. the 1,000,000-post one of benches/index.sh)
#   REPS=2              wrk runs per server, URL and kind
#   SKIP_CARGO=1        do not run `cargo build --release` first
#   CRIER_BIN=path      crier binary (default target/release/crier)
#   CRIER_BENCH_DIR=dir cache/work dir (default /tmp/crier-bench)
#   KEEP=1              keep the run dir (feeds, crier.log, latency.json, nginx prefix)
#   RESULTS=path        results file (default benches/results-serve.md)
#
# Needs python3 (stdlib) and curl; installs the Debian packages `wrk`, `nginx` and `curl`
# with apt-get when missing (the only network it uses). Run as root on a fresh machine.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# crier reads config/crier.toml from the working directory (items = 20, compression levels,
# connection limits): always run from the repo root.
cd "$REPO"
BENCHES="$REPO/benches"
BENCH_DIR=${CRIER_BENCH_DIR:-/tmp/crier-bench}
N=${SERVE_POSTS:-100000}
LAT_POSTS=${LAT_POSTS:-800}
PACED_MS=${PACED_MS:-1}
EDITS=${EDITS:-1000}
WRK_SECS=${WRK_SECS:-10}
REPS=${REPS:-2}
CRIER=${CRIER_BIN:-$REPO/target/release/crier}
RESULTS=${RESULTS:-$BENCHES/results-serve.md}
BASE_URL=https://news.example.com/
CATEGORY=cat7
URLS=(/feed.rss "/categories/$CATEGORY.rss")

BENCH_NAME=serve-bench
# shellcheck source=benches/lib.sh
. "$REPO/benches/lib.sh"
command -v python3 >/dev/null || { echo "serve.sh: python3 is needed" >&2; exit 2; }
command -v curl >/dev/null || apt_install curl
command -v wrk >/dev/null || apt_install wrk
NGINX=$(command -v nginx || true)
[ -z "$NGINX" ] && [ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx
if [ -z "$NGINX" ]; then apt_install nginx; NGINX=$(command -v nginx || echo /usr/sbin/nginx); fi
# Debian's nginx package (on a systemd host) starts its default site on port 80; it is not used.

if [ "${SKIP_CARGO:-0}" != 1 ]; then
  log "cargo build --release"
  (cd "$REPO" && cargo build --release --quiet) >&2 || log "cargo build --release failed; using the binary as is"
fi
if ! [ -x "$CRIER" ] || ! "$CRIER" serve --help 2>/dev/null | grep -q -- '--listen'; then
  echo "serve.sh: $CRIER missing or without \`crier serve --listen\`" >&2; exit 2
fi
CRIER_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "no commit yet")
if [ -n "$(git -C "$REPO" status --porcelain --untracked-files=no -- src Cargo.toml Cargo.lock 2>/dev/null)" ]; then
  CRIER_REV+=" (+ uncommitted changes)"
fi
CRIER_VERSION=$("$CRIER" --version 2>&1 | head -n1)
WRK_VERSION=$(wrk -v 2>&1 | head -n1 | sed 's/ Copyright.*//' || true)
NGINX_VERSION=$("$NGINX" -v 2>&1 | head -n1 | sed 's/^nginx version: //')
PY_VERSION=$(python3 --version 2>&1)
CURL_VERSION=$(curl --version | head -n1 | cut -d' ' -f1-2)

# ---------------------------------------------------------------- corpus (as benches/build.sh)
if [ -n "${POSTS_DIR:-}" ]; then
  POSTS=$POSTS_DIR
else
  ensure_corpus "$N"
  POSTS="$CORPUS_DIR/posts"
fi
ZZ="$POSTS/zz-bench"

# ---------------------------------------------------------------- run dir, cleanup
mkdir -p "$BENCH_DIR"
RUN=$(mktemp -d "$BENCH_DIR/serve.XXXXXX")
CLOG="$RUN/crier.log"
CRIER_PID=""
NGINX_PID=""
ZZ_MADE=0

stop_pid() { # pid name: SIGTERM, then SIGKILL after 15 s
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 150; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then log "$2 ($pid) did not stop on SIGTERM: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -n "$NGINX_PID" ] && stop_pid "$NGINX_PID" nginx
  [ -n "$CRIER_PID" ] && stop_pid "$CRIER_PID" crier
  [ "$ZZ_MADE" = 1 ] && rm -rf "$ZZ"
  if [ "$rc" != 0 ] && [ -f "$CLOG" ]; then
    log "failed (exit $rc); tail of crier's log ($CLOG):"
    tail -n 30 "$CLOG" | sed 's/^/    /' >&2
    [ -f "$RUN/nginx/error.log" ] && { log "tail of nginx's error log:"; tail -n 10 "$RUN/nginx/error.log" | sed 's/^/    /' >&2; }
  fi
  if [ "${KEEP:-0}" = 1 ] || [ "$rc" != 0 ]; then log "kept $RUN"; else rm -rf "$RUN"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() { log "$*"; exit 1; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
rss_mb() { awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
kib_mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.0f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }

if [ -e "$ZZ" ]; then
  log "removing $ZZ left by an earlier run"
  rm -rf "$ZZ"
fi
# Created before crier starts, so it is watched from the start and its (empty) contents are
# part of the first publish.
mkdir "$ZZ"; ZZ_MADE=1

# ---------------------------------------------------------------- start crier
CPORT=$(free_port)
CURL=(curl -s --max-time 5)
log "starting crier serve on 127.0.0.1:$CPORT (posts $POSTS, feeds $RUN/feeds)"
t_start=$(now_ms)
NO_COLOR=1 "$CRIER" serve --posts "$POSTS" --feeds "$RUN/feeds" --base-url "$BASE_URL" \
  --listen "127.0.0.1:$CPORT" >"$CLOG" 2>&1 &
CRIER_PID=$!
until [ "$("${CURL[@]}" -o /dev/null -w '%{http_code}' "http://127.0.0.1:$CPORT/healthz" || true)" = 200 ]; do
  kill -0 "$CRIER_PID" 2>/dev/null || { CRIER_PID=""; fail "crier exited before /healthz said 200"; }
  [ $(( $(now_ms) - t_start )) -lt 600000 ] || fail "crier not ready after 600 s"
  sleep 0.02
done
STARTUP_MS=$(( $(now_ms) - t_start ))
RSS_START=$(rss_mb "$CRIER_PID")
# crier logs its first publish right after it is served, so /healthz may say 200 before the line.
for _ in $(seq 250); do
  PUBLISH_LINE=$(sed 's/\x1b\[[0-9;]*m//g' "$CLOG" | grep -m1 'published:' || true)
  [ -n "$PUBLISH_LINE" ] && break
  sleep 0.02
done
PUBLISH_MS=$(sed -n 's/.*; \([0-9.]*\) ms$/\1/p' <<<"$PUBLISH_LINE")
# Without a scan index, a child process makes the first publish (see src/daemon/first_publish.rs).
CHILD_LINE=$(sed 's/\x1b\[[0-9;]*m//g' "$CLOG" | grep -m1 'the child process published' || true)
log "ready after ${STARTUP_MS} ms (crier's publish step: ${PUBLISH_MS:-?} ms); VmRSS $RSS_START MB"
log "  $PUBLISH_LINE"

# ---------------------------------------------------------------- 1 + 2: latency, memory
set +e
python3 "$BENCHES/serve_latency.py" --port "$CPORT" --pid "$CRIER_PID" --bench-dir "$ZZ" \
  --staging "$RUN/staging" --log "$CLOG" --feed "/categories/$CATEGORY.rss" --category "$CATEGORY" \
  --posts "$LAT_POSTS" --paced-ms "$PACED_MS" --edits "$EDITS" --edit-rounds 2 \
  $([ "${STAGE:-outside}" = inside ] && echo --stage-in-folder) \
  --json "$RUN/latency.json" --env "$RUN/latency.env"
lat_rc=$?
set -e
[ -f "$RUN/latency.env" ] || fail "serve_latency.py wrote no results (exit $lat_rc)"
# shellcheck disable=SC1091
. "$RUN/latency.env"
[ "$lat_rc" = 0 ] || fail "serve_latency.py failed: ${ERROR:-exit $lat_rc}"
kill -0 "$CRIER_PID" 2>/dev/null || fail "crier died"
UPDATE_STEPS=$(grep -c 'updated:' "$CLOG" || true)
ERROR_LINES=$(sed 's/\x1b\[[0-9;]*m//g' "$CLOG" | grep -cE ' (ERROR|WARN) ' || true)

# ---------------------------------------------------------------- nginx on the feeds folder
NPORT=$(free_port)
NPREFIX="$RUN/nginx"
mkdir -p "$NPREFIX/tmp"
NGINX_USER=""
[ "$(id -u)" = 0 ] && NGINX_USER="user root root;  # the run dir is mode 0700"
cat > "$NPREFIX/nginx.conf" <<EOF
$NGINX_USER
worker_processes 2;
pid $NPREFIX/nginx.pid;
error_log $NPREFIX/error.log warn;
events { worker_connections 1024; }
http {
    types {
        application/rss+xml rss;
        application/atom+xml atom;
        application/feed+json json;
        text/x-opml opml;
        text/html html;
    }
    default_type application/octet-stream;
    charset utf-8;
    charset_types application/rss+xml application/atom+xml application/feed+json text/x-opml;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000;      # crier's max_requests_per_connection
    keepalive_timeout 10s;        # crier's header_timeout_ms
    client_body_temp_path $NPREFIX/tmp/body;
    proxy_temp_path $NPREFIX/tmp/proxy;
    fastcgi_temp_path $NPREFIX/tmp/fastcgi;
    uwsgi_temp_path $NPREFIX/tmp/uwsgi;
    scgi_temp_path $NPREFIX/tmp/scgi;
    server {
        listen 127.0.0.1:$NPORT;
        root $RUN/feeds;
        etag on;
        gzip off;
        gzip_static on;           # feed.rss.gz beside feed.rss, as crier writes them
        gzip_vary on;
        add_header Cache-Control "public, max-age=300";
        location / { index index.html; }
    }
}
EOF
"$NGINX" -t -q -p "$NPREFIX" -e "$NPREFIX/error.log" -c "$NPREFIX/nginx.conf" -g 'daemon off;' \
  || fail "nginx -t failed"
"$NGINX" -p "$NPREFIX" -e "$NPREFIX/error.log" -c "$NPREFIX/nginx.conf" -g 'daemon off;' &
NGINX_PID=$!
for ((i = 0; i < 100; i++)); do
  "${CURL[@]}" -o /dev/null "http://127.0.0.1:$NPORT/feed.rss" && break
  kill -0 "$NGINX_PID" 2>/dev/null || { NGINX_PID=""; fail "nginx exited at start"; }
  sleep 0.05
done
log "nginx $NGINX_VERSION on 127.0.0.1:$NPORT serving $RUN/feeds"
# nginx's master and workers, for their CPU time.
kids=$(cat "/proc/$NGINX_PID/task/$NGINX_PID/children" 2>/dev/null || true)
[ -n "$kids" ] || kids=$(pgrep -P "$NGINX_PID" 2>/dev/null || true)
NGINX_PIDS="$NGINX_PID $kids"
[ "$(wc -w <<<"$NGINX_PIDS")" -gt 1 ] || log "note: nginx's workers not found; nginx CPU counts its master only"
CLK_TCK=$(getconf CLK_TCK)
# cpu_ticks PID... -> user + system CPU ticks of those processes
cpu_ticks() { local p t=0; for p in "$@"; do t=$(( t + $(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null || echo 0) )); done; echo "$t"; }

# ---------------------------------------------------------------- 3: checks, then wrk
declare -A PORT=([crier]=$CPORT [nginx]=$NPORT)
declare -A ETAG LEN
# header NAME FILE -> value of the response header NAME in a curl -D dump
header() { tr -d '\r' < "$2" | awk -v h="$(tr 'A-Z' 'a-z' <<<"$1")" -F': ' 'tolower($1) == h { print $2; exit }'; }
for srv in crier nginx; do
  for url in "${URLS[@]}"; do
    full="http://127.0.0.1:${PORT[$srv]}$url"
    hd="$RUN/headers"
    code=$("${CURL[@]}" -D "$hd" -o "$RUN/body.gz" -w '%{http_code}' -H 'Accept-Encoding: gzip' "$full")
    [ "$code" = 200 ] || fail "$srv $url: status $code"
    [ "$(header Content-Encoding "$hd")" = gzip ] || fail "$srv $url: no Content-Encoding: gzip"
    gzip -t "$RUN/body.gz" 2>/dev/null || fail "$srv $url: body is not gzip"
    etag=$(header ETag "$hd")
    [ -n "$etag" ] || fail "$srv $url: no ETag"
    [[ "$etag" != W/* ]] || fail "$srv $url: weak ETag $etag"
    ETAG[$srv$url]=$etag
    LEN[$srv$url]=$(stat -c %s "$RUN/body.gz")
    code=$("${CURL[@]}" -o /dev/null -w '%{http_code}' -H 'Accept-Encoding: gzip' -H "If-None-Match: $etag" "$full")
    [ "$code" = 304 ] || fail "$srv $url: If-None-Match $etag gave $code, not 304"
    log "$srv $url: 200 gzip ${LEN[$srv$url]} bytes, ETag $etag; revalidation 304"
  done
done
SAME_BYTES=1
for url in "${URLS[@]}"; do
  [ "${LEN[crier$url]}" = "${LEN[nginx$url]}" ] || { SAME_BYTES=0; log "note: $url gzip sizes differ (crier ${LEN[crier$url]}, nginx ${LEN[nginx$url]})"; }
done

# run_wrk SERVER URL KIND REP -> sets WRK_RPS (requests/s); keeps wrk's output in $RUN/wrk-*.txt
WRK_NOTES=()
run_wrk() {
  local srv=$1 url=$2 kind=$3 rep=$4 out rps
  local args=(-t2 -c32 -d"${WRK_SECS}s")
  [ "$kind" = identity ] || args+=(-H 'Accept-Encoding: gzip')
  [ "$kind" = 304 ] && args+=(-H "If-None-Match: ${ETAG[$srv$url]}")
  out="$RUN/wrk-$srv-${url//\//_}-$kind-$rep.txt"
  local pids=$CRIER_PID c0 c1 reqs
  [ "$srv" = nginx ] && pids=$NGINX_PIDS
  # shellcheck disable=SC2086
  c0=$(cpu_ticks $pids)
  timeout $((WRK_SECS + 30)) wrk "${args[@]}" "http://127.0.0.1:${PORT[$srv]}$url" > "$out" 2>&1 \
    || fail "wrk failed: $(cat "$out")"
  rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
  [ -n "$rps" ] || fail "no Requests/sec in wrk output: $(cat "$out")"
  # shellcheck disable=SC2086
  c1=$(cpu_ticks $pids)
  reqs=$(awk '/ requests in / { print $1 }' "$out")
  # server CPU time per request, microseconds
  WRK_CPU=$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN { if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print "nan" }')
  if grep -qE 'Non-2xx|Socket errors' "$out"; then
    WRK_NOTES+=("$srv $url $kind run $rep: $(grep -E 'Non-2xx|Socket errors' "$out" | tr -s ' ' | paste -sd';')")
  fi
  WRK_RPS=$rps
}
declare -A RPS CPU
for url in "${URLS[@]}"; do
  for kind in 200 304 identity; do
    for ((r = 1; r <= REPS; r++)); do
      for srv in crier nginx; do
        run_wrk "$srv" "$url" "$kind" "$r"
        rps=$WRK_RPS
        RPS[$srv$url$kind]+="$rps "
        CPU[$srv$url$kind]+="$WRK_CPU "
        log "wrk $srv $url $kind (run $r/$REPS): $rps req/s, server CPU $WRK_CPU us/request; crier VmRSS $(rss_mb "$CRIER_PID") MB"
      done
    done
  done
done
RSS_END=$(rss_mb "$CRIER_PID")

# ---------------------------------------------------------------- report
fmt() { awk -v v="$1" 'BEGIN { if (v == "") print "n/a"; else printf "%.1f", v }'; }
lat_row() { # lat_row LABEL PREFIX: one row of the latency table from serve_latency.py's figures
  local v=() k name
  for k in N P50 P90 P99 MAX MIN MEAN; do name=$2$k; v+=("${!name:-}"); done
  echo "| $1 | ${v[0]:-0} | $(fmt "${v[1]}") | $(fmt "${v[2]}") | $(fmt "${v[3]}") | $(fmt "${v[4]}") | $(fmt "${v[5]}") | $(fmt "${v[6]}") |"
}
LAT_TABLE="| served | posts | p50 ms | p90 ms | p99 ms | max ms | min ms | mean ms |
|---|---:|---:|---:|---:|---:|---:|---:|
$(lat_row "as it is, polled back to back" LAT_)
$(lat_row "gzip, polled back to back" GZ_)"
[ -n "${PACED_LAT_N:-}" ] && LAT_TABLE+="
$(lat_row "as it is, polled every $PACED_MS ms" PACED_LAT_)
$(lat_row "gzip, polled every $PACED_MS ms" PACED_GZ_)"

MEM_TABLE="| when | VmRSS MB | VmHWM (peak) MB |
|---|---:|---:|
| after start (/healthz 200 after $(awk -v m="$STARTUP_MS" 'BEGIN { printf "%.2f", m / 1000 }') s) | $(kib_mb "$RSS_START_KIB") | $(kib_mb "$HWM_START_KIB") |
| after the probe post was served ($PROBE_S s after /healthz) | $(kib_mb "$RSS_AFTER_PROBE_KIB") | $(kib_mb "$HWM_AFTER_PROBE_KIB") |
| after the $LAT_POSTS latency posts | $(kib_mb "$RSS_AFTER_POSTS_KIB") | $(kib_mb "$HWM_AFTER_POSTS_KIB") |
| after $EDITS edits | $(kib_mb "$RSS_AFTER_EDITS_1_KIB") | $(kib_mb "$HWM_AFTER_EDITS_1_KIB") |
| after $((2 * EDITS)) edits | $(kib_mb "$RSS_AFTER_EDITS_2_KIB") | $(kib_mb "$HWM_AFTER_EDITS_2_KIB") |
| after all wrk runs | $RSS_END | — |"

WRK_TABLE="| URL | response | crier req/s (each run) | nginx req/s (each run) | crier / nginx (medians) | server CPU µs/request: crier / nginx |
|---|---|---:|---:|---:|---:|"
for url in "${URLS[@]}"; do
  for kind in 200 304 identity; do
    # shellcheck disable=SC2086
    cm=$(median ${RPS[crier$url$kind]}); nm=$(median ${RPS[nginx$url$kind]})
    label="200 gzip"; [ "$kind" = 304 ] && label="304 (If-None-Match)"
    [ "$kind" = identity ] && label="200 uncompressed (no Accept-Encoding)"
    # shellcheck disable=SC2086
    cc=$(printf '%s\n' ${CPU[crier$url$kind]} | sort -g | awk '{ a[NR] = $1 } END { printf "%.1f", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
    # shellcheck disable=SC2086
    nc=$(printf '%s\n' ${CPU[nginx$url$kind]} | sort -g | awk '{ a[NR] = $1 } END { printf "%.1f", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
    WRK_TABLE+=$'\n'"| $url | $label | $cm ($(echo ${RPS[crier$url$kind]} | sed 's/ /, /g')) | $nm ($(echo ${RPS[nginx$url$kind]} | sed 's/ /, /g')) | $(ratio "$cm" "$nm") | $cc / $nc |"
  done
done

NOTES=()
NOTES+=("Startup: ${STARTUP_MS} ms from process start to the first /healthz 200${CHILD_LINE:+; the first publish ran in a child process (\`$CHILD_LINE\`)}; crier's own first publish step took ${PUBLISH_MS:-?} ms (\`$PUBLISH_LINE\`).")
NOTES+=("First change: a probe post renamed in right after /healthz said 200 was served ${PROBE_S} s later; crier used ${PROBE_CPU_S} CPU seconds meanwhile, then ${IDLE_CPU_PCT}% CPU over the next 2 s. The latency posts start only after that.")
NOTES+=("Latency: crier's update step (from its \`updated: ... N ms\` log lines, $LAT_STEPS steps) had median $(fmt "$LAT_STEP_P50") ms, max $(fmt "$LAT_STEP_MAX") ms; the rest of the latency is the inotify event and the poll (a save that opens a burst by renaming a post into place is read at once; the 10 ms quiet window applies otherwise). Median polls per post: $LAT_POLLS_P50 back to back${PACED_LAT_POLLS_P50:+, ${PACED_LAT_POLLS_P50} paced}.")
NOTES+=("Edits: round 1 wrote $EDITS edits in ${EDIT1_WRITE_S} s, the last one was served ${EDIT1_DRAIN_MS} ms after it was written, crier ran ${EDIT1_STEPS} update steps (slowest ${EDIT1_STEP_MAX} ms); round 2: ${EDIT2_WRITE_S} s, ${EDIT2_DRAIN_MS} ms, ${EDIT2_STEPS} steps (slowest ${EDIT2_STEP_MAX} ms).")
NOTES+=("crier logged $UPDATE_STEPS \`updated\` steps in all and $ERROR_LINES WARN/ERROR lines.")
if [ "$SAME_BYTES" = 1 ]; then
  NOTES+=("Both servers sent the same gzip bytes (crier's .gz files): ${LEN[crier/feed.rss]} bytes for /feed.rss, ${LEN[crier/categories/$CATEGORY.rss]} for /categories/$CATEGORY.rss.")
fi
for note in "${WRK_NOTES[@]}"; do NOTES+=("wrk: $note"); done

echo
echo "$LAT_TABLE"
echo
echo "$MEM_TABLE"
echo
echo "$WRK_TABLE"
echo
for note in "${NOTES[@]}"; do echo "- $note"; done

{
  echo "# Serve benchmark: crier serve on $N posts"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- nproc: $(nproc); memory: $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo); kernel $(uname -r); load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- crier: $CRIER_REV ($CRIER_VERSION)"
  echo "- tools: $WRK_VERSION; nginx $NGINX_VERSION; $PY_VERSION; $CURL_VERSION"
  echo "- command: \`bash benches/serve.sh\` (LAT_POSTS=$LAT_POSTS, PACED_MS=$PACED_MS, STAGE=${STAGE:-outside}, EDITS=$EDITS, WRK_SECS=$WRK_SECS, REPS=$REPS)"
  echo "- crier: \`crier serve --posts CORPUS --feeds TMP --base-url $BASE_URL --listen 127.0.0.1:PORT\` from the repo root (config/crier.toml: items = 20, gzip level 3, brotli quality 3, ...)"
  echo
  echo "## 1. Save-to-served latency"
  echo
  echo "A new post (about 5 KB of Chinese HTML, category $CATEGORY, dated after every corpus post) is"
  if [ "${STAGE:-outside}" = inside ]; then
    echo "written to a hidden temp file in the posts folder itself (as \`sed -i\` saves), then \`os.rename()\`d to its name;"
  else
    echo "written to a temp file on the same file system, then \`os.rename()\`d into the posts folder;"
  fi
  echo "latency is from the rename to the first GET of /categories/$CATEGORY.rss (polled on a"
  echo "keep-alive connection with If-None-Match) that returns a new ETag and the new title;"
  echo "the gzip row is from the same rename to the first GET with Accept-Encoding: gzip whose gzip"
  echo "body has the new title (crier serves a change before its encodings are made)."
  echo "One post at a time, 50 ms apart, starting once a probe post renamed in right after"
  echo "/healthz said 200 has been served (see the notes). Percentiles are nearest-rank."
  if [ "$PACED_MS" != 0 ]; then
    echo "Posts alternate between two pollers: back to back (thousands of requests a second, which"
    echo "with the server's answers take much of a core of the two that the update step runs on)"
    echo "and one poll every $PACED_MS ms (a latency is then up to that much late)."
  fi
  echo
  echo "$LAT_TABLE"
  echo
  echo "## 2. Memory"
  echo
  echo "crier's resident set (/proc/PID/status). An edit rewrites one of the benchmark's ten newest"
  echo "posts (all in the watched feed) with a new title, write-temp-and-rename, 5 ms apart; RSS is"
  echo "read once the last edit's title is served, plus 0.5 s."
  echo
  echo "$MEM_TABLE"
  echo
  echo "## 3. Throughput: crier against nginx"
  echo
  echo "\`wrk -t2 -c32 -d${WRK_SECS}s -H 'Accept-Encoding: gzip' [-H 'If-None-Match: ETAG'] URL\` on 127.0.0.1,"
  echo "and without Accept-Encoding for the uncompressed rows (crier reads those bytes from their file"
  echo "for each response, as nginx does; it keeps only the encodings in memory);"
  echo "nginx (worker_processes 2, \`etag on; gzip_static on;\`, access log off, keepalive_requests 1000"
  echo "as crier's max_requests_per_connection) serves the feeds folder crier wrote. Each server's own"
  echo "gzip ETag is used for the 304 runs, checked with curl first. wrk and the server share the"
  echo "$(nproc) cores; the servers are measured one at a time, alternating, $REPS runs each (median"
  echo "of $REPS = their mean); the other server stays up and idle. Server CPU µs/request is the"
  echo "server's user + system CPU time during the run (/proc/PID/stat; nginx: master and workers)"
  echo "divided by the requests wrk completed (median of the runs): on a shared 2-core machine, where"
  echo "wrk takes a large share, it compares the servers better than requests/s alone."
  echo
  echo "$WRK_TABLE"
  echo
  echo "Notes:"
  for note in "${NOTES[@]}"; do echo "- $note"; done
} > "$RESULTS"
log "wrote $RESULTS"
