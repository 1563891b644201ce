//! The HTML pages for people: the index of every feed, and beside each feed a page that shows
//! its items and explains how to subscribe. Plain HTML and CSS, no script. Pure.

use quick_xml::escape::escape;

use crate::config::Config;
use crate::documents::{FeedSummary, OPML_PATH, document_path, feed_title, page_path, self_url};
use crate::feed::Format;
use crate::site::{FeedKey, FeedPlan};

pub const STYLE: &str = "body{font-family:system-ui,-apple-system,\"Segoe UI\",\"PingFang SC\",\"Noto Sans CJK SC\",\"Microsoft YaHei\",sans-serif;\
    line-height:1.6;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#222}\
    table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #ddd}\
    article{border-bottom:1px solid #eee;padding:.6rem 0}article h2{font-size:1.1rem;margin:0}\
    time,.note{color:#666;font-size:.9rem}code{background:#f4f4f4;padding:.1rem .3rem;word-break:break-all}\
    ul.urls{padding-left:1.2rem}";

/// The start of a page: language, title, autodiscovery links, style.
fn head(config: &Config, title: &str, alternates: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{title}</title>\n{alternates}<style>{STYLE}</style>\n</head>\n<body>\n",
        lang = escape(config.language.as_str()),
        title = escape(title),
    )
}

/// An autodiscovery link.
fn alternate(format: Format, title: &str, href: &str) -> String {
    format!(
        "<link rel=\"alternate\" type=\"{}\" title=\"{} ({})\" href=\"{}\">\n",
        format.media_type(),
        escape(title),
        format.extension().to_uppercase(),
        escape(href)
    )
}

/// The index page: every feed with its page, its number of items, its last update and its
/// formats, with autodiscovery links, for a person who opens the server in a browser.
pub fn index_page<'a>(config: &Config, feeds: impl Iterator<Item = &'a FeedSummary>) -> Vec<u8> {
    use std::fmt::Write as _;
    // Written into two buffers, each feed's addresses made once and the date's format parsed
    // once: the daemon makes this page again after every change, for every feed of the site.
    let date_format: Vec<chrono::format::Item<'_>> = chrono::format::StrftimeItems::new("%Y-%m-%d %H:%M %:z").collect();
    let mut alternates = String::new();
    let mut rows = String::new();
    for feed in feeds {
        let hrefs = Format::ALL.map(|format| relative_href(&document_path(&feed.key, format)));
        for (format, href) in Format::ALL.into_iter().zip(&hrefs) {
            if feed.key == FeedKey::Site || format == Format::Rss {
                alternates.push_str(&alternate(format, &feed.title, href));
            }
        }
        let _ = write!(
            rows,
            "<tr><td><a href=\"{page}\">{name}</a></td><td>{}</td><td>",
            feed.items,
            page = relative_href(&page_path(&feed.key)),
            name = escape(feed.title.as_str()),
        );
        if feed.items == 0 {
            rows.push('—');
        } else {
            let _ = write!(rows, "{}", feed.updated.format_with_items(date_format.iter()));
        }
        rows.push_str("</td><td>");
        for (i, (format, href)) in Format::ALL.into_iter().zip(&hrefs).enumerate() {
            let _ = write!(rows, "{}<a href=\"{href}\">{}</a>", if i == 0 { "" } else { " · " }, format.extension());
        }
        rows.push_str("</td></tr>\n");
    }
    let mut page = head(config, &format!("{} — feeds", config.title), &alternates);
    page.push_str(&format!(
        "<h1>{title}</h1>\n<p>{description} · <a href=\"{home}\">{home}</a> · <a href=\"{OPML_PATH}\">OPML</a> (every feed, for one-step subscription)</p>\n<table>\n<tr><th>Feed</th><th>Items</th><th>Last update</th><th>Formats</th></tr>\n{rows}</table>\n</body>\n</html>\n",
        title = escape(config.title.as_str()),
        description = escape(config.description.as_str()),
        home = escape(config.base_url.as_str()),
    ));
    page.into_bytes()
}

/// A feed's page, `<stem>.html` beside it: its title and description, what a feed reader is and
/// the three addresses to give one, and its items (title linked to the post, date, summary).
pub fn feed_page(config: &Config, plan: &FeedPlan, rendered: &crate::documents::Renderings) -> Vec<u8> {
    let title = feed_title(config, plan);
    let urls: Vec<(Format, String)> = Format::ALL.iter().map(|&f| (f, self_url(config, &plan.key, f))).collect();
    let alternates: String = urls.iter().map(|(f, url)| alternate(*f, &title, url)).collect();
    let list: String = urls
        .iter()
        .map(|(f, url)| format!("<li>{}: <code>{}</code></li>\n", f.extension().to_uppercase(), escape(url.as_str())))
        .collect();
    let mut items = String::new();
    for meta in &plan.items {
        let summary = rendered.get(&meta.path).map(|r| r.summary.as_str()).unwrap_or_default();
        items.push_str(&format!(
            "<article>\n<h2><a href=\"{link}\">{title}</a></h2>\n<time datetime=\"{iso}\">{date}</time>\n<p>{summary}</p>\n</article>\n",
            link = escape(&*meta.link),
            title = escape(&*meta.title),
            iso = meta.date.to_rfc3339(),
            date = meta.date.format("%Y-%m-%d %H:%M"),
            summary = escape(summary),
        ));
    }
    let depth = plan.key.stem().matches('/').count();
    let mut page = head(config, &title, &alternates);
    page.push_str(&format!(
        "<header>\n<h1>{heading}</h1>\n<p>{description}</p>\n<p class=\"note\">This page is a web feed. To get its new posts as they come, copy one of these addresses into a feed reader (an app or site that follows feeds, such as NetNewsWire, Feedly, Inoreader, Thunderbird or newsboat):</p>\n<ul class=\"urls\">\n{list}</ul>\n</header>\n<main>\n{items}</main>\n<footer><p><a href=\"{index}index.html\">All feeds</a> · <a href=\"{home}\">{home}</a></p></footer>\n</body>\n</html>\n",
        heading = escape(title.as_str()),
        description = escape(config.description.as_str()),
        index = "../".repeat(depth),
        home = escape(config.base_url.as_str()),
    ));
    page.into_bytes()
}

/// A document's path relative to the index page, so the page works wherever the folder is
/// served; path segments keep RFC 3986's unreserved characters and percent-encode the rest.
fn relative_href(rel: &str) -> String {
    // Each segment's characters, and the `/` between segments left as it is.
    const SEGMENTS: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');
    percent_encoding::utf8_percent_encode(rel, SEGMENTS).to_string()
}
