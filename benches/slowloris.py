#!/usr/bin/env python3
"""Slow-header flood (slowloris), crier and nginx side by side, one after the other in one run.

For each server with room for MAXCONN connections (crier: max_connections; nginx: one worker
with worker_connections = MAXCONN + 1, its listening socket taking one), an attacker process
keeps 5 x MAXCONN connections open as slowloris does: each sends a partial request head and one
more header line every second, and a connection the server closed is opened again a second later.
A third round uses a harsher flood: a closed connection is opened again at once, from another
address (127.0.0.2) than the legitimate client's, so that every slot turns over fast. Meanwhile a legitimate client makes
REQUESTS requests one after the other, each on a new connection, and records how long each took
to be answered in full (a request not answered within GIVE_UP seconds counts as GIVE_UP and as
failed). Both servers serve the same feeds folder (crier build's output) with a 10 s header
timeout. A baseline without the attack comes first.

Usage: benches/slowloris.py [--crier target/release/crier] [--nginx /usr/sbin/nginx]
       [--maxconn 64] [--requests 300] [--out benches/results-slowloris.md]
"""

import argparse
import asyncio
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time

from benchlib import ROOT, free_port, get, wait_up

GIVE_UP = 5.0
HEADER_TIMEOUT_S = 10


async def attacker(port, stop, opened, instant):
    """One slow client as slowloris does it: a partial head, then a header line a second; when the
    server has closed the connection, a new one on the next tick (or at once, from 127.0.0.2)."""
    while not stop.is_set():
        try:
            source = ("127.0.0.2", 0) if instant else None
            reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=source)
            writer.write(b"GET /feed.rss HTTP/1.1\r\nHost: x\r\n")
            await writer.drain()
            opened.value += 1
            while not stop.is_set():
                try:
                    data = await asyncio.wait_for(reader.read(1024), timeout=1.0)
                    if not data:
                        break  # closed by the server
                except asyncio.TimeoutError:
                    writer.write(b"X-Slow: 1\r\n")
                    await writer.drain()
            writer.close()
        except OSError:
            pass
        await asyncio.sleep(0.001 if instant else 1.0)


def flood_process(port, count, stop, opened, instant):
    async def run():
        tasks = [asyncio.create_task(attacker(port, stop, opened, instant)) for _ in range(count)]
        while not stop.is_set():
            await asyncio.sleep(0.1)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(run())


def one_request(port):
    """Seconds until the whole answer is in, and whether it was a 200."""
    started = time.perf_counter()
    try:
        ok = get(port, "/feed.rss", timeout=GIVE_UP).startswith(b"HTTP/1.1 200")
    except OSError:
        ok = False
    elapsed = time.perf_counter() - started
    return (elapsed if ok else GIVE_UP), ok


def measure(port, requests, flood, instant):
    """The legitimate client's latencies while `flood` slow connections run in another process."""
    stop, opened = multiprocessing.Event(), multiprocessing.Value("i", 0)
    attackers = multiprocessing.Process(target=flood_process, args=(port, flood, stop, opened, instant))
    if flood:
        attackers.start()
        time.sleep(3.0)  # let the flood take every slot
    latencies, failed = [], 0
    for _ in range(requests):
        elapsed, ok = one_request(port)
        latencies.append(elapsed)
        failed += not ok
        time.sleep(0.01)
    stop.set()
    if flood:
        attackers.join()
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000
    return {"p50": pick(0.5), "p99": pick(0.99), "max": latencies[-1] * 1000, "failed": failed,
            "opened": opened.value}


def nginx_conf(prefix, port, feeds, maxconn):
    user = "user root root;" if os.getuid() == 0 else ""
    return f"""{user}
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log crit;
events {{ worker_connections {maxconn + 1}; }}
http {{
    access_log off;
    client_header_timeout {HEADER_TIMEOUT_S}s;
    keepalive_timeout {HEADER_TIMEOUT_S}s;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=511;
        root {feeds};
        etag on;
    }}
}}
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--crier", default=os.path.join(ROOT, "target/release/crier"))
    parser.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    parser.add_argument("--maxconn", type=int, default=64)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--out")
    args = parser.parse_args()
    run = tempfile.mkdtemp(prefix="crier-slowloris-")
    feeds = os.path.join(run, "feeds")
    config = os.path.join(run, "crier.toml")
    cport, nport = free_port(), free_port()
    with open(config, "w") as f:
        f.write(f'posts = "{ROOT}/posts"\nfeeds = "{feeds}"\nbase_url = "https://news.example.com/"\n'
                f'listen = "127.0.0.1:{cport}"\nmax_connections = {args.maxconn}\n'
                f'header_timeout_ms = {HEADER_TIMEOUT_S * 1000}\n')
    subprocess.run([args.crier, "build", "--config", config], check=True, capture_output=True)
    os.makedirs(os.path.join(run, "nginx/tmp"))
    with open(os.path.join(run, "nginx/nginx.conf"), "w") as f:
        f.write(nginx_conf(os.path.join(run, "nginx"), nport, feeds, args.maxconn))
    flood = 5 * args.maxconn
    rows = []
    crier = subprocess.Popen([args.crier, "serve", "--config", config],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    nginx = subprocess.Popen([args.nginx, "-p", os.path.join(run, "nginx"), "-c", "nginx.conf",
                              "-g", "daemon off;"], stderr=subprocess.DEVNULL)
    try:
        wait_up(cport, crier, "crier")
        wait_up(nport, nginx, "nginx")
        version = subprocess.run([args.nginx, "-v"], capture_output=True, text=True).stderr.strip()
        for attack, instant in ((0, False), (flood, False), (flood, True)):
            for name, port in (("crier", cport), ("nginx", nport)):
                result = measure(port, args.requests, attack, instant)
                rows.append((name, attack, instant, result))
                print(f"{name:5} flood={attack:4} instant={instant!s:5}  p50 {result['p50']:8.1f} ms  p99 {result['p99']:8.1f} ms  "
                      f"max {result['max']:8.1f} ms  failed {result['failed']}/{args.requests}  "
                      f"attacker connections opened {result['opened']}", flush=True)
    finally:
        for proc in (crier, nginx):
            proc.terminate()
            proc.wait()
        shutil.rmtree(run, ignore_errors=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write(f"# Slow-header flood: crier and nginx side by side\n\n"
                    f"`{' '.join(sys.argv)}` on {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores; "
                    f"{version}. Room for {args.maxconn} connections in each server, header timeout "
                    f"{HEADER_TIMEOUT_S} s; the flood keeps {flood} slow-header connections open "
                    f"(each reopened a second after the server closed it); {args.requests} legitimate requests one after the other, "
                    f"each on a new connection; a request not answered within {GIVE_UP:.0f} s counts as "
                    f"failed and as {GIVE_UP:.0f} s.\n\n"
                    "The last two rows: the flood reopens a closed connection at once, from another "
                    "address (127.0.0.2) than the legitimate client's.\n\n"
                    "| server | flood connections | reopened | p50 ms | p99 ms | max ms | failed | attacker connects |\n"
                    "|---|---:|---|---:|---:|---:|---:|---:|\n")
            for name, attack, instant, r in rows:
                reopen = "-" if not attack else ("at once" if instant else "after 1 s")
                f.write(f"| {name} | {attack} | {reopen} | {r['p50']:.1f} | {r['p99']:.1f} | {r['max']:.1f} | "
                        f"{r['failed']}/{args.requests} | {r['opened']} |\n")


if __name__ == "__main__":
    main()
