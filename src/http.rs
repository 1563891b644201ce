//! A request to the served set becomes a response: routing, conditional GET (RFC 9110 §13),
//! content-coding negotiation (§12.5.3). No sockets and no files: only prepared bytes and
//! validators are picked and compared here.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::Full;

use crate::documents::Kind;
use crate::served::{Resource, ServedSet, Variant};

pub type Body = Full<Bytes>;

/// A content coding the server can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Brotli,
    Gzip,
    Identity,
}

impl Coding {
    /// The content-coding's name in `Accept-Encoding` and `Content-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Brotli => "br",
            Coding::Gzip => "gzip",
            Coding::Identity => "identity",
        }
    }
}

/// A response with what metrics and subscriber counts need to know of it.
#[derive(Debug)]
pub struct Answer {
    pub response: Response<Body>,
    pub kind: Kind,
    /// The coding of the body (or, for a 304, of the variant the validators matched).
    pub coding: Coding,
    /// The feed, for a feed document (its stem), and its format.
    pub feed: Option<(Arc<str>, u8)>,
}

impl Answer {
    fn other(response: Response<Body>) -> Answer {
        Answer { response, kind: Kind::Other, coding: Coding::Identity, feed: None }
    }
}

/// Answers one request.
pub fn respond(served: &ServedSet, method: &Method, path: &str, headers: &HeaderMap) -> Response<Body> {
    answer(served, method, path, headers).response
}

/// Answers one request, saying what it was for.
pub fn answer(served: &ServedSet, method: &Method, path: &str, headers: &HeaderMap) -> Answer {
    if path == "/healthz" {
        let (status, text) =
            if served.ready { (StatusCode::OK, "ok\n") } else { (StatusCode::SERVICE_UNAVAILABLE, "starting\n") };
        return Answer::other(plain(status, text.into(), method, HeaderValue::from_static("no-store")));
    }
    let resource = match locate(served, method, path) {
        Ok(resource) => resource,
        Err(response) => return Answer::other(*response),
    };
    let (kind, feed) = (resource.kind, resource.feed.clone());
    if method != Method::GET && method != Method::HEAD {
        let mut response = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".into(),
            method,
            HeaderValue::from_static("no-store"),
        );
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Answer { response, kind, coding: Coding::Identity, feed: None };
    }

    let (coding, variant) = choose(resource, headers);
    let etag = variant.etag();
    let not_modified = not_modified(headers, &etag, resource.modified);
    let status = if not_modified { StatusCode::NOT_MODIFIED } else { StatusCode::OK };
    // The identity bytes can be made again from the gzip encoding when their file fails.
    let read = || if coding == Coding::Identity { resource.identity_bytes() } else { variant.bytes() };
    let body = match not_modified {
        true => Bytes::new(),
        false => match read() {
            Ok(bytes) => bytes,
            Err(error) => return Answer { response: unreadable(method, &error), kind, coding, feed: None },
        },
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::ETAG, etag);
    h.insert(header::LAST_MODIFIED, resource.last_modified.clone());
    let policy = &served.policy;
    h.insert(
        header::CACHE_CONTROL,
        if resource.sealed { &policy.archive_cache_control } else { &policy.cache_control }.clone(),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    for link in &resource.links {
        h.append(header::LINK, link.clone());
    }
    if !not_modified {
        h.insert(header::CONTENT_TYPE, resource.content_type.clone());
        if coding != Coding::Identity {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding.token()));
        }
    }
    Answer { response, kind, coding, feed }
}

/// The document a path names, or the answer when there is none to send: 503 before the first
/// publish, 301 for what moved, 410 for what is gone, else 404.
fn locate<'a>(served: &'a ServedSet, method: &Method, path: &str) -> Result<&'a Resource, Box<Response<Body>>> {
    if !served.ready {
        let mut response = plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: the first publish is not done yet\n".into(),
            method,
            HeaderValue::from_static("no-store"),
        );
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return Err(Box::new(response));
    }
    let Ok(decoded) = percent_encoding::percent_decode_str(path).decode_utf8() else {
        return Err(Box::new(not_found(method)));
    };
    if let Some(location) = served.policy.redirect(&decoded) {
        return Err(Box::new(moved(method, location)));
    }
    let candidates = candidates(served, &decoded);
    if let Some(resource) = candidates.iter().find_map(|rel| served.get(rel)) {
        return Ok(resource);
    }
    let now = SystemTime::now();
    if candidates.iter().any(|rel| served.is_gone(rel, now)) {
        // Pollers learn the feed is gone and stop asking; briefly cacheable, as it may come back.
        let text = "gone: this feed no longer exists\n".into();
        return Err(Box::new(plain(StatusCode::GONE, text, method, HeaderValue::from_static("public, max-age=600"))));
    }
    // Other generators' URLs only where crier has nothing of its own.
    if let Some(location) = served.alias(&decoded, now) {
        return Err(Box::new(moved(method, &location)));
    }
    Err(Box::new(not_found(method)))
}

/// The documents a percent-decoded path may name: its path under the server's root and under
/// the public feeds folder's path (`/` is the index page). Nothing else exists.
fn candidates<'a>(served: &ServedSet, decoded: &'a str) -> Vec<&'a str> {
    let prefix = served.policy.prefix.as_str();
    let under_prefix = decoded.strip_prefix(prefix).filter(|_| prefix != "/");
    [decoded.strip_prefix('/'), under_prefix].into_iter().flatten().collect()
}

/// A document kept in a file that cannot be read as served: 503, to be asked again shortly
/// (the publisher is rewriting it, or the disk failed, which the log says).
fn unreadable(method: &Method, error: &std::io::Error) -> Response<Body> {
    static SAMPLED: Sampled = Sampled::new();
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    // Seconds from the first such line, counted from 1.
    let second = START.get_or_init(std::time::Instant::now).elapsed().as_secs() + 1;
    if let Some(left_out) = SAMPLED.admit(second) {
        let more = match left_out {
            0 => String::new(),
            n => format!(" ({n} more such answers since the last of these lines)"),
        };
        tracing::warn!("cannot serve a document from the feeds folder: {error}{more}");
    }
    let text = "the document is being rewritten; retry in a moment\n".into();
    let mut response = plain(StatusCode::SERVICE_UNAVAILABLE, text, method, HeaderValue::from_static("no-store"));
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// A log line that can come with every request, at most once a second: a feeds folder removed
/// while crier was down fails every request alike until the documents are made again.
struct Sampled {
    /// The second of the last line logged (0: none yet).
    last: AtomicU64,
    /// The lines left out since.
    left_out: AtomicU64,
}

impl Sampled {
    const fn new() -> Sampled {
        Sampled { last: AtomicU64::new(0), left_out: AtomicU64::new(0) }
    }

    /// Whether to log in second `now` (counted from 1), and how many lines were left out before.
    fn admit(&self, now: u64) -> Option<u64> {
        let last = self.last.load(Ordering::Relaxed);
        if now > last && self.last.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            return Some(self.left_out.swap(0, Ordering::Relaxed));
        }
        self.left_out.fetch_add(1, Ordering::Relaxed);
        None
    }
}

fn not_found(method: &Method) -> Response<Body> {
    // Briefly cacheable: a feed may appear here soon (a new category, a scheduled post).
    plain(StatusCode::NOT_FOUND, "not found\n".into(), method, HeaderValue::from_static("public, max-age=60"))
}

/// 301 to `location`.
fn moved(method: &Method, location: &str) -> Response<Body> {
    let Ok(value) = HeaderValue::try_from(location) else { return not_found(method) };
    let text = format!("moved permanently to {location}\n");
    let mut response =
        plain(StatusCode::MOVED_PERMANENTLY, text, method, HeaderValue::from_static("public, max-age=86400"));
    response.headers_mut().insert(header::LOCATION, value);
    response
}

/// A short `text/plain` answer (no body to HEAD).
pub fn plain(status: StatusCode, text: String, method: &Method, cache_control: HeaderValue) -> Response<Body> {
    let body = if method == Method::HEAD { Bytes::new() } else { Bytes::from(text) };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response.headers_mut().insert(header::CACHE_CONTROL, cache_control);
    response
}

/// Picks the encoding to send (§12.5.3): the highest q-value among those available; on a tie
/// brotli, then gzip, then identity. When the client accepts none of them, identity is sent
/// anyway rather than a 406, as most servers do.
pub fn choose<'a>(resource: &'a Resource, headers: &HeaderMap) -> (Coding, &'a Variant) {
    let q = accepted(headers);
    let mut best = (Coding::Identity, &resource.identity, q(Coding::Identity));
    for (coding, variant) in [(Coding::Gzip, &resource.gzip), (Coding::Brotli, &resource.brotli)] {
        if let Some(variant) = variant {
            let weight = q(coding);
            if weight > 0.0 && weight >= best.2 {
                best = (coding, variant, weight);
            }
        }
    }
    (best.0, best.1)
}

/// The q-value the request gives each coding.
fn accepted(headers: &HeaderMap) -> impl Fn(Coding) -> f32 {
    let mut listed: Vec<(String, f32)> = Vec::new();
    let mut present = false;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        present = true;
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            if name.is_empty() {
                continue;
            }
            let mut weight = 1.0;
            for param in parts {
                if let Some((key, value)) = param.split_once('=') {
                    if key.trim().eq_ignore_ascii_case("q") {
                        weight = value.trim().parse::<f32>().ok().filter(|q| (0.0..=1.0).contains(q)).unwrap_or(0.0);
                    }
                }
            }
            let name = if name == "x-gzip" { "gzip".to_owned() } else { name };
            listed.push((name, weight));
        }
    }
    move |coding| {
        let name = coding.token();
        let lookup = |n: &str| listed.iter().filter(|(l, _)| l == n).map(|(_, q)| *q).reduce(f32::max);
        if !present {
            // No Accept-Encoding: any coding is acceptable, but identity is what old clients expect.
            return if coding == Coding::Identity { 1.0 } else { 0.0 };
        }
        match (lookup(name), lookup("*")) {
            (Some(q), _) => q,
            (None, Some(q)) => q,
            // Identity is acceptable unless excluded; other codings only when named.
            (None, None) => {
                if coding == Coding::Identity {
                    0.001
                } else {
                    0.0
                }
            }
        }
    }
}

/// §13.1.2 then §13.1.3: `If-None-Match`, when present, decides alone (weak comparison, `*`,
/// lists); otherwise `If-Modified-Since` — a valid HTTP date in any of the three forms — answers
/// 304 when the resource has not changed since (to the second).
pub fn not_modified(headers: &HeaderMap, etag: &HeaderValue, modified: SystemTime) -> bool {
    let mut if_none_match = headers.get_all(header::IF_NONE_MATCH).iter().peekable();
    if if_none_match.peek().is_some() {
        let ours = opaque(etag.to_str().unwrap_or_default());
        return if_none_match
            .filter_map(|v| v.to_str().ok())
            .any(|value| value.trim() == "*" || split_etags(value).any(|tag| ours.is_some() && opaque(tag) == ours));
    }
    let Some(since) = headers.get(header::IF_MODIFIED_SINCE).and_then(|v| v.to_str().ok()) else { return false };
    match httpdate::parse_http_date(since.trim()) {
        Ok(since) => modified <= since,
        Err(_) => false,
    }
}

/// The entity tags of a list, as written (commas inside quotes do not split).
fn split_etags(list: &str) -> impl Iterator<Item = &str> {
    let mut rest = list;
    std::iter::from_fn(move || {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_ascii_whitespace());
        if rest.is_empty() {
            return None;
        }
        let start = if rest.starts_with("W/") { 2 } else { 0 };
        let end = if rest[start..].starts_with('"') {
            rest[start + 1..].find('"').map_or(rest.len(), |i| start + i + 2)
        } else {
            rest.find(',').unwrap_or(rest.len())
        };
        let tag = &rest[..end];
        rest = &rest[end..];
        Some(tag)
    })
}

/// The opaque part of an entity tag (weak comparison ignores `W/`).
fn opaque(tag: &str) -> Option<&str> {
    let tag = tag.trim();
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    (tag.len() >= 2 && tag.starts_with('"') && tag.ends_with('"')).then_some(tag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Compression;
    use crate::feeds_dir::Encoded;
    use crate::served::Policy;
    use std::sync::Arc;
    use std::time::Duration;

    fn served() -> ServedSet {
        let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let encoded = Encoded::compress(b"<rss>feed</rss>".repeat(50), Compression { gzip: 3, brotli: 3 }, modified);
        let resource = Arc::new(Resource::new("feed.rss", &encoded, SystemTime::now()));
        let resources =
            [("feed.rss".to_owned(), resource.clone()), ("tags/青岛.rss".to_owned(), resource)].into_iter().collect();
        // The policy of a site whose feeds are public under https://e.org/feeds/.
        let policy = Policy {
            cache_control: HeaderValue::from_static("public, max-age=300"),
            prefix: "/feeds/".into(),
            ..Default::default()
        };
        ServedSet { resources, ready: true, policy: Arc::new(policy), ..Default::default() }
    }

    fn get(path: &str, headers: &[(&str, &str)]) -> Response<Body> {
        request(Method::GET, path, headers)
    }

    fn request(method: Method, path: &str, headers: &[(&str, &str)]) -> Response<Body> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
        }
        respond(&served(), &method, path, &map)
    }

    fn header<'a>(response: &'a Response<Body>, name: &str) -> &'a str {
        response.headers().get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
    }

    #[test]
    fn routes() {
        assert_eq!(get("/feed.rss", &[]).status(), 200);
        assert_eq!(get("/feeds/feed.rss", &[]).status(), 200);
        assert_eq!(get("/tags/%E9%9D%92%E5%B2%9B.rss", &[]).status(), 200);
        assert_eq!(get("/feeds/tags/%E9%9D%92%E5%B2%9B.rss", &[]).status(), 200);
        for missing in ["/nope.rss", "/../feed.rss", "/%2e%2e/Cargo.toml", "/feed.rss/", "/%FF", "/tags/"] {
            assert_eq!(get(missing, &[]).status(), 404, "{missing}");
        }
        let post = request(Method::POST, "/feed.rss", &[]);
        assert_eq!(post.status(), 405);
        assert_eq!(header(&post, "allow"), "GET, HEAD");
        assert_eq!(get("/healthz", &[]).status(), 200);
    }

    #[test]
    fn headers_of_a_feed() {
        let r = get("/feed.rss", &[("accept-encoding", "gzip")]);
        assert_eq!(header(&r, "content-type"), "application/rss+xml; charset=utf-8");
        assert_eq!(header(&r, "content-encoding"), "gzip");
        assert_eq!(header(&r, "vary"), "Accept-Encoding");
        assert_eq!(header(&r, "cache-control"), "public, max-age=300");
        assert_eq!(header(&r, "last-modified"), "Tue, 14 Nov 2023 22:13:20 GMT");
        assert!(header(&r, "etag").starts_with('"'));
    }

    #[test]
    fn encoding_negotiation() {
        let coding = |value: Option<&str>| {
            let r = match value {
                Some(v) => get("/feed.rss", &[("accept-encoding", v)]),
                None => get("/feed.rss", &[]),
            };
            header(&r, "content-encoding").to_owned()
        };
        assert_eq!(coding(None), "");
        assert_eq!(coding(Some("gzip, deflate, br")), "br");
        assert_eq!(coding(Some("gzip, br;q=0.5")), "gzip");
        assert_eq!(coding(Some("x-gzip")), "gzip");
        assert_eq!(coding(Some("*")), "br");
        assert_eq!(coding(Some("*;q=0.5, br;q=0")), "gzip");
        assert_eq!(coding(Some("identity")), "");
        assert_eq!(coding(Some("identity;q=0, gzip;q=0.1")), "gzip");
        assert_eq!(coding(Some("deflate")), "");
        assert_eq!(coding(Some("br;q=0, gzip;q=0, identity;q=0")), "", "nothing acceptable: identity, not 406");
        assert_eq!(coding(Some("GZIP;Q=1.0")), "gzip");
        assert_eq!(coding(Some("gzip;q=2")), "", "an invalid q-value counts as 0");
        let r = get("/feed.rss", &[("accept", "text/plain"), ("accept-encoding", "gzip")]);
        assert_eq!(r.status(), 200, "Accept never causes a 406");
    }

    #[test]
    fn conditional_get() {
        let etag = |enc: &str| header(&get("/feed.rss", &[("accept-encoding", enc)]), "etag").to_owned();
        let (identity, gzip) = (etag("identity"), etag("gzip"));
        assert_ne!(identity, gzip);
        let status = |headers: &[(&str, &str)]| get("/feed.rss", headers).status().as_u16();
        assert_eq!(status(&[("if-none-match", &identity)]), 304);
        assert_eq!(status(&[("if-none-match", &format!("W/{identity}"))]), 304, "weak comparison");
        assert_eq!(status(&[("if-none-match", &format!("\"x\", {identity}"))]), 304);
        assert_eq!(status(&[("if-none-match", "*")]), 304);
        assert_eq!(status(&[("if-none-match", "\"other\"")]), 200);
        assert_eq!(status(&[("if-none-match", &gzip)]), 200, "validators are per variant");
        assert_eq!(status(&[("if-none-match", &gzip), ("accept-encoding", "gzip")]), 304);
        // If-None-Match takes precedence over If-Modified-Since.
        assert_eq!(
            status(&[("if-none-match", "\"other\""), ("if-modified-since", "Tue, 14 Nov 2023 22:13:20 GMT")]),
            200
        );
        for date in [
            "Tue, 14 Nov 2023 22:13:20 GMT",
            "Tuesday, 14-Nov-23 22:13:20 GMT",
            "Tue Nov 14 22:13:20 2023",
            "Wed, 15 Nov 2023 00:00:00 GMT",
        ] {
            assert_eq!(status(&[("if-modified-since", date)]), 304, "{date}");
        }
        assert_eq!(status(&[("if-modified-since", "Tue, 14 Nov 2023 22:13:19 GMT")]), 200);
        assert_eq!(status(&[("if-modified-since", "yesterday")]), 200, "an invalid date is ignored");
        let r = get("/feed.rss", &[("if-none-match", &identity)]);
        assert_eq!(header(&r, "etag"), identity);
        assert_eq!(header(&r, "vary"), "Accept-Encoding");
        assert_eq!(header(&r, "cache-control"), "public, max-age=300");
        assert!(!header(&r, "last-modified").is_empty());
        assert!(header(&r, "content-encoding").is_empty());
    }

    #[test]
    fn not_ready_until_published() {
        let mut map = HeaderMap::new();
        map.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        let r = respond(&ServedSet::default(), &Method::GET, "/healthz", &map);
        assert_eq!(r.status(), 503);
        let r = respond(&ServedSet::default(), &Method::GET, "/feed.rss", &map);
        assert_eq!(r.status(), 503);
        assert_eq!(header(&r, "retry-after"), "5");
    }

    #[test]
    fn aliases_never_hide_crier_own_documents() {
        let mut set = served();
        let index = set.resources.get("feed.rss").unwrap().clone();
        set.resources.insert("index.html".to_owned(), index);
        let policy = Policy {
            prefix: "/feed/".into(),
            feeds_url: Some(url::Url::parse("https://e.org/feed/").unwrap()),
            aliases: vec![crate::config::Alias::WordPress],
            ..(*set.policy).clone()
        };
        set.policy = Arc::new(policy);
        let r = respond(&set, &Method::GET, "/feed/", &HeaderMap::new());
        assert_eq!(r.status(), 200, "the index page under feeds_url, not WordPress's /feed/");
    }

    #[test]
    fn moved_and_gone() {
        let mut set = served();
        let policy = Policy {
            feeds_url: Some(url::Url::parse("https://e.org/feeds/").unwrap()),
            redirects: [("/old.xml".to_owned(), "/feed.rss".to_owned())].into(),
            aliases: vec![crate::config::Alias::Hugo, crate::config::Alias::WordPress],
            ..(*set.policy).clone()
        };
        set.policy = Arc::new(policy);
        let now = SystemTime::now();
        let hour = Duration::from_secs(3600);
        set.gone = Arc::new(
            [
                ("categories/old.rss".to_owned(), now - hour..now + hour),
                ("tags/past.rss".to_owned(), SystemTime::UNIX_EPOCH..now - hour),
                ("tags/just-went.rss".to_owned(), now + hour..now + 2 * hour),
            ]
            .into(),
        );
        let get = |path: &str| respond(&set, &Method::GET, path, &HeaderMap::new());
        let r = get("/old.xml");
        assert_eq!((r.status().as_u16(), header(&r, "location")), (301, "/feed.rss"));
        let r = get("/tags/%E9%9D%92%E5%B2%9B/index.xml");
        assert_eq!(
            (r.status().as_u16(), header(&r, "location")),
            (301, "https://e.org/feeds/tags/%E9%9D%92%E5%B2%9B.rss")
        );
        assert_eq!(get("/index.xml").status(), 301);
        assert_eq!(get("/category/old/feed/").status(), 301, "a gone feed's alias leads to its 410");
        assert_eq!(get("/category/never/feed/").status(), 404, "no alias to a feed that never was");
        assert_eq!(get("/categories/old.rss").status(), 410);
        assert_eq!(get("/feeds/categories/old.rss").status(), 410);
        assert_eq!(get("/tags/past.rss").status(), 404, "gone long enough ago");
        assert_eq!(get("/tags/just-went.rss").status(), 404, "not yet: it may come back in a moment");
        assert_eq!(get("/feed.xml").status(), 404, "jekyll-feed's URL is not asked for");
    }

    #[test]
    fn a_line_that_comes_with_every_request_is_logged_once_a_second() {
        let sampled = Sampled::new();
        assert_eq!(sampled.admit(100), Some(0));
        assert_eq!((sampled.admit(100), sampled.admit(100), sampled.admit(100)), (None, None, None));
        assert_eq!(sampled.admit(101), Some(3), "with how many were left out");
        assert_eq!(sampled.admit(101), None);
        assert_eq!(sampled.admit(160), Some(1));
    }

    #[test]
    fn entity_tag_lists() {
        let tags: Vec<&str> = split_etags("\"a\", W/\"b,c\" ,\"d\"").collect();
        assert_eq!(tags, ["\"a\"", "W/\"b,c\"", "\"d\""]);
        assert_eq!(opaque("W/\"x\""), Some("\"x\""));
        assert_eq!(opaque("x"), None);
    }
}
