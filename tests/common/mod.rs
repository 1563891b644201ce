//! The harness every integration test shares: fixture sites, `crier build`/`check` runs, a `crier
//! serve` launcher that reads its address from the log, raw HTTP on 127.0.0.1, deadline-bounded
//! waits, signals, and the gate for tests whose subject is a foreign program (`CRIER_INTEROP=1`).
//!
//! Each test file compiles this module on its own and uses a part of it, hence the allow below.
#![allow(dead_code)]

pub mod library;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How long any wait lasts before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// The crier binary under test.
pub const CRIER: &str = env!("CARGO_BIN_EXE_crier");

/// A post, dated 2022-01-01 with no category or tag, whose Markdown (nested emphasis, 4.8 MB)
/// takes this unoptimized build many seconds to render: it holds a step open, or runs into
/// `post_time_budget_ms`.
pub fn slow_post() -> String {
    format!("---\ntitle: slow\ndate: 2022-01-01 10:00:00 +0800\n---\n{}", "*a **b ***c ".repeat(400_000))
}

/// The repository root (the bundled sample site lives there).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Lossy UTF-8 of a command's output.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// ---------------------------------------------------------------------------------------------
// Interop gate

/// Whether to run a test whose point is a foreign program (feedparser, newsboat,
/// systemd-socket-activate). With `CRIER_INTEROP=1` it runs and a missing tool fails it; without,
/// one line says what was not run and the test returns.
pub fn interop(what: &str) -> bool {
    if std::env::var_os("CRIER_INTEROP").is_some_and(|v| v == "1") {
        return true;
    }
    // Straight to the process's stderr, past the test harness's capture, so the skip is visible.
    let line = format!("skipped: {what} (set CRIER_INTEROP=1)\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
    false
}

/// Panics unless `program --version`-style `args` run successfully: an interop test was asked for
/// and its tool is not installed.
pub fn require_tool(program: &str, args: &[&str], install: &str) {
    let out = Command::new(program).args(args).output();
    match out {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            let said = text(&out.stderr);
            let last = said.lines().last().unwrap_or("");
            panic!(
                "CRIER_INTEROP=1 but `{program} {}` failed ({last}); install: {install} (.ci/run does)",
                args.join(" ")
            )
        }
        Err(error) => panic!("CRIER_INTEROP=1 but `{program}` cannot run: {error}; install: {install} (.ci/run does)"),
    }
}

/// Python's feedparser, for interop tests.
pub fn require_feedparser() {
    require_tool("python3", &["-c", "import feedparser"], "pip install feedparser");
}

/// Reads every RSS and Atom document under a feeds folder with feedparser, failing on the first
/// that is not well-formed, has no entries, or has an entry without a date or with a link that
/// is not under the site.
const FEEDPARSER_CHECK: &str = r#"
import feedparser, pathlib, sys
root, site_url = pathlib.Path(sys.argv[1]), sys.argv[2]
count = 0
for path in sorted(list(root.rglob("*.rss")) + list(root.rglob("*.atom"))):
    d = feedparser.parse(str(path))
    if d.bozo:
        sys.exit(f"{path}: {d.bozo_exception}")
    if not d.entries:
        sys.exit(f"{path}: no entries")
    for e in d.entries:
        if not e.link.startswith(site_url):
            sys.exit(f"{path}: link {e.link}")
        if not e.get("published_parsed"):
            sys.exit(f"{path}: no date on {e.link}")
    count += 1
"#;

/// Runs [`FEEDPARSER_CHECK`] on `feeds`, then `then` (Python that may use `root` and `count`),
/// and returns what it printed; panics with what it said when a check fails.
pub fn feedparser_check(feeds: &Path, site_url: &str, then: &str) -> String {
    let script = format!("{FEEDPARSER_CHECK}{then}");
    let out = Command::new("python3").args(["-c", &script]).arg(feeds).arg(site_url).output().unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    stdout
}

// ---------------------------------------------------------------------------------------------
// Waiting

/// Polls `condition` every 20 ms until it holds or the deadline passes; says whether it held.
pub fn poll(mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if condition() {
            return true;
        }
        if start.elapsed() >= DEADLINE {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `condition` until it holds; panics naming `what` after the deadline.
pub fn wait_for(what: &str, condition: impl FnMut() -> bool) {
    assert!(poll(condition), "timed out waiting for {what}");
}

// ---------------------------------------------------------------------------------------------
// Processes

/// A child process that is killed if the test ends (or fails) before it exits.
pub struct Guard(pub Child);

impl std::ops::Deref for Guard {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Guard {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends signal `name` (`TERM`, `HUP`, …) to process `pid`.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill").args([&format!("-{name}"), &pid.to_string()]).status().unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

/// Waits (to the deadline) for `child` to exit.
pub fn wait_exit(child: &mut Child) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < DEADLINE, "process {} did not exit", child.id());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The lines a child writes to stderr, gathered by a thread as they come.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    /// Takes `child`'s piped stderr and gathers it.
    pub fn collect(child: &mut Child) -> Log {
        let log = Log::default();
        let lines = log.0.clone();
        let stderr = child.stderr.take().expect("stderr is piped");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        log
    }

    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    pub fn text(&self) -> String {
        self.lines().join("\n")
    }

    /// How many lines contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.0.lock().unwrap().iter().filter(|l| l.contains(needle)).count()
    }

    /// The first line containing `needle`.
    pub fn find(&self, needle: &str) -> Option<String> {
        self.0.lock().unwrap().iter().find(|l| l.contains(needle)).cloned()
    }

    /// The address in crier's `serving … on http://ADDR/` line, once logged.
    pub fn served_address(&self) -> Option<String> {
        let lines = self.0.lock().unwrap();
        lines
            .iter()
            .filter(|l| l.contains("serving "))
            .find_map(|l| l.split("on http://").nth(1))
            .map(|a| a.trim_end_matches('/').to_owned())
    }

    /// Polls `condition`; panics naming `what`, with the log, after the deadline.
    pub fn wait_for(&self, what: &str, condition: impl FnMut() -> bool) {
        assert!(poll(condition), "timed out waiting for {what}; log:\n{}", self.text());
    }

    /// Waits for a line containing `needle` and returns it.
    pub fn wait_for_line(&self, needle: &str) -> String {
        self.wait_for(&format!("a log line with `{needle}`"), || self.count(needle) > 0);
        self.find(needle).unwrap()
    }

    /// Waits for crier to say where it serves.
    pub fn wait_for_address(&self) -> String {
        self.wait_for("the address in the log", || self.served_address().is_some());
        self.served_address().unwrap()
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// Parses one complete response (head and body as read to the end of the connection).
    pub fn parse(raw: &[u8]) -> Response {
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete response head");
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Response { status, headers, body: raw[split + 4..].to_vec() }
    }

    /// A header's value (names in lower case), or "".
    pub fn header(&self, name: &str) -> &str {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).unwrap_or("")
    }

    pub fn text(&self) -> String {
        text(&self.body)
    }
}

/// One request on a new connection (`Connection: close`), read to the end.
pub fn request(address: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    send(address, method, path, headers, b"")
}

/// One request with a body (its `Content-Length` added when not empty), read to the end.
pub fn send(address: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let mut stream = TcpStream::connect(address).unwrap_or_else(|e| panic!("connect {address}: {e}"));
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    Response::parse(&raw)
}

pub fn get(address: &str, path: &str) -> Response {
    request(address, "GET", path, &[])
}

// ---------------------------------------------------------------------------------------------
// `crier serve`

/// A running `crier serve`: its log, the address it serves on; killed on drop.
pub struct Daemon {
    pub child: Guard,
    pub address: String,
    pub log: Log,
    pub dir: PathBuf,
}

/// A site configuration for `crier serve` with absolute paths under `dir`, on 127.0.0.1:0.
pub fn serve_config(dir: &Path, extra: &str) -> String {
    format!(
        "posts = \"{}\"\nfeeds = \"{}\"\nbase_url = \"https://news.example.com/\"\ntimezone = \"Asia/Shanghai\"\nlisten = \"127.0.0.1:0\"\n{extra}\n",
        dir.join("posts").display(),
        dir.join("feeds").display()
    )
}

impl Daemon {
    /// `crier serve` on the site in `dir` with [`serve_config`] plus `extra_config`, ready.
    pub fn start(dir: &Path, extra_config: &str) -> Daemon {
        Daemon::start_with(dir, &serve_config(dir, extra_config))
    }

    /// `crier serve` in `dir` (its working directory) with `crier.toml` holding `config_text`, ready.
    pub fn start_with(dir: &Path, config_text: &str) -> Daemon {
        fs::write(dir.join("crier.toml"), config_text).unwrap();
        let daemon = Daemon::spawn(dir, |_| {});
        daemon.wait_healthy();
        daemon
    }

    /// `crier serve --config crier.toml` in `dir`, with `configure` applied to the command (extra
    /// environment, say); returns once the address is logged, without waiting for readiness.
    pub fn spawn(dir: &Path, configure: impl FnOnce(&mut Command)) -> Daemon {
        let mut command = Command::new(CRIER);
        command
            .current_dir(dir)
            .args(["serve", "--config", "crier.toml"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        configure(&mut command);
        Daemon::adopt(command.spawn().map(Guard).unwrap(), dir)
    }

    /// A crier started some other way (through a socket-activation helper, say), its stderr piped.
    pub fn adopt(mut child: Guard, dir: &Path) -> Daemon {
        let log = Log::collect(&mut child);
        let address = log.wait_for_address();
        Daemon { child, address, log, dir: dir.to_owned() }
    }

    /// Waits for `/healthz` to answer 200.
    pub fn wait_healthy(&self) {
        self.wait_for("ready", || self.get("/healthz", &[]).status == 200);
    }

    pub fn posts(&self) -> PathBuf {
        self.dir.join("posts")
    }

    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        request(&self.address, method, path, headers)
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        request(&self.address, "GET", path, headers)
    }

    /// Polls `condition` until it holds; panics with the log after the deadline.
    pub fn wait_for(&self, what: &str, condition: impl FnMut() -> bool) {
        self.log.wait_for(what, condition)
    }

    /// How many log lines contain `needle`.
    pub fn log_lines(&self, needle: &str) -> usize {
        self.log.count(needle)
    }

    pub fn signal(&self, name: &str) {
        signal(self.child.id(), name);
    }

    /// Waits for the daemon to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        wait_exit(&mut self.child)
    }

    /// SIGTERM, then waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait_exit()
    }
}

// ---------------------------------------------------------------------------------------------
// `crier build` and `crier check`

/// A fixture site in a temporary folder: `posts/` and a `crier.toml`.
pub struct Site {
    pub dir: tempfile::TempDir,
}

impl Site {
    pub fn new(config: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("posts")).unwrap();
        fs::write(dir.path().join("crier.toml"), config).unwrap();
        Site { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a post file under `posts/`.
    pub fn write(&self, rel: &str, bytes: &[u8]) {
        let path = self.path("posts").join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }

    /// `crier COMMAND --config crier.toml` in the site's folder.
    pub fn crier(&self, command: &str) -> Output {
        self.crier_with(command, &[])
    }

    /// `crier COMMAND --config crier.toml ARGS...` in the site's folder.
    pub fn crier_with(&self, command: &str, args: &[&str]) -> Output {
        let mut crier = Command::new(CRIER);
        crier.current_dir(self.dir.path()).args([command, "--config", "crier.toml"]).args(args);
        crier.output().unwrap()
    }

    pub fn build(&self) -> Output {
        self.crier("build")
    }

    /// A document under `feeds/`.
    pub fn feed(&self, rel: &str) -> Vec<u8> {
        fs::read(self.path("feeds").join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    /// A document under `feeds/`, read by feed-rs.
    pub fn parsed(&self, rel: &str) -> feed_rs::model::Feed {
        feed_rs::parser::parse(&self.feed(rel)[..]).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    /// Every file under `feeds/`, with its bytes and modification time.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, (Vec<u8>, SystemTime)> {
        walkdir::WalkDir::new(self.path("feeds"))
            .into_iter()
            .map(Result::unwrap)
            .filter(|e| e.file_type().is_file())
            .map(|e| {
                let meta = e.metadata().unwrap();
                (e.path().to_owned(), (fs::read(e.path()).unwrap(), meta.modified().unwrap()))
            })
            .collect()
    }
}

/// Builds the bundled sample site (`posts/`, `config/crier.toml`) into `feeds`.
pub fn build_sample(feeds: &Path) -> Output {
    Command::new(CRIER)
        .current_dir(repo_root())
        .args(["build", "--config", "config/crier.toml", "--feeds"])
        .arg(feeds)
        .output()
        .unwrap()
}

/// Every file under `root`, by its path relative to `root`.
pub fn files_under(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| (e.path().strip_prefix(root).unwrap().to_owned(), fs::read(e.path()).unwrap()))
        .collect()
}
