//! Watching the posts folder: notify's events become crier's own small [`Hint`]s. The only
//! module that knows notify. Polling (network file systems) is crier's own: notify's poller keeps
//! modification times in whole seconds, so a save made in the second of the one before it, or a
//! file crier read while it was still being written in the second it was created, went unseen
//! until the file changed again.
//!
//! Events are hints, not facts (a move reports one side, `rm -rf` one folder, the queue can
//! overflow): the engine re-reads what a hint names and compares it with what it knows.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, CreateKind, EventKind, ModifyKind, RenameMode};
use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};

use crate::post::is_post_file_name;
use crate::site::path_bytes;
use crate::source::{Fingerprint, is_hidden};

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
    /// The poller's latest look at a folder (after the hints it led to).
    Looked(Look),
}

/// Every file under `root` when the poller last looked. A poller compares each look with the one
/// before it, which misses a file that came and went between two looks; the owner compares it
/// with the files it read from there, so that one crier read meanwhile (a walk of the folder
/// found it) and that went is not kept.
#[derive(Debug, Clone)]
pub struct Look {
    pub root: PathBuf,
    /// Sorted by the paths' bytes.
    pub files: Arc<Files>,
    /// Lets the poller send the next look once this one is let go of (each holds every path of
    /// the folder: during a long step, unread looks would pile up in the channel).
    _held: Arc<Held>,
}

impl PartialEq for Look {
    fn eq(&self, other: &Look) -> bool {
        self.root == other.root && self.files == other.files
    }
}

impl Eq for Look {}

/// A look sent and not let go of yet.
#[derive(Debug)]
struct Held(Arc<AtomicBool>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.store(false, AtomicOrdering::Release);
    }
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
    _running: Box<dyn Send>,
}

impl Watcher {
    fn new(running: impl Send + 'static) -> Watcher {
        Watcher { _running: Box::new(running) }
    }
}

/// The post files of a folder with their fingerprints (size, modification and change times to
/// the nanosecond, inode), sorted by their paths' bytes.
type Files = Vec<(PathBuf, Fingerprint)>;

/// Every post file under `root` (hidden names left out, as the posts' walk leaves them out), one
/// `fstatat` each, sorted. A linked folder is followed when it leads inside `root` and is not
/// one the walk is already in (a loop). A folder that cannot be read (a network file system's
/// passing error, a permission) keeps what `before` had under it, so that its files do not look
/// gone. On this thread: in parallel on rayon's threads, whose wait for work spins, a look at
/// 100,000 files cost 2.5 times the CPU.
fn look(root: &Path, before: &Files) -> Files {
    let real_root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_owned());
    let mut walk = Walk { real_root, inside: Vec::new(), files: Vec::new(), unread: Vec::new() };
    walk.folder(root, std::fs::metadata(root).ok().as_ref());
    for folder in &walk.unread {
        let kept = before.iter().filter(|(path, _)| path.starts_with(folder));
        walk.files.extend(kept.cloned());
    }
    let mut files = walk.files;
    files.sort_unstable_by(|a, b| path_bytes(&a.0).cmp(path_bytes(&b.0)));
    files.dedup_by(|a, b| a.0 == b.0);
    files
}

/// A look in progress.
struct Walk {
    real_root: PathBuf,
    /// The folders the walk is in, by device and inode.
    inside: Vec<(u64, u64)>,
    files: Files,
    /// Folders that could not be read.
    unread: Vec<PathBuf>,
}

impl Walk {
    /// Adds the post files under `dir` (`metadata`: its own, `None` if unknown).
    fn folder(&mut self, dir: &Path, metadata: Option<&std::fs::Metadata>) {
        use std::os::unix::fs::MetadataExt;
        let identity = metadata.map(|m| (m.dev(), m.ino()));
        if identity.is_some_and(|id| self.inside.contains(&id)) {
            return;
        }
        let Ok(entries) = std::fs::read_dir(dir) else { return self.unread.push(dir.to_owned()) };
        self.inside.extend(identity);
        for entry in entries.filter_map(Result::ok) {
            self.entry(&entry);
        }
        if identity.is_some() {
            self.inside.pop();
        }
    }

    fn entry(&mut self, entry: &std::fs::DirEntry) {
        let name = entry.file_name();
        let Ok(kind) = entry.file_type() else { return };
        let post = name.to_str().is_some_and(is_post_file_name);
        if is_hidden(&name) || (kind.is_file() && !post) {
            return;
        }
        let path = entry.path();
        let metadata = match kind.is_symlink() {
            true => std::fs::metadata(&path),
            false => entry.metadata(),
        };
        let Ok(metadata) = metadata else { return };
        if metadata.is_dir() {
            let inside =
                !kind.is_symlink() || std::fs::canonicalize(&path).is_ok_and(|real| real.starts_with(&self.real_root));
            if inside {
                self.folder(&path, Some(&metadata));
            }
        } else if metadata.is_file() && post {
            self.files.push((path, Fingerprint::from_metadata(&metadata)));
        }
    }
}

/// What changed between two looks: a new or changed file is being written (read once it has
/// been quiet for the settle window, as the next look may find it changed again), a file gone
/// is to be looked at now.
fn compare(before: &Files, now: &Files) -> Vec<Hint> {
    let (mut before, mut now) = (before.iter().peekable(), now.iter().peekable());
    let mut hints = Vec::new();
    loop {
        let order = match (before.peek(), now.peek()) {
            (None, None) => return hints,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(old), Some(new)) => path_bytes(&old.0).cmp(path_bytes(&new.0)),
        };
        match order {
            Ordering::Less => hints.extend(before.next().map(|(path, _)| Hint::Ready(path.clone()))),
            Ordering::Greater => hints.extend(now.next().map(|(path, _)| Hint::Writing(path.clone()))),
            Ordering::Equal => {
                let (old, new) = (before.next().expect("peeked"), now.next().expect("peeked"));
                if old.1 != new.1 {
                    hints.push(Hint::Writing(new.0.clone()));
                }
            }
        }
    }
}

/// Looks at every file under `root` every `interval` on a thread of its own, and tells `handler`
/// what changed since the look before; the first look is made before this returns, so that
/// every change made after it is seen. Stops when the returned value is dropped.
fn poll<H>(root: &Path, interval: Duration, handler: H) -> Result<Watcher, WatchError>
where
    H: Fn(WatchMessage) + Send + 'static,
{
    let (stop, stopped) = mpsc::channel::<()>();
    let (folder, root) = (root.display().to_string(), root.to_owned());
    let mut before = Arc::new(look(&root, &Vec::new()));
    let held = Arc::new(AtomicBool::new(false));
    std::thread::Builder::new()
        .name("crier-poller".into())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                let now = Arc::new(look(&root, &before));
                let hints = compare(&before, &now);
                if !hints.is_empty() {
                    handler(WatchMessage::Hints(hints));
                }
                if !held.swap(true, AtomicOrdering::AcqRel) {
                    let look = Look { root: root.clone(), files: now.clone(), _held: Arc::new(Held(held.clone())) };
                    handler(WatchMessage::Looked(look));
                }
                before = now;
            }
        })
        .map_err(|e| WatchError(format!("cannot start a thread to poll {folder}: {e}")))?;
    Ok(Watcher::new(stop))
}

/// Starts watching `root` recursively, sending what it sees to `handler`. With `poll`, or when
/// inotify cannot watch (its watch limit reached), polls every `interval` instead.
pub fn start<H>(root: &Path, poll: bool, interval: Duration, handler: H) -> Result<Watcher, WatchError>
where
    H: Fn(WatchMessage) + Clone + Send + 'static,
{
    if poll {
        return self::poll(root, interval, handler);
    }
    let events = {
        let handler = handler.clone();
        move |result: notify::Result<notify::Event>| match result {
            Ok(event) => handler(WatchMessage::Hints(hints(event))),
            Err(error) => handler(WatchMessage::Lost(error.to_string())),
        }
    };
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
            self::poll(root, interval, handler)
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

    /// Waits for the poller's next look that shows `done`; returns the hints it sent until then.
    fn until(messages: &mpsc::Receiver<WatchMessage>, done: impl Fn(&Look) -> bool) -> Vec<Hint> {
        let mut hints = Vec::new();
        loop {
            match messages.recv_timeout(Duration::from_secs(10)).expect("the poller looks again") {
                WatchMessage::Hints(more) => hints.extend(more),
                WatchMessage::Looked(look) if done(&look) => return hints,
                _ => {}
            }
        }
    }

    #[test]
    fn the_poller_tells_apart_two_saves_in_one_second_and_sees_files_go() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.md"), dir.path().join("b.md"));
        std::fs::write(&a, "one").unwrap();
        std::fs::write(dir.path().join(".a.md.swp"), "hidden").unwrap();
        let second = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let save = |text: &str, millis: u64| {
            std::fs::write(&a, text).unwrap();
            let file = std::fs::File::options().write(true).open(&a).unwrap();
            file.set_modified(second + Duration::from_millis(millis)).unwrap();
        };
        save("one", 100);
        let (sender, messages) = mpsc::channel();
        let handler = move |message| sender.send(message).unwrap();
        let watcher = poll(dir.path(), Duration::from_millis(10), handler).unwrap();
        // The same size, modified in the same second as the version the first look saw.
        save("two", 600);
        // A look may come between a write and its time set: the same hint twice.
        let has = |look: &Look, path: &PathBuf| look.files.iter().find(|(p, _)| p == path).map(|(_, f)| *f);
        let mut hints = until(&messages, |look| has(look, &a) == Fingerprint::of(&a));
        hints.dedup();
        assert_eq!(hints, [Hint::Writing(a.clone())]);
        std::fs::write(&b, "new").unwrap();
        let mut hints = until(&messages, |look| has(look, &b) == Fingerprint::of(&b));
        hints.dedup();
        assert_eq!(hints, [Hint::Writing(b.clone())]);
        std::fs::remove_file(&b).unwrap();
        let hints = until(&messages, |look| has(look, &b).is_none());
        assert_eq!(hints, [Hint::Ready(b.clone())]);
        let hints = until(&messages, |look| {
            assert!(!look.files.iter().any(|(path, _)| path.ends_with(".a.md.swp")), "hidden: {look:?}");
            true
        });
        assert!(hints.is_empty(), "nothing changed: {hints:?}");
        drop(watcher);
    }

    #[test]
    fn a_look_follows_links_inside_once_and_keeps_what_it_cannot_read() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("posts");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(dir.path().join("outside")).unwrap();
        std::fs::write(root.join("sub/a.md"), "a").unwrap();
        std::fs::write(dir.path().join("outside/b.md"), "b").unwrap();
        let link = |target: &Path, at: &str| std::os::unix::fs::symlink(target, root.join(at)).unwrap();
        link(&root, "sub/loop");
        link(&dir.path().join("outside"), "out");
        link(&root.join("sub"), "alias");
        let paths: Vec<PathBuf> = look(&root, &Vec::new()).into_iter().map(|(path, _)| path).collect();
        // As the posts' walk sees them: a link inside is a folder of its own; a loop and a link
        // outside are not walked.
        assert_eq!(paths, [root.join("alias/a.md"), root.join("sub/a.md")]);
        let unreadable = dir.path().join("gone");
        let before = vec![(unreadable.join("x.md"), Fingerprint::of(&root.join("sub/a.md")).unwrap())];
        assert_eq!(look(&unreadable, &before), before, "kept as it was");
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
