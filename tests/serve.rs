//! `crier serve` as a black box: a real process, real files in a temporary folder, real TCP on
//! 127.0.0.1 with an OS-chosen port. Waits poll against deadlines; nothing sleeps to be safe.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::library::ClockedPublisher;
use common::{DEADLINE, Daemon, Response, interop, require_feedparser, serve_config};

fn post(title: &str, date: &str, categories: &str) -> String {
    format!("---\ntitle: \"{title}\"\ndate: {date}\ncategories: {categories}\ntags: 标签\n---\n<p>{title} 正文。</p>\n")
}

fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let posts = dir.path().join("posts");
    fs::create_dir_all(posts.join("news")).unwrap();
    fs::write(posts.join("news/port.md"), post("港口新闻", "2021-12-23 16:34:36 +0800", "caijing")).unwrap();
    fs::write(posts.join("2021-12-01-rust.md"), post("Rust & feeds", "2021-12-01 09:00", "engineering")).unwrap();
    dir
}

#[test]
fn serves_feeds_with_validators_and_encodings() {
    let dir = site();
    let daemon = Daemon::start(dir.path(), "cache_max_age = 120");
    let plain = daemon.get("/feed.rss", &[]);
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("content-type"), "application/rss+xml; charset=utf-8");
    assert_eq!(plain.header("cache-control"), "public, max-age=120");
    assert_eq!(plain.header("vary"), "Accept-Encoding");
    assert_eq!(plain.header("content-length"), plain.body.len().to_string());
    assert!(plain.header("date").ends_with("GMT"));
    assert!(plain.text().contains("港口新闻"));
    assert_eq!(plain.body, fs::read(dir.path().join("feeds/feed.rss")).unwrap(), "the same bytes as the folder");

    let gz = daemon.get("/feed.rss", &[("Accept-Encoding", "gzip")]);
    assert_eq!(gz.header("content-encoding"), "gzip");
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&gz.body[..]).read_to_end(&mut unzipped).unwrap();
    assert_eq!(unzipped, plain.body);
    let br = daemon.get("/feed.rss", &[("Accept-Encoding", "gzip;q=0.8, br")]);
    assert_eq!(br.header("content-encoding"), "br");
    let mut unbrotli = Vec::new();
    brotli::BrotliDecompress(&mut &br.body[..], &mut unbrotli).unwrap();
    assert_eq!(unbrotli, plain.body);
    assert_ne!(gz.header("etag"), plain.header("etag"));
    assert_ne!(gz.header("etag"), br.header("etag"));
    assert_eq!(
        daemon.get("/feed.rss", &[("Accept-Encoding", "identity;q=0, x-gzip")]).header("content-encoding"),
        "gzip"
    );

    // Conditional requests.
    let not_modified = daemon.get("/feed.rss", &[("If-None-Match", plain.header("etag"))]);
    assert_eq!(not_modified.status, 304);
    assert!(not_modified.body.is_empty());
    for name in ["etag", "last-modified", "cache-control", "vary", "date"] {
        assert!(!not_modified.header(name).is_empty(), "304 carries {name}");
    }
    let gz_304 = daemon.get(
        "/feed.rss",
        &[("Accept-Encoding", "gzip"), ("If-None-Match", &format!("\"zz\", W/{}", gz.header("etag")))],
    );
    assert_eq!(gz_304.status, 304);
    assert_eq!(daemon.get("/feed.rss", &[("If-None-Match", "*")]).status, 304);
    let last_modified = plain.header("last-modified").to_owned();
    assert_eq!(daemon.get("/feed.rss", &[("If-Modified-Since", &last_modified)]).status, 304);
    assert_eq!(daemon.get("/feed.rss", &[("If-Modified-Since", "Thu, 01 Jan 1970 00:00:00 GMT")]).status, 200);
    assert_eq!(daemon.get("/feed.rss", &[("If-Modified-Since", "Sunday, 06-Nov-94 08:49:37 GMT")]).status, 200);
    assert_eq!(daemon.get("/feed.rss", &[("If-Modified-Since", "not a date")]).status, 200);
    assert_eq!(
        daemon.get("/feed.rss", &[("If-None-Match", "\"nope\""), ("If-Modified-Since", &last_modified)]).status,
        200,
        "If-None-Match wins"
    );

    // HEAD, other methods, other paths.
    let head = daemon.request("HEAD", "/feed.rss", &[]);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), plain.body.len().to_string());
    assert_eq!(head.header("etag"), plain.header("etag"));
    let post = daemon.request("POST", "/feed.rss", &[("Content-Length", "0")]);
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), "GET, HEAD");
    assert_eq!(daemon.get("/nope.rss", &[]).status, 404);
    assert_eq!(daemon.get("/../crier.toml", &[]).status, 404);
    assert_eq!(daemon.get("/%2e%2e/crier.toml", &[]).status, 404);
    assert_eq!(daemon.get("/feed.rss.gz", &[]).status, 404, "encodings are served by negotiation only");

    // Every format, Chinese slugs, the OPML, the index page.
    assert_eq!(daemon.get("/feed.atom", &[]).header("content-type"), "application/atom+xml; charset=utf-8");
    assert_eq!(daemon.get("/feed.json", &[]).header("content-type"), "application/feed+json; charset=utf-8");
    assert_eq!(daemon.get("/index.opml", &[]).header("content-type"), "text/x-opml; charset=utf-8");
    assert_eq!(daemon.get("/tags/%E6%A0%87%E7%AD%BE.rss", &[]).status, 200);
    assert_eq!(daemon.get("/feeds/categories/caijing.atom", &[]).status, 200, "the public feeds path works too");
    let index = daemon.get("/", &[]);
    assert_eq!(index.status, 200);
    assert!(index.header("content-type").starts_with("text/html"));
    assert!(index.text().contains("<link rel=\"alternate\" type=\"application/rss+xml\""), "{}", index.text());
    assert!(index.text().contains("href=\"tags/%E6%A0%87%E7%AD%BE.rss\""), "{}", index.text());
    assert!(!daemon.get("/", &[]).header("etag").is_empty());
}

#[test]
fn follows_the_posts_folder() {
    let dir = site();
    let daemon = Daemon::start(dir.path(), "settle_ms = 300\ngone_after_seconds = 0");
    let posts = daemon.posts();
    let feed = |path: &str| daemon.get(path, &[]).text();

    // Create.
    fs::write(posts.join("new.md"), post("新文章", "2021-12-24 08:00:00 +0800", "caijing")).unwrap();
    daemon.wait_for("a new post", || feed("/feed.rss").contains("新文章"));
    // Modify.
    fs::write(posts.join("new.md"), post("改过的文章", "2021-12-24 08:00:00 +0800", "caijing")).unwrap();
    daemon.wait_for("an edit", || feed("/feed.rss").contains("改过的文章") && !feed("/feed.rss").contains("新文章"));
    // Atomic save: a temporary file renamed over the post.
    fs::write(posts.join(".new.md.tmp"), post("原子保存", "2021-12-24 08:00:00 +0800", "wenhua")).unwrap();
    fs::rename(posts.join(".new.md.tmp"), posts.join("new.md")).unwrap();
    daemon.wait_for("an atomic save", || feed("/categories/wenhua.rss").contains("原子保存"));
    daemon.wait_for("the old category to lose it", || !feed("/categories/caijing.rss").contains("改过的文章"));
    assert_eq!(feed("/feed.rss").matches("<item>").count(), 3, "no duplicate, no ghost");
    // Rename within the folder: same post, new file (and link).
    fs::create_dir_all(posts.join("moved")).unwrap();
    fs::rename(posts.join("new.md"), posts.join("moved/renamed.md")).unwrap();
    daemon.wait_for("a rename", || feed("/feed.rss").contains("/renamed.html"));
    assert_eq!(feed("/feed.rss").matches("<title>原子保存</title>").count(), 1, "no duplicate after a rename");
    // Rename out of the folder, and back in.
    let outside = dir.path().join("outside.md");
    fs::rename(posts.join("moved/renamed.md"), &outside).unwrap();
    daemon.wait_for("a move out", || !feed("/feed.rss").contains("原子保存"));
    daemon.wait_for("the empty category to be gone (410)", || daemon.get("/categories/wenhua.rss", &[]).status == 410);
    // The folder follows the served set (its files are removed just after).
    daemon.wait_for("removed from the folder too", || !dir.path().join("feeds/categories/wenhua.rss").exists());
    fs::rename(&outside, posts.join("back.md")).unwrap();
    daemon.wait_for("a move in", || feed("/feed.rss").contains("原子保存"));
    // A mode change only: nothing changes.
    let before = daemon.get("/categories/wenhua.rss", &[]);
    let mut permissions = fs::metadata(posts.join("back.md")).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o600);
    fs::set_permissions(posts.join("back.md"), permissions).unwrap();
    // A later, real change shows the mode change has been seen by then.
    fs::write(posts.join("marker.md"), post("标记", "2020-01-01", "misc")).unwrap();
    daemon.wait_for("the marker", || feed("/categories/misc.rss").contains("标记"));
    let after = daemon.get("/categories/wenhua.rss", &[]);
    assert_eq!(after.header("etag"), before.header("etag"));
    assert_eq!(after.header("last-modified"), before.header("last-modified"));
    // Delete.
    fs::remove_file(posts.join("back.md")).unwrap();
    daemon.wait_for("a delete", || !feed("/feed.rss").contains("原子保存"));
    // A folder deleted and re-created.
    fs::remove_dir_all(posts.join("news")).unwrap();
    daemon.wait_for("a removed folder", || !feed("/feed.rss").contains("港口新闻"));
    fs::create_dir_all(posts.join("news/deeper")).unwrap();
    fs::write(posts.join("news/deeper/port.md"), post("港口新闻回来了", "2021-12-23 16:34:36 +0800", "caijing"))
        .unwrap();
    daemon.wait_for("a re-created folder", || feed("/feed.rss").contains("港口新闻回来了"));
    // The posts folder itself removed and created again.
    fs::remove_dir_all(&posts).unwrap();
    daemon.wait_for("an empty site", || feed("/feed.rss").matches("<item>").count() == 0);
    fs::create_dir_all(&posts).unwrap();
    fs::write(posts.join("again.md"), post("重新开始", "2021-12-25", "caijing")).unwrap();
    daemon.wait_for("the folder back", || feed("/feed.rss").contains("重新开始"));
    assert_eq!(feed("/feed.rss").matches("<item>").count(), 1);
}

#[test]
fn a_bad_edit_keeps_the_last_good_version_until_fixed() {
    let dir = site();
    let daemon = Daemon::start(dir.path(), "");
    let path = daemon.posts().join("news/port.md");
    fs::write(&path, "---\ntitle: \"unclosed\ndate: 2021-12-23\n---\nbody\n").unwrap();
    daemon.wait_for("the error in the log", || daemon.log_lines("port.md:") > 0);
    let log = daemon.log.text();
    assert!(log.contains("its last good version stays published"), "{log}");
    assert!(daemon.get("/feed.rss", &[]).text().contains("港口新闻"));
    fs::write(&path, post("修好了", "2021-12-23 16:34:36 +0800", "caijing")).unwrap();
    daemon.wait_for("the fix", || daemon.get("/feed.rss", &[]).text().contains("修好了"));
    // A new file that is bad from the start is skipped; the rest is untouched.
    fs::write(daemon.posts().join("gbk.md"), b"---\ntitle: x\ndate: 2021-01-01\n---\n\xc7\xe0\n").unwrap();
    daemon.wait_for("the GBK error", || daemon.log_lines("gbk.md:5: file is not valid UTF-8") > 0);
    assert_eq!(daemon.get("/feed.rss", &[]).text().matches("<item>").count(), 2);
}

#[test]
fn a_bad_edit_after_a_restart_keeps_the_last_good_version() {
    let dir = site();
    let mut first = Daemon::start(dir.path(), "");
    assert_eq!(first.terminate().code(), Some(0));
    // From the scan index: the shown posts' bodies are not read before it serves.
    let daemon = Daemon::start(dir.path(), "");
    daemon.wait_for("the start from the index", || daemon.log_lines("serving the 18 documents published before") > 0);
    daemon.wait_for("the catch-up step", || daemon.log_lines("published:") > 0);
    fs::write(daemon.posts().join("news/port.md"), "---\ntitle: \"unclosed\ndate: 2021-12-23\n---\nbody\n").unwrap();
    daemon.wait_for("the error in the log", || daemon.log_lines("port.md:") > 0);
    let log = daemon.log.text();
    assert!(log.contains("its last good version stays published"), "{log}");
    let feed = daemon.get("/feed.rss", &[]).text();
    assert!(feed.contains("港口新闻") && feed.contains("港口新闻 正文。"), "{feed}");
}

#[test]
fn a_bad_post_is_logged_once_at_a_start_without_a_scan_index() {
    let dir = site();
    fs::write(dir.path().join("posts/bad.md"), "---\ntitle: \"unclosed\ndate: 2021-12-23\n---\nbody\n").unwrap();
    let daemon = Daemon::start(dir.path(), "");
    // The log is read on a thread of its own: wait for the lines rather than read it once.
    daemon.wait_for("the first step's summary", || {
        daemon.log_lines("published:") > 0 && daemon.log_lines("bad.md:2:") > 0
    });
    let log = daemon.log.text();
    assert!(log.contains("publishing every post in a child process"), "{log}");
    // Logged by crier's first step, not also by the child process that published first.
    assert_eq!(daemon.log_lines("bad.md:2:"), 1, "{log}");
    assert!(log.contains("the post is skipped"), "{log}");
    assert_eq!(daemon.get("/feed.rss", &[]).text().matches("<item>").count(), 2);
}

#[test]
fn a_burst_ends_in_a_few_regenerations() {
    let dir = site();
    let daemon = Daemon::start(dir.path(), "items = 0");
    let before = daemon.log_lines("updated:");
    let staging = dir.path().join("staging");
    fs::create_dir_all(&staging).unwrap();
    for i in 0..300 {
        fs::write(staging.join(format!("p{i:03}.md")), post(&format!("批量 {i}"), "2021-06-01", "bulk")).unwrap();
    }
    // Like rsync or git: many files renamed into place at once.
    for i in 0..300 {
        fs::rename(staging.join(format!("p{i:03}.md")), daemon.posts().join(format!("p{i:03}.md"))).unwrap();
    }
    daemon.wait_for("all 300", || daemon.get("/categories/bulk.rss", &[]).text().matches("<item>").count() == 300);
    let regenerations = daemon.log_lines("updated:") - before;
    assert!(regenerations <= 10, "{regenerations} regenerations for 300 files");
}

#[test]
fn validators_survive_a_restart_and_agree_between_instances() {
    let dir = site();
    let mut first = Daemon::start(dir.path(), "");
    let paths = ["/feed.rss", "/feed.atom", "/feed.json", "/categories/caijing.rss", "/index.opml", "/"];
    let before: Vec<(String, String)> = paths
        .iter()
        .map(|p| {
            let r = first.get(p, &[("Accept-Encoding", "gzip")]);
            (r.header("etag").to_owned(), r.header("last-modified").to_owned())
        })
        .collect();
    assert_eq!(first.terminate().code(), Some(0));
    // Let the clock pass a second boundary, so a Last-Modified taken from the clock would differ.
    std::thread::sleep(Duration::from_millis(1100));
    let second = Daemon::start(dir.path(), "");
    for (path, (etag, modified)) in paths.iter().zip(&before) {
        let r = second.get(path, &[("Accept-Encoding", "gzip")]);
        assert_eq!(r.header("etag"), etag, "{path}");
        assert_eq!(r.header("last-modified"), modified, "{path}");
    }
    // Another instance with its own feeds folder: same bytes, same ETags.
    let other = tempfile::tempdir().unwrap();
    copy_dir(&dir.path().join("posts"), &other.path().join("posts"));
    let third = Daemon::start(other.path(), "");
    for (path, (etag, _)) in paths.iter().zip(&before) {
        assert_eq!(third.get(path, &[("Accept-Encoding", "gzip")]).header("etag"), etag, "{path}");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

#[test]
fn scheduled_posts_appear_at_their_time() {
    let dir = site();
    let due = chrono::Utc::now() + chrono::Duration::seconds(2);
    fs::write(
        dir.path().join("posts/soon.md"),
        post("定时发布", &due.format("%Y-%m-%d %H:%M:%S +0000").to_string(), "later"),
    )
    .unwrap();
    let daemon = Daemon::start(dir.path(), "");
    assert!(!daemon.get("/feed.rss", &[]).text().contains("定时发布"));
    assert_eq!(daemon.get("/categories/later.rss", &[]).status, 404);
    daemon.wait_for("the scheduled post", || daemon.get("/categories/later.rss", &[]).text().contains("定时发布"));
    assert!(chrono::Utc::now() >= due - chrono::Duration::milliseconds(999), "not before its second");
}

#[test]
fn sigterm_lets_an_in_flight_request_finish() {
    let dir = site();
    let mut daemon = Daemon::start(dir.path(), "");
    let full = daemon.get("/feed.rss", &[]);
    let mut stream = TcpStream::connect(&daemon.address).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    // Half a request is on the wire, and the first byte has been answered by nothing yet…
    stream.write_all(b"GET /feed.rss HTTP/1.1\r\nHost: x\r\n").unwrap();
    // A precondition, not the claim: crier's connection task must have read those bytes, or the
    // connection is idle and a graceful shutdown rightly closes it (seen on a loaded machine).
    // Nothing outside crier shows that read, so it gets a generous moment.
    std::thread::sleep(Duration::from_millis(500));
    daemon.signal("TERM");
    // …when crier says it has the signal: so the response below cannot have begun before it.
    daemon.log.wait_for_line("SIGTERM: finishing in-flight responses");
    assert!(daemon.child.try_wait().unwrap().is_none(), "crier exited with a request in flight");
    stream.write_all(b"Connection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let response = Response::parse(&raw);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-length"), response.body.len().to_string(), "a complete body");
    assert_eq!(response.body, full.body, "the whole feed");
    assert_eq!(daemon.wait_exit().code(), Some(0));
    assert!(TcpStream::connect(&daemon.address).is_err(), "no longer accepting");
}

#[test]
fn limits_protect_the_server() {
    let dir = site();
    let daemon = Daemon::start(dir.path(), "header_timeout_ms = 300\nmax_requests_per_connection = 2");
    // A request head over the limit: 431.
    let big = "x".repeat(20_000);
    assert_eq!(daemon.get("/feed.rss", &[("X-Big", &big)]).status, 431);
    // A client that never finishes its head is cut off, and others are served meanwhile.
    let mut slow = TcpStream::connect(&daemon.address).unwrap();
    slow.write_all(b"GET /feed.rss HTTP/1.1\r\n").unwrap();
    assert_eq!(daemon.get("/feed.rss", &[]).status, 200);
    slow.set_read_timeout(Some(DEADLINE)).unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    assert!(started.elapsed() < Duration::from_secs(5), "the slow client was cut off");
    // The second request on a connection is told it is the last.
    let mut stream = TcpStream::connect(&daemon.address).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.write_all(b"HEAD /feed.rss HTTP/1.1\r\nHost: x\r\n\r\nHEAD /feed.rss HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    assert_eq!(text.matches("http/1.1 200").count(), 2, "{text}");
    assert!(text.contains("connection: close"), "{text}");
}

const FEEDPARSER_POLL: &str = r#"
import feedparser, sys
url = sys.argv[1]
first = feedparser.parse(url)
assert first.status == 200, first.status
assert not first.bozo, first.bozo_exception
second = feedparser.parse(url, etag=first.etag, modified=first.modified)
print(first.status, second.status, len(first.entries), first.entries[0].title)
"#;

#[test]
fn a_real_feed_reader_polls_and_gets_304() {
    if !interop("python feedparser polls /feed.rss and /feed.atom and gets 304") {
        return;
    }
    require_feedparser();
    let dir = site();
    let daemon = Daemon::start(dir.path(), "");
    for path in ["/feed.rss", "/feed.atom"] {
        let url = format!("http://{}{path}", daemon.address);
        let out = Command::new("python3").args(["-c", FEEDPARSER_POLL, &url]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.starts_with("200 304 2 港口新闻"), "{path}: {stdout}");
    }
}

#[test]
fn polling_mode_for_network_file_systems() {
    let dir = site();
    let daemon = Daemon::start(dir.path(), "poll = true\npoll_interval_ms = 100\nsettle_ms = 200");
    fs::write(daemon.posts().join("polled.md"), post("轮询", "2021-12-24", "caijing")).unwrap();
    daemon.wait_for("a polled change", || daemon.get("/feed.rss", &[]).text().contains("轮询"));
    fs::remove_file(daemon.posts().join("polled.md")).unwrap();
    daemon.wait_for("a polled delete", || !daemon.get("/feed.rss", &[]).text().contains("轮询"));
}

#[test]
fn polling_sees_a_save_made_in_the_same_second_as_the_one_before() {
    let dir = site();
    let daemon = Daemon::start(dir.path(), "poll = true\npoll_interval_ms = 100\nsettle_ms = 200");
    let path = daemon.posts().join("polled.md");
    let second = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let save = |title: &str, millis: u64| {
        fs::write(&path, post(title, "2021-12-24", "caijing")).unwrap();
        let file = fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(second + Duration::from_millis(millis)).unwrap();
    };
    save("第一版", 100);
    daemon.wait_for("the first save", || daemon.get("/feed.rss", &[]).text().contains("第一版"));
    // The same size, modified in the same second: only the times' fractions tell them apart.
    save("第二版", 600);
    daemon.wait_for("the second save", || daemon.get("/feed.rss", &[]).text().contains("第二版"));
}

#[test]
fn a_feeds_folder_that_cannot_be_written_does_not_stop_serving() {
    let dir = site();
    let daemon = Daemon::start(dir.path(), "");
    // Block the categories folder: a file where the folder should be (root ignores permissions).
    let categories = dir.path().join("feeds/categories");
    fs::remove_dir_all(&categories).unwrap();
    fs::write(&categories, "in the way").unwrap();
    fs::write(daemon.posts().join("blocked.md"), post("写不进去", "2021-12-24", "caijing")).unwrap();
    daemon.wait_for("the change served from memory", || {
        daemon.get("/categories/caijing.rss", &[]).text().contains("写不进去")
    });
    daemon.wait_for("the write error in the log", || daemon.log_lines("serving it from memory") > 0);
    fs::remove_file(&categories).unwrap();
    daemon.wait_for("the retry", || {
        fs::read_to_string(categories.join("caijing.rss")).is_ok_and(|text| text.contains("写不进去"))
    });
}

/// [`site`] with a post "半分钟后" in `category`, due half a minute after the returned start, and
/// crier's publisher on it at that start.
fn clocked_site(category: &str) -> (tempfile::TempDir, ClockedPublisher, chrono::DateTime<chrono::Utc>) {
    let dir = site();
    fs::write(dir.path().join("posts/sooner.md"), post("半分钟后", "2030-12-31 23:59:30 +0000", category)).unwrap();
    fs::write(dir.path().join("crier.toml"), serve_config(dir.path(), "")).unwrap();
    let start = chrono::DateTime::parse_from_rfc3339("2030-12-31T23:59:00Z").unwrap().to_utc();
    let publisher = ClockedPublisher::start(&dir.path().join("crier.toml"), start);
    (dir, publisher, start)
}

#[test]
fn a_feed_written_on_a_retry_is_read_from_its_file() {
    let (dir, publisher, start) = clocked_site("caijing");
    let categories = dir.path().join("feeds/categories");
    fs::remove_dir_all(&categories).unwrap();
    fs::write(&categories, "in the way").unwrap();
    publisher.set_clock(start + chrono::Duration::seconds(59));
    let rel = "categories/caijing.rss";
    let shows = || publisher.served(rel).is_some_and(|s| common::text(&s.identity).contains("半分钟后"));
    common::wait_for("served from memory", || shows() && publisher.in_memory(rel) == Some([true, true, true]));
    fs::remove_file(&categories).unwrap();
    // Written by the retry (every 5 s), then read from its file as any other.
    common::wait_for("the retry", || publisher.in_memory(rel) == Some([false, true, true]));
    assert_eq!(publisher.body(rel).unwrap(), fs::read(categories.join("caijing.rss")).unwrap());
    publisher.stop();
}

#[test]
fn scheduled_posts_follow_the_clock() {
    let dir = site();
    fs::write(dir.path().join("posts/2031.md"), post("十年后", "2031-01-01 00:00:00 +0000", "future")).unwrap();
    // Due half a minute earlier: its appearance shows the publisher has read the clock.
    fs::write(dir.path().join("posts/sooner.md"), post("半分钟前", "2030-12-31 23:59:30 +0000", "sooner")).unwrap();
    fs::write(dir.path().join("crier.toml"), serve_config(dir.path(), "")).unwrap();
    let start = chrono::DateTime::parse_from_rfc3339("2030-12-31T23:59:00Z").unwrap().to_utc();
    let publisher = ClockedPublisher::start(&dir.path().join("crier.toml"), start);
    let has = |rel: &str| publisher.body(rel).is_some();
    assert!(!has("categories/future.rss") && !has("categories/sooner.rss"), "{:?}", publisher.documents());

    // One second before: once the publisher has acted on this time (the earlier post is out),
    // the later one is still unpublished, and the clock does not move until the test moves it.
    publisher.set_clock(start + chrono::Duration::seconds(59));
    common::wait_for("the publisher to act on 23:59:59", || has("categories/sooner.rss"));
    assert!(!has("categories/future.rss"), "not a second early: {:?}", publisher.documents());
    assert!(!String::from_utf8_lossy(&publisher.body("feed.rss").unwrap()).contains("十年后"));

    publisher.set_clock(start + chrono::Duration::seconds(60));
    common::wait_for("the post at its time", || has("categories/future.rss"));
    let site = publisher.body("feed.rss").unwrap();
    assert!(String::from_utf8_lossy(&site).contains("十年后"));
    publisher.stop();
}

/// A change serves the feeds it touches before compressing them; their encodings follow in the
/// step that finishes the change, with the validators the change gave them, and the files are
/// written with that Last-Modified.
#[test]
fn a_change_is_served_before_its_encodings_which_keep_its_validators() {
    let (dir, publisher, start) = clocked_site("sooner");
    let before = publisher.swaps().len();
    publisher.set_clock(start + chrono::Duration::seconds(59));
    let done = |s: &common::library::Served| s.gzip.is_some() && common::text(&s.identity).contains("半分钟后");
    common::wait_for("the feed with its encodings", || publisher.served("feed.rss").is_some_and(|s| done(&s)));
    let after = publisher.served("feed.rss").unwrap();

    let swaps = publisher.swaps()[before..].to_vec();
    let ours = |s: &&common::library::Served| s.rel == "feed.rss" && common::text(&s.identity).contains("半分钟后");
    let changes: Vec<_> = swaps.iter().flatten().filter(ours).collect();
    assert_eq!(changes.len(), 1, "the encodings are not a change of their own: {swaps:?}");
    let first = changes[0];
    assert!(first.gzip.is_none() && first.brotli.is_none(), "served first as it is");
    assert_eq!(
        (&first.identity, &first.etag, &first.last_modified),
        (&after.identity, &after.etag, &after.last_modified)
    );
    let mut gunzipped = Vec::new();
    flate2::read::GzDecoder::new(&after.gzip.clone().unwrap()[..]).read_to_end(&mut gunzipped).unwrap();
    let mut unbrotli = Vec::new();
    brotli::BrotliDecompress(&mut &after.brotli.clone().unwrap()[..], &mut unbrotli).unwrap();
    assert_eq!((&gunzipped, &unbrotli), (&after.identity, &after.identity));

    let feeds = dir.path().join("feeds");
    let files = || ["", ".gz", ".br"].map(|ext| fs::read(feeds.join(format!("feed.rss{ext}"))).unwrap_or_default());
    common::wait_for("the files", || files()[0] == after.identity);
    assert_eq!(files(), [after.identity.clone(), after.gzip.unwrap(), after.brotli.unwrap()]);
    // Stamped with the change's own time, in whole seconds (a time taken when the encodings were
    // made would almost never fall on a whole second).
    let stamped = fs::metadata(feeds.join("feed.rss")).unwrap().modified().unwrap();
    assert_eq!(httpdate::fmt_http_date(stamped), after.last_modified);
    assert_eq!(stamped.duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos(), 0);
    publisher.stop();
}

#[test]
fn a_feed_is_held_in_memory_compressed_and_read_from_its_file_as_it_is() {
    let (dir, publisher, start) = clocked_site("sooner");
    let file = || fs::read(dir.path().join("feeds/feed.rss")).unwrap();
    let held = |publisher: &ClockedPublisher| publisher.in_memory("feed.rss") == Some([false, true, true]);
    // The first publish, and a change once its files are written: the encodings in memory, the
    // document itself read from its file (the page cache's copy), which holds the served bytes.
    for (what, title) in [("the first publish", "港口新闻"), ("a change", "半分钟后")] {
        let shows = || publisher.served("feed.rss").is_some_and(|s| common::text(&s.identity).contains(title));
        common::wait_for(what, || shows() && held(&publisher));
        assert_eq!(publisher.body("feed.rss").unwrap(), file(), "{what}");
        publisher.set_clock(start + chrono::Duration::seconds(59));
    }
    let served = publisher.served("feed.rss").unwrap();
    publisher.stop();
    // A restart: the same, once its first step is done.
    let publisher = ClockedPublisher::start(&dir.path().join("crier.toml"), start + chrono::Duration::seconds(59));
    common::wait_for("the encodings read into memory", || held(&publisher));
    assert_eq!(publisher.served("feed.rss").unwrap(), served);
    // Its file removed by hand: the same bytes, made from the gzip encoding.
    fs::remove_file(dir.path().join("feeds/feed.rss")).unwrap();
    assert_eq!(publisher.served("feed.rss").unwrap(), served);
    publisher.stop();
}

#[test]
fn a_change_saved_before_the_last_ones_encodings_is_served_first() {
    use common::library::{Served, served};
    let dir = site();
    // No settle window: the second post's first event makes it ready.
    fs::write(dir.path().join("crier.toml"), serve_config(dir.path(), "settle_ms = 0")).unwrap();
    let posts = dir.path().join("posts");
    let second = posts.join("second.md");
    let start = chrono::DateTime::parse_from_rfc3339("2030-12-31T23:59:00Z").unwrap().to_utc();
    let has = |s: &Served, title: &str| common::text(&s.identity).contains(title);
    // feed.rss as each swap left it.
    let seen = Arc::new(Mutex::new(Vec::<Served>::new()));
    let record = seen.clone();
    let publisher = ClockedPublisher::start_hooked(&dir.path().join("crier.toml"), start, move |set| {
        let Some(feed) = served(set, "feed.rss") else { return };
        let mut record = record.lock().unwrap();
        // The second post is saved once the first is served, before the publisher goes on to
        // its encodings; the pause lets the watcher's event reach the publisher.
        if has(&feed, "第一篇") && !record.iter().any(|s| has(s, "第一篇")) {
            fs::write(&second, post("第二篇", "2021-12-25 08:00:00 +0800", "second")).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        record.push(feed);
    });
    // Once a probe is served with its encodings, the publisher has caught up and watches.
    fs::write(posts.join("probe.md"), post("探针", "2021-12-23 20:00:00 +0800", "probe")).unwrap();
    let probed = |s: &Served| s.gzip.is_some() && has(s, "探针");
    common::wait_for("the probe", || seen.lock().unwrap().iter().any(probed));
    fs::write(posts.join("first.md"), post("第一篇", "2021-12-24 08:00:00 +0800", "first")).unwrap();
    let done = |s: &Served| s.gzip.is_some() && has(s, "第二篇");
    common::wait_for("both changes with their encodings", || seen.lock().unwrap().iter().any(done));
    let seen = seen.lock().unwrap().clone();
    let first_encoded = seen.iter().find(|s| s.gzip.is_some() && has(s, "第一篇")).unwrap();
    assert!(
        has(first_encoded, "第二篇"),
        "the second change is served before the first one's encodings are made: {seen:?}"
    );
    publisher.stop();
}

#[test]
fn relative_paths_in_the_config_are_watched() {
    let dir = site();
    let daemon = Daemon::start_with(dir.path(), "posts = \"posts\"\nfeeds = \"feeds\"\nlisten = \"127.0.0.1:0\"\n");
    fs::write(daemon.posts().join("news/port.md"), post("相对路径", "2021-12-23 16:34:36 +0800", "caijing")).unwrap();
    daemon.wait_for("an edit under a relative posts path", || daemon.get("/feed.rss", &[]).text().contains("相对路径"));
}

#[test]
fn a_posts_folder_swapped_by_rename_is_followed() {
    let dir = site();
    let daemon = Daemon::start(dir.path(), "");
    let fresh = dir.path().join("posts.new");
    fs::create_dir_all(&fresh).unwrap();
    fs::write(fresh.join("deployed.md"), post("新版本", "2021-12-26", "caijing")).unwrap();
    // A deploy: the new folder renamed over the old one in two quick steps.
    fs::rename(daemon.posts(), dir.path().join("posts.old")).unwrap();
    fs::rename(&fresh, daemon.posts()).unwrap();
    daemon.wait_for("the new folder", || {
        let text = daemon.get("/feed.rss", &[]).text();
        text.contains("新版本") && !text.contains("港口新闻")
    });
    // And it is watched: an edit in the new folder is seen.
    fs::write(daemon.posts().join("deployed.md"), post("新版本二", "2021-12-26", "caijing")).unwrap();
    daemon.wait_for("an edit in the new folder", || daemon.get("/feed.rss", &[]).text().contains("新版本二"));
}

/// The most a TCP receive buffer holds before its owner first reads (`tcp_rmem`'s default; the
/// kernel grows it only as the application reads), doubled for bookkeeping slack.
fn unread_receive_bound() -> usize {
    let rmem = fs::read_to_string("/proc/sys/net/ipv4/tcp_rmem").unwrap_or_default();
    let default = rmem.split_whitespace().nth(1).and_then(|v| v.parse::<usize>().ok()).unwrap_or(128 * 1024);
    2 * default
}

#[test]
fn a_client_that_does_not_read_is_cut_off() {
    let dir = site();
    let daemon = Daemon::start(dir.path(), "write_timeout_ms = 300\nmax_requests_per_connection = 1000000");
    let one = daemon.get("/feed.rss", &[]).body.len();
    // Were the write timeout not working, the server would wait for this client and every
    // response would eventually arrive: ask for far more than the receive buffer can hold.
    let bound = unread_receive_bound();
    let requests = (4 * bound / one).max(20_000);
    let mut stream = TcpStream::connect(&daemon.address).unwrap();
    // Thousands of pipelined requests, and not a byte read: the server's writes soon block.
    let request = b"GET /feed.rss HTTP/1.1\r\nHost: x\r\n\r\n".repeat(requests);
    let writer = {
        let mut stream = stream.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = stream.write_all(&request);
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    // By now the connection has been closed; draining it ends (EOF or reset) instead of blocking.
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let started = Instant::now();
    let mut received = 0usize;
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => received += n,
        }
    }
    assert!(started.elapsed() < Duration::from_secs(5), "the connection was closed");
    // Only what sat in this client's receive buffer when the server gave up: no more than
    // `bound`, a small fraction of the `requests * one` bytes a server that waits would send.
    assert!(
        received <= bound,
        "{received} bytes arrived (one feed body is {one}); a client that reads nothing holds at most {bound}"
    );
    let _ = writer.join();
    assert_eq!(daemon.get("/healthz", &[]).status, 200, "others are still served");
}

/// Opens a connection that sends part of a request head and then nothing (slowloris).
fn slow_head(address: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.write_all(b"GET /feed.rss HTTP/1.1\r\nHost: x\r\n").unwrap();
    stream
}

/// Whether the server has closed `stream` (it reads the end within a moment).
fn closed(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut rest = Vec::new();
    // A reset counts: closing a connection with unread bytes sends one.
    match stream.read_to_end(&mut rest) {
        Ok(_) => true,
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    }
}

/// Opens a connection from another loopback address (127.0.0.2).
fn connect_from_other_address(address: &str) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap();
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        socket.connect(address.parse().unwrap()).await.unwrap().into_std().unwrap()
    });
    stream.set_nonblocking(false).unwrap();
    stream
}

#[test]
fn slow_clients_cannot_lock_others_out() {
    let dir = site();
    // Without eviction each slot would be held until the header timeout, a minute.
    let daemon = Daemon::start(dir.path(), "max_connections = 4\nheader_timeout_ms = 60000");
    // The oldest slow head of all, from another address than the flood's…
    let mut other = connect_from_other_address(&daemon.address);
    other.write_all(b"GET /feed.rss HTTP/1.1\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let mut flood: Vec<TcpStream> = (0..20).map(|_| slow_head(&daemon.address)).collect();
    for _ in 0..10 {
        flood.push(slow_head(&daemon.address));
        // `request` gives up after DEADLINE (10 s), far below the header timeout.
        assert_eq!(daemon.get("/feed.rss", &[]).status, 200);
    }
    let evicted = flood.iter_mut().map(|s| closed(s, Duration::from_millis(50))).filter(|&c| c).count();
    assert!(evicted >= 26, "only {evicted} of the 30 slow connections were evicted to make room");
    // …survives it: the flood's address held the most slots, so it lost them.
    assert!(!closed(&mut other, Duration::from_millis(300)), "the other address's connection was evicted");
}

#[test]
fn the_longest_idle_connection_makes_room() {
    let dir = site();
    let daemon = Daemon::start(dir.path(), "max_connections = 2\nheader_timeout_ms = 60000");
    // A keep-alive connection that got its answer and is now idle…
    let mut idle = TcpStream::connect(&daemon.address).unwrap();
    idle.set_read_timeout(Some(DEADLINE)).unwrap();
    idle.write_all(b"HEAD /feed.rss HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut head = [0u8; 4096];
    let n = idle.read(&mut head).unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 200"));
    std::thread::sleep(Duration::from_millis(50));
    // …and a younger incomplete head take both slots; a third client evicts the idle one.
    let mut slow = slow_head(&daemon.address);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(daemon.get("/feed.rss", &[]).status, 200);
    assert!(closed(&mut idle, DEADLINE), "the idle connection was not the one evicted");
    assert!(!closed(&mut slow, Duration::from_millis(300)), "the younger incomplete head was evicted");
}

#[test]
fn a_feed_that_goes_answers_410_across_restarts_then_404() {
    let dir = site();
    let mut daemon = Daemon::start(dir.path(), "gone_after_seconds = 0");
    assert_eq!(daemon.get("/categories/engineering.rss", &[]).status, 200);
    fs::remove_file(dir.path().join("posts/2021-12-01-rust.md")).unwrap();
    daemon.wait_for("the category gone", || daemon.get("/categories/engineering.rss", &[]).status == 410);
    let gone = daemon.get("/feeds/categories/engineering.atom", &[]);
    assert_eq!(gone.status, 410, "every format, under the feeds path too");
    assert_eq!(daemon.get("/categories/never-was.rss", &[]).status, 404);
    daemon.terminate();

    let mut daemon = Daemon::start(dir.path(), "gone_after_seconds = 0");
    assert_eq!(daemon.get("/categories/engineering.json", &[]).status, 410, "remembered across a restart");
    // Back when a post is in it again.
    fs::write(dir.path().join("posts/back.md"), post("Back", "2021-12-02 09:00", "engineering")).unwrap();
    daemon.wait_for("the category back", || daemon.get("/categories/engineering.rss", &[]).status == 200);
    fs::remove_file(dir.path().join("posts/back.md")).unwrap();
    daemon.wait_for("gone again", || daemon.get("/categories/engineering.rss", &[]).status == 410);
    daemon.terminate();

    // A feed whose files outlived it while crier was down is gone too.
    fs::remove_file(dir.path().join("posts/news/port.md")).unwrap();
    // (A start from the scan index first serves what was published last, then catches up.)
    let daemon = Daemon::start(dir.path(), "gone_after_seconds = 0");
    daemon.wait_for("gone while crier was down", || daemon.get("/categories/caijing.atom", &[]).status == 410);
    drop(daemon);

    // With gone_days = 0 the memory ends at once: 404.
    let daemon = Daemon::start(dir.path(), "gone_days = 0");
    assert_eq!(daemon.get("/categories/engineering.rss", &[]).status, 404);
}

#[test]
fn a_feed_whose_files_outlived_it_is_gone_after_a_start_without_a_scan_index() {
    let dir = site();
    let daemon = Daemon::start(dir.path(), "gone_after_seconds = 0");
    assert_eq!(daemon.get("/categories/caijing.atom", &[]).status, 200);
    drop(daemon);
    // While crier is down, the category's one post goes and the configuration changes: the scan
    // index is not this configuration's, so a child process makes the first publish.
    fs::remove_file(dir.path().join("posts/news/port.md")).unwrap();
    let daemon = Daemon::start(dir.path(), "gone_after_seconds = 0\ntitle = \"Renamed\"");
    daemon.log.wait_for_line("starting from its scan index");
    assert!(!daemon.log.text().contains("in this process"), "{}", daemon.log.text());
    assert_eq!(daemon.get("/categories/caijing.atom", &[]).status, 410, "ready means the files were looked at");
    // The writer removes its files just after, as it writes files just after a change is served.
    let file = dir.path().join("feeds/categories/caijing.atom");
    daemon.wait_for("its files removed", || !file.exists());
    assert_eq!(daemon.get("/categories/engineering.atom", &[]).status, 200);
}

#[test]
fn a_reload_publishes_in_a_child_process_into_a_folder_it_then_swaps_in() {
    let dir = site();
    // A post that takes each publish a second (its time budget), so the reload can be watched.
    fs::write(dir.path().join("posts/slow.md"), common::slow_post()).unwrap();
    let extra = "gone_after_seconds = 0\npost_time_budget_ms = 1000";
    let daemon = Daemon::start(dir.path(), extra);
    let before = daemon.get("/feed.rss", &[]);
    assert!(before.text().contains("港口新闻"));
    assert_eq!(daemon.get("/categories/engineering.rss", &[]).status, 200);
    let feeds = dir.path().join("feeds");
    fs::write(feeds.join("robots.txt"), "the admin's own file").unwrap();

    fs::write(dir.path().join("crier.toml"), serve_config(dir.path(), &format!("{extra}\ntitle = \"Renamed\"")))
        .unwrap();
    daemon.signal("HUP");
    daemon.log.wait_for_line("with the new configuration in a child process");
    // Meanwhile the old configuration's feeds are served, from the old folder, as they were.
    let during = daemon.get("/feed.rss", &[]);
    assert_eq!((during.status, during.header("etag")), (200, before.header("etag")));
    assert!(dir.path().join(".feeds.crier-next").is_dir(), "the child writes beside the feeds folder");
    // Posts saved meanwhile are not lost: one goes (and its category with it), one comes.
    fs::remove_file(dir.path().join("posts/2021-12-01-rust.md")).unwrap();
    fs::write(dir.path().join("posts/new.md"), post("新来的", "2021-12-24 09:00 +0800", "caijing")).unwrap();
    daemon.wait_for("the reload", || daemon.log.count("reloaded the configuration") == 1);

    let after = daemon.get("/feed.rss", &[]);
    assert!(after.text().contains("<title>Renamed</title>"), "{}", after.text());
    daemon.wait_for("the post saved meanwhile", || daemon.get("/feed.rss", &[]).text().contains("新来的"));
    daemon.wait_for("the category gone", || daemon.get("/categories/engineering.rss", &[]).status == 410);
    assert!(!daemon.get("/feed.rss", &[]).text().contains("Rust &amp; feeds"));
    let log = daemon.log.text();
    assert!(log.contains("swapped in the feeds the child process published"), "{log}");
    assert!(!log.contains("in this process"), "{log}");
    // The folder is the child's, with what the admin put there; the old one is removed.
    daemon.wait_for("the files", || fs::read(feeds.join("feed.rss")).unwrap() == daemon.get("/feed.rss", &[]).body);
    assert_eq!(fs::read_to_string(feeds.join("robots.txt")).unwrap(), "the admin's own file");
    daemon.wait_for("the old folder removed", || !dir.path().join(".feeds.crier-next").exists());
}

#[test]
fn a_stop_during_a_reload_keeps_the_old_feeds_which_the_next_start_serves_from_its_index() {
    let dir = site();
    // A post that the running configuration gives up on within a second, and the new one would
    // spend minutes on: the reload's child is still publishing when crier is stopped.
    fs::write(dir.path().join("posts/slow.md"), common::slow_post()).unwrap();
    let config = serve_config(dir.path(), "post_time_budget_ms = 1000");
    let mut daemon = Daemon::start_with(dir.path(), &config);
    let before = daemon.get("/feed.rss", &[]);
    assert_eq!(before.status, 200);
    fs::write(dir.path().join("crier.toml"), serve_config(dir.path(), "post_time_budget_ms = 600000")).unwrap();
    daemon.signal("HUP");
    daemon.log.wait_for_line("with the new configuration in a child process");
    let staging = dir.path().join(".feeds.crier-next");
    daemon.wait_for("the child's folder", || staging.join("feed.rss").exists());
    assert_eq!(daemon.terminate().code(), Some(0));
    assert_eq!(fs::read(dir.path().join("feeds/feed.rss")).unwrap(), before.body, "the old feeds stay");

    // Back to the running configuration: the start serves what it published, from its index
    // (only the bad post is read again, as at any start). Whether the child had touched the
    // index by the stop is timing; the unit test
    // `a_stop_while_a_reloads_child_publishes_saves_the_running_index_whole` covers a stop after.
    fs::write(dir.path().join("crier.toml"), &config).unwrap();
    let daemon = Daemon::spawn(dir.path(), |_| {});
    daemon.wait_healthy();
    assert_eq!(daemon.get("/feed.rss", &[]).header("etag"), before.header("etag"));
    let step = daemon.log.wait_for_line("published: ");
    assert!(step.contains(" 1 posts read,"), "{step}");
    assert!(!daemon.log.text().contains("child process"), "{}", daemon.log.text());
    daemon.wait_for("what the reload left removed", || !staging.exists());
}

#[test]
fn a_reload_that_changes_no_bytes_keeps_every_validator_and_never_fails_a_request() {
    let dir = site();
    let daemon = Daemon::start(dir.path(), "settle_ms = 100");
    let documents = ["/feed.rss", "/feed.atom", "/categories/caijing.json", "/tags/%E6%A0%87%E7%AD%BE.rss"];
    let validators = |daemon: &Daemon| -> Vec<(u16, String, String)> {
        let answers = documents.iter().map(|path| daemon.get(path, &[]));
        answers.map(|r| (r.status, r.header("etag").to_owned(), r.header("last-modified").to_owned())).collect()
    };
    let before = validators(&daemon);
    assert!(before.iter().all(|(status, _, _)| *status == 200), "{before:?}");
    // A setting that is part of the scan index's key but of no document: a publish apart.
    fs::write(dir.path().join("crier.toml"), serve_config(dir.path(), "settle_ms = 150")).unwrap();
    daemon.signal("HUP");
    let mut during = 0;
    while daemon.log.count("reloaded the configuration") == 0 {
        assert_eq!(validators(&daemon), before, "while reloading");
        during += 1;
    }
    assert!(during > 0);
    assert!(daemon.log.text().contains("swapped in the feeds the child process published"), "{}", daemon.log.text());
    assert_eq!(validators(&daemon), before, "after the reload");

    // A setting that changes every document: the child made them all, none is made here.
    fs::write(dir.path().join("crier.toml"), serve_config(dir.path(), "settle_ms = 150\ntitle = \"Renamed\"")).unwrap();
    daemon.signal("HUP");
    daemon.wait_for("the second reload", || daemon.log.count("reloaded the configuration") == 2);
    assert!(daemon.get("/feed.atom", &[]).text().contains("Renamed"));
    let step = daemon.log.text().lines().rfind(|l| l.contains("reloaded: ")).unwrap().to_owned();
    assert!(step.contains(" 0 posts read, 0 documents regenerated, 0 removed"), "{step}");
}

#[test]
fn a_feed_is_not_gone_until_it_stays_away_nor_when_the_posts_folder_vanishes() {
    let dir = site();
    let daemon = Daemon::start(dir.path(), "gone_after_seconds = 2");
    fs::remove_file(dir.path().join("posts/2021-12-01-rust.md")).unwrap();
    daemon.wait_for("the category removed", || daemon.get("/categories/engineering.rss", &[]).status != 200);
    assert_eq!(daemon.get("/categories/engineering.rss", &[]).status, 404, "not gone yet: it may come back");
    daemon.wait_for("gone after staying away", || daemon.get("/categories/engineering.rss", &[]).status == 410);
    // The whole posts folder moved away for a moment (a deploy): nothing is announced gone.
    let posts = dir.path().join("posts");
    fs::rename(&posts, dir.path().join("posts-away")).unwrap();
    daemon.wait_for("the feeds emptied", || daemon.get("/categories/caijing.rss", &[]).status != 200);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(daemon.get("/categories/caijing.rss", &[]).status, 404, "a vanished folder makes nothing gone");
    fs::rename(dir.path().join("posts-away"), &posts).unwrap();
    daemon.wait_for("back", || daemon.get("/categories/caijing.rss", &[]).status == 200);
}

#[test]
fn redirects_and_generator_aliases_answer_301() {
    let dir = site();
    // Names that WordPress and Hugo slugify by dropping what crier keeps ("R&D" → rd, "Café" → cafe).
    let text = "---\ntitle: Lab\ndate: 2021-12-03 09:00\ncategories: R&D\ntags: Café\n---\n<p>Lab.</p>\n";
    fs::write(dir.path().join("posts/lab.md"), text).unwrap();
    let config = "aliases = [\"jekyll-feed\", \"hugo\", \"wordpress\"]\ngone_after_seconds = 0\npost_time_budget_ms = 3000\n[redirects]\n\"/old/news.xml\" = \"/categories/caijing.rss\"\n\"/elsewhere\" = \"https://other.example.org/feed\"\n";
    let mut daemon = Daemon::start(dir.path(), config);
    let location = |path: &str| {
        let r = daemon.get(path, &[]);
        assert_eq!(r.status, 301, "{path}");
        r.header("location").to_owned()
    };
    assert_eq!(location("/old/news.xml"), "/categories/caijing.rss");
    assert_eq!(location("/elsewhere"), "https://other.example.org/feed");
    let feeds = "https://news.example.com/feeds/";
    assert_eq!(location("/feed.xml"), format!("{feeds}feed.atom"));
    assert_eq!(location("/feed/caijing.xml"), format!("{feeds}categories/caijing.atom"));
    assert_eq!(location("/index.xml"), format!("{feeds}feed.rss"));
    assert_eq!(location("/tags/%E6%A0%87%E7%AD%BE/index.xml"), format!("{feeds}tags/%E6%A0%87%E7%AD%BE.rss"));
    assert_eq!(location("/categories/Engineering/index.xml"), format!("{feeds}categories/engineering.rss"));
    assert_eq!(location("/feed/"), format!("{feeds}feed.rss"));
    assert_eq!(location("/feed/atom/"), format!("{feeds}feed.atom"));
    assert_eq!(location("/category/caijing/feed/"), format!("{feeds}categories/caijing.rss"));
    assert_eq!(location("/tag/%E6%A0%87%E7%AD%BE/feed/atom/"), format!("{feeds}tags/%E6%A0%87%E7%AD%BE.atom"));
    assert_eq!(daemon.get("/category/nothing-here/feed/", &[]).status, 404);
    assert_eq!(location("/category/rd/feed/"), format!("{feeds}categories/r-d.rss"));
    assert_eq!(location("/tag/cafe/feed/atom/"), format!("{feeds}tags/caf%C3%A9.atom"));
    assert_eq!(location("/categories/rd/index.xml"), format!("{feeds}categories/r-d.rss"));
    // A redirect followed lands on the feed.
    let target = location("/category/caijing/feed/");
    assert_eq!(daemon.get(target.strip_prefix("https://news.example.com").unwrap(), &[]).status, 200);
    // A gone feed's alias leads to its 410, after a restart too, from the first answer: a post
    // that takes seconds to read holds the first step open meanwhile.
    fs::remove_file(dir.path().join("posts/lab.md")).unwrap();
    daemon.wait_for("R&D gone", || daemon.get("/feeds/categories/r-d.rss", &[]).status == 410);
    assert_eq!(location("/category/rd/feed/"), format!("{feeds}categories/r-d.rss"));
    daemon.terminate();
    fs::write(dir.path().join("posts/slow.md"), common::slow_post()).unwrap();
    let daemon = Daemon::start(dir.path(), config);
    let gone = daemon.get("/category/rd/feed/", &[]);
    assert!(daemon.log.find("published:").is_none(), "the first step ended before the check");
    assert_eq!((gone.status, gone.header("location")), (301, format!("{feeds}categories/r-d.rss").as_str()));
}
