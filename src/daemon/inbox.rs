//! What the publisher has been told since its last step: files that are ready to read, files
//! still being written (each with the moment it will have been quiet long enough), a lost watch,
//! a new configuration, shutdown. Time comes in as an argument, so tests move it by hand.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::watch::{Hint, Look, WatchMessage};

/// A burst of events (an editor's save, `git pull`) is gathered until it has been quiet this long
/// (since the last event was heard: time spent in a step counts)… unless its first event names
/// only complete files (see `Inbox::leads`)…
const BURST_QUIET: Duration = Duration::from_millis(10);
/// …or for at most this long, so that a long burst still publishes as it goes.
const BURST_MAX: Duration = Duration::from_millis(100);

/// Messages to the publisher thread.
#[derive(Debug)]
pub enum Message {
    /// What the watcher said, and when it said it (a message may wait while a step runs).
    Watch(WatchMessage, Instant),
    /// Check the clock now (a test moved it).
    Tick,
    /// A new, already validated configuration (SIGHUP).
    Reload(Arc<Config>),
    /// The feeds folder's writer finished a batch (see [`crate::daemon::writer`]).
    Written,
    Shutdown,
}

/// The publisher's inbox.
#[derive(Debug, Default)]
pub struct Inbox {
    /// How long a file that its writer keeps open must be quiet before it is read.
    pub settle: Duration,
    /// Files being written, with when they will have been quiet long enough.
    pending: HashMap<PathBuf, Instant>,
    /// Paths to look at now.
    ready: BTreeSet<PathBuf>,
    /// The watcher lost track: read the whole folder.
    pub rescan: bool,
    pub reload: Option<Arc<Config>>,
    pub shutdown: bool,
    /// Messages were taken without waiting ([`Inbox::take_sent`]): the next
    /// [`Inbox::receive`] returns at once, so whoever they woke (the writer's reports) is seen.
    woken: bool,
    /// When the first change not yet published was heard of (what publish times count from).
    pub since: Option<Instant>,
    /// When the latest event was heard of.
    last_heard: Option<Instant>,
    /// When the latest event that made a path ready was heard of.
    last_ready: Option<Instant>,
    /// What is ready came from one event that opened a burst (none made a post ready in the
    /// [`BURST_QUIET`] before it) and only said that post files are complete (renamed into
    /// place): unless more events were sent meanwhile, and if they are files now, they are read
    /// at once, not after the quiet window. A save by rename is then served without that wait.
    /// A file closed after writing waits as before (its writer may open it again to append), as
    /// do a removal and a rename away (an editor may be about to write the new file).
    leads: bool,
    /// The poller's latest look at each folder, for the publisher to compare with what it read.
    pub looked: Vec<Look>,
}

impl Inbox {
    pub fn new(settle: Duration) -> Inbox {
        Inbox { settle, ..Inbox::default() }
    }

    /// Takes one message, received at `now`.
    pub fn handle(&mut self, message: Message, now: Instant) {
        match message {
            Message::Watch(WatchMessage::Hints(hints), heard) => {
                if hints.is_empty() {
                    return;
                }
                let heard = heard.min(now);
                self.since.get_or_insert(heard);
                self.last_heard = self.last_heard.max(Some(heard));
                self.lead(&hints, heard);
                hints.into_iter().for_each(|hint| self.hint(hint, now));
            }
            Message::Watch(WatchMessage::Lost(error), heard) => {
                tracing::warn!("watcher: {error}; reading the whole posts folder again");
                self.leads = false;
                self.since.get_or_insert(heard.min(now));
                self.rescan = true;
            }
            Message::Watch(WatchMessage::Looked(look), _) => {
                self.looked.retain(|earlier| earlier.root != look.root);
                self.looked.push(look);
            }
            Message::Tick | Message::Written => {}
            Message::Reload(config) => self.reload = Some(config),
            Message::Shutdown => self.shutdown = true,
        }
    }

    /// Whether what is ready still leads a burst once `hints`, heard at `heard`, are in (see
    /// `Inbox::leads`). Only post files count: an editor's temporary files, backups and probes
    /// come and go around a save without making it a burst.
    fn lead(&mut self, hints: &[Hint], heard: Instant) {
        let posts: Vec<&Hint> = hints.iter().filter(|hint| names_post(hint)).collect();
        if posts.is_empty() {
            return;
        }
        let complete = posts.iter().all(|hint| matches!(hint, Hint::Complete(_)));
        let opens = self.last_ready.is_none_or(|last| heard.saturating_duration_since(last) >= BURST_QUIET);
        let first = !self.ready.iter().any(|path| is_post(path));
        self.leads = complete && opens && first && !self.rescan;
        if posts.iter().any(|hint| !matches!(hint, Hint::Writing(_))) || self.settle.is_zero() {
            self.last_ready = self.last_ready.max(Some(heard));
        }
    }

    fn hint(&mut self, hint: Hint, now: Instant) {
        match hint {
            Hint::Complete(path) | Hint::Ready(path) => {
                self.pending.remove(&path);
                self.ready.insert(path);
            }
            Hint::Writing(path) if self.settle.is_zero() => {
                self.ready.insert(path);
            }
            Hint::Writing(path) => {
                self.pending.insert(path, now + self.settle);
            }
            Hint::Rescan => self.rescan = true,
        }
    }

    /// When the next file being written will have settled.
    pub fn next_settled(&self) -> Option<Instant> {
        self.pending.values().min().copied()
    }

    /// Moves the files that have been quiet long enough at `now` to the ready ones.
    pub fn settle_until(&mut self, now: Instant) {
        let ready = &mut self.ready;
        self.pending.retain(|path, deadline| {
            let settled = *deadline <= now;
            if settled {
                ready.insert(path.clone());
            }
            !settled
        });
    }

    /// The paths to look at now (a rescan, when one is due, reads them anyway).
    pub fn take_ready(&mut self) -> Vec<PathBuf> {
        self.leads = false;
        std::mem::take(&mut self.ready).into_iter().collect()
    }

    /// Takes the messages sent so far, without waiting.
    pub fn take_sent(&mut self, receiver: &Receiver<Message>) {
        let now = Instant::now();
        for message in receiver.try_iter() {
            self.handle(message, now);
            self.woken = true;
        }
    }

    /// Whether a change waits to be published: files ready to be read, or the whole folder.
    pub fn has_change(&self) -> bool {
        !self.ready.is_empty() || self.rescan
    }

    /// Waits for a message until `wake` (unless one taken already asks for work), then gathers
    /// the rest of a burst: while paths are ready, more messages are taken until
    /// [`BURST_QUIET`] passes without one (at most [`BURST_MAX`]), unless what is ready leads a
    /// burst and names files (see `Inbox::leads`).
    pub fn receive(&mut self, receiver: &Receiver<Message>, wake: Instant) {
        let woken = std::mem::take(&mut self.woken);
        if !(woken || self.has_change() || self.reload.is_some() || self.shutdown) {
            match receiver.recv_timeout(wake.saturating_duration_since(Instant::now())) {
                Ok(message) => self.handle(message, Instant::now()),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => self.shutdown = true,
            }
        }
        let burst = Burst::starting(Instant::now());
        while !self.shutdown && !self.ready.is_empty() {
            if self.leads {
                // What was sent meanwhile belongs to this burst: taken before deciding.
                while let Ok(message) = receiver.try_recv() {
                    self.handle(message, Instant::now());
                }
                if self.leads && self.ready.iter().filter(|path| is_post(path)).all(|path| path.is_file()) {
                    break;
                }
            }
            // Once the burst is over, what was sent meanwhile is still taken, without waiting.
            match receiver.recv_timeout(burst.quiet_wait(self.last_heard, Instant::now())) {
                Ok(message) => self.handle(message, Instant::now()),
                Err(_) => break,
            }
        }
    }
}

/// Whether `path`'s file name is a post's (not a temporary file, a backup or an editor's probe).
fn is_post(path: &Path) -> bool {
    path.file_name().and_then(|name| name.to_str()).is_some_and(crate::post::is_post_file_name)
}

/// Whether a hint bears on posts: it names a post file, or asks for a rescan.
fn names_post(hint: &Hint) -> bool {
    match hint {
        Hint::Complete(path) | Hint::Ready(path) | Hint::Writing(path) => is_post(path),
        Hint::Rescan => true,
    }
}

/// The window in which a burst of events is gathered.
#[derive(Debug, Clone, Copy)]
struct Burst {
    end: Instant,
}

impl Burst {
    fn starting(now: Instant) -> Burst {
        Burst { end: now + BURST_MAX }
    }

    /// How much longer to wait for more events at `now`, the last heard at `last_heard`: nothing
    /// once it has been quiet long enough, or the burst has gone on long enough.
    fn quiet_wait(self, last_heard: Option<Instant>, now: Instant) -> Duration {
        let quiet_at = last_heard.map_or(now, |heard| heard + BURST_QUIET).min(self.end);
        quiet_at.saturating_duration_since(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hints(hints: Vec<Hint>) -> Message {
        Message::Watch(WatchMessage::Hints(hints), Instant::now())
    }

    #[test]
    fn a_file_being_written_is_ready_once_quiet_for_the_settle_window() {
        let t0 = Instant::now();
        let mut inbox = Inbox::new(Duration::from_secs(1));
        inbox.handle(hints(vec![Hint::Writing("/p/a.md".into())]), t0);
        assert_eq!(inbox.next_settled(), Some(t0 + Duration::from_secs(1)));
        inbox.settle_until(t0 + Duration::from_millis(999));
        assert!(inbox.take_ready().is_empty(), "not a moment early");
        // Written again: the window starts over.
        inbox.handle(hints(vec![Hint::Writing("/p/a.md".into())]), t0 + Duration::from_millis(500));
        inbox.settle_until(t0 + Duration::from_millis(1200));
        assert!(inbox.take_ready().is_empty());
        inbox.settle_until(t0 + Duration::from_millis(1500));
        assert_eq!(inbox.take_ready(), [PathBuf::from("/p/a.md")]);
        assert_eq!(inbox.next_settled(), None);
    }

    #[test]
    fn a_close_after_writing_is_ready_at_once() {
        let t0 = Instant::now();
        let mut inbox = Inbox::new(Duration::from_secs(1));
        inbox.handle(hints(vec![Hint::Writing("/p/a.md".into()), Hint::Ready("/p/a.md".into())]), t0);
        assert_eq!(inbox.next_settled(), None, "no longer waiting for it");
        assert_eq!(inbox.take_ready(), [PathBuf::from("/p/a.md")]);
        let mut no_settle = Inbox::new(Duration::ZERO);
        no_settle.handle(hints(vec![Hint::Writing("/p/b.md".into())]), t0);
        assert_eq!(no_settle.take_ready(), [PathBuf::from("/p/b.md")]);
    }

    #[test]
    fn a_change_is_timed_from_when_the_watcher_heard_of_it() {
        let t0 = Instant::now();
        let mut inbox = Inbox::new(Duration::ZERO);
        // Handled two seconds later, after a long step.
        let ready = WatchMessage::Hints(vec![Hint::Ready("/p/a.md".into())]);
        inbox.handle(Message::Watch(ready, t0), t0 + Duration::from_secs(2));
        inbox.handle(hints(vec![Hint::Ready("/p/b.md".into())]), t0 + Duration::from_secs(3));
        assert_eq!(inbox.since, Some(t0), "the first event of the batch");
    }

    #[test]
    fn lost_events_reload_and_shutdown() {
        let t0 = Instant::now();
        let mut inbox = Inbox::new(Duration::ZERO);
        inbox.handle(hints(vec![Hint::Rescan]), t0);
        assert!(inbox.rescan);
        let mut inbox = Inbox::new(Duration::ZERO);
        inbox.handle(Message::Watch(WatchMessage::Lost("queue overflow".into()), t0), t0);
        assert!(inbox.rescan);
        inbox.handle(Message::Shutdown, t0);
        assert!(inbox.shutdown);
    }

    #[test]
    fn a_burst_waits_for_quiet_since_the_last_event_but_not_past_its_end() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let burst = Burst::starting(t0);
        assert_eq!(burst.quiet_wait(Some(t0), t0), BURST_QUIET);
        assert_eq!(burst.quiet_wait(Some(t0), t0 + ms(3)), BURST_QUIET - ms(3));
        let late = t0 + BURST_MAX - ms(6);
        assert_eq!(burst.quiet_wait(Some(late), late + ms(2)), ms(4), "not past the end");
        assert_eq!(burst.quiet_wait(Some(late), t0 + BURST_MAX + ms(1)), Duration::ZERO);
        // An event heard while a step ran: the step's time counted as quiet.
        assert_eq!(burst.quiet_wait(Some(t0), t0 + BURST_QUIET), Duration::ZERO);
        assert_eq!(burst.quiet_wait(None, t0), Duration::ZERO, "nothing heard: nothing to wait for");
    }

    #[test]
    fn an_event_heard_during_a_step_is_published_without_a_second_wait() {
        let (sender, receiver) = std::sync::mpsc::channel();
        let heard = Instant::now() - Duration::from_secs(60);
        let ready = WatchMessage::Hints(vec![Hint::Ready("/p/a.md".into())]);
        sender.send(Message::Watch(ready, heard)).unwrap();
        let mut inbox = Inbox::new(Duration::ZERO);
        inbox.take_sent(&receiver);
        assert_eq!(inbox.last_heard, Some(heard));
        // Quiet since a minute ago: receive returns without waiting, with what is ready. (Waiting
        // takes at least the whole window every time; a return in less, once in three tries,
        // tells that it did not wait, however busy the machine.)
        let mut fastest = Duration::MAX;
        for _ in 0..3 {
            inbox.handle(Message::Watch(WatchMessage::Hints(vec![Hint::Ready("/p/a.md".into())]), heard), heard);
            let started = Instant::now();
            inbox.receive(&receiver, started + Duration::from_secs(30));
            fastest = fastest.min(started.elapsed());
            assert_eq!(inbox.take_ready(), [PathBuf::from("/p/a.md")]);
        }
        assert!(fastest < BURST_QUIET, "did not wait again: {fastest:?}");
        // An event sent meanwhile is part of the burst: taken, and quiet waited for after it.
        sender.send(Message::Watch(WatchMessage::Hints(vec![Hint::Ready("/p/b.md".into())]), heard)).unwrap();
        sender.send(hints(vec![Hint::Ready("/p/c.md".into())])).unwrap();
        let started = Instant::now();
        inbox.receive(&receiver, started + Duration::from_secs(30));
        assert!(started.elapsed() >= BURST_QUIET / 2, "waited for quiet after c: {:?}", started.elapsed());
        assert_eq!(inbox.take_ready(), [PathBuf::from("/p/b.md"), PathBuf::from("/p/c.md")]);
    }

    fn complete(name: &str) -> Hint {
        Hint::Complete(format!("/p/{name}.md").into())
    }

    fn ready(name: &str) -> Hint {
        Hint::Ready(format!("/p/{name}.md").into())
    }

    fn writing(name: &str) -> Hint {
        Hint::Writing(format!("/p/{name}.md").into())
    }

    fn at(hints: Vec<Hint>, heard: Instant) -> Message {
        Message::Watch(WatchMessage::Hints(hints), heard)
    }

    #[test]
    fn only_an_event_that_opens_a_burst_and_names_complete_files_leads() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut inbox = Inbox::new(Duration::from_secs(1));
        // Created, written, closed in place: its writer may open it again, so it waits.
        inbox.handle(at(vec![writing("z")], t0 - ms(100)), t0 - ms(100));
        inbox.handle(at(vec![ready("z")], t0 - ms(100)), t0 - ms(100));
        assert!(!inbox.leads);
        inbox.take_ready();
        // Being written elsewhere says nothing of the burst; renamed into place, it leads.
        inbox.handle(at(vec![writing("a")], t0), t0);
        assert!(!inbox.leads);
        inbox.handle(at(vec![complete("a")], t0 + ms(11)), t0 + ms(11));
        assert!(inbox.leads);
        // A second complete file within the window: a burst, gathered as before.
        inbox.handle(at(vec![complete("b")], t0 + ms(15)), t0 + ms(15));
        assert!(!inbox.leads);
        inbox.take_ready();
        // Still within the window of the last ready event, though the first step took them.
        inbox.handle(at(vec![complete("c")], t0 + ms(24)), t0 + ms(24));
        assert!(!inbox.leads, "a burst goes on while its events keep coming");
        inbox.take_ready();
        inbox.handle(at(vec![complete("d")], t0 + ms(40)), t0 + ms(40));
        assert!(inbox.leads, "quiet for longer than the window: a new burst");
        inbox.take_ready();
        assert!(!inbox.leads, "taken");
    }

    #[test]
    fn an_editors_temporary_files_do_not_count_and_what_is_not_known_complete_does_not_lead() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut inbox = Inbox::new(Duration::from_secs(1));
        // A removal or a rename away opens a burst without leading it: an editor may be about
        // to write the new file in its place.
        inbox.handle(at(vec![ready("e")], t0), t0);
        assert!(!inbox.leads);
        inbox.take_ready();
        // An atomic save in the folder itself (`sed -i`): its temporary file renamed away, then
        // the post renamed into place. The temporary file does not count.
        inbox.handle(at(vec![Hint::Ready("/p/sedX1b2c3".into())], t0 + ms(40)), t0 + ms(40));
        inbox.handle(at(vec![complete("g")], t0 + ms(40)), t0 + ms(40));
        assert!(inbox.leads, "one post, complete");
        inbox.take_ready();
        // An editor that keeps a backup: the post renamed away to it, then written anew.
        for hints in [vec![ready("h")], vec![Hint::Complete("/p/h.md~".into())], vec![writing("h")], vec![ready("h")]] {
            inbox.handle(at(hints, t0 + ms(80)), t0 + ms(80));
            assert!(!inbox.leads, "a burst from its first event");
        }
        inbox.take_ready();
        // A file being written with no settle window is ready, but not known to be complete.
        let mut no_settle = Inbox::new(Duration::ZERO);
        no_settle.handle(at(vec![writing("e")], t0), t0);
        assert!(!no_settle.leads);
        no_settle.handle(at(vec![complete("e")], t0 + ms(1)), t0 + ms(1));
        assert!(!no_settle.leads, "ready since it was being written");
        // A file that settled (its writer quiet for the settle window) is ready but not
        // complete: a complete post after it, however long after, does not lead.
        let mut settled = Inbox::new(ms(50));
        settled.handle(at(vec![writing("s")], t0), t0);
        settled.settle_until(t0 + ms(50));
        settled.handle(at(vec![complete("t")], t0 + ms(80)), t0 + ms(80));
        assert!(!settled.leads, "not the burst's first");
        // Nor does anything lead a rescan, or a watcher that lost events.
        let mut rescan = Inbox::new(Duration::from_secs(1));
        rescan.handle(at(vec![Hint::Rescan, complete("f")], t0), t0);
        assert!(!rescan.leads);
        let mut lost = Inbox::new(Duration::from_secs(1));
        lost.handle(at(vec![complete("f")], t0), t0);
        lost.handle(Message::Watch(WatchMessage::Lost("queue overflow".into()), t0), t0);
        assert!(!lost.leads);
        let mut lost = Inbox::new(Duration::from_secs(1));
        lost.handle(Message::Watch(WatchMessage::Lost("queue overflow".into()), t0), t0);
        lost.handle(at(vec![complete("f")], t0), t0);
        assert!(!lost.leads, "a rescan is due");
    }

    #[test]
    fn a_leading_event_is_read_at_once_if_its_paths_are_files_now_and_nothing_followed() {
        let dir = tempfile::tempdir().unwrap();
        let (file, gone) = (dir.path().join("a.md"), dir.path().join("gone.md"));
        std::fs::write(&file, "---\ntitle: a\n---\n").unwrap();
        let (sender, receiver) = std::sync::mpsc::channel::<Message>();
        let complete = |paths: &[&PathBuf], heard| {
            Message::Watch(WatchMessage::Hints(paths.iter().map(|p| Hint::Complete((*p).clone())).collect()), heard)
        };
        // Waiting lasts until the window has passed since the event was heard, so a return
        // before that, once in three tries, tells that it did not wait, however busy the machine.
        // An editor's temporary file, gone, does not hold the post back.
        let temp = dir.path().join(".a.md.swp");
        let mut fastest = Duration::MAX;
        for _ in 0..3 {
            let mut inbox = Inbox::new(Duration::from_secs(1));
            let heard = Instant::now();
            inbox.handle(Message::Watch(WatchMessage::Hints(vec![Hint::Ready(temp.clone())]), heard), heard);
            inbox.handle(complete(&[&file], heard), heard);
            inbox.receive(&receiver, heard + Duration::from_secs(30));
            fastest = fastest.min(heard.elapsed());
            assert_eq!(inbox.take_ready(), [temp.clone(), file.clone()]);
        }
        assert!(fastest < BURST_QUIET, "read at once: {fastest:?}");
        let waits = |first: Message, then: Option<Message>, heard: Instant| {
            let mut inbox = Inbox::new(Duration::from_secs(1));
            inbox.handle(first, heard);
            then.into_iter().for_each(|message| sender.send(message).unwrap());
            inbox.receive(&receiver, heard + Duration::from_secs(30));
            assert!(heard.elapsed() >= BURST_QUIET, "waited: {:?}", heard.elapsed());
            inbox.take_ready()
        };
        // A path that is not a file now waits for the rest of the burst.
        let heard = Instant::now();
        assert_eq!(waits(complete(&[&file, &gone], heard), None, heard), [file.clone(), gone.clone()]);
        // So does a file named by a removal or a rename away, though one is there again.
        let heard = Instant::now();
        let went = Message::Watch(WatchMessage::Hints(vec![Hint::Ready(file.clone())]), heard);
        assert_eq!(waits(went, None, heard), std::slice::from_ref(&file));
        // And a complete file followed by an event already sent: the burst goes on.
        let heard = Instant::now();
        let writing = Message::Watch(WatchMessage::Hints(vec![Hint::Writing(gone.clone())]), heard);
        assert_eq!(waits(complete(&[&file], heard), Some(writing), heard), std::slice::from_ref(&file));
    }

    #[test]
    fn messages_taken_without_waiting_make_the_next_receive_return_at_once() {
        let (sender, receiver) = std::sync::mpsc::channel();
        sender.send(Message::Written).unwrap();
        let mut inbox = Inbox::new(Duration::ZERO);
        inbox.take_sent(&receiver);
        let started = Instant::now();
        inbox.receive(&receiver, started + Duration::from_secs(30));
        assert!(started.elapsed() < Duration::from_secs(20), "the writer's wake-up is not lost");
        assert!(!inbox.woken, "once");
    }

    #[test]
    fn receive_gathers_a_burst_and_stops_when_quiet() {
        let (sender, receiver) = std::sync::mpsc::channel();
        for name in ["a", "b", "c"] {
            sender.send(hints(vec![Hint::Ready(format!("/p/{name}.md").into())])).unwrap();
        }
        let mut inbox = Inbox::new(Duration::ZERO);
        inbox.receive(&receiver, Instant::now());
        assert_eq!(inbox.take_ready().len(), 3, "the whole burst in one step");
        drop(sender);
        inbox.receive(&receiver, Instant::now() + Duration::from_secs(5));
        assert!(inbox.shutdown, "every sender gone: stop");
    }
}
