//! The accept loop: serves the published set on a listener it is given, until told to stop.
//!
//! Limits keep one client from hurting the others: a header read timeout (which needs hyper's
//! timer, and also closes idle keep-alive connections), a write timeout (a client that does not
//! read), a maximum request head size (431), a cap on requests per connection, and a cap on
//! connections where a new one evicts the longest-waiting idle or incomplete one ([`slots`]), so
//! that slow clients cannot lock the others out. Shutdown stops accepting and lets in-flight
//! responses finish within a bound.

pub mod admin;
mod slots;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use http::header::{CONNECTION, HeaderValue, IF_MODIFIED_SINCE, IF_NONE_MATCH, USER_AGENT};
use http::{Method, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::audience::{Audience, ClientMemo, Seen};
use crate::documents::Kind;
use crate::http::{Answer, Body, Coding, answer};
use crate::metrics::Metrics;
use crate::served::Shared;
use crate::websub::Hub;
pub use slots::Slot;
use slots::Slots;

/// How long a request that arrives before the first publish waits for it.
const STARTUP_WAIT: Duration = Duration::from_secs(60);

/// Connection limits.
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_connections: usize,
    pub max_requests_per_connection: usize,
    pub write_timeout: Duration,
    pub shutdown_timeout: Duration,
}

impl Limits {
    pub fn from_config(config: &crate::config::Config) -> Limits {
        Limits {
            header_timeout: config.header_timeout,
            max_header_bytes: config.max_header_bytes,
            max_connections: config.max_connections,
            max_requests_per_connection: config.max_requests_per_connection,
            write_timeout: config.write_timeout,
            shutdown_timeout: config.shutdown_timeout,
        }
    }
}

/// What answers the requests of one listener.
pub trait Handler: Clone + Send + Sync + 'static {
    /// Answers `request` on `connection`, telling its slot once the request has fully arrived.
    fn handle(
        &self,
        request: hyper::Request<Incoming>,
        connection: &Connection,
    ) -> impl Future<Output = Response<Body>> + Send;
}

/// One client connection, as its requests see it.
pub struct Connection {
    pub peer: SocketAddr,
    /// Its place in the connection table.
    pub slot: Arc<Slot>,
    /// Who the client is, as subscriber counting identified it for an earlier request (a
    /// connection's requests come one after another, from one address, nearly always with one
    /// User-Agent).
    client: std::sync::Mutex<ClientMemo>,
}

/// Who watches the requests besides the client: metrics, subscriber counts, the access log.
#[derive(Debug, Clone, Default)]
pub struct Observers {
    pub metrics: Option<Arc<Metrics>>,
    pub audience: Option<Arc<Audience>>,
    /// One line per request under the target `crier::access` when set; `Some(true)` adds the
    /// client's address.
    pub access_log: Option<bool>,
}

/// What answers requests: the served set of the moment and, when it runs, the WebSub hub.
#[derive(Debug, Clone)]
pub struct Answerer {
    pub shared: Arc<Shared>,
    pub hub: Option<Arc<Hub>>,
    pub observers: Observers,
}

/// What the observers need of a request, taken before the hub consumes it.
struct Asked {
    method: Method,
    /// For the access log only.
    path: String,
    user_agent: Option<HeaderValue>,
    conditional: bool,
    peer: SocketAddr,
}

impl Handler for Answerer {
    /// Answers one request from the served set of the moment (or the hub, at its URL).
    async fn handle(&self, request: hyper::Request<Incoming>, connection: &Connection) -> Response<Body> {
        let (peer, slot) = (connection.peer, &*connection.slot);
        let started = Instant::now();
        let headers = request.headers();
        let asked = Asked {
            method: request.method().clone(),
            path: self.observers.access_log.map(|_| request.uri().path().to_owned()).unwrap_or_default(),
            user_agent: headers.get(USER_AGENT).cloned(),
            conditional: headers.contains_key(IF_NONE_MATCH) || headers.contains_key(IF_MODIFIED_SINCE),
            peer,
        };
        let (answer, ttl) = match self.hub.as_ref().filter(|hub| hub.answers(request.uri().path())) {
            Some(hub) => (self.hub_answer(hub, request, slot).await, Duration::ZERO),
            None => {
                slot.answering();
                if request.uri().path() != "/healthz" {
                    wait_ready(&self.shared).await;
                }
                let served = self.shared.load();
                (answer(&served, request.method(), request.uri().path(), request.headers()), served.policy.ttl)
            }
        };
        self.observers.saw(&asked, &answer, ttl, started.elapsed(), connection);
        answer.response
    }
}

impl Answerer {
    /// The hub's answer. Until its body has arrived, a hub request is an incomplete request: its
    /// slot stays evictable, so clients that send bodies slowly cannot hold every slot.
    async fn hub_answer(&self, hub: &Arc<Hub>, request: hyper::Request<Incoming>, slot: &Slot) -> Answer {
        let received = hub.receive(request).await;
        slot.answering();
        wait_ready(&self.shared).await;
        let response = match received {
            Ok(body) => hub.answer(&body).await,
            Err(refusal) => refusal,
        };
        Answer { response, kind: Kind::Hub, coding: Coding::Identity, feed: None }
    }
}

impl Observers {
    /// Tells each observer of an answered request.
    fn saw(&self, asked: &Asked, answer: &Answer, ttl: Duration, elapsed: Duration, connection: &Connection) {
        let status = answer.response.status();
        // hyper sends no body in answer to HEAD.
        let bytes = match asked.method {
            Method::HEAD => 0,
            _ => hyper::body::Body::size_hint(answer.response.body()).exact().unwrap_or(0),
        };
        if let Some(metrics) = &self.metrics {
            metrics.request(answer.kind, status, answer.coding, bytes, elapsed);
        }
        let user_agent = asked.user_agent.as_ref().map_or(&b""[..], HeaderValue::as_bytes);
        let counted = asked.method == Method::GET && matches!(status, StatusCode::OK | StatusCode::NOT_MODIFIED);
        if let (Some(audience), Some((feed, format)), true) = (&self.audience, &answer.feed, counted) {
            let mut memo = connection.client.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            audience.record_with(
                &mut memo,
                &Seen {
                    feed,
                    format: *format,
                    address: asked.peer.ip(),
                    user_agent,
                    not_modified: status == StatusCode::NOT_MODIFIED,
                    conditional: asked.conditional,
                    ttl,
                    now: crate::state::unix_seconds(SystemTime::now()),
                },
            );
        }
        if let Some(addresses) = self.access_log {
            let (method, path, ms) = (&asked.method, &asked.path, elapsed.as_secs_f64() * 1000.0);
            let ua = String::from_utf8_lossy(user_agent);
            match addresses {
                true => {
                    tracing::info!(target: "crier::access", "{} {method} {path} {} {bytes} {ms:.3}ms {ua:?}", asked.peer.ip(), status.as_u16())
                }
                false => {
                    tracing::info!(target: "crier::access", "{method} {path} {} {bytes} {ms:.3}ms {ua:?}", status.as_u16())
                }
            }
        }
    }
}

/// A request that arrives before the first publish (socket activation starts crier for it) waits
/// for it rather than getting a 503 (or the hub's denial); `/healthz` does not wait.
async fn wait_ready(shared: &Shared) {
    if !shared.load().ready {
        let _ = tokio::time::timeout(STARTUP_WAIT, shared.wait_ready()).await;
    }
}

/// The service of one connection: answers its requests, telling its slot when each is in
/// progress; the `max`th asks the client to close.
fn service<H: Handler>(
    handler: H,
    connection: Arc<Connection>,
    max: usize,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Body>, Infallible>> + Send,
> {
    let requests = AtomicUsize::new(0);
    service_fn(move |request| {
        let (handler, connection) = (handler.clone(), connection.clone());
        let last = requests.fetch_add(1, Ordering::Relaxed) + 1 >= max;
        async move {
            let mut response = handler.handle(request, &connection).await;
            if last {
                response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
            }
            connection.slot.answered();
            Ok(response)
        }
    })
}

/// Serves until `shutdown` completes, then waits (at most `shutdown_timeout`) for in-flight
/// connections to finish their responses.
pub async fn serve<H: Handler>(listener: TcpListener, handler: H, limits: Limits, shutdown: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    // A client still reading its answer after a header timeout's worth of time may give up its
    // slot when the table is full (the write timeout alone only ends a reader that stops).
    let slots = Slots::new(limits.max_connections, limits.header_timeout);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let slot = tokio::select! {
            slot = slots.acquire(peer.ip()) => Arc::new(slot),
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // A client that asks and never reads would hold its slot forever: writes that make no
        // progress for `write_timeout` end the connection.
        let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
        stream.set_write_timeout(Some(limits.write_timeout));
        let stream = slot.track(Box::pin(stream));
        let connection = Arc::new(Connection { peer, slot: slot.clone(), client: Default::default() });
        let service = service(handler.clone(), connection, limits.max_requests_per_connection);
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            tokio::select! {
                result = connection => if let Err(error) = result {
                    tracing::debug!("connection ended with an error: {error}");
                },
                () = slot.evicted() => {}
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!("shutdown: some connections did not finish within {:?}", limits.shutdown_timeout);
    }
}
