//! RFC 5005 archived feeds, over HTTP from `crier serve`: walking `prev-archive` (JSON Feed:
//! `next_url`) from each subscription document reaches every post of the feed exactly once, in
//! every format; a newer post leaves full pages' bytes alone, a backdated post changes only its
//! page, and pages are cut where they were after a restart.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use common::{Daemon, Response};

const FORMATS: [&str; 3] = ["rss", "atom", "json"];

fn write_post(posts: &Path, n: u32, category: &str, body: &str) {
    let text = format!(
        "---\ntitle: Post {n}\ndate: 2024-01-01T08:00:00+08:00\ncategories: [{category}]\ntags: [归档]\n---\n{body}\n"
    )
    .replace("2024-01-01", &format!("2024-{:02}-{:02}", 1 + n / 28, 1 + n % 28));
    fs::write(posts.join(format!("post-{n}.md")), text).unwrap();
}

/// The site: posts 10 to 20, even ones in 财经, odd ones in tech.
fn site(dir: &Path) {
    let posts = dir.join("posts");
    fs::create_dir_all(&posts).unwrap();
    for n in 10..=20 {
        write_post(&posts, n, if n % 2 == 0 { "财经" } else { "tech" }, "Body.");
    }
}

/// One document as a walk sees it: its items' titles and its RFC 5005 links.
struct Doc {
    titles: Vec<String>,
    prev: Option<String>,
    current: Option<String>,
    archive_marker: bool,
}

fn parse(format: &str, response: &Response) -> Doc {
    assert_eq!(response.status, 200);
    if format == "json" {
        let json: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        let titles = json["items"].as_array().unwrap().iter().map(|i| i["title"].as_str().unwrap().to_owned());
        let prev = json.get("next_url").map(|u| u.as_str().unwrap().to_owned());
        return Doc { titles: titles.collect(), prev, current: None, archive_marker: false };
    }
    // feed-rs reads the items; a strict XML parser reads the links it does not expose.
    let feed = feed_rs::parser::parse(&response.body[..]).unwrap();
    let titles = feed.entries.iter().map(|e| e.title.as_ref().unwrap().content.clone()).collect();
    let text = response.text();
    let xml = roxmltree::Document::parse(&text).unwrap();
    let link = |rel: &str| {
        xml.descendants()
            .find(|n| n.tag_name().name() == "link" && n.attribute("rel") == Some(rel))
            .map(|n| n.attribute("href").unwrap().to_owned())
    };
    let archive_marker = xml.descendants().any(|n| {
        n.tag_name().name() == "archive" && n.tag_name().namespace() == Some("http://purl.org/syndication/history/1.0")
    });
    Doc { titles, prev: link("prev-archive"), current: link("current"), archive_marker }
}

/// The request path of one of crier's absolute URLs.
fn path_of(url: &str) -> String {
    url.strip_prefix("https://news.example.com").unwrap().to_owned()
}

/// A walk from a subscription document through its archive pages.
struct Walk {
    current: Vec<String>,
    /// Each page's path and ETag, newest first.
    pages: Vec<(String, String)>,
    /// The titles on the archive pages, in walking order.
    archived: Vec<String>,
}

fn walk(daemon: &Daemon, feed: &str, format: &str) -> Walk {
    let path = format!("/feeds/{feed}.{format}");
    let subscription = parse(format, &daemon.get(&path, &[]));
    let mut walk = Walk { current: subscription.titles, pages: Vec::new(), archived: Vec::new() };
    let mut next = subscription.prev;
    while let Some(url) = next {
        let page_path = path_of(&url);
        assert!(walk.pages.iter().all(|(p, _)| *p != page_path), "{page_path} visited twice");
        let response = daemon.get(&page_path, &[]);
        // The newest page, still filling, is cached like the feed; sealed pages for a day.
        let max_age = if walk.pages.is_empty() { 3600 } else { 86_400 };
        assert_eq!(response.header("cache-control"), format!("public, max-age={max_age}"), "{page_path}");
        let page = parse(format, &response);
        if format != "json" {
            assert!(page.archive_marker, "{page_path} says fh:archive");
            assert_eq!(page.current.as_deref().map(path_of), Some(path.clone()), "{page_path}: current");
        }
        walk.pages.push((page_path, response.header("etag").to_owned()));
        walk.archived.extend(page.titles);
        next = page.prev;
    }
    walk
}

fn titles(numbers: impl IntoIterator<Item = u32>) -> Vec<String> {
    let mut titles: Vec<String> = numbers.into_iter().map(|n| format!("Post {n}")).collect();
    titles.sort();
    titles
}

/// Walks every format of `feed` and checks that its archive pages hold exactly `expected`;
/// returns each page's ETag by path.
fn check_complete(daemon: &Daemon, feed: &str, expected: &[String]) -> BTreeMap<String, String> {
    let mut etags = BTreeMap::new();
    for format in FORMATS {
        let walk = walk(daemon, feed, format);
        let mut archived = walk.archived.clone();
        archived.sort();
        assert_eq!(archived, expected, "{feed}.{format}: every post on exactly one archive page");
        assert!(walk.current.iter().all(|t| archived.contains(t)), "{feed}.{format}");
        assert!(walk.current.len() <= 3, "{feed}.{format}: items = 3");
        etags.extend(walk.pages);
    }
    etags
}

fn changed(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<String> {
    after.iter().filter(|(path, etag)| before.get(*path) != Some(etag)).map(|(path, _)| path.clone()).collect()
}

#[test]
fn archives_hold_every_post_once_and_stay_put() {
    let dir = tempfile::tempdir().unwrap();
    site(dir.path());
    let config = "items = 3\narchive_page_size = 4\nsettle_ms = 100";
    let mut daemon = Daemon::start(dir.path(), config);
    let site_etags = check_complete(&daemon, "feed", &titles(10..=20));
    assert_eq!(site_etags.len(), 3 * 3, "11 posts, 4 a page: 3 pages in each format");
    check_complete(&daemon, "categories/%E8%B4%A2%E7%BB%8F", &titles((10..=20).filter(|n| n % 2 == 0)));
    check_complete(&daemon, "categories/tech", &titles((10..=20).filter(|n| n % 2 == 1)));
    check_complete(&daemon, "tags/%E5%BD%92%E6%A1%A3", &titles(10..=20));
    let opml = daemon.get("/feeds/index.opml", &[]).text();
    assert_eq!(opml.matches("xmlUrl=").count(), 4, "the four feeds walked above are every feed: {opml}");
    assert!(!opml.contains("archive-"), "archive pages are not in the OPML");

    // A post newer than all others: full pages keep their bytes; the newest page fills and is
    // sealed, and an empty newest page follows. The feed is served first, linking page 3 as it
    // was; the pages, and the feed linking page 4, come in the next swap.
    write_post(&daemon.posts(), 30, "tech", "Body.");
    daemon.wait_for("the new post on its page, and the feed linking the page after", || {
        daemon.get("/feeds/feed.archive-3.json", &[]).text().contains("Post 30")
            && daemon.get("/feeds/feed.json", &[]).text().contains("archive-4")
    });
    let newer = check_complete(&daemon, "feed", &titles((10..=20).chain([30])));
    let moved = changed(&site_etags, &newer);
    assert_eq!(
        moved.iter().filter(|p| p.contains("archive-1.") || p.contains("archive-2.")).count(),
        0,
        "full pages never change: {moved:?}"
    );
    assert_eq!(newer.len(), 4 * 3);

    // A backdated post lands on the oldest page: only that page changes, in each format.
    write_post(&daemon.posts(), 1, "tech", "Body.");
    daemon.wait_for("the backdated post", || daemon.get("/feeds/feed.archive-1.json", &[]).text().contains("Post 1\""));
    let backdated = check_complete(&daemon, "feed", &titles([1].into_iter().chain(10..=20).chain([30])));
    let mut moved = changed(&newer, &backdated);
    moved.sort();
    assert_eq!(moved, ["/feeds/feed.archive-1.atom", "/feeds/feed.archive-1.json", "/feeds/feed.archive-1.rss"]);

    // After a restart the pages are cut where they were (by position alone, page 1 would lose
    // a post to page 2, and so on): every validator is the same. The kill comes once the folder
    // holds page 1 (its files are written just after it is served; a kill before would leave
    // the restart serving the older files until it has made the page again).
    let page = |format: &str| fs::read_to_string(dir.path().join(format!("feeds/feed.archive-1.{format}")));
    daemon.wait_for("page 1's files", || {
        ["rss", "atom", "json"].iter().all(|f| page(f).is_ok_and(|t| t.contains("Post 1<") || t.contains("Post 1\"")))
    });
    daemon.child.0.kill().unwrap();
    daemon.child.0.wait().unwrap();
    daemon = Daemon::start_with(dir.path(), &common::serve_config(dir.path(), config));
    // The kill came before the scan index's next save (at most one every 2 s), which still names
    // page 1's old bytes: served from its files before they are checked, page 1 answers 503
    // (never other bytes) until the check, just after the first answer, serves them as they are.
    daemon.wait_for("page 1 checked", || {
        FORMATS.iter().all(|f| {
            let status = daemon.get(&format!("/feeds/feed.archive-1.{f}"), &[]).status;
            assert!(status == 200 || status == 503, "{status}");
            status == 200
        })
    });
    let restarted = check_complete(&daemon, "feed", &titles([1].into_iter().chain(10..=20).chain([30])));
    assert_eq!(restarted, backdated, "validators survive a restart");

    // A deleted post leaves its page smaller; the other pages stay. Meanwhile the page being
    // rewritten, served from its file, answers every request with its old or its new bytes.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let (address, done) = (daemon.address.clone(), done.clone());
        std::thread::spawn(move || {
            let mut statuses = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                statuses.push(common::get(&address, "/feeds/feed.archive-1.rss").status);
            }
            statuses
        })
    };
    fs::remove_file(daemon.posts().join("post-12.md")).unwrap();
    let without = |path: &str| {
        let response = daemon.get(path, &[]);
        response.status == 200 && !response.text().contains("Post 12")
    };
    daemon.wait_for("the deletion", || without("/feeds/feed.json"));
    daemon.wait_for("the page without it", || without("/feeds/feed.archive-1.json"));
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let statuses = poller.join().unwrap();
    assert!(statuses.iter().all(|s| *s == 200), "{} requests: {statuses:?}", statuses.len());
    let deleted =
        check_complete(&daemon, "feed", &titles([1].into_iter().chain(10..=20).chain([30]).filter(|n| *n != 12)));
    let moved = changed(&backdated, &deleted);
    assert!(moved.iter().all(|p| p.contains("archive-1.")), "{moved:?}");

    // `crier build` cuts pages where the daemon did (it reads the bounds in state_dir).
    let served: Vec<Vec<u8>> = (1..=4).map(|n| daemon.get(&format!("/feeds/feed.archive-{n}.rss"), &[]).body).collect();
    drop(daemon);
    let built = dir.path().join("built");
    let status = std::process::Command::new(common::CRIER)
        .current_dir(dir.path())
        .args(["build", "--config", "crier.toml", "--feeds"])
        .arg(&built)
        .status()
        .unwrap();
    assert!(status.success());
    for (n, bytes) in (1..=4).zip(served) {
        assert_eq!(fs::read(built.join(format!("feed.archive-{n}.rss"))).unwrap(), bytes, "page {n}");
    }
}

#[test]
fn archive_pages_obey_the_size_budget_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let posts = dir.path().join("posts");
    fs::create_dir_all(&posts).unwrap();
    // About 1.5 KB of text each, in full content: a 4 KiB document holds one or two.
    let body = "An unusually long paragraph about nothing much at all. ".repeat(28);
    for n in 10..=17 {
        write_post(&posts, n, "long", &body);
    }
    let daemon = Daemon::start(
        dir.path(),
        "items = 5\narchive_page_size = 4\nmax_feed_bytes = 4096\narchive_content = \"full\"",
    );
    for format in FORMATS {
        let walk = walk(&daemon, "feed", format);
        let mut archived = walk.archived.clone();
        archived.sort();
        assert_eq!(archived, titles(10..=17), "feed.{format}: nothing lost");
        assert!(walk.pages.len() > 2, "feed.{format}: pages hold fewer posts to fit: {:?}", walk.pages);
        let sizes: Vec<usize> = walk.pages.iter().map(|(path, _)| daemon.get(path, &[]).body.len()).collect();
        assert!(sizes.iter().all(|size| *size <= 4096), "feed.{format}: {sizes:?}");
        assert!(daemon.get(&format!("/feeds/feed.{format}"), &[]).body.len() <= 4096);
    }
}

#[test]
fn a_reload_writes_missing_page_files_again() {
    let dir = tempfile::tempdir().unwrap();
    site(dir.path());
    let daemon = Daemon::start(dir.path(), "items = 3\narchive_page_size = 4\nsettle_ms = 100");
    assert_eq!(daemon.get("/feeds/feed.archive-1.rss", &[]).status, 200);
    // The files of a sealed page, served from them, go (an admin's cleanup): 503, until a reload
    // republishes everything and writes them again.
    let feeds = dir.path().join("feeds");
    for suffix in ["", ".gz", ".br"] {
        fs::remove_file(feeds.join(format!("feed.archive-1.rss{suffix}"))).unwrap();
    }
    assert_eq!(daemon.get("/feeds/feed.archive-1.rss", &[]).status, 503);
    daemon.signal("HUP");
    daemon.wait_for("the reload", || daemon.log_lines("reloaded the configuration") == 1);
    daemon.wait_for("the page again", || daemon.get("/feeds/feed.archive-1.rss", &[]).status == 200);
    daemon.wait_for("its files again", || feeds.join("feed.archive-1.rss.br").exists());
}
