//! Atom 1.0, written by `atom_syndication`.

use atom_syndication::{Category, Content, Entry, Feed, Generator, Link, Person, Text, WriteConfig};

use super::{FeedDoc, Format, GENERATOR, HISTORY_NAMESPACE, History, Item, MEDIA_NAMESPACE, media};
use crate::post::Author;

fn person(author: &Author) -> Person {
    Person { name: author.name.clone(), email: author.email.clone(), uri: author.uri.clone(), ..Default::default() }
}

fn link(href: &str, rel: &str, mime_type: &str) -> Link {
    Link { href: href.to_owned(), rel: rel.to_owned(), mime_type: Some(mime_type.to_owned()), ..Default::default() }
}

/// An Atom id must be an IRI: a front-matter id that is not one becomes a tag URI under the site's host.
fn atom_id(id: &str, home_url: &str) -> String {
    if url::Url::parse(id).is_ok() {
        return id.to_owned();
    }
    let host = url::Url::parse(home_url).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default();
    let id = percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC);
    format!("tag:{host},2000:{id}")
}

/// RFC 5005's `<fh:complete/>` or `<fh:archive/>`, when the document is either.
fn marker(history: &History) -> atom_syndication::extension::ExtensionMap {
    let Some(name) = history.marker() else { return Default::default() };
    let element = atom_syndication::extension::Extension { name: format!("fh:{name}"), ..Default::default() };
    [("fh".to_owned(), [(name.to_owned(), vec![element])].into())].into()
}

/// The namespaces the document uses beyond Atom's: feed history and Media RSS.
fn namespaces(doc: &FeedDoc<'_>) -> std::collections::BTreeMap<String, String> {
    let history = doc.history.marker().map(|_| ("fh".to_owned(), HISTORY_NAMESPACE.to_owned()));
    let media = doc.has_images().then(|| ("media".to_owned(), MEDIA_NAMESPACE.to_owned()));
    history.into_iter().chain(media).collect()
}

/// One post as an Atom entry.
fn entry(doc: &FeedDoc<'_>, item: &Item<'_>) -> Entry {
    let meta = item.meta;
    // atom_syndication writes no `xml:lang` on an entry: the post's language goes on its texts.
    let text = |value: String| Text { lang: meta.lang.as_deref().map(str::to_owned), ..Text::plain(value) };
    Entry {
        // A post without an id goes by its link, an absolute URL already: no need to parse it.
        id: meta.id.as_deref().map_or_else(|| meta.link.to_string(), |id| atom_id(id, doc.home_url)),
        title: text(meta.title.to_string()),
        links: vec![link(&meta.link, "alternate", "text/html")],
        published: Some(meta.date),
        updated: meta.updated.max(meta.date),
        authors: vec![person(item.author(doc.author))],
        categories: item
            .terms()
            .into_iter()
            .map(|name| Category { term: name.to_owned(), scheme: None, label: None })
            .collect(),
        summary: item.summary().map(|summary| text(summary.to_owned())),
        extensions: media(meta.image.as_deref(), |name, attrs| atom_syndication::extension::Extension {
            name,
            attrs,
            ..Default::default()
        }),
        content: item.full(doc).then(|| Content {
            base: Some(meta.link.to_string()),
            lang: meta.lang.as_deref().map(str::to_owned),
            value: Some(item.rendered.content_html.clone()),
            content_type: Some("html".to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Writes the feed as Atom 1.0 bytes.
pub fn write(doc: &FeedDoc<'_>) -> anyhow::Result<Vec<u8>> {
    let entries = doc.items.iter().map(|item| entry(doc, item)).collect();
    let feed = Feed {
        // Archive pages belong to the subscription document's logical feed, and share its id.
        id: doc.history.current.clone().unwrap_or_else(|| doc.self_url.clone()),
        title: Text::plain(doc.title.clone()),
        subtitle: Some(Text::plain(doc.description.clone())),
        updated: doc.updated,
        links: [link(&doc.self_url, "self", Format::Atom.media_type()), link(doc.home_url, "alternate", "text/html")]
            .into_iter()
            .chain(doc.hubs.iter().map(|hub| Link { href: hub.clone(), rel: "hub".to_owned(), ..Default::default() }))
            .chain(doc.history.links().map(|(rel, href)| link(href, rel, Format::Atom.media_type())))
            .collect(),
        authors: vec![person(doc.author)],
        generator: Some(Generator { value: GENERATOR.to_owned(), uri: None, version: None }),
        lang: Some(doc.language.to_owned()),
        entries,
        extensions: marker(&doc.history),
        namespaces: namespaces(doc),
        icon: doc.icon.map(str::to_owned),
        logo: doc.logo.map(str::to_owned),
        ..Default::default()
    };
    let mut out = Vec::with_capacity(64 * 1024);
    out.extend_from_slice(b"<?xml version=\"1.0\" encoding=\"utf-8\"?>");
    let config = WriteConfig { write_document_declaration: false, indent_size: None };
    Ok(feed.write_with_config(out, config)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_iris() {
        assert_eq!(atom_id("https://e.org/a", "https://e.org/"), "https://e.org/a");
        assert_eq!(atom_id("urn:uuid:1234", "https://e.org/"), "urn:uuid:1234");
        assert_eq!(atom_id("post 12", "https://e.org/"), "tag:e.org,2000:post%2012");
    }
}
