#!/usr/bin/env python3
"""Hostile-input benchmark: `crier build` on one post of each hostile shape, at several sizes,
side by side with a benign post of the same size (Chinese paragraphs), in one run.

    python3 benches/hostile.py [CRIER_BIN] [--sizes 20000,100000,500000] [--reps 3]

Each case is a posts folder holding the post alone; the time is the median wall time of `crier
build` into a fresh feeds folder. The table (also written to benches/results-hostile.md) gives
milliseconds, milliseconds per 100 KB, and the ratio to the benign post of the same size.
"""

import argparse
import pathlib
import shutil
import statistics
import subprocess
import tempfile
import time

FRONT = "---\ntitle: {title}\ndate: 2024-01-01 10:00:00 +0800\ncategories: bench\n---\n"


def body(shape, size):
    """A body of about `size` bytes in the given shape, and the file extension it needs."""
    if shape == "benign":
        para = "<p>青岛港口物流园区今日开通夜班公交，方便园区员工通勤。</p>\n"
        return para * (size // len(para.encode()) + 1), "html"
    if shape == "nested-blockquote-md":
        return ">" * size + " deep\n", "md"
    if shape == "unclosed-divs-html":
        return "<div>" * (size // 5) + "x\n", "html"
    if shape == "attribute-flood-html":
        attrs = " ".join(f'a{i}="1"' for i in range(size // 8))
        return f"<p {attrs}>x</p>\n", "html"
    if shape == "nested-lists-md":
        lines = [("  " * i) + "- item" for i in range(int((size / 2) ** 0.5))]
        return "\n".join(lines) + "\n", "md"
    if shape == "nested-list-one-line-md":
        return "- " * (size // 2) + "x\n", "md"
    if shape == "nested-blockquote-tabs-md":
        return ">\t" * (size // 2) + "deep\n", "md"
    if shape == "nested-emphasis-md":
        return "*" * (size // 2) + "x" + "*" * (size // 2) + "\n", "md"
    if shape == "inline-html-in-md":
        return "text\n\n" + "<span>" * (size // 6) + "x\n", "md"
    raise ValueError(shape)


SHAPES = [
    "benign",
    "nested-blockquote-md",
    "unclosed-divs-html",
    "attribute-flood-html",
    "nested-lists-md",
    "nested-list-one-line-md",
    "nested-blockquote-tabs-md",
    "nested-emphasis-md",
    "inline-html-in-md",
]


def run(crier, posts, feeds):
    shutil.rmtree(feeds, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run(
        [crier, "build", "--posts", str(posts), "--feeds", str(feeds), "--base-url", "https://e.org/"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=600,
    )
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("crier", nargs="?", default="target/release/crier")
    parser.add_argument("--sizes", default="20000,100000,500000")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--results", default="benches/results-hostile.md")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    benign = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        for size in sizes:
            for shape in SHAPES:
                text, ext = body(shape, size)
                posts = tmp / f"{shape}-{size}"
                posts.mkdir()
                (posts / f"post.{ext}").write_text(FRONT.format(title=shape) + text)
                nbytes = (posts / f"post.{ext}").stat().st_size
                seconds = statistics.median(run(args.crier, posts, tmp / "feeds") for _ in range(args.reps))
                if shape == "benign":
                    benign[size] = seconds
                per_100k = seconds * 1000 * 100_000 / nbytes
                rows.append((shape, nbytes, seconds * 1000, per_100k, seconds / benign[size]))
                print(f"{shape:24} {nbytes:>9} B {seconds * 1000:9.1f} ms {per_100k:8.1f} ms/100KB", flush=True)
    lines = [
        "# Hostile-input benchmark",
        "",
        f"`python3 benches/hostile.py {args.crier} --sizes {args.sizes} --reps {args.reps}`: `crier build` of one post,",
        "median wall time (process start to exit, including writing the feeds), side by side with a",
        "benign post of the same size.",
        "",
        "| shape | bytes | ms | ms per 100 KB | × benign of that size |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {s} | {b} | {ms:.1f} | {p:.1f} | {r:.2f} |" for s, b, ms, p, r in rows]
    pathlib.Path(args.results).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
