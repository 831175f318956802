//! The `bootstrap-provider` manager binary against the harness: readiness after the first list,
//! metrics, JSON logs, leader election and a clean exit on SIGTERM.
//!
//! Needs `eval "$(test/harness/cluster up --capi)"`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use k0smotron_api::bootstrap::v1beta2::K0sWorkerConfig;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::PostParams;
use test_support::{TestNamespace, free_port};

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
        let (status, body) = get(metrics, "/metrics")?;
        ensure!(
            status == 200
                && body.contains("k0smotron_reconcile_total{controller=\"k0sworkerconfig\"}"),
            "metrics: {status} {body}"
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
    result
}
