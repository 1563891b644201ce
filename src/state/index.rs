//! The scan index: what the engine read and wrote, kept so that a restart reads only the post
//! files whose fingerprint changed and writes only the documents whose posts changed.
//!
//! It is trusted only as far as it can be checked: it holds for one index key (crier's version
//! and the configuration, [`crate::engine::Engine::index_key`]) and is ignored whole under any
//! other; a post row that cannot be read costs only that file being read again; a page or feed
//! row that cannot be read, or a missing setting, makes the whole index ignored. Documents are
//! checked against their files by the caller ([`crate::feeds_dir::FeedsDir::still`]).

use std::collections::HashMap;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use rayon::prelude::*;
use rusqlite::{OptionalExtension, Transaction, params};

use super::{State, StateError};
use crate::archive::Written;
use crate::documents::FeedSummary;
use crate::engine::{Indexed, Snapshot};
use crate::feeds_dir::OnDisk;
use crate::post::{PostError, PostMeta};
use crate::site::FeedKey;
use crate::source::Fingerprint;

/// The scan index as read back.
#[derive(Debug, Default)]
pub struct ScanIndex {
    pub snapshot: Snapshot,
    /// Every document written, by path under the feeds folder.
    pub documents: HashMap<String, OnDisk>,
    /// Post rows that could not be read (their files are read again).
    pub skipped: usize,
}

/// The scan index without the posts' metadata ([`State::quick_index`]).
#[derive(Debug)]
pub struct QuickIndex {
    /// Every post file known, with its fingerprint and error (`meta` is `None`), in the order of
    /// their paths' bytes.
    pub files: Vec<Indexed>,
    pub documents: HashMap<String, OnDisk>,
    /// Posts published, scheduled and drafts.
    pub counts: [usize; 3],
    pub next_due: Option<DateTime<Utc>>,
}

/// What one save brings to the index.
#[derive(Debug, Default)]
pub struct IndexChanges {
    pub snapshot: Snapshot,
    /// Documents written (or found already current), with their files.
    pub written: Vec<(String, OnDisk)>,
    /// Documents removed.
    pub removed: Vec<String>,
    /// Replace the index (its key, and every row) rather than update it.
    pub whole: bool,
    /// Make the rows' texts on every core (`crier build`, whose cores have nothing else to do),
    /// not only on the saving thread (the daemon's, which runs below the publisher's priority).
    pub parallel: bool,
}

/// The schema of the scan index (migration 5 of the store).
pub(super) const MIGRATION: &str = "
    CREATE TABLE scan_setting (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE scan_post (
        path BLOB PRIMARY KEY,
        len INTEGER NOT NULL,
        modified INTEGER NOT NULL,
        inode INTEGER NOT NULL,
        changed INTEGER NOT NULL,
        meta TEXT,
        error TEXT,
        warnings TEXT
    ) WITHOUT ROWID;
    CREATE TABLE scan_page (
        feed TEXT NOT NULL,
        page INTEGER NOT NULL,
        newest INTEGER NOT NULL,
        digest BLOB NOT NULL,
        PRIMARY KEY (feed, page)
    ) WITHOUT ROWID;
    CREATE TABLE scan_feed (
        feed TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        items INTEGER NOT NULL,
        updated TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE scan_document (
        rel TEXT PRIMARY KEY,
        modified INTEGER NOT NULL,
        files BLOB NOT NULL
    ) WITHOUT ROWID;";

impl State {
    /// The scan index, when one was saved under `key` and its feeds and pages can be read.
    pub fn scan_index(&self, key: &str) -> Result<Option<ScanIndex>, StateError> {
        let connection = self.lock();
        let setting = |name: &str| -> rusqlite::Result<Option<String>> {
            connection.query_row("SELECT value FROM scan_setting WHERE key = ?1", [name], |row| row.get(0)).optional()
        };
        if setting("key").map_err(self.sql())?.as_deref() != Some(key) {
            return Ok(None);
        }
        let Some(due_until) = setting("due_until").map_err(self.sql())?.and_then(|d| d.parse::<DateTime<Utc>>().ok())
        else {
            return Ok(None);
        };
        let mut index = ScanIndex::default();
        index.snapshot.due_until = Some(due_until);
        let (files, skipped) = read_rows(
            &connection,
            "SELECT path, len, modified, inode, changed, meta, error, warnings FROM scan_post",
            post_row,
        );
        index.snapshot.files = files.map_err(self.sql())?;
        index.skipped = skipped;
        let (pages, bad_pages) = read_rows(&connection, "SELECT feed, page, newest, digest FROM scan_page", page_row);
        let (feeds, bad_feeds) = read_rows(&connection, "SELECT feed, title, items, updated FROM scan_feed", feed_row);
        // A document row that cannot be read costs that document being written again.
        let (documents, _) = read_rows(&connection, "SELECT rel, modified, files FROM scan_document", document_row);
        let (pages, feeds, documents) =
            (pages.map_err(self.sql())?, feeds.map_err(self.sql())?, documents.map_err(self.sql())?);
        if bad_pages + bad_feeds > 0 {
            tracing::warn!("{}: the scan index is unreadable; every post is read again", self.path.display());
            return Ok(None);
        }
        index.snapshot.pages = pages;
        index.snapshot.feeds = feeds;
        index.documents = documents.into_iter().collect();
        Ok(Some(index))
    }

    /// What tells, without reading any post, whether anything changed since the scan index was
    /// saved under `key`: every file's fingerprint (and error), every document's files, the
    /// counts and when the next scheduled post falls due. `None` when there is no such index,
    /// or any of it cannot be read.
    pub fn quick_index(&self, key: &str) -> Result<Option<QuickIndex>, StateError> {
        let connection = self.lock();
        let setting = |name: &str| -> Result<Option<String>, StateError> {
            let value = connection.query_row("SELECT value FROM scan_setting WHERE key = ?1", [name], |row| row.get(0));
            value.optional().map_err(self.sql())
        };
        if setting("key")?.as_deref() != Some(key) {
            return Ok(None);
        }
        let next_due = match setting("next_due")? {
            Some(text) if text.is_empty() => None,
            Some(text) => match text.parse::<DateTime<Utc>>() {
                Ok(due) => Some(due),
                Err(_) => return Ok(None),
            },
            None => return Ok(None),
        };
        let counts: Vec<usize> =
            setting("counts")?.unwrap_or_default().split(' ').filter_map(|n| n.parse().ok()).collect();
        let Ok(counts) = <[usize; 3]>::try_from(counts) else { return Ok(None) };
        let query = "SELECT path, len, modified, inode, changed, NULL, error, warnings FROM scan_post ORDER BY path";
        let (files, bad_files) = read_rows(&connection, query, quick_post_row);
        let (documents, bad_documents) =
            read_rows(&connection, "SELECT rel, modified, files FROM scan_document", document_row);
        let (files, documents) = (files.map_err(self.sql())?, documents.map_err(self.sql())?);
        // Every document the engine holds has its row (one whose write failed lost it).
        let expected = setting("documents")?.and_then(|n| n.parse::<usize>().ok());
        if bad_files + bad_documents > 0 || expected != Some(documents.len()) {
            return Ok(None);
        }
        Ok(Some(QuickIndex { files, documents: documents.into_iter().collect(), counts, next_due }))
    }

    /// Whether a scan index was saved under `key` (it may still be unreadable).
    pub fn has_scan_index(&self, key: &str) -> Result<bool, StateError> {
        Ok(saved_key(&self.lock()).map_err(self.sql())?.as_deref() == Some(key))
    }

    /// The documents the scan index saved under `key` lists, with their files: what a start
    /// serves before it reads anything else.
    pub fn indexed_documents(&self, key: &str) -> Result<Option<Vec<(String, OnDisk)>>, StateError> {
        let connection = self.lock();
        if saved_key(&connection).map_err(self.sql())?.as_deref() != Some(key) {
            return Ok(None);
        }
        let (documents, _) = read_rows(&connection, "SELECT rel, modified, files FROM scan_document", document_row);
        Ok(Some(documents.map_err(self.sql())?))
    }

    /// Saves what changed in the scan index, under `key`, in one transaction.
    pub fn save_scan_index(&self, key: &str, changes: &IndexChanges) -> Result<(), StateError> {
        let mut connection = self.lock();
        let transaction = connection.transaction().map_err(self.sql())?;
        write_index(&transaction, key, changes).map_err(self.sql())?;
        transaction.commit().map_err(self.sql())
    }

    /// The first half of a whole index saved in two (a cold build's, saved while its documents
    /// are made): clears the index and saves the rows of the post files in `files.files`, on
    /// this thread alone. The index is left without a key, so every reader ignores it until
    /// [`State::save_scan_index`] (not `whole`) saves the rest: a crash in between costs reading
    /// every post, never an index trusted half saved.
    pub fn save_scan_posts(&self, files: &Snapshot) -> Result<(), StateError> {
        let mut connection = self.lock();
        let transaction = connection.transaction().map_err(self.sql())?;
        clear(&transaction).and_then(|()| write_posts(&transaction, files, false)).map_err(self.sql())?;
        transaction.commit().map_err(self.sql())
    }

    /// Forgets the scan index: the next start reads every post.
    pub fn clear_scan_index(&self) -> Result<(), StateError> {
        let mut connection = self.lock();
        let transaction = connection.transaction().map_err(self.sql())?;
        clear(&transaction).map_err(self.sql())?;
        transaction.commit().map_err(self.sql())
    }
}

/// The key the scan index was saved under, if one was.
fn saved_key(connection: &rusqlite::Connection) -> rusqlite::Result<Option<String>> {
    connection.query_row("SELECT value FROM scan_setting WHERE key = 'key'", [], |row| row.get(0)).optional()
}

fn clear(transaction: &Transaction<'_>) -> rusqlite::Result<()> {
    transaction.execute_batch(
        "DELETE FROM scan_setting; DELETE FROM scan_post; DELETE FROM scan_page; DELETE FROM scan_feed;
         DELETE FROM scan_document;",
    )
}

fn write_index(transaction: &Transaction<'_>, key: &str, changes: &IndexChanges) -> rusqlite::Result<()> {
    let snapshot = &changes.snapshot;
    if changes.whole {
        clear(transaction)?;
    }
    write_posts(transaction, snapshot, changes.parallel)?;
    write_feeds(transaction, snapshot)?;
    write_documents(transaction, changes)?;
    let due_until = snapshot.due_until.map(|d| d.to_rfc3339()).unwrap_or_default();
    let mut setting = transaction.prepare("INSERT OR REPLACE INTO scan_setting (key, value) VALUES (?1, ?2)")?;
    setting.execute(["key", key])?;
    setting.execute(["due_until", &due_until])?;
    setting.execute(["next_due", &snapshot.next_due.map(|d| d.to_rfc3339()).unwrap_or_default()])?;
    setting.execute(["counts", &snapshot.counts.map(|n| n.to_string()).join(" ")])?;
    setting.execute(["documents", &snapshot.documents.to_string()])?;
    Ok(())
}

/// Writes the rows of the post files in `snapshot.files` and drops those of `snapshot.dropped`.
fn write_posts(transaction: &Transaction<'_>, snapshot: &Snapshot, parallel: bool) -> rusqlite::Result<()> {
    let mut post = transaction.prepare(
        "INSERT OR REPLACE INTO scan_post (path, len, modified, inode, changed, meta, error, warnings)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    // In slices, so that a whole site's JSON is never held at once (a million posts' is 500 MB).
    let slices = snapshot.files.chunks(4096);
    let rows = slices.flat_map(|slice| slice.iter().zip(post_texts(slice, parallel)));
    for (Indexed { path, fingerprint, .. }, [meta, error, warnings]) in rows {
        let (len, modified, inode, changed) = fingerprint.parts();
        post.execute(params![
            path.as_os_str().as_bytes(),
            len as i64,
            modified,
            inode as i64,
            changed,
            meta,
            error,
            warnings
        ])?;
    }
    let mut drop_post = transaction.prepare("DELETE FROM scan_post WHERE path = ?1")?;
    for path in &snapshot.dropped {
        drop_post.execute([path.as_os_str().as_bytes()])?;
    }
    Ok(())
}

/// Each post row's metadata and warnings as JSON and its error as text.
fn post_texts(files: &[Indexed], parallel: bool) -> Vec<[Option<String>; 3]> {
    let texts = |Indexed { meta, error, warnings, .. }: &Indexed| {
        [
            meta.as_ref().map(|m| serde_json::to_string(&**m).expect("post metadata is plain data")),
            error.as_ref().map(|e| format!("{}:{}", e.line, e.message)),
            (!warnings.is_empty()).then(|| serde_json::to_string(warnings).expect("warnings are plain data")),
        ]
    };
    match parallel {
        true => files.par_iter().map(texts).collect(),
        false => files.iter().map(texts).collect(),
    }
}

/// Replaces the pages and feeds.
fn write_feeds(transaction: &Transaction<'_>, snapshot: &Snapshot) -> rusqlite::Result<()> {
    transaction.execute_batch("DELETE FROM scan_page; DELETE FROM scan_feed;")?;
    let mut page = transaction.prepare("INSERT INTO scan_page (feed, page, newest, digest) VALUES (?1, ?2, ?3, ?4)")?;
    for (feed, number, written) in &snapshot.pages {
        page.execute(params![feed.stem(), *number as i64, written.newest, written.digest.to_le_bytes()])?;
    }
    let mut feed =
        transaction.prepare("INSERT INTO scan_feed (feed, title, items, updated) VALUES (?1, ?2, ?3, ?4)")?;
    for summary in &snapshot.feeds {
        feed.execute(params![summary.key.stem(), summary.title, summary.items as i64, summary.updated.to_rfc3339()])?;
    }
    Ok(())
}

/// Records the documents written and forgets those removed.
fn write_documents(transaction: &Transaction<'_>, changes: &IndexChanges) -> rusqlite::Result<()> {
    let mut document =
        transaction.prepare("INSERT OR REPLACE INTO scan_document (rel, modified, files) VALUES (?1, ?2, ?3)")?;
    for (rel, on_disk) in &changes.written {
        let files: Vec<u8> = on_disk
            .files
            .iter()
            .flat_map(|(len, hash)| [len.to_le_bytes().to_vec(), hash.to_le_bytes().to_vec()].concat())
            .collect();
        document.execute(params![rel, nanos(on_disk.modified), files])?;
    }
    let mut drop_document = transaction.prepare("DELETE FROM scan_document WHERE rel = ?1")?;
    for rel in &changes.removed {
        drop_document.execute([rel])?;
    }
    Ok(())
}

/// The rows of `sql` that `read` can read, and how many it could not.
fn read_rows<T>(
    connection: &rusqlite::Connection,
    sql: &str,
    read: fn(&rusqlite::Row<'_>) -> Option<T>,
) -> (rusqlite::Result<Vec<T>>, usize) {
    let mut skipped = 0;
    let mut all = Vec::new();
    let result = (|| {
        let mut statement = connection.prepare(sql)?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            match read(row) {
                Some(value) => all.push(value),
                None => skipped += 1,
            }
        }
        Ok(())
    })();
    (result.map(|()| all), skipped)
}

fn post_row(row: &rusqlite::Row<'_>) -> Option<Indexed> {
    let mut indexed = quick_post_row(row)?;
    indexed.meta = match row.get::<_, Option<String>>(5).ok()? {
        None => None,
        Some(json) => Some(Arc::new(serde_json::from_str::<PostMeta>(&json).ok()?.shrunk())),
    };
    Some(indexed)
}

/// A post row without its metadata (`meta` is `None` whatever the row holds).
fn quick_post_row(row: &rusqlite::Row<'_>) -> Option<Indexed> {
    let path = PathBuf::from(std::ffi::OsString::from_vec(row.get(0).ok()?));
    let (len, modified, inode): (i64, i64, i64) = (row.get(1).ok()?, row.get(2).ok()?, row.get(3).ok()?);
    let fingerprint = Fingerprint::from_parts(len as u64, modified, inode as u64, row.get(4).ok()?);
    let error = match row.get::<_, Option<String>>(6).ok()? {
        None => None,
        Some(text) => {
            let (line, message) = text.split_once(':')?;
            Some(PostError { path: path.clone(), line: line.parse().ok()?, message: message.to_owned() })
        }
    };
    let warnings = match row.get::<_, Option<String>>(7).ok()? {
        None => Vec::new(),
        Some(json) => serde_json::from_str(&json).ok()?,
    };
    Some(Indexed { path, fingerprint, meta: None, error, warnings })
}

fn page_row(row: &rusqlite::Row<'_>) -> Option<(FeedKey, usize, Written)> {
    let key = FeedKey::from_stem(&row.get::<_, String>(0).ok()?)?;
    let number = usize::try_from(row.get::<_, i64>(1).ok()?).ok()?;
    let digest: [u8; 16] = row.get::<_, Vec<u8>>(3).ok()?.try_into().ok()?;
    Some((key, number, Written { newest: row.get(2).ok()?, digest: u128::from_le_bytes(digest) }))
}

fn feed_row(row: &rusqlite::Row<'_>) -> Option<FeedSummary> {
    Some(FeedSummary {
        key: FeedKey::from_stem(&row.get::<_, String>(0).ok()?)?,
        title: row.get(1).ok()?,
        items: usize::try_from(row.get::<_, i64>(2).ok()?).ok()?,
        updated: DateTime::parse_from_rfc3339(&row.get::<_, String>(3).ok()?).ok()?,
    })
}

fn document_row(row: &rusqlite::Row<'_>) -> Option<(String, OnDisk)> {
    let modified = SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::try_from(row.get::<_, i64>(1).ok()?).ok()?);
    let bytes: Vec<u8> = row.get(2).ok()?;
    if bytes.len() != 3 * 24 {
        return None;
    }
    let file = |i: usize| {
        let chunk = &bytes[i * 24..(i + 1) * 24];
        let len = u64::from_le_bytes(chunk[..8].try_into().expect("8 bytes"));
        (len, u128::from_le_bytes(chunk[8..].try_into().expect("16 bytes")))
    };
    Some((row.get(0).ok()?, OnDisk { modified, files: [file(0), file(1), file(2)] }))
}

fn nanos(time: SystemTime) -> i64 {
    time.duration_since(SystemTime::UNIX_EPOCH).ok().and_then(|d| i64::try_from(d.as_nanos()).ok()).unwrap_or(0)
}
