#!/usr/bin/env python3
"""WebSub benchmark: save of a post -> delivery to every subscriber, through crier's built-in hub.

Starts `crier serve` (release build) on a copy of the sample posts with the hub on, runs one
subscriber server in this process with SUBSCRIBERS callbacks (each with its own secret), subscribes
them all to the site's RSS feed, then saves ROUNDS new posts one after another and records, for every
delivery, the time from just before the file was written to the delivery's arrival. Every signature
is checked. Then it subscribes EXTRA more callbacks (spread over every feed of the site) and reports
crier's resident memory and the state database's size per subscription.

Usage: benches/websub.py [SUBSCRIBERS=100] [ROUNDS=30] [EXTRA=10000]
"""

import hashlib
import hmac
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import ROOT, free_port, get, wait_up  # noqa: E402

SUBSCRIBERS = int(sys.argv[1]) if len(sys.argv) > 1 else 100
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 30
EXTRA = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
SITE = "https://news.example.com/feeds/"


class Deliveries:
    def __init__(self):
        self.lock = threading.Condition()
        self.arrivals = []  # (callback id, monotonic time, body, signature ok)


DELIVERIES = Deliveries()
SECRETS = {}


class Callback(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body=b""):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        self.answer(200, query.get("hub.challenge", [""])[0].encode())

    def do_POST(self):
        arrived = time.monotonic()
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        callback = self.path.rsplit("/", 1)[-1]
        secret = SECRETS.get(callback, "").encode()
        expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        signed = hmac.compare_digest(self.headers.get("X-Hub-Signature", ""), expected)
        with DELIVERIES.lock:
            DELIVERIES.arrivals.append((callback, arrived, body, signed))
            DELIVERIES.lock.notify_all()
        self.answer(204)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def hub_post(port, fields):
    body = urllib.parse.urlencode(fields).encode()
    import socket

    for _ in range(100):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(
                b"POST /hub HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        if data.startswith(b"HTTP/1.1 202"):
            return
        if not data.startswith(b"HTTP/1.1 503"):
            sys.exit(f"subscription refused: {data[:300]!r}")
        time.sleep(0.2)
    sys.exit("the hub stayed busy")


def wait_log(log_path, needle, count, seconds=120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with open(log_path, errors="replace") as f:
            if f.read().count(needle) >= count:
                return
        time.sleep(0.1)
    sys.exit(f"timed out waiting for {count} x {needle!r}")


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main():
    crier = os.path.join(ROOT, "target", "release", "crier")
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="crier-websub-")
    shutil.copytree(os.path.join(ROOT, "posts"), os.path.join(work, "posts"))
    # A listen backlog of 5 (the default) drops SYNs of 100 simultaneous deliveries: 1 s retransmits.
    http.server.ThreadingHTTPServer.request_queue_size = 1024
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Callback)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    callbacks = f"http://127.0.0.1:{server.server_address[1]}/cb/"
    port = free_port()
    with open(os.path.join(work, "crier.toml"), "w") as f:
        f.write(
            f'posts = "posts"\nfeeds = "feeds"\nbase_url = "https://news.example.com/"\n'
            f'listen = "127.0.0.1:{port}"\n[websub]\nhub = true\nallow_callbacks = ["127.0.0.0/8"]\n'
            f"max_subscriptions = {SUBSCRIBERS + EXTRA + 10}\n"
        )
    log_path = os.path.join(work, "crier.log")
    log = open(log_path, "w")
    proc = subprocess.Popen([crier, "serve", "--config", "crier.toml"], cwd=work, stderr=log,
                            env={**os.environ, "RUST_LOG": "info"})
    try:
        wait_up(port, proc, "crier")
        rss_before = rss_kib(proc.pid)
        for i in range(SUBSCRIBERS):
            SECRETS[str(i)] = f"secret-{i}"
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda i: hub_post(port, {
                "hub.mode": "subscribe", "hub.topic": SITE + "feed.rss",
                "hub.callback": callbacks + str(i), "hub.secret": SECRETS[str(i)]}), range(SUBSCRIBERS)))
        wait_log(log_path, "websub: subscribed", SUBSCRIBERS)

        latencies, unsigned = [], 0
        for r in range(ROUNDS):
            title = f"WebSub bench round {r} 第{r}轮"
            with DELIVERIES.lock:
                start = len(DELIVERIES.arrivals)
            t0 = time.monotonic()
            with open(os.path.join(work, "posts", f"bench-{r}.md"), "w") as f:
                f.write(f'---\ntitle: "{title}"\ndate: 2026-11-01 00:{r % 60:02d}:00 +0800\n'
                        f"categories: bench\n---\n<p>{title}</p>\n")
            with DELIVERIES.lock:
                ok = DELIVERIES.lock.wait_for(lambda: len(DELIVERIES.arrivals) - start >= SUBSCRIBERS, timeout=30)
                batch = DELIVERIES.arrivals[start:]
            if not ok:
                sys.exit(f"round {r}: only {len(batch)} of {SUBSCRIBERS} deliveries")
            for _, arrived, body, signed in batch:
                if title.encode() not in body:
                    sys.exit(f"round {r}: a delivery without the new post")
                latencies.append((arrived - t0) * 1000)
                unsigned += not signed
            time.sleep(0.3)  # let the publisher go idle between saves
        rss_after_100 = rss_kib(proc.pid)

        index = get(port, "/index.opml").decode("utf-8", "replace")
        topics = sorted({u for u in (part.split('"')[0] for part in index.split('xmlUrl="')[1:])})
        topics = [t.replace(".rss", ext) for t in topics for ext in (".rss", ".atom", ".json")]
        started = time.monotonic()
        with ThreadPoolExecutor(32) as pool:
            list(pool.map(lambda i: hub_post(port, {
                "hub.mode": "subscribe", "hub.topic": topics[i % len(topics)],
                "hub.callback": callbacks + f"x{i}"}), range(EXTRA)))
        wait_log(log_path, "websub: subscribed", SUBSCRIBERS + EXTRA, seconds=600)
        subscribe_seconds = time.monotonic() - started
        time.sleep(1)
        rss_after = rss_kib(proc.pid)
    finally:
        proc.terminate()
        proc.wait()
        log.close()
    # After a clean stop the write-ahead log is folded into the database file.
    db = os.path.join(work, "crier-state", "state.sqlite3")
    db_bytes = sum(os.path.getsize(p) for p in (db, db + "-wal") if os.path.exists(p))

    n = len(latencies)
    print(f"save -> delivery, {SUBSCRIBERS} subscribers x {ROUNDS} saves = {n} deliveries:")
    print(f"  p50 {percentile(latencies, 50):.1f} ms, p90 {percentile(latencies, 90):.1f} ms, "
          f"p99 {percentile(latencies, 99):.1f} ms, max {max(latencies):.1f} ms")
    print(f"  signatures valid: {n - unsigned} of {n}")
    print(f"memory: RSS {rss_before / 1024:.1f} MiB with no subscription, {rss_after_100 / 1024:.1f} MiB after "
          f"the {SUBSCRIBERS}-subscriber rounds, {rss_after / 1024:.1f} MiB with {SUBSCRIBERS + EXTRA} subscriptions")
    per = (rss_after - rss_after_100) * 1024 / max(EXTRA, 1)
    print(f"  {per:.0f} bytes of RSS per extra subscription; state database {db_bytes / 1024:.0f} KiB "
          f"({db_bytes / (SUBSCRIBERS + EXTRA):.0f} bytes per subscription)")
    print(f"  {EXTRA} subscriptions verified in {subscribe_seconds:.1f} s "
          f"({EXTRA / subscribe_seconds:.0f}/s, verification GETs included)")
    shutil.rmtree(work, ignore_errors=True)
    if percentile(latencies, 99) >= 500 or unsigned:
        sys.exit("target missed: p99 must be under 500 ms with every signature valid")


if __name__ == "__main__":
    main()
