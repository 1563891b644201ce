#!/usr/bin/env python3
"""Save-to-served latency and memory under edits, for a running `crier serve`.

Usage (benches/serve.sh runs it; crier must already answer /healthz with 200):

    python3 benches/serve_latency.py --port PORT --pid PID --bench-dir POSTS/zz-bench \
        --staging DIR [--log CRIER_LOG] [--json OUT] [--env OUT] [options]

Part 0, first change. /healthz is 200 once the first publish is done; one probe post (older
than the latency posts) is renamed in and the feed polled every 100 ms until it is served: the
time from /healthz to a daemon that takes in changes. crier's CPU seconds meanwhile and its CPU
use over the 2 s after are reported too.

Part 1, latency. For each of --posts new posts, one at a time:
  - write the post (front matter like the corpus': title, a date newer than every corpus post
    and in the past, an existing category and tag; ~5 KB of Chinese HTML paragraphs) into a temp
    file in --staging, which must be on the same file system as --bench-dir and outside the
    posts folder, so that writing it makes no event crier sees (with --stage-in-folder: a hidden
    file in --bench-dir, which crier sees written, closed and renamed away);
  - GET --feed (identity encoding) and note its ETag;
  - t0, os.rename() the file into --bench-dir;
  - poll GET --feed with If-None-Match: <old ETag> on one keep-alive connection until a 200
    with a new ETag whose body contains the new post's title; latency = now - t0;
  - then poll GET --feed with Accept-Encoding: gzip until a gzip response whose body, unzipped,
    contains the title: the gzip latency, from the same t0 (a server may serve a change before
    its encodings are made).
Posts alternate between two ways of polling, so that both meet the same machine: back to back
(about 5,000 requests a second: the poller and the server answering it take most of a core of
this machine's two from the update step under test), and paced, one poll every --paced-ms (1 ms:
a latency is then at most that much late). --paced-ms 0 polls every post back to back.
Reported for each: p50, p90, p99 (nearest rank), max, in ms, as it is and gzip. With --log, the
crier log lines written while each post was published are kept, and the slowest posts are shown
with them.

Part 2, memory. VmRSS (and VmHWM, the peak) of --pid after start, after the latency posts, and
after each of --edit-rounds rounds of --edits edits. An edit rewrites one of the benchmark's
own newest posts (those in the watched feed) with a new title, via write-temp-and-rename, with
--edit-pause-ms between edits; after a round, the script waits until the last edit's title is
served (then the daemon has taken in every edit) and a further --settle-ms before reading RSS.

Writes a JSON report (--json) and a file of shell assignments (--env) for serve.sh.
Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import math
import os
import random
import re
import secrets
import sys
import time
from datetime import datetime, timedelta, timezone

# Invented Chinese phrases for the bodies (the corpus generator's style, not real text).
PHRASES = """
市场 经济 发展 创新 服务 企业 银行 金融 科技 数字 转型 客户 产品 项目 城市 社区 居民 政府
政策 改革 开放 合作 交流 会议 活动 工作 建设 管理 运营 团队 平台 模式 体系 能力 质量 效率
资源 资金 投资 消费 生产 贸易 物流 交通 能源 环境 生态 绿色 低碳 安全 健康 教育 文化 旅游
小微企业 实体经济 营商环境 科技创新 数字经济 乡村振兴 公共服务 基础设施 普惠金融 供应链
今年以来 据了解 记者获悉 业内人士 专家认为 数据显示 截至目前 同比增长 环比上升 值得一提的是
""".split()
PUNCT = "，，，、；。"


def log(msg: str) -> None:
    print(f"[latency] {msg}", file=sys.stderr, flush=True)


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of `pid`, in KiB."""
    out = {}
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def body_html(rng: random.Random, target_bytes: int) -> str:
    paras = []
    size = 0
    while size < target_bytes:
        sentence = []
        for _ in range(rng.randint(40, 70)):
            sentence.append(rng.choice(PHRASES))
            sentence.append(rng.choice(PUNCT) if rng.random() < 0.3 else "")
        para = "<p>" + "".join(sentence).rstrip("，、；") + "。</p>"
        paras.append(para)
        size += len(para.encode())
    return "".join(paras)


def post_text(title: str, date: datetime, category: str, tag: str, body: str) -> str:
    date_s = date.strftime("%Y-%m-%d %H:%M:%S %z")  # +0800
    return (
        f'---\nlayout: post\ntitle: "{title}"\ndate: {date_s}\n'
        f"categories: {category}\ntags: {tag}\n---\n{body}\n"
    )


class Client:
    """GETs on one keep-alive connection, reopened when the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.conn: http.client.HTTPConnection | None = None
        self.requests = 0
        self.reconnects = 0

    def get(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        last_error: Exception | None = None
        for _ in range(5):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                self.reconnects += 1
            try:
                self.conn.request("GET", path, headers=headers)
                resp = self.conn.getresponse()
                body = resp.read()
                self.requests += 1
                hdrs = {k.lower(): v for k, v in resp.getheaders()}
                if resp.will_close:
                    self.conn.close()
                    self.conn = None
                return resp.status, hdrs, body
            except (http.client.HTTPException, OSError) as error:
                # A keep-alive connection the server closed (idle timeout, request limit).
                last_error = error
                self.conn.close()
                self.conn = None
        raise RuntimeError(f"GET {path} failed: {last_error!r}")


class LogTail:
    """Reads what crier appended to its log since the last call."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.offset = os.path.getsize(path) if path and os.path.exists(path) else 0

    def read_new(self) -> list[str]:
        if not self.path:
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        # Only whole lines; a partly written last line waits for the next call.
        cut = data.rfind(b"\n") + 1
        self.offset += cut
        text = data[:cut].decode("utf-8", errors="replace")
        return [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in text.splitlines()]


STEP_MS = re.compile(r"\b(updated|published|reread the posts folder): .*?([0-9.]+) ms\s*$")


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def latency_summary(samples: list[dict], prefix: str) -> dict[str, float | int]:
    """The latency figures of `samples`, as it is (LAT_) and gzip (GZ_), keys after `prefix`."""
    out: dict[str, float | int] = {}
    for name, key in (("LAT_", "ms"), ("GZ_", "gzip_ms")):
        values = sorted(s[key] for s in samples)
        out.update({f"{prefix}{name}N": len(values), f"{prefix}{name}MIN": values[0],
                    f"{prefix}{name}P50": percentile(values, 50), f"{prefix}{name}P90": percentile(values, 90),
                    f"{prefix}{name}P99": percentile(values, 99), f"{prefix}{name}MAX": values[-1],
                    f"{prefix}{name}MEAN": round(sum(values) / len(values), 3)})
    out[f"{prefix}LAT_POLLS_P50"] = percentile(sorted(s["polls"] for s in samples), 50)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True, help="crier's process id (for VmRSS)")
    ap.add_argument("--bench-dir", required=True, help="empty folder inside the posts folder for the new posts")
    ap.add_argument("--staging", required=True, help="temp folder, same file system, outside the posts folder")
    ap.add_argument("--stage-in-folder", action="store_true",
                    help="write each temp file into --bench-dir itself, as a hidden file (.NAME.tmp), the "
                         "way `sed -i` and many editors save, instead of into --staging")
    ap.add_argument("--log", help="crier's log file, to show what it logged for the slowest posts")
    ap.add_argument("--feed", default="/categories/cat7.rss", help="URL path to watch")
    ap.add_argument("--category", default="cat7")
    ap.add_argument("--tag", default="标签7")
    ap.add_argument("--posts", type=int, default=150, help="new posts for the latency part")
    ap.add_argument("--body-bytes", type=int, default=5000)
    ap.add_argument("--base-date", default="2026-01-02T00:00:00+08:00",
                    help="date of the first new post (the corpus ends 2025-12-31 23:59:59 UTC)")
    ap.add_argument("--gap-ms", type=float, default=50, help="pause after each post is served")
    ap.add_argument("--paced-ms", type=float, default=1,
                    help="every other post is polled once per this many ms, not back to back (0: none)")
    ap.add_argument("--timeout", type=float, default=30, help="seconds to wait for one post")
    ap.add_argument("--ready-timeout", type=float, default=900,
                    help="seconds to wait for the probe post (the first change after /healthz)")
    ap.add_argument("--edits", type=int, default=1000, help="edits per round (memory part)")
    ap.add_argument("--edit-rounds", type=int, default=2)
    ap.add_argument("--edit-pause-ms", type=float, default=5)
    ap.add_argument("--edit-posts", type=int, default=10, help="edits cycle over this many newest bench posts")
    ap.add_argument("--settle-ms", type=float, default=500, help="pause before reading RSS after a round")
    ap.add_argument("--json", help="write the full report here")
    ap.add_argument("--env", help="write shell assignments of the summary here")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    bench_dir, staging = os.path.abspath(args.bench_dir), os.path.abspath(args.staging)
    if not os.path.isdir(bench_dir) or os.listdir(bench_dir):
        log(f"{bench_dir} must exist and be empty")
        return 2
    os.makedirs(staging, exist_ok=True)
    if os.stat(staging).st_dev != os.stat(bench_dir).st_dev:
        log(f"{staging} and {bench_dir} are on different file systems: rename would not be atomic")
        return 2
    base = datetime.fromisoformat(args.base_date)
    last = base + timedelta(minutes=args.posts)
    if last >= datetime.now(timezone.utc):
        log(f"the new posts' dates ({base} .. {last}) must be in the past, or crier schedules them")
        return 2

    rng = random.Random(args.seed)
    token = secrets.token_hex(3)  # this run's titles are unique even if a feed kept older ones
    client = Client(args.host, args.port)
    tail = LogTail(args.log)
    report: dict = {"feed": args.feed, "posts": args.posts, "token": token, "memory": {}}
    mem = report["memory"]
    mem["start"] = proc_status(args.pid)

    def staged_write(name: str, text: str) -> str:
        tmp = os.path.join(bench_dir, f".{name}.tmp") if args.stage_in_folder else os.path.join(staging, name)
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        return tmp

    def wait_served(title: bytes, old_etag: str | None, deadline: float, pause: float = 0) -> tuple[int, str]:
        """Polls the feed, `pause` seconds apart, until a 200 with a new ETag whose body has
        `title`. Returns (polls, etag)."""
        polls = 0
        etag = old_etag
        while True:
            headers = {"If-None-Match": etag} if etag else {}
            status, hdrs, body = client.get(args.feed, headers)
            polls += 1
            if status == 200:
                new = hdrs.get("etag")
                if new != old_etag and title in body:
                    return polls, new
                etag = new  # another change (not ours yet): keep polling from it
            elif status != 304:
                raise RuntimeError(f"GET {args.feed}: unexpected status {status}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{title.decode()!r} not served within {args.timeout:.0f} s")
            if pause:
                time.sleep(pause)

    def wait_gzip(title: bytes, deadline: float, pause: float = 0) -> None:
        """Polls the feed with Accept-Encoding: gzip, `pause` seconds apart, until its gzip
        encoding has `title`."""
        while True:
            status, hdrs, body = client.get(args.feed, {"Accept-Encoding": "gzip"})
            if status != 200:
                raise RuntimeError(f"GET {args.feed} (gzip): unexpected status {status}")
            if hdrs.get("content-encoding") == "gzip" and title in gzip.decompress(body):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{title.decode()!r} not served gzipped within {args.timeout:.0f} s")
            if pause:
                time.sleep(pause)

    def current_etag() -> str:
        status, hdrs, _ = client.get(args.feed, {})
        if status != 200 or "etag" not in hdrs:
            raise RuntimeError(f"GET {args.feed}: status {status}, etag {hdrs.get('etag')}")
        return hdrs["etag"]

    # ------------------------------------------------------------ part 0: first change
    # /healthz says 200 once the first publish is done, but the daemon may still be busy (with
    # the watcher events of its own first reads, say). One probe post, polled every 100 ms,
    # shows when it takes in a change; the latency posts start after that.
    cpu0 = cpu_seconds(args.pid)
    probe_title = f"基准探针稿件 {token}"
    tmp = staged_write("bench-probe.md", post_text(probe_title, base - timedelta(minutes=1), args.category,
                                                   args.tag, body_html(rng, args.body_bytes)))
    old = current_etag()
    t0 = time.perf_counter()
    os.rename(tmp, os.path.join(bench_dir, "bench-probe.md"))
    log(f"probe: waiting (up to {args.ready_timeout:.0f} s) until crier serves a first change")
    deadline = time.monotonic() + args.ready_timeout
    try:
        while True:
            try:
                wait_served(probe_title.encode(), old, time.monotonic())  # one poll
                break
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"probe post not served within {args.ready_timeout:.0f} s") from None
                time.sleep(0.1)
    except Exception as error:
        report["error"] = f"probe: {error}"
        log(report["error"])
    probe_s = time.perf_counter() - t0
    probe_cpu = cpu_seconds(args.pid) - cpu0
    time.sleep(1)
    cpu1 = cpu_seconds(args.pid)
    time.sleep(2)
    idle_pct = (cpu_seconds(args.pid) - cpu1) / 2 * 100
    report["probe"] = {"s": round(probe_s, 3), "cpu_s": round(probe_cpu, 2), "idle_cpu_pct": round(idle_pct, 1),
                       "log": tail.read_new()}
    log(f"probe served after {probe_s:.2f} s (crier used {probe_cpu:.1f} CPU s meanwhile); "
        f"then crier used {idle_pct:.0f}% CPU over 2 s")
    mem["after_probe"] = proc_status(args.pid)

    # ------------------------------------------------------------ part 1: latency
    samples = []
    names = []
    log(f"latency: {args.posts} posts into {bench_dir}, watching {args.feed}")
    for i in range(args.posts if "error" not in report else 0):
        title = f"基准延迟稿件 {i} {token}"
        name = f"bench-{i:04d}.md"
        date = base + timedelta(minutes=i)
        tmp = staged_write(name, post_text(title, date, args.category, args.tag, body_html(rng, args.body_bytes)))
        old = current_etag()
        tail.read_new()  # skip anything logged before this post
        paced = args.paced_ms > 0 and i % 2 == 1
        pause = args.paced_ms / 1000 if paced else 0
        t0 = time.perf_counter()
        os.rename(tmp, os.path.join(bench_dir, name))
        try:
            polls, _ = wait_served(title.encode(), old, time.monotonic() + args.timeout, pause)
            latency_ms = (time.perf_counter() - t0) * 1000
            wait_gzip(title.encode(), time.monotonic() + args.timeout, pause)
            gzip_ms = (time.perf_counter() - t0) * 1000
        except Exception as error:
            log(f"post {i}: {error}")
            report["error"] = f"post {i}: {error}"
            break
        names.append(name)
        time.sleep(args.gap_ms / 1000)  # lets crier finish its log line for this post
        lines = tail.read_new()
        steps = [float(m.group(2)) for m in map(STEP_MS.search, lines) if m]
        samples.append({"i": i, "paced": paced, "ms": round(latency_ms, 3), "gzip_ms": round(gzip_ms, 3),
                        "polls": polls,
                        "steps_ms": steps,
                        "log": lines, "at": time.time()})
        if (i + 1) % 50 == 0:
            log(f"  {i + 1} posts, last {latency_ms:.1f} ms")
    report["samples"] = samples
    mem["after_posts"] = proc_status(args.pid)

    summary: dict[str, float | int | str] = {}
    if samples:
        # Back-to-back posts keep the old names (LAT_*, GZ_*); paced ones add PACED_.
        for prefix, group in (("", [s for s in samples if not s["paced"]]), ("PACED_", [s for s in samples if s["paced"]])):
            if group:
                summary.update(latency_summary(group, prefix))
                log(f"{prefix.lower() or 'back-to-back '}latency ms: " + ", ".join(
                    f"{k.lower()} {summary[f'{prefix}LAT_{k}']} (gzip {summary[f'{prefix}GZ_{k}']})"
                    for k in ("P50", "P90", "P99", "MAX")))
        steps = sorted(x for s in samples for x in s["steps_ms"])
        summary.update(
            LAT_STEPS=len(steps), LAT_STEP_P50=percentile(steps, 50) if steps else "",
            LAT_STEP_MAX=steps[-1] if steps else "",
        )
        slow = sorted(samples, key=lambda s: -s["ms"])[:3]
        log("slowest posts, with what crier logged meanwhile:")
        for s in slow:
            log(f"  post {s['i']}: {s['ms']:.1f} ms, {s['polls']} polls")
            for line in s["log"][-6:]:
                log(f"      {line}")

    # ------------------------------------------------------------ part 2: memory under edits
    ok = "error" not in report and len(names) > 0
    if ok:
        targets = names[-min(args.edit_posts, len(names)):]
        dates = {name: base + timedelta(minutes=int(name[6:10])) for name in targets}
        report["edit_rounds"] = []
        serial = 0
        for r in range(1, args.edit_rounds + 1):
            log(f"memory: round {r}, {args.edits} edits over {len(targets)} posts, {args.edit_pause_ms} ms apart")
            old = current_etag()
            t_start = time.perf_counter()
            title = ""
            for j in range(args.edits):
                serial += 1
                name = targets[j % len(targets)]
                title = f"基准编辑稿件 r{r} e{j} {token}"
                text = post_text(title, dates[name], args.category, args.tag, body_html(rng, args.body_bytes))
                tmp = staged_write(f"edit-{serial}.md", text)
                os.rename(tmp, os.path.join(bench_dir, name))
                time.sleep(args.edit_pause_ms / 1000)
            t_written = time.perf_counter()
            try:
                wait_served(title.encode(), old, time.monotonic() + 120)
            except Exception as error:
                log(f"edit round {r}: {error}")
                report["error"] = f"edit round {r}: {error}"
                break
            t_served = time.perf_counter()
            time.sleep(args.settle_ms / 1000)
            lines = tail.read_new()
            steps = [float(m.group(2)) for m in map(STEP_MS.search, lines) if m]
            status = proc_status(args.pid)
            mem[f"after_edits_{r}"] = status
            report["edit_rounds"].append({
                "round": r, "write_s": round(t_written - t_start, 3),
                "drain_ms": round((t_served - t_written) * 1000, 1), "steps": len(steps),
                "step_ms_max": max(steps) if steps else None, "rss_kib": status["VmRSS"],
            })
            summary[f"EDIT{r}_WRITE_S"] = round(t_written - t_start, 2)
            summary[f"EDIT{r}_DRAIN_MS"] = round((t_served - t_written) * 1000, 1)
            summary[f"EDIT{r}_STEPS"] = len(steps)
            summary[f"EDIT{r}_STEP_MAX"] = max(steps) if steps else ""
            log(f"  written in {t_written - t_start:.2f} s; last edit served {1000 * (t_served - t_written):.0f} ms "
                f"after the last write; crier ran {len(steps)} update steps; VmRSS {status['VmRSS'] / 1024:.1f} MB")

    for key, status in mem.items():
        summary[f"RSS_{key.upper()}_KIB"] = status["VmRSS"]
        summary[f"HWM_{key.upper()}_KIB"] = status["VmHWM"]
    summary["PROBE_S"] = round(probe_s, 2)
    summary["PROBE_CPU_S"] = round(probe_cpu, 1)
    summary["IDLE_CPU_PCT"] = round(idle_pct, 1)
    summary["HTTP_REQUESTS"] = client.requests
    summary["HTTP_CONNECTS"] = client.reconnects
    summary["RUN_TOKEN"] = token
    if "error" in report:
        summary["ERROR"] = report["error"]
    report["summary"] = summary

    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, ensure_ascii=False, indent=1)
    if args.env:
        with open(args.env, "w", encoding="utf-8") as f:
            for key, value in summary.items():
                text = str(value).replace("'", "'\\''")
                f.write(f"{key}='{text}'\n")
    return 1 if "error" in report else 0


if __name__ == "__main__":
    sys.exit(main())
