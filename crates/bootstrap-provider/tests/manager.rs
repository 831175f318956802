//! The `bootstrap-provider` manager binary against the harness: readiness after the first list,
//! metrics over HTTPS for reviewed tokens only (the shipped `metrics-reader` ClusterRole), JSON
//! logs, leader election and a clean exit on SIGTERM.
//!
//! Needs `eval "$(test/harness/cluster up --capi)"`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use k0smotron_api::bootstrap::v1beta2::K0sWorkerConfig;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleRef, Subject};
use kube::Api;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use test_support::{TestNamespace, free_port, https_get};

/// A ServiceAccount in `ns` and a token for it.
async fn service_account_token(ns: &TestNamespace, name: &str) -> anyhow::Result<String> {
    let accounts = ns.api::<ServiceAccount>();
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    accounts.create(&PostParams::default(), &account).await?;
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(600),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let issued = accounts
        .create_token_request(name, &PostParams::default(), &request)
        .await?;
    issued
        .status
        .and_then(|s| s.token)
        .context("TokenRequest without a token")
}

/// The shipped `metrics-reader` ClusterRole (config/rbac) under `name`, bound to `subject` in `ns`.
/// Cluster-scoped: the caller deletes both (named `name`).
async fn bind_metrics_reader(ns: &TestNamespace, name: &str, subject: &str) -> anyhow::Result<()> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/rbac/metrics_reader_role.yaml");
    let mut role: ClusterRole = serde_saphyr::from_str(&std::fs::read_to_string(path)?)?;
    role.metadata.name = Some(name.to_owned());
    Api::<ClusterRole>::all(ns.client())
        .create(&PostParams::default(), &role)
        .await?;
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            kind: "ClusterRole".to_owned(),
            name: name.to_owned(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name: subject.to_owned(),
            namespace: Some(ns.name().to_owned()),
            ..Subject::default()
        }]),
    };
    Api::<ClusterRoleBinding>::all(ns.client())
        .create(&PostParams::default(), &binding)
        .await?;
    Ok(())
}

/// Plain HTTP GET on 127.0.0.1 (no client crate needed for two endpoints): (status, body).
fn get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

#[tokio::test]
#[ignore = "needs test/harness"]
async fn manager_serves_health_metrics_elects_and_shuts_down() -> anyhow::Result<()> {
    let ns = TestNamespace::create("bootstrap-manager").await?;
    let crd = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../config/crd/bases/k0sworkerconfigs.bootstrap.cluster.x-k8s.io.yaml");
    test_support::apply_crd_file(&ns.client(), &crd).await?;
    let (health, metrics) = (free_port()?, free_port()?);
    let reader_role = format!("{}-metrics-reader", ns.name());
    let log = std::env::temp_dir().join(format!("bootstrap-manager-{}.log", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_bootstrap-provider"))
        .args([
            "run",
            "--namespace",
            ns.name(),
            "--log-format",
            "json",
            "--leader-elect",
        ])
        .args([
            "--leader-election-namespace",
            ns.name(),
            "--token-ttl",
            "10m",
        ])
        .args(["--health-addr", &format!("127.0.0.1:{health}")])
        .args(["--metrics-addr", &format!("127.0.0.1:{metrics}")])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;

    let result = async {
        // Ready once it leads and the configs are listed.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = get(health, "/readyz") {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "never ready; log:\n{}",
                std::fs::read_to_string(&log)?
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        ensure!(get(health, "/healthz")?.0 == 200);

        // A config without an owner: reconciled (and counted), and told to wait for its owner.
        let config: K0sWorkerConfig = serde_json::from_value(serde_json::json!({
            "apiVersion": "bootstrap.cluster.x-k8s.io/v1beta2", "kind": "K0sWorkerConfig",
            "metadata": {"name": "orphan"}, "spec": {},
        }))?;
        ns.api::<K0sWorkerConfig>()
            .create(&PostParams::default(), &config)
            .await?;
        test_support::wait_for(
            &ns.api::<K0sWorkerConfig>(),
            "orphan",
            |c| {
                c.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "DataSecretAvailable" && c.reason == "WaitingForOwner")
                })
            },
            Duration::from_secs(30),
            "DataSecretAvailable=False (WaitingForOwner)",
        )
        .await?;
        // Metrics: HTTPS (the default), and only for a token allowed `get` on /metrics.
        let metrics_addr = std::net::SocketAddr::from(([127, 0, 0, 1], metrics));
        let no_token = https_get(metrics_addr, "/metrics", None).await?;
        ensure!(no_token.status == 401, "without a token: {no_token:?}");
        let forged = https_get(metrics_addr, "/metrics", Some("not-a-token")).await?;
        ensure!(forged.status == 401, "with a forged token: {forged:?}");
        let stranger = service_account_token(&ns, "stranger").await?;
        let refused = https_get(metrics_addr, "/metrics", Some(&stranger)).await?;
        ensure!(refused.status == 403, "without the role: {refused:?}");
        let scraper = service_account_token(&ns, "scraper").await?;
        bind_metrics_reader(&ns, &reader_role, "scraper").await?;
        // RBAC changes reach the authorizer's cache within moments.
        let deadline = Instant::now() + Duration::from_secs(10);
        let allowed = loop {
            let response = https_get(metrics_addr, "/metrics", Some(&scraper)).await?;
            if response.status == 200 || Instant::now() > deadline {
                break response;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        ensure!(
            allowed.status == 200
                && allowed
                    .body
                    .contains("k0smotron_reconcile_total{controller=\"k0sworkerconfig\"}"),
            "with the metrics-reader role: {allowed:?}"
        );
        // No plain HTTP on the metrics port.
        ensure!(
            !get(metrics, "/metrics").is_ok_and(|(status, _)| status == 200),
            "plain HTTP served metrics"
        );

        let lease = ns
            .api::<Lease>()
            .get("bootstrap.k0smotron.io")
            .await
            .context("no Lease")?;
        ensure!(
            lease
                .spec
                .and_then(|s| s.holder_identity)
                .is_some_and(|h| !h.is_empty())
        );

        // SIGTERM: graceful exit with status 0.
        let kill = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()?;
        ensure!(kill.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            ensure!(Instant::now() < deadline, "no exit within 15 s of SIGTERM");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        ensure!(status.success(), "exit status {status}");

        // Every log line is a JSON object.
        let text = std::fs::read_to_string(&log)?;
        ensure!(!text.is_empty());
        for line in text.lines() {
            serde_json::from_str::<serde_json::Value>(line)
                .with_context(|| format!("not JSON: {line}"))?;
        }
        Ok(())
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(&log);
    let _ = Api::<ClusterRoleBinding>::all(ns.client())
        .delete(&reader_role, &DeleteParams::default())
        .await;
    let _ = Api::<ClusterRole>::all(ns.client())
        .delete(&reader_role, &DeleteParams::default())
        .await;
    result
}
