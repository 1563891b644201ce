//! The published set: every document the server may send, with its encodings and validators
//! computed once when it changes, and swapped whole so a reader never sees half a regeneration.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use bytes::Bytes;
use http::HeaderValue;

use crate::publish::Encoded;

/// One encoding of a document, with its strong validator.
#[derive(Debug, Clone)]
pub struct Variant {
    pub body: Bytes,
    pub etag: HeaderValue,
}

impl Variant {
    fn new(body: Bytes) -> Variant {
        let hash = xxhash_rust::xxh3::xxh3_128(&body);
        let etag = HeaderValue::try_from(format!("\"{hash:032x}\"")).expect("hex digits are a valid header value");
        Variant { body, etag }
    }
}

/// A document as served.
#[derive(Debug, Clone)]
pub struct Resource {
    pub content_type: HeaderValue,
    pub identity: Variant,
    pub gzip: Option<Variant>,
    pub brotli: Option<Variant>,
    /// When these bytes last changed, at one-second resolution (what `Last-Modified` says).
    pub modified: SystemTime,
    pub last_modified: HeaderValue,
}

impl Resource {
    /// A document with its encodings; `modified` is clamped so it never lies in the future.
    pub fn new(content_type: &'static str, encoded: &Encoded, now: SystemTime) -> Resource {
        let mut resource = Resource::identity_only(content_type, encoded.identity.clone(), encoded.modified.min(now));
        resource.gzip = Some(Variant::new(encoded.gzip.clone()));
        resource.brotli = Some(Variant::new(encoded.brotli.clone()));
        resource
    }

    /// A document served only as it is.
    pub fn identity_only(content_type: &'static str, body: Bytes, modified: SystemTime) -> Resource {
        let modified = whole_seconds(modified);
        Resource {
            content_type: HeaderValue::from_static(content_type),
            identity: Variant::new(body),
            gzip: None,
            brotli: None,
            modified,
            last_modified: HeaderValue::try_from(httpdate::fmt_http_date(modified))
                .expect("an HTTP date is a valid header value"),
        }
    }
}

fn whole_seconds(time: SystemTime) -> SystemTime {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(d.as_secs()),
        Err(_) => SystemTime::UNIX_EPOCH,
    }
}

/// The media type a document is served with, from its path.
pub fn content_type(rel: &str) -> &'static str {
    match rel.rsplit('.').next() {
        Some("rss") => "application/rss+xml; charset=utf-8",
        Some("atom") => "application/atom+xml; charset=utf-8",
        Some("json") => "application/feed+json; charset=utf-8",
        Some("opml") => "text/x-opml; charset=utf-8",
        _ => "text/html; charset=utf-8",
    }
}

/// Everything served at one moment.
#[derive(Debug, Clone, Default)]
pub struct Published {
    /// By path under the feeds folder, unencoded (`categories/新闻.rss`).
    pub resources: HashMap<String, Arc<Resource>>,
    /// The first publish is complete.
    pub ready: bool,
    /// How to answer, from the configuration these documents were made with.
    pub settings: Arc<crate::http::HttpSettings>,
}

/// The published set shared between the publisher and the server: readers take an `Arc` and let
/// go of the lock at once; the publisher replaces the whole set.
#[derive(Debug)]
pub struct Shared {
    current: RwLock<Arc<Published>>,
    ready: tokio::sync::watch::Sender<bool>,
}

impl Default for Shared {
    fn default() -> Shared {
        Shared { current: RwLock::default(), ready: tokio::sync::watch::Sender::new(false) }
    }
}

impl Shared {
    pub fn new() -> Shared {
        Shared::default()
    }

    pub fn load(&self) -> Arc<Published> {
        self.current.read().expect("no code panics while holding this lock").clone()
    }

    pub fn store(&self, published: Published) {
        let ready = published.ready;
        *self.current.write().expect("no code panics while holding this lock") = Arc::new(published);
        self.ready.send_replace(ready);
    }

    /// Completes once the first publish is done.
    pub async fn wait_ready(&self) {
        let mut ready = self.ready.subscribe();
        let _ = ready.wait_for(|ready| *ready).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validators_follow_the_bytes_only() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_900);
        let encoded = Encoded::compress(b"<rss/>".to_vec(), crate::publish::Levels { gzip: 3, brotli: 3 }, t);
        let a = Resource::new("application/rss+xml", &encoded, SystemTime::now());
        let b = Resource::new("application/rss+xml", &encoded, SystemTime::now());
        assert_eq!(a.identity.etag, b.identity.etag);
        assert_ne!(a.identity.etag, a.gzip.as_ref().unwrap().etag);
        assert_ne!(a.gzip.as_ref().unwrap().etag, a.brotli.as_ref().unwrap().etag);
        assert_eq!(a.last_modified, "Tue, 14 Nov 2023 22:13:20 GMT");
        let future = Resource::new(
            "x",
            &Encoded { modified: SystemTime::now() + std::time::Duration::from_secs(3600), ..encoded },
            t,
        );
        assert_eq!(future.modified, whole_seconds(t), "never later than now");
    }
}
