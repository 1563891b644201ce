//! An interop test (`CRIER_INTEROP=1`): newsboat, a real terminal feed reader, fetches the feeds
//! `crier serve` publishes, over HTTP on 127.0.0.1, and stores every item with its title intact.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::{Daemon, interop, require_tool, text};

fn post(title: &str, date: &str, categories: &str) -> String {
    format!("---\ntitle: \"{title}\"\ndate: {date}\ncategories: {categories}\n---\n<p>{title} 正文。</p>\n")
}

/// Prints the cache's feeds and items, one per line: `feed<TAB>URL<TAB>TITLE`, `item<TAB>TITLE`.
const READ_CACHE: &str = r#"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
for url, title in db.execute("SELECT rssurl, title FROM rss_feed ORDER BY rssurl"):
    print(f"feed\t{url}\t{title}")
for (title,) in db.execute("SELECT title FROM rss_item ORDER BY pubDate DESC"):
    print(f"item\t{title}")
"#;

/// Runs newsboat on one feed URL with its own home, configuration and cache under `home`; returns
/// what it printed and the cache's contents.
fn newsboat(home: &Path, url: &str) -> (String, String) {
    fs::create_dir_all(home).unwrap();
    fs::write(home.join("urls"), format!("{url}\n")).unwrap();
    fs::write(home.join("config"), "").unwrap();
    let out = Command::new("newsboat")
        .current_dir(home)
        .args(["-x", "reload", "print-unread", "-u", "urls", "-c", "cache.db", "-C", "config"])
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("xdg-config"))
        .env("XDG_DATA_HOME", home.join("xdg-data"))
        .env("XDG_CACHE_HOME", home.join("xdg-cache"))
        // Straight to 127.0.0.1, whatever proxy the environment names.
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY")
        .env("no_proxy", "127.0.0.1")
        .output()
        .unwrap();
    assert!(out.status.success(), "newsboat on {url}: {}{}", text(&out.stdout), text(&out.stderr));
    let cache = Command::new("python3").args(["-c", READ_CACHE]).arg(home.join("cache.db")).output().unwrap();
    assert!(cache.status.success(), "{}", text(&cache.stderr));
    (text(&out.stdout), text(&cache.stdout))
}

#[test]
fn newsboat_fetches_the_served_rss_and_atom_feeds() {
    if !interop("newsboat fetches /feed.rss and /feed.atom from crier serve") {
        return;
    }
    require_tool("newsboat", &["--version"], "apt-get install newsboat");
    let dir = tempfile::tempdir().unwrap();
    let posts = dir.path().join("posts");
    fs::create_dir_all(&posts).unwrap();
    fs::write(posts.join("port.md"), post("港口新闻：夜班公交开通", "2021-12-23 16:34:36 +0800", "caijing")).unwrap();
    fs::write(posts.join("rust.md"), post("Rust & <feeds>", "2021-12-01 09:00", "engineering")).unwrap();
    let daemon = Daemon::start(dir.path(), "title = \"港城新闻\"");

    // One reader per format: newsboat keeps one item per id, and both formats carry the same ids.
    for path in ["/feed.rss", "/feed.atom"] {
        let url = format!("http://{}{path}", daemon.address);
        let home = dir.path().join(format!("newsboat{}", path.replace('/', "-")));
        let (printed, cache) = newsboat(&home, &url);
        assert!(printed.contains("2 unread articles"), "{path}: {printed}");
        assert!(cache.contains(&format!("feed\t{url}\t港城新闻\n")), "{path}: the feed's title\n{cache}");
        let items: Vec<&str> = cache.lines().filter_map(|l| l.strip_prefix("item\t")).collect();
        assert_eq!(items, ["港口新闻：夜班公交开通", "Rust & <feeds>"], "{path}: item titles\n{cache}");
    }
    assert_eq!(daemon.log_lines("ERROR"), 0, "{}", daemon.log.text());
}
