//! A [`Report`] for people: the `/stats` HTML page (a chart per feed as inline SVG, no script)
//! and the table `crier stats` prints.

use std::fmt::Write;

use chrono::DateTime;
use quick_xml::escape::escape;

use super::{FamilyRow, FeedRow, HOUR, Hour, Report};

/// The chart's size in CSS pixels: one bar per hour.
const WIDTH: usize = 480;
const HEIGHT: usize = 60;

/// Share of `part` in `whole`, as a whole percentage; `—` when there is nothing.
fn share(part: u64, whole: u64) -> String {
    match whole {
        0 => "—".to_owned(),
        _ => format!("{}%", (part * 100 + whole / 2) / whole),
    }
}

/// A feed's subscribers by source: `Feedly 15, Inoreader 34, readers 3`.
fn sources(row: &FeedRow) -> String {
    let mut parts: Vec<String> = row.aggregators.iter().map(|(source, count)| format!("{source} {count}")).collect();
    parts.push(format!("readers {}", row.readers));
    parts.join(", ")
}

fn time(unix: i64) -> String {
    DateTime::from_timestamp(unix, 0).map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M UTC").to_string())
}

/// The requests of each hour as bars, the part answered 304 in a second colour; each bar has a
/// tooltip with its hour and figures.
fn chart(hours: &[(i64, Hour)]) -> String {
    let most = hours.iter().map(|(_, h)| h.requests).max().unwrap_or(0).max(1);
    let bar = WIDTH / hours.len().max(1);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"requests per hour, last {} hours\">",
        hours.len()
    );
    for (i, (hour, counted)) in hours.iter().enumerate() {
        let scale = |n: u64| usize::try_from(n * HEIGHT as u64 / most).unwrap_or(HEIGHT);
        let (all, fresh) = (scale(counted.requests), scale(counted.not_modified));
        let x = i * bar;
        let _ = write!(
            svg,
            "<g><title>{} · {} requests, {} answered 304</title><rect x=\"{x}\" y=\"{}\" width=\"{}\" height=\"{all}\" fill=\"#8ab\"/><rect x=\"{x}\" y=\"{}\" width=\"{}\" height=\"{fresh}\" fill=\"#2a6\"/></g>",
            time(hour * HOUR),
            counted.requests,
            counted.not_modified,
            HEIGHT - all,
            bar.saturating_sub(1),
            HEIGHT - fresh,
            bar.saturating_sub(1),
        );
    }
    svg.push_str("</svg>");
    svg
}

fn family_rows(families: &[FamilyRow]) -> String {
    let mut rows = String::new();
    for family in families {
        let _ = writeln!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(family.family.as_str()),
            family.clients,
            family.never_revalidate,
            family.requests,
            share(family.unconditional, family.requests),
            share(family.fast, family.requests),
        );
    }
    rows
}

/// The `/stats` page.
pub fn html(report: &Report, style: &str) -> String {
    let mut page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>crier — audience</title>\n<style>{style}svg{{display:block;background:#f8f8f8}}</style>\n</head>\n<body>\n<h1>Audience</h1>\n<p class=\"note\">At {}. Subscribers: the largest count each aggregator reported in the last 24 hours, plus the readers that fetched the feed themselves in the last 24 hours. Bars: requests per hour over the last 48 hours; green, the part answered 304 Not Modified.</p>\n",
        time(report.now)
    );
    if report.feeds.is_empty() {
        page.push_str("<p>No feed has been requested yet.</p>\n");
    }
    for row in &report.feeds {
        let total = row.requests();
        let _ = write!(
            page,
            "<section>\n<h2>{feed} — {subscribers} subscribers</h2>\n<p>{sources}</p>\n{chart}\n<p class=\"note\">48 hours ago → now; the tallest bar is {tallest} requests. {requests} requests in 48 hours, {fresh} answered 304, {bare} without validators.</p>\n</section>\n",
            feed = escape(&*row.feed),
            subscribers = row.subscribers(),
            sources = escape(sources(row).as_str()),
            chart = chart(&row.hours),
            requests = total.requests,
            tallest = row.hours.iter().map(|(_, h)| h.requests).max().unwrap_or(0),
            fresh = share(total.not_modified, total.requests),
            bare = share(total.unconditional, total.requests),
        );
    }
    page.push_str("<h2>Pollers to fix</h2>\n");
    if report.misbehaving.is_empty() {
        page.push_str("<p>Every client revalidates and waits the feed's ttl between polls.</p>\n");
    } else {
        let _ = write!(
            page,
            "<p class=\"note\">Clients (by User-Agent family) that never send validators, or ask again sooner than the feed's ttl.</p>\n<table>\n<tr><th>Client</th><th>Clients</th><th>Never revalidate</th><th>Requests</th><th>Without validators</th><th>Too soon</th></tr>\n{}</table>\n",
            family_rows(&report.misbehaving)
        );
    }
    page.push_str("</body>\n</html>\n");
    page
}

/// The table `crier stats` prints: one line per feed, then the pollers to fix.
pub fn table(report: &Report) -> String {
    let mut out = format!("{:<32} {:>11} {:>9} {:>6}  by source\n", "feed", "subscribers", "requests", "304");
    for row in &report.feeds {
        let total = row.requests();
        let _ = writeln!(
            out,
            "{:<32} {:>11} {:>9} {:>6}  {}",
            row.feed,
            row.subscribers(),
            total.requests,
            share(total.not_modified, total.requests),
            sources(row)
        );
    }
    if report.feeds.is_empty() {
        out.push_str("(no feed has been requested yet)\n");
    }
    if !report.misbehaving.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<32} {:>7} {:>9} {:>18} {:>9}",
            "poller", "clients", "requests", "without validators", "too soon"
        );
        for family in &report.misbehaving {
            let _ = writeln!(
                out,
                "{:<32} {:>7} {:>16} {:>9} {:>18} {:>9}",
                family.family,
                family.clients,
                family.never_revalidate,
                family.requests,
                share(family.unconditional, family.requests),
                share(family.fast, family.requests)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audience::{Audience, Seen};
    use std::sync::Arc;

    #[test]
    fn the_page_and_the_table_show_each_feed() {
        let audience = Audience::default();
        let feed: Arc<str> = Arc::from("categories/科技");
        let now = 1_795_953_600;
        for (i, not_modified) in [(0, false), (1, true), (2, true)] {
            let seen = Seen::example(&feed, "192.0.2.1", "Feedly/1.0 (x; 12 subscribers)", now + i * 3600);
            audience.record(&Seen { not_modified, conditional: i > 0, ..seen });
        }
        let report = audience.report(now + 2 * 3600);
        let page = html(&report, "");
        assert!(page.contains("<h2>categories/科技 — 12 subscribers</h2>"), "{page}");
        assert_eq!(page.matches("<rect").count(), 2 * 48, "48 hourly bars of two parts");
        assert!(page.contains("3 requests in 48 hours, 67% answered 304"), "{page}");
        roxmltree::Document::parse(
            &page
                .replace("<!DOCTYPE html>", "")
                .replace("<meta charset=\"utf-8\">", "")
                .replace("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">", ""),
        )
        .expect("the page is well-formed");
        let table = table(&report);
        assert!(
            table.lines().nth(1).unwrap().split_whitespace().collect::<Vec<_>>()[..4]
                == ["categories/科技", "12", "3", "67%"],
            "{table}"
        );
    }
}
