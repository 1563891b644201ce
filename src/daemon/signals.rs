//! Signals as futures and channels: SIGTERM and SIGINT become one shutdown future, SIGHUP a
//! stream of validated configurations.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::config::{Config, ConfigError};
use crate::watch;

/// Installs the SIGTERM and SIGINT handlers; the future completes when either arrives.
pub fn shutdown() -> std::io::Result<impl Future<Output = ()>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: finishing in-flight responses"),
            _ = int.recv() => tracing::info!("SIGINT: finishing in-flight responses"),
        }
    })
}

/// How long the site's files must be quiet after a change before they are read: an editor's
/// save is several events.
const SITE_FILES_SETTLE: std::time::Duration = std::time::Duration::from_millis(300);

/// On each SIGHUP, and each change of `site_files` (a Jekyll site's `_config.yml` and authors
/// data), reads the configuration again (on a blocking thread: it reads files); a good one is
/// sent on, a bad one is logged in one line and the running configuration stays.
pub fn reloads<L>(load: L, site_files: &[PathBuf]) -> std::io::Result<mpsc::Receiver<Arc<Config>>>
where
    L: Fn() -> Result<Config, ConfigError> + Send + Sync + 'static,
{
    let mut hangup = signal(SignalKind::hangup())?;
    let (changed, mut changes) = mpsc::unbounded_channel::<()>();
    let watcher = if site_files.is_empty() {
        None
    } else {
        watch::files(site_files, move || {
            let _ = changed.send(());
        })
        .inspect_err(|e| {
            tracing::error!("cannot watch the Jekyll site's configuration files: {e}; send SIGHUP after editing them")
        })
        .ok()
    };
    let (sender, receiver) = mpsc::channel(4);
    let load = Arc::new(load);
    tokio::spawn(async move {
        // Held here, so that the site's files are watched as long as reloads are awaited.
        let watcher = watcher;
        loop {
            tokio::select! {
                signal = hangup.recv() => {
                    if signal.is_none() {
                        break;
                    }
                    tracing::info!("SIGHUP: reading the configuration again");
                }
                change = changes.recv(), if watcher.is_some() => {
                    if change.is_none() {
                        break;
                    }
                    tokio::time::sleep(SITE_FILES_SETTLE).await;
                    while changes.try_recv().is_ok() {}
                    tracing::info!("the Jekyll site's configuration changed: reading the configuration again");
                }
            }
            let load = load.clone();
            match tokio::task::spawn_blocking(move || load()).await {
                Ok(Ok(config)) => {
                    if sender.send(Arc::new(config)).await.is_err() {
                        break;
                    }
                }
                Ok(Err(error)) => tracing::error!("reload rejected, the running configuration stays: {error}"),
                Err(error) => tracing::error!("reload failed, the running configuration stays: {error}"),
            }
        }
    });
    Ok(receiver)
}
