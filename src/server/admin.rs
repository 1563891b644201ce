//! The admins' listener (`metrics_listen`): `/metrics` for Prometheus, `/stats` for people.
//! Nothing of it is on the public listener.

use std::sync::Arc;
use std::time::SystemTime;

use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};
use hyper::body::Incoming;

use super::{Connection, Handler};
use crate::audience::{Audience, page};
use crate::http::{Body, plain};
use crate::metrics::{CONTENT_TYPE, Metrics};

/// Answers the admins' requests.
#[derive(Debug, Clone)]
pub struct Admin {
    pub metrics: Arc<Metrics>,
    /// `None` when `count_subscribers` is off.
    pub audience: Option<Arc<Audience>>,
    /// The style of crier's pages, for `/stats`.
    pub style: &'static str,
}

impl Handler for Admin {
    async fn handle(&self, request: hyper::Request<Incoming>, connection: &Connection) -> Response<Body> {
        connection.slot.answering();
        let method = request.method();
        let no_store = || HeaderValue::from_static("no-store");
        if method != Method::GET && method != Method::HEAD {
            let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n".into(), method, no_store());
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        // Off the async workers: a scrape reads /proc and walks the counts under their lock.
        let this = self.clone();
        let run = |work: fn(&Admin) -> String| async move {
            tokio::task::spawn_blocking(move || work(&this)).await.unwrap_or_default()
        };
        let (text, content_type) = match request.uri().path() {
            "/metrics" => (run(|admin| admin.metrics.render()).await, CONTENT_TYPE),
            "/stats" => (run(Admin::stats).await, "text/html; charset=utf-8"),
            "/" => (
                "crier: /metrics (Prometheus), /stats (subscribers and pollers)\n".to_owned(),
                "text/plain; charset=utf-8",
            ),
            _ => return plain(StatusCode::NOT_FOUND, "not found: try /metrics or /stats\n".into(), method, no_store()),
        };
        let mut response = plain(StatusCode::OK, text, method, no_store());
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    }
}

impl Admin {
    fn stats(&self) -> String {
        let now = crate::state::unix_seconds(SystemTime::now());
        match &self.audience {
            Some(audience) => page::html(&audience.report(now), self.style),
            None => "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>crier — audience</title></head><body><p>Subscribers are not counted: <code>count_subscribers = false</code>.</p></body></html>\n".to_owned(),
        }
    }
}
