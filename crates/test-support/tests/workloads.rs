//! The harness runs real workloads: kube-controller-manager, kube-scheduler and kwok turn
//! StatefulSets (with volume claims too) and Deployments into Running/Ready pods on fake nodes,
//! and LoadBalancer Services get an ingress IP. Needs `cluster up --workloads`.

use std::time::Duration;

use anyhow::{Context, ensure};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod, Service};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::json;
use test_support::{TestNamespace, wait_for};

fn require_workloads() -> anyhow::Result<()> {
    ensure!(
        std::env::var("HARNESS_WORKLOADS").as_deref() == Ok("1"),
        "these tests need `eval \"$(test/harness/cluster up --workloads)\"` (HARNESS_WORKLOADS=1)"
    );
    Ok(())
}

/// Pod template spec shared by the StatefulSet and the Deployment: the image is never pulled
/// (kwok fakes the kubelet), so it need not exist.
fn pod_template(app: &str) -> serde_json::Value {
    json!({
        "metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": "main", "image": "registry.invalid/none:0",
                                 "ports": [{"containerPort": 2379}]}]}
    })
}

async fn assert_pods_running_and_ready(
    ns: &TestNamespace,
    app: &str,
    want: usize,
) -> anyhow::Result<()> {
    let pods = ns
        .api::<Pod>()
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await?;
    ensure!(
        pods.items.len() == want,
        "expected {want} pods, got {}",
        pods.items.len()
    );
    for pod in pods.items {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let spec = pod.spec.context("pod without spec")?;
        let status = pod.status.context("pod without status")?;
        ensure!(
            status.phase.as_deref() == Some("Running"),
            "pod {name} phase {:?}",
            status.phase
        );
        let ready = status
            .conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        ensure!(ready, "pod {name} is not Ready");
        ensure!(
            spec.node_name
                .as_deref()
                .is_some_and(|n| n.starts_with("kwok-node-")),
            "pod {name} is on node {:?}, not a kwok node",
            spec.node_name
        );
        ensure!(status.pod_ip.is_some(), "pod {name} has no IP");
    }
    Ok(())
}

#[tokio::test]
#[ignore = "needs test/harness (KUBECONFIG)"]
async fn statefulset_pods_become_running_and_ready() -> anyhow::Result<()> {
    require_workloads()?;
    let ns = TestNamespace::create("sts").await?;
    let sts: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "etcd"},
        "spec": {"replicas": 2, "serviceName": "etcd",
                 "selector": {"matchLabels": {"app": "etcd"}},
                 "template": pod_template("etcd")}
    }))?;
    let api = ns.api::<StatefulSet>();
    api.create(&PostParams::default(), &sts).await?;
    wait_for(
        &api,
        "etcd",
        |s| s.status.as_ref().and_then(|s| s.ready_replicas) == Some(2),
        Duration::from_secs(90),
        "2 ready replicas",
    )
    .await?;
    assert_pods_running_and_ready(&ns, "etcd", 2).await
}

#[tokio::test]
#[ignore = "needs test/harness (KUBECONFIG)"]
async fn statefulset_with_volume_claims_becomes_ready() -> anyhow::Result<()> {
    require_workloads()?;
    let ns = TestNamespace::create("sts-pvc").await?;
    let sts: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "data"},
        "spec": {"replicas": 2, "serviceName": "data",
                 "selector": {"matchLabels": {"app": "data"}},
                 "template": pod_template("data"),
                 "volumeClaimTemplates": [{"metadata": {"name": "etcd"},
                     "spec": {"accessModes": ["ReadWriteOnce"],
                              "resources": {"requests": {"storage": "1Gi"}}}}]}
    }))?;
    let api = ns.api::<StatefulSet>();
    api.create(&PostParams::default(), &sts).await?;
    wait_for(
        &api,
        "data",
        |s| s.status.as_ref().and_then(|s| s.ready_replicas) == Some(2),
        Duration::from_secs(90),
        "2 ready replicas with bound volume claims",
    )
    .await?;
    assert_pods_running_and_ready(&ns, "data", 2).await?;
    for claim in ["etcd-data-0", "etcd-data-1"] {
        let pvc = ns.api::<PersistentVolumeClaim>().get(claim).await?;
        let phase = pvc.status.and_then(|s| s.phase);
        ensure!(
            phase.as_deref() == Some("Bound"),
            "claim {claim} is {phase:?}"
        );
    }
    Ok(())
}

#[tokio::test]
#[ignore = "needs test/harness (KUBECONFIG)"]
async fn deployment_pods_become_running_and_ready() -> anyhow::Result<()> {
    require_workloads()?;
    let ns = TestNamespace::create("deploy").await?;
    let deploy: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": pod_template("web")}
    }))?;
    let api = ns.api::<Deployment>();
    api.create(&PostParams::default(), &deploy).await?;
    wait_for(
        &api,
        "web",
        |d| d.status.as_ref().and_then(|s| s.available_replicas) == Some(2),
        Duration::from_secs(90),
        "2 available replicas",
    )
    .await?;
    assert_pods_running_and_ready(&ns, "web", 2).await
}

#[tokio::test]
#[ignore = "needs test/harness (KUBECONFIG)"]
async fn fake_nodes_have_loopback_addresses() -> anyhow::Result<()> {
    require_workloads()?;
    let nodes = Api::<Node>::all(test_support::client().await?)
        .list(&ListParams::default())
        .await?;
    let kwok: Vec<_> = nodes
        .items
        .iter()
        .filter(|n| {
            n.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("kwok-node-"))
        })
        .collect();
    ensure!(!kwok.is_empty(), "no kwok nodes");
    for node in kwok {
        let addresses = node
            .status
            .as_ref()
            .and_then(|s| s.addresses.clone())
            .unwrap_or_default();
        for kind in ["InternalIP", "ExternalIP"] {
            let addr = addresses
                .iter()
                .find(|a| a.type_ == kind)
                .with_context(|| {
                    format!("node {:?} has no {kind}: {addresses:?}", node.metadata.name)
                })?;
            ensure!(
                addr.address.starts_with("127."),
                "{kind} {} is not loopback",
                addr.address
            );
        }
    }
    Ok(())
}

#[tokio::test]
#[ignore = "needs test/harness (KUBECONFIG)"]
async fn loadbalancer_services_get_a_loopback_ingress_ip() -> anyhow::Result<()> {
    require_workloads()?;
    let ns = TestNamespace::create("lb").await?;
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "api"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "api"},
                 "ports": [{"port": 6443, "targetPort": 6443}]}
    }))?;
    let api = ns.api::<Service>();
    api.create(&PostParams::default(), &svc).await?;
    let svc = wait_for(
        &api,
        "api",
        |s| {
            s.status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .is_some_and(|i| !i.is_empty())
        },
        Duration::from_secs(30),
        "status.loadBalancer.ingress",
    )
    .await?;
    let ip = svc
        .status
        .and_then(|s| s.load_balancer)
        .and_then(|lb| lb.ingress)
        .and_then(|i| i.into_iter().next())
        .and_then(|i| i.ip)
        .context("ingress without ip")?;
    ensure!(ip.starts_with("127.0."), "ingress ip {ip} is not loopback");
    Ok(())
}
