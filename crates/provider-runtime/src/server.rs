//! The manager's HTTP side: `/healthz` and `/readyz` on the health address, `/metrics`
//! (OpenMetrics text) on the metrics address, both stopped by the shared shutdown token. Serves
//! state owned elsewhere (`readiness`, `metrics`); decides nothing.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::readiness::Readiness;

const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Failures of the health and metrics server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// An address could not be bound (in use, no permission, ...).
    #[error("binding the {what} server to {addr}")]
    Bind {
        /// Which server (`health` or `metrics`).
        what: &'static str,
        /// The address that failed.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Serving connections failed.
    #[error("serving the {what} server")]
    Serve {
        /// Which server (`health` or `metrics`).
        what: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

#[derive(Clone)]
struct AppState {
    readiness: Readiness,
    registry: Arc<Registry>,
}

/// The bound (not yet serving) health and metrics server. Binding first makes a busy port a
/// start-up error of the binary instead of a failure in a background task.
pub struct Server {
    health: TcpListener,
    // `None` when the metrics address equals the health address: one listener serves both.
    metrics: Option<TcpListener>,
    state: AppState,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("health", &self.health.local_addr().ok())
            .field(
                "metrics",
                &self.metrics.as_ref().and_then(|l| l.local_addr().ok()),
            )
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds the health and metrics addresses (they may be equal; port 0 picks a free port).
    pub async fn bind(
        health_addr: SocketAddr,
        metrics_addr: SocketAddr,
        registry: Arc<Registry>,
        readiness: Readiness,
    ) -> Result<Self, ServerError> {
        let health = bind("health", health_addr).await?;
        let metrics = if metrics_addr == health_addr && health_addr.port() != 0 {
            None
        } else {
            Some(bind("metrics", metrics_addr).await?)
        };
        Ok(Self {
            health,
            metrics,
            state: AppState {
                readiness,
                registry,
            },
        })
    }

    /// The address `/healthz` and `/readyz` are served on.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health.local_addr().ok()
    }

    /// The address `/metrics` is served on.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        match &self.metrics {
            Some(listener) => listener.local_addr().ok(),
            None => self.health_addr(),
        }
    }

    /// Serves until `shutdown` is cancelled, then finishes in-flight requests and returns.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ServerError> {
        let health_routes = Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz));
        let metrics_routes = Router::new().route("/metrics", get(metrics));
        match self.metrics {
            None => {
                let app = health_routes.merge(metrics_routes).with_state(self.state);
                serve("health", self.health, app, shutdown).await
            }
            Some(metrics_listener) => {
                let health = serve(
                    "health",
                    self.health,
                    health_routes.with_state(self.state.clone()),
                    shutdown.clone(),
                );
                let metrics = serve(
                    "metrics",
                    metrics_listener,
                    metrics_routes.with_state(self.state),
                    shutdown,
                );
                tokio::try_join!(health, metrics).map(|_| ())
            }
        }
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { what, addr, source })
}

async fn serve(
    what: &'static str,
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .map_err(|source| ServerError::Serve { what, source })
}

/// Liveness: the process runs and its runtime answers.
async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> Response {
    let status = if state.readiness.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, state.readiness.describe()).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    match crate::metrics::render(&state.registry) {
        Ok(body) => ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], body).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "encoding metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::readiness::Role;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// A minimal HTTP/1.1 GET: the status code and the body.
    async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap();
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap();
        (status, body)
    }

    fn localhost() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    #[tokio::test]
    async fn health_readiness_and_metrics_endpoints() {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        drop(metrics.reconcile_started("controlplane"));
        let readiness = Readiness::new();
        let server = Server::bind(
            localhost(),
            localhost(),
            Arc::new(registry),
            readiness.clone(),
        )
        .await
        .unwrap();
        let health = server.health_addr().unwrap();
        let metrics_addr = server.metrics_addr().unwrap();
        assert_ne!(health, metrics_addr);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server.run(shutdown.clone()));

        assert_eq!(get(health, "/healthz").await.0, 200);
        let (status, body) = get(health, "/readyz").await;
        assert_eq!(status, 503, "{body}");
        readiness.set_role(Role::Leading);
        readiness.gate("controlplane").ready();
        assert_eq!(get(health, "/readyz").await.0, 200);

        let (status, body) = get(metrics_addr, "/metrics").await;
        assert_eq!(status, 200);
        assert!(
            body.contains("k0smotron_reconcile_total{controller=\"controlplane\"} 1"),
            "{body}"
        );
        assert_eq!(
            get(health, "/metrics").await.0,
            404,
            "metrics only on the metrics address"
        );

        shutdown.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn one_address_serves_health_and_metrics() {
        // Find a free port, then ask for it twice.
        let addr = TcpListener::bind(localhost())
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let server = Server::bind(addr, addr, Arc::new(Registry::default()), Readiness::new())
            .await
            .unwrap();
        assert_eq!(server.metrics_addr(), Some(addr));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server.run(shutdown.clone()));
        assert_eq!(get(addr, "/healthz").await.0, 200);
        assert_eq!(get(addr, "/readyz").await.0, 503);
        let (status, body) = get(addr, "/metrics").await;
        assert_eq!(status, 200);
        assert!(body.ends_with("# EOF\n"), "{body}");
        shutdown.cancel();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn busy_port_is_a_bind_error() {
        let taken = TcpListener::bind(localhost()).await.unwrap();
        let addr = taken.local_addr().unwrap();
        let err = Server::bind(
            addr,
            localhost(),
            Arc::new(Registry::default()),
            Readiness::new(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, ServerError::Bind { what: "health", .. }),
            "{err:?}"
        );
    }
}
