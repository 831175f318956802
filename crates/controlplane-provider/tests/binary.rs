//! The `controlplane-provider` binary against the harness: it reconciles, serves `/healthz`,
//! `/readyz` and `/metrics`, logs JSON on request, elects one leader among two replicas, hands over
//! when the leader stops, and exits cleanly on SIGTERM. Also the owner wait and `--watch-filter`.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::field_reassign_with_default
)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k0smotron_api::capi::{Cluster, ClusterSpec, ContractVersionedObjectReference};
use k0smotron_api::controlplane::v1beta2::{
    K0smotronControlPlane, K0smotronControlPlaneSpec, KineSpec, StorageType,
};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use test_support::{TestNamespace, wait_for};

const TIMEOUT: Duration = Duration::from_secs(90);

fn kine_spec() -> K0smotronControlPlaneSpec {
    let mut spec = K0smotronControlPlaneSpec::default();
    spec.storage.type_ = StorageType::Kine;
    spec.storage.kine = Some(KineSpec {
        data_source_url: Some("postgres://db/k0s".into()),
        data_source_secret_name: None,
    });
    spec
}

async fn setup(prefix: &str) -> TestNamespace {
    let ns = TestNamespace::create(prefix).await.unwrap();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/crd/bases");
    test_support::apply_crd_dir(&ns.client(), &dir)
        .await
        .unwrap();
    ns
}

async fn create_cluster(ns: &TestNamespace, name: &str) -> Cluster {
    let cluster = Cluster::new(
        name,
        ClusterSpec {
            control_plane_ref: Some(ContractVersionedObjectReference {
                api_group: "controlplane.cluster.x-k8s.io".into(),
                kind: "K0smotronControlPlane".into(),
                name: name.into(),
            }),
            ..Default::default()
        },
    );
    ns.api::<Cluster>()
        .create(&PostParams::default(), &cluster)
        .await
        .unwrap()
}

fn owner(cluster: &Cluster) -> OwnerReference {
    OwnerReference {
        api_version: "cluster.x-k8s.io/v1beta2".into(),
        kind: "Cluster".into(),
        name: cluster.name_any(),
        uid: cluster.uid().unwrap(),
        ..Default::default()
    }
}

struct Manager {
    child: Child,
    health: u16,
    metrics: u16,
}

impl Manager {
    fn start(ns: &str, extra: &[&str]) -> Self {
        Self::start_named(ns, "manager", extra)
    }

    /// `pod` becomes the leader-election identity prefix (`$POD_NAME`).
    fn start_named(ns: &str, pod: &str, extra: &[&str]) -> Self {
        let health = test_support::free_port().unwrap();
        let metrics = test_support::free_port().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_controlplane-provider"))
            .args([
                "--namespace",
                ns,
                "--health-addr",
                &format!("127.0.0.1:{health}"),
                "--metrics-addr",
                &format!("127.0.0.1:{metrics}"),
                // Plain HTTP: this test is about reconciling and shutting down; the secure
                // endpoint is tested by crates/bootstrap-provider/tests/manager.rs.
                "--insecure-metrics",
                "--log-format",
                "json",
                "--workload-probe-timeout",
                "2",
            ])
            .args(extra)
            .env("POD_NAME", pod)
            // Everything our code logs, for the secret-material scan.
            .env(
                "RUST_LOG",
                "info,controlplane_provider=debug,provider_runtime=debug",
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Self {
            child,
            health,
            metrics,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then the exit status and everything it logged.
    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the manager did not exit within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let mut logs = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            use std::io::Read;
            let _ = err.read_to_string(&mut logs);
        }
        (status, logs)
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 GET; returns (status code, body). Blocking, with short timeouts: fine in a
/// test.
async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).ok()?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((code, body))
}

async fn wait_http(port: u16, path: &str, code: u16) -> String {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        if let Some((c, body)) = get(port, path).await
            && c == code
        {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} never answered {code}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
#[ignore = "needs test/harness"]
async fn the_binary_reconciles_serves_health_and_metrics_and_stops_on_sigterm() {
    let ns = setup("cp-bin").await;
    let manager = Manager::start(ns.name(), &[]);
    wait_http(manager.health, "/healthz", 200).await;
    wait_http(manager.health, "/readyz", 200).await;

    // Waits, with a reason, for the owner reference before doing anything.
    let kcps: Api<K0smotronControlPlane> = ns.api();
    let mut kcp = K0smotronControlPlane::new("demo", kine_spec());
    kcps.create(&PostParams::default(), &kcp).await.unwrap();
    wait_for(
        &kcps,
        "demo",
        |k| {
            k.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Available" && c.reason == "WaitingForOwner")
            })
        },
        TIMEOUT,
        "Available False WaitingForOwner",
    )
    .await
    .unwrap();
    assert!(
        ns.api::<StatefulSet>()
            .get_opt("kmc-demo")
            .await
            .unwrap()
            .is_none()
    );

    // The owner reference arrives (as CAPI would set it): everything is created.
    let cluster = create_cluster(&ns, "demo").await;
    kcp = kcps.get("demo").await.unwrap();
    kcp.metadata.owner_references = Some(vec![owner(&cluster)]);
    kcps.patch(
        "demo",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"ownerReferences": kcp.metadata.owner_references}})),
    )
    .await
    .unwrap();
    wait_for(
        &kcps,
        "demo",
        |k| k.status.as_ref().and_then(|s| s.ready_replicas) == Some(1),
        TIMEOUT,
        "one ready replica",
    )
    .await
    .unwrap();

    let metrics = wait_http(manager.metrics, "/metrics", 200).await;
    assert!(
        metrics.contains("k0smotron_reconcile_total{controller=\"k0smotroncontrolplane\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("k0smotron_reconcile_duration_seconds"),
        "{metrics}"
    );

    // The key material it generated (CA and service-account keys, the admin kubeconfig's
    // client key, ...) is all in Secrets of the namespace.
    let mut needles = Vec::new();
    for secret in ns.api::<Secret>().list(&Default::default()).await.unwrap() {
        needles.extend(test_support::secret_needles(&secret));
    }
    assert!(
        needles.len() > 10,
        "expected generated keys and a kubeconfig, found {} needles",
        needles.len()
    );

    let (status, logs) = manager.terminate();
    assert!(status.success(), "exit status {status:?}; logs:\n{logs}");
    // JSON logs: every non-empty line is a JSON object.
    let lines: Vec<_> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not JSON: {line}"
        );
    }

    // None of it in a log line (debug level), a condition message or an Event.
    let mut haystacks: Vec<(String, String)> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| (format!("log line {i}"), (*l).to_owned()))
        .collect();
    let kcp = kcps.get("demo").await.unwrap();
    for c in kcp.status.iter().flat_map(|s| s.conditions.iter()) {
        haystacks.push((format!("condition {}", c.type_), c.message.clone()));
    }
    let events = ns
        .api::<k8s_openapi::api::events::v1::Event>()
        .list(&Default::default())
        .await
        .unwrap();
    assert!(!events.items.is_empty(), "the reconcile published no Event");
    for e in events {
        haystacks.push((
            format!("event {}", e.reason.clone().unwrap_or_default()),
            serde_json::to_string(&e).unwrap(),
        ));
    }
    let leaks = test_support::find_leaks(haystacks, &needles);
    assert!(leaks.is_empty(), "secret material found: {leaks:?}");
}

#[tokio::test]
#[ignore = "needs test/harness"]
async fn two_replicas_elect_one_leader_and_hand_over() {
    let ns = setup("cp-leader").await;
    let lease = test_support::unique_name("cp-lease");
    let flags = [
        "--leader-elect",
        "--leader-election-namespace",
        ns.name(),
        "--leader-election-id",
        lease.as_str(),
    ];
    let a = Manager::start_named(ns.name(), "replica-a", &flags);
    let b = Manager::start_named(ns.name(), "replica-b", &flags);
    let leases: Api<Lease> = ns.api();
    let held = wait_for(
        &leases,
        &lease,
        |l| {
            l.spec
                .as_ref()
                .and_then(|s| s.holder_identity.as_ref())
                .is_some()
        },
        TIMEOUT,
        "a lease holder",
    )
    .await
    .unwrap();
    let first = held.spec.unwrap().holder_identity.unwrap();

    let cluster = create_cluster(&ns, "demo").await;
    let mut kcp = K0smotronControlPlane::new("demo", kine_spec());
    kcp.metadata.owner_references = Some(vec![owner(&cluster)]);
    let kcps: Api<K0smotronControlPlane> = ns.api();
    kcps.create(&PostParams::default(), &kcp).await.unwrap();
    wait_for(
        &kcps,
        "demo",
        |k| k.status.as_ref().and_then(|s| s.ready_replicas) == Some(1),
        TIMEOUT,
        "reconciled by the leader",
    )
    .await
    .unwrap();

    // Stop whichever holds the lease; the other takes over and keeps reconciling.
    let (leader, standby) = if first.starts_with("replica-a_") {
        (a, b)
    } else {
        assert!(first.starts_with("replica-b_"), "{first}");
        (b, a)
    };
    let _ = leader.terminate();
    wait_for(
        &leases,
        &lease,
        |l| {
            l.spec
                .as_ref()
                .and_then(|s| s.holder_identity.as_ref())
                .is_some_and(|h| *h != first)
        },
        TIMEOUT,
        "a new lease holder",
    )
    .await
    .unwrap();
    kcps.patch_scale(
        "demo",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 2}})),
    )
    .await
    .unwrap();
    wait_for(
        &kcps,
        "demo",
        |k| k.status.as_ref().and_then(|s| s.ready_replicas) == Some(2),
        TIMEOUT,
        "reconciled by the new leader",
    )
    .await
    .unwrap();
    let (status, logs) = standby.terminate();
    assert!(status.success(), "{status:?}\n{logs}");
}

#[tokio::test]
#[ignore = "needs test/harness"]
async fn watch_filter_scopes_the_manager() {
    let ns = setup("cp-filter").await;
    let manager = Manager::start(ns.name(), &["--watch-filter", "secondary"]);
    let kcps: Api<K0smotronControlPlane> = ns.api();
    for (name, labelled) in [("other", false), ("mine", true)] {
        let cluster = create_cluster(&ns, name).await;
        let mut kcp = K0smotronControlPlane::new(name, kine_spec());
        kcp.metadata.owner_references = Some(vec![owner(&cluster)]);
        if labelled {
            kcp.metadata.labels = Some(BTreeMap::from([(
                "cluster.x-k8s.io/watch-filter".to_string(),
                "secondary".to_string(),
            )]));
        }
        kcps.create(&PostParams::default(), &kcp).await.unwrap();
    }
    wait_for(
        &kcps,
        "mine",
        |k| k.status.as_ref().and_then(|s| s.ready_replicas) == Some(1),
        TIMEOUT,
        "the labelled control plane reconciled",
    )
    .await
    .unwrap();
    let other = kcps.get("other").await.unwrap();
    assert!(other.status.is_none(), "the unlabelled one is left alone");
    assert!(other.finalizers().is_empty());
    assert!(
        ns.api::<StatefulSet>()
            .get_opt("kmc-other")
            .await
            .unwrap()
            .is_none()
    );
    let (status, _) = manager.terminate();
    assert!(status.success());
}
