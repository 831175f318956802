//! The providers' conversion webhook run in a test process, as the binary runs it
//! (`WebhookServer` and `webhook_certs::run`), reached by the API server at
//! `https://127.0.0.1:<port>/convert` (the `--webhook-url` mode). Shared by the test files that
//! need v1beta1 served: `conversion_webhook.rs` and `upstream_manifests.rs`. The CRDs are
//! cluster-wide, so each such file holds one test and calls [`restore_crds`] when it ends.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use k0smotron_api::crds;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use provider_runtime::webhook::{ServingCert, WebhookServer};
use provider_runtime::webhook_certs::{self, CA_CERT_KEY, CertConfig, Target};
use serde_json::json;
use tokio_util::sync::CancellationToken;

pub const TIMEOUT: Duration = Duration::from_secs(60);
pub const SECRET: &str = "webhook-server-cert";

/// The CRDs' client config back to the Service of the committed CRD files, CA bundle removed:
/// what other tests (and clusterctl installs) of this harness expect.
pub async fn restore_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let service = crds::conversion_webhook()
        .webhook
        .and_then(|w| w.client_config)
        .and_then(|c| c.service);
    let patch = json!({"spec": {"conversion": {"webhook": {"clientConfig": {
        "url": null, "caBundle": null, "service": service,
    }}}}});
    for name in crds::names(&crds::all()) {
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(err) => panic!("restoring CRD {name}: {err}"),
        }
    }
}

/// A running webhook: the server and its certificate keeper, stopped by `token`.
pub struct Webhook {
    token: CancellationToken,
    server: tokio::task::JoinHandle<()>,
    keeper: tokio::task::JoinHandle<()>,
}

impl Webhook {
    /// Serves conversion on a free loopback port, its certificate in the Secret [`SECRET`] of
    /// `namespace`, its URL and CA bundle injected into every one of our CRDs.
    pub async fn start(client: &Client, namespace: &str) -> Self {
        let server = WebhookServer::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let port = server.local_addr().unwrap().port();
        let config = CertConfig {
            namespace: namespace.to_owned(),
            secret: SECRET.to_owned(),
            target: Target::Url(format!("https://127.0.0.1:{port}/convert")),
            crds: crds::names(&crds::all()),
        };
        let token = CancellationToken::new();
        let cert = Arc::new(ServingCert::default());
        let keeper = tokio::spawn(webhook_certs::run(
            client.clone(),
            config,
            cert.clone(),
            token.clone(),
        ));
        let server_token = token.clone();
        let server = tokio::spawn(async move {
            server.run(cert, server_token).await.unwrap();
        });
        Self {
            token,
            server,
            keeper,
        }
    }

    pub async fn stop(self) {
        self.token.cancel();
        self.server.await.unwrap();
        self.keeper.await.unwrap();
    }
}

/// Waits until every one of our CRDs trusts the CA bundle of the Secret; the bundle.
pub async fn wait_injected(client: &Client, namespace: &str) -> String {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let crd_api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        if let Some(secret) = secrets.get_opt(SECRET).await.unwrap() {
            let bundle = secret.data.unwrap()[CA_CERT_KEY].0.clone();
            let mut all = true;
            for name in crds::names(&crds::all()) {
                let crd = crd_api.get(&name).await.unwrap();
                let config = crd
                    .spec
                    .conversion
                    .and_then(|c| c.webhook)
                    .and_then(|w| w.client_config)
                    .unwrap();
                all &= config.ca_bundle.map(|b| b.0) == Some(bundle.clone())
                    && config
                        .url
                        .is_some_and(|u| u.starts_with("https://127.0.0.1:"))
                    && config.service.is_none();
            }
            if all {
                return String::from_utf8(bundle).unwrap();
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "CA bundle not injected into every CRD"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Retries `f` until it succeeds: the API server may keep a closed connection to the webhook
/// (or the old CA bundle) for a moment after the CRD changed.
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        match f().await {
            Ok(value) => return value,
            Err(err) if tokio::time::Instant::now() < deadline => {
                eprintln!("{what}: retrying after {err}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(err) => panic!("{what}: {err}"),
        }
    }
}
