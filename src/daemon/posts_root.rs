//! The folders posts are read from (the posts folder, and a Jekyll site's `_drafts` when its
//! drafts are shown), each as a whole: watched while it exists, and noticed when it is removed,
//! replaced (a rename-swap deploy) or back. The watcher's events name paths inside a folder;
//! what happens to the folder itself is found by comparing its device and inode.

use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;

use crate::config::Config;
use crate::daemon::inbox::Message;
use crate::source::folder_identity;
use crate::watch::{self, Watcher};

#[derive(Default)]
pub struct PostsRoot {
    folders: Vec<Folder>,
}

/// One folder of posts and its watcher.
struct Folder {
    path: PathBuf,
    watcher: Option<Watcher>,
    /// The folder being watched.
    watched: Option<(u64, u64)>,
}

impl Folder {
    fn watch(&mut self, config: &Config, events: &Sender<Message>) {
        self.watcher = None;
        self.watched = folder_identity(&self.path);
        let sender = events.clone();
        let handler = move |message| {
            let _ = sender.send(Message::Watch(message, std::time::Instant::now()));
        };
        match watch::start(&self.path, config.poll, config.poll_interval, handler) {
            Ok(watcher) => self.watcher = Some(watcher),
            Err(error) => {
                tracing::error!("cannot watch {}: {error}; changes will be seen when it can", self.path.display())
            }
        }
    }

    /// Follows the folder itself; returns whether it changed.
    fn follow(&mut self, config: &Config, events: &Sender<Message>) -> bool {
        let identity = folder_identity(&self.path);
        let posts = self.path.display();
        match (self.watcher.is_some(), identity) {
            (true, None) => {
                tracing::warn!("posts folder {posts} was removed; its posts are unpublished until it is back");
                self.watcher = None;
            }
            (true, Some(_)) if identity != self.watched => {
                tracing::info!("posts folder {posts} was replaced; watching the new one");
                self.watch(config, events);
            }
            (false, Some(_)) => {
                tracing::info!("posts folder {posts} is here; watching it");
                self.watch(config, events);
            }
            _ => return false,
        }
        true
    }
}

impl PostsRoot {
    /// Whether the posts folder is watched; while it is missing, it is looked for often. (A
    /// missing drafts folder is looked for at each wake-up, which comes anyway.)
    pub fn is_watching(&self) -> bool {
        self.folders.first().is_some_and(|f| f.watcher.is_some())
    }

    /// Starts watching the configured folders that exist; events go to `events`.
    pub fn watch(&mut self, config: &Config, events: &Sender<Message>) {
        self.folders = config
            .post_folders()
            .map(|path: &Path| Folder { path: path.to_owned(), watcher: None, watched: None })
            .collect();
        for folder in &mut self.folders {
            if folder_identity(&folder.path).is_some() {
                folder.watch(config, events);
            }
        }
    }

    pub fn stop(&mut self) {
        self.folders.clear();
    }

    /// Follows the folders themselves; returns whether any changed, so that everything must be
    /// read again.
    pub fn follow(&mut self, config: &Config, events: &Sender<Message>) -> bool {
        if self.folders.is_empty() {
            self.watch(config, events);
            return self.folders.iter().any(|f| f.watcher.is_some());
        }
        let mut changed = false;
        for folder in &mut self.folders {
            changed |= folder.follow(config, events);
        }
        changed
    }
}
