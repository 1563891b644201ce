//! The feeds folder's writer: a thread that writes, removes and sweeps files in the order steps
//! hand them over, so that a step's new documents are served without waiting for the file
//! system. On ext4, replacing a file by a rename flushes the new file and frees the old one's
//! blocks; a step that rewrites 30 documents (90 files) spent most of its time there.
//!
//! What it did comes back as [`Done`] for the publisher, the only one that changes the served
//! set: a document written can be served from its files, one that failed is kept to try again.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use crate::daemon::inbox::Message;
use crate::feeds_dir::{Encoded, FeedsDir, OnDisk};

/// One thing to do to the feeds folder.
pub enum Job {
    /// Write a document and its encodings.
    Write { rel: String, encoded: Encoded },
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
    Written { rel: String, on_disk: OnDisk, hash: u128 },
    Failed { rel: String, encoded: Encoded, error: anyhow::Error },
}

/// The jobs handed over and not started yet. A write of a document that is still waiting is
/// replaced by a newer write of it, in its place, unless a sweep or a `Then` came between: on a
/// disk that stalls, the queue holds at most one version of each document, not every version
/// each step made meanwhile, and the disk catches up with the newest only.
#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// How many jobs were taken from the front so far: a job's place is `taken` plus its index.
    taken: u64,
    /// Where the waiting write of each document is, since the last sweep or `Then`.
    writes: HashMap<String, u64>,
    /// How many `Then`s wait.
    thens: usize,
    closed: bool,
}

impl Queue {
    fn push(&mut self, job: Job) {
        match &job {
            Job::Write { rel, .. } => {
                if let Some(&place) = self.writes.get(rel)
                    && let Some(waiting) = place.checked_sub(self.taken).and_then(|i| self.jobs.get_mut(i as usize))
                {
                    *waiting = job;
                    return;
                }
                self.writes.insert(rel.clone(), self.taken + self.jobs.len() as u64);
            }
            Job::Remove(rel) => {
                self.writes.remove(rel);
            }
            Job::Sweep(_) => self.writes.clear(),
            Job::Then(_) => {
                self.writes.clear();
                self.thens += 1;
            }
        }
        self.jobs.push_back(job);
    }

    fn pop(&mut self) -> Option<Job> {
        let job = self.jobs.pop_front()?;
        self.taken += 1;
        self.thens -= usize::from(matches!(job, Job::Then(_)));
        if let Job::Write { rel, .. } = &job
            && self.writes.get(rel) == Some(&(self.taken - 1))
        {
            self.writes.remove(rel);
        }
        Some(job)
    }
}

/// The queue, and the writer thread's wait for it.
#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next job, waiting for one; `None` once closed and empty. Says too whether the queue
    /// is empty after it, when the publisher is woken to take what was done.
    fn next(&self) -> Option<(Job, bool)> {
        let mut queue = self.lock();
        loop {
            if let Some(job) = queue.pop() {
                return Some((job, queue.jobs.is_empty()));
            }
            if queue.closed {
                return None;
            }
            queue = self.ready.wait(queue).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// Closes the queue when the writer's thread ends, even by a panic: the jobs left are dropped, so
/// that one waiting for them ([`Writer::flush`]) is not kept waiting, and no new one is taken.
struct Closing(Arc<Shared>);

impl Drop for Closing {
    fn drop(&mut self) {
        let mut queue = self.0.lock();
        queue.closed = true;
        queue.jobs.clear();
        queue.thens = 0;
    }
}

/// How many jobs the writer does at most before it wakes the publisher to take what was done.
const WAKE_EVERY: usize = 64;

/// The writer thread, and what it reports.
pub struct Writer {
    shared: Arc<Shared>,
    done: Receiver<Done>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the thread on `feeds`; once it has nothing left to do (and every [`WAKE_EVERY`]
    /// jobs) it sends `wake` to the publisher, if given.
    pub fn start(feeds: FeedsDir, wake: Option<Sender<Message>>) -> Writer {
        let shared = Arc::new(Shared::default());
        let (report, done) = mpsc::channel();
        let jobs = shared.clone();
        let thread = std::thread::Builder::new()
            .name("crier-writer".into())
            .spawn(move || {
                super::background_thread();
                let _closing = Closing(jobs.clone());
                let mut since_wake = 0;
                while let Some((job, drained)) = jobs.next() {
                    run(&feeds, job, &report);
                    since_wake += 1;
                    if drained || since_wake == WAKE_EVERY {
                        since_wake = 0;
                        if let Some(wake) = &wake {
                            let _ = wake.send(Message::Written);
                        }
                    }
                }
            })
            .expect("a thread can be started");
        Writer { shared, done, thread: Some(thread) }
    }

    /// Hands over jobs, done after those handed over before (a write still waiting for the same
    /// document is replaced: see [`Queue`]).
    pub fn send(&self, batch: Vec<Job>) {
        if batch.is_empty() {
            return;
        }
        let mut queue = self.shared.lock();
        if queue.closed {
            return;
        }
        batch.into_iter().for_each(|job| queue.push(job));
        drop(queue);
        self.shared.ready.notify_one();
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

    /// Whether a [`Writer::then`] handed over has not started yet (the disk is slow).
    pub fn then_waiting(&self) -> bool {
        self.shared.lock().thens > 0
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
        self.shared.lock().closed = true;
        self.shared.ready.notify_one();
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
        Job::Write { rel, encoded } => {
            let done = match feeds.write(&rel, &encoded) {
                Ok(()) => {
                    let on_disk = OnDisk::of(&encoded);
                    Done::Written { rel, on_disk, hash: on_disk.files[0].1 }
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
        let write = |text: &str| Job::Write { rel: "feed.rss".into(), encoded: encoded(text) };
        writer.send(vec![write("<rss>1</rss>"), Job::Remove("feed.rss".into())]);
        writer.send(vec![write("<rss>2</rss>")]);
        // Without the `Then`, version 3 could replace version 2 while it waits.
        writer.then(|| {});
        writer.send(vec![write("<rss>3</rss>")]);
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
    fn a_write_waiting_behind_a_slow_one_is_replaced_by_a_newer_version() {
        let dir = tempfile::tempdir().unwrap();
        let writer = Writer::start(FeedsDir::at(dir.path(), Compression { gzip: 1, brotli: 1 }), None);
        // The disk stalls: the writer is held inside a job while steps hand over new versions.
        let (release, held) = mpsc::channel::<()>();
        let (started, holding) = mpsc::channel::<()>();
        writer.then(move || {
            started.send(()).unwrap();
            let _ = held.recv();
        });
        holding.recv().unwrap();
        let write = |rel: &str, text: &str| Job::Write { rel: rel.into(), encoded: encoded(text) };
        for n in 1..=50 {
            writer.send(vec![write("feed.rss", &format!("<rss>{n}</rss>")), write("feed.atom", "<feed/>")]);
        }
        // A removal and a `Then` are kept in order: the versions before and after each are written.
        writer.send(vec![Job::Remove("feed.atom".into()), write("feed.atom", "<feed>2</feed>")]);
        assert!(!writer.then_waiting(), "the one holding the writer has started");
        writer.then(|| {});
        assert!(writer.then_waiting());
        writer.send(vec![write("feed.rss", "<rss>last</rss>")]);
        release.send(()).unwrap();
        let written: Vec<(String, u128)> = writer
            .flush()
            .into_iter()
            .map(|d| match d {
                Done::Written { rel, hash, .. } => (rel, hash),
                Done::Failed { error, .. } => panic!("{error:#}"),
            })
            .collect();
        let hash = |t: &str| xxhash_rust::xxh3::xxh3_128(t.as_bytes());
        let expected = [
            ("feed.rss", hash("<rss>50</rss>")),
            ("feed.atom", hash("<feed/>")),
            ("feed.atom", hash("<feed>2</feed>")),
            ("feed.rss", hash("<rss>last</rss>")),
        ];
        assert_eq!(written, expected.map(|(rel, h)| (rel.to_owned(), h)));
        assert_eq!(std::fs::read(dir.path().join("feed.rss")).unwrap(), b"<rss>last</rss>");
        assert_eq!(std::fs::read(dir.path().join("feed.atom")).unwrap(), b"<feed>2</feed>");
        assert!(!writer.then_waiting());
    }

    #[test]
    fn a_failed_write_comes_back_with_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("feeds");
        std::fs::write(&root, "in the way").unwrap();
        let writer = Writer::start(FeedsDir::at(&root, Compression { gzip: 1, brotli: 1 }), None);
        writer.send(vec![Job::Write { rel: "feed.rss".into(), encoded: encoded("<rss/>") }]);
        match writer.finish().as_slice() {
            [Done::Failed { rel, encoded, .. }] => {
                assert_eq!(rel, "feed.rss");
                assert_eq!(&encoded.identity[..], b"<rss/>");
            }
            other => panic!("{other:?}"),
        }
    }
}
