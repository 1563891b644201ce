//! crier under systemd's protocols, without systemd: a notify socket made by the test, socket
//! activation (by a small helper that hands over a listener the way systemd does, and, as an
//! interop test, through the real `systemd-socket-activate`), SIGHUP reloads, journald-style logs.

mod common;

use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{CRIER, Daemon, Guard, Log, get, interop, require_tool, signal, wait_exit};

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

#[test]
fn notify_socket_sees_ready_status_watchdog_reload_and_stopping_in_order() {
    let dir = site();
    let (socket_path, messages) = notify_listener(dir.path());
    // Not waiting for /healthz: readiness is what this test observes.
    let mut daemon = Daemon::spawn(dir.path(), |command| {
        command.env("NOTIFY_SOCKET", &socket_path).env("WATCHDOG_USEC", "300000");
    });
    let (log, address) = (daemon.log.clone(), daemon.address.clone());
    let count = |needle: &str| messages.lock().unwrap().iter().filter(|(_, m)| m.contains(needle)).count();

    log.wait_for("READY=1", || count("READY=1") == 1);
    let ready = messages.lock().unwrap().iter().map(|(_, m)| m.clone()).find(|m| m.contains("READY=1")).unwrap();
    assert!(ready.contains("STATUS=1 posts in 2 feeds"), "{ready}");
    // No scan index yet: a child process made the first publish, and said so before READY=1.
    let first = messages.lock().unwrap()[0].1.clone();
    assert!(first.starts_with("STATUS=publishing every post in a child process"), "{first}");
    assert_eq!(get(&address, "/healthz").status, 200, "ready means serving");
    log.wait_for("watchdog pings", || count("WATCHDOG=1") >= 3);

    // A good configuration: RELOADING=1 with the monotonic time, then READY=1 again.
    write_config(dir.path(), "After");
    daemon.signal("HUP");
    log.wait_for("the reload", || count("READY=1") == 2);
    let reloading =
        messages.lock().unwrap().iter().map(|(_, m)| m.clone()).find(|m| m.contains("RELOADING=1")).unwrap();
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    log.wait_for("the new title", || get(&address, "/feed.rss").text().contains("<title>After</title>"));

    // A bad configuration: one clear line, no reload, the old configuration keeps running.
    fs::write(dir.path().join("crier.toml"), "posts = \"posts\"\ntitel = \"typo\"\n").unwrap();
    daemon.signal("HUP");
    let rejection = log.wait_for_line("reload rejected");
    assert!(rejection.contains("titel"), "{rejection}");
    assert_eq!(count("RELOADING=1"), 1);
    assert!(get(&address, "/feed.rss").text().contains("<title>After</title>"));

    assert_eq!(daemon.terminate().code(), Some(0));
    log.wait_for("STOPPING=1", || count("STOPPING=1") == 1);

    // The order: READY, then status and pings, RELOADING, READY, STOPPING last.
    let all: Vec<String> = messages.lock().unwrap().iter().map(|(_, m)| m.clone()).collect();
    let position = |needle: &str| all.iter().position(|m| m.contains(needle)).unwrap();
    let last_ready = all.iter().rposition(|m| m.contains("READY=1")).unwrap();
    assert!(position("READY=1") < position("WATCHDOG=1"));
    assert!(position("READY=1") < position("RELOADING=1"));
    assert!(position("RELOADING=1") < last_ready);
    assert!(last_ready < position("STOPPING=1"));
    assert!(all.iter().any(|m| m.starts_with("STATUS=") && !m.contains("READY")), "status updates: {all:?}");
}

/// Hands a listening socket to a program the way systemd does: binds 127.0.0.1 on a port the
/// kernel picks, reports the port on stdout, moves the socket to fd 3, sets `LISTEN_FDS=1` and
/// `LISTEN_PID` to its own pid, and replaces itself with the program (so the pid matches).
const SOCKET_HANDOVER: &str = r#"
import os, socket, sys
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.bind(("127.0.0.1", 0))
listener.listen(64)
print(listener.getsockname()[1], flush=True)
if listener.fileno() != 3:
    os.dup2(listener.fileno(), 3)
    listener.close()
os.set_inheritable(3, True)
env = dict(os.environ, LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
env.pop("LISTEN_FDNAMES", None)
os.execve(sys.argv[1], sys.argv[1:], env)
"#;

#[test]
fn socket_activation_serves_on_the_passed_socket() {
    let dir = site();
    let mut child = Command::new("python3")
        .current_dir(dir.path())
        .args(["-c", SOCKET_HANDOVER, CRIER, "serve", "--config", "crier.toml"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map(Guard)
        .unwrap();
    // The port the helper bound; crier inherits the same stdout but writes nothing to it.
    let mut port = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut port).unwrap();
    let given = format!("127.0.0.1:{}", port.trim());
    let daemon = Daemon::adopt(child, dir.path());
    assert_eq!(daemon.address, given, "crier serves on the socket it was given, not one of its own");
    let response = get(&given, "/feed.rss");
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(response.text().contains("第一篇"), "{}", response.text());
}

#[test]
fn systemd_socket_activate_starts_crier_on_its_socket() {
    if !interop("crier under systemd-socket-activate serves on the passed socket") {
        return;
    }
    require_tool("systemd-socket-activate", &["--version"], "apt-get install systemd");
    let dir = site();
    // systemd-socket-activate takes no port 0: pick a free port, and pick again if another
    // process takes it in between.
    let mut attempts = 0;
    let (mut child, log, port) = loop {
        attempts += 1;
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = Command::new("systemd-socket-activate")
            .current_dir(dir.path())
            .args(["-l", &format!("127.0.0.1:{port}"), CRIER, "serve", "--config", "crier.toml"])
            .stderr(Stdio::piped())
            .spawn()
            .map(Guard)
            .unwrap();
        let log = Log::collect(&mut child);
        log.wait_for("systemd-socket-activate to listen or fail", || {
            log.count("Listening on") > 0 || child.try_wait().unwrap().is_some()
        });
        if log.count("Listening on") > 0 {
            break (child, log, port);
        }
        assert!(attempts < 5 && log.count("in use") > 0, "systemd-socket-activate failed:\n{}", log.text());
    };
    // The first connection starts crier, which serves it on the socket it was given.
    let response = get(&format!("127.0.0.1:{port}"), "/feed.rss");
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(response.text().contains("第一篇"));
    let served = log.wait_for_address();
    assert_eq!(served, format!("127.0.0.1:{port}"), "crier did not bind a socket of its own");
    signal(child.id(), "TERM");
    assert_eq!(wait_exit(&mut child).code(), Some(0));
}

#[test]
fn journald_lines_carry_priorities_and_no_timestamps() {
    let dir = site();
    fs::write(dir.path().join("posts/bad.md"), "no front matter\n").unwrap();
    let out = Command::new(CRIER)
        .current_dir(dir.path())
        .args(["build", "--config", "crier.toml"])
        .env("JOURNAL_STREAM", "8:12345")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let error = stderr.lines().find(|l| l.contains("bad.md")).unwrap_or_else(|| panic!("{stderr}"));
    assert!(error.starts_with("<3>/") && error.contains("/posts/bad.md:1: no front matter"), "{error}");
    assert!(!stderr.contains("\u{1b}["), "no colours for the journal");

    let out = Command::new(CRIER)
        .current_dir(dir.path())
        .args(["build", "--config", "crier.toml", "--log-level", "error"])
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.md"), "errors still shown at --log-level error");
    let out = Command::new(CRIER)
        .current_dir(dir.path())
        .args(["build", "--config", "crier.toml", "--log-level", "nonsense=="])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// The messages sent to a notify socket, each with when it came.
type Messages = Arc<Mutex<Vec<(Instant, String)>>>;

/// A notify socket in `dir`, and every message crier sends to it.
fn notify_listener(dir: &Path) -> (PathBuf, Messages) {
    let path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let messages = Arc::new(Mutex::new(Vec::new()));
    let sink = messages.clone();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        loop {
            match socket.recv(&mut buffer) {
                Ok(n) => {
                    sink.lock().unwrap().push((Instant::now(), String::from_utf8_lossy(&buffer[..n]).into_owned()))
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => break,
            }
        }
    });
    (path, messages)
}

/// The processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let stats =
        fs::read_dir("/proc").unwrap().filter_map(|entry| fs::read_to_string(entry.ok()?.path().join("stat")).ok());
    // `pid (comm) state ppid ...`: the fields after the command's closing parenthesis.
    let parent = |stat: &str| stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse::<u32>().ok();
    stats.filter(|stat| parent(stat) == Some(pid)).filter_map(|stat| stat.split(' ').next()?.parse().ok()).collect()
}

#[test]
fn a_stop_during_a_first_publish_in_a_child_process_ends_both_at_once() {
    // Only crier is told (as by `kill`), or the child first and crier a moment later (as systemd
    // tells every process of the unit, whose signals may come in either order).
    for child_too in [false, true] {
        let dir = site();
        let config = fs::read_to_string(dir.path().join("crier.toml")).unwrap();
        fs::write(dir.path().join("crier.toml"), config + "post_time_budget_ms = 600000\n").unwrap();
        fs::write(dir.path().join("posts/slow.md"), common::slow_post()).unwrap();
        let mut daemon = Daemon::spawn(dir.path(), |_| {});
        daemon.log.wait_for_line("publishing every post in a child process");
        let mut children = Vec::new();
        daemon.log.wait_for("the child process", || {
            children = children_of(daemon.child.id());
            !children.is_empty()
        });
        if child_too {
            signal(children[0], "TERM");
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(daemon.terminate().code(), Some(0));
        assert!(!PathBuf::from("/proc").join(children[0].to_string()).exists(), "the child process is still there");
        assert!(!dir.path().join("feeds/feed.rss").exists(), "the first publish was not finished, here or there");
        assert!(daemon.log.find("publishing in this process").is_none(), "{}", daemon.log.text());
    }
}

#[test]
fn a_post_over_its_time_budget_neither_stalls_publishing_nor_starves_the_watchdog() {
    let dir = site();
    let config = fs::read_to_string(dir.path().join("crier.toml")).unwrap();
    fs::write(dir.path().join("crier.toml"), config + "post_time_budget_ms = 1000\n").unwrap();
    let (socket_path, messages) = notify_listener(dir.path());
    // The watchdog interval is 2 s: pings stop if the publisher shows no progress for 2 s.
    let mut daemon = Daemon::spawn(dir.path(), |command| {
        command.env("NOTIFY_SOCKET", &socket_path).env("WATCHDOG_USEC", "2000000");
    });
    let (log, address) = (daemon.log.clone(), daemon.address.clone());
    let pings = || -> Vec<Instant> {
        messages.lock().unwrap().iter().filter(|(_, m)| m.contains("WATCHDOG=1")).map(|(t, _)| *t).collect()
    };
    log.wait_for("watchdog pings", || pings().len() >= 2);

    // A post that takes this (unoptimized) build many seconds to render, and a good one.
    fs::write(dir.path().join("posts/slow.md"), common::slow_post()).unwrap();
    fs::write(dir.path().join("posts/b.md"), "---\ntitle: 第二篇\ndate: 2022-01-02 10:00:00 +0800\n---\n<p>好。</p>\n")
        .unwrap();
    let since = Instant::now();
    let skipped = log.wait_for_line("post_time_budget_ms");
    assert!(skipped.contains("slow.md"), "the error names the file: {skipped}");
    log.wait_for("the good post", || get(&address, "/feed.rss").text().contains("第二篇"));
    std::thread::sleep(Duration::from_secs(3));
    let after: Vec<_> = pings().into_iter().filter(|t| *t > since).collect();
    let longest = after.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(longest < Duration::from_millis(1900), "the watchdog went {longest:?} without a ping: {after:?}");
    assert!(daemon.get("/feed.rss", &[]).text().contains("第一篇"));
    assert_eq!(daemon.terminate().code(), Some(0));
}
