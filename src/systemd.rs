//! systemd integration: readiness and status (sd_notify), the watchdog, socket activation.
//! Outside systemd (no `NOTIFY_SOCKET`, no `LISTEN_FDS`) every function here does nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

fn send(states: &[NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(states) {
        tracing::warn!("cannot notify systemd: {error}");
    }
}

/// The first publish is done and the listener accepts.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// What `systemctl status` shows.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// A reload begins (systemd 252 has no `Type=notify-reload`, but `RELOADING=1` with the
/// monotonic time is what newer versions expect, and older ones accept).
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now, NotifyState::Status("reloading the configuration")]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// Shutdown begins.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping: finishing in-flight responses")]);
}

/// A listener handed over by systemd (socket activation), made ready for tokio.
pub fn activated_listener() -> std::io::Result<Option<std::net::TcpListener>> {
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() == 0 {
        return Ok(None);
    }
    if fds.len() > 1 {
        tracing::warn!("systemd passed {} sockets; crier serves on the first only", fds.len());
    }
    let listener = fds.take_tcp_listener(0)?;
    if let Some(listener) = &listener {
        listener.set_nonblocking(true)?;
    }
    Ok(listener)
}

/// Proof of life from the parts of crier that must keep moving for the watchdog to be fed.
#[derive(Debug)]
pub struct Heartbeat {
    start: Instant,
    last: AtomicU64,
}

impl Heartbeat {
    pub fn new() -> Arc<Heartbeat> {
        Arc::new(Heartbeat { start: Instant::now(), last: AtomicU64::new(0) })
    }

    /// Records that the caller is alive now.
    pub fn beat(&self) {
        self.beat_at(Instant::now());
    }

    /// How long since the last beat.
    pub fn age(&self) -> Duration {
        self.age_at(Instant::now())
    }

    fn beat_at(&self, now: Instant) {
        self.last.store(now.saturating_duration_since(self.start).as_millis() as u64, Ordering::Relaxed);
    }

    fn age_at(&self, now: Instant) -> Duration {
        let now = now.saturating_duration_since(self.start).as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last.load(Ordering::Relaxed)))
    }
}

/// The watchdog interval systemd asked for (`WATCHDOG_USEC`), if any.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
}

/// Feeds the watchdog at half its interval, from the async runtime (so a stuck runtime stops the
/// pings), and only while the publisher's heartbeat is recent (so a stuck publisher does too).
/// Pings start with readiness; the start-up is bounded by `TimeoutStartSec=`.
pub async fn feed_watchdog(
    interval: Duration,
    publisher: Arc<Heartbeat>,
    ready: impl std::future::Future<Output = ()>,
) {
    ready.await;
    let period = interval / 2;
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut withheld = false;
    loop {
        ticker.tick().await;
        if publisher.age() <= interval {
            send(&[NotifyState::Watchdog]);
            withheld = false;
        } else if !withheld {
            tracing::error!(
                "the publisher has not made progress for {:?}; withholding watchdog pings so systemd restarts crier",
                publisher.age()
            );
            withheld = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_ages_between_beats() {
        let heart = Heartbeat::new();
        let t0 = heart.start;
        heart.beat_at(t0 + Duration::from_secs(1));
        assert_eq!(heart.age_at(t0 + Duration::from_secs(1)), Duration::ZERO);
        assert_eq!(heart.age_at(t0 + Duration::from_millis(3500)), Duration::from_millis(2500));
        heart.beat_at(t0 + Duration::from_secs(4));
        assert_eq!(heart.age_at(t0 + Duration::from_secs(5)), Duration::from_secs(1), "a new beat resets the age");
        heart.beat();
        assert!(heart.age() < Duration::from_secs(1));
    }
}
