//! The scan index (`state_dir`): a build after another reads only the post files that changed and
//! makes only the documents they change, and what it makes is what a full build makes.

mod common;

use std::fs;
use std::process::Output;

use common::{Site, files_under, text};

const CONFIG: &str = r#"
posts = "posts"
feeds = "feeds"
base_url = "https://news.example.com/"
timezone = "Asia/Shanghai"
items = 2
archive_page_size = 3
"#;

fn post(title: &str, date: &str, category: &str, tags: &str, body: &str) -> String {
    format!("---\ntitle: {title}\ndate: {date}\ncategories: {category}\ntags: [{tags}]\n---\n{body}\n")
}

/// Twelve posts over three categories and two tags.
fn site() -> Site {
    let site = Site::new(CONFIG);
    for n in 1..=12 {
        let category = ["news", "city", "tech"][n % 3];
        let tags = if n % 2 == 0 { "a, b" } else { "a" };
        site.write(
            &format!("p{n:02}.md"),
            post(
                &format!("Post {n}"),
                &format!("2021-03-{n:02} 10:00 +0800"),
                category,
                tags,
                &format!("Body {n}, 正文。"),
            )
            .as_bytes(),
        );
    }
    site
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "stdout: {}\nstderr: {}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

/// The number before `what` in a build's summary (`3 posts read`).
fn count(summary: &str, what: &str) -> usize {
    let before = &summary[..summary.find(what).unwrap_or_else(|| panic!("no {what:?} in {summary}"))];
    before.split_whitespace().last().unwrap().trim_start_matches('(').parse().unwrap()
}

#[test]
fn a_build_with_nothing_changed_reads_and_writes_nothing() {
    let site = site();
    let first = ok(&site.build());
    assert_eq!(count(&first, "posts read"), 12);
    let before = site.snapshot();
    let second = ok(&site.build());
    assert_eq!(count(&second, "posts read"), 0, "{second}");
    assert_eq!(count(&second, "more unchanged"), 12, "{second}");
    assert_eq!(count(&second, "written"), 0, "{second}");
    assert_eq!(site.snapshot(), before, "not a byte or a modification time changed");
    // --full reads everything, and finds every document current.
    let full = ok(&site.crier_with("build", &["--full"]));
    assert_eq!(count(&full, "posts read"), 12);
    assert_eq!(count(&full, "written"), 0, "{full}");
    assert_eq!(site.snapshot(), before);
}

#[test]
fn an_indexed_build_makes_what_a_full_build_makes() {
    let site = site();
    ok(&site.build());
    // Edits of every kind.
    site.write("p02.md", post("Post 2, edited", "2021-03-02 10:00 +0800", "city", "a", "Edited body.").as_bytes());
    fs::remove_file(site.path("posts/p05.md")).unwrap();
    fs::rename(site.path("posts/p06.md"), site.path("posts/renamed.md")).unwrap();
    site.write("p07.md", b"---\ntitle: Now a draft\ndate: 2021-03-07\ndraft: true\n---\nx\n");
    site.write("p08.md", b"---\ntitle: [unclosed\n---\n");
    site.write("old.md", post("Backdated", "2021-01-01 10:00 +0800", "news", "a", "Old news.").as_bytes());
    site.write("new.md", post("New", "2021-04-01 10:00 +0800", "sport", "c", "New category and tag.").as_bytes());
    let out = site.build();
    let summary = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "the bad post: {summary}");
    assert!(text(&out.stderr).contains("p08.md:"), "{}", text(&out.stderr));
    assert_eq!(count(&summary, "posts read"), 6, "the changed files only: {summary}");
    // Reading every post and making every document finds them all as the index left them.
    let indexed = files_under(&site.path("feeds"));
    let full = site.crier_with("build", &["--full"]);
    assert_eq!(full.status.code(), Some(1));
    assert_eq!(count(&text(&full.stdout), "posts read"), 13);
    assert_eq!(count(&text(&full.stdout), "written"), 0, "{}", text(&full.stdout));
    assert_eq!(count(&text(&full.stdout), "removed"), 0, "{}", text(&full.stdout));
    assert!(files_under(&site.path("feeds")) == indexed);
    // Nothing changed since: the bad post alone is read again, and its error reported again.
    let again = site.build();
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(count(&text(&again.stdout), "posts read"), 1);
    assert_eq!(count(&text(&again.stdout), "skipped with errors"), 1);
    assert!(text(&again.stderr).contains("p08.md:"), "{}", text(&again.stderr));
}

#[test]
fn documents_removed_or_altered_behind_crier_are_made_again() {
    let site = site();
    ok(&site.build());
    let before = files_under(&site.path("feeds"));
    fs::remove_file(site.path("feeds/feed.archive-1.rss")).unwrap();
    fs::remove_file(site.path("feeds/categories/news.json.br")).unwrap();
    fs::write(site.path("feeds/tags/a.atom"), "tampered").unwrap();
    fs::remove_file(site.path("feeds/index.html")).unwrap();
    let out = ok(&site.build());
    assert_eq!(count(&out, "posts read"), 0, "{out}");
    assert_eq!(files_under(&site.path("feeds")), before);
}

#[test]
fn a_new_configuration_reads_everything_again() {
    let site = site();
    ok(&site.build());
    fs::write(site.path("crier.toml"), format!("{CONFIG}title = \"Another title\"\n")).unwrap();
    let out = ok(&site.build());
    assert_eq!(count(&out, "posts read"), 12, "{out}");
    assert!(text(&site.feed("feed.rss")).contains("Another title"));
}

#[test]
fn an_unusable_state_database_costs_only_the_index() {
    let site = site();
    fs::create_dir_all(site.path("crier-state")).unwrap();
    fs::write(site.path("crier-state/state.sqlite3"), vec![b'x'; 8192]).unwrap();
    let out = site.build();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("every post is read"), "{}", text(&out.stderr));
    assert_eq!(count(&text(&out.stdout), "posts read"), 12);
    assert_eq!(fs::read(site.path("crier-state/state.sqlite3")).unwrap(), vec![b'x'; 8192], "never replaced");
}

#[test]
fn a_damaged_state_database_is_reported_while_the_feeds_are_served() {
    let (site, config) = served_site("");
    // A table crier never reads, its pages last in the file: one of them is overwritten.
    sql(&site, "CREATE TABLE filler(x)");
    sql(
        &site,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) INSERT INTO filler SELECT printf('%0200d', i) FROM n",
    );
    let path = site.path("crier-state/state.sqlite3");
    let mut bytes = fs::read(&path).unwrap();
    let pages = bytes.len() / 4096;
    assert!(pages > 100, "{pages} pages");
    bytes[(pages - 2) * 4096..(pages - 1) * 4096].fill(0xA5);
    fs::write(&path, &bytes).unwrap();
    let daemon = common::Daemon::start_with(site.dir.path(), &config);
    daemon.log.wait_for_line("quick_check");
    daemon.log.wait_for_line("published before the start");
    assert_eq!(daemon.get("/feeds/feed.rss", &[]).status, 200);
    assert!(daemon.log.text().contains("move it away"), "{}", daemon.log.text());
}

/// Runs one SQL statement on the site's state database (with Python's sqlite3: no other tool).
fn sql(site: &Site, statement: &str) -> String {
    let script = "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nfor row in c.execute(sys.argv[2]): print(*row)\nc.commit()";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(site.path("crier-state/state.sqlite3"))
        .arg(statement)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// A build after another finds every document as `crier build --full` would make it.
fn full_build_changes_nothing(site: &Site) {
    let before = files_under(&site.path("feeds"));
    let full = site.crier_with("build", &["--full"]);
    assert_eq!(count(&text(&full.stdout), "written"), 0, "{}", text(&full.stdout));
    assert_eq!(count(&text(&full.stdout), "removed"), 0, "{}", text(&full.stdout));
    assert!(files_under(&site.path("feeds")) == before);
}

#[test]
fn a_post_that_turns_bad_leaves_its_feeds() {
    let site = site();
    ok(&site.build());
    site.write("p12.md", b"---\ntitle: [unclosed\n---\n");
    let out = site.build();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(!text(&site.feed("feed.rss")).contains("Post 12"));
    full_build_changes_nothing(&site);
}

#[test]
fn a_body_that_cannot_be_rendered_is_reported_by_every_build() {
    let site = site();
    // Good front matter over a body that is not UTF-8, old enough to sit on an archive page only.
    let head = b"---\ntitle: Zero\ndate: 2021-02-01 10:00 +0800\ncategories: news\n---\n";
    site.write("p00.md", &[&head[..], b"\xc7\xe0\xb5\xba\n"].concat());
    assert_eq!(site.build().status.code(), Some(1));
    assert_eq!(site.build().status.code(), Some(1), "nothing changed");
    site.write("p13.md", post("Post 13", "2021-03-13 10:00 +0800", "tech", "a", "x").as_bytes());
    for _ in 0..2 {
        let out = site.build();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
        assert!(text(&out.stderr).contains("p00.md"), "{}", text(&out.stderr));
    }
    // Fixed: the post takes its place on its page.
    site.write("p00.md", head.iter().chain(b"Fixed.\n").copied().collect::<Vec<u8>>().as_slice());
    ok(&site.build());
    assert!(text(&site.feed("categories/news.archive-1.rss")).contains("Zero"));
    full_build_changes_nothing(&site);
}

#[test]
fn a_bad_file_deleted_leaves_the_index() {
    let site = site();
    site.write("bad.md", b"---\ntitle: [unclosed\n---\n");
    assert_eq!(site.build().status.code(), Some(1));
    fs::remove_file(site.path("posts/bad.md")).unwrap();
    ok(&site.build());
    assert_eq!(sql(&site, "SELECT count(*) FROM scan_post WHERE CAST(path AS TEXT) LIKE '%bad.md'"), "0\n");
    // The quick look is back: it reports the counts the index holds (here, tampered with).
    sql(&site, "UPDATE scan_setting SET value = '99 0 0' WHERE key = 'counts'");
    assert_eq!(count(&ok(&site.build()), "published"), 99);
}

#[test]
fn archive_bounds_lost_cut_the_feed_afresh_and_keep_its_pages_whole() {
    let site = site();
    ok(&site.build());
    // An impossible time makes the bounds of tags/b unreadable.
    sql(&site, "UPDATE archive_bound SET nanos = 2000000000 WHERE feed = 'tags/b' AND page = 1");
    site.write("p01.md", post("Post 1, edited", "2021-03-01 10:00 +0800", "city", "a", "Edited.").as_bytes());
    ok(&site.build());
    let b = text(&site.feed("tags/b.rss"));
    let newest = b.rsplit("b.archive-").next().unwrap().split('.').next().unwrap().to_owned();
    assert!(site.path(&format!("feeds/tags/b.archive-{newest}.rss")).is_file(), "{b}");
    full_build_changes_nothing(&site);
}

#[test]
fn warnings_are_reported_by_every_build() {
    // Archive pages of summaries render every post as a cold build reads it; of whole posts,
    // only once the post rows of the index are saved (while the documents are made).
    for archive_content in ["summary", "full"] {
        warnings_are_reported_by_every_build_with(&format!("archive_content = \"{archive_content}\"\n"));
    }
}

fn warnings_are_reported_by_every_build_with(extra: &str) {
    let site = site();
    fs::write(site.path("crier.toml"), format!("{CONFIG}{extra}")).unwrap();
    // A warning from rendering, and (no title) one from the front matter, on the oldest page.
    let include = post("Post 13", "2021-03-13 10:00 +0800", "tech", "a", "one {% include note.html %} two");
    site.write("p13.md", include.as_bytes());
    site.write("p00.md", b"---\ndate: 2021-02-01 10:00 +0800\ncategories: city\n---\nUntitled.\n");
    let first = ok(&site.build());
    assert_eq!(count(&first, "warnings"), 2, "{first}");
    assert_eq!(count(&ok(&site.build()), "warnings"), 2, "nothing changed");
    // Another post on p00's pages changes: p00 is rendered again, not read again.
    site.write("p01.md", post("Post 1, edited", "2021-03-01 10:00 +0800", "city", "a", "Edited.").as_bytes());
    let edited = ok(&site.build());
    assert_eq!(count(&edited, "posts read"), 1, "{edited}");
    assert_eq!(count(&edited, "warnings"), 2, "another post changed: {edited}");
    assert_eq!(count(&ok(&site.build()), "warnings"), 2, "nothing changed since");
}

/// [`site`] served by `crier serve` (after a build made its feeds and scan index).
fn served_site(extra: &str) -> (Site, String) {
    let site = site();
    let config = common::serve_config(site.dir.path(), &format!("items = 2\narchive_page_size = 3\n{extra}"));
    fs::write(site.path("crier.toml"), &config).unwrap();
    ok(&site.build());
    (site, config)
}

#[test]
fn a_document_the_daemon_could_not_write_is_made_by_the_next_build() {
    let (site, config) = served_site("");
    let mut daemon = common::Daemon::start_with(site.dir.path(), &config);
    // The gzip file of news.rss cannot be replaced: a folder is in its way.
    let gz = site.path("feeds/categories/news.rss.gz");
    fs::remove_file(&gz).unwrap();
    fs::create_dir_all(gz.join("x")).unwrap();
    site.write("p12.md", post("Post 12, edited", "2021-03-12 10:00 +0800", "news", "a", "edited").as_bytes());
    daemon.log.wait_for_line("trying again");
    daemon.terminate();
    fs::remove_dir_all(&gz).unwrap();
    ok(&site.build());
    assert!(text(&site.feed("categories/news.rss")).contains("Post 12, edited"));
    assert!(gz.is_file());
    full_build_changes_nothing(&site);
}

#[test]
fn a_start_with_archive_bounds_lost_keeps_every_page_served() {
    let (site, config) = served_site("gone_after_seconds = 0");
    sql(&site, "UPDATE archive_bound SET nanos = 2000000000 WHERE feed = 'tags/b' AND page = 1");
    site.write("p01.md", post("Post 1, edited", "2021-03-01 10:00 +0800", "city", "a", "Edited.").as_bytes());
    let daemon = common::Daemon::start_with(site.dir.path(), &config);
    daemon
        .wait_for("caught up", || daemon.get("/categories/city.archive-1.rss", &[]).text().contains("Post 1, edited"));
    let b = daemon.get("/tags/b.rss", &[]).text();
    let newest = b.rsplit("b.archive-").next().unwrap().split('.').next().unwrap().to_owned();
    for page in 1..=newest.parse::<usize>().unwrap() {
        assert_eq!(daemon.get(&format!("/tags/b.archive-{page}.rss"), &[]).status, 200, "page {page} of {newest}");
    }
}

#[test]
fn a_restart_answers_at_once_with_the_same_validators() {
    let (site, config) = served_site("");
    let daemon = common::Daemon::start_with(site.dir.path(), &config);
    let before = daemon.get("/feed.rss", &[("Accept-Encoding", "gzip")]);
    drop(daemon);
    let daemon = common::Daemon::start_with(site.dir.path(), &config);
    let after = daemon.get("/feed.rss", &[("Accept-Encoding", "gzip")]);
    assert_eq!(after.status, 200);
    assert_eq!(after.header("etag"), before.header("etag"));
    assert_eq!(after.header("last-modified"), before.header("last-modified"));
    // Served from the index (the line may reach the log just after the first answer).
    daemon.log.wait_for_line("serving the");
    let revalidated = daemon.get("/feed.rss", &[("Accept-Encoding", "gzip"), ("If-None-Match", before.header("etag"))]);
    assert_eq!(revalidated.status, 304);
}

#[test]
fn documents_altered_while_crier_was_down_are_served_as_made() {
    let (site, config) = served_site("post_time_budget_ms = 3000");
    let brotli_etag = {
        let daemon = common::Daemon::start_with(site.dir.path(), &config);
        daemon.get("/categories/news.rss", &[("Accept-Encoding", "br")]).header("etag").to_owned()
    };
    assert!(!brotli_etag.is_empty());
    let made = |rel: &str| fs::read(site.path(&format!("feeds/{rel}"))).unwrap();
    let altered = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).unwrap().replace("<title>", "<title>Altered: ");
    let mut documents = Vec::new();
    // An archive page altered: its bytes as made are still in its gzip file.
    documents.push(("feed.archive-1.rss", made("feed.archive-1.rss")));
    fs::write(site.path("feeds/feed.archive-1.rss"), altered(&documents[0].1)).unwrap();
    // A feed removed: the same.
    documents.push(("categories/news.atom", made("categories/news.atom")));
    fs::remove_file(site.path("feeds/categories/news.atom")).unwrap();
    // A feed altered with its gzip file to match: only its brotli file still holds the bytes as made.
    let feed = made("categories/news.rss");
    fs::write(site.path("feeds/categories/news.rss"), altered(&feed)).unwrap();
    let gzip = crier::feeds_dir::gzip(altered(&feed).as_bytes(), 3);
    fs::write(site.path("feeds/categories/news.rss.gz"), gzip).unwrap();
    // A post that takes seconds to read (given up on after its time budget, or published, when
    // the machine is busy): the first step, which makes the documents above again, waits for it.
    // It is in none of their feeds, and newer than the posts of the oldest archive page.
    site.write("slow.md", common::slow_post().as_bytes());
    let daemon = common::Daemon::start_with(site.dir.path(), &config);
    // Served from the index at once, unchecked; each answer reads and checks the files.
    let plain = daemon.get("/categories/news.rss", &[]);
    assert_eq!(plain.status, 503, "neither its file nor its gzip file holds its bytes");
    let brotli = daemon.get("/categories/news.rss", &[("Accept-Encoding", "br")]);
    assert_eq!((brotli.status, brotli.header("etag")), (200, brotli_etag.as_str()), "its brotli file does");
    for (rel, made) in &documents {
        let answer = daemon.get(&format!("/{rel}"), &[]);
        assert_eq!((answer.status, &answer.body), (200, made), "{rel}: made again from its gzip file");
    }
    assert!(daemon.log.find("published:").is_none(), "the first step ended before the checks");
    // Then each is made again, and never answers other bytes.
    documents.push(("categories/news.rss", feed));
    for (rel, made) in documents {
        let mut other = Vec::new();
        daemon.wait_for(rel, || {
            let answer = daemon.get(&format!("/{rel}"), &[]);
            let as_made = answer.status == 200 && answer.body == made;
            if !as_made && answer.status != 503 {
                other.push(answer.status);
            }
            as_made
        });
        assert!(other.is_empty(), "{rel}: answers other than 503 or the bytes as made: {other:?}");
        // The folder follows the served set (its files are written just after).
        let path = site.path(&format!("feeds/{rel}"));
        daemon.wait_for("its file made again", || fs::read(&path).is_ok_and(|bytes| bytes == made));
    }
    let brotli = daemon.get("/categories/news.rss", &[("Accept-Encoding", "br")]);
    assert_eq!(brotli.header("etag"), brotli_etag, "the same bytes under the same validator");
}
