//! The `crier` command: parses flags, sets up logging, runs the library, maps errors to exit codes.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use crier::config::{Config, Overrides};
use crier::generate;

// Feeds are built from many short-lived allocations on every core; mimalloc's per-thread heaps
// cut the build's allocator time and page faults compared with glibc's malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Publishes RSS 2.0, Atom 1.0 and JSON Feed from a folder of post files.
#[derive(Parser)]
#[command(name = "crier", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Publish every feed once into the feeds folder.
    ///
    /// Exit status: 0 when every post was published, 1 when some were skipped (the rest are
    /// still published), 2 on a configuration error, 3 when the feeds could not be written.
    Build(Common),
    /// Read every post and report each problem as `file:line: message`; write nothing.
    ///
    /// Exit status: 0 when there is no problem, 1 when there is any error or warning,
    /// 2 on a configuration error.
    Check(Common),
}

#[derive(Args)]
struct Common {
    /// Configuration file [default: config/crier.toml when it exists]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Folder of post files (overrides `posts`)
    #[arg(long, value_name = "DIR")]
    posts: Option<PathBuf>,
    /// Output folder (overrides `feeds`)
    #[arg(long, value_name = "DIR")]
    feeds: Option<PathBuf>,
    /// Public URL of the site (overrides `base_url`)
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
}

impl Common {
    fn load(&self) -> Result<Config, crier::config::ConfigError> {
        let default = PathBuf::from("config/crier.toml");
        let path = self.config.clone().or_else(|| default.is_file().then_some(default));
        let overrides = Overrides { posts: self.posts.clone(), feeds: self.feeds.clone(), base_url: self.base_url.clone() };
        Config::load(path.as_deref(), &overrides)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
    let (common, check) = match &cli.command {
        Command::Build(common) => (common, false),
        Command::Check(common) => (common, true),
    };
    let config = match common.load() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("crier: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    if check { run_check(&config) } else { run_build(&config) }
}

fn run_build(config: &Config) -> ExitCode {
    let report = match generate::build(config, chrono::Utc::now()) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("crier: {error:#}");
            return if config.posts.is_dir() { ExitCode::from(3) } else { ExitCode::from(2) };
        }
    };
    for (path, warning) in &report.warnings {
        tracing::warn!("{}:{}: {}", path.display(), warning.line, warning.message);
    }
    for error in &report.errors {
        tracing::error!("{error}; the post is skipped");
    }
    println!(
        "crier build: {} posts read: {} published, {} scheduled for later, {} drafts, {} skipped with errors, {} warnings",
        report.posts_read,
        report.published,
        report.scheduled,
        report.drafts,
        report.errors.len(),
        report.warnings.len()
    );
    println!(
        "  {} documents in {}: {} written, {} unchanged, {} removed; {:.2} s",
        report.feeds,
        config.feeds.display(),
        report.written,
        report.unchanged,
        report.removed,
        report.elapsed.as_secs_f64()
    );
    if report.errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

fn run_check(config: &Config) -> ExitCode {
    if !config.posts.is_dir() {
        eprintln!("crier: posts folder {} does not exist or is not a folder", config.posts.display());
        return ExitCode::from(2);
    }
    let scan = generate::scan(config, true);
    let mut problems: Vec<String> = scan.errors.iter().map(|e| format!("{e} (error)")).collect();
    problems.extend(
        scan.warnings().map(|(path, w)| format!("{}:{}: {} (warning)", path.display(), w.line, w.message)),
    );
    problems.sort();
    for problem in &problems {
        println!("{problem}");
    }
    let read = scan.posts.len() + scan.drafts + scan.errors.len();
    eprintln!("crier check: {read} posts read, {} errors, {} warnings", scan.errors.len(), problems.len() - scan.errors.len());
    if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) }
}
