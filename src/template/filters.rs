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

/// A mapping in which a key it lacks reads as nil, as in Jekyll's Liquid (`{{ page.subtitle }}`
/// prints nothing), where the `liquid` crate fails the whole template.
/// `nested` are mappings under names (`site`, `page`) that are lenient too; `missing` keeps the
/// names asked for that it lacks, for the warning of a site that did not mean Liquid.
#[derive(Debug)]
pub struct Lenient {
    pub name: &'static str,
    pub own: liquid::Object,
    pub nested: Vec<Lenient>,
    pub missing: std::cell::RefCell<Vec<String>>,
}

impl Lenient {
    pub fn new(name: &'static str, own: liquid::Object, nested: Vec<Lenient>) -> Lenient {
        Lenient { name, own, nested, missing: Default::default() }
    }

    /// Every name asked for and missing, as written (`page.subtitle`, `message`).
    pub fn missing(&self) -> Vec<String> {
        let prefix = if self.name.is_empty() { String::new() } else { format!("{}.", self.name) };
        let own = self.missing.borrow().iter().map(|key| format!("{prefix}{key}")).collect::<Vec<_>>();
        own.into_iter().chain(self.nested.iter().flat_map(Lenient::missing)).collect()
    }
}

/// What a missing key reads as: nil, and nil again for any key of it (`site.data.authors`).
#[derive(Debug)]
struct Missing;

static MISSING: Missing = Missing;
static NIL: Value = Value::Nil;

impl ValueView for Missing {
    fn as_debug(&self) -> &dyn std::fmt::Debug {
        self
    }
    fn render(&self) -> liquid_core::model::DisplayCow<'_> {
        NIL.render()
    }
    fn source(&self) -> liquid_core::model::DisplayCow<'_> {
        NIL.source()
    }
    fn type_name(&self) -> &'static str {
        NIL.type_name()
    }
    fn query_state(&self, state: liquid_core::model::State) -> bool {
        NIL.query_state(state)
    }
    fn to_kstr(&self) -> liquid_core::model::KStringCow<'_> {
        NIL.to_kstr()
    }
    fn to_value(&self) -> Value {
        Value::Nil
    }
    fn is_nil(&self) -> bool {
        true
    }
    fn as_object(&self) -> Option<&dyn liquid_core::ObjectView> {
        Some(self)
    }
}

impl liquid_core::ObjectView for Missing {
    fn as_value(&self) -> &dyn ValueView {
        self
    }
    fn size(&self) -> i64 {
        0
    }
    fn keys<'k>(&'k self) -> Box<dyn Iterator<Item = liquid_core::model::KStringCow<'k>> + 'k> {
        Box::new(std::iter::empty())
    }
    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        Box::new(std::iter::empty())
    }
    fn iter<'k>(&'k self) -> Box<dyn Iterator<Item = (liquid_core::model::KStringCow<'k>, &'k dyn ValueView)> + 'k> {
        Box::new(std::iter::empty())
    }
    fn contains_key(&self, _index: &str) -> bool {
        true
    }
    fn get<'s>(&'s self, _index: &str) -> Option<&'s dyn ValueView> {
        Some(&MISSING)
    }
}

/// How many missing names a warning names; no more are kept.
const MISSING_NAMED: usize = 5;

impl ValueView for Lenient {
    fn as_debug(&self) -> &dyn std::fmt::Debug {
        self
    }
    fn render(&self) -> liquid_core::model::DisplayCow<'_> {
        self.own.render()
    }
    fn source(&self) -> liquid_core::model::DisplayCow<'_> {
        self.own.source()
    }
    fn type_name(&self) -> &'static str {
        self.own.type_name()
    }
    fn query_state(&self, state: liquid_core::model::State) -> bool {
        self.own.query_state(state)
    }
    fn to_kstr(&self) -> liquid_core::model::KStringCow<'_> {
        self.own.to_kstr()
    }
    fn to_value(&self) -> Value {
        self.own.to_value()
    }
    fn as_object(&self) -> Option<&dyn liquid_core::ObjectView> {
        Some(self)
    }
}

impl liquid_core::ObjectView for Lenient {
    fn as_value(&self) -> &dyn ValueView {
        self
    }
    fn size(&self) -> i64 {
        liquid_core::ObjectView::size(&self.own)
    }
    fn keys<'k>(&'k self) -> Box<dyn Iterator<Item = liquid_core::model::KStringCow<'k>> + 'k> {
        liquid_core::ObjectView::keys(&self.own)
    }
    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        liquid_core::ObjectView::values(&self.own)
    }
    fn iter<'k>(&'k self) -> Box<dyn Iterator<Item = (liquid_core::model::KStringCow<'k>, &'k dyn ValueView)> + 'k> {
        liquid_core::ObjectView::iter(&self.own)
    }
    fn contains_key(&self, _index: &str) -> bool {
        true
    }
    fn get<'s>(&'s self, index: &str) -> Option<&'s dyn ValueView> {
        if let Some(nested) = self.nested.iter().find(|nested| nested.name == index) {
            return Some(nested);
        }
        let found = liquid_core::ObjectView::get(&self.own, index);
        let mut missing = self.missing.borrow_mut();
        if found.is_none() && missing.len() < MISSING_NAMED && !missing.iter().any(|key| key == index) {
            missing.push(index.to_owned());
        }
        found.or(Some(&MISSING))
    }
}
