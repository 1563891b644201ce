//! A post: one file's bytes turned into metadata (front matter, dates, taxonomy, link) and a body.
//!
//! Pure: the caller reads the file and hands over its bytes, path and modification time.
//! Every way a file can be wrong ends in a [`PostError`] naming the file, the line and the fix.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use chrono::{DateTime, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike};
use chrono_tz::Tz;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;
use url::Url;

use crate::permalink::Permalink;
use crate::text::{Term, is_language_tag, is_xml_char, strip_tags, xml_safe};

/// A post that cannot be published, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostError {
    pub path: PathBuf,
    /// 1-based line in the file.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for PostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.path.display(), self.line, self.message)
    }
}

impl std::error::Error for PostError {}

/// Something crier guessed for a post; published anyway, but worth telling the author.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostWarning {
    pub line: usize,
    pub message: String,
}

/// Who wrote a post: the front matter's `author`, else the site's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Author {
    pub name: String,
    pub email: Option<String>,
    pub uri: Option<String>,
}

/// How the body is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BodyFormat {
    Markdown,
    Html,
}

/// Everything about a post except its body, which is kept out of memory until a feed needs it.
/// It is kept across restarts (the scan index in `state`) without its path, the index's key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PostMeta {
    /// Shared with the engine's map of the files it has seen.
    #[serde(skip, default = "no_path")]
    pub path: Arc<Path>,
    pub title: Box<str>,
    pub date: DateTime<FixedOffset>,
    pub updated: DateTime<FixedOffset>,
    pub categories: Vec<Term>,
    pub tags: Vec<Term>,
    /// Absolute, ASCII-only URL of the post.
    pub link: Box<str>,
    /// The front matter's `id`/`guid`, when it has one. (The optional texts are boxed strings,
    /// two words each instead of three: the record is kept for every post.)
    pub id: Option<Box<str>>,
    /// Boxed: most posts have none, and the record is kept for every post.
    pub author: Option<Box<Author>>,
    /// The front matter's `description`/`excerpt`/`summary`, plain text; empty when the post asks
    /// for no summary at all (`excerpt: ""`).
    pub summary: Option<Box<str>>,
    /// The post's image (`image`, a URL, a site path or `{path: ...}`), absolute and ASCII.
    pub image: Option<Box<str>>,
    /// The post's language (`lang`), when it differs from the site's.
    pub lang: Option<Box<str>>,
    /// Feeds carry the summary of this post, never its whole body (`feed: {excerpt_only: true}`).
    pub excerpt_only: bool,
    /// Liquid in the body is rendered (unless `render_with_liquid: false`).
    pub liquid: bool,
    pub format: BodyFormat,
    /// The line of the file where the body starts.
    pub body_line: usize,
    /// Not published (`published: false` or `draft: true`).
    pub draft: bool,
    pub warnings: Vec<PostWarning>,
    /// Which version of the file this is: set by whoever read it (the engine stamps it from the
    /// file's fingerprint); 0 until then.
    #[serde(skip)]
    pub version: u64,
}

/// The path of a record read back from the scan index, whose key holds it (one empty path
/// shared by them all until each is given its own).
fn no_path() -> Arc<Path> {
    static EMPTY: std::sync::LazyLock<Arc<Path>> = std::sync::LazyLock::new(|| Arc::from(Path::new("")));
    EMPTY.clone()
}

impl PostMeta {
    /// The identifier feeds use: the front matter's, else the permalink.
    pub fn guid(&self) -> &str {
        self.id.as_deref().unwrap_or(&self.link)
    }

    /// Without the spare room of its lists (a list read item by item grows by doubling, to four
    /// items for one category): the record is kept for every post.
    pub fn shrunk(mut self) -> PostMeta {
        self.categories.shrink_to_fit();
        self.tags.shrink_to_fit();
        self.warnings.shrink_to_fit();
        self
    }
}

#[cfg(test)]
impl PostMeta {
    /// A Markdown post at `path` titled after it, linked at `https://e.org/<path>`, in no
    /// category or tag: the other modules' tests change what they need.
    pub fn example(path: &str, date: DateTime<FixedOffset>) -> PostMeta {
        PostMeta {
            path: Path::new(path).into(),
            title: path.into(),
            date,
            updated: date,
            categories: vec![],
            tags: vec![],
            link: format!("https://e.org/{path}").into(),
            id: None,
            author: None,
            summary: None,
            image: None,
            lang: None,
            excerpt_only: false,
            liquid: true,
            format: BodyFormat::Markdown,
            body_line: 5,
            draft: false,
            warnings: vec![],
            version: 0,
        }
    }
}

/// The site-wide settings a post needs to be understood.
#[derive(Debug, Clone)]
pub struct PostContext<'a> {
    pub timezone: Tz,
    pub base_url: &'a Url,
    pub permalink: &'a Permalink,
    pub max_bytes: u64,
    /// The most categories, and the most tags, one post may list.
    pub max_terms: usize,
    /// Authors a post may name by key (`author: alice`).
    pub authors: &'a BTreeMap<String, Author>,
    /// Jekyll's rules for dates, links and ids (`--jekyll`): an unquoted YAML timestamp without
    /// offset is UTC, dates are written in the site's zone, ids are Jekyll's post ids.
    pub jekyll: bool,
    /// A Jekyll site's `_drafts`, when its drafts are published: files there need no date.
    pub drafts: Option<&'a Path>,
}

/// The extensions of post files.
pub const POST_EXTENSIONS: &[&str] = &["md", "markdown", "txt", "html", "htm"];

/// Whether a file name (not a path) names a post: right extension, not hidden, not an editor leftover.
pub fn is_post_file_name(name: &str) -> bool {
    if name.starts_with('.') || name.ends_with('~') || name.starts_with('#') || name == "4913" {
        return false;
    }
    let Some((_, ext)) = name.rsplit_once('.') else { return false };
    POST_EXTENSIONS.iter().any(|e| ext.eq_ignore_ascii_case(e))
}

/// Parses a post file; returns its metadata and its body (normalized to LF line endings).
/// `bytes` may stop right after the front matter, when only the metadata is wanted.
pub fn parse<'b>(
    path: &Path,
    bytes: &'b [u8],
    modified: SystemTime,
    cx: &PostContext<'_>,
) -> Result<(PostMeta, Cow<'b, str>), PostError> {
    let fail = |line: usize, message: String| PostError { path: path.to_owned(), line, message };
    if bytes.len() as u64 > cx.max_bytes {
        return Err(too_large(path, bytes.len() as u64, cx.max_bytes));
    }
    let text = decode(bytes).map_err(|(line, message)| fail(line, message))?;
    if text.trim().is_empty() {
        return Err(fail(1, "file is empty; write front matter (`---`, `title: ...`, `date: ...`, `---`) and a body, or delete the file".into()));
    }
    let (yaml, body_start) = split_front_matter(&text).map_err(|(line, message)| fail(line, message))?;
    let mut front: FrontMatter = if yaml.trim().is_empty() {
        FrontMatter::default()
    } else {
        let options = serde_saphyr::options! { strict_booleans: true };
        serde_saphyr::from_str_with_options(yaml, options).map_err(|e| yaml_error(path, &e))?
    };
    front.quoted =
        [front.date.as_ref(), front.update(cx.jekyll)].map(|value| value.is_some_and(|v| is_quoted(yaml, v)));
    let body_line = 1 + memchr::memchr_iter(b'\n', &text.as_bytes()[..body_start]).count();
    let meta = front.into_meta(path, modified, body_line, cx)?;
    let body = match text {
        Cow::Borrowed(text) => Cow::Borrowed(&text[body_start..]),
        Cow::Owned(text) => Cow::Owned(text[body_start..].to_owned()),
    };
    Ok((meta, body))
}

/// What a post's file name says: its stem without a `YYYY-MM-DD-` prefix, that date, and the
/// body format its extension names.
struct FileName<'a> {
    date: Option<NaiveDate>,
    title_stem: &'a str,
    format: BodyFormat,
}

impl FileName<'_> {
    /// With `jekyll`, Jekyll's date prefix, which allows `2021-1-5-`.
    fn of(path: &Path, jekyll: bool) -> FileName<'_> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
        let (date, title_stem) = if jekyll { split_jekyll_date_prefix(stem) } else { split_date_prefix(stem) };
        let html = ext.eq_ignore_ascii_case("html") || ext.eq_ignore_ascii_case("htm");
        FileName { date, title_stem, format: if html { BodyFormat::Html } else { BodyFormat::Markdown } }
    }
}

impl FrontMatter {
    /// The metadata these keys give the post at `path`; what is missing comes from the file name
    /// or the site, with a warning where the guess may surprise the author.
    fn into_meta(
        mut self,
        path: &Path,
        modified: SystemTime,
        body_line: usize,
        cx: &PostContext<'_>,
    ) -> Result<PostMeta, PostError> {
        let file = FileName::of(path, cx.jekyll);
        let mut warnings = Vec::new();
        // Jekyll publishes a file of `_posts` only when its name starts with a date; a draft is
        // dated by its file's modification time.
        let is_draft = cx.drafts.is_some_and(|drafts| path.starts_with(drafts));
        let undated = cx.jekyll && file.date.is_none() && !is_draft;
        if undated {
            warnings.push(PostWarning {
                line: 1,
                message: "the file name does not start with a date (`2021-12-23-name.md`), so Jekyll does not publish it, and neither does crier; rename it".to_owned(),
            });
        }
        let title = self.title(&file, cx, &mut warnings);
        let mut dating = Vec::new();
        let (date, updated) = self.dates(path, &file, modified, cx, &mut dating)?;
        warnings.extend(dating.into_iter().filter(|_| !is_draft));
        let categories = terms(path, ("categories", self.categories.take()), ("category", self.category.take()), cx)?;
        // Only Jekyll's rules read `slug`: a site that kept it from Hugo keeps its links.
        let slug = self.slug.take().filter(|_| cx.jekyll).and_then(|s| text_of(&s)).filter(|s| !s.is_empty());
        let slug = slug.as_deref().unwrap_or(file.title_stem);
        let link = self.link(&date, slug, &categories, cx);
        let jekyll_id =
            (cx.jekyll && self.id.is_none() && self.guid.is_none()).then(|| jekyll_id(cx.base_url, &link, slug));
        let meta = PostMeta {
            path: path.into(),
            title: title.into(),
            date,
            updated,
            categories,
            tags: terms(path, ("tags", self.tags.take()), ("tag", self.tag.take()), cx)?,
            link: link.into(),
            id: self
                .id
                .take()
                .or(self.guid.take())
                .map(|i| i.0.trim().to_owned())
                .filter(|i| !i.is_empty())
                .or(jekyll_id)
                .map(Into::into),
            author: self.author(cx).map(Box::new),
            summary: self.summary().map(Into::into),
            image: self.image.as_ref().and_then(|image| image_link(image, cx.base_url)).map(Into::into),
            lang: self.lang(&mut warnings).map(Into::into),
            excerpt_only: self.feed.as_ref().and_then(|f| f.get("excerpt_only")).and_then(flag_value) == Some(true),
            liquid: self.render_with_liquid.as_ref().and_then(flag_value) != Some(false),
            format: file.format,
            body_line,
            draft: undated || self.published.is_some_and(|f| !f.0) || self.draft.is_some_and(|f| f.0),
            warnings,
            version: 0,
        };
        Ok(meta.shrunk())
    }

    /// `title` as plain text; else one made from the file name, with a warning.
    fn title(&mut self, file: &FileName<'_>, cx: &PostContext<'_>, warnings: &mut Vec<PostWarning>) -> String {
        if let Some(title) = self.title.take().map(|t| strip_tags(&t.0)).filter(|t| !t.is_empty()) {
            return title;
        }
        warnings.push(PostWarning {
            line: 1,
            message: "no `title` in front matter; using one made from the file name".to_owned(),
        });
        title_from_stem(file.title_stem, cx.jekyll)
    }

    /// The update time's key: jekyll-feed reads `last_modified_at`; crier's own `updated` comes
    /// first otherwise.
    fn update(&self, jekyll: bool) -> Option<&Spanned<Scalar>> {
        match jekyll {
            true => self.last_modified_at.as_ref().or(self.updated.as_ref()),
            false => self.updated.as_ref().or(self.last_modified_at.as_ref()),
        }
    }

    /// The post's date and update time. With Jekyll's rules, an unquoted `2021-12-23 16:34:36`
    /// is a YAML timestamp, which Jekyll reads as UTC, and both are written in the site's zone.
    fn dates(
        &self,
        path: &Path,
        file: &FileName<'_>,
        modified: SystemTime,
        cx: &PostContext<'_>,
        warnings: &mut Vec<PostWarning>,
    ) -> Result<(DateTime<FixedOffset>, DateTime<FixedOffset>), PostError> {
        let value = |key: &str, spanned: &Spanned<Scalar>, quoted: bool| {
            let utc = cx.jekyll && !quoted && is_yaml_timestamp_without_offset(&spanned.value.0);
            let zone = if utc { Tz::UTC } else { cx.timezone };
            // Jekyll writes whole seconds, in the site's zone.
            date_value(path, key, spanned, zone).map(|d| match cx.jekyll {
                true => d.with_timezone(&cx.timezone).fixed_offset().with_nanosecond(0).unwrap_or(d),
                false => d,
            })
        };
        let date = match &self.date {
            Some(spanned) => value("date", spanned, self.quoted[0])?,
            None => match file.date {
                Some(day) => midnight(day, cx.timezone),
                None => {
                    warnings.push(PostWarning {
                        line: 1,
                        message: "no `date` in front matter or file name; using the file's modification time"
                            .to_owned(),
                    });
                    DateTime::<chrono::Utc>::from(modified).with_timezone(&cx.timezone).fixed_offset()
                }
            },
        };
        let updated = match self.update(cx.jekyll) {
            Some(spanned) => value("updated", spanned, self.quoted[1])?,
            None => date,
        };
        Ok((date, updated))
    }

    /// The post's absolute link: its own `permalink` (with Jekyll's rules, a pattern too), else
    /// the site's pattern.
    fn link(&self, date: &DateTime<FixedOffset>, slug: &str, categories: &[Term], cx: &PostContext<'_>) -> String {
        let path = match self.permalink.as_ref().map(|p| p.0.trim()) {
            Some(own) if cx.jekyll && !own.contains("://") => {
                let own = format!("/{}", own.trim_start_matches('/'));
                match Permalink::parse(&own) {
                    Ok(pattern) => pattern.expand(date, slug, categories, true),
                    Err(_) => own,
                }
            }
            Some(own) => own.to_owned(),
            None => cx.permalink.expand(date, slug, categories, cx.jekyll),
        };
        if cx.jekyll { jekyll_link(cx.base_url, &path) } else { absolute_link(cx.base_url, &path) }
    }

    /// `author` (a key of the authors data, a name, `{name, email, uri}`, or a list of them: its
    /// first), else the first of `authors`.
    fn author(&mut self, cx: &PostContext<'_>) -> Option<Author> {
        let value = self.author.take().filter(|v| !v.is_null()).or_else(|| self.authors.take())?;
        author_of(&value, cx.authors)
    }

    /// The summary as jekyll-feed picks it: `description`, else `excerpt` (crier's `summary` too),
    /// tags stripped; an `excerpt` given empty means no summary.
    fn summary(&mut self) -> Option<String> {
        let description = self.description.take().map(|d| strip_tags(&d.0)).filter(|d| !d.is_empty());
        description.or_else(|| self.excerpt.take().or(self.summary.take()).map(|s| strip_tags(&s.0)))
    }

    /// `lang`, when it is a language tag; else a warning.
    fn lang(&mut self, warnings: &mut Vec<PostWarning>) -> Option<String> {
        let spanned = self.lang.take().filter(|l| !l.value.is_null())?;
        let lang = text_of(&spanned.value).map(|l| l.replace('_', "-"));
        if let Some(lang) = lang.filter(|l| is_language_tag(l)) {
            return Some(lang);
        }
        warnings.push(PostWarning {
            line: front_line(&spanned),
            message: format!(
                "`lang: {}` is not a language tag and is ignored; write one such as `zh-CN` or `en`",
                spanned.value
            ),
        });
        None
    }
}

/// A YAML scalar as text (numbers and booleans as written), characters XML forbids taken out.
pub fn text_of(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(text) => Some(xml_safe(text.trim()).into_owned()),
        serde_json::Value::Number(_) | serde_json::Value::Bool(_) => Some(value.to_string()),
        _ => None,
    }
}

/// An author as jekyll-feed reads one: a key of `authors`, a name, `{name, email, uri}` (or
/// `url`), or a list of them (its first). `None` for any other shape or an empty name.
pub fn author_of(value: &serde_json::Value, authors: &BTreeMap<String, Author>) -> Option<Author> {
    let author = match value {
        serde_json::Value::Array(list) => return author_of(list.first()?, authors),
        serde_json::Value::Object(map) => {
            let text = |key: &str| map.get(key).and_then(text_of).filter(|t| !t.is_empty());
            Author { name: text("name")?, email: text("email"), uri: text("uri").or_else(|| text("url")) }
        }
        scalar => {
            let name = text_of(scalar)?;
            authors.get(&name).cloned().unwrap_or(Author { name, email: None, uri: None })
        }
    };
    (!author.name.trim().is_empty()).then_some(author)
}

/// What Jekyll's `escape_path` leaves as it is in a URL's path; everything else is percent-encoded.
const JEKYLL_PATH: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=')
    .remove(b':')
    .remove(b'@')
    .remove(b'/');

/// A link as Jekyll makes one: the site's path and the post's, runs of `/` folded, escaped with
/// Jekyll's set (`|`, `[`, spaces and non-ASCII letters percent-encoded).
fn jekyll_link(base: &Url, path: &str) -> String {
    if let Ok(url) = Url::parse(path) {
        if url.has_host() && matches!(url.scheme(), "http" | "https") {
            return url.into();
        }
    }
    let mut folded = String::with_capacity(path.len() + 1);
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        folded.push('/');
        folded.push_str(segment);
    }
    if path.ends_with('/') || folded.is_empty() {
        folded.push('/');
    }
    let escaped = percent_encoding::utf8_percent_encode(&folded, JEKYLL_PATH).to_string();
    let joined = format!("{}{}", base.as_str().trim_end_matches('/'), escaped);
    Url::parse(&joined).map_or(joined, String::from)
}

/// Jekyll's id of a post: its URL's folder under the site, then its slug as written
/// (`https://e.org/2021/12/24/Space%20Name`; a post at the site's root: `https://e.org/name`).
fn jekyll_id(base: &Url, link: &str, slug: &str) -> String {
    let site = base.as_str().trim_end_matches('/');
    let Some(path) = link.strip_prefix(site) else { return link.to_owned() };
    let folder = path.trim_end_matches('/').rsplit_once('/').map_or("", |(folder, _)| folder);
    let slug = percent_encoding::utf8_percent_encode(slug, JEKYLL_PATH);
    format!("{site}{folder}/{slug}")
}

/// A post's `image` as an absolute URL: a URL, a site path, or a mapping with `path`; a
/// `//host/...` reference takes the site's scheme.
fn image_link(value: &serde_json::Value, base: &Url) -> Option<String> {
    let text = match value {
        serde_json::Value::String(text) => text,
        serde_json::Value::Object(map) => map.get("path")?.as_str()?,
        _ => return None,
    };
    let text = text.trim();
    if let Some(rest) = text.strip_prefix("//") {
        return Url::parse(&format!("{}://{rest}", base.scheme())).ok().map(String::from);
    }
    (!text.is_empty()).then(|| absolute_link(base, text))
}

/// A YAML boolean, as a mapping's value (`feed: {excerpt_only: true}`).
fn flag_value(value: &serde_json::Value) -> Option<bool> {
    match value {
        serde_json::Value::Bool(b) => Some(*b),
        serde_json::Value::String(s) => Flag::from_text(s),
        _ => None,
    }
}

/// Whether a plain YAML scalar is a timestamp with a time of day and no offset
/// (`2021-12-23 16:34:36`, seconds required): YAML 1.1 reads those as UTC.
fn is_yaml_timestamp_without_offset(text: &str) -> bool {
    let text = text.trim();
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dt%H:%M:%S%.f"]
        .iter()
        .any(|format| NaiveDateTime::parse_from_str(text, format).is_ok())
}

/// Whether a front-matter value is written in quotes, which makes it text for YAML 1.1.
fn is_quoted<T>(yaml: &str, spanned: &Spanned<T>) -> bool {
    let at = spanned.referenced.span().byte_offset().and_then(|offset| yaml.get(offset as usize..));
    at.is_some_and(|rest| rest.starts_with(['"', '\'']))
}

/// The names of one taxonomy (its plural key, else its singular one), each once; more than `max`
/// names is an error naming the key's line, before any work that grows with their number.
fn terms(
    path: &Path,
    plural: (&str, Option<Spanned<StringList>>),
    singular: (&str, Option<Spanned<StringList>>),
    cx: &PostContext<'_>,
) -> Result<Vec<Term>, PostError> {
    let max = cx.max_terms;
    let (key, mut list) = match (plural, singular) {
        ((key, Some(list)), _) | (_, (key, Some(list))) => (key, list),
        _ => return Ok(Vec::new()),
    };
    // Jekyll splits a string on spaces for `categories` and `tags`, not for `category` and `tag`.
    if let Some(whole) = list.value.1.take().filter(|_| cx.jekyll && !key.ends_with('s')) {
        list.value.0 = vec![whole];
    }
    let count = list.value.0.len();
    if count > max {
        return Err(PostError {
            path: path.to_owned(),
            line: front_line(&list),
            message: format!(
                "`{key}` lists {count} names, over the limit of {max}; keep the ones readers subscribe to, or raise `max_terms` in the config"
            ),
        });
    }
    Ok(dedup(list.value.0))
}

/// A front-matter date, or an error naming its line.
fn date_value(
    path: &Path,
    key: &str,
    spanned: &Spanned<Scalar>,
    timezone: Tz,
) -> Result<DateTime<FixedOffset>, PostError> {
    parse_date(&spanned.value.0, timezone).ok_or_else(|| PostError {
        path: path.to_owned(),
        line: front_line(spanned),
        message: bad_date_message(key, &spanned.value.0),
    })
}

/// The error for a file over the size limit.
pub fn too_large(path: &Path, len: u64, max: u64) -> PostError {
    PostError {
        path: path.to_owned(),
        line: 1,
        message: format!(
            "file is {len} bytes, over the limit of {max} bytes; shorten it or raise `max_post_bytes` in the config"
        ),
    }
}

/// Bytes to text: UTF-8 only (BOM dropped), CRLF to LF, characters XML 1.0 forbids removed.
fn decode(bytes: &[u8]) -> Result<Cow<'_, str>, (usize, String)> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    // simdutf8 validates at memory speed; std only runs to say where the first bad byte is.
    let text = simdutf8::basic::from_utf8(bytes).map_err(|_| {
        let valid = std::str::from_utf8(bytes).map_or_else(|e| e.valid_up_to(), |_| bytes.len());
        let line = 1 + memchr::memchr_iter(b'\n', &bytes[..valid]).count();
        (line, "file is not valid UTF-8 (is it GBK or Latin-1?); convert it, e.g. `iconv -f GBK -t UTF-8`".to_owned())
    })?;
    let mut text = Cow::Borrowed(text);
    if memchr::memchr(b'\r', bytes).is_some() {
        text = Cow::Owned(text.replace("\r\n", "\n"));
    }
    if has_forbidden_characters(text.as_bytes()) {
        text = Cow::Owned(text.chars().filter(|&c| is_xml_char(c)).collect());
    }
    Ok(text)
}

/// Whether UTF-8 `bytes` hold a character XML 1.0 forbids: a C0 control other than tab, LF and
/// CR, or U+FFFE/U+FFFF. A byte scan, much faster than decoding characters.
fn has_forbidden_characters(bytes: &[u8]) -> bool {
    // A block at a time with no early exit inside, which the compiler turns into vector code.
    let control = |b: u8| u8::from(b < 0x20) & u8::from(!matches!(b, b'\t' | b'\n' | b'\r'));
    let controls = bytes.chunks(64).any(|block| block.iter().fold(0, |any, &b| any | control(b)) != 0);
    // U+FFFE and U+FFFF are EF BF BE and EF BF BF.
    controls || memchr::memmem::find_iter(bytes, b"\xEF\xBF").any(|at| matches!(bytes.get(at + 2), Some(0xBE | 0xBF)))
}

/// How many leading bytes of a post file hold its front matter (the closing `---` or `...` line
/// included), if `head` shows its end. Reading that much is enough for the metadata.
pub fn front_matter_len(head: &[u8]) -> Option<usize> {
    let bom = if head.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
    let mut lines = head[bom..].split_inclusive(|&b| b == b'\n');
    if lines.next()?.trim_ascii_end() != b"---" {
        return None;
    }
    let mut end = bom + head[bom..].iter().position(|&b| b == b'\n')? + 1;
    for line in lines {
        if !line.ends_with(b"\n") {
            return None;
        }
        end += line.len();
        if matches!(line.trim_ascii_end(), b"---" | b"...") {
            return Some(end);
        }
    }
    None
}

/// Splits `---\nYAML\n---\nbody`: the YAML, and where the body starts.
fn split_front_matter(text: &str) -> Result<(&str, usize), (usize, String)> {
    let mut lines = text.split_inclusive('\n');
    let first = lines.next().unwrap_or_default();
    if first.trim_end() != "---" {
        return Err((
            1,
            "no front matter: the file must start with a line `---`, then keys such as `title:` and `date:`, then a line `---`".into(),
        ));
    }
    let yaml_start = first.len();
    let mut offset = yaml_start;
    for line in lines {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed == "..." {
            let body_start = offset + line.len();
            return Ok((&text[yaml_start..offset], body_start));
        }
        offset += line.len();
    }
    Err((1, "front matter is never closed: add a line `---` after its last key".into()))
}

/// The file line a front-matter value sits on (the YAML starts on line 2).
fn front_line<T>(spanned: &Spanned<T>) -> usize {
    spanned.referenced.line() as usize + 1
}

fn yaml_error(path: &Path, error: &serde_saphyr::Error) -> PostError {
    let line = error.location().map_or(1, |l| l.line() as usize + 1);
    let mut options = serde_saphyr::RenderOptions::default();
    options.snippets = serde_saphyr::SnippetMode::Off;
    options.line_offset = 1;
    let detail = error.render_with_options(options);
    let detail = detail.lines().next().unwrap_or_default().trim();
    PostError {
        path: path.to_owned(),
        line,
        message: format!(
            "front matter is not valid YAML ({detail}); check quoting: a value with `:` or `#` must be in quotes"
        ),
    }
}

fn bad_date_message(key: &str, value: &str) -> String {
    format!(
        "`{key}: {value}` is not a date; write it as `2021-12-23 16:34:36 +0800`, `2021-12-23 16:34`, `2021-12-23` or RFC 3339"
    )
}

/// Parses Jekyll's date forms and RFC 3339; a date without an offset is in `timezone`.
pub fn parse_date(text: &str, timezone: Tz) -> Option<DateTime<FixedOffset>> {
    use chrono::Datelike;
    // Feeds can only write years 1 to 9999 (RFC 822 and RFC 3339 have four digits).
    parse_any_date(text, timezone).filter(|d| (1..=9999).contains(&d.year()) && (1..=9999).contains(&d.to_utc().year()))
}

fn parse_any_date(text: &str, timezone: Tz) -> Option<DateTime<FixedOffset>> {
    let text = text.trim();
    if let Ok(date) = DateTime::parse_from_rfc3339(text) {
        return Some(date);
    }
    // YAML's timestamps also allow a lower-case `t`, and ` Z` for UTC.
    let utc = text.strip_suffix('Z').filter(|t| t.ends_with(|c: char| c.is_ascii_digit() || c == ' '));
    let normalized = utc.map(|t| format!("{} +0000", t.trim_end()));
    let text = normalized.as_deref().unwrap_or(text);
    let with_t = (text.len() > 10 && text.as_bytes()[10] == b't').then(|| format!("{}T{}", &text[..10], &text[11..]));
    let text = with_t.as_deref().unwrap_or(text);
    for format in ["%Y-%m-%d %H:%M:%S%.f %z", "%Y-%m-%d %H:%M %z", "%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%.f %z"]
    {
        if let Ok(date) = DateTime::parse_from_str(text, format) {
            return Some(date);
        }
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return Some(in_zone(naive, timezone));
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().map(|day| midnight(day, timezone))
}

fn midnight(day: NaiveDate, timezone: Tz) -> DateTime<FixedOffset> {
    in_zone(day.and_hms_opt(0, 0, 0).expect("midnight exists on every day"), timezone)
}

/// A wall-clock time in a zone; in a DST gap, the time is read as if the clocks had not moved yet.
fn in_zone(naive: NaiveDateTime, timezone: Tz) -> DateTime<FixedOffset> {
    match timezone.from_local_datetime(&naive) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.fixed_offset(),
        LocalResult::None => {
            let earlier = timezone.from_local_datetime(&(naive - chrono::Duration::hours(1)));
            match earlier.earliest() {
                Some(t) => (t + chrono::Duration::hours(1)).fixed_offset(),
                None => chrono::Utc.from_utc_datetime(&naive).fixed_offset(),
            }
        }
    }
}

/// Jekyll's date prefix, `\d{2,4}-\d{1,2}-\d{1,2}-`: `2021-1-5-post` -> (Some(2021-01-05), "post").
fn split_jekyll_date_prefix(stem: &str) -> (Option<NaiveDate>, &str) {
    let mut parts = stem.splitn(4, '-');
    let (Some(y), Some(m), Some(d), Some(rest)) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return (None, stem);
    };
    let digits =
        |p: &str, min: usize, max: usize| (min..=max).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
    if !(digits(y, 2, 4) && digits(m, 1, 2) && digits(d, 1, 2)) || rest.is_empty() {
        return (None, stem);
    }
    let day = NaiveDate::from_ymd_opt(y.parse().unwrap_or(0), m.parse().unwrap_or(0), d.parse().unwrap_or(0));
    match day {
        Some(day) => (Some(day), rest),
        None => (None, stem),
    }
}

/// `2021-12-23-some-post` -> (Some(2021-12-23), "some-post").
fn split_date_prefix(stem: &str) -> (Option<NaiveDate>, &str) {
    if stem.len() > 11 && stem.is_char_boundary(10) && stem.as_bytes()[10] == b'-' {
        if let Ok(day) = NaiveDate::parse_from_str(&stem[..10], "%Y-%m-%d") {
            return (Some(day), &stem[11..]);
        }
    }
    (None, stem)
}

/// A title from a file name: its words, the first capitalized (with `jekyll`, every one, as
/// Jekyll's `titleize_slug`).
fn title_from_stem(stem: &str, jekyll: bool) -> String {
    let words = stem.replace(['-', '_'], " ");
    let words = words.trim();
    if jekyll && !words.is_empty() {
        return words.split(' ').map(|word| title_from_stem(word, false)).collect::<Vec<_>>().join(" ");
    }
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => "Untitled".to_owned(),
    }
}

fn dedup(items: Vec<String>) -> Vec<Term> {
    let mut out: Vec<Term> = Vec::with_capacity(items.len());
    for item in &items {
        let item = item.trim();
        if !item.is_empty() && !out.iter().any(|known| known.as_str() == item) {
            out.push(Term::new(item));
        }
    }
    out
}

/// An absolute URL for a front-matter permalink or an expanded pattern. Site-relative paths go
/// under the base URL segment by segment, so `?`, `#` and non-ASCII letters are percent-encoded.
pub fn absolute_link(base: &Url, permalink: &str) -> String {
    // Only web URLs are taken as they are: `javascript://host/...` has a host too.
    if let Ok(url) = Url::parse(permalink) {
        if url.has_host() && matches!(url.scheme(), "http" | "https") {
            return url.into();
        }
    }
    let mut url = base.clone();
    {
        let Ok(mut segments) = url.path_segments_mut() else { return base.to_string() };
        segments.pop_if_empty();
        let parts: Vec<&str> = permalink.split('/').filter(|s| !s.is_empty() && *s != "." && *s != "..").collect();
        segments.extend(&parts);
        if permalink.ends_with('/') && !parts.is_empty() {
            segments.push("");
        }
    }
    url.into()
}

// ---- front matter as serde sees it ----

#[derive(Debug, Default, Deserialize)]
struct FrontMatter {
    title: Option<Scalar>,
    date: Option<Spanned<Scalar>>,
    updated: Option<Spanned<Scalar>>,
    last_modified_at: Option<Spanned<Scalar>>,
    categories: Option<Spanned<StringList>>,
    category: Option<Spanned<StringList>>,
    tags: Option<Spanned<StringList>>,
    tag: Option<Spanned<StringList>>,
    permalink: Option<Scalar>,
    slug: Option<serde_json::Value>,
    author: Option<serde_json::Value>,
    authors: Option<serde_json::Value>,
    description: Option<Scalar>,
    excerpt: Option<Scalar>,
    summary: Option<Scalar>,
    image: Option<serde_json::Value>,
    lang: Option<Spanned<serde_json::Value>>,
    /// jekyll-feed's per-post settings (`excerpt_only`); any other shape is ignored.
    feed: Option<serde_json::Value>,
    published: Option<Flag>,
    draft: Option<Flag>,
    render_with_liquid: Option<serde_json::Value>,
    id: Option<Scalar>,
    guid: Option<Scalar>,
    /// Whether `date`, and the update time, are written in quotes (text, not a YAML timestamp).
    #[serde(skip)]
    quoted: [bool; 2],
}

/// Any YAML scalar read as text: `title: 1984` is the title "1984", not an error.
#[derive(Debug, Clone)]
struct Scalar(String);

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a text value")
    }
    // YAML escapes (`"\f"`, `"\x01"`, `"\uFFFE"`) make characters XML forbids after decoding.
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar(xml_safe(v).into_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar(xml_safe(&v).into_owned()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar(v.to_string()))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar(v.to_string()))
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

/// A YAML list of scalars, or one string split on whitespace (Jekyll's rule); the string as
/// written too, when it was one.
#[derive(Debug, Default)]
struct StringList(Vec<String>, Option<String>);

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = StringList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of names, or names separated by spaces")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StringList, E> {
                let text = xml_safe(v);
                Ok(StringList(text.split_whitespace().map(str::to_owned).collect(), Some(text.trim().to_owned())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StringList, E> {
                Ok(StringList(vec![v.to_string()], None))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StringList, E> {
                Ok(StringList(vec![v.to_string()], None))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<StringList, E> {
                Ok(StringList(vec![v.to_string()], None))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<StringList, E> {
                Ok(StringList(vec![v.to_string()], None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<StringList, E> {
                Ok(StringList::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StringList, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = seq.next_element::<Option<Scalar>>()? {
                    out.extend(item.map(|s| s.0));
                }
                Ok(StringList(out, None))
            }
        }
        d.deserialize_any(ListVisitor)
    }
}

/// A yes/no value: a YAML boolean, or the words true/false/yes/no.
#[derive(Debug, Clone, Copy)]
struct Flag(bool);

impl Flag {
    fn from_text(text: &str) -> Option<bool> {
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" => Some(true),
            "false" | "no" | "off" => Some(false),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Scalar(text) = Scalar::deserialize(d)?;
        Flag::from_text(&text).map(Flag).ok_or_else(|| de::Error::custom(format!("`{text}` is not true or false")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static NO_AUTHORS: BTreeMap<String, Author> = BTreeMap::new();

    fn cx<'a>(base: &'a Url, permalink: &'a Permalink) -> PostContext<'a> {
        PostContext {
            timezone: "Asia/Shanghai".parse().unwrap(),
            base_url: base,
            permalink,
            max_bytes: 1 << 20,
            max_terms: 5,
            authors: &NO_AUTHORS,
            jekyll: false,
            drafts: None,
        }
    }

    fn parse_at(name: &str, text: &str) -> Result<(PostMeta, String), PostError> {
        let base = Url::parse("https://news.example.com/").unwrap();
        parse(Path::new(name), text.as_bytes(), SystemTime::UNIX_EPOCH, &cx(&base, &Permalink::default()))
            .map(|(m, b)| (m, b.into_owned()))
    }

    fn meta(text: &str) -> PostMeta {
        parse_at("posts/a-post.md", text).unwrap().0
    }

    #[test]
    fn reference_shape() {
        let (m, body) = parse_at(
            "posts/news/example-post.txt",
            "---\nlayout: post\ntitle: \"平安银行 创新\"\ndate: 2021-12-23 16:34:36 +0800\ncategories: qingdaocaijingwang\ntags: 青岛财经网新闻\n---\n<p>正文</p>\n",
        )
        .unwrap();
        assert_eq!(&*m.title, "平安银行 创新");
        assert_eq!(m.date.to_rfc3339(), "2021-12-23T16:34:36+08:00");
        assert_eq!(m.categories, ["qingdaocaijingwang"]);
        assert_eq!(m.tags, ["青岛财经网新闻"]);
        assert_eq!(&*m.link, "https://news.example.com/qingdaocaijingwang/2021/12/23/example-post.html");
        assert_eq!(body, "<p>正文</p>\n");
        assert!(m.warnings.is_empty());
    }

    #[test]
    fn date_forms() {
        let tz: Tz = "Asia/Shanghai".parse().unwrap();
        for (text, expected) in [
            ("2021-12-23 16:34:36 +0800", "2021-12-23T16:34:36+08:00"),
            ("2021-12-23 16:34:36 -0500", "2021-12-23T16:34:36-05:00"),
            ("2021-12-23 16:34:36", "2021-12-23T16:34:36+08:00"),
            ("2021-12-23 16:34", "2021-12-23T16:34:00+08:00"),
            ("2021-12-23", "2021-12-23T00:00:00+08:00"),
            ("2021-12-23T08:34:36Z", "2021-12-23T08:34:36+00:00"),
            ("2021-12-23T16:34:36+08:00", "2021-12-23T16:34:36+08:00"),
            ("2021-12-23T16:34:36.250+08:00", "2021-12-23T16:34:36.250+08:00"),
            ("2021-12-23 16:34:36.5 +0800", "2021-12-23T16:34:36.500+08:00"),
        ] {
            let date = parse_date(text, tz).unwrap_or_else(|| panic!("{text} should parse"));
            assert_eq!(date.to_rfc3339(), expected, "{text}");
        }
        for bad in [
            "yesterday",
            "2021-13-01",
            "2021-12-32 10:00",
            "23/12/2021",
            "",
            "-1-01-01",
            "+10000-01-01",
            "0000-01-01 00:00 +0100",
        ] {
            assert!(parse_date(bad, tz).is_none(), "{bad} should not parse");
        }
    }

    #[test]
    fn dst_gap_moves_forward() {
        let tz: Tz = "America/New_York".parse().unwrap();
        // 02:30 does not exist on 2021-03-14 in New York.
        let date = parse_date("2021-03-14 02:30", tz).unwrap();
        assert_eq!(date.to_rfc3339(), "2021-03-14T03:30:00-04:00");
    }

    #[test]
    fn site_timezone_applies_without_offset() {
        let m = meta("---\ntitle: t\ndate: 2021-12-23 16:34\n---\nx");
        assert_eq!(m.date.offset().local_minus_utc(), 8 * 3600);
        assert_eq!(m.updated, m.date);
    }

    #[test]
    fn updated_and_last_modified_at() {
        let m = meta("---\ntitle: t\ndate: 2021-01-01\nupdated: 2021-02-01 10:00 +0000\n---\n");
        assert_eq!(m.updated.to_rfc3339(), "2021-02-01T10:00:00+00:00");
        let m = meta("---\ntitle: t\ndate: 2021-01-01\nlast_modified_at: 2021-03-01\n---\n");
        assert_eq!(m.updated.to_rfc3339(), "2021-03-01T00:00:00+08:00");
    }

    #[test]
    fn taxonomy_forms() {
        let m = meta("---\ntitle: t\ndate: 2021-01-01\ncategories: [a, b, a]\ntags: x y  z\n---\n");
        assert_eq!(m.categories, ["a", "b"]);
        assert_eq!(m.tags, ["x", "y", "z"]);
        let m = meta("---\ntitle: t\ndate: 2021-01-01\ncategory: 新闻\ntag:\n  - 2021\n  - true\n---\n");
        assert_eq!(m.categories, ["新闻"]);
        assert_eq!(m.tags, ["2021", "true"]);
        let m = meta("---\ntitle: 1984\ndate: 2021-01-01\ncategories: 2021\n---\n");
        assert_eq!(&*m.title, "1984");
        assert_eq!(m.categories, ["2021"]);
    }

    #[test]
    fn too_many_terms_name_the_key_and_its_line() {
        let error = parse_at("posts/t.md", "---\ntitle: t\ndate: 2021-01-01\ncategories: [a, b, c, d, e, f]\n---\n")
            .unwrap_err();
        assert_eq!((error.line, error.path.as_path()), (4, Path::new("posts/t.md")));
        assert!(error.message.contains("`categories` lists 6 names, over the limit of 5"), "{}", error.message);
        assert!(error.message.contains("max_terms"), "the fix: {}", error.message);
        let error = parse_at("posts/t.md", "---\ntitle: t\ntag: a b c d e f g\ndate: 2021-01-01\n---\n").unwrap_err();
        assert_eq!(error.line, 3);
        assert!(error.message.contains("`tag` lists 7 names"), "{}", error.message);
        let m = meta("---\ntitle: t\ndate: 2021-01-01\ncategories: [a, b, c, d, e]\ntags: [x, x, x, x, x]\n---\n");
        assert_eq!((m.categories.len(), m.tags.len()), (5, 1), "the limit itself is fine");
    }

    #[test]
    fn permalinks_and_ids() {
        let m = meta("---\ntitle: t\ndate: 2021-01-01\npermalink: /about/changes.html\n---\n");
        assert_eq!(&*m.link, "https://news.example.com/about/changes.html");
        let m = meta("---\ntitle: t\ndate: 2021-01-01\npermalink: https://other.example.org/x\n---\n");
        assert_eq!(&*m.link, "https://other.example.org/x");
        let m = meta("---\ntitle: t\ndate: 2021-01-01 10:00\ncategories: 青岛 News\n---\n");
        assert_eq!(&*m.link, "https://news.example.com/%E9%9D%92%E5%B2%9B/news/2021/01/01/a-post.html");
        assert_eq!(m.guid(), &*m.link);
        let m = meta("---\ntitle: t\ndate: 2021-01-01\nguid: abc-123\n---\n");
        assert_eq!(m.guid(), "abc-123");
    }

    #[test]
    fn link_under_a_base_path_and_odd_names() {
        let base = Url::parse("https://e.org/blog/").unwrap();
        assert_eq!(absolute_link(&base, "/a b/c?d#e.html"), "https://e.org/blog/a%20b/c%3Fd%23e.html");
        assert_eq!(absolute_link(&base, "/x/../y/"), "https://e.org/blog/x/y/");
        assert_eq!(absolute_link(&base, "c:weird"), "https://e.org/blog/c:weird");
        let script = absolute_link(&base, "javascript://e.org/%0Aalert(1)");
        assert!(script.starts_with("https://e.org/blog/javascript:"), "only web URLs are kept as they are: {script}");
    }

    #[test]
    fn authors_summaries_drafts() {
        let m = meta("---\ntitle: t\ndate: 2021-01-01\nauthor: 李雷\nexcerpt: short\n---\n");
        assert_eq!(m.author.unwrap().name, "李雷");
        assert_eq!(m.summary.as_deref(), Some("short"));
        let m = meta("---\ntitle: t\ndate: 2021-01-01\nauthor: {name: Ann, email: ann@example.com}\n---\n");
        assert_eq!(m.author.unwrap().email.as_deref(), Some("ann@example.com"));
        assert!(meta("---\ntitle: t\ndate: 2021-01-01\npublished: false\n---\n").draft);
        assert!(meta("---\ntitle: t\ndate: 2021-01-01\ndraft: true\n---\n").draft);
        assert!(!meta("---\ntitle: t\ndate: 2021-01-01\nlayout: post\nfoo: [1]\n---\n").draft);
    }

    #[test]
    fn fallbacks_warn() {
        let (m, _) = parse_at("posts/2021-05-06-hello-world.md", "---\n---\nbody").unwrap();
        assert_eq!(&*m.title, "Hello world");
        assert_eq!(m.date.to_rfc3339(), "2021-05-06T00:00:00+08:00");
        assert_eq!(&*m.link, "https://news.example.com/2021/05/06/hello-world.html");
        assert_eq!(m.warnings.len(), 1);
        let (m, _) = parse_at("posts/undated.md", "---\ntitle: x\n---\nbody").unwrap();
        assert_eq!(m.date.timestamp(), 0);
        assert!(m.warnings[0].message.contains("modification time"));
    }

    #[test]
    fn yaml_escapes_cannot_smuggle_forbidden_characters() {
        let m =
            meta("---\ntitle: \"a\\fb\\x01c\\uFFFEd\"\ndate: 2021-01-01\ntags: \"x\\by\"\nauthor: \"\\0Ann\"\n---\n");
        assert_eq!(&*m.title, "abcd");
        assert_eq!(m.tags, ["xy"]);
        assert_eq!(m.author.unwrap().name, "Ann");
    }

    #[test]
    fn bom_crlf_and_forbidden_characters() {
        let (m, body) =
            parse_at("p.md", "\u{feff}---\r\ntitle: \"a\u{8}b\"\r\ndate: 2021-01-01\r\n---\r\nline\u{c}1\r\n").unwrap();
        assert_eq!(&*m.title, "ab");
        assert_eq!(body, "line1\n");
    }

    #[test]
    fn forbidden_characters_are_found_anywhere_in_a_block() {
        let oracle = |text: &str| {
            text.chars().any(|c| (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{FFFE}' | '\u{FFFF}'))
        };
        // Each character XML forbids, and neighbours it allows, at every place around the
        // 64-byte blocks the scan works in, amid Chinese text (whose bytes are all high).
        let probes =
            ["\u{1}", "\u{1f}", "\u{0}", "\u{FFFE}", "\u{FFFF}", "\t", "\n", "\r", "\u{FFFD}", "\u{FFE5}", "\u{7f}"];
        for probe in probes {
            for at in [0, 1, 21, 62, 63, 64, 65, 127, 128, 190] {
                let text: String =
                    "新闻".repeat(40).chars().take(at / 3).collect::<String>() + "x".repeat(at % 3).as_str();
                let text = format!("{text}{probe}{}", "报道".repeat(30));
                assert_eq!(
                    has_forbidden_characters(text.as_bytes()),
                    oracle(&text),
                    "{probe:?} at byte {}",
                    text.find(probe).unwrap()
                );
            }
        }
        assert!(!has_forbidden_characters("\u{FFFD}\u{FFFE}".as_bytes()[..5].as_ref()), "a cut-off U+FFFE is not one");
    }

    #[test]
    fn bad_input_names_line_and_fix() {
        let cases: &[(&[u8], usize, &str)] = &[
            (b"just text\n", 1, "no front matter"),
            (b"---\ntitle: x\n", 1, "never closed"),
            (b"", 1, "empty"),
            (b"  \n\n", 1, "empty"),
            (b"---\ntitle: x\ndate: someday\n---\n", 3, "not a date"),
            (b"---\ntitle: x\ndate: 2021-01-01\nupdated: later\n---\n", 4, "not a date"),
            (b"---\ntitle: x\n  bad: [\n---\n", 3, "not valid YAML"),
            (b"---\ntitle: ok\n---\n\xc7\xe0\xb5\xba\n", 4, "not valid UTF-8"),
            (b"---\ntitle: x\ndraft: maybe\n---\n", 3, "not valid YAML"),
        ];
        for (bytes, line, needle) in cases {
            let base = Url::parse("https://e.org/").unwrap();
            let error =
                parse(Path::new("posts/bad.md"), bytes, SystemTime::UNIX_EPOCH, &cx(&base, &Permalink::default()))
                    .unwrap_err();
            assert_eq!(error.line, *line, "{error}");
            assert!(error.message.contains(needle), "{error}");
            assert!(error.to_string().starts_with("posts/bad.md:"), "{error}");
        }
    }

    #[test]
    fn front_matter_length() {
        assert_eq!(front_matter_len(b"---\ntitle: x\n---\nbody"), Some(17));
        assert_eq!(front_matter_len(b"\xEF\xBB\xBF---\r\ntitle: x\r\n...\r\nbody"), Some(23));
        assert_eq!(front_matter_len(b"---\ntitle: x\n---"), None, "the closing line may go on");
        assert_eq!(front_matter_len(b"---\ntitle: x\n"), None);
        assert_eq!(front_matter_len(b"no front matter\n---\n"), None);
        let text = "---\ntitle: 平安\ndate: 2021-01-01\n---\n<p>body</p>";
        let end = front_matter_len(text.as_bytes()).unwrap();
        let base = Url::parse("https://e.org/").unwrap();
        let (head, body) = parse(
            Path::new("a.md"),
            &text.as_bytes()[..end],
            SystemTime::UNIX_EPOCH,
            &cx(&base, &Permalink::default()),
        )
        .unwrap();
        let (full, _) =
            parse(Path::new("a.md"), text.as_bytes(), SystemTime::UNIX_EPOCH, &cx(&base, &Permalink::default()))
                .unwrap();
        assert_eq!(head, full);
        assert_eq!(body, "");
    }

    #[test]
    fn size_limit() {
        let base = Url::parse("https://e.org/").unwrap();
        let permalink = Permalink::default();
        let mut context = cx(&base, &permalink);
        context.max_bytes = 10;
        let error =
            parse(Path::new("big.md"), b"---\ntitle: long title\n---\n", SystemTime::UNIX_EPOCH, &context).unwrap_err();
        assert!(error.message.contains("max_post_bytes"), "{error}");
    }

    #[test]
    fn post_file_names() {
        for good in ["a.md", "b.markdown", "c.txt", "d.HTML", "e.htm", "2021-01-01-x.md"] {
            assert!(is_post_file_name(good), "{good}");
        }
        for bad in [".hidden.md", "a.md~", ".#a.md", "a.md.swp", "a.tmp", "4913", "#a.md#", "noext", "a.png"] {
            assert!(!is_post_file_name(bad), "{bad}");
        }
    }

    #[test]
    fn jekyll_reads_unquoted_timestamps_as_utc_and_writes_the_site_zone() {
        let base = Url::parse("https://e.org/").unwrap();
        let permalink = Permalink::default();
        let cx = PostContext { jekyll: true, ..cx(&base, &permalink) };
        let parse_jekyll = |name: &str, text: &str| {
            parse(Path::new(name), text.as_bytes(), SystemTime::UNIX_EPOCH, &cx).map(|(m, _)| m).unwrap()
        };
        for (date, published) in [
            ("2021-12-23 16:34:36", "2021-12-24T00:34:36+08:00"),
            ("\"2021-12-23 16:34:36\"", "2021-12-23T16:34:36+08:00"),
            ("'2021-12-23 16:34:36'", "2021-12-23T16:34:36+08:00"),
            ("2021-12-23 16:34", "2021-12-23T16:34:00+08:00"),
            ("2021-12-23 16:34:36 -0500", "2021-12-24T05:34:36+08:00"),
            ("2021-12-23", "2021-12-23T00:00:00+08:00"),
        ] {
            let meta = parse_jekyll("_posts/2021-12-20-a.md", &format!("---\ntitle: A\ndate: {date}\n---\nx\n"));
            assert_eq!(meta.date.to_rfc3339(), published, "{date}");
        }
        let named = parse_jekyll("_posts/2021-12-20-Space Name.md", "---\ntitle: A\ncategory: Foo Bar\n---\n");
        assert_eq!(&*named.link, "https://e.org/foo%20bar/2021/12/20/Space-Name.html");
        assert_eq!(named.id.as_deref(), Some("https://e.org/foo%20bar/2021/12/20/Space%20Name"));
        let home = parse_jekyll("_posts/2021-12-20-home.md", "---\ntitle: A\npermalink: /\n---\n");
        assert_eq!((&*home.link, home.id.as_deref()), ("https://e.org/", Some("https://e.org/home")));
        let plain = meta("---\ntitle: A\ndate: 2021-12-23 16:34:36\ncategory: Foo Bar\n---\n");
        assert_eq!(
            (plain.date.to_rfc3339().as_str(), plain.id),
            ("2021-12-23T16:34:36+08:00", None),
            "plain mode unchanged"
        );
        assert_eq!(plain.categories, ["Foo", "Bar"]);
    }

    #[test]
    fn jekyll_feed_front_matter() {
        let m = meta(
            "---\ntitle: \"Hello <em>World</em>\\n again\"\nimage: {path: /img/a b.png}\nlang: zh_CN\nfeed: {excerpt_only: true}\nexcerpt: \"\"\ndescription: \"\"\n---\n",
        );
        assert_eq!(&*m.title, "Hello World again");
        assert_eq!(m.image.as_deref(), Some("https://news.example.com/img/a%20b.png"));
        assert_eq!(m.lang.as_deref(), Some("zh-CN"));
        assert!(m.excerpt_only);
        assert_eq!(m.summary.as_deref(), Some(""), "an empty excerpt asks for no summary");
        let m = meta("---\ntitle: A\nlang: \"not a tag!\"\nimage: 5\nfeed: yes\n---\n");
        assert_eq!((m.lang, m.image, m.excerpt_only), (None, None, false));
        assert!(m.warnings.iter().any(|w| w.line == 3 && w.message.contains("lang")), "{:?}", m.warnings);
    }
}
