//! WebSub (W3C Recommendation, 2018): the built-in hub and the pings to external hubs.
//!
//! - Subscribers POST to `<feeds_url>hub` (also answered at `/hub`); a well-formed request is
//!   accepted (202), then its intent is verified with a GET to the callback, and only then does
//!   the subscription exist, kept in [`crate::state`] so it survives restarts.
//! - After each publish step, once the new bytes are served, the publisher hands over the
//!   documents whose bytes changed ([`Hub::published`]). Each subscriber of a changed topic gets
//!   the new document, signed when it gave a secret; each subscription remembers the validator of
//!   what it last received, so a change is delivered once, and one missed while crier was down is
//!   delivered after the restart. Failures are retried with growing delays, each subscriber on
//!   its own task so a slow one delays no other.
//! - Each external hub in `websub.hubs` gets `hub.mode=publish` for the changed topics.
//!
//! - [`request`]: a subscriber's request parsed. Pure.
//! - `distribute`: changes to deliveries (one task per subscriber, limits per host) and pings.
//! - [`guard`]: the addresses a callback may reach (SSRF).
//! - [`outgoing`]: the HTTP client side: verification, delivery, pings, signatures.

mod distribute;
pub mod guard;
pub mod outgoing;
pub mod request;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use url::Url;

use crate::config::Config;
use crate::http::Body;
use crate::metrics::Metrics;
use crate::served::{Resource, Shared};
use crate::state::{State, Subscription};
use guard::Guard;
use outgoing::Callbacks;
use request::{HubRequest, Mode};

/// Connecting to a callback or hub, and resolving its name, may take this long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A whole outgoing request may take this long.
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(15);
/// The largest subscription request body read.
const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// Requests to the hub whose bodies are arriving at once; more get 503 at once.
const MAX_RECEIVING: usize = 64;
/// Verifications waiting or running at once; more requests are asked to come back later.
const MAX_PENDING_VERIFICATIONS: usize = 256;
/// Outgoing requests in progress at once, across all subscribers.
const MAX_OUTGOING: usize = 128;
/// How often expired leases are swept away (deliveries skip them at once regardless).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The built-in hub and the pinger of external hubs, while `crier serve` runs.
pub struct Hub {
    config: RwLock<Arc<Config>>,
    state: Arc<State>,
    shared: Arc<Shared>,
    guard: Guard,
    callbacks: Callbacks,
    hubs: reqwest::Client,
    /// Subscriptions (topic, callback) with a delivery task running, each with whether a change
    /// came while it ran (so the task looks again before it ends).
    delivering: Mutex<HashMap<(String, String), bool>>,
    /// Deliveries in progress per callback host, so one slow host holds few of `outgoing`.
    hosts: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
    /// Topics waiting to be pinged, per external hub, and whether its pinger runs.
    pings: Mutex<HashMap<Url, distribute::Pending>>,
    /// Deliveries being sent right now (not waiting to retry): shutdown lets them finish.
    sending: Arc<AtomicUsize>,
    verifications: Arc<AtomicUsize>,
    receiving: Arc<AtomicUsize>,
    outgoing: tokio::sync::Semaphore,
    changes: tokio::sync::mpsc::UnboundedSender<Vec<String>>,
    metrics: Option<Arc<Metrics>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("state", &self.state.path()).finish_non_exhaustive()
    }
}

/// Now, as the state store keeps times.
fn unix_now() -> i64 {
    crate::state::unix_seconds(std::time::SystemTime::now())
}

impl Hub {
    /// Counts a delivery's result in the metrics.
    fn count_delivery(&self, result: &'static str) {
        if let Some(metrics) = &self.metrics {
            metrics.delivery(result);
        }
    }

    /// Starts the hub's tasks on the current runtime: the distributor of changes and the sweeper
    /// of expired leases. Deliveries are counted in `metrics`, when kept.
    pub fn start(
        config: Arc<Config>,
        state: Arc<State>,
        shared: Arc<Shared>,
        metrics: Option<Arc<Metrics>>,
    ) -> Arc<Hub> {
        let guard = Guard::new(config.websub.allow_callbacks.clone());
        let (changes, receiver) = tokio::sync::mpsc::unbounded_channel();
        let hub = Arc::new(Hub {
            config: RwLock::new(config),
            state,
            shared,
            callbacks: Callbacks::new(guard.clone()),
            guard,
            hubs: outgoing::hub_client(),
            delivering: Mutex::default(),
            hosts: Mutex::default(),
            pings: Mutex::default(),
            sending: Arc::default(),
            verifications: Arc::default(),
            receiving: Arc::default(),
            outgoing: tokio::sync::Semaphore::new(MAX_OUTGOING),
            changes,
            metrics,
        });
        tokio::spawn(hub.clone().distribute(receiver));
        tokio::spawn(hub.clone().sweep());
        hub
    }

    fn config(&self) -> Arc<Config> {
        self.config.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Takes a new configuration (SIGHUP): leases, limits, allowed networks and external hubs.
    pub fn reload(&self, config: Arc<Config>) {
        self.guard.allow(config.websub.allow_callbacks.clone());
        *self.config.write().unwrap_or_else(std::sync::PoisonError::into_inner) = config;
    }

    /// Called by the publisher after each step, once the new bytes are served: the documents
    /// (paths under the feeds folder) whose bytes changed.
    pub fn published(&self, changed: Vec<String>) {
        let _ = self.changes.send(changed);
    }

    /// Whether `path` is the built-in hub's: `/hub`, or `hub` under the feeds folder's path.
    /// Asked of every request, so it allocates nothing.
    pub fn answers(&self, path: &str) -> bool {
        let config = self.config.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        config.websub.hub && (path == "/hub" || path.strip_prefix(config.feeds_url.path()) == Some("hub"))
    }

    /// Receives a request to the hub's URL: its body, or the answer refusing it (method, media
    /// type, size, too slow, too many at once).
    pub async fn receive(&self, request: hyper::Request<hyper::body::Incoming>) -> Result<Bytes, Response<Body>> {
        if request.method() != Method::POST {
            let mut response =
                text(StatusCode::METHOD_NOT_ALLOWED, "the hub takes POST requests (WebSub §5.1)\n".into());
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
            return Err(response);
        }
        let form = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
        if !form {
            return Err(bad_request("the body must be application/x-www-form-urlencoded".into()));
        }
        let Some(_receiving) = Ticket::take(&self.receiving, MAX_RECEIVING) else {
            return Err(busy("too many requests to the hub at once"));
        };
        let collect = Limited::new(request.into_body(), MAX_REQUEST_BYTES).collect();
        match tokio::time::timeout(self.config().header_timeout, collect).await {
            Ok(Ok(body)) => Ok(body.to_bytes()),
            Err(_) => Err(text(StatusCode::REQUEST_TIMEOUT, "the request body took too long\n".into())),
            Ok(Err(_)) => Err(text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a request to the hub is at most {MAX_REQUEST_BYTES} bytes\n"),
            )),
        }
    }

    /// Answers a subscription request's body: 400 with the reason, or 202 and the verification
    /// of intent started.
    pub async fn answer(self: &Arc<Self>, body: &[u8]) -> Response<Body> {
        let request = match request::parse(body) {
            Ok(request) => request,
            Err(reason) => return bad_request(reason),
        };
        let Some(ticket) = Ticket::take(&self.verifications, MAX_PENDING_VERIFICATIONS) else {
            return busy("too many verifications in progress");
        };
        // The name is resolved here, holding a verification's place, so that requests naming
        // slow hosts cannot pile up lookups.
        if let Err(reason) = self.guard.check_url(&request.callback).await {
            return bad_request(format!("hub.callback refused: {reason}"));
        }
        tokio::spawn(self.clone().verify(request, ticket));
        text(StatusCode::ACCEPTED, "accepted; the hub will verify the callback's intent\n".into())
    }

    /// The document path under the feeds folder that `topic` names, if crier serves it as a feed.
    fn topic_rel(&self, topic: &Url) -> Option<String> {
        let config = self.config();
        let rest = topic.as_str().strip_prefix(config.feeds_url.as_str())?;
        let rel = percent_encoding::percent_decode_str(rest).decode_utf8().ok()?.into_owned();
        (crate::served::is_topic(&rel) && self.shared.load().resources.contains_key(&rel)).then_some(rel)
    }

    /// The served document of a topic.
    fn resource(&self, rel: &str) -> Option<Arc<Resource>> {
        self.shared.load().resources.get(rel).cloned()
    }

    /// Verification of intent, then the subscription made, renewed or ended (§5.3); or, for a
    /// topic crier does not serve, the denial (§5.2).
    async fn verify(self: Arc<Self>, request: HubRequest, _ticket: Ticket) {
        let callback = request.callback.to_string();
        let outcome = self.verify_and_store(&request).await;
        match outcome {
            Ok(done) => tracing::info!("websub: {done}: {callback} for {}", request.topic),
            Err(reason) => tracing::info!(
                "websub: {} of {callback} to {} not done: {reason}",
                request.mode.as_str(),
                request.topic
            ),
        }
    }

    async fn verify_and_store(self: &Arc<Self>, request: &HubRequest) -> Result<&'static str, String> {
        let config = self.config();
        let rel = self.topic_rel(&request.topic);
        // The topic as crier publishes it (its self URL), whatever encoding the request used.
        let topic = match &rel {
            Some(rel) => crate::post::absolute_link(&config.feeds_url, rel),
            None => request.topic.to_string(),
        };
        let callback = request.callback.to_string();
        let denial = match (&rel, request.mode) {
            (None, Mode::Subscribe) => Some(format!("{} is not a feed this hub publishes", request.topic)),
            (Some(_), Mode::Subscribe) if self.full(&config, &topic, &callback)? => {
                Some(format!("this hub has reached its limit of {} subscriptions", config.websub.max_subscriptions))
            }
            _ => None,
        };
        if let Some(reason) = denial {
            let params = [("hub.mode", "denied"), ("hub.topic", request.topic.as_str()), ("hub.reason", &reason)];
            outgoing::get(&self.callbacks, &request.callback, &params).await?;
            return Err(format!("denied: {reason}"));
        }
        let lease = request.lease_seconds.map_or(config.websub.lease, Duration::from_secs);
        let lease = lease.clamp(config.websub.min_lease, config.websub.max_lease).as_secs();
        let challenge = challenge();
        let lease_text = lease.to_string();
        let mut params = vec![
            ("hub.mode", request.mode.as_str()),
            ("hub.topic", topic.as_str()),
            ("hub.challenge", challenge.as_str()),
        ];
        if request.mode == Mode::Subscribe {
            params.push(("hub.lease_seconds", &lease_text));
        }
        outgoing::verify(&self.callbacks, &request.callback, &params, &challenge).await?;
        if request.mode == Mode::Unsubscribe {
            let existed = self.state.unsubscribe(&topic, &callback).map_err(|e| e.to_string())?;
            return Ok(if existed { "unsubscribed" } else { "nothing to unsubscribe" });
        }
        // A new subscriber has what is served now; the next change is its first delivery.
        let delivered = rel.as_ref().and_then(|rel| self.resource(rel)).map(|r| etag(&r)).unwrap_or_default();
        let lease_expires = unix_now().saturating_add(i64::try_from(lease).unwrap_or(i64::MAX));
        let subscription =
            Subscription { topic: topic.clone(), callback, secret: request.secret.clone(), lease_expires, delivered };
        let stored = self.state.subscribe(&subscription, unix_now(), config.websub.max_subscriptions);
        if !stored.map_err(|e| e.to_string())? {
            return Err(format!("this hub has reached its limit of {} subscriptions", config.websub.max_subscriptions));
        }
        // A change served since `delivered` was read is delivered now.
        if let Some(rel) = rel {
            self.start_deliveries(&topic, &rel);
        }
        Ok("subscribed")
    }

    /// Whether a new subscription would pass `max_subscriptions` (a renewal never does).
    fn full(&self, config: &Config, topic: &str, callback: &str) -> Result<bool, String> {
        let count = self.state.subscription_count().map_err(|e| e.to_string())?;
        if count < config.websub.max_subscriptions {
            return Ok(false);
        }
        Ok(self.state.subscription(topic, callback).map_err(|e| e.to_string())?.is_none())
    }
}

/// The validator of a document's bytes as served unencoded.
fn etag(resource: &Resource) -> String {
    resource.identity.etag().to_str().unwrap_or_default().to_owned()
}

/// A fresh `hub.challenge`: 128 random bits in hex.
fn challenge() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system provides random bytes");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hub's answers: plain text, never cached (a POST's answer is not cacheable anyway).
fn text(status: StatusCode, body: String) -> Response<Body> {
    crate::http::plain(status, body, &Method::POST, HeaderValue::from_static("no-store"))
}

fn busy(reason: &str) -> Response<Body> {
    let mut response = text(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}; try again later\n"));
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    response
}

/// A place among at most `max` of something in progress, given back when dropped.
struct Ticket(Arc<AtomicUsize>);

impl Ticket {
    fn take(counter: &Arc<AtomicUsize>, max: usize) -> Option<Ticket> {
        let taken = counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < max).then_some(n + 1));
        taken.ok().map(|_| Ticket(counter.clone()))
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn bad_request(reason: String) -> Response<Body> {
    text(StatusCode::BAD_REQUEST, format!("{reason}\n"))
}
