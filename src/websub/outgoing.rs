//! The hub's requests to the outside: verification of intent and denials (GET), content
//! distribution (POST with the document), and pings to external hubs. reqwest with rustls; no
//! redirects, no proxies from the environment, connect and total timeouts, and response bodies
//! read no further than a few bytes past what is needed.

use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::HeaderValue;
use sha2::Sha256;
use url::Url;

use super::guard::Guard;
use super::{CONNECT_TIMEOUT, TOTAL_TIMEOUT};

/// The most of a callback's answer read: enough for any challenge this hub sends.
const MAX_ANSWER: usize = 1024;

/// How long to wait before each retry of a failed delivery or ping; one try more than retries.
pub const RETRY_DELAYS: [Duration; 8] = [
    Duration::from_secs(1),
    Duration::from_secs(4),
    Duration::from_secs(15),
    Duration::from_secs(60),
    Duration::from_secs(300),
    Duration::from_secs(1800),
    Duration::from_secs(7200),
    Duration::from_secs(21600),
];

/// The client for subscribers' callbacks: it connects only to addresses the guard allows, names
/// checked by its resolver on every connection, literal addresses before every request.
#[derive(Debug, Clone)]
pub struct Callbacks {
    client: reqwest::Client,
    guard: Guard,
}

impl Callbacks {
    pub fn new(guard: Guard) -> Callbacks {
        let client = builder().dns_resolver(std::sync::Arc::new(guard.clone())).build();
        Callbacks { client: client.expect("the TLS backend initializes"), guard }
    }

    /// Refuses a callback whose host is a literal address the guard does not allow (the resolver
    /// never sees those).
    fn check_literal(&self, url: &Url) -> Result<(), Failure> {
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.into(),
            Some(url::Host::Ipv6(ip)) => ip.into(),
            _ => return Ok(()),
        };
        self.guard.check(ip).map_err(Failure::Refused)
    }
}

/// A client for the external hubs the admin configured.
pub fn hub_client() -> reqwest::Client {
    builder().build().expect("the TLS backend initializes")
}

fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(concat!("crier/", env!("CARGO_PKG_VERSION"), " (WebSub hub)"))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(TOTAL_TIMEOUT)
        .pool_idle_timeout(Duration::from_secs(30))
}

/// Why an outgoing request did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The callback answered 410 Gone: the subscription ends.
    Gone,
    /// The callback's address is one the hub may not call (any more): the subscription ends.
    Refused(String),
    /// Anything else: a status, a timeout, a name that resolves to a refused address.
    Failed(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Gone => f.write_str("410 Gone"),
            Failure::Refused(reason) | Failure::Failed(reason) => f.write_str(reason),
        }
    }
}

/// A GET to `callback` with `params` added to its query; the answer's status and its first bytes.
pub async fn get(callbacks: &Callbacks, callback: &Url, params: &[(&str, &str)]) -> Result<(u16, Vec<u8>), String> {
    callbacks.check_literal(callback).map_err(|e| e.to_string())?;
    let mut url = callback.clone();
    url.query_pairs_mut().extend_pairs(params);
    let response = callbacks.client.get(url).send().await.map_err(describe)?;
    let status = response.status().as_u16();
    Ok((status, read_some(response, MAX_ANSWER).await))
}

/// Verification of intent (§5.3): the subscriber must answer 2xx with the challenge as its body.
pub async fn verify(
    callbacks: &Callbacks,
    callback: &Url,
    params: &[(&str, &str)],
    challenge: &str,
) -> Result<(), String> {
    let (status, body) = get(callbacks, callback, params).await?;
    if !(200..300).contains(&status) {
        return Err(format!("the callback answered {status}"));
    }
    if body.trim_ascii() != challenge.as_bytes() {
        return Err("the callback's answer did not echo hub.challenge".to_owned());
    }
    Ok(())
}

/// Content distribution (§7): the document, its type, its `Link` headers, and the signature of
/// the body under `secret`.
pub async fn deliver(
    callbacks: &Callbacks,
    callback: &Url,
    body: Bytes,
    content_type: &HeaderValue,
    links: &[HeaderValue],
    secret: Option<&str>,
) -> Result<(), Failure> {
    callbacks.check_literal(callback)?;
    let mut request = callbacks.client.post(callback.clone()).header(http::header::CONTENT_TYPE, content_type.clone());
    for link in links {
        request = request.header(http::header::LINK, link.clone());
    }
    if let Some(secret) = secret {
        request = request.header("X-Hub-Signature", signature(secret.as_bytes(), &body));
    }
    let response = request.body(body).send().await.map_err(|e| Failure::Failed(describe(e)))?;
    let status = response.status().as_u16();
    drop(read_some(response, MAX_ANSWER).await);
    match status {
        200..=299 => Ok(()),
        410 => Err(Failure::Gone),
        other => Err(Failure::Failed(format!("the callback answered {other}"))),
    }
}

/// A publish ping to an external hub: every changed topic in one form POST.
pub async fn ping(client: &reqwest::Client, hub: &Url, topics: &[String]) -> Result<(), String> {
    let form = {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("hub.mode", "publish");
        for topic in topics {
            form.append_pair("hub.url", topic);
        }
        form.finish()
    };
    let response = client
        .post(hub.clone())
        .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .map_err(describe)?;
    let status = response.status().as_u16();
    drop(read_some(response, MAX_ANSWER).await);
    if (200..300).contains(&status) { Ok(()) } else { Err(format!("the hub answered {status}")) }
}

/// `sha256=` and the hex HMAC-SHA256 of `body` under `secret` (§8).
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Up to `limit` bytes of a response body; the rest is never read.
async fn read_some(mut response: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk[..chunk.len().min(limit - body.len())]),
            _ => break,
        }
    }
    body
}

/// A reqwest error with its causes (the refused address, the timeout), on one line.
fn describe(error: reqwest::Error) -> String {
    let mut text = if error.is_timeout() { "timed out".to_owned() } else { error.to_string() };
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn retries_come_soon_then_back_off() {
        assert!(RETRY_DELAYS[0] <= Duration::from_secs(5));
        assert!(RETRY_DELAYS.len() + 1 >= 6);
        assert!(RETRY_DELAYS.windows(2).all(|w| w[0] < w[1]));
    }
}
