//! A Jekyll site as configuration: `_config.yml` (with jekyll-feed's `feed:` settings) and
//! `_data/authors.yml` give the values crier.toml leaves out, so a Jekyll site needs no crier.toml.
//!
//! Keys crier does not use are Jekyll's business and are ignored; a key crier uses with a value
//! it cannot use is an error naming the file, the key and what would do.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{ConfigError, RawConfig};
use crate::permalink::Permalink;
use crate::post::{Author, author_of, text_of};
use crate::text::{is_language_tag, strip_tags};

/// A Jekyll site's configuration file.
const CONFIG_YML: &str = "_config.yml";

/// jekyll-feed's default number of posts in a feed.
const POSTS_LIMIT: usize = 10;

/// What a Jekyll site says, as crier's settings; each is used where crier.toml is silent.
#[derive(Debug, Default)]
pub struct SiteSettings {
    pub raw: RawConfig,
    /// jekyll-feed's `feed.path` when it is not `feed.xml`: the site path its Atom feed had.
    pub feed_path: Option<String>,
}

/// Reads `site`'s `_config.yml` (a missing one is an empty one, as for Jekyll) and its authors data.
pub fn read(site: &Path) -> Result<SiteSettings, ConfigError> {
    if !site.is_dir() {
        return Err(super::invalid(
            "jekyll",
            site.display(),
            "the folder of a Jekyll site (the one with `_config.yml`)",
        ));
    }
    let (path, config) = config_file(site)?;
    let file = File { path: &path, value: &config, prefix: "" };
    let authors = authors(site)?;
    let mut raw = RawConfig {
        posts: Some(site.join("_posts")),
        // jekyll-feed writes the site's title as HTML; crier's titles are plain text.
        title: file.text("title")?.filter(|t| !t.is_empty()).or(file.text("name")?).map(|t| strip_tags(&t)),
        description: file.text("description")?.map(|d| strip_tags(&d)),
        base_url: base_url(&file)?,
        timezone: file.checked(
            "timezone",
            |t| t.parse::<chrono_tz::Tz>().is_ok(),
            "an IANA time zone such as \"Asia/Shanghai\"",
        )?,
        language: file
            .checked("lang", |l| is_language_tag(&l.replace('_', "-")), "a language tag such as \"zh-CN\" or \"en\"")?
            .map(|lang| lang.replace('_', "-")),
        permalink: permalink(&file)?,
        excerpt_separator: file.text("excerpt_separator")?.filter(|s| !s.is_empty()),
        icon: file.text("icon")?,
        logo: file.text("logo")?,
        aliases: Some(vec!["jekyll-feed".to_owned()]),
        ..RawConfig::default()
    };
    raw.author = match config.get("author") {
        None | Some(Value::Null) => None,
        Some(value) => Some(author_of(value, &authors).ok_or_else(|| {
            file.invalid("author", value, "a name, a key of _data/authors.yml, or {name, email, uri}")
        })?),
    };
    raw.authors = Some(authors);
    let feed = File { path: &path, value: config.get("feed").unwrap_or(&Value::Null), prefix: "feed." };
    raw.items = Some(feed.count("posts_limit")?.unwrap_or(POSTS_LIMIT));
    if feed.flag("excerpt_only")? == Some(true) {
        raw.content = Some("summary".to_owned());
    }
    // Jekyll shows drafts with `show_drafts: true` (or `--drafts`); the jekyll-feed key too.
    if file.flag("show_drafts")? == Some(true) || feed.flag("show_drafts")? == Some(true) {
        raw.drafts = Some(site.join("_drafts"));
    }
    let feed_path = feed.text("path")?.map(|p| p.trim_start_matches('/').to_owned()).filter(|p| p != "feed.xml");
    Ok(SiteSettings { raw, feed_path })
}

/// `_config.yml`'s path and mapping (null when there is none).
fn config_file(site: &Path) -> Result<(PathBuf, Value), ConfigError> {
    let path = site.join(CONFIG_YML);
    let config = match std::fs::read_to_string(&path) {
        Ok(text) => yaml(&path, &text)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Value::Null,
        Err(source) => return Err(ConfigError::Read { path, source }),
    };
    if !matches!(config, Value::Object(_) | Value::Null) {
        let file = File { path: &path, value: &config, prefix: "" };
        return Err(file.invalid("(top level)", &config, "a mapping of keys such as `title: ...` and `url: ...`"));
    }
    Ok((path, config))
}

/// A YAML file's value, or an error naming the file and the line.
fn yaml(path: &Path, text: &str) -> Result<Value, ConfigError> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    // Ruby's YAML, which Jekyll reads with, lets a later key replace an earlier one.
    let options = serde_saphyr::options! { duplicate_keys: serde_saphyr::DuplicateKeyPolicy::LastWins };
    serde_saphyr::from_str_with_options::<Value>(text, options).map_err(|e| {
        let line = e.location().map_or(1, |l| l.line());
        let detail = e.to_string();
        let detail = detail.lines().next().unwrap_or_default();
        ConfigError::Parse {
            path: path.to_owned(),
            message: format!("line {line}: not valid YAML ({detail}); a value with `:` or `#` must be in quotes"),
        }
    })
}

/// One YAML mapping of a file, read key by key.
struct File<'a> {
    path: &'a Path,
    value: &'a Value,
    /// What the keys are under, as messages name them: `feed.` for jekyll-feed's settings.
    prefix: &'a str,
}

impl File<'_> {
    fn invalid(&self, key: &str, value: &Value, expected: &str) -> ConfigError {
        ConfigError::Site {
            path: self.path.to_owned(),
            key: format!("{}{key}", self.prefix),
            value: value.to_string(),
            expected: expected.to_owned(),
        }
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.value.get(key).filter(|v| !v.is_null())
    }

    /// A text value; numbers and booleans read as their text, as Liquid prints them.
    fn text(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => text_of(value).map(Some).ok_or_else(|| self.invalid(key, value, "a text value")),
        }
    }

    /// A text value that `valid` accepts.
    fn checked(&self, key: &str, valid: impl Fn(&str) -> bool, expected: &str) -> Result<Option<String>, ConfigError> {
        match self.text(key)? {
            Some(text) if !valid(&text) => Err(self.invalid(key, &Value::String(text), expected)),
            other => Ok(other),
        }
    }

    fn flag(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.invalid(key, other, "true or false")),
        }
    }

    fn count(&self, key: &str) -> Result<Option<usize>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n >= 1) => Ok(n.as_u64().map(|n| n as usize)),
            Some(other) => Err(self.invalid(key, other, "a whole number of posts, at least 1")),
        }
    }
}

/// `url` and `baseurl` as crier's base URL.
fn base_url(file: &File<'_>) -> Result<Option<String>, ConfigError> {
    let expected = "an absolute http:// or https:// URL such as \"https://example.org\"";
    let Some(url) = file.checked("url", |u| url::Url::parse(u).is_ok_and(|u| u.has_host()), expected)? else {
        return Ok(None);
    };
    if url.ends_with('/') {
        tracing::warn!(
            "{}: `url` ends with `/`, so Jekyll made links with `//` after the host; crier's links and ids have one `/`, and feed readers may show each post once more; write `url` without the final `/`",
            file.path.display()
        );
    }
    let baseurl = file.text("baseurl")?.unwrap_or_default();
    let baseurl = baseurl.trim_matches('/');
    let joined = if baseurl.is_empty() {
        format!("{}/", url.trim_end_matches('/'))
    } else {
        format!("{}/{baseurl}/", url.trim_end_matches('/'))
    };
    Ok(Some(joined))
}

/// Jekyll's named permalink styles, and patterns with Jekyll's placeholders.
fn permalink(file: &File<'_>) -> Result<Option<String>, ConfigError> {
    let Some(text) = file.text("permalink")? else { return Ok(None) };
    let pattern = Permalink::style(&text).map_or(text.clone(), str::to_owned);
    Permalink::parse(&pattern).map_err(|e| file.invalid("permalink", &Value::String(text), &e.to_string()))?;
    Ok(Some(pattern))
}

/// Where Jekyll keeps the authors data: `_data/authors.yml`, or `.yaml`.
fn authors_files(site: &Path) -> impl Iterator<Item = PathBuf> + '_ {
    ["yml", "yaml"].into_iter().map(move |ext| site.join("_data").join(format!("authors.{ext}")))
}

/// The files of a site that configure crier: `_config.yml` and the authors data.
pub fn files(site: &Path) -> Vec<PathBuf> {
    std::iter::once(site.join(CONFIG_YML)).chain(authors_files(site)).collect()
}

/// `_data/authors.yml` (or `.yaml`): each key an author's id, each value `{name, email, uri}`.
fn authors(site: &Path) -> Result<BTreeMap<String, Author>, ConfigError> {
    let Some((path, text)) =
        authors_files(site).find_map(|path| std::fs::read_to_string(&path).ok().map(|text| (path, text)))
    else {
        return Ok(BTreeMap::new());
    };
    let value = yaml(&path, &text)?;
    let file = File { path: &path, value: &value, prefix: "" };
    let Some(map) = value.as_object() else {
        return match value {
            Value::Null => Ok(BTreeMap::new()),
            ref other => Err(file.invalid("(top level)", other, "a mapping of author ids to {name, email, uri}")),
        };
    };
    map.iter()
        .map(|(id, entry)| match author_of(entry, &BTreeMap::new()) {
            Some(author) => Ok((id.clone(), author)),
            None => Err(file.invalid(id, entry, "a name, or {name, email, uri} with a non-empty name")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(config: &str, authors: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("_config.yml"), config).unwrap();
        if let Some(authors) = authors {
            std::fs::create_dir(dir.path().join("_data")).unwrap();
            std::fs::write(dir.path().join("_data/authors.yml"), authors).unwrap();
        }
        dir
    }

    #[test]
    fn config_yml_as_crier_settings() {
        let dir = site(
            "name: Only Name\nurl: https://e.org/\nbaseurl: blog/\nlang: en_US\npermalink: pretty\nauthor: ann\ntheme: minima\nfeed:\n  excerpt_only: true\n  path: atom.xml\n",
            Some("ann: {name: Ann Lee, url: https://ann.example/}\n"),
        );
        let settings = read(dir.path()).unwrap();
        let raw = settings.raw;
        assert_eq!(raw.title.as_deref(), Some("Only Name"), "`name` when there is no `title`");
        assert_eq!(raw.base_url.as_deref(), Some("https://e.org/blog/"));
        assert_eq!(raw.language.as_deref(), Some("en-US"));
        assert_eq!(raw.permalink.as_deref(), Permalink::style("pretty"));
        assert_eq!(raw.author.unwrap().uri.as_deref(), Some("https://ann.example/"), "a key of the authors data");
        assert_eq!((raw.items, raw.content.as_deref()), (Some(POSTS_LIMIT), Some("summary")));
        assert_eq!(settings.feed_path.as_deref(), Some("atom.xml"));
        assert_eq!(raw.posts, Some(dir.path().join("_posts")));
    }

    #[test]
    fn a_missing_config_is_an_empty_one_and_bad_values_name_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let raw = read(dir.path()).unwrap().raw;
        assert_eq!((raw.title, raw.base_url, raw.items), (None, None, Some(POSTS_LIMIT)));
        for (text, key) in [
            ("timezone: Mars/Olympus", "`timezone`"),
            ("url: /relative", "`url`"),
            ("author: {email: a@e.org}", "`author`"),
            ("feed: {excerpt_only: maybe}", "`feed.excerpt_only`"),
            ("feed: {posts_limit: 0}", "`feed.posts_limit`"),
            ("title: {a: 1}", "`title`"),
        ] {
            let dir = site(text, None);
            let error = read(dir.path()).unwrap_err().to_string();
            assert!(error.contains("_config.yml") && error.contains(key), "{text}: {error}");
        }
        let dir = site("title: T\n", Some("ann: {email: a@e.org}\n"));
        let error = read(dir.path()).unwrap_err().to_string();
        assert!(error.contains("authors.yml") && error.contains("`ann`"), "{error}");
    }
}
