//! The posts folder as a whole: watched while it exists, and noticed when it is removed,
//! replaced (a rename-swap deploy) or back. The watcher's events name paths inside the folder;
//! what happens to the folder itself is found by comparing its device and inode.

use std::sync::mpsc::Sender;

use crate::config::Config;
use crate::daemon::inbox::Message;
use crate::source::folder_identity;
use crate::watch::{self, Watcher};

#[derive(Default)]
pub struct PostsRoot {
    watcher: Option<Watcher>,
    /// The folder being watched.
    watched: Option<(u64, u64)>,
}

impl PostsRoot {
    pub fn is_watching(&self) -> bool {
        self.watcher.is_some()
    }

    /// Starts watching the configured posts folder; events go to `events`.
    pub fn watch(&mut self, config: &Config, events: &Sender<Message>) {
        self.watcher = None;
        self.watched = folder_identity(&config.posts);
        let sender = events.clone();
        let handler = move |message| {
            let _ = sender.send(Message::Watch(message, std::time::Instant::now()));
        };
        match watch::start(&config.posts, config.poll, config.poll_interval, handler) {
            Ok(watcher) => self.watcher = Some(watcher),
            Err(error) => {
                tracing::error!("cannot watch {}: {error}; changes will be seen when it can", config.posts.display())
            }
        }
    }

    pub fn stop(&mut self) {
        self.watcher = None;
    }

    /// Follows the folder itself; returns whether it changed, so that everything must be read again.
    pub fn follow(&mut self, config: &Config, events: &Sender<Message>) -> bool {
        let identity = folder_identity(&config.posts);
        let posts = config.posts.display();
        match (self.is_watching(), identity) {
            (true, None) => {
                tracing::warn!("posts folder {posts} was removed; its posts are unpublished until it is back");
                self.stop();
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
