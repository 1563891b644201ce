//! The floor of a cold build: what any generator writing crier's output must spend, rendering
//! nothing. Reads every post file whole, then compresses (gzip and brotli, at crier's levels)
//! and writes (atomically, as crier does) every document a previous build made, in parallel on
//! every core.
//!
//!     cargo run --release --example floor -- POSTS BUILT_FEEDS OUT [GZIP_LEVEL BROTLI_QUALITY]
//!
//! BUILT_FEEDS is a feeds folder `crier build` filled (its documents are read into memory first,
//! untimed); OUT is emptied and written. Prints the seconds of each phase and their sum, then
//! the user and system CPU seconds they took.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use crier::config::Compression;
use crier::feeds_dir::{Encoded, FeedsDir};
use rayon::prelude::*;

fn files(root: &Path, keep: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    let entries = walkdir::WalkDir::new(root).into_iter().filter_map(Result::ok);
    entries.filter(|e| e.file_type().is_file() && keep(e.path())).map(|e| e.into_path()).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [posts, built, out] = [0, 1, 2].map(|i| PathBuf::from(args.get(i).expect("POSTS BUILT_FEEDS OUT")));
    let level = |i: usize, default: u32| args.get(i).map_or(default, |v| v.parse().expect("a number"));
    let levels = Compression { gzip: level(3, 3), brotli: level(4, 3) };
    let encoded = |p: &Path| p.extension().is_some_and(|e| e == "gz" || e == "br");
    let documents: Vec<(String, Vec<u8>)> = files(&built, |p| !encoded(p))
        .into_iter()
        .map(|p| (p.strip_prefix(&built).unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    let _ = std::fs::remove_dir_all(&out);

    let (started, cpu_before) = (Instant::now(), cpu_seconds());
    let post_files = files(&posts, |_| true);
    let read: usize = post_files.par_iter().map(|p| std::fs::read(p).map_or(0, |b| b.len())).sum();
    let reading = started.elapsed();

    let started = Instant::now();
    let feeds = FeedsDir::at(&out, levels);
    let now = SystemTime::now();
    let written: usize = documents
        .into_par_iter()
        .map(|(rel, bytes)| {
            let len = bytes.len();
            feeds.write(&rel, &Encoded::compress(bytes, levels, now)).expect("writable");
            len
        })
        .sum();
    let writing = started.elapsed();
    println!(
        "floor: read {} posts ({:.0} MB) {:.2} s; compressed and wrote {:.0} MB of documents (gzip {}, brotli {}) {:.2} s; total {:.2} s",
        post_files.len(),
        read as f64 / 1e6,
        reading.as_secs_f64(),
        written as f64 / 1e6,
        levels.gzip,
        levels.brotli,
        writing.as_secs_f64(),
        (reading + writing).as_secs_f64()
    );
    let (user, system) = cpu_seconds();
    println!("floor cpu: user {:.2} s, system {:.2} s", user - cpu_before.0, system - cpu_before.1);
}

/// This process's user and system CPU seconds so far (the documents' loading, untimed, is
/// left out by subtracting what was spent before the timed part).
fn cpu_seconds() -> (f64, f64) {
    let stat = procfs::process::Process::myself().and_then(|me| me.stat()).expect("/proc/self/stat");
    let tick = procfs::ticks_per_second() as f64;
    (stat.utime as f64 / tick, stat.stime as f64 / tick)
}
