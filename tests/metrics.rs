//! Knowing the audience, from the outside: `/metrics` and `/stats` on the admins' listener, the
//! access log, subscriber counts across a restart and `crier stats`; and, as an interop test, a
//! real Prometheus server scraping crier and `promtool check metrics` on what it serves.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{CRIER, Daemon, Guard, interop, request, require_tool, wait_for};

fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let posts = dir.path().join("posts");
    fs::create_dir_all(&posts).unwrap();
    let post = |title: &str, category: &str| {
        format!(
            "---\ntitle: \"{title}\"\ndate: 2021-12-23 16:34:36 +0800\ncategories: {category}\n---\n<p>{title} 正文。</p>\n"
        )
    };
    fs::write(posts.join("port.md"), post("港口新闻", "科技")).unwrap();
    fs::write(posts.join("rust.md"), post("Rust & feeds", "engineering")).unwrap();
    dir
}

const CONFIG: &str = "metrics_listen = \"127.0.0.1:0\"\naccess_log = true\nttl = 60";

/// The admins' address crier logged.
fn metrics_address(daemon: &Daemon) -> String {
    let line = daemon.log.wait_for_line("metrics on http://");
    line.split("metrics on http://").nth(1).unwrap().split('/').next().unwrap().to_owned()
}

/// The value of the sample whose line starts with `series` (name and labels), if any.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

const FEEDLY: &str = "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 12 subscribers; like FeedFetcher-Google)";
const INOREADER: &str =
    "Mozilla/5.0 (compatible; Inoreader/1.0; +http://www.inoreader.com/feed-fetcher; 34 subscribers; )";
const NEWSBOAT: &str = "newsboat/2.30.1 (Linux x86_64)";

/// Polls as aggregators and a reader do: returns how many feed requests were made.
fn poll_feeds(daemon: &Daemon) -> usize {
    let first = daemon.get("/feed.rss", &[("User-Agent", NEWSBOAT)]);
    assert_eq!(first.status, 200);
    let etag = first.header("etag").to_owned();
    let fresh = daemon.get("/feed.rss", &[("User-Agent", FEEDLY), ("If-None-Match", &etag)]);
    assert_eq!(fresh.status, 304);
    let atom = daemon.get("/feed.atom", &[("User-Agent", INOREADER), ("Accept-Encoding", "br")]);
    assert_eq!(atom.header("content-encoding"), "br");
    let category = daemon.get("/categories/科技.json", &[("User-Agent", FEEDLY)]);
    assert_eq!(category.status, 200, "{}", category.text());
    4
}

#[test]
fn metrics_stats_access_log_and_counts_across_a_restart() {
    let dir = site();
    let mut daemon = Daemon::start(dir.path(), CONFIG);
    let admin = metrics_address(&daemon);
    poll_feeds(&daemon);
    assert_eq!(daemon.get("/nothing-here.rss", &[("User-Agent", "x")]).status, 404);
    assert_eq!(daemon.get("/metrics", &[]).status, 404, "metrics are not on the public listener");

    let metrics = request(&admin, "GET", "/metrics", &[]);
    assert_eq!(metrics.status, 200);
    assert!(metrics.header("content-type").starts_with("text/plain; version=0.0.4"));
    let text = metrics.text();
    let requests = |labels: &str| sample(&text, &format!("crier_http_requests_total{{{labels}}}"));
    assert_eq!(requests("encoding=\"identity\",kind=\"feed\",status=\"200\""), Some(2.0), "{text}");
    assert_eq!(requests("encoding=\"identity\",kind=\"feed\",status=\"304\""), Some(1.0));
    assert_eq!(requests("encoding=\"br\",kind=\"feed\",status=\"200\""), Some(1.0));
    assert_eq!(requests("encoding=\"identity\",kind=\"other\",status=\"404\""), Some(2.0), "both 404s");
    assert_eq!(sample(&text, "crier_feed_subscribers{feed=\"feed\",source=\"Feedly\"}"), Some(12.0));
    assert_eq!(sample(&text, "crier_feed_subscribers{feed=\"feed\",source=\"Inoreader\"}"), Some(34.0));
    assert_eq!(sample(&text, "crier_feed_subscribers{feed=\"feed\",source=\"readers\"}"), Some(1.0));
    assert_eq!(sample(&text, "crier_feed_subscribers{feed=\"categories/科技\",source=\"Feedly\"}"), Some(12.0));
    assert_eq!(sample(&text, "crier_posts{state=\"published\"}"), Some(2.0));
    assert!(sample(&text, "crier_feeds").is_some_and(|feeds| feeds >= 3.0));
    assert!(sample(&text, "process_resident_memory_bytes").is_some_and(|rss| rss > 0.0));
    assert!(!text.contains("newsboat") && !text.contains("nothing-here"), "no User-Agent or path as a label");

    let stats = request(&admin, "GET", "/stats", &[]).text();
    assert!(stats.contains("<h2>feed — 47 subscribers</h2>"), "{stats}");
    assert!(stats.contains("<svg"));

    let log = daemon.log.text();
    assert!(log.contains("GET /feed.rss 304 0 ") && log.contains(&format!("{FEEDLY:?}")), "{log}");
    assert!(!log.contains("127.0.0.1 GET"), "no client address unless access_log_addresses");

    assert!(daemon.terminate().success());
    let stats = Command::new(CRIER).current_dir(dir.path()).args(["stats", "--config", "crier.toml"]).output().unwrap();
    assert!(stats.status.success(), "{}", String::from_utf8_lossy(&stats.stderr));
    let table = String::from_utf8(stats.stdout).unwrap();
    let row: Vec<&str> = table.lines().skip(1).find(|l| l.starts_with("feed ")).unwrap().split_whitespace().collect();
    assert_eq!(row[..4], ["feed", "47", "3", "33%"], "{table}");

    // After a restart, the counts go on from what was saved.
    let daemon = Daemon::start(dir.path(), &format!("{CONFIG}\naccess_log_addresses = true"));
    let admin = metrics_address(&daemon);
    let readers = |text: &str| sample(text, "crier_feed_subscribers{feed=\"feed\",source=\"readers\"}");
    let text = request(&admin, "GET", "/metrics", &[]).text();
    assert_eq!(sample(&text, "crier_feed_subscribers{feed=\"feed\",source=\"Inoreader\"}"), Some(34.0), "{text}");
    assert_eq!(readers(&text), Some(1.0), "the reader seen before the restart");
    daemon.get("/feed.rss", &[("User-Agent", NEWSBOAT)]);
    assert_eq!(readers(&request(&admin, "GET", "/metrics", &[]).text()), Some(1.0), "is the same reader");
    daemon.log.wait_for_line("127.0.0.1 GET /feed.rss 200");
}

/// A free port on 127.0.0.1 for a foreign server that cannot be told to pick one (a race with
/// other processes is possible, and unlikely).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_prometheus(dir: &Path, target: &str) -> (Guard, String) {
    let config = dir.join("prometheus.yml");
    let yaml = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: crier\n    static_configs:\n      - targets: ['{target}']\n"
    );
    fs::write(&config, yaml).unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address={address}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Guard)
        .expect("prometheus starts");
    (child, address)
}

/// The value of a PromQL query with one result, through Prometheus's HTTP API.
fn query(prometheus: &str, promql: &str) -> Option<f64> {
    let encoded: String = url_encode(promql);
    std::net::TcpStream::connect(prometheus).ok()?;
    let response = request(prometheus, "GET", &format!("/api/v1/query?query={encoded}"), &[]);
    let json: serde_json::Value = serde_json::from_slice(&response.body).ok()?;
    json["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn prometheus_scrapes_crier_and_promtool_accepts_the_metrics() {
    if !interop("Prometheus scraping crier, promtool check metrics") {
        return;
    }
    require_tool("prometheus", &["--version"], "apt-get install prometheus");
    require_tool("promtool", &["--version"], "apt-get install prometheus");
    let dir = site();
    let daemon = Daemon::start(dir.path(), CONFIG);
    let admin = metrics_address(&daemon);
    let made = poll_feeds(&daemon) + poll_feeds(&daemon);

    let exposition = request(&admin, "GET", "/metrics", &[]).body;
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut promtool.stdin.take().unwrap(), &exposition).unwrap();
    let checked = promtool.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&checked.stdout), String::from_utf8_lossy(&checked.stderr));
    assert!(checked.status.success() && said.trim().is_empty(), "promtool check metrics: {said}");

    let data = tempfile::tempdir().unwrap();
    let (_prometheus, address) = start_prometheus(data.path(), &admin);
    let feed_requests = "sum(crier_http_requests_total{kind=\"feed\"})";
    wait_for("Prometheus to scrape crier's feed requests", || query(&address, feed_requests) == Some(made as f64));
    assert_eq!(query(&address, "sum(crier_http_requests_total{kind=\"feed\",status=\"304\"})"), Some(2.0));
    assert_eq!(query(&address, "crier_feed_subscribers{feed=\"feed\",source=\"Inoreader\"}"), Some(34.0));
    assert_eq!(query(&address, "up{job=\"crier\"}"), Some(1.0));
}

/// Runs headless Chromium on `url` with `args` (`--dump-dom`, `--screenshot=...`); its stdout.
fn chromium(profile: &Path, url: &str, args: &[&str]) -> String {
    let output = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        .args(["--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .expect("chromium runs");
    assert!(output.status.success(), "chromium: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_stats_page_renders_in_headless_chromium() {
    if !interop("/stats in headless Chromium") {
        return;
    }
    require_tool("chromium", &["--version"], "apt-get install chromium");
    let dir = site();
    let daemon = Daemon::start(dir.path(), CONFIG);
    let admin = metrics_address(&daemon);
    poll_feeds(&daemon);
    for _ in 0..3 {
        // A poller that never revalidates, and asks again at once.
        assert_eq!(daemon.get("/categories/科技.rss", &[("User-Agent", "LazyFetcher/0.1")]).status, 200);
    }
    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{admin}/stats");
    let dom = chromium(profile.path(), &url, &["--dump-dom"]);
    assert!(dom.contains("<h2>feed — 47 subscribers</h2>"), "{dom}");
    assert!(dom.contains("<h2>categories/科技 — 13 subscribers</h2>"), "Feedly's 12 and one reader: {dom}");
    assert_eq!(dom.matches("<svg").count(), 2, "a chart per feed");
    assert_eq!(dom.matches("<g>").count(), 2 * 48, "48 hourly bars each");
    let pollers = dom.split("Pollers to fix").nth(1).expect("the pollers section");
    let row = "<td>LazyFetcher</td><td>1</td><td>1</td><td>3</td><td>100%</td><td>67%</td>";
    assert!(pollers.contains(row), "{pollers}");
    let shot = profile.path().join("stats.png");
    chromium(profile.path(), &url, &[&format!("--screenshot={}", shot.display()), "--window-size=800,1000"]);
    let png = fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{} bytes", png.len());
}

#[test]
fn a_thousand_junk_user_agents_leave_the_series_bounded() {
    let dir = site();
    let daemon = Daemon::start(dir.path(), CONFIG);
    let admin = metrics_address(&daemon);
    let feeds = ["/feed.rss", "/feed.atom", "/categories/科技.rss", "/categories/engineering.json"];
    for i in 0..1000 {
        let junk = format!("Junk{i} 阅读器 <script> {} subscribers; /path/{i}", 1 + i % 89);
        let response = daemon.get(feeds[i % feeds.len()], &[("User-Agent", &junk)]);
        assert_eq!(response.status, 200);
    }
    let text = request(&admin, "GET", "/metrics", &[]).text();
    let series: Vec<&str> = text.lines().filter(|l| l.starts_with("crier_feed_subscribers{")).collect();
    // 3 feeds; per feed at most the 10 largest sources site-wide, `other` and `readers`.
    assert!(series.len() <= 3 * 12, "{} series:\n{}", series.len(), series.join("\n"));
    assert!(series.iter().any(|l| l.contains("source=\"other\"")), "the rest are summed");
    assert!(!text.contains("<script>") && !text.contains("/path/"), "no User-Agent text beyond a product name");
    let stats = request(&admin, "GET", "/stats", &[]).text();
    assert!(!stats.contains("<script>"), "names are escaped on the page");
}
