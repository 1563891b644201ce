//! crier's state across restarts, in one SQLite database at `state_dir/state.sqlite3`: the only
//! module that touches `state_dir`, and the only one that speaks SQL. Each feature that keeps
//! state adds its tables through a migration and typed functions here (`docs/state.md`).
//!
//! The database is never replaced behind the admin's back: one that a newer crier wrote, or that
//! is not a sound SQLite database, is an error naming the file and what to do.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use rusqlite::{Connection, OptionalExtension, params};

mod index;
pub use index::{IndexChanges, QuickIndex, ScanIndex};

use crate::archive::BoundsChange;
use crate::audience::{Client, Hour, Saved};
use crate::site::{FeedKey, Position};

/// A time as the store keeps it: whole seconds since the Unix epoch.
pub fn unix_seconds(time: std::time::SystemTime) -> i64 {
    time.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The database's file name under `state_dir`.
pub const FILE_NAME: &str = "state.sqlite3";

/// How long a write waits for another process's write to end before it fails with "database is
/// locked": longer than the longest write crier makes (a first publish's child process saves the
/// scan index of 1,000,000 posts in about 7 s, while crier may store a WebSub subscription or the
/// subscriber counts), shorter than the unit's `WatchdogSec=` (30 s), which a step of the
/// publisher kept waiting that long would miss.
const BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// Each schema version's statements, run once, in order, in one transaction each; the version
/// a database is at is its `PRAGMA user_version`. Append, never edit.
const MIGRATIONS: &[&str] = &[
    // 1: WebSub subscriptions. `delivered` is the validator of the topic's bytes the subscriber
    // last received (or had when it subscribed): a change is due when the topic's differs.
    "CREATE TABLE subscription (
        topic TEXT NOT NULL,
        callback TEXT NOT NULL,
        secret TEXT,
        lease_expires INTEGER NOT NULL,
        created INTEGER NOT NULL,
        delivered TEXT NOT NULL,
        PRIMARY KEY (topic, callback)
    ) WITHOUT ROWID;
    CREATE INDEX subscription_expiry ON subscription (lease_expires);",
    // 2: documents that existed and no longer do (410 Gone), since when (unix s).
    "CREATE TABLE gone (path TEXT PRIMARY KEY, since INTEGER NOT NULL) WITHOUT ROWID;",
    // 3: where each feed's sealed archive pages end: the position (date, link, post file) of the
    // newest post page `page` held when it was sealed. `feed` is the feed's path without extension.
    "CREATE TABLE archive_bound (
        feed TEXT NOT NULL,
        page INTEGER NOT NULL,
        seconds INTEGER NOT NULL,
        nanos INTEGER NOT NULL,
        link TEXT NOT NULL,
        path BLOB NOT NULL,
        PRIMARY KEY (feed, page)
    ) WITHOUT ROWID;",
    // 4: the audience (`audience`): each UTC day's key for hashing readers (kept two days),
    // readers by keyed hash, aggregators' reported subscribers by hour, requests by feed and hour.
    "CREATE TABLE audience_key (day INTEGER PRIMARY KEY, key BLOB NOT NULL);
    CREATE TABLE audience_client (
        feed TEXT NOT NULL,
        id BLOB NOT NULL,
        family TEXT NOT NULL,
        address INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        requests INTEGER NOT NULL,
        unconditional INTEGER NOT NULL,
        fast INTEGER NOT NULL,
        reported INTEGER,
        crawler INTEGER NOT NULL,
        PRIMARY KEY (feed, id)
    ) WITHOUT ROWID;
    CREATE TABLE audience_report (
        feed TEXT NOT NULL,
        source TEXT NOT NULL,
        hour INTEGER NOT NULL,
        subscribers INTEGER NOT NULL,
        PRIMARY KEY (feed, source, hour)
    ) WITHOUT ROWID;
    CREATE TABLE audience_hour (
        feed TEXT NOT NULL,
        hour INTEGER NOT NULL,
        requests INTEGER NOT NULL,
        not_modified INTEGER NOT NULL,
        unconditional INTEGER NOT NULL,
        PRIMARY KEY (feed, hour)
    ) WITHOUT ROWID;",
    // 5: the scan index (`index`).
    index::MIGRATION,
];

/// The state store could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot create state_dir {path}: {source}; set `state_dir` to a folder crier may write")]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error(
        "{path} is not a usable crier state database ({message}); move it away to start with no \
         subscriptions, or restore it from a backup"
    )]
    Unusable { path: PathBuf, message: String },
    #[error(
        "{path} was written by a newer crier (schema {found}, this crier knows {known}); run that \
         version, or move the file away to start afresh"
    )]
    Newer { path: PathBuf, found: i64, known: i64 },
    #[error("state database {path}: {source}")]
    Sql { path: PathBuf, source: rusqlite::Error },
}

/// A WebSub subscription as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub topic: String,
    pub callback: String,
    pub secret: Option<String>,
    /// Unix seconds.
    pub lease_expires: i64,
    /// The validator of the topic's bytes this subscriber has.
    pub delivered: String,
}

/// The open state database.
#[derive(Debug)]
pub struct State {
    path: PathBuf,
    connection: Mutex<Connection>,
}

/// Runs `quick_check` (`whole`), or reads the schema version: an error unless the answer is ok.
fn checked(connection: &Connection, path: &Path, whole: bool) -> Result<(), StateError> {
    let unusable = |e: rusqlite::Error| StateError::Unusable { path: path.to_owned(), message: e.to_string() };
    let pragma = if whole { "PRAGMA quick_check" } else { "PRAGMA schema_version" };
    let check: String = connection
        .query_row(pragma, [], |row| row.get::<_, rusqlite::types::Value>(0))
        .map(|v| match v {
            rusqlite::types::Value::Text(text) => text,
            _ => "ok".to_owned(),
        })
        .map_err(unusable)?;
    match check.as_str() {
        "ok" => Ok(()),
        _ => Err(StateError::Unusable { path: path.to_owned(), message: format!("quick_check: {check}") }),
    }
}

impl State {
    /// Opens (creating when missing) the database in `dir`, checks it whole (`quick_check`) and
    /// brings its schema up to date.
    pub fn open(dir: &Path) -> Result<State, StateError> {
        State::open_checked(dir, true)
    }

    /// [`State::open`] without the whole-file check, whose cost grows with the database (the scan
    /// index of 100,000 posts: 70 ms): for a build, which reads only the scan index (a damaged
    /// page fails the query that reads it, and the build reads the posts instead), and for the
    /// daemon, which checks the file while it serves ([`State::check_whole`]).
    pub fn open_quick(dir: &Path) -> Result<State, StateError> {
        State::open_checked(dir, false)
    }

    fn open_checked(dir: &Path, check_whole: bool) -> Result<State, StateError> {
        std::fs::create_dir_all(dir).map_err(|source| StateError::CreateDir { path: dir.to_owned(), source })?;
        let path = dir.join(FILE_NAME);
        let unusable = |e: rusqlite::Error| StateError::Unusable { path: path.clone(), message: e.to_string() };
        let connection = Connection::open(&path).map_err(unusable)?;
        connection.busy_timeout(BUSY_WAIT).map_err(unusable)?;
        checked(&connection, &path, check_whole)?;
        connection.pragma_update(None, "journal_mode", "WAL").map_err(unusable)?;
        connection.pragma_update(None, "synchronous", "NORMAL").map_err(unusable)?;
        // What is deleted (a day's key for hashing readers) is overwritten, not left in free pages.
        connection.pragma_update(None, "secure_delete", "ON").map_err(unusable)?;
        let state = State { path, connection: Mutex::new(connection) };
        state.migrate()?;
        Ok(state)
    }

    /// Checks the whole file (`quick_check`) on a connection of its own, so that the one in use
    /// is not held meanwhile: `crier serve` opens with [`State::open_quick`] and checks while it
    /// serves, as the check of a million posts' scan index takes about a second.
    pub fn check_whole(&self) -> Result<(), StateError> {
        let unusable = |e: rusqlite::Error| StateError::Unusable { path: self.path.clone(), message: e.to_string() };
        let connection =
            Connection::open_with_flags(&self.path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(unusable)?;
        connection.busy_timeout(BUSY_WAIT).map_err(unusable)?;
        checked(&connection, &self.path, true)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sql(&self) -> impl Fn(rusqlite::Error) -> StateError + '_ {
        |source| StateError::Sql { path: self.path.clone(), source }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn migrate(&self) -> Result<(), StateError> {
        let mut connection = self.lock();
        let known = MIGRATIONS.len() as i64;
        let found: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0)).map_err(self.sql())?;
        if found > known {
            return Err(StateError::Newer { path: self.path.clone(), found, known });
        }
        for (version, statements) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            let transaction = connection.transaction().map_err(self.sql())?;
            transaction.execute_batch(statements).map_err(self.sql())?;
            transaction.pragma_update(None, "user_version", version as i64 + 1).map_err(self.sql())?;
            transaction.commit().map_err(self.sql())?;
        }
        Ok(())
    }

    /// Adds a subscription, unless `max` exist already, or renews it (new lease and secret; what
    /// the subscriber was delivered stays, so a delivery still owed is not forgotten). Says
    /// whether the subscription exists now.
    pub fn subscribe(&self, s: &Subscription, now: i64, max: usize) -> Result<bool, StateError> {
        let mut connection = self.lock();
        let transaction = connection.transaction().map_err(self.sql())?;
        let renewed = transaction
            .execute(
                "UPDATE subscription SET secret = ?3, lease_expires = ?4 WHERE topic = ?1 AND callback = ?2",
                params![s.topic, s.callback, s.secret, s.lease_expires],
            )
            .map_err(self.sql())?;
        if renewed == 0 {
            let count: i64 =
                transaction.query_row("SELECT count(*) FROM subscription", [], |row| row.get(0)).map_err(self.sql())?;
            if count as usize >= max {
                return Ok(false);
            }
            transaction
                .execute(
                    "INSERT INTO subscription (topic, callback, secret, lease_expires, created, delivered)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![s.topic, s.callback, s.secret, s.lease_expires, now, s.delivered],
                )
                .map_err(self.sql())?;
        }
        transaction.commit().map_err(self.sql())?;
        Ok(true)
    }

    /// Ends a subscription; whether there was one.
    pub fn unsubscribe(&self, topic: &str, callback: &str) -> Result<bool, StateError> {
        let n = self
            .lock()
            .execute("DELETE FROM subscription WHERE topic = ?1 AND callback = ?2", params![topic, callback])
            .map_err(self.sql())?;
        Ok(n > 0)
    }

    /// The subscription of `callback` to `topic`, if it exists.
    pub fn subscription(&self, topic: &str, callback: &str) -> Result<Option<Subscription>, StateError> {
        self.lock()
            .query_row(
                "SELECT topic, callback, secret, lease_expires, delivered FROM subscription
                 WHERE topic = ?1 AND callback = ?2",
                params![topic, callback],
                subscription,
            )
            .optional()
            .map_err(self.sql())
    }

    /// The subscriptions to `topic` whose lease runs past `now`.
    pub fn subscribers(&self, topic: &str, now: i64) -> Result<Vec<Subscription>, StateError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare_cached(
                "SELECT topic, callback, secret, lease_expires, delivered FROM subscription
                 WHERE topic = ?1 AND lease_expires > ?2",
            )
            .map_err(self.sql())?;
        let rows = statement.query_map(params![topic, now], subscription).map_err(self.sql())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.sql())
    }

    /// The topics with at least one subscription whose lease runs past `now`.
    pub fn topics(&self, now: i64) -> Result<Vec<String>, StateError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare_cached("SELECT DISTINCT topic FROM subscription WHERE lease_expires > ?1")
            .map_err(self.sql())?;
        let rows = statement.query_map(params![now], |row| row.get(0)).map_err(self.sql())?;
        rows.collect::<Result<Vec<String>, _>>().map_err(self.sql())
    }

    /// Records that the subscriber has the topic's bytes with validator `delivered`.
    pub fn delivered(&self, topic: &str, callback: &str, delivered: &str) -> Result<(), StateError> {
        self.lock()
            .execute(
                "UPDATE subscription SET delivered = ?3 WHERE topic = ?1 AND callback = ?2",
                params![topic, callback, delivered],
            )
            .map_err(self.sql())?;
        Ok(())
    }

    /// Deletes the subscriptions whose lease ended at or before `now`; how many.
    pub fn expire(&self, now: i64) -> Result<usize, StateError> {
        self.lock().execute("DELETE FROM subscription WHERE lease_expires <= ?1", params![now]).map_err(self.sql())
    }

    /// How many subscriptions are stored.
    pub fn subscription_count(&self) -> Result<usize, StateError> {
        let n: i64 =
            self.lock().query_row("SELECT count(*) FROM subscription", [], |row| row.get(0)).map_err(self.sql())?;
        Ok(n as usize)
    }

    /// The subscriptions whose lease runs past `now`.
    pub fn live_subscription_count(&self, now: i64) -> Result<usize, StateError> {
        let n: i64 = self
            .lock()
            .query_row("SELECT count(*) FROM subscription WHERE lease_expires > ?1", [now], |row| row.get(0))
            .map_err(self.sql())?;
        Ok(n as usize)
    }
}

/// Reads the rows of `sql` into `into`, each through `read`; a row it cannot read (`None`) is
/// counted in `skipped` and left out.
fn lenient<T>(
    connection: &Connection,
    sql: &str,
    skipped: &mut usize,
    into: &mut Vec<T>,
    read: impl Fn(&rusqlite::Row<'_>) -> Option<T>,
) -> rusqlite::Result<()> {
    let mut statement = connection.prepare(sql)?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        match read(row) {
            Some(value) => into.push(value),
            None => *skipped += 1,
        }
    }
    Ok(())
}

impl State {
    /// Records documents gone at `since` (those already recorded keep their time), and documents
    /// that exist again, in one transaction.
    pub fn update_gone(&self, gone: &[String], back: &[String], since: i64) -> Result<(), StateError> {
        if gone.is_empty() && back.is_empty() {
            return Ok(());
        }
        let mut connection = self.lock();
        let transaction = connection.transaction().map_err(self.sql())?;
        for path in gone {
            transaction
                .execute("INSERT OR IGNORE INTO gone (path, since) VALUES (?1, ?2)", params![path, since])
                .map_err(self.sql())?;
        }
        for path in back {
            transaction.execute("DELETE FROM gone WHERE path = ?1", params![path]).map_err(self.sql())?;
        }
        transaction.commit().map_err(self.sql())
    }

    /// Forgets documents gone before `before`, then lists the others with their time.
    pub fn gone(&self, before: i64) -> Result<Vec<(String, i64)>, StateError> {
        let connection = self.lock();
        connection.execute("DELETE FROM gone WHERE since < ?1", params![before]).map_err(self.sql())?;
        let mut statement = connection.prepare("SELECT path, since FROM gone").map_err(self.sql())?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?))).map_err(self.sql())?;
        rows.collect::<Result<Vec<(String, i64)>, _>>().map_err(self.sql())
    }
}

/// Inserts `bounds` as the bounds of `key`'s pages from `first` on.
fn insert_bounds(
    transaction: &rusqlite::Transaction<'_>,
    key: &FeedKey,
    first: i64,
    bounds: &[Position],
) -> rusqlite::Result<()> {
    let mut insert = transaction.prepare_cached(
        "INSERT INTO archive_bound (feed, page, seconds, nanos, link, path) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let feed = key.stem();
    for (page, bound) in (first..).zip(bounds) {
        let (seconds, nanos) = (bound.date.timestamp(), bound.date.timestamp_subsec_nanos());
        insert.execute(params![feed, page, seconds, nanos, bound.link.0, bound.path.0.as_os_str().as_bytes()])?;
    }
    Ok(())
}

impl State {
    /// Changes the bounds of each feed's sealed archive pages as the engine did: the first
    /// `kept` stay, the rest are replaced (none left: the feed has no archive).
    pub fn set_archive_bounds(&self, feeds: &BTreeMap<FeedKey, BoundsChange>) -> Result<(), StateError> {
        if feeds.is_empty() {
            return Ok(());
        }
        let mut connection = self.lock();
        let transaction = connection.transaction().map_err(self.sql())?;
        for (key, change) in feeds {
            let kept = i64::try_from(change.kept).unwrap_or(i64::MAX);
            transaction
                .execute("DELETE FROM archive_bound WHERE feed = ?1 AND page > ?2", params![key.stem(), kept])
                .map_err(self.sql())?;
            insert_bounds(&transaction, key, kept + 1, &change.after).map_err(self.sql())?;
        }
        transaction.commit().map_err(self.sql())
    }

    /// Replaces every feed's archive bounds with `feeds`' (after a save of some changes failed).
    pub fn replace_archive_bounds(&self, feeds: &BTreeMap<FeedKey, Vec<Position>>) -> Result<(), StateError> {
        let mut connection = self.lock();
        let transaction = connection.transaction().map_err(self.sql())?;
        transaction.execute("DELETE FROM archive_bound", []).map_err(self.sql())?;
        for (key, bounds) in feeds {
            insert_bounds(&transaction, key, 1, bounds).map_err(self.sql())?;
        }
        transaction.commit().map_err(self.sql())
    }

    /// Saves the audience in one transaction: `whole`, replacing what was saved with `saved`;
    /// else writing the clients in `saved` over theirs and deleting those in `saved.gone` (keys,
    /// reports and hours are replaced either way).
    pub fn save_audience(&self, saved: &Saved, whole: bool) -> Result<(), StateError> {
        let mut connection = self.lock();
        let transaction = connection.transaction().map_err(self.sql())?;
        let run = |transaction: &rusqlite::Transaction<'_>| -> rusqlite::Result<()> {
            transaction
                .execute_batch("DELETE FROM audience_key; DELETE FROM audience_report; DELETE FROM audience_hour;")?;
            if whole {
                transaction.execute_batch("DELETE FROM audience_client;")?;
            }
            let mut gone = transaction.prepare("DELETE FROM audience_client WHERE feed = ?1 AND id = ?2")?;
            for (feed, id) in &saved.gone {
                gone.execute(params![&**feed, &id[..]])?;
            }
            let mut key = transaction.prepare("INSERT INTO audience_key (day, key) VALUES (?1, ?2)")?;
            for (day, bytes) in &saved.keys {
                key.execute(params![day, &bytes[..]])?;
            }
            let mut client = transaction.prepare(
                "INSERT OR REPLACE INTO audience_client (feed, id, family, address, last_seen, requests, unconditional, fast, reported, crawler)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?;
            for c in &saved.clients {
                let counts = (c.requests, c.unconditional, c.fast);
                client.execute(params![
                    &*c.feed,
                    &c.id[..],
                    c.family,
                    c.address as i64,
                    c.last_seen,
                    counts.0,
                    counts.1,
                    counts.2,
                    c.reported.map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
                    c.crawler
                ])?;
            }
            let mut report = transaction
                .prepare("INSERT INTO audience_report (feed, source, hour, subscribers) VALUES (?1, ?2, ?3, ?4)")?;
            for (feed, source, hour, count) in &saved.reports {
                report.execute(params![&**feed, source, hour, i64::try_from(*count).unwrap_or(i64::MAX)])?;
            }
            let mut hour = transaction.prepare(
                "INSERT INTO audience_hour (feed, hour, requests, not_modified, unconditional) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (feed, at, h) in &saved.hours {
                let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
                hour.execute(params![&**feed, at, count(h.requests), count(h.not_modified), count(h.unconditional)])?;
            }
            Ok(())
        };
        run(&transaction).map_err(self.sql())?;
        transaction.commit().map_err(self.sql())
    }

    /// The saved audience. A row this crier cannot read (a value out of range, a key or an id
    /// of the wrong length, text that is not UTF-8) is left out, with a warning; the rest count.
    pub fn audience(&self) -> Result<Saved, StateError> {
        let connection = self.lock();
        let mut saved = Saved::default();
        let mut skipped = 0;
        let count = |row: &rusqlite::Row<'_>, i: usize| u64::try_from(row.get::<_, i64>(i).ok()?).ok();
        let small = |row: &rusqlite::Row<'_>, i: usize| u32::try_from(row.get::<_, i64>(i).ok()?).ok();
        let feed = |row: &rusqlite::Row<'_>| row.get::<_, String>(0).ok().map(Arc::<str>::from);
        let read = |skipped: &mut usize, saved: &mut Saved| -> rusqlite::Result<()> {
            lenient(&connection, "SELECT day, key FROM audience_key", skipped, &mut saved.keys, |row| {
                Some((row.get(0).ok()?, <[u8; 16]>::try_from(row.get::<_, Vec<u8>>(1).ok()?).ok()?))
            })?;
            let sql = "SELECT feed, id, family, address, last_seen, requests, unconditional, fast, reported, crawler
                       FROM audience_client";
            lenient(&connection, sql, skipped, &mut saved.clients, |row| {
                Some(Client {
                    feed: feed(row)?,
                    id: <[u8; 16]>::try_from(row.get::<_, Vec<u8>>(1).ok()?).ok()?,
                    family: row.get(2).ok()?,
                    address: row.get::<_, i64>(3).ok()? as u64,
                    last_seen: row.get(4).ok()?,
                    requests: small(row, 5)?,
                    unconditional: small(row, 6)?,
                    fast: small(row, 7)?,
                    reported: match row.get::<_, Option<i64>>(8).ok()? {
                        Some(n) => Some(u64::try_from(n).ok()?),
                        None => None,
                    },
                    crawler: row.get(9).ok()?,
                    last_format: 0,
                    unsaved: false,
                })
            })?;
            let sql = "SELECT feed, source, hour, subscribers FROM audience_report";
            lenient(&connection, sql, skipped, &mut saved.reports, |row| {
                Some((feed(row)?, row.get(1).ok()?, row.get(2).ok()?, count(row, 3)?))
            })?;
            let sql = "SELECT feed, hour, requests, not_modified, unconditional FROM audience_hour";
            lenient(&connection, sql, skipped, &mut saved.hours, |row| {
                let hour =
                    Hour { requests: count(row, 2)?, not_modified: count(row, 3)?, unconditional: count(row, 4)? };
                Some((feed(row)?, row.get(1).ok()?, hour))
            })
        };
        read(&mut skipped, &mut saved).map_err(self.sql())?;
        if skipped > 0 {
            tracing::warn!("{}: {skipped} unreadable rows of subscriber counts left out", self.path.display());
        }
        Ok(saved)
    }

    /// Deletes every saved count and key (`count_subscribers = false`).
    pub fn clear_audience(&self) -> Result<(), StateError> {
        self.lock()
            .execute_batch(
                "DELETE FROM audience_key; DELETE FROM audience_client; DELETE FROM audience_report;
                 DELETE FROM audience_hour;",
            )
            .map_err(self.sql())
    }

    /// The bounds of every feed's sealed archive pages, oldest page first.
    pub fn archive_bounds(&self) -> Result<BTreeMap<FeedKey, Vec<Position>>, StateError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare("SELECT feed, seconds, nanos, link, path, page FROM archive_bound ORDER BY feed, page")
            .map_err(self.sql())?;
        let rows = statement
            .query_map([], |row| {
                let (seconds, nanos): (i64, u32) = (row.get(1)?, row.get(2)?);
                let path: Vec<u8> = row.get(4)?;
                let position = chrono::DateTime::from_timestamp(seconds, nanos).map(|date| Position {
                    date,
                    link: Reverse(row.get(3).unwrap_or_default()),
                    path: Reverse(PathBuf::from(std::ffi::OsString::from_vec(path))),
                });
                Ok((row.get::<_, String>(0)?, position, row.get::<_, i64>(5)?))
            })
            .map_err(self.sql())?;
        let mut feeds: BTreeMap<String, Option<Vec<Position>>> = BTreeMap::new();
        for row in rows {
            let (feed, position, page) = row.map_err(self.sql())?;
            let bounds = feeds.entry(feed).or_insert_with(|| Some(Vec::new()));
            // Pages are numbered from 1 without a gap (a gap: a save of a change was lost).
            match (bounds.as_mut(), position) {
                (Some(bounds), Some(position)) if usize::try_from(page) == Ok(bounds.len() + 1) => {
                    bounds.push(position)
                }
                _ => *bounds = None,
            }
        }
        // A feed with a row this crier cannot read (an impossible date, a name it does not
        // know) loses all its bounds: its pages are cut afresh rather than shifted.
        let readable = feeds.into_iter().filter_map(|(feed, bounds)| match (FeedKey::from_stem(&feed), bounds) {
            (Some(key), Some(bounds)) => Some((key, bounds)),
            _ => {
                tracing::warn!(
                    "{}: the archive bounds of {feed} are unreadable; its pages are cut afresh",
                    self.path.display()
                );
                None
            }
        });
        Ok(readable.collect())
    }
}

fn subscription(row: &rusqlite::Row<'_>) -> rusqlite::Result<Subscription> {
    Ok(Subscription {
        topic: row.get(0)?,
        callback: row.get(1)?,
        secret: row.get(2)?,
        lease_expires: row.get(3)?,
        delivered: row.get(4)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audience::Seen;

    fn sub(topic: &str, callback: &str, lease_expires: i64) -> Subscription {
        Subscription {
            topic: topic.into(),
            callback: callback.into(),
            secret: Some("s".into()),
            lease_expires,
            delivered: "\"a\"".into(),
        }
    }

    /// A whole site's post rows (more than one slice of them, with errors and warnings here and
    /// there) read back as they were saved, in order, with the rows' texts made in parallel.
    #[test]
    fn a_whole_sites_post_rows_read_back_as_saved() {
        use crate::engine::{Indexed, Snapshot};
        use crate::post::{PostError, PostWarning};
        use crate::source::Fingerprint;
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<Indexed> = (0..9000u64)
            .map(|i| {
                let path = PathBuf::from(format!("/posts/{i:05}.md"));
                let message = format!("problem {i}: fix it");
                Indexed {
                    fingerprint: Fingerprint::from_parts(i, i as i64 * 7, i + 1, i as i64 * 11),
                    meta: None,
                    error: (i % 97 == 0).then(|| PostError {
                        path: path.clone(),
                        line: i as usize,
                        message: message.clone(),
                    }),
                    warnings: (i % 89 == 0).then_some(PostWarning { line: 2, message }).into_iter().collect(),
                    path,
                }
            })
            .collect();
        let snapshot = Snapshot { files: files.clone(), counts: [1, 2, 3], ..Default::default() };
        let changes = IndexChanges { snapshot, written: Vec::new(), removed: Vec::new(), whole: true, parallel: true };
        State::open(dir.path()).unwrap().save_scan_index("k", &changes).unwrap();
        let read = State::open(dir.path()).unwrap().quick_index("k").unwrap().expect("an index under key k");
        let row = |i: &Indexed| {
            let error = i.error.as_ref().map(|e| (e.line, e.message.clone()));
            let warnings: Vec<_> = i.warnings.iter().map(|w| (w.line, w.message.clone())).collect();
            (i.path.clone(), i.fingerprint, error, warnings)
        };
        assert_eq!(read.files.iter().map(row).collect::<Vec<_>>(), files.iter().map(row).collect::<Vec<_>>());
        assert_eq!(read.counts, [1, 2, 3]);
    }

    /// A whole index saved in two: the post rows alone are no index (a crash there costs a full
    /// read); with the rest saved, it is the index of both, and nothing of the one before.
    #[test]
    fn an_index_saved_in_two_is_an_index_only_once_both_are_saved() {
        use crate::engine::{Indexed, Snapshot};
        use crate::source::Fingerprint;
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).unwrap();
        let file = |i: u64| Indexed {
            path: PathBuf::from(format!("/posts/{i}.md")),
            fingerprint: Fingerprint::from_parts(i, 7, i + 1, 11),
            meta: None,
            error: None,
            warnings: Vec::new(),
        };
        let changes = |files: Vec<Indexed>, whole: bool| IndexChanges {
            snapshot: Snapshot { files, counts: [0, 0, 2], ..Default::default() },
            written: Vec::new(),
            removed: Vec::new(),
            whole,
            parallel: false,
        };
        state.save_scan_index("k", &changes(vec![file(1), file(2)], true)).unwrap();
        state.save_scan_posts(&Snapshot { files: vec![file(3)], ..Default::default() }).unwrap();
        assert!(!state.has_scan_index("k").unwrap(), "the post rows alone");
        assert!(state.quick_index("k").unwrap().is_none() && state.scan_index("k").unwrap().is_none());
        state.save_scan_index("k", &changes(vec![file(4)], false)).unwrap();
        let read = state.quick_index("k").unwrap().expect("both halves saved");
        let paths: Vec<PathBuf> = read.files.iter().map(|i| i.path.clone()).collect();
        assert_eq!(paths, [PathBuf::from("/posts/3.md"), PathBuf::from("/posts/4.md")]);
    }

    #[test]
    fn the_audience_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let audience = crate::audience::Audience::default();
        let feed: Arc<str> = Arc::from("categories/科技");
        for (address, user_agent) in [("192.0.2.1", "Feedly/1.0 (x; 12 subscribers)"), ("2001:db8::1", "newsboat/2.30")]
        {
            let seen = Seen::example(&feed, address, user_agent, 1_795_953_600);
            audience.record(&Seen { not_modified: true, ..seen });
        }
        let saved = audience.saved(1_795_953_660);
        State::open(dir.path()).unwrap().save_audience(&saved, true).unwrap();
        let mut read = State::open(dir.path()).unwrap().audience().unwrap();
        let mut expected = saved.clone();
        for saved in [&mut read, &mut expected] {
            saved.clients.sort_by_key(|c| c.id);
        }
        assert_eq!(read, expected);
        assert_eq!((read.keys.len(), read.clients.len(), read.reports.len(), read.hours.len()), (1, 2, 1, 1));
    }

    #[test]
    fn saves_after_the_first_write_only_what_changed() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).unwrap();
        let audience = crate::audience::Audience::default();
        let feed: Arc<str> = Arc::from("feed");
        let record = |address: &str, now: i64| audience.record(&Seen::example(&feed, address, "newsboat/2.30", now));
        let noon = 1_795_953_600;
        record("192.0.2.1", noon - 86_000);
        record("192.0.2.2", noon);
        state.save_audience(&audience.changes(noon), false).unwrap();
        assert_eq!(audience.changes(noon).clients.len(), 0, "nothing changed since");
        // One client comes back, one is new, one has been away for a day (forgotten).
        record("192.0.2.2", noon + 600);
        record("192.0.2.3", noon + 600);
        let changes = audience.changes(noon + 600);
        assert_eq!((changes.clients.len(), changes.gone.len()), (2, 1));
        state.save_audience(&changes, false).unwrap();
        let sorted = |mut saved: Saved| {
            saved.clients.sort_by_key(|c| c.id);
            saved.clients
        };
        assert_eq!(sorted(state.audience().unwrap()), sorted(audience.saved(noon + 600)));
    }

    #[test]
    fn an_unreadable_row_of_counts_costs_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).unwrap();
        let audience = crate::audience::Audience::default();
        let feed: Arc<str> = Arc::from("feed");
        for address in ["192.0.2.1", "192.0.2.2"] {
            audience.record(&Seen::example(&feed, address, "newsboat/2.30", 1_795_953_600));
        }
        state.save_audience(&audience.saved(1_795_953_600), true).unwrap();
        state
            .lock()
            .execute_batch("UPDATE audience_client SET requests = -1 WHERE id = (SELECT min(id) FROM audience_client)")
            .unwrap();
        let read = state.audience().unwrap();
        assert_eq!((read.clients.len(), read.keys.len(), read.hours.len()), (1, 1, 1));
        state.clear_audience().unwrap();
        assert_eq!(state.audience().unwrap(), Saved::default());
    }

    #[test]
    fn archive_bounds_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).unwrap();
        let at = |seconds, nanos, link: &str, path: &str| Position {
            date: chrono::DateTime::from_timestamp(seconds, nanos).unwrap(),
            link: Reverse(link.to_owned()),
            path: Reverse(PathBuf::from(path)),
        };
        let site = vec![
            at(-86_400, 5, "https://e.org/a", "a.md"),
            at(1_700_000_000, 999_999_999, "https://e.org/新", "新.md"),
        ];
        let tag = vec![at(0, 0, "https://e.org/b", "b.md")];
        let key = FeedKey::Tag("青岛".into());
        let all = |bounds: &[Position]| BoundsChange::from(bounds, 0);
        state.set_archive_bounds(&[(FeedKey::Site, all(&site)), (key.clone(), all(&tag))].into()).unwrap();
        state.set_archive_bounds(&[(key.clone(), BoundsChange::default())].into()).unwrap();
        // A page sealed: one bound added after those kept; a cut: the second replaced.
        let mut grown = site.clone();
        grown.push(at(1_800_000_000, 0, "https://e.org/c", "c.md"));
        state.set_archive_bounds(&[(FeedKey::Site, BoundsChange::from(&grown, 2))].into()).unwrap();
        assert_eq!(state.archive_bounds().unwrap(), BTreeMap::from([(FeedKey::Site, grown.clone())]));
        grown[1] = at(1_750_000_000, 0, "https://e.org/d", "d.md");
        grown.truncate(2);
        state.set_archive_bounds(&[(FeedKey::Site, BoundsChange::from(&grown, 1))].into()).unwrap();
        let reopened = State::open(dir.path()).unwrap();
        assert_eq!(reopened.archive_bounds().unwrap(), BTreeMap::from([(FeedKey::Site, grown.clone())]));
        // Replaced whole: the feeds not given lose theirs.
        let whole = BTreeMap::from([(key.clone(), site.clone())]);
        reopened.replace_archive_bounds(&whole).unwrap();
        assert_eq!(reopened.archive_bounds().unwrap(), whole);
        reopened.replace_archive_bounds(&BTreeMap::from([(FeedKey::Site, grown.clone())])).unwrap();
        // A row for a feed name no crier makes is dropped with its feed, not misread; so are the
        // bounds of a feed with a page missing.
        reopened.lock().execute("INSERT INTO archive_bound VALUES ('nowhere/x', 1, 0, 0, '', x'')", []).unwrap();
        assert_eq!(reopened.archive_bounds().unwrap().len(), 1);
        reopened.lock().execute("DELETE FROM archive_bound WHERE page = 1", []).unwrap();
        assert!(reopened.archive_bounds().unwrap().is_empty());
    }

    #[test]
    fn subscriptions_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).unwrap();
        state.subscribe(&sub("t1", "http://a/", 100), 0, 10).unwrap();
        state.subscribe(&sub("t1", "http://b/", 50), 0, 10).unwrap();
        state.subscribe(&sub("t2", "http://a/", 100), 0, 10).unwrap();
        state.delivered("t1", "http://a/", "\"b\"").unwrap();
        drop(state);
        let state = State::open(dir.path()).unwrap();
        assert_eq!(state.subscription_count().unwrap(), 3);
        let t1 = state.subscribers("t1", 60).unwrap();
        assert_eq!(t1.len(), 1, "the lease of b ended at 50");
        assert_eq!(t1[0].delivered, "\"b\"");
        assert_eq!(state.topics(60).unwrap().len(), 2);
        assert_eq!(state.expire(60).unwrap(), 1);
        assert!(state.unsubscribe("t2", "http://a/").unwrap());
        assert!(!state.unsubscribe("t2", "http://a/").unwrap());
        // Renewal replaces the lease and the secret, keeps one row and what was delivered.
        let renewal = Subscription { secret: None, delivered: "\"new\"".into(), ..sub("t1", "http://a/", 500) };
        assert!(state.subscribe(&renewal, 1, 1).unwrap(), "a renewal passes even at the limit");
        let renewed = state.subscription("t1", "http://a/").unwrap().unwrap();
        assert_eq!((renewed.lease_expires, renewed.secret, renewed.delivered.as_str()), (500, None, "\"b\""));
        assert_eq!(state.subscription_count().unwrap(), 1);
        assert!(!state.subscribe(&sub("t3", "http://c/", 100), 0, 1).unwrap(), "a new one does not");
        assert_eq!(state.subscription_count().unwrap(), 1);
    }

    #[test]
    fn a_write_waits_for_another_process_s_write_that_lasts_seconds() {
        // A first publish's child saving a million posts' scan index holds the lock about 7 s.
        const HELD: std::time::Duration = std::time::Duration::from_secs(7);
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).unwrap();
        let other = Connection::open(dir.path().join(FILE_NAME)).unwrap();
        other.execute_batch("BEGIN IMMEDIATE; DELETE FROM subscription;").unwrap();
        let started = std::time::Instant::now();
        let holder = std::thread::spawn(move || {
            std::thread::sleep(HELD);
            other.execute_batch("COMMIT").unwrap();
        });
        state.subscribe(&sub("t1", "http://a/", 100), 0, 10).expect("stored once the other write ended");
        assert!(started.elapsed() >= HELD, "{:?}", started.elapsed());
        holder.join().unwrap();
        assert_eq!(state.subscription_count().unwrap(), 1);
    }

    #[test]
    fn gone_documents_are_remembered_then_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).unwrap();
        state.update_gone(&["a.rss".into(), "b.rss".into()], &[], 100).unwrap();
        state.update_gone(&["a.rss".into()], &["b.rss".into()], 200).unwrap();
        drop(state);
        let state = State::open(dir.path()).unwrap();
        assert_eq!(state.gone(0).unwrap(), [("a.rss".to_owned(), 100)], "the first time it went is kept");
        assert!(state.gone(101).unwrap().is_empty(), "forgotten after its time");
    }

    #[test]
    fn refuses_what_it_cannot_trust() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), b"this is not a database, but someone's notes".repeat(100)).unwrap();
        let error = State::open(dir.path()).unwrap_err().to_string();
        assert!(error.contains(FILE_NAME) && error.contains("move it away"), "{error}");
        assert!(dir.path().join(FILE_NAME).exists(), "never replaced");

        let dir = tempfile::tempdir().unwrap();
        drop(State::open(dir.path()).unwrap());
        let connection = Connection::open(dir.path().join(FILE_NAME)).unwrap();
        connection.pragma_update(None, "user_version", 99).unwrap();
        drop(connection);
        let error = State::open(dir.path()).unwrap_err().to_string();
        assert!(error.contains("newer crier") && error.contains("schema 99"), "{error}");
    }

    #[test]
    fn a_damaged_page_opens_quickly_and_fails_the_whole_check() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).unwrap();
        let filler = "CREATE TABLE filler(x); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n \
                      WHERE i < 2000) INSERT INTO filler SELECT printf('%0200d', i) FROM n;";
        state.connection.lock().unwrap().execute_batch(filler).unwrap();
        state.check_whole().unwrap();
        drop(state);
        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        assert!(bytes.len() > 40 * 4096, "{}", bytes.len());
        // Page 30 (of 4096 bytes) overwritten, the first (the schema) intact.
        bytes[29 * 4096..30 * 4096].fill(0xA5);
        std::fs::write(&path, &bytes).unwrap();
        let state = State::open_quick(dir.path()).unwrap();
        let error = state.check_whole().unwrap_err().to_string();
        assert!(error.contains("quick_check") && error.contains("move it away"), "{error}");
        assert!(State::open(dir.path()).is_err());
    }
}
