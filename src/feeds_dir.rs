//! Feed bytes to files: each document beside its gzip and brotli encodings, written atomically,
//! only when its bytes change, and stale documents removed.
//!
//! An unchanged document keeps its files and their modification time, which is what a static
//! server (and crier's own `Last-Modified`) reports.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;
use bytes::Bytes;

use crate::config::{Compression, Config};
use crate::documents;
use crate::site::FEED_FOLDERS;

/// An encoding written beside every document, as `<document><suffix>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Gzip,
    Brotli,
}

impl Encoding {
    pub const ALL: [Encoding; 2] = [Encoding::Gzip, Encoding::Brotli];

    pub fn suffix(self) -> &'static str {
        match self {
            Encoding::Gzip => ".gz",
            Encoding::Brotli => ".br",
        }
    }

    /// The file that holds this encoding of the document at `path`.
    pub fn beside(self, path: &Path) -> PathBuf {
        let mut os = path.as_os_str().to_owned();
        os.push(self.suffix());
        PathBuf::from(os)
    }
}

/// Prefix of temporary files, so leftovers of a crash can be recognised and removed.
const TEMP_PREFIX: &str = ".crier-";

/// What happened to one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Written,
    Unchanged,
}

/// gzip of `bytes` at `level`, deterministic (no file name, no timestamp in the header).
pub fn gzip(bytes: &[u8], level: u32) -> Vec<u8> {
    let mut encoder =
        flate2::GzBuilder::new().mtime(0).write(Vec::with_capacity(bytes.len() / 3), flate2::Compression::new(level));
    encoder.write_all(bytes).expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail")
}

/// brotli of `bytes` at `quality`.
pub fn brotli(bytes: &[u8], quality: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() / 3);
    let params = brotli::enc::BrotliEncoderParams {
        quality: quality as i32,
        lgwin: 18,
        size_hint: bytes.len(),
        ..Default::default()
    };
    brotli::BrotliCompress(&mut &bytes[..], &mut out, &params).expect("compressing into a Vec cannot fail");
    out
}

/// A document with its encodings, and when its bytes last changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub identity: Bytes,
    pub gzip: Bytes,
    pub brotli: Bytes,
    pub modified: SystemTime,
}

impl Encoded {
    pub fn compress(identity: Vec<u8>, levels: Compression, modified: SystemTime) -> Encoded {
        let gzip = gzip(&identity, levels.gzip);
        let brotli = brotli(&identity, levels.brotli);
        Encoded { identity: exact(identity), gzip: exact(gzip), brotli: exact(brotli), modified }
    }

    /// The document alone, its encodings not made yet (served as it is until they are).
    pub fn identity_only(identity: Vec<u8>, modified: SystemTime) -> Encoded {
        Encoded { identity: exact(identity), gzip: Bytes::new(), brotli: Bytes::new(), modified }
    }

    /// Whether the encodings are made (an encoding of any document is never empty).
    pub fn is_encoded(&self) -> bool {
        !self.gzip.is_empty() && !self.brotli.is_empty()
    }

    /// No bytes, dated `modified`: what is left of a document whose bytes live in its files.
    pub fn empty(modified: SystemTime) -> Encoded {
        Encoded { identity: Bytes::new(), gzip: Bytes::new(), brotli: Bytes::new(), modified }
    }

    /// The bytes of one encoding.
    pub fn get(&self, encoding: Encoding) -> &Bytes {
        match encoding {
            Encoding::Gzip => &self.gzip,
            Encoding::Brotli => &self.brotli,
        }
    }
}

/// Bytes that hold on to no spare capacity: documents grow by doubling while they are written,
/// and a daemon keeps thousands of them.
/// A document's files as written: what a later run checks them against without reading them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnDisk {
    /// The modification time every file of the document was given (its `Last-Modified`).
    pub modified: SystemTime,
    /// The length and XXH3-128 of the document, then of its gzip and of its brotli encoding.
    pub files: [(u64, u128); 3],
}

impl OnDisk {
    pub fn of(encoded: &Encoded) -> OnDisk {
        let file = |bytes: &Bytes| (bytes.len() as u64, xxhash_rust::xxh3::xxh3_128(bytes));
        OnDisk { modified: encoded.modified, files: [&encoded.identity, &encoded.gzip, &encoded.brotli].map(file) }
    }
}

fn exact(mut bytes: Vec<u8>) -> Bytes {
    bytes.shrink_to_fit();
    Bytes::from(bytes)
}

/// The encodings and time of `path` when it holds exactly `identity` and both encodings exist.
/// The document's time is used: encodings restored later carry it too.
fn read_current(path: &Path, identity: &[u8]) -> Option<Encoded> {
    let meta = fs::metadata(path).ok()?;
    if meta.len() != identity.len() as u64 || fs::read(path).ok()? != identity {
        return None;
    }
    // Encodings are written with the document's time; another time means a write was cut short.
    let modified = meta.modified().ok()?;
    let current = |encoding: Encoding| -> Option<Vec<u8>> {
        let path = encoding.beside(path);
        (fs::metadata(&path).ok()?.modified().ok()? == modified).then(|| fs::read(&path).ok()).flatten()
    };
    Some(Encoded {
        identity: Bytes::copy_from_slice(identity),
        gzip: current(Encoding::Gzip)?.into(),
        brotli: current(Encoding::Brotli)?.into(),
        modified,
    })
}

/// The feeds folder, as crier writes it.
#[derive(Debug, Clone)]
pub struct FeedsDir {
    root: PathBuf,
    levels: Compression,
}

/// What [`FeedsDir::put`] did with a document.
#[derive(Debug)]
pub struct Put {
    /// The document with its encodings and the time its bytes last changed: good to serve even
    /// when writing failed.
    pub encoded: Encoded,
    pub outcome: Outcome,
    /// Why the files could not be written, if they could not.
    pub error: Option<anyhow::Error>,
}

impl FeedsDir {
    /// The feeds folder of `config`, with its compression settings.
    pub fn new(config: &Config) -> FeedsDir {
        FeedsDir::at(&config.feeds, config.compression)
    }

    pub fn at(root: impl Into<PathBuf>, levels: Compression) -> FeedsDir {
        FeedsDir { root: root.into(), levels }
    }

    /// Makes `identity` current at `rel` (a `/`-separated path under the folder). When the folder
    /// already holds these bytes and both encodings, the encodings and time come from the files
    /// (nothing is compressed or written: a restart keeps `Last-Modified`); otherwise they are
    /// computed, stamped `now` and written.
    pub fn put(&self, rel: &str, identity: Vec<u8>, now: SystemTime) -> Put {
        let (encoded, outcome) = self.prepare(rel, identity, now);
        let error = match outcome {
            Outcome::Written => self.write(rel, &encoded).err(),
            Outcome::Unchanged => None,
        };
        Put { encoded, outcome, error }
    }

    /// What [`FeedsDir::put`] would make of `identity` at `rel`, without writing: the files'
    /// encodings and time when they hold these bytes (`Unchanged`), else new ones stamped `now`
    /// (`Written` once [`FeedsDir::write`] writes them).
    pub fn prepare(&self, rel: &str, identity: Vec<u8>, now: SystemTime) -> (Encoded, Outcome) {
        match read_current(&self.root.join(rel), &identity) {
            Some(encoded) => (encoded, Outcome::Unchanged),
            None => (self.compress(identity, now), Outcome::Written),
        }
    }

    /// `identity` with its encodings at this folder's levels, stamped `now`.
    pub fn compress(&self, identity: Vec<u8>, now: SystemTime) -> Encoded {
        Encoded::compress(identity, self.levels, now)
    }

    /// Writes a document and its encodings (encodings first: whoever reads the document finds
    /// encodings at least as new beside it).
    pub fn write(&self, rel: &str, encoded: &Encoded) -> anyhow::Result<()> {
        let path = self.root.join(rel);
        let parent = path.parent().unwrap_or(&self.root);
        fs::create_dir_all(parent).with_context(|| format!("cannot create folder {}", parent.display()))?;
        for encoding in Encoding::ALL {
            write_atomic(&encoding.beside(&path), encoded.get(encoding), encoded.modified)?;
        }
        write_atomic(&path, &encoded.identity, encoded.modified)?;
        Ok(())
    }

    /// The document at `rel` and its encodings as its files hold them, when all three are there
    /// and were written together (the same modification time).
    pub fn read(&self, rel: &str) -> Option<Encoded> {
        let path = self.root.join(rel);
        let identity = fs::read(&path).ok()?;
        read_current(&path, &identity)
    }

    /// Whether the files of the document at `rel` still have the lengths and modification time
    /// `on_disk` gives (a file rewritten or removed since does not; its bytes are not read).
    pub fn still(&self, rel: &str, on_disk: &OnDisk) -> bool {
        let files = [None, Some(Encoding::Gzip), Some(Encoding::Brotli)].map(|e| self.file_of(rel, e));
        files.iter().zip(on_disk.files).all(|(path, (len, _))| {
            fs::metadata(path).is_ok_and(|m| m.len() == len && m.modified().ok() == Some(on_disk.modified))
        })
    }

    /// The file that holds the document at `rel`, or one of its encodings.
    pub fn file_of(&self, rel: &str, encoding: Option<Encoding>) -> PathBuf {
        let path = self.root.join(rel);
        match encoding {
            Some(encoding) => encoding.beside(&path),
            None => path,
        }
    }

    /// Removes one document and its encodings; a missing file is not an error.
    pub fn remove(&self, rel: &str) -> anyhow::Result<()> {
        let path = self.root.join(rel);
        for p in Encoding::ALL.map(|e| e.beside(&path)).into_iter().chain([path]) {
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("cannot remove {}", p.display())),
            }
        }
        Ok(())
    }

    /// Removes every document crier owns that is not in `keep` (paths relative to the folder),
    /// with its encodings, and leftover temporary files. Returns the documents that went.
    pub fn remove_stale(&self, keep: &HashSet<String>) -> anyhow::Result<Vec<String>> {
        self.sweep(keep, true)
    }

    /// The documents [`FeedsDir::remove_stale`] would remove, left in place.
    pub fn list_stale(&self, keep: &HashSet<String>) -> anyhow::Result<Vec<String>> {
        self.sweep(keep, false)
    }

    /// The folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A folder beside this one (`.<name>.crier-next` in the same parent, which a symbolic link
    /// to this folder is followed to) that a publish can write into while this one is served,
    /// then be swapped in with [`FeedsDir::swap_in`]. None for a folder without a name.
    pub fn staging(&self) -> Option<FeedsDir> {
        let (real, name) = self.real_name()?;
        Some(FeedsDir::at(real.with_file_name(format!(".{name}.crier-next")), self.levels))
    }

    /// The folders beside this one that crier left: the [`FeedsDir::staging`] one, and old ones
    /// set aside by [`FeedsDir::swap_in`] to be removed (`.<name>.crier-old.*`).
    pub fn leftovers(&self) -> Vec<FeedsDir> {
        let Some((real, name)) = self.real_name() else { return Vec::new() };
        let (next, old) = (format!(".{name}.crier-next"), format!(".{name}.crier-old."));
        let parent = real.parent().unwrap_or(Path::new("."));
        let names = fs::read_dir(parent).into_iter().flatten().flatten().map(|entry| entry.file_name());
        let left = names.filter(|n| n.to_str().is_some_and(|n| n == next || n.starts_with(&old)));
        left.map(|n| FeedsDir::at(parent.join(n), self.levels)).collect()
    }

    /// This folder's path with symbolic links followed (as it is, when it is not there), and its
    /// name.
    fn real_name(&self) -> Option<(PathBuf, String)> {
        let real = fs::canonicalize(&self.root).unwrap_or_else(|_| self.root.clone());
        let name = real.file_name()?.to_str()?.to_owned();
        Some((real, name))
    }

    /// Makes `to` hold what this folder holds (its subfolders, files and symbolic links, but not
    /// crier's temporary files), each file a hard link to this folder's: nothing is copied, and
    /// neither folder sees what is written through the other later, as crier writes a file by
    /// renaming a new one over it. Folders get the mode, owner and group of theirs (the owner and
    /// group as far as this process may give them). What `to` held before is removed first.
    /// Returns how many files were linked. Fails when this folder is not there, or the two are on
    /// different file systems.
    pub fn link_into(&self, to: &FeedsDir) -> anyhow::Result<usize> {
        remove_folder(&to.root)?;
        let linked = link_tree(&self.root, &to.root);
        if linked.is_err() {
            let _ = remove_folder(&to.root);
        }
        linked.with_context(|| format!("cannot link {} into {}", self.root.display(), to.root.display()))
    }

    /// Puts the folder `staged` where this one is, in one step, and this one aside, under a name
    /// of its own (`.<name>.crier-old.<pid>.<n>`), to be removed: a reader sees one folder or the
    /// other, never a mix, and a removal of the old folder never meets a later staged one. When
    /// the file system cannot exchange two names at once, this folder is moved aside first, then
    /// `staged` into its place, which leaves a moment without a folder. When there is no folder
    /// here yet, `staged` is simply moved here. Returns the old folder, if there was one.
    pub fn swap_in(&self, staged: &FeedsDir) -> anyhow::Result<Option<FeedsDir>> {
        let context = || format!("cannot move {} to {}", staged.root.display(), self.root.display());
        let Some((here, name)) = self.real_name().filter(|(here, _)| here.exists()) else {
            return fs::rename(&staged.root, &self.root).map(|()| None).with_context(context);
        };
        static SET_ASIDE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = SET_ASIDE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let aside = here.with_file_name(format!(".{name}.crier-old.{}.{n}", std::process::id()));
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        match renameat_with(CWD, &staged.root, CWD, &here, RenameFlags::EXCHANGE) {
            // Swapped: the old folder, now where `staged` was, is set aside as well as it can be.
            Ok(()) => match fs::rename(&staged.root, &aside) {
                Ok(()) => Ok(Some(FeedsDir::at(aside, self.levels))),
                Err(_) => Ok(Some(staged.clone())),
            },
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS | rustix::io::Errno::OPNOTSUPP) => {
                fs::rename(&here, &aside).with_context(context)?;
                if let Err(error) = fs::rename(&staged.root, &here) {
                    let _ = fs::rename(&aside, &here);
                    return Err(error).with_context(context);
                }
                Ok(Some(FeedsDir::at(aside, self.levels)))
            }
            Err(error) => Err(io::Error::from(error)).with_context(context),
        }
    }

    /// Removes the whole folder, if it is there.
    pub fn remove_all(&self) -> anyhow::Result<()> {
        remove_folder(&self.root)
    }

    fn sweep(&self, keep: &HashSet<String>, remove: bool) -> anyhow::Result<Vec<String>> {
        let mut removed = Vec::new();
        for sub in std::iter::once("").chain(FEED_FOLDERS) {
            let dir = self.root.join(sub);
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
            };
            for entry in entries {
                let entry = entry?;
                if !entry.file_type()?.is_file() {
                    continue;
                }
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
                let document = Encoding::ALL.iter().fold(name.as_str(), |n, e| n.strip_suffix(e.suffix()).unwrap_or(n));
                let rel = if sub.is_empty() { document.to_owned() } else { format!("{sub}/{document}") };
                let owned = documents::media_type(document).is_some();
                let stale = (owned && !keep.contains(&rel)) || name.starts_with(TEMP_PREFIX);
                if stale && remove {
                    fs::remove_file(entry.path())
                        .with_context(|| format!("cannot remove {}", entry.path().display()))?;
                }
                if stale && owned && name == document {
                    removed.push(rel);
                }
            }
        }
        Ok(removed)
    }
}

/// Removes the folder at `path` with everything in it; one that is not there is no error.
fn remove_folder(path: &Path) -> anyhow::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Makes the folder `to` (with `from`'s permissions) and, in it, a hard link to each file of
/// `from`, a copy of each symbolic link and the same of each subfolder. Crier's temporary files
/// are left out. Returns how many files were linked.
fn link_tree(from: &Path, to: &Path) -> io::Result<usize> {
    use rayon::prelude::*;
    fs::create_dir(to)?;
    let metadata = fs::metadata(from)?;
    fs::set_permissions(to, metadata.permissions())?;
    {
        use std::os::unix::fs::MetadataExt;
        // Not an error when not allowed: the folder then belongs to crier's user, as it would if
        // crier had made it.
        let _ = std::os::unix::fs::chown(to, Some(metadata.uid()), Some(metadata.gid()));
    }
    let entries = fs::read_dir(from)?.collect::<io::Result<Vec<_>>>()?;
    let linked = entries.into_par_iter().map(|entry| {
        let (kind, name) = (entry.file_type()?, entry.file_name());
        let target = to.join(&name);
        if kind.is_dir() {
            link_tree(&entry.path(), &target)
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(entry.path())?, target).map(|()| 0)
        } else if name.as_encoded_bytes().starts_with(TEMP_PREFIX.as_bytes()) {
            Ok(0)
        } else {
            fs::hard_link(entry.path(), target).map(|()| 1)
        }
    });
    linked.sum()
}

/// Writes a temporary file in the same folder, gives it mode 0644 and `modified`, then renames it
/// over `path`: readers see the old file or the new one, never a part.
fn write_atomic(path: &Path, bytes: &[u8], modified: SystemTime) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let write = || -> io::Result<()> {
        let mut file = tempfile::Builder::new().prefix(TEMP_PREFIX).tempfile_in(dir)?;
        file.write_all(bytes)?;
        set_readable(file.as_file())?;
        file.as_file().set_modified(modified)?;
        file.persist(path).map_err(|e| e.error)?;
        Ok(())
    };
    write().with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(unix)]
fn set_readable(file: &fs::File) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(0o644))
}

#[cfg(not(unix))]
fn set_readable(_file: &fs::File) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    const LEVELS: Compression = Compression { gzip: 6, brotli: 5 };

    /// `put`, with the write failure as the error.
    fn put(feeds: &FeedsDir, rel: &str, bytes: &[u8], now: SystemTime) -> anyhow::Result<Outcome> {
        let put = feeds.put(rel, bytes.to_vec(), now);
        put.error.map_or(Ok(put.outcome), Err)
    }

    #[test]
    fn encodings_round_trip_and_are_deterministic() {
        let text = "以客户为中心 ".repeat(200);
        let gz = gzip(text.as_bytes(), 6);
        assert_eq!(gz, gzip(text.as_bytes(), 6));
        let mut back = String::new();
        flate2::read::GzDecoder::new(&gz[..]).read_to_string(&mut back).unwrap();
        assert_eq!(back, text);
        let br = brotli(text.as_bytes(), 5);
        let mut back = Vec::new();
        brotli::BrotliDecompress(&mut &br[..], &mut back).unwrap();
        assert_eq!(back, text.as_bytes());
    }

    #[test]
    fn put_writes_once_and_keeps_unchanged_files() {
        let dir = tempfile::tempdir().unwrap();
        let feeds = FeedsDir::at(dir.path(), LEVELS);
        let t1 = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        assert_eq!(put(&feeds, "categories/新闻.rss", b"<rss/>", t1).unwrap(), Outcome::Written);
        let path = dir.path().join("categories/新闻.rss");
        for p in [path.clone(), Encoding::Gzip.beside(&path), Encoding::Brotli.beside(&path)] {
            let meta = fs::metadata(&p).unwrap();
            assert_eq!(meta.modified().unwrap(), t1, "{}", p.display());
            #[cfg(unix)]
            assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777, 0o644);
        }
        let t2 = t1 + std::time::Duration::from_secs(60);
        assert_eq!(put(&feeds, "categories/新闻.rss", b"<rss/>", t2).unwrap(), Outcome::Unchanged);
        assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), t1);
        // An encoding gone missing: the set is written again, all three with one new time.
        fs::remove_file(Encoding::Brotli.beside(&path)).unwrap();
        assert_eq!(put(&feeds, "categories/新闻.rss", b"<rss/>", t2).unwrap(), Outcome::Written);
        assert_eq!(fs::metadata(Encoding::Brotli.beside(&path)).unwrap().modified().unwrap(), t2);
        assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), t2);
        let fresh = feeds.put("categories/新闻.rss", b"<rss/>".to_vec(), t2 + std::time::Duration::from_secs(5));
        let current = fresh.encoded;
        assert_eq!(fresh.outcome, Outcome::Unchanged);
        assert_eq!(current.modified, t2, "an unchanged document keeps its time");
        assert_eq!(current.gzip, gzip(b"<rss/>", LEVELS.gzip));
        assert_eq!(put(&feeds, "categories/新闻.rss", b"<rss></rss>", t2).unwrap(), Outcome::Written);
        assert_eq!(fs::read(&path).unwrap(), b"<rss></rss>");
    }

    #[test]
    fn remove_stale_keeps_what_is_listed_and_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        let feeds = FeedsDir::at(dir.path(), LEVELS);
        let t = SystemTime::now();
        for rel in ["feed.rss", "tags/a.rss", "tags/b.atom", "categories/c.json"] {
            put(&feeds, rel, b"x", t).unwrap();
        }
        fs::write(dir.path().join("tags/README.txt"), "mine").unwrap();
        fs::write(dir.path().join(".crier-leftover"), "").unwrap();
        let keep: HashSet<String> = ["feed.rss".to_owned(), "tags/a.rss".to_owned()].into();
        let mut removed = feeds.remove_stale(&keep).unwrap();
        removed.sort();
        assert_eq!(removed, ["categories/c.json", "tags/b.atom"]);
        assert!(dir.path().join("tags/a.rss.br").exists());
        assert!(!dir.path().join("tags/b.atom").exists());
        assert!(!dir.path().join("tags/b.atom.gz").exists());
        assert!(!dir.path().join("categories/c.json").exists());
        assert!(dir.path().join("tags/README.txt").exists());
        assert!(!dir.path().join(".crier-leftover").exists());
    }

    #[test]
    fn a_staged_folder_shares_the_files_then_swaps_in_whole() {
        let dir = tempfile::tempdir().unwrap();
        let feeds = FeedsDir::at(dir.path().join("feeds"), LEVELS);
        let (t1, t2) = (SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000), SystemTime::now());
        for rel in ["feed.rss", "tags/a.rss", "tags/b.rss"] {
            put(&feeds, rel, b"<rss>old</rss>", t1).unwrap();
        }
        fs::write(feeds.root().join("robots.txt"), "mine").unwrap();
        std::os::unix::fs::symlink("feed.rss", feeds.root().join("index.rss")).unwrap();
        fs::write(feeds.root().join(".crier-leftover"), "").unwrap();
        let staging = feeds.staging().unwrap();
        assert_eq!(staging.root(), dir.path().canonicalize().unwrap().join(".feeds.crier-next"));
        fs::create_dir_all(staging.root().join("stale")).unwrap();
        // Nine files (three documents, each with two encodings) and robots.txt; no leftover.
        assert_eq!(feeds.link_into(&staging).unwrap(), 10);
        assert!(!staging.root().join("stale").exists(), "what the folder held before is gone");
        assert!(!staging.root().join(".crier-leftover").exists());
        assert_eq!(fs::read_link(staging.root().join("index.rss")).unwrap(), Path::new("feed.rss"));
        // A document rewritten or removed through the staged folder leaves the served one alone.
        assert_eq!(put(&staging, "tags/a.rss", b"<rss>new</rss>", t2).unwrap(), Outcome::Written);
        staging.remove("tags/b.rss").unwrap();
        assert_eq!(put(&staging, "feed.rss", b"<rss>old</rss>", t2).unwrap(), Outcome::Unchanged);
        assert_eq!(fs::read(feeds.root().join("tags/a.rss")).unwrap(), b"<rss>old</rss>");
        assert!(feeds.root().join("tags/b.rss.br").exists());

        let old = feeds.swap_in(&staging).unwrap().unwrap();
        assert_eq!(fs::read(feeds.root().join("tags/a.rss")).unwrap(), b"<rss>new</rss>");
        assert!(!feeds.root().join("tags/b.rss").exists());
        assert_eq!(
            fs::metadata(feeds.root().join("feed.rss")).unwrap().modified().unwrap(),
            t1,
            "unchanged: its time kept"
        );
        assert_eq!(fs::read_to_string(feeds.root().join("robots.txt")).unwrap(), "mine");
        // The old folder is set aside whole, under a name of its own, to be removed; nothing is
        // left where the staged one was, for the next to be made there.
        assert!(!staging.root().exists());
        let name = old.root().file_name().unwrap().to_str().unwrap().to_owned();
        assert!(name.starts_with(".feeds.crier-old."), "{name}");
        assert_eq!(fs::read(old.root().join("tags/a.rss")).unwrap(), b"<rss>old</rss>");
        fs::create_dir(staging.root()).unwrap();
        let mut left: Vec<PathBuf> = feeds.leftovers().iter().map(|f| f.root().to_owned()).collect();
        left.sort();
        assert_eq!(left, [staging.root(), old.root()]);
        old.remove_all().unwrap();
        assert!(!old.root().exists());
        old.remove_all().unwrap();
    }

    #[test]
    fn a_staged_folder_moves_in_where_there_was_none_and_follows_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let feeds = FeedsDir::at(dir.path().join("feeds"), LEVELS);
        let staging = feeds.staging().unwrap();
        assert!(feeds.link_into(&staging).is_err(), "nothing to link");
        assert!(!staging.root().exists(), "a link that failed leaves nothing");
        fs::create_dir(staging.root()).unwrap();
        put(&staging, "feed.rss", b"<rss/>", SystemTime::now()).unwrap();
        assert!(feeds.swap_in(&staging).unwrap().is_none(), "no old folder");
        assert_eq!(fs::read(feeds.root().join("feed.rss")).unwrap(), b"<rss/>");
        assert!(!staging.root().exists());
        // A feeds folder that is a link to one elsewhere: the link stays, the folder it names is swapped.
        let real = FeedsDir::at(dir.path().join("real/feeds"), LEVELS);
        fs::create_dir_all(real.root()).unwrap();
        let linked = FeedsDir::at(dir.path().join("linked"), LEVELS);
        std::os::unix::fs::symlink(real.root(), linked.root()).unwrap();
        let staging = linked.staging().unwrap();
        assert_eq!(staging.root(), real.root().canonicalize().unwrap().with_file_name(".feeds.crier-next"));
        linked.link_into(&staging).unwrap();
        put(&staging, "feed.rss", b"<rss/>", SystemTime::now()).unwrap();
        let old = linked.swap_in(&staging).unwrap().unwrap();
        assert_eq!(old.root().parent(), Some(real.root().canonicalize().unwrap().parent().unwrap()));
        assert!(fs::symlink_metadata(linked.root()).unwrap().file_type().is_symlink());
        assert!(real.root().join("feed.rss").exists());
    }
}
