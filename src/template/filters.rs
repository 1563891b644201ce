//! Jekyll's own Liquid filters that post bodies use most, for the `liquid` crate: links under the
//! site (`relative_url`, `absolute_url`), dates (`date_to_xmlschema`, `date_to_string`,
//! `date_to_long_string`), and `xml_escape`, `slugify`, `markdownify`, `jsonify`,
//! `number_of_words`. They read `site.url` and `site.baseurl` from the template's variables.

use liquid_core::model::ScalarCow;
use liquid_core::{Display_filter, Filter, FilterReflection, ParseFilter, Result, Runtime, Value, ValueView};

use crate::text::jekyll_slug;

/// A `site` variable as text, empty when it is missing.
fn site_value(runtime: &dyn Runtime, key: &str) -> String {
    let path = [ScalarCow::new("site"), ScalarCow::new(key.to_owned())];
    runtime.get(&path).map(|value| value.to_kstr().to_string()).unwrap_or_default()
}

/// `/path` under the site's base path, as Jekyll's `relative_url`; a URL with a scheme stays.
fn relative(input: &str, runtime: &dyn Runtime) -> String {
    if input.contains("://") || input.starts_with("//") {
        return input.to_owned();
    }
    let baseurl = site_value(runtime, "baseurl");
    format!("{}/{}", baseurl.trim_end_matches('/'), input.trim_start_matches('/'))
}

/// A date as Liquid gives it (`2021-12-24 05:34:36 +0800`, RFC 3339, or a day).
fn date_of(input: &dyn ValueView) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    let text = input.to_kstr().to_string();
    let text = text.trim();
    chrono::DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S %z")
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(text))
        .ok()
        .or_else(|| {
            let day = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
            Some(day.and_hms_opt(0, 0, 0)?.and_utc().fixed_offset())
        })
}

/// Declares a filter without arguments: its name, what it does, and `fn(input, runtime) -> String`.
macro_rules! filter {
    ($parser:ident, $filter:ident, $name:literal, $description:literal, $evaluate:expr) => {
        #[derive(Clone, ParseFilter, FilterReflection)]
        #[filter(name = $name, description = $description, parsed($filter))]
        pub struct $parser;

        #[derive(Debug, Default, Display_filter)]
        #[name = $name]
        struct $filter;

        impl Filter for $filter {
            fn evaluate(&self, input: &dyn ValueView, runtime: &dyn Runtime) -> Result<Value> {
                let evaluate: fn(&dyn ValueView, &dyn Runtime) -> String = $evaluate;
                Ok(Value::scalar(evaluate(input, runtime)))
            }
        }
    };
}

filter!(RelativeUrl, RelativeUrlFilter, "relative_url", "A site path under the base path.", |input, runtime| {
    relative(&input.to_kstr(), runtime)
});
filter!(AbsoluteUrl, AbsoluteUrlFilter, "absolute_url", "A site path as an absolute URL.", |input, runtime| {
    let input = input.to_kstr();
    if input.contains("://") {
        return input.to_string();
    }
    format!("{}{}", site_value(runtime, "url").trim_end_matches('/'), relative(&input, runtime))
});
filter!(XmlSchema, XmlSchemaFilter, "date_to_xmlschema", "A date in RFC 3339.", |input, _| {
    date_of(input).map_or_else(|| input.to_kstr().to_string(), |d| d.to_rfc3339())
});
filter!(DateString, DateStringFilter, "date_to_string", "A date as `24 Dec 2021`.", |input, _| {
    date_of(input).map_or_else(|| input.to_kstr().to_string(), |d| d.format("%d %b %Y").to_string())
});
filter!(LongDateString, LongDateStringFilter, "date_to_long_string", "A date as `24 December 2021`.", |input, _| {
    date_of(input).map_or_else(|| input.to_kstr().to_string(), |d| d.format("%d %B %Y").to_string())
});
filter!(XmlEscape, XmlEscapeFilter, "xml_escape", "Text with XML's special characters escaped.", |input, _| {
    quick_xml::escape::escape(input.to_kstr().as_str()).into_owned()
});
filter!(Slugify, SlugifyFilter, "slugify", "Jekyll's slug of a name.", |input, _| {
    jekyll_slug(&input.to_kstr(), false)
});
filter!(
    Markdownify,
    MarkdownifyFilter,
    "markdownify",
    "The text as it is: the body is Markdown already.",
    |input, _| { input.to_kstr().to_string() }
);
filter!(Jsonify, JsonifyFilter, "jsonify", "A value as JSON.", |input, _| {
    serde_json::to_string(&input.to_value()).unwrap_or_default()
});
filter!(WordCount, WordCountFilter, "number_of_words", "How many words the text has.", |input, _| {
    input.to_kstr().split_whitespace().count().to_string()
});

/// The parser's builder with Jekyll's filters added.
pub fn add(builder: liquid::ParserBuilder) -> liquid::ParserBuilder {
    builder
        .filter(RelativeUrl)
        .filter(AbsoluteUrl)
        .filter(XmlSchema)
        .filter(DateString)
        .filter(LongDateString)
        .filter(XmlEscape)
        .filter(Slugify)
        .filter(Markdownify)
        .filter(Jsonify)
        .filter(WordCount)
}
