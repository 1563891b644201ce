//! The subscriber counts across restarts: loaded from `state_dir` at start, saved every minute
//! and once more at the stop. Without a state store they are counted until crier stops.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::audience::Audience;
use crate::state::{State, unix_seconds};

/// How often the counts are saved: a crash loses at most this much.
const SAVE_EVERY: Duration = Duration::from_secs(60);

/// The counts as saved when `count` is on; when it is off, none, and the saved ones deleted
/// (counting was turned off: nothing of it is kept).
pub fn start(count: bool, state: Option<&State>) -> Option<Arc<Audience>> {
    if count {
        return Some(load(state));
    }
    if let Some(Err(error)) = state.map(State::clear_audience) {
        tracing::error!("{error}; the subscriber counts saved before could not be deleted");
    }
    None
}

/// The counts as saved, or none when there are none or they cannot be read.
fn load(state: Option<&State>) -> Arc<Audience> {
    let saved = state.map(State::audience).transpose().unwrap_or_else(|error| {
        tracing::error!("{error}; subscribers are counted afresh");
        None
    });
    Arc::new(Audience::from_saved(saved.unwrap_or_default()))
}

/// Saves what changed in the counts to `state`, off the async workers; `whole` saves them all
/// (after a failed save, whose changes are not in the database). Says whether it saved.
async fn save(audience: &Arc<Audience>, state: Option<Arc<State>>, whole: bool) -> bool {
    let audience = audience.clone();
    let Some(state) = state else {
        // Nowhere to save: what changed is let go of all the same (the forgotten clients' ids
        // would pile up).
        let _ = audience.changes(unix_seconds(SystemTime::now()));
        return true;
    };
    let saved = tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let now = unix_seconds(SystemTime::now());
        let saved = if whole { audience.saved(now) } else { audience.changes(now) };
        state.save_audience(&saved, whole)?;
        let took = started.elapsed().as_secs_f64() * 1000.0;
        tracing::debug!(
            "saved the subscriber counts ({} clients written, {} deleted) in {took:.0} ms",
            saved.clients.len(),
            saved.gone.len()
        );
        Ok::<(), crate::state::StateError>(())
    })
    .await;
    match saved {
        Ok(Err(error)) => tracing::error!("{error}; subscriber counts since the last save are lost at a restart"),
        Err(error) => tracing::error!("saving subscriber counts: {error}"),
        Ok(Ok(())) => return true,
    }
    false
}

/// The task that saves the counts every minute.
pub struct Keeper {
    audience: Arc<Audience>,
    state: Option<Arc<State>>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<bool>,
}

impl Keeper {
    pub fn start(audience: Arc<Audience>, state: Option<Arc<State>>) -> Keeper {
        let (stop, stops) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(keep(audience.clone(), state.clone(), stops));
        Keeper { audience, state, stop, task }
    }

    /// Stops the task (a save in progress ends first) and saves once more: the last save is the
    /// newest.
    pub async fn finish(self) {
        let _ = self.stop.send(true);
        let whole = !self.task.await.unwrap_or(false);
        save(&self.audience, self.state, whole).await;
    }
}

/// Saves the counts every [`SAVE_EVERY`] until `stop` says so.
/// Returns whether the database holds everything up to the last save (no save failed since
/// the last one that saved everything).
async fn keep(
    audience: Arc<Audience>,
    state: Option<Arc<State>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> bool {
    let mut every = tokio::time::interval(SAVE_EVERY);
    every.tick().await;
    let mut complete = true;
    loop {
        tokio::select! {
            _ = every.tick() => complete = save(&audience, state.clone(), !complete).await,
            _ = stop.changed() => return complete,
        }
    }
}
