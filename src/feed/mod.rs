//! One feed model, written out in each format: RSS 2.0, Atom 1.0, JSON Feed 1.1, plus the OPML list.
//!
//! The writers are pure: a [`FeedDoc`] in, bytes out. Everything time-like comes from the posts,
//! never the clock, so the same posts give byte-identical documents.

pub mod atom;
pub mod json;
pub mod opml;
pub mod rss;

use chrono::{DateTime, FixedOffset};

use crate::post::Author;
use crate::post::PostMeta;
use crate::render::Rendered;

/// The three feed formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    Rss,
    Atom,
    Json,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::Rss, Format::Atom, Format::Json];

    pub fn extension(self) -> &'static str {
        match self {
            Format::Rss => "rss",
            Format::Atom => "atom",
            Format::Json => "json",
        }
    }

    /// The media type, as served and as announced in self links.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Rss => "application/rss+xml",
            Format::Atom => "application/atom+xml",
            Format::Json => "application/feed+json",
        }
    }
}

/// A post as a feed item.
#[derive(Debug, Clone, Copy)]
pub struct Item<'a> {
    pub meta: &'a PostMeta,
    pub rendered: &'a Rendered,
}

impl Item<'_> {
    /// Categories then tags, each name once: what readers show as the item's categories.
    pub fn terms(&self) -> Vec<&str> {
        let mut terms: Vec<&str> = Vec::new();
        for name in self.meta.categories.iter().chain(&self.meta.tags) {
            if !terms.contains(&name.as_str()) {
                terms.push(name);
            }
        }
        terms
    }

    pub fn author<'a>(&'a self, site: &'a Author) -> &'a Author {
        self.meta.author.as_deref().unwrap_or(site)
    }

    /// Whether the item carries the whole post: the feed's setting, unless the post asks for its
    /// summary only.
    pub fn full(&self, doc: &FeedDoc<'_>) -> bool {
        doc.full_content && !self.meta.excerpt_only
    }

    /// The item's summary; none when the post asks for none (`excerpt: ""`).
    pub fn summary(&self) -> Option<&str> {
        Some(self.rendered.summary.as_str()).filter(|s| !s.is_empty())
    }
}

/// The Media RSS namespace, for a post's image (`media:thumbnail`, `media:content`).
pub const MEDIA_NAMESPACE: &str = "http://search.yahoo.com/mrss/";

/// Extension elements as the `rss` and the `atom_syndication` crates both keep them: by
/// namespace prefix, then by local name.
pub type Extensions<E> = std::collections::BTreeMap<String, std::collections::BTreeMap<String, Vec<E>>>;

/// An image as Media RSS's `media:thumbnail` and `media:content`, each made by `element` from
/// its qualified name and attributes (each crate has its own element type of that shape).
pub fn media<E>(
    image: Option<&str>,
    element: impl Fn(String, std::collections::BTreeMap<String, String>) -> E,
) -> Extensions<E> {
    let Some(image) = image else { return Extensions::new() };
    let url = || ("url".to_owned(), image.to_owned());
    let elements = [
        ("thumbnail", "media:thumbnail", vec![url()]),
        ("content", "media:content", vec![url(), ("medium".to_owned(), "image".to_owned())]),
    ]
    .map(|(local, name, attrs)| (local.to_owned(), vec![element(name.to_owned(), attrs.into_iter().collect())]));
    [("media".to_owned(), elements.into())].into()
}

/// Everything a writer needs for one feed.
#[derive(Debug, Clone)]
pub struct FeedDoc<'a> {
    pub title: String,
    pub description: String,
    /// The site's home page.
    pub home_url: &'a str,
    /// The public address of this feed in the format being written.
    pub self_url: String,
    /// WebSub hubs that push this feed's changes (`rel="hub"`), in order.
    pub hubs: &'a [String],
    pub language: &'a str,
    pub author: &'a Author,
    /// The site's small square image and its wide one, absolute.
    pub icon: Option<&'a str>,
    pub logo: Option<&'a str>,
    /// The newest `updated` of the items: the feed's own time.
    pub updated: DateTime<FixedOffset>,
    pub ttl_minutes: u64,
    /// Whether items carry the whole post (else only the summary).
    pub full_content: bool,
    /// Where this document stands in the feed's history (RFC 5005).
    pub history: History,
    pub items: Vec<Item<'a>>,
}

impl FeedDoc<'_> {
    /// Whether an item has an image, so that the document declares Media RSS.
    pub fn has_images(&self) -> bool {
        self.items.iter().any(|item| item.meta.image.is_some())
    }
}

/// RFC 5005's links and markers of one document; all empty for a feed that is neither complete
/// nor archived.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// The feed holds every post it has ever had: `fh:complete` (RSS and Atom).
    pub complete: bool,
    /// The next older archive page: `prev-archive` (RSS and Atom), `next_url` (JSON Feed).
    pub prev_archive: Option<String>,
    /// The next newer archive page: `next-archive`.
    pub next_archive: Option<String>,
    /// Set on archive pages: the subscription document (`current`); they also say `fh:archive`.
    pub current: Option<String>,
}

impl History {
    /// The RFC 5005 links (relation, address), in the order documents list them.
    pub fn links(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [("current", &self.current), ("prev-archive", &self.prev_archive), ("next-archive", &self.next_archive)]
            .into_iter()
            .filter_map(|(rel, href)| href.as_deref().map(|href| (rel, href)))
    }

    /// The `fh:` element the document carries, if any: `complete` or `archive`.
    pub fn marker(&self) -> Option<&'static str> {
        if self.complete {
            Some("complete")
        } else if self.current.is_some() {
            Some("archive")
        } else {
            None
        }
    }
}

/// The namespace of RFC 5005, Feed Paging and Archiving.
pub const HISTORY_NAMESPACE: &str = "http://purl.org/syndication/history/1.0";

/// The generator's name and version, as feeds announce it.
pub const GENERATOR: &str = concat!("crier ", env!("CARGO_PKG_VERSION"));

/// The time an empty feed claims: no post, no clock.
pub fn epoch() -> DateTime<FixedOffset> {
    DateTime::UNIX_EPOCH.fixed_offset()
}

/// The newest `updated` among the items; the epoch for an empty feed.
pub fn newest_update(items: &[Item<'_>]) -> DateTime<FixedOffset> {
    items.iter().map(|i| i.meta.updated.max(i.meta.date)).max_by_key(|d| d.to_utc()).unwrap_or_else(epoch)
}
