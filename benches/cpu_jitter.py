#!/usr/bin/env python3
"""How steady this machine's CPU is: the same fixed piece of work (SHA-256 of 1 MiB, in C),
timed many times on one thread, with wall time and the thread's own CPU time.

    python3 benches/cpu_jitter.py [ROUNDS]     (default 3000)

On a quiet machine both distributions are narrow. When the CPU time itself has a long tail,
the work was slowed while it ran (a virtual CPU whose host is busy, frequency changes), not
kept waiting for a core, and any latency measured here inherits that tail. Prints nearest-rank
percentiles in ms and the ratio of each to the median. Python 3.11 standard library only.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    n = len(ordered)
    rank = lambda p: ordered[min(n - 1, max(0, -(-p * n // 1000) - 1))]  # noqa: E731 (nearest rank)
    return {"p50": rank(500), "p90": rank(900), "p99": rank(990), "p99.9": rank(999), "max": ordered[-1]}


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    block = os.urandom(1 << 20)
    wall, cpu = [], []
    for _ in range(rounds):
        w0, c0 = time.perf_counter(), time.thread_time()
        hashlib.sha256(block).digest()
        wall.append((time.perf_counter() - w0) * 1000)
        cpu.append((time.thread_time() - c0) * 1000)
    print(f"# CPU jitter: SHA-256 of 1 MiB, {rounds} rounds, one thread; load average {os.getloadavg()[0]:.2f}")
    for name, values in (("wall", wall), ("thread CPU", cpu)):
        p = percentiles(values)
        cells = ", ".join(f"{k} {v:.2f} ms ({v / p['p50']:.1f}x)" for k, v in p.items())
        print(f"- {name}: {cells}")


if __name__ == "__main__":
    main()
