//! `crier build` and `crier check` run for real on fixture sites, their feeds read back by a real
//! feed parser (feed-rs), a strict XML 1.0 parser (roxmltree) and serde_json.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use common::{CRIER, Site, text};

/// A fixture site holding [`GOOD_POSTS`] under [`CONFIG`].
fn good_site() -> Site {
    let site = Site::new(CONFIG);
    for (name, text) in GOOD_POSTS {
        site.write(name, text.as_bytes());
    }
    site
}

const CONFIG: &str = r#"
posts = "posts"
feeds = "feeds"
base_url = "https://news.example.com/"
title = "Fixture & <News>"
description = "Fixture site"
language = "zh-CN"
timezone = "Asia/Shanghai"
author = { name = "Desk", email = "desk@example.com" }
"#;

const GOOD_POSTS: &[(&str, &str)] = &[
    (
        "news/port-report.txt",
        "---\nlayout: post\ntitle: \"以客户为中心 港口物流\"\ndate: 2021-12-23 16:34:36 +0800\ncategories: caijing\ntags: 青岛财经网新闻\n---\n<p>第一段正文，介绍港口。</p><p><strong>小标题</strong></p><p class=\"em_media\">（文章来源：示例网）</p>\n\n<http://finews.example.com/share.html?infoCode=NW1>\n\n[返回新闻](//finews.example.com/category/caijing.html)｜[返回首页](//finews.example.com/)",
    ),
    (
        "2021-12-20-rust-feeds.md",
        "---\ntitle: \"R&D <notes> ]]> on feeds\"\ndate: 2021-12-20 08:00\ncategories: [Engineering, 青岛 财经]\ntags: [rust, open-source]\nauthor: {name: Ann Lee, email: ann@example.com}\n---\n## Heading\n\nFirst paragraph with R&D, a < b and ]]> inside.\n\n![diagram](/images/d.png) and [other](2021-12-01-other.html)\n\n<script>alert(1)</script>\n",
    ),
    (
        "blog/2021-12-01-other.md",
        "---\ntitle: Other post\ndate: 2021-12-01T10:00:00-05:00\nupdated: 2021-12-05 09:00:00 +0000\ncategories: engineering\ntags: rust\ndescription: An explicit summary.\nid: urn:uuid:6f1d3f4e-1111-4222-8333-944455556666\n---\nBody with a control\u{8} character.\n",
    ),
    ("draft.md", "---\ntitle: Draft\ndate: 2021-12-02\ndraft: true\ncategories: drafts\n---\nNot yet.\n"),
    ("future.md", "---\ntitle: From the future\ndate: 2999-01-01 00:00:00 +0000\ncategories: future\n---\nLater.\n"),
];

#[test]
fn builds_valid_feeds_a_reader_understands() {
    let site = good_site();
    let out = site.build();
    assert_eq!(out.status.code(), Some(0), "stdout: {}\nstderr: {}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("3 published"), "{}", text(&out.stdout));

    // Every XML document is well-formed XML 1.0, strictly.
    for entry in walkdir::WalkDir::new(site.path("feeds")).into_iter().map(Result::unwrap) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".rss") || name.ends_with(".atom") || name.ends_with(".opml") {
            let doc = fs::read_to_string(entry.path()).unwrap();
            roxmltree::Document::parse(&doc).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(doc.starts_with("<?xml version=\"1.0\" encoding=\""), "{name}");
        }
    }

    for rel in ["feed.rss", "feed.atom", "feed.json"] {
        let feed = site.parsed(rel);
        let titles: Vec<String> = feed.entries.iter().map(|e| e.title.as_ref().unwrap().content.clone()).collect();
        assert_eq!(titles, ["以客户为中心 港口物流", "R&D <notes> ]]> on feeds", "Other post"], "{rel}");
        let links: Vec<&str> = feed.entries.iter().map(|e| e.links[0].href.as_str()).collect();
        assert_eq!(
            links,
            [
                "https://news.example.com/caijing/2021/12/23/port-report.html",
                "https://news.example.com/engineering/%E9%9D%92%E5%B2%9B-%E8%B4%A2%E7%BB%8F/2021/12/20/rust-feeds.html",
                "https://news.example.com/engineering/2021/12/01/other.html",
            ],
            "{rel}"
        );
        let first = &feed.entries[0];
        assert_eq!(first.published.unwrap().to_rfc3339(), "2021-12-23T08:34:36+00:00", "{rel}");
        // Without an offset, the site's zone applies: 08:00 in Shanghai.
        assert_eq!(feed.entries[1].published.unwrap().to_rfc3339(), "2021-12-20T00:00:00+00:00", "{rel}");
        let terms: Vec<&str> = first.categories.iter().map(|c| c.term.as_str()).collect();
        assert_eq!(terms, ["caijing", "青岛财经网新闻"], "{rel}");
        let content = first.content.as_ref().and_then(|c| c.body.clone()).unwrap_or_default();
        assert!(content.contains("第一段正文，介绍港口。"), "{rel}: {content}");
        assert!(content.contains("href=\"https://finews.example.com/category/caijing.html\""), "{rel}: {content}");
        assert!(content.contains("href=\"http://finews.example.com/share.html?infoCode=NW1\""), "{rel}: {content}");
        let second = feed.entries[1].content.as_ref().and_then(|c| c.body.clone()).unwrap_or_default();
        assert!(second.contains("src=\"https://news.example.com/images/d.png\""), "{rel}: {second}");
        assert!(
            second.contains("href=\"https://news.example.com/engineering/%E9%9D%92%E5%B2%9B-%E8%B4%A2%E7%BB%8F/2021/12/20/2021-12-01-other.html\""),
            "{rel}: {second}"
        );
        assert!(!second.contains("script"), "{rel}: {second}");
        assert_eq!(feed.entries[1].authors[0].name, "Ann Lee", "{rel}");
        assert_eq!(feed.entries[2].summary.as_ref().unwrap().content, "An explicit summary.", "{rel}");
        if rel != "feed.rss" {
            // RSS has no element for an item's update time.
            assert_eq!(feed.entries[2].updated.unwrap().to_rfc3339(), "2021-12-05T09:00:00+00:00", "{rel}");
        }
    }

    // The RSS Best Practices escapes, and nothing forbidden anywhere.
    let rss = text(&site.feed("feed.rss"));
    assert!(rss.contains("<title>R&#x26;D &#x3C;notes&gt; ]]&gt; on feeds</title>"), "{rss}");
    assert!(rss.contains("<title>Fixture &#x26; &#x3C;News&gt;</title>"), "{rss}");
    assert!(rss.contains("<pubDate>Thu, 23 Dec 2021 16:34:36 +0800</pubDate>"), "{rss}");
    assert!(rss.contains("<dc:creator>Ann Lee</dc:creator>"), "{rss}");
    assert!(rss.contains("<guid isPermaLink=\"false\">urn:uuid:6f1d3f4e-1111-4222-8333-944455556666</guid>"), "{rss}");
    assert!(rss.contains(
        "<atom:link href=\"https://news.example.com/feeds/feed.rss\" rel=\"self\" type=\"application/rss+xml\"/>"
    ));
    assert!(!rss.contains('\u{8}'));
    let atom = text(&site.feed("feed.atom"));
    assert!(atom.contains("xml:base=\"https://news.example.com/caijing/2021/12/23/port-report.html\""), "{atom}");

    // JSON Feed 1.1 fields.
    let json: serde_json::Value = serde_json::from_slice(&site.feed("feed.json")).unwrap();
    assert_eq!(json["version"], "https://jsonfeed.org/version/1.1");
    assert_eq!(json["feed_url"], "https://news.example.com/feeds/feed.json");
    assert_eq!(json["language"], "zh-CN");
    assert_eq!(json["items"][0]["date_published"], "2021-12-23T16:34:36+08:00");
    assert_eq!(json["items"][0]["tags"], serde_json::json!(["caijing", "青岛财经网新闻"]));
    assert_eq!(json["items"][2]["id"], "urn:uuid:6f1d3f4e-1111-4222-8333-944455556666");

    // Per category and tag, Chinese slugs percent-encoded in their addresses; drafts and future posts absent.
    let tag = site.parsed("tags/青岛财经网新闻.atom");
    assert_eq!(tag.entries.len(), 1);
    let tag_atom = text(&site.feed("tags/青岛财经网新闻.atom"));
    assert!(tag_atom.contains(
        "href=\"https://news.example.com/feeds/tags/%E9%9D%92%E5%B2%9B%E8%B4%A2%E7%BB%8F%E7%BD%91%E6%96%B0%E9%97%BB.atom\" rel=\"self\""
    ));
    // "Engineering" and "engineering" share a slug; the newest post's spelling names the feed.
    let engineering = site.parsed("categories/engineering.rss");
    assert_eq!(engineering.entries.len(), 2);
    assert!(engineering.title.unwrap().content.ends_with("Engineering"));
    assert_eq!(site.parsed("tags/rust.json").entries.len(), 2);
    assert!(!site.path("feeds/categories/drafts.rss").exists());
    assert!(!site.path("feeds/categories/future.rss").exists());
    assert!(!rss.contains("From the future"));

    // Precompressed encodings hold the same bytes.
    for rel in ["feed.rss", "categories/caijing.atom", "tags/rust.json", "index.opml"] {
        let identity = site.feed(rel);
        let mut gz = Vec::new();
        flate2::read::GzDecoder::new(&site.feed(&format!("{rel}.gz"))[..]).read_to_end(&mut gz).unwrap();
        assert_eq!(gz, identity, "{rel}.gz");
        let mut br = Vec::new();
        brotli::BrotliDecompress(&mut &site.feed(&format!("{rel}.br"))[..], &mut br).unwrap();
        assert_eq!(br, identity, "{rel}.br");
    }

    // The OPML lists every feed.
    let opml = text(&site.feed("index.opml"));
    let doc = roxmltree::Document::parse(&opml).unwrap();
    let urls: Vec<&str> = doc.descendants().filter_map(|n| n.attribute("xmlUrl")).collect();
    assert!(urls.contains(&"https://news.example.com/feeds/feed.rss"));
    assert!(urls.contains(&"https://news.example.com/feeds/categories/caijing.rss"));
    assert!(urls.contains(&"https://news.example.com/feeds/tags/open-source.rss"));
    assert_eq!(urls.len(), 1 + 3 + 3, "site, 3 categories, 3 tags: {urls:?}");
    assert!(urls.iter().all(|u| u.is_ascii()));
}

#[test]
fn second_build_is_byte_identical_and_rewrites_nothing() {
    let site = good_site();
    assert_eq!(site.build().status.code(), Some(0));
    let first = site.snapshot();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let out = site.build();
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("0 written"), "{}", text(&out.stdout));
    assert_eq!(site.snapshot(), first, "bytes and modification times are unchanged");

    // A fresh folder built elsewhere gets the same bytes: nothing comes from the clock.
    let other = good_site();
    assert_eq!(other.build().status.code(), Some(0));
    let strip = |snap: BTreeMap<PathBuf, (Vec<u8>, SystemTime)>, root: &Path| -> BTreeMap<PathBuf, Vec<u8>> {
        snap.into_iter().map(|(p, (b, _))| (p.strip_prefix(root).unwrap().to_owned(), b)).collect()
    };
    assert_eq!(strip(other.snapshot(), other.dir.path()), strip(first, site.dir.path()));
}

#[test]
fn removed_posts_take_their_feeds_with_them() {
    let site = good_site();
    assert_eq!(site.build().status.code(), Some(0));
    assert!(site.path("feeds/categories/caijing.rss").exists());
    fs::remove_file(site.path("posts/news/port-report.txt")).unwrap();
    let out = site.build();
    assert!(text(&out.stdout).contains("removed"), "{}", text(&out.stdout));
    for ext in ["rss", "rss.gz", "rss.br", "atom", "json"] {
        assert!(!site.path(&format!("feeds/categories/caijing.{ext}")).exists(), "{ext}");
    }
    assert_eq!(site.parsed("feed.rss").entries.len(), 2);
}

#[test]
fn bad_posts_are_skipped_with_file_line_and_fix_and_the_rest_publish() {
    let site = Site::new(&format!("{CONFIG}\nmax_post_bytes = 2000\n"));
    for (name, text) in GOOD_POSTS {
        site.write(name, text.as_bytes());
    }
    let bad: &[(&str, &[u8], &str)] = &[
        ("no-front-matter.md", b"Just a body.\n", "no-front-matter.md:1: no front matter"),
        ("unterminated.md", b"---\ntitle: x\ndate: 2021-01-01\n", "unterminated.md:1: front matter is never closed"),
        ("bad-yaml.md", b"---\ntitle: x\ndate: 2021-01-01\ntags: [a, b\n---\n", "bad-yaml.md:"),
        (
            "bad-date.md",
            b"---\ntitle: x\ndate: 23/12/2021\n---\nbody",
            "bad-date.md:3: `date: 23/12/2021` is not a date",
        ),
        ("gbk.txt", b"---\ntitle: ok\ndate: 2021-01-01\n---\n\xc7\xe0\xb5\xba\n", "gbk.txt:5: file is not valid UTF-8"),
        ("empty.md", b"", "empty.md:1: file is empty"),
        ("huge.md", &[b'x'; 5000], "huge.md:1: file is 5000 bytes, over the limit"),
    ];
    for (name, bytes, _) in bad {
        site.write(name, bytes);
    }
    let out = site.build();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for (_, _, expected) in bad {
        assert!(stderr.contains(expected), "missing `{expected}` in:\n{stderr}");
    }
    assert!(stderr.contains("bad-yaml.md:4") || stderr.contains("bad-yaml.md:5"), "{stderr}");
    assert!(text(&out.stdout).contains("7 skipped"), "{}", text(&out.stdout));
    assert_eq!(site.parsed("feed.rss").entries.len(), 3, "every good post is still published");

    let check = site.crier("check");
    assert_eq!(check.status.code(), Some(1));
    let report = text(&check.stdout);
    assert_eq!(report.lines().count(), 7, "{report}");
    assert!(report.contains("bad-date.md:3:"), "{report}");
}

#[test]
fn check_passes_on_a_clean_site_and_writes_nothing() {
    let site = good_site();
    let out = site.crier("check");
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!site.path("feeds").exists());
    site.write("undated.md", b"---\ntitle: x\n---\nbody");
    let out = site.crier("check");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("undated.md:1: no `date`"), "{}", text(&out.stdout));
}

#[test]
fn configuration_errors_exit_2_naming_the_key() {
    let site = Site::new("posts = \"posts\"\ncolour = \"red\"\n");
    let out = site.build();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("colour"), "{}", text(&out.stderr));

    let site = Site::new("timezone = \"Mars/Base\"\n");
    let out = site.build();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("`timezone`"), "{}", text(&out.stderr));

    let out = Command::new(CRIER).args(["build", "--bogus"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--bogus"));

    let site = Site::new(CONFIG);
    fs::remove_dir(site.path("posts")).unwrap();
    let out = site.build();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("posts folder"), "{}", text(&out.stderr));
}

#[test]
fn flags_override_the_file_and_feeds_url_moves_self_links() {
    let site =
        Site::new(&format!("{CONFIG}\nfeeds_url = \"https://cdn.example.net/f/\"\nitems = 1\ncontent = \"summary\"\n"));
    for (name, text) in GOOD_POSTS {
        site.write(name, text.as_bytes());
    }
    let out = Command::new(CRIER)
        .current_dir(site.dir.path())
        .args([
            "build",
            "--config",
            "crier.toml",
            "--feeds",
            "elsewhere",
            "--base-url",
            "https://other.example.org/blog",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let rss = fs::read_to_string(site.path("elsewhere/feed.rss")).unwrap();
    assert!(rss.contains("<link>https://other.example.org/blog/caijing/2021/12/23/port-report.html</link>"), "{rss}");
    assert!(rss.contains("href=\"https://cdn.example.net/f/feed.rss\" rel=\"self\""), "{rss}");
    assert_eq!(rss.matches("<item>").count(), 1);
    assert!(!rss.contains("content:encoded>"), "summary mode carries no full content");
    let json: serde_json::Value = serde_json::from_slice(&fs::read(site.path("elsewhere/feed.json")).unwrap()).unwrap();
    assert!(json["items"][0]["content_html"].is_null());
    assert_eq!(json["items"][0]["content_text"], json["items"][0]["summary"]);
}

#[test]
fn version_and_help() {
    let out = Command::new(CRIER).arg("--version").output().unwrap();
    assert!(text(&out.stdout).starts_with("crier "));
    let out = Command::new(CRIER).arg("--help").output().unwrap();
    assert!(text(&out.stdout).contains("build") && text(&out.stdout).contains("check"));
}

#[test]
fn hostile_shapes_publish_with_a_warning_and_the_rest_still_publish() {
    let site = good_site();
    let front = "---\ntitle: 深\ndate: 2021-12-25 10:00:00 +0800\ncategories: caijing\n---\n";
    // Before the shape limits, each of these kept the build busy for minutes.
    site.write("news/divs.html", format!("{front}<p>上</p>\n{}底\n", "<div>".repeat(100_000)).as_bytes());
    site.write("news/quote.md", format!("{front}{} 引用\n", ">".repeat(100_000)).as_bytes());
    let attributes: Vec<String> = (0..50_000).map(|i| format!("a{i}=\"1\"")).collect();
    site.write("news/attrs.html", format!("{front}<p {}>属性</p>\n", attributes.join(" ")).as_bytes());
    let tags = vec!["t"; 5000].join(", ");
    site.write("news/terms.md", format!("---\ntitle: 标签\ndate: 2021-12-25\ntags: [{tags}]\n---\n正文\n").as_bytes());
    let out = site.build();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "the post with too many tags is an error: {stderr}");
    for expected in [
        "news/divs.html:7: HTML nested deeper than 128 elements",
        "news/quote.md:6: block quotes or lists nested deeper than 128 levels",
        "news/attrs.html:6: an HTML element has more than 64 attributes",
        "`tags` lists 5000 names, over the limit of 100",
    ] {
        assert!(stderr.contains(expected), "{expected}\n{stderr}");
    }
    let site_feed = String::from_utf8(site.feed("feed.atom")).unwrap();
    for text in ["底", "引用", "属性"] {
        assert!(site_feed.contains(text), "{text} is published");
    }
}

/// The tokenizer's parse errors in `html`, and the tags left open or closed out of order (void
/// elements aside).
fn html_problems(html: &str) -> Vec<String> {
    use html5ever::tendril::StrTendril;
    use html5ever::tokenizer::{BufferQueue, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer};
    use std::cell::RefCell;

    #[derive(Default)]
    struct Sink {
        problems: RefCell<Vec<String>>,
        open: RefCell<Vec<String>>,
    }
    impl TokenSink for Sink {
        type Handle = ();
        fn process_token(&self, token: Token, line: u64) -> TokenSinkResult<()> {
            const VOID: [&str; 4] = ["meta", "link", "br", "img"];
            match token {
                Token::ParseError(error) => self.problems.borrow_mut().push(format!("line {line}: {error}")),
                Token::TagToken(tag) if tag.kind == TagKind::StartTag && !VOID.contains(&&*tag.name) => {
                    self.open.borrow_mut().push(tag.name.to_string())
                }
                Token::TagToken(tag)
                    if tag.kind == TagKind::EndTag && self.open.borrow_mut().pop().as_deref() != Some(&*tag.name) =>
                {
                    self.problems.borrow_mut().push(format!("line {line}: </{}> out of order", tag.name));
                }
                _ => {}
            }
            TokenSinkResult::Continue
        }
    }
    let tokenizer = Tokenizer::new(Sink::default(), Default::default());
    let queue = BufferQueue::default();
    queue.push_back(StrTendril::from(html));
    let _ = tokenizer.feed(&queue);
    tokenizer.end();
    let mut problems = tokenizer.sink.problems.take();
    problems.extend(tokenizer.sink.open.take().into_iter().map(|tag| format!("<{tag}> never closed")));
    problems
}

#[test]
fn every_feed_has_a_page_for_people() {
    let site = good_site();
    assert!(site.build().status.success());
    let page = String::from_utf8(site.feed("categories/青岛-财经.html")).unwrap();
    assert_eq!(html_problems(&page), Vec::<String>::new(), "{page}");
    assert!(page.starts_with("<!DOCTYPE html>\n<html lang=\"zh-CN\">"));
    for (kind, ext) in
        [("application/rss+xml", "rss"), ("application/atom+xml", "atom"), ("application/feed+json", "json")]
    {
        let url = format!("https://news.example.com/feeds/categories/%E9%9D%92%E5%B2%9B-%E8%B4%A2%E7%BB%8F.{ext}");
        assert!(page.contains(&format!("<link rel=\"alternate\" type=\"{kind}\"")), "{kind}");
        assert!(page.contains(&format!("<code>{url}</code>")), "the {ext} address to copy");
    }
    assert!(page.contains("feed reader"), "says what to do with it");
    assert!(page.contains("<title>Fixture &amp; &lt;News&gt; · 青岛 财经</title>"), "escaped: {page}");
    assert!(page.contains("R&amp;D &lt;notes&gt; ]]&gt; on feeds"), "the item title, escaped");
    assert!(page.contains("href=\"https://news.example.com/"), "items link to their posts");
    assert!(page.contains("<time datetime=\"2021-12-20T08:00:00+08:00\">2021-12-20 08:00</time>"));
    assert!(page.contains("<a href=\"../index.html\">All feeds</a>"));
    let site_page = String::from_utf8(site.feed("feed.html")).unwrap();
    assert_eq!(html_problems(&site_page), Vec::<String>::new());
    assert!(site_page.contains("<a href=\"index.html\">All feeds</a>"));
    let index = String::from_utf8(site.feed("index.html")).unwrap();
    assert_eq!(html_problems(&index), Vec::<String>::new());
    assert!(
        index.contains("<a href=\"categories/%E9%9D%92%E5%B2%9B-%E8%B4%A2%E7%BB%8F.html\">"),
        "the index links each page"
    );
}

#[test]
fn feeds_stay_under_max_feed_bytes_dropping_their_oldest_items() {
    // Thirty posts of about 35 KB each: the whole set is far over the budget.
    let paragraph = "<p>港口物流园区启用智能调度平台，货车平均等候时间缩短近四成。</p>\n".repeat(350);
    let thirty_days = |config: String| {
        let site = Site::new(&config);
        for day in 1..=30 {
            let text =
                format!("---\ntitle: Day {day}\ndate: 2021-11-{day:02} 08:00\ncategories: big\n---\n{paragraph}");
            site.write(&format!("day-{day:02}.md"), text.as_bytes());
        }
        site
    };
    let site = thirty_days(format!("{CONFIG}max_feed_bytes = 200000\nitems = 0\n"));
    // One post alone over the budget still makes a feed of one item.
    let huge = "<p>巨大</p>\n".repeat(30_000);
    site.write(
        "huge.md",
        format!("---\ntitle: Huge\ndate: 2021-10-01 08:00\ncategories: huge\n---\n{huge}").as_bytes(),
    );
    assert!(site.build().status.success());
    for ext in ["rss", "atom", "json"] {
        let feed = site.feed(&format!("categories/big.{ext}"));
        assert!(feed.len() <= 200_000, "{ext}: {} bytes", feed.len());
        let parsed = site.parsed(&format!("categories/big.{ext}"));
        let titles: Vec<String> = parsed.entries.iter().map(|e| e.title.as_ref().unwrap().content.clone()).collect();
        assert!(titles.len() >= 2 && titles.len() < 30, "{ext}: {} items", titles.len());
        assert_eq!(titles[0], "Day 30", "{ext}: the newest are kept");
        // The same feed with the next older item too, built without the budget, is over it.
        let one_more = Site::new(&format!("{CONFIG}max_feed_bytes = 100000000\nitems = {}\n", titles.len() + 1));
        for day in 1..=30 {
            let text =
                format!("---\ntitle: Day {day}\ndate: 2021-11-{day:02} 08:00\ncategories: big\n---\n{paragraph}");
            one_more.write(&format!("day-{day:02}.md"), text.as_bytes());
        }
        assert!(one_more.build().status.success());
        let bigger = one_more.feed(&format!("categories/big.{ext}")).len();
        assert!(
            bigger > 200_000,
            "{ext}: {} items fit in {bigger} bytes, but only {} were kept",
            titles.len() + 1,
            titles.len()
        );
        let alone = site.parsed(&format!("categories/huge.{ext}"));
        assert_eq!(alone.entries.len(), 1, "{ext}: never fewer than one");
    }
    // items = 0 promises every post; a feed cut to its budget no longer says so.
    assert!(!String::from_utf8(site.feed("categories/big.atom")).unwrap().contains("fh:complete"));
    assert!(String::from_utf8(site.feed("categories/huge.atom")).unwrap().contains("<fh:complete"));
}

#[test]
fn a_feed_of_every_post_says_it_is_complete() {
    let history = "http://purl.org/syndication/history/1.0";
    let has_complete = |xml: &[u8]| {
        let text = String::from_utf8(xml.to_vec()).unwrap();
        let doc = roxmltree::Document::parse(&text).unwrap();
        doc.descendants()
            .filter(|n| n.tag_name().namespace() == Some(history) && n.tag_name().name() == "complete")
            .count()
    };
    let site = Site::new(&format!("{CONFIG}items = 0\n"));
    for (name, text) in GOOD_POSTS {
        site.write(name, text.as_bytes());
    }
    assert!(site.build().status.success());
    for rel in ["feed.rss", "feed.atom", "categories/engineering.rss", "tags/rust.atom"] {
        assert_eq!(has_complete(&site.feed(rel)), 1, "{rel}");
        assert!(!site.parsed(rel).entries.is_empty(), "{rel} still reads as a feed");
    }
    let limited = good_site();
    assert!(limited.build().status.success());
    assert_eq!(has_complete(&limited.feed("feed.rss")), 0, "a feed of the newest posts is not complete");
}
