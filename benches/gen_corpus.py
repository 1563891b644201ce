#!/usr/bin/env python3
"""Generate a synthetic corpus of crier post files for benchmarks.

Usage:
    python3 benches/gen_corpus.py N OUTDIR [--hugo-out DIR] [--stats FILE] [--seed S]

Writes N post files shaped like a real Jekyll-style news post (YAML front
matter with a dated title, a `date` carrying a UTC offset, one category, one or
two space-separated tags; then one line of raw-HTML Chinese paragraphs, an
autolink and two protocol-relative Markdown links). File names carry no date:

    OUTDIR/p/<bucket>/<id>.md     e.g. OUTDIR/p/23/000123.md   (100 buckets)

All text is synthetic, built from a fixed list of invented Chinese phrases with
a seeded PRNG, so the output is byte-for-byte the same for the same N and seed.

--hugo-out DIR  also writes a twin corpus for Hugo under DIR with the same
                relative paths and bytes except one thing: a post with two
                tags gets `tags: [标签12, 标签40]` (a YAML list), because Hugo
                takes a plain string as ONE term, whereas the Jekyll convention
                crier follows splits a tags string on spaces. Dates need no
                change: Hugo 0.111 parses `2021-12-23 16:34:36 +0800` and keeps
                the offset.
--stats FILE    writes a JSON summary (per-post id, epoch seconds, UTC offset,
                category, tags) that benches/check_feeds.py uses to verify the
                feeds produced from the corpus.

Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from datetime import datetime, timedelta, timezone

DEFAULT_SEED = 20240523
N_BUCKETS = 100
N_CATEGORIES = 50
N_TAGS = 300
TWO_TAG_SHARE = 0.25
POOL_PARAGRAPHS = 3000
PARAGRAPHS_PER_POST = 10

# Invented vocabulary: common two- to four-character words of the kind a
# financial/regional news site uses. Not taken from any real article.
WORDS = """
市场 经济 发展 创新 服务 企业 银行 金融 科技 数字 转型 客户 产品 项目 城市 社区
居民 政府 政策 改革 开放 合作 交流 会议 活动 工作 建设 管理 运营 团队 员工 平台
模式 体系 能力 质量 效率 流程 体验 需求 资源 资金 投资 消费 生产 制造 农业 工业
贸易 出口 进口 物流 交通 能源 环境 生态 绿色 低碳 安全 健康 教育 文化 旅游 体育
医疗 养老 就业 收入 价格 指数 增长 下降 提升 推动 加快 促进 支持 保障 优化 完善
加强 深化 推进 落实 实施 开展 举办 组织 参与 实现 打造 构建 形成 提供 满足 解决
全面 持续 稳步 积极 主动 有效 显著 不断 进一步 全方位 多层次 高质量 新阶段 新格局
小微企业 实体经济 营商环境 科技创新 数字经济 乡村振兴 共同富裕 区域协调 产业升级
民生保障 公共服务 基础设施 金融科技 普惠金融 供应链 产业链 价值链 新动能 新业态
今年以来 据了解 记者获悉 业内人士 专家认为 数据显示 截至目前 同比增长 环比上升
一季度 上半年 全年 近年来 未来 当前 目前 同时 此外 其中 另外 总体来看 值得一提的是
""".split()

CONNECTORS = ["，", "，", "，", "、", "，", "；"]

SOURCES = ["本地财经网", "城市新闻网", "经济观察台", "金融时讯", "产业周刊", "民生快报"]


def make_sentence(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(3, 6)):
        clause = "".join(rng.choice(WORDS) for _ in range(rng.randint(2, 4)))
        if rng.random() < 0.12:
            clause = "“" + clause + "”"
        parts.append(clause)
    out = parts[0]
    for p in parts[1:]:
        out += rng.choice(CONNECTORS) + p
    return out + "。"


def make_paragraph(rng: random.Random) -> str:
    if rng.random() < 0.08:
        # a bold sub-heading paragraph, as news bodies often have
        head = "".join(rng.choice(WORDS) for _ in range(2)) + "：" + "".join(
            rng.choice(WORDS) for _ in range(3)
        )
        return "<p><strong>" + head + "</strong></p>"
    target = rng.randint(150, 230)  # characters
    text = ""
    while len(text) < target:
        text += make_sentence(rng)
    return "<p>" + text + "</p>"


def make_title(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(3, 5))]
    # one space inside the title, like real headlines
    cut = rng.randint(1, len(words) - 1)
    return "".join(words[:cut]) + " " + "".join(words[cut:])


OFFSETS = [(8 * 60, 0.6), (0, 0.2), (-5 * 60, 0.2)]  # minutes east of UTC, weight
EPOCH_LO = int(datetime(2015, 1, 1, tzinfo=timezone.utc).timestamp())
EPOCH_HI = int(datetime(2025, 12, 31, 23, 59, 59, tzinfo=timezone.utc).timestamp())


def pick_offset(rng: random.Random) -> int:
    r = rng.random()
    acc = 0.0
    for minutes, w in OFFSETS:
        acc += w
        if r < acc:
            return minutes
    return OFFSETS[-1][0]


def fmt_offset(minutes: int) -> str:
    sign = "+" if minutes >= 0 else "-"
    m = abs(minutes)
    return f"{sign}{m // 60:02d}{m % 60:02d}"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", type=int)
    ap.add_argument("outdir")
    ap.add_argument("--hugo-out")
    ap.add_argument("--stats")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = ap.parse_args(argv)
    n = args.n
    if n < 1:
        ap.error("N must be >= 1")

    rng = random.Random(args.seed)
    pool = [make_paragraph(rng) for _ in range(POOL_PARAGRAPHS)]
    tags = [f"标签{i}" for i in range(N_TAGS)]
    width = max(6, len(str(n - 1)))

    for base in filter(None, [args.outdir, args.hugo_out]):
        for b in range(N_BUCKETS):
            os.makedirs(os.path.join(base, "p", f"{b:02d}"), exist_ok=True)

    posts = []
    total_bytes = 0
    for i in range(n):
        title = make_title(rng) + f" {i}"
        epoch = rng.randint(EPOCH_LO, EPOCH_HI)
        off = pick_offset(rng)
        local = datetime.fromtimestamp(epoch, timezone(timedelta(minutes=off)))
        date_s = local.strftime("%Y-%m-%d %H:%M:%S ") + fmt_offset(off)
        cat = f"cat{rng.randrange(N_CATEGORIES)}"
        if rng.random() < TWO_TAG_SHARE:
            post_tags = rng.sample(tags, 2)
        else:
            post_tags = [rng.choice(tags)]
        # first paragraph is unique to the post so no two bodies are equal
        paras = [f"<p>（第{i}号稿件）" + make_sentence(rng) + "</p>"]
        paras += [rng.choice(pool) for _ in range(PARAGRAPHS_PER_POST - 1)]
        paras.append(f'<p class="em_media">（文章来源：{rng.choice(SOURCES)}）</p>')
        body = (
            "".join(paras)
            + "\n\n"
            + f"<http://news.example.com/share.html?id={i}>\n\n"
            + f"[返回](//news.example.com/category/{cat}.html)｜[首页](//news.example.com/)\n"
        )
        head = f'---\nlayout: post\ntitle: "{title}"\ndate: {date_s}\ncategories: {cat}\n'
        rel = os.path.join("p", f"{i % N_BUCKETS:02d}", f"{i:0{width}d}.md")
        crier_text = head + f"tags: {' '.join(post_tags)}\n---\n" + body
        data = crier_text.encode("utf-8")
        total_bytes += len(data)
        with open(os.path.join(args.outdir, rel), "wb") as f:
            f.write(data)
        if args.hugo_out:
            if len(post_tags) > 1:
                hugo_text = head + f"tags: [{', '.join(post_tags)}]\n---\n" + body
                hdata = hugo_text.encode("utf-8")
            else:
                hdata = data
            with open(os.path.join(args.hugo_out, rel), "wb") as f:
                f.write(hdata)
        posts.append([i, epoch, fmt_offset(off), cat, post_tags])

    if args.stats:
        stats = {
            "n": n,
            "seed": args.seed,
            "width": width,
            "buckets": N_BUCKETS,
            "total_bytes": total_bytes,
            "posts": posts,  # [id, epoch, offset, category, [tags]]
        }
        tmp = args.stats + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(stats, f, ensure_ascii=False, separators=(",", ":"))
        os.replace(tmp, args.stats)

    print(
        f"gen_corpus: {n} posts, {total_bytes / n / 1024:.1f} KiB/post avg, "
        f"{total_bytes / 1e6:.1f} MB total -> {args.outdir}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
