//! The feeds folder's writer: a thread that writes, removes and sweeps files in the order steps
//! hand them over, so that a step's new documents are served without waiting for the file
//! system. On ext4, replacing a file by a rename flushes the new file and frees the old one's
//! blocks; a step that rewrites 30 documents (90 files) spent most of its time there.
//!
//! What it did comes back as [`Done`] for the publisher, the only one that changes the served
//! set: a document written can be served from its files, one that failed is kept to try again.

use std::collections::HashSet;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use crate::daemon::inbox::Message;
use crate::feeds_dir::{Encoded, FeedsDir, OnDisk};

/// One thing to do to the feeds folder.
pub enum Job {
    /// Write a document and its encodings; `refile`: serve it from its files once written.
    Write { rel: String, encoded: Encoded, refile: bool },
    /// Remove a document's files.
    Remove(String),
    /// Remove every document crier owns that is not in the set.
    Sweep(HashSet<String>),
    /// Run once everything handed over before is done.
    Then(Box<dyn FnOnce() + Send>),
}

/// What came of a write.
#[derive(Debug)]
pub enum Done {
    Written { rel: String, on_disk: OnDisk, hash: u128, refile: bool },
    Failed { rel: String, encoded: Encoded, error: anyhow::Error },
}

/// The writer thread, and what it reports.
pub struct Writer {
    jobs: Option<Sender<Vec<Job>>>,
    done: Receiver<Done>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the thread on `feeds`; after each batch it sends `wake` to the publisher, if given.
    pub fn start(feeds: FeedsDir, wake: Option<Sender<Message>>) -> Writer {
        let (jobs, receiver) = mpsc::channel::<Vec<Job>>();
        let (report, done) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("crier-writer".into())
            .spawn(move || {
                super::background_thread();
                for batch in receiver {
                    batch.into_iter().for_each(|job| run(&feeds, job, &report));
                    if let Some(wake) = &wake {
                        let _ = wake.send(Message::Written);
                    }
                }
            })
            .expect("a thread can be started");
        Writer { jobs: Some(jobs), done, thread: Some(thread) }
    }

    /// Hands over jobs, done after those handed over before.
    pub fn send(&self, batch: Vec<Job>) {
        if batch.is_empty() {
            return;
        }
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(batch);
        }
    }

    /// What was done since the last call, without waiting.
    pub fn take_done(&self) -> Vec<Done> {
        self.done.try_iter().collect()
    }

    /// Runs `then` on the writer's thread once every job handed over so far is done: what must
    /// not get ahead of the files (a save of the scan index, which says what they hold).
    pub fn then(&self, then: impl FnOnce() + Send + 'static) {
        self.send(vec![Job::Then(Box::new(then))]);
    }

    /// Waits until every job handed over so far is done; returns what was done since the last call.
    pub fn flush(&self) -> Vec<Done> {
        let (sender, receiver) = mpsc::channel();
        self.then(move || {
            let _ = sender.send(());
        });
        let _ = receiver.recv();
        self.take_done()
    }

    /// Waits for the jobs handed over and stops the thread; returns what was not taken yet.
    pub fn finish(mut self) -> Vec<Done> {
        self.stop();
        self.take_done()
    }

    fn stop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Writer {
    /// A stop never cuts a write off.
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(feeds: &FeedsDir, job: Job, report: &Sender<Done>) {
    match job {
        Job::Write { rel, encoded, refile } => {
            let done = match feeds.write(&rel, &encoded) {
                Ok(()) => {
                    let on_disk = OnDisk::of(&encoded);
                    Done::Written { rel, on_disk, hash: on_disk.files[0].1, refile }
                }
                Err(error) => Done::Failed { rel, encoded, error },
            };
            let _ = report.send(done);
        }
        Job::Remove(rel) => {
            if let Err(error) = feeds.remove(&rel) {
                tracing::error!("{error:#}");
            }
        }
        Job::Sweep(keep) => {
            if let Err(error) = feeds.remove_stale(&keep) {
                tracing::error!("{error:#}");
            }
        }
        Job::Then(then) => then(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Compression;
    use std::time::SystemTime;

    fn encoded(text: &str) -> Encoded {
        Encoded::compress(text.as_bytes().to_vec(), Compression { gzip: 1, brotli: 1 }, SystemTime::now())
    }

    #[test]
    fn jobs_are_done_in_the_order_they_were_handed_over() {
        let dir = tempfile::tempdir().unwrap();
        let feeds = FeedsDir::at(dir.path(), Compression { gzip: 1, brotli: 1 });
        let writer = Writer::start(feeds, None);
        let write = |text: &str| Job::Write { rel: "feed.rss".into(), encoded: encoded(text), refile: false };
        writer.send(vec![write("<rss>1</rss>"), Job::Remove("feed.rss".into())]);
        writer.send(vec![write("<rss>2</rss>"), write("<rss>3</rss>")]);
        let done = writer.flush();
        assert_eq!(std::fs::read(dir.path().join("feed.rss")).unwrap(), b"<rss>3</rss>");
        assert!(dir.path().join("feed.rss.gz").exists() && dir.path().join("feed.rss.br").exists());
        let hashes: Vec<u128> = done
            .iter()
            .map(|d| match d {
                Done::Written { hash, .. } => *hash,
                Done::Failed { error, .. } => panic!("{error:#}"),
            })
            .collect();
        let expected: Vec<u128> =
            ["<rss>1</rss>", "<rss>2</rss>", "<rss>3</rss>"].map(|t| xxhash_rust::xxh3::xxh3_128(t.as_bytes())).into();
        assert_eq!(hashes, expected);
        writer.send(vec![Job::Sweep(HashSet::new())]);
        assert!(writer.finish().is_empty());
        assert!(!dir.path().join("feed.rss").exists(), "swept");
    }

    #[test]
    fn a_failed_write_comes_back_with_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("feeds");
        std::fs::write(&root, "in the way").unwrap();
        let writer = Writer::start(FeedsDir::at(&root, Compression { gzip: 1, brotli: 1 }), None);
        writer.send(vec![Job::Write { rel: "feed.rss".into(), encoded: encoded("<rss/>"), refile: true }]);
        match writer.finish().as_slice() {
            [Done::Failed { rel, encoded, .. }] => {
                assert_eq!(rel, "feed.rss");
                assert_eq!(&encoded.identity[..], b"<rss/>");
            }
            other => panic!("{other:?}"),
        }
    }
}
