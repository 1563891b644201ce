//! Small text rules shared by posts and feeds: XML-safe characters, slugs, cutting excerpts.

use std::borrow::Cow;

/// XML 1.0's `Char` production: what may appear in a document at all.
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// `text` without the characters XML 1.0 forbids; borrowed when there are none.
pub fn xml_safe(text: &str) -> Cow<'_, str> {
    // In UTF-8 the forbidden characters are the control bytes and U+FFFE, U+FFFF (surrogates
    // cannot occur in a `str`); bytes are much quicker to check than decoded characters.
    let bytes = text.as_bytes();
    let no_controls = bytes.iter().all(|&b| b >= 0x20 || matches!(b, b'\t' | b'\n' | b'\r'));
    let no_ffff = || ["\u{FFFE}", "\u{FFFF}"].iter().all(|c| memchr::memmem::find(bytes, c.as_bytes()).is_none());
    if no_controls && no_ffff() {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.chars().filter(|&c| is_xml_char(c)).collect())
    }
}

/// Every [`Term`] made, and how many there were after they were last swept.
static TERMS: std::sync::LazyLock<std::sync::Mutex<(std::collections::HashSet<std::sync::Arc<str>>, usize)>> =
    std::sync::LazyLock::new(Default::default);

/// A category or tag name. A site has few and its posts many, so each name is kept once and
/// shared by every post that has it (a post's record holds a pointer, not a copy).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Term(std::sync::Arc<str>);

impl Term {
    /// The shared copy of `name`. Names no post holds any more are let go as the set grows.
    pub fn new(name: &str) -> Term {
        use std::sync::{Arc, PoisonError};
        let mut guard = TERMS.lock().unwrap_or_else(PoisonError::into_inner);
        let (names, swept) = &mut *guard;
        if let Some(known) = names.get(name) {
            return Term(known.clone());
        }
        if names.len() >= 2 * *swept + 1024 {
            names.retain(|n| Arc::strong_count(n) > 1);
            *swept = names.len();
        }
        let fresh: Arc<str> = Arc::from(name);
        names.insert(fresh.clone());
        Term(fresh)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Term {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Term {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::fmt::Display for Term {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<&str> for Term {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl serde::Serialize for Term {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Term {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Term, D::Error> {
        let name: Cow<'de, str> = serde::Deserialize::deserialize(deserializer)?;
        Ok(Term::new(&name))
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

/// Jekyll's slug of a name. With `cased`, its `pretty` mode with case kept (`:title`): runs of
/// characters other than letters, digits and `._~!$&'()+,;=@` become one `-`. Without, its
/// `default` mode in lower case (`:slug`, `:slugified_categories`): runs of characters other than
/// letters and digits become one `-`. Ends trimmed of `-`.
pub fn jekyll_slug(name: &str, cased: bool) -> String {
    let mut slug = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_alphanumeric() || (cased && "._~!$&'()+,;=@".contains(c)) {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_matches('-');
    if cased { slug.to_owned() } else { slug.to_lowercase() }
}

/// Whether `tag` is a language tag (BCP 47's shape): a primary subtag of 2 to 8 letters, then
/// subtags of 1 to 8 letters or digits, joined by `-` (`zh-CN`, `en`, `zh-Hant-TW`).
pub fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let primary = parts.next().unwrap_or_default();
    (2..=8).contains(&primary.len())
        && primary.chars().all(|c| c.is_ascii_alphabetic())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// HTML's element names, as far as a title or summary might hold them.
const HTML_ELEMENTS: &[&str] = &[
    "a",
    "abbr",
    "address",
    "article",
    "aside",
    "audio",
    "b",
    "bdi",
    "bdo",
    "big",
    "blockquote",
    "br",
    "button",
    "center",
    "cite",
    "code",
    "del",
    "details",
    "dfn",
    "div",
    "em",
    "embed",
    "figcaption",
    "figure",
    "font",
    "footer",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "i",
    "iframe",
    "img",
    "ins",
    "kbd",
    "label",
    "li",
    "main",
    "mark",
    "math",
    "nav",
    "object",
    "ol",
    "p",
    "picture",
    "pre",
    "q",
    "rp",
    "rt",
    "ruby",
    "s",
    "samp",
    "script",
    "section",
    "small",
    "source",
    "span",
    "strike",
    "strong",
    "style",
    "sub",
    "summary",
    "sup",
    "svg",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "time",
    "tr",
    "tt",
    "u",
    "ul",
    "var",
    "video",
    "wbr",
];

/// Whether `after` (the text after a `<`) starts an HTML tag or comment: `em>`, `/span>`,
/// `a href=...>`, `!-- ... -->`. `<notes>` and `Vec<String>` are text.
fn starts_html_tag(after: &str) -> bool {
    if after.starts_with("!--") {
        return true;
    }
    let name = after.strip_prefix('/').unwrap_or(after);
    let end = name.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(name.len());
    let follows = name[end..].chars().next();
    matches!(follows, Some('>' | '/' | ' ' | '\t' | '\n'))
        && HTML_ELEMENTS.iter().any(|element| element.eq_ignore_ascii_case(&name[..end]))
}

/// Plain text from a line that may hold HTML tags (`Hello <em>World</em>`): the tags of HTML
/// elements taken out, whitespace runs, newlines included, folded to one space. A `<` that starts
/// no such tag (`a < b`, `R&D <notes>`) stays.
pub fn strip_tags(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let starts_tag = starts_html_tag(after);
        match after.find('>').filter(|_| starts_tag) {
            Some(end) => rest = &after[end + 1..],
            None => {
                out.push('<');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    squash_whitespace(&out)
}

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
    fn a_term_is_kept_once_and_let_go_when_no_post_holds_it() {
        let held = Term::new("共享 term test");
        assert!(std::sync::Arc::ptr_eq(&held.0, &Term::new(&String::from("共享 term test")).0), "one copy");
        assert_eq!(held, "共享 term test");
        for i in 0..20_000 {
            drop(Term::new(&format!("passing term {i}")));
        }
        let kept = TERMS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).0.len();
        assert!(kept < 10_000, "names no post holds are swept: {kept} kept");
        // A name one post holds survived the sweeps: asking again gives the same copy.
        assert!(std::sync::Arc::ptr_eq(&held.0, &Term::new("共享 term test").0), "a name still held stays");
    }

    #[test]
    fn xml_chars() {
        assert_eq!(xml_safe("a\u{0}b\u{8}c\u{b}\u{c}d\u{1f}e\u{fffe}\u{ffff}f\t\n\r"), "abcdef\t\n\r");
        assert!(matches!(xml_safe("平安 ok"), Cow::Borrowed(_)));
        assert!(is_xml_char('\u{10FFFF}') && is_xml_char('\u{FFFD}') && !is_xml_char('\u{7}'));
        // The byte check agrees with the character class, on each side of every boundary.
        let edges = (0..0x80).chain([0xD7FF, 0xE000, 0xFF0C, 0xFFBE, 0xFFFD, 0xFFFE, 0xFFFF, 0x10000, 0x10FFFF]);
        for c in edges.filter_map(char::from_u32) {
            let text = format!("平{c}安");
            assert_eq!(matches!(xml_safe(&text), Cow::Borrowed(_)), is_xml_char(c), "U+{:04X}", c as u32);
        }
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

    #[test]
    fn jekyll_slugs_and_tag_stripping() {
        assert_eq!(jekyll_slug("Hello World!", true), "Hello-World!");
        assert_eq!(jekyll_slug("Space Name", false), "space-name");
        assert_eq!(jekyll_slug("Hello.World_x", false), "hello-world-x");
        assert_eq!(jekyll_slug("Ça va? (oui)", false), "ça-va-oui");
        assert_eq!(jekyll_slug("你好-世界", true), "你好-世界");
        assert_eq!(jekyll_slug(" a//b ", true), "a-b");
        assert_eq!(strip_tags("Hello <em>World</em>\n second"), "Hello World second");
        assert_eq!(strip_tags("a < b and c<d"), "a < b and c<d");
        assert_eq!(strip_tags("<span class=\"x\">平安</span> <br/>银行"), "平安 银行");
        assert_eq!(strip_tags("unclosed <b tag"), "unclosed <b tag");
        assert_eq!(strip_tags("R&D <notes> and Vec<String>"), "R&D <notes> and Vec<String>");
        assert_eq!(strip_tags("a<!-- c -->b <A HREF=\"x\">y</A>"), "ab y");
    }
}
