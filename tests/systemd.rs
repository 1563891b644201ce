//! crier under systemd's protocols, without systemd: a notify socket made by the test, socket
//! activation through `systemd-socket-activate`, SIGHUP reloads, journald-style logs.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(10);

/// A child process that is killed if the test fails before it exits.
struct Guard(Child);

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

fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("posts")).unwrap();
    fs::write(
        dir.path().join("posts/a.md"),
        "---\ntitle: 第一篇\ndate: 2021-12-23 16:34:36 +0800\ncategories: news\n---\n<p>正文。</p>\n",
    )
    .unwrap();
    write_config(dir.path(), "Before");
    dir
}

fn write_config(dir: &Path, title: &str) {
    let text = format!(
        "posts = \"posts\"\nfeeds = \"feeds\"\nbase_url = \"https://news.example.com/\"\ntitle = \"{title}\"\nlisten = \"127.0.0.1:0\"\n"
    );
    fs::write(dir.join("crier.toml"), text).unwrap();
}

/// Collects the lines of a child's stderr.
fn collect(child: &mut Child) -> Arc<Mutex<Vec<String>>> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let lines = log.clone();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            lines.lock().unwrap().push(line);
        }
    });
    log
}

fn wait_for(what: &str, log: &Arc<Mutex<Vec<String>>>, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        if condition() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}; log:\n{}", log.lock().unwrap().join("\n"));
}

fn address(log: &Arc<Mutex<Vec<String>>>) -> String {
    let mut address = String::new();
    wait_for("the address", log, || {
        let lines = log.lock().unwrap();
        match lines.iter().find_map(|l| l.split("on http://").nth(1)) {
            Some(a) => {
                address = a.trim_end_matches('/').to_owned();
                true
            }
            None => false,
        }
    });
    address
}

fn get(address: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let status = raw.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0);
    (status, raw)
}

fn signal(child: &Child, name: &str) {
    assert!(Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status().unwrap().success());
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < DEADLINE, "crier did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn notify_socket_sees_ready_status_watchdog_reload_and_stopping_in_order() {
    let dir = site();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let messages = Arc::new(Mutex::new(Vec::<String>::new()));
    {
        let messages = messages.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            loop {
                match socket.recv(&mut buffer) {
                    Ok(n) => messages.lock().unwrap().push(String::from_utf8_lossy(&buffer[..n]).into_owned()),
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(_) => break,
                }
            }
        });
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_crier"))
        .current_dir(dir.path())
        .args(["serve", "--config", "crier.toml"])
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "300000")
        .stderr(Stdio::piped())
        .spawn()
        .map(Guard)
        .unwrap();
    let log = collect(&mut child);
    let address = address(&log);
    let count = |needle: &str| messages.lock().unwrap().iter().filter(|m| m.contains(needle)).count();

    wait_for("READY=1", &log, || count("READY=1") == 1);
    let ready = messages.lock().unwrap().iter().find(|m| m.contains("READY=1")).cloned().unwrap();
    assert!(ready.contains("STATUS=1 posts in 2 feeds"), "{ready}");
    assert_eq!(get(&address, "/healthz").0, 200, "ready means serving");
    wait_for("watchdog pings", &log, || count("WATCHDOG=1") >= 3);

    // A good configuration: RELOADING=1 with the monotonic time, then READY=1 again.
    write_config(dir.path(), "After");
    signal(&child, "HUP");
    wait_for("the reload", &log, || count("READY=1") == 2);
    let reloading = messages.lock().unwrap().iter().find(|m| m.contains("RELOADING=1")).cloned().unwrap();
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    wait_for("the new title", &log, || get(&address, "/feed.rss").1.contains("<title>After</title>"));

    // A bad configuration: one clear line, no reload, the old configuration keeps running.
    fs::write(dir.path().join("crier.toml"), "posts = \"posts\"\ntitel = \"typo\"\n").unwrap();
    signal(&child, "HUP");
    wait_for("the rejection", &log, || log.lock().unwrap().iter().any(|l| l.contains("reload rejected")));
    let rejection = log.lock().unwrap().iter().find(|l| l.contains("reload rejected")).cloned().unwrap();
    assert!(rejection.contains("titel"), "{rejection}");
    assert_eq!(count("RELOADING=1"), 1);
    assert!(get(&address, "/feed.rss").1.contains("<title>After</title>"));

    signal(&child, "TERM");
    assert_eq!(wait_exit(&mut child).code(), Some(0));
    wait_for("STOPPING=1", &log, || count("STOPPING=1") == 1);

    // The order: READY, then status and pings, RELOADING, READY, STOPPING last.
    let all = messages.lock().unwrap().clone();
    let position = |needle: &str| all.iter().position(|m| m.contains(needle)).unwrap();
    let last_ready = all.iter().rposition(|m| m.contains("READY=1")).unwrap();
    assert!(position("READY=1") < position("WATCHDOG=1"));
    assert!(position("READY=1") < position("RELOADING=1"));
    assert!(position("RELOADING=1") < last_ready);
    assert!(last_ready < position("STOPPING=1"));
    assert!(all.iter().any(|m| m.starts_with("STATUS=") && !m.contains("READY")), "status updates: {all:?}");
}

#[test]
fn socket_activation_serves_on_the_passed_socket() {
    let dir = site();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new("systemd-socket-activate")
        .current_dir(dir.path())
        .args(["-l", &format!("127.0.0.1:{port}"), env!("CARGO_BIN_EXE_crier"), "serve", "--config", "crier.toml"])
        .stderr(Stdio::piped())
        .spawn()
        .map(Guard)
        .expect("systemd-socket-activate (Debian's systemd package)");
    let log = collect(&mut child);
    wait_for("listening", &log, || log.lock().unwrap().iter().any(|l| l.contains("Listening on")));
    // The first connection starts crier, which serves it on the socket it was given.
    let (status, body) = get(&format!("127.0.0.1:{port}"), "/feed.rss");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("第一篇"));
    let served = address(&log);
    assert_eq!(served, format!("127.0.0.1:{port}"), "crier did not bind a socket of its own");
    signal(&child, "TERM");
    assert_eq!(wait_exit(&mut child).code(), Some(0));
}

#[test]
fn journald_lines_carry_priorities_and_no_timestamps() {
    let dir = site();
    fs::write(dir.path().join("posts/bad.md"), "no front matter\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_crier"))
        .current_dir(dir.path())
        .args(["build", "--config", "crier.toml"])
        .env("JOURNAL_STREAM", "8:12345")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let error = stderr.lines().find(|l| l.contains("bad.md")).unwrap_or_else(|| panic!("{stderr}"));
    assert!(error.starts_with("<3>/") && error.contains("/posts/bad.md:1: no front matter"), "{error}");
    assert!(!stderr.contains("\u{1b}["), "no colours for the journal");

    let out = Command::new(env!("CARGO_BIN_EXE_crier"))
        .current_dir(dir.path())
        .args(["build", "--config", "crier.toml", "--log-level", "error"])
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.md"), "errors still shown at --log-level error");
    let out = Command::new(env!("CARGO_BIN_EXE_crier"))
        .current_dir(dir.path())
        .args(["build", "--config", "crier.toml", "--log-level", "nonsense=="])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
