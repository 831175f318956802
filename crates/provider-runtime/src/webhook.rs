//! The conversion webhook server: `POST /convert` takes an `apiextensions.k8s.io/v1`
//! `ConversionReview` and answers with every object converted by
//! [`k0smotron_api::conversion::convert`], over HTTPS with the serving certificate
//! [`webhook_certs`](crate::webhook_certs) keeps (swapped in place when it is renewed). Serves on
//! every replica, leader or not: the API server may call any of them. Makes no certificates and
//! writes nothing to the cluster.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use k0smotron_api::conversion;
use k0smotron_api::names::CONVERSION_PATH;
use kube::Client;
use kube::core::Status;
use kube::core::conversion::{ConversionRequest, ConversionResponse, ConversionReview};
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cli::ManagerArgs;
use crate::server::ServerError;
use crate::tls::TlsListener;
use crate::webhook_certs;

/// Largest `ConversionReview` accepted. The API server sends a whole list page in one review
/// (each object up to etcd's 1.5 MiB); a larger list must be read in pages.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// The serving certificate, replaceable while the server runs. Until one is set, handshakes
/// fail (the API server retries; nothing is served with a wrong certificate).
#[derive(Debug, Default)]
pub struct ServingCert {
    current: RwLock<Option<Arc<CertifiedKey>>>,
}

impl ServingCert {
    /// Serves `key` from the next handshake on.
    pub fn set(&self, key: Arc<CertifiedKey>) {
        // A poisoned lock only means a writer panicked mid-assignment of an `Option<Arc>`,
        // which cannot leave it half-written: take it over.
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        *current = Some(key);
    }

    /// Whether a certificate is loaded.
    pub fn is_set(&self) -> bool {
        self.current
            .read()
            .map(|c| c.is_some())
            .unwrap_or_else(|e| e.into_inner().is_some())
    }
}

impl ResolvesServerCert for ServingCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }
}

/// The TLS configuration serving whatever `cert` holds at each handshake.
fn server_config(cert: Arc<ServingCert>) -> Result<Arc<ServerConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    // axum serves HTTP/1 only here (see `tls::server_config`).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The bound (not yet serving) webhook server. Binding first makes a busy port a start-up error.
#[derive(Debug)]
pub struct WebhookServer {
    listener: TcpListener,
}

impl WebhookServer {
    /// Binds `addr` (port 0 picks a free port).
    pub async fn bind(addr: SocketAddr) -> Result<Self, ServerError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind {
                what: "webhook",
                addr,
                source,
            })?;
        Ok(Self { listener })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves `/convert` over HTTPS with `cert` until `shutdown` is cancelled.
    pub async fn run(
        self,
        cert: Arc<ServingCert>,
        shutdown: CancellationToken,
    ) -> Result<(), ServerError> {
        let config = server_config(cert).map_err(|e| ServerError::Serve {
            what: "webhook",
            source: std::io::Error::other(e),
        })?;
        let listener =
            TlsListener::new(self.listener, config, shutdown.clone()).map_err(|source| {
                ServerError::Serve {
                    what: "webhook",
                    source,
                }
            })?;
        axum::serve(listener, router())
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .map_err(|source| ServerError::Serve {
                what: "webhook",
                source,
            })
    }
}

/// Starts the conversion webhook when `--webhook-addr` is set: binds it (a busy port fails
/// here), then serves it and keeps its certificates and the CA bundle of `crds` current, both
/// until `shutdown`. Returns the server's task. `default_service` and `default_secret` stand in
/// for `--webhook-service` and `--webhook-secret`.
pub async fn start(
    args: &ManagerArgs,
    client: Client,
    default_service: &str,
    default_secret: &str,
    crds: Vec<String>,
    shutdown: CancellationToken,
) -> Result<Option<JoinHandle<Result<(), ServerError>>>, ServerError> {
    let (Some(addr), Some(config)) = (
        args.webhook_addr,
        args.webhook_cert_config(default_service, default_secret, crds),
    ) else {
        return Ok(None);
    };
    let server = WebhookServer::bind(addr).await?;
    tracing::info!(addr = ?server.local_addr(), target = ?config.target, "conversion webhook");
    let cert = Arc::new(ServingCert::default());
    tokio::spawn(webhook_certs::run(
        client,
        config,
        cert.clone(),
        shutdown.clone(),
    ));
    Ok(Some(tokio::spawn(server.run(cert, shutdown))))
}

/// `POST /convert` with the body limit.
pub fn router() -> Router {
    Router::new()
        .route(CONVERSION_PATH, post(convert))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

async fn convert(body: Bytes) -> Response {
    match review(&body) {
        Ok(review) => axum::Json(review).into_response(),
        Err(message) => (StatusCode::BAD_REQUEST, message).into_response(),
    }
}

/// Answers one `ConversionReview` (the JSON body): every object converted, in order, or a failed
/// result naming the first object that could not be. `Err` (an HTTP 400) only when the body is
/// not a `ConversionReview` with a request at all.
pub fn review(body: &[u8]) -> Result<ConversionReview, String> {
    let review: ConversionReview = serde_json::from_slice(body)
        .map_err(|e| format!("the body is not a ConversionReview: {e}\n"))?;
    let request = ConversionRequest::from_review(review)
        .map_err(|e| format!("the ConversionReview has no request: {e}\n"))?;
    let desired = request.desired_api_version.clone();
    let objects = request.objects.clone();
    let response = ConversionResponse::for_request(request);
    let mut converted = Vec::with_capacity(objects.len());
    for (index, object) in objects.into_iter().enumerate() {
        match conversion::convert(object, &desired) {
            Ok(object) => converted.push(object),
            Err(err) => {
                let message = format!("object {index}: {}", error_chain(&err));
                tracing::warn!(desired_api_version = %desired, %message, "conversion failed");
                return Ok(response
                    .failure(Status::failure(&message, "ConversionFailed"))
                    .into_review());
            }
        }
    }
    Ok(response.success(converted).into_review())
}

/// An error and its sources, `: `-separated (serde's message says which field is wrong).
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn body(desired: &str, objects: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "ConversionReview",
            "request": {
                "uid": "0000-1111",
                "desiredAPIVersion": desired,
                "objects": objects,
            }
        }))
        .unwrap()
    }

    fn answer(body: &[u8]) -> Value {
        serde_json::to_value(review(body).unwrap()).unwrap()
    }

    /// A v1beta1 `Cluster` as upstream's docs write one.
    fn upstream_cluster() -> Value {
        json!({
            "apiVersion": "k0smotron.io/v1beta1",
            "kind": "Cluster",
            "metadata": {"name": "k0smotron-test", "namespace": "default", "uid": "u-1", "resourceVersion": "7"},
            "spec": {
                "replicas": 1,
                "version": "v1.31.5-k0s.0",
                "service": {"type": "NodePort", "apiPort": 30443, "konnectivityPort": 30132},
                "persistence": {"type": "emptyDir"}
            }
        })
    }

    #[test]
    fn converts_every_object_in_order_and_echoes_the_uid() {
        let mut second = upstream_cluster();
        second["metadata"]["name"] = json!("second");
        let out = answer(&body(
            "k0smotron.io/v1beta2",
            json!([upstream_cluster(), second]),
        ));
        assert_eq!(out["apiVersion"], "apiextensions.k8s.io/v1");
        assert_eq!(out["kind"], "ConversionReview");
        let response = &out["response"];
        assert_eq!(response["uid"], "0000-1111");
        assert_eq!(response["result"]["status"], "Success");
        let objects = response["convertedObjects"].as_array().unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0]["apiVersion"], "k0smotron.io/v1beta2");
        assert_eq!(objects[0]["metadata"]["name"], "k0smotron-test");
        assert_eq!(objects[0]["metadata"]["uid"], "u-1");
        assert_eq!(objects[0]["metadata"]["resourceVersion"], "7");
        assert_eq!(objects[1]["metadata"]["name"], "second");
        assert_eq!(objects[0]["spec"]["service"]["apiPort"], 30443);
    }

    #[test]
    fn a_round_trip_through_the_handler_gives_the_object_back() {
        let up = answer(&body("k0smotron.io/v1beta2", json!([upstream_cluster()])));
        let v2 = up["response"]["convertedObjects"][0].clone();
        let down = answer(&body("k0smotron.io/v1beta1", json!([v2.clone()])));
        let v1 = down["response"]["convertedObjects"][0].clone();
        assert_eq!(v1["apiVersion"], "k0smotron.io/v1beta1");
        let again = answer(&body("k0smotron.io/v1beta2", json!([v1])));
        assert_eq!(again["response"]["convertedObjects"][0], v2);
    }

    #[test]
    fn one_bad_object_fails_the_review_with_a_message_naming_it() {
        let mut bad = upstream_cluster();
        bad["metadata"]["name"] = json!("broken");
        bad["spec"]["replicas"] = json!("three");
        let out = answer(&body(
            "k0smotron.io/v1beta2",
            json!([upstream_cluster(), bad]),
        ));
        let response = &out["response"];
        assert_eq!(response["uid"], "0000-1111");
        assert_eq!(response["result"]["status"], "Failure");
        let message = response["result"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("object 1: Cluster default/broken: not a valid v1beta1 object: "),
            "{message}"
        );
        assert!(message.contains("invalid type"), "{message}");
        assert_eq!(response["convertedObjects"], json!([]));
    }

    #[test]
    fn kinds_we_do_not_serve_fail_the_review() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
        let out = answer(&body("v2", json!([pod])));
        assert_eq!(out["response"]["result"]["status"], "Failure");
        let wrong_group = answer(&body(
            "bootstrap.cluster.x-k8s.io/v1beta1",
            json!([upstream_cluster()]),
        ));
        assert!(
            wrong_group["response"]["result"]["message"]
                .as_str()
                .unwrap()
                .contains("different API groups")
        );
    }

    #[test]
    fn a_body_that_is_not_a_review_is_a_bad_request() {
        assert!(review(b"not json").is_err());
        let no_request =
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview"});
        assert!(review(&serde_json::to_vec(&no_request).unwrap()).is_err());
    }

    /// POSTs `body` to `/convert` over TLS trusting only `ca_pem`: the status code, the body and
    /// the certificate the server presented.
    async fn post_tls(
        addr: SocketAddr,
        ca_pem: &str,
        body: &[u8],
    ) -> (u16, String, rustls::pki_types::CertificateDer<'static>) {
        use rustls::pki_types::pem::PemObject as _;
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut roots = rustls::RootCertStore::empty();
        for der in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(der.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut tls = connector.connect(name, stream).await.unwrap();
        let presented = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
        let head = format!(
            "POST {CONVERSION_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        tls.write_all(head.as_bytes()).await.unwrap();
        tls.write_all(body).await.unwrap();
        let mut response = Vec::new();
        // A peer that closes without close_notify is fine here: the body is complete.
        let _ = tls.read_to_end(&mut response).await;
        let response = String::from_utf8(response).unwrap();
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap();
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap();
        (status, body, presented)
    }

    #[tokio::test]
    async fn serves_reviews_over_tls_and_a_renewed_certificate_from_the_next_handshake() {
        use crate::webhook_certs::{Plan, issue};
        use rustls::pki_types::pem::PemObject as _;
        let names = vec!["127.0.0.1".to_owned()];
        let now = jiff::Timestamp::now();
        let first = issue(None, Plan::NewCa, &names, now).unwrap();
        let cert = Arc::new(ServingCert::default());
        assert!(!cert.is_set());
        cert.set(first.certified_key().unwrap());
        let server = WebhookServer::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = server.local_addr().unwrap();
        let token = CancellationToken::new();
        let task = tokio::spawn(server.run(cert.clone(), token.clone()));

        let request = body("k0smotron.io/v1beta2", json!([upstream_cluster()]));
        let (status, answer, presented) = post_tls(addr, &first.ca_bundle, &request).await;
        assert_eq!(status, 200, "{answer}");
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["response"]["result"]["status"], "Success");
        let first_der =
            rustls::pki_types::CertificateDer::from_pem_slice(first.cert.as_bytes()).unwrap();
        assert_eq!(presented, first_der);

        let renewed = issue(Some(&first), Plan::NewServing, &names, now).unwrap();
        cert.set(renewed.certified_key().unwrap());
        let (status, _, presented) = post_tls(addr, &renewed.ca_bundle, &request).await;
        assert_eq!(status, 200);
        let renewed_der =
            rustls::pki_types::CertificateDer::from_pem_slice(renewed.cert.as_bytes()).unwrap();
        assert_eq!(presented, renewed_der);
        assert_ne!(renewed_der, first_der);

        token.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn the_route_enforces_the_body_limit() {
        use tower::ServiceExt as _;
        let app = router();
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        let request = axum::http::Request::post(CONVERSION_PATH)
            .header("content-type", "application/json")
            .body(axum::body::Body::from(big))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);

        let request = axum::http::Request::post(CONVERSION_PATH)
            .body(axum::body::Body::from(body(
                "k0smotron.io/v1beta2",
                json!([upstream_cluster()]),
            )))
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}
