//! JSON Feed 1.1, serialized by serde_json.

use serde::Serialize;

use super::FeedDoc;

#[derive(Serialize)]
struct JsonFeed<'a> {
    version: &'static str,
    title: &'a str,
    home_page_url: &'a str,
    feed_url: &'a str,
    description: &'a str,
    language: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    icon: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    favicon: Option<&'a str>,
    /// The next older archive page (JSON Feed's pagination).
    #[serde(skip_serializing_if = "Option::is_none")]
    next_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hubs: Vec<JsonHub<'a>>,
    authors: Vec<JsonAuthor<'a>>,
    items: Vec<JsonItem<'a>>,
}

/// A hub that pushes the feed's changes: JSON Feed 1.1 names WebSub's type `WebSub`.
#[derive(Serialize)]
struct JsonHub<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    url: &'a str,
}

#[derive(Serialize)]
struct JsonAuthor<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
}

#[derive(Serialize)]
struct JsonItem<'a> {
    id: &'a str,
    url: &'a str,
    title: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_html: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    language: Option<&'a str>,
    date_published: String,
    date_modified: String,
    authors: Vec<JsonAuthor<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<&'a str>,
}

fn author(author: &crate::post::Author) -> JsonAuthor<'_> {
    let url = author.uri.clone().or_else(|| author.email.as_ref().map(|email| format!("mailto:{email}")));
    JsonAuthor { name: &author.name, url }
}

/// Writes the feed as JSON Feed 1.1 bytes.
pub fn write(doc: &FeedDoc<'_>) -> anyhow::Result<Vec<u8>> {
    let items = doc
        .items
        .iter()
        .map(|item| {
            let meta = item.meta;
            JsonItem {
                id: meta.guid(),
                url: &meta.link,
                title: &meta.title,
                content_html: item.full(doc).then_some(item.rendered.content_html.as_str()),
                content_text: (!item.full(doc)).then_some(item.rendered.summary.as_str()),
                summary: item.summary(),
                image: meta.image.as_deref(),
                language: meta.lang.as_deref(),
                date_published: meta.date.to_rfc3339(),
                date_modified: meta.updated.max(meta.date).to_rfc3339(),
                authors: vec![author(item.author(doc.author))],
                tags: item.terms(),
            }
        })
        .collect();
    let feed = JsonFeed {
        version: "https://jsonfeed.org/version/1.1",
        title: &doc.title,
        home_page_url: doc.home_url,
        feed_url: &doc.self_url,
        description: &doc.description,
        language: doc.language,
        // JSON Feed's `icon` is square, as a site's icon is; a logo is wide.
        icon: doc.icon,
        favicon: doc.icon,
        next_url: doc.history.prev_archive.as_deref(),
        hubs: doc.hubs.iter().map(|url| JsonHub { kind: "WebSub", url }).collect(),
        authors: vec![author(doc.author)],
        items,
    };
    let mut out = serde_json::to_vec_pretty(&feed)?;
    out.push(b'\n');
    Ok(out)
}
