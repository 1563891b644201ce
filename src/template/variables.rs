//! What a post body's Liquid reads: `site` and `page`, in mappings where a name they lack reads
//! as nil (`{{ page.subtitle }}` prints nothing, as in Jekyll's Liquid), where the `liquid` crate
//! would fail the whole template; the names asked for and missing are kept for a warning.

use liquid::model::{Array, Object, Scalar, Value};
use liquid_core::ValueView;

use super::SiteVars;
use crate::post::PostMeta;

/// The template's variables: `site` and `page`, and nil for any other name.
pub fn globals(meta: &PostMeta, site: &SiteVars<'_>) -> Lenient {
    let nested = vec![
        Lenient::new("site", site_object(site), Vec::new()),
        Lenient::new("page", page_object(meta, site), Vec::new()),
    ];
    Lenient::new("", Object::new(), nested)
}

fn text(value: &str) -> Value {
    Value::scalar(Scalar::from(value.to_owned()))
}

fn site_object(site: &SiteVars<'_>) -> Object {
    let mut object = Object::new();
    for (key, value) in [
        ("title", site.title),
        ("name", site.title),
        ("description", site.description),
        ("url", site.url),
        ("baseurl", site.baseurl),
        ("author", site.author),
        ("lang", site.lang),
    ] {
        object.insert(key.into(), text(value));
    }
    object
}

fn page_object(meta: &PostMeta, site: &SiteVars<'_>) -> Object {
    // Jekyll's `page.url` and `page.id` are paths under the site, without its base path.
    let site_path = |link: &'_ str| -> String {
        let path = link.strip_prefix(site.url).and_then(|p| p.strip_prefix(site.baseurl));
        path.map_or_else(|| link.to_owned(), str::to_owned)
    };
    let (url, id) = (site_path(&meta.link), site_path(meta.guid()));
    let list = |names: &[crate::text::Term]| Value::Array(names.iter().map(|n| text(n)).collect::<Array>());
    let mut object = Object::new();
    for (key, value) in [
        ("title", &*meta.title),
        ("url", url.as_str()),
        ("id", id.as_str()),
        ("description", meta.summary.as_deref().unwrap_or_default()),
        ("lang", meta.lang.as_deref().unwrap_or(site.lang)),
        ("image", meta.image.as_deref().unwrap_or_default()),
        ("author", meta.author.as_ref().map_or(site.author, |a| a.name.as_str())),
    ] {
        object.insert(key.into(), text(value));
    }
    object.insert("date".into(), text(&meta.date.format("%Y-%m-%d %H:%M:%S %z").to_string()));
    object.insert("categories".into(), list(&meta.categories));
    object.insert("tags".into(), list(&meta.tags));
    object
}

/// A mapping in which a key it lacks reads as nil. `nested` are mappings under names (`site`, `page`) that are lenient too; `missing` keeps the
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
