//! Small text rules shared by posts and feeds: XML-safe characters, slugs, cutting excerpts.

use std::borrow::Cow;

/// XML 1.0's `Char` production: what may appear in a document at all.
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// `text` without the characters XML 1.0 forbids; borrowed when there are none.
pub fn xml_safe(text: &str) -> Cow<'_, str> {
    if text.chars().all(is_xml_char) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.chars().filter(|&c| is_xml_char(c)).collect())
    }
}

/// A name as it appears in a URL: lower-cased; whitespace, controls and ASCII punctuation other
/// than `-` and `_` become `-` (runs collapse, ends trimmed); letters of every script stay.
pub fn slugify(name: &str) -> String {
    let mut slug = String::with_capacity(name.len());
    for c in name.chars().flat_map(char::to_lowercase) {
        let keep = !(c.is_whitespace() || c.is_control() || (c.is_ascii() && !c.is_ascii_alphanumeric() && c != '_'));
        if keep {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    // A file name holds 255 bytes; keep room for the extension and the encodings' suffixes.
    if slug.len() > MAX_SLUG_BYTES {
        let mut end = MAX_SLUG_BYTES;
        while !slug.is_char_boundary(end) {
            end -= 1;
        }
        slug.truncate(end);
    }
    while slug.ends_with('-') {
        slug.pop();
    }
    slug
}

/// The longest slug, in bytes.
pub const MAX_SLUG_BYTES: usize = 200;

/// Collapses runs of whitespace into one space and trims the ends.
pub fn squash_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Cuts `text` to at most `max` characters (never inside one), ending with `…` when cut.
pub fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let keep = max.saturating_sub(1);
    let end = text.char_indices().nth(keep).map_or(text.len(), |(i, _)| i);
    let mut out = text[..end].trim_end().to_owned();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_chars() {
        assert_eq!(xml_safe("a\u{0}b\u{8}c\u{b}\u{c}d\u{1f}e\u{fffe}\u{ffff}f\t\n\r"), "abcdef\t\n\r");
        assert!(matches!(xml_safe("平安 ok"), Cow::Borrowed(_)));
        assert!(is_xml_char('\u{10FFFF}') && is_xml_char('\u{FFFD}') && !is_xml_char('\u{7}'));
    }

    #[test]
    fn slugs() {
        for (name, slug) in [
            ("青岛财经网新闻", "青岛财经网新闻"),
            ("Rust Feeds", "rust-feeds"),
            ("  C++ & Go / Zig?  ", "c-go-zig"),
            ("open-source", "open-source"),
            ("snake_case", "snake_case"),
            ("Ünïcödé Straße", "ünïcödé-straße"),
            ("a..b", "a-b"),
            ("..", ""),
            ("हिन्दी", "हिन्दी"),
        ] {
            assert_eq!(slugify(name), slug, "{name}");
        }
        let long = slugify(&"青".repeat(100));
        assert!(long.len() <= MAX_SLUG_BYTES && long.chars().all(|c| c == '青'));
    }

    #[test]
    fn cutting_multibyte_text() {
        assert_eq!(cut("平安银行创新运营", 5), "平安银行…");
        assert_eq!(cut("平安银行", 4), "平安银行");
        assert_eq!(cut("héllo wörld", 7), "héllo…");
        assert_eq!(cut("🦀🦀🦀", 2), "🦀…");
        for max in 1..12 {
            let out = cut("以客户为中心 平安银行", max);
            assert!(out.chars().count() <= max, "{max}: {out}");
        }
    }

    #[test]
    fn whitespace() {
        assert_eq!(squash_whitespace("  a \n\t b  "), "a b");
    }
}
