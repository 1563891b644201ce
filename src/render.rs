//! A post body turned into what feeds carry: sanitized, well-formed HTML with absolute ASCII URLs,
//! and a plain-text summary.
//!
//! Markdown goes through pulldown-cmark (raw HTML passes through), then everything goes through
//! ammonia, which drops what a careful reader drops (`script`, `style`, `iframe`, `on*`...) and
//! re-serializes the tree, so a stray `</p>` in a post never reaches a feed.

use std::borrow::Cow;
use std::ops::ControlFlow;

use ammonia::{Builder, UrlRelative};
use pulldown_cmark::{Options, Parser};
use url::Url;

use crate::post::{BodyFormat, PostMeta, PostWarning};
use crate::shape::{self, Limits};
use crate::template::{self, SiteVars};
use crate::text::{cut, squash_whitespace, xml_safe};

/// A post's body as feeds carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Sanitized HTML, every URL absolute and ASCII.
    pub content_html: String,
    /// Plain text, at most the configured number of characters.
    pub summary: String,
    /// What was cut from a body of a hostile shape.
    pub warnings: Vec<PostWarning>,
}

/// How summaries are made.
#[derive(Debug, Clone, Copy)]
pub struct SummaryRule<'a> {
    pub separator: &'a str,
    pub length: usize,
    /// What Liquid in a body sees as `site`.
    pub site: SiteVars<'a>,
}

/// Renders a post's body.
pub fn render(meta: &PostMeta, body: &str, rule: SummaryRule<'_>) -> Rendered {
    render_as(meta, body, rule, true)
}

/// A post's summary and warnings, exactly as [`render`] makes them, without its content
/// (`content_html` is empty): what an archive page of summaries needs. The body is sanitized only
/// when the start of its first paragraph is not plain enough to be read as it is.
pub fn summarize(meta: &PostMeta, body: &str, rule: SummaryRule<'_>) -> Rendered {
    render_as(meta, body, rule, false)
}

fn render_as(meta: &PostMeta, body: &str, rule: SummaryRule<'_>, whole: bool) -> Rendered {
    let base = Url::parse(&meta.link).ok();
    let (body, mut liquid_warnings) = template::expand(meta, body, &rule.site);
    let body = body.as_ref();
    let (html, mut warnings) = shaped_html(meta, body);
    warnings.append(&mut liquid_warnings);
    let content = || sanitize(&html, base.as_ref());
    let content_html = if whole { content() } else { String::new() };

    let summary = match &meta.summary {
        Some(summary) => squash_whitespace(summary),
        // memchr's searcher: a body without the separator is read whole, and std's was 1 % of a
        // first publish.
        None => match memchr::memmem::find(body.as_bytes(), rule.separator.as_bytes()).map(|at| &body[..at]) {
            Some(before) => all_text(&sanitize(&shaped_html(meta, before).0, base.as_ref())),
            None if whole => first_paragraph(&content_html),
            None => plain_first_paragraph(&html).unwrap_or_else(|| first_paragraph(&content())),
        },
    };
    Rendered { content_html, summary: cut(&xml_safe(&summary), rule.length), warnings }
}

/// `text` (the body or its start) as HTML within the shape limits, with a warning for each limit
/// it ran into, on the line where it first did: an HTML body's own line; for Markdown, the line
/// of a too-deep quote or list, else (the limit met in the HTML made from it) the body's first.
fn shaped_html(meta: &PostMeta, text: &str) -> (String, Vec<PostWarning>) {
    let limits = Limits::default();
    let (source, deep_markdown) = match meta.format {
        BodyFormat::Markdown => shape::cap_markdown(text, limits),
        BodyFormat::Html => (Cow::Borrowed(text), None),
    };
    let (html, deep_inline) = to_html(meta.format, &source, limits.depth);
    let capped = shape::cap(&html, limits);
    // Cutting container markers keeps every line, so offsets in `source` count lines as in `text`.
    let line_at = |offset: usize| meta.body_line + memchr::memchr_iter(b'\n', &source.as_bytes()[..offset]).count();
    let line = |offset: usize| match meta.format {
        BodyFormat::Html => line_at(offset),
        BodyFormat::Markdown => meta.body_line,
    };
    let mut warnings = Vec::new();
    let mut warn = |line: usize, message: String| warnings.push(PostWarning { line, message });
    if let Some(line) = deep_markdown {
        warn(
            meta.body_line + line - 1,
            format!(
                "block quotes or lists nested deeper than {} levels on one line: the markers past that depth are dropped; flatten them",
                limits.depth
            ),
        );
    }
    if let Some(offset) = deep_inline {
        warn(
            line_at(offset),
            format!(
                "Markdown nested deeper than {} levels (emphasis, links, quotes, lists): the markup below that depth is dropped and its text kept; simplify it",
                limits.depth
            ),
        );
    }
    if let Some(offset) = capped.too_deep {
        warn(
            line(offset),
            format!(
                "HTML nested deeper than {} elements: the tags below that depth are dropped and their text kept; flatten the markup",
                limits.depth
            ),
        );
    }
    if let Some(offset) = capped.too_many_attributes {
        warn(
            line(offset),
            format!(
                "an HTML element has more than {} attributes: the rest are dropped; remove them",
                limits.attributes
            ),
        );
    }
    (capped.html.into_owned(), warnings)
}

/// A body as HTML. Markdown's elements nested deeper than `depth` (runs of emphasis
/// delimiters nest one element per two characters) are left out, their text kept, before any
/// HTML is written for them; returns where the first was, as a byte offset in `body`.
fn to_html(format: BodyFormat, body: &str, depth: usize) -> (Cow<'_, str>, Option<usize>) {
    use pulldown_cmark::Event;
    match format {
        BodyFormat::Html => (Cow::Borrowed(body), None),
        BodyFormat::Markdown => {
            let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_FOOTNOTES;
            let mut html = String::with_capacity(body.len() + body.len() / 4);
            let (mut open, mut first_dropped) = (0usize, None);
            let events = Parser::new_ext(body, options).into_offset_iter().filter_map(|(event, range)| {
                let keep = match &event {
                    Event::Start(_) => {
                        open += 1;
                        open <= depth
                    }
                    Event::End(_) => {
                        open -= 1;
                        open < depth
                    }
                    _ => true,
                };
                if !keep {
                    first_dropped.get_or_insert(range.start);
                }
                keep.then_some(event)
            });
            pulldown_cmark::html::push_html(&mut html, events);
            (Cow::Owned(html), first_dropped)
        }
    }
}

/// `html` sanitized, with every URL attribute resolved against `base`, and without the
/// characters XML forbids (before any text is taken from it: removing one can leave two spaces
/// side by side, which the text's whitespace squashing then joins).
fn sanitize(html: &str, base: Option<&Url>) -> String {
    BASE.with_borrow_mut(|current| *current = base.cloned());
    let document = SANITIZER.clean(html);
    BASE.with_borrow_mut(|current| *current = None);
    let html = document.to_string();
    match xml_safe(&html) {
        Cow::Borrowed(_) => html,
        Cow::Owned(safe) => safe,
    }
}

thread_local! {
    /// The URL the sanitizer on this thread resolves against: the post it is cleaning.
    static BASE: std::cell::RefCell<Option<Url>> = const { std::cell::RefCell::new(None) };
}

/// The sanitizer, built once (building one costs as much as cleaning a short post): ammonia's
/// safe defaults, plus media and `class`, with every URL attribute resolved against the post
/// being cleaned on the calling thread. ammonia checks a URL's scheme before it calls the
/// filter, and resolves relative URLs after it (here: leaves them, as the filter resolved them),
/// so the filter checks the scheme of what it makes itself ([`absolute_url`]).
static SANITIZER: std::sync::LazyLock<Builder<'static>> = std::sync::LazyLock::new(|| {
    let mut builder = Builder::default();
    builder
        .add_tags(["video", "audio", "source", "picture", "figure", "figcaption"])
        .add_generic_attributes(["class"])
        .add_tag_attributes("img", ["srcset", "sizes", "loading"])
        .add_tag_attributes("video", ["src", "poster", "controls", "width", "height", "loop", "muted"])
        .add_tag_attributes("audio", ["src", "controls", "loop", "muted"])
        .add_tag_attributes("source", ["src", "srcset", "type", "media", "sizes"])
        .url_relative(UrlRelative::PassThrough)
        .attribute_filter(|_element, attribute, value| {
            BASE.with_borrow(|base| match (attribute, base) {
                ("href" | "src" | "poster" | "cite", Some(base)) => absolute_url(base, value).map(Cow::Owned),
                ("srcset", Some(base)) => absolute_srcset(base, value).map(Cow::Owned),
                _ => Some(Cow::Borrowed(value)),
            })
        });
    builder
});

/// `value` resolved against `base`: relative and protocol-relative references become absolute,
/// non-ASCII characters are percent-encoded (hosts punycoded). `None` when it cannot be a URL.
/// Only the schemes ammonia lets through by default are kept: `javascript:` behind a leading
/// no-break space is no scheme to ammonia's check but would be one once trimmed.
pub fn absolute_url(base: &Url, value: &str) -> Option<String> {
    static SCHEMES: std::sync::LazyLock<std::collections::HashSet<&'static str>> =
        std::sync::LazyLock::new(|| Builder::default().clone_url_schemes());
    // What the URL standard strips from either end: C0 controls and space, no other whitespace.
    let url = base.join(value.trim_matches(|c: char| c <= ' ')).ok()?;
    SCHEMES.contains(url.scheme()).then(|| url.into())
}

fn absolute_srcset(base: &Url, value: &str) -> Option<String> {
    let mut out = Vec::new();
    for candidate in value.split(',') {
        let candidate = candidate.trim();
        if candidate.is_empty() {
            continue;
        }
        let (url, descriptor) = candidate.split_once(char::is_whitespace).unwrap_or((candidate, ""));
        let url = absolute_url(base, url)?;
        let descriptor = descriptor.trim();
        out.push(if descriptor.is_empty() { url } else { format!("{url} {descriptor}") });
    }
    Some(out.join(", "))
}

/// A piece of sanitized HTML as the text extraction sees it.
#[derive(Debug, Clone, Copy)]
enum Piece<'a> {
    Open(&'a str),
    Close(&'a str),
    Text(&'a str),
}

/// Shows `visit` the tags and text of `html` (entities decoded by html5ever) in order, until it
/// breaks. The HTML is fed in slices, so a visit that stops early leaves the rest untokenized.
fn walk(html: &str, visit: impl FnMut(Piece<'_>) -> ControlFlow<()>) {
    use html5ever::tendril::StrTendril;
    use html5ever::tokenizer::{BufferQueue, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts};
    use std::cell::{Cell, RefCell};

    /// Bytes fed at a time: a short post's first paragraph usually ends within them.
    const SLICE: usize = 2048;

    struct Sink<F> {
        visit: RefCell<F>,
        stopped: Cell<bool>,
    }
    impl<F: FnMut(Piece<'_>) -> ControlFlow<()>> TokenSink for Sink<F> {
        type Handle = ();
        fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
            if self.stopped.get() {
                return TokenSinkResult::Continue;
            }
            let mut visit = self.visit.borrow_mut();
            let flow = match &token {
                Token::TagToken(tag) if tag.kind == TagKind::StartTag => visit(Piece::Open(&tag.name)),
                Token::TagToken(tag) => visit(Piece::Close(&tag.name)),
                Token::CharacterTokens(text) => visit(Piece::Text(text)),
                _ => ControlFlow::Continue(()),
            };
            self.stopped.set(flow.is_break());
            TokenSinkResult::Continue
        }
    }

    // The tokenizer drops a byte-order mark at the start of every slice it is fed: only the
    // document's own is dropped, here.
    let options = TokenizerOpts { discard_bom: false, ..TokenizerOpts::default() };
    let tokenizer = Tokenizer::new(Sink { visit: RefCell::new(visit), stopped: Cell::new(false) }, options);
    let queue = BufferQueue::default();
    let mut rest = html.strip_prefix('\u{FEFF}').unwrap_or(html);
    while !rest.is_empty() && !tokenizer.sink.stopped.get() {
        let mut end = rest.len().min(SLICE);
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        queue.push_back(StrTendril::from(&rest[..end]));
        let _ = tokenizer.feed(&queue);
        rest = &rest[end..];
    }
    if !tokenizer.sink.stopped.get() {
        tokenizer.end();
    }
}

/// Elements after which text from the next one must not run into this one's.
fn is_block(name: &str) -> bool {
    matches!(
        name,
        "p" | "div" | "br" | "li" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "tr" | "td" | "th" | "pre" | "blockquote"
    )
}

/// All the text of `html`, blocks separated by a space, whitespace collapsed.
fn all_text(html: &str) -> String {
    let mut text = String::new();
    walk(html, |piece| {
        match piece {
            Piece::Text(t) => text.push_str(t),
            Piece::Open(name) | Piece::Close(name) if is_block(name) => text.push(' '),
            _ => {}
        }
        ControlFlow::Continue(())
    });
    squash_whitespace(&text)
}

/// The text of the first `<p>` that has any; all the text when no paragraph has.
fn first_paragraph(html: &str) -> String {
    let mut depth = 0usize;
    let (mut text, mut paragraph) = (String::new(), String::new());
    walk(html, |piece| {
        match piece {
            Piece::Open("p") => depth += 1,
            Piece::Close("p") if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    paragraph = squash_whitespace(&text);
                    if !paragraph.is_empty() {
                        return ControlFlow::Break(());
                    }
                    text.clear();
                }
            }
            Piece::Open(name) | Piece::Close(name) if depth > 0 && is_block(name) => text.push(' '),
            Piece::Text(t) if depth > 0 => text.push_str(t),
            _ => {}
        }
        ControlFlow::Continue(())
    });
    if paragraph.is_empty() { all_text(html) } else { paragraph }
}

/// What [`first_paragraph`] finds in the sanitized `html`, read from `html` as it is, or `None`
/// when that could differ. It reads only up to the end of the first paragraph with text, and
/// only while everything before that end is plain: elements from a short list (blocks that
/// hold blocks and inline elements, headings and paragraphs that hold inline elements, inline
/// elements, void elements), each closed by its own end tag, none inside one it may not be in,
/// and that paragraph at the top, with nothing open around it. The HTML parser then builds
/// exactly those elements as they are nested, before any later token is seen, and no later token
/// can change them (nothing is open for the parser to reopen, move or close); the sanitizer
/// keeps the text of every one of them and drops comments; what a document type or a NUL
/// character would be, the parser ignores here too. Anything else gives up on the spot.
fn plain_first_paragraph(html: &str) -> Option<String> {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Kind {
        /// Holds blocks (not paragraphs) and inline elements.
        Block,
        /// Holds inline elements: a paragraph or a heading.
        Leaf,
        Inline,
    }
    fn kind(name: &str) -> Option<Kind> {
        match name {
            "div" | "blockquote" | "figure" | "figcaption" | "section" | "article" | "header" | "footer" | "aside"
            | "nav" | "main" => Some(Kind::Block),
            "p" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => Some(Kind::Leaf),
            "a" | "abbr" | "b" | "bdi" | "cite" | "code" | "del" | "dfn" | "em" | "i" | "ins" | "kbd" | "mark"
            | "q" | "s" | "samp" | "small" | "span" | "strong" | "sub" | "sup" | "u" | "var" => Some(Kind::Inline),
            _ => None,
        }
    }
    let mut open: Vec<(String, Kind)> = Vec::new();
    let (mut text, mut found, mut plain) = (String::new(), None, true);
    walk(html, |piece| {
        let in_paragraph = open.first().is_some_and(|(name, _)| name == "p");
        // Inline elements go anywhere; blocks and headings only into blocks.
        let allowed = |kind: Kind| kind == Kind::Inline || open.iter().all(|(_, held)| *held == Kind::Block);
        match piece {
            Piece::Open(name @ ("br" | "img" | "wbr")) => {
                if in_paragraph && is_block(name) {
                    text.push(' ');
                }
            }
            Piece::Open("hr") if open.iter().all(|(_, held)| *held == Kind::Block) => {}
            Piece::Open("p") if !open.is_empty() => plain = false,
            Piece::Open("a") if open.iter().any(|(name, _)| name == "a") => plain = false,
            Piece::Open(name) => match kind(name) {
                Some(kind) if allowed(kind) => open.push((name.to_owned(), kind)),
                _ => plain = false,
            },
            Piece::Close(name) => match open.last() {
                Some((last, _)) if last == name => {
                    open.pop();
                    if name == "p" {
                        let paragraph = squash_whitespace(&xml_safe(&text));
                        if !paragraph.is_empty() {
                            found = Some(paragraph);
                            return ControlFlow::Break(());
                        }
                        text.clear();
                    }
                }
                _ => plain = false,
            },
            Piece::Text(t) if in_paragraph => text.push_str(t),
            Piece::Text(_) => {}
        }
        if plain { ControlFlow::Continue(()) } else { ControlFlow::Break(()) }
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    fn meta(format: BodyFormat, summary: Option<&str>) -> PostMeta {
        let date = DateTime::parse_from_rfc3339("2021-12-23T16:34:36+08:00").unwrap();
        PostMeta {
            title: "t".into(),
            link: "https://news.example.com/cat/2021/12/23/post.html".into(),
            summary: summary.map(Into::into),
            format,
            ..PostMeta::example("p.md", date)
        }
    }

    const RULE: SummaryRule<'static> = SummaryRule {
        separator: "<!--more-->",
        length: 300,
        site: SiteVars { title: "", description: "", url: "", baseurl: "", author: "", lang: "", jekyll: false },
    };

    fn html(body: &str) -> String {
        render(&meta(BodyFormat::Markdown, None), body, RULE).content_html
    }

    #[test]
    fn hostile_shapes_are_cut_with_a_warning_on_their_line() {
        let rule = SummaryRule {
            separator: "<!--more-->",
            length: 100,
            site: SiteVars { title: "", description: "", url: "", baseurl: "", author: "", lang: "", jekyll: false },
        };
        let deep = format!("<p>first</p>\n\n{}deep text", "<div>".repeat(1000));
        let rendered = render(&meta(BodyFormat::Html, None), &deep, rule);
        assert!(rendered.content_html.contains("deep text"), "the text stays");
        assert_eq!(rendered.content_html.matches("<div>").count(), Limits::default().depth);
        assert_eq!(rendered.warnings.len(), 1);
        assert_eq!(rendered.warnings[0].line, 5 + 2, "the body starts on line 5; the deep tag is its third line");
        assert!(rendered.warnings[0].message.contains("nested deeper than 128"), "{}", rendered.warnings[0].message);
        let crowded =
            format!("text\n<p {}>x</p>", (0..1000).map(|i| format!("data-a{i}=1")).collect::<Vec<_>>().join(" "));
        let rendered = render(&meta(BodyFormat::Markdown, None), &crowded, rule);
        assert!(rendered.content_html.contains(">x</p>"));
        assert_eq!(rendered.warnings.len(), 1);
        assert_eq!(rendered.warnings[0].line, 5, "Markdown: the body's first line");
        assert!(rendered.warnings[0].message.contains("more than 64 attributes"));
        assert!(render(&meta(BodyFormat::Html, None), "<p>plain</p>", rule).warnings.is_empty());
    }

    #[test]
    fn deep_markdown_emphasis_is_cut_before_html_is_written() {
        let run = "*".repeat(2000);
        let rendered = render(&meta(BodyFormat::Markdown, None), &format!("intro\n\n{run}x{run}\n"), RULE);
        let html = &rendered.content_html;
        assert!(html.contains('x'), "the text stays: {html}");
        let tags = html.matches("<em>").count() + html.matches("<strong>").count();
        assert!(tags < Limits::default().depth, "{tags} emphasis elements");
        assert_eq!(rendered.warnings.len(), 1, "{:?}", rendered.warnings);
        assert_eq!(rendered.warnings[0].line, 5 + 2, "the run is the body's third line");
        assert!(rendered.warnings[0].message.contains("Markdown nested deeper than 128"));
        let shallow = render(&meta(BodyFormat::Markdown, None), "***bold italic*** and **more**", RULE);
        assert!(shallow.warnings.is_empty());
        assert!(shallow.content_html.contains("<em><strong>bold italic</strong></em>"), "{}", shallow.content_html);
    }

    #[test]
    fn reference_shape_renders_links() {
        let out = html(
            "<p>第一段。</p><p class=\"em_media\">（来源）</p>\n\n<http://finews.example.com/share.html?id=1>\n\n[返回](//finews.example.com/category/a.html)｜[首页](//finews.example.com/)",
        );
        assert!(out.contains("<p>第一段。</p><p class=\"em_media\">（来源）</p>"), "{out}");
        assert!(out.contains("href=\"http://finews.example.com/share.html?id=1\""), "{out}");
        assert!(out.contains("href=\"https://finews.example.com/category/a.html\""), "{out}");
        assert!(out.contains("href=\"https://finews.example.com/\""), "{out}");
    }

    #[test]
    fn relative_urls_become_absolute_and_ascii() {
        let out = html(
            "![a](/images/d.png) ![b](photo.jpg) [c](../x.html) [d](#top) [e](/分类/新闻.html) [f](https://例子.example/路径)\n\n<img srcset=\"s.png 1x, /l.png 2x\" src=\"s.png\">",
        );
        for expected in [
            "src=\"https://news.example.com/images/d.png\"",
            "src=\"https://news.example.com/cat/2021/12/23/photo.jpg\"",
            "href=\"https://news.example.com/cat/2021/12/x.html\"",
            "href=\"https://news.example.com/cat/2021/12/23/post.html#top\"",
            "href=\"https://news.example.com/%E5%88%86%E7%B1%BB/%E6%96%B0%E9%97%BB.html\"",
            "href=\"https://xn--fsqu00a.example/%E8%B7%AF%E5%BE%84\"",
            "srcset=\"https://news.example.com/cat/2021/12/23/s.png 1x, https://news.example.com/l.png 2x\"",
        ] {
            assert!(out.contains(expected), "missing {expected} in {out}");
        }
    }

    #[test]
    fn unsafe_markup_is_dropped() {
        let out = html(
            "<p onclick=\"x()\">hi<script>alert(1)</script><style>p{}</style></p><iframe src=\"/x\"></iframe><embed src=x><object data=x></object><meta http-equiv=refresh><a href=\"javascript:alert(1)\">j</a>",
        );
        for banned in ["script", "style", "iframe", "embed", "object", "meta", "onclick", "javascript"] {
            assert!(!out.contains(banned), "{banned} survived: {out}");
        }
        assert!(out.contains("<p>hi</p>"), "{out}");
    }

    #[test]
    fn broken_html_is_made_well_formed() {
        let out = render(&meta(BodyFormat::Html, None), "<p>a</p></p><p>b<div>c", RULE).content_html;
        assert_eq!(out, "<p>a</p><p></p><p>b</p><div>c</div>");
        let out = html("a & b < c ]]> d");
        assert!(out.contains("a &amp; b &lt; c ]]&gt; d"), "{out}");
    }

    #[test]
    fn markdown_features() {
        let out = html("## Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n~~gone~~\n\n```rust\nfn main() {}\n```\n");
        for expected in ["<h2>Title</h2>", "<table>", "<td>1</td>", "<del>gone</del>", "<pre><code"] {
            assert!(out.contains(expected), "missing {expected} in {out}");
        }
    }

    #[test]
    fn text_is_extracted_alike_wherever_the_html_is_sliced() {
        // Each slice boundary falls, as the padding grows, inside an entity, a tag, a two- and a
        // three-byte character, before a byte-order mark, and inside the closing tag.
        let body = "&amp;é<b>b</b>平\u{FEFF}x";
        let text = "&éb平\u{FEFF}x";
        for pad in 2005..2040 {
            let html = format!("<div>y</div><p>{}{body}</p><p>second</p>", "a".repeat(pad));
            let expected = format!("{}{text}", "a".repeat(pad));
            assert_eq!(first_paragraph(&html), expected, "pad {pad}");
            assert_eq!(all_text(&html), format!("y {expected} second"), "pad {pad}");
        }
        // A paragraph that ends in the first slice stops the walk: what follows is never read.
        let mut seen = String::new();
        let html = format!("<p>early</p>{}", "<i>late</i>".repeat(1000));
        walk(&html, |piece| {
            if let Piece::Text(t) = piece {
                seen.push_str(t);
            }
            if seen.len() >= 5 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        });
        assert_eq!(seen, "early");
        assert_eq!(first_paragraph("\u{FEFF}<p>x</p>"), "x", "the document's own mark goes");
        assert_eq!(first_paragraph("<p> </p><ul><li>one</li></ul>"), "one", "no paragraph has text: all of it");
        assert_eq!(all_text("<p>a</p>b"), "a b", "text after the last tag is kept");
    }

    #[test]
    fn a_script_url_behind_a_no_break_space_does_not_become_a_link() {
        let out = html("<a href=\"&nbsp;javascript:alert(1)\">x</a> <img src=\"\u{a0}javascript:alert(2)\">");
        assert!(!out.contains("=\"javascript:"), "{out}");
        assert_eq!(out.matches("=\"https://news.example.com/cat/2021/12/23/%C2%A0javascript:").count(), 2, "{out}");
        let base = Url::parse("https://news.example.com/a/b.html").unwrap();
        assert_eq!(absolute_url(&base, " javascript:alert(1)\n"), None, "a scheme ammonia does not allow");
        assert_eq!(absolute_url(&base, "\tc.png ").as_deref(), Some("https://news.example.com/a/c.png"));
        assert_eq!(absolute_url(&base, "mailto:x@example.com").as_deref(), Some("mailto:x@example.com"));
    }

    #[test]
    fn summaries() {
        let m = meta(BodyFormat::Markdown, None);
        let r = render(&m, "## Heading\n\nFirst *para*\ngraph.\n\nSecond.", RULE);
        assert_eq!(r.summary, "First para graph.");
        let r = render(&m, "Intro one.\n\nIntro two.\n<!--more-->\nRest.", RULE);
        assert_eq!(r.summary, "Intro one. Intro two.");
        assert!(!r.content_html.contains("more"));
        let r = render(&meta(BodyFormat::Markdown, Some("  Given \n summary ")), "Body.", RULE);
        assert_eq!(r.summary, "Given summary");
        let long = format!("<p>{}</p>", "平安银行".repeat(100));
        let r = render(
            &m,
            &long,
            SummaryRule {
                separator: "<!--more-->",
                length: 10,
                site: SiteVars {
                    title: "",
                    description: "",
                    url: "",
                    baseurl: "",
                    author: "",
                    lang: "",
                    jekyll: false,
                },
            },
        );
        assert_eq!(r.summary, "平安银行平安银行平…");
        let r = render(&m, "<div>only a div</div>", RULE);
        assert_eq!(r.summary, "only a div");
        // A character XML forbids, from an entity, goes before the whitespace around it is
        // squashed, with an excerpt separator or without.
        assert_eq!(render(&m, "Intro &#1; two.\n\n<!--more-->\nRest.", RULE).summary, "Intro two.");
        assert_eq!(render(&m, "Intro &#1; two.\n\nRest.", RULE).summary, "Intro two.");
    }

    #[test]
    fn a_summary_read_from_plain_html_is_the_one_sanitizing_gives() {
        let m = meta(BodyFormat::Html, None);
        let reference = "<p>近日，平安银行&ldquo;星海&rdquo;大比武<strong>圆满</strong>落下帷幕。</p><p>运营管理是<a href=\"//x.cn/a\">银行</a>。</p>";
        assert_eq!(plain_first_paragraph(reference).as_deref(), Some("近日，平安银行“星海”大比武圆满落下帷幕。"));
        assert_eq!(
            summarize(&m, reference, RULE),
            Rendered { content_html: String::new(), ..render(&m, reference, RULE) }
        );
        // What the parser would build differently, or the sanitizer drop, is not read as it is.
        for tricky in [
            "<b><p>one</b>two</p>",
            "<div><p>inside</p></div><p>after</p>",
            "<p>a<div>b</div>c</p>",
            "<p><script>x</script>y</p>",
            "<a href=x><p>in a</p></a>",
            "<p>a<a>b<a>c</a></a></p>",
            "</p><p>after a stray end tag</p>",
            "<p>x</br>y</p>",
            "<table><p>fostered</p></table><p>after</p>",
            "<svg><p>foreign</p></svg>",
            "<h1>a<h2>b</h2></h1><p>c</p>",
        ] {
            assert_eq!(plain_first_paragraph(tricky), None, "{tricky}");
            assert_eq!(summarize(&m, tricky, RULE).summary, render(&m, tricky, RULE).summary, "{tricky}");
        }
    }

    /// A random document: plain blocks of text and inline elements, and now and then, anywhere,
    /// a piece that tempts the parser or the sanitizer into building something else.
    fn random_body(next: &mut impl FnMut(usize) -> usize) -> String {
        const INLINE: [&str; 10] =
            ["文字", "word ", " ", "&amp;", "&nbsp;", "&lt;p&gt;", "<br>", "<img src=y.png>", "<!-- c -->", "\r\n"];
        const WRAPS: [(&str, &str); 4] =
            [("<b>", "</b>"), ("<em>", "</em>"), ("<a href=\"/x\">", "</a>"), ("<span class=s>", "</span>")];
        const BLOCKS: [(&str, &str); 5] = [
            ("<p>", "</p>"),
            ("<P class=x>", "</p>"),
            ("<h2>", "</h2>"),
            ("<div>", "</div>"),
            ("<blockquote>", "</blockquote>"),
        ];
        const TEMPTING: &str = "</p> <p> <div> </div> </b> <b> <a> </a> </br> <br/> <hr> <b/> <p/> <table><tr><td> \
            </td></tr></table> <ul><li> </ul> <script>x</script> <style>p{}</style> <!DOCTYPE_html> <svg> \
            </svg> <textarea> <nobr> <font> <template> <noscript> <button> <select> &#1; \0 \u{1} \u{FEFF} <html> \
            <body> </body> <image> <frameset> <plaintext> <math> <object> <h1> </h2>";
        let tempting: Vec<&str> = TEMPTING.split_whitespace().collect();
        let mut body = String::new();
        for _ in 0..next(4) + 1 {
            let (open, close) = BLOCKS[next(BLOCKS.len())];
            body.push_str(open);
            for _ in 0..next(6) {
                if next(12) == 0 {
                    body.push_str(&tempting[next(tempting.len())].replace('_', " "));
                }
                if next(3) == 0 {
                    let (open, close) = WRAPS[next(WRAPS.len())];
                    body.push_str(open);
                    body.push_str(INLINE[next(INLINE.len())]);
                    body.push_str(close);
                } else {
                    body.push_str(INLINE[next(INLINE.len())]);
                }
            }
            body.push_str(close);
        }
        body
    }

    #[test]
    fn random_documents_summarized_either_way_agree() {
        let m = meta(BodyFormat::Html, None);
        let (mut state, mut plain) = (0x2545_f491_4f6c_dd1d_u64, 0);
        let mut next = |n: usize| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize % n
        };
        let rounds = 4000;
        for _ in 0..rounds {
            let body = random_body(&mut next);
            plain += usize::from(plain_first_paragraph(&body).is_some());
            assert_eq!(summarize(&m, &body, RULE).summary, render(&m, &body, RULE).summary, "{body:?}");
        }
        // Most take the quick way, so the comparison tests it.
        assert!(plain > rounds / 4, "only {plain} of {rounds} read as they are");
    }

    #[test]
    fn forbidden_characters_from_entities_are_removed() {
        let out = html("a&#8;b &#xC; c\u{1}");
        assert!(out.chars().all(crate::text::is_xml_char), "{out:?}");
    }
}
