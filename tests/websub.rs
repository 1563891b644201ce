//! WebSub: `crier serve` with the built-in hub, and subscribers (and an external hub) played by
//! small HTTP servers on 127.0.0.1 in this process. Waits poll against deadlines.

mod common;

use std::collections::VecDeque;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Daemon, Response, poll, send};
use hmac::Mac;

const SITE: &str = "https://news.example.com/feeds/";

fn post(title: &str, date: &str, categories: &str) -> String {
    format!("---\ntitle: \"{title}\"\ndate: {date}\ncategories: {categories}\n---\n<p>{title} 正文。</p>\n")
}

/// A site with two posts in two categories and a daemon serving it with the hub on and
/// 127.0.0.0/8 allowed as callbacks, plus `extra` configuration.
fn start(extra: &str) -> (tempfile::TempDir, Daemon) {
    let dir = tempfile::tempdir().unwrap();
    let posts = dir.path().join("posts");
    fs::create_dir_all(&posts).unwrap();
    fs::write(posts.join("port.md"), post("港口新闻", "2021-12-23 16:34:36 +0800", "caijing")).unwrap();
    fs::write(posts.join("rust.md"), post("Rust notes", "2021-12-01 09:00 +0800", "engineering")).unwrap();
    let daemon = start_in(dir.path(), extra);
    (dir, daemon)
}

fn start_in(dir: &Path, extra: &str) -> Daemon {
    let websub = if extra.contains("[websub]") { String::new() } else { websub_table("") };
    Daemon::start(dir, &format!("{extra}\n{websub}"))
}

fn websub_table(more: &str) -> String {
    format!("[websub]\nhub = true\nallow_callbacks = [\"127.0.0.0/8\"]\n{more}\n")
}

/// Writes a post into the caijing category (site feed and caijing change; engineering does not).
fn publish(daemon: &Daemon, name: &str, title: &str) {
    fs::write(daemon.posts().join(name), post(title, "2022-01-05 08:00 +0800", "caijing")).unwrap();
    daemon.wait_for("the new post served", || daemon.get("/feed.rss", &[]).text().contains(title));
}

// ---------------------------------------------------------------------------------------------
// A subscriber

/// One request a test server received.
#[derive(Debug, Clone)]
struct Hit {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// For a delivery: the topic's bytes crier served when it arrived.
    served_then: Vec<u8>,
}

impl Hit {
    fn header(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    }

    fn query(&self, key: &str) -> Option<String> {
        let (_, query) = self.target.split_once('?')?;
        url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
    }
}

/// How the subscriber answers.
#[derive(Debug, Default)]
struct Script {
    /// Verification: echo the challenge (default), or answer this status with no echo.
    refuse_with: Option<u16>,
    /// Statuses for successive deliveries; 200 once they run out.
    deliveries: VecDeque<u16>,
    /// crier's address, to fetch what it serves when a delivery arrives.
    crier: Option<String>,
    /// How long each delivery takes to answer.
    slow: Duration,
}

/// A callback server on 127.0.0.1 that records every request and answers as scripted.
#[derive(Clone)]
struct Subscriber {
    address: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    script: Arc<Mutex<Script>>,
}

impl Subscriber {
    fn start(crier: &Daemon) -> Subscriber {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let subscriber = Subscriber {
            address: listener.local_addr().unwrap().to_string(),
            hits: Arc::default(),
            script: Arc::new(Mutex::new(Script { crier: Some(crier.address.clone()), ..Script::default() })),
        };
        let server = subscriber.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let server = server.clone();
                std::thread::spawn(move || server.answer(stream));
            }
        });
        subscriber
    }

    fn callback(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    fn answer(&self, mut stream: TcpStream) {
        let Some(mut hit) = read_request(&mut stream) else { return };
        if let Some(query) = hit.target.strip_prefix("/redirect?") {
            // Where a client that follows redirects would find the challenge echoed.
            let head = format!(
                "HTTP/1.1 302 Found\r\nLocation: /echo?{query}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            self.hits.lock().unwrap().push(hit);
            let _ = stream.write_all(head.as_bytes());
            return;
        }
        let (status, body) = if hit.method == "GET" {
            let script = self.script.lock().unwrap();
            match (script.refuse_with, hit.query("hub.challenge")) {
                (Some(status), _) => (status, Vec::new()),
                (None, Some(challenge)) => (200, challenge.into_bytes()),
                (None, None) => (200, Vec::new()),
            }
        } else {
            let (status, crier, slow) = {
                let mut script = self.script.lock().unwrap();
                (script.deliveries.pop_front().unwrap_or(200), script.crier.clone(), script.slow)
            };
            std::thread::sleep(slow);
            if let (Some(crier), Some(topic)) = (crier, self_link(&hit)) {
                hit.served_then = common::get(&crier, topic.strip_prefix("https://news.example.com").unwrap()).body;
            }
            (status, Vec::new())
        };
        self.hits.lock().unwrap().push(hit);
        let head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(&body);
    }

    fn hits(&self, method: &str) -> Vec<Hit> {
        self.hits.lock().unwrap().iter().filter(|h| h.method == method).cloned().collect()
    }

    /// Deliveries received for `topic` (by the Link rel=self they carry).
    fn deliveries(&self, topic: &str) -> Vec<Hit> {
        self.hits("POST").into_iter().filter(|h| self_link(h).as_deref() == Some(topic)).collect()
    }
}

fn self_link(hit: &Hit) -> Option<String> {
    hit.header("link").into_iter().find(|l| l.ends_with("rel=\"self\"")).map(|l| l[1..l.find('>').unwrap()].to_owned())
}

/// Reads one HTTP/1.1 request with a `Content-Length` body.
fn read_request(stream: &mut TcpStream) -> Option<Hit> {
    stream.set_read_timeout(Some(common::DEADLINE)).ok()?;
    let mut raw = Vec::new();
    let mut buffer = [0u8; 8192];
    let split = loop {
        if let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break split;
        }
        let n = stream.read(&mut buffer).ok().filter(|&n| n > 0)?;
        raw.extend_from_slice(&buffer[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, target) = (first.next()?.to_owned(), first.next()?.to_owned());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize =
        headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = raw[split + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut buffer).ok().filter(|&n| n > 0)?;
        body.extend_from_slice(&buffer[..n]);
    }
    Some(Hit { method, target, headers, body, served_then: Vec::new() })
}

/// A form POST to the hub.
fn hub_request(daemon: &Daemon, fields: &[(&str, &str)]) -> Response {
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
    send(&daemon.address, "POST", "/hub", &[("Content-Type", "application/x-www-form-urlencoded")], body.as_bytes())
}

/// Subscribes `callback` to `topic` and waits until the hub says the subscription exists.
fn subscribe(daemon: &Daemon, topic: &str, callback: &str, extra: &[(&str, &str)]) {
    let mut fields = vec![("hub.mode", "subscribe"), ("hub.topic", topic), ("hub.callback", callback)];
    fields.extend_from_slice(extra);
    let before = daemon.log_lines("websub: subscribed");
    let response = hub_request(daemon, &fields);
    assert_eq!(response.status, 202, "{}", response.text());
    daemon.wait_for("the subscription verified", || daemon.log_lines("websub: subscribed") > before);
}

/// Waits `for_how_long` and says whether `condition` ever held (for things that must not happen).
fn happens_within(for_how_long: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < for_how_long {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    condition()
}

// ---------------------------------------------------------------------------------------------
// Discovery

#[test]
fn feeds_advertise_the_hubs_and_themselves() {
    let (_dir, daemon) = start(&websub_table("hubs = [\"http://127.0.0.1:9/\"]"));
    let hub = format!("<{SITE}hub>; rel=\"hub\"");
    for (path, topic) in [
        ("/feed.rss", format!("{SITE}feed.rss")),
        ("/feeds/feed.atom", format!("{SITE}feed.atom")),
        ("/categories/caijing.json", format!("{SITE}categories/caijing.json")),
    ] {
        let ok = daemon.get(path, &[]);
        let links: Vec<&str> = ok.headers.iter().filter(|(n, _)| n == "link").map(|(_, v)| v.as_str()).collect();
        let expected = [hub.as_str(), "<http://127.0.0.1:9/>; rel=\"hub\"", &format!("<{topic}>; rel=\"self\"")];
        assert_eq!(links, expected, "{path}: the built-in hub first, then the others, then self");
        let not_modified = daemon.get(path, &[("If-None-Match", ok.header("etag"))]);
        assert_eq!(not_modified.status, 304);
        let head = daemon.request("HEAD", path, &[]);
        for response in [&not_modified, &head] {
            let again: Vec<&str> =
                response.headers.iter().filter(|(n, _)| n == "link").map(|(_, v)| v.as_str()).collect();
            assert_eq!(again, links, "{path}: 304 and HEAD carry the links too");
        }
    }
    let rss = daemon.get("/feed.rss", &[]).text();
    assert!(rss.contains(&format!("<atom:link href=\"{SITE}hub\" rel=\"hub\"/>")), "{rss}");
    let atom = daemon.get("/feed.atom", &[]).text();
    assert!(atom.contains(&format!("<link href=\"{SITE}hub\" rel=\"hub\"/>")), "{atom}");
    for (path, text) in [("/feed.rss", &rss), ("/feed.atom", &atom)] {
        roxmltree::Document::parse(text).unwrap_or_else(|e| panic!("{path} is not well-formed: {e}"));
        let parsed = feed_rs::parser::parse(text.as_bytes()).unwrap();
        assert!(
            parsed.links.iter().any(|l| l.rel.as_deref() == Some("hub") && l.href == format!("{SITE}hub")),
            "{path}"
        );
    }
    let json: serde_json::Value = serde_json::from_slice(&daemon.get("/feed.json", &[]).body).unwrap();
    assert_eq!(json["hubs"][0], serde_json::json!({"type": "WebSub", "url": format!("{SITE}hub")}));
    assert_eq!(json["hubs"][1]["url"], "http://127.0.0.1:9/");
    for other in ["/index.opml", "/"] {
        assert!(daemon.get(other, &[]).header("link").is_empty(), "{other} is not a topic");
    }
}

#[test]
fn without_websub_nothing_is_advertised_and_there_is_no_hub() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("posts")).unwrap();
    fs::write(dir.path().join("posts/a.md"), post("A", "2021-12-01 09:00 +0800", "x")).unwrap();
    let daemon = Daemon::start(dir.path(), "");
    assert!(daemon.get("/feed.rss", &[]).header("link").is_empty());
    assert!(!daemon.get("/feed.rss", &[]).text().contains("rel=\"hub\""));
    assert_eq!(hub_request(&daemon, &[("hub.mode", "subscribe")]).status, 404);
}

// ---------------------------------------------------------------------------------------------
// Subscriptions

#[test]
fn subscribe_verify_and_receive_signed_changes_of_that_topic_only() {
    let (_dir, daemon) = start("");
    let subscriber = Subscriber::start(&daemon);
    let (site, engineering) = (format!("{SITE}feed.rss"), format!("{SITE}categories/engineering.atom"));
    subscribe(
        &daemon,
        &site,
        &subscriber.callback("/site?x=1"),
        &[("hub.secret", "s3cret"), ("hub.lease_seconds", "7200")],
    );
    subscribe(&daemon, &engineering, &subscriber.callback("/engineering"), &[]);

    let verification = &subscriber.hits("GET")[0];
    assert!(verification.target.starts_with("/site?x=1&"), "the callback's own query is kept: {}", verification.target);
    assert_eq!(verification.query("hub.mode").as_deref(), Some("subscribe"));
    assert_eq!(verification.query("hub.topic"), Some(site.clone()));
    assert_eq!(verification.query("hub.lease_seconds").as_deref(), Some("7200"));
    assert!(verification.query("hub.challenge").is_some_and(|c| c.len() >= 16));
    assert!(subscriber.hits("POST").is_empty(), "subscribing delivers nothing");

    publish(&daemon, "new.md", "新的港口消息");
    daemon.wait_for("the delivery", || !subscriber.deliveries(&site).is_empty());
    let delivery = subscriber.deliveries(&site)[0].clone();
    assert_eq!(delivery.target, "/site?x=1");
    assert!(String::from_utf8_lossy(&delivery.body).contains("新的港口消息"));
    assert_eq!(delivery.body, delivery.served_then, "the delivered bytes were already served");
    assert_eq!(delivery.header("content-type"), ["application/rss+xml; charset=utf-8"]);
    assert_eq!(delivery.header("link"), [format!("<{SITE}hub>; rel=\"hub\""), format!("<{site}>; rel=\"self\"")]);
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").unwrap();
    mac.update(&delivery.body);
    let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(delivery.header("x-hub-signature"), [format!("sha256={expected}")]);

    // Once per change, nothing for a topic that did not change.
    assert!(
        !happens_within(Duration::from_secs(2), || subscriber.hits("POST").len() > 1),
        "{:?}",
        subscriber.hits("POST")
    );
    assert!(subscriber.deliveries(&engineering).is_empty());

    // A change to the other topic, unsigned.
    fs::write(daemon.posts().join("e.md"), post("Engineering news", "2022-01-06 08:00 +0800", "engineering")).unwrap();
    daemon.wait_for("the engineering delivery", || !subscriber.deliveries(&engineering).is_empty());
    let delivery = &subscriber.deliveries(&engineering)[0];
    assert!(delivery.header("x-hub-signature").is_empty(), "no secret, no signature");
    assert_eq!(delivery.header("content-type"), ["application/atom+xml; charset=utf-8"]);
    daemon.wait_for("the second site delivery", || subscriber.deliveries(&site).len() == 2);
}

#[test]
fn changes_during_a_slow_delivery_end_in_the_newest_bytes_once() {
    let (_dir, daemon) = start("");
    let (slow, quick) = (Subscriber::start(&daemon), Subscriber::start(&daemon));
    let topic = format!("{SITE}feed.json");
    subscribe(&daemon, &topic, &slow.callback("/slow"), &[]);
    subscribe(&daemon, &topic, &quick.callback("/quick"), &[]);
    slow.script.lock().unwrap().slow = Duration::from_secs(3);
    for (i, title) in ["第一", "第二", "第三"].iter().enumerate() {
        publish(&daemon, &format!("burst-{i}.md"), title);
    }
    daemon.wait_for("the quick subscriber has the newest", || {
        quick.hits("POST").last().is_some_and(|h| String::from_utf8_lossy(&h.body).contains("第三"))
    });
    assert!(slow.hits("POST").is_empty(), "the quick subscriber waited for the slow one's first answer");
    daemon.wait_for("the slow subscriber has the newest", || {
        slow.hits("POST").last().is_some_and(|h| String::from_utf8_lossy(&h.body).contains("第三"))
    });
    assert!(!happens_within(Duration::from_secs(2), || slow.hits("POST").len() > 2), "{}", slow.hits("POST").len());
    assert!(slow.hits("POST").len() <= 2, "the first change, then the newest bytes");
}

#[test]
fn refused_verification_denied_topics_and_malformed_requests() {
    let (_dir, daemon) = start("");
    let subscriber = Subscriber::start(&daemon);
    // The callback does not confirm: no subscription.
    subscriber.script.lock().unwrap().refuse_with = Some(404);
    let topic = format!("{SITE}feed.rss");
    assert_eq!(
        hub_request(
            &daemon,
            &[("hub.mode", "subscribe"), ("hub.topic", &topic), ("hub.callback", &subscriber.callback("/no"))]
        )
        .status,
        202
    );
    daemon.wait_for("the refusal logged", || daemon.log_lines("the callback answered 404") > 0);
    subscriber.script.lock().unwrap().refuse_with = None;

    // A topic crier does not serve is denied, at the callback.
    let nope = format!("{SITE}categories/nope.rss");
    assert_eq!(
        hub_request(
            &daemon,
            &[("hub.mode", "subscribe"), ("hub.topic", &nope), ("hub.callback", &subscriber.callback("/d"))]
        )
        .status,
        202
    );
    daemon.wait_for("the denial", || {
        subscriber.hits("GET").iter().any(|h| h.query("hub.mode").as_deref() == Some("denied"))
    });
    let denial = subscriber.hits("GET").into_iter().find(|h| h.query("hub.mode").as_deref() == Some("denied")).unwrap();
    assert_eq!(denial.query("hub.topic"), Some(nope));
    assert!(denial.query("hub.reason").is_some_and(|r| r.contains("not a feed")));

    publish(&daemon, "new.md", "变化");
    assert!(
        !happens_within(Duration::from_secs(2), || !subscriber.hits("POST").is_empty()),
        "no subscription, no delivery"
    );

    for (fields, reason) in [
        (vec![("hub.mode", "subscribe"), ("hub.topic", topic.as_str())], "hub.callback is missing"),
        (vec![("hub.mode", "fetch"), ("hub.topic", &topic), ("hub.callback", "http://127.0.0.1:1/")], "hub.mode"),
    ] {
        let response = hub_request(&daemon, &fields);
        assert_eq!(response.status, 400);
        assert!(response.text().contains(reason), "{}", response.text());
    }
    let not_a_form = send(&daemon.address, "POST", "/hub", &[("Content-Type", "application/json")], b"{}");
    assert_eq!(not_a_form.status, 400);
    assert_eq!(daemon.get("/hub", &[]).status, 405);
    let huge = format!("hub.mode=subscribe&pad={}", "x".repeat(100_000));
    let too_big = send(
        &daemon.address,
        "POST",
        "/hub",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        huge.as_bytes(),
    );
    assert_eq!(too_big.status, 413);
    let long_secret = "k".repeat(200);
    let response = hub_request(
        &daemon,
        &[
            ("hub.mode", "subscribe"),
            ("hub.topic", &topic),
            ("hub.callback", "http://127.0.0.1:1/"),
            ("hub.secret", &long_secret),
        ],
    );
    assert_eq!(response.status, 400);
}

#[test]
fn loopback_callbacks_are_refused_unless_allowed() {
    let (_dir, daemon) = start("[websub]\nhub = true\n");
    let subscriber = Subscriber::start(&daemon);
    for callback in [
        subscriber.callback("/cb"),
        format!("http://localhost:{}/cb", subscriber.address.rsplit(':').next().unwrap()),
        "http://[::1]:9/".into(),
        "http://10.0.0.1/".into(),
        "http://169.254.169.254/latest/".into(),
    ] {
        let response = hub_request(
            &daemon,
            &[("hub.mode", "subscribe"), ("hub.topic", &format!("{SITE}feed.rss")), ("hub.callback", &callback)],
        );
        assert_eq!(response.status, 400, "{callback}");
        assert!(response.text().contains("allow_callbacks"), "{callback}: {}", response.text());
    }
    assert!(subscriber.hits.lock().unwrap().is_empty(), "the hub never called the refused callback");
}

#[test]
fn failed_deliveries_are_retried_and_410_ends_the_subscription() {
    let (_dir, daemon) = start("metrics_listen = \"127.0.0.1:0\"");
    let subscriber = Subscriber::start(&daemon);
    let topic = format!("{SITE}feed.rss");
    subscribe(&daemon, &topic, &subscriber.callback("/cb"), &[]);
    subscriber.script.lock().unwrap().deliveries = VecDeque::from([500, 503]);
    publish(&daemon, "new.md", "重试");
    daemon.wait_for("three tries", || subscriber.hits("POST").len() >= 3);
    let posts = subscriber.hits("POST");
    assert!(posts.windows(2).all(|w| w[0].body == w[1].body), "each retry sends the same bytes");
    assert!(!happens_within(Duration::from_secs(1), || subscriber.hits("POST").len() > 3), "delivered: no more tries");

    // 410 Gone ends the subscription: the next change is not delivered.
    subscriber.script.lock().unwrap().deliveries = VecDeque::from([410]);
    publish(&daemon, "gone.md", "订阅结束");
    daemon.wait_for("the 410", || subscriber.hits("POST").len() == 4);
    daemon.wait_for("the subscription ended", || daemon.log_lines("(410 Gone): its subscription") > 0);
    publish(&daemon, "after.md", "之后");
    assert!(!happens_within(Duration::from_secs(2), || subscriber.hits("POST").len() > 4));

    // What the metrics say of it.
    let line = daemon.log.wait_for_line("metrics on http://");
    let admin = line.split("metrics on http://").nth(1).unwrap().split('/').next().unwrap();
    let metrics = common::request(admin, "GET", "/metrics", &[]).text();
    for expected in [
        "crier_websub_deliveries_total{result=\"retrying\"} 2",
        "crier_websub_deliveries_total{result=\"delivered\"} 1",
        "crier_websub_deliveries_total{result=\"ended\"} 1",
        "crier_websub_subscriptions 0",
        "crier_publish_duration_seconds_count 3",
    ] {
        assert!(metrics.lines().any(|l| l == expected), "{expected} missing:\n{metrics}");
    }
}

#[test]
fn unsubscribe_and_lease_expiry_stop_deliveries() {
    let (_dir, daemon) = start(&websub_table("min_lease_seconds = 1"));
    let subscriber = Subscriber::start(&daemon);
    let (rss, atom) = (format!("{SITE}feed.rss"), format!("{SITE}feed.atom"));
    subscribe(&daemon, &rss, &subscriber.callback("/a"), &[]);
    subscribe(&daemon, &atom, &subscriber.callback("/b"), &[("hub.lease_seconds", "1")]);
    subscribe(&daemon, &atom, &subscriber.callback("/control"), &[]);
    let response = hub_request(
        &daemon,
        &[("hub.mode", "unsubscribe"), ("hub.topic", &rss), ("hub.callback", &subscriber.callback("/a"))],
    );
    assert_eq!(response.status, 202);
    daemon.wait_for("the unsubscription", || daemon.log_lines("websub: unsubscribed:") > 0);
    let verification =
        subscriber.hits("GET").into_iter().find(|h| h.query("hub.mode").as_deref() == Some("unsubscribe")).unwrap();
    assert!(verification.query("hub.challenge").is_some());
    assert_eq!(verification.query("hub.lease_seconds"), None);
    std::thread::sleep(Duration::from_millis(1500)); // the one-second lease runs out
    publish(&daemon, "new.md", "没人订阅");
    daemon.wait_for("the control delivery", || subscriber.hits("POST").iter().any(|h| h.target == "/control"));
    let others = || subscriber.hits("POST").into_iter().filter(|h| h.target != "/control").count();
    assert!(!happens_within(Duration::from_secs(1), || others() > 0), "{:?}", subscriber.hits("POST"));
}

#[test]
fn renewal_keeps_the_delivery_owed_and_the_limit_holds() {
    let (_dir, daemon) = start(&websub_table("max_subscriptions = 1"));
    let subscriber = Subscriber::start(&daemon);
    let (topic, callback) = (format!("{SITE}feed.rss"), subscriber.callback("/cb"));
    subscribe(&daemon, &topic, &callback, &[]);
    subscriber.script.lock().unwrap().deliveries = VecDeque::from([500, 500]);
    publish(&daemon, "new.md", "续订");
    daemon.wait_for("the first, failed, try", || subscriber.hits("POST").len() == 1);
    subscribe(&daemon, &topic, &callback, &[("hub.lease_seconds", "7200")]); // a renewal, at the limit
    daemon.wait_for("the change delivered after the retries (500, 500, 200)", || subscriber.hits("POST").len() == 3);

    let other = subscriber.callback("/other");
    assert_eq!(
        hub_request(&daemon, &[("hub.mode", "subscribe"), ("hub.topic", &topic), ("hub.callback", &other)]).status,
        202
    );
    daemon.wait_for("the denial", || {
        subscriber.hits("GET").iter().any(|h| h.target.starts_with("/other?hub.mode=denied"))
    });
    let denial = subscriber.hits("GET").into_iter().find(|h| h.target.starts_with("/other?")).unwrap();
    assert!(denial.query("hub.reason").is_some_and(|r| r.contains("limit of 1")), "{denial:?}");
}

#[test]
fn redirects_are_not_followed() {
    let (_dir, daemon) = start("");
    let subscriber = Subscriber::start(&daemon);
    let fields = [
        ("hub.mode", "subscribe"),
        ("hub.topic", &format!("{SITE}feed.rss")),
        ("hub.callback", &subscriber.callback("/redirect")),
    ];
    assert_eq!(hub_request(&daemon, &fields).status, 202);
    daemon.wait_for("the verification refused", || daemon.log_lines("the callback answered 302") > 0);
    assert!(subscriber.hits("GET").iter().all(|h| !h.target.starts_with("/echo")), "the redirect was followed");
}

#[test]
fn callbacks_are_checked_again_when_allow_callbacks_narrows() {
    let (dir, mut daemon) = start(&websub_table("").replace("[\"127.0.0.0/8\"]", "[\"127.0.0.0/8\", \"::1/128\"]"));
    let subscriber = Subscriber::start(&daemon);
    let topic = format!("{SITE}feed.rss");
    let port = subscriber.address.rsplit(':').next().unwrap().to_owned();
    // An address, which the client's resolver never sees, and a name, which only it checks.
    subscribe(&daemon, &topic, &subscriber.callback("/literal"), &[]);
    subscribe(&daemon, &topic, &format!("http://localhost:{port}/name"), &[]);
    daemon.terminate();
    let daemon = start_in(dir.path(), "[websub]\nhub = true\n"); // loopback no longer allowed
    publish(&daemon, "new.md", "内网");
    daemon.wait_for("the literal's subscription ended", || daemon.log_lines("its subscription to") > 0);
    daemon.wait_for("the name's delivery refused", || daemon.log_lines("delivering") > 0);
    assert!(!happens_within(Duration::from_secs(2), || !subscriber.hits("POST").is_empty()), "crier called loopback");
}

#[test]
fn hub_bodies_sent_slowly_do_not_lock_out_feed_readers() {
    let (_dir, daemon) = start("max_connections = 4\nheader_timeout_ms = 3000\n");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Three times as many clients as slots, each sending a hub request's head and never its body.
    for _ in 0..12 {
        let (address, stop) = (daemon.address.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok(mut stream) = TcpStream::connect(&address) else { continue };
                let head = "POST /hub HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nhub.mode=sub";
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.read_to_end(&mut Vec::new()); // until the 408, or eviction
            }
        });
    }
    std::thread::sleep(Duration::from_millis(1000));
    for _ in 0..5 {
        let started = Instant::now();
        let response = daemon.get("/feed.rss", &[]);
        assert_eq!(response.status, 200);
        assert!(started.elapsed() < Duration::from_secs(2), "a feed reader waited {:?}", started.elapsed());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
}

#[test]
fn subscriptions_survive_a_restart_and_changes_made_meanwhile_are_delivered() {
    let (dir, mut daemon) = start("");
    let subscriber = Subscriber::start(&daemon);
    let topic = format!("{SITE}feed.rss");
    subscribe(&daemon, &topic, &subscriber.callback("/cb"), &[("hub.secret", "k")]);
    daemon.terminate();
    assert!(dir.path().join("crier-state/state.sqlite3").exists(), "state_dir defaults to crier-state beside feeds");
    fs::write(dir.path().join("posts/down.md"), post("停机时写的", "2022-01-07 08:00 +0800", "caijing")).unwrap();

    let daemon = start_in(dir.path(), "");
    subscriber.script.lock().unwrap().crier = Some(daemon.address.clone());
    daemon.wait_for("the missed change delivered", || subscriber.hits("POST").len() == 1);
    assert!(String::from_utf8_lossy(&subscriber.hits("POST")[0].body).contains("停机时写的"));
    publish(&daemon, "up.md", "重启之后");
    daemon.wait_for("the next change", || subscriber.hits("POST").len() == 2);
    assert!(!happens_within(Duration::from_secs(1), || subscriber.hits("POST").len() > 2));
    drop(daemon);

    // A restart with nothing changed delivers nothing.
    let daemon = start_in(dir.path(), "");
    assert!(!happens_within(Duration::from_secs(2), || subscriber.hits("POST").len() > 2));
    drop(daemon);
}

/// A ping's topics, and the site feed crier served when it arrived.
type Ping = (Vec<String>, Vec<u8>);

#[test]
fn external_hubs_are_pinged_for_changed_topics_after_they_are_served() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("posts")).unwrap();
    fs::write(dir.path().join("posts/a.md"), post("A", "2021-12-01 09:00 +0800", "caijing")).unwrap();
    fs::write(dir.path().join("posts/b.md"), post("B", "2021-12-02 09:00 +0800", "engineering")).unwrap();
    // The stub hub: a subscriber-like server whose POSTs are pings.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let hub_address = listener.local_addr().unwrap().to_string();
    let pings: Arc<Mutex<Vec<Ping>>> = Arc::default();
    let crier: Arc<Mutex<Option<String>>> = Arc::default();
    let failures = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    {
        let (pings, crier, failures) = (pings.clone(), crier.clone(), failures.clone());
        std::thread::spawn(move || {
            for mut stream in listener.incoming().map_while(Result::ok) {
                let Some(hit) = read_request(&mut stream) else { continue };
                let urls: Vec<String> = url::form_urlencoded::parse(&hit.body)
                    .filter(|(k, _)| k == "hub.url")
                    .map(|(_, v)| v.into_owned())
                    .collect();
                assert!(url::form_urlencoded::parse(&hit.body).any(|(k, v)| k == "hub.mode" && v == "publish"));
                let served = crier
                    .lock()
                    .unwrap()
                    .as_ref()
                    .map(|a: &String| common::get(a, "/feed.rss").body)
                    .unwrap_or_default();
                pings.lock().unwrap().push((urls, served));
                let fail = failures.fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1)).is_ok();
                let status = if fail { "500 Internal Server Error" } else { "204 No Content" };
                let _ = stream.write_all(format!("HTTP/1.1 {status}\r\nConnection: close\r\n\r\n").as_bytes());
            }
        });
    }
    let config = format!("[websub]\nhubs = [\"http://{hub_address}/\"]\n");
    let mut daemon = start_in(dir.path(), &config);
    *crier.lock().unwrap() = Some(daemon.address.clone());
    assert!(daemon.get("/feed.rss", &[]).header("link").contains(&hub_address));
    // A new feeds folder: the first publish changed every topic.
    assert!(poll(|| pings.lock().unwrap().len() == 1), "no ping for the first publish");
    assert_eq!(pings.lock().unwrap()[0].0.len(), 3 * 3, "every topic: the site and two categories, three formats each");
    let first = 1;
    fs::write(dir.path().join("posts/c.md"), post("新消息", "2022-01-05 08:00 +0800", "caijing")).unwrap();
    assert!(poll(|| pings.lock().unwrap().len() > first), "no ping");
    let (urls, served) = pings.lock().unwrap().last().cloned().unwrap();
    let mut expected: Vec<String> = ["feed", "categories/caijing"]
        .iter()
        .flat_map(|stem| ["rss", "atom", "json"].map(|ext| format!("{SITE}{stem}.{ext}")))
        .collect();
    expected.sort();
    let mut urls_sorted = urls.clone();
    urls_sorted.sort();
    assert_eq!(urls_sorted, expected, "exactly the changed topics (engineering did not change)");
    assert!(String::from_utf8_lossy(&served).contains("新消息"), "the ping came after the new bytes were served");
    assert!(!happens_within(Duration::from_secs(1), || pings.lock().unwrap().len() > first + 1), "one ping per change");

    // A failed ping is tried again, with the same topics.
    failures.store(1, std::sync::atomic::Ordering::SeqCst);
    fs::write(dir.path().join("posts/d.md"), post("再来", "2022-01-06 08:00 +0800", "engineering")).unwrap();
    assert!(poll(|| pings.lock().unwrap().len() == first + 3), "no retry: {}", pings.lock().unwrap().len());
    let (failed, retried) = {
        let pings = pings.lock().unwrap();
        (pings[first + 1].0.clone(), pings[first + 2].0.clone())
    };
    assert_eq!(failed, retried);
    assert!(failed.iter().any(|t| t.ends_with("categories/engineering.rss")), "{failed:?}");

    // A restart with nothing changed pings nothing.
    daemon.terminate();
    let mut daemon = start_in(dir.path(), &config);
    *crier.lock().unwrap() = Some(daemon.address.clone());
    assert!(
        !happens_within(Duration::from_secs(2), || pings.lock().unwrap().len() > first + 3),
        "pinged unchanged feeds"
    );

    // Nor does a start without a scan index (another configuration: a child process publishes)
    // that leaves the feeds' bytes as they were.
    daemon.terminate();
    let daemon = start_in(dir.path(), &format!("post_time_budget_ms = 4000\n{config}"));
    daemon.log.wait_for_line("starting from its scan index");
    *crier.lock().unwrap() = Some(daemon.address.clone());
    assert!(
        !happens_within(Duration::from_secs(2), || pings.lock().unwrap().len() > first + 3),
        "pinged unchanged feeds after a first publish"
    );
}

#[test]
fn a_slow_host_does_not_delay_deliveries_to_others() {
    let (_dir, daemon) = start("");
    // Slow callbacks on 127.0.0.1 take 5 s to answer a delivery; the fast one is on 127.0.0.2.
    let fast_arrivals: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let mut hosts = Vec::new();
    for (ip, slow) in [("127.0.0.1", true), ("127.0.0.2", false)] {
        let listener = TcpListener::bind(format!("{ip}:0")).unwrap();
        hosts.push(listener.local_addr().unwrap().to_string());
        let arrivals = fast_arrivals.clone();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().map_while(Result::ok) {
                let arrivals = arrivals.clone();
                std::thread::spawn(move || {
                    let Some(hit) = read_request(&mut stream) else { return };
                    let body = hit.query("hub.challenge").unwrap_or_default();
                    if hit.method == "POST" && slow {
                        std::thread::sleep(Duration::from_secs(5));
                    } else if hit.method == "POST" {
                        arrivals.lock().unwrap().push(Instant::now());
                    }
                    let head =
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(body.as_bytes());
                });
            }
        });
    }
    // More slow subscribers than the hub sends to at once, all on one topic.
    let topic = format!("{SITE}feed.rss");
    for i in 0..130 {
        let callback = format!("http://{}/slow{i}", hosts[0]);
        assert_eq!(
            hub_request(&daemon, &[("hub.mode", "subscribe"), ("hub.topic", &topic), ("hub.callback", &callback)])
                .status,
            202
        );
    }
    subscribe(&daemon, &topic, &format!("http://{}/fast", hosts[1]), &[]);
    daemon.wait_for("every subscription", || daemon.log_lines("websub: subscribed") == 131);
    let saved = Instant::now();
    publish(&daemon, "new.md", "慢与快");
    daemon.wait_for("the fast delivery", || !fast_arrivals.lock().unwrap().is_empty());
    let took = fast_arrivals.lock().unwrap()[0] - saved;
    assert!(took < Duration::from_secs(4), "the fast callback waited {took:?} behind the slow host");
}
