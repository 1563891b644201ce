//! The one line `systemctl status` shows: posts, feeds, the last change and the last error.

use chrono::Utc;

use crate::engine::{Change, Engine};

#[derive(Debug)]
pub struct Status {
    last_change: String,
    last_error: Option<String>,
}

impl Default for Status {
    fn default() -> Status {
        Status { last_change: "none yet".to_owned(), last_error: None }
    }
}

impl Status {
    /// Remembers the newest error of a step.
    pub fn saw(&mut self, change: &Change) {
        if let Some(error) = change.errors.last() {
            self.last_error = Some(error.to_string());
        }
    }

    /// Remembers a step that changed what is served.
    pub fn changed(&mut self, what: &str, posts_read: usize, documents: usize) {
        self.last_change = format!(
            "{} {what} ({posts_read} posts read, {documents} documents)",
            Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
        );
    }

    pub fn line(&self, engine: &Engine, unwritten: usize) -> String {
        let mut status = format!(
            "{} posts in {} feeds ({} scheduled, {} drafts, {} bad); last change: {}",
            engine.live_posts(),
            engine.feeds().count(),
            engine.scheduled(),
            engine.drafts(),
            engine.bad().count(),
            self.last_change
        );
        if let Some(error) = &self.last_error {
            status.push_str("; last error: ");
            status.push_str(error);
        }
        if unwritten > 0 {
            status.push_str(&format!("; {unwritten} documents not yet written to disk"));
        }
        status
    }
}
