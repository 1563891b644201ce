//! Configuration: the TOML file and command-line flags, validated into one immutable [`Config`].
//!
//! Two stages, as in ripgrep: [`RawConfig`] is what serde reads (unknown keys rejected), and
//! [`Config::from_raw`] turns it into real types or an error that names the key, the bad value
//! and what would be valid.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use serde::Deserialize;
use url::Url;

mod jekyll;

use crate::permalink::Permalink;
use crate::post::Author;
use crate::post::PostContext;
use crate::render::SummaryRule;
use crate::template::SiteVars;

/// An error in the configuration: exit code 2 territory.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config key `{key}` = {value:?} is invalid: {expected}")]
    Invalid { key: &'static str, value: String, expected: String },
    #[error("{path}: key `{key}` = {value} is invalid: {expected}")]
    Site { path: PathBuf, key: String, value: String, expected: String },
}

fn invalid(key: &'static str, value: impl ToString, expected: impl ToString) -> ConfigError {
    ConfigError::Invalid { key, value: value.to_string(), expected: expected.to_string() }
}

/// What the feeds carry in their content element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentMode {
    /// The whole post, as sanitized HTML.
    Full,
    /// Only the summary.
    Summary,
}

/// The configuration file as written, every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub jekyll: Option<PathBuf>,
    /// A Jekyll site's `_drafts`, when its drafts are shown; no key of crier.toml.
    #[serde(skip)]
    pub drafts: Option<PathBuf>,
    pub posts: Option<PathBuf>,
    pub feeds: Option<PathBuf>,
    pub base_url: Option<String>,
    pub feeds_url: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub language: Option<String>,
    pub author: Option<Author>,
    pub authors: Option<BTreeMap<String, Author>>,
    pub icon: Option<String>,
    pub logo: Option<String>,
    pub timezone: Option<String>,
    pub permalink: Option<String>,
    pub items: Option<usize>,
    pub content: Option<String>,
    pub excerpt_length: Option<usize>,
    pub excerpt_separator: Option<String>,
    pub max_post_bytes: Option<u64>,
    pub max_feed_bytes: Option<usize>,
    pub archive_page_size: Option<usize>,
    pub archive_content: Option<String>,
    pub archive_max_age: Option<u64>,
    pub max_terms: Option<usize>,
    pub post_time_budget_ms: Option<u64>,
    pub ttl: Option<u32>,
    pub gzip_level: Option<u32>,
    pub brotli_quality: Option<u32>,
    pub listen: Option<String>,
    pub metrics_listen: Option<String>,
    pub access_log: Option<bool>,
    pub access_log_addresses: Option<bool>,
    pub count_subscribers: Option<bool>,
    pub cache_max_age: Option<u64>,
    pub poll: Option<bool>,
    pub poll_interval_ms: Option<u64>,
    pub settle_ms: Option<u64>,
    pub max_connections: Option<usize>,
    pub max_requests_per_connection: Option<usize>,
    pub header_timeout_ms: Option<u64>,
    pub write_timeout_ms: Option<u64>,
    pub max_header_bytes: Option<usize>,
    pub shutdown_timeout_ms: Option<u64>,
    pub state_dir: Option<PathBuf>,
    pub gone_days: Option<u64>,
    pub gone_after_seconds: Option<u64>,
    pub aliases: Option<Vec<String>>,
    pub websub: Option<RawWebSub>,
    pub redirects: Option<std::collections::BTreeMap<String, String>>,
}

/// The `[websub]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebSub {
    pub hub: Option<bool>,
    pub hubs: Option<Vec<String>>,
    pub allow_callbacks: Option<Vec<String>>,
    pub lease_seconds: Option<u64>,
    pub min_lease_seconds: Option<u64>,
    pub max_lease_seconds: Option<u64>,
    pub max_subscriptions: Option<usize>,
}

/// Command-line overrides; each one, when given, wins over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub jekyll: Option<PathBuf>,
    pub posts: Option<PathBuf>,
    pub feeds: Option<PathBuf>,
    pub base_url: Option<String>,
    pub listen: Option<String>,
}

/// The validated configuration every other module reads.
#[derive(Debug, Clone)]
pub struct Config {
    /// The Jekyll site crier publishes, when it does: Jekyll's rules for dates, links and ids.
    pub jekyll: Option<PathBuf>,
    pub posts: PathBuf,
    /// A second folder of posts: a Jekyll site's `_drafts` with `show_drafts` (dated as Jekyll
    /// dates drafts, by their file's modification time when they say nothing).
    pub drafts: Option<PathBuf>,
    pub feeds: PathBuf,
    /// Ends with `/`; post links and the site feed's alternate link hang off it.
    pub base_url: Url,
    /// Ends with `/`; the public address of the feeds folder (self links, OPML).
    pub feeds_url: Url,
    pub title: String,
    pub description: String,
    pub language: String,
    pub author: Author,
    /// Authors a post may name by key (`author: alice`).
    pub authors: BTreeMap<String, Author>,
    /// The site's icon (square, small) and logo (wide), absolute.
    pub icon: Option<Url>,
    pub logo: Option<Url>,
    pub timezone: Tz,
    pub permalink: Permalink,
    /// 0 means every post.
    pub items: usize,
    pub content: ContentMode,
    pub excerpt_length: usize,
    pub excerpt_separator: String,
    pub max_post_bytes: u64,
    /// The largest feed document, uncompressed: a feed over it drops its oldest items.
    pub max_feed_bytes: usize,
    /// How many posts an archive page (RFC 5005) holds when it is sealed.
    pub archive_page_size: usize,
    /// What archive pages' items carry; summaries by default (full posts on every page of every
    /// category and tag multiply a site's output about tenfold).
    pub archive_content: ContentMode,
    /// `Cache-Control: max-age` of archive pages, whose bytes rarely change.
    pub archive_max_age: Duration,
    /// The most categories, and the most tags, one post may list.
    pub max_terms: usize,
    /// How long reading and rendering one post may take before it is skipped with an error.
    pub post_time_budget: Duration,
    pub ttl: Duration,
    pub compression: Compression,
    /// Where `crier serve` listens (unless systemd hands it a socket).
    pub listen: SocketAddr,
    /// The admins' listener (`/metrics`, `/stats`); none by default.
    pub metrics_listen: Option<SocketAddr>,
    /// One log line per request, under the target `crier::access`.
    pub access_log: bool,
    /// The access log names the client's address.
    pub access_log_addresses: bool,
    /// Count subscribers and pollers (`audience`), kept in `state_dir`.
    pub count_subscribers: bool,
    /// Watch the posts folder by polling instead of inotify (network file systems).
    pub poll: bool,
    pub poll_interval: Duration,
    /// How long a file that its writer keeps open must be quiet before it is read.
    pub settle: Duration,
    pub max_connections: usize,
    pub max_requests_per_connection: usize,
    pub header_timeout: Duration,
    /// A connection whose writes make no progress for this long is closed.
    pub write_timeout: Duration,
    pub max_header_bytes: usize,
    pub shutdown_timeout: Duration,
    /// crier's own state across restarts (WebSub subscriptions); never inside `feeds`.
    pub state_dir: PathBuf,
    /// How long a feed that no longer exists answers 410 Gone (then 404).
    pub gone: Duration,
    /// How long a feed must stay away before it answers 410 (404 until then), so that a posts
    /// folder moved for a moment does not tell readers every feed is gone for good.
    pub gone_after: Duration,
    /// Paths answered with a 301 to a path or an absolute URL, by request path.
    pub redirects: std::collections::BTreeMap<String, String>,
    /// The generators whose feed URLs are answered with a 301 to crier's equivalents.
    pub aliases: Vec<Alias>,
    pub websub: WebSub,
}

/// A generator whose feed URLs crier answers with redirects, so its subscribers follow a move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alias {
    JekyllFeed,
    Hugo,
    WordPress,
}

impl Alias {
    pub const ALL: [(&'static str, Alias); 3] =
        [("jekyll-feed", Alias::JekyllFeed), ("hugo", Alias::Hugo), ("wordpress", Alias::WordPress)];
}

/// WebSub: the built-in hub and the external hubs feeds advertise and crier pings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSub {
    /// Run the built-in hub at `<feeds_url>hub`.
    pub hub: bool,
    /// External hubs, advertised after the built-in one and pinged on every change.
    pub hubs: Vec<Url>,
    /// Networks a callback may resolve to besides public addresses.
    pub allow_callbacks: Vec<ipnet::IpNet>,
    /// The lease given when a subscriber asks for none, and the bounds of any lease.
    pub lease: Duration,
    pub min_lease: Duration,
    pub max_lease: Duration,
    pub max_subscriptions: usize,
}

impl WebSub {
    /// Whether feeds advertise a hub at all.
    pub fn enabled(&self) -> bool {
        self.hub || !self.hubs.is_empty()
    }
}

/// How hard the encodings beside each document are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compression {
    /// gzip level, 0 to 9.
    pub gzip: u32,
    /// brotli quality, 0 to 11.
    pub brotli: u32,
}

impl Config {
    /// Reads `path` (when given) and applies the overrides. Relative paths in the file are
    /// taken relative to the file's own folder, so the config works from any working directory.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let (raw, dir) = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
                let raw: RawConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.to_owned(),
                    message: describe_toml_error(&text, &e),
                })?;
                (raw, path.parent().map(Path::to_owned).unwrap_or_default())
            }
            None => (RawConfig::default(), PathBuf::new()),
        };
        Config::from_raw(raw, &dir, overrides)
    }

    /// Validates a raw configuration; `dir` anchors its relative paths.
    pub fn from_raw(raw: RawConfig, dir: &Path, overrides: &Overrides) -> Result<Config, ConfigError> {
        let raw = with_site(raw, dir, overrides)?;
        let (posts, feeds) = folders(&raw, dir, overrides)?;
        let (base_url, feeds_url) = urls(&raw, overrides)?;
        let content = content_of("content", raw.content.as_deref(), ContentMode::Full)?;
        Config {
            jekyll: raw.jekyll,
            drafts: raw.drafts,
            icon: site_url(&base_url, "icon", raw.icon)?,
            logo: site_url(&base_url, "logo", raw.logo)?,
            authors: raw.authors.unwrap_or_default(),
            base_url,
            feeds_url,
            title: raw.title.unwrap_or_else(|| "crier".to_owned()),
            description: raw.description.unwrap_or_else(|| "Recent posts".to_owned()),
            language: language(raw.language)?,
            author: author(raw.author)?,
            timezone: timezone(raw.timezone)?,
            permalink: permalink(raw.permalink)?,
            items: raw.items.unwrap_or(20),
            content,
            archive_content: content_of("archive_content", raw.archive_content.as_deref(), ContentMode::Summary)?,
            excerpt_length: at_least("excerpt_length", raw.excerpt_length, 300, 1, "a number of characters")?,
            excerpt_separator: excerpt_separator(raw.excerpt_separator)?,
            max_post_bytes: at_least("max_post_bytes", raw.max_post_bytes, 10 * 1024 * 1024, 1, "a size in bytes")?,
            max_feed_bytes: at_least("max_feed_bytes", raw.max_feed_bytes, 1024 * 1024, 4096, "a size in bytes")?,
            archive_page_size: at_least("archive_page_size", raw.archive_page_size, 100, 1, "a number of posts")?,
            archive_max_age: seconds("archive_max_age", raw.archive_max_age, 86_400, 365 * 86_400)?,
            max_terms: at_least("max_terms", raw.max_terms, 100, 1, "a number of names")?,
            post_time_budget: millis("post_time_budget_ms", raw.post_time_budget_ms, 5_000, 10)?,
            ttl: ttl(raw.ttl, raw.cache_max_age)?,
            compression: Compression {
                gzip: at_most("gzip_level", raw.gzip_level, 3, 9)?,
                brotli: at_most("brotli_quality", raw.brotli_quality, 3, 11)?,
            },
            listen: listen(overrides.listen.clone().or(raw.listen))?,
            metrics_listen: raw.metrics_listen.map(|text| address("metrics_listen", &text)).transpose()?,
            access_log: raw.access_log.unwrap_or(false),
            access_log_addresses: raw.access_log_addresses.unwrap_or(false),
            count_subscribers: raw.count_subscribers.unwrap_or(true),
            poll: raw.poll.unwrap_or(false),
            poll_interval: millis("poll_interval_ms", raw.poll_interval_ms, 2000, 10)?,
            settle: millis("settle_ms", raw.settle_ms, 1000, 0)?,
            max_connections: at_least("max_connections", raw.max_connections, 1024, 1, "a number of connections")?,
            max_requests_per_connection: requests_per_connection(raw.max_requests_per_connection)?,
            header_timeout: millis("header_timeout_ms", raw.header_timeout_ms, 10_000, 100)?,
            write_timeout: millis("write_timeout_ms", raw.write_timeout_ms, 30_000, 100)?,
            max_header_bytes: at_least("max_header_bytes", raw.max_header_bytes, 16 * 1024, 8192, "a size in bytes")?,
            shutdown_timeout: millis("shutdown_timeout_ms", raw.shutdown_timeout_ms, 10_000, 0)?,
            state_dir: state_dir(raw.state_dir.as_ref(), dir, &feeds)?,
            gone: Duration::from_secs(86_400 * capped_count("gone_days", raw.gone_days, 30)?),
            gone_after: Duration::from_secs(capped_count("gone_after_seconds", raw.gone_after_seconds, 60)?),
            redirects: redirects(raw.redirects.unwrap_or_default())?,
            aliases: aliases(raw.aliases.unwrap_or_default())?,
            websub: websub(raw.websub.unwrap_or_default())?,
            posts,
            feeds,
        }
        .checked()
    }

    /// Checks across keys: the built-in hub is not also listed among the external ones.
    fn checked(self) -> Result<Config, ConfigError> {
        if self.websub.hub && self.websub.hubs.contains(&self.hub_url()) {
            let hub = self.hub_url().to_string();
            return Err(invalid(
                "websub.hubs",
                hub,
                "external hubs only; the built-in hub (hub = true) is advertised already",
            ));
        }
        Ok(self)
    }

    /// The hubs feeds advertise, the built-in one first.
    pub fn hub_urls(&self) -> Vec<String> {
        let builtin = self.websub.hub.then(|| self.hub_url().to_string());
        builtin.into_iter().chain(self.websub.hubs.iter().map(Url::to_string)).collect()
    }

    /// The public address of the built-in hub.
    pub fn hub_url(&self) -> Url {
        self.feeds_url.join("hub").expect("a URL ending with `/` takes a relative path")
    }

    /// The files of the Jekyll site that configure crier, when there is one: a change to any of
    /// them is a reload.
    pub fn site_files(&self) -> Vec<PathBuf> {
        self.jekyll.as_deref().map(jekyll::files).unwrap_or_default()
    }

    /// The folders posts are read from: `posts`, then `drafts` when there is one.
    pub fn post_folders(&self) -> impl Iterator<Item = &Path> {
        std::iter::once(self.posts.as_path()).chain(self.drafts.as_deref())
    }

    /// The site-wide settings a post needs to be read.
    pub fn post_context(&self) -> PostContext<'_> {
        PostContext {
            timezone: self.timezone,
            base_url: &self.base_url,
            permalink: &self.permalink,
            max_bytes: self.max_post_bytes,
            max_terms: self.max_terms,
            authors: &self.authors,
            jekyll: self.jekyll.is_some(),
            drafts: self.drafts.as_deref(),
        }
    }

    /// How a post's summary is made when its front matter has none.
    pub fn summary_rule(&self) -> SummaryRule<'_> {
        let origin = &self.base_url[..url::Position::BeforePath];
        let site = SiteVars {
            title: &self.title,
            description: &self.description,
            url: origin,
            baseurl: self.base_url.path().trim_end_matches('/'),
            author: &self.author.name,
            lang: &self.language,
            jekyll: self.jekyll.is_some(),
        };
        SummaryRule { separator: &self.excerpt_separator, length: self.excerpt_length, site }
    }
}

/// An image of the site (`icon`, `logo`): a URL, or a path under the base URL.
fn site_url(base_url: &Url, key: &'static str, text: Option<String>) -> Result<Option<Url>, ConfigError> {
    if let Some(text) = text.as_deref().filter(|t| t.contains("://") && Url::parse(t).is_err()) {
        return Err(invalid(key, text, "an absolute URL, or a path under base_url such as \"/assets/icon.png\""));
    }
    let link = text.map(|text| crate::post::absolute_link(base_url, &text));
    link.map(|link| Url::parse(&link).map_err(|e| invalid(key, &link, e))).transpose()
}

fn requests_per_connection(value: Option<usize>) -> Result<usize, ConfigError> {
    at_least("max_requests_per_connection", value, 1000, 1, "a number of requests")
}

/// With a Jekyll site (flag, else file), `raw` with what the site says where `raw` is silent;
/// the site's folder made absolute.
fn with_site(mut raw: RawConfig, dir: &Path, overrides: &Overrides) -> Result<RawConfig, ConfigError> {
    let in_dir = |p: PathBuf| if p.is_relative() { dir.join(p) } else { p };
    let Some(site) = overrides.jekyll.clone().or(raw.jekyll.take().map(in_dir)) else { return Ok(raw) };
    let site = std::path::absolute(&site).map(|p| normalize(&p)).map_err(|e| invalid("jekyll", site.display(), e))?;
    let settings = jekyll::read(&site)?;
    let fallback = settings.raw;
    let mut authors = fallback.authors.unwrap_or_default();
    authors.extend(raw.authors.take().unwrap_or_default());
    let mut raw = RawConfig {
        jekyll: Some(site),
        drafts: fallback.drafts,
        posts: raw.posts.or(fallback.posts),
        title: raw.title.or(fallback.title),
        description: raw.description.or(fallback.description),
        base_url: raw.base_url.or(fallback.base_url),
        author: raw.author.or(fallback.author),
        authors: Some(authors),
        icon: raw.icon.or(fallback.icon),
        logo: raw.logo.or(fallback.logo),
        timezone: raw.timezone.or(fallback.timezone),
        language: raw.language.or(fallback.language),
        permalink: raw.permalink.or(fallback.permalink),
        excerpt_separator: raw.excerpt_separator.or(fallback.excerpt_separator),
        items: raw.items.or(fallback.items),
        content: raw.content.or(fallback.content),
        aliases: raw.aliases.or(fallback.aliases),
        ..raw
    };
    // jekyll-feed's own `feed.path`, when it moved the feed from `/feed.xml`, leads to crier's.
    if let Some(feed_path) = settings.feed_path {
        let (base_url, feeds_url) = urls(&raw, overrides)?;
        let atom = feeds_url.join("feed.atom").map_err(|e| invalid("feeds_url", &feeds_url, e))?;
        let from = format!("{}{feed_path}", base_url.path());
        raw.redirects.get_or_insert_default().entry(from).or_insert_with(|| atom.to_string());
    }
    Ok(raw)
}

/// The posts and feeds folders: flags first, then the file (relative to its folder), then the
/// defaults; made absolute, because the watcher reports absolute paths and they must match these.
fn folders(raw: &RawConfig, dir: &Path, overrides: &Overrides) -> Result<(PathBuf, PathBuf), ConfigError> {
    let in_dir = |p: &PathBuf| if p.is_relative() { normalize(&dir.join(p)) } else { p.clone() };
    let posts = overrides.posts.clone().or(raw.posts.as_ref().map(in_dir)).unwrap_or_else(|| "posts".into());
    let feeds = overrides.feeds.clone().or(raw.feeds.as_ref().map(in_dir)).unwrap_or_else(|| "feeds".into());
    let absolute = |key: &'static str, path: PathBuf| {
        std::path::absolute(&path).map(|p| normalize(&p)).map_err(|e| invalid(key, path.display(), e))
    };
    Ok((absolute("posts", posts)?, absolute("feeds", feeds)?))
}

/// `state_dir` (default: `crier-state` beside the feeds folder), absolute, and never inside the
/// feeds folder, whose stale files crier removes.
fn state_dir(raw: Option<&PathBuf>, dir: &Path, feeds: &Path) -> Result<PathBuf, ConfigError> {
    let path = match raw {
        Some(path) if path.is_relative() => normalize(&dir.join(path)),
        Some(path) => path.clone(),
        None => feeds.parent().unwrap_or(feeds).join("crier-state"),
    };
    let path =
        std::path::absolute(&path).map(|p| normalize(&p)).map_err(|e| invalid("state_dir", path.display(), e))?;
    if path.starts_with(feeds) || feeds.starts_with(&path) {
        return Err(invalid("state_dir", path.display(), "a folder outside the feeds folder (and not containing it)"));
    }
    Ok(path)
}

/// How long readers may keep a feed: one setting for RSS `ttl`, `sy:updatePeriod` and
/// `sy:updateFrequency`, and `Cache-Control: max-age`. `ttl` is in minutes; `cache_max_age` (in
/// seconds, the older key) may give it instead, in whole minutes; both must then agree.
fn ttl(minutes: Option<u32>, cache_max_age: Option<u64>) -> Result<Duration, ConfigError> {
    // The older key, in seconds, rounded up to whole minutes.
    let from_max_age = cache_max_age.map(|seconds| seconds.div_ceil(60));
    let minutes = match (minutes.map(u64::from), from_max_age) {
        (Some(ttl), Some(max_age)) => {
            if ttl != max_age {
                tracing::warn!(
                    "config: `cache_max_age` = {} is ignored: `ttl` = {ttl} minutes drives Cache-Control (max-age={}) and the feeds' polling hints",
                    cache_max_age.unwrap_or_default(),
                    ttl * 60
                );
            }
            ttl
        }
        (Some(ttl), None) | (None, Some(ttl)) => ttl,
        (None, None) => 60,
    };
    if minutes == 0 {
        return Err(invalid("ttl", 0, "a number of minutes, at least 1"));
    }
    Ok(Duration::from_secs(minutes * 60))
}

/// `[redirects]`: each key a path (`/old.rss`), each value a path or an absolute http(s) URL.
fn redirects(
    table: std::collections::BTreeMap<String, String>,
) -> Result<std::collections::BTreeMap<String, String>, ConfigError> {
    let mut normalized = std::collections::BTreeMap::new();
    for (from, to) in &table {
        let decoded = percent_encoding::percent_decode_str(from).decode_utf8().ok();
        let Some(key) =
            decoded.filter(|k| k.starts_with('/') && !k.contains(['?', '#']) && !k.contains(char::is_control))
        else {
            return Err(invalid("redirects", from, "request paths such as \"/old/feed.xml\" as keys"));
        };
        normalized.insert(key.into_owned(), location(from, to)?);
    }
    // A chain of paths that comes back to where it started would send readers round forever.
    for start in normalized.keys() {
        let mut at = start.as_str();
        for _ in 0..=normalized.len() {
            match normalized.get(at) {
                Some(next) if next == start => {
                    return Err(invalid("redirects", start, "redirects that do not lead back to themselves"));
                }
                Some(next) => at = next,
                None => break,
            }
        }
    }
    Ok(normalized)
}

/// A redirect's target as a `Location` value: an absolute http(s) URL or a path, percent-encoded.
fn location(from: &str, to: &str) -> Result<String, ConfigError> {
    let expected = || invalid("redirects", to, format!("a path or an http(s) URL other than {from:?}"));
    if to.contains(char::is_control) {
        return Err(expected());
    }
    let normalized = match Url::parse(to) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => url.to_string(),
        _ if to.starts_with('/') && !to.starts_with("//") => {
            let url = Url::parse("http://localhost/").and_then(|base| base.join(to)).map_err(|_| expected())?;
            url[url::Position::BeforePath..].to_owned()
        }
        _ => return Err(expected()),
    };
    let decoded = percent_encoding::percent_decode_str(&normalized).decode_utf8_lossy().into_owned();
    if decoded == from || normalized == from {
        return Err(expected());
    }
    Ok(normalized)
}

/// `aliases`: names of the generators whose feed URLs are redirected.
fn aliases(names: Vec<String>) -> Result<Vec<Alias>, ConfigError> {
    names
        .iter()
        .map(|name| {
            Alias::ALL
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, alias)| *alias)
                .ok_or_else(|| invalid("aliases", name, "some of \"jekyll-feed\", \"hugo\", \"wordpress\""))
        })
        .collect()
}

/// The longest lease crier gives: a year.
const MAX_LEASE: u64 = 365 * 86_400;

/// The `[websub]` table.
fn websub(raw: RawWebSub) -> Result<WebSub, ConfigError> {
    let hubs = raw
        .hubs
        .unwrap_or_default()
        .iter()
        .map(|text| {
            Url::parse(text)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                .ok_or_else(|| invalid("websub.hubs", text, "absolute http:// or https:// URLs of hubs"))
        })
        .collect::<Result<Vec<Url>, ConfigError>>()?;
    let allow_callbacks = raw
        .allow_callbacks
        .unwrap_or_default()
        .iter()
        .map(|text| {
            let parsed = text.parse::<ipnet::IpNet>().or_else(|_| text.parse::<std::net::IpAddr>().map(Into::into));
            parsed
                .map_err(|_| invalid("websub.allow_callbacks", text, "networks such as \"10.0.0.0/8\" or \"::1/128\""))
        })
        .collect::<Result<Vec<ipnet::IpNet>, ConfigError>>()?;
    let min = at_least("websub.min_lease_seconds", raw.min_lease_seconds, 3600, 1, "a number of seconds")?;
    let max = at_least("websub.max_lease_seconds", raw.max_lease_seconds, 30 * 86_400, min, "a number of seconds")?;
    if max > MAX_LEASE {
        return Err(invalid("websub.max_lease_seconds", max, format!("at most {MAX_LEASE} (a year)")));
    }
    let lease =
        at_least("websub.lease_seconds", raw.lease_seconds, 864_000.clamp(min, max), min, "a number of seconds")?;
    if lease > max {
        return Err(invalid("websub.lease_seconds", lease, format!("at most max_lease_seconds ({max})")));
    }
    Ok(WebSub {
        hub: raw.hub.unwrap_or(false),
        hubs,
        allow_callbacks,
        lease: Duration::from_secs(lease),
        min_lease: Duration::from_secs(min),
        max_lease: Duration::from_secs(max),
        max_subscriptions: at_least("websub.max_subscriptions", raw.max_subscriptions, 10_000, 1, "a number")?,
    })
}

/// `base_url`, and `feeds_url` (default: `feeds/` under the base URL).
fn urls(raw: &RawConfig, overrides: &Overrides) -> Result<(Url, Url), ConfigError> {
    let base_url_text =
        overrides.base_url.clone().or(raw.base_url.clone()).unwrap_or_else(|| "http://127.0.0.1:8080/".to_owned());
    let base_url = parse_http_url("base_url", &base_url_text)?;
    let feeds_url = match &raw.feeds_url {
        Some(text) => parse_http_url("feeds_url", text)?,
        None => base_url.join("feeds/").map_err(|e| invalid("base_url", &base_url_text, e))?,
    };
    Ok((base_url, feeds_url))
}

fn listen(text: Option<String>) -> Result<SocketAddr, ConfigError> {
    address("listen", &text.unwrap_or_else(|| "127.0.0.1:8080".to_owned()))
}

fn address(key: &'static str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse().map_err(|_| invalid(key, text, "an address and port such as \"127.0.0.1:8080\" or \"[::]:80\""))
}

fn timezone(text: Option<String>) -> Result<Tz, ConfigError> {
    let text = text.unwrap_or_else(|| "UTC".to_owned());
    text.parse().map_err(|_| invalid("timezone", &text, "an IANA time zone name such as \"Asia/Shanghai\" or \"UTC\""))
}

fn content_of(key: &'static str, text: Option<&str>, default: ContentMode) -> Result<ContentMode, ConfigError> {
    match text {
        None => Ok(default),
        Some("full") => Ok(ContentMode::Full),
        Some("summary") => Ok(ContentMode::Summary),
        Some(other) => Err(invalid(key, other, "\"full\" or \"summary\"")),
    }
}

fn permalink(text: Option<String>) -> Result<Permalink, ConfigError> {
    let text = text.unwrap_or_else(|| Permalink::DEFAULT.to_owned());
    Permalink::parse(Permalink::style(&text).unwrap_or(&text)).map_err(|e| invalid("permalink", &text, e))
}

fn language(text: Option<String>) -> Result<String, ConfigError> {
    let language = text.unwrap_or_else(|| "en".to_owned());
    if !crate::text::is_language_tag(&language) {
        return Err(invalid("language", &language, "a language tag such as \"en\" or \"zh-CN\""));
    }
    Ok(language)
}

fn author(author: Option<Author>) -> Result<Author, ConfigError> {
    let author = author.unwrap_or_else(|| Author { name: "crier".to_owned(), email: None, uri: None });
    if author.name.trim().is_empty() {
        return Err(invalid("author.name", &author.name, "a non-empty name"));
    }
    Ok(author)
}

fn excerpt_separator(text: Option<String>) -> Result<String, ConfigError> {
    let separator = text.unwrap_or_else(|| "<!--more-->".to_owned());
    if separator.is_empty() {
        return Err(invalid("excerpt_separator", "", "a non-empty marker such as \"<!--more-->\""));
    }
    Ok(separator)
}

/// A count or size with a lower bound; `unit` says what it counts.
fn at_least<T>(key: &'static str, value: Option<T>, default: T, min: T, unit: &str) -> Result<T, ConfigError>
where
    T: PartialOrd + std::fmt::Display + Copy,
{
    let value = value.unwrap_or(default);
    if value < min {
        return Err(invalid(key, value, format!("{unit}, at least {min}")));
    }
    Ok(value)
}

/// A count of days or seconds, at most 36500 (a hundred years of days), so that turning it into
/// a duration cannot overflow.
fn capped_count(key: &'static str, value: Option<u64>, default: u64) -> Result<u64, ConfigError> {
    let value = value.unwrap_or(default);
    if value > 36_500 {
        return Err(invalid(key, value, "at most 36500"));
    }
    Ok(value)
}

/// A duration given in seconds, from 0 to `max`.
fn seconds(key: &'static str, value: Option<u64>, default: u64, max: u64) -> Result<Duration, ConfigError> {
    let value = value.unwrap_or(default);
    if value > max {
        return Err(invalid(key, value, format!("a number of seconds, at most {max}")));
    }
    Ok(Duration::from_secs(value))
}

/// A compression setting from 0 to `max`.
fn at_most(key: &'static str, value: Option<u32>, default: u32, max: u32) -> Result<u32, ConfigError> {
    let value = value.unwrap_or(default);
    if value > max {
        return Err(invalid(key, value, format!("an integer from 0 to {max}")));
    }
    Ok(value)
}

/// A duration given in milliseconds, with a lower bound.
fn millis(key: &'static str, value: Option<u64>, default: u64, min: u64) -> Result<Duration, ConfigError> {
    at_least(key, value, default, min, "a number of milliseconds").map(Duration::from_millis)
}

/// `a/b/../c` as `a/c`, lexically, so that file names in messages read well.
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.components().next_back(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() { PathBuf::from(".") } else { out }
}

/// An absolute http(s) URL, normalized to end with `/` so that joining keeps its path.
fn parse_http_url(key: &'static str, text: &str) -> Result<Url, ConfigError> {
    let expected = "an absolute http:// or https:// URL such as \"https://news.example.com/\"";
    let mut url = Url::parse(text).map_err(|_| invalid(key, text, expected))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid(key, text, expected));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(key, text, "a URL without `?query` or `#fragment`"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// toml's message, reduced to one line that names the line and the key.
fn describe_toml_error(text: &str, error: &toml::de::Error) -> String {
    let line = error.span().map(|span| text[..span.start.min(text.len())].lines().count().max(1));
    let message = error.message().trim().replace('\n', " ");
    let hint = if message.contains("unknown field") { "; see config/crier.toml for every key crier knows" } else { "" };
    match line {
        Some(line) => format!("line {line}: {message}{hint}"),
        None => format!("{message}{hint}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: "t.toml".into(), message: describe_toml_error(text, &e) })?;
        Config::from_raw(raw, Path::new("/etc/crier"), &Overrides::default())
    }

    #[test]
    fn defaults_and_relative_paths() {
        let config = load("posts = \"../posts\"\nbase_url = \"https://e.org/blog\"").unwrap();
        assert_eq!(config.posts, Path::new("/etc/posts"));
        assert_eq!(config.base_url.as_str(), "https://e.org/blog/");
        assert_eq!(config.feeds_url.as_str(), "https://e.org/blog/feeds/");
        assert_eq!(config.items, 20);
        assert_eq!(config.excerpt_length, 300);
        assert_eq!(config.timezone, Tz::UTC);
    }

    #[test]
    fn redirects_are_normalized_and_loops_refused() {
        let config =
            load("[redirects]\n\"/tags/%E9%9D%92.xml\" = \"/tags/青岛.rss\"\n\"/x\" = \"https://e.org/a b\"").unwrap();
        assert_eq!(config.redirects.get("/tags/青.xml").map(String::as_str), Some("/tags/%E9%9D%92%E5%B2%9B.rss"));
        assert_eq!(config.redirects.get("/x").map(String::as_str), Some("https://e.org/a%20b"));
        for text in [
            "[redirects]\n\"/a\" = \"/b\"\n\"/b\" = \"/a\"",
            "[redirects]\n\"/a\" = \"/a\"",
            "[redirects]\n\"/a\" = \"/b\\r\\nSet-Cookie: x\"",
            "[redirects]\n\"a\" = \"/b\"",
            "[redirects]\n\"/a\" = \"//evil.example/\"",
        ] {
            let error = load(text).unwrap_err().to_string();
            assert!(error.contains("redirects"), "{text} -> {error}");
        }
    }

    #[test]
    fn archive_settings() {
        let config = load("").unwrap();
        assert_eq!(
            (config.archive_page_size, config.archive_max_age, config.archive_content),
            (100, Duration::from_secs(86_400), ContentMode::Summary)
        );
        let both = load("content = \"summary\"\narchive_content = \"full\"").unwrap();
        assert_eq!((both.content, both.archive_content), (ContentMode::Summary, ContentMode::Full));
        assert!(load("archive_content = \"some\"").unwrap_err().to_string().contains("archive_content"));
        assert!(load("archive_page_size = 0").unwrap_err().to_string().contains("archive_page_size"));
        assert!(load("archive_max_age = 99999999999").unwrap_err().to_string().contains("archive_max_age"));
    }

    #[test]
    fn ttl_drives_max_age_and_old_configs_still_load() {
        assert_eq!(load("ttl = 60\ncache_max_age = 300").unwrap().ttl, Duration::from_secs(3600), "ttl wins");
        assert_eq!(load("cache_max_age = 90").unwrap().ttl, Duration::from_secs(120), "whole minutes, rounded up");
        assert_eq!(load("").unwrap().ttl, Duration::from_secs(3600));
        assert!(load("gone_days = 99999999999999").unwrap_err().to_string().contains("gone_days"));
    }

    #[test]
    fn websub_and_state_dir() {
        let config =
            load("feeds = \"/srv/site/feeds\"\n[websub]\nhub = true\nallow_callbacks = [\"127.0.0.1\", \"fd00::/8\"]")
                .unwrap();
        assert_eq!(config.state_dir, Path::new("/srv/site/crier-state"), "beside the feeds folder");
        assert_eq!(config.websub.allow_callbacks.len(), 2);
        assert_eq!(config.hub_urls(), ["http://127.0.0.1:8080/feeds/hub"]);
        assert_eq!(config.websub.lease, Duration::from_secs(864_000));
        assert!(!load("").unwrap().websub.enabled(), "off unless asked for");
    }

    #[test]
    fn overrides_win() {
        let raw: RawConfig = toml::from_str("posts = \"a\"\nbase_url = \"https://a.org/\"").unwrap();
        let overrides =
            Overrides { posts: Some("b".into()), base_url: Some("https://b.org/".into()), ..Default::default() };
        let config = Config::from_raw(raw, Path::new("/x"), &overrides).unwrap();
        assert_eq!(config.posts, std::env::current_dir().unwrap().join("b"), "made absolute");
        assert_eq!(config.base_url.as_str(), "https://b.org/");
    }

    #[test]
    fn errors_name_the_key() {
        for (text, key) in [
            ("timezone = \"Mars/Olympus\"", "timezone"),
            ("base_url = \"ftp://x/\"", "base_url"),
            ("content = \"half\"", "content"),
            ("permalink = \"/:nope/:title\"", "permalink"),
            ("brotli_quality = 12", "brotli_quality"),
            ("listen = \"localhost\"", "listen"),
            ("metrics_listen = \"9464\"", "metrics_listen"),
            ("max_header_bytes = 100", "max_header_bytes"),
            ("max_terms = 0", "max_terms"),
            ("[websub]\nmax_lease_seconds = 99999999999", "websub.max_lease_seconds"),
            ("[websub]\nlease_seconds = 60", "websub.lease_seconds"),
            ("[websub]\nallow_callbacks = [\"10.0.0.0/33\"]", "websub.allow_callbacks"),
            ("[websub]\nhubs = [\"/relative\"]", "websub.hubs"),
            ("[websub]\nhub = true\nhubs = [\"http://127.0.0.1:8080/feeds/hub\"]", "websub.hubs"),
            ("state_dir = \"/tmp/feeds/state\"\nfeeds = \"/tmp/feeds\"", "state_dir"),
        ] {
            let error = load(text).unwrap_err().to_string();
            assert!(error.contains(key), "{text} -> {error}");
        }
        let error = load("colour = \"red\"").unwrap_err().to_string();
        assert!(error.contains("colour") && error.contains("line 1"), "{error}");
    }
}
