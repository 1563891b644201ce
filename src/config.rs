//! Configuration: the TOML file and command-line flags, validated into one immutable [`Config`].
//!
//! Two stages, as in ripgrep: [`RawConfig`] is what serde reads (unknown keys rejected), and
//! [`Config::from_raw`] turns it into real types or an error that names the key, the bad value
//! and what would be valid.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use serde::Deserialize;
use url::Url;

/// An error in the configuration: exit code 2 territory.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config key `{key}` = {value:?} is invalid: {expected}")]
    Invalid { key: &'static str, value: String, expected: String },
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

/// The site's author, used when a post names none.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Author {
    pub name: String,
    pub email: Option<String>,
    pub uri: Option<String>,
}

/// The configuration file as written, every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub posts: Option<PathBuf>,
    pub feeds: Option<PathBuf>,
    pub base_url: Option<String>,
    pub feeds_url: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub language: Option<String>,
    pub author: Option<Author>,
    pub timezone: Option<String>,
    pub permalink: Option<String>,
    pub items: Option<usize>,
    pub content: Option<String>,
    pub excerpt_length: Option<usize>,
    pub excerpt_separator: Option<String>,
    pub max_post_bytes: Option<u64>,
    pub ttl: Option<u32>,
    pub gzip_level: Option<u32>,
    pub brotli_quality: Option<u32>,
    pub listen: Option<String>,
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
}

/// Command-line overrides; each one, when given, wins over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub posts: Option<PathBuf>,
    pub feeds: Option<PathBuf>,
    pub base_url: Option<String>,
    pub listen: Option<String>,
}

/// The validated configuration every other module reads.
#[derive(Debug, Clone)]
pub struct Config {
    pub posts: PathBuf,
    pub feeds: PathBuf,
    /// Ends with `/`; post links and the site feed's alternate link hang off it.
    pub base_url: Url,
    /// Ends with `/`; the public address of the feeds folder (self links, OPML).
    pub feeds_url: Url,
    pub title: String,
    pub description: String,
    pub language: String,
    pub author: Author,
    pub timezone: Tz,
    pub permalink: String,
    /// 0 means every post.
    pub items: usize,
    pub content: ContentMode,
    pub excerpt_length: usize,
    pub excerpt_separator: String,
    pub max_post_bytes: u64,
    pub ttl: Duration,
    pub gzip_level: u32,
    pub brotli_quality: u32,
    /// Where `crier serve` listens (unless systemd hands it a socket).
    pub listen: SocketAddr,
    /// `Cache-Control: max-age` of feed responses.
    pub cache_max_age: Duration,
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
}

/// The default permalink pattern, Jekyll's `date` style.
pub const DEFAULT_PERMALINK: &str = "/:categories/:year/:month/:day/:title.html";

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
        let in_dir = |p: PathBuf| if p.is_relative() { normalize(&dir.join(p)) } else { p };
        let posts = overrides.posts.clone().or(raw.posts.map(in_dir)).unwrap_or_else(|| "posts".into());
        let feeds = overrides.feeds.clone().or(raw.feeds.map(in_dir)).unwrap_or_else(|| "feeds".into());
        // Absolute, because the watcher reports absolute paths and they must match these.
        let absolute = |key: &'static str, path: PathBuf| {
            std::path::absolute(&path).map(|p| normalize(&p)).map_err(|e| invalid(key, path.display(), e))
        };
        let (posts, feeds) = (absolute("posts", posts)?, absolute("feeds", feeds)?);

        let base_url_text =
            overrides.base_url.clone().or(raw.base_url).unwrap_or_else(|| "http://127.0.0.1:8080/".to_owned());
        let base_url = parse_http_url("base_url", &base_url_text)?;
        let feeds_url = match raw.feeds_url {
            Some(text) => parse_http_url("feeds_url", &text)?,
            None => base_url.join("feeds/").map_err(|e| invalid("base_url", &base_url_text, e))?,
        };

        let timezone_text = raw.timezone.unwrap_or_else(|| "UTC".to_owned());
        let timezone: Tz = timezone_text.parse().map_err(|_| {
            invalid("timezone", &timezone_text, "an IANA time zone name such as \"Asia/Shanghai\" or \"UTC\"")
        })?;

        let content = match raw.content.as_deref().unwrap_or("full") {
            "full" => ContentMode::Full,
            "summary" => ContentMode::Summary,
            other => return Err(invalid("content", other, "\"full\" or \"summary\"")),
        };

        let permalink = raw.permalink.unwrap_or_else(|| DEFAULT_PERMALINK.to_owned());
        if !permalink.starts_with('/') {
            return Err(invalid(
                "permalink",
                &permalink,
                "a pattern starting with `/`, e.g. \"/:year/:month/:title.html\"",
            ));
        }
        if let Some(bad) = crate::post::unknown_permalink_placeholder(&permalink) {
            return Err(invalid(
                "permalink",
                &permalink,
                format!("unknown placeholder `{bad}`; known: {}", crate::post::PERMALINK_PLACEHOLDERS.join(" ")),
            ));
        }

        let language = raw.language.unwrap_or_else(|| "en".to_owned());
        if language.is_empty() || !language.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(invalid("language", &language, "a language tag such as \"en\" or \"zh-CN\""));
        }

        let author = raw.author.unwrap_or_else(|| Author { name: "crier".to_owned(), email: None, uri: None });
        if author.name.trim().is_empty() {
            return Err(invalid("author.name", &author.name, "a non-empty name"));
        }
        let gzip_level = raw.gzip_level.unwrap_or(3);
        if gzip_level > 9 {
            return Err(invalid("gzip_level", gzip_level, "an integer from 0 to 9"));
        }
        let brotli_quality = raw.brotli_quality.unwrap_or(3);
        if brotli_quality > 11 {
            return Err(invalid("brotli_quality", brotli_quality, "an integer from 0 to 11"));
        }
        let excerpt_length = raw.excerpt_length.unwrap_or(300);
        if excerpt_length == 0 {
            return Err(invalid("excerpt_length", 0, "a number of characters, at least 1"));
        }
        let max_post_bytes = raw.max_post_bytes.unwrap_or(10 * 1024 * 1024);
        if max_post_bytes == 0 {
            return Err(invalid("max_post_bytes", 0, "a size in bytes, at least 1"));
        }
        let excerpt_separator = raw.excerpt_separator.unwrap_or_else(|| "<!--more-->".to_owned());
        if excerpt_separator.is_empty() {
            return Err(invalid("excerpt_separator", "", "a non-empty marker such as \"<!--more-->\""));
        }

        let listen_text = overrides.listen.clone().or(raw.listen).unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            invalid("listen", &listen_text, "an address and port such as \"127.0.0.1:8080\" or \"[::]:80\"")
        })?;
        let millis = |key: &'static str, value: Option<u64>, default: u64, min: u64| -> Result<Duration, ConfigError> {
            let value = value.unwrap_or(default);
            if value < min {
                return Err(invalid(key, value, format!("a number of milliseconds, at least {min}")));
            }
            Ok(Duration::from_millis(value))
        };
        let poll_interval = millis("poll_interval_ms", raw.poll_interval_ms, 2000, 10)?;
        let settle = millis("settle_ms", raw.settle_ms, 1000, 0)?;
        let header_timeout = millis("header_timeout_ms", raw.header_timeout_ms, 10_000, 100)?;
        let write_timeout = millis("write_timeout_ms", raw.write_timeout_ms, 30_000, 100)?;
        let shutdown_timeout = millis("shutdown_timeout_ms", raw.shutdown_timeout_ms, 10_000, 0)?;
        let max_connections = raw.max_connections.unwrap_or(1024);
        if max_connections == 0 {
            return Err(invalid("max_connections", 0, "a number of connections, at least 1"));
        }
        let max_requests_per_connection = raw.max_requests_per_connection.unwrap_or(1000);
        if max_requests_per_connection == 0 {
            return Err(invalid("max_requests_per_connection", 0, "a number of requests, at least 1"));
        }
        let max_header_bytes = raw.max_header_bytes.unwrap_or(16 * 1024);
        if max_header_bytes < 8192 {
            return Err(invalid("max_header_bytes", max_header_bytes, "a size in bytes, at least 8192"));
        }

        Ok(Config {
            posts,
            feeds,
            base_url,
            feeds_url,
            title: raw.title.unwrap_or_else(|| "crier".to_owned()),
            description: raw.description.unwrap_or_else(|| "Recent posts".to_owned()),
            language,
            author,
            timezone,
            permalink,
            items: raw.items.unwrap_or(20),
            content,
            excerpt_length,
            excerpt_separator,
            max_post_bytes,
            ttl: Duration::from_secs(u64::from(raw.ttl.unwrap_or(60)) * 60),
            gzip_level,
            brotli_quality,
            listen,
            cache_max_age: Duration::from_secs(raw.cache_max_age.unwrap_or(300)),
            poll: raw.poll.unwrap_or(false),
            poll_interval,
            settle,
            max_connections,
            max_requests_per_connection,
            header_timeout,
            write_timeout,
            max_header_bytes,
            shutdown_timeout,
        })
    }
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
    fn overrides_win() {
        let raw: RawConfig = toml::from_str("posts = \"a\"\nbase_url = \"https://a.org/\"").unwrap();
        let overrides =
            Overrides { posts: Some("b".into()), feeds: None, base_url: Some("https://b.org/".into()), listen: None };
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
            ("max_header_bytes = 100", "max_header_bytes"),
        ] {
            let error = load(text).unwrap_err().to_string();
            assert!(error.contains(key), "{text} -> {error}");
        }
        let error = load("colour = \"red\"").unwrap_err().to_string();
        assert!(error.contains("colour") && error.contains("line 1"), "{error}");
    }
}
