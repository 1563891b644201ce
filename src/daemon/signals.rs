//! Signals as futures and channels: SIGTERM and SIGINT become one shutdown future, SIGHUP a
//! stream of validated configurations.

use std::future::Future;
use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::config::{Config, ConfigError};

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

/// On each SIGHUP, reads the configuration again (on a blocking thread: it reads a file); a good
/// one is sent on, a bad one is logged in one line and the running configuration stays.
pub fn reloads<L>(load: L) -> std::io::Result<mpsc::Receiver<Arc<Config>>>
where
    L: Fn() -> Result<Config, ConfigError> + Send + Sync + 'static,
{
    let mut hangup = signal(SignalKind::hangup())?;
    let (sender, receiver) = mpsc::channel(4);
    let load = Arc::new(load);
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            tracing::info!("SIGHUP: reading the configuration again");
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
