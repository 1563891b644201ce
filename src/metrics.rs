//! crier's Prometheus metrics, in the text exposition format (0.0.4, what `promtool check
//! metrics` reads): requests by kind, status and encoding, their bytes and durations; publishes;
//! posts by state; feeds; write failures and rescans; WebSub; subscribers per feed; the process.
//!
//! Labels come from bounded sets only (a [`Kind`], a status code, a coding; feeds and sources
//! as [`crate::audience::Report::subscriber_series`] bounds them), never a path or a User-Agent.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::StatusCode;
use prometheus::core::{Collector, Desc, Describer};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::audience::Audience;
use crate::documents::Kind;
use crate::http::Coding;

/// Every metric crier exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    /// The request counters met so far, by kind, coding and status ([`STATUSES`]): a request
    /// then costs no hashing of labels.
    counted: Arc<[OnceLock<IntCounter>]>,
    /// Bytes and durations, by kind.
    by_kind: Arc<[(IntCounter, Histogram)]>,
    /// From a file event to the new bytes being served.
    pub publish: Histogram,
    posts: IntGaugeVec,
    feeds: IntGauge,
    pub write_failures: IntCounter,
    pub rescans: IntCounter,
    deliveries: IntCounterVec,
}

/// Registers `collector`; the names are crier's own and distinct, so this cannot fail.
fn register<C: Collector + Clone + 'static>(registry: &Registry, collector: C) -> C {
    registry.register(Box::new(collector.clone())).expect("metric names are distinct and valid");
    collector
}

fn counters(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(registry, IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric"))
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    register(registry, IntCounter::new(name, help).expect("a valid metric"))
}

fn histogram_opts(name: &str, help: &str, buckets: &[f64]) -> HistogramOpts {
    HistogramOpts::new(name, help).buckets(buckets.to_vec())
}

/// Bytes sent and durations of each kind of request, in [`Kind::ALL`]'s order.
fn by_kind(registry: &Registry, duration: HistogramOpts) -> Arc<[(IntCounter, Histogram)]> {
    let bytes = counters(registry, "crier_http_response_bytes_total", "Bytes of response bodies sent.", &["kind"]);
    let durations = register(registry, HistogramVec::new(duration, &["kind"]).expect("a valid metric"));
    Kind::ALL
        .iter()
        .map(|kind| (bytes.with_label_values(&[kind.label()]), durations.with_label_values(&[kind.label()])))
        .collect()
}

/// The statuses crier answers with (others are counted too, a little slower).
const STATUSES: [u16; 13] = [200, 301, 304, 400, 404, 405, 408, 410, 413, 414, 431, 500, 503];
/// How many content codings there are ([`Coding`]'s variants).
const CODINGS: usize = 3;

/// Request durations: a feed from memory takes tens of microseconds, one from a file more.
const REQUEST_BUCKETS: [f64; 10] = [0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1, 1.0];
/// Publish durations: the settle time of a file being written is part of them.
const PUBLISH_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

impl Metrics {
    /// The metrics, with subscriber counts from `audience` when it is kept.
    pub fn new(audience: Option<Arc<Audience>>) -> Metrics {
        let r = Registry::new();
        let duration = histogram_opts(
            "crier_http_request_duration_seconds",
            "Time from a request's head to its response.",
            &REQUEST_BUCKETS,
        );
        let publish = histogram_opts(
            "crier_publish_duration_seconds",
            "Time from a change in the posts folder to the new feeds being served.",
            &PUBLISH_BUCKETS,
        );
        let metrics = Metrics {
            requests: counters(
                &r,
                "crier_http_requests_total",
                "HTTP requests answered, by what they asked for, status and content coding.",
                &["kind", "status", "encoding"],
            ),
            counted: (0..Kind::ALL.len() * CODINGS * STATUSES.len()).map(|_| OnceLock::new()).collect(),
            by_kind: by_kind(&r, duration),
            publish: register(&r, Histogram::with_opts(publish).expect("a valid metric")),
            posts: register(
                &r,
                IntGaugeVec::new(Opts::new("crier_posts", "Posts, by state."), &["state"]).expect("a valid metric"),
            ),
            feeds: register(&r, IntGauge::new("crier_feeds", "Feeds published.").expect("a valid metric")),
            write_failures: counter(&r, "crier_feed_write_failures_total", "Writes to the feeds folder that failed."),
            rescans: counter(&r, "crier_watch_rescans_total", "Times the whole posts folder was read again."),
            deliveries: counters(
                &r,
                "crier_websub_deliveries_total",
                "WebSub content deliveries, by result.",
                &["result"],
            ),
            registry: r,
        };
        let info = IntGaugeVec::new(Opts::new("crier_build_info", "crier's version."), &["version"]);
        register(&metrics.registry, info.expect("a valid metric"))
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        register(&metrics.registry, Process::new());
        if let Some(audience) = audience {
            register(&metrics.registry, Subscribers::new(audience));
        }
        metrics
    }

    /// Counts one answered request.
    pub fn request(&self, kind: Kind, status: StatusCode, coding: Coding, bytes: u64, elapsed: Duration) {
        let labels = || [kind.label(), status.as_str(), coding.token()];
        match STATUSES.iter().position(|s| *s == status.as_u16()) {
            Some(at) => {
                let slot = &self.counted[(kind as usize * CODINGS + coding as usize) * STATUSES.len() + at];
                slot.get_or_init(|| self.requests.with_label_values(&labels())).inc();
            }
            None => self.requests.with_label_values(&labels()).inc(),
        }
        let (sent, duration) = &self.by_kind[kind as usize];
        sent.inc_by(bytes);
        duration.observe(elapsed.as_secs_f64());
    }

    /// The posts by state, and the feeds, after a publish.
    pub fn published(&self, posts: [(&str, usize); 4], feeds: usize) {
        for (state, count) in posts {
            self.posts.with_label_values(&[state]).set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        self.feeds.set(i64::try_from(feeds).unwrap_or(i64::MAX));
    }

    /// Counts one WebSub delivery: `delivered`, `retrying`, `gave_up` or `ended`.
    pub fn delivery(&self, result: &'static str) {
        self.deliveries.with_label_values(&[result]).inc();
    }

    /// Adds a gauge whose value is read at each scrape.
    pub fn gauge_fn(&self, name: &str, help: &str, read: impl Fn() -> i64 + Send + Sync + 'static) {
        register(&self.registry, ReadGauge::new(name, help, Arc::new(read)));
    }

    /// Every metric, in the text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!("metrics: {error}");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The media type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

type Read = Arc<dyn Fn() -> i64 + Send + Sync>;

/// A gauge read when scraped.
#[derive(Clone)]
struct ReadGauge {
    gauge: IntGauge,
    read: Read,
}

impl std::fmt::Debug for ReadGauge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadGauge").field("gauge", &self.gauge).finish_non_exhaustive()
    }
}

impl ReadGauge {
    fn new(name: &str, help: &str, read: Read) -> ReadGauge {
        ReadGauge { gauge: IntGauge::new(name, help).expect("a valid metric"), read }
    }
}

impl Collector for ReadGauge {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.gauge.set((self.read)());
        self.gauge.collect()
    }
}

/// The process metrics Prometheus's client libraries export, read from `/proc/self` at each
/// scrape. Not the prometheus crate's own collector: it dates the start from the boot time in
/// `/proc/stat`, which `ProcSubset=pid` in crier.service hides (it said 0), and it counts CPU
/// time in whole seconds.
#[derive(Debug, Clone)]
struct Process {
    cpu: prometheus::Counter,
    open_fds: IntGauge,
    max_fds: IntGauge,
    resident: IntGauge,
    virtual_memory: IntGauge,
    threads: IntGauge,
    start_time: prometheus::Gauge,
}

impl Process {
    fn new() -> Process {
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("a valid metric");
        let process = Process {
            cpu: prometheus::Counter::new("process_cpu_seconds_total", "User and system CPU time, in seconds.")
                .expect("a valid metric"),
            open_fds: gauge("process_open_fds", "Open file descriptors."),
            max_fds: gauge("process_max_fds", "The most file descriptors the process may open."),
            resident: gauge("process_resident_memory_bytes", "Resident memory, in bytes."),
            virtual_memory: gauge("process_virtual_memory_bytes", "Virtual memory, in bytes."),
            threads: gauge("process_threads", "OS threads."),
            start_time: prometheus::Gauge::new(
                "process_start_time_seconds",
                "When the process started, in Unix seconds.",
            )
            .expect("a valid metric"),
        };
        // From the boot time where /proc/stat is visible; else now, within moments of the start.
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let started = procfs::boot_time_secs().ok().zip(procfs::process::Process::myself().and_then(|p| p.stat()).ok());
        process.start_time.set(match started {
            Some((boot, stat)) => boot as f64 + stat.starttime as f64 / procfs::ticks_per_second() as f64,
            None => now.as_secs_f64(),
        });
        process
    }

    fn all(&self) -> [&dyn Collector; 7] {
        [
            &self.cpu,
            &self.open_fds,
            &self.max_fds,
            &self.resident,
            &self.virtual_memory,
            &self.threads,
            &self.start_time,
        ]
    }
}

impl Collector for Process {
    fn desc(&self) -> Vec<&Desc> {
        self.all().into_iter().flat_map(Collector::desc).collect()
    }

    /// Fresh metrics each time: scrapes may run at once, and a shared counter set to the
    /// process's total by two of them could be seen going back.
    fn collect(&self) -> Vec<MetricFamily> {
        let Ok(me) = procfs::process::Process::myself() else { return Vec::new() };
        let now = Process::new();
        now.start_time.set(self.start_time.get());
        let to_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        if let Ok(stat) = me.stat() {
            now.cpu.inc_by((stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64);
            now.resident.set(to_i64(stat.rss.saturating_mul(procfs::page_size())));
            now.virtual_memory.set(to_i64(stat.vsize));
            now.threads.set(stat.num_threads);
        }
        if let Ok(count) = me.fd_count() {
            now.open_fds.set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        if let Ok(limits) = me.limits() {
            if let procfs::process::LimitValue::Value(max) = limits.max_open_files.soft_limit {
                now.max_fds.set(to_i64(max));
            }
        }
        now.all().into_iter().flat_map(Collector::collect).collect()
    }
}

/// `crier_feed_subscribers{feed, source}`, from the audience at each scrape.
#[derive(Debug, Clone)]
struct Subscribers {
    audience: Arc<Audience>,
    opts: Opts,
    desc: Vec<Desc>,
}

impl Subscribers {
    fn new(audience: Arc<Audience>) -> Subscribers {
        let opts = Opts::new(
            "crier_feed_subscribers",
            "Subscribers per feed: each aggregator's largest report in 24 hours, and readers seen in 24 hours.",
        )
        .variable_labels(vec!["feed".to_owned(), "source".to_owned()]);
        let desc = vec![opts.describe().expect("a valid metric")];
        Subscribers { audience, opts, desc }
    }
}

impl Collector for Subscribers {
    fn desc(&self) -> Vec<&Desc> {
        self.desc.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let now = crate::state::unix_seconds(std::time::SystemTime::now());
        let gauges = IntGaugeVec::new(self.opts.clone(), &["feed", "source"]).expect("a valid metric");
        for ((feed, source), count) in self.audience.subscriber_series(now) {
            gauges.with_label_values(&[feed.as_str(), source.as_str()]).set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        gauges.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_every_metric_with_bounded_labels() {
        let audience = Arc::new(Audience::default());
        let feed: Arc<str> = Arc::from("feed");
        let now = crate::state::unix_seconds(std::time::SystemTime::now());
        audience.record(&crate::audience::Seen::example(&feed, "192.0.2.1", "Feedly/1.0 (x; 12 subscribers)", now));
        let metrics = Metrics::new(Some(audience));
        metrics.request(Kind::Feed, StatusCode::NOT_MODIFIED, Coding::Brotli, 0, Duration::from_micros(300));
        metrics.request(Kind::Feed, StatusCode::OK, Coding::Gzip, 1234, Duration::from_micros(300));
        metrics.published([("published", 3), ("scheduled", 1), ("draft", 0), ("error", 2)], 5);
        metrics.gauge_fn("crier_websub_subscriptions", "Subscriptions.", || 7);
        let text = metrics.render();
        for line in [
            "crier_http_requests_total{encoding=\"br\",kind=\"feed\",status=\"304\"} 1",
            "crier_http_response_bytes_total{kind=\"feed\"} 1234",
            "crier_http_request_duration_seconds_count{kind=\"feed\"} 2",
            "crier_posts{state=\"error\"} 2",
            "crier_feeds 5",
            "crier_websub_subscriptions 7",
            "crier_feed_subscribers{feed=\"feed\",source=\"Feedly\"} 12",
            "crier_feed_subscribers{feed=\"feed\",source=\"readers\"} 0",
            "crier_build_info{version=\"0.1.0\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
        }
        for name in [
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_start_time_seconds",
            "process_cpu_seconds_total",
        ] {
            assert!(text.lines().any(|l| l.starts_with(name)), "{name} missing");
        }
    }
}
