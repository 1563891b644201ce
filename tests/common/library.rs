//! The one place the tests use crier's library API (module and type names) directly: a publisher
//! run in-process on a clock the test moves.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::DEADLINE;

/// A clock the test moves.
struct ManualClock(Mutex<DateTime<Utc>>);

impl crier::daemon::Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// crier's publisher in this process, reading the configuration file `config`, with the time
/// starting at `start` and moving only when the test says.
pub struct ClockedPublisher {
    clock: Arc<ManualClock>,
    shared: Arc<crier::served::Shared>,
    publisher: Option<crier::daemon::Publisher>,
}

impl ClockedPublisher {
    /// Starts it and waits for the first publish.
    pub fn start(config: &Path, start: DateTime<Utc>) -> ClockedPublisher {
        let config = crier::config::Config::load(Some(config), &Default::default()).unwrap();
        let clock = Arc::new(ManualClock(Mutex::new(start)));
        let shared = Arc::new(crier::served::Shared::new());
        let publisher = crier::daemon::Publisher::start(Arc::new(config), shared.clone(), clock.clone());
        let this = ClockedPublisher { clock, shared, publisher: Some(publisher) };
        let deadline = Instant::now() + DEADLINE;
        while !this.shared.load().ready {
            assert!(Instant::now() < deadline, "timed out waiting for the first publish");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        this
    }

    /// Sets the clock and asks the publisher to look at it.
    pub fn set_clock(&self, now: DateTime<Utc>) {
        *self.clock.0.lock().unwrap() = now;
        self.publisher.as_ref().unwrap().tick();
    }

    /// The published documents (paths under the feeds folder) at this moment.
    pub fn documents(&self) -> Vec<String> {
        let mut documents: Vec<String> = self.shared.load().resources.keys().cloned().collect();
        documents.sort();
        documents
    }

    /// A published document's bytes, if it is published.
    pub fn body(&self, rel: &str) -> Option<Vec<u8>> {
        self.shared.load().resources.get(rel).map(|r| r.identity.bytes().unwrap().to_vec())
    }

    /// Stops the publisher thread and waits for it.
    pub fn stop(mut self) {
        if let Some(publisher) = self.publisher.take() {
            publisher.stop().expect("the publisher thread ran to its end");
        }
    }
}
