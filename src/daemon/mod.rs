//! `crier serve`: the publisher thread that keeps the served set current, the watcher that tells
//! it what changed, the server that reads it, and systemd's side of it, wired with one shutdown
//! path.
//!
//! - [`publisher`]: the thread and its loop; each step runs the engine and swaps the served set.
//! - [`first_publish`]: a start, or a reload, without a scan index publishes in a child process.
//! - [`audience`]: the subscriber counts loaded at start and saved every minute and at the stop.
//! - [`gone`]: documents that no longer exist, answered 410 for a while, kept across restarts.
//! - [`inbox`]: what the watcher and the signals said since the last step (bursts, settling).
//! - [`posts_root`]: the posts folder itself, watched, and followed when removed or replaced.
//! - [`writer`]: the thread that writes the feeds folder after the set that serves a step is live.
//! - [`unwritten`]: documents whose write failed, served from memory and tried again.
//! - [`status`]: the line `systemctl status` shows.
//! - [`signals`]: SIGTERM/SIGINT as one shutdown future, SIGHUP as new configurations.

pub mod audience;
pub mod first_publish;
pub mod gone;
pub mod inbox;
pub mod posts_root;
pub mod publisher;
pub mod signals;
pub mod status;
pub mod unwritten;
pub mod writer;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use first_publish::FirstPublish;
pub use publisher::{Clock, OnPublished, Publisher, PublisherHandle, SystemClock, Wiring};

use crate::config::{Config, ConfigError};
use crate::metrics::Metrics;
use crate::served::Shared;
use crate::server::admin::Admin;
use crate::server::{self, Limits, Observers};
use crate::state::State;
use crate::systemd::{self, Heartbeat};
use crate::websub::Hub;

/// Why `crier serve` could not run or stopped with a failure.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {address}: {source}; set `listen` or pass --listen")]
    Listen { address: SocketAddr, source: std::io::Error },
    #[error("cannot listen on {address} for /metrics and /stats: {source}; change or remove `metrics_listen`")]
    MetricsListen { address: SocketAddr, source: std::io::Error },
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("{0:#}")]
    Failed(anyhow::Error),
}

/// `crier serve` from start to stop: a runtime, the signal handlers (installed first: until then
/// SIGTERM or SIGHUP would kill crier outright), the listener systemd passed or a new one, then
/// [`serve`] until SIGTERM or SIGINT. `reload` reads the configuration again on SIGHUP;
/// `first_publish` makes a start without a scan index publish in a child process.
pub fn run<L>(config: Config, reload: L, first_publish: Option<FirstPublish>) -> Result<(), ServeError>
where
    L: Fn() -> Result<Config, ConfigError> + Send + Sync + 'static,
{
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(ServeError::Runtime)?;
    runtime.block_on(async move {
        let shutdown = signals::shutdown().map_err(ServeError::Signals)?;
        let reloads = signals::reloads(reload, &config.site_files()).map_err(ServeError::Signals)?;
        let listen = |source| ServeError::Listen { address: config.listen, source };
        let listener = match systemd::activated_listener().map_err(listen)? {
            Some(listener) => TcpListener::from_std(listener).map_err(listen)?,
            None => TcpListener::bind(config.listen).await.map_err(listen)?,
        };
        let address = listener.local_addr().map_or_else(|_| config.listen.to_string(), |a| a.to_string());
        let admin = match config.metrics_listen {
            Some(address) => {
                Some(TcpListener::bind(address).await.map_err(|source| ServeError::MetricsListen { address, source })?)
            }
            None => None,
        };
        tracing::info!("serving {} on http://{address}/", config.posts.display());
        if let Some(address) = admin.as_ref().and_then(|admin| admin.local_addr().ok()) {
            tracing::info!("metrics on http://{address}/metrics, subscribers on http://{address}/stats");
        }
        let listeners = Listeners { public: listener, admin };
        serve(Arc::new(config), listeners, shutdown, reloads, first_publish).await.map_err(ServeError::Failed)?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Where `crier serve` answers: the public listener, and the admins' one (`metrics_listen`).
pub struct Listeners {
    pub public: TcpListener,
    pub admin: Option<TcpListener>,
}

/// Serves on `listeners` until `shutdown` completes; each configuration received on `reloads` is
/// republished (SIGHUP); `first_publish`, if any, makes a start without a scan index (see
/// [`first_publish`]). Returns once in-flight responses are done and the publisher has stopped.
pub async fn serve(
    config: Arc<Config>,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
    reloads: tokio::sync::mpsc::Receiver<Arc<Config>>,
    first_publish: Option<FirstPublish>,
) -> anyhow::Result<()> {
    let shared = Arc::new(Shared::new());
    let heartbeat = Heartbeat::new();
    let state = open_state(&config)?;
    let audience = audience::start(config.count_subscribers, state.as_deref());
    let metrics = listeners.admin.as_ref().map(|_| Arc::new(Metrics::new(audience.clone())));
    let hub = state.as_ref().and_then(|state| start_hub(&config, state, &shared, metrics.clone()));
    let on_published = hub.clone().map(|hub| -> OnPublished { Arc::new(move |changed| hub.published(changed)) });
    let wiring = Wiring {
        heartbeat: heartbeat.clone(),
        on_published,
        state: state.clone(),
        metrics: metrics.clone(),
        first_publish,
    };
    let publisher = Publisher::start_with(config.clone(), shared.clone(), Arc::new(SystemClock), wiring);
    let keeper = audience.clone().map(|audience| audience::Keeper::start(audience, state.clone()));
    let watchdog = systemd::watchdog_interval().map(|interval| {
        tracing::info!("feeding the systemd watchdog every {:?}", interval / 2);
        let shared = shared.clone();
        tokio::spawn(async move { systemd::feed_watchdog(interval, heartbeat, shared.wait_ready()).await })
    });
    let handle = publisher.handle();
    let reloader = tokio::spawn(reload_on(reloads, handle.clone(), hub.clone(), config.websub.hub));
    let (stop_admin, admin_stops) = tokio::sync::watch::channel(false);
    let shutdown = stopping(shutdown, handle, stop_admin);
    let limits = Limits::from_config(&config);
    let admin = listeners.admin.zip(metrics.clone()).map(|(listener, metrics)| {
        let admin = Admin { metrics, audience: audience.clone(), style: crate::pages::STYLE };
        tokio::spawn(serve_admin(listener, admin, limits.clone(), admin_stops))
    });
    let access_log = config.access_log.then_some(config.access_log_addresses);
    let observers = Observers { metrics, audience: audience.clone(), access_log };
    let answerer = server::Answerer { shared, hub: hub.clone(), observers };
    server::serve(listeners.public, answerer, limits, shutdown).await;
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    if let Some(keeper) = keeper {
        keeper.finish().await;
    }
    if let Some(hub) = hub {
        // A delivery cut off after the subscriber got it would be sent again after the restart.
        hub.drain(config.shutdown_timeout).await;
    }
    reloader.abort();
    watchdog.iter().for_each(tokio::task::JoinHandle::abort);
    // The publisher is owned here alone, so it is always stopped and joined: never cut off
    // mid-write at exit.
    tokio::task::spawn_blocking(move || publisher.stop()).await?
}

/// Waits for `shutdown`, then says so to systemd (STOPPING=1), the publisher (it stops after its
/// step, and a first publish in a child process at once; it is joined once the answers in flight
/// are done) and the admins' listener.
async fn stopping(
    shutdown: impl Future<Output = ()>,
    publisher: PublisherHandle,
    admin: tokio::sync::watch::Sender<bool>,
) {
    shutdown.await;
    systemd::stopping();
    publisher.shutdown();
    let _ = admin.send(true);
}

/// Serves the admins' listener until `stops` says so.
async fn serve_admin(
    listener: TcpListener,
    admin: Admin,
    limits: Limits,
    mut stops: tokio::sync::watch::Receiver<bool>,
) {
    server::serve(listener, admin, limits, async move {
        let _ = stops.wait_for(|stop| *stop).await;
    })
    .await;
}

/// Lowers the calling thread's scheduling priority (its nice value, by 10, to 19 at most): for
/// a thread whose work can wait (writing files, saving the scan index), so that on a busy
/// machine it takes the cores the publisher's next change and the server's answers leave. Linux
/// keeps a nice value per thread; lowering one's own priority is always allowed. A failure
/// leaves the thread as it was.
pub fn background_thread() {
    let thread = Some(rustix::thread::gettid());
    let lowered = rustix::process::getpriority_process(thread)
        .and_then(|nice| rustix::process::setpriority_process(thread, (nice + 10).min(19)));
    if let Err(error) = lowered {
        tracing::debug!("could not lower this thread's priority: {error}");
    }
}

/// The state store, or none when it cannot be opened and WebSub (which needs it) is off. The
/// whole file is checked later, while crier serves (by the scan index's saver).
fn open_state(config: &Config) -> anyhow::Result<Option<Arc<State>>> {
    match State::open_quick(&config.state_dir) {
        Ok(state) => {
            tracing::info!("state in {}", state.path().display());
            Ok(Some(Arc::new(state)))
        }
        // WebSub subscriptions cannot live without it; the memory of gone feeds can, until a stop.
        Err(error) if !config.websub.enabled() => {
            tracing::warn!("{error}; feeds that go are remembered (410) only until crier stops");
            Ok(None)
        }
        Err(error) => Err(error.into()),
    }
}

/// Hands each new configuration to the hub and the publisher (`running_hub`: whether the
/// built-in hub runs).
async fn reload_on(
    mut reloads: tokio::sync::mpsc::Receiver<Arc<Config>>,
    publisher: PublisherHandle,
    hub: Option<Arc<Hub>>,
    running_hub: bool,
) {
    while let Some(config) = reloads.recv().await {
        let config = keep_hub(config, hub.is_some(), running_hub);
        if let Some(hub) = &hub {
            hub.reload(config.clone());
        }
        publisher.reload(config);
    }
}

/// The WebSub side when the configuration asks for it: the hub started.
fn start_hub(
    config: &Arc<Config>,
    state: &Arc<State>,
    shared: &Arc<Shared>,
    metrics: Option<Arc<Metrics>>,
) -> Option<Arc<Hub>> {
    if !config.websub.enabled() {
        return None;
    }
    if config.websub.hub {
        tracing::info!("websub: the built-in hub answers at {}", config.hub_url());
    }
    if let Some(metrics) = &metrics {
        let state = state.clone();
        metrics.gauge_fn("crier_websub_subscriptions", "WebSub subscriptions with a running lease.", move || {
            let now = crate::state::unix_seconds(std::time::SystemTime::now());
            state.live_subscription_count(now).map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX))
        });
    }
    Some(Hub::start(config.clone(), state.clone(), shared.clone(), metrics))
}

/// A reloaded configuration with WebSub as it was at start: the hub, and the links that advertise
/// hubs, are switched on or off by a restart (`started`: WebSub runs; `running`: the built-in hub).
fn keep_hub(config: Arc<Config>, started: bool, running: bool) -> Arc<Config> {
    let mut kept = (*config).clone();
    if !started && config.websub.enabled() {
        tracing::warn!("reload: [websub] was turned on; it takes effect at the next restart");
        kept.websub.hubs.clear();
    } else if config.websub.hub != running {
        tracing::warn!("reload: `websub.hub` changed to {}; it takes effect at the next restart", config.websub.hub);
    } else {
        return config;
    }
    kept.websub.hub = running;
    Arc::new(kept)
}
