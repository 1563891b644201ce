//! The documents of a site, made from the index in memory: each feed in each format, the OPML
//! list and the index page, with their paths under the feeds folder and their media types. Pure.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset};
use quick_xml::escape::escape;

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
        items,
    };
    match format {
        Format::Rss => feed::rss::write(&doc),
        Format::Atom => feed::atom::write(&doc),
        Format::Json => feed::json::write(&doc),
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

/// The index page: every feed with its number of items and last update, and autodiscovery
/// links, for a person who opens the server in a browser.
pub fn index_page<'a>(config: &Config, feeds: impl Iterator<Item = &'a FeedSummary>) -> Vec<u8> {
    let mut head = String::new();
    let mut rows = String::new();
    for feed in feeds {
        let name = escape(feed.title.as_str());
        for format in Format::ALL {
            if feed.key == FeedKey::Site || format == Format::Rss {
                head.push_str(&format!(
                    "<link rel=\"alternate\" type=\"{}\" title=\"{name} ({})\" href=\"{}\">\n",
                    format.media_type(),
                    format.extension().to_uppercase(),
                    relative_href(&feed.key, format)
                ));
            }
        }
        let links: Vec<String> = Format::ALL
            .iter()
            .map(|&f| format!("<a href=\"{}\">{}</a>", relative_href(&feed.key, f), f.extension()))
            .collect();
        let updated =
            if feed.items == 0 { "—".to_owned() } else { feed.updated.format("%Y-%m-%d %H:%M %:z").to_string() };
        rows.push_str(&format!(
            "<tr><td>{name}</td><td>{}</td><td>{updated}</td><td>{}</td></tr>\n",
            feed.items,
            links.join(" · ")
        ));
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{title} — feeds</title>\n{head}<style>{INDEX_STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n<p>{description} · <a href=\"{home}\">{home}</a> · <a href=\"{opml}\">OPML</a> (every feed, for one-step subscription)</p>\n<table>\n<tr><th>Feed</th><th>Items</th><th>Last update</th><th>Formats</th></tr>\n{rows}</table>\n</body>\n</html>\n",
        lang = escape(config.language.as_str()),
        title = escape(config.title.as_str()),
        description = escape(config.description.as_str()),
        home = escape(config.base_url.as_str()),
        opml = OPML_PATH,
    )
    .into_bytes()
}

const INDEX_STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}\
    table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #ddd}";

/// A feed's path relative to the index page, so the page works wherever the folder is served;
/// path segments keep RFC 3986's unreserved characters and percent-encode the rest.
fn relative_href(key: &FeedKey, format: Format) -> String {
    const SEGMENT: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    let rel = document_path(key, format);
    let segments: Vec<String> =
        rel.split('/').map(|s| percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()).collect();
    segments.join("/")
}

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
