#!/usr/bin/env python3
"""Soak: `crier serve` under churn and load for a long while, watched for leaks and errors.

For DURATION seconds (default 600), all at once:
- churn: every CHURN_MS an edit, a new post or a deletion in the posts folder (temp file and
  rename, as editors save), half of them edits, the others a new post when there are 450 or
  fewer and a deletion otherwise, so that the site keeps its size (a site that grows takes more
  memory, which would hide a leak or pass for one);
- load: wrk with 32 keep-alive connections on /feed.rss (gzip), and a second wrk on a category
  feed with If-None-Match (304s);
- 1,000 idle connections that send nothing, each opened again when crier closes it (the header
  timeout closes idle connections, so they churn too).
Every 10 s: crier's resident memory, open file descriptors and threads. At the end: wrk's
status counts (any 5xx or socket error fails the run), growth of each resource between the
first minute after warm-up and the last minute (must stay under 5 %), and the feeds folder
compared byte for byte with a clean `crier build` of the same posts.

Usage: benches/soak.py [--crier target/release/crier] [--duration 600] [--out benches/results-soak.md]
"""

import argparse
import filecmp
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import ROOT, free_port, get, wait_up

IDLE = 1000
WARMUP = 120
SAMPLE_EVERY = 10


def post_text(n, version):
    categories = ["新闻", "blog", "科技", "notes"]
    tags = ["rust", "feeds", "中文", "soak", "http"]
    rng = random.Random(n)
    day = 1 + n % 28
    return (f"---\ntitle: 第 {n} 篇 v{version}\ndate: 2024-{1 + n % 12:02d}-{day:02d} 10:{n % 60:02d}:00 +0800\n"
            f"categories: [{rng.choice(categories)}]\ntags: [{rng.choice(tags)}, {rng.choice(tags)}]\n---\n"
            f"<p>正文 {n}，第 {version} 版。</p>\n\n" + "Some *Markdown* text with a [link](/x). " * rng.randint(1, 40)
            + "\n")


def write_atomically(folder, name, text):
    tmp = os.path.join(folder, f".{name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, os.path.join(folder, name))


class Churn(threading.Thread):
    def __init__(self, posts, every):
        super().__init__(daemon=True)
        self.posts, self.every, self.stop = posts, every, threading.Event()
        self.live = {}
        self.next_n = 0
        self.counts = {"edit": 0, "new": 0, "delete": 0}
        for _ in range(450):
            self.add()

    def add(self):
        n = self.next_n
        self.next_n += 1
        self.live[n] = 1
        write_atomically(self.posts, f"p{n}.md", post_text(n, 1))

    def run(self):
        rng = random.Random(7)
        while not self.stop.wait(self.every):
            action = rng.choice(["edit", "other"])
            if action == "other":
                action = "new" if len(self.live) <= 450 else "delete"
            if action == "new":
                self.add()
            elif action == "edit":
                n = rng.choice(list(self.live))
                self.live[n] += 1
                write_atomically(self.posts, f"p{n}.md", post_text(n, self.live[n]))
            else:
                n = rng.choice(list(self.live))
                del self.live[n]
                os.remove(os.path.join(self.posts, f"p{n}.md"))
            self.counts[action] += 1


class Idle(threading.Thread):
    """IDLE connections that say nothing; a closed one is opened again."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.stop, self.opened = port, threading.Event(), 0

    def run(self):
        import selectors
        selector = selectors.DefaultSelector()

        def connect():
            s = socket.create_connection(("127.0.0.1", self.port))
            s.setblocking(False)
            selector.register(s, selectors.EVENT_READ)
            self.opened += 1

        for _ in range(IDLE):
            connect()
        while not self.stop.is_set():
            for key, _ in selector.select(timeout=0.5):
                s = key.fileobj
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    selector.unregister(s)
                    s.close()
                    connect()
        for key in list(selector.get_map().values()):
            key.fileobj.close()


def sample(pid):
    with open(f"/proc/{pid}/status") as f:
        status = f.read()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds, threads


def wrk(port, path, seconds, headers):
    args = ["wrk", "-t1", "-c32", f"-d{seconds}s", "--latency"]
    for h in headers:
        args += ["-H", h]
    return subprocess.Popen(args + [f"http://127.0.0.1:{port}{path}"], stdout=subprocess.PIPE, text=True)


def wrk_counts(output):
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    return requests, int(non2xx.group(1)) if non2xx else 0, errors.group(1) if errors else "none"


def etag_of(port, path):
    return re.search(rb"(?i)etag: ([^\r]+)", get(port, path)).group(1).decode()


def same_tree(a, b):
    """Paths that differ between two folders (missing on either side or different bytes)."""
    diff = []
    for folder, _, files in os.walk(a):
        for name in files:
            rel = os.path.relpath(os.path.join(folder, name), a)
            other = os.path.join(b, rel)
            if not os.path.exists(other) or not filecmp.cmp(os.path.join(a, rel), other, shallow=False):
                diff.append(rel)
    for folder, _, files in os.walk(b):
        for name in files:
            rel = os.path.relpath(os.path.join(folder, name), b)
            if not os.path.exists(os.path.join(a, rel)):
                diff.append(rel)
    return diff


def growth(samples, index):
    after = [s[1 + index] for s in samples if WARMUP <= s[0] < WARMUP + 60]
    last = [s[1 + index] for s in samples if s[0] >= samples[-1][0] - 60]
    first = sum(after) / len(after)
    return first, sum(last) / len(last), (sum(last) / len(last)) / first - 1


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--crier", default=os.path.join(ROOT, "target/release/crier"))
    parser.add_argument("--duration", type=int, default=600)
    parser.add_argument("--churn-ms", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=120)
    parser.add_argument("--out")
    args = parser.parse_args()
    global WARMUP
    WARMUP = args.warmup
    if args.duration < WARMUP + 120:
        sys.exit(f"--duration must be at least {WARMUP + 120} s (warm-up, then two minutes compared)")
    run = tempfile.mkdtemp(prefix="crier-soak-")
    posts, feeds, clean = (os.path.join(run, d) for d in ("posts", "feeds", "clean"))
    os.makedirs(posts)
    port = free_port()
    base = f'base_url = "https://news.example.com/"\ntimezone = "Asia/Shanghai"\nposts = "{posts}"\n'
    with open(os.path.join(run, "crier.toml"), "w") as f:
        f.write(base + f'feeds = "{feeds}"\nlisten = "127.0.0.1:{port}"\nmax_connections = 2048\n')
    with open(os.path.join(run, "clean.toml"), "w") as f:
        f.write(base + f'feeds = "{clean}"\n')
    churn = Churn(posts, args.churn_ms / 1000)
    log = open(os.path.join(run, "crier.log"), "w")
    crier = subprocess.Popen([args.crier, "serve", "--config", os.path.join(run, "crier.toml")],
                             stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_up(port, crier, "crier", "/categories/blog.rss")
        etag = etag_of(port, "/categories/blog.rss")
        idle = Idle(port)
        idle.start()
        churn.start()
        loads = [wrk(port, "/feed.rss", args.duration, ["Accept-Encoding: gzip"]),
                 wrk(port, "/categories/blog.rss", args.duration, [f"If-None-Match: {etag}"])]
        started = time.time()
        samples = []
        while time.time() - started < args.duration:
            samples.append((time.time() - started, *sample(crier.pid)))
            print(f"{samples[-1][0]:6.0f} s  rss {samples[-1][1] / 1024:7.1f} MiB  fds {samples[-1][2]:5}  "
                  f"threads {samples[-1][3]:3}", flush=True)
            time.sleep(SAMPLE_EVERY)
        outputs = [p.communicate()[0] for p in loads]
        churn.stop.set()
        churn.join()
        idle.stop.set()
        idle.join()
        # Let the last changes settle, then compare with a clean build of the same posts.
        time.sleep(3)
        subprocess.run([args.crier, "build", "--config", os.path.join(run, "clean.toml")], check=True,
                       capture_output=True)
        diff = same_tree(feeds, clean)
        crier_errors = sum(1 for line in open(os.path.join(run, "crier.log")) if " ERROR " in line)
    finally:
        crier.terminate()
        crier.wait()
    results = [wrk_counts(o) for o in outputs]
    grows = {name: growth(samples, i) for i, name in enumerate(["rss KiB", "fds", "threads"])}
    ok = all(n == 0 for _, n, _ in results) and not diff and all(g[2] < 0.05 for g in grows.values())
    lines = [
        "# Soak: churn, load and idle connections",
        "",
        f"`{' '.join(sys.argv)}` on {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores. {args.duration} s of: "
        f"churn every {args.churn_ms} ms ({churn.counts['edit']} edits, {churn.counts['new']} new posts, "
        f"{churn.counts['delete']} deletions; {len(churn.live)} posts at the end); two wrk -c32 (200s with gzip "
        f"on /feed.rss, conditional requests on /categories/blog.rss); {IDLE} idle connections, "
        f"reopened when closed ({idle.opened} opened in all). Samples every {SAMPLE_EVERY} s; growth compares "
        f"the mean of the minute after a {WARMUP} s warm-up with the mean of the last minute.",
        "",
        "| resource | after warm-up | last minute | growth |",
        "|---|---:|---:|---:|",
    ]
    for name, (first, last, g) in grows.items():
        lines.append(f"| {name} | {first:.0f} | {last:.0f} | {g * 100:+.1f} % |")
    lines += ["", "| load | requests | non-2xx/3xx | socket errors |", "|---|---:|---:|---|"]
    for name, (requests, non2xx, errors) in zip(["/feed.rss gzip", "/categories/blog.rss 304"], results):
        lines.append(f"| {name} | {requests} | {non2xx} | {errors} |")
    lines += ["", f"Feeds folder against a clean build of the same posts: "
              + ("identical." if not diff else f"{len(diff)} files differ: {diff[:10]}"),
              f"ERROR lines in crier's log: {crier_errors}.", "", f"Verdict: {'pass' if ok else 'FAIL'}.", "",
              "Samples (seconds, RSS KiB, fds, threads):", "", "```"]
    lines += [f"{t:5.0f} {r:8} {f:5} {th:3}" for t, r, f, th in samples]
    lines.append("```")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    shutil.rmtree(run, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
