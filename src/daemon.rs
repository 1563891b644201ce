//! `crier serve`: the publisher thread that keeps the published set current, the watcher that
//! tells it what changed, and the server that reads it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::engine::{Change, DocumentSink, Engine};
use crate::http::HttpSettings;
use crate::publish::{Encoded, FeedsDir, Levels};
use crate::published::{Published, Resource, Shared, content_type};
use crate::server::{self, Limits};
use crate::systemd::{self, Heartbeat};
use crate::watch::{self, Hint, WatchMessage};

/// A burst of events (an editor's save, `git pull`) is gathered until it has been quiet this long…
const BURST_QUIET: Duration = Duration::from_millis(10);
/// …or for at most this long, so that a long burst still publishes as it goes.
const BURST_MAX: Duration = Duration::from_millis(100);
/// How often failed writes to the feeds folder are tried again.
const RETRY_WRITES: Duration = Duration::from_secs(5);
/// How often a missing posts folder is looked for.
const ROOT_POLL: Duration = Duration::from_millis(500);
/// The publisher proves it is alive at least this often (the watchdog depends on it).
const HEARTBEAT: Duration = Duration::from_secs(1);

/// A folder's device and inode, or `None` when it is not a folder.
fn folder_identity(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().filter(|m| m.is_dir()).map(|m| (m.dev(), m.ino()))
}

fn feeds_dir(config: &Config) -> FeedsDir {
    FeedsDir::new(&config.feeds, Levels { gzip: config.gzip_level, brotli: config.brotli_quality })
}

/// Where the time comes from, so tests can move it.
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

/// Messages to the publisher thread.
pub enum Message {
    Watch(WatchMessage),
    /// Check the clock now (a test moved it).
    Tick,
    /// A new, already validated configuration (SIGHUP).
    Reload(Arc<Config>),
    Shutdown,
}

/// A handle on a running publisher.
pub struct Publisher {
    sender: Sender<Message>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Publisher {
    /// Starts the publisher thread: it publishes everything once (then `shared` is ready), and
    /// keeps the published set and the feeds folder current until shut down.
    pub fn start(config: Arc<Config>, shared: Arc<Shared>, clock: Arc<dyn Clock>) -> Publisher {
        Publisher::start_with(config, shared, clock, Heartbeat::new())
    }

    /// Like [`Publisher::start`]; the publisher beats `heartbeat` at least once a second.
    pub fn start_with(
        config: Arc<Config>,
        shared: Arc<Shared>,
        clock: Arc<dyn Clock>,
        heartbeat: Arc<Heartbeat>,
    ) -> Publisher {
        let (sender, receiver) = mpsc::channel();
        let events = sender.clone();
        let thread = std::thread::Builder::new()
            .name("crier-publisher".into())
            .spawn(move || {
                let mut state = State::new(config, shared, clock, heartbeat);
                state.run(receiver, events);
            })
            .expect("a thread can be started");
        Publisher { sender, thread: Some(thread) }
    }

    /// Asks the publisher to look at the clock now.
    pub fn tick(&self) {
        let _ = self.sender.send(Message::Tick);
    }

    /// Hands the publisher a new configuration: it republishes everything with it.
    pub fn reload(&self, config: Arc<Config>) {
        let _ = self.sender.send(Message::Reload(config));
    }

    /// Stops the publisher after its current step.
    pub fn stop(mut self) {
        let _ = self.sender.send(Message::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.sender.send(Message::Shutdown);
    }
}

/// Runs `crier serve` on `listener` until `shutdown` completes; each configuration received on
/// `reloads` is republished (SIGHUP).
pub async fn serve(
    config: Arc<Config>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    mut reloads: tokio::sync::mpsc::Receiver<Arc<Config>>,
) -> anyhow::Result<()> {
    let shared = Arc::new(Shared::new());
    let heartbeat = Heartbeat::new();
    let publisher =
        Arc::new(Publisher::start_with(config.clone(), shared.clone(), Arc::new(SystemClock), heartbeat.clone()));
    let watchdog = systemd::watchdog_interval().map(|interval| {
        tracing::info!("feeding the systemd watchdog every {:?}", interval / 2);
        let shared = shared.clone();
        tokio::spawn(async move { systemd::feed_watchdog(interval, heartbeat, shared.wait_ready()).await })
    });
    let reloader = {
        let publisher = publisher.clone();
        tokio::spawn(async move {
            while let Some(config) = reloads.recv().await {
                publisher.reload(config);
            }
        })
    };
    let shutdown = async {
        shutdown.await;
        systemd::stopping();
    };
    server::serve(listener, shared, Limits::from_config(&config), shutdown).await;
    reloader.abort();
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    let publisher = Arc::try_unwrap(publisher).ok();
    tokio::task::spawn_blocking(move || publisher.map(Publisher::stop)).await?;
    Ok(())
}

/// The publisher's state.
struct State {
    engine: Engine,
    feeds: FeedsDir,
    shared: Arc<Shared>,
    clock: Arc<dyn Clock>,
    published: Published,
    /// Documents whose write failed, kept to try again.
    unwritten: BTreeMap<String, Encoded>,
    last_retry: Instant,
    watcher: Option<watch::Watcher>,
    heartbeat: Arc<Heartbeat>,
    /// What `systemctl status` says about the last change and the last error.
    last_change: String,
    last_error: Option<String>,
    /// The posts folder being watched (device and inode), to notice it replaced.
    watched: Option<(u64, u64)>,
}

/// The daemon's sink: each document is made current on disk (or taken from it, unchanged) and
/// kept with its encodings to serve.
struct ServeSink<'a> {
    feeds: &'a FeedsDir,
    now: SystemTime,
    done: Mutex<Vec<(String, Encoded, Option<anyhow::Error>)>>,
}

impl DocumentSink for ServeSink<'_> {
    fn accept(&self, rel: &str, bytes: Vec<u8>) {
        let (encoded, _, error) = self.feeds.publish(rel, bytes, self.now);
        self.done.lock().expect("no code panics while holding this lock").push((rel.to_owned(), encoded, error));
    }
}

impl State {
    fn new(config: Arc<Config>, shared: Arc<Shared>, clock: Arc<dyn Clock>, heartbeat: Arc<Heartbeat>) -> State {
        State {
            feeds: feeds_dir(&config),
            engine: Engine::new(config),
            shared,
            clock,
            published: Published::default(),
            unwritten: BTreeMap::new(),
            last_retry: Instant::now(),
            watcher: None,
            heartbeat,
            last_change: "none yet".to_owned(),
            last_error: None,
            watched: None,
        }
    }

    /// One line for `systemctl status`.
    fn status(&self) -> String {
        let mut status = format!(
            "{} posts in {} feeds ({} scheduled, {} drafts, {} bad); last change: {}",
            self.engine.published(),
            self.engine.feeds().count(),
            self.engine.scheduled(),
            self.engine.drafts(),
            self.engine.bad().count(),
            self.last_change
        );
        if let Some(error) = &self.last_error {
            status.push_str("; last error: ");
            status.push_str(error);
        }
        if !self.unwritten.is_empty() {
            status.push_str(&format!("; {} documents not yet written to disk", self.unwritten.len()));
        }
        status
    }

    fn config(&self) -> Arc<Config> {
        self.engine.config().clone()
    }

    /// Runs one engine step and publishes what it produced. A `full` step (a first publish, a
    /// reload) replaces the published set and clears stale documents from the feeds folder.
    fn step(
        &mut self,
        what: &str,
        full: bool,
        run: impl FnOnce(&mut Engine, DateTime<Utc>, &dyn DocumentSink) -> Change,
    ) {
        let started = Instant::now();
        let now = self.clock.now();
        let sink = ServeSink { feeds: &self.feeds, now: SystemTime::now(), done: Mutex::new(Vec::new()) };
        let change = run(&mut self.engine, now, &sink);
        if let Some(error) = change.errors.last() {
            self.last_error = Some(error.to_string());
        }
        for error in &change.errors {
            tracing::error!(
                "{error}; {}",
                if self.engine.has_published(&error.path) {
                    "its last good version stays published"
                } else {
                    "the post is skipped"
                }
            );
        }
        for (path, warning) in &change.warnings {
            tracing::warn!("{}:{}: {}", path.display(), warning.line, warning.message);
        }
        let done = sink.done.into_inner().expect("no code panics while holding this lock");
        if done.is_empty() && change.removed.is_empty() && !full {
            return;
        }
        let mut next = self.published.clone();
        next.settings =
            Arc::new(HttpSettings::new(self.engine.config().cache_max_age, &self.engine.config().feeds_url));
        let mut removed = change.removed.clone();
        if full {
            let current: BTreeSet<&String> = done.iter().map(|(rel, _, _)| rel).collect();
            removed.extend(next.resources.keys().filter(|rel| !current.contains(rel)).cloned());
            let keep = current.into_iter().cloned().collect();
            if let Err(error) = self.feeds.remove_stale(&keep) {
                tracing::error!("{error:#}");
            }
        }
        let wall = SystemTime::now();
        let written = done.len();
        for (rel, mut encoded, error) in done {
            let previous = next.resources.get(&rel).cloned();
            if let Some(previous) = &previous {
                if previous.identity.body == encoded.identity {
                    continue;
                }
                // Last-Modified never moves backwards, even if the clock does.
                encoded.modified = encoded.modified.max(previous.modified);
            }
            if let Some(error) = error {
                tracing::error!("{error:#}; serving it from memory and trying again every {RETRY_WRITES:?}");
                self.unwritten.insert(rel.clone(), encoded.clone());
            } else {
                self.unwritten.remove(&rel);
            }
            next.resources.insert(rel.clone(), Arc::new(Resource::new(content_type(&rel), &encoded, wall)));
        }
        for rel in &removed {
            next.resources.remove(rel);
            self.unwritten.remove(rel);
            if let Err(error) = self.feeds.remove(rel) {
                tracing::error!("{error:#}");
            }
        }
        let first = !self.published.ready;
        next.ready = true;
        self.published = next.clone();
        self.last_change = format!(
            "{} {what} ({} posts read, {} documents)",
            Utc::now().format("%Y-%m-%d %H:%M:%S UTC"),
            change.posts_read,
            written + removed.len()
        );
        if first {
            // Before the set goes live, so that systemd hears READY=1 before any watchdog ping.
            systemd::ready(&self.status());
        }
        self.shared.store(next);
        if !first {
            systemd::status(&self.status());
        }
        tracing::info!(
            "{what}: {} posts read, {} documents regenerated, {} removed, {} errors; {} posts published, {} feeds; {:.1} ms",
            change.posts_read,
            written,
            removed.len(),
            change.errors.len(),
            self.engine.published(),
            self.engine.feeds().count(),
            started.elapsed().as_secs_f64() * 1000.0
        );
    }

    fn retry_writes(&mut self) {
        self.last_retry = Instant::now();
        let pending = std::mem::take(&mut self.unwritten);
        for (rel, encoded) in pending {
            if let Err(error) = self.feeds.write(&rel, &encoded) {
                tracing::warn!("{error:#}; will try again");
                self.unwritten.insert(rel, encoded);
            }
        }
        if self.unwritten.is_empty() {
            tracing::info!("the feeds folder is up to date again");
        }
        systemd::status(&self.status());
    }

    fn start_watcher(&mut self, events: &Sender<Message>) {
        let config = self.config();
        self.watcher = None;
        self.watched = folder_identity(&config.posts);
        let sender = events.clone();
        let handler = move |message: WatchMessage| {
            let _ = sender.send(Message::Watch(message));
        };
        match watch::start(&config.posts, config.poll, config.poll_interval, handler) {
            Ok(watcher) => self.watcher = Some(watcher),
            Err(error) => {
                tracing::error!("cannot watch {}: {error}; changes will be seen when it can", config.posts.display())
            }
        }
    }

    fn run(&mut self, receiver: Receiver<Message>, events: Sender<Message>) {
        let config = self.config();
        if !config.posts.is_dir() {
            tracing::warn!(
                "posts folder {} does not exist yet; serving empty feeds until it does",
                config.posts.display()
            );
        }
        self.step("published", true, |engine, now, sink| engine.load_all(now, sink));
        // Watching starts after the first publish (whose reads of every post would otherwise
        // flood the watcher with events about crier itself); what changed meanwhile is found by
        // comparing the folder with what was read, which needs no reading.
        if config.posts.is_dir() {
            self.start_watcher(&events);
            self.step("caught up", false, |engine, now, sink| engine.load_all(now, sink));
        }

        let mut inbox = Inbox { settle: config.settle, ..Inbox::default() };
        loop {
            // Sleep until a message, a settling file, a scheduled post, a retry or a root check.
            let now = Instant::now();
            let mut wake = now + Duration::from_secs(3600);
            if let Some(deadline) = inbox.pending.values().min() {
                wake = wake.min(*deadline);
            }
            if let Some(due) = self.engine.next_due() {
                let wait = (due - self.clock.now()).to_std().unwrap_or(Duration::ZERO);
                wake = wake.min(now + wait);
            }
            if !self.unwritten.is_empty() {
                wake = wake.min(self.last_retry + RETRY_WRITES);
            }
            wake = wake.min(now + HEARTBEAT);
            self.heartbeat.beat();
            if self.watcher.is_none() {
                wake = wake.min(now + ROOT_POLL);
            }
            match receiver.recv_timeout(wake.saturating_duration_since(Instant::now())) {
                Ok(message) => inbox.handle(message),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => inbox.shutdown = true,
            }
            // Gather the rest of a burst.
            let burst_end = Instant::now() + BURST_MAX;
            while !inbox.shutdown && !inbox.ready.is_empty() {
                let quiet = BURST_QUIET.min(burst_end.saturating_duration_since(Instant::now()));
                match receiver.recv_timeout(quiet) {
                    Ok(message) => inbox.handle(message),
                    Err(_) => break,
                }
            }
            if inbox.shutdown {
                break;
            }
            if let Some(config) = inbox.reload.take() {
                inbox.settle = config.settle;
                self.reload(config, &events);
                continue;
            }
            let (pending, ready, rescan) = (&mut inbox.pending, &mut inbox.ready, &mut inbox.rescan);
            let now = Instant::now();
            pending.retain(|path, deadline| {
                if *deadline <= now {
                    ready.insert(path.clone());
                    false
                } else {
                    true
                }
            });

            // The posts folder itself removed, replaced (a rename-swap deploy), or back.
            let config = self.config();
            let identity = folder_identity(&config.posts);
            if self.watcher.is_some() && identity != self.watched {
                if identity.is_none() {
                    tracing::warn!(
                        "posts folder {} was removed; its posts are unpublished until it is back",
                        config.posts.display()
                    );
                    self.watcher = None;
                } else {
                    tracing::info!("posts folder {} was replaced; watching the new one", config.posts.display());
                    self.start_watcher(&events);
                }
                *rescan = true;
            } else if self.watcher.is_none() && identity.is_some() {
                tracing::info!("posts folder {} is here; watching it", config.posts.display());
                self.start_watcher(&events);
                *rescan = true;
            }

            if *rescan {
                *rescan = false;
                ready.clear();
                self.step("reread the posts folder", false, |engine, now, sink| engine.load_all(now, sink));
            } else if !ready.is_empty() {
                let hints: Vec<PathBuf> = std::mem::take(ready).into_iter().collect();
                self.step("updated", false, |engine, now, sink| engine.apply(&hints, now, sink));
            }
            if self.engine.next_due().is_some_and(|due| due <= self.clock.now()) {
                self.step("scheduled posts due", false, |engine, now, sink| engine.tick(now, sink));
            }
            if !self.unwritten.is_empty() && self.last_retry.elapsed() >= RETRY_WRITES {
                self.retry_writes();
            }
        }
        self.watcher = None;
    }

    /// Starts over with a new configuration: everything is republished with it.
    fn reload(&mut self, config: Arc<Config>, events: &Sender<Message>) {
        systemd::reloading();
        let old = self.config();
        if config.listen != old.listen {
            tracing::warn!("reload: `listen` changed to {}; it takes effect at the next restart", config.listen);
        }
        self.watcher = None;
        self.feeds = feeds_dir(&config);
        self.engine = Engine::new(config.clone());
        self.unwritten.clear();
        // As at start: read everything first, then watch and catch up.
        self.step("reloaded", true, |engine, now, sink| engine.load_all(now, sink));
        if config.posts.is_dir() {
            self.start_watcher(events);
            self.step("caught up", false, |engine, now, sink| engine.load_all(now, sink));
        }
        tracing::info!("reloaded the configuration");
        systemd::ready(&self.status());
    }
}

/// What the watcher has said since the last step.
#[derive(Default)]
struct Inbox {
    settle: Duration,
    /// Files being written, with when they will have been quiet long enough.
    pending: HashMap<PathBuf, Instant>,
    /// Paths to look at now.
    ready: BTreeSet<PathBuf>,
    rescan: bool,
    reload: Option<Arc<Config>>,
    shutdown: bool,
}

impl Inbox {
    fn handle(&mut self, message: Message) {
        match message {
            Message::Watch(Ok(event)) => {
                for hint in watch::hints(event) {
                    match hint {
                        Hint::Ready(path) => {
                            self.pending.remove(&path);
                            self.ready.insert(path);
                        }
                        Hint::Writing(path) if self.settle.is_zero() => {
                            self.ready.insert(path);
                        }
                        Hint::Writing(path) => {
                            self.pending.insert(path, Instant::now() + self.settle);
                        }
                        Hint::Rescan => self.rescan = true,
                    }
                }
            }
            Message::Watch(Err(error)) => {
                tracing::warn!("watcher: {error}; reading the whole posts folder again");
                self.rescan = true;
            }
            Message::Tick => {}
            Message::Reload(config) => self.reload = Some(config),
            Message::Shutdown => self.shutdown = true,
        }
    }
}
