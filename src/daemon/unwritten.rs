//! Documents served from memory because writing them to the feeds folder failed (disk full,
//! read-only), tried again on a timer until they are written.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::daemon::writer::Done;
use crate::feeds_dir::{Encoded, FeedsDir, OnDisk};

/// How often failed writes to the feeds folder are tried again.
pub const RETRY_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct Unwritten {
    documents: BTreeMap<String, Encoded>,
    last_try: Instant,
    /// Counts each failed write, when metrics are kept.
    pub failures: Option<prometheus::IntCounter>,
}

impl Unwritten {
    pub fn new(now: Instant) -> Unwritten {
        Unwritten { documents: BTreeMap::new(), last_try: now, failures: None }
    }

    pub fn len(&self) -> usize {
        self.documents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.documents.is_empty()
    }

    /// Records the outcome of writing `rel`: kept to try again on failure, forgotten on success.
    pub fn record(&mut self, rel: &str, encoded: &Encoded, error: Option<anyhow::Error>) {
        match error {
            Some(error) => {
                self.failures.iter().for_each(prometheus::IntCounter::inc);
                tracing::error!("{error:#}; serving it from memory and trying again every {RETRY_EVERY:?}");
                self.documents.insert(rel.to_owned(), encoded.clone());
            }
            None => self.forget(rel),
        }
    }

    /// `rel` no longer exists, or is written.
    pub fn forget(&mut self, rel: &str) {
        self.documents.remove(rel);
    }

    pub fn clear(&mut self) {
        self.documents.clear();
    }

    /// When the next try is due, if anything waits.
    pub fn next_try(&self) -> Option<Instant> {
        (!self.is_empty()).then_some(self.last_try + RETRY_EVERY)
    }

    /// Writes what waits, if a try is due at `now`; returns what it wrote, as the writer reports
    /// it, when it tried.
    pub fn retry(&mut self, feeds: &FeedsDir, now: Instant) -> Option<Vec<Done>> {
        if self.next_try().is_none_or(|due| due > now) {
            return None;
        }
        self.last_try = now;
        let failures = &self.failures;
        let mut written = Vec::new();
        self.documents.retain(|rel, encoded| match feeds.write(rel, encoded) {
            Ok(()) => {
                let on_disk = OnDisk::of(encoded);
                written.push(Done::Written { rel: rel.clone(), on_disk, hash: on_disk.files[0].1 });
                false
            }
            Err(error) => {
                failures.iter().for_each(prometheus::IntCounter::inc);
                tracing::warn!("{error:#}; will try again");
                true
            }
        });
        if self.documents.is_empty() {
            tracing::info!("the feeds folder is up to date again");
        }
        Some(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Compression;
    use std::time::SystemTime;

    #[test]
    fn tries_again_on_its_timer_until_written() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the folder should be: every write fails.
        let root = dir.path().join("feeds");
        std::fs::write(&root, "in the way").unwrap();
        let feeds = FeedsDir::at(&root, Compression { gzip: 1, brotli: 1 });
        let encoded = Encoded::compress(b"<rss/>".to_vec(), Compression { gzip: 1, brotli: 1 }, SystemTime::now());
        let t0 = Instant::now();
        let mut unwritten = Unwritten::new(t0);
        assert_eq!(unwritten.next_try(), None);
        unwritten.record("feed.rss", &encoded, Some(anyhow::anyhow!("disk full")));
        assert_eq!(unwritten.next_try(), Some(t0 + RETRY_EVERY));
        assert!(unwritten.retry(&feeds, t0 + RETRY_EVERY - Duration::from_millis(1)).is_none(), "not before its time");
        assert!(unwritten.retry(&feeds, t0 + RETRY_EVERY).is_some_and(|written| written.is_empty()));
        assert_eq!(unwritten.len(), 1, "still failing");
        std::fs::remove_file(&root).unwrap();
        match unwritten.retry(&feeds, t0 + 2 * RETRY_EVERY).as_deref() {
            Some([Done::Written { rel, hash, .. }]) => {
                assert_eq!((rel.as_str(), *hash), ("feed.rss", xxhash_rust::xxh3::xxh3_128(b"<rss/>")));
            }
            other => panic!("{other:?}"),
        }
        assert!(unwritten.is_empty());
        assert_eq!(std::fs::read(root.join("feed.rss")).unwrap(), b"<rss/>");
    }
}
