#!/usr/bin/env bash
# A big change at once: `crier serve` on a corpus, then N random posts retitled by
# write-temp-and-rename as fast as Python can (a `git pull` of many edits); reports crier's steps
# after the first rename, from its own log lines, and when the last one ended. The titles are put
# back afterwards.
#
#   bash benches/big_change.sh CRIER_BIN [POSTS_DIR]
#
# Knobs: N=2000 posts to retitle, WAIT=60 seconds to let crier finish before it is stopped.
# POSTS_DIR defaults to the 100,000-post bench corpus (/tmp/crier-bench/corpus-100000/posts,
# made by benches/build.sh or benches/index.sh).
set -euo pipefail
BIN=$1
CORPUS=${2:-/tmp/crier-bench/corpus-100000/posts}
N=${N:-2000}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN=$(mktemp -d)
trap 'rm -rf "$RUN"' EXIT
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cd "$REPO"
NO_COLOR=1 "$BIN" serve --posts "$CORPUS" --feeds "$RUN/feeds" --base-url https://news.example.com/ \
  --listen "127.0.0.1:$PORT" > "$RUN/crier.log" 2>&1 &
PID=$!
until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/healthz")" = 200 ]; do
  kill -0 "$PID" || { echo "crier exited; its log:" >&2; tail "$RUN/crier.log" >&2; exit 1; }
  sleep 0.05
done
sleep 3
python3 - "$CORPUS" "$N" "$RUN/t0" <<'PY'
import os, random, sys, time
root, n, t0_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(('.md', '.html')))
random.seed(7)
edits = [(p, open(p, encoding='utf-8').read()) for p in random.sample(files, n)]
t0 = time.time()
for path, text in edits:
    with open(path + '.tmp~', 'w', encoding='utf-8') as out:
        out.write(text.replace('title: ', 'title: 改 ', 1))
    os.rename(path + '.tmp~', path)
print(f"retitled {n} posts in {time.time() - t0:.2f} s")
open(t0_file, 'w').write(repr(t0))
PY
sleep "${WAIT:-60}"
kill "$PID"; wait "$PID" || true
python3 - "$RUN" "$CORPUS" <<'PY'
import datetime, os, re, sys
run, root = sys.argv[1], sys.argv[2]
t0 = float(open(run + '/t0').read())
steps = []
for line in open(run + '/crier.log', encoding='utf-8'):
    m = re.match(r'(\S+Z)\s+INFO ([a-z ]+): .*; ([0-9.]+) ms$', line)
    if m:
        at = datetime.datetime.fromisoformat(m.group(1).replace('Z', '+00:00')).timestamp()
        if at >= t0:
            steps.append((at - t0, m.group(2), m.group(3)))
print(f"{len(steps)} steps after the first rename; the last ended {steps[-1][0]:.2f} s after it")
for at, what, ms in steps:
    print(f"  +{at:.3f} s  {what}: {ms} ms")
for d, _, fs in os.walk(root):
    for f in fs:
        path = os.path.join(d, f)
        text = open(path, encoding='utf-8').read()
        if 'title: 改 ' in text:
            open(path, 'w', encoding='utf-8').write(text.replace('title: 改 ', 'title: ', 1))
PY
