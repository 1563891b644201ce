//! A subscriber's request to the hub (WebSub §5.1), parsed and checked. Pure.

use url::Url;

/// The longest callback or topic URL accepted.
const MAX_URL: usize = 2048;
/// `hub.secret` must be shorter than this (§5.1).
pub const MAX_SECRET: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Subscribe,
    Unsubscribe,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Subscribe => "subscribe",
            Mode::Unsubscribe => "unsubscribe",
        }
    }
}

/// A well-formed subscription request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubRequest {
    pub mode: Mode,
    pub topic: Url,
    pub callback: Url,
    pub lease_seconds: Option<u64>,
    pub secret: Option<String>,
}

/// Parses an `application/x-www-form-urlencoded` body; the error is the reason a 400 gives.
pub fn parse(body: &[u8]) -> Result<HubRequest, String> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for (key, value) in url::form_urlencoded::parse(body) {
        if key.starts_with("hub.") && fields.iter().any(|(k, _)| *k == key) {
            return Err(format!("{key} is given twice"));
        }
        fields.push((key.into_owned(), value.into_owned()));
    }
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let mode = match field("hub.mode") {
        Some("subscribe") => Mode::Subscribe,
        Some("unsubscribe") => Mode::Unsubscribe,
        Some("publish") => return Err("this hub pushes its own feeds; it takes no hub.mode=publish".to_owned()),
        Some(other) => return Err(format!("hub.mode {other:?} is neither \"subscribe\" nor \"unsubscribe\"")),
        None => return Err("hub.mode is missing".to_owned()),
    };
    let callback = url_field("hub.callback", field("hub.callback"))?;
    if !matches!(callback.scheme(), "http" | "https") {
        return Err(format!("hub.callback must be an http:// or https:// URL, not {}:", callback.scheme()));
    }
    let topic = url_field("hub.topic", field("hub.topic"))?;
    let lease_seconds = match field("hub.lease_seconds") {
        None | Some("") => None,
        Some(text) => Some(
            text.parse::<u64>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("hub.lease_seconds {text:?} is not a positive number of seconds"))?,
        ),
    };
    let secret = match field("hub.secret") {
        None => None,
        Some("") => return Err("hub.secret is empty; leave it out for unsigned deliveries".to_owned()),
        Some(secret) if secret.len() >= MAX_SECRET => {
            return Err(format!("hub.secret must be shorter than {MAX_SECRET} bytes"));
        }
        Some(secret) => Some(secret.to_owned()),
    };
    Ok(HubRequest { mode, topic, callback, lease_seconds, secret })
}

fn url_field(name: &str, value: Option<&str>) -> Result<Url, String> {
    let value = value.filter(|v| !v.is_empty()).ok_or_else(|| format!("{name} is missing"))?;
    if value.len() > MAX_URL {
        return Err(format!("{name} is longer than {MAX_URL} bytes"));
    }
    let url = Url::parse(value).map_err(|error| format!("{name} is not an absolute URL: {error}"))?;
    if url.fragment().is_some() {
        return Err(format!("{name} must not have a #fragment"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_requests() {
        let r = parse(b"hub.mode=subscribe&hub.topic=https%3A%2F%2Fe.org%2Ffeeds%2Ffeed.rss&hub.callback=http%3A%2F%2F127.0.0.1%3A9%2Fcb%3Fid%3D1&hub.lease_seconds=60&hub.secret=k").unwrap();
        assert_eq!(r.mode, Mode::Subscribe);
        assert_eq!(r.topic.as_str(), "https://e.org/feeds/feed.rss");
        assert_eq!(r.callback.as_str(), "http://127.0.0.1:9/cb?id=1");
        assert_eq!((r.lease_seconds, r.secret.as_deref()), (Some(60), Some("k")));
        let r = parse(b"hub.mode=unsubscribe&hub.topic=https://e.org/t&hub.callback=https://s.org/&other=x").unwrap();
        assert_eq!((r.mode, r.lease_seconds, r.secret), (Mode::Unsubscribe, None, None));
    }

    #[test]
    fn malformed_requests_say_why() {
        let long_secret = format!(
            "hub.mode=subscribe&hub.topic=https://e.org/t&hub.callback=https://s/&hub.secret={}",
            "x".repeat(200)
        );
        for (body, reason) in [
            ("hub.topic=https://e.org/t&hub.callback=https://s/", "hub.mode is missing"),
            ("hub.mode=publish&hub.url=https://e.org/t", "no hub.mode=publish"),
            ("hub.mode=subscribe&hub.callback=https://s/", "hub.topic is missing"),
            ("hub.mode=subscribe&hub.topic=https://e.org/t", "hub.callback is missing"),
            ("hub.mode=subscribe&hub.topic=https://e.org/t&hub.callback=/relative", "not an absolute URL"),
            ("hub.mode=subscribe&hub.topic=https://e.org/t&hub.callback=gopher://s/", "http:// or https://"),
            ("hub.mode=subscribe&hub.topic=https://e.org/t&hub.callback=https://s/#x", "#fragment"),
            (
                "hub.mode=subscribe&hub.topic=https://e.org/t&hub.callback=https://s/&hub.lease_seconds=-5",
                "lease_seconds",
            ),
            ("hub.mode=subscribe&hub.mode=unsubscribe&hub.topic=https://e.org/t&hub.callback=https://s/", "twice"),
            (long_secret.as_str(), "shorter than 200"),
        ] {
            let error = parse(body.as_bytes()).unwrap_err();
            assert!(error.contains(reason), "{body}: {error}");
        }
    }
}
