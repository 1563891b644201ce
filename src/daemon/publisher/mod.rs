//! The publisher thread: keeps the served set and the feeds folder current. It publishes
//! everything once, then watches the posts folder and, step by step, turns what changed into
//! new documents, until it is told to stop.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use rayon::prelude::*;

use crate::build;
use crate::config::Config;
use crate::daemon::first_publish::FirstPublish;
use crate::daemon::gone::Gone;
use crate::daemon::inbox::{Inbox, Message};
use crate::daemon::posts_root::PostsRoot;
use crate::daemon::status::Status;
use crate::daemon::unwritten::Unwritten;
use crate::daemon::writer::{Done, Job, Writer};
use crate::documents;
use crate::engine::{Change, DocumentSink, Engine, in_groups};
use crate::feeds_dir::{Encoded, FeedsDir, OnDisk, Outcome, Put};
use crate::metrics::Metrics;
use crate::served::{Policy, Resource, ServedSet, Shared};
use crate::source::PathKind;
use crate::state::{IndexChanges, State};
use crate::systemd::{self, Heartbeat};
use crate::watch::{Hint, WatchMessage};

mod apart;

/// How often a missing posts folder is looked for.
const ROOT_POLL: Duration = Duration::from_millis(500);
/// The publisher proves it is alive at least this often (the watchdog depends on it).
const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long after what a change left was first put off a newer change may still go first (a
/// steady stream of saves still gets its encodings and archive pages: the leftovers then wait
/// at most for one more burst and step).
const FINISH_WAIT: Duration = Duration::from_millis(100);

/// Where the time of scheduled posts comes from, so tests can move it.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Told, after each step once its documents are served, the paths of those whose bytes changed
/// (the WebSub hub's cue).
pub type OnPublished = Arc<dyn Fn(Vec<String>) + Send + Sync>;

/// A running publisher thread. [`Publisher::stop`] ends it and waits for it.
pub struct Publisher {
    sender: Sender<Message>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A way to talk to the publisher from elsewhere (a signal task); holding one does not keep the
/// publisher running.
#[derive(Clone)]
pub struct PublisherHandle(Sender<Message>);

impl PublisherHandle {
    /// Hands the publisher a new configuration: it republishes everything with it.
    pub fn reload(&self, config: Arc<Config>) {
        let _ = self.0.send(Message::Reload(config));
    }

    /// Tells the publisher to stop after its current step ([`Publisher::stop`] waits for it).
    pub fn shutdown(&self) {
        let _ = self.0.send(Message::Shutdown);
    }
}

/// What a publisher is connected to besides the served set.
#[derive(Clone)]
pub struct Wiring {
    /// Beaten at least once a second (the watchdog's cue).
    pub heartbeat: Arc<Heartbeat>,
    /// Told what each step changed.
    pub on_published: Option<OnPublished>,
    /// Where what must survive a restart is kept.
    pub state: Option<Arc<State>>,
    pub metrics: Option<Arc<Metrics>>,
    /// Runs the publish of a start without a scan index, and of a reload, in a child process.
    pub first_publish: Option<FirstPublish>,
}

impl Default for Wiring {
    fn default() -> Wiring {
        Wiring { heartbeat: Heartbeat::new(), on_published: None, state: None, metrics: None, first_publish: None }
    }
}

impl Publisher {
    /// Starts the publisher thread: it publishes everything once (then `shared` is ready), and
    /// keeps the served set and the feeds folder current until stopped.
    pub fn start(config: Arc<Config>, shared: Arc<Shared>, clock: Arc<dyn Clock>) -> Publisher {
        Publisher::start_with(config, shared, clock, Wiring::default())
    }

    /// Like [`Publisher::start`], connected as `wiring` says.
    pub fn start_with(config: Arc<Config>, shared: Arc<Shared>, clock: Arc<dyn Clock>, wiring: Wiring) -> Publisher {
        let (sender, receiver) = mpsc::channel();
        let events = sender.clone();
        let thread = std::thread::Builder::new()
            .name("crier-publisher".into())
            .spawn(move || {
                let Wiring { heartbeat, on_published, state, metrics, first_publish } = wiring;
                let mut worker = Worker::new(config, shared, clock, heartbeat, on_published);
                worker.first_publish = first_publish;
                worker.gone = Gone::new(state.clone());
                worker.state = state;
                worker.unwritten.failures = metrics.as_ref().map(|m| m.write_failures.clone());
                worker.metrics = metrics;
                worker.run(&receiver, &events);
            })
            .expect("a thread can be started");
        Publisher { sender, thread: Some(thread) }
    }

    pub fn handle(&self) -> PublisherHandle {
        PublisherHandle(self.sender.clone())
    }

    /// Asks the publisher to look at the clock now.
    pub fn tick(&self) {
        let _ = self.sender.send(Message::Tick);
    }

    /// Stops the publisher after its current step and waits until it has; an error if the
    /// thread had died of a panic.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.sender.send(Message::Shutdown);
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Err(_)) => anyhow::bail!("the publisher thread panicked; the feeds stopped following the posts"),
            _ => Ok(()),
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.sender.send(Message::Shutdown);
    }
}

/// One document a step made, as it stands on disk (or failed to).
struct Made {
    rel: String,
    put: Put,
    /// Written: served as [`Resource::filed`] says, its bytes not kept (`put` holds none).
    filed: Option<Resource>,
    /// New bytes, served from memory and handed to the writer once the new set is live: every
    /// document after the first publish (writing files never delays serving them), and in a full
    /// step, files the served set reads for each response (written before, they would not match
    /// the ETags of the set still answering).
    deferred: bool,
    /// The files as they stand on disk now, for the scan index (none: not written yet).
    on_disk: Option<OnDisk>,
}

/// What a step is, as it serves what it makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StepKind {
    /// A first publish or a reload: replaces the whole served set.
    Full,
    /// A change after the first publish: the feeds it touches are served as they are, their
    /// encodings made by the step that finishes it.
    Change,
    /// Finishes the changes before it (see [`Worker::finish`]).
    Finish,
}

/// The daemon's sink: each document is made current on disk (or taken from it, unchanged) and
/// kept with its encodings to serve.
struct KeepSink<'a> {
    feeds: &'a FeedsDir,
    now: SystemTime,
    made: Mutex<Vec<Made>>,
    /// The set being served while the step runs.
    current: Arc<ServedSet>,
    /// The files may lag behind the served set (the writer is behind it): a document is compared
    /// with what is served, never with its files, and its files are written after the swap.
    trust_served: bool,
    /// Documents other than archive pages are served before their encodings are made.
    encode_later: bool,
}

impl DocumentSink for KeepSink<'_> {
    fn accept(&self, rel: &str, bytes: Vec<u8>) {
        if self.trust_served {
            return self.serve_first(rel, bytes);
        }
        // Files the live set reads for each response are written after the swap.
        let read_from_files = self.current.resources.get(rel).is_some_and(|r| r.identity.is_file());
        // Written now: an archive page new to the served set, to be served from its files (a
        // first publish of a long history must not hold all of it in memory); and every document
        // of a first publish, so that the feeds folder is complete once anything is served.
        let write_now = !self.current.ready || documents::is_archive(rel);
        let (mut put, deferred) = match read_from_files || !write_now {
            true => {
                let (encoded, outcome) = self.feeds.prepare(rel, bytes, self.now);
                (Put { encoded, outcome, error: None }, outcome == Outcome::Written)
            }
            false => (self.feeds.put(rel, bytes, self.now), false),
        };
        let on_disk = (put.error.is_none() && !deferred).then(|| OnDisk::of(&put.encoded));
        let filed = (put.error.is_none() && !deferred).then(|| {
            let resource = Resource::new(rel, &put.encoded, self.now).filed(rel, &self.feeds.file_of(rel, None));
            put.encoded = Encoded::empty(put.encoded.modified);
            resource
        });
        let made = Made { rel: rel.to_owned(), put, filed, deferred, on_disk };
        self.made.lock().expect("no code panics while holding this lock").push(made);
    }
}

impl KeepSink<'_> {
    /// The sink of a step run while `current` is served.
    fn new(feeds: &FeedsDir, current: Arc<ServedSet>, kind: StepKind) -> KeepSink<'_> {
        let trust_served = current.ready && kind != StepKind::Full;
        let encode_later = trust_served && kind == StepKind::Change;
        KeepSink { feeds, now: SystemTime::now(), made: Mutex::new(Vec::new()), current, trust_served, encode_later }
    }

    /// A document of a step after the first publish: nothing when its bytes are served already,
    /// else served from memory, and written by the writer once the new set is live (an archive
    /// page is then served from its files again). A change serves a feed before compressing it:
    /// its encodings, and its files, follow in the step that finishes the change.
    fn serve_first(&self, rel: &str, bytes: Vec<u8>) {
        let hash = xxhash_rust::xxh3::xxh3_128(&bytes);
        if self.current.resources.get(rel).is_some_and(|served| served.identity.hash == hash) {
            return;
        }
        let later = self.encode_later && !documents::is_archive(rel);
        let encoded = match later {
            true => Encoded::identity_only(bytes, self.now),
            false => self.feeds.compress(bytes, self.now),
        };
        let put = Put { encoded, outcome: Outcome::Written, error: None };
        let made = Made { rel: rel.to_owned(), put, filed: None, deferred: !later, on_disk: None };
        self.made.lock().expect("no code panics while holding this lock").push(made);
    }
}

/// Since when what the last steps left has been put off for newer changes (see [`FINISH_WAIT`]).
#[derive(Debug, Default, Clone, Copy)]
struct PutOff {
    since: Option<Instant>,
}

impl PutOff {
    /// Whether a newer change (`newer`: one waits) goes first at `now`: yes, unless what is left
    /// was first put off [`FINISH_WAIT`] ago.
    fn goes_first(&mut self, newer: bool, now: Instant) -> bool {
        newer && now.saturating_duration_since(*self.since.get_or_insert(now)) < FINISH_WAIT
    }
}

/// The encodings of documents served without them (those still served so: a later change step
/// may have served newer bytes, equally without them), to serve and write, [`in_groups`]: those
/// not reached when `put_off` says a newer change goes first stay unencoded.
fn encode_some(
    feeds: &FeedsDir,
    current: &ServedSet,
    unencoded: &mut BTreeSet<String>,
    put_off: &mut dyn FnMut() -> bool,
) -> Vec<Made> {
    let encode = |rel: String| {
        let served = current.resources.get(&rel).filter(|r| r.gzip.is_none())?;
        let identity = served.identity.bytes().ok()?;
        let encoded = feeds.compress(identity.to_vec(), served.modified);
        let put = Put { encoded, outcome: Outcome::Written, error: None };
        Some(Made { rel, put, filed: None, deferred: true, on_disk: None })
    };
    let mut made = Vec::new();
    in_groups(unencoded, put_off, |some| made.par_extend(some.into_par_iter().filter_map(encode)));
    made
}

/// The publisher thread's state.
struct Worker {
    engine: Engine,
    feeds: FeedsDir,
    shared: Arc<Shared>,
    clock: Arc<dyn Clock>,
    unwritten: Unwritten,
    root: PostsRoot,
    heartbeat: Arc<Heartbeat>,
    status: Status,
    on_published: Option<OnPublished>,
    gone: Gone,
    /// Where archive bounds are kept across restarts (with the gone documents, in `gone`).
    state: Option<Arc<State>>,
    /// Documents to write once the set that serves them from memory is live (`Made::deferred`).
    to_write: Vec<Job>,
    /// Documents served without their encodings, which the next [`StepKind::Finish`] makes.
    unencoded: BTreeSet<String>,
    /// Since when what a change left for later has been put off for a newer change.
    put_off: PutOff,
    /// Writes the feeds folder after each swap (started with the loop).
    writer: Option<Writer>,
    /// After a full step: the documents to keep when the feeds folder is swept, once the new set
    /// is live.
    sweep_after: Option<std::collections::HashSet<String>>,
    metrics: Option<Arc<Metrics>>,
    /// The scan index: the key it is kept under (the engine's), whether it holds this engine's
    /// state (else the next save replaces it whole), and the documents written since the last save.
    index_key: String,
    indexed: bool,
    index_written: Vec<(String, OnDisk)>,
    index_removed: Vec<String>,
    saver: Option<IndexSaver>,
    saved_at: Option<Instant>,
    /// A save of archive bounds failed: the next saves them all, whole.
    bounds_unsaved: bool,
    /// Runs a publish of every post in a child process: at a start without a scan index, and at a
    /// reload (see [`first_publish`](crate::daemon::first_publish) and [`apart`]).
    first_publish: Option<FirstPublish>,
    /// After a first publish made by a child process, until it is served: what the topics'
    /// files held before it (their XXH3-128).
    published_apart: Option<std::collections::HashMap<String, u128>>,
}

/// How often the daemon saves the scan index, at most.
const INDEX_EVERY: Duration = Duration::from_secs(2);

/// Saves the scan index on its own thread, one save after another, so a save never delays a
/// publish. A save that fails is logged, the index is cleared, and the next save is whole. Before
/// the first save, it checks the whole database file, which the daemon opened without.
struct IndexSaver {
    sender: Option<Sender<(String, IndexChanges)>>,
    thread: Option<std::thread::JoinHandle<()>>,
    failed: Arc<AtomicBool>,
}

impl IndexSaver {
    fn start(state: Arc<State>) -> IndexSaver {
        let (sender, receiver) = mpsc::channel::<(String, IndexChanges)>();
        let failed = Arc::new(AtomicBool::new(false));
        let flag = failed.clone();
        let thread = std::thread::Builder::new()
            .name("crier-index".into())
            .spawn(move || {
                super::background_thread();
                // The daemon opens the database without the whole-file check, to serve sooner
                // (a million posts' index takes a second to check): it is checked here first.
                if let Err(error) = state.check_whole() {
                    tracing::error!("{error}; its scan index is cleared, and saved whole again");
                    let _ = state.clear_scan_index();
                    flag.store(true, Ordering::Relaxed);
                }
                for (key, changes) in receiver {
                    if let Err(error) = state.save_scan_index(&key, &changes) {
                        tracing::warn!("{error}; the next start reads every post");
                        let _ = state.clear_scan_index();
                        flag.store(true, Ordering::Relaxed);
                    }
                }
            })
            .expect("a thread can be started");
        IndexSaver { sender: Some(sender), thread: Some(thread), failed }
    }

    fn save(&self, key: String, changes: IndexChanges) {
        if let Some(sender) = &self.sender {
            let _ = sender.send((key, changes));
        }
    }
}

impl Drop for IndexSaver {
    /// Waits for the saves handed over: a stop never cuts one off.
    fn drop(&mut self) {
        drop(self.sender.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An engine whose every post read or rendered counts as the publisher making progress: a long
/// publish keeps the watchdog fed, a stuck one (no post done within the watchdog interval) does not.
fn engine(config: Arc<Config>, heartbeat: &Arc<Heartbeat>) -> Engine {
    let mut engine = Engine::new(config);
    let heartbeat = heartbeat.clone();
    engine.on_progress(move || heartbeat.beat());
    engine
}

impl Worker {
    fn new(
        config: Arc<Config>,
        shared: Arc<Shared>,
        clock: Arc<dyn Clock>,
        heartbeat: Arc<Heartbeat>,
        on_published: Option<OnPublished>,
    ) -> Worker {
        Worker {
            feeds: FeedsDir::new(&config),
            engine: engine(config, &heartbeat),
            shared,
            clock,
            unwritten: Unwritten::new(Instant::now()),
            root: PostsRoot::default(),
            heartbeat,
            status: Status::default(),
            on_published,
            gone: Gone::default(),
            state: None,
            to_write: Vec::new(),
            unencoded: BTreeSet::new(),
            put_off: PutOff::default(),
            writer: None,
            sweep_after: None,
            metrics: None,
            index_key: String::new(),
            indexed: false,
            index_written: Vec::new(),
            index_removed: Vec::new(),
            saver: None,
            saved_at: None,
            bounds_unsaved: false,
            first_publish: None,
            published_apart: None,
        }
    }

    fn config(&self) -> Arc<Config> {
        self.engine.config().clone()
    }

    fn status_line(&self) -> String {
        self.status.line(&self.engine, self.unwritten.len())
    }

    fn run(mut self, receiver: &Receiver<Message>, events: &Sender<Message>) {
        if PathKind::of(&self.config().posts) != PathKind::Folder {
            let posts = self.config().posts.display().to_string();
            tracing::warn!("posts folder {posts} does not exist yet; serving empty feeds until it does");
        }
        self.writer = Some(Writer::start(self.feeds.clone(), Some(events.clone())));
        apart::remove_leftovers(&self.feeds);
        let Some(held) = self.publish_apart(receiver) else {
            // Stopped before anything was published: nothing to write, nothing to save.
            let _ = self.writer.take().map(Writer::finish);
            return;
        };
        self.start_over("published", events);
        let mut inbox = Inbox::new(self.config().settle);
        // Before anything that came since: a newer reload stays the one that counts.
        held.into_iter().for_each(|message| inbox.handle(message, Instant::now()));
        loop {
            self.heartbeat.beat();
            inbox.receive(receiver, self.next_wake(&inbox, Instant::now()));
            let done = self.writer.as_ref().map(Writer::take_done).unwrap_or_default();
            self.files_written(done);
            if inbox.shutdown || inbox.reload.is_some() {
                self.finish(|| false);
            }
            if inbox.shutdown {
                break;
            }
            if let Some(config) = inbox.reload.take() {
                inbox.settle = config.settle;
                let Some(held) = self.reload(config, events, receiver) else { break };
                // Before anything that comes next: a newer reload stays the one that counts.
                held.into_iter().for_each(|message| inbox.handle(message, Instant::now()));
                continue;
            }
            self.compare_looks(&mut inbox);
            inbox.settle_until(Instant::now());
            if self.root.follow(&self.config(), events) {
                inbox.rescan = true;
            }
            self.work(&mut inbox);
            // A change saved meanwhile is served before what this one left for later.
            self.finish(|| {
                inbox.take_sent(receiver);
                inbox.has_change()
            });
        }
        self.root.stop();
        let done = self.writer.take().map(Writer::finish).unwrap_or_default();
        self.files_written(done);
        self.save_index(true);
    }

    /// Compares the poller's looks with the files read from their folders: one gone is looked
    /// at now, even if the poller never saw it (it came and went between two looks, and a walk
    /// of the folder read it meanwhile).
    fn compare_looks(&self, inbox: &mut Inbox) {
        for look in std::mem::take(&mut inbox.looked) {
            let gone: Vec<Hint> =
                self.engine.missing_under(&look.root, &look.files).into_iter().map(Hint::Ready).collect();
            if !gone.is_empty() {
                let now = Instant::now();
                inbox.handle(Message::Watch(WatchMessage::Hints(gone), now), now);
            }
        }
    }

    /// Waits for the writer to catch up with the served set: before a step that compares
    /// documents with their files.
    fn flush_writes(&mut self) {
        let done = self.writer.as_ref().map(Writer::flush).unwrap_or_default();
        self.files_written(done);
    }

    /// Takes in what the writer did: files written go into the scan index, and a document written
    /// is served from its files again as [`Resource::filed`] says (same bytes, same ETags),
    /// unless newer bytes are served by now, or it is served without its encodings yet (its
    /// identity would have nothing to be made again from, should its file be written over before
    /// they are made). A write that failed is tried again on a timer, unless newer bytes were
    /// handed to the writer since.
    fn files_written(&mut self, done: Vec<Done>) {
        if done.is_empty() {
            return;
        }
        let current = self.shared.load();
        let serves = |rel: &str, hash: u128| current.resources.get(rel).is_some_and(|r| r.identity.hash == hash);
        let in_memory =
            |rel: &str| current.resources.get(rel).is_some_and(|r| !r.identity.is_file() && r.gzip.is_some());
        let mut refiled = Vec::new();
        for done in done {
            match done {
                Done::Written { rel, on_disk, hash } => {
                    if serves(&rel, hash) && in_memory(&rel) {
                        refiled.push(rel.clone());
                    }
                    self.index_written.push((rel, on_disk));
                }
                Done::Failed { rel, encoded, error } => {
                    if serves(&rel, xxhash_rust::xxh3::xxh3_128(&encoded.identity)) {
                        self.unwritten.record(&rel, &encoded, Some(error));
                        self.index_removed.push(rel);
                    }
                }
            }
        }
        if refiled.is_empty() {
            return;
        }
        let mut next = (*current).clone();
        for rel in refiled {
            if let Some(resource) = next.resources.get(&rel) {
                let filed = (**resource).clone().filed(&rel, &self.feeds.file_of(&rel, None));
                next.resources.insert(rel, Arc::new(filed));
            }
        }
        self.shared.store(next);
    }

    /// When to wake without a message: a settling file, a scheduled post, a retry, a look for a
    /// missing posts folder, and the heartbeat, whichever comes first.
    fn next_wake(&self, inbox: &Inbox, now: Instant) -> Instant {
        let due = self.engine.next_due().map(|due| now + (due - self.clock.now()).to_std().unwrap_or(Duration::ZERO));
        let root = (!self.root.is_watching()).then_some(now + ROOT_POLL);
        [inbox.next_settled(), due, self.unwritten.next_try(), root]
            .into_iter()
            .flatten()
            .fold(now + HEARTBEAT, Instant::min)
    }

    /// Does what the inbox and the clock ask for.
    fn work(&mut self, inbox: &mut Inbox) {
        let ready = inbox.take_ready();
        // Files still settling keep the first event's time for their own publish.
        let since = match (ready.is_empty() && !inbox.rescan, inbox.next_settled().is_some()) {
            (true, _) => None,
            (false, true) => inbox.since,
            (false, false) => inbox.since.take(),
        };
        let published = if std::mem::take(&mut inbox.rescan) {
            self.metrics.iter().for_each(|m| m.rescans.inc());
            self.step("reread the posts folder", StepKind::Change, |engine, now, sink| engine.load_all(now, sink))
        } else {
            !ready.is_empty()
                && self.step("updated", StepKind::Change, |engine, now, sink| engine.apply(&ready, now, sink))
        };
        if let (Some(metrics), Some(since), true) = (&self.metrics, since, published) {
            metrics.publish.observe(since.elapsed().as_secs_f64());
        }
        if self.engine.next_due().is_some_and(|due| due <= self.clock.now()) {
            self.step("scheduled posts due", StepKind::Change, |engine, now, sink| engine.tick(now, sink));
        }
        if let Some(written) = self.unwritten.retry(&self.feeds, Instant::now()) {
            self.files_written(written);
            systemd::status(&self.status_line());
        }
    }

    /// Serves what the last steps left for later: first the encodings of the feeds they served
    /// (what most clients ask for), then, in a swap of their own, the archive pages that only
    /// gained a post or an edit, and the lists (see [`Engine::defer_pages`]). Both go
    /// [`in_groups`], and stop where `newer` says a change saved since waits, unless what is left
    /// was first put off [`FINISH_WAIT`] ago: what they did not reach joins what the next steps
    /// leave.
    fn finish(&mut self, mut newer: impl FnMut() -> bool) {
        let mut putting_off = std::mem::take(&mut self.put_off);
        let mut put_off = || putting_off.goes_first(newer(), Instant::now());
        if !self.unencoded.is_empty() && !put_off() {
            let started = Instant::now();
            let encoded = encode_some(&self.feeds, &self.shared.load(), &mut self.unencoded, &mut put_off);
            self.step_from(started, encoded, "then its encodings", StepKind::Finish, |_, _, _| Change::default());
        }
        if self.unencoded.is_empty() && self.engine.unfinished() && !put_off() {
            self.step("then its archive pages and lists", StepKind::Finish, |engine, _, sink| {
                engine.finish(sink, &mut put_off)
            });
        }
        if !self.unencoded.is_empty() || self.engine.unfinished() {
            self.put_off = putting_off;
        }
    }

    /// Publishes everything, then watches the posts folder and catches up with what changed
    /// meanwhile. Watching starts after the first publish, whose reads of every post would
    /// otherwise flood the watcher with events about crier itself; catching up compares the
    /// folder with what was read, which needs no reading.
    fn start_over(&mut self, what: &str, events: &Sender<Message>) {
        self.gone.load(&self.config(), SystemTime::now());
        self.index_key = self.engine.index_key();
        let apart = self.published_apart.take();
        if !self.shared.load().ready {
            self.serve_published(apart.is_none());
        }
        self.indexed = self
            .state
            .as_ref()
            .is_some_and(|state| build::restore_index(&mut self.engine, state, &self.index_key, &self.feeds, false));
        let apart = apart.filter(|_| self.indexed);
        if self.indexed {
            self.engine.render_shown(self.clock.now());
        }
        self.step(what, StepKind::Full, |engine, now, sink| engine.load_all(now, sink));
        if let Some(before) = apart {
            self.changed_apart(&before);
        }
        self.hold_feeds_in_memory();
        self.engine.defer_pages(true);
        let config = self.config();
        if PathKind::of(&config.posts) == PathKind::Folder {
            self.root.watch(&config, events);
            self.step("caught up", StepKind::Change, |engine, now, sink| engine.load_all(now, sink));
            self.finish(|| false);
        }
    }

    /// At a start with a scan index: serves the documents the last run published, from their
    /// files, with the validators it gave them, before a post is read (the catching up follows).
    /// They are served before their files are looked at: a document served from its files is
    /// checked against its ETag as it is read, and one whose files no longer hold the bytes its
    /// ETag names answers 503, never other bytes. Their files are looked at next, with the
    /// folder's documents the index does not list (written after its last save, before a
    /// crash), and the set served again: a document whose files were changed whole is served as
    /// they are now, one that cannot be read keeps answering 503 until the first step makes it
    /// again. After a child process's first publish (`ready` false), the set is loaded the same
    /// way but served only by the first step, as a first publish made here is.
    fn serve_published(&mut self, ready: bool) {
        let Some((next, documents)) = self.published_set(ready) else { return };
        let served = next.resources.len();
        if ready {
            let doing =
                format!("serving the {served} documents published before the start; catching up with the posts");
            systemd::ready(&doing);
            tracing::info!("{doing} folder");
        }
        self.shared.store(next);
        self.check_published(documents);
    }

    /// The set of the documents the scan index lists, served from their files, which are not
    /// looked at (see [`Worker::serve_published`]), with the documents; the archive bounds are
    /// restored too. None without an index for this configuration.
    fn published_set(&mut self, ready: bool) -> Option<(ServedSet, Vec<(String, OnDisk)>)> {
        let state = self.state.as_ref()?;
        let documents = match state.indexed_documents(&self.index_key) {
            Ok(Some(documents)) => documents,
            Ok(None) => return None,
            Err(error) => {
                tracing::warn!("{error}; the feeds are served once the posts are read");
                return None;
            }
        };
        match state.archive_bounds() {
            Ok(bounds) => self.engine.restore_archives(bounds),
            Err(error) => tracing::warn!("{error}; archive pages are cut afresh"),
        }
        let (wall, feeds, config) = (SystemTime::now(), &self.feeds, self.config());
        let mut next = ServedSet { policy: Arc::new(Policy::new(&config)), ready, ..Default::default() };
        let found = documents
            .par_iter()
            .map(|(rel, on_disk)| (rel.clone(), Resource::on_disk(rel, on_disk, &feeds.file_of(rel, None), wall)));
        // Gone feeds first: their names are folded with the others' (a 410 found by any case).
        next.gone = self.gone.served(&config);
        self.serve_with(&mut next, found);
        Some((next, documents))
    }

    /// Once the set of `documents` is served: looks at their files, and at the folder's
    /// documents the index does not list, and serves again those that changed.
    fn check_published(&mut self, documents: Vec<(String, OnDisk)>) {
        let (wall, feeds) = (SystemTime::now(), &self.feeds);
        let listed: std::collections::HashSet<String> = documents.iter().map(|(rel, _)| rel.clone()).collect();
        let unlisted = feeds.list_stale(&listed).unwrap_or_default();
        let changed = documents.into_par_iter().filter(|(rel, on_disk)| !feeds.still(rel, on_disk)).map(|(rel, _)| rel);
        let mut changed: Vec<String> = changed.collect();
        changed.extend(unlisted);
        let read = Worker::read_whole(feeds, changed, wall);
        if !read.is_empty() {
            let mut next = (*self.shared.load()).clone();
            self.serve_with(&mut next, read.into_par_iter());
            self.shared.store(next);
        }
    }

    /// The documents at `rels` as their files hold them, if they were written whole.
    fn read_whole(feeds: &FeedsDir, rels: Vec<String>, wall: SystemTime) -> Vec<(String, Resource)> {
        let read = rels.into_par_iter().filter_map(|rel| {
            let resource = Resource::new(&rel, &feeds.read(&rel)?, wall).filed(&rel, &feeds.file_of(&rel, None));
            Some((rel, resource))
        });
        read.collect()
    }

    /// Serves `found` in `next`.
    fn serve_with(&self, next: &mut ServedSet, found: impl ParallelIterator<Item = (String, Resource)>) {
        let (policy, engine) = (&next.policy, &self.engine);
        let linked: Vec<_> = found
            .map(|(rel, resource)| {
                let mut resource = resource.linked(&rel, policy);
                resource.sealed = engine.is_sealed_page(&rel);
                (rel, Arc::new(resource))
            })
            .collect();
        next.resources.extend_par(linked);
        next.folded = Arc::new(next.fold_feeds());
    }

    /// Reads into memory the encodings of the feeds served from files since the start (archive
    /// pages stay in their files, and so does every identity): a feed is asked for far more
    /// often than it changes.
    fn hold_feeds_in_memory(&self) {
        let current = self.shared.load();
        let on_file = |r: &Resource| [&r.gzip, &r.brotli].into_iter().flatten().any(|v| v.is_file());
        let filed = current.resources.iter().filter(|(rel, r)| on_file(r) && !documents::is_archive(rel));
        let loaded: Vec<(String, Resource)> =
            filed.filter_map(|(rel, r)| Some((rel.to_owned(), r.loaded()?))).collect();
        if loaded.is_empty() {
            return;
        }
        let mut next = (*current).clone();
        for (rel, resource) in loaded {
            next.resources.insert(rel, Arc::new(resource));
        }
        self.shared.store(next);
    }

    /// Hands what changed in the scan index since the last save to the saver (the whole index
    /// after a start without one, or after a save failed), at most every [`INDEX_EVERY`] unless
    /// `now`: saving takes a while at 100,000 posts, and an index a few seconds old only costs
    /// the next start a few files read again.
    fn save_index(&mut self, now: bool) {
        let Some(state) = &self.state else { return };
        // While a save handed to the writer has not run (the disk is slow), the next one waits,
        // its changes kept: a stalled disk piles up neither saves nor the versions of documents
        // that the writer cannot replace across a save.
        let waiting = self.writer.as_ref().is_some_and(Writer::then_waiting);
        if !now && (waiting || self.saved_at.is_some_and(|at| at.elapsed() < INDEX_EVERY)) {
            return;
        }
        // Not before the steps that finish a change: the files of the feeds it served without
        // their encodings are not handed to the writer yet, and its archive pages and lists are
        // not made (the index would say the lists are current).
        if !self.unencoded.is_empty() || self.engine.unfinished() {
            return;
        }
        let saver = self.saver.get_or_insert_with(|| IndexSaver::start(state.clone()));
        if saver.failed.swap(false, Ordering::Relaxed) {
            self.indexed = false;
            self.engine.forget_index();
        }
        let changes = IndexChanges {
            snapshot: self.engine.index_changes(),
            written: std::mem::take(&mut self.index_written),
            removed: std::mem::take(&mut self.index_removed),
            whole: !self.indexed,
            parallel: false,
        };
        // Saved once the files handed to the writer so far are written: the index must never say
        // a page was made from posts its files do not hold yet (a crash would leave it stale).
        let key = self.index_key.clone();
        match (&self.writer, saver.sender.clone()) {
            (Some(writer), Some(sender)) => writer.then(move || {
                let _ = sender.send((key, changes));
            }),
            _ => saver.save(key, changes),
        }
        self.indexed = true;
        self.saved_at = Some(Instant::now());
    }

    /// Starts over with a new configuration: everything is republished with it, by a child
    /// process when it can (see [`Worker::reload_apart`]), else here. Returns the messages that
    /// came meanwhile; None when told to stop meanwhile (the old configuration's feeds are
    /// served until then).
    fn reload(
        &mut self,
        config: Arc<Config>,
        events: &Sender<Message>,
        receiver: &Receiver<Message>,
    ) -> Option<Vec<Message>> {
        systemd::reloading();
        self.warn_at_restart(&config);
        self.root.stop();
        self.flush_writes();
        let (held, staged) = self.reload_apart(&config, receiver)?;
        self.feeds = FeedsDir::new(&config);
        self.writer = Some(Writer::start(self.feeds.clone(), Some(events.clone())));
        self.engine = engine(config, &self.heartbeat);
        self.unwritten.clear();
        if let Some(staged) = staged {
            self.swap_in(staged);
        }
        self.start_over("reloaded", events);
        tracing::info!("reloaded the configuration");
        systemd::ready(&self.status_line());
        Some(held)
    }

    /// Warns of the settings in `config` that changed and only a restart applies.
    fn warn_at_restart(&self, config: &Config) {
        let running = self.config();
        if config.listen != running.listen {
            tracing::warn!("reload: `listen` changed to {}; it takes effect at the next restart", config.listen);
        }
        let at_restart = [
            ("metrics_listen", config.metrics_listen != running.metrics_listen),
            ("access_log", config.access_log != running.access_log),
            ("access_log_addresses", config.access_log_addresses != running.access_log_addresses),
            ("count_subscribers", config.count_subscribers != running.count_subscribers),
        ];
        for (key, _) in at_restart.iter().filter(|(_, changed)| *changed) {
            tracing::warn!("reload: `{key}` changed; it takes effect at the next restart");
        }
    }

    /// Runs one engine step and serves what it made. A `full` step (a first publish, a reload)
    /// replaces the whole served set and clears stale documents from the feeds folder. Says
    /// whether a new set is served.
    fn step(
        &mut self,
        what: &str,
        kind: StepKind,
        run: impl FnOnce(&mut Engine, DateTime<Utc>, &dyn DocumentSink) -> Change,
    ) -> bool {
        self.step_from(Instant::now(), Vec::new(), what, kind, run)
    }

    /// [`Worker::step`], serving `encoded` too (encodings made for it before it ran, from
    /// `started`, which its time is logged from).
    fn step_from(
        &mut self,
        started: Instant,
        mut encoded: Vec<Made>,
        what: &str,
        kind: StepKind,
        run: impl FnOnce(&mut Engine, DateTime<Utc>, &dyn DocumentSink) -> Change,
    ) -> bool {
        let full = kind == StepKind::Full;
        if full {
            self.flush_writes();
        }
        let sink = KeepSink::new(&self.feeds, self.shared.load(), kind);
        let change = run(&mut self.engine, self.clock.now(), &sink);
        let mut made = sink.made.into_inner().expect("no code panics while holding this lock");
        made.append(&mut encoded);
        let made = self.take_made(made, &change);
        if made.is_empty() && change.removed.is_empty() && !full {
            self.save_index(false);
            return false;
        }
        let current = self.shared.load();
        let mut removed = change.removed.clone();
        if full {
            removed.extend(self.stale(&current, &made));
        }
        let (next, regenerated, changed) = self.next_set(&current, made, &removed);
        drop(current);
        if kind != StepKind::Finish {
            self.status.changed(what, change.posts_read, regenerated + removed.len());
        }
        let first = !self.shared.load().ready;
        if first {
            // Before the set goes live, so that systemd hears READY=1 before any watchdog ping.
            systemd::ready(&self.status_line());
        }
        self.shared.store(next);
        self.change_files_after(&removed);
        if let Some(on_published) = &self.on_published {
            on_published(changed);
        }
        self.index_removed.extend(removed.iter().cloned());
        self.save_index(full);
        if !first {
            systemd::status(&self.status_line());
        }
        tracing::info!(
            "{what}: {} posts read, {regenerated} documents regenerated, {} removed, {} errors; {} posts published, {} feeds; {:.1} ms",
            change.posts_read,
            removed.len(),
            change.errors.len(),
            self.engine.live_posts(),
            self.engine.feeds().count(),
            started.elapsed().as_secs_f64() * 1000.0
        );
        true
    }

    /// What a step made, its files noted for the scan index, its problems logged.
    fn take_made(&mut self, made: Vec<Made>, change: &Change) -> Vec<Made> {
        if let Some(state) = &self.state {
            // A step reports the bounds that changed: after a save that failed, all are saved.
            let saved = match self.bounds_unsaved {
                false => state.set_archive_bounds(&change.archive_bounds),
                true => state.replace_archive_bounds(&self.engine.archive_bounds()),
            };
            self.bounds_unsaved = saved.is_err();
            if let Err(error) = saved {
                tracing::error!("{error}; the archive bounds are saved whole at the next step");
            }
        }
        self.report(change);
        self.index_written.extend(made.iter().filter_map(|m| Some((m.rel.clone(), m.on_disk?))));
        // A document whose files could not be written is made again after a restart.
        self.index_removed.extend(made.iter().filter(|m| m.put.error.is_some()).map(|m| m.rel.clone()));
        made
    }

    /// Once the new set is live: hands the writer the sweep of a full step, the removal of the
    /// documents that went, and the writing of those served from memory (`Made::deferred`).
    fn change_files_after(&mut self, removed: &[String]) {
        let sweep = self.sweep_after.take().map(Job::Sweep);
        let removals = removed.iter().cloned().map(Job::Remove);
        let jobs = sweep.into_iter().chain(removals).chain(std::mem::take(&mut self.to_write)).collect();
        let feeds = &self.feeds;
        self.writer.get_or_insert_with(|| Writer::start(feeds.clone(), None)).send(jobs);
    }

    /// Logs a step's problems, each naming its file and line, and counts the posts.
    fn report(&mut self, change: &Change) {
        self.status.saw(change);
        if let Some(metrics) = &self.metrics {
            let e = &self.engine;
            let posts = [
                ("published", e.live_posts()),
                ("scheduled", e.scheduled()),
                ("draft", e.drafts()),
                ("error", e.bad().count()),
            ];
            metrics.published(posts, e.feeds().count());
        }
        for error in &change.errors {
            let fate = match self.engine.has_published(&error.path) {
                true => "its last good version stays published",
                false => "the post is skipped",
            };
            tracing::error!("{error}; {fate}");
        }
        for (path, warning) in &change.warnings {
            tracing::warn!("{}:{}: {}", path.display(), warning.line, warning.message);
        }
    }

    /// After a full step: the documents served or on disk that the step did not make.
    /// Those on disk count too: a feed whose files outlived it while crier was down is gone.
    fn stale(&mut self, current: &ServedSet, made: &[Made]) -> Vec<String> {
        // Every document the engine holds: after a start from the scan index, most were not
        // made again.
        let mut keep = self.engine.documents();
        keep.extend(made.iter().map(|m| m.rel.clone()));
        let mut stale: std::collections::BTreeSet<String> =
            current.resources.keys().filter(|rel| !keep.contains(*rel)).map(str::to_owned).collect();
        // Listed now, removed once the new set is live: the old one may be reading them.
        match self.feeds.list_stale(&keep) {
            Ok(listed) => stale.extend(listed),
            Err(error) => tracing::error!("{error:#}"),
        }
        self.sweep_after = Some(keep);
        stale.into_iter().collect()
    }

    /// The served set after a step: `current` with the documents made and without those removed.
    /// Returns it with the number of documents the step made and the paths of those whose bytes
    /// changed: since the last step, or, for a document not served yet, since the files on disk.
    fn next_set(
        &mut self,
        current: &ServedSet,
        made: Vec<Made>,
        removed: &[String],
    ) -> (ServedSet, usize, Vec<String>) {
        let mut next = current.clone();
        next.policy = Arc::new(Policy::new(self.engine.config()));
        next.ready = true;
        let wall = SystemTime::now();
        let regenerated = made.len();
        let posts_there = PathKind::of(&self.engine.config().posts) == PathKind::Folder;
        self.gone.update(made.iter().map(|m| m.rel.as_str()), removed, wall, posts_there);
        next.gone = self.gone.served(self.engine.config());
        let mut changed = Vec::new();
        for Made { rel, put, filed, deferred, .. } in made {
            let Put { mut encoded, error, outcome } = put;
            let hash =
                filed.as_ref().map_or_else(|| xxhash_rust::xxh3::xxh3_128(&encoded.identity), |r| r.identity.hash);
            if let Some(previous) = next.resources.get(&rel) {
                if previous.identity.hash == hash {
                    if !deferred && filed.is_none() {
                        continue;
                    }
                    // Same bytes, but the files the live set reads are missing or stale (serve
                    // these from memory and write them after the swap), or the files now hold
                    // them (serve them from there: written since, or in a moved feeds folder):
                    // as modified when they were.
                    encoded.modified = previous.modified;
                } else {
                    changed.push(rel.clone());
                }
                // Last-Modified never moves backwards, even if the clock does.
                encoded.modified = encoded.modified.max(previous.modified);
            } else if outcome == Outcome::Written {
                changed.push(rel.clone());
            }
            self.unwritten.record(&rel, &encoded, error);
            self.leave_for_later(&rel, &encoded, deferred, filed.is_none());
            let mut resource = match filed {
                Some(resource) => resource.dated(encoded.modified, wall),
                None => Resource::new(&rel, &encoded, wall),
            }
            .linked(&rel, &next.policy);
            resource.sealed = self.engine.is_sealed_page(&rel);
            next.resources.insert(rel.clone(), Arc::new(resource));
        }
        let feeds_changed = next.resources.len() != current.resources.len() || !removed.is_empty() || !current.ready;
        for rel in removed {
            next.resources.remove(rel);
            self.unwritten.forget(rel);
        }
        if feeds_changed {
            next.folded = Arc::new(next.fold_feeds());
        }
        (next, regenerated, changed)
    }

    /// What is left to do for a document a step made: its files, written once the set that
    /// serves it is live (`write`), and its encodings, when it is served from memory without them.
    fn leave_for_later(&mut self, rel: &str, encoded: &Encoded, write: bool, in_memory: bool) {
        if write {
            self.to_write.push(Job::Write { rel: rel.to_owned(), encoded: encoded.clone() });
        } else if in_memory && !encoded.is_encoded() {
            self.unencoded.insert(rel.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Compression;

    #[test]
    fn newer_changes_go_first_only_within_the_finish_wait() {
        let t0 = Instant::now();
        let mut put_off = PutOff::default();
        assert!(!put_off.goes_first(false, t0), "nothing newer: nothing put off");
        assert_eq!(put_off.since, None);
        assert!(put_off.goes_first(true, t0 + Duration::from_millis(5)));
        // Kept across finishes: counted from the first put-off, not from each.
        assert!(put_off.goes_first(true, t0 + FINISH_WAIT));
        assert!(!put_off.goes_first(true, t0 + FINISH_WAIT + Duration::from_millis(5)), "the leftovers' turn");
        assert!(!put_off.goes_first(false, t0 + Duration::from_millis(6)));
    }

    #[test]
    fn encodings_stop_after_a_group_when_a_newer_change_waits() {
        let dir = tempfile::tempdir().unwrap();
        let feeds = FeedsDir::at(dir.path(), Compression { gzip: 1, brotli: 1 });
        let now = SystemTime::now();
        let mut current = ServedSet::default();
        let rels: Vec<String> = (0..5).map(|n| format!("f{n}.rss")).collect();
        for rel in &rels {
            let encoded = Encoded::identity_only(format!("<rss>{rel}</rss>").into_bytes(), now);
            current.resources.insert(rel.clone(), Arc::new(Resource::new(rel, &encoded, now)));
        }
        let one_core = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let mut unencoded: BTreeSet<String> = rels.iter().cloned().collect();
        let made = one_core.install(|| encode_some(&feeds, &current, &mut unencoded, &mut || true));
        assert_eq!(made.iter().map(|m| m.rel.as_str()).collect::<Vec<_>>(), ["f0.rss"]);
        assert!(made[0].put.encoded.is_encoded() && made[0].deferred);
        assert_eq!(unencoded.len(), 4, "the rest wait for the next finish");
        let mut asked = 0;
        let made = one_core.install(|| {
            encode_some(&feeds, &current, &mut unencoded, &mut || {
                asked += 1;
                false
            })
        });
        assert_eq!(made.len(), 4);
        assert!(unencoded.is_empty());
        assert_eq!(asked, 2, "asked between groups of 1, 2 and the last 1, not after the last");
    }

    /// A publisher on a one-post site in `dir`, its state there too, with `first_publish`; what
    /// it serves once ready.
    fn first_start(dir: &std::path::Path, first_publish: FirstPublish) -> (Vec<String>, bool) {
        let posts = dir.join("posts");
        std::fs::create_dir_all(&posts).unwrap();
        std::fs::write(posts.join("a.md"), "---\ntitle: 港口\ndate: 2021-12-23 10:00 +0800\n---\nBody.\n").unwrap();
        let raw = toml::from_str("base_url = \"https://e.org/\"\n").unwrap();
        let overrides =
            crate::config::Overrides { posts: Some(posts), feeds: Some(dir.join("feeds")), ..Default::default() };
        let config = Arc::new(Config::from_raw(raw, dir, &overrides).unwrap());
        let state = Arc::new(State::open(&config.state_dir).unwrap());
        let wiring = Wiring { state: Some(state.clone()), first_publish: Some(first_publish), ..Default::default() };
        let shared = Arc::new(Shared::new());
        let publisher = Publisher::start_with(config.clone(), shared.clone(), Arc::new(SystemClock), wiring);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !shared.load().ready {
            assert!(Instant::now() < deadline, "never ready");
            std::thread::sleep(Duration::from_millis(10));
        }
        let served = shared.load().resources.keys().map(str::to_owned).collect();
        publisher.stop().unwrap();
        (served, state.has_scan_index(&Engine::new(config).index_key()).unwrap())
    }

    #[test]
    fn a_start_removes_the_folders_reloads_left_beside_the_feeds_folder() {
        let dir = tempfile::tempdir().unwrap();
        let leftover = dir.path().join(".feeds.crier-next");
        std::fs::create_dir_all(leftover.join("categories")).unwrap();
        std::fs::write(leftover.join("categories/old.rss"), "<rss/>").unwrap();
        let old = dir.path().join(".feeds.crier-old.1.0");
        std::fs::create_dir_all(&old).unwrap();
        let exits: FirstPublish = Arc::new(|| std::process::Command::new("true"));
        let (served, _) = first_start(dir.path(), exits);
        assert!(served.iter().any(|rel| rel == "feed.rss"), "{served:?}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while leftover.exists() || old.exists() {
            assert!(Instant::now() < deadline, "{} or {} is still there", leftover.display(), old.display());
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(dir.path().join("feeds/feed.rss").exists(), "the feeds folder beside it stays");
    }

    #[test]
    fn a_stop_while_a_reloads_child_publishes_saves_the_running_index_whole() {
        let dir = tempfile::tempdir().unwrap();
        let posts = dir.path().join("posts");
        std::fs::create_dir_all(&posts).unwrap();
        std::fs::write(posts.join("a.md"), "---\ntitle: 港口\ndate: 2021-12-23 10:00 +0800\n---\nBody.\n").unwrap();
        let config_of = |text: &str| {
            let overrides = crate::config::Overrides {
                posts: Some(posts.clone()),
                feeds: Some(dir.path().join("feeds")),
                ..Default::default()
            };
            Arc::new(Config::from_raw(toml::from_str(text).unwrap(), dir.path(), &overrides).unwrap())
        };
        let (config, renamed) = (
            config_of("base_url = \"https://e.org/\"\n"),
            config_of("base_url = \"https://e.org/\"\ntitle = \"New\"\n"),
        );
        let state = Arc::new(State::open(&config.state_dir).unwrap());
        // The first start publishes here (its child exits at once, with no index); the reload's
        // child takes a while, during which the test does what a real one does first: it
        // replaces the index (here: clears it).
        let child: FirstPublish = Arc::new(|| {
            let mut command = std::process::Command::new("sh");
            command.args(["-c", "test -z \"$CRIER_PUBLISH_INTO\" || exec sleep 30"]);
            command
        });
        let wiring = Wiring { state: Some(state.clone()), first_publish: Some(child), ..Default::default() };
        let shared = Arc::new(Shared::new());
        let publisher = Publisher::start_with(config.clone(), shared.clone(), Arc::new(SystemClock), wiring);
        let key = Engine::new(config.clone()).index_key();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !state.has_scan_index(&key).unwrap() {
            assert!(Instant::now() < deadline, "never indexed");
            std::thread::sleep(Duration::from_millis(10));
        }
        publisher.handle().reload(renamed);
        while !dir.path().join(".feeds.crier-next").exists() {
            assert!(Instant::now() < deadline, "no reload");
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(100));
        state.clear_scan_index().unwrap();
        publisher.stop().unwrap();
        let index = state.scan_index(&key).unwrap().expect("the running configuration's index");
        // Its posts, so the next start reads none; documents written before are not listed, and
        // are made again then (an index never lists files it did not see written).
        assert_eq!(index.snapshot.files.len(), 1, "saved whole, its post in it");
    }

    #[test]
    fn a_child_that_leaves_no_index_or_cannot_start_is_followed_by_a_publish_here() {
        let exits: FirstPublish = Arc::new(|| std::process::Command::new("true"));
        let missing: FirstPublish = Arc::new(|| std::process::Command::new("/nonexistent/crier"));
        for first_publish in [exits, missing] {
            let dir = tempfile::tempdir().unwrap();
            let (served, indexed) = first_start(dir.path(), first_publish);
            assert!(served.iter().any(|rel| rel == "feed.rss"), "{served:?}");
            let feed = std::fs::read_to_string(dir.path().join("feeds/feed.rss")).unwrap();
            assert!(feed.contains("港口"), "{feed}");
            assert!(indexed, "this process saved the index");
        }
    }
}
