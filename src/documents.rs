//! The documents of a site, made from the index in memory: each feed in each format, the OPML
//! list and the index page, with their paths under the feeds folder and their media types. Pure.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset};

use crate::config::{Config, ContentMode};
use crate::feed::opml::{Opml, Outline};
use crate::feed::{self, FeedDoc, Format, Item};
use crate::post;
use crate::render::Rendered;
use crate::site::{FeedKey, FeedPlan};
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

/// One feed in one format, as bytes.
pub fn document(
    config: &Config,
    plan: &FeedPlan,
    format: Format,
    rendered: &HashMap<PathBuf, Arc<Rendered>>,
) -> anyhow::Result<Vec<u8>> {
    let items: Vec<Item<'_>> =
        plan.items.iter().filter_map(|meta| rendered.get(&meta.path).map(|r| Item { meta, rendered: r })).collect();
    let description = match &plan.name {
        Some(name) => format!("{} ({name})", xml_safe(&config.description)),
        None => xml_safe(&config.description).into_owned(),
    };
    let hubs = config.hub_urls();
    let doc = FeedDoc {
        title: feed_title(config, plan),
        description,
        home_url: config.base_url.as_str(),
        self_url: self_url(config, &plan.key, format),
        hubs: &hubs,
        language: &config.language,
        author: &config.author,
        updated: feed::newest_update(&items),
        ttl_minutes: config.ttl.as_secs() / 60,
        full_content: config.content == ContentMode::Full,
        complete: config.items == 0,
        items,
    };
    within_budget(doc, format, config.max_feed_bytes)
}

/// The feed written in `format`; when that is over `max_bytes`, the most items, newest first,
/// that fit (found by bisection), and never fewer than one.
fn within_budget(mut doc: FeedDoc<'_>, format: Format, max_bytes: usize) -> anyhow::Result<Vec<u8>> {
    let write = |doc: &FeedDoc<'_>| match format {
        Format::Rss => feed::rss::write(doc),
        Format::Atom => feed::atom::write(doc),
        Format::Json => feed::json::write(doc),
    };
    let whole = write(&doc)?;
    if whole.len() <= max_bytes || doc.items.len() <= 1 {
        return Ok(whole);
    }
    let all = std::mem::take(&mut doc.items);
    // Some posts are left out: the feed no longer holds them all.
    doc.complete = false;
    doc.items = all[..1].to_vec();
    let mut best = write(&doc)?;
    // The most items known to fit (one always does), and the fewest known not to.
    let (mut fits, mut too_many) = (1, all.len());
    while too_many - fits > 1 {
        let count = (fits + too_many) / 2;
        doc.items = all[..count].to_vec();
        let bytes = write(&doc)?;
        if bytes.len() <= max_bytes {
            (fits, best) = (count, bytes);
        } else {
            too_many = count;
        }
    }
    Ok(best)
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
