//! The bundled sample site builds cleanly, and (an interop test, `CRIER_INTEROP=1`) a second,
//! independent feed reader, Python's feedparser (installed by `.ci/run`), reads every RSS and Atom
//! document without complaint.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use common::{build_sample, feedparser_check, files_under, interop, repo_root, require_feedparser};

#[test]
fn sample_site_builds_without_errors_or_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let out = build_sample(dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("13 published"), "{stdout}");
    assert!(stdout.contains("2 drafts") && stdout.contains("0 warnings"), "{stdout}");
    let feed = feed_rs::parser::parse(&std::fs::read(dir.path().join("feed.atom")).unwrap()[..]).unwrap();
    assert_eq!(feed.entries.len(), 13);
    assert!(dir.path().join("categories/caijing.rss").exists());
    assert!(dir.path().join("tags/订阅源.json").exists());
}

/// The sample site's documents (not their `.gz`/`.br` encodings), by path under the feeds folder.
fn documents(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    if !root.exists() {
        return BTreeMap::new();
    }
    let mut files = files_under(root);
    files.retain(|path, _| !matches!(path.extension().and_then(|e| e.to_str()), Some("gz" | "br")));
    files
}

/// Every document the sample build writes, byte for byte as in `tests/golden/sample/`. The build
/// is reproducible (dates come from the posts), so any difference is a change in the output.
/// `CRIER_BLESS=1` rewrites the golden folder instead of comparing.
#[test]
fn sample_site_matches_the_golden_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = build_sample(dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let built = documents(dir.path());
    assert!(built.len() > 20, "the sample build wrote {} documents", built.len());
    let golden_root = repo_root().join("tests/golden/sample");

    if std::env::var_os("CRIER_BLESS").is_some_and(|v| v == "1") {
        for path in documents(&golden_root).keys() {
            if !built.contains_key(path) {
                fs::remove_file(golden_root.join(path)).unwrap();
            }
        }
        for (path, bytes) in &built {
            let target = golden_root.join(path);
            fs::create_dir_all(target.parent().unwrap()).unwrap();
            fs::write(target, bytes).unwrap();
        }
        return;
    }

    let golden = documents(&golden_root);
    let rerun = "rerun with CRIER_BLESS=1 to rewrite tests/golden/sample/, and review the diff";
    let missing: Vec<&PathBuf> = golden.keys().filter(|p| !built.contains_key(*p)).collect();
    let extra: Vec<&PathBuf> = built.keys().filter(|p| !golden.contains_key(*p)).collect();
    assert!(missing.is_empty(), "golden documents the build no longer writes: {missing:?}; {rerun}");
    assert!(extra.is_empty(), "documents the build writes that have no golden file: {extra:?}; {rerun}");
    for (path, bytes) in &built {
        if *bytes != golden[path] {
            let at = bytes
                .iter()
                .zip(&golden[path])
                .position(|(a, b)| a != b)
                .unwrap_or(bytes.len().min(golden[path].len()));
            panic!(
                "tests/golden/sample/{} differs from the build (first difference at byte {at}); {rerun}",
                path.display()
            );
        }
    }
}

/// What the sample's site feed says, after every feed is checked.
const SITE_FEED: &str = r#"
site = feedparser.parse(str(root / "feed.rss"))
print(count, site.version, len(site.entries), site.entries[0].title)
"#;

#[test]
fn python_feedparser_reads_every_feed() {
    if !interop("python feedparser reads every feed") {
        return;
    }
    require_feedparser();
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(build_sample(dir.path()).status.code(), Some(0));
    let stdout = feedparser_check(dir.path(), "https://news.example.com/", SITE_FEED);
    let fields: Vec<&str> = stdout.split_whitespace().collect();
    assert!(fields[0].parse::<usize>().unwrap() > 20, "{stdout}");
    assert_eq!(&fields[1..3], ["rss20", "13"], "{stdout}");
    assert!(stdout.contains("港城物流园区"), "Chinese text intact: {stdout}");
}
