//! Crash consistency: `crier serve` killed with SIGKILL at random moments while posts churn, then
//! started again. Once it is ready, the feeds folder must equal a clean build of the same posts,
//! byte for byte, and hold no temporary files.

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{CRIER, Daemon, files_under, serve_config};

/// A small deterministic generator (xorshift), so a failure can be replayed.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % sides
    }
}

fn post(n: u64, edit: u64) -> String {
    format!(
        "---\ntitle: 第{n}篇 v{edit}\ndate: 2021-12-{:02} 10:{:02}:00 +0800\ncategories: c{}\ntags: t{}\n---\n<p>正文 {n} {edit}</p>\n",
        1 + n % 28,
        n % 60,
        n % 3,
        n % 5
    )
}

/// Writes, renames into place and deletes posts until told to stop.
fn churn(posts: PathBuf, stop: Arc<AtomicBool>, seed: u64) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut dice = Dice(seed);
        let mut edit = 0;
        while !stop.load(Ordering::Relaxed) {
            edit += 1;
            let n = dice.roll(40);
            let path = posts.join(format!("p{n}.md"));
            match dice.roll(4) {
                0 => {
                    let _ = fs::remove_file(&path);
                }
                1 => {
                    let _ = fs::write(&path, post(n, edit));
                }
                _ => {
                    let temp = posts.join(format!(".p{n}.tmp"));
                    if fs::write(&temp, post(n, edit)).is_ok() {
                        let _ = fs::rename(&temp, &path);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(1 + dice.roll(3)));
        }
    })
}

#[test]
fn killed_at_random_moments_the_restart_leaves_a_clean_build() {
    let dir = tempfile::tempdir().unwrap();
    let posts = dir.path().join("posts");
    fs::create_dir_all(&posts).unwrap();
    for n in 0..20 {
        fs::write(posts.join(format!("p{n}.md")), post(n, 0)).unwrap();
    }
    // No settling wait: files are read as soon as they are seen, so kills land mid-write often.
    fs::write(dir.path().join("crier.toml"), serve_config(dir.path(), "settle_ms = 0")).unwrap();
    let mut dice = Dice(0x9e37_79b9_7f4a_7c15);
    for round in 0..20 {
        let mut daemon = Daemon::spawn(dir.path(), |_| {});
        let stop = Arc::new(AtomicBool::new(false));
        let churner = churn(posts.clone(), stop.clone(), 1 + round);
        std::thread::sleep(Duration::from_millis(20 + dice.roll(300)));
        daemon.signal("KILL");
        daemon.wait_exit();
        stop.store(true, Ordering::Relaxed);
        churner.join().unwrap();
    }
    for leftover in fs::read_dir(&posts).unwrap().map(|e| e.unwrap().path()) {
        if leftover.file_name().unwrap().to_string_lossy().starts_with('.') {
            fs::remove_file(leftover).unwrap();
        }
    }
    // Started again on the posts as they are now: ready means the feeds folder is current.
    let mut daemon = Daemon::spawn(dir.path(), |_| {});
    daemon.wait_healthy();
    daemon.terminate();
    let served = files_under(&dir.path().join("feeds"));
    let temporary: Vec<&PathBuf> =
        served.keys().filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(".crier-")).collect();
    assert!(temporary.is_empty(), "temporary files left: {temporary:?}");
    let clean = dir.path().join("clean");
    let out = Command::new(CRIER)
        .current_dir(dir.path())
        .args(["build", "--config", "crier.toml", "--feeds"])
        .arg(&clean)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let clean = files_under(&clean);
    assert_eq!(served.keys().collect::<Vec<_>>(), clean.keys().collect::<Vec<_>>(), "the same documents");
    for (path, bytes) in &clean {
        assert!(served[path] == *bytes, "{} differs from a clean build", path.display());
    }
}
