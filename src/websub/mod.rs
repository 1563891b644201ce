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
//! - [`guard`]: the addresses a callback may reach (SSRF).
//! - [`outgoing`]: the HTTP client side: verification, delivery, pings, signatures.

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
use http_body_util::{BodyExt, Full, Limited};
use url::Url;

use crate::config::Config;
use crate::documents;
use crate::http::Body;
use crate::served::{Resource, Shared};
use crate::state::{State, Subscription};
use guard::Guard;
use outgoing::{Failure, RETRY_DELAYS};
use request::{HubRequest, Mode};

/// Connecting to a callback or hub, and resolving its name, may take this long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A whole outgoing request may take this long.
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(15);
/// The largest subscription request body read.
const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// How long a subscription request's body may take to arrive.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
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
    callbacks: reqwest::Client,
    hubs: reqwest::Client,
    /// Subscriptions (topic, callback) with a delivery task running, each with whether a change
    /// came while it ran (so the task looks again before it ends).
    delivering: Mutex<HashMap<(String, String), bool>>,
    verifications: AtomicUsize,
    outgoing: tokio::sync::Semaphore,
    changes: tokio::sync::mpsc::UnboundedSender<Vec<String>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("state", &self.state.path()).finish_non_exhaustive()
    }
}

/// The current Unix time in seconds.
fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Hub {
    /// Starts the hub's tasks on the current runtime: the distributor of changes and the sweeper
    /// of expired leases.
    pub fn start(config: Arc<Config>, state: Arc<State>, shared: Arc<Shared>) -> Arc<Hub> {
        let guard = Guard::new(config.websub.allow_callbacks.clone());
        let (changes, receiver) = tokio::sync::mpsc::unbounded_channel();
        let hub = Arc::new(Hub {
            config: RwLock::new(config),
            state,
            shared,
            callbacks: outgoing::callback_client(guard.clone()),
            guard,
            hubs: outgoing::hub_client(),
            delivering: Mutex::default(),
            verifications: AtomicUsize::new(0),
            outgoing: tokio::sync::Semaphore::new(MAX_OUTGOING),
            changes,
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
    pub fn answers(&self, path: &str) -> bool {
        let config = self.config();
        config.websub.hub && (path == "/hub" || path == config.hub_url().path())
    }

    /// Answers a request to the hub's URL.
    pub async fn answer(self: &Arc<Self>, request: hyper::Request<hyper::body::Incoming>) -> Response<Body> {
        if request.method() != Method::POST {
            let mut response =
                text(StatusCode::METHOD_NOT_ALLOWED, "the hub takes POST requests (WebSub §5.1)\n".into());
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
        let form = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
        if !form {
            return bad_request("the body must be application/x-www-form-urlencoded".into());
        }
        // A body sent slowly holds a connection that eviction may not take (a request in
        // progress), so it gets a deadline of its own.
        let collect = Limited::new(request.into_body(), MAX_REQUEST_BYTES).collect();
        let body = match tokio::time::timeout(BODY_TIMEOUT, collect).await {
            Ok(Ok(body)) => body.to_bytes(),
            Err(_) => return text(StatusCode::REQUEST_TIMEOUT, "the request body took too long\n".into()),
            Ok(Err(_)) => {
                return text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("a request to the hub is at most {MAX_REQUEST_BYTES} bytes\n"),
                );
            }
        };
        let request = match request::parse(&body) {
            Ok(request) => request,
            Err(reason) => return bad_request(reason),
        };
        if self.verifications.fetch_add(1, Ordering::SeqCst) >= MAX_PENDING_VERIFICATIONS {
            self.verifications.fetch_sub(1, Ordering::SeqCst);
            let mut response = text(StatusCode::SERVICE_UNAVAILABLE, "too many verifications in progress\n".into());
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            return response;
        }
        // The name is resolved here, counted among the verifications, so that requests naming
        // slow hosts cannot pile up lookups.
        if let Err(reason) = self.guard.check_url(&request.callback).await {
            self.verifications.fetch_sub(1, Ordering::SeqCst);
            return bad_request(format!("hub.callback refused: {reason}"));
        }
        tokio::spawn(self.clone().verify(request));
        text(StatusCode::ACCEPTED, "accepted; the hub will verify the callback's intent\n".into())
    }

    /// The document path under the feeds folder that `topic` names, if crier serves it as a feed.
    fn topic_rel(&self, topic: &Url) -> Option<String> {
        let config = self.config();
        let rest = topic.as_str().strip_prefix(config.feeds_url.as_str())?;
        let rel = percent_encoding::percent_decode_str(rest).decode_utf8().ok()?.into_owned();
        (documents::is_feed(&rel) && self.shared.load().resources.contains_key(&rel)).then_some(rel)
    }

    /// The served document of a topic.
    fn resource(&self, rel: &str) -> Option<Arc<Resource>> {
        self.shared.load().resources.get(rel).cloned()
    }

    /// Verification of intent, then the subscription made, renewed or ended (§5.3); or, for a
    /// topic crier does not serve, the denial (§5.2).
    async fn verify(self: Arc<Self>, request: HubRequest) {
        let callback = request.callback.to_string();
        let outcome = self.verify_and_store(&request).await;
        self.verifications.fetch_sub(1, Ordering::SeqCst);
        match outcome {
            Ok(done) => tracing::info!("websub: {done}: {callback} for {}", request.topic),
            Err(reason) => tracing::info!(
                "websub: {} of {callback} to {} not done: {reason}",
                request.mode.as_str(),
                request.topic
            ),
        }
    }

    async fn verify_and_store(&self, request: &HubRequest) -> Result<&'static str, String> {
        let config = self.config();
        let rel = self.topic_rel(&request.topic);
        let denial = match (&rel, request.mode) {
            (None, Mode::Subscribe) => Some(format!("{} is not a feed this hub publishes", request.topic)),
            (Some(_), Mode::Subscribe) if self.full(&config, request)? => {
                Some(format!("this hub has reached its limit of {} subscriptions", config.websub.max_subscriptions))
            }
            _ => None,
        };
        if let Some(reason) = denial {
            let params = [("hub.mode", "denied"), ("hub.topic", request.topic.as_str()), ("hub.reason", &reason)];
            let _permit = self.outgoing.acquire().await;
            outgoing::get(&self.callbacks, &request.callback, &params).await?;
            return Err(format!("denied: {reason}"));
        }
        let topic = match &rel {
            Some(rel) => crate::post::absolute_link(&config.feeds_url, rel),
            None => request.topic.to_string(),
        };
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
        {
            let _permit = self.outgoing.acquire().await;
            outgoing::verify(&self.callbacks, &request.callback, &params, &challenge).await?;
        }
        let callback = request.callback.to_string();
        if request.mode == Mode::Unsubscribe {
            self.state.unsubscribe(&topic, &callback).map_err(|e| e.to_string())?;
            return Ok("unsubscribed");
        }
        // The subscriber has what is served now; the next change is the first delivery.
        let delivered = rel.and_then(|rel| self.resource(&rel)).map(|r| etag(&r)).unwrap_or_default();
        let subscription = Subscription {
            topic,
            callback,
            secret: request.secret.clone(),
            lease_expires: unix_now() + lease as i64,
            delivered,
        };
        self.state.subscribe(&subscription, unix_now()).map_err(|e| e.to_string())?;
        Ok("subscribed")
    }

    /// Whether a new subscription would pass `max_subscriptions` (a renewal never does).
    fn full(&self, config: &Config, request: &HubRequest) -> Result<bool, String> {
        let count = self.state.subscription_count().map_err(|e| e.to_string())?;
        if count < config.websub.max_subscriptions {
            return Ok(false);
        }
        let topic = self.topic_rel(&request.topic).map(|rel| crate::post::absolute_link(&config.feeds_url, &rel));
        let existing = self.state.subscription(&topic.unwrap_or_default(), request.callback.as_str());
        Ok(existing.map_err(|e| e.to_string())?.is_none())
    }

    /// The distributor: each batch of changed documents becomes deliveries and pings. The first
    /// batch also looks at every topic with subscribers, for changes made while crier was down.
    async fn distribute(self: Arc<Self>, mut receiver: tokio::sync::mpsc::UnboundedReceiver<Vec<String>>) {
        let mut first = true;
        while let Some(mut changed) = receiver.recv().await {
            while let Ok(more) = receiver.try_recv() {
                changed.extend(more);
            }
            let config = self.config();
            let mut topics: Vec<(String, String)> = changed
                .iter()
                .filter(|rel| documents::is_feed(rel))
                .map(|rel| (crate::post::absolute_link(&config.feeds_url, rel), rel.clone()))
                .collect();
            topics.sort();
            topics.dedup();
            if !config.websub.hubs.is_empty() && !topics.is_empty() {
                let urls: Vec<String> = topics.iter().map(|(topic, _)| topic.clone()).collect();
                for hub in &config.websub.hubs {
                    tokio::spawn(self.clone().ping(hub.clone(), urls.clone()));
                }
            }
            if std::mem::take(&mut first) {
                topics.extend(self.stored_topics(&config));
            }
            for (topic, rel) in topics {
                self.start_deliveries(&topic, &rel);
            }
        }
    }

    /// Every topic with subscribers that crier serves, with its document path.
    fn stored_topics(&self, config: &Config) -> Vec<(String, String)> {
        let topics = self.state.topics(unix_now()).unwrap_or_else(|error| {
            tracing::error!("websub: {error}");
            Vec::new()
        });
        topics
            .into_iter()
            .filter_map(|topic| {
                let rel = self.topic_rel(&Url::parse(&topic).ok()?)?;
                (crate::post::absolute_link(&config.feeds_url, &rel) == topic).then_some((topic, rel))
            })
            .collect()
    }

    /// A delivery task for each subscriber of `topic` that lacks its current bytes and has none running.
    fn start_deliveries(self: &Arc<Self>, topic: &str, rel: &str) {
        let Some(resource) = self.resource(rel) else { return };
        let current = etag(&resource);
        let subscribers = match self.state.subscribers(topic, unix_now()) {
            Ok(subscribers) => subscribers,
            Err(error) => return tracing::error!("websub: {error}"),
        };
        for subscription in subscribers.into_iter().filter(|s| s.delivered != current) {
            let key = (subscription.topic.clone(), subscription.callback.clone());
            let mut running = self.delivering.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match running.get_mut(&key) {
                Some(again) => *again = true,
                None => {
                    running.insert(key.clone(), false);
                    tokio::spawn(self.clone().deliver(key, rel.to_owned()));
                }
            }
        }
    }

    /// Brings one subscriber up to date with its topic, retrying failures with growing delays;
    /// when the topic changes meanwhile, the newest bytes are what is sent.
    async fn deliver(self: Arc<Self>, key: (String, String), rel: String) {
        let mut running = Running { hub: &self, key: key.clone(), ended: false };
        let (topic, callback) = &key;
        let mut failures = 0;
        loop {
            let Ok(Some(subscription)) = self.state.subscription(topic, callback) else { return };
            let Some(resource) = self.resource(&rel) else { return };
            let current = etag(&resource);
            if subscription.lease_expires <= unix_now() {
                return;
            }
            if subscription.delivered == current {
                if running.end() {
                    return;
                }
                continue;
            }
            let sent = {
                let _permit = self.outgoing.acquire().await;
                let body = resource.identity.body.clone();
                let secret = subscription.secret.as_deref();
                outgoing::deliver(&self.callbacks, callback, body, &resource.content_type, &resource.links, secret)
                    .await
            };
            match sent {
                Ok(()) => {
                    failures = 0;
                    if let Err(error) = self.state.delivered(topic, callback, &current) {
                        return tracing::error!("websub: {error}");
                    }
                }
                Err(Failure::Gone) => {
                    tracing::info!("websub: {callback} answered 410 Gone; its subscription to {topic} ends");
                    let _ = self.state.unsubscribe(topic, callback);
                    return;
                }
                Err(Failure::Failed(reason)) => {
                    let Some(delay) = RETRY_DELAYS.get(failures) else {
                        tracing::warn!(
                            "websub: giving up delivering {topic} to {callback} after {} tries: {reason}",
                            failures + 1
                        );
                        let _ = self.state.delivered(topic, callback, &current);
                        return;
                    };
                    failures += 1;
                    tracing::info!(
                        "websub: delivering {topic} to {callback} failed ({reason}); try {} in {delay:?}",
                        failures + 1
                    );
                    tokio::time::sleep(*delay).await;
                }
            }
        }
    }

    /// Tells an external hub the topics changed, retrying failures with growing delays.
    async fn ping(self: Arc<Self>, hub: Url, topics: Vec<String>) {
        for (tries, delay) in RETRY_DELAYS.iter().map(Some).chain([None]).enumerate() {
            let result = outgoing::ping(&self.hubs, &hub, &topics).await;
            match (result, delay) {
                (Ok(()), _) => return tracing::debug!("websub: pinged {hub} for {} topics", topics.len()),
                (Err(reason), Some(delay)) => {
                    tracing::info!("websub: ping to {hub} failed ({reason}); try {} in {delay:?}", tries + 2);
                    tokio::time::sleep(*delay).await;
                }
                (Err(reason), None) => {
                    tracing::warn!("websub: giving up pinging {hub} after {} tries: {reason}", tries + 1)
                }
            }
        }
    }

    /// Deletes expired subscriptions now and then.
    async fn sweep(self: Arc<Self>) {
        loop {
            match self.state.expire(unix_now()) {
                Ok(0) => {}
                Ok(n) => tracing::info!("websub: {n} subscriptions expired"),
                Err(error) => tracing::error!("websub: {error}"),
            }
            tokio::time::sleep(SWEEP_EVERY).await;
        }
    }
}

/// A delivery task's claim on its subscription, given up however the task ends.
struct Running<'a> {
    hub: &'a Hub,
    key: (String, String),
    ended: bool,
}

impl Running<'_> {
    /// Gives up the claim, unless a change came since the task last looked: then it must look
    /// again (says false), since the distributor left that change to it.
    fn end(&mut self) -> bool {
        let mut running = self.hub.delivering.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match running.get_mut(&self.key) {
            Some(again) if *again => {
                *again = false;
                false
            }
            _ => {
                running.remove(&self.key);
                self.ended = true;
                true
            }
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.hub.delivering.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&self.key);
        }
    }
}

/// The validator of a document's bytes as served unencoded.
fn etag(resource: &Resource) -> String {
    resource.identity.etag.to_str().unwrap_or_default().to_owned()
}

/// A fresh `hub.challenge`: 128 random bits in hex.
fn challenge() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system provides random bytes");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn bad_request(reason: String) -> Response<Body> {
    text(StatusCode::BAD_REQUEST, format!("{reason}\n"))
}
