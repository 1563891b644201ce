//! The `build` and `check` commands: one pass over the posts folder, documents written to the
//! feeds folder (`build`) or every problem listed (`check`).

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::engine::{DocumentSink, Engine};
use crate::feeds_dir::{FeedsDir, Outcome};
use crate::post::{PostError, PostWarning};
use crate::source;
use crate::state::State;

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
            "crier build: {} posts read: {} published, {} scheduled for later, {} drafts, {} skipped with errors, {} warnings",
            self.posts_read,
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

/// The state store `crier serve` keeps, when there is one: a build cuts archive pages where the
/// daemon did, and keeps where it cut new ones. A build never creates `state_dir`.
fn kept_state(config: &Config) -> Option<State> {
    if !config.state_dir.join(crate::state::FILE_NAME).is_file() {
        return None;
    }
    State::open(&config.state_dir).inspect_err(|error| tracing::warn!("{error}; archive pages are cut by count")).ok()
}

/// `crier build`: reads the posts, writes every feed document and removes stale ones.
pub fn build(config: &Config, now: DateTime<Utc>) -> Result<BuildReport, BuildError> {
    let started = Instant::now();
    require_posts_folder(config)?;
    let feeds = FeedsDir::new(config);
    // Each document is compressed and written as soon as it is made, then dropped.
    let sink = WriteSink { feeds: &feeds, written_at: SystemTime::now(), outcomes: Mutex::new(Vec::new()) };
    let mut engine = Engine::new(Arc::new(config.clone()));
    let state = kept_state(config);
    if let Some(state) = &state {
        engine.restore_archives(state.archive_bounds().unwrap_or_else(|error| {
            tracing::warn!("{error}; archive pages are cut afresh");
            Default::default()
        }));
    }
    let change = engine.load_all(now, &sink);
    if let Some(Err(error)) = state.map(|state| state.set_archive_bounds(&change.archive_bounds)) {
        tracing::warn!("{error}; the next build or serve may cut archive pages differently");
    }
    let keep: HashSet<String> = change.documents.iter().cloned().collect();
    let mut report = BuildReport {
        posts_read: change.posts_read,
        published: engine.live_posts(),
        scheduled: engine.scheduled(),
        drafts: engine.drafts(),
        errors: change.errors,
        warnings: change.warnings,
        feeds_folder: config.feeds.clone(),
        documents: keep.len(),
        ..Default::default()
    };
    for outcome in sink.outcomes.into_inner().expect("no code panics while holding this lock") {
        match outcome.map_err(BuildError::Write)? {
            Outcome::Written => report.written += 1,
            Outcome::Unchanged => report.unchanged += 1,
        }
    }
    report.removed = feeds.remove_stale(&keep).map_err(BuildError::Write)?.len();
    report.errors.sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The build's sink: writes each document out and keeps only the outcome.
struct WriteSink<'a> {
    feeds: &'a FeedsDir,
    written_at: SystemTime,
    outcomes: Mutex<Vec<anyhow::Result<Outcome>>>,
}

impl DocumentSink for WriteSink<'_> {
    fn accept(&self, rel: &str, bytes: Vec<u8>) {
        let put = self.feeds.put(rel, bytes, self.written_at);
        let outcome = match put.error {
            Some(error) => Err(error),
            None => Ok(put.outcome),
        };
        self.outcomes.lock().expect("no code panics while holding this lock").push(outcome);
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
