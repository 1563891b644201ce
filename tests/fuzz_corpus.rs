//! Replays the fuzz corpora committed under `fuzz/corpus/` through the same checks the fuzz
//! targets run (`fuzz/checks.rs`), so every input the fuzzer kept, and every crash it found and
//! that was fixed, stays a regression test on stable Rust.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::{Path, PathBuf};

/// Runs `check` on every input of `target`'s corpus, on as many threads as there are cores.
fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    assert!(paths.len() >= 10, "{}: only {} inputs; the corpus is missing", dir.display(), paths.len());
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    std::thread::scope(|scope| {
        for share in paths.chunks(paths.len().div_ceil(threads)) {
            scope.spawn(move || {
                for path in share {
                    let data = std::fs::read(path).unwrap();
                    if let Err(panic) = std::panic::catch_unwind(|| check(&data)) {
                        eprintln!("the input that failed: {}", path.display());
                        std::panic::resume_unwind(panic);
                    }
                }
            });
        }
    });
}

#[test]
fn post_corpus() {
    replay("post", checks::post);
}

#[test]
fn body_corpus() {
    replay("body", checks::body);
}

#[test]
fn request_corpus() {
    replay("request", checks::request);
}

/// The checks catch what they are there to catch.
#[test]
fn checks_fail_on_bad_output() {
    let fails = |f: fn()| std::panic::catch_unwind(f).is_err();
    assert!(fails(|| checks::check_html("<p>hi<script>alert(1)</script>")));
    assert!(fails(|| checks::check_html("<a href=\" JaVa\tScript:alert(1)\">x</a>")));
    assert!(fails(|| checks::check_html("<img src=x onerror=alert(1)>")));
    assert!(fails(|| checks::check_html("text \u{1} text")));
    assert!(fails(|| checks::check_document(crier::feed::Format::Rss, b"<rss><channel></rss>")));
    assert!(fails(|| checks::check_document(crier::feed::Format::Json, b"{\"items\": [")));
    assert!(!fails(|| checks::check_html("<p>learn javascript: <a href=\"https://a.example/x:y\">it</a></p>")));
}
