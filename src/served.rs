//! The served set: every document the server may send, with its encodings, validators and
//! response policy computed once when it changes, and swapped whole so a reader never sees half
//! a regeneration.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use bytes::Bytes;
use http::HeaderValue;
use rayon::prelude::*;

use crate::config::Config;
use crate::redirect;
use crate::site::FeedKey;

use crate::documents::{self, INDEX_PATH, Kind};
use crate::feeds_dir::{Encoded, Encoding, OnDisk};

/// One encoding of a document, with its strong validator.
#[derive(Debug, Clone)]
pub struct Variant {
    pub body: Stored,
    /// The bytes' XXH3-128, which the ETag spells.
    pub hash: u128,
}

/// Where a variant's bytes are kept.
#[derive(Debug, Clone)]
pub enum Stored {
    /// With the validator spelled out once, for the documents asked for most.
    Memory { bytes: Bytes, etag: HeaderValue },
    /// In a file of the feeds folder, read for each response: sealed archive pages, a site's
    /// whole history, are rarely asked for and never change with newer posts. Their validator
    /// is spelled out for each response rather than kept for thousands of pages.
    File {
        /// The document's own file; an encoding's lies beside it.
        document: Arc<std::path::Path>,
        encoding: Option<Encoding>,
        /// The file as it was when its bytes were found to be the ones the ETag names: while it
        /// is still that file, its bytes are not hashed again (crier replaces a file by a rename,
        /// a new inode, and never writes one in place).
        checked: Checked,
    },
}

impl Variant {
    fn new(body: Bytes) -> Variant {
        let hash = xxhash_rust::xxh3::xxh3_128(&body);
        Variant { body: Stored::Memory { bytes: body, etag: etag_of(hash) }, hash }
    }

    /// The strong validator, which spells the hash.
    pub fn etag(&self) -> HeaderValue {
        match &self.body {
            Stored::Memory { etag, .. } => etag.clone(),
            Stored::File { .. } => etag_of(self.hash),
        }
    }

    /// Whether the bytes are read from a file for each response.
    pub fn is_file(&self) -> bool {
        matches!(self.body, Stored::File { .. })
    }

    /// The bytes. A file whose bytes are no longer those the ETag names (rewritten since this
    /// set was made) is an error: the answer would pair new bytes with an old validator.
    pub fn bytes(&self) -> std::io::Result<Bytes> {
        self.bytes_at(SystemTime::now())
    }

    /// [`Variant::bytes`], read at `now`.
    fn bytes_at(&self, now: SystemTime) -> std::io::Result<Bytes> {
        match &self.body {
            Stored::Memory { bytes, .. } => Ok(bytes.clone()),
            Stored::File { document, encoding, checked } => {
                let path = encoding.map_or_else(|| document.to_path_buf(), |e| e.beside(document));
                let mut file = std::fs::File::open(&path)?;
                let metadata = file.metadata()?;
                let key = Checked::key(&metadata);
                let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
                std::io::Read::read_to_end(&mut file, &mut bytes)?;
                if checked.0.load(Ordering::Relaxed) != key {
                    if xxhash_rust::xxh3::xxh3_128(&bytes) != self.hash {
                        let message = format!("{} changed since it was served", path.display());
                        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, message));
                    }
                    if Checked::settled(&metadata, now) {
                        checked.0.store(key, Ordering::Relaxed);
                    }
                }
                Ok(Bytes::from(bytes))
            }
        }
    }
}

/// The [`Checked::key`] of a file found to hold a variant's bytes (0: none yet), copied into the
/// clone a new set makes: eight bytes in place, no allocation, for each file served.
#[derive(Debug, Default)]
pub struct Checked(AtomicU64);

impl Clone for Checked {
    fn clone(&self) -> Checked {
        Checked(AtomicU64::new(self.0.load(Ordering::Relaxed)))
    }
}

impl Checked {
    /// How long ago a file must have changed for it to be trusted as checked: file times come
    /// from a clock that moves in ticks of a few milliseconds, so a file written over (in place,
    /// with as many bytes) within the tick it was read in could look the same.
    const SETTLED: std::time::Duration = std::time::Duration::from_secs(2);

    /// A 64-bit digest (never 0) of the file `metadata` describes: its device, inode, length,
    /// and the times its bytes and its inode last changed.
    fn key(metadata: &std::fs::Metadata) -> u64 {
        use std::os::unix::fs::MetadataExt;
        let times = [metadata.mtime(), metadata.mtime_nsec(), metadata.ctime(), metadata.ctime_nsec()];
        let words = [metadata.dev(), metadata.ino(), metadata.len()].into_iter().chain(times.map(|t| t as u64));
        let mut bytes = [0u8; 56];
        for (chunk, word) in bytes.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        xxhash_rust::xxh3::xxh3_64(&bytes).max(1)
    }

    /// Whether the file `metadata` describes last changed at least [`Checked::SETTLED`] before
    /// `now`.
    fn settled(metadata: &std::fs::Metadata, now: SystemTime) -> bool {
        use std::os::unix::fs::MetadataExt;
        let now = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        now.saturating_sub(metadata.ctime().max(0) as u64) > Checked::SETTLED.as_secs()
    }
}

/// The strong validator that spells a hash of the bytes.
fn etag_of(hash: u128) -> HeaderValue {
    HeaderValue::try_from(format!("\"{hash:032x}\"")).expect("hex digits are a valid header value")
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
    /// `Link` header values: a feed's WebSub hubs and its self URL (WebSub §4).
    pub links: Vec<HeaderValue>,
    /// A sealed RFC 5005 archive page, whose bytes newer posts never change: cached for
    /// `archive_max_age`. (The newest page, still filling, is cached like a feed.)
    pub sealed: bool,
    /// What the document is, as metrics count requests.
    pub kind: Kind,
    /// For a feed document, the feed it is one format of (its stem), and which format
    /// (`Format::ALL`'s index): subscribers are counted per feed.
    pub feed: Option<(Arc<str>, u8)>,
}

impl Resource {
    /// The document at `rel` with its encodings; `modified` is clamped so it never lies in the future.
    /// Without its encodings when they are not made yet ([`Encoded::is_encoded`]).
    pub fn new(rel: &str, encoded: &Encoded, now: SystemTime) -> Resource {
        let mut resource = Resource::identity_only(rel, encoded.identity.clone(), encoded.modified.min(now));
        if encoded.is_encoded() {
            resource.gzip = Some(Variant::new(encoded.gzip.clone()));
            resource.brotli = Some(Variant::new(encoded.brotli.clone()));
        }
        resource
    }

    /// The same document, last changed at `modified` (never later than `now`).
    pub fn dated(mut self, modified: SystemTime, now: SystemTime) -> Resource {
        self.modified = whole_seconds(modified.min(now));
        self.last_modified = HeaderValue::try_from(httpdate::fmt_http_date(self.modified))
            .expect("an HTTP date is a valid header value");
        self
    }

    /// The document at `rel`, served only as it is.
    pub fn identity_only(rel: &str, body: Bytes, modified: SystemTime) -> Resource {
        Resource::of(rel, Variant::new(body), modified)
    }

    fn of(rel: &str, identity: Variant, modified: SystemTime) -> Resource {
        Resource {
            content_type: content_type(rel),
            identity,
            gzip: None,
            brotli: None,
            modified,
            last_modified: HeaderValue::from_static(""),
            links: Vec::new(),
            sealed: false,
            kind: Kind::of(rel),
            feed: documents::feed_stem(rel).map(|stem| {
                let format = crate::feed::Format::ALL.iter().position(|f| rel.ends_with(f.extension()));
                (Arc::from(stem), format.unwrap_or(0) as u8)
            }),
        }
        .dated(modified, modified)
    }

    /// The document at `rel` as its files hold it, `document` and each encoding's beside it, by
    /// what the scan index kept of them (`on_disk`): read for each response, and checked against
    /// the kept hashes.
    pub fn on_disk(rel: &str, on_disk: &OnDisk, document: &std::path::Path, now: SystemTime) -> Resource {
        // The kept hashes (identity, gzip, brotli); `from_files` points each at its file.
        let kept = |i: usize| {
            let body = Stored::Memory { bytes: Bytes::new(), etag: HeaderValue::from_static("") };
            Variant { body, hash: on_disk.files[i].1 }
        };
        let resource = Resource::of(rel, kept(0), on_disk.modified.min(now));
        Resource { gzip: Some(kept(1)), brotli: Some(kept(2)), ..resource }.from_files(document)
    }

    /// The same document with its encodings read from their files into memory, when each file
    /// still holds the bytes its validator names; its identity stays in its file (see
    /// [`Resource::filed`]).
    pub fn loaded(&self) -> Option<Resource> {
        let load = |variant: &Option<Variant>| match variant {
            Some(variant) => variant.bytes().ok().map(|bytes| Some(Variant::new(bytes))),
            None => Some(None),
        };
        Some(Resource { gzip: load(&self.gzip)?, brotli: load(&self.brotli)?, ..self.clone() })
    }

    /// The same document served from the files that hold it (`document`, and each encoding's
    /// file beside it) instead of memory.
    pub fn from_files(mut self, document: &std::path::Path) -> Resource {
        let document: Arc<std::path::Path> = Arc::from(document);
        let file = |encoding| Stored::File { document: document.clone(), encoding, checked: Checked::default() };
        self.identity.body = file(None);
        for (variant, encoding) in [(&mut self.gzip, Encoding::Gzip), (&mut self.brotli, Encoding::Brotli)] {
            if let Some(variant) = variant {
                variant.body = file(Some(encoding));
            }
        }
        self
    }

    /// The same document, once its files hold its bytes, kept as the document at `rel` is: an
    /// archive page read from its files for each response (a history is asked for rarely); any
    /// other document with its encodings in memory, which nearly every reader asks for, and its
    /// identity read from its file (the page cache holds it; a copy in memory as well would be
    /// most of the served set's bytes, a third of crier's memory at 100,000 posts).
    /// One served before its encodings are made keeps its identity in memory: there is nothing
    /// to make it again from, should its file be written over first.
    pub fn filed(mut self, rel: &str, document: &std::path::Path) -> Resource {
        if documents::is_archive(rel) {
            return self.from_files(document);
        }
        if self.gzip.is_none() {
            return self;
        }
        self.identity.body =
            Stored::File { document: Arc::from(document), encoding: None, checked: Checked::default() };
        self
    }

    /// The identity bytes. When its file no longer holds them (rewritten for a newer set since
    /// this one was taken, or removed by hand), they are made again from the gzip encoding, which
    /// the ETag then still names.
    pub fn identity_bytes(&self) -> std::io::Result<Bytes> {
        let error = match self.identity.bytes() {
            Ok(bytes) => return Ok(bytes),
            Err(error) => error,
        };
        let Some(gzip) = self.gzip.as_ref().and_then(|gzip| gzip.bytes().ok()) else { return Err(error) };
        let mut bytes = Vec::new();
        let read = std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gzip[..]), &mut bytes);
        match read.is_ok() && xxhash_rust::xxh3::xxh3_128(&bytes) == self.identity.hash {
            true => Ok(Bytes::from(bytes)),
            false => Err(error),
        }
    }

    /// The same document with the `Link` headers `policy` gives the document at `rel`.
    pub fn linked(mut self, rel: &str, policy: &Policy) -> Resource {
        self.links = policy.links(rel);
        self
    }
}

/// The `Content-Type` of the document at `rel`: every document crier makes is UTF-8 text. The
/// media types crier serves are static values, shared by every document (at 1,000,000 posts,
/// 100,000 of them), not one allocation each.
fn content_type(rel: &str) -> HeaderValue {
    let value = match documents::media_type(rel) {
        Some("application/rss+xml") => "application/rss+xml; charset=utf-8",
        Some("application/atom+xml") => "application/atom+xml; charset=utf-8",
        Some("application/feed+json") => "application/feed+json; charset=utf-8",
        Some("text/x-opml") => "text/x-opml; charset=utf-8",
        Some("text/html") => "text/html; charset=utf-8",
        Some(other) => {
            let value = HeaderValue::try_from(format!("{other}; charset=utf-8"));
            return value.expect("a media type is a valid header value");
        }
        None => "application/octet-stream",
    };
    HeaderValue::from_static(value)
}

fn whole_seconds(time: SystemTime) -> SystemTime {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(d.as_secs()),
        Err(_) => SystemTime::UNIX_EPOCH,
    }
}

/// How responses are made, from the configuration the documents were made with.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `Cache-Control` of feed responses.
    pub cache_control: HeaderValue,
    /// `Cache-Control` of archive pages (`archive_max_age`).
    pub archive_cache_control: HeaderValue,
    /// The path of the public feeds folder (`/feeds/`): requests under it are served too, so a
    /// reverse proxy may pass paths through unchanged.
    pub prefix: String,
    /// The public address of the feeds folder, which self links hang off.
    pub feeds_url: Option<url::Url>,
    /// `Link: <hub>; rel="hub"` for each hub feeds advertise, the built-in one first.
    pub hub_links: Vec<HeaderValue>,
    /// `[redirects]`, by percent-decoded request path.
    pub redirects: std::collections::BTreeMap<String, String>,
    /// The generators whose feed URLs are redirected, and the site's path they live under.
    pub aliases: Vec<crate::config::Alias>,
    pub site_path: String,
    /// How long readers may keep a feed: a client asking sooner polls too fast.
    pub ttl: std::time::Duration,
}

/// Before the first publish nothing is served but `/healthz`; nothing to cache, no prefix.
impl Default for Policy {
    fn default() -> Policy {
        Policy {
            cache_control: HeaderValue::from_static("no-store"),
            archive_cache_control: HeaderValue::from_static("no-store"),
            prefix: "/".to_owned(),
            feeds_url: None,
            hub_links: Vec::new(),
            redirects: Default::default(),
            aliases: Vec::new(),
            site_path: "/".to_owned(),
            ttl: std::time::Duration::ZERO,
        }
    }
}

impl Policy {
    pub fn new(config: &Config) -> Policy {
        Policy {
            cache_control: max_age(config.ttl),
            archive_cache_control: max_age(config.archive_max_age),
            prefix: config.feeds_url.path().to_owned(),
            feeds_url: Some(config.feeds_url.clone()),
            hub_links: config.hub_urls().iter().map(|hub| link_value(hub, "hub")).collect(),
            redirects: config.redirects.clone(),
            aliases: config.aliases.clone(),
            site_path: config.base_url.path().to_owned(),
            ttl: config.ttl,
        }
    }

    /// The `[redirects]` target of a percent-decoded request path.
    pub fn redirect(&self, path: &str) -> Option<&str> {
        self.redirects.get(path).map(String::as_str)
    }

    /// The `Link` header values of the document at `rel`: for a feed when hubs are advertised,
    /// each hub then the feed's self URL (its WebSub topic); nothing for other documents, archive
    /// pages included (they are not topics).
    pub fn links(&self, rel: &str) -> Vec<HeaderValue> {
        match &self.feeds_url {
            Some(feeds_url) if is_topic(rel) && !self.hub_links.is_empty() => {
                let topic = crate::post::absolute_link(feeds_url, rel);
                self.hub_links.iter().cloned().chain([link_value(&topic, "self")]).collect()
            }
            _ => Vec::new(),
        }
    }
}

/// Whether the document at `rel` may be subscribed to through WebSub: a subscription document.
pub fn is_topic(rel: &str) -> bool {
    documents::is_feed(rel) && !documents::is_archive(rel)
}

/// `Cache-Control` for documents fresh for `age`.
fn max_age(age: std::time::Duration) -> HeaderValue {
    HeaderValue::try_from(format!("public, max-age={}", age.as_secs())).expect("digits are a valid header value")
}

/// One `Link` header value; `url` is ASCII (the url crate percent-encodes the rest).
fn link_value(url: &str, rel: &str) -> HeaderValue {
    HeaderValue::try_from(format!("<{url}>; rel=\"{rel}\"")).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The documents served, by path: in shards, so that the next set after a step (a copy with a
/// few documents changed) copies only the shards those documents fall in, not the whole map
/// (at 1,000,000 posts, 100,000 documents: about 100 a shard, so a step's dozen documents copy
/// about a thousand entries, each two counts raised: keys and values are shared).
#[derive(Debug, Clone)]
pub struct Resources {
    /// Keys shared, not copied, when a shard is copied.
    shards: Vec<Arc<HashMap<Arc<str>, Arc<Resource>>>>,
    len: usize,
}

const SHARDS: usize = 1024;

impl Default for Resources {
    fn default() -> Resources {
        Resources { shards: vec![Arc::default(); SHARDS], len: 0 }
    }
}

impl Resources {
    fn shard(rel: &str) -> usize {
        (xxhash_rust::xxh3::xxh3_64(rel.as_bytes()) % SHARDS as u64) as usize
    }

    pub fn get(&self, rel: &str) -> Option<&Arc<Resource>> {
        self.shards[Resources::shard(rel)].get(rel)
    }

    pub fn contains_key(&self, rel: &str) -> bool {
        self.get(rel).is_some()
    }

    pub fn insert(&mut self, rel: String, resource: Arc<Resource>) -> Option<Arc<Resource>> {
        let shard = Arc::make_mut(&mut self.shards[Resources::shard(&rel)]);
        let previous = shard.insert(rel.into(), resource);
        self.len += usize::from(previous.is_none());
        previous
    }

    /// Inserts many documents at once, each shard's on a core of its own: at 1,000,000 posts a
    /// start serves 100,000 documents before its first answer.
    pub fn extend_par(&mut self, found: Vec<(String, Arc<Resource>)>) {
        let mut buckets: Vec<Vec<(String, Arc<Resource>)>> = (0..SHARDS).map(|_| Vec::new()).collect();
        for (rel, resource) in found {
            buckets[Resources::shard(&rel)].push((rel, resource));
        }
        let added: usize = (self.shards.par_iter_mut().zip(buckets))
            .filter(|(_, bucket)| !bucket.is_empty())
            .map(|(shard, bucket)| {
                let shard = Arc::make_mut(shard);
                shard.reserve(bucket.len());
                let inserted = bucket.into_iter().map(|(rel, resource)| shard.insert(rel.into(), resource));
                inserted.filter(Option::is_none).count()
            })
            .sum();
        self.len += added;
    }

    pub fn remove(&mut self, rel: &str) -> Option<Arc<Resource>> {
        let shard = &mut self.shards[Resources::shard(rel)];
        if !shard.contains_key(rel) {
            return None;
        }
        let previous = Arc::make_mut(shard).remove(rel);
        self.len -= usize::from(previous.is_some());
        previous
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Arc<Resource>)> {
        self.shards.iter().flat_map(|shard| shard.iter()).map(|(rel, resource)| (&**rel, resource))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.iter().map(|(rel, _)| rel)
    }

    pub fn values(&self) -> impl Iterator<Item = &Arc<Resource>> {
        self.iter().map(|(_, resource)| resource)
    }
}

impl FromIterator<(String, Arc<Resource>)> for Resources {
    fn from_iter<I: IntoIterator<Item = (String, Arc<Resource>)>>(iter: I) -> Resources {
        let mut resources = Resources::default();
        iter.into_iter().for_each(|(rel, resource)| {
            resources.insert(rel, resource);
        });
        resources
    }
}

/// Everything served at one moment.
#[derive(Debug, Clone, Default)]
pub struct ServedSet {
    /// By path under the feeds folder, unencoded (`categories/新闻.rss`).
    pub resources: Resources,
    /// The first publish is complete.
    pub ready: bool,
    pub policy: Arc<Policy>,
    /// Documents that existed and no longer do, with when they answer 410 (404 before and after).
    pub gone: Arc<HashMap<String, std::ops::Range<SystemTime>>>,
    /// Every category and tag feed served or gone, by its key with the slug folded, so that other
    /// generators' slugs of the same name find it ([`crate::redirect::fold`]).
    pub folded: Arc<HashMap<FeedKey, FeedKey>>,
}

impl ServedSet {
    /// The document at `rel` (a path under the feeds folder); the empty path is the index page.
    pub fn get(&self, rel: &str) -> Option<&Resource> {
        let rel = if rel.is_empty() { INDEX_PATH } else { rel };
        self.resources.get(rel).map(Arc::as_ref)
    }

    /// The absolute URL of crier's document that another generator's feed URL (a percent-decoded
    /// request path) stands for, when that document is served or gone at `now`.
    pub fn alias(&self, path: &str, now: SystemTime) -> Option<String> {
        let exists = |rel: &String| self.get(rel).is_some() || self.is_gone(rel, now);
        let (key, format) = redirect::alias(&self.policy.aliases, &self.policy.site_path, path)?;
        let folded = self.folded.get(&redirect::folded(&key)).map(|key| redirect::path_of(&(key.clone(), format)));
        let rel = [redirect::path_of(&(key, format))].into_iter().chain(folded).find(exists)?;
        Some(crate::post::absolute_link(self.policy.feeds_url.as_ref()?, &rel))
    }

    /// The index of [`ServedSet::folded`], from the feeds served and gone (the RSS of each).
    pub fn fold_feeds(&self) -> HashMap<FeedKey, FeedKey> {
        let stems = self
            .resources
            .keys()
            .chain(self.gone.keys().map(String::as_str))
            .filter_map(|rel| rel.strip_suffix(".rss"));
        let keys = stems.filter_map(FeedKey::from_stem).filter(|key| *key != FeedKey::Site);
        keys.map(|key| (redirect::folded(&key), key)).collect()
    }

    /// Whether the document at `rel` is gone (answered 410) at `now`.
    pub fn is_gone(&self, rel: &str, now: SystemTime) -> bool {
        self.gone.get(rel).is_some_and(|window| window.contains(&now))
    }
}

/// The served set shared between the publisher and the server: readers take an `Arc` and let go
/// of the lock at once; the publisher replaces the whole set.
#[derive(Debug)]
pub struct Shared {
    current: RwLock<Arc<ServedSet>>,
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

    pub fn load(&self) -> Arc<ServedSet> {
        self.current.read().expect("no code panics while holding this lock").clone()
    }

    /// Makes `set` the one served. The old set is let go of after the lock is released, so no
    /// request waits while thousands of documents are freed.
    pub fn store(&self, set: ServedSet) {
        let ready = set.ready;
        let old = std::mem::replace(
            &mut *self.current.write().expect("no code panics while holding this lock"),
            Arc::new(set),
        );
        drop(old);
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
    fn a_copy_of_the_resources_changes_apart_from_the_original() {
        let t = SystemTime::UNIX_EPOCH;
        let doc = |text: &str| Arc::new(Resource::identity_only("a.rss", Bytes::from(text.to_owned()), t));
        let mut first: Resources = (0..1000).map(|n| (format!("tags/{n}.rss"), doc("one"))).collect();
        assert_eq!(first.len(), 1000);
        let mut second = first.clone();
        assert_eq!(
            second.insert("tags/5.rss".into(), doc("two")).map(|r| r.identity.hash),
            Some(doc("one").identity.hash)
        );
        assert!(second.insert("feed.rss".into(), doc("new")).is_none());
        assert!(second.remove("tags/7.rss").is_some() && second.remove("tags/7.rss").is_none());
        assert!(first.remove("nothing.rss").is_none());
        assert_eq!((first.len(), second.len()), (1000, 1000));
        assert_eq!(first.get("tags/5.rss").unwrap().identity.hash, doc("one").identity.hash);
        assert_eq!(second.get("tags/5.rss").unwrap().identity.hash, doc("two").identity.hash);
        assert!(first.contains_key("tags/7.rss") && !second.contains_key("tags/7.rss"));
        assert!(!first.contains_key("feed.rss") && second.contains_key("feed.rss"));
        assert_eq!(second.keys().count(), 1000);
        let mut keys: Vec<&str> = first.keys().collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), 1000);
    }

    #[test]
    fn many_documents_inserted_at_once_are_as_if_inserted_one_by_one() {
        let t = SystemTime::UNIX_EPOCH;
        let doc = |text: &str| Arc::new(Resource::identity_only("a.rss", Bytes::from(text.to_owned()), t));
        let mut one_by_one: Resources = (0..500).map(|n| (format!("tags/{n}.rss"), doc("old"))).collect();
        let mut at_once = one_by_one.clone();
        // Half replace documents already served, half are new.
        let found: Vec<_> = (250..750).map(|n| (format!("tags/{n}.rss"), doc("new"))).collect();
        for (rel, resource) in found.clone() {
            one_by_one.insert(rel, resource);
        }
        at_once.extend_par(found);
        assert_eq!((one_by_one.len(), at_once.len()), (750, 750));
        for n in 0..750 {
            let rel = format!("tags/{n}.rss");
            let hash = |served: &Resources| served.get(&rel).unwrap().identity.hash;
            assert_eq!(hash(&at_once), hash(&one_by_one), "{rel}");
        }
        assert_eq!(at_once.get("tags/600.rss").unwrap().identity.hash, doc("new").identity.hash);
        assert_eq!(at_once.get("tags/100.rss").unwrap().identity.hash, doc("old").identity.hash);
        assert_eq!(at_once.keys().count(), 750);
    }

    #[test]
    fn each_document_is_served_as_its_media_type_in_utf_8() {
        for rel in ["feed.rss", "categories/新闻.atom", "tags/t.json", "feed.archive-1.rss", "index.opml", "index.html"]
        {
            let media_type = documents::media_type(rel).unwrap();
            assert_eq!(content_type(rel), format!("{media_type}; charset=utf-8").as_str(), "{rel}");
        }
        assert_eq!(content_type("robots.txt"), "application/octet-stream");
    }

    #[test]
    fn validators_follow_the_bytes_only() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_900);
        let encoded = Encoded::compress(b"<rss/>".to_vec(), crate::config::Compression { gzip: 3, brotli: 3 }, t);
        let a = Resource::new("feed.rss", &encoded, SystemTime::now());
        let b = Resource::new("feed.rss", &encoded, SystemTime::now());
        assert_eq!(a.content_type, "application/rss+xml; charset=utf-8");
        assert_eq!(a.identity.etag(), b.identity.etag());
        assert_ne!(a.identity.etag(), a.gzip.as_ref().unwrap().etag());
        assert_ne!(a.gzip.as_ref().unwrap().etag(), a.brotli.as_ref().unwrap().etag());
        assert_eq!(a.last_modified, "Tue, 14 Nov 2023 22:13:20 GMT");
        let future = Resource::new(
            "x",
            &Encoded { modified: SystemTime::now() + std::time::Duration::from_secs(3600), ..encoded },
            t,
        );
        assert_eq!(future.modified, whole_seconds(t), "never later than now");
    }

    #[test]
    fn a_document_served_from_files_is_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let encoded =
            Encoded::compress(b"<rss/>".to_vec(), crate::config::Compression { gzip: 3, brotli: 3 }, SystemTime::now());
        let feeds = crate::feeds_dir::FeedsDir::at(dir.path(), crate::config::Compression { gzip: 3, brotli: 3 });
        feeds.write("feed.archive-1.rss", &encoded).unwrap();
        let resource = Resource::new("feed.archive-1.rss", &encoded, SystemTime::now())
            .from_files(&feeds.file_of("feed.archive-1.rss", None));
        assert!(matches!(resource.brotli.as_ref().unwrap().body, Stored::File { .. }));
        assert_eq!(resource.identity.bytes().unwrap(), encoded.identity);
        assert_eq!(resource.gzip.as_ref().unwrap().bytes().unwrap(), encoded.gzip);
        // Bytes that are not the ones the ETag names are never sent with it: not when the file
        // was written over in place with as many bytes right after a read (its stamp is not
        // trusted yet), nor when, trusted, it is replaced by another with the same length and
        // modification time.
        assert_eq!(resource.identity.bytes().unwrap(), encoded.identity, "read again, unchanged");
        let path = dir.path().join("feed.archive-1.rss");
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::fs::write(&path, b"<RSS/>").unwrap();
        assert_eq!(resource.identity.bytes().unwrap_err().kind(), std::io::ErrorKind::InvalidData);
        std::fs::write(&path, &encoded.identity).unwrap();
        let later = SystemTime::now() + std::time::Duration::from_secs(60);
        assert_eq!(resource.identity.bytes_at(later).unwrap(), encoded.identity, "its stamp now trusted");
        let other = dir.path().join("other");
        std::fs::write(&other, b"<RSS/>").unwrap();
        std::fs::File::options().write(true).open(&other).unwrap().set_modified(modified).unwrap();
        std::fs::rename(&other, &path).unwrap();
        assert_eq!(resource.identity.bytes_at(later).unwrap_err().kind(), std::io::ErrorKind::InvalidData);
        std::fs::write(&path, b"<rss>new</rss>").unwrap();
        assert_eq!(resource.identity.bytes().unwrap_err().kind(), std::io::ErrorKind::InvalidData);
    }

    #[test]
    fn a_feed_keeps_its_encodings_in_memory_and_its_identity_in_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let levels = crate::config::Compression { gzip: 3, brotli: 3 };
        let feeds = crate::feeds_dir::FeedsDir::at(dir.path(), levels);
        let encoded = Encoded::compress("<rss>港口</rss>".as_bytes().to_vec(), levels, SystemTime::now());
        for rel in ["feed.rss", "feed.archive-1.rss"] {
            feeds.write(rel, &encoded).unwrap();
        }
        let filed = |rel: &str| Resource::new(rel, &encoded, SystemTime::now()).filed(rel, &feeds.file_of(rel, None));
        let (feed, page) = (filed("feed.rss"), filed("feed.archive-1.rss"));
        let in_memory = |v: &Option<Variant>| v.as_ref().is_some_and(|v| !v.is_file());
        assert!(feed.identity.is_file() && in_memory(&feed.gzip) && in_memory(&feed.brotli));
        assert!(page.identity.is_file() && !in_memory(&page.gzip) && !in_memory(&page.brotli), "all in files");
        assert_eq!(feed.identity_bytes().unwrap(), encoded.identity);
        // Its file rewritten (a newer set's) or gone: the bytes the ETag names are made again
        // from the gzip encoding.
        std::fs::write(dir.path().join("feed.rss"), b"<rss>new</rss>").unwrap();
        assert_eq!(feed.identity_bytes().unwrap(), encoded.identity);
        std::fs::remove_file(dir.path().join("feed.rss")).unwrap();
        assert_eq!(feed.identity_bytes().unwrap(), encoded.identity);
        // Neither file holds them: an error, never other bytes under the ETag.
        std::fs::write(dir.path().join("feed.archive-1.rss"), b"<rss>new</rss>").unwrap();
        assert_eq!(page.identity_bytes().unwrap(), encoded.identity, "its gzip file is still right");
        std::fs::write(dir.path().join("feed.archive-1.rss.gz"), crate::feeds_dir::gzip(b"<rss>new</rss>", 3)).unwrap();
        assert_eq!(page.identity_bytes().unwrap_err().kind(), std::io::ErrorKind::InvalidData);
        // One served before its encodings are made keeps its identity in memory.
        let bare = Resource::identity_only("feed.rss", encoded.identity.clone(), SystemTime::now());
        assert!(!bare.filed("feed.rss", &feeds.file_of("feed.rss", None)).identity.is_file());
        // Loading a feed's encodings leaves its identity in its file.
        let kept = crate::feeds_dir::OnDisk::of(&encoded);
        let on_disk = Resource::on_disk("feed.rss", &kept, &feeds.file_of("feed.rss", None), SystemTime::now());
        std::fs::write(dir.path().join("feed.rss"), &encoded.identity).unwrap();
        let loaded = on_disk.loaded().unwrap();
        assert!(loaded.identity.is_file() && in_memory(&loaded.gzip) && in_memory(&loaded.brotli));
        assert_eq!(loaded.gzip.unwrap().bytes().unwrap(), encoded.gzip);
    }
}
