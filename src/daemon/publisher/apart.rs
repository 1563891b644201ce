//! Publishing every post in a child process (see [`first_publish`]): at a start without a scan
//! index, into the feeds folder before anything is served; at a reload to a configuration
//! without one, into a folder beside the feeds folder that is then swapped in for it, while this
//! process keeps serving the old configuration's feeds. Either way the hundreds of MB that a
//! whole publish of a large site takes are the child's, and go back to the system when it exits.

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::Instant;

use rayon::prelude::*;

use super::Worker;
use crate::config::Config;
use crate::daemon::first_publish::{self, Ended};
use crate::daemon::inbox::Message;
use crate::engine::Engine;
use crate::feeds_dir::FeedsDir;
use crate::served::ServedSet;
use crate::source::PathKind;
use crate::state::State;
use crate::systemd::{self, Heartbeat};

/// What the topics (the feeds WebSub announces) held before a publish made apart: their
/// XXH3-128, to tell which ones it changed.
type Topics = HashMap<String, u128>;

impl Worker {
    /// At a start without a scan index for this program and configuration, once: has a child
    /// process publish every post and save the index, so that this process starts from it.
    /// Returns the messages that came meanwhile; none when told to stop meanwhile.
    pub(super) fn publish_apart(&mut self, receiver: &Receiver<Message>) -> Option<Vec<Message>> {
        let (Some(command), Some(state)) = (self.first_publish.clone(), self.state.clone()) else {
            return Some(Vec::new());
        };
        let key = self.engine.index_key();
        if state.has_scan_index(&key).unwrap_or(true) || PathKind::of(&self.config().posts) != PathKind::Folder {
            return Some(Vec::new());
        }
        // What the topics' files hold now, to tell WebSub which ones the child changed.
        let listed = self.feeds.list_stale(&Default::default()).unwrap_or_default();
        let before = listed
            .into_par_iter()
            .filter(|rel| crate::served::is_topic(rel))
            .filter_map(|rel| {
                Some((rel.clone(), xxhash_rust::xxh3::xxh3_128(&std::fs::read(self.feeds.file_of(&rel, None)).ok()?)))
            })
            .collect();
        let doing = "publishing every post in a child process (no scan index for this program and configuration)";
        let (held, made) = run_apart(command(), doing, (&state, &key), &self.heartbeat, receiver)?;
        if made {
            self.published_apart = Some(before);
        }
        Some(held)
    }

    /// At a reload to a configuration without a scan index: has a child process publish every
    /// post with it into a folder beside its feeds folder ([`FeedsDir::staging`]), made a copy
    /// of the feeds folder first (hard links: nothing is copied), and save the index, while this
    /// process serves the old configuration's feeds. Returns the messages that came meanwhile,
    /// with that folder once the child made it (for [`Worker::swap_in`]); None when told to stop
    /// meanwhile (the folder is removed then, and whenever the child did not make it).
    pub(super) fn reload_apart(
        &mut self,
        config: &Arc<Config>,
        receiver: &Receiver<Message>,
    ) -> Option<(Vec<Message>, Option<FeedsDir>)> {
        let here = Some((Vec::new(), None));
        let (Some(command), Some(state)) = (self.first_publish.clone(), self.state.clone()) else { return here };
        let key = Engine::new(config.clone()).index_key();
        if state.has_scan_index(&key).unwrap_or(true) || PathKind::of(&config.posts) != PathKind::Folder {
            return here;
        }
        let feeds = FeedsDir::new(config);
        let Some(staging) = feeds.staging() else { return here };
        let started = Instant::now();
        let linked =
            std::fs::create_dir_all(feeds.root()).map_err(anyhow::Error::from).and_then(|()| feeds.link_into(&staging));
        match linked {
            Ok(files) => tracing::info!(
                "reload: linked the {files} files of {} into {} in {:.2} s",
                feeds.root().display(),
                staging.root().display(),
                started.elapsed().as_secs_f64()
            ),
            Err(error) => {
                tracing::warn!(
                    "reload: {error:#}; publishing in this process instead, which keeps the memory a whole publish takes (crier needs to write beside the feeds folder, on its file system)"
                );
                return here;
            }
        }
        // Saves handed over before are done, not made after the child's (which replaces them).
        drop(self.saver.take());
        let before = topic_hashes(&self.shared.load());
        let mut command = command();
        command.env(first_publish::INTO_ENV, staging.root());
        let doing = format!(
            "publishing every post with the new configuration in a child process, into {}",
            staging.root().display()
        );
        let ran = run_apart(command, &doing, (&state, &key), &self.heartbeat, receiver);
        if let Some((held, true)) = ran {
            self.published_apart = Some(before);
            return Some((held, Some(staging)));
        }
        self.keep_running_state(&state);
        remove_later(staging);
        ran.map(|(held, _)| (held, None))
    }

    /// After a child process that published for a reload that does not take place (it failed,
    /// or crier stops): what it saved for the new configuration is replaced by the running
    /// one's. The scan index, which it may have replaced, is saved whole next (the engine
    /// forgets what it last saved), and the archive bounds are saved again.
    fn keep_running_state(&mut self, state: &State) {
        self.indexed = state.has_scan_index(&self.index_key).unwrap_or(false);
        if !self.indexed {
            self.engine.forget_index();
        }
        if let Err(error) = state.replace_archive_bounds(&self.engine.archive_bounds()) {
            tracing::error!("{error}; the archive bounds are saved whole at the next step");
            self.bounds_unsaved = true;
        }
    }

    /// After a reload published apart, with the new engine: swaps the folder the child process
    /// wrote in for the feeds folder and serves what it holds, as a start serves what the last
    /// run published. The old folder is removed meanwhile. When the folder cannot be swapped in,
    /// the child's index is cleared and everything is published here.
    pub(super) fn swap_in(&mut self, staged: FeedsDir) {
        self.index_key = self.engine.index_key();
        // What was noted for the old configuration's index is not for this one.
        self.index_written.clear();
        self.index_removed.clear();
        let Some(state) = self.state.clone() else { return };
        let swapped = match self.published_set(true) {
            Some(set) => self.feeds.swap_in(&staged).map(|old| (set, old)),
            None => Err(anyhow::anyhow!("the child process's scan index cannot be read")),
        };
        match swapped {
            Ok(((next, documents), old)) => {
                self.shared.store(next);
                tracing::info!("reload: swapped in the feeds the child process published");
                old.into_iter().for_each(remove_later);
                self.check_published(documents);
            }
            Err(error) => {
                tracing::error!("reload: {error:#}; publishing in this process instead");
                let _ = state.clear_scan_index();
                self.published_apart = None;
                remove_later(staged);
            }
        }
    }

    /// After a publish made by a child process, once served: tells WebSub of the topics whose
    /// bytes differ from what they held `before` it, as a publish made here does.
    pub(super) fn changed_apart(&self, before: &Topics) {
        let now = topic_hashes(&self.shared.load());
        let changed: Vec<String> =
            now.into_iter().filter(|(rel, hash)| before.get(rel) != Some(hash)).map(|(rel, _)| rel).collect();
        if let Some(on_published) = self.on_published.as_ref().filter(|_| !changed.is_empty()) {
            on_published(changed);
        }
    }
}

/// The hashes of the topics `set` serves.
fn topic_hashes(set: &ServedSet) -> Topics {
    let topics = set.resources.iter().filter(|(rel, _)| crate::served::is_topic(rel));
    topics.map(|(rel, resource)| (rel.to_owned(), resource.identity.hash)).collect()
}

/// Runs `command`, a child process that publishes every post and saves the scan index under
/// `key` in `state`, saying `doing` meanwhile and beating `heartbeat`. Returns the messages that
/// came meanwhile and whether it left that index; None when told to stop meanwhile.
fn run_apart(
    command: Command,
    doing: &str,
    (state, key): (&State, &str),
    heartbeat: &Heartbeat,
    receiver: &Receiver<Message>,
) -> Option<(Vec<Message>, bool)> {
    let started = Instant::now();
    systemd::status(doing);
    tracing::info!("{doing}");
    let (ended, held) = first_publish::run(command, heartbeat, receiver);
    let took = started.elapsed().as_secs_f64();
    let made = match ended {
        Ended::Stopping => return None,
        Ended::Exited(status) if state.has_scan_index(key).unwrap_or(false) => {
            // It exits 1 when some posts are bad; the first step reads and logs them.
            let bad = if status.code() == Some(1) { "; some posts are bad, logged below" } else { "" };
            tracing::info!("the child process published in {took:.1} s ({status}{bad}); starting from its scan index");
            true
        }
        Ended::Exited(status) => {
            tracing::warn!(
                "the child process that was to publish every post ended ({status}) after {took:.1} s without a scan index for this configuration; publishing in this process"
            );
            false
        }
        Ended::Failed(error) => {
            tracing::warn!("cannot run the publish in a child process: {error}; publishing in this process");
            false
        }
    };
    Some((held, made))
}

/// At a start: removes, each on a thread of its own, the folders beside `feeds` that crier left
/// (see [`FeedsDir::leftovers`]): one a reload was writing when crier was killed or stopped, old
/// feeds folders whose removal a stop cut short. Each may be as big as the feeds folder.
pub(super) fn remove_leftovers(feeds: &FeedsDir) {
    for leftover in feeds.leftovers() {
        tracing::info!("removing {}, left by an earlier reload", leftover.root().display());
        remove_later(leftover);
    }
}

/// Removes `folder` on a thread of its own: a large site's old feeds folder takes a while.
fn remove_later(folder: FeedsDir) {
    let removing = std::thread::Builder::new().name("crier-remove".into()).spawn(move || {
        if let Err(error) = folder.remove_all() {
            tracing::warn!("{error:#}; remove it by hand");
        }
    });
    if let Err(error) = removing {
        tracing::warn!("cannot start a thread to remove a folder: {error}");
    }
}
