//! The accept loop: serves the published set on a listener it is given, until told to stop.
//!
//! Limits keep one client from hurting the others: a header read timeout (which needs hyper's
//! timer, and also closes idle keep-alive connections), a write timeout (a client that does not
//! read), a maximum request head size (431), a cap on requests per connection, and a cap on
//! connections where a new one evicts the longest-waiting idle or incomplete one ([`slots`]), so
//! that slow clients cannot lock the others out. Shutdown stops accepting and lets in-flight
//! responses finish within a bound.

mod slots;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::Response;
use http::header::{CONNECTION, HeaderValue};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::http::{Body, respond};
use crate::served::Shared;
use crate::websub::Hub;
use slots::{Slot, Slots};

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

/// What answers requests: the served set of the moment and, when it runs, the WebSub hub.
#[derive(Debug, Clone)]
pub struct Answerer {
    pub shared: Arc<Shared>,
    pub hub: Option<Arc<Hub>>,
}

/// Answers one request from the served set of the moment (or the hub, at its URL), telling `slot`
/// when the answering starts; `last` asks the client to close.
async fn answer(
    answerer: Answerer,
    slot: &Slot,
    request: hyper::Request<Incoming>,
    last: bool,
) -> Result<Response<Body>, Infallible> {
    let Answerer { shared, hub } = answerer;
    let mut response = match hub.filter(|hub| hub.answers(request.uri().path())) {
        Some(hub) => {
            // Until its body has arrived, a hub request is an incomplete request: its slot stays
            // evictable, so clients that send bodies slowly cannot hold every slot.
            let received = hub.receive(request).await;
            slot.answering();
            wait_ready(&shared).await;
            match received {
                Ok(body) => hub.answer(&body).await,
                Err(refusal) => refusal,
            }
        }
        None => {
            slot.answering();
            if request.uri().path() != "/healthz" {
                wait_ready(&shared).await;
            }
            respond(&shared.load(), request.method(), request.uri().path(), request.headers())
        }
    };
    if last {
        response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(response)
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
fn service(
    answerer: Answerer,
    slot: Arc<Slot>,
    max: usize,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Body>, Infallible>> + Send,
> {
    let requests = AtomicUsize::new(0);
    service_fn(move |request| {
        let (answerer, slot) = (answerer.clone(), slot.clone());
        let last = requests.fetch_add(1, Ordering::Relaxed) + 1 >= max;
        async move {
            let response = answer(answerer, &slot, request, last).await;
            slot.answered();
            response
        }
    })
}

/// Serves until `shutdown` completes, then waits (at most `shutdown_timeout`) for in-flight
/// connections to finish their responses.
pub async fn serve(listener: TcpListener, answerer: Answerer, limits: Limits, shutdown: impl Future<Output = ()>) {
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
        let service = service(answerer.clone(), slot.clone(), limits.max_requests_per_connection);
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
