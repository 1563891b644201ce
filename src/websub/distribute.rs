//! From changed documents to deliveries and pings.
//!
//! Each subscription that lacks its topic's current bytes gets one delivery task, which sends the
//! newest bytes, retries with growing delays, and looks again before it ends if a change came
//! meanwhile. Deliveries to one host take at most [`PER_HOST`] of the [`super::MAX_OUTGOING`]
//! places, so a slow host holds few of them. Each external hub has one pinger with a set of topics
//! waiting, so a hub that is down costs one task, not one per change.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use url::Url;

use super::outgoing::{self, Failure, RETRY_DELAYS};
use super::{Hub, SWEEP_EVERY, etag, unix_now};
use crate::config::Config;

/// Deliveries in progress to one callback host at once.
pub const PER_HOST: usize = 4;

/// An external hub's topics waiting to be pinged, and whether its pinger runs.
#[derive(Debug, Default)]
pub struct Pending {
    topics: BTreeSet<String>,
    running: bool,
}

/// A (topic, callback) pair: one subscription.
type Key = (String, String);

impl Hub {
    /// The distributor: each batch of changed documents becomes deliveries and pings. The first
    /// batch also looks at every topic with subscribers, for changes made while crier was down.
    pub(super) async fn distribute(self: Arc<Self>, mut receiver: tokio::sync::mpsc::UnboundedReceiver<Vec<String>>) {
        let mut first = true;
        while let Some(mut changed) = receiver.recv().await {
            while let Ok(more) = receiver.try_recv() {
                changed.extend(more);
            }
            let config = self.config();
            let mut topics: Vec<(String, String)> = changed
                .iter()
                .filter(|rel| crate::served::is_topic(rel))
                .map(|rel| (crate::post::absolute_link(&config.feeds_url, rel), rel.clone()))
                .collect();
            topics.sort();
            topics.dedup();
            for hub in &config.websub.hubs {
                self.queue_ping(hub, topics.iter().map(|(topic, _)| topic.clone()));
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

    /// A delivery task for each subscriber of `topic` that lacks its current bytes; one already
    /// running is told to look again.
    pub(super) fn start_deliveries(self: &Arc<Self>, topic: &str, rel: &str) {
        let Some(resource) = self.resource(rel) else { return };
        let current = etag(&resource);
        let subscribers = match self.state.subscribers(topic, unix_now()) {
            Ok(subscribers) => subscribers,
            Err(error) => return tracing::error!("websub: {error}"),
        };
        for subscription in subscribers.into_iter().filter(|s| s.delivered != current) {
            let key = (subscription.topic, subscription.callback);
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
    /// each try sends the newest bytes, and new bytes start the count of tries afresh.
    async fn deliver(self: Arc<Self>, key: Key, rel: String) {
        let mut running = Running { hub: &self, key: key.clone(), ended: false };
        let (topic, callback) = &key;
        let mut failures = 0;
        let mut last_tried = String::new();
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
            if current != last_tried {
                (failures, last_tried) = (0, current.clone());
            }
            let Ok(url) = Url::parse(callback) else { return };
            let sent = {
                let _places = self.places(&url).await;
                let _sending = super::Ticket::take(&self.sending, usize::MAX);
                let secret = subscription.secret.as_deref();
                let Ok(body) = resource.identity_bytes() else { return };
                outgoing::deliver(&self.callbacks, &url, body, &resource.content_type, &resource.links, secret).await
            };
            // Not kept through a wait: a newer version may replace it meanwhile.
            drop(resource);
            match sent {
                Ok(()) => {
                    self.count_delivery("delivered");
                    if let Err(error) = self.state.delivered(topic, callback, &current) {
                        return tracing::error!("websub: {error}");
                    }
                }
                Err(failure) => match self.after_failure(topic, callback, &current, failure, failures) {
                    Some(delay) => {
                        failures += 1;
                        tokio::time::sleep(delay).await;
                    }
                    None => return,
                },
            }
        }
    }

    /// What a failed delivery leads to: the delay before the next try, or `None` when the
    /// subscription ends (410, a refused address) or the hub gives up on this version.
    fn after_failure(
        &self,
        topic: &str,
        callback: &str,
        current: &str,
        failure: Failure,
        failures: usize,
    ) -> Option<Duration> {
        match failure {
            Failure::Gone | Failure::Refused(_) => {
                self.count_delivery("ended");
                tracing::info!("websub: {callback} ({failure}): its subscription to {topic} ends");
                let _ = self.state.unsubscribe(topic, callback);
                None
            }
            Failure::Failed(reason) => {
                let Some(&delay) = RETRY_DELAYS.get(failures) else {
                    self.count_delivery("gave_up");
                    tracing::warn!(
                        "websub: giving up delivering {topic} to {callback} after {} tries: {reason}",
                        failures + 1
                    );
                    let _ = self.state.delivered(topic, callback, current);
                    return None;
                };
                self.count_delivery("retrying");
                tracing::info!(
                    "websub: delivering {topic} to {callback} failed ({reason}); try {} in {delay:?}",
                    failures + 2
                );
                Some(delay)
            }
        }
    }

    /// A place among the deliveries to `url`'s host, then among all deliveries.
    async fn places(&self, url: &Url) -> (tokio::sync::OwnedSemaphorePermit, tokio::sync::SemaphorePermit<'_>) {
        let host = url.host_str().unwrap_or_default().to_owned();
        let per_host = self
            .hosts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(host)
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(PER_HOST)))
            .clone();
        let host = per_host.acquire_owned().await.expect("the semaphore is never closed");
        let all = self.outgoing.acquire().await.expect("the semaphore is never closed");
        (host, all)
    }

    /// Adds `topics` to what `hub` is to be told, starting its pinger if none runs.
    fn queue_ping(self: &Arc<Self>, hub: &Url, topics: impl Iterator<Item = String>) {
        let mut pings = self.pings.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let pending = pings.entry(hub.clone()).or_default();
        pending.topics.extend(topics);
        if !pending.running && !pending.topics.is_empty() {
            pending.running = true;
            tokio::spawn(self.clone().pinger(hub.clone()));
        }
    }

    /// Tells an external hub every topic waiting, retrying failures with growing delays (topics
    /// that change meanwhile join the next try), until nothing waits.
    async fn pinger(self: Arc<Self>, hub: Url) {
        let mut failures = 0;
        loop {
            let topics: Vec<String> = {
                let mut pings = self.pings.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let pending = pings.entry(hub.clone()).or_default();
                if pending.topics.is_empty() {
                    pending.running = false;
                    return;
                }
                std::mem::take(&mut pending.topics).into_iter().collect()
            };
            let Err(reason) = outgoing::ping(&self.hubs, &hub, &topics).await else {
                tracing::debug!("websub: pinged {hub} for {} topics", topics.len());
                failures = 0;
                continue;
            };
            let Some(&delay) = RETRY_DELAYS.get(failures) else {
                tracing::warn!(
                    "websub: giving up pinging {hub} for {} topics after {} tries: {reason}",
                    topics.len(),
                    failures + 1
                );
                failures = 0;
                continue;
            };
            tracing::info!("websub: ping to {hub} failed ({reason}); try {} in {delay:?}", failures + 2);
            failures += 1;
            self.pings
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(hub.clone())
                .or_default()
                .topics
                .extend(topics);
            tokio::time::sleep(delay).await;
        }
    }

    /// Deletes expired subscriptions, and forgets idle hosts, now and then.
    pub(super) async fn sweep(self: Arc<Self>) {
        loop {
            match self.state.expire(unix_now()) {
                Ok(0) => {}
                Ok(n) => tracing::info!("websub: {n} subscriptions expired"),
                Err(error) => tracing::error!("websub: {error}"),
            }
            self.hosts
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .retain(|_, places| Arc::strong_count(places) > 1 || places.available_permits() < PER_HOST);
            tokio::time::sleep(SWEEP_EVERY).await;
        }
    }

    /// Waits up to `within` for the deliveries being sent to finish, so that none is cut off
    /// after the subscriber got it but before it was recorded (it would be sent again).
    pub async fn drain(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while self.sending.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A delivery task's claim on its subscription, given up however the task ends.
struct Running<'a> {
    hub: &'a Hub,
    key: Key,
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
