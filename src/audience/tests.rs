use super::*;

const NOON: i64 = 1_795_953_600; // 2026-11-29 12:00 UTC

fn feed(name: &str) -> Arc<str> {
    Arc::from(name)
}

fn seen<'a>(feed: &'a Arc<str>, address: &str, user_agent: &'a str, now: i64) -> Seen<'a> {
    Seen::example(feed, address, user_agent, now)
}

fn counts(report: &Report, name: &str) -> (Vec<(String, u64)>, u64) {
    let row = report.feeds.iter().find(|row| &*row.feed == name).expect("the feed is reported");
    (row.aggregators.clone(), row.readers)
}

/// Requests of real aggregators and readers: (feed, address, User-Agent, seconds after noon).
const REPLAY: &[(&str, &str, &str, i64)] = &[
    (
        "feed",
        "192.0.2.1",
        "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 12 subscribers; like FeedFetcher-Google)",
        0,
    ),
    // A later, larger report from another fetcher address, then a smaller one: the largest counts.
    (
        "feed",
        "192.0.2.2",
        "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 15 subscribers; like FeedFetcher-Google)",
        600,
    ),
    (
        "feed",
        "192.0.2.3",
        "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 9 subscribers; like FeedFetcher-Google)",
        7200,
    ),
    (
        "feed",
        "198.51.100.7",
        "Mozilla/5.0 (compatible; Inoreader/1.0; +http://www.inoreader.com/feed-fetcher; 34 subscribers; )",
        60,
    ),
    (
        "feed",
        "198.51.100.8",
        "NewsBlur Feed Fetcher - 7 subscribers - https://www.newsblur.com/site/1/x (Mozilla/5.0)",
        60,
    ),
    ("categories/科技", "198.51.100.9", "Feedbin feed-id:1234 - 56 subscribers", 60),
    // Readers: two newsboat users, one of them twice; one IPv6 user whose address changes
    // within its /64; a crawler, which is no reader.
    ("feed", "203.0.113.5", "newsboat/2.30.1 (Linux x86_64)", 100),
    ("feed", "203.0.113.5", "newsboat/2.30.1 (Linux x86_64)", 4000),
    ("feed", "203.0.113.6", "newsboat/2.30.1 (Linux x86_64)", 100),
    ("feed", "2001:db8:1:2::10", "NetNewsWire (RSS Reader; https://netnewswire.com/)", 100),
    ("feed", "2001:db8:1:2:aaaa::99", "NetNewsWire (RSS Reader; https://netnewswire.com/)", 5000),
    ("feed", "192.0.2.50", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", 100),
    (
        "categories/科技",
        "203.0.113.5",
        "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.6.0",
        100,
    ),
];

#[test]
fn a_replay_of_real_aggregators_and_readers() {
    let audience = Audience::default();
    let (site, tech) = (feed("feed"), feed("categories/科技"));
    for (name, address, user_agent, at) in REPLAY {
        let feed = if *name == "feed" { &site } else { &tech };
        audience.record(&seen(feed, address, user_agent, NOON + at));
    }
    let report = audience.report(NOON + 8000);
    let aggregators = |list: &[(&str, u64)]| list.iter().map(|(s, c)| (s.to_string(), *c)).collect::<Vec<_>>();
    assert_eq!(
        counts(&report, "feed"),
        (aggregators(&[("Inoreader", 34), ("Feedly", 15), ("NewsBlur Feed Fetcher", 7)]), 3)
    );
    assert_eq!(counts(&report, "categories/科技"), (aggregators(&[("Feedbin", 56)]), 1));
    assert_eq!(report.feeds[0].subscribers(), 34 + 15 + 7 + 3, "the site feed has the most subscribers");
    assert_eq!(report.feeds[1].subscribers(), 56 + 1);
    assert_eq!(report.feeds[0].requests().requests, 11);
    let series = report.subscriber_series();
    assert_eq!(series.get(&("feed".to_owned(), "Feedly".to_owned())), Some(&15));
    assert_eq!(series.get(&("feed".to_owned(), READERS.to_owned())), Some(&3));
}

#[test]
fn readers_count_once_across_the_daily_key_and_expire_after_a_day() {
    let audience = Audience::default();
    let site = feed("feed");
    let midnight = NOON + 12 * 3600;
    audience.record(&seen(&site, "203.0.113.5", "newsboat/2.30", midnight - 600));
    audience.record(&seen(&site, "203.0.113.5", "newsboat/2.30", midnight + 600));
    let saved = audience.saved(midnight + 600);
    assert_eq!(saved.keys.len(), 2, "yesterday's key and today's");
    assert_eq!(saved.clients.len(), 1, "the client moved under today's key, not counted twice");
    assert_eq!(audience.report(midnight + 600).feeds[0].readers, 1);
    assert_eq!(audience.report(midnight + 600 + DAY).feeds[0].readers, 0, "unseen for a day");
    let keys = audience.saved(midnight + 2 * DAY).keys;
    assert!(keys.is_empty(), "keys older than yesterday are forgotten: {keys:?}");
}

#[test]
fn reports_are_the_largest_of_the_last_24_hours() {
    let audience = Audience::default();
    let site = feed("feed");
    audience.record(&seen(&site, "192.0.2.1", "Feedly/1.0 (x; 40 subscribers)", NOON));
    audience.record(&seen(&site, "192.0.2.1", "Feedly/1.0 (x; 30 subscribers)", NOON + 20 * 3600));
    assert_eq!(counts(&audience.report(NOON + 23 * 3600), "feed").0, [("Feedly".to_owned(), 40)]);
    assert_eq!(counts(&audience.report(NOON + 25 * 3600), "feed").0, [("Feedly".to_owned(), 30)]);
}

#[test]
fn pollers_without_validators_or_too_fast_are_named() {
    let audience = Audience::default();
    let site = feed("feed");
    for minute in [0, 10, 20] {
        let mut request = seen(&site, "203.0.113.9", "LazyFetcher/1.0", NOON + minute * 60);
        request.conditional = false;
        audience.record(&request);
    }
    audience.record(&seen(&site, "203.0.113.5", "newsboat/2.30", NOON));
    audience.record(&seen(&site, "203.0.113.5", "newsboat/2.30", NOON + 3600));
    let report = audience.report(NOON + 3600);
    assert_eq!(report.misbehaving.len(), 1, "{:?}", report.misbehaving);
    let lazy = &report.misbehaving[0];
    assert_eq!((lazy.family.as_str(), lazy.requests, lazy.unconditional, lazy.fast), ("LazyFetcher", 3, 3, 2));
    assert_eq!(lazy.never_revalidate, 1);
}

#[test]
fn ten_thousand_junk_user_agents_stay_bounded() {
    let audience = Audience::default();
    let feeds: Vec<Arc<str>> = (0..150).map(|i| feed(&format!("tags/t{i}"))).collect();
    for i in 0..10_000u32 {
        let user_agent = format!("Junk{i}/1.0 (+http://junk.example/{i}; {} subscribers)", 1 + i % 97);
        let address = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
        audience.record(&seen(&feeds[i as usize % feeds.len()], &address, &user_agent, NOON + i64::from(i)));
    }
    let report = audience.report(NOON + 10_000);
    for row in &report.feeds {
        assert!(row.aggregators.len() <= MAX_SOURCES, "{} sources", row.aggregators.len());
    }
    let series = report.subscriber_series();
    let feeds_named: std::collections::BTreeSet<&String> = series.keys().map(|(feed, _)| feed).collect();
    let sources: std::collections::BTreeSet<&String> = series.keys().map(|(_, source)| source).collect();
    assert_eq!(feeds_named.len(), TOP_FEEDS + 1, "the top feeds and `other`");
    assert_eq!(sources.len(), TOP_SOURCES + 2, "the top aggregators, `other` and `readers`");
    assert!(series.len() <= (TOP_FEEDS + 1) * (TOP_SOURCES + 2));
}

#[test]
fn what_is_saved_goes_on_after_a_restart() {
    let audience = Audience::default();
    let site = feed("feed");
    audience.record(&seen(&site, "192.0.2.1", "Feedly/1.0 (x; 12 subscribers)", NOON));
    audience.record(&seen(&site, "203.0.113.5", "newsboat/2.30", NOON));
    let restarted = Audience::from_saved(audience.saved(NOON + 60));
    restarted.record(&seen(&site, "203.0.113.5", "newsboat/2.30", NOON + 120));
    assert_eq!(counts(&restarted.report(NOON + 120), "feed"), (vec![("Feedly".to_owned(), 12)], 1));
    assert_eq!(restarted.report(NOON + 120).feeds[0].requests().requests, 3);
}

#[test]
fn a_connection_memo_counts_as_hashing_each_time() {
    let (plain, memoized) = (Audience::default(), Audience::default());
    let mut memo = ClientMemo::default();
    let site = feed("feed");
    let polls = [
        ("newsboat/2.30", NOON),
        ("newsboat/2.30", NOON + 10),
        // Another User-Agent on the same connection, then the first again, then the next day.
        ("Feedly/1.0 (x; 5 subscribers)", NOON + 20),
        ("newsboat/2.30", NOON + 30),
        ("newsboat/2.30", NOON + 13 * 3600),
    ];
    for (user_agent, at) in polls {
        let request = seen(&site, "203.0.113.5", user_agent, at);
        plain.record(&request);
        memoized.record_with(&mut memo, &request);
    }
    let now = NOON + 13 * 3600;
    assert_eq!(memoized.report(now), plain.report(now));
    assert_eq!(memoized.saved(now).clients.len(), 2, "newsboat moved under the new day's key, and Feedly");
}

#[test]
fn claims_past_belief_neither_overflow_nor_break_the_report() {
    let audience = Audience::default();
    let site = feed("feed");
    audience.record(&seen(&site, "192.0.2.66", "Evil/1.0 (18446744073709551615 subscribers)", NOON));
    audience.record(&seen(&site, "192.0.2.67", "Evil2/1.0 (99999999 subscribers)", NOON));
    audience.record(&seen(&site, "203.0.113.5", "newsboat/2.30", NOON));
    let report = audience.report(NOON);
    assert_eq!(report.feeds[0].subscribers(), MAX_REPORTED + 99_999_999 + 1);
    assert_eq!(audience.subscriber_series(NOON).values().sum::<u64>(), MAX_REPORTED + 99_999_999 + 1);
}

#[test]
fn one_address_counts_as_a_bounded_number_of_readers() {
    let audience = Audience::default();
    let site = feed("feed");
    for i in 0..1000 {
        audience.record(&seen(&site, "198.51.100.1", &format!("reader-{i}/1.0"), NOON + i));
    }
    audience.record(&seen(&site, "198.51.100.2", "reader-0/1.0", NOON + 2000));
    let report = audience.report(NOON + 2000);
    assert_eq!(report.feeds[0].readers, u64::from(MAX_PER_ADDRESS) + 1, "16 from the busy address, 1 from another");
    assert_eq!(report.feeds[0].requests().requests, 1001, "every request is still counted");
}

#[test]
fn a_client_keeps_its_tallies_across_midnight_and_is_judged_alone() {
    let audience = Audience::default();
    let site = feed("feed");
    let midnight = NOON + 12 * 3600;
    for at in [midnight - 600, midnight + 600] {
        let mut request = seen(&site, "203.0.113.9", "LazyFetcher/1.0", at);
        request.conditional = false;
        audience.record(&request);
    }
    // Two readers' first fetches carry no validators; that is no fault of their family.
    for address in ["203.0.113.20", "203.0.113.21"] {
        let mut request = seen(&site, address, "newsboat/2.30", midnight + 700);
        request.conditional = false;
        audience.record(&request);
    }
    let pollers = audience.report(midnight + 700).misbehaving;
    assert_eq!(pollers.len(), 1, "{pollers:?}");
    assert_eq!((pollers[0].family.as_str(), pollers[0].requests, pollers[0].never_revalidate), ("LazyFetcher", 2, 1));
}

#[test]
fn a_report_counts_for_a_full_day() {
    let audience = Audience::default();
    let site = feed("feed");
    let late = NOON + 59 * 60; // 12:59
    audience.record(&seen(&site, "192.0.2.1", "Feedly/1.0 (x; 40 subscribers)", late));
    assert_eq!(counts(&audience.report(late + DAY - 60), "feed").0, [("Feedly".to_owned(), 40)], "12:58 the next day");
    assert!(counts(&audience.report(late + DAY + 60), "feed").0.is_empty(), "13:00 the next day");
}

#[test]
fn an_aggregator_named_like_a_source_of_crier_stays_apart() {
    let audience = Audience::default();
    let site = feed("feed");
    audience.record(&seen(&site, "192.0.2.1", "readers 5000 subscribers", NOON));
    audience.record(&seen(&site, "203.0.113.5", "newsboat/2.30", NOON));
    let series = audience.subscriber_series(NOON);
    assert_eq!(series.get(&("feed".to_owned(), READERS.to_owned())), Some(&1));
    assert_eq!(series.get(&("feed".to_owned(), "readers (aggregator)".to_owned())), Some(&5000));
}

#[test]
fn another_format_of_the_feed_at_once_is_not_too_soon() {
    let audience = Audience::default();
    let site = feed("feed");
    let mut request = seen(&site, "203.0.113.5", "Thunderbird/115.0", NOON);
    audience.record(&request);
    request.format = 1;
    request.now += 1;
    audience.record(&request);
    assert!(audience.report(NOON + 1).misbehaving.is_empty(), "RSS then Atom at once");
    request.now += 1;
    audience.record(&request);
    assert_eq!(audience.report(NOON + 2).misbehaving[0].fast, 1, "Atom again at once");
}
