#!/usr/bin/env python3
"""Reload benchmark (issue 12): what a SIGHUP with a new configuration costs on a large site.

    python3 benches/reload.py POSTS_DIR WORK_DIR NAME=CRIER_BINARY [NAME=CRIER_BINARY ...]

For each binary, REPS times (default 2), binaries alternating: `crier serve` on POSTS_DIR with
config/crier.toml (state and feeds under WORK_DIR, fresh each run) is started and left to finish
its first publish (and 3 s more); then the configuration's `title` is changed and SIGHUP sent.
Measured from the signal:
- seconds until /feeds/feed.rss answers with the new title;
- the daemon's resident memory before the signal, its peak while reloading (sampled every 50 ms,
  with that of its child processes, summed, separately) and 5 s after the new feeds are served;
- every answer to /feeds/feed.rss meanwhile (asked again 10 ms after each): how many were not 200.
Prints one Markdown table row per run."""

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import ROOT, free_port, get  # noqa: E402


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
    except (OSError, AttributeError):
        return 0


def children(pid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return found


def status(port):
    try:
        raw = get(port, "/feeds/feed.rss", timeout=30)
        return int(raw.split(b" ", 2)[1]), raw
    except OSError:
        return 0, b""


def run(binary, posts, work):
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    config = open(os.path.join(ROOT, "config/crier.toml")).read()
    path = os.path.join(work, "crier.toml")
    open(path, "w").write(config)
    port = free_port()
    args = [binary, "serve", "--config", path, "--posts", posts, "--feeds", os.path.join(work, "feeds"),
            "--listen", f"127.0.0.1:{port}"]
    log = open(os.path.join(work, "log"), "w")
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log, cwd=work)
    try:
        deadline = time.monotonic() + 600
        while "published:" not in open(os.path.join(work, "log")).read():
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"{binary} did not start; see {work}/log")
            time.sleep(0.2)
        time.sleep(3)
        before = rss_kb(proc.pid)
        open(path, "w").write(config.replace('title = "Example News 示例新闻"', 'title = "Reloaded"'))
        peaks = {"daemon": 0, "children": 0}
        done = threading.Event()

        def sample():
            while not done.is_set():
                peaks["daemon"] = max(peaks["daemon"], rss_kb(proc.pid))
                peaks["children"] = max(peaks["children"], sum(rss_kb(c) for c in children(proc.pid)))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        started = time.monotonic()
        proc.send_signal(signal.SIGHUP)
        answers, failed = 0, 0
        while True:
            code, raw = status(port)
            answers += 1
            failed += code != 200
            if code == 200 and b"<title>Reloaded</title>" in raw:
                break
            if time.monotonic() - started > 600:
                sys.exit(f"{binary}: no new feeds after 600 s; see {work}/log")
            time.sleep(0.01)
        took = time.monotonic() - started
        time.sleep(5)
        done.set()
        sampler.join()
        after = rss_kb(proc.pid)
        return took, before, peaks["daemon"], peaks["children"], after, answers, failed
    finally:
        proc.terminate()
        proc.wait()
        log.close()


def main():
    posts, work, binaries = sys.argv[1], sys.argv[2], [a.split("=", 1) for a in sys.argv[3:]]
    reps = int(os.environ.get("REPS", "2"))
    print("| binary | run | signal to new feeds (s) | daemon RSS before (MB) | daemon peak (MB) "
          "| children peak (MB) | daemon RSS 5 s after (MB) | answers meanwhile | not 200 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for rep in range(1, reps + 1):
        for name, binary in binaries:
            took, before, peak, child, after, answers, failed = run(binary, posts, os.path.join(work, name))
            mb = lambda kb: f"{kb / 1024:.0f}"  # noqa: E731
            print(f"| {name} | {rep} | {took:.1f} | {mb(before)} | {mb(peak)} | {mb(child)} | {mb(after)} "
                  f"| {answers} | {failed} |", flush=True)
    for name, _ in binaries:
        shutil.rmtree(os.path.join(work, name), ignore_errors=True)


if __name__ == "__main__":
    main()
