//! Liquid in a post body (`{{ page.title }}`, `{% capture %}`, filters), rendered with the
//! `liquid` crate over `site` and `page` variables before the body becomes HTML, as Jekyll does.
//!
//! What crier cannot render never stops a post: a tag it does not know (`{% include %}`,
//! `{% highlight %}`, Jekyll's plugins' tags) is left out and its text kept, and a template that
//! fails to render is published with its Liquid markup taken out; each with a warning naming the
//! line. Pure.

mod filters;
mod variables;

use std::borrow::Cow;
use std::sync::OnceLock;

use crate::post::{PostMeta, PostWarning};

/// The site's values a body may print: `{{ site.title }}`, `{{ site.url }}`...
#[derive(Debug, Clone, Copy, Default)]
pub struct SiteVars<'a> {
    pub title: &'a str,
    pub description: &'a str,
    /// The site's origin, as Jekyll's `site.url` (`https://example.org`).
    pub url: &'a str,
    /// The path under it, as Jekyll's `site.baseurl` (`/blog`, or empty).
    pub baseurl: &'a str,
    pub author: &'a str,
    pub lang: &'a str,
    /// The site is a Jekyll site, whose bodies are Liquid by design.
    pub jekyll: bool,
}

/// The tags (and block ends) the `liquid` crate's standard library renders; `include` and
/// `render` need files crier does not read.
const KNOWN_TAGS: &[&str] = &[
    "assign",
    "break",
    "continue",
    "cycle",
    "increment",
    "decrement",
    "if",
    "elsif",
    "else",
    "endif",
    "unless",
    "endunless",
    "ifchanged",
    "endifchanged",
    "for",
    "endfor",
    "tablerow",
    "endtablerow",
    "comment",
    "endcomment",
    "capture",
    "endcapture",
    "case",
    "when",
    "endcase",
    "raw",
    "endraw",
];

/// Whether a body holds Liquid markup at all; most do not, and cost nothing more.
pub fn has_liquid(body: &str) -> bool {
    memchr::memmem::find(body.as_bytes(), b"{{").is_some() || memchr::memmem::find(body.as_bytes(), b"{%").is_some()
}

/// The body with its Liquid rendered, and a warning for each thing left out.
pub fn expand<'b>(meta: &PostMeta, body: &'b str, site: &SiteVars<'_>) -> (Cow<'b, str>, Vec<PostWarning>) {
    if !meta.liquid || !has_liquid(body) {
        return (Cow::Borrowed(body), Vec::new());
    }
    let line_at = |offset: usize| meta.body_line + memchr::memchr_iter(b'\n', &body.as_bytes()[..offset]).count();
    let (source, unknown) = without_unknown_tags(body);
    let mut warnings: Vec<PostWarning> = unknown
        .into_iter()
        .map(|(offset, name)| PostWarning {
            line: line_at(offset),
            message: format!(
                "Liquid tag `{{% {name} %}}` is not one crier renders: it is left out and the text around it kept"
            ),
        })
        .collect();
    let globals = variables::globals(meta, site);
    let rendered = bounded(&source).and_then(|()| {
        let template = parser().parse(&source).map_err(|e| e.to_string())?;
        let mut out = Capped(Vec::with_capacity(source.len() + 1024));
        template.render_to(&mut out, &globals).map_err(|e| e.to_string())?;
        String::from_utf8(out.0).map_err(|e| e.to_string())
    });
    // Outside a Jekyll site, `{{ name }}` may be a Vue or Handlebars example, not Liquid.
    let missing = globals.missing();
    if !site.jekyll && !missing.is_empty() {
        warnings.push(PostWarning {
            line: meta.body_line,
            message: format!(
                "Liquid in the body names what crier does not have ({}), which prints nothing; if the body is not meant as Liquid, set `render_with_liquid: false`",
                missing.iter().take(5).map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", ")
            ),
        });
    }
    match rendered {
        Ok(text) => (Cow::Owned(text), warnings),
        Err(error) => {
            let detail = error.lines().next().unwrap_or_default().trim();
            warnings.push(PostWarning {
                line: meta.body_line,
                message: format!(
                    "Liquid in the body cannot be rendered ({detail}): it is published with its Liquid markup left out; fix the markup or set `render_with_liquid: false`"
                ),
            });
            (Cow::Owned(markup_removed(&source)), warnings)
        }
    }
}

/// The most iterations the loops over ranges of one body may make together, and the most bytes
/// a body may render to: Liquid's loops can make a small file enormous.
const MAX_ITERATIONS: u64 = 100_000;
const MAX_OUTPUT: usize = 16 << 20;

/// A writer that fails past [`MAX_OUTPUT`] bytes, so that rendering stops there.
struct Capped(Vec<u8>);

impl std::io::Write for Capped {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + bytes.len() > MAX_OUTPUT {
            return Err(std::io::Error::other(format!("renders to over {} MiB", MAX_OUTPUT >> 20)));
        }
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How deep blocks may nest: the `liquid` crate parses them by recursion, and a few hundred
/// levels overflow a thread's stack.
const MAX_DEPTH: usize = 100;

/// Refuses, before rendering, the templates whose cost crier cannot bound: the `liquid` crate
/// builds a range's whole list first, and keeps no count of time or memory. Loops over ranges
/// must have literal bounds, at most [`MAX_ITERATIONS`] iterations together (loops may nest); a
/// loop over a list (whose length the body can make huge with `split`) may neither hold nor sit
/// in another loop; inside a loop, `assign` and `capture` may not read a variable the body
/// assigns (`assign s = s | append: s` doubles each time); blocks nest at most [`MAX_DEPTH`] deep.
fn bounded(source: &str) -> Result<(), String> {
    let tags = tags(source);
    let inner = |start: usize, end: usize| source[start + 2..end - 2].trim_matches('-').trim();
    let assigned: Vec<&str> = tags
        .iter()
        .filter(|(_, _, name)| matches!(*name, "assign" | "capture"))
        .filter_map(|(start, end, _)| inner(*start, *end).split_whitespace().nth(1))
        .map(|target| target.split('=').next().unwrap_or(target))
        .collect();
    let reads_assigned =
        |text: &str| text.split(|c: char| !(c.is_alphanumeric() || c == '_')).any(|w| assigned.contains(&w));
    let (mut loops, mut depth, mut iterations) = (Vec::<bool>::new(), 0usize, 1u64);
    for (index, (start, end, name)) in tags.iter().enumerate() {
        let text = inner(*start, *end);
        match *name {
            "for" | "tablerow" => {
                let over_list = match range_length(text) {
                    Some(length) => {
                        iterations = iterations.saturating_mul(length?);
                        false
                    }
                    None => true,
                };
                loops.push(over_list);
                if loops.len() > 1 && loops.iter().any(|list| *list) {
                    return Err("a loop over a list nested with another loop".to_owned());
                }
            }
            "endfor" | "endtablerow" => drop(loops.pop()),
            "assign" if !loops.is_empty() && reads_assigned(text.split_once('=').map_or("", |(_, rest)| rest)) => {
                return Err(format!("`{{% {text} %}}` in a loop reads a variable the body assigns"));
            }
            "capture" if !loops.is_empty() => {
                let close = tags[index..].iter().find(|(_, _, n)| *n == "endcapture").map_or(source.len(), |t| t.0);
                if reads_assigned(&source[*end..close]) {
                    return Err(format!("`{{% {text} %}}` in a loop reads a variable the body assigns"));
                }
            }
            _ => {}
        }
        if iterations > MAX_ITERATIONS {
            return Err(format!("loops over ranges that make over {MAX_ITERATIONS} iterations"));
        }
        match *name {
            n if BLOCKS.contains(&n) => depth += 1,
            n if n.starts_with("end") => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth > MAX_DEPTH {
            return Err(format!("blocks nested deeper than {MAX_DEPTH}"));
        }
    }
    Ok(())
}

/// The length of a loop's range `(a..b)`: `None` when the loop is over something else, an error
/// when the bounds are not numbers.
fn range_length(tag: &str) -> Option<Result<u64, String>> {
    let open = tag.find('(')?;
    let range = tag[open + 1..].split(')').next().unwrap_or_default();
    let bounds =
        range.split_once("..").and_then(|(a, b)| Some((a.trim().parse::<i64>().ok()?, b.trim().parse::<i64>().ok()?)));
    Some(match bounds {
        Some((low, high)) => Ok(high.saturating_sub(low).saturating_add(1).max(0) as u64),
        None => Err(format!("a loop over `({range})`, which is not a range of numbers crier can bound")),
    })
}

fn parser() -> &'static liquid::Parser {
    static PARSER: OnceLock<liquid::Parser> = OnceLock::new();
    PARSER.get_or_init(|| {
        filters::add(liquid::ParserBuilder::with_stdlib())
            .build()
            .expect("the standard library's tags and Jekyll's filters build")
    })
}

/// `{% name ... %}` tags: (start, end, name), in order; the text of `{% raw %}` blocks is skipped.
fn tags(body: &str) -> Vec<(usize, usize, &str)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(start) = body[from..].find("{%").map(|i| i + from) {
        let Some(end) = body[start + 2..].find("%}").map(|i| i + start + 4) else { break };
        let inner = body[start + 2..end - 2].trim_matches('-').trim();
        let name = inner.split_whitespace().next().unwrap_or_default();
        out.push((start, end, name));
        from = end;
        if name == "raw" {
            // The block's text is not Liquid: go on at its `{% endraw %}` tag.
            let close = body[from..]
                .match_indices("{%")
                .map(|(i, _)| from + i)
                .find(|&at| body[at + 2..].trim_start_matches('-').trim_start().starts_with("endraw"));
            match close {
                Some(close) => from = close,
                None => break,
            }
        }
    }
    out
}

/// The body without the tags the standard library does not know, and where each was.
fn without_unknown_tags(body: &str) -> (Cow<'_, str>, Vec<(usize, String)>) {
    let unknown: Vec<(usize, usize, &str)> =
        tags(body).into_iter().filter(|(_, _, name)| !KNOWN_TAGS.contains(name)).collect();
    if unknown.is_empty() {
        return (Cow::Borrowed(body), Vec::new());
    }
    let mut out = String::with_capacity(body.len());
    let mut at = 0;
    for (start, end, _) in &unknown {
        out.push_str(&body[at..*start]);
        at = *end;
    }
    out.push_str(&body[at..]);
    (Cow::Owned(out), unknown.into_iter().map(|(start, _, name)| (start, name.to_owned())).collect())
}

/// The tags whose text is shown only when Liquid says so (or never): a body that cannot be
/// rendered loses them whole, text and all, so that nothing meant to stay hidden is published.
const BLOCKS: &[&str] = &["comment", "if", "unless", "for", "case", "capture", "tablerow", "ifchanged"];

/// The body without its Liquid: outputs `{{ ... }}` and tags taken out, conditional, looping,
/// captured and commented blocks taken out whole, the text of `{% raw %}` kept.
fn markup_removed(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut at = 0;
    let mut open: Vec<&str> = Vec::new();
    for (start, end, name) in tags(body) {
        if open.is_empty() {
            out.push_str(&without_outputs(&body[at..start]));
        }
        at = end;
        if BLOCKS.contains(&name) {
            open.push(name);
        } else if name.strip_prefix("end").is_some_and(|block| open.last() == Some(&block)) {
            open.pop();
        } else if name == "raw" && open.is_empty() {
            // `tags` skips a raw block's text: keep it as written, up to its `{% endraw %}`.
            let close = body[end..].find("{%").map_or(body.len(), |i| i + end);
            out.push_str(&body[end..close]);
            at = close;
        }
    }
    if open.is_empty() {
        out.push_str(&without_outputs(&body[at..]));
    }
    out
}

/// Text with its `{{ ... }}` outputs taken out.
fn without_outputs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        match rest[start + 2..].find("}}") {
            Some(end) => rest = &rest[start + end + 4..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> PostMeta {
        let date = chrono::DateTime::parse_from_rfc3339("2021-12-24T05:34:36+08:00").unwrap();
        PostMeta {
            title: "平安 银行".into(),
            link: "https://e.org/blog/2021/12/24/x.html".into(),
            ..PostMeta::example("x.md", date)
        }
    }

    const SITE: SiteVars<'static> = SiteVars {
        title: "Site",
        description: "",
        url: "https://e.org",
        baseurl: "/blog",
        author: "A",
        lang: "zh-CN",
        jekyll: true,
    };

    #[test]
    fn renders_page_and_site_variables_captures_and_filters() {
        let body = "i={{ \"/img/a.png\" | relative_url }} {{ 'x' | absolute_url }} {{ page.date | date_to_xmlschema }} {{ 'A & B' | xml_escape }} {{ 'Hello World' | slugify }}\nT={{ page.title }} u={{ site.url }}{{ site.baseurl }}{{ page.url }} {% capture x %}c<b>{{ page.date | date: \"%Y\" }}</b>{% endcapture %}{{ x }} {{ \"a b\" | upcase }}\n";
        let (out, warnings) = expand(&meta(), body, &SITE);
        assert_eq!(
            out,
            "i=/blog/img/a.png https://e.org/blog/x 2021-12-24T05:34:36+08:00 A &amp; B hello-world\nT=平安 银行 u=https://e.org/blog/2021/12/24/x.html c<b>2021</b> A B\n"
        );
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn unknown_tags_are_left_out_with_a_warning_on_their_line() {
        let body = "one\n{% include note.html %}\n{% highlight ruby %}\nputs 1\n{% endhighlight %}\n{{ page.title }}\n";
        let (out, warnings) = expand(&meta(), body, &SITE);
        assert_eq!(out, "one\n\n\nputs 1\n\n平安 银行\n");
        let lines: Vec<usize> = warnings.iter().map(|w| w.line).collect();
        assert_eq!(lines, [6, 7, 9], "the body starts on line 5: {warnings:?}");
        assert!(warnings[0].message.contains("include"), "{}", warnings[0].message);
    }

    #[test]
    fn a_template_that_fails_is_published_without_its_markup_and_hidden_text() {
        let body = "a {{ page.title | no_such_filter }} b {% comment %}TODO: embargoed{% endcomment %}{% if false %}secret {% if x %}x{% endif %}{% endif %}c {{ page.title }}{% raw %}{{ kept }}{% endraw %} d {%}";
        let (out, warnings) = expand(&meta(), body, &SITE);
        assert_eq!(out, "a  b c {{ kept }} d {%}");
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].message.contains("render_with_liquid"), "{}", warnings[0].message);
    }

    #[test]
    fn variables_crier_lacks_print_nothing_as_in_jekyll() {
        let (out, warnings) = expand(
            &meta(),
            "[{{ page.subtitle }}|{{ site.cdn }}|{{ nothing }}|{% for p in site.posts %}x{% endfor %}|{{ site.data.authors.x }}{% if site.a.b %}y{% endif %}{{ page.nope | default: \"d\" }}|{{ page.title }}]",
            &SITE,
        );
        assert_eq!((out.as_ref(), warnings.len()), ("[||||d|平安 银行]", 0), "{warnings:?}");
        let plain = SiteVars { jekyll: false, ..SITE };
        let (out, warnings) = expand(&meta(), "Vue: `{{ message }}`, {{ page.title }}", &plain);
        assert_eq!(out, "Vue: ``, 平安 银行");
        assert_eq!(warnings.len(), 1, "outside a Jekyll site, say what printed nothing");
        assert!(warnings[0].message.contains("`message`") && warnings[0].message.contains("render_with_liquid: false"));
    }

    #[test]
    fn loops_that_would_run_away_are_refused_before_rendering() {
        for body in [
            "{% for i in (1..100000000) %}x{% endfor %}",
            "{% for i in (1..1000) %}{% for j in (1..1000) %}{% endfor %}{% endfor %}",
            "{% for i in (1..page.n) %}x{% endfor %}",
        ] {
            let (out, warnings) = expand(&meta(), body, &SITE);
            assert_eq!((out.as_ref(), warnings.len()), ("", 1), "{body}");
        }
        let doubling = "{% assign s = \"xxxxxxxxxxxxxxxx\" %}{% for i in (1..40) %}{% assign s = s | append: s %}{% endfor %}{{ s | size }}";
        let lists = "{% assign l = \"a,b\" | split: \",\" %}{% for a in l %}{% for b in l %}x{% endfor %}{% endfor %}";
        let captured =
            "{% assign t = \"x\" %}{% for i in (1..30) %}{% capture t %}{{ t }}{{ t }}{% endcapture %}{% endfor %}";
        let deep = format!("{}x{}", "{% if true %}".repeat(700), "{% endif %}".repeat(700));
        for body in [doubling, lists, captured, deep.as_str()] {
            let (_, warnings) = expand(&meta(), body, &SITE);
            assert_eq!(warnings.len(), 1, "{body}");
        }
        let (out, warnings) = expand(&meta(), "{% for i in (1..3) %}{{ i }}{% endfor %}", &SITE);
        assert_eq!((out.as_ref(), warnings.len()), ("123", 0));
        let wide = "{% for i in (1..100000) %}0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890{% endfor %}";
        let (out, warnings) = expand(&meta(), wide, &SITE);
        assert_eq!((out.as_ref(), warnings.len()), ("", 1), "over 16 MiB of output is refused");
    }

    #[test]
    fn raw_blocks_and_plain_bodies_pass_through() {
        let (out, _) = expand(&meta(), "{% raw %}{{ x }} {% include y %}{% endraw %}", &SITE);
        assert_eq!(out, "{{ x }} {% include y %}");
        let (out, _) = expand(&meta(), "{% raw %}close it with endraw{% endraw %} {{ page.title }}", &SITE);
        assert_eq!(out, "close it with endraw 平安 银行");
        assert!(matches!(expand(&meta(), "no markup { here }", &SITE).0, Cow::Borrowed(_)));
        let off = PostMeta { liquid: false, ..meta() };
        assert_eq!(expand(&off, "{{ page.title }}", &SITE).0, "{{ page.title }}");
    }
}
