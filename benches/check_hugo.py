#!/usr/bin/env python3
"""Check the RSS feeds Hugo built from a gen_corpus.py corpus.

Usage:
    python3 benches/check_hugo.py DESTDIR STATS_JSON [--limit 20]

Verifies, against the stats file gen_corpus.py wrote:
  * DESTDIR/index.xml (home) exists and holds the `limit` newest posts;
  * DESTDIR/categories/index.xml and DESTDIR/tags/index.xml (term lists) exist;
  * one DESTDIR/categories/<cat>/index.xml per category used and one
    DESTDIR/tags/<tag>/index.xml per tag used (no more, no fewer), each with
    min(limit, posts in that term) items, and those items are the newest posts
    of the term;
  * every item's pubDate is the same instant as the post's front-matter date,
    and carries the same UTC offset.
Exits 0 when all checks pass, 1 otherwise. Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from email.utils import parsedate_to_datetime

LINK_ID = re.compile(r"/p/\d+/(\d+)/?$")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("dest")
    ap.add_argument("stats")
    ap.add_argument("--limit", type=int, default=20)
    args = ap.parse_args(argv)
    limit = args.limit

    with open(args.stats, encoding="utf-8") as f:
        stats = json.load(f)
    posts = {p[0]: p for p in stats["posts"]}  # id -> [id, epoch, off, cat, tags]

    by_cat: dict[str, list[int]] = defaultdict(list)
    by_tag: dict[str, list[int]] = defaultdict(list)
    for pid, epoch, _off, cat, tags in stats["posts"]:
        by_cat[cat].append(epoch)
        for t in tags:
            by_tag[t].append(epoch)
    all_epochs = sorted((p[1] for p in stats["posts"]), reverse=True)

    errors: list[str] = []
    n_items = 0
    n_date_ok = 0

    def check_feed(path: str, expected_epochs: list[int], what: str) -> None:
        nonlocal n_items, n_date_ok
        if not os.path.isfile(path):
            errors.append(f"{what}: missing {path}")
            return
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as e:
            errors.append(f"{what}: not well-formed: {e}")
            return
        items = root.findall("./channel/item")
        want = sorted(expected_epochs, reverse=True)[:limit]
        if len(items) != len(want):
            errors.append(f"{what}: {len(items)} items, want {len(want)}")
        got_epochs = []
        for it in items:
            n_items += 1
            link = it.findtext("link") or ""
            m = LINK_ID.search(link)
            if not m:
                errors.append(f"{what}: unexpected item link {link!r}")
                continue
            pid = int(m.group(1))
            post = posts.get(pid)
            if post is None:
                errors.append(f"{what}: link to unknown post {pid}")
                continue
            pub = it.findtext("pubDate") or ""
            try:
                dt = parsedate_to_datetime(pub)
            except (TypeError, ValueError):
                errors.append(f"{what}: post {pid}: bad pubDate {pub!r}")
                continue
            epoch = int(dt.timestamp())
            got_epochs.append(epoch)
            off = pub.rsplit(" ", 1)[-1]
            if epoch != post[1] or off != post[2]:
                errors.append(
                    f"{what}: post {pid}: pubDate {pub!r} != front matter "
                    f"epoch {post[1]} offset {post[2]}"
                )
            else:
                n_date_ok += 1
        if sorted(got_epochs, reverse=True) != want[: len(got_epochs)]:
            errors.append(f"{what}: items are not the newest posts of the feed")

    check_feed(os.path.join(args.dest, "index.xml"), all_epochs, "home")

    for tax, groups in (("categories", by_cat), ("tags", by_tag)):
        lst = os.path.join(args.dest, tax, "index.xml")
        if not os.path.isfile(lst):
            errors.append(f"{tax}: missing term list feed {lst}")
        else:
            k = len(ET.parse(lst).getroot().findall("./channel/item"))
            if k != min(limit, len(groups)):
                errors.append(f"{tax}/index.xml: {k} items, want {min(limit, len(groups))}")
        tdir = os.path.join(args.dest, tax)
        present = (
            {d for d in os.listdir(tdir) if os.path.isdir(os.path.join(tdir, d))}
            if os.path.isdir(tdir)
            else set()
        )
        # Hugo urlizes term names; ours are lower-case ASCII or CJK + digits,
        # which urlize keeps as they are.
        extra = present - set(groups)
        if extra:
            errors.append(f"{tax}: unexpected term feeds {sorted(extra)[:5]}")
        for term, epochs in groups.items():
            check_feed(os.path.join(tdir, term, "index.xml"), epochs, f"{tax}/{term}")

    n_feeds = 1 + 2 + len(by_cat) + len(by_tag)
    print(
        f"check_hugo: {n_feeds} feeds expected (home, 2 term lists, {len(by_cat)} categories, "
        f"{len(by_tag)} tags); {n_items} items read, {n_date_ok} pubDates match front matter; "
        f"{len(errors)} problems"
    )
    for e in errors[:20]:
        print("  " + e)
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
