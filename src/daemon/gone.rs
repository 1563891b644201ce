//! Documents that existed and no longer do: answered 410 Gone for `gone_days`, then 404, and
//! remembered across restarts in the state store (in memory only when there is none).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::config::Config;
use crate::documents::{self, INDEX_PATH};
use crate::state::{State, unix_seconds as unix};

/// The gone documents, by path under the feeds folder, with when they went (Unix seconds).
#[derive(Debug, Default)]
pub struct Gone {
    state: Option<Arc<State>>,
    since: HashMap<String, i64>,
}

/// Whether a document's going is worth telling pollers: feeds and their pages, not the lists.
fn tracked(rel: &str) -> bool {
    documents::is_feed(rel) || (rel.ends_with(".html") && rel != INDEX_PATH)
}

impl Gone {
    pub fn new(state: Option<Arc<State>>) -> Gone {
        Gone { state, since: HashMap::new() }
    }

    /// Reads what the state store remembers, forgetting what went more than `gone_days` ago.
    pub fn load(&mut self, config: &Config, now: SystemTime) {
        let Some(state) = &self.state else { return };
        let before = unix(now) - i64::try_from(config.gone.as_secs()).unwrap_or(i64::MAX);
        match state.gone(before) {
            Ok(rows) => self.since = rows.into_iter().collect(),
            Err(error) => tracing::error!("{error}"),
        }
    }

    /// Notes the documents a step made (back, if they had gone) and removed (gone from `now`,
    /// unless `record` is false: a posts folder missing for a moment does not make feeds gone).
    pub fn update<'a>(
        &mut self,
        made: impl Iterator<Item = &'a str>,
        removed: &[String],
        now: SystemTime,
        record: bool,
    ) {
        let back: Vec<String> = made.filter(|rel| self.since.remove(*rel).is_some()).map(str::to_owned).collect();
        let went: Vec<String> =
            removed.iter().filter(|rel| record && tracked(rel) && !self.since.contains_key(*rel)).cloned().collect();
        for rel in &went {
            self.since.insert(rel.clone(), unix(now));
        }
        if let Some(state) = &self.state {
            if let Err(error) = state.update_gone(&went, &back, unix(now)) {
                tracing::error!("{error}");
            }
        }
    }

    /// The served set's view: each gone document with when it answers 410: from `gone_after`
    /// after it went until `gone_days` after.
    pub fn served(&self, config: &Config) -> Arc<HashMap<String, std::ops::Range<SystemTime>>> {
        let window = |since: i64| {
            let went = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(since).unwrap_or(0));
            went + config.gone_after..went + config.gone
        };
        Arc::new(self.since.iter().map(|(rel, since)| (rel.clone(), window(*since))).collect())
    }
}
