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
    swaps: Arc<Mutex<Vec<Vec<Served>>>>,
}

/// A document as one swap left it served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub rel: String,
    pub identity: Vec<u8>,
    /// The gzip and brotli encodings, when served.
    pub gzip: Option<Vec<u8>>,
    pub brotli: Option<Vec<u8>>,
    pub etag: String,
    pub last_modified: String,
}

/// `rel` as `shared` serves it now.
pub fn served(shared: &crier::served::Shared, rel: &str) -> Option<Served> {
    let set = shared.load();
    let resource = set.resources.get(rel)?;
    // Run on the publisher's thread: a file being rewritten is skipped, never a panic there.
    let bytes = |variant: &crier::served::Variant| variant.bytes().ok().map(|b| b.to_vec());
    Some(Served {
        rel: rel.to_owned(),
        identity: resource.identity_bytes().ok()?.to_vec(),
        gzip: resource.gzip.as_ref().and_then(bytes),
        brotli: resource.brotli.as_ref().and_then(bytes),
        etag: resource.identity.etag().to_str().unwrap().to_owned(),
        last_modified: resource.last_modified.to_str().unwrap().to_owned(),
    })
}

impl ClockedPublisher {
    /// Starts it and waits for the first publish.
    pub fn start(config: &Path, start: DateTime<Utc>) -> ClockedPublisher {
        ClockedPublisher::start_hooked(config, start, |_| {})
    }

    /// Like [`ClockedPublisher::start`], with `hook` called on the publisher's thread after each
    /// swap with the set it made live.
    pub fn start_hooked(
        config: &Path,
        start: DateTime<Utc>,
        hook: impl Fn(&crier::served::Shared) + Send + Sync + 'static,
    ) -> ClockedPublisher {
        let config = crier::config::Config::load(Some(config), &Default::default()).unwrap();
        let clock = Arc::new(ManualClock(Mutex::new(start)));
        let shared = Arc::new(crier::served::Shared::new());
        let swaps = Arc::new(Mutex::new(Vec::new()));
        let (seen, set) = (swaps.clone(), shared.clone());
        let on_published: crier::daemon::OnPublished = Arc::new(move |changed: Vec<String>| {
            let now: Vec<Served> = changed.iter().filter_map(|rel| served(&set, rel)).collect();
            hook(&set);
            seen.lock().unwrap().push(now);
        });
        let wiring = crier::daemon::Wiring { on_published: Some(on_published), ..Default::default() };
        let publisher = crier::daemon::Publisher::start_with(Arc::new(config), shared.clone(), clock.clone(), wiring);
        let this = ClockedPublisher { clock, shared, publisher: Some(publisher), swaps };
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
        let mut documents: Vec<String> = self.shared.load().resources.keys().map(str::to_owned).collect();
        documents.sort();
        documents
    }

    /// A published document's bytes, if it is published.
    pub fn body(&self, rel: &str) -> Option<Vec<u8>> {
        self.shared.load().resources.get(rel).map(|r| r.identity_bytes().unwrap().to_vec())
    }

    /// A published document as it is served at this moment.
    pub fn served(&self, rel: &str) -> Option<Served> {
        served(&self.shared, rel)
    }

    /// Which of a published document's identity, gzip and brotli bytes are held in memory (not
    /// read from its files for each response), at this moment.
    pub fn in_memory(&self, rel: &str) -> Option<[bool; 3]> {
        let set = self.shared.load();
        let resource = set.resources.get(rel)?;
        let held = |variant: Option<&crier::served::Variant>| variant.is_some_and(|v| !v.is_file());
        Some([held(Some(&resource.identity)), held(resource.gzip.as_ref()), held(resource.brotli.as_ref())])
    }

    /// For each swap so far, the documents whose bytes it changed, as it served them.
    pub fn swaps(&self) -> Vec<Vec<Served>> {
        self.swaps.lock().unwrap().clone()
    }

    /// Stops the publisher thread and waits for it.
    pub fn stop(mut self) {
        if let Some(publisher) = self.publisher.take() {
            publisher.stop().expect("the publisher thread ran to its end");
        }
    }
}
