//! Where an old URL lives now: the feed URLs other generators publish (jekyll-feed, Hugo,
//! WordPress), mapped to crier's document of the same feed in the same format, so that a site
//! moving to crier keeps its subscribers. Pure.

use crate::config::Alias;
use crate::documents::document_path;
use crate::feed::Format;
use crate::site::FeedKey;
use crate::text::slugify;

/// The feed and format that `path`, a percent-decoded request path, names in one of the
/// `aliases` generators' URL schemes; `site_path` is the path of the site's base URL, under which
/// those generators publish (`/` or `/blog/`). The slug is crier's slug of the generator's name.
pub fn alias(aliases: &[Alias], site_path: &str, path: &str) -> Option<(FeedKey, Format)> {
    let path = match path.strip_prefix(site_path.trim_end_matches('/')) {
        Some(rest) if rest.starts_with('/') => rest,
        _ => path,
    };
    let segments: Vec<&str> = path.trim_start_matches('/').trim_end_matches('/').split('/').collect();
    aliases.iter().find_map(|alias| match alias {
        Alias::JekyllFeed => jekyll_feed(&segments),
        Alias::Hugo => hugo(&segments),
        Alias::WordPress => wordpress(&segments),
    })
}

/// A slug reduced to what every generator keeps of a name: lower-case letters and digits (CJK
/// included), Latin accents taken off, everything else dropped. WordPress turns "Café" into
/// `cafe` and "R&D" into `rd` where crier makes `café` and `r-d`; both fold to the same.
pub fn fold(slug: &str) -> String {
    const PLAIN: [(&str, char); 13] = [
        ("àáâãäåā", 'a'),
        ("çćč", 'c'),
        ("ďđ", 'd'),
        ("èéêëēěę", 'e'),
        ("ìíîïī", 'i'),
        ("ñńň", 'n'),
        ("òóôõöøō", 'o'),
        ("řŕ", 'r'),
        ("śšş", 's'),
        ("ťţ", 't'),
        ("ùúûüūů", 'u'),
        ("ýÿ", 'y'),
        ("žźż", 'z'),
    ];
    slug.chars()
        .flat_map(char::to_lowercase)
        .filter(|c| c.is_alphanumeric())
        .map(|c| PLAIN.iter().find(|(accented, _)| accented.contains(c)).map_or(c, |(_, plain)| *plain))
        .collect()
}

/// A category or tag feed's key with its slug folded, to find it by another generator's slug.
pub fn folded(key: &FeedKey) -> FeedKey {
    match key {
        FeedKey::Site => FeedKey::Site,
        FeedKey::Category(slug) => FeedKey::Category(fold(slug)),
        FeedKey::Tag(slug) => FeedKey::Tag(fold(slug)),
    }
}

/// The document path of an alias's feed and format.
pub fn path_of((key, format): &(FeedKey, Format)) -> String {
    document_path(key, *format)
}

/// jekyll-feed writes Atom: `/feed.xml`, `/feed/<category>.xml` with `feed: categories:`, and
/// `/feed/by_tag/<tag>.xml` with `feed: tags:`.
fn jekyll_feed(segments: &[&str]) -> Option<(FeedKey, Format)> {
    match segments {
        ["feed.xml"] => Some((FeedKey::Site, Format::Atom)),
        ["feed", "by_tag", file] => Some((tag(file.strip_suffix(".xml")?)?, Format::Atom)),
        ["feed", file] => Some((category(file.strip_suffix(".xml")?)?, Format::Atom)),
        _ => None,
    }
}

/// Hugo writes RSS: `/index.xml`, `/categories/<name>/index.xml`, `/tags/<name>/index.xml`.
fn hugo(segments: &[&str]) -> Option<(FeedKey, Format)> {
    match segments {
        ["index.xml"] => Some((FeedKey::Site, Format::Rss)),
        ["categories", name, "index.xml"] => Some((category(name)?, Format::Rss)),
        ["tags", name, "index.xml"] => Some((tag(name)?, Format::Rss)),
        _ => None,
    }
}

/// WordPress: `/feed/` (RSS 2.0; also `/feed/rss2/`) and `/feed/atom/`, the same under
/// `/category/<name>/` (the last name of a nested category) and `/tag/<name>/`.
fn wordpress(segments: &[&str]) -> Option<(FeedKey, Format)> {
    let feed = segments.iter().position(|s| *s == "feed")?;
    let format = match &segments[feed + 1..] {
        [] | ["rss2"] | ["rss"] => Format::Rss,
        ["atom"] => Format::Atom,
        _ => return None,
    };
    let key = match &segments[..feed] {
        [] => FeedKey::Site,
        ["category", .., name] => category(name)?,
        ["tag", name] => tag(name)?,
        _ => return None,
    };
    Some((key, format))
}

fn category(name: &str) -> Option<FeedKey> {
    let slug = slugify(name);
    (!slug.is_empty()).then_some(FeedKey::Category(slug))
}

fn tag(name: &str) -> Option<FeedKey> {
    let slug = slugify(name);
    (!slug.is_empty()).then_some(FeedKey::Tag(slug))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_generator_maps_to_the_same_feed_and_format() {
        let all = [Alias::JekyllFeed, Alias::Hugo, Alias::WordPress];
        for (path, expected) in [
            ("/feed.xml", Some("feed.atom")),
            ("/feed/Business News.xml", Some("categories/business-news.atom")),
            ("/feed/by_tag/rust.xml", Some("tags/rust.atom")),
            ("/index.xml", Some("feed.rss")),
            ("/categories/财经/index.xml", Some("categories/财经.rss")),
            ("/tags/青岛/index.xml", Some("tags/青岛.rss")),
            ("/feed/", Some("feed.rss")),
            ("/feed", Some("feed.rss")),
            ("/feed/rss2/", Some("feed.rss")),
            ("/feed/atom/", Some("feed.atom")),
            ("/category/news/财经/feed/", Some("categories/财经.rss")),
            ("/category/caijing/feed/atom/", Some("categories/caijing.atom")),
            ("/tag/rust-lang/feed/", Some("tags/rust-lang.rss")),
            ("/blog/index.xml", Some("feed.rss")),
            ("/feed/x/y/", None),
            ("/about/", None),
            ("/categories/x.rss", None),
        ] {
            assert_eq!(alias(&all, "/blog/", path).as_ref().map(path_of).as_deref(), expected, "{path}");
        }
        assert_eq!(alias(&[Alias::Hugo], "/", "/feed.xml"), None, "only the presets asked for");
    }

    #[test]
    fn folding_meets_other_generators_slugs() {
        assert_eq!(fold("café"), fold("cafe"));
        assert_eq!(fold("r-d"), "rd");
        assert_eq!(fold("Ça-Žije"), "cazije");
        assert_eq!(fold("青岛-财经"), "青岛财经");
        assert_eq!(folded(&FeedKey::Tag("r-d".into())), FeedKey::Tag("rd".into()));
    }
}
