//! Watching the posts folder: notify's events become crier's own small [`Hint`]s. The only
//! module that knows notify.
//!
//! Events are hints, not facts (a move reports one side, `rm -rf` one folder, the queue can
//! overflow): the engine re-reads what a hint names and compares it with what it knows.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, CreateKind, EventKind, ModifyKind, RenameMode};
use notify::{PollWatcher, RecommendedWatcher, RecursiveMode, Watcher as _};

/// What an event says about a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// A file complete now: renamed into place (a rename is atomic; a close is not proof, as a
    /// writer may open the file again to append).
    Complete(PathBuf),
    /// To look at now: closed after writing, deleted, renamed away, its mode or times changed, a
    /// folder created.
    Ready(PathBuf),
    /// Being written: read it once it has been quiet for the settle window (or when it is closed).
    Writing(PathBuf),
    /// The watcher lost events: read the whole folder again.
    Rescan,
}

/// What the watcher tells its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchMessage {
    Hints(Vec<Hint>),
    /// The watcher failed or lost events; the text says how.
    Lost(String),
}

/// Why a folder cannot be watched.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WatchError(String);

/// Turns one notify event into hints.
fn hints(event: notify::Event) -> Vec<Hint> {
    if event.need_rescan() {
        return vec![Hint::Rescan];
    }
    let complete = |paths: Vec<PathBuf>| paths.into_iter().map(Hint::Complete).collect();
    let ready = |paths: Vec<PathBuf>| paths.into_iter().map(Hint::Ready).collect();
    let writing = |paths: Vec<PathBuf>| paths.into_iter().map(Hint::Writing).collect();
    match event.kind {
        // crier's own reads show up as opens and closes: only a close after writing means anything.
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => ready(event.paths),
        EventKind::Access(_) => Vec::new(),
        EventKind::Create(CreateKind::Folder) => ready(event.paths),
        EventKind::Create(_) => writing(event.paths),
        EventKind::Modify(ModifyKind::Data(_)) | EventKind::Modify(ModifyKind::Any) => writing(event.paths),
        EventKind::Modify(ModifyKind::Name(RenameMode::To)) => complete(event.paths),
        // inotify reports a rename's two sides on their own first: this only repeats them.
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => Vec::new(),
        EventKind::Modify(ModifyKind::Name(_)) | EventKind::Remove(_) => ready(event.paths),
        // A changed mode or time: the engine's fingerprint decides whether the file changed.
        EventKind::Modify(_) => ready(event.paths),
        EventKind::Any | EventKind::Other => ready(event.paths),
    }
}

/// A running watcher; dropping it stops the watching.
pub struct Watcher {
    _running: Box<dyn notify::Watcher + Send>,
}

impl Watcher {
    fn new(running: impl notify::Watcher + Send + 'static) -> Watcher {
        Watcher { _running: Box::new(running) }
    }
}

/// Starts watching `root` recursively, sending what it sees to `handler`. With `poll`, or when
/// inotify cannot watch (its watch limit reached), polls every `interval` instead.
pub fn start<H>(root: &Path, poll: bool, interval: Duration, handler: H) -> Result<Watcher, WatchError>
where
    H: Fn(WatchMessage) + Clone + Send + 'static,
{
    let events = move |result: notify::Result<notify::Event>| match result {
        Ok(event) => handler(WatchMessage::Hints(hints(event))),
        Err(error) => handler(WatchMessage::Lost(error.to_string())),
    };
    let poller = |events| -> notify::Result<Watcher> {
        let config = notify::Config::default().with_poll_interval(interval);
        let mut watcher = PollWatcher::new(events, config)?;
        watcher.watch(root, RecursiveMode::Recursive)?;
        Ok(Watcher::new(watcher))
    };
    if poll {
        return poller(events).map_err(|e| WatchError(e.to_string()));
    }
    let attempt = RecommendedWatcher::new(events.clone(), notify::Config::default()).and_then(|mut watcher| {
        watcher.watch(root, RecursiveMode::Recursive)?;
        Ok(watcher)
    });
    match attempt {
        Ok(watcher) => Ok(Watcher::new(watcher)),
        Err(error) => {
            tracing::warn!(
                "cannot watch {} with inotify ({error}); polling every {:?} instead. \
                 Raise fs.inotify.max_user_watches, or set `poll = true` to silence this",
                root.display(),
                interval
            );
            poller(events).map_err(|e| WatchError(e.to_string()))
        }
    }
}

/// Watches the files `paths` through their folders, not recursively (an editor that saves by
/// renaming replaces the file itself); `handler` runs on each event that names one of them.
pub fn files<H>(paths: &[PathBuf], handler: H) -> Result<Watcher, WatchError>
where
    H: Fn() + Send + 'static,
{
    let wanted: Vec<PathBuf> = paths.to_vec();
    let events = move |result: notify::Result<notify::Event>| {
        let Ok(event) = result else { return handler() };
        let named = hints(event).iter().any(|hint| match hint {
            Hint::Complete(path) | Hint::Ready(path) | Hint::Writing(path) => wanted.contains(path),
            Hint::Rescan => true,
        });
        if named {
            handler();
        }
    };
    let mut watcher =
        RecommendedWatcher::new(events, notify::Config::default()).map_err(|e| WatchError(e.to_string()))?;
    let mut folders: Vec<&Path> = paths.iter().filter_map(|p| p.parent()).filter(|p| p.is_dir()).collect();
    folders.dedup();
    for folder in folders {
        watcher
            .watch(folder, RecursiveMode::NonRecursive)
            .map_err(|e| WatchError(format!("{}: {e}", folder.display())))?;
    }
    Ok(Watcher::new(watcher))
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{DataChange, MetadataKind, RemoveKind};

    fn event(kind: EventKind) -> notify::Event {
        notify::Event::new(kind).add_path("/p/a.md".into())
    }

    #[test]
    fn event_kinds() {
        let a = || PathBuf::from("/p/a.md");
        assert_eq!(hints(event(EventKind::Access(AccessKind::Close(AccessMode::Write)))), [Hint::Ready(a())]);
        assert!(hints(event(EventKind::Access(AccessKind::Open(AccessMode::Any)))).is_empty());
        assert!(hints(event(EventKind::Access(AccessKind::Close(AccessMode::Read)))).is_empty());
        assert_eq!(hints(event(EventKind::Create(CreateKind::File))), [Hint::Writing(a())]);
        assert_eq!(hints(event(EventKind::Modify(ModifyKind::Data(DataChange::Any)))), [Hint::Writing(a())]);
        assert_eq!(hints(event(EventKind::Modify(ModifyKind::Name(RenameMode::To)))), [Hint::Complete(a())]);
        assert_eq!(hints(event(EventKind::Modify(ModifyKind::Name(RenameMode::From)))), [Hint::Ready(a())]);
        assert!(hints(event(EventKind::Modify(ModifyKind::Name(RenameMode::Both)))).is_empty());
        assert_eq!(
            hints(event(EventKind::Modify(ModifyKind::Metadata(MetadataKind::Permissions)))),
            [Hint::Ready(a())]
        );
        assert_eq!(hints(event(EventKind::Remove(RemoveKind::File))), [Hint::Ready(a())]);
        let rescan = event(EventKind::Other).set_flag(notify::event::Flag::Rescan);
        assert_eq!(hints(rescan), [Hint::Rescan]);
    }
}
