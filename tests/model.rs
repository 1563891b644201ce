//! The incremental engine equals a clean build: random sequences of changes to a posts folder
//! (add, edit, bad edit, fix, move between folders, delete, folder removal), applied through the
//! engine one step at a time; after every step its documents equal what a new engine makes from
//! scratch. The intended differences are modelled: a post whose file turns bad keeps its last
//! good version published, so the clean build reads that version instead; and where the engine
//! kept only that version's summary (the post was on archive pages of summaries alone), a feed
//! it enters carries the summary as its content from then on.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use crier::config::{Config, Overrides, RawConfig};
use crier::engine::{DocumentSink, Engine};
use proptest::prelude::*;

const FOLDERS: [&str; 3] = ["a", "b", "a/deep"];

#[derive(Debug, Clone)]
enum Op {
    Write { n: u8, folder: usize, version: u8 },
    BadEdit { n: u8 },
    Move { n: u8, to: usize },
    Delete { n: u8 },
    RemoveFolder { folder: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..8u8, 0..FOLDERS.len(), 0..4u8).prop_map(|(n, folder, version)| Op::Write { n, folder, version }),
        2 => (0..8u8).prop_map(|n| Op::BadEdit { n }),
        2 => (0..8u8, 0..FOLDERS.len()).prop_map(|(n, to)| Op::Move { n, to }),
        1 => (0..8u8).prop_map(|n| Op::Delete { n }),
        1 => (0..FOLDERS.len()).prop_map(|folder| Op::RemoveFolder { folder }),
    ]
}

fn good(n: u8, version: u8) -> String {
    let category = ["news", "tech", "life"][usize::from((n + version) % 3)];
    format!(
        "---\ntitle: 第{n}篇 v{version}\ndate: 2021-12-{:02} 10:00:00 +0800\ncategories: {category}\ntags: t{}\n---\n<p>正文 {n}.{version}</p>\n",
        1 + n,
        version % 2
    )
}

const BAD: &str = "---\ntitle: [unclosed\n---\n";

fn config(root: &Path) -> Arc<Config> {
    let raw: RawConfig = toml::from_str("base_url = \"https://e.org/\"\nitems = 3").unwrap();
    let overrides =
        Overrides { posts: Some(root.join("posts")), feeds: Some(root.join("feeds")), ..Default::default() };
    Arc::new(Config::from_raw(raw, root, &overrides).unwrap())
}

/// The documents a sink has been given, latest bytes per path.
#[derive(Default)]
struct Documents(Mutex<BTreeMap<String, Vec<u8>>>);

impl DocumentSink for Documents {
    fn accept(&self, rel: &str, bytes: Vec<u8>) {
        self.0.lock().unwrap().insert(rel.to_owned(), bytes);
    }
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2022-06-01T00:00:00Z").unwrap().to_utc()
}

/// The posts folder under test, and what a clean build should read: the same files, except
/// that a file gone bad reads as its last good version (when it had one at this path).
struct World {
    live: PathBuf,
    /// Path relative to the posts folder -> the text a clean build reads.
    model: BTreeMap<PathBuf, String>,
    /// Path -> whether its current text is bad.
    bad: BTreeMap<PathBuf, bool>,
    /// Bad files whose last good version the engine publishes as its summary alone.
    summarized: BTreeSet<PathBuf>,
}

impl World {
    fn find(&self, n: u8) -> Option<PathBuf> {
        let name = format!("p{n}.md");
        self.model.keys().find(|p| p.file_name().unwrap().to_string_lossy() == name).cloned()
    }

    fn write(&mut self, rel: PathBuf, text: &str) {
        let path = self.live.join(&rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
    }

    /// Applies `op`; returns the paths a watcher would hint.
    fn apply(&mut self, op: &Op) -> Vec<PathBuf> {
        let hints = self.change(op);
        // A file written again, moved or gone is read afresh.
        let bad = &self.bad;
        self.summarized.retain(|rel| bad.get(rel) == Some(&true));
        hints
    }

    fn change(&mut self, op: &Op) -> Vec<PathBuf> {
        match *op {
            Op::Write { n, folder, version } => {
                let rel = self.find(n).unwrap_or_else(|| Path::new(FOLDERS[folder]).join(format!("p{n}.md")));
                self.write(rel.clone(), &good(n, version));
                self.model.insert(rel.clone(), good(n, version));
                self.bad.insert(rel.clone(), false);
                vec![self.live.join(rel)]
            }
            Op::BadEdit { n } => {
                let Some(rel) = self.find(n) else { return Vec::new() };
                self.write(rel.clone(), BAD);
                // A file that was good keeps reading as its last good version; one already bad
                // stays what it was.
                self.bad.insert(rel.clone(), true);
                vec![self.live.join(rel)]
            }
            Op::Move { n, to } => {
                let Some(from) = self.find(n) else { return Vec::new() };
                let to = Path::new(FOLDERS[to]).join(format!("p{n}.md"));
                if from == to {
                    return Vec::new();
                }
                fs::create_dir_all(self.live.join(&to).parent().unwrap()).unwrap();
                fs::rename(self.live.join(&from), self.live.join(&to)).unwrap();
                let text = self.model.remove(&from).unwrap();
                let was_bad = self.bad.remove(&from).unwrap();
                // At its new path the file is read afresh: a bad one has no good version there.
                self.model.insert(to.clone(), if was_bad { BAD.to_owned() } else { text });
                self.bad.insert(to.clone(), was_bad);
                vec![self.live.join(from), self.live.join(to)]
            }
            Op::Delete { n } => {
                let Some(rel) = self.find(n) else { return Vec::new() };
                fs::remove_file(self.live.join(&rel)).unwrap();
                self.model.remove(&rel);
                self.bad.remove(&rel);
                vec![self.live.join(rel)]
            }
            Op::RemoveFolder { folder } => {
                let folder = Path::new(FOLDERS[folder]);
                let _ = fs::remove_dir_all(self.live.join(folder));
                self.model.retain(|rel, _| !rel.starts_with(folder));
                self.bad.retain(|rel, _| !rel.starts_with(folder));
                vec![self.live.join(folder)]
            }
        }
    }

    /// What a clean build reads: the model, with the summarized files' last good versions as
    /// their summaries. `good`'s body is one paragraph, its text the summary: the body the
    /// summary stands in for is that paragraph without the line end after it.
    fn texts(&self, summarized: &BTreeSet<PathBuf>) -> BTreeMap<PathBuf, String> {
        let mut texts = self.model.clone();
        for rel in summarized {
            let text = texts.get_mut(rel).expect("a summarized file is in the model");
            text.truncate(text.trim_end().len());
        }
        texts
    }

    /// Bad files with a good version the engine might publish as its summary, not yet summarized.
    fn may_summarize(&self) -> Vec<PathBuf> {
        let candidate = |(rel, bad): (&PathBuf, &bool)| {
            (*bad && self.model[rel] != BAD && !self.summarized.contains(rel)).then(|| rel.clone())
        };
        self.bad.iter().filter_map(candidate).collect()
    }
}

/// The first document of `expected` that `ours` lacks or holds other bytes of.
fn first_difference(ours: &BTreeMap<String, Vec<u8>>, expected: &BTreeMap<String, Vec<u8>>) -> Option<String> {
    if ours.keys().ne(expected.keys()) {
        return Some(format!(
            "documents {:?}, expected {:?}",
            ours.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>()
        ));
    }
    let (rel, bytes) = expected.iter().find(|(rel, bytes)| ours[*rel] != **bytes)?;
    Some(format!("{rel} differs\n{}\n---\n{}", String::from_utf8_lossy(&ours[rel]), String::from_utf8_lossy(bytes)))
}

/// What a new engine makes from `texts`, in a folder of its own.
fn clean_build(texts: &BTreeMap<PathBuf, String>) -> BTreeMap<String, Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    for (rel, text) in texts {
        let path = dir.path().join("posts").join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    fs::create_dir_all(dir.path().join("posts")).unwrap();
    let documents = Documents::default();
    Engine::new(config(dir.path())).load_all(now(), &documents);
    documents.0.into_inner().unwrap()
}

/// Applies `ops` one at a time, checking the engine's documents against a clean build after each.
/// Where they differ, the bad files that may have just fallen back to their summaries are tried,
/// fewest first; one set that makes them equal is kept for the steps after. Returns the files
/// summarized at the end.
fn engine_equals_clean_build(ops: &[Op]) -> Result<BTreeSet<PathBuf>, TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("posts");
    fs::create_dir_all(&live).unwrap();
    let mut world =
        World { live: live.clone(), model: BTreeMap::new(), bad: BTreeMap::new(), summarized: BTreeSet::new() };
    let mut engine = Engine::new(config(dir.path()));
    let documents = Documents::default();
    engine.load_all(now(), &documents);
    for (step, op) in ops.iter().enumerate() {
        let hints = world.apply(op);
        let change = engine.apply(&hints, now(), &documents);
        let mut ours = documents.0.lock().unwrap();
        for rel in &change.removed {
            ours.remove(rel);
        }
        let Some(difference) = first_difference(&ours, &clean_build(&world.texts(&world.summarized))) else { continue };
        let candidates = world.may_summarize();
        let mut subsets: Vec<u32> = (1..1u32 << candidates.len()).collect();
        subsets.sort_by_key(|mask| mask.count_ones());
        let explained = subsets.into_iter().find_map(|mask| {
            let mut summarized = world.summarized.clone();
            summarized
                .extend(candidates.iter().enumerate().filter(|(i, _)| mask >> i & 1 == 1).map(|(_, rel)| rel.clone()));
            first_difference(&ours, &clean_build(&world.texts(&summarized))).is_none().then_some(summarized)
        });
        let Some(summarized) = explained else {
            return Err(TestCaseError::fail(format!("step {step}: {op:?}: {difference}")));
        };
        world.summarized = summarized;
    }
    Ok(world.summarized)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_engine_step_by_step_equals_a_clean_build(ops in proptest::collection::vec(op(), 1..24)) {
        engine_equals_clean_build(&ops)?;
    }
}

/// A case the property found (in CI): a post on an archive page of summaries alone turns bad, then
/// a post of its feed goes and it enters the feed, which carries its summary as its content; every
/// other document is as a clean build makes it.
#[test]
fn a_post_gone_bad_on_summary_pages_enters_its_feed_as_its_summary() {
    let ops = [
        Op::Write { n: 3, folder: 1, version: 0 },
        Op::Write { n: 7, folder: 0, version: 2 },
        Op::Write { n: 4, folder: 0, version: 2 },
        Op::Write { n: 1, folder: 2, version: 2 },
        Op::BadEdit { n: 1 },
        Op::RemoveFolder { folder: 1 },
    ];
    let summarized = engine_equals_clean_build(&ops).unwrap();
    assert_eq!(summarized.into_iter().collect::<Vec<_>>(), [Path::new("a/deep/p1.md")]);
}
