//! The `crier` command: parses flags, sets up logging, runs the library, maps errors to exit codes.
#![forbid(unsafe_code)]
#![warn(clippy::too_many_lines)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crier::build::{self, BuildError};
use crier::config::{Config, ConfigError, Overrides};
use crier::daemon::{self, ServeError};
use crier::feeds_dir::FeedsDir;

/// Publishes RSS 2.0, Atom 1.0 and JSON Feed from a folder of post files.
#[derive(Parser)]
#[command(name = "crier", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log level: error, warn, info, debug or trace, or a RUST_LOG-style filter [default: RUST_LOG, else info]
    #[arg(long, global = true, value_name = "LEVEL")]
    log_level: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Publish every feed once into the feeds folder.
    ///
    /// Exit status: 0 when every post was published, 1 when some were skipped (the rest are
    /// still published), 2 on a configuration error, 3 when the feeds could not be written.
    Build {
        #[command(flatten)]
        common: Common,
        /// Read every post and make every document, ignoring the scan index in `state_dir`
        #[arg(long)]
        full: bool,
    },
    /// Read every post and report each problem as `file:line: message`; write nothing.
    ///
    /// Exit status: 0 when there is no problem, 1 when there is any error or warning,
    /// 2 on a configuration error.
    Check(Common),
    /// Publish every feed, then keep them current as posts change and serve them over HTTP.
    ///
    /// Stops gracefully on SIGTERM or SIGINT (exit status 0); exit status 2 on a configuration
    /// error or when the address cannot be bound.
    Serve {
        #[command(flatten)]
        common: Common,
        /// Address to listen on (overrides `listen`; default 127.0.0.1:8080)
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Print each feed's subscribers (by source), requests and 304 share, and the pollers that
    /// never revalidate or poll faster than the feed's ttl, from the state `crier serve` keeps.
    ///
    /// Exit status: 0, or 2 on a configuration error or when the state cannot be read.
    Stats(Common),
}

#[derive(Args, Clone)]
struct Common {
    /// Configuration file [default: config/crier.toml when it exists, unless --jekyll is given]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// A Jekyll site: its _config.yml, _posts and _data/authors.yml; Jekyll's links, ids and dates
    #[arg(long, value_name = "SITE")]
    jekyll: Option<PathBuf>,
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
    fn load(&self, listen: Option<String>) -> Result<Config, ConfigError> {
        // A Jekyll site needs no crier.toml: the one in the working folder may be another site's.
        let default = PathBuf::from("config/crier.toml");
        let default = (self.jekyll.is_none() && default.is_file()).then_some(default);
        let path = self.config.clone().or(default);
        let overrides = Overrides {
            jekyll: self.jekyll.clone(),
            posts: self.posts.clone(),
            feeds: self.feeds.clone(),
            base_url: self.base_url.clone(),
            listen,
        };
        Config::load(path.as_deref(), &overrides)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(error) = init_logging(cli.log_level.as_deref()) {
        eprintln!("crier: {error}");
        return ExitCode::from(2);
    }
    let (common, listen) = match &cli.command {
        Command::Build { common, .. } | Command::Check(common) | Command::Stats(common) => (common, None),
        Command::Serve { common, listen } => (common, listen.clone()),
    };
    let config = match common.load(listen) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("crier: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Build { full, .. } => run_build(&config, &FeedsDir::new(&config), full, build::Stale::Remove, true),
        Command::Check(_) => run_check(&config),
        Command::Stats(_) => run_stats(&config),
        // The child process of a start without a scan index (see crier::daemon::first_publish).
        Command::Serve { .. } if std::env::var_os(daemon::first_publish::ENV).is_some() => first_publish_only(&config),
        Command::Serve { ref common, ref listen } => {
            let (common, listen) = (common.clone(), listen.clone());
            run_serve(config, move || common.load(listen.clone()))
        }
    }
}

/// Logs go to stderr: human-readable by default; under journald (`JOURNAL_STREAM`) without
/// timestamps of their own and with syslog priority prefixes, so `journalctl -p err` works.
fn init_logging(level: Option<&str>) -> Result<(), String> {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(level) => EnvFilter::try_new(level)
            .map_err(|e| format!("--log-level {level:?}: {e}; use error, warn, info, debug or trace"))?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.with_ansi(false).event_format(JournalFormat).init();
    } else {
        builder.with_target(false).init();
    }
    Ok(())
}

/// One line per event, `<priority>message`, as systemd's journal reads stderr.
struct JournalFormat;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for JournalFormat
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let priority = match *event.metadata().level() {
            tracing::Level::ERROR => 3,
            tracing::Level::WARN => 4,
            tracing::Level::INFO => 6,
            tracing::Level::DEBUG | tracing::Level::TRACE => 7,
        };
        write!(writer, "<{priority}>")?;
        // The access log is told apart by its target: `journalctl -u crier -g '^crier::access'`.
        if event.metadata().target() == "crier::access" {
            write!(writer, "crier::access: ")?;
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

fn run_serve(config: Config, reload: impl Fn() -> Result<Config, ConfigError> + Send + Sync + 'static) -> ExitCode {
    match daemon::run(config, reload, daemon::first_publish::this_program()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("crier: {error}");
            match error {
                ServeError::Listen { .. } | ServeError::MetricsListen { .. } => ExitCode::from(2),
                ServeError::Runtime(_) | ServeError::Signals(_) | ServeError::Failed(_) => ExitCode::from(1),
            }
        }
    }
}

/// Exit status 2 for a missing posts folder (a configuration error), 3 when the feeds could not
/// be written.
fn build_failed(error: &BuildError) -> ExitCode {
    eprintln!("crier: {error}");
    match error {
        BuildError::NoPostsFolder(_) => ExitCode::from(2),
        BuildError::Write(_) => ExitCode::from(3),
    }
}

/// The child process of a start without a scan index, or of a reload (see
/// `crier::daemon::first_publish`): it ends with its parent, writes where its parent says (the
/// feeds folder, or one beside it that its parent swaps in), and leaves stale documents to it.
fn first_publish_only(config: &Config) -> ExitCode {
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM));
    let feeds = match std::env::var_os(daemon::first_publish::INTO_ENV) {
        Some(folder) => FeedsDir::at(folder, config.compression),
        None => FeedsDir::new(config),
    };
    // Its bad posts are not logged here: crier's first step reads them again (the scan index does
    // not count them as seen) and logs each once, with what becomes of it.
    run_build(config, &feeds, false, build::Stale::Keep, false)
}

/// `crier build` into `feeds`; `log_errors` says whether the bad posts are logged (each with
/// file and line).
fn run_build(config: &Config, feeds: &FeedsDir, full: bool, stale: build::Stale, log_errors: bool) -> ExitCode {
    let report = match build::build(config, feeds, chrono::Utc::now(), full, stale) {
        Ok(report) => report,
        Err(error) => return build_failed(&error),
    };
    for (path, warning) in &report.warnings {
        tracing::warn!("{}:{}: {}", path.display(), warning.line, warning.message);
    }
    if log_errors {
        for error in &report.errors {
            tracing::error!("{error}; the post is skipped");
        }
    }
    println!("{report}");
    if report.errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

fn run_stats(config: &Config) -> ExitCode {
    let path = config.state_dir.join(crier::state::FILE_NAME);
    if !path.is_file() {
        eprintln!("crier stats: no state at {}; `crier serve` keeps it there once it has run", path.display());
        return ExitCode::from(2);
    }
    let saved = crier::state::State::open(&config.state_dir).and_then(|state| state.audience());
    match saved {
        Ok(saved) => {
            let now = crier::state::unix_seconds(std::time::SystemTime::now());
            let report = crier::audience::Audience::from_saved(saved).report(now);
            print!("{}", crier::audience::page::table(&report));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("crier stats: {error}");
            ExitCode::from(2)
        }
    }
}

fn run_check(config: &Config) -> ExitCode {
    let report = match build::check(config) {
        Ok(report) => report,
        Err(error) => return build_failed(&error),
    };
    for problem in &report.problems {
        println!("{problem}");
    }
    eprintln!("crier check: {} posts read, {} errors, {} warnings", report.read, report.errors, report.warnings);
    if report.problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) }
}
