#!/usr/bin/env python3
# Starts the crier serve command given as arguments (it must log its address, e.g. --listen
# 127.0.0.1:0), polls GET /feeds/feed.rss until it answers 200, waits for the first
# "published:" log line, and prints both times from the spawn and the resident memory 3 s later.
import subprocess, sys, time, socket, re, os
args = sys.argv[1:]
t0 = time.monotonic()
p = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
import threading
addr = []
lines = []
def reader():
    for line in p.stderr:
        lines.append(line)
        m = re.search(r"on http://([0-9.]+:[0-9]+)/", line)
        if m and not addr: addr.append(m.group(1))
threading.Thread(target=reader, daemon=True).start()
first = None
while time.monotonic() - t0 < 300:
    if addr:
        h, port = addr[0].split(':')
        try:
            s = socket.create_connection((h, int(port)), timeout=5)
            s.sendall(b"GET /feeds/feed.rss HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                c = s.recv(65536)
                if not c: break
                data += c
            s.close()
            if data.startswith(b"HTTP/1.1 200"):
                first = time.monotonic() - t0; break
        except OSError:
            pass
    time.sleep(0.005)
print(f"first feed 200 after {first*1000:.0f} ms")
# wait for catch-up line
t1 = time.monotonic()
while time.monotonic() - t1 < 300 and not any("published:" in l for l in lines):
    time.sleep(0.05)
print(f"caught up after {(time.monotonic()-t0)*1000:.0f} ms")
time.sleep(3)  # the feeds are read into memory after the catch-up step
try:
    rss = int(open(f"/proc/{p.pid}/status").read().split("VmRSS:")[1].split()[0])
    print(f"RSS {rss/1024:.0f} MB 3 s after")
except Exception as e: print(e)
p.terminate(); p.wait()
for l in lines:
    if "serving" in l or "published" in l or "published:" in l: print(l.strip()[:200])
