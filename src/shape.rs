//! Limits on the shape of a post's HTML, applied in one linear pass before the HTML reaches the
//! parser and sanitizer, as browsers cap tree depth: html5ever's tree builder checks scopes by
//! walking the open elements (quadratic in the nesting depth) and its tokenizer compares each
//! attribute with the ones before it (quadratic in their number). Pure.
//!
//! Within the limits the HTML is returned as it is, byte for byte. Past them, start tags deeper
//! than [`Limits::depth`] are dropped with their end tags (their text stays), and attributes past
//! [`Limits::attributes`] are dropped from their tag.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;

/// How deep and how crowded the HTML may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open elements at once.
    pub depth: usize,
    /// Attributes on one element.
    pub attributes: usize,
}

impl Default for Limits {
    /// Far beyond any written page (blog posts nest a few dozen levels at most), far below what
    /// makes the parser slow.
    fn default() -> Limits {
        Limits { depth: 128, attributes: 64 }
    }
}

/// The HTML within the limits, and where a limit first applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capped<'a> {
    pub html: Cow<'a, str>,
    /// Byte offset, in the input, of the first tag nested too deep.
    pub too_deep: Option<usize>,
    /// Byte offset, in the input, of the first tag with too many attributes.
    pub too_many_attributes: Option<usize>,
}

/// Caps the nesting of Markdown containers opened on one line (`> > > text`, `- - - item`) at
/// `limits.depth` markers, before the Markdown parser builds a container for each. Returns the
/// text and the line (1-based, in `markdown`) of the first line cut.
pub fn cap_markdown(markdown: &str, limits: Limits) -> (Cow<'_, str>, Option<usize>) {
    let mut first = None;
    let mut out = String::new();
    let mut copied = 0;
    let mut line_start = 0;
    for (number, line) in markdown.split_inclusive('\n').enumerate() {
        let markers = container_markers(line, limits.depth);
        if markers.count > limits.depth {
            first.get_or_insert(number + 1);
            out.push_str(&markdown[copied..line_start + markers.kept_end]);
            copied = line_start + markers.end;
        }
        line_start += line.len();
    }
    match first {
        None => (Cow::Borrowed(markdown), None),
        Some(_) => {
            out.push_str(&markdown[copied..]);
            (Cow::Owned(out), first)
        }
    }
}

/// The container markers that open a line.
struct Markers {
    count: usize,
    /// Just after the last marker kept.
    kept_end: usize,
    /// Just after the last marker.
    end: usize,
}

/// The container markers opening `line` — block quotes (`>`) and list items (`-`, `*`, `+`,
/// `1.`, `1)`), each after at most three spaces — keeping the first `keep`.
fn container_markers(line: &str, keep: usize) -> Markers {
    let bytes = line.as_bytes();
    let mut markers = Markers { count: 0, kept_end: 0, end: 0 };
    let indent = |at: usize| bytes[at..].iter().take(3).take_while(|b| **b == b' ').count();
    while let Some(len) = marker_len(&bytes[markers.end + indent(markers.end)..]) {
        markers.end += indent(markers.end) + len;
        markers.count += 1;
        if markers.count <= keep {
            markers.kept_end = markers.end;
        }
    }
    markers
}

/// The length of the container marker at the start of `rest`, with the space or tab after it.
fn marker_len(rest: &[u8]) -> Option<usize> {
    let blank = |at: usize| matches!(rest.get(at), Some(b' ' | b'\t'));
    match rest.first()? {
        b'>' => Some(1 + usize::from(blank(1))),
        b'-' | b'*' | b'+' if blank(1) => Some(2),
        b'0'..=b'9' => {
            let digits = rest.iter().take(10).take_while(|b| b.is_ascii_digit()).count();
            (digits <= 9 && matches!(rest.get(digits), Some(b'.' | b')')) && blank(digits + 1)).then_some(digits + 2)
        }
        _ => None,
    }
}

/// Elements that never have content.
const VOID: [&str; 14] =
    ["area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"];
/// Elements whose content is text up to their end tag.
const RAW_TEXT: [&str; 9] =
    ["script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes", "noscript"];
/// The HTML standard's "special" elements: an end tag of another kind cannot close past them.
#[rustfmt::skip]
const SPECIAL: [&str; 79] = [
    "address", "applet", "area", "article", "aside", "base", "basefont", "bgsound", "blockquote", "body", "br",
    "button", "caption", "center", "col", "colgroup", "dd", "details", "dir", "div", "dl", "dt", "embed", "fieldset",
    "figcaption", "figure", "footer", "form", "frame", "frameset", "h1", "h2", "h3", "h4", "h5", "h6", "head",
    "header", "hgroup", "hr", "html", "iframe", "img", "input", "keygen", "li", "link", "listing", "main", "marquee",
    "menu", "meta", "nav", "noembed", "noframes", "noscript", "object", "ol", "p", "param", "plaintext", "pre",
    "script", "search", "section", "select", "source", "style", "summary", "table", "tbody", "td", "template",
    "textarea", "tfoot", "th", "thead", "title", "tr",
];
/// Where the search for a special element's open tag stops (the standard's "scope").
const SCOPE_BOUNDARIES: [&str; 9] = ["applet", "caption", "html", "table", "td", "th", "marquee", "object", "template"];
/// Elements a new one of the same kind closes (`<li>` after `<li>`), as the parser does.
const SELF_CLOSING_SIBLINGS: [&str; 9] = ["p", "li", "dt", "dd", "option", "tr", "td", "th", "rt"];

/// Applies `limits` to `html`.
pub fn cap(html: &str, limits: Limits) -> Capped<'_> {
    let mut scan = Scan { html, limits, open: Vec::new(), dropped: HashMap::new(), cuts: Vec::new() };
    let (mut too_deep, mut too_many_attributes) = (None, None);
    let mut at = 0;
    while let Some(found) = memchr::memchr(b'<', &html.as_bytes()[at..]) {
        let start = at + found;
        at = match scan.tag(start) {
            Some(Tag::Start { name, end, deep, crowded }) => {
                too_deep = too_deep.or(deep.then_some(start));
                too_many_attributes = too_many_attributes.or(crowded.then_some(start));
                let foreign = scan.open.iter().any(|open| open == "svg" || open == "math");
                match RAW_TEXT.contains(&name.as_str()) && !foreign {
                    true => raw_text_end(html, end, &name),
                    false => end,
                }
            }
            Some(Tag::Other { end }) => end,
            None => start + 1,
        };
    }
    let html = match scan.cuts.is_empty() {
        true => Cow::Borrowed(html),
        false => Cow::Owned(without(html, &scan.cuts)),
    };
    Capped { html, too_deep, too_many_attributes }
}

enum Tag {
    Start { name: String, end: usize, deep: bool, crowded: bool },
    Other { end: usize },
}

struct Scan<'a> {
    html: &'a str,
    limits: Limits,
    /// The open elements kept, innermost last (never more than `limits.depth`).
    open: Vec<String>,
    /// Open elements dropped for depth, by name: their end tags go too.
    dropped: HashMap<String, usize>,
    /// Byte ranges to remove.
    cuts: Vec<Range<usize>>,
}

impl Scan<'_> {
    /// The markup starting at `start` (a `<`): a tag, a comment, a declaration, or `None` for a
    /// `<` that is text.
    fn tag(&mut self, start: usize) -> Option<Tag> {
        let bytes = self.html.as_bytes();
        let rest = &bytes[start + 1..];
        if rest.starts_with(b"!--") {
            return Some(Tag::Other { end: comment_end(bytes, start + 4) });
        }
        match rest.first()? {
            b'!' | b'?' => Some(Tag::Other { end: after_gt(bytes, start) }),
            b'/' if rest.get(1).is_some_and(u8::is_ascii_alphabetic) => {
                let (name, _) = name_at(bytes, start + 2);
                let end = after_gt(bytes, start);
                self.end_tag(name, start..end);
                Some(Tag::Other { end })
            }
            c if c.is_ascii_alphabetic() => Some(self.start_tag(start)),
            _ => None,
        }
    }

    fn start_tag(&mut self, start: usize) -> Tag {
        let bytes = self.html.as_bytes();
        let (name, mut at) = name_at(bytes, start + 1);
        let mut count = 0;
        let mut crowded_from = None;
        // Attributes: a name, then `=` and a value, quoted or not; `>` outside quotes ends the tag.
        let end = loop {
            while at < bytes.len() && (bytes[at].is_ascii_whitespace() || bytes[at] == b'/') {
                at += 1;
            }
            if at >= bytes.len() || bytes[at] == b'>' {
                break (at + 1).min(bytes.len());
            }
            count += 1;
            if count == self.limits.attributes + 1 {
                crowded_from = Some(at);
            }
            at = attribute_end(bytes, at);
        };
        let deep = self.open_element(&name, start..end);
        if let (Some(from), false) = (crowded_from, deep) {
            // Up to the `>` (or `/>`), which stays; an unclosed tag loses the rest of the input.
            let close = match &bytes[..end] {
                b if b.ends_with(b"/>") => end - 2,
                b if b.ends_with(b">") => end - 1,
                _ => end,
            };
            self.cuts.push(from..close.max(from));
        }
        Tag::Start { name, end, deep, crowded: crowded_from.is_some() }
    }

    /// Records an element opened by the tag at `range`; returns whether it was dropped for depth.
    fn open_element(&mut self, name: &str, range: Range<usize>) -> bool {
        if VOID.contains(&name) {
            return false;
        }
        if SELF_CLOSING_SIBLINGS.contains(&name) && self.open.last().is_some_and(|top| top == name) {
            self.open.pop();
        }
        if self.open.len() < self.limits.depth {
            self.open.push(name.to_owned());
            return false;
        }
        *self.dropped.entry(name.to_owned()).or_default() += 1;
        self.cuts.push(range);
        true
    }

    /// An end tag closes its element as the parser would: a special element's end tag finds it
    /// within its scope; any other end tag only when no special element is open above it.
    /// Otherwise the parser ignores it, and so does the count.
    fn end_tag(&mut self, name: String, range: Range<usize>) {
        if let Some(count) = self.dropped.get_mut(&name).filter(|c| **c > 0) {
            *count -= 1;
            self.cuts.push(range);
            return;
        }
        let special = SPECIAL.contains(&name.as_str());
        for index in (0..self.open.len()).rev() {
            let open = self.open[index].as_str();
            if open == name {
                self.open.truncate(index);
                return;
            }
            let barrier = if special { SCOPE_BOUNDARIES.contains(&open) } else { SPECIAL.contains(&open) };
            if barrier {
                return;
            }
        }
    }
}

/// A tag name at `at`, lower-cased, and where it ends.
fn name_at(bytes: &[u8], at: usize) -> (String, usize) {
    let end = bytes[at..]
        .iter()
        .position(|b| b.is_ascii_whitespace() || *b == b'/' || *b == b'>')
        .map_or(bytes.len(), |i| at + i);
    (String::from_utf8_lossy(&bytes[at..end]).to_ascii_lowercase(), end)
}

/// Just after the comment whose text starts at `at`: `-->`, `--!>`, or the abrupt `<!-->` and
/// `<!--->` the tokenizer also accepts.
fn comment_end(bytes: &[u8], at: usize) -> usize {
    let rest = &bytes[at..];
    if rest.starts_with(b">") {
        return at + 1;
    }
    if rest.starts_with(b"->") {
        return at + 2;
    }
    let mut from = 0;
    while let Some(i) = memchr::memmem::find(&rest[from..], b"--") {
        let dashes = from + i;
        if rest[dashes + 2..].starts_with(b">") {
            return at + dashes + 3;
        }
        if rest[dashes + 2..].starts_with(b"!>") {
            return at + dashes + 4;
        }
        from = dashes + 1;
    }
    bytes.len()
}

/// Where an attribute starting at `at` ends: after its value, if it has one.
fn attribute_end(bytes: &[u8], mut at: usize) -> usize {
    while at < bytes.len() && !(bytes[at].is_ascii_whitespace() || matches!(bytes[at], b'=' | b'>' | b'/')) {
        at += 1;
    }
    let mut value = at;
    while value < bytes.len() && bytes[value].is_ascii_whitespace() {
        value += 1;
    }
    if bytes.get(value) != Some(&b'=') {
        return at;
    }
    value += 1;
    while value < bytes.len() && bytes[value].is_ascii_whitespace() {
        value += 1;
    }
    match bytes.get(value) {
        Some(&quote @ (b'"' | b'\'')) => {
            memchr::memchr(quote, &bytes[value + 1..]).map_or(bytes.len(), |i| value + 1 + i + 1)
        }
        _ => {
            bytes[value..].iter().position(|b| b.is_ascii_whitespace() || *b == b'>').map_or(bytes.len(), |i| value + i)
        }
    }
}

/// Just after the `>` that closes the markup at `start`, or the end of the input.
fn after_gt(bytes: &[u8], start: usize) -> usize {
    memchr::memchr(b'>', &bytes[start..]).map_or(bytes.len(), |i| start + i + 1)
}

/// Where the text of a raw-text element ends: at its end tag (any case), or the end of the input.
fn raw_text_end(html: &str, from: usize, name: &str) -> usize {
    let bytes = html.as_bytes();
    let mut at = from;
    while let Some(i) = memchr::memmem::find(&bytes[at..], b"</") {
        let tag = at + i;
        let candidate = &bytes[tag + 2..];
        if candidate.len() >= name.len() && candidate[..name.len()].eq_ignore_ascii_case(name.as_bytes()) {
            return tag;
        }
        at = tag + 2;
    }
    bytes.len()
}

/// `html` without the byte ranges `cuts` (in order, not overlapping).
fn without(html: &str, cuts: &[Range<usize>]) -> String {
    let mut out = String::with_capacity(html.len());
    let mut at = 0;
    for cut in cuts {
        if cut.start >= at {
            out.push_str(&html[at..cut.start]);
            // A `<` left just before a cut is text; written as a reference, it cannot join what
            // follows the cut into a new tag (`<<div>div>`).
            if out.ends_with('<') {
                out.pop();
                out.push_str("&lt;");
            }
        }
        at = at.max(cut.end);
    }
    out.push_str(&html[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Limits = Limits { depth: 3, attributes: 2 };

    #[test]
    fn within_the_limits_nothing_changes() {
        for html in [
            "<p>a <b>b</b></p><ul><li>1<li>2<li>3</ul>",
            "<div><div><div>x</div></div></div><div><div><div>y</div></div></div>",
            "<p class=\"a > b\" hidden>t</p><!-- <div><div><div><div> --><br><img src=x alt=\"\">",
            "<script>if (a<b) { document.write('<div><div><div><div>') }</script><p>after</p>",
            "1 < 2 and <3 hearts, a <> b",
        ] {
            let capped = cap(html, SMALL);
            assert_eq!(capped.html, html);
            assert!(matches!(capped.html, Cow::Borrowed(_)));
            assert_eq!((capped.too_deep, capped.too_many_attributes), (None, None), "{html}");
        }
    }

    #[test]
    fn deeper_tags_go_and_their_text_stays() {
        let capped = cap("<div><div><div><div>x</div>y</div></div></div>z", SMALL);
        assert_eq!(capped.html, "<div><div><div>xy</div></div></div>z");
        assert_eq!(capped.too_deep, Some(15));
        let unclosed = "<div>".repeat(10) + "deep";
        assert_eq!(cap(&unclosed, SMALL).html, "<div><div><div>deep");
    }

    #[test]
    fn attributes_past_the_limit_go() {
        let capped = cap("<p a=1 b=\"2\" c='3' d e=5>t</p><br x=1 y=2 z=3/>", SMALL);
        assert_eq!(capped.html, "<p a=1 b=\"2\" >t</p><br x=1 y=2 />");
        assert_eq!(capped.too_many_attributes, Some(0));
    }

    #[test]
    fn hostile_edges_found_in_review() {
        // An unclosed, crowded tag at the end of a file ending in a multi-byte character.
        let capped = cap("<p a=1 b=2 c=3 é", SMALL);
        assert_eq!(capped.html, "<p a=1 b=2 ");
        // Too deep and too crowded at once: the tag goes whole, with its end tag.
        let both = "<div><div><div><div a=1 b=2 c=3>x</div></div></div></div>";
        assert_eq!(cap(both, SMALL).html, "<div><div><div>x</div></div></div>");
        // An end tag the parser ignores (a special element is open above its element) closes nothing.
        let ignored = "<span><div></span>".repeat(3) + "<div>deep";
        assert_eq!(cap(&ignored, SMALL).too_deep, Some(18 + 6), "the second <div> is the fourth open element");
        // Comments end where the tokenizer ends them.
        for comment in ["<!-->", "<!--->", "<!-- x --!>"] {
            let html = format!("{comment}{}", "<div>".repeat(4));
            assert!(cap(&html, SMALL).too_deep.is_some(), "{comment}");
        }
        // Inside SVG, <style> is not raw text.
        let svg = format!("<svg><style>{}", "<g>".repeat(4));
        assert!(cap(&svg, SMALL).too_deep.is_some());
        // A `<` left before a cut cannot join the rest into a new tag.
        let spliced = "<div>".repeat(3) + "<<div>div>";
        assert_eq!(cap(&spliced, SMALL).html, "<div><div><div>&lt;div>");
    }

    #[test]
    fn markdown_quotes_past_the_depth_go() {
        let text = "> > quoted\n>>>>>> deep\nplain > not a marker\n-x 1.x\n";
        let (capped, line) = cap_markdown(text, SMALL);
        assert_eq!(capped, "> > quoted\n>>>deep\nplain > not a marker\n-x 1.x\n");
        assert_eq!(line, Some(2));
        let (lists, line) = cap_markdown("text\n- 1. > * + deep\n", SMALL);
        assert_eq!((lists.as_ref(), line), ("text\n- 1. > deep\n", Some(2)));
        let (tabs, line) = cap_markdown(">\t>\t>\t>\tdeep\n", SMALL);
        assert_eq!((tabs.as_ref(), line), (">\t>\t>\tdeep\n", Some(1)));
        let (same, none) = cap_markdown("> a\n> > > b\n", SMALL);
        assert_eq!((same, none), (Cow::Borrowed("> a\n> > > b\n"), None));
    }

    #[test]
    fn hostile_shapes_are_cut_to_the_limits() {
        // Their time is measured in benches/hostile.sh.
        let deep = "<div>".repeat(100_000);
        assert_eq!(cap(&deep, Limits::default()).html.len(), 128 * 5);
        let crowded = format!("<p {}>x</p>", (0..100_000).map(|i| format!("a{i}=1")).collect::<Vec<_>>().join(" "));
        let capped = cap(&crowded, Limits::default());
        assert!(capped.html.len() < 64 * 10, "{}", capped.html.len());
        assert!(capped.html.ends_with(">x</p>"));
    }
}
