//! Keeps the hub from becoming a way into the private network (SSRF): which addresses a
//! subscriber's callback may reach, checked when the request arrives and again, by the HTTP
//! client's resolver, on every connection, so a name that changes its answer (DNS rebinding)
//! still cannot reach a refused address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, RwLock};

use ipnet::IpNet;
use url::{Host, Url};

/// Why an address is refused, unless `allow_callbacks` lists it; `None` for a public address.
pub fn refused(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => refused_v6(v6),
    }
}

fn refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) || (a == 192 && b == 0 && ip.octets()[2] == 0) {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        Some("multicast or reserved")
    } else {
        None
    }
}

fn refused_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let segments = ip.segments();
    // Addresses that carry an IPv4 address: mapped (::ffff:a.b.c.d), NAT64 (64:ff9b::/96), 6to4.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return refused_v4(v4);
    }
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || segments[0] == 0x2002 {
        let [_, _, _, _, _, _, hi, lo] = segments;
        let v4 = if segments[0] == 0x2002 {
            (u32::from(segments[1]) << 16) | u32::from(segments[2])
        } else {
            (u32::from(hi) << 16) | u32::from(lo)
        };
        return refused_v4(Ipv4Addr::from(v4));
    }
    if ip.is_unspecified() {
        Some("unspecified")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if (segments[0] & 0xfe00) == 0xfc00 || (segments[0] & 0xffc0) == 0xfec0 {
        Some("private")
    } else if (segments[0] & 0xffc0) == 0xfe80 {
        Some("link-local")
    } else if ip.is_multicast() {
        Some("multicast or reserved")
    } else {
        None
    }
}

/// Name lookups running at once. Each holds a blocking thread until the system resolver returns,
/// which may be long after the hub stopped waiting for it.
const MAX_LOOKUPS: usize = 32;

/// The callback addresses the hub may reach: public ones and those `allow` lists.
#[derive(Debug, Clone)]
pub struct Guard {
    allow: Arc<RwLock<Vec<IpNet>>>,
    lookups: Arc<tokio::sync::Semaphore>,
}

impl Default for Guard {
    fn default() -> Guard {
        Guard::new(Vec::new())
    }
}

impl Guard {
    pub fn new(allow: Vec<IpNet>) -> Guard {
        Guard { allow: Arc::new(RwLock::new(allow)), lookups: Arc::new(tokio::sync::Semaphore::new(MAX_LOOKUPS)) }
    }

    /// Replaces the allowed networks (a reload).
    pub fn allow(&self, allow: Vec<IpNet>) {
        *self.allow.write().unwrap_or_else(std::sync::PoisonError::into_inner) = allow;
    }

    /// An error naming the address and why, if the hub may not connect to `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        let Some(kind) = refused(ip) else { return Ok(()) };
        let canonical = ip.to_canonical();
        let allow = self.allow.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        if allow.iter().any(|net| net.contains(&ip) || net.contains(&canonical)) {
            return Ok(());
        }
        Err(format!(
            "{ip} is a {kind} address, which this hub does not call unless websub.allow_callbacks lists its network"
        ))
    }

    /// Checks a callback URL: `http` or `https`, a host, and every address the host resolves to
    /// allowed. Errors are reasons a subscriber can act on.
    pub async fn check_url(&self, url: &Url) -> Result<(), String> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("hub.callback must be an http:// or https:// URL, not {}:", url.scheme()));
        }
        let port = url.port_or_known_default().unwrap_or(80);
        match url.host() {
            None => Err("hub.callback has no host".to_owned()),
            Some(Host::Ipv4(ip)) => self.check(ip.into()),
            Some(Host::Ipv6(ip)) => self.check(ip.into()),
            // The addresses an internal name resolves to are logged, not told to whoever asked.
            Some(Host::Domain(name)) => self.resolve(name, port).await.map(drop).map_err(|reason| {
                tracing::info!("websub: callback {url} refused: {reason}");
                format!("{name} cannot be resolved, or resolves to an address this hub does not call (unless websub.allow_callbacks lists it)")
            }),
        }
    }

    /// The addresses `name` resolves to, when all of them are allowed.
    async fn resolve(&self, name: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        let too_long = || format!("resolving {name} took too long");
        let lookup = async {
            let permit = self.lookups.clone().acquire_owned().await.map_err(|_| too_long())?;
            let target = (name.to_owned(), port);
            // The permit goes with the lookup: it is given back when the resolver returns.
            let lookup = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                std::net::ToSocketAddrs::to_socket_addrs(&target).map(Iterator::collect::<Vec<SocketAddr>>)
            });
            lookup.await.map_err(|_| too_long())?.map_err(|error| format!("cannot resolve {name}: {error}"))
        };
        let addresses = tokio::time::timeout(super::CONNECT_TIMEOUT, lookup).await.map_err(|_| too_long())??;
        if addresses.is_empty() {
            return Err(format!("{name} has no address"));
        }
        for address in &addresses {
            self.check(address.ip()).map_err(|reason| format!("{name} resolves to {reason}"))?;
        }
        Ok(addresses)
    }
}

/// The HTTP client's resolver: a name resolves only if every one of its addresses is allowed, and
/// the client connects to the addresses checked here, never to a second answer.
impl reqwest::dns::Resolve for Guard {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.clone();
        Box::pin(async move {
            let addresses = guard
                .resolve(name.as_str(), 0)
                .await
                .map_err(|reason| -> Box<dyn std::error::Error + Send + Sync> { reason.into() })?;
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_networks_are_refused() {
        for text in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "192.0.0.8",
        ] {
            let ip: IpAddr = text.parse().unwrap();
            assert!(refused(ip).is_some(), "{text} must be refused");
            assert!(Guard::default().check(ip).is_err(), "{text}");
        }
        for text in ["93.184.215.14", "1.1.1.1", "172.32.0.1", "2606:4700::1111", "::ffff:8.8.8.8", "2002:0808:0808::1"]
        {
            assert_eq!(refused(text.parse().unwrap()), None, "{text} is public");
        }
    }

    #[test]
    fn allow_callbacks_opens_networks() {
        let guard = Guard::new(vec!["127.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()]);
        assert!(guard.check("127.0.0.1".parse().unwrap()).is_ok());
        assert!(guard.check("::ffff:127.0.0.1".parse().unwrap()).is_ok(), "mapped addresses match their IPv4 network");
        assert!(guard.check("fd00::5".parse().unwrap()).is_ok());
        let error = guard.check("10.0.0.1".parse().unwrap()).unwrap_err();
        assert!(error.contains("10.0.0.1 is a private address") && error.contains("allow_callbacks"), "{error}");
    }

    #[tokio::test]
    async fn urls_are_checked_by_scheme_and_every_address() {
        let guard = Guard::default();
        let check = |text: &str| {
            let url = Url::parse(text).unwrap();
            let guard = guard.clone();
            async move { guard.check_url(&url).await }
        };
        assert!(check("ftp://93.184.215.14/").await.unwrap_err().contains("http"));
        assert!(check("http://127.0.0.1:9/cb").await.unwrap_err().contains("loopback"));
        assert!(check("http://[::1]/cb").await.unwrap_err().contains("loopback"));
        let localhost = check("http://localhost/cb").await.unwrap_err();
        assert!(localhost.contains("localhost") && !localhost.contains("127.0.0.1"), "not told: {localhost}");
        let reason = guard.resolve("localhost", 80).await.unwrap_err();
        assert!(reason.contains("localhost resolves to") && reason.contains("loopback"), "{reason}");
        assert!(check("http://93.184.215.14/cb").await.is_ok(), "a public literal needs no lookup");
    }
}
