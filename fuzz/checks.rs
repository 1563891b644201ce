//! What the fuzz targets feed crier and what they require of the result. Shared by the targets
//! (`cargo +nightly fuzz run <target>`) and by `tests/fuzz_corpus.rs`, which replays the
//! committed corpora in `cargo test`. Every check panics on a violation, which libFuzzer reports
//! as a crash with the input that caused it.

#![allow(dead_code)]

use std::io::Read;
use std::path::Path;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use crier::config::{Config, Overrides, RawConfig};
use crier::feed::Format;
use crier::feeds_dir::Encoded;
use crier::served::{Policy, Resource, ServedSet};
use crier::site::Site;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};

static CONFIG: LazyLock<Config> = LazyLock::new(|| {
    let raw = RawConfig {
        base_url: Some("https://example.com/blog/".to_owned()),
        title: Some("Fuzz <&> 站点".to_owned()),
        timezone: Some("Asia/Shanghai".to_owned()),
        max_terms: Some(8),
        ..RawConfig::default()
    };
    Config::from_raw(raw, Path::new("/nonexistent"), &Overrides::default()).expect("the fuzz configuration is valid")
});

/// A post file's bytes, parsed as `post.md`, rendered and published in all three formats.
pub fn post(data: &[u8]) {
    publish("post.md", data);
}

/// A body after a fixed front matter; the first byte picks Markdown or HTML.
pub fn body(data: &[u8]) {
    let Some((&kind, body)) = data.split_first() else { return };
    let name = if kind % 2 == 0 { "post.md" } else { "post.html" };
    let mut file = b"---\ntitle: Fuzz\ndate: 2024-05-01 10:00:00 +0800\ncategories: [a]\n---\n".to_vec();
    file.extend_from_slice(body);
    publish(name, &file);
}

fn publish(name: &str, bytes: &[u8]) {
    let config = &*CONFIG;
    let path = Path::new("/fuzz").join(name);
    let Ok((meta, body)) = crier::post::parse(&path, bytes, SystemTime::UNIX_EPOCH, &config.post_context()) else {
        return;
    };
    let rendered = crier::render::render(&meta, &body, config.summary_rule());
    check_html(&rendered.content_html);
    check_xml_chars(&rendered.summary);
    if meta.draft {
        return;
    }
    let mut site = Site::new();
    site.insert(Arc::new(meta));
    let rendered: crier::documents::Renderings = [(path, Arc::new(rendered))].into_iter().collect();
    let end_of_time = DateTime::<Utc>::MAX_UTC;
    for key in site.keys() {
        let plan = site.feed(&key, end_of_time, config.items).expect("a key of the site has a feed");
        let history = site.history(&key, end_of_time);
        let page = crier::documents::Page { number: 2, newest: false, posts: history.posts };
        for format in Format::ALL {
            let (document, _) = crier::documents::document(config, &plan, format, &rendered, Some(2))
                .unwrap_or_else(|e| panic!("{format:?} document failed: {e:#}"));
            check_document(format, &document);
            let (archive, _) = crier::documents::archive_page(config, &key, page, format, &rendered)
                .unwrap_or_else(|e| panic!("{format:?} archive page failed: {e:#}"));
            check_document(format, &archive);
        }
    }
}

/// A feed document parses in its format, and every HTML it carries is safe.
pub fn check_document(format: Format, document: &[u8]) {
    let text = std::str::from_utf8(document).expect("a document is UTF-8");
    if format == Format::Json {
        let value: serde_json::Value = serde_json::from_str(text).expect("a JSON Feed parses");
        for item in value["items"].as_array().expect("a JSON Feed has items") {
            if let Some(html) = item["content_html"].as_str() {
                check_html(html);
            }
        }
        return;
    }
    check_xml_chars(text);
    let xml = roxmltree::Document::parse(text).unwrap_or_else(|e| panic!("{format:?} is not well-formed: {e}"));
    for node in xml.descendants() {
        let html = match node.tag_name().name() {
            "content" if node.attribute("type") == Some("html") => node.text(),
            "description" | "encoded" => node.text(),
            _ => None,
        };
        check_html(html.unwrap_or(""));
    }
}

/// Only characters XML 1.0 allows (a feed with one other fails to parse in every reader).
fn check_xml_chars(text: &str) {
    let bad = text
        .chars()
        .find(|&c| !matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..));
    assert!(bad.is_none(), "character {bad:?} is not allowed in XML");
}

/// Sanitized: no element or attribute that runs script or loads active content, no script URL.
pub fn check_html(html: &str) {
    use html5ever::tendril::StrTendril;
    use html5ever::tokenizer::{BufferQueue, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer};

    struct Sink;
    impl TokenSink for Sink {
        type Handle = ();
        fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
            let Token::TagToken(tag) = token else { return TokenSinkResult::Continue };
            if tag.kind != TagKind::StartTag {
                return TokenSinkResult::Continue;
            }
            let name = tag.name.to_string().to_ascii_lowercase();
            const ACTIVE: &[&str] = &[
                "script", "style", "iframe", "frame", "object", "embed", "applet", "form", "input", "button",
                "textarea", "link", "meta", "base", "svg", "math", "template",
            ];
            assert!(!ACTIVE.contains(&name.as_str()), "<{name}> survived sanitizing");
            for attribute in &tag.attrs {
                let attr = attribute.name.local.to_string().to_ascii_lowercase();
                assert!(!attr.starts_with("on") && attr != "style" && attr != "srcdoc", "{attr}= survived on <{name}>");
                let value: String = attribute.value.chars().filter(|c| !c.is_whitespace() && !c.is_control()).collect();
                let scheme = value.split(':').next().filter(|s| s.len() < value.len()).unwrap_or("");
                let scheme = scheme.to_ascii_lowercase();
                assert!(
                    !["javascript", "vbscript", "data"].contains(&scheme.as_str()),
                    "{attr}=\"{value}\" survived on <{name}>"
                );
            }
            TokenSinkResult::Continue
        }
    }
    check_xml_chars(html);
    let tokenizer = Tokenizer::new(Sink, Default::default());
    let queue = BufferQueue::default();
    queue.push_back(StrTendril::from(html));
    let _ = tokenizer.feed(&queue);
    tokenizer.end();
}

/// A served set of three documents, one with a Chinese name, each in three encodings.
static SERVED: LazyLock<ServedSet> = LazyLock::new(|| {
    let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let documents = [
        ("feed.rss", "<rss version=\"2.0\"><channel><title>t</title></channel></rss>".repeat(20)),
        ("categories/新闻.atom", "<feed xmlns=\"http://www.w3.org/2005/Atom\"/>".repeat(20)),
        ("index.html", "<!doctype html><title>feeds</title>".to_owned()),
    ];
    let resources = documents
        .into_iter()
        .map(|(rel, text)| {
            let encoded = Encoded::compress(text.into_bytes(), CONFIG.compression, modified);
            (rel.to_owned(), Arc::new(Resource::new(rel, &encoded, modified + Duration::from_secs(60))))
        })
        .collect();
    ServedSet { resources, ready: true, policy: Arc::new(Policy::new(&CONFIG)), ..Default::default() }
});

/// A request: the first byte picks the method, the first line is the request target, the other
/// lines are `name: value` headers.
pub fn request(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else { return };
    const METHODS: [&str; 6] = ["GET", "HEAD", "POST", "OPTIONS", "DELETE", "PURGE"];
    let method = Method::from_bytes(METHODS[usize::from(pick) % METHODS.len()].as_bytes()).unwrap();
    let mut lines = rest.split(|&b| b == b'\n');
    let Ok(uri) = http::Uri::try_from(lines.next().unwrap_or(b"/")) else { return };
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(&line[..colon]), HeaderValue::from_bytes(line[colon + 1..].trim_ascii()))
        else {
            continue;
        };
        headers.append(name, value);
    }
    check_response(&method, uri.path(), &headers);
}

fn check_response(method: &Method, path: &str, headers: &HeaderMap) {
    use http::header::{CONTENT_ENCODING, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH};
    let served = &*SERVED;
    let response = crier::http::respond(served, method, path, headers);
    let status = response.status();
    let body = body_bytes(response.body());
    let conditional = headers.contains_key(IF_NONE_MATCH) || headers.contains_key(IF_MODIFIED_SINCE);
    assert!(
        [StatusCode::OK, StatusCode::NOT_MODIFIED, StatusCode::NOT_FOUND, StatusCode::METHOD_NOT_ALLOWED]
            .contains(&status),
        "unexpected status {status}"
    );
    assert!(status != StatusCode::NOT_MODIFIED || conditional, "304 to an unconditional request");
    if *method == Method::HEAD {
        // hyper leaves a HEAD response's body off the wire and takes Content-Length from it, so
        // HEAD must answer exactly what GET answers.
        let get = crier::http::respond(served, &Method::GET, path, headers);
        assert_eq!((status, response.headers()), (get.status(), get.headers()), "HEAD differs from GET");
        assert!(body.is_empty() || body == body_bytes(get.body()), "HEAD's body is not GET's");
    }
    let Some(etag) = response.headers().get(ETAG) else { return };
    if status == StatusCode::OK && *method == Method::GET {
        let identity = decode(response.headers().get(CONTENT_ENCODING), &body);
        assert!(
            served.resources.values().any(|r| r.identity.bytes().is_ok_and(|b| b == identity)),
            "the body decodes to no served document"
        );
    }
    // The validator just sent revalidates the same request.
    let mut again = headers.clone();
    again.remove(IF_MODIFIED_SINCE);
    again.insert(IF_NONE_MATCH, etag.clone());
    let revalidated = crier::http::respond(served, method, path, &again);
    assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED, "its own ETag {etag:?} did not revalidate");
}

fn body_bytes(body: &crier::http::Body) -> Vec<u8> {
    use http_body_util::BodyExt;
    use std::future::Future;
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut collect = std::pin::pin!(body.clone().collect());
    match collect.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(Ok(collected)) => collected.to_bytes().to_vec(),
        _ => panic!("a full body is there at once"),
    }
}

fn decode(encoding: Option<&HeaderValue>, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding.map(HeaderValue::as_bytes) {
        None => out.extend_from_slice(body),
        Some(b"gzip") => {
            flate2::read::GzDecoder::new(body).read_to_end(&mut out).expect("gzip body decodes");
        }
        Some(b"br") => {
            brotli::Decompressor::new(body, 4096).read_to_end(&mut out).expect("brotli body decodes");
        }
        Some(other) => panic!("unexpected Content-Encoding {other:?}"),
    }
    out
}
