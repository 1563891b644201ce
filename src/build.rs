//! The `build` and `check` commands: one pass over the posts folder, documents written to the
//! feeds folder (`build`) or every problem listed (`check`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use rayon::prelude::*;

use crate::config::Config;
use crate::engine::{Change, DocumentSink, Engine, Indexed, ReadAll};
use crate::feeds_dir::{FeedsDir, OnDisk, Outcome};
use crate::post::{PostError, PostWarning};
use crate::site::path_bytes;
use crate::source::{self, Fingerprint};
use crate::state::{IndexChanges, State, StateError};

/// Why a command could not do its job at all (a bad post is not such a reason: it is reported
/// and skipped). The caller maps each case to an exit status.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "posts folder {} does not exist or is not a folder; set `posts` in the config or pass --posts",
        .0.display()
    )]
    NoPostsFolder(PathBuf),
    #[error("{0:#}")]
    Write(anyhow::Error),
}

/// What a build did, for the summary.
#[derive(Debug, Default)]
pub struct BuildReport {
    pub posts_read: usize,
    /// Post files not read, unchanged since the scan index was saved.
    pub posts_indexed: usize,
    pub published: usize,
    pub drafts: usize,
    pub scheduled: usize,
    pub errors: Vec<PostError>,
    pub warnings: Vec<(PathBuf, PostWarning)>,
    pub feeds_folder: PathBuf,
    pub documents: usize,
    pub written: usize,
    pub unchanged: usize,
    pub removed: usize,
    pub elapsed: Duration,
}

impl fmt::Display for BuildReport {
    /// The one-screen summary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "crier build: {} posts read ({} more unchanged, from the scan index): {} published, {} scheduled for later, {} drafts, {} skipped with errors, {} warnings",
            self.posts_read,
            self.posts_indexed,
            self.published,
            self.scheduled,
            self.drafts,
            self.errors.len(),
            self.warnings.len()
        )?;
        write!(
            f,
            "  {} documents in {}: {} written, {} unchanged, {} removed; {:.2} s",
            self.documents,
            self.feeds_folder.display(),
            self.written,
            self.unchanged,
            self.removed,
            self.elapsed.as_secs_f64()
        )
    }
}

fn require_posts_folder(config: &Config) -> Result<(), BuildError> {
    match source::PathKind::of(&config.posts) {
        source::PathKind::Folder => Ok(()),
        _ => Err(BuildError::NoPostsFolder(config.posts.clone())),
    }
}

/// The state store (created when missing): the scan index, and where the daemon cut archive
/// pages. Without one (`state_dir` not writable) everything is read and pages are cut by count.
fn open_state(config: &Config) -> Option<State> {
    State::open_quick(&config.state_dir)
        .inspect_err(|error| tracing::warn!("{error}; every post is read and archive pages are cut by count"))
        .ok()
}

/// Restores `engine` from the scan index saved under `key`, unless `full`; the documents whose
/// files changed or went since are made again. Says whether there was an index to restore.
pub fn restore_index(engine: &mut Engine, state: &State, key: &str, feeds: &FeedsDir, full: bool) -> bool {
    let bounds = state.archive_bounds().unwrap_or_else(|error| {
        tracing::warn!("{error}; archive pages are cut afresh");
        Default::default()
    });
    engine.restore_archives(bounds);
    if full {
        return false;
    }
    let index = match state.scan_index(key) {
        Ok(Some(index)) => index,
        Ok(None) => return false,
        Err(error) => {
            tracing::warn!("{error}; every post is read again");
            return false;
        }
    };
    engine.restore(index.snapshot);
    let documents: Vec<String> = engine.documents().into_iter().collect();
    let still = |rel: &&String| index.documents.get(*rel).is_some_and(|on_disk| feeds.still(rel, on_disk));
    let changed: Vec<&String> = documents.par_iter().filter(|rel| !still(rel)).collect();
    if !changed.is_empty() {
        tracing::info!("{} documents changed or went since the last run; they are made again", changed.len());
    }
    changed.iter().for_each(|rel| engine.redo(rel));
    true
}

/// The build when nothing changed since the scan index was saved: every post file has the
/// fingerprint it had, every document the files, and no scheduled post fell due since. Each file
/// is looked at once (`stat`), none is read; `None` when anything differs or cannot be told.
fn nothing_changed(
    config: &Config,
    state: &State,
    key: &str,
    feeds: &FeedsDir,
    now: DateTime<Utc>,
) -> Option<BuildReport> {
    // The posts folder is walked while the index is read, once there is one to read.
    if !state.has_scan_index(key).ok()? {
        return None;
    }
    let (index, files) = rayon::join(|| state.quick_index(key), || source::quick_fingerprints(config));
    let (index, mut files) = (index.ok()??, files?);
    // A bad file is read again: its error may have been the machine's (a time budget overrun).
    if index.next_due.is_some_and(|due| due <= now) || index.files.iter().any(|i| i.error.is_some()) {
        return None;
    }
    if files.len() != index.files.len() {
        return None;
    }
    let still = |(rel, on_disk): (&String, &OnDisk)| feeds.still(rel, on_disk);
    let by_bytes = |a: &(PathBuf, Fingerprint), b: &(PathBuf, Fingerprint)| path_bytes(&a.0).cmp(path_bytes(&b.0));
    let (documents, ()) =
        rayon::join(|| index.documents.par_iter().all(still), || files.par_sort_unstable_by(by_bytes));
    // Side by side in the order of the paths' bytes, the index's order: the walk spells each path
    // as the walk that made the index did, and a path spelled otherwise only costs a build.
    let same = |((path, fingerprint), i): (&(PathBuf, Fingerprint), &Indexed)| {
        path_bytes(path) == path_bytes(&i.path) && *fingerprint == i.fingerprint
    };
    if !documents || !files.par_iter().zip(index.files.par_iter()).all(same) {
        return None;
    }
    let [published, scheduled, drafts] = index.counts;
    let warned = index.files.into_iter().flat_map(|i| i.warnings.into_iter().map(move |w| (i.path.clone(), w)));
    Some(BuildReport {
        posts_indexed: files.len(),
        published,
        scheduled,
        drafts,
        warnings: warned.collect(),
        feeds_folder: feeds.root().to_path_buf(),
        documents: index.documents.len(),
        unchanged: index.documents.len(),
        ..Default::default()
    })
}

/// What a build does with the documents in the feeds folder that it did not make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// Removes them: `crier build`.
    Remove,
    /// Leaves them: the first publish made for `crier serve` by a child process, whose parent
    /// then finds them, answers 410 for them for a while and removes them, as after a first
    /// publish of its own.
    Keep,
}

/// `crier build`: reads the posts that changed since the scan index was saved (every post with
/// `full`, or without an index), writes the documents they change into `feeds` (the
/// configuration's feeds folder, or one to be swapped in for it: see [`FeedsDir::staging`]) and
/// removes stale ones, as `stale` says.
pub fn build(
    config: &Config,
    feeds: &FeedsDir,
    now: DateTime<Utc>,
    full: bool,
    stale: Stale,
) -> Result<BuildReport, BuildError> {
    let started = Instant::now();
    require_posts_folder(config)?;
    // Each document is compressed and written as soon as it is made, then dropped.
    let sink = WriteSink { feeds, written_at: SystemTime::now(), outcomes: Mutex::new(Vec::new()) };
    let mut engine = Engine::new(Arc::new(config.clone()));
    let state = open_state(config);
    let key = engine.index_key();
    let quick = state.as_ref().filter(|_| !full).and_then(|state| nothing_changed(config, state, &key, feeds, now));
    if let Some(mut report) = quick {
        report.elapsed = started.elapsed();
        return Ok(report);
    }
    let restored = state.as_ref().is_some_and(|state| restore_index(&mut engine, state, &key, feeds, full));
    let indexed = engine.known_files();
    let read = engine.read_all(now);
    let whole_index = state.as_ref().filter(|_| !restored);
    let (change, posts_saved) = publish_saving_posts(&mut engine, read, &sink, whole_index);
    if let Some(Err(error)) = state.as_ref().map(|state| state.set_archive_bounds(&change.archive_bounds)) {
        tracing::warn!("{error}; the next build or serve may cut archive pages differently");
    }
    let keep = engine.documents();
    let mut report = BuildReport {
        posts_read: change.posts_read,
        posts_indexed: indexed.saturating_sub(change.posts_read),
        published: engine.live_posts(),
        scheduled: engine.scheduled(),
        drafts: engine.drafts(),
        errors: change.errors,
        warnings: engine.restored_warnings().map(|(p, w)| (p.to_owned(), w.clone())).chain(change.warnings).collect(),
        feeds_folder: feeds.root().to_path_buf(),
        documents: keep.len(),
        ..Default::default()
    };
    let written = sink.written(&mut report)?;
    // Both walk a whole site (its documents' folder, its posts' index), each on a core.
    let remove_stale = || match stale {
        Stale::Remove => feeds.remove_stale(&keep),
        Stale::Keep => Ok(Vec::new()),
    };
    let (removed, snapshot) = rayon::join(remove_stale, || engine.index_changes());
    let mut removed = removed.map_err(BuildError::Write)?;
    report.removed = removed.len();
    removed.extend(change.removed);
    let changes = IndexChanges { snapshot, written, removed, whole: !restored, parallel: true };
    if let Some(state) = &state {
        save_index(state, &key, posts_saved, changes);
    }
    report.errors.sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
    // Freeing a long history's index takes a while (0.4 s at 100,000 posts): not on the way out.
    crate::engine::drop_elsewhere(engine);
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Makes the documents of what `engine` read; saves the post rows of a whole scan index into
/// `whole_index` meanwhile, on a thread of its own, and says how that went.
fn publish_saving_posts(
    engine: &mut Engine,
    read: ReadAll,
    sink: &dyn DocumentSink,
    whole_index: Option<&State>,
) -> (Change, Option<Result<(), StateError>>) {
    std::thread::scope(|scope| {
        let saving = whole_index.map(|state| {
            let files = engine.index_files();
            scope.spawn(move || state.save_scan_posts(&files))
        });
        let change = engine.publish_read(read, sink);
        (change, saving.map(|saving| saving.join().expect("saving the index does not panic")))
    })
}

/// Saves the scan index under `key`: the rest of it when its post rows were saved already
/// (`posts_saved`), or nothing at all (the index is cleared) when that failed.
fn save_index(state: &State, key: &str, posts_saved: Option<Result<(), StateError>>, mut changes: IndexChanges) {
    let saved = match posts_saved {
        // Rolled back: what is left is an index of another key or of before this build.
        Some(Err(error)) => state.clear_scan_index().and(Err(error)),
        Some(Ok(())) => {
            changes.whole = false;
            state.save_scan_index(key, &changes)
        }
        None => state.save_scan_index(key, &changes),
    };
    if let Err(error) = saved {
        tracing::warn!("{error}; the next build reads every post");
    }
}

/// The build's sink: writes each document out and keeps only the outcome.
struct WriteSink<'a> {
    feeds: &'a FeedsDir,
    written_at: SystemTime,
    outcomes: Mutex<Vec<(String, Written)>>,
}

/// What became of one document: its files as they stand, or why they could not be written.
type Written = anyhow::Result<(Outcome, OnDisk)>;

impl WriteSink<'_> {
    /// The documents written or found current, with their files; counted in `report` (those not
    /// made again at all count as unchanged).
    fn written(self, report: &mut BuildReport) -> Result<Vec<(String, OnDisk)>, BuildError> {
        let mut written = Vec::new();
        for (rel, outcome) in self.outcomes.into_inner().expect("no code panics while holding this lock") {
            let (outcome, on_disk) = outcome.map_err(BuildError::Write)?;
            if outcome == Outcome::Written {
                report.written += 1;
            }
            written.push((rel, on_disk));
        }
        report.unchanged = report.documents.saturating_sub(report.written);
        Ok(written)
    }
}

impl DocumentSink for WriteSink<'_> {
    fn accept(&self, rel: &str, bytes: Vec<u8>) {
        let put = self.feeds.put(rel, bytes, self.written_at);
        let outcome = match put.error {
            Some(error) => Err(error),
            None => Ok((put.outcome, OnDisk::of(&put.encoded))),
        };
        self.outcomes.lock().expect("no code panics while holding this lock").push((rel.to_owned(), outcome));
    }
}

/// What `crier check` found.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// Post files read.
    pub read: usize,
    pub errors: usize,
    pub warnings: usize,
    /// Every problem as `file:line: message (error|warning)`, sorted.
    pub problems: Vec<String>,
}

/// `crier check`: reads every byte of every post and lists every problem; writes nothing.
pub fn check(config: &Config) -> Result<CheckReport, BuildError> {
    require_posts_folder(config)?;
    let scan = source::scan(&Arc::new(config.clone()));
    let mut problems: Vec<String> = scan.errors.iter().map(|e| format!("{e} (error)")).collect();
    let warning = |(path, w): (&Path, &PostWarning)| format!("{}:{}: {} (warning)", path.display(), w.line, w.message);
    problems.extend(scan.warnings().map(warning));
    problems.sort();
    Ok(CheckReport {
        read: scan.posts.len() + scan.drafts + scan.errors.len(),
        errors: scan.errors.len(),
        warnings: problems.len() - scan.errors.len(),
        problems,
    })
}
