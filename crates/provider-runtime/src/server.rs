//! The manager's HTTP side: `/healthz` and `/readyz` on the health address (plain HTTP, for the
//! kubelet's probes), `/metrics` (OpenMetrics text) on the metrics address: HTTPS with each
//! request's bearer token reviewed by the API server by default, plain HTTP only with
//! `--insecure-metrics`. Both stop on the shared shutdown token. Serves state owned elsewhere
//! (`readiness`, `metrics`, `tls`, `metrics_auth`); decides nothing.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kube::Client;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cli::ManagerArgs;
use crate::metrics_auth::{Authorize, Decision, KubeAuthorizer, bearer_token};
use crate::readiness::Readiness;
use crate::tls::{self, TlsError, TlsListener};

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
    /// Secure metrics need their own port: the health probes are plain HTTP.
    #[error(
        "the metrics address {addr} equals the health address; secure metrics need their own \
         port (or pass --insecure-metrics)"
    )]
    SharedSecurePort {
        /// The shared address.
        addr: SocketAddr,
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

/// How `/metrics` is served.
#[derive(Clone)]
pub enum MetricsSecurity {
    /// HTTPS; a request is served only when `authorizer` allows its bearer token.
    Secure {
        /// Serving certificate and TLS settings.
        tls: Arc<rustls::ServerConfig>,
        /// Decides each request.
        authorizer: Arc<dyn Authorize>,
    },
    /// Plain HTTP without authentication (`--insecure-metrics`), for a loopback address or a
    /// network policy that already restricts who connects.
    Insecure,
}

impl std::fmt::Debug for MetricsSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Secure { .. } => "Secure",
            Self::Insecure => "Insecure",
        })
    }
}

impl MetricsSecurity {
    /// What the flags ask for: `--insecure-metrics`, else HTTPS with the certificate from
    /// `--metrics-cert-dir` (self-signed when absent) and reviews through `client`.
    pub fn from_args(args: &ManagerArgs, client: Client) -> Result<Self, TlsError> {
        if args.insecure_metrics {
            return Ok(Self::Insecure);
        }
        Ok(Self::Secure {
            tls: tls::server_config(args.metrics_cert_dir.as_deref())?,
            authorizer: Arc::new(KubeAuthorizer::new(client)),
        })
    }
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
    // `None` when the metrics address equals the health address: one listener serves both
    // (insecure metrics only).
    metrics: Option<TcpListener>,
    security: MetricsSecurity,
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
            .field("security", &self.security)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds the health and metrics addresses (port 0 picks a free port). They may be equal only
    /// for insecure metrics.
    pub async fn bind(
        health_addr: SocketAddr,
        metrics_addr: SocketAddr,
        security: MetricsSecurity,
        registry: Arc<Registry>,
        readiness: Readiness,
    ) -> Result<Self, ServerError> {
        let shared = metrics_addr == health_addr && health_addr.port() != 0;
        if shared && matches!(security, MetricsSecurity::Secure { .. }) {
            return Err(ServerError::SharedSecurePort { addr: metrics_addr });
        }
        let health = bind("health", health_addr).await?;
        let metrics = if shared {
            None
        } else {
            Some(bind("metrics", metrics_addr).await?)
        };
        Ok(Self {
            health,
            metrics,
            security,
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
        let Some(metrics_listener) = self.metrics else {
            // One address for both: only with insecure metrics (`bind` refuses it otherwise).
            let app = health_routes.merge(metrics_routes).with_state(self.state);
            return serve("health", self.health, app, shutdown).await;
        };
        let health = serve(
            "health",
            self.health,
            health_routes.with_state(self.state.clone()),
            shutdown.clone(),
        );
        let metrics_app = metrics_routes.with_state(self.state);
        let metrics = async move {
            match self.security {
                MetricsSecurity::Insecure => {
                    serve("metrics", metrics_listener, metrics_app, shutdown).await
                }
                MetricsSecurity::Secure { tls, authorizer } => {
                    let app = metrics_app
                        .route_layer(middleware::from_fn_with_state(authorizer, authenticate));
                    let listener = TlsListener::new(metrics_listener, tls, shutdown.clone())
                        .map_err(|source| ServerError::Serve {
                            what: "metrics",
                            source,
                        })?;
                    serve("metrics", listener, app, shutdown).await
                }
            }
        };
        tokio::try_join!(health, metrics).map(|_| ())
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { what, addr, source })
}

async fn serve<L>(
    what: &'static str,
    listener: L,
    app: Router,
    shutdown: CancellationToken,
) -> Result<(), ServerError>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .map_err(|source| ServerError::Serve { what, source })
}

/// Lets a request through only when its bearer token is allowed to `get` `/metrics`.
async fn authenticate(
    State(authorizer): State<Arc<dyn Authorize>>,
    request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_token);
    let decision = match token {
        Some(token) => authorizer.authorize(token).await,
        None => Decision::Unauthenticated,
    };
    match decision {
        Decision::Allowed => next.run(request).await,
        Decision::Unauthenticated => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "Unauthorized\n",
        )
            .into_response(),
        Decision::Forbidden => (StatusCode::FORBIDDEN, "Forbidden\n").into_response(),
        Decision::Failed => {
            (StatusCode::INTERNAL_SERVER_ERROR, "Authorization failed\n").into_response()
        }
    }
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

    /// A loopback address with a port free a moment ago.
    async fn free_addr() -> SocketAddr {
        TcpListener::bind(localhost())
            .await
            .unwrap()
            .local_addr()
            .unwrap()
    }

    /// Cancels the server and waits (bounded) for it to finish cleanly.
    async fn stop(
        shutdown: CancellationToken,
        task: tokio::task::JoinHandle<Result<(), ServerError>>,
    ) {
        shutdown.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
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
            MetricsSecurity::Insecure,
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

        stop(shutdown, task).await;
    }

    #[tokio::test]
    async fn one_address_serves_health_and_metrics() {
        // Find a free port, then ask for it twice.
        let addr = free_addr().await;
        let server = Server::bind(
            addr,
            addr,
            MetricsSecurity::Insecure,
            Arc::new(Registry::default()),
            Readiness::new(),
        )
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
        stop(shutdown, task).await;
    }

    #[tokio::test]
    async fn busy_port_is_a_bind_error() {
        let taken = TcpListener::bind(localhost()).await.unwrap();
        let addr = taken.local_addr().unwrap();
        let err = Server::bind(
            addr,
            localhost(),
            MetricsSecurity::Insecure,
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

    /// Tokens and what a fake API server would say about them.
    struct FakeReviews;

    impl Authorize for FakeReviews {
        fn authorize<'a>(&'a self, token: &'a str) -> futures::future::BoxFuture<'a, Decision> {
            Box::pin(async move {
                match token {
                    "reader" => Decision::Allowed,
                    "stranger" => Decision::Forbidden,
                    "broken" => Decision::Failed,
                    _ => Decision::Unauthenticated,
                }
            })
        }
    }

    fn secure() -> MetricsSecurity {
        MetricsSecurity::Secure {
            tls: crate::tls::server_config(None).unwrap(),
            authorizer: Arc::new(FakeReviews),
        }
    }

    #[tokio::test]
    async fn secure_metrics_need_an_allowed_bearer_token() {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        drop(metrics.reconcile_started("bootstrap"));
        let server = Server::bind(
            localhost(),
            localhost(),
            secure(),
            Arc::new(registry),
            Readiness::new(),
        )
        .await
        .unwrap();
        let health = server.health_addr().unwrap();
        let addr = server.metrics_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server.run(shutdown.clone()));

        let https = |token| test_support::https_get(addr, "/metrics", token);
        assert_eq!(https(None).await.unwrap().status, 401);
        assert_eq!(https(Some("forged")).await.unwrap().status, 401);
        assert_eq!(https(Some("stranger")).await.unwrap().status, 403);
        assert_eq!(https(Some("broken")).await.unwrap().status, 500);
        let allowed = https(Some("reader")).await.unwrap();
        assert_eq!(allowed.status, 200);
        assert!(
            allowed
                .body
                .contains("k0smotron_reconcile_total{controller=\"bootstrap\"} 1"),
            "{}",
            allowed.body
        );
        // Plain HTTP gets no metrics from the TLS port.
        let plain = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream
                .write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
                .await
                .unwrap();
            let mut response = Vec::new();
            let _ = stream.read_to_end(&mut response).await;
            response
        })
        .await
        .unwrap();
        assert!(!String::from_utf8_lossy(&plain).contains("k0smotron_"));
        // Probes stay plain HTTP without a token.
        assert_eq!(get(health, "/healthz").await.0, 200);

        stop(shutdown, task).await;
    }

    #[tokio::test]
    async fn secure_metrics_refuse_the_health_port() {
        let addr = free_addr().await;
        let err = Server::bind(
            addr,
            addr,
            secure(),
            Arc::new(Registry::default()),
            Readiness::new(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, ServerError::SharedSecurePort { .. }),
            "{err:?}"
        );
    }
}
