//! JSON Feed 1.1, serialized by serde_json.

use serde::Serialize;

use super::{FeedDoc, Item, ItemBytes, ItemContext, splice};

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

/// One post as a JSON Feed item.
fn json_item<'a>(context: &ItemContext<'a>, item: &'a Item<'a>) -> JsonItem<'a> {
    let meta = item.meta;
    JsonItem {
        id: meta.guid(),
        url: &meta.link,
        title: &meta.title,
        content_html: item.full(context).then_some(item.rendered.content_html.as_str()),
        content_text: (!item.full(context)).then_some(item.rendered.summary.as_str()),
        summary: item.summary(),
        image: meta.image.as_deref(),
        language: meta.lang.as_deref(),
        date_published: meta.date.to_rfc3339(),
        date_modified: meta.updated.max(meta.date).to_rfc3339(),
        authors: vec![author(item.author(context.author))],
        tags: item.terms(),
    }
}

/// The feed of `doc` holding `items`.
fn json_feed<'a>(doc: &'a FeedDoc<'a>, items: Vec<JsonItem<'a>>) -> JsonFeed<'a> {
    JsonFeed {
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
    }
}

/// An object holding one item, pretty-printed: the item is then indented as in a feed's `items`.
#[derive(Serialize)]
struct Alone<'a> {
    items: [JsonItem<'a>; 1],
}

/// How serde_json pretty-prints [`Alone`] around its item.
const ALONE_START: &[u8] = b"{\n  \"items\": [\n    ";
const ALONE_END: &[u8] = b"\n  ]\n}";

/// One post's item, pretty-printed by serde_json as it is in a feed's `items`.
pub fn item(context: &ItemContext<'_>, item: &Item<'_>) -> anyhow::Result<ItemBytes> {
    let alone = serde_json::to_vec_pretty(&Alone { items: [json_item(context, item)] })?;
    let Some(bytes) = alone.strip_prefix(ALONE_START).and_then(|rest| rest.strip_suffix(ALONE_END)) else {
        anyhow::bail!("serde_json wrote an item's array unexpectedly")
    };
    Ok(ItemBytes { bytes: bytes.to_vec(), namespaces: Vec::new() })
}

/// How serde_json ends a feed without items, `items` coming last; the items go before its `]`.
const EMPTY_ITEMS: &[u8] = b"[]\n}";

/// `doc` as JSON Feed 1.1 bytes, from its items written by [`item`]: the feed written without
/// them, and the items put into its empty `items`, indented as serde_json indents them.
pub fn document(doc: &FeedDoc<'_>, items: &[&ItemBytes]) -> anyhow::Result<Vec<u8>> {
    let skeleton = serde_json::to_vec_pretty(&json_feed(doc, Vec::new()))?;
    anyhow::ensure!(skeleton.ends_with(EMPTY_ITEMS), "serde_json ended a feed unexpectedly");
    let mut out = splice(&skeleton, EMPTY_ITEMS.len() - 1, items, [b"\n    ", b",\n    ", b"\n  "]);
    out.push(b'\n');
    Ok(out)
}

/// The document as serde_json writes it with its items, for tests to hold [`document`] to.
#[cfg(test)]
pub(super) fn whole(doc: &FeedDoc<'_>) -> anyhow::Result<Vec<u8>> {
    let context = doc.item_context();
    let mut out =
        serde_json::to_vec_pretty(&json_feed(doc, doc.items.iter().map(|item| json_item(&context, item)).collect()))?;
    out.push(b'\n');
    Ok(out)
}
