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
    // Nothing changed since: the bad post's error, kept in the index, is reported again.
    let again = site.build();
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(count(&text(&again.stdout), "posts read"), 0);
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
