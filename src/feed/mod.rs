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

    /// Whether the item carries the whole post: the document's setting, unless the post asks for
    /// its summary only.
    pub fn full(&self, context: &ItemContext<'_>) -> bool {
        context.full_content && !self.meta.excerpt_only
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

    /// What this document's items are written with.
    pub fn item_context(&self) -> ItemContext<'_> {
        ItemContext { home_url: self.home_url, author: self.author, full_content: self.full_content }
    }
}

/// What an item's bytes depend on besides its post: the same for every document of a site that
/// carries the same content (summaries or whole posts), so an item written once serves every
/// document that lists its post.
#[derive(Debug, Clone, Copy)]
pub struct ItemContext<'a> {
    /// The site's home page: Atom ids made from front-matter ids are under its host.
    pub home_url: &'a str,
    /// The site's author, for posts that name none.
    pub author: &'a Author,
    /// Whether items carry the whole post (else only the summary).
    pub full_content: bool,
}

/// One item written in one format, as its crate writes it inside a document, with the XML
/// namespaces it uses that the document must declare (RSS's `content` and `dc`; none for Atom,
/// whose extension prefixes the document declares, and JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemBytes {
    bytes: Vec<u8>,
    namespaces: Vec<(String, String)>,
}

impl ItemBytes {
    /// The bytes of the item alone, cut from a document of that item only that its crate wrote:
    /// from the first `start` (the item's own opening tag, which nothing before it can hold: what
    /// precedes is empty or escaped) to the document's last `end` bytes.
    fn cut(document: &[u8], start: &[u8], end: &[u8]) -> anyhow::Result<Vec<u8>> {
        let from = memchr::memmem::find(document, start);
        let to = document.len().checked_sub(end.len()).filter(|_| document.ends_with(end));
        match (from, to) {
            (Some(from), Some(to)) if from <= to => Ok(document[from..to].to_vec()),
            _ => anyhow::bail!("an item written alone is not where it was expected in its document"),
        }
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// A document from its `skeleton` (the document as its crate writes it without items) and its
/// items: they go before its last `tail` bytes, `open` before the first, `separator` between
/// two, `close` after the last (the JSON array's indentation; nothing for XML).
fn splice(skeleton: &[u8], tail: usize, items: &[&ItemBytes], [open, separator, close]: [&[u8]; 3]) -> Vec<u8> {
    let (head, tail) = skeleton.split_at(skeleton.len() - tail);
    let size = head.len() + tail.len() + items.iter().map(|item| item.bytes.len() + separator.len()).sum::<usize>();
    let mut out = Vec::with_capacity(size + open.len() + close.len());
    out.extend_from_slice(head);
    for (i, item) in items.iter().enumerate() {
        out.extend_from_slice(if i == 0 { open } else { separator });
        out.extend_from_slice(&item.bytes);
    }
    if !items.is_empty() {
        out.extend_from_slice(close);
    }
    out.extend_from_slice(tail);
    out
}

/// One post's item in `format`.
pub fn write_item(context: &ItemContext<'_>, item: &Item<'_>, format: Format) -> anyhow::Result<ItemBytes> {
    match format {
        Format::Rss => rss::item(context, item),
        Format::Atom => atom::item(context, item),
        Format::Json => json::item(context, item),
    }
}

/// The document `doc` in `format`, from its items written by [`write_item`] with its
/// [`FeedDoc::item_context`], in the order of `doc.items`.
pub fn write_document(doc: &FeedDoc<'_>, items: &[&ItemBytes], format: Format) -> anyhow::Result<Vec<u8>> {
    match format {
        Format::Rss => rss::document(doc, items),
        Format::Atom => atom::document(doc, items),
        Format::Json => json::document(doc, items),
    }
}

/// The document `doc` in `format`, its items written for it.
#[cfg(test)]
fn write(doc: &FeedDoc<'_>, format: Format) -> anyhow::Result<Vec<u8>> {
    let context = doc.item_context();
    let items = doc.items.iter().map(|item| write_item(&context, item, format)).collect::<anyhow::Result<Vec<_>>>()?;
    write_document(doc, &items.iter().collect::<Vec<_>>(), format)
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::text::Term;

    fn date(text: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(text).unwrap()
    }

    /// Posts of every shape an item can take: plain text that the RSS profile escapes again,
    /// an image (Media RSS), a post that asks for its summary only (no `content:encoded`), one
    /// with no summary, its own author, language and id, and HTML that holds CDATA's end.
    fn posts() -> Vec<(PostMeta, Rendered)> {
        let rendered = |summary: &str, html: &str| Rendered {
            content_html: html.to_owned(),
            summary: summary.to_owned(),
            warnings: vec![],
        };
        let mut posts = Vec::new();
        let mut plain = PostMeta::example("2025/新闻.md", date("2025-05-02T09:00:00+08:00"));
        plain.title = "数字经济 新闻".into();
        plain.categories = vec![Term::new("新闻")];
        plain.tags = vec![Term::new("新闻"), Term::new("rust")];
        posts.push((plain, rendered("第一段。", "<p>第一段。</p><p>第二段。</p>")));
        let mut escaped = PostMeta::example("a&b.md", date("2025-05-03T10:00:00+00:00"));
        escaped.title = "Fish & chips <b>not bold</b>".into();
        escaped.image = Some("https://e.org/a.png?x=1&y=2".into());
        posts.push((escaped, rendered("A & B < C", "<p>a &amp; b ]]&gt; ]]></p>")));
        let mut summary_only = PostMeta::example("short.md", date("2025-05-04T10:00:00-05:00"));
        summary_only.excerpt_only = true;
        summary_only.updated = date("2025-06-01T00:00:00Z");
        posts.push((summary_only, rendered("Only this.", "<p>Only this. And more.</p>")));
        let mut own = PostMeta::example("own.md", date("2025-05-05T10:00:00+09:00"));
        own.id = Some("post 12".into());
        own.lang = Some("en".into());
        own.author = Some(Box::new(Author { name: "Ann".into(), email: Some("ann@e.org".into()), uri: None }));
        posts.push((own, rendered("", "<p>No summary.</p>")));
        posts
    }

    /// Every document of the posts above that crier makes (each subset of them, in both content
    /// modes, with and without RFC 5005's links and hubs, an icon and a logo) is, byte for byte,
    /// the document the crates write with the items in it.
    #[test]
    fn documents_from_items_written_alone_are_what_the_crates_write_whole() {
        let posts = posts();
        let author = Author { name: "Example News Desk".into(), email: None, uri: Some("https://e.org/".into()) };
        let hubs = ["https://hub.e.org/".to_owned()];
        let archive = History {
            prev_archive: Some("https://e.org/feeds/feed.archive-1.rss".into()),
            next_archive: Some("https://e.org/feeds/feed.archive-3.rss".into()),
            current: Some("https://e.org/feeds/feed.rss".into()),
            ..History::default()
        };
        let complete = History { complete: true, ..History::default() };
        let mut checked = BTreeSet::new();
        for subset in 0..1u32 << posts.len() {
            let items: Vec<Item<'_>> = (posts.iter().enumerate())
                .filter(|(i, _)| subset & 1 << i != 0)
                .map(|(_, (meta, rendered))| Item { meta, rendered })
                .collect();
            for (full_content, history) in
                [(true, History::default()), (false, archive.clone()), (true, complete.clone())]
            {
                let doc = FeedDoc {
                    title: "Fish & chips · 新闻".into(),
                    description: "A < B".into(),
                    home_url: "https://e.org/",
                    self_url: "https://e.org/feeds/feed.rss".into(),
                    hubs: if subset % 2 == 0 { &hubs } else { &[] },
                    language: "zh-CN",
                    author: &author,
                    icon: Some("https://e.org/icon.png"),
                    logo: (subset % 3 == 0).then_some("https://e.org/logo.png"),
                    updated: newest_update(&items),
                    ttl_minutes: 30,
                    full_content,
                    history,
                    items: items.clone(),
                };
                for format in Format::ALL {
                    let whole = match format {
                        Format::Rss => rss::whole(&doc),
                        Format::Atom => atom::whole(&doc),
                        Format::Json => json::whole(&doc),
                    }
                    .unwrap();
                    let made = write(&doc, format).unwrap();
                    assert_eq!(
                        String::from_utf8(made).unwrap(),
                        String::from_utf8(whole.clone()).unwrap(),
                        "{format:?}, posts {subset:b}"
                    );
                    checked.insert(whole);
                }
            }
        }
        // JSON Feed has no marker for a complete feed: its two documents without archive links
        // are the same.
        assert_eq!(checked.len(), 16 * (3 * 3 - 1), "every other document checked is a different one");
        let rss_with_escapes = checked.iter().filter(|doc| memchr::memmem::find(doc, b"&#x26;").is_some());
        assert!(rss_with_escapes.count() > 16, "the RSS profile's escapes are checked in items too");
    }
}
