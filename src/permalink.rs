//! A permalink pattern (`/:categories/:year/:month/:day/:title.html`), parsed once when the
//! configuration is read and expanded for each post. Pure.

use std::fmt::{self, Write as _};

use chrono::{DateTime, FixedOffset};

use crate::text::{jekyll_slug, slugify};

/// One placeholder of a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placeholder {
    Categories,
    Year,
    ShortYear,
    Month,
    IMonth,
    Day,
    IDay,
    Hour,
    Minute,
    Second,
    Title,
    Slug,
    /// The day of the year, `001` to `366`.
    YDay,
    /// The ISO week of the year, `01` to `53`.
    Week,
    /// The weekday's short name, `Mon` to `Sun`.
    ShortDay,
    /// The output file's extension: `.html`, as Jekyll writes posts.
    OutputExt,
    ShortMonth,
    LongMonth,
    LongDay,
    /// The ISO week-numbering year, and the ISO weekday (1 is Monday).
    WYear,
    WDay,
    /// Each category as Jekyll slugs it.
    SlugifiedCategories,
}

impl Placeholder {
    const ALL: [(&'static str, Placeholder); 22] = [
        (":categories", Placeholder::Categories),
        (":year", Placeholder::Year),
        (":short_year", Placeholder::ShortYear),
        (":month", Placeholder::Month),
        (":i_month", Placeholder::IMonth),
        (":day", Placeholder::Day),
        (":i_day", Placeholder::IDay),
        (":hour", Placeholder::Hour),
        (":minute", Placeholder::Minute),
        (":second", Placeholder::Second),
        (":title", Placeholder::Title),
        (":slug", Placeholder::Slug),
        (":y_day", Placeholder::YDay),
        (":week", Placeholder::Week),
        (":short_day", Placeholder::ShortDay),
        (":output_ext", Placeholder::OutputExt),
        (":short_month", Placeholder::ShortMonth),
        (":long_month", Placeholder::LongMonth),
        (":long_day", Placeholder::LongDay),
        (":w_year", Placeholder::WYear),
        (":w_day", Placeholder::WDay),
        (":slugified_categories", Placeholder::SlugifiedCategories),
    ];

    fn named(name: &str) -> Option<Placeholder> {
        Placeholder::ALL.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
    }

    /// The `chrono` format of a date placeholder.
    fn date_format(self) -> Option<&'static str> {
        Some(match self {
            Placeholder::Year => "%Y",
            Placeholder::ShortYear => "%y",
            Placeholder::Month => "%m",
            Placeholder::IMonth => "%-m",
            Placeholder::Day => "%d",
            Placeholder::IDay => "%-d",
            Placeholder::Hour => "%H",
            Placeholder::Minute => "%M",
            Placeholder::Second => "%S",
            Placeholder::YDay => "%j",
            Placeholder::Week => "%V",
            Placeholder::ShortDay => "%a",
            Placeholder::OutputExt => ".html",
            Placeholder::ShortMonth => "%b",
            Placeholder::LongMonth => "%B",
            Placeholder::LongDay => "%A",
            Placeholder::WYear => "%G",
            Placeholder::WDay => "%u",
            Placeholder::Categories | Placeholder::SlugifiedCategories | Placeholder::Title | Placeholder::Slug => {
                return None;
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(String),
    Placeholder(Placeholder),
}

/// A validated permalink pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permalink {
    pattern: String,
    tokens: Vec<Token>,
}

/// Why a pattern is not a permalink pattern; the text says what would be valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PermalinkError {
    #[error("a pattern starting with `/`, e.g. \"/:year/:month/:title.html\"")]
    NotAbsolute,
    #[error("unknown placeholder `{0}`; known: {known}", known = Permalink::placeholders().join(" "))]
    UnknownPlaceholder(String),
}

impl Permalink {
    /// Jekyll's `date` style.
    pub const DEFAULT: &'static str = "/:categories/:year/:month/:day/:title.html";

    /// The pattern of one of Jekyll's named styles (`date`, `pretty`, `ordinal`, `weekdate`, `none`).
    pub fn style(name: &str) -> Option<&'static str> {
        Some(match name {
            "date" => "/:categories/:year/:month/:day/:title:output_ext",
            "pretty" => "/:categories/:year/:month/:day/:title/",
            "ordinal" => "/:categories/:year/:y_day/:title:output_ext",
            "weekdate" => "/:categories/:year/W:week/:short_day/:title:output_ext",
            "none" => "/:categories/:title:output_ext",
            _ => return None,
        })
    }

    /// Every placeholder a pattern may use.
    pub fn placeholders() -> Vec<&'static str> {
        Placeholder::ALL.iter().map(|(name, _)| *name).collect()
    }

    pub fn parse(pattern: &str) -> Result<Permalink, PermalinkError> {
        if !pattern.starts_with('/') {
            return Err(PermalinkError::NotAbsolute);
        }
        let tokens = split(pattern)
            .map(|(is_name, text)| match is_name {
                true => Placeholder::named(text)
                    .map(Token::Placeholder)
                    .ok_or_else(|| PermalinkError::UnknownPlaceholder(text.to_owned())),
                false => Ok(Token::Literal(text.to_owned())),
            })
            .collect::<Result<_, _>>()?;
        Ok(Permalink { pattern: pattern.to_owned(), tokens })
    }

    /// The site-relative path of a post; dates are the post's own wall-clock time. With `jekyll`,
    /// Jekyll's rules: `:title` and `:slug` are Jekyll's slugs of `title` (cased, lower case),
    /// `:categories` the names in lower case, as they are (the URL percent-encodes them).
    pub fn expand(
        &self,
        date: &DateTime<FixedOffset>,
        title: &str,
        categories: &[crate::text::Term],
        jekyll: bool,
    ) -> String {
        let mut out = String::new();
        for token in &self.tokens {
            match token {
                Token::Literal(text) => out.push_str(text),
                Token::Placeholder(placeholder @ (Placeholder::Categories | Placeholder::SlugifiedCategories)) => {
                    let name = |c: &crate::text::Term| match (jekyll, placeholder) {
                        (false, _) => slugify(c),
                        (true, Placeholder::Categories) => c.to_lowercase(),
                        (true, _) => jekyll_slug(c, false),
                    };
                    let mut names: Vec<String> = Vec::new();
                    // Jekyll's categories are a set: `News` and `news` are one.
                    for name in categories.iter().map(name).filter(|s| !s.is_empty()) {
                        if !names.contains(&name) {
                            names.push(name);
                        }
                    }
                    out.push_str(&names.join("/"));
                }
                Token::Placeholder(Placeholder::Title) if jekyll => out.push_str(&jekyll_slug(title, true)),
                Token::Placeholder(Placeholder::Slug) if jekyll => out.push_str(&jekyll_slug(title, false)),
                Token::Placeholder(Placeholder::Title) => out.push_str(title),
                Token::Placeholder(Placeholder::Slug) => out.push_str(&slugify(title)),
                Token::Placeholder(date_part) => {
                    let format = date_part.date_format().expect("every other placeholder is a date part");
                    // Into `out` directly: a link is made for every post read.
                    let _ = write!(out, "{}", date.format(format));
                }
            }
        }
        out
    }
}

impl Default for Permalink {
    fn default() -> Permalink {
        Permalink::parse(Permalink::DEFAULT).expect("the default pattern is valid")
    }
}

impl fmt::Display for Permalink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pattern)
    }
}

/// Splits a pattern into literal text and placeholder names (`:` then lower-case letters and `_`).
fn split(pattern: &str) -> impl Iterator<Item = (bool, &str)> {
    let mut rest = pattern;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        if let Some(name) = rest.strip_prefix(':') {
            let len = name.find(|c: char| !(c.is_ascii_lowercase() || c == '_')).unwrap_or(name.len());
            if len > 0 {
                let token = &rest[..=len];
                rest = &rest[len + 1..];
                return Some((true, token));
            }
        }
        let first = rest.chars().next().map_or(1, char::len_utf8);
        let len = rest[first..].find(':').map_or(rest.len(), |i| i + first);
        let token = &rest[..len];
        rest = &rest[len..];
        Some((false, token))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        assert!(Permalink::parse(Permalink::DEFAULT).is_ok());
        assert_eq!(Permalink::parse("/:year/:nope.html"), Err(PermalinkError::UnknownPlaceholder(":nope".into())));
        assert_eq!(Permalink::parse(":year/x"), Err(PermalinkError::NotAbsolute));
        assert!(Permalink::parse("/:title文.html").is_ok());
        assert!(Permalink::parse("/文/:title").is_ok());
        assert!(Permalink::parse("/a:1/:title").is_ok(), "a colon before a digit is literal");
        let message = PermalinkError::UnknownPlaceholder(":nope".into()).to_string();
        assert!(message.contains(":nope") && message.contains(":short_year"), "{message}");
    }

    #[test]
    fn expands() {
        let date = DateTime::parse_from_rfc3339("2021-03-04T05:06:07+08:00").unwrap();
        let pattern = Permalink::parse("/:short_year/:i_month/:i_day/:hour:minute:second/:slug/").unwrap();
        assert_eq!(pattern.expand(&date, "Hello World", &[], false), "/21/3/4/050607/hello-world/");
        let categories = ["新闻", "A B", "!!"].map(crate::text::Term::new);
        let pattern = Permalink::default();
        assert_eq!(pattern.expand(&date, "x", &categories, false), "/新闻/a-b/2021/03/04/x.html");
        assert_eq!(pattern.to_string(), Permalink::DEFAULT);
    }

    #[test]
    fn jekyll_styles_expand_as_jekyll_does() {
        // Expected paths are what Jekyll 4.3.1 wrote for `_posts/2021-12-23-Hello-World.md` with
        // `categories: [Business News, 财经]` (before percent-encoding).
        let date = DateTime::parse_from_rfc3339("2021-12-23T16:34:36+08:00").unwrap();
        let categories = ["Business News", "财经"].map(crate::text::Term::new);
        for (style, expected) in [
            ("date", "/business news/财经/2021/12/23/Hello-World.html"),
            ("pretty", "/business news/财经/2021/12/23/Hello-World/"),
            ("ordinal", "/business news/财经/2021/357/Hello-World.html"),
            ("weekdate", "/business news/财经/2021/W51/Thu/Hello-World.html"),
            ("none", "/business news/财经/Hello-World.html"),
        ] {
            let pattern = Permalink::parse(Permalink::style(style).unwrap()).unwrap();
            assert_eq!(pattern.expand(&date, "Hello-World", &categories, true), expected, "{style}");
        }
        let pattern = Permalink::parse("/blog/:categories/:slug.html").unwrap();
        assert_eq!(
            pattern.expand(&date, "Hello-World", &categories, true),
            "/blog/business news/财经/hello-world.html"
        );
        assert_eq!(Permalink::style("custom"), None);
    }
}
