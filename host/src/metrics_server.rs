//! `[host] metrics_listen`: Prometheus' `/metrics` over HTTP, on a thread of its own.
//!
//! The HTTP side is `tiny_http` (small, synchronous, no async runtime for one GET).
//! Each scrape asks the host's main loop for its status (the same [`HostStatus`]
//! `fusehost status` gets through the control socket) and renders it with
//! [`crate::prometheus`].

use std::net::SocketAddr;
use std::sync::Arc;

use crate::error::HostError;
use crate::prometheus;
use crate::status_report::HostStatus;

/// A running `/metrics` endpoint; it stops when dropped.
pub struct MetricsServer {
    server: Arc<tiny_http::Server>,
    address: SocketAddr,
}

impl MetricsServer {
    /// Listens on `address` and answers each scrape with what `status` gives (`None`:
    /// the host is stopping, answered 503).
    pub fn start(
        address: SocketAddr,
        status: impl Fn() -> Option<HostStatus> + Send + 'static,
    ) -> Result<MetricsServer, HostError> {
        let server = tiny_http::Server::http(address).map_err(|error| {
            HostError::Usage(format!(
                "cannot serve /metrics on {address} ([host] metrics_listen): {error}; choose a free port"
            ))
        })?;
        let address = server.server_addr().to_ip().unwrap_or(address);
        let server = Arc::new(server);
        let serving = Arc::clone(&server);
        std::thread::Builder::new()
            .name("metrics".to_owned())
            .spawn(move || {
                for request in serving.incoming_requests() {
                    answer(request, &status);
                }
            })
            .map_err(|source| HostError::Io { context: "starting the metrics thread".into(), source })?;
        Ok(MetricsServer { server, address })
    }

    /// Where it listens (the port chosen when the config asked for port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

fn answer(request: tiny_http::Request, status: &impl Fn() -> Option<HostStatus>) {
    let path = request.url().split('?').next().unwrap_or_default();
    let response = match (request.method(), path) {
        (tiny_http::Method::Get, "/metrics") => match status() {
            Some(status) => text(200, prometheus::render(&status), prometheus::CONTENT_TYPE),
            None => text(503, "fusehost is stopping\n".to_owned(), "text/plain"),
        },
        (tiny_http::Method::Get, "/") => {
            text(200, "fusehost: metrics at /metrics\n".to_owned(), "text/plain; charset=utf-8")
        }
        _ => text(404, "not found: fusehost serves GET /metrics\n".to_owned(), "text/plain; charset=utf-8"),
    };
    if let Err(error) = request.respond(response) {
        tracing::debug!("a /metrics client went away: {error}");
    }
}

fn text(code: u16, body: String, content_type: &str) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let response = tiny_http::Response::from_string(body).with_status_code(code);
    match tiny_http::Header::from_bytes(&b"Content-Type"[..], content_type.as_bytes()) {
        Ok(header) => response.with_header(header),
        Err(()) => response,
    }
}
