//! The documents of a site, made from the index in memory: each feed in each format, the OPML
//! list and the index page, with their paths under the feeds folder and their media types. Pure.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, FixedOffset};

use crate::config::{Config, ContentMode};
use crate::feed::opml::{Opml, Outline};
use crate::feed::{self, FeedDoc, Format, History, Item};
use crate::post;
use crate::render::Rendered;
use crate::site::{FeedKey, FeedPlan, path_bytes};
use crate::text::xml_safe;

/// A feed as the index page and the OPML list describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedSummary {
    pub key: FeedKey,
    pub title: String,
    pub items: usize,
    pub updated: DateTime<FixedOffset>,
}

/// The path of a feed's page for people, e.g. `categories/新闻.html`.
pub fn page_path(key: &FeedKey) -> String {
    format!("{}.html", key.stem())
}

/// A feed's file path under the feeds folder, e.g. `categories/新闻.rss`.
pub fn document_path(key: &FeedKey, format: Format) -> String {
    format!("{}.{}", key.stem(), format.extension())
}

/// A feed's public address in one format: its self link and its WebSub topic.
pub fn self_url(config: &Config, key: &FeedKey, format: Format) -> String {
    post::absolute_link(&config.feeds_url, &document_path(key, format))
}

/// The feed's title, as readers list it.
pub fn feed_title(config: &Config, plan: &FeedPlan) -> String {
    let site = xml_safe(&config.title);
    match (&plan.key, &plan.name) {
        (FeedKey::Category(_), Some(name)) => format!("{site} · {name}"),
        (FeedKey::Tag(_), Some(name)) => format!("{site} · #{name}"),
        _ => site.into_owned(),
    }
}

/// An archive page's file path under the feeds folder, e.g. `categories/新闻.archive-3.rss`.
/// A slug never holds a `.`, so no feed's path can be an archive page's.
pub fn archive_path(key: &FeedKey, number: usize, format: Format) -> String {
    format!("{}.archive-{number}.{}", key.stem(), format.extension())
}

/// Whether the document at `rel` is an archive page.
pub fn is_archive(rel: &str) -> bool {
    archive_of(rel).is_some()
}

/// The feed and page number of the archive page at `rel`: the inverse of [`archive_path`].
pub fn archive_of(rel: &str) -> Option<(FeedKey, usize)> {
    let (rest, extension) = rel.rsplit_once('.')?;
    let (stem, number) = rest.rsplit_once(".archive-")?;
    if !Format::ALL.iter().any(|f| f.extension() == extension) || number.starts_with('0') {
        return None;
    }
    Some((FeedKey::from_stem(stem)?, number.parse().ok()?))
}

/// The feed `plan` in `format`, with its history links; `items` are the posts in it, newest
/// first, and date it (the writer may leave some out to fit the size budget).
fn feed_doc<'a>(
    config: &'a Config,
    plan: &FeedPlan,
    self_url: String,
    history: History,
    items: Vec<Item<'a>>,
    hubs: &'a [String],
) -> FeedDoc<'a> {
    let description = match &plan.name {
        Some(name) => format!("{} ({name})", xml_safe(&config.description)),
        None => xml_safe(&config.description).into_owned(),
    };
    FeedDoc {
        title: feed_title(config, plan),
        description,
        home_url: config.base_url.as_str(),
        self_url,
        hubs,
        language: &config.language,
        author: &config.author,
        icon: config.icon.as_ref().map(url::Url::as_str),
        logo: config.logo.as_ref().map(url::Url::as_str),
        updated: feed::newest_update(&items),
        ttl_minutes: config.ttl.as_secs() / 60,
        full_content: config.content == ContentMode::Full,
        history,
        items,
    }
}

/// The posts of `posts` that are rendered, as items.
pub fn items<'a>(posts: impl Iterator<Item = &'a Arc<post::PostMeta>>, rendered: &'a Renderings) -> Vec<Item<'a>> {
    posts.filter_map(|meta| rendered.item(meta)).collect()
}

/// Rendered bodies, by post file. Looked up once per post per page of each feed the post is in
/// and per format (a first publish at 100,000 posts: millions of lookups): by [`path_bytes`],
/// hashed with foldhash.
#[derive(Debug, Default)]
pub struct Renderings(foldhash::HashMap<PathKey, Arc<Rendered>>);

/// A path as a map key: its bytes.
#[derive(Debug)]
struct PathKey(PathBuf);

impl PathKey {
    fn bytes(&self) -> &[u8] {
        path_bytes(&self.0)
    }
}

impl PartialEq for PathKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for PathKey {}

impl std::hash::Hash for PathKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As the bytes' own hash: `Borrow<[u8]>` finds it by them.
        self.bytes().hash(state);
    }
}

impl std::borrow::Borrow<[u8]> for PathKey {
    fn borrow(&self) -> &[u8] {
        self.bytes()
    }
}

impl Renderings {
    pub fn get(&self, path: &Path) -> Option<&Arc<Rendered>> {
        self.0.get(path_bytes(path))
    }

    pub fn get_mut(&mut self, path: &Path) -> Option<&mut Arc<Rendered>> {
        self.0.get_mut(path_bytes(path))
    }

    pub fn contains_key(&self, path: &Path) -> bool {
        self.0.contains_key(path_bytes(path))
    }

    pub fn insert(&mut self, path: PathBuf, rendered: Arc<Rendered>) -> Option<Arc<Rendered>> {
        self.0.insert(PathKey(path), rendered)
    }

    /// `meta` as a feed item, if its body is rendered.
    pub fn item<'a>(&'a self, meta: &'a post::PostMeta) -> Option<Item<'a>> {
        self.get(&meta.path).map(|rendered| Item { meta, rendered })
    }

    pub fn remove(&mut self, path: &Path) -> Option<Arc<Rendered>> {
        self.0.remove(path_bytes(path))
    }

    pub fn remove_entry(&mut self, path: &Path) -> Option<(PathBuf, Arc<Rendered>)> {
        self.0.remove_entry(path_bytes(path)).map(|(key, rendered)| (key.0, rendered))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn keys(&self) -> impl Iterator<Item = &Path> {
        self.0.keys().map(|key| key.0.as_path())
    }
}

impl Extend<(PathBuf, Arc<Rendered>)> for Renderings {
    fn extend<I: IntoIterator<Item = (PathBuf, Arc<Rendered>)>>(&mut self, iter: I) {
        self.0.extend(iter.into_iter().map(|(path, rendered)| (PathKey(path), rendered)));
    }
}

impl FromIterator<(PathBuf, Arc<Rendered>)> for Renderings {
    fn from_iter<I: IntoIterator<Item = (PathBuf, Arc<Rendered>)>>(iter: I) -> Self {
        let mut renderings = Renderings::default();
        renderings.extend(iter);
        renderings
    }
}

/// One feed's subscription document in one format, and how many of its items it holds (fewer
/// than planned when the size budget cut it). `newest_archive` is the number of the feed's newest
/// archive page, when the feed is archived.
pub fn document(
    config: &Config,
    plan: &FeedPlan,
    format: Format,
    rendered: &Renderings,
    newest_archive: Option<usize>,
) -> anyhow::Result<(Vec<u8>, usize)> {
    let hubs = config.hub_urls();
    let history = History {
        complete: config.items == 0,
        prev_archive: newest_archive.map(|n| archive_url(config, &plan.key, n, format)),
        ..History::default()
    };
    let all = items(plan.items.iter(), rendered);
    let self_url = self_url(config, &plan.key, format);
    let mut doc = feed_doc(config, plan, self_url, history, all.clone(), &hubs);
    most_that_fit(all.len(), config.max_feed_bytes, |count| {
        doc.items = all[..count].to_vec();
        // A document that leaves posts out no longer holds them all.
        doc.history.complete = config.items == 0 && count == all.len();
        write(&doc, format)
    })
}

/// An archive page: its number (1 is the oldest) and, oldest first, its posts.
#[derive(Debug, Clone, Copy)]
pub struct Page<'a> {
    pub number: usize,
    /// The newest page, still filling: it has no `next-archive`.
    pub newest: bool,
    pub posts: &'a [Arc<post::PostMeta>],
}

/// An archive page of the feed `key` in one format, and how many of its posts (oldest first) the
/// bytes account for: all of them, or, when the size budget cuts the page, those before the
/// first that did not fit (at least one). A post whose body is not rendered is left out.
pub fn archive_page(
    config: &Config,
    key: &FeedKey,
    page: Page<'_>,
    format: Format,
    rendered: &Renderings,
) -> anyhow::Result<(Vec<u8>, usize)> {
    let link = |n: usize| archive_url(config, key, n, format);
    let history = History {
        complete: false,
        prev_archive: (page.number > 1).then(|| link(page.number - 1)),
        next_archive: (!page.newest).then(|| link(page.number + 1)),
        current: Some(self_url(config, key, format)),
    };
    // The rendered posts as items, and where each is among the page's posts: one lookup each.
    let (at, oldest_first): (Vec<usize>, Vec<Item<'_>>) =
        page.posts.iter().enumerate().filter_map(|(i, meta)| rendered.item(meta).map(|item| (i, item))).unzip();
    let newest_first = crate::site::Site::plan_of(key, page.posts.iter().rev().cloned().collect());
    let mut doc = feed_doc(config, &newest_first, link(page.number), history, oldest_first.clone(), &[]);
    doc.full_content = config.archive_content == ContentMode::Full;
    let (bytes, count) = most_that_fit(oldest_first.len(), config.max_feed_bytes, |count| {
        doc.items = oldest_first[..count].iter().rev().copied().collect();
        write(&doc, format)
    })?;
    Ok((bytes, at.get(count).copied().unwrap_or(page.posts.len())))
}

/// An archive page's public address.
pub fn archive_url(config: &Config, key: &FeedKey, number: usize, format: Format) -> String {
    post::absolute_link(&config.feeds_url, &archive_path(key, number, format))
}

fn write(doc: &FeedDoc<'_>, format: Format) -> anyhow::Result<Vec<u8>> {
    match format {
        Format::Rss => feed::rss::write(doc),
        Format::Atom => feed::atom::write(doc),
        Format::Json => feed::json::write(doc),
    }
}

/// The bytes of the most items (out of `all`) that fit in `max_bytes`, and how many that is:
/// all of them, or fewer but never fewer than one. `write(n)` writes the document with `n` items.
/// The search guesses from the sizes seen (items are alike, so a guess lands close) and falls
/// back to halving every other step, so it never takes more than twice a bisection's writes.
fn most_that_fit(
    all: usize,
    max_bytes: usize,
    mut write: impl FnMut(usize) -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<(Vec<u8>, usize)> {
    let whole = write(all)?;
    if whole.len() <= max_bytes || all <= 1 {
        return Ok((whole, all));
    }
    // The most items known to fit with their bytes, and the fewest known not to with their size.
    let (mut fits, mut best): (usize, Option<Vec<u8>>) = (0, None);
    let (mut too_many, mut too_big) = (all, whole.len());
    for step in 0.. {
        if too_many - fits <= 1 {
            break;
        }
        let fit_len = best.as_ref().map_or(0, Vec::len);
        let count = if step % 2 == 0 {
            let guess = fits + (max_bytes - fit_len) * (too_many - fits) / (too_big - fit_len).max(1);
            guess.clamp(fits + 1, too_many - 1)
        } else {
            (fits + too_many) / 2
        };
        let bytes = write(count)?;
        if bytes.len() <= max_bytes {
            (fits, best) = (count, Some(bytes));
        } else {
            (too_many, too_big) = (count, bytes.len());
        }
    }
    match best {
        Some(bytes) => Ok((bytes, fits)),
        // Not even one item fits: one it is.
        None => Ok((write(1)?, 1)),
    }
}

/// The OPML list of `feeds` (key and title), dated `updated`.
pub fn opml(config: &Config, feeds: &[(FeedKey, String)], updated: DateTime<FixedOffset>) -> anyhow::Result<Vec<u8>> {
    let outline = |(key, title): &(FeedKey, String)| Outline {
        title: title.clone(),
        xml_url: post::absolute_link(&config.feeds_url, &document_path(key, Format::Rss)),
        html_url: config.base_url.to_string(),
    };
    let site = feeds
        .iter()
        .find(|(k, _)| *k == FeedKey::Site)
        .map(outline)
        .unwrap_or_else(|| outline(&(FeedKey::Site, xml_safe(&config.title).into_owned())));
    let list = Opml {
        title: xml_safe(&config.title).into_owned(),
        updated,
        site,
        categories: feeds.iter().filter(|(k, _)| matches!(k, FeedKey::Category(_))).map(outline).collect(),
        tags: feeds.iter().filter(|(k, _)| matches!(k, FeedKey::Tag(_))).map(outline).collect(),
    };
    feed::opml::write(&list)
}

/// The file name of the index page.
pub const INDEX_PATH: &str = "index.html";

/// The media type a document is served with, from its path; `None` for a file that is not one
/// of crier's documents.
pub fn media_type(rel: &str) -> Option<&'static str> {
    let (_, extension) = rel.rsplit_once('.')?;
    if let Some(format) = Format::ALL.into_iter().find(|f| f.extension() == extension) {
        return Some(format.media_type());
    }
    match extension {
        "opml" => Some("text/x-opml"),
        "html" => Some("text/html"),
        _ => None,
    }
}

/// Whether the document at `rel` is a feed (in any format), as opposed to the OPML list or a page.
pub fn is_feed(rel: &str) -> bool {
    rel.rsplit_once('.').is_some_and(|(_, extension)| Format::ALL.iter().any(|f| f.extension() == extension))
}

/// The file name of the OPML list.
pub const OPML_PATH: &str = "index.opml";

/// What a request was for, as metrics count it: a bounded set, whatever the clients ask. The
/// variants are in [`Kind::ALL`]'s order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A feed in any format.
    Feed,
    /// An RFC 5005 archive page.
    Archive,
    /// A page for people: the index page or the page beside a feed.
    Index,
    Opml,
    /// The built-in WebSub hub.
    Hub,
    /// Anything else: health checks, redirects, 404s, 410s.
    Other,
}

impl Kind {
    pub const ALL: [Kind; 6] = [Kind::Feed, Kind::Archive, Kind::Index, Kind::Opml, Kind::Hub, Kind::Other];

    /// The kind of crier's document at `rel`.
    pub fn of(rel: &str) -> Kind {
        match rel {
            _ if is_archive(rel) => Kind::Archive,
            _ if is_feed(rel) => Kind::Feed,
            OPML_PATH => Kind::Opml,
            _ if rel.ends_with(".html") => Kind::Index,
            _ => Kind::Other,
        }
    }

    /// The kind's name, a metric label value.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Feed => "feed",
            Kind::Archive => "archive",
            Kind::Index => "index",
            Kind::Opml => "opml",
            Kind::Hub => "hub",
            Kind::Other => "other",
        }
    }
}

/// The feed a plain feed document belongs to, by its stem (`categories/新闻` for
/// `categories/新闻.atom`): what subscriber counts are kept per. `None` for any other document.
pub fn feed_stem(rel: &str) -> Option<&str> {
    (Kind::of(rel) == Kind::Feed).then(|| rel.rsplit_once('.').map_or(rel, |(stem, _)| stem))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renderings answer as a map by `Path` does, for paths spelled alike (a walk's), Chinese and
    /// non-UTF-8 names among them, through a run of inserts and removes.
    #[test]
    fn renderings_answer_as_a_map_by_path_does() {
        use std::os::unix::ffi::OsStrExt;
        let rendering =
            |n: usize| Arc::new(Rendered { content_html: String::new(), summary: n.to_string(), warnings: Vec::new() });
        let names: Vec<PathBuf> = (0..40)
            .map(|i| match i % 4 {
                0 => PathBuf::from(format!("/posts/2024/{i}.md")),
                1 => PathBuf::from(format!("/posts/新闻/{i}.md")),
                2 => PathBuf::from(std::ffi::OsStr::from_bytes(
                    &[b"/posts/\xff".as_slice(), format!("{i}.md").as_bytes()].concat(),
                )),
                _ => PathBuf::from(format!("/posts/{i}")),
            })
            .collect();
        let (mut ours, mut model) = (Renderings::default(), std::collections::HashMap::new());
        for step in 0..400usize {
            let path = &names[step * 7 % names.len()];
            match step % 3 {
                0 | 1 => {
                    assert_eq!(ours.insert(path.clone(), rendering(step)), model.insert(path.clone(), rendering(step)))
                }
                _ => assert_eq!(ours.remove_entry(path), model.remove_entry(path)),
            }
            assert_eq!(ours.len(), model.len());
            for name in &names {
                assert_eq!(ours.get(name), model.get(name), "{}", name.display());
                assert_eq!(ours.contains_key(name), model.contains_key(name));
            }
        }
        let mut keys: Vec<&Path> = ours.keys().collect();
        keys.sort();
        let mut expected: Vec<&Path> = model.keys().map(PathBuf::as_path).collect();
        expected.sort();
        assert_eq!(keys, expected);
    }

    #[test]
    fn most_that_fit_finds_the_largest_count_in_few_writes() {
        // Items of uneven sizes after a 100-byte head; the answer checked against a plain scan.
        let sizes: Vec<usize> = (0..200).map(|i| 50 + (i * 37) % 400).collect();
        let length = |n: usize| 100 + sizes[..n].iter().sum::<usize>();
        for max in [120, 150, 1000, 5000, 20_000, 44_000, length(200) - 1, length(200)] {
            let expected = (1..=200).rev().find(|n| length(*n) <= max).unwrap_or(1);
            let mut writes = 0;
            let (bytes, count) = most_that_fit(200, max, |n| {
                writes += 1;
                Ok(vec![b'x'; length(n)])
            })
            .unwrap();
            assert_eq!((count, bytes.len()), (expected, length(expected)), "max {max}");
            assert!(writes <= 2 * 8 + 2, "max {max}: {writes} writes");
        }
    }
}
