//! The posts folder, read: the only module that reads post files. Walking the folder, a file's
//! fingerprint, its front matter alone or its whole text, and the bodies that feeds need.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::budget::{self, Skipped};
use crate::config::Config;
use crate::post::{self, PostContext, PostError, PostMeta, PostWarning};
use crate::render::{self, Rendered};

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
    /// The inode's change time (ns since the epoch): a file rewritten with its size and
    /// modification time put back, or made unreadable, changes it.
    changed: i64,
}

impl Fingerprint {
    pub fn of(path: &Path) -> Option<Fingerprint> {
        std::fs::metadata(path).ok().map(|meta| Fingerprint::from_metadata(&meta))
    }

    pub fn from_metadata(meta: &std::fs::Metadata) -> Fingerprint {
        use std::os::unix::fs::MetadataExt;
        let changed = meta.ctime().saturating_mul(1_000_000_000).saturating_add(meta.ctime_nsec());
        Fingerprint { len: meta.len(), modified: meta.modified().ok(), inode: meta.ino(), changed }
    }

    /// What the scan index keeps: the length, the modification time in nanoseconds since the
    /// epoch (`i64::MIN` when unknown or out of range, which matches no file), the inode and the
    /// change time.
    pub fn parts(&self) -> (u64, i64, u64, i64) {
        let nanos = self
            .modified
            .and_then(|m| m.duration_since(SystemTime::UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_nanos()).ok())
            .unwrap_or(i64::MIN);
        (self.len, nanos, self.inode, self.changed)
    }

    /// The fingerprint [`Fingerprint::parts`] gave.
    pub fn from_parts(len: u64, nanos: i64, inode: u64, changed: i64) -> Fingerprint {
        let modified = u64::try_from(nanos).ok().map(|n| SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(n));
        Fingerprint { len, modified, inode, changed }
    }

    /// A stamp for the version of the file at `path` with this fingerprint: the same in every
    /// process, so that what was written from a version can be known again after a restart.
    pub fn version(&self, path: &Path) -> u64 {
        use std::os::unix::ffi::OsStrExt;
        let (len, nanos, inode, changed) = self.parts();
        let mut bytes = path.as_os_str().as_bytes().to_vec();
        let parts = [len.to_le_bytes(), nanos.to_le_bytes(), inode.to_le_bytes(), changed.to_le_bytes()];
        parts.iter().for_each(|b| bytes.extend_from_slice(b));
        xxhash_rust::xxh3::xxh3_64(&bytes)
    }
}

/// Every post file under `dir` (the posts folder `root` or a folder inside it), sorted; folders
/// and files that are hidden or editor leftovers are skipped. Symbolic links are followed while
/// they lead inside `root`; one that leads outside is not read, and is reported, as are folders
/// that cannot be read and link loops.
pub fn post_files(root: &Path, dir: &Path) -> (Vec<PathBuf>, Vec<PostError>) {
    let mut files = Vec::new();
    let problems = walk_post_files(root, dir, |path| files.push(path));
    (files, problems)
}

/// [`post_files`] handed to `each` one at a time, in order, rather than gathered.
fn walk_post_files(root: &Path, dir: &Path, mut each: impl FnMut(PathBuf)) -> Vec<PostError> {
    let outside = std::cell::RefCell::new(Vec::new());
    let real_root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_owned());
    let walker = walkdir::WalkDir::new(dir).follow_links(true).sort_by_file_name().into_iter();
    let walker = walker.filter_entry(|e| {
        if e.depth() > 0 && is_hidden(e.file_name()) {
            return false;
        }
        // The folder walked may itself lie below a link (a watcher's hint); below it, links.
        let check = e.path_is_symlink() || (e.depth() == 0 && dir != root);
        let escape = check.then(|| outside_of(&real_root, e.path())).flatten();
        escape.map(|error| outside.borrow_mut().push(error)).is_none()
    });
    let mut problems = Vec::new();
    for entry in walker {
        match entry {
            Ok(entry) if entry.file_type().is_file() => {
                if entry.file_name().to_str().is_some_and(post::is_post_file_name) {
                    each(entry.into_path());
                }
            }
            Ok(_) => {}
            Err(e) => problems.push(walk_error(dir, &e)),
        }
    }
    problems.extend(outside.into_inner());
    problems
}

/// Every post file of every folder posts are read from (the posts folder, and a Jekyll site's
/// `_drafts`), and what kept any from being listed.
pub fn all_post_files(config: &Config) -> (Vec<PathBuf>, Vec<PostError>) {
    let mut files = Vec::new();
    let problems = each_post_file(config, |path| files.push(path));
    (files, problems)
}

/// [`all_post_files`] handed to `each` one at a time, in walk order: a whole site's paths are
/// never held at once.
pub fn each_post_file(config: &Config, mut each: impl FnMut(PathBuf)) -> Vec<PostError> {
    let mut problems = Vec::new();
    let folders = post_folders(config);
    for folder in &folders {
        let inner = |path: &Path| in_inner_folder(&folders, folder, path);
        let trouble = walk_post_files(folder, folder, |path| {
            if !inner(&path) {
                each(path);
            }
        });
        problems.extend(trouble.into_iter().filter(|problem| !inner(&problem.path)));
    }
    problems
}

fn post_folders(config: &Config) -> Vec<&Path> {
    config.post_folders().filter(|f| PathKind::of(f) == PathKind::Folder).collect()
}

/// Whether `path`, under `folder`, lies in another posts folder inside it (`_drafts` inside the
/// posts folder), which is read as itself only.
fn in_inner_folder(folders: &[&Path], folder: &Path, path: &Path) -> bool {
    folders.iter().any(|f| *f != folder && f.starts_with(folder) && path.starts_with(f))
}

/// Every post file of every posts folder with its fingerprint, walking without following links,
/// one `stat` per file, in parallel: the quick look that tells whether anything changed since
/// the scan index was saved. `None` when a folder holds a symbolic link or an entry that cannot
/// be read, which only the full walk ([`all_post_files`]) can judge.
pub fn quick_fingerprints(config: &Config) -> Option<Vec<(PathBuf, Fingerprint)>> {
    let folders = post_folders(config);
    let mut files = Vec::new();
    for folder in &folders {
        files.extend(fingerprints_under(folder, 0, &|dir| in_inner_folder(&folders, folder, dir))?);
    }
    Some(files)
}

/// How many folders below a posts folder the quick look goes (each is a frame of its recursion).
const DEEPEST: usize = 64;

/// Whether a file or folder of the posts folder is left out, as hidden: its name starts with a dot
/// (`.git`, an editor's `.post.md.swp`).
pub fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().starts_with(b".")
}

/// The post files under `dir` (hidden names left out, and the folders `inner` names), with their
/// fingerprints. Each file is looked at by its name in its open folder, not by its whole path
/// again (the kernel's walk along the path was half the cost), in parallel; the folder is closed
/// before the folders in it are walked, so that only the folders being read are open. `None`
/// also past [`DEEPEST`] folders down (the full walk judges a tree that deep).
fn fingerprints_under(
    dir: &Path,
    depth: usize,
    inner: &(dyn Fn(&Path) -> bool + Sync),
) -> Option<Vec<(PathBuf, Fingerprint)>> {
    use rayon::prelude::*;
    if depth > DEEPEST {
        return None;
    }
    let (mut posts, mut folders) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir(dir).ok()? {
        let entry = entry.ok()?;
        let name = entry.file_name();
        if is_hidden(&name) {
            continue;
        }
        let kind = entry.file_type().ok()?;
        if kind.is_symlink() {
            return None;
        } else if kind.is_dir() {
            folders.push(entry.path());
        } else if kind.is_file() && name.to_str().is_some_and(post::is_post_file_name) {
            posts.push(entry);
        }
    }
    let fingerprint =
        |entry: &std::fs::DirEntry| Some((entry.path(), Fingerprint::from_metadata(&entry.metadata().ok()?)));
    let mut files = posts.par_iter().map(fingerprint).collect::<Option<Vec<_>>>()?;
    drop(posts);
    let below = |folder: &PathBuf| match inner(folder) {
        true => Some(Vec::new()),
        false => fingerprints_under(folder, depth + 1, inner),
    };
    files.extend(folders.par_iter().map(below).collect::<Option<Vec<_>>>()?.into_iter().flatten());
    Some(files)
}

fn walk_error(dir: &Path, error: &walkdir::Error) -> PostError {
    let path = error.path().unwrap_or(dir).to_owned();
    let message = match (error.loop_ancestor(), error.io_error()) {
        (Some(ancestor), _) => {
            format!("is a symbolic link back to {}, which contains it: a loop; remove the link", ancestor.display())
        }
        (None, Some(io)) => format!("cannot read: {io}; check the permissions"),
        (None, None) => format!("cannot read: {error}; check the permissions"),
    };
    PostError { path, line: 1, message }
}

/// The error for a path that resolves, through symbolic links, outside the posts folder `root`, if
/// it does: a link there could publish any file crier may read.
pub fn link_outside(root: &Path, path: &Path) -> Option<PostError> {
    outside_of(&std::fs::canonicalize(root).unwrap_or_else(|_| root.to_owned()), path)
}

/// [`link_outside`], with the posts folder already resolved.
fn outside_of(real_root: &Path, path: &Path) -> Option<PostError> {
    let target = std::fs::canonicalize(path).ok()?;
    (!target.starts_with(real_root)).then(|| PostError {
        path: path.to_owned(),
        line: 1,
        message: format!(
            "leads through a symbolic link to {}, outside the posts folder, and is not read; move the file into the posts folder",
            target.display()
        ),
    })
}

/// How much of a post file to read first when only its metadata is wanted.
const HEAD_BYTES: usize = 1024;

/// A post file that could not be read or does not parse, with its fingerprint as it was when it
/// was opened (`None`: it could not be opened): a file still being written when it was read has
/// another fingerprint now, so that the change is seen and it is read again.
#[derive(Debug)]
pub struct ReadError {
    pub error: PostError,
    pub fingerprint: Option<Fingerprint>,
}

impl From<ReadError> for PostError {
    fn from(read: ReadError) -> PostError {
        read.error
    }
}

/// Reads and parses one post file. With `metadata_only`, reads just far enough to see the end of
/// the front matter (the body comes back empty and its bytes unchecked).
pub fn read_post(
    path: &Path,
    cx: &PostContext<'_>,
    metadata_only: bool,
) -> Result<(PostMeta, String, std::fs::Metadata), ReadError> {
    use std::io::Read;
    let io_error = |e: std::io::Error| PostError {
        path: path.to_owned(),
        line: 1,
        message: format!("cannot read: {e}; check that the file exists and crier may read it"),
    };
    let unopened = |e| ReadError { error: io_error(e), fingerprint: None };
    let mut file = std::fs::File::open(path).map_err(unopened)?;
    let metadata = file.metadata().map_err(unopened)?;
    let failed = |error| ReadError { error, fingerprint: Some(Fingerprint::from_metadata(&metadata)) };
    if metadata.len() > cx.max_bytes {
        return Err(failed(post::too_large(path, metadata.len(), cx.max_bytes)));
    }
    let modified = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let mut bytes = Vec::with_capacity(if metadata_only { HEAD_BYTES } else { metadata.len() as usize + 1 });
    if metadata_only {
        (&mut file).take(HEAD_BYTES as u64).read_to_end(&mut bytes).map_err(|e| failed(io_error(e)))?;
        if let Some(end) = post::front_matter_len(&bytes) {
            bytes.truncate(end);
            let parsed = parse_read(path, &bytes, modified, cx).map_err(failed)?;
            return Ok((parsed.0, String::new(), metadata));
        }
    }
    file.read_to_end(&mut bytes).map_err(|e| failed(io_error(e)))?;
    let (meta, body) = parse_read(path, &bytes, modified, cx).map_err(failed)?;
    Ok((meta, body.into_owned(), metadata))
}

/// Parses the bytes read of the post file at `path`. A unit test may change the file just before
/// (see [`after_read`]), as an editor still saving it would.
fn parse_read<'b>(
    path: &Path,
    bytes: &'b [u8],
    modified: SystemTime,
    cx: &PostContext<'_>,
) -> Result<(PostMeta, std::borrow::Cow<'b, str>), PostError> {
    #[cfg(test)]
    after_read::run(path);
    post::parse(path, bytes, modified, cx)
}

/// What a unit test does to a post file once it has been read and before it is parsed: the race
/// that a failed read's fingerprint (as the file was opened) is kept for. Each action is for one
/// path (a test's own temporary folder), so tests running alongside are not touched.
#[cfg(test)]
pub(crate) mod after_read {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    type Action = Box<dyn FnMut(&Path) + Send>;
    static ACTIONS: Mutex<Vec<(PathBuf, Action)>> = Mutex::new(Vec::new());

    /// Has `action` run on `path` after each read of it.
    pub fn set(path: PathBuf, action: impl FnMut(&Path) + Send + 'static) {
        ACTIONS.lock().unwrap().push((path, Box::new(action)));
    }

    pub(super) fn run(path: &Path) {
        let mut actions = ACTIONS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        actions.iter_mut().filter(|(p, _)| p == path).for_each(|(_, action)| action(path));
    }
}

/// Reads a post file whole, as [`read_post`] does, and gives its body too; when the file as a
/// whole does not parse but its front matter alone does (a body that is not UTF-8), gives what
/// reading only up to the front matter's end gives, without a body: the post is then what its
/// front matter makes it (a draft, a post to come, a post whose body fails when it is rendered),
/// as when it is read that far only. Such a file is read twice.
pub fn read_post_or_head(
    path: &Path,
    cx: &PostContext<'_>,
) -> Result<(PostMeta, Option<String>, std::fs::Metadata), ReadError> {
    match read_post(path, cx, false) {
        Ok((meta, body, metadata)) => Ok((meta, Some(body), metadata)),
        Err(_) => read_post(path, cx, true).map(|(meta, _, metadata)| (meta, None, metadata)),
    }
}

/// The result of reading a posts folder.
#[derive(Debug, Default)]
pub struct Scan {
    pub posts: Vec<PostMeta>,
    pub errors: Vec<PostError>,
    pub drafts: usize,
}

impl Scan {
    /// Every warning, with the file it is about.
    pub fn warnings(&self) -> impl Iterator<Item = (&Path, &PostWarning)> {
        self.posts.iter().flat_map(|p| p.warnings.iter().map(move |w| (&*p.path, w)))
    }
}

/// Runs `work` on each post in parallel, within the configured time budget per post: a post
/// whose work overruns it, or panics, comes back as an error naming the file, and the others do
/// not wait for it. `progress` is called as each post is done.
pub fn read_each<T, R, F>(
    items: Vec<T>,
    config: &Arc<Config>,
    progress: &dyn Fn(),
    path_of: fn(&T) -> &Path,
    work: F,
) -> Vec<(PathBuf, Result<R, PostError>)>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(&T, &PostContext<'_>, &Config) -> Result<R, PostError> + Send + Sync + 'static,
{
    let paths: Vec<PathBuf> = items.iter().map(|item| path_of(item).to_owned()).collect();
    let shared = config.clone();
    let results =
        budget::map(items, config.post_time_budget, progress, move |item| work(&item, &shared.post_context(), &shared));
    paths
        .into_iter()
        .zip(results)
        .map(|(path, result)| {
            let result = result.unwrap_or_else(|skipped| Err(skipped_error(&path, &skipped, config)));
            (path, result)
        })
        .collect()
}

fn skipped_error(path: &Path, skipped: &Skipped, config: &Config) -> PostError {
    let message = match skipped {
        Skipped::OverBudget(took) => format!(
            "reading and rendering this post took over {} ms (`post_time_budget_ms`; given up after \
             {took:?}); the other posts are published without waiting for it; split the post or raise \
             `post_time_budget_ms`, and please report the file: crier should be fast on any post",
            config.post_time_budget.as_millis()
        ),
        Skipped::Panicked(why) => {
            format!("crier failed on this post ({why}); the other posts are published; please report the file as a bug")
        }
    };
    PostError { path: path.to_owned(), line: 1, message }
}

/// Reads every byte of every post under the configured folder, in parallel, and renders each one
/// that is published, keeping metadata only, with the warnings of both: what `crier check`
/// reports on.
pub fn scan(config: &Arc<Config>) -> Scan {
    let (files, mut errors) = all_post_files(config);
    let results = read_each(files, config, &|| {}, PathBuf::as_path, |path, cx, config| {
        let (mut meta, body, _) = read_post(path, cx, false)?;
        if !meta.draft {
            meta.warnings.extend(render::render(&meta, &body, config.summary_rule()).warnings);
        }
        Ok(meta)
    });
    let mut scan = Scan::default();
    for (_, result) in results {
        match result {
            Ok(meta) if meta.draft => scan.drafts += 1,
            Ok(meta) => scan.posts.push(meta),
            Err(error) => errors.push(error),
        }
    }
    scan.errors = errors;
    scan
}

/// Renders the bodies of `posts`, reading each file again; a file that fails to read or parse now
/// (a body that is not UTF-8, or a file changed since it was scanned) is returned as an error.
/// With `summaries_only`, the renderings have their summaries and warnings but no content.
pub fn render_posts(
    posts: Vec<Arc<PostMeta>>,
    config: &Arc<Config>,
    progress: &dyn Fn(),
    summaries_only: bool,
) -> (HashMap<PathBuf, Arc<Rendered>>, Vec<PostError>) {
    let results = read_each(
        posts,
        config,
        progress,
        |meta| &meta.path,
        move |meta, cx, config| {
            let (_, body, _) = read_post(&meta.path, cx, false)?;
            match summaries_only {
                true => Ok(render::summarize(meta, &body, config.summary_rule())),
                false => Ok(render::render(meta, &body, config.summary_rule())),
            }
        },
    );
    let mut errors = Vec::new();
    let mut rendered = HashMap::with_capacity(results.len());
    for (path, result) in results {
        match result {
            Ok(r) => {
                rendered.insert(path, Arc::new(r));
            }
            Err(error) => errors.push(error),
        }
    }
    (rendered, errors)
}

/// What is at a path now (links followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    Folder,
    File,
    /// Nothing, or nothing a post can be: a FIFO, a socket or a device is never opened (opening
    /// a FIFO would block until someone writes to it).
    Missing,
}

impl PathKind {
    pub fn of(path: &Path) -> PathKind {
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => PathKind::Folder,
            Ok(meta) if meta.is_file() => PathKind::File,
            _ => PathKind::Missing,
        }
    }
}

/// A folder's device and inode, or `None` when it is not a folder: what tells a posts folder
/// replaced by another (a rename-swap deploy) from the same one.
pub fn folder_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().filter(|m| m.is_dir()).map(|m| (m.dev(), m.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Overrides, RawConfig};
    use std::fs;

    fn config(dir: &Path, drafts: bool) -> Config {
        let mut raw: RawConfig = toml::from_str("base_url = \"https://e.org/\"").unwrap();
        raw.drafts = drafts.then(|| dir.join("posts/_drafts"));
        let overrides =
            Overrides { posts: Some(dir.join("posts")), feeds: Some(dir.join("feeds")), ..Default::default() };
        Config::from_raw(raw, dir, &overrides).unwrap()
    }

    /// A file that fails comes back with its fingerprint as it was opened, not as it is when
    /// the failure is handled: a post read while it was still being written (empty, say) is
    /// then read again once the rest of it is seen.
    #[test]
    fn a_failed_read_keeps_the_fingerprint_of_what_was_read() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), false);
        let cx = config.post_context();
        fs::create_dir_all(dir.path().join("posts")).unwrap();
        let path = dir.path().join("posts/a.md");
        fs::write(&path, "").unwrap();
        let as_opened = Fingerprint::of(&path);
        let failed = read_post(&path, &cx, false).unwrap_err();
        assert!(failed.error.message.contains("empty"), "{}", failed.error);
        fs::write(&path, "---\ntitle: A\ndate: 2021-01-01\n---\nbody\n").unwrap();
        assert_eq!(failed.fingerprint, as_opened);
        assert_ne!(failed.fingerprint, Fingerprint::of(&path));
        let missing = read_post(&dir.path().join("posts/gone.md"), &cx, true).unwrap_err();
        assert_eq!(missing.fingerprint, None, "not opened");
    }

    /// The quick look (build with nothing changed) lists exactly the post files the full walk
    /// lists, hidden names, other files and a drafts folder inside the posts folder included,
    /// each with its fingerprint; a symbolic link anywhere inside, or a tree deeper than 64
    /// folders, leaves the judging to the full walk.
    #[test]
    fn the_quick_look_lists_what_the_full_walk_lists() {
        let dir = tempfile::tempdir().unwrap();
        let files = [
            "a.md",
            "2024/b.markdown",
            "2024/05/c.html",
            "x/y/z/d.md",
            ".hidden.md",
            ".git/e.md",
            "x/.cache/f.md",
            "notes.txt",
            "x/draft.md~",
            "_drafts/g.md",
            "_drafts/sub/h.md",
        ];
        for rel in files {
            let path = dir.path().join("posts").join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, rel).unwrap();
        }
        for drafts in [false, true] {
            let config = config(dir.path(), drafts);
            let (mut full, problems) = all_post_files(&config);
            assert!(problems.is_empty(), "{problems:?}");
            full.sort();
            assert!(full.len() >= 6, "drafts {drafts}: {full:?}");
            let mut quick = quick_fingerprints(&config).expect("no link, nothing unreadable");
            quick.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(quick.iter().map(|(path, _)| path.clone()).collect::<Vec<_>>(), full, "drafts {drafts}");
            for (path, fingerprint) in &quick {
                assert_eq!(Some(*fingerprint), Fingerprint::of(path), "{}", path.display());
            }
        }
        // A tree deeper than the quick look goes is left to the full walk, as a link is.
        let deep: PathBuf = (0..70).map(|i| format!("d{i}")).collect();
        let deep = dir.path().join("posts").join(deep);
        fs::create_dir_all(&deep).unwrap();
        fs::write(deep.join("deep.md"), "deep").unwrap();
        assert!(all_post_files(&config(dir.path(), false)).0.contains(&deep.join("deep.md")));
        assert!(quick_fingerprints(&config(dir.path(), false)).is_none());
        fs::remove_dir_all(dir.path().join("posts/d0")).unwrap();
        assert!(quick_fingerprints(&config(dir.path(), false)).is_some());
        std::os::unix::fs::symlink(dir.path().join("posts/a.md"), dir.path().join("posts/x/y/link.md")).unwrap();
        assert!(quick_fingerprints(&config(dir.path(), false)).is_none());
    }
}
