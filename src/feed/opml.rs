//! OPML 2.0: every feed set of the site in one file, for one-step subscription.
//!
//! Each outline points at the RSS version of a feed (the Atom and JSON versions carry the same
//! items; listing them too would subscribe a reader to every post three times).

use chrono::{DateTime, FixedOffset};
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

/// One subscribable feed.
#[derive(Debug, Clone)]
pub struct Outline {
    pub title: String,
    pub xml_url: String,
    pub html_url: String,
}

/// The whole list: the site feed, then categories, then tags, each group in its own folder.
#[derive(Debug, Clone)]
pub struct Opml {
    pub title: String,
    pub updated: DateTime<FixedOffset>,
    pub site: Outline,
    pub categories: Vec<Outline>,
    pub tags: Vec<Outline>,
}

fn outline<W: std::io::Write>(writer: &mut Writer<W>, o: &Outline) -> std::io::Result<()> {
    writer
        .create_element("outline")
        .with_attributes([
            ("type", "rss"),
            ("text", o.title.as_str()),
            ("title", o.title.as_str()),
            ("xmlUrl", o.xml_url.as_str()),
            ("htmlUrl", o.html_url.as_str()),
        ])
        .write_empty()?;
    Ok(())
}

fn folder<W: std::io::Write>(writer: &mut Writer<W>, title: &str, outlines: &[Outline]) -> std::io::Result<()> {
    if outlines.is_empty() {
        return Ok(());
    }
    writer
        .write_event(Event::Start(BytesStart::new("outline").with_attributes([("text", title), ("title", title)])))?;
    for o in outlines {
        outline(writer, o)?;
    }
    writer.write_event(Event::End(BytesEnd::new("outline")))?;
    Ok(())
}

/// Writes the list as OPML 2.0 bytes.
pub fn write(opml: &Opml) -> anyhow::Result<Vec<u8>> {
    let mut writer = Writer::new_with_indent(Vec::with_capacity(16 * 1024), b' ', 2);
    writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    writer.write_event(Event::Start(BytesStart::new("opml").with_attributes([("version", "2.0")])))?;
    writer.write_event(Event::Start(BytesStart::new("head")))?;
    writer.create_element("title").write_text_content(BytesText::new(&opml.title))?;
    writer.create_element("dateModified").write_text_content(BytesText::new(&opml.updated.to_rfc2822()))?;
    writer.write_event(Event::End(BytesEnd::new("head")))?;
    writer.write_event(Event::Start(BytesStart::new("body")))?;
    outline(&mut writer, &opml.site)?;
    folder(&mut writer, "Categories", &opml.categories)?;
    folder(&mut writer, "Tags", &opml.tags)?;
    writer.write_event(Event::End(BytesEnd::new("body")))?;
    writer.write_event(Event::End(BytesEnd::new("opml")))?;
    let mut out = writer.into_inner();
    out.push(b'\n');
    Ok(out)
}
