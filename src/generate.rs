//! The build: a posts folder in, every feed document out.
//!
//! Reading and parsing run in parallel and keep only metadata; bodies are read again and rendered
//! only for the posts that end up in some feed, so memory does not grow with the size of the
//! archive's text.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use chrono::{DateTime, FixedOffset, Utc};

use crate::engine::Engine;
use rayon::prelude::*;

use crate::config::{Config, ContentMode};
use crate::feed::opml::{Opml, Outline};
use crate::feed::{self, FeedDoc, Format, Item};
use crate::post::{self, PostContext, PostError, PostMeta, PostWarning};
use crate::publish::{FeedsDir, Levels, Outcome};
use crate::render::{self, Rendered, SummaryRule};
use crate::site::{FeedKey, FeedPlan};
use crate::text::xml_safe;

/// The post context a configuration implies.
pub fn post_context(config: &Config) -> PostContext<'_> {
    PostContext {
        timezone: config.timezone,
        base_url: &config.base_url,
        permalink: &config.permalink,
        max_bytes: config.max_post_bytes,
    }
}

/// Every post file under `root`, sorted; folders and files that are hidden or editor leftovers
/// are skipped. Folders that cannot be read are reported as problems.
pub fn post_files(root: &Path) -> (Vec<PathBuf>, Vec<PostError>) {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    let walker = walkdir::WalkDir::new(root).follow_links(true).sort_by_file_name().into_iter();
    let walker = walker.filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
    for entry in walker {
        match entry {
            Ok(entry) if entry.file_type().is_file() => {
                if entry.file_name().to_str().is_some_and(post::is_post_file_name) {
                    files.push(entry.into_path());
                }
            }
            Ok(_) => {}
            Err(e) => problems.push(PostError {
                path: e.path().unwrap_or(root).to_owned(),
                line: 1,
                message: format!(
                    "cannot read: {}; check the permissions",
                    e.io_error().map_or(e.to_string(), |io| io.to_string())
                ),
            }),
        }
    }
    (files, problems)
}

/// How much of a post file to read first when only its metadata is wanted.
const HEAD_BYTES: usize = 1024;

/// Reads and parses one post file. With `metadata_only`, reads just far enough to see the end of
/// the front matter (the body comes back empty and its bytes unchecked).
pub fn read_post(
    path: &Path,
    cx: &PostContext<'_>,
    metadata_only: bool,
) -> Result<(PostMeta, String, std::fs::Metadata), PostError> {
    use std::io::Read;
    let io_error = |e: std::io::Error| PostError {
        path: path.to_owned(),
        line: 1,
        message: format!("cannot read: {e}; check that the file exists and crier may read it"),
    };
    let mut file = std::fs::File::open(path).map_err(io_error)?;
    let metadata = file.metadata().map_err(io_error)?;
    if metadata.len() > cx.max_bytes {
        return Err(post::too_large(path, metadata.len(), cx.max_bytes));
    }
    let modified = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let mut bytes = Vec::with_capacity(if metadata_only { HEAD_BYTES } else { metadata.len() as usize + 1 });
    if metadata_only {
        (&mut file).take(HEAD_BYTES as u64).read_to_end(&mut bytes).map_err(io_error)?;
        if let Some(end) = post::front_matter_len(&bytes) {
            bytes.truncate(end);
            return post::parse(path, &bytes, modified, cx).map(|(meta, _)| (meta, String::new(), metadata));
        }
    }
    file.read_to_end(&mut bytes).map_err(io_error)?;
    post::parse(path, &bytes, modified, cx).map(|(meta, body)| (meta, body.into_owned(), metadata))
}

/// The result of reading a posts folder.
#[derive(Debug, Default)]
pub struct Scan {
    pub posts: Vec<PostMeta>,
    pub errors: Vec<PostError>,
    pub drafts: usize,
}

impl Scan {
    /// Every warning, with the file it is about.
    pub fn warnings(&self) -> impl Iterator<Item = (&Path, &PostWarning)> {
        self.posts.iter().flat_map(|p| p.warnings.iter().map(move |w| (p.path.as_path(), w)))
    }
}

/// Reads every byte of every post under the configured folder, in parallel, keeping metadata
/// only: what `crier check` reports on.
pub fn scan(config: &Config) -> Scan {
    let cx = post_context(config);
    let (files, mut errors) = post_files(&config.posts);
    let results: Vec<Result<PostMeta, PostError>> =
        files.par_iter().map(|path| read_post(path, &cx, false).map(|(meta, _, _)| meta)).collect();
    let mut scan = Scan::default();
    for result in results {
        match result {
            Ok(meta) if meta.draft => scan.drafts += 1,
            Ok(meta) => scan.posts.push(meta),
            Err(error) => errors.push(error),
        }
    }
    scan.errors = errors;
    scan
}

/// Renders the bodies of `posts`, reading each file again; a file that fails to read or parse now
/// (a body that is not UTF-8, or a file changed since it was scanned) is returned as an error.
pub fn render_posts(posts: &[Arc<PostMeta>], config: &Config) -> (HashMap<PathBuf, Arc<Rendered>>, Vec<PostError>) {
    let cx = post_context(config);
    let rule = SummaryRule { separator: &config.excerpt_separator, length: config.excerpt_length };
    let results: Vec<Result<(PathBuf, Rendered), PostError>> = posts
        .par_iter()
        .map(|meta| {
            let (_, body, _) = read_post(&meta.path, &cx, false)?;
            Ok((meta.path.clone(), render::render(meta, &body, rule)))
        })
        .collect();
    let mut errors = Vec::new();
    let mut rendered = HashMap::with_capacity(results.len());
    for result in results {
        match result {
            Ok((path, r)) => {
                rendered.insert(path, Arc::new(r));
            }
            Err(error) => errors.push(error),
        }
    }
    (rendered, errors)
}

/// A feed's file path under the feeds folder, e.g. `categories/新闻.rss`.
pub fn document_path(key: &FeedKey, format: Format) -> String {
    format!("{}.{}", key.stem(), format.extension())
}

/// The feed's title, as readers list it.
pub fn feed_title(config: &Config, plan: &FeedPlan) -> String {
    let site = xml_safe(&config.title);
    match (&plan.key, &plan.name) {
        (FeedKey::Category(_), Some(name)) => format!("{site} · {name}"),
        (FeedKey::Tag(_), Some(name)) => format!("{site} · #{name}"),
        _ => site.into_owned(),
    }
}

/// One feed in one format, as bytes.
pub fn document(
    config: &Config,
    plan: &FeedPlan,
    format: Format,
    rendered: &HashMap<PathBuf, Arc<Rendered>>,
) -> anyhow::Result<Vec<u8>> {
    let items: Vec<Item<'_>> =
        plan.items.iter().filter_map(|meta| rendered.get(&meta.path).map(|r| Item { meta, rendered: r })).collect();
    let description = match &plan.name {
        Some(name) => format!("{} ({name})", xml_safe(&config.description)),
        None => xml_safe(&config.description).into_owned(),
    };
    let doc = FeedDoc {
        title: feed_title(config, plan),
        description,
        home_url: config.base_url.as_str(),
        self_url: post::absolute_link(&config.feeds_url, &document_path(&plan.key, format)),
        language: &config.language,
        author: &config.author,
        updated: feed::newest_update(&items),
        ttl_minutes: config.ttl.as_secs() / 60,
        full_content: config.content == ContentMode::Full,
        items,
    };
    match format {
        Format::Rss => feed::rss::write(&doc),
        Format::Atom => feed::atom::write(&doc),
        Format::Json => feed::json::write(&doc),
    }
}

/// The OPML list of `feeds` (key and title), dated `updated`.
pub fn opml(config: &Config, feeds: &[(FeedKey, String)], updated: DateTime<FixedOffset>) -> anyhow::Result<Vec<u8>> {
    let outline = |(key, title): &(FeedKey, String)| Outline {
        title: title.clone(),
        xml_url: post::absolute_link(&config.feeds_url, &document_path(key, Format::Rss)),
        html_url: config.base_url.to_string(),
    };
    let site = feeds
        .iter()
        .find(|(k, _)| *k == FeedKey::Site)
        .map(outline)
        .unwrap_or_else(|| outline(&(FeedKey::Site, xml_safe(&config.title).into_owned())));
    let list = Opml {
        title: xml_safe(&config.title).into_owned(),
        updated,
        site,
        categories: feeds.iter().filter(|(k, _)| matches!(k, FeedKey::Category(_))).map(outline).collect(),
        tags: feeds.iter().filter(|(k, _)| matches!(k, FeedKey::Tag(_))).map(outline).collect(),
    };
    feed::opml::write(&list)
}

/// The file name of the index page.
pub const INDEX_PATH: &str = "index.html";

/// The index page: every feed with its number of items and last update, and autodiscovery
/// links, for a person who opens the server in a browser.
pub fn index_page<'a>(config: &Config, feeds: impl Iterator<Item = &'a crate::engine::FeedSummary>) -> Vec<u8> {
    use quick_xml::escape::escape;
    let feeds: Vec<&crate::engine::FeedSummary> = feeds.collect();
    // Relative links, so the page works wherever the folder is served; path segments keep
    // RFC 3986's unreserved characters and percent-encode the rest.
    const SEGMENT: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    let href = |key: &FeedKey, format: Format| -> String {
        let rel = document_path(key, format);
        let segments: Vec<String> =
            rel.split('/').map(|s| percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()).collect();
        segments.join("/")
    };
    let title = escape(config.title.as_str());
    let mut head = String::new();
    let mut rows = String::new();
    for feed in &feeds {
        let name = escape(feed.title.as_str());
        for format in Format::ALL {
            if feed.key == FeedKey::Site || format == Format::Rss {
                head.push_str(&format!(
                    "<link rel=\"alternate\" type=\"{}\" title=\"{name} ({})\" href=\"{}\">\n",
                    format.media_type(),
                    format.extension().to_uppercase(),
                    href(&feed.key, format)
                ));
            }
        }
        let links: Vec<String> =
            Format::ALL.iter().map(|&f| format!("<a href=\"{}\">{}</a>", href(&feed.key, f), f.extension())).collect();
        let updated =
            if feed.items == 0 { "—".to_owned() } else { feed.updated.format("%Y-%m-%d %H:%M %:z").to_string() };
        rows.push_str(&format!(
            "<tr><td>{name}</td><td>{}</td><td>{updated}</td><td>{}</td></tr>\n",
            feed.items,
            links.join(" · ")
        ));
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{title} — feeds</title>\n{head}<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}table{{border-collapse:collapse;width:100%}}td,th{{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #ddd}}</style>\n</head>\n<body>\n<h1>{title}</h1>\n<p>{description} · <a href=\"{home}\">{home}</a> · <a href=\"{opml}\">OPML</a> (every feed, for one-step subscription)</p>\n<table>\n<tr><th>Feed</th><th>Items</th><th>Last update</th><th>Formats</th></tr>\n{rows}</table>\n</body>\n</html>\n",
        lang = escape(config.language.as_str()),
        description = escape(config.description.as_str()),
        home = escape(config.base_url.as_str()),
        opml = OPML_PATH,
    )
    .into_bytes()
}

/// The file name of the OPML list.
pub const OPML_PATH: &str = "index.opml";

/// What a build did, for the summary.
#[derive(Debug, Default)]
pub struct BuildReport {
    pub posts_read: usize,
    pub published: usize,
    pub drafts: usize,
    pub scheduled: usize,
    pub errors: Vec<PostError>,
    pub warnings: Vec<(PathBuf, PostWarning)>,
    pub feeds: usize,
    pub written: usize,
    pub unchanged: usize,
    pub removed: usize,
    pub elapsed: std::time::Duration,
}

/// `crier build`: reads the posts, writes every feed document and removes stale ones.
pub fn build(config: &Config, now: DateTime<Utc>) -> anyhow::Result<BuildReport> {
    let started = Instant::now();
    if !config.posts.is_dir() {
        anyhow::bail!(
            "posts folder {} does not exist or is not a folder; set `posts` in the config or pass --posts",
            config.posts.display()
        );
    }
    let feeds = FeedsDir::new(&config.feeds, Levels { gzip: config.gzip_level, brotli: config.brotli_quality });
    let written_at = SystemTime::now();
    // Each document is compressed and written as soon as it is made, then dropped.
    let sink = BuildSink { feeds: &feeds, written_at, outcomes: std::sync::Mutex::new(Vec::new()) };
    let mut engine = Engine::new(Arc::new(config.clone()));
    let change = engine.load_all(now, &sink);
    let keep: HashSet<String> = change.documents.iter().cloned().collect();
    let mut report = BuildReport {
        posts_read: change.posts_read,
        published: engine.published(),
        scheduled: engine.scheduled(),
        drafts: engine.drafts(),
        errors: change.errors,
        warnings: change.warnings,
        feeds: keep.len(),
        ..Default::default()
    };
    for outcome in sink.outcomes.into_inner().expect("no code panics while holding this lock") {
        match outcome? {
            Outcome::Written => report.written += 1,
            Outcome::Unchanged => report.unchanged += 1,
        }
    }
    tracing::debug!(elapsed = ?started.elapsed(), "documents published");
    report.removed = feeds.remove_stale(&keep)?;
    report.errors.sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The build's sink: writes each document out and keeps only the outcome.
struct BuildSink<'a> {
    feeds: &'a FeedsDir,
    written_at: SystemTime,
    outcomes: std::sync::Mutex<Vec<anyhow::Result<Outcome>>>,
}

impl crate::engine::DocumentSink for BuildSink<'_> {
    fn accept(&self, rel: &str, bytes: Vec<u8>) {
        let outcome = self.feeds.put(rel, &bytes, self.written_at);
        self.outcomes.lock().expect("no code panics while holding this lock").push(outcome);
    }
}
