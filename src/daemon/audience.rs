//! The subscriber counts across restarts: loaded from `state_dir` at start, saved every minute
//! and once more at the stop. Without a state store they are counted until crier stops.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::audience::Audience;
use crate::state::{State, unix_seconds};

/// How often the counts are saved: a crash loses at most this much.
const SAVE_EVERY: Duration = Duration::from_secs(60);

/// The counts as saved, or none when there are none or they cannot be read.
pub fn load(state: Option<&State>) -> Arc<Audience> {
    let saved = state.map(State::audience).transpose().unwrap_or_else(|error| {
        tracing::error!("{error}; subscribers are counted afresh");
        None
    });
    Arc::new(Audience::from_saved(saved.unwrap_or_default()))
}

/// Saves the counts to `state`, off the async workers.
pub async fn save(audience: &Arc<Audience>, state: Option<Arc<State>>) {
    let Some(state) = state else { return };
    let audience = audience.clone();
    let saved = tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let saved = audience.saved(unix_seconds(SystemTime::now()));
        state.save_audience(&saved)?;
        let took = started.elapsed().as_secs_f64() * 1000.0;
        tracing::debug!("saved the subscriber counts ({} clients) in {took:.0} ms", saved.clients.len());
        Ok::<(), crate::state::StateError>(())
    })
    .await;
    match saved {
        Ok(Err(error)) => tracing::error!("{error}; subscriber counts since the last save are lost at a restart"),
        Err(error) => tracing::error!("saving subscriber counts: {error}"),
        Ok(Ok(())) => {}
    }
}

/// Saves the counts every [`SAVE_EVERY`], forever (the caller aborts it).
pub async fn keep(audience: Arc<Audience>, state: Option<Arc<State>>) {
    let mut every = tokio::time::interval(SAVE_EVERY);
    every.tick().await;
    loop {
        every.tick().await;
        save(&audience, state.clone()).await;
    }
}
