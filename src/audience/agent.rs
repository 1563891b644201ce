//! What a User-Agent says of its client: a short family name (the product, without versions,
//! platforms or URLs), the subscriber count an aggregator reports for the feed it fetches, and
//! whether it is a crawler rather than a reader. One general reading, no table of exact strings:
//! aggregators put "N subscribers" (or "N readers") anywhere in the string.

/// The longest family name kept; longer ones are cut.
const MAX_FAMILY: usize = 40;

/// A User-Agent as crier counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// The product: `Feedly`, `NewsBlur Feed Fetcher`, `newsboat`, `Thunderbird`; `unknown` when
    /// there is none. Printable ASCII, at most [`MAX_FAMILY`] bytes.
    pub family: String,
    /// The subscribers an aggregator says it fetches the feed for.
    pub reported: Option<u64>,
    /// A crawler or robot: it reads, it does not subscribe.
    pub crawler: bool,
}

/// Reads a User-Agent header.
pub fn parse(user_agent: &str) -> Agent {
    let family = family(user_agent);
    let lower = family.to_ascii_lowercase();
    let crawler =
        ["bot", "crawl", "spider", "slurp"].iter().any(|word| lower.contains(word)) && reported(user_agent).is_none();
    Agent { reported: reported(user_agent), crawler, family }
}

/// The number before the first "subscriber(s)" or "reader(s)" word: `12 subscribers`,
/// `1,234 readers`, `1 subscriber`.
fn reported(user_agent: &str) -> Option<u64> {
    let words: Vec<&str> = user_agent.split(|c: char| c.is_whitespace() || ";()-[]".contains(c)).collect();
    words.windows(2).find_map(|pair| {
        let noun = pair[1].trim_end_matches([',', '.', ':']).to_ascii_lowercase();
        let counted = ["subscriber", "subscribers", "reader", "readers"].contains(&noun.as_str());
        let digits: String = pair[0].chars().filter(|c| *c != ',').collect();
        let number = (counted && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)?;
        Some(number.parse::<u64>().unwrap_or(u64::MAX).min(super::MAX_REPORTED))
    })
}

/// Tokens of a browser-like string that name an engine or a platform, not the product.
const NOT_PRODUCTS: &[&str] =
    &["mozilla", "applewebkit", "gecko", "khtml", "like", "version", "mobile", "safari", "compatible", "msie"];

/// The product a User-Agent names.
fn family(user_agent: &str) -> String {
    let user_agent = user_agent.trim();
    let name = if user_agent.starts_with("Mozilla/") {
        compatible_product(user_agent).or_else(|| last_product(user_agent))
    } else {
        leading_words(user_agent)
    };
    clean(name.unwrap_or(""))
}

/// `Mozilla/5.0 (compatible; Inoreader/1.0; ...)`: the first token after `compatible` that is
/// not a URL or a count.
fn compatible_product(user_agent: &str) -> Option<&str> {
    let comment = user_agent.split_once('(')?.1.split(')').next()?;
    let mut parts = comment.split(';').map(str::trim);
    parts.next().filter(|first| first.eq_ignore_ascii_case("compatible"))?;
    parts
        .find(|part| !part.is_empty() && !part.starts_with('+') && !part.contains("://") && !is_count(part))
        .and_then(|part| leading_words(part))
}

/// A browser-like string: the last product token that is not an engine (`Thunderbird/115.0`,
/// `Edg/120`), else the browser family.
fn last_product(user_agent: &str) -> Option<&str> {
    let mut outside = String::new();
    let mut depth = 0usize;
    for c in user_agent.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => outside.push(c),
            _ => {}
        }
    }
    let products: Vec<&str> = outside.split_whitespace().filter_map(|token| token.split('/').next()).collect();
    let found = products.iter().rev().find(|name| !NOT_PRODUCTS.contains(&name.to_ascii_lowercase().as_str()));
    let name = found.or(products.last())?;
    user_agent.find(name).map(|at| &user_agent[at..at + name.len()])
}

/// The words before the first one that carries a version, a URL, an id or a count:
/// `NewsBlur Feed Fetcher - 7 subscribers` → `NewsBlur Feed Fetcher`; `newsboat/2.30` → `newsboat`.
fn leading_words(text: &str) -> Option<&str> {
    let mut end = 0;
    for (count, word) in text.split(' ').enumerate() {
        let product = word.split('/').next().unwrap_or("");
        let plain = !product.is_empty()
            && !product.starts_with('+')
            && !product.starts_with(|c: char| c.is_ascii_digit())
            && !product.bytes().any(|b| b"():;=,[]".contains(&b))
            && product.bytes().all(|b| b.is_ascii_graphic());
        if !plain || count == 3 {
            break;
        }
        let start = word.as_ptr() as usize - text.as_ptr() as usize;
        end = start + product.len();
        if product.len() < word.len() {
            break;
        }
    }
    (end > 0).then(|| &text[..end])
}

fn is_count(part: &str) -> bool {
    reported(part).is_some()
}

/// Printable ASCII, at most [`MAX_FAMILY`] bytes, `unknown` when empty.
fn clean(name: &str) -> String {
    let kept: String = name
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(MAX_FAMILY)
        .collect::<String>()
        .trim()
        .to_owned();
    if kept.is_empty() { "unknown".to_owned() } else { kept }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real User-Agents, as aggregators and readers send them, with what crier makes of them.
    pub const KNOWN: &[(&str, &str, Option<u64>, bool)] = &[
        (
            "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 12 subscribers; like FeedFetcher-Google)",
            "Feedly",
            Some(12),
            false,
        ),
        (
            "Mozilla/5.0 (compatible; Inoreader/1.0; +http://www.inoreader.com/feed-fetcher; 34 subscribers; )",
            "Inoreader",
            Some(34),
            false,
        ),
        (
            "NewsBlur Feed Fetcher - 7 subscribers - https://www.newsblur.com/site/1234/blog (Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/121.0 Safari/537.36)",
            "NewsBlur Feed Fetcher",
            Some(7),
            false,
        ),
        ("Feedbin feed-id:1234 - 56 subscribers", "Feedbin", Some(56), false),
        (
            "Mozilla/5.0 (compatible; theoldreader.com; 27 subscribers; feed-id=0f1e2d3c)",
            "theoldreader.com",
            Some(27),
            false,
        ),
        ("Mozilla/5.0 (compatible; BazQux/2.4; +https://bazqux.com/fetcher; 3 subscribers)", "BazQux", Some(3), false),
        (
            "Digg Feed Fetcher 1.0 (Digg/1.0; +http://digg.com; 1,204 subscribers)",
            "Digg Feed Fetcher",
            Some(1204),
            false,
        ),
        (
            "Livedoor FeedFetcher/0.01 (http://reader.livedoor.com/; 1 subscriber)",
            "Livedoor FeedFetcher",
            Some(1),
            false,
        ),
        ("Netvibes (crawler/1.0; http://www.netvibes.com/; 5 readers; feedID: 1)", "Netvibes", Some(5), false),
        ("newsboat/2.30.1 (Linux x86_64)", "newsboat", None, false),
        ("NetNewsWire (RSS Reader; https://netnewswire.com/)", "NetNewsWire", None, false),
        ("Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.6.0", "Thunderbird", None, false),
        ("Tiny Tiny RSS/23.04 (a6bde5f) (https://tt-rss.org/)", "Tiny Tiny RSS", None, false),
        ("Mozilla/5.0 (compatible; Miniflux/2.0.50; +https://miniflux.app)", "Miniflux", None, false),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "Googlebot", None, true),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0",
            "Edg",
            None,
            false,
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
            "Safari",
            None,
            false,
        ),
        ("curl/8.5.0", "curl", None, false),
        ("", "unknown", None, false),
    ];

    #[test]
    fn families_counts_and_crawlers_of_real_user_agents() {
        for (user_agent, family, reported, crawler) in KNOWN {
            let agent = parse(user_agent);
            assert_eq!(
                (agent.family.as_str(), agent.reported, agent.crawler),
                (*family, *reported, *crawler),
                "{user_agent}"
            );
        }
    }

    #[test]
    fn junk_never_makes_a_long_or_unprintable_family() {
        for junk in ["\u{7}\u{1b}[31m 5 subscribers", "x".repeat(500).as_str(), "中文阅读器/1.0", "(((((", "- - -"]
        {
            let agent = parse(junk);
            assert!(
                agent.family.len() <= MAX_FAMILY && agent.family.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
            );
        }
        let huge = parse("Reader 99999999999999999999999 subscribers").reported;
        assert_eq!(huge, Some(crate::audience::MAX_REPORTED), "a claim past belief counts as the most believed");
    }
}
