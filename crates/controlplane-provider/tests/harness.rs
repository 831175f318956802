//! Integration tests against the real API server of `test/harness` (with `--workloads --capi`:
//! kube-controller-manager, scheduler and kwok make the StatefulSet pods Running and Ready).
//!
//! Each test has its own namespace and runs its own provider, scoped to that namespace, in
//! process. Run: `eval "$(test/harness/cluster up --workloads --capi)"` then
//! `cargo test -p controlplane-provider --test harness -- --include-ignored`.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::field_reassign_with_default
)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use k0smotron_api::capi::{Cluster, ClusterSpec, ContractVersionedObjectReference};
use k0smotron_api::controlplane::v1beta2::{
    CertificateType, K0smotronControlPlane, K0smotronControlPlaneSpec, KineSpec, PersistenceType,
    PersistentVolumeClaimTemplate, ServiceType, StorageType,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, PersistentVolumeClaimSpec, Pod, Secret, Service,
    VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use prometheus_client::registry::Registry;
use provider_runtime::{ManagerArgs, Metrics, Readiness};
use serde_json::json;
use test_support::{TestNamespace, wait_for};
use tokio_util::sync::CancellationToken;

use controlplane_provider::certs;
use controlplane_provider::controller::{self, Settings};

const TIMEOUT: Duration = Duration::from_secs(90);
const CLUSTER: &str = "demo";

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    manager: ManagerArgs,
}

/// A provider running in this process, watching one namespace. It runs as the binary does: on
/// its own runtime (`provider_runtime::runtime::build`, whose workers have the binary's stack
/// size) with its own client from `KUBECONFIG`, in a thread of its own. On the test's
/// current-thread runtime it ran on the 2 MiB stack of the test thread, which a debug build's
/// reconcile futures outgrew (issue #11, 2026-12-06).
struct Provider {
    token: CancellationToken,
    done: tokio::sync::oneshot::Receiver<()>,
    registry: std::sync::Arc<std::sync::Mutex<Registry>>,
}

impl Provider {
    fn start(namespace: &str) -> Self {
        let args = Args::parse_from([
            "controlplane-provider",
            "--namespace",
            namespace,
            "--health-addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .manager;
        let token = CancellationToken::new();
        let child = token.clone();
        let (tx, done) = tokio::sync::oneshot::channel();
        let registry = std::sync::Arc::new(std::sync::Mutex::new(Registry::default()));
        let metrics = Metrics::register(&mut registry.lock().unwrap());
        std::thread::spawn(move || {
            let runtime = provider_runtime::runtime::build().unwrap();
            runtime.block_on(async move {
                let client = test_support::client().await.unwrap();
                let readiness = Readiness::new();
                let settings = Settings {
                    probe_timeout: Duration::from_secs(3),
                    resync: Duration::from_secs(300),
                    ..Settings::default()
                };
                controller::run(client, &args, settings, metrics, &readiness, child).await;
            });
            let _ = tx.send(());
        });
        Self {
            token,
            done,
            registry,
        }
    }

    /// The value of the metric sample `sample` (name and labels as rendered), 0 if absent.
    fn metric(&self, sample: &str) -> f64 {
        let text = provider_runtime::metrics::render(&self.registry.lock().unwrap()).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    async fn stop(self) {
        self.token.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(30), self.done).await;
    }
}

/// `after` is `before` as far as a writer of its spec or metadata goes: the same object, spec
/// (generation) and labels and annotations. Its resourceVersion may have moved: the StatefulSet
/// controller keeps writing its status for a while after the pods are Ready, which made a
/// resourceVersion comparison fail now and then.
fn assert_unchanged_statefulset(after: &StatefulSet, before: &StatefulSet) {
    assert_eq!(after.metadata.uid, before.metadata.uid);
    assert_eq!(after.metadata.generation, before.metadata.generation);
    assert_eq!(after.metadata.labels, before.metadata.labels);
    assert_eq!(after.metadata.annotations, before.metadata.annotations);
    assert_eq!(after.spec, before.spec);
}

fn crd_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/crd/bases")
}

async fn setup(prefix: &str) -> (TestNamespace, Client) {
    let ns = TestNamespace::create(prefix).await.unwrap();
    let client = ns.client();
    test_support::apply_crd_dir(&client, &crd_dir())
        .await
        .unwrap();
    (ns, client)
}

/// A CAPI Cluster referring to the control plane `CLUSTER`, and the control plane with the owner
/// reference CAPI core would set.
async fn create(ns: &TestNamespace, spec: K0smotronControlPlaneSpec) -> K0smotronControlPlane {
    let clusters: Api<Cluster> = ns.api();
    let cluster = Cluster::new(
        CLUSTER,
        ClusterSpec {
            control_plane_ref: Some(ContractVersionedObjectReference {
                api_group: "controlplane.cluster.x-k8s.io".into(),
                kind: "K0smotronControlPlane".into(),
                name: CLUSTER.into(),
            }),
            ..Default::default()
        },
    );
    let cluster = clusters
        .create(&PostParams::default(), &cluster)
        .await
        .unwrap();
    let mut kcp = K0smotronControlPlane::new(CLUSTER, spec);
    kcp.metadata.labels = Some(BTreeMap::from([(
        "cluster.x-k8s.io/cluster-name".to_string(),
        CLUSTER.to_string(),
    )]));
    kcp.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "cluster.x-k8s.io/v1beta2".into(),
        kind: "Cluster".into(),
        name: CLUSTER.into(),
        uid: cluster.uid().unwrap(),
        ..Default::default()
    }]);
    ns.api::<K0smotronControlPlane>()
        .create(&PostParams::default(), &kcp)
        .await
        .unwrap()
}

fn condition<'a>(
    kcp: &'a K0smotronControlPlane,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    kcp.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

fn condition_is(kcp: &K0smotronControlPlane, type_: &str, status: &str, reason: &str) -> bool {
    condition(kcp, type_).is_some_and(|c| c.status == status && c.reason == reason)
}

async fn wait_ready(ns: &TestNamespace, replicas: i32) -> K0smotronControlPlane {
    wait_for(
        &ns.api::<K0smotronControlPlane>(),
        CLUSTER,
        |k| {
            let s = k.status.clone().unwrap_or_default();
            s.ready_replicas == Some(replicas)
                && s.replicas == Some(replicas)
                && s.up_to_date_replicas == Some(replicas)
                && s.observed_generation == k.metadata.generation
        },
        TIMEOUT,
        "ready, up-to-date replicas",
    )
    .await
    .unwrap()
}

/// Waits until `name` no longer exists.
async fn wait_gone<K>(api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while api.get_opt(name).await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} still exists"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references
        .as_ref()
        .is_some_and(|r| r.iter().any(|o| o.uid == uid && o.controller == Some(true)))
}

fn label<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.labels.as_ref()?.get(key).map(String::as_str)
}

async fn revisions(ns: &TestNamespace, sts: &str) -> Vec<String> {
    let list = ns
        .api::<ControllerRevision>()
        .list(&ListParams::default())
        .await
        .unwrap();
    let mut names: Vec<String> = list
        .items
        .iter()
        .filter(|r| {
            r.metadata
                .owner_references
                .as_ref()
                .is_some_and(|o| o.iter().any(|o| o.kind == "StatefulSet" && o.name == sts))
        })
        .map(|r| r.name_any())
        .collect();
    names.sort();
    names
}

#[tokio::test]
#[ignore = "needs test/harness"]
async fn create_makes_every_object_with_upstream_names_labels_and_owners() {
    let (ns, _) = setup("cp-create").await;
    let provider = Provider::start(ns.name());
    let kcp = create(&ns, K0smotronControlPlaneSpec::default()).await;
    let uid = kcp.uid().unwrap();
    let kcp = wait_ready(&ns, 1).await;

    // Certificate Secrets in CAPI format, owned by the control plane.
    let secrets: Api<Secret> = ns.api();
    for name in [
        "demo-ca",
        "demo-proxy",
        "demo-sa",
        "demo-etcd",
        "demo-etcd-server",
        "demo-etcd-peer",
        "demo-apiserver-etcd-client",
    ] {
        let s = secrets.get(name).await.unwrap();
        assert_eq!(
            s.type_.as_deref(),
            Some("cluster.x-k8s.io/secret"),
            "{name}"
        );
        assert_eq!(
            label(&s.metadata, "cluster.x-k8s.io/cluster-name"),
            Some(CLUSTER),
            "{name}"
        );
        assert!(controlled_by(&s.metadata, &uid), "{name}");
        let data = s.data.unwrap();
        assert!(
            data.contains_key("tls.crt") && data.contains_key("tls.key"),
            "{name}"
        );
    }
    let kubeconfig = secrets.get("demo-kubeconfig").await.unwrap();
    assert_eq!(kubeconfig.type_.as_deref(), Some("cluster.x-k8s.io/secret"));
    assert_eq!(
        label(&kubeconfig.metadata, "cluster.x-k8s.io/cluster-name"),
        Some(CLUSTER)
    );
    assert!(controlled_by(&kubeconfig.metadata, &uid));
    let value = String::from_utf8(kubeconfig.data.unwrap()["value"].0.clone()).unwrap();
    let parsed = controlplane_provider::kubeconfig::parse(&value).unwrap();
    assert_eq!(
        parsed.server,
        format!("https://kmc-demo.{}.svc:30443", ns.name())
    );

    // Without `spec.ingress`: no HAProxy certificate and no ingress manifests.
    assert_no_ingress_workload_side(&ns).await;

    // ConfigMaps, Services, StatefulSets.
    let cms: Api<ConfigMap> = ns.api();
    for (name, component) in [
        ("kmc-demo-config", "cluster-config"),
        ("kmc-entrypoint-demo-config", "entrypoint"),
        ("kmc-demo-telemetry-config", "telemetry"),
    ] {
        let cm = cms.get(name).await.unwrap();
        assert!(controlled_by(&cm.metadata, &uid), "{name}");
        assert_eq!(
            label(&cm.metadata, "app.kubernetes.io/component"),
            Some(component)
        );
        assert_eq!(label(&cm.metadata, "app"), Some("k0smotron"));
        assert_eq!(label(&cm.metadata, "cluster"), Some(CLUSTER));
    }
    let svcs: Api<Service> = ns.api();
    let svc = svcs.get("kmc-demo").await.unwrap();
    assert!(controlled_by(&svc.metadata, &uid));
    assert_eq!(
        svc.spec.as_ref().unwrap().type_.as_deref(),
        Some("ClusterIP")
    );
    let etcd_svc = svcs.get("kmc-demo-etcd").await.unwrap();
    assert_eq!(
        etcd_svc.spec.as_ref().unwrap().cluster_ip.as_deref(),
        Some("None")
    );
    let stss: Api<StatefulSet> = ns.api();
    let sts = stss.get("kmc-demo").await.unwrap();
    assert!(controlled_by(&sts.metadata, &uid));
    assert_eq!(
        sts.spec.selector.match_labels.clone().unwrap(),
        BTreeMap::from([
            ("app".to_string(), "k0smotron".to_string()),
            ("cluster".to_string(), CLUSTER.to_string()),
            (
                "cluster.x-k8s.io/cluster-name".to_string(),
                CLUSTER.to_string()
            ),
            (
                "cluster.x-k8s.io/control-plane".to_string(),
                "true".to_string()
            ),
            ("component".to_string(), "cluster".to_string()),
        ])
    );
    let etcd = wait_for(
        &stss,
        "kmc-demo-etcd",
        |s| s.status.as_ref().and_then(|s| s.ready_replicas) == Some(1),
        TIMEOUT,
        "etcd ready",
    )
    .await
    .unwrap();
    assert!(controlled_by(&etcd.metadata, &uid));

    // Status and the endpoint in our own spec.
    let status = kcp.status.clone().unwrap();
    assert_eq!(status.external_managed_control_plane, Some(true));
    assert_eq!(status.version.as_deref(), Some(kcp.spec.version.as_str()));
    assert_eq!(status.versions.len(), 1);
    assert_eq!(
        status.selector.as_deref(),
        Some(
            "app=k0smotron,cluster=demo,cluster.x-k8s.io/cluster-name=demo,cluster.x-k8s.io/control-plane=true,component=cluster"
        )
    );
    assert_eq!(status.certificate_refs.len(), 7);
    assert!(
        status
            .certificate_refs
            .iter()
            .any(|r| r.type_ == CertificateType::Ca)
    );
    let endpoint = kcp.spec.control_plane_endpoint.clone().unwrap();
    assert_eq!(endpoint.host, Some(format!("kmc-demo.{}.svc", ns.name())));
    assert_eq!(endpoint.port, Some(30443));
    // Nothing answers behind the Service here, so it is not initialized and not Available.
    assert_eq!(
        status.initialization.unwrap().control_plane_initialized,
        Some(false)
    );
    assert_eq!(condition(&kcp, "Available").unwrap().status, "False");
    assert!(condition_is(&kcp, "Paused", "False", "NotPaused"));
    assert!(condition_is(&kcp, "ScalingUp", "False", "NotScalingUp"));
    assert!(condition_is(&kcp, "RollingOut", "False", "NotRollingOut"));
    // The user's spec fields are untouched: only controlPlaneEndpoint was added, by its own
    // field manager.
    let managers: Vec<_> = kcp
        .managed_fields()
        .iter()
        .filter(|f| f.operation.as_deref() == Some("Apply"))
        .filter_map(|f| f.manager.clone())
        .collect();
    assert!(
        managers.contains(&"k0smotron-controlplane-endpoint".to_string()),
        "{managers:?}"
    );
    assert!(kcp.spec.certificate_refs.is_empty());
    assert!(kcp.spec.external_address.is_none());

    // Condition flips were published as events about the control plane: ScalingUp appeared
    // true (no event: conditions appearing are no news) and turned false once the pod ran.
    wait_event(&ns, &uid, "Normal", "NotScalingUp", "ScalingUp is False").await;
    let events: Api<k8s_openapi::api::events::v1::Event> = ns.api();
    let about_kcp: Vec<_> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.uid.as_deref()) == Some(uid.as_str()))
        .collect();
    assert!(
        !about_kcp
            .iter()
            .any(|e| e.reason.as_deref() == Some("CertificatesAvailable")),
        "a condition appearing true is no event: {:?}",
        about_kcp.iter().map(|e| &e.reason).collect::<Vec<_>>()
    );
    assert!(
        about_kcp
            .iter()
            .all(|e| e.reporting_controller.as_deref() == Some("k0smotron-controlplane"))
    );
    provider.stop().await;
}

#[tokio::test]
#[ignore = "needs test/harness"]
async fn etcd_grows_one_member_at_a_time_never_shrinks_and_claims_go_with_auto_delete() {
    let (ns, _) = setup("cp-etcd").await;
    let provider = Provider::start(ns.name());
    let mut spec = K0smotronControlPlaneSpec::default();
    spec.storage.etcd.auto_delete_pvcs = true;
    create(&ns, spec).await;
    wait_ready(&ns, 1).await;
    let stss: Api<StatefulSet> = ns.api();
    let first = stss.get("kmc-demo-etcd").await.unwrap();

    let kcps: Api<K0smotronControlPlane> = ns.api();
    kcps.patch_scale(
        CLUSTER,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 2}})),
    )
    .await
    .unwrap();
    // Two control-plane replicas need three etcd members; they come one at a time.
    let mut seen = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let etcd = stss.get("kmc-demo-etcd").await.unwrap();
        let replicas = etcd.spec.replicas.unwrap();
        seen.insert(replicas);
        if replicas == 3 && etcd.status.as_ref().and_then(|s| s.ready_replicas) == Some(3) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "etcd never reached 3 ready members"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen.is_subset(&[1, 2, 3].into()), "{seen:?}");
    // Scaling did not change the etcd pod template (no etcd rollout).
    let grown = stss.get("kmc-demo-etcd").await.unwrap();
    assert_eq!(grown.spec.template, first.spec.template);

    kcps.patch_scale(
        CLUSTER,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    wait_ready(&ns, 1).await;
    assert_eq!(
        stss.get("kmc-demo-etcd").await.unwrap().spec.replicas,
        Some(3),
        "etcd never shrinks"
    );

    // autoDeletePVCs: the etcd claims go with the control plane.
    let pvcs: Api<PersistentVolumeClaim> = ns.api();
    assert_eq!(
        pvcs.list(&ListParams::default()).await.unwrap().items.len(),
        3
    );
    kcps.delete(CLUSTER, &DeleteParams::default())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let left: Vec<_> = pvcs
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "claims left: {}",
            left.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    provider.stop().await;
}

#[tokio::test]
#[ignore = "needs test/harness"]
async fn node_port_then_load_balancer_exposure() {
    let (ns, _) = setup("cp-expose").await;
    let provider = Provider::start(ns.name());
    let mut spec = K0smotronControlPlaneSpec::default();
    spec.service.type_ = ServiceType::NodePort;
    // NodePorts are cluster-wide; keep clear of other tests.
    spec.service.api_port = 31443;
    spec.service.konnectivity_port = 31132;
    spec.storage.type_ = StorageType::Kine;
    spec.storage.kine = Some(KineSpec {
        data_source_url: Some("postgres://k0s:k0s@db:5432/k0s".into()),
        data_source_secret_name: None,
    });
    create(&ns, spec).await;
    let kcp = wait_ready(&ns, 1).await;
    // kwok-node-0's ExternalIP (nodes in name order, external addresses first).
    assert_eq!(
        kcp.status.as_ref().unwrap().external_address.as_deref(),
        Some("127.0.20.1")
    );
    let endpoint = kcp.spec.control_plane_endpoint.clone().unwrap();
    assert_eq!(
        (endpoint.host.as_deref(), endpoint.port),
        (Some("127.0.20.1"), Some(31443))
    );
    let svcs: Api<Service> = ns.api();
    let svc = svcs.get("kmc-demo-nodeport").await.unwrap();
    let ports: Vec<_> = svc
        .spec
        .unwrap()
        .ports
        .unwrap()
        .iter()
        .map(|p| (p.name.clone().unwrap(), p.port, p.node_port))
        .collect();
    assert_eq!(
        ports,
        vec![
            ("api".to_string(), 31443, Some(31443)),
            ("konnectivity".to_string(), 31132, Some(31132))
        ]
    );
    // The config carries the address.
    let cm = ns.api::<ConfigMap>().get("kmc-demo-config").await.unwrap();
    let config: serde_json::Value =
        serde_saphyr::from_str(&cm.data.unwrap()["K0SMOTRON_K0S_YAML"]).unwrap();
    assert_eq!(
        config.pointer("/spec/api/externalAddress"),
        Some(&json!("127.0.20.1"))
    );
    assert!(
        config
            .pointer("/spec/api/sans")
            .unwrap()
            .as_array()
            .unwrap()
            .contains(&json!("127.0.20.1"))
    );
    // kine: no etcd.
    assert!(
        ns.api::<StatefulSet>()
            .get_opt("kmc-demo-etcd")
            .await
            .unwrap()
            .is_none()
    );

    // Switch to LoadBalancer: the harness stands in for the cloud and gives an ingress IP.
    ns.api::<K0smotronControlPlane>()
        .patch(
            CLUSTER,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"service": {"type": "LoadBalancer"}}})),
        )
        .await
        .unwrap();
    let kcp = wait_for(
        &ns.api::<K0smotronControlPlane>(),
        CLUSTER,
        |k| {
            k.status
                .as_ref()
                .and_then(|s| s.external_address.as_deref())
                .is_some_and(|a| a.starts_with("127.0.30."))
        },
        TIMEOUT,
        "the LoadBalancer address in status",
    )
    .await
    .unwrap();
    let address = kcp.status.unwrap().external_address.unwrap();
    let lb = svcs.get("kmc-demo-lb").await.unwrap();
    assert_eq!(lb.spec.unwrap().type_.as_deref(), Some("LoadBalancer"));
    wait_gone(&svcs, "kmc-demo-nodeport").await;
    wait_for(
        &ns.api::<K0smotronControlPlane>(),
        CLUSTER,
        |k| {
            k.spec
                .control_plane_endpoint
                .as_ref()
                .is_some_and(|e| e.host.as_deref() == Some(address.as_str()))
        },
        TIMEOUT,
        "the endpoint following the address",
    )
    .await
    .unwrap();
    provider.stop().await;
}

#[tokio::test]
#[ignore = "needs test/harness"]
async fn kine_from_a_secret_scales_through_the_scale_subresource() {
    let (ns, _) = setup("cp-scale").await;
    let provider = Provider::start(ns.name());
    let secrets: Api<Secret> = ns.api();
    secrets
        .create(
            &PostParams::default(),
            &Secret {
                metadata: ObjectMeta {
                    name: Some("kine".into()),
                    ..Default::default()
                },
                string_data: Some(BTreeMap::from([(
                    "K0SMOTRON_KINE_DATASOURCE_URL".to_string(),
                    "postgres://k0s:secret@db:5432/k0s".to_string(),
                )])),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut spec = K0smotronControlPlaneSpec::default();
    spec.storage.type_ = StorageType::Kine;
    spec.storage.kine = Some(KineSpec {
        data_source_url: None,
        data_source_secret_name: Some("kine".into()),
    });
    create(&ns, spec).await;
    wait_ready(&ns, 1).await;
    let cm = ns.api::<ConfigMap>().get("kmc-demo-config").await.unwrap();
    assert!(!cm.data.unwrap()["K0SMOTRON_K0S_YAML"].contains("secret@db"));

    let kcps: Api<K0smotronControlPlane> = ns.api();
    let scale = |n: i32| json!({"spec": {"replicas": n}});
    kcps.patch_scale(CLUSTER, &PatchParams::default(), &Patch::Merge(scale(3)))
        .await
        .unwrap();
    let kcp = wait_ready(&ns, 3).await;
    assert_eq!(
        ns.api::<StatefulSet>()
            .get("kmc-demo")
            .await
            .unwrap()
            .spec
            .replicas,
        Some(3)
    );
    // The scale subresource reads the selector from status.
    let s = kcps.get_scale(CLUSTER).await.unwrap();
    assert_eq!(s.status.unwrap().selector, kcp.status.unwrap().selector);

    kcps.patch_scale(CLUSTER, &PatchParams::default(), &Patch::Merge(scale(1)))
        .await
        .unwrap();
    wait_ready(&ns, 1).await;
    let pods = ns
        .api::<Pod>()
        .list(&ListParams::default().labels("cluster.x-k8s.io/control-plane=true"))
        .await
        .unwrap();
    assert_eq!(
        pods.items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .count(),
        1
    );
    provider.stop().await;
}

#[tokio::test]
#[ignore = "needs test/harness"]
async fn restart_creates_no_revision_and_a_version_change_rolls_the_pods() {
    let (ns, _) = setup("cp-upgrade").await;
    let provider = Provider::start(ns.name());
    let mut spec = K0smotronControlPlaneSpec::default();
    spec.replicas = 2;
    spec.version = "v1.34.3+k0s.0".into();
    create(&ns, spec).await;
    wait_ready(&ns, 2).await;
    let stss: Api<StatefulSet> = ns.api();
    let before = stss.get("kmc-demo").await.unwrap();
    let revs = revisions(&ns, "kmc-demo").await;
    assert_eq!(revs.len(), 1, "{revs:?}");

    // Restart the provider: a new process with empty caches reconciles the same spec.
    provider.stop().await;
    let provider = Provider::start(ns.name());
    // Wake it with an unrelated label change (metadata only) and give it time to act.
    ns.api::<K0smotronControlPlane>()
        .patch(
            CLUSTER,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"poke": "1"}}})),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let after = stss.get("kmc-demo").await.unwrap();
    assert_eq!(
        revisions(&ns, "kmc-demo").await,
        revs,
        "no new ControllerRevision"
    );
    assert_eq!(after.metadata.generation, before.metadata.generation);
    assert_eq!(after.spec.template, before.spec.template);

    // One minor up: the pods roll to the new image.
    ns.api::<K0smotronControlPlane>()
        .patch(
            CLUSTER,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"version": "v1.35.7+k0s.0"}})),
        )
        .await
        .unwrap();
    let kcp = wait_for(
        &ns.api::<K0smotronControlPlane>(),
        CLUSTER,
        |k| {
            let s = k.status.clone().unwrap_or_default();
            s.version.as_deref() == Some("v1.35.7+k0s.0")
                && s.up_to_date_replicas == Some(2)
                && s.ready_replicas == Some(2)
                && s.replicas == Some(2)
        },
        Duration::from_secs(180),
        "every replica on v1.35.7",
    )
    .await
    .unwrap();
    assert_eq!(revisions(&ns, "kmc-demo").await.len(), 2);
    let pods = ns
        .api::<Pod>()
        .list(&ListParams::default().labels("cluster.x-k8s.io/control-plane=true"))
        .await
        .unwrap();
    for p in pods
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        assert_eq!(
            p.spec.as_ref().unwrap().containers[0].image.as_deref(),
            Some("quay.io/k0sproject/k0s:v1.35.7-k0s.0")
        );
    }
    assert!(condition_is(&kcp, "RollingOut", "False", "NotRollingOut"));

    // Skipping a minor is refused at admission; nothing changes.
    let err = ns
        .api::<K0smotronControlPlane>()
        .patch(
            CLUSTER,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"version": "v1.37.0+k0s.0"}})),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("minor"), "{err}");
    provider.stop().await;
}

/// What of a control plane is still there: the KCP, StatefulSets, Services, our ConfigMaps and
/// the cluster's Secrets (by kind and name).
async fn leftovers(ns: &TestNamespace) -> Vec<String> {
    async fn names<K>(api: Api<K>, lp: ListParams, kind: &str) -> Vec<String>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
        K::DynamicType: Default,
    {
        api.list(&lp)
            .await
            .unwrap()
            .items
            .iter()
            .map(|o| format!("{kind}/{}", o.name_any()))
            .collect()
    }
    let all = ListParams::default;
    let mut left = names(
        ns.api::<K0smotronControlPlane>(),
        all(),
        "K0smotronControlPlane",
    )
    .await;
    left.extend(names(ns.api::<StatefulSet>(), all(), "StatefulSet").await);
    left.extend(names(ns.api::<Service>(), all(), "Service").await);
    left.extend(
        names(
            ns.api::<ConfigMap>(),
            all().labels("app=k0smotron"),
            "ConfigMap",
        )
        .await,
    );
    left.extend(
        names(
            ns.api::<Secret>(),
            all().labels("cluster.x-k8s.io/cluster-name"),
            "Secret",
        )
        .await,
    );
    left
}

/// With the defragmentation job on, its own client certificate `demo-etcd-defrag-client` is made
/// once, owned, and the only key the job mounts; turning the job off removes the CronJob and keeps
/// the Secret (deleted with the control plane, see the caller).
async fn defrag_job_gets_its_own_certificate_and_keeps_it(ns: &TestNamespace, uid: &str) {
    let secrets: Api<Secret> = ns.api();
    let name = "demo-etcd-defrag-client";
    let secret = wait_for(
        &secrets,
        name,
        |_| true,
        TIMEOUT,
        "the defrag client certificate",
    )
    .await
    .unwrap();
    assert!(controlled_by(&secret.metadata, uid));
    let pem =
        |s: &Secret, key: &str| String::from_utf8(s.data.as_ref().unwrap()[key].0.clone()).unwrap();
    let ca = secrets.get("demo-etcd").await.unwrap();
    assert!(certs::is_signed_by(
        &pem(&secret, "tls.crt"),
        &pem(&ca, "tls.crt")
    ));
    let jobs: Api<CronJob> = ns.api();
    let job = wait_for(
        &jobs,
        "kmc-demo-defrag",
        |_| true,
        TIMEOUT,
        "the defrag CronJob",
    )
    .await
    .unwrap();
    let volumes = job
        .spec
        .job_template
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .volumes
        .unwrap();
    let keys: Vec<String> = volumes
        .iter()
        .flat_map(|v| v.projected.iter().flat_map(|p| p.sources.iter().flatten()))
        .filter_map(|s| s.secret.as_ref())
        .filter(|s| s.items.iter().flatten().any(|i| i.key == "tls.key"))
        .map(|s| s.name.clone())
        .collect();
    assert_eq!(keys, vec![name.to_string()]);

    ns.api::<K0smotronControlPlane>()
        .patch(
            CLUSTER,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"storage": {"etcd": {"defragJob": {"enabled": false}}}}}),
            ),
        )
        .await
        .unwrap();
    wait_gone(&jobs, "kmc-demo-defrag").await;
    // Read once and kept: the same certificate, never minted again.
    let kept = secrets.get(name).await.unwrap();
    assert_eq!(kept.data, secret.data);
}

#[tokio::test]
#[ignore = "needs test/harness"]
async fn delete_removes_children_and_keeps_claims() {
    let (ns, _) = setup("cp-delete").await;
    let provider = Provider::start(ns.name());
    let mut spec = K0smotronControlPlaneSpec::default();
    spec.storage.etcd.defrag_job = Some(serde_json::from_value(json!({"enabled": true})).unwrap());
    spec.persistence.type_ = PersistenceType::Pvc;
    spec.persistence.persistent_volume_claim = Some(PersistentVolumeClaimTemplate {
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity("1Gi".into()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let kcp = create(&ns, spec).await;
    wait_ready(&ns, 1).await;
    let pvcs: Api<PersistentVolumeClaim> = ns.api();
    let claims_before = pvcs.list(&ListParams::default()).await.unwrap().items.len();
    assert!(claims_before >= 2, "k0s and etcd claims");
    // The leftovers check below then covers the defragmentation certificate of a job turned off.
    defrag_job_gets_its_own_certificate_and_keeps_it(&ns, &kcp.uid().unwrap()).await;

    ns.api::<K0smotronControlPlane>()
        .delete(CLUSTER, &DeleteParams::default())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let left = leftovers(&ns).await;
        if left.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "left after deletion: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // autoDeletePVCs is off: the claims stay.
    assert_eq!(
        pvcs.list(&ListParams::default()).await.unwrap().items.len(),
        claims_before
    );
    provider.stop().await;
}

#[tokio::test]
#[ignore = "needs test/harness"]
async fn a_larger_claim_size_grows_existing_claims_where_the_class_allows() {
    let (ns, client) = setup("cp-grow").await;
    // A storage class of its own that allows expansion (the harness binds claims of any class);
    // the etcd claims stay on the harness default class, which does not.
    let class = test_support::unique_name("expandable");
    let classes: Api<k8s_openapi::api::storage::v1::StorageClass> = Api::all(client.clone());
    classes
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": class},
                "provisioner": "harness.k0smotron-rs/fake",
                "allowVolumeExpansion": true,
                "volumeBindingMode": "Immediate",
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let provider = Provider::start(ns.name());
    let claim = |size: &str| PersistentVolumeClaimTemplate {
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: Some(class.clone()),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(size.into()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut spec = K0smotronControlPlaneSpec::default();
    spec.persistence.type_ = PersistenceType::Pvc;
    spec.persistence.persistent_volume_claim = Some(claim("1Gi"));
    create(&ns, spec).await;
    wait_ready(&ns, 1).await;
    let pvcs: Api<PersistentVolumeClaim> = ns.api();
    let size_of = |c: &PersistentVolumeClaim| {
        c.spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .map(|q| q.0.clone())
            .unwrap_or_default()
    };
    wait_for(
        &pvcs,
        "kmc-demo-kmc-demo-0",
        |c| c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound"),
        TIMEOUT,
        "the k0s claim bound",
    )
    .await
    .unwrap();

    // More for k0s (expandable class) and for etcd (default class, not expandable).
    let kcps: Api<K0smotronControlPlane> = ns.api();
    kcps.patch(
        CLUSTER,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {
            "persistence": {"persistentVolumeClaim": claim("2Gi")},
            "storage": {"etcd": {"persistence": {"size": "2Gi"}}},
        }})),
    )
    .await
    .unwrap();
    let grown = wait_for(
        &pvcs,
        "kmc-demo-kmc-demo-0",
        |c| size_of(c) == "2Gi",
        TIMEOUT,
        "the k0s claim asked to grow to 2Gi",
    )
    .await
    .unwrap();
    assert_eq!(size_of(&grown), "2Gi");

    // The etcd claim cannot grow: it keeps its size, and a Warning event says why.
    let uid = kcps.get(CLUSTER).await.unwrap().uid().unwrap();
    let events: Api<k8s_openapi::api::events::v1::Event> = ns.api();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let refused = loop {
        let found = events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|e| {
                e.regarding.as_ref().and_then(|r| r.uid.as_deref()) == Some(uid.as_str())
                    && e.reason.as_deref() == Some("ClaimExpansionFailed")
            });
        if let Some(e) = found {
            break e;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no ClaimExpansionFailed event"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(refused.type_.as_deref(), Some("Warning"));
    let note = refused.note.unwrap_or_default();
    assert!(note.contains("kmc-demo-etcd"), "{note}");
    let etcd_claims: Vec<_> = pvcs
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|c| c.name_any().contains("kmc-demo-etcd"))
        .collect();
    assert!(!etcd_claims.is_empty());
    assert!(etcd_claims.iter().all(|c| size_of(c) == "1Gi"));
    provider.stop().await;
    classes
        .delete(&class, &DeleteParams::default())
        .await
        .unwrap();
}

#[tokio::test]
#[ignore = "needs test/harness"]
async fn paused_changes_nothing() {
    let (ns, _) = setup("cp-paused").await;
    let provider = Provider::start(ns.name());
    create(&ns, K0smotronControlPlaneSpec::default()).await;
    wait_ready(&ns, 1).await;
    let stss: Api<StatefulSet> = ns.api();
    let before = stss.get("kmc-demo").await.unwrap();

    ns.api::<Cluster>()
        .patch(
            CLUSTER,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"paused": true}})),
        )
        .await
        .unwrap();
    let kcps: Api<K0smotronControlPlane> = ns.api();
    wait_for(
        &kcps,
        CLUSTER,
        |k| condition_is(k, "Paused", "True", "Paused"),
        TIMEOUT,
        "Paused True",
    )
    .await
    .unwrap();
    kcps.patch(
        CLUSTER,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 2, "version": "v1.36.0+k0s.0"}})),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let during = stss.get("kmc-demo").await.unwrap();
    assert_unchanged_statefulset(&during, &before);

    ns.api::<Cluster>()
        .patch(
            CLUSTER,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"paused": false}})),
        )
        .await
        .unwrap();
    let kcp = wait_ready(&ns, 2).await;
    assert!(condition_is(&kcp, "Paused", "False", "NotPaused"));
    provider.stop().await;
}

/// On kwok the pods run and the API never answers, so the control plane waits, and its requeues
/// find nothing changed: they only probe again (issue #11), and the metric counts them. A change
/// of a child or of a Secret is still acted on at once.
#[tokio::test]
#[ignore = "needs test/harness"]
async fn a_waiting_control_plane_is_only_probed_again_until_something_changes() {
    const UNCHANGED: &str =
        "k0smotron_reconcile_unchanged_total{controller=\"k0smotroncontrolplane\"}";
    const KEPT: &str = "k0smotron_secret_reads_total{source=\"kept\"}";
    let (ns, _) = setup("cp-quiet").await;
    let provider = Provider::start(ns.name());
    create(&ns, sqlite_spec()).await;
    wait_ready(&ns, 1).await;
    // Requeues come after 10 s, 20 s, 40 s...: the first after the last write is a full one.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(150);
    while provider.metric(UNCHANGED) < 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no requeue found the waiting control plane unchanged"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The reconciles after the first used the Secrets kept since they were created or read.
    assert!(
        provider.metric(KEPT) >= 1.0,
        "no Secret body was used again: {KEPT} = {}",
        provider.metric(KEPT)
    );

    // A deleted child is made again...
    let config_maps: Api<ConfigMap> = ns.api();
    let before = config_maps.get("kmc-demo-config").await.unwrap();
    config_maps
        .delete("kmc-demo-config", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        &config_maps,
        "kmc-demo-config",
        |c| c.metadata.uid != before.metadata.uid,
        Duration::from_secs(30),
        "the ConfigMap made again",
    )
    .await
    .unwrap();
    // ... and a kubeconfig someone else rewrote is written anew (with a new client certificate).
    let secrets: Api<Secret> = ns.api();
    let theirs = "apiVersion: v1\nkind: Config\n";
    secrets
        .patch(
            "demo-kubeconfig",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"value": theirs}})),
        )
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let value = kubeconfig_value(&ns).await;
        if value != theirs && value.contains("server: https://") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rewritten kubeconfig was not written anew: {value}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    provider.stop().await;
}

#[tokio::test]
#[ignore = "needs test/harness"]
async fn a_user_ca_is_used_as_is_and_the_workload_api_makes_it_initialized() {
    let (ns, _) = setup("cp-userca").await;
    // The user's CA, created before the control plane (no owner, PKCS#1 not needed).
    let now = jiff::Timestamp::now();
    let ca = certs::generate_ca("user-ca", now).unwrap();
    let secrets: Api<Secret> = ns.api();
    let user_ca = secrets
        .create(
            &PostParams::default(),
            &Secret {
                metadata: ObjectMeta {
                    name: Some("demo-ca".into()),
                    labels: Some(BTreeMap::from([(
                        "cluster.x-k8s.io/cluster-name".to_string(),
                        CLUSTER.to_string(),
                    )])),
                    ..Default::default()
                },
                type_: Some("cluster.x-k8s.io/secret".into()),
                data: Some(BTreeMap::from([
                    (
                        "tls.crt".to_string(),
                        ByteString(ca.cert_pem.clone().into_bytes()),
                    ),
                    (
                        "tls.key".to_string(),
                        ByteString(ca.key_pem.clone().into_bytes()),
                    ),
                ])),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // A second API server fronted by that CA plays the workload cluster.
    let port = test_support::free_port().unwrap();
    let server_name = test_support::unique_name("wl");
    let workload =
        test_support::WorkloadServer::start(&server_name, &ca.cert_pem, &ca.key_pem, port)
            .await
            .unwrap();

    let provider = Provider::start(ns.name());
    let mut spec = K0smotronControlPlaneSpec::default();
    spec.external_address = Some("127.0.0.1".into());
    spec.service.api_port = i32::from(port);
    spec.storage.type_ = StorageType::Kine;
    spec.storage.kine = Some(KineSpec {
        data_source_url: Some("sqlite:///var/lib/k0s/db/state.db".into()),
        data_source_secret_name: None,
    });
    create(&ns, spec).await;
    let kcp = wait_for(
        &ns.api::<K0smotronControlPlane>(),
        CLUSTER,
        |k| {
            k.status
                .as_ref()
                .and_then(|s| s.initialization.as_ref())
                .and_then(|i| i.control_plane_initialized)
                == Some(true)
                && condition_is(k, "Available", "True", "Available")
        },
        TIMEOUT,
        "controlPlaneInitialized and Available",
    )
    .await
    .unwrap();
    assert_eq!(
        kcp.status.unwrap().external_address.as_deref(),
        Some("127.0.0.1")
    );

    // The user's Secret is untouched: same data, no owner reference, same resourceVersion.
    let after = secrets.get("demo-ca").await.unwrap();
    assert_eq!(after.data, user_ca.data);
    assert_eq!(after.metadata.owner_references, None);
    assert_eq!(
        after.metadata.resource_version,
        user_ca.metadata.resource_version
    );
    // The kubeconfig trusts it and reaches the workload API server.
    let kubeconfig = secrets.get("demo-kubeconfig").await.unwrap();
    let value = String::from_utf8(kubeconfig.data.unwrap()["value"].0.clone()).unwrap();
    let parsed = controlplane_provider::kubeconfig::parse(&value).unwrap();
    assert_eq!(parsed.ca_cert_pem, ca.cert_pem);
    assert_eq!(parsed.server, workload.url());
    let wl = test_support::client_from_kubeconfig_yaml(&value)
        .await
        .unwrap();
    let kube_system = Api::<k8s_openapi::api::core::v1::Namespace>::all(wl)
        .get("kube-system")
        .await
        .unwrap();
    // The Cluster carries the workload cluster's identity, in an annotation only we own.
    let expected_id = format!("kube-system:{}", kube_system.metadata.uid.unwrap());
    let cluster = wait_for(
        &ns.api::<Cluster>(),
        CLUSTER,
        |c| c.annotations().get("k0sproject.io/cluster-id") == Some(&expected_id),
        TIMEOUT,
        "Cluster annotated k0sproject.io/cluster-id",
    )
    .await
    .unwrap();
    let owners: Vec<_> = cluster
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|f| {
            f.fields_v1.as_ref().is_some_and(|v| {
                v.0["f:metadata"]["f:annotations"]
                    .get("f:k0sproject.io/cluster-id")
                    .is_some()
            })
        })
        .filter_map(|f| f.manager.clone())
        .collect();
    assert_eq!(owners, ["k0smotron-controlplane-cluster-id"]);

    // Stopping the workload server does not unset initialized; Available follows.
    workload.stop().unwrap();
    let kcps: Api<K0smotronControlPlane> = ns.api();
    let kcp = wait_for(
        &kcps,
        CLUSTER,
        |k| condition(k, "Available").is_some_and(|c| c.status == "False"),
        TIMEOUT,
        "Available False after the workload API server stopped",
    );
    // Requeued every 10 s while not settled; a spec poke makes it immediate.
    ns.api::<K0smotronControlPlane>()
        .patch(
            CLUSTER,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"poke": "1"}}})),
        )
        .await
        .unwrap();
    let kcp = kcp.await.unwrap();
    assert_eq!(
        kcp.status
            .unwrap()
            .initialization
            .unwrap()
            .control_plane_initialized,
        Some(true)
    );
    provider.stop().await;
}

#[tokio::test]
#[ignore = "needs test/harness"]
async fn bad_specs_are_refused_or_reported_and_nothing_is_deleted() {
    let (ns, _) = setup("cp-bad").await;
    let kcps: Api<K0smotronControlPlane> = ns.api();
    // Refused at admission: pvc persistence without a claim.
    let mut bad = K0smotronControlPlane::new("refused", K0smotronControlPlaneSpec::default());
    bad.spec.persistence.type_ = PersistenceType::Pvc;
    let err = kcps.create(&PostParams::default(), &bad).await.unwrap_err();
    assert!(err.to_string().contains("persistentVolumeClaim"), "{err}");

    let provider = Provider::start(ns.name());
    let mut spec = K0smotronControlPlaneSpec::default();
    spec.storage.type_ = StorageType::Kine;
    spec.storage.kine = Some(KineSpec {
        data_source_url: Some("postgres://db/k0s".into()),
        data_source_secret_name: None,
    });
    create(&ns, spec).await;
    wait_ready(&ns, 1).await;
    let stss: Api<StatefulSet> = ns.api();
    let before = stss.get("kmc-demo").await.unwrap();

    // Accepted by the schema, refused by the controller: a k0s config of the wrong type.
    kcps.patch(
        CLUSTER,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"k0sConfig": {"apiVersion": "v1", "kind": "ConfigMap"}}})),
    )
    .await
    .unwrap();
    let kcp = wait_invalid_spec(&kcps).await;
    assert!(
        condition(&kcp, "Available")
            .unwrap()
            .message
            .contains("k0sConfig")
    );
    // A missing Secret reference is reported with its own reason.
    kcps.patch(
        CLUSTER,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"k0sConfig": null, "storage": {"kine": {"dataSourceURL": null, "dataSourceSecretName": "missing"}}}})),
    )
    .await
    .unwrap();
    wait_for(
        &kcps,
        CLUSTER,
        |k| condition_is(k, "Available", "False", "ReferenceNotFound"),
        TIMEOUT,
        "Available False ReferenceNotFound",
    )
    .await
    .unwrap();
    // Nothing was deleted or changed meanwhile.
    let after = stss.get("kmc-demo").await.unwrap();
    assert_unchanged_statefulset(&after, &before);
    for svc in ["kmc-demo"] {
        assert!(ns.api::<Service>().get_opt(svc).await.unwrap().is_some());
    }
    assert!(
        ns.api::<ConfigMap>()
            .get_opt("kmc-demo-config")
            .await
            .unwrap()
            .is_some()
    );
    provider.stop().await;
}

/// The generated ClusterConfig against k0s's own CRD schema (server-side dry-run create). Needs
/// `K0S_CRD_DIR` from `test/harness/cluster env`, which the harness can only provide when the Go
/// module proxy serves the k0s module; it does not today, so this test says so and stops.
#[tokio::test]
#[ignore = "needs test/harness"]
async fn generated_k0s_configs_are_accepted_by_the_k0s_schema() {
    let Some(dir) = std::env::var_os("K0S_CRD_DIR") else {
        eprintln!(
            "SKIPPED: K0S_CRD_DIR is not set (the harness could not download the k0s Go module); \
             the generated ClusterConfigs were NOT checked against k0s's schema"
        );
        return;
    };
    // Etcd storage with a user k0sConfig (network provider, extra SANs); kine storage with
    // conflicting user values the provider overrides.
    let mut etcd = K0smotronControlPlaneSpec::default();
    etcd.k0s_config = Some(json!({
        "apiVersion": "k0s.k0sproject.io/v1beta1",
        "kind": "ClusterConfig",
        "spec": {"network": {"provider": "calico"}, "api": {"sans": ["extra.example.com"]}}
    }));
    let mut kine = K0smotronControlPlaneSpec::default();
    kine.storage.type_ = StorageType::Kine;
    kine.storage.kine = Some(KineSpec {
        data_source_url: Some("sqlite:///var/lib/k0s/db/state.db".into()),
        data_source_secret_name: None,
    });
    kine.k0s_config = Some(json!({
        "apiVersion": "k0s.k0sproject.io/v1beta1",
        "kind": "ClusterConfig",
        "spec": {
            "api": {"port": 1234, "externalAddress": "user.example.com"},
            "storage": {"type": "etcd"},
            "network": {"podCIDR": "10.200.0.0/16", "kubeProxy": {"mode": "ipvs"}},
            "telemetry": {"enabled": false}
        }
    }));
    // Behind an Ingress: the external addresses and the API server's extra argument.
    let mut ingress = K0smotronControlPlaneSpec::default();
    ingress.ingress = Some(
        serde_json::from_value(json!({
            "apiHost": "api.example.com", "konnectivityHost": "konnectivity.example.com"}))
        .unwrap(),
    );
    for (what, spec) in [("etcd", etcd), ("kine", kine), ("ingress", ingress)] {
        let (ns, client) = setup("cp-k0s").await;
        test_support::apply_crd_dir(&client, &PathBuf::from(&dir))
            .await
            .unwrap();
        let provider = Provider::start(ns.name());
        create(&ns, spec).await;
        let cm = wait_for(
            &ns.api::<ConfigMap>(),
            "kmc-demo-config",
            |_| true,
            TIMEOUT,
            "the config ConfigMap",
        )
        .await
        .unwrap();
        provider.stop().await;
        let yaml = &cm.data.unwrap()["K0SMOTRON_K0S_YAML"];
        let mut config: serde_json::Value = serde_saphyr::from_str(yaml).unwrap();
        config["metadata"] = json!({"name": "k0s", "namespace": ns.name()});
        let gvk = kube::api::GroupVersionKind::gvk("k0s.k0sproject.io", "v1beta1", "ClusterConfig");
        let resource = kube::api::ApiResource::from_gvk_with_plural(&gvk, "clusterconfigs");
        let api: Api<kube::api::DynamicObject> =
            Api::namespaced_with(client.clone(), ns.name(), &resource);
        let obj: kube::api::DynamicObject = serde_json::from_value(config.clone()).unwrap();
        let created = api
            .create(
                &PostParams {
                    dry_run: true,
                    ..Default::default()
                },
                &obj,
            )
            .await
            .unwrap_or_else(|e| panic!("{what}: k0s's schema refuses the config: {e}\n{yaml}"));
        // The API server prunes fields the schema does not know instead of refusing them: every
        // field we wrote must come back.
        let created = serde_json::to_value(&created).unwrap();
        let mut missing = Vec::new();
        missing_fields(&config["spec"], &created["spec"], "spec", &mut missing);
        assert!(
            missing.is_empty(),
            "{what}: k0s's schema does not know {missing:?}\n{yaml}"
        );
    }
}

/// Paths of fields in `sent` that are absent (or different scalars) in `got`.
fn missing_fields(
    sent: &serde_json::Value,
    got: &serde_json::Value,
    path: &str,
    out: &mut Vec<String>,
) {
    match (sent, got) {
        (serde_json::Value::Object(s), serde_json::Value::Object(g)) => {
            for (k, v) in s {
                match g.get(k) {
                    Some(gv) => missing_fields(v, gv, &format!("{path}.{k}"), out),
                    None if v.is_null() => {}
                    None => out.push(format!("{path}.{k}")),
                }
            }
        }
        (serde_json::Value::Array(s), serde_json::Value::Array(g)) if s.len() == g.len() => {
            for (i, (sv, gv)) in s.iter().zip(g).enumerate() {
                missing_fields(sv, gv, &format!("{path}[{i}]"), out);
            }
        }
        (s, g) if s == g => {}
        // Numbers written as strings or the like still count as kept when equal as text.
        (s, g) if s.to_string().trim_matches('"') == g.to_string().trim_matches('"') => {}
        _ => out.push(path.to_owned()),
    }
}

/// A spec with kine on sqlite (no Secret, no claims).
fn sqlite_spec() -> K0smotronControlPlaneSpec {
    let mut spec = K0smotronControlPlaneSpec::default();
    spec.storage.type_ = StorageType::Kine;
    spec.storage.kine = Some(KineSpec {
        data_source_url: Some("sqlite:///var/lib/k0s/db/state.db".into()),
        data_source_secret_name: None,
    });
    spec
}

/// The value of the `demo-kubeconfig` Secret.
async fn kubeconfig_value(ns: &TestNamespace) -> String {
    let secret = ns.api::<Secret>().get("demo-kubeconfig").await.unwrap();
    String::from_utf8(secret.data.unwrap()["value"].0.clone()).unwrap()
}

/// Waits for a Warning event about the object with `uid` with `reason` whose note contains
/// `text` (events are published after the writes they report).
async fn wait_warning(ns: &TestNamespace, uid: &str, reason: &str, text: &str) {
    wait_event(ns, uid, "Warning", reason, text).await;
}

/// Waits for an event of `type_` about the object with `uid` with `reason` whose note contains
/// `text`.
async fn wait_event(ns: &TestNamespace, uid: &str, type_: &str, reason: &str, text: &str) {
    let events: Api<k8s_openapi::api::events::v1::Event> = ns.api();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let seen: Vec<(String, String)> = events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.uid.as_deref()) == Some(uid))
            .filter(|e| e.reason.as_deref() == Some(reason))
            .map(|e| (e.type_.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect();
        if seen
            .iter()
            .any(|(t, note)| t == type_ && note.contains(text))
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {type_} event {reason} with {text:?}: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// After a moment, no child of the control plane `demo` exists (StatefulSet, CA Secret, config
/// ConfigMap).
async fn assert_nothing_written(ns: &TestNamespace) {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sts = ns.api::<StatefulSet>().get_opt("kmc-demo").await.unwrap();
    let ca = ns.api::<Secret>().get_opt("demo-ca").await.unwrap();
    let cm = ns
        .api::<ConfigMap>()
        .get_opt("kmc-demo-config")
        .await
        .unwrap();
    assert!(sts.is_none() && ca.is_none() && cm.is_none());
}

/// A tenant who can write Secrets rewrites the kubeconfig with the same server, CA and client
/// certificate but a proxy. Before the fix it was kept word for word (and handed to CAPI and
/// the probe); now anything but our own rendering is replaced, with a Warning event, and the
/// proxy is never contacted.
#[tokio::test]
#[ignore = "needs test/harness (KUBECONFIG)"]
async fn a_kubeconfig_someone_else_wrote_is_replaced_and_its_proxy_never_contacted() {
    let (ns, _) = setup("cp-kcfg").await;
    let (workload, port) = workload_behind_user_ca(&ns).await;
    let provider = Provider::start(ns.name());
    let kcp = create(
        &ns,
        workload_spec(port, "sqlite:///var/lib/k0s/db/state.db"),
    )
    .await;
    let kcps: Api<K0smotronControlPlane> = ns.api();
    wait_for(
        &kcps,
        CLUSTER,
        |k| condition_is(k, "Available", "True", "Available"),
        TIMEOUT,
        "Available",
    )
    .await
    .unwrap();

    // Written while no provider runs: otherwise a reconcile in flight may put its own copy back
    // first, without the event this test looks for.
    provider.stop().await;
    let wire = test_support::Tripwire::start().await.unwrap();
    let ours = kubeconfig_value(&ns).await;
    let theirs = ours.replacen(
        "    server: ",
        &format!("    proxy-url: http://{}\n    server: ", wire.addr()),
        1,
    );
    assert_ne!(theirs, ours);
    let secrets: Api<Secret> = ns.api();
    secrets
        .patch(
            "demo-kubeconfig",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"value": theirs}})),
        )
        .await
        .unwrap();
    let provider = Provider::start(ns.name());
    wait_for(
        &secrets,
        "demo-kubeconfig",
        |s| {
            s.data
                .as_ref()
                .and_then(|d| d.get("value"))
                .is_some_and(|v| !String::from_utf8_lossy(&v.0).contains("proxy-url"))
        },
        TIMEOUT,
        "the kubeconfig rewritten without proxy-url",
    )
    .await
    .unwrap();
    let uid = kcp.metadata.uid.unwrap();
    wait_warning(&ns, &uid, "KubeconfigRegenerated", "NotWrittenByUs").await;
    // Probes keep running (every 10 s while unsettled); none went through the proxy.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(wire.contacts(), 0);
    let kcp = kcps.get(CLUSTER).await.unwrap();
    assert!(condition_is(&kcp, "Available", "True", "Available"));
    provider.stop().await;
    workload.stop().unwrap();
}

/// An owner reference anyone can write does not make a control plane the Cluster's: only the
/// Cluster's `spec.controlPlaneRef` does. And a child name taken by an object someone else
/// controls (any kind, here a ConfigMap) stops the control plane before it writes anything.
#[tokio::test]
#[ignore = "needs test/harness (KUBECONFIG)"]
async fn a_control_plane_acts_only_for_its_cluster_and_takes_over_no_child() {
    let (ns, _) = setup("cp-owner").await;
    let provider = Provider::start(ns.name());
    let spec = sqlite_spec();
    // Cluster demo refers to the control plane "demo"; "intruder" claims it by owner reference.
    let cluster = ns
        .api::<Cluster>()
        .create(
            &PostParams::default(),
            &Cluster::new(
                CLUSTER,
                ClusterSpec {
                    control_plane_ref: Some(ContractVersionedObjectReference {
                        api_group: "controlplane.cluster.x-k8s.io".into(),
                        kind: "K0smotronControlPlane".into(),
                        name: CLUSTER.into(),
                    }),
                    ..Default::default()
                },
            ),
        )
        .await
        .unwrap();
    let owned_by_cluster = |name: &str| {
        let mut kcp = K0smotronControlPlane::new(name, spec.clone());
        kcp.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "cluster.x-k8s.io/v1beta2".into(),
            kind: "Cluster".into(),
            name: CLUSTER.into(),
            uid: cluster.uid().unwrap(),
            ..Default::default()
        }]);
        kcp
    };
    let kcps: Api<K0smotronControlPlane> = ns.api();
    kcps.create(&PostParams::default(), &owned_by_cluster("intruder"))
        .await
        .unwrap();
    let intruder = wait_for(
        &kcps,
        "intruder",
        |k| condition_is(k, "Available", "False", "NotReferencedByCluster"),
        TIMEOUT,
        "Available False NotReferencedByCluster",
    )
    .await
    .unwrap();
    assert!(
        condition(&intruder, "Available")
            .unwrap()
            .message
            .contains("spec.controlPlaneRef")
    );
    assert_nothing_written(&ns).await;
    kcps.delete("intruder", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&kcps, "intruder").await;

    // The real control plane finds one of its ConfigMap names controlled by someone else.
    let config_maps: Api<ConfigMap> = ns.api();
    let other_owner = config_maps
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("someone-else".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let theirs = config_maps
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("kmc-entrypoint-demo-config".into()),
                    owner_references: Some(vec![OwnerReference {
                        api_version: "v1".into(),
                        kind: "ConfigMap".into(),
                        name: "someone-else".into(),
                        uid: other_owner.uid().unwrap(),
                        controller: Some(true),
                        ..Default::default()
                    }]),
                    ..Default::default()
                },
                data: Some(BTreeMap::from([("theirs".to_string(), "yes".to_string())])),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    kcps.create(&PostParams::default(), &owned_by_cluster(CLUSTER))
        .await
        .unwrap();
    let kcp = wait_for(
        &kcps,
        CLUSTER,
        |k| condition_is(k, "Available", "False", "ObjectOwnedByOther"),
        TIMEOUT,
        "Available False ObjectOwnedByOther",
    )
    .await
    .unwrap();
    let message = &condition(&kcp, "Available").unwrap().message;
    assert!(
        message.contains("ConfigMap kmc-entrypoint-demo-config")
            && message.contains("someone-else"),
        "{message}"
    );
    assert_nothing_written(&ns).await;
    let after = config_maps.get("kmc-entrypoint-demo-config").await.unwrap();
    assert_eq!(
        after.metadata.resource_version,
        theirs.metadata.resource_version
    );
    provider.stop().await;
}

/// Deleting a CA Secret of an initialized control plane must not mint a new CA (every node and
/// client trusts the old one): refused with a condition and a Warning event saying how to
/// restore it. Before initialization a missing CA is still generated.
#[tokio::test]
#[ignore = "needs test/harness (KUBECONFIG)"]
async fn a_lost_ca_is_refused_once_initialized_and_generated_before() {
    let (ns, _) = setup("cp-caloss").await;
    let provider = Provider::start(ns.name());
    let spec = sqlite_spec();
    let kcp = create(&ns, spec).await;
    wait_ready(&ns, 1).await;
    let secrets: Api<Secret> = ns.api();

    // Not initialized (no workload API server answers): generated again.
    let before = secrets.get("demo-proxy").await.unwrap();
    secrets
        .delete("demo-proxy", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        &secrets,
        "demo-proxy",
        |s| s.metadata.uid != before.metadata.uid,
        TIMEOUT,
        "demo-proxy generated again",
    )
    .await
    .unwrap();

    // CAPI says the control plane is initialized; the CA goes missing.
    ns.api::<Cluster>()
        .patch_status(
            CLUSTER,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"initialization": {"controlPlaneInitialized": true}}})),
        )
        .await
        .unwrap();
    let backup = secrets.get("demo-ca").await.unwrap();
    secrets
        .delete("demo-ca", &DeleteParams::default())
        .await
        .unwrap();
    let kcps: Api<K0smotronControlPlane> = ns.api();
    let refused = wait_for(
        &kcps,
        CLUSTER,
        |k| condition_is(k, "Available", "False", "CertificateAuthorityMissing"),
        TIMEOUT,
        "Available False CertificateAuthorityMissing",
    )
    .await
    .unwrap();
    let message = &condition(&refused, "Available").unwrap().message;
    assert!(
        message.contains("demo-ca") && message.contains("backup"),
        "{message}"
    );
    assert!(condition_is(
        &refused,
        "CertificatesAvailable",
        "False",
        "CertificateAuthorityMissing"
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        secrets.get_opt("demo-ca").await.unwrap().is_none(),
        "a new CA was minted"
    );
    let uid = kcp.metadata.uid.unwrap();
    wait_warning(&ns, &uid, "CertificateAuthorityMissing", "backup").await;

    // Restored from the backup: back to normal, with the same CA.
    let mut restored = backup.clone();
    restored.metadata = ObjectMeta {
        name: backup.metadata.name.clone(),
        labels: backup.metadata.labels.clone(),
        ..Default::default()
    };
    secrets
        .create(&PostParams::default(), &restored)
        .await
        .unwrap();
    wait_for(
        &kcps,
        CLUSTER,
        |k| condition_is(k, "CertificatesAvailable", "True", "CertificatesAvailable"),
        TIMEOUT,
        "CertificatesAvailable again",
    )
    .await
    .unwrap();
    assert_eq!(secrets.get("demo-ca").await.unwrap().data, backup.data);
    provider.stop().await;
}

/// Dynamic config (issue #13) against a second API server playing the hosted cluster, with k0s's
/// real `ClusterConfig` CRD from `K0S_CRD_DIR`: the push waits for the CRD, takes over what k0s
/// wrote at its first start (forced), carries only the cluster-wide part, reports a refusal with
/// the API server's message, and a change of only cluster-wide fields leaves the pod template
/// alone while a node-only change rolls it.
#[tokio::test]
#[ignore = "needs test/harness"]
async fn dynamic_config_is_pushed_into_the_hosted_cluster_and_rolls_nothing() {
    let Some(k0s_crds) = std::env::var_os("K0S_CRD_DIR") else {
        eprintln!("SKIPPED: K0S_CRD_DIR is not set; dynamic config NOT tested");
        return;
    };
    let (ns, _) = setup("cp-dyncfg").await;
    let (_workload, port) = workload_behind_user_ca(&ns).await;
    let provider = Provider::start(ns.name());
    let mut spec = workload_spec(port, "postgres://k0s:hunter2@db:5432/k0s");
    let k0s_config = |spec: serde_json::Value| {
        json!({"spec": {"k0sConfig": {"apiVersion": "k0s.k0sproject.io/v1beta1",
            "kind": "ClusterConfig", "spec": spec}}})
    };
    let first = json!({"telemetry": {"enabled": false}, "network": {"kuberouter": {"mtu": 1450}}});
    spec.k0s_config = Some(k0s_config(first)["spec"]["k0sConfig"].clone());
    create(&ns, spec).await;
    let kcps: Api<K0smotronControlPlane> = ns.api();

    // The hosted API answers, but k0s has not installed its CRD yet: the push waits.
    wait_for(
        &kcps,
        CLUSTER,
        |k| {
            condition_is(
                k,
                "DynamicConfigApplied",
                "False",
                "WaitingForClusterConfigCRD",
            )
        },
        TIMEOUT,
        "DynamicConfigApplied False, WaitingForClusterConfigCRD",
    )
    .await
    .unwrap();

    // k0s then installs the CRD and creates kube-system/k0s from its config file, under its own
    // field manager; here with a value the user has changed since (telemetry on) and one the user
    // still has (the MTU). The provider is stopped meanwhile: it retries the wait, and a retry
    // between the CRD and k0s's create would push first (a race k0s wins on a real node, where
    // it writes the object right after the CRD).
    provider.stop().await;
    let hosted = test_support::client_from_kubeconfig_yaml(&kubeconfig_value(&ns).await)
        .await
        .unwrap();
    test_support::apply_crd_dir(&hosted, &PathBuf::from(&k0s_crds))
        .await
        .unwrap();
    let gvk = kube::api::GroupVersionKind::gvk("k0s.k0sproject.io", "v1beta1", "ClusterConfig");
    let resource = kube::api::ApiResource::from_gvk_with_plural(&gvk, "clusterconfigs");
    let configs: Api<kube::api::DynamicObject> =
        Api::namespaced_with(hosted.clone(), "kube-system", &resource);
    let by_k0s: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "k0s.k0sproject.io/v1beta1", "kind": "ClusterConfig",
        "metadata": {"name": "k0s", "namespace": "kube-system"},
        "spec": {"telemetry": {"enabled": true}, "konnectivity": {"agentPort": i32::from(port)},
            "network": {"kuberouter": {"mtu": 1450}}}
    }))
    .unwrap();
    configs
        .create(
            &PostParams {
                field_manager: Some("k0s".into()),
                ..Default::default()
            },
            &by_k0s,
        )
        .await
        .unwrap();
    let provider = Provider::start(ns.name());
    poke(&kcps, "1").await;
    let kcp = wait_for(
        &kcps,
        CLUSTER,
        |k| condition_is(k, "DynamicConfigApplied", "True", "Accepted"),
        TIMEOUT,
        "DynamicConfigApplied True",
    )
    .await
    .unwrap();
    let first_hash = kcp.status.unwrap().dynamic_config_hash.unwrap();
    let pushed = configs.get("k0s").await.unwrap();
    // Forced: the user's value replaced the one k0s wrote, and the field is ours now.
    assert_eq!(pushed.data["spec"]["telemetry"]["enabled"], json!(false));
    let owners = |obj: &kube::api::DynamicObject, path: &[&str]| -> Vec<String> {
        obj.metadata
            .managed_fields
            .iter()
            .flatten()
            .filter(|f| {
                let mut node = f.fields_v1.as_ref().map(|v| &v.0);
                for p in path {
                    node = node.and_then(|n| n.get(format!("f:{p}")));
                }
                node.is_some()
            })
            .filter_map(|f| f.manager.clone())
            .collect()
    };
    assert_eq!(
        owners(&pushed, &["spec", "telemetry", "enabled"]),
        [controlplane_provider::dynamic_config::DYNAMIC_CONFIG_MANAGER]
    );
    // What k0s wrote from the config we gave it is ours alone, even a value nobody changed.
    assert_eq!(
        owners(&pushed, &["spec", "network", "kuberouter", "mtu"]),
        [controlplane_provider::dynamic_config::DYNAMIC_CONFIG_MANAGER]
    );
    // Node-only fields (and the kine DSN in them) never reach the hosted cluster.
    assert_eq!(pushed.data["spec"].get("api"), None);
    assert_eq!(pushed.data["spec"].get("storage"), None);
    assert!(!pushed.data.to_string().contains("hunter2"));

    // A cluster-wide change: pushed, the ConfigMap updated, the pod template unchanged.
    let sts_api: Api<StatefulSet> = ns.api();
    let inputs = |s: &StatefulSet| s.annotations().get(INPUTS_HASH).cloned();
    let sts_before = sts_api.get("kmc-demo").await.unwrap();
    let revisions_before = revisions(&ns, "kmc-demo").await;
    let chart =
        json!({"name": "dyncfg-test", "chartname": "r/dyncfg-test", "namespace": "default"});
    merge(
        &kcps,
        k0s_config(json!({"telemetry": {"enabled": false},
            "extensions": {"helm": {"charts": [chart]}}, "network": null})),
    )
    .await;
    let kcp = wait_for(
        &kcps,
        CLUSTER,
        |k| {
            k.status
                .as_ref()
                .and_then(|s| s.dynamic_config_hash.as_ref())
                .is_some_and(|h| *h != first_hash)
                && condition_is(k, "DynamicConfigApplied", "True", "Accepted")
        },
        TIMEOUT,
        "the new dynamic config accepted",
    )
    .await
    .unwrap();
    let second_hash = kcp.status.unwrap().dynamic_config_hash.unwrap();
    let pushed = configs.get("k0s").await.unwrap();
    assert_eq!(
        pushed.data["spec"]["extensions"]["helm"]["charts"][0]["name"],
        json!("dyncfg-test")
    );
    // The MTU, gone from spec.k0sConfig, is gone from the hosted cluster too.
    assert_eq!(pushed.data["spec"].get("network"), None, "{}", pushed.data);
    let cm = ns.api::<ConfigMap>().get("kmc-demo-config").await.unwrap();
    assert!(cm.data.unwrap()["K0SMOTRON_K0S_YAML"].contains("dyncfg-test"));
    let sts_after = sts_api.get("kmc-demo").await.unwrap();
    assert_eq!(inputs(&sts_after), inputs(&sts_before));
    assert_eq!(sts_after.spec.template, sts_before.spec.template);
    assert_eq!(revisions(&ns, "kmc-demo").await, revisions_before);

    // A value k0s's schema refuses: False with the API server's message; the accepted hash and
    // the hosted object stay.
    merge(
        &kcps,
        k0s_config(json!({"telemetry": {"enabled": "yes"},
            "extensions": {"helm": {"charts": [chart]}}})),
    )
    .await;
    let kcp = wait_for(
        &kcps,
        CLUSTER,
        |k| condition_is(k, "DynamicConfigApplied", "False", "DynamicConfigRejected"),
        TIMEOUT,
        "DynamicConfigApplied False, DynamicConfigRejected",
    )
    .await
    .unwrap();
    let st = kcp.status.unwrap();
    let message = &st
        .conditions
        .iter()
        .find(|c| c.type_ == "DynamicConfigApplied")
        .unwrap()
        .message;
    assert!(message.contains("spec.telemetry.enabled"), "{message}");
    assert_eq!(
        st.dynamic_config_hash.as_deref(),
        Some(second_hash.as_str())
    );
    assert_eq!(
        configs.get("k0s").await.unwrap().data["spec"]["telemetry"]["enabled"],
        json!(false)
    );
    wait_warning(
        &ns,
        &kcp.metadata.uid.clone().unwrap(),
        "DynamicConfigRejected",
        "telemetry",
    )
    .await;

    // A node-only change (spec.api) rolls the pods, as before.
    merge(
        &kcps,
        k0s_config(json!({"telemetry": {"enabled": false},
            "extensions": {"helm": {"charts": [chart]}},
            "api": {"extraArgs": {"event-ttl": "2h"}}})),
    )
    .await;
    wait_for(
        &sts_api,
        "kmc-demo",
        |s| inputs(s) != inputs(&sts_before),
        TIMEOUT,
        "a new pod template after a node-only change",
    )
    .await
    .unwrap();
    // Back to a config the hosted cluster accepted: True again.
    wait_for(
        &kcps,
        CLUSTER,
        |k| condition_is(k, "DynamicConfigApplied", "True", "Accepted"),
        TIMEOUT,
        "DynamicConfigApplied True again",
    )
    .await
    .unwrap();
    provider.stop().await;
}

/// A user CA `demo-ca` and a second API server behind it on a free port of 127.0.0.1, playing
/// the hosted cluster (see [`workload_spec`]).
async fn workload_behind_user_ca(ns: &TestNamespace) -> (test_support::WorkloadServer, u16) {
    let ca = certs::generate_ca("user-ca", jiff::Timestamp::now()).unwrap();
    let secrets: Api<Secret> = ns.api();
    secrets
        .create(
            &PostParams::default(),
            &Secret {
                metadata: ObjectMeta {
                    name: Some("demo-ca".into()),
                    ..Default::default()
                },
                string_data: Some(BTreeMap::from([
                    ("tls.crt".to_string(), ca.cert_pem.clone()),
                    ("tls.key".to_string(), ca.key_pem.clone()),
                ])),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let port = test_support::free_port().unwrap();
    let workload = test_support::WorkloadServer::start(
        &test_support::unique_name("wl"),
        &ca.cert_pem,
        &ca.key_pem,
        port,
    )
    .await
    .unwrap();
    (workload, port)
}

/// A kine control plane whose endpoint is the workload server of [`workload_behind_user_ca`].
fn workload_spec(port: u16, dsn: &str) -> K0smotronControlPlaneSpec {
    let mut spec = K0smotronControlPlaneSpec::default();
    spec.external_address = Some("127.0.0.1".into());
    spec.service.api_port = i32::from(port);
    spec.storage.type_ = StorageType::Kine;
    spec.storage.kine = Some(KineSpec {
        data_source_url: Some(dsn.into()),
        data_source_secret_name: None,
    });
    spec
}

/// The StatefulSet annotation whose change means a new pod template was applied.
const INPUTS_HASH: &str = "k0smotron.io/template-inputs-hash";

/// A metadata change that wakes the control plane's reconcile at once.
async fn poke(kcps: &Api<K0smotronControlPlane>, value: &str) {
    merge(kcps, json!({"metadata": {"labels": {"poke": value}}})).await;
}

/// A JSON merge patch of the control plane `CLUSTER`.
async fn merge(kcps: &Api<K0smotronControlPlane>, patch: serde_json::Value) {
    kcps.patch(CLUSTER, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
}

/// NATS storage (issue #13 part 5) on kwok: the headless Service, the token Secret generated
/// once and kept, the StatefulSet with its `nats-data` claim, `serviceName` and parallel pods,
/// the kine datasource; the replica count is fixed (the CRD refuses a change). That k0s runs on
/// it is the real-node test's (test/e2e/tests/real_k0s.rs).
#[tokio::test]
#[ignore = "needs test/harness"]
async fn nats_storage_gets_its_service_token_and_claims_and_keeps_its_replicas() {
    let (ns, _) = setup("cp-nats").await;
    let provider = Provider::start(ns.name());
    let mut spec = K0smotronControlPlaneSpec::default();
    spec.replicas = 3;
    spec.storage.type_ = StorageType::Nats;
    let kcp = create(&ns, spec).await;
    let uid = kcp.uid().unwrap();
    wait_ready(&ns, 3).await;

    let svc = ns.api::<Service>().get("kmc-demo-nats").await.unwrap();
    assert!(controlled_by(&svc.metadata, &uid));
    let svc_spec = svc.spec.unwrap();
    assert_eq!(svc_spec.cluster_ip.as_deref(), Some("None"));
    assert_eq!(svc_spec.publish_not_ready_addresses, Some(true));
    assert_eq!(svc_spec.ports.unwrap()[0].port, 6222);

    let secrets: Api<Secret> = ns.api();
    let token = secrets.get("kmc-demo-nats-token").await.unwrap();
    assert!(controlled_by(&token.metadata, &uid));
    let value = token.data.clone().unwrap()["token"].0.clone();
    assert_eq!(value.len(), 64);
    assert!(value.iter().all(u8::is_ascii_hexdigit));

    let sts = ns.api::<StatefulSet>().get("kmc-demo").await.unwrap();
    let sts_spec = sts.spec;
    assert_eq!(sts_spec.service_name.as_deref(), Some("kmc-demo-nats"));
    assert_eq!(sts_spec.pod_management_policy.as_deref(), Some("Parallel"));
    let claims: Vec<String> = sts_spec
        .volume_claim_templates
        .unwrap_or_default()
        .iter()
        .map(|c| c.name_any())
        .collect();
    assert_eq!(claims, ["nats-data"]);
    let cm = ns.api::<ConfigMap>().get("kmc-demo-config").await.unwrap();
    assert!(
        cm.data.unwrap()["K0SMOTRON_K0S_YAML"]
            .contains("nats://?serverConfig=/etc/nats/nats.conf&replicas=3")
    );

    // A restart keeps the token (it is never regenerated) and makes no new revision.
    let before = revisions(&ns, "kmc-demo").await;
    provider.stop().await;
    let provider = Provider::start(ns.name());
    let kcps: Api<K0smotronControlPlane> = ns.api();
    // The Service deleted and made again proves a reconcile after the restart.
    let services: Api<Service> = ns.api();
    services
        .delete("kmc-demo-nats", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&services, "kmc-demo-nats").await;
    poke(&kcps, "after-restart").await;
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while services.get_opt("kmc-demo-nats").await.unwrap().is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no NATS Service again"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        secrets
            .get("kmc-demo-nats-token")
            .await
            .unwrap()
            .data
            .unwrap()["token"]
            .0,
        value
    );
    assert_eq!(revisions(&ns, "kmc-demo").await, before);

    let err = kcps
        .patch(
            CLUSTER,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("spec.replicas cannot be changed"),
        "{err}"
    );
    provider.stop().await;
}

/// Monitoring (issue #13 part 4) on kwok, from the spec an upstream user writes (`enabled: true`,
/// upstream's default images): upstream's ConfigMap with both files, the metrics Service, the two
/// sidecars with the pod annotations, pods the API server accepts; turned off again, the Service
/// goes and the pods lose the sidecars. That the sidecars serve the hosted API server's metrics
/// is the real-node test's (test/e2e/tests/real_k0s.rs).
#[tokio::test]
#[ignore = "needs test/harness"]
async fn monitoring_adds_its_config_service_and_sidecars_and_goes_when_disabled() {
    let (ns, _) = setup("cp-mon").await;
    let provider = Provider::start(ns.name());
    let mut spec = sqlite_spec();
    spec.monitoring = Some(serde_json::from_value(json!({"enabled": true})).unwrap());
    let kcp = create(&ns, spec).await;
    let uid = kcp.uid().unwrap();
    wait_ready(&ns, 1).await;

    let cm = ns
        .api::<ConfigMap>()
        .get("kmc-prometheus-demo-config")
        .await
        .unwrap();
    assert!(controlled_by(&cm.metadata, &uid));
    assert_eq!(
        label(&cm.metadata, "app.kubernetes.io/component"),
        Some("monitoring")
    );
    let data = cm.data.unwrap();
    assert!(data["prometheus.yml"].contains("k0smotron_cluster_metrics"));
    assert!(
        !data["prometheus.yml"].contains("k0smotron_etcd_metrics"),
        "no etcd to scrape with kine"
    );
    assert!(data["nginx.conf"].contains("listen 8090;"));

    let services: Api<Service> = ns.api();
    let svc = services.get("kmc-demo-metrics").await.unwrap();
    assert!(controlled_by(&svc.metadata, &uid));
    let port = &svc.spec.unwrap().ports.unwrap()[0];
    assert_eq!((port.name.as_deref(), port.port), (Some("metrics"), 8090));

    // The pods the StatefulSet controller made (so the API server accepted the template).
    let pods = ns
        .api::<Pod>()
        .list(&ListParams::default().labels("cluster=demo,component=cluster"))
        .await
        .unwrap();
    assert_eq!(pods.items.len(), 1);
    let pod = &pods.items[0];
    let images: Vec<(String, Option<String>)> = pod
        .spec
        .as_ref()
        .unwrap()
        .containers
        .iter()
        .map(|c| (c.name.clone(), c.image.clone()))
        .collect();
    assert_eq!(
        images[1..],
        [
            (
                "monitoring-agent".to_string(),
                Some("quay.io/k0sproject/prometheus:v2.44.0".to_string())
            ),
            (
                "monitoring-proxy".to_string(),
                Some("nginx:1.19.10".to_string())
            )
        ]
    );
    assert_eq!(pod.annotations()["prometheus.io/port"], "8090");
    let before = revisions(&ns, "kmc-demo").await;

    let kcps: Api<K0smotronControlPlane> = ns.api();
    merge(&kcps, json!({"spec": {"monitoring": {"enabled": false}}})).await;
    wait_gone(&services, "kmc-demo-metrics").await;
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let sts = ns.api::<StatefulSet>().get("kmc-demo").await.unwrap();
        let containers: Vec<String> = sts
            .spec
            .template
            .spec
            .unwrap()
            .containers
            .iter()
            .map(|c| c.name.clone())
            .collect();
        if containers == ["controller"] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sidecars still in the template: {containers:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    wait_ready(&ns, 1).await;
    assert_ne!(revisions(&ns, "kmc-demo").await, before, "the pods rolled");
    provider.stop().await;
}

fn ingress_spec(deploy: bool) -> K0smotronControlPlaneSpec {
    let mut spec = sqlite_spec();
    spec.ingress = Some(
        serde_json::from_value(json!({
            "deploy": deploy,
            "port": 8443,
            "apiHost": "api.demo.example.com",
            "konnectivityHost": "konnectivity.demo.example.com",
            "className": "haproxy",
            "annotations": {"haproxy.org/ssl-passthrough": "true"},
        }))
        .unwrap(),
    );
    spec
}

/// Waits until the Ingress `kmc-demo` exists (`true`) or not (`false`).
async fn wait_ingress(ns: &TestNamespace, present: bool) -> Option<Ingress> {
    let api: Api<Ingress> = ns.api();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let got = api.get_opt("kmc-demo").await.unwrap();
        if got.is_some() == present {
            return got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Ingress kmc-demo present: {} (wanted {present})",
            got.is_some()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `spec.ingress` (issue #13 part 3) on kwok: the Ingress with upstream's two rules, class and
/// annotations, owned by the control plane and put back when deleted; the k0s config, the
/// kubeconfig and the published endpoint at the ingress; `deploy: false` deletes ours and leaves
/// a user's Ingress of the same name alone; a bad host is reported, nothing deleted. That
/// `kubectl` reaches the hosted API through an SNI proxy made from this Ingress is the real-node
/// test's (test/e2e/tests/real_k0s.rs).
#[tokio::test]
#[ignore = "needs test/harness"]
async fn ingress_routes_the_api_and_konnectivity_hosts_to_the_service() {
    let (ns, _) = setup("cp-ingress").await;
    let provider = Provider::start(ns.name());
    let kcp = create(&ns, ingress_spec(true)).await;
    let uid = kcp.uid().unwrap();
    let kcp = wait_ready(&ns, 1).await;

    let ingress = wait_ingress(&ns, true).await.unwrap();
    assert!(controlled_by(&ingress.metadata, &uid));
    assert_eq!(
        label(&ingress.metadata, "app.kubernetes.io/component"),
        Some("ingress")
    );
    assert_eq!(
        ingress.annotations().get("haproxy.org/ssl-passthrough"),
        Some(&"true".to_string())
    );
    let spec = ingress.spec.clone().unwrap();
    assert_eq!(spec.ingress_class_name.as_deref(), Some("haproxy"));
    let rules: Vec<(String, String, String, i32)> = spec
        .rules
        .unwrap()
        .into_iter()
        .map(|r| {
            let path = r.http.unwrap().paths.remove(0);
            let svc = path.backend.service.unwrap();
            (
                r.host.unwrap(),
                path.path.unwrap(),
                svc.name,
                svc.port.unwrap().number.unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rules,
        [
            (
                "api.demo.example.com".into(),
                "/".into(),
                "kmc-demo".into(),
                30443
            ),
            (
                "konnectivity.demo.example.com".into(),
                "/".into(),
                "kmc-demo".into(),
                30132
            ),
        ]
    );

    // Every address clients get is the ingress's.
    let endpoint = kcp.spec.control_plane_endpoint.clone().unwrap();
    assert_eq!(
        (endpoint.host.as_deref(), endpoint.port),
        (Some("api.demo.example.com"), Some(8443))
    );
    let kubeconfig = kubeconfig_value(&ns).await;
    assert!(
        kubeconfig.contains("server: https://api.demo.example.com:8443"),
        "{kubeconfig}"
    );
    let cm = ns.api::<ConfigMap>().get("kmc-demo-config").await.unwrap();
    let config: serde_json::Value =
        serde_saphyr::from_str(&cm.data.unwrap()["K0SMOTRON_K0S_YAML"]).unwrap();
    let api = &config["spec"]["api"];
    assert_eq!(api["externalAddress"], "api.demo.example.com:8443");
    assert_eq!(api["extraArgs"]["endpoint-reconciler-type"], "none");
    assert_eq!(
        config["spec"]["konnectivity"]["externalAddress"],
        "konnectivity.demo.example.com:8443"
    );
    for san in ["api.demo.example.com", "konnectivity.demo.example.com"] {
        assert!(
            api["sans"].as_array().unwrap().contains(&json!(san)),
            "{san}"
        );
    }

    // Deleted by someone: put back (the Ingress watch wakes the control plane).
    let ingresses: Api<Ingress> = ns.api();
    ingresses
        .delete("kmc-demo", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&ingresses, "kmc-demo").await;
    let back = wait_ingress(&ns, true).await.unwrap();
    assert_ne!(back.uid(), ingress.uid());

    // A bad host: reported, nothing deleted.
    let kcps: Api<K0smotronControlPlane> = ns.api();
    merge(
        &kcps,
        json!({"spec": {"ingress": {"apiHost": "API.demo.example.com"}}}),
    )
    .await;
    let bad = wait_invalid_spec(&kcps).await;
    assert!(
        condition(&bad, "Available")
            .unwrap()
            .message
            .contains("spec.ingress.apiHost"),
        "{:?}",
        condition(&bad, "Available")
    );
    assert_eq!(
        ingresses.get("kmc-demo").await.unwrap().uid(),
        back.uid(),
        "a refused spec deletes nothing"
    );

    // deploy: false: ours goes; the user's own Ingress of that name is never touched.
    merge(
        &kcps,
        json!({"spec": {"ingress": {"apiHost": "api.demo.example.com", "deploy": false}}}),
    )
    .await;
    wait_ingress(&ns, false).await;
    let users: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "kmc-demo"},
        "spec": {"rules": [{"host": "api.demo.example.com", "http": {"paths": [{
            "path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "kmc-demo", "port": {"number": 30443}}}}]}}]},
    }))
    .unwrap();
    let users = ingresses
        .create(&PostParams::default(), &users)
        .await
        .unwrap();
    // Leaving the ingress altogether: the config loses the ingress addresses, the user's
    // Ingress stays as it was.
    merge(&kcps, json!({"spec": {"ingress": null}})).await;
    wait_for(
        &ns.api::<ConfigMap>(),
        "kmc-demo-config",
        |cm| !cm.data.as_ref().unwrap()["K0SMOTRON_K0S_YAML"].contains("api.demo.example.com:8443"),
        TIMEOUT,
        "the k0s config without the ingress",
    )
    .await
    .unwrap();
    let kept = ingresses.get("kmc-demo").await.unwrap();
    assert_eq!(kept.uid(), users.uid());
    assert_eq!(
        kept.metadata.resource_version,
        users.metadata.resource_version
    );
    provider.stop().await;
}

/// Waits until the control plane reports `Available=False` with reason `InvalidSpec`.
async fn wait_invalid_spec(kcps: &Api<K0smotronControlPlane>) -> K0smotronControlPlane {
    wait_for(
        kcps,
        CLUSTER,
        |k| condition_is(k, "Available", "False", "InvalidSpec"),
        TIMEOUT,
        "Available False InvalidSpec",
    )
    .await
    .unwrap()
}

/// A Secret `name` in `ns` holding `kubeconfig` under `value`.
async fn kubeconfig_secret(ns: &TestNamespace, name: &str, kubeconfig: &str) {
    ns.api::<Secret>()
        .create(
            &PostParams::default(),
            &Secret {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    ..Default::default()
                },
                string_data: Some(BTreeMap::from([(
                    "value".to_string(),
                    kubeconfig.to_string(),
                )])),
                ..Default::default()
            },
        )
        .await
        .unwrap();
}

/// `spec.remoteHostCluster` (issue #13 part 2) with a second API server as the hosting cluster:
/// a Secret of another namespace and a kubeconfig that runs a command are refused with a
/// condition and nothing is written anywhere; with a good kubeconfig every child is created in
/// the hosting cluster, in a namespace of the same name, controlled by the `demo-root-owner`
/// ConfigMap there, and only `demo-kubeconfig` in the management cluster; the hosting cluster is
/// watched (a StatefulSet or Service deleted there comes back at once); a hosting cluster that stops
/// answering is `RemoteHostUnavailable`, and deleting the control plane waits for it; deleting
/// the control plane deletes the root owner (the hosting cluster's garbage collector takes the children; the
/// harness's workload servers run none, so they are not checked).
#[tokio::test]
#[ignore = "needs test/harness"]
async fn a_remote_host_cluster_gets_every_child_but_the_kubeconfig() {
    let (ns, _) = setup("cp-remote").await;
    let ca = certs::generate_ca("hosting-ca", jiff::Timestamp::now()).unwrap();
    let port = test_support::free_port().unwrap();
    let hosting = test_support::WorkloadServer::start(
        &test_support::unique_name("host"),
        &ca.cert_pem,
        &ca.key_pem,
        port,
    )
    .await
    .unwrap();
    let good = std::fs::read_to_string(hosting.kubeconfig_path()).unwrap();
    kubeconfig_secret(&ns, "hosting", &good).await;
    let exec = format!(
        "apiVersion: v1
kind: Config
current-context: c
clusters:
- name: h
  cluster:
    server: {}
contexts:
- name: c
  context:
    cluster: h
    user: u
users:
- name: u
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: /bin/sh
      args: [-c, 'touch /tmp/pwned']
",
        hosting.url()
    );
    kubeconfig_secret(&ns, "exec", &exec).await;
    let host = hosting.client().await.unwrap();
    let provider = Provider::start(ns.name());

    // Another namespace's Secret may not be named.
    let mut spec = K0smotronControlPlaneSpec::default();
    spec.external_address = Some("127.0.0.1".into());
    spec.remote_host_cluster = Some(
        serde_json::from_value(json!({"kubeconfigRef": {
            "name": "hosting", "namespace": "kube-system", "key": "value"}}))
        .unwrap(),
    );
    let kcp = create(&ns, spec).await;
    let kcps: Api<K0smotronControlPlane> = ns.api();
    let refused = wait_invalid_spec(&kcps).await;
    let message = &condition(&refused, "Available").unwrap().message;
    assert!(message.contains("own namespace"), "{message}");
    assert_nothing_written(&ns).await;

    // A kubeconfig that runs a command is refused; nothing is written there either.
    let reference = |name: &str| {
        json!({"spec": {"remoteHostCluster": {"kubeconfigRef": {
            "name": name, "namespace": ns.name(), "key": "value"}}}})
    };
    merge(&kcps, reference("exec")).await;
    let refused = wait_for(
        &kcps,
        CLUSTER,
        |k| condition_is(k, "Available", "False", "KubeconfigRefused"),
        TIMEOUT,
        "Available False KubeconfigRefused",
    )
    .await
    .unwrap();
    let message = &condition(&refused, "Available").unwrap().message;
    assert!(message.contains("exec"), "{message}");
    assert!(!message.contains("pwned"), "no value quoted: {message}");
    assert!(!std::path::Path::new("/tmp/pwned").exists());
    let host_namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(host.clone());
    assert!(host_namespaces.get_opt(ns.name()).await.unwrap().is_none());
    assert_nothing_written(&ns).await;

    // The good one: everything but the kubeconfig goes to the hosting cluster.
    merge(&kcps, reference("hosting")).await;
    let host_cms: Api<ConfigMap> = Api::namespaced(host.clone(), ns.name());
    let root = wait_for(
        &host_cms,
        "demo-root-owner",
        |_| true,
        TIMEOUT,
        "the root owner in the hosting cluster",
    )
    .await
    .unwrap();
    let root_uid = root.uid().unwrap();
    assert_eq!(
        root.annotations()
            .get("k0smotron.io/control-plane-uid")
            .map(String::as_str),
        kcp.uid().as_deref()
    );
    let host_sts: Api<StatefulSet> = Api::namespaced(host.clone(), ns.name());
    for name in ["kmc-demo", "kmc-demo-etcd"] {
        let sts = wait_for(&host_sts, name, |_| true, TIMEOUT, name)
            .await
            .unwrap();
        assert!(controlled_by(&sts.metadata, &root_uid), "{name}");
        assert!(
            ns.api::<StatefulSet>()
                .get_opt(name)
                .await
                .unwrap()
                .is_none()
        );
    }
    let host_svcs: Api<Service> = Api::namespaced(host.clone(), ns.name());
    for name in ["kmc-demo", "kmc-demo-etcd"] {
        let svc = host_svcs.get(name).await.unwrap();
        assert!(controlled_by(&svc.metadata, &root_uid), "{name}");
        assert!(ns.api::<Service>().get_opt(name).await.unwrap().is_none());
    }
    for name in ["kmc-demo-config", "kmc-entrypoint-demo-config"] {
        let cm = host_cms.get(name).await.unwrap();
        assert!(controlled_by(&cm.metadata, &root_uid), "{name}");
        assert!(ns.api::<ConfigMap>().get_opt(name).await.unwrap().is_none());
    }
    let host_secrets: Api<Secret> = Api::namespaced(host.clone(), ns.name());
    for name in [
        "demo-ca",
        "demo-proxy",
        "demo-sa",
        "demo-etcd",
        "demo-etcd-server",
        "demo-etcd-peer",
        "demo-apiserver-etcd-client",
    ] {
        let secret = host_secrets.get(name).await.unwrap();
        assert!(controlled_by(&secret.metadata, &root_uid), "{name}");
        assert!(ns.api::<Secret>().get_opt(name).await.unwrap().is_none());
    }
    let kubeconfig = wait_for(
        &ns.api::<Secret>(),
        "demo-kubeconfig",
        |_| true,
        TIMEOUT,
        "the kubeconfig in the management cluster",
    )
    .await
    .unwrap();
    assert!(controlled_by(&kubeconfig.metadata, &kcp.uid().unwrap()));
    assert!(
        host_secrets
            .get_opt("demo-kubeconfig")
            .await
            .unwrap()
            .is_none(),
        "the kubeconfig stays in the management cluster"
    );
    wait_for(
        &kcps,
        CLUSTER,
        |k| {
            condition(k, "Available").is_some_and(|c| c.reason != "KubeconfigRefused")
                && k.status
                    .as_ref()
                    .and_then(|s| s.selector.as_deref())
                    .is_some()
        },
        TIMEOUT,
        "the refusal cleared",
    )
    .await
    .unwrap();

    // The hosting cluster is watched: a StatefulSet deleted there is written again at once (the
    // periodic requeue of remote control planes is 10 to 30 s away).
    for round in 0..2 {
        let before = host_sts.get("kmc-demo").await.unwrap().uid().unwrap();
        host_sts
            .delete("kmc-demo", &DeleteParams::default())
            .await
            .unwrap();
        wait_for(
            &host_sts,
            "kmc-demo",
            |s| s.uid().as_deref() != Some(before.as_str()),
            Duration::from_secs(6),
            &format!("kmc-demo written again in the hosting cluster (round {round})"),
        )
        .await
        .unwrap();
    }

    let before = host_svcs.get("kmc-demo").await.unwrap().uid().unwrap();
    host_svcs
        .delete("kmc-demo", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        &host_svcs,
        "kmc-demo",
        |s| s.uid().as_deref() != Some(before.as_str()),
        Duration::from_secs(6),
        "Service kmc-demo written again in the hosting cluster",
    )
    .await
    .unwrap();

    // A hosting cluster that does not answer: a condition naming it.
    let hosting_name = hosting.name().to_owned();
    hosting.stop().unwrap();
    let unavailable = wait_for(
        &kcps,
        CLUSTER,
        |k| condition_is(k, "Available", "False", "RemoteHostUnavailable"),
        TIMEOUT,
        "Available False RemoteHostUnavailable",
    )
    .await
    .unwrap();
    let message = &condition(&unavailable, "Available").unwrap().message;
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");

    // Deleting the control plane waits for the hosting cluster (its objects there would be
    // left otherwise), then deletes the root owner there and releases the finalizer. The same
    // server comes back (same name: same etcd prefix, same CA, same port).
    kcps.delete(CLUSTER, &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(kcps.get_opt(CLUSTER).await.unwrap().is_some(), "waits");
    let hosting =
        test_support::WorkloadServer::start(&hosting_name, &ca.cert_pem, &ca.key_pem, port)
            .await
            .unwrap();
    let host = hosting.client().await.unwrap();
    let host_cms: Api<ConfigMap> = Api::namespaced(host, ns.name());
    wait_gone(&host_cms, "demo-root-owner").await;
    wait_gone(&kcps, CLUSTER).await;
    wait_gone(&ns.api::<Secret>(), "demo-kubeconfig").await;
    provider.stop().await;
    hosting.stop().unwrap();
}

/// Neither the HAProxy certificate nor the ingress manifests ConfigMap exist, and the k0s pods
/// mount no such ConfigMap.
async fn assert_no_ingress_workload_side(ns: &TestNamespace) {
    assert!(
        ns.api::<Secret>()
            .get_opt("demo-ingress-haproxy")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        ns.api::<ConfigMap>()
            .get_opt("kmc-demo-ingress")
            .await
            .unwrap()
            .is_none()
    );
    let sts = ns.api::<StatefulSet>().get("kmc-demo").await.unwrap();
    let volumes = sts.spec.template.spec.unwrap().volumes.unwrap();
    assert!(
        volumes.iter().all(|v| v.name != "kmc-demo-ingress"),
        "{volumes:?}"
    );
}

/// The hosted cluster's `kubernetes` Service IP in this harness (`HARNESS_SERVICE_CIDR`).
fn harness_service_cidr() -> String {
    std::env::var("HARNESS_SERVICE_CIDR").unwrap_or_else(|_| "10.0.0.0/24".to_string())
}

/// Server-side dry run of one manifest as k0s would apply it: a create, or, for an object the
/// API server already has (the `default/kubernetes` Service and Endpoints), a forced apply over
/// it (k0s's applier patches existing objects). Either way the real API server validates it
/// (schema, immutable fields such as the Service's cluster IP, admission) and stores nothing.
async fn dry_run_manifest(client: &Client, file: &str, yaml: &str) -> Result<(), String> {
    use kube::api::{DynamicObject, GroupVersionKind};
    let object: DynamicObject = serde_saphyr::from_str(yaml).unwrap();
    let types = object.types.clone().unwrap();
    let gvk = GroupVersionKind::try_from(&types).unwrap();
    let (resource, _) = kube::discovery::pinned_kind(client, &gvk).await.unwrap();
    let namespace = object.metadata.namespace.clone().unwrap();
    let name = object.metadata.name.clone().unwrap();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, &resource);
    let create = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let refused = |e: kube::Error| format!("{file}: the API server refused {name}: {e}");
    match api.create(&create, &object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let params = PatchParams::apply("k0s-applier-dry-run").force().dry_run();
            api.patch(&name, &params, &Patch::Apply(&object))
                .await
                .map(|_| ())
                .map_err(refused)
        }
        Err(e) => Err(refused(e)),
    }
}

/// The workload side behind an ingress on kwok: the ingress manifests ConfigMap mounted as k0s
/// manifests, each of its manifests accepted by the real API server (dry run), and the HAProxy
/// certificate signed by the cluster CA for the `kubernetes` Service's names. That HAProxy
/// forwards pod traffic through a real ingress is a real-node matter (see the report).
#[tokio::test]
#[ignore = "needs test/harness"]
async fn ingress_ships_haproxy_manifests_and_certificate() {
    let (ns, client) = setup("cp-ingress-haproxy").await;
    let provider = Provider::start(ns.name());
    let mut spec = ingress_spec(true);
    spec.k0s_config = Some(json!({"spec": {"network": {"serviceCIDR": harness_service_cidr()}}}));
    let kcp = create(&ns, spec).await;
    let uid = kcp.uid().unwrap();
    wait_ready(&ns, 1).await;

    // The ConfigMap, ours, mounted where k0s reads manifests.
    let cm = ns.api::<ConfigMap>().get("kmc-demo-ingress").await.unwrap();
    assert!(controlled_by(&cm.metadata, &uid));
    assert_eq!(
        label(&cm.metadata, "app.kubernetes.io/component"),
        Some("ingress")
    );
    let data = cm.data.unwrap();
    assert_eq!(
        data.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "0_temp-kubernetes-ep.yaml",
            "1_haproxy-configmap.yaml",
            "2_haproxy-ds.yaml",
            "3_kube-service.yaml"
        ]
    );
    let sts = ns.api::<StatefulSet>().get("kmc-demo").await.unwrap();
    let pod = sts.spec.template.spec.unwrap();
    let volume = pod
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "kmc-demo-ingress")
        .unwrap();
    assert_eq!(volume.config_map.unwrap().name, "kmc-demo-ingress");
    let mount = pod.containers[0]
        .volume_mounts
        .clone()
        .unwrap()
        .into_iter()
        .find(|m| m.name == "kmc-demo-ingress")
        .unwrap();
    assert_eq!(mount.mount_path, "/var/lib/k0s/manifests/kmc-demo-ingress");
    assert_eq!(mount.read_only, Some(true));

    // The Service keeps the cluster IP the API server gave `kubernetes`, or its dry run fails.
    let real_ip = Api::<Service>::namespaced(client.clone(), "default")
        .get("kubernetes")
        .await
        .unwrap()
        .spec
        .unwrap()
        .cluster_ip
        .unwrap();
    let service: serde_json::Value = serde_saphyr::from_str(&data["3_kube-service.yaml"]).unwrap();
    assert_eq!(service["spec"]["clusterIP"], real_ip.as_str());
    assert!(
        data["1_haproxy-configmap.yaml"].contains("sni str(api.demo.example.com)"),
        "{}",
        data["1_haproxy-configmap.yaml"]
    );
    for (file, yaml) in &data {
        dry_run_manifest(&client, file, yaml).await.unwrap();
    }
    // The dry run can fail: another cluster IP for `kubernetes` is refused (immutable field).
    let wrong_ip = data["3_kube-service.yaml"].replace(&real_ip, "10.0.0.99");
    assert_ne!(wrong_ip, data["3_kube-service.yaml"]);
    assert!(
        dry_run_manifest(&client, "wrong ip", &wrong_ip)
            .await
            .is_err()
    );

    // The certificate: ours, CAPI format, signed by the cluster CA, for the Service's names.
    let secrets: Api<Secret> = ns.api();
    let cert = secrets.get("demo-ingress-haproxy").await.unwrap();
    assert!(controlled_by(&cert.metadata, &uid));
    assert_eq!(cert.type_.as_deref(), Some("cluster.x-k8s.io/secret"));
    let pem =
        |s: &Secret, key: &str| String::from_utf8(s.data.as_ref().unwrap()[key].0.clone()).unwrap();
    let ca = secrets.get("demo-ca").await.unwrap();
    assert!(certs::is_signed_by(
        &pem(&cert, "tls.crt"),
        &pem(&ca, "tls.crt")
    ));
    certs::check_key(&pem(&cert, "tls.key"), "haproxy key").unwrap();
    let info = certs::cert_info(&pem(&cert, "tls.crt"), "haproxy").unwrap();
    for san in [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "localhost",
        "127.0.0.1",
        real_ip.as_str(),
    ] {
        assert!(
            info.sans.contains(&san.to_string()),
            "{san}: {:?}",
            info.sans
        );
    }

    // Kept as it is on the next reconciles (not re-signed each time).
    let kcps: Api<K0smotronControlPlane> = ns.api();
    poke(&kcps, "1").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let again = secrets.get("demo-ingress-haproxy").await.unwrap();
    assert_eq!(
        again.metadata.resource_version,
        cert.metadata.resource_version
    );
    provider.stop().await;
}

/// Writes one fixture document as upstream did: a POST or a forced server-side apply, with
/// upstream's field manager.
async fn write_as_upstream(ns: &TestNamespace, doc: test_support::UpstreamObject) {
    let test_support::UpstreamObject {
        manager,
        write: how,
        object: doc,
    } = doc;
    let manager = manager.as_str();
    let create = how == test_support::UpstreamWrite::Create;
    async fn write<K>(api: Api<K>, manager: &str, create: bool, doc: serde_json::Value)
    where
        K: kube::Resource
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
    {
        let obj: K = serde_json::from_value(doc).unwrap();
        let name = obj.meta().name.clone().unwrap();
        if create {
            let pp = PostParams {
                field_manager: Some(manager.into()),
                ..Default::default()
            };
            api.create(&pp, &obj).await.unwrap();
        } else {
            api.patch(
                &name,
                &PatchParams::apply(manager).force(),
                &Patch::Apply(&obj),
            )
            .await
            .unwrap();
        }
    }
    match doc["kind"].as_str().unwrap() {
        "Cluster" => {
            write(
                ns.api::<k0smotron_api::k0smotron::v1beta2::Cluster>(),
                manager,
                create,
                doc,
            )
            .await
        }
        "Secret" => write(ns.api::<Secret>(), manager, create, doc).await,
        "ConfigMap" => write(ns.api::<ConfigMap>(), manager, create, doc).await,
        "Service" => write(ns.api::<Service>(), manager, create, doc).await,
        "StatefulSet" => write(ns.api::<StatefulSet>(), manager, create, doc).await,
        other => panic!("no writer for {other}"),
    }
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Upstream's admin kubeconfig: `k0s kubeconfig create admin --groups system:masters` (CN
/// `admin`), written by client-go with the entries upstream renames it to.
fn upstream_kubeconfig(server: &str, ca: &certs::KeyMaterial) -> String {
    let client = certs::sign_leaf(
        ca,
        "demo-ca",
        &certs::LeafSpec {
            common_name: "admin".into(),
            organizations: vec!["system:masters".into()],
            sans: Vec::new(),
            usage: certs::Usage::Client,
        },
        jiff::Timestamp::now(),
    )
    .unwrap();
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {server}\n  name: demo-k0s\ncontexts:\n- context:\n    cluster: demo-k0s\n    user: demo-admin\n  name: demo-admin@demo-k0s\ncurrent-context: demo-admin@demo-k0s\nkind: Config\npreferences: {{}}\nusers:\n- name: demo-admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        b64(&ca.cert_pem),
        b64(&client.cert_pem),
        b64(&client.key_pem),
    )
}

/// Whether the workload API server at `server` (trusting `ca_pem`) authenticates the bearer
/// `token`: any answer but 401 (a bootstrap token's user may read nothing: 403).
async fn token_authenticates(server: &str, ca_pem: &str, token: &str) -> bool {
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: wl\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\ncontexts:\n- name: wl\n  context:\n    cluster: wl\n    user: token\ncurrent-context: wl\nusers:\n- name: token\n  user:\n    token: {token}\n",
        b64(ca_pem)
    );
    let client = test_support::client_from_kubeconfig_yaml(&yaml)
        .await
        .unwrap();
    match Api::<k8s_openapi::api::core::v1::Namespace>::all(client)
        .get("kube-system")
        .await
    {
        Ok(_) => true,
        Err(kube::Error::Api(e)) => e.code != 401,
        Err(e) => panic!("workload API server unreachable: {e}"),
    }
}

/// Removes upstream's finalizer from its intermediate Cluster, as docs/migration.md says.
async fn remove_upstream_finalizer(kmcs: &Api<k0smotron_api::k0smotron::v1beta2::Cluster>) {
    kmcs.patch(
        CLUSTER,
        &PatchParams::default(),
        &Patch::Json::<()>(
            serde_json::from_value(json!([
                {"op": "test", "path": "/metadata/finalizers", "value": ["k0smotron.io/finalizer"]},
                {"op": "remove", "path": "/metadata/finalizers"},
            ]))
            .unwrap(),
        ),
    )
    .await
    .unwrap();
}

/// Whether a kubeconfig reaches the workload API server as a cluster admin.
async fn kubeconfig_works(yaml: &str) -> bool {
    let client = test_support::client_from_kubeconfig_yaml(yaml)
        .await
        .unwrap();
    Api::<k8s_openapi::api::core::v1::Namespace>::all(client)
        .get("kube-system")
        .await
        .is_ok()
}

/// docs/migration.md, followed as written: a control plane made by upstream k0smotron v2
/// (fixtures with upstream's names, labels, owners and field managers; its pod Running and Ready
/// under kwok; a workload API server behind its CA plays the hosted cluster) is taken over by
/// this provider after upstream is stopped and its intermediate Cluster deleted with
/// `--cascade=orphan`: no new StatefulSet revision, the pod not recreated, the CA Secrets
/// untouched, the kubeconfig re-minted from the same CA for the same server while upstream's
/// still works, a join token made before still valid, and the control plane Ready.
#[tokio::test]
#[ignore = "needs test/harness"]
async fn an_upstream_control_plane_is_taken_over_without_a_restart() {
    take_over_upstream("cp-migrate", false).await;
}

/// The same with our provider installed before the intermediate Cluster is deleted (step 3
/// before step 2): the control plane reports `ObjectOwnedByOther` meanwhile, the standalone
/// controller leaves the intermediate Cluster alone, and it is our provider that removes
/// upstream's finalizer when the Cluster is deleted with `--cascade=orphan`.
#[tokio::test]
#[ignore = "needs test/harness"]
async fn an_upstream_control_plane_is_taken_over_when_we_are_installed_first() {
    take_over_upstream("cp-migrate-early", true).await;
}

async fn take_over_upstream(prefix: &str, provider_first: bool) {
    let (ns, _) = setup(prefix).await;
    let now = jiff::Timestamp::now();
    // Upstream's keys are RSA 2048 (CAPI's secret package); the cluster CA is, as the one
    // that signs the kubeconfig and serves the hosted API. The others are ECDSA to keep the
    // debug build quick; they are only read.
    let ca = certs::generate_ca_with(certs::KeyAlgorithm::Rsa2048, "kubernetes", now).unwrap();
    let proxy = certs::generate_ca("front-proxy-ca", now).unwrap();
    let etcd = certs::generate_ca("etcd-ca", now).unwrap();
    let sa = certs::generate_sa_key_pair().unwrap();
    let port = test_support::free_port().unwrap();
    let workload = test_support::WorkloadServer::start(
        &test_support::unique_name("wl"),
        &ca.cert_pem,
        &ca.key_pem,
        port,
    )
    .await
    .unwrap();
    let server = format!("https://127.0.0.1:{port}");
    assert_eq!(workload.url(), server);

    // What the user applied (a CAPI Cluster and its K0smotronControlPlane), then what upstream
    // wrote into the KCP: its finalizer and the certificate references in the spec.
    let mut spec = workload_spec(
        port,
        "sqlite:///var/lib/k0s/db/state.db?mode=rwc&_journal=WAL&cache=shared",
    );
    spec.version = "v1.35.4+k0s.0".into();
    let kcp = create(&ns, spec).await;
    let kcps: Api<K0smotronControlPlane> = ns.api();
    kcps.patch(
        CLUSTER,
        &PatchParams {
            field_manager: Some("manager".into()),
            ..Default::default()
        },
        &Patch::Merge(json!({
            "metadata": {"finalizers": ["k0smotron.controlplane.cluster.x-k8s.io"]},
            "spec": {"certificateRefs": [
                {"type": "ca", "name": "demo-ca"},
                {"type": "proxy", "name": "demo-proxy"},
                {"type": "sa", "name": "demo-sa"},
                {"type": "etcd", "name": "demo-etcd"},
            ]},
        })),
    )
    .await
    .unwrap();

    // Upstream's children, in its order: the intermediate Cluster first (its uid owns the rest).
    let mut values = BTreeMap::from([
        ("NAMESPACE", ns.name().to_string()),
        ("KCP_UID", kcp.uid().unwrap()),
        ("API_PORT", port.to_string()),
        ("CA_CRT", b64(&ca.cert_pem)),
        ("CA_KEY", b64(&ca.key_pem)),
        ("PROXY_CRT", b64(&proxy.cert_pem)),
        ("PROXY_KEY", b64(&proxy.key_pem)),
        ("SA_PUB", b64(&sa.cert_pem)),
        ("SA_KEY", b64(&sa.key_pem)),
        ("ETCD_CRT", b64(&etcd.cert_pem)),
        ("ETCD_KEY", b64(&etcd.key_pem)),
        ("KUBECONFIG", b64(&upstream_kubeconfig(&server, &ca))),
        ("KMC_UID", "to be known".into()),
    ]);
    let kmcs: Api<k0smotron_api::k0smotron::v1beta2::Cluster> = ns.api();
    let mut docs = test_support::upstream_fixture(&values).unwrap().into_iter();
    let kmc = docs.next().unwrap();
    assert_eq!(kmc.object["kind"], "Cluster");
    write_as_upstream(&ns, kmc).await;
    values.insert("KMC_UID", kmcs.get(CLUSTER).await.unwrap().uid().unwrap());
    for doc in test_support::upstream_fixture(&values)
        .unwrap()
        .into_iter()
        .skip(1)
    {
        write_as_upstream(&ns, doc).await;
    }
    let secrets: Api<Secret> = ns.api();
    let upstream_kubeconfig_value = {
        let s = secrets.get("demo-kubeconfig").await.unwrap();
        String::from_utf8(s.data.unwrap()["value"].0.clone()).unwrap()
    };
    assert!(kubeconfig_works(&upstream_kubeconfig_value).await);

    // Its pod runs (kwok) and the StatefulSet controller has recorded its revision.
    let pods: Api<Pod> = ns.api();
    let pod = wait_for(
        &pods,
        "kmc-demo-0",
        |p| {
            p.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            })
        },
        TIMEOUT,
        "upstream's pod Ready",
    )
    .await
    .unwrap();
    let statefulsets: Api<StatefulSet> = ns.api();
    let sts_before = wait_for(
        &statefulsets,
        "kmc-demo",
        |s| s.status.as_ref().and_then(|s| s.ready_replicas) == Some(1),
        TIMEOUT,
        "upstream's StatefulSet ready",
    )
    .await
    .unwrap();
    let revisions_before = revisions(&ns, "kmc-demo").await;
    assert_eq!(revisions_before.len(), 1, "{revisions_before:?}");
    let ca_secrets = ["demo-ca", "demo-proxy", "demo-sa", "demo-etcd"];
    let mut secrets_before = Vec::new();
    for name in ca_secrets {
        secrets_before.push(secrets.get(name).await.unwrap());
    }

    // A join token made before the switch (the bootstrap provider's kind of Secret in the
    // hosted cluster's kube-system).
    let workload_client = workload.client().await.unwrap();
    let tokens: Api<Secret> = Api::namespaced(workload_client, "kube-system");
    let token_secret = tokens
        .create(
            &PostParams::default(),
            &Secret {
                metadata: ObjectMeta {
                    name: Some("bootstrap-token-mig123".into()),
                    ..Default::default()
                },
                type_: Some("bootstrap.kubernetes.io/token".into()),
                string_data: Some(BTreeMap::from([
                    ("token-id".to_string(), "mig123".to_string()),
                    ("token-secret".to_string(), "0123456789abcdef".to_string()),
                    (
                        "usage-bootstrap-authentication".to_string(),
                        "true".to_string(),
                    ),
                    ("usage-bootstrap-signing".to_string(), "true".to_string()),
                ])),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let token = "mig123.0123456789abcdef";
    assert!(token_authenticates(&server, &ca.cert_pem, token).await);
    assert!(!token_authenticates(&server, &ca.cert_pem, "mig123.fedcba9876543210").await);

    let early = if provider_first {
        let before = kmcs.get(CLUSTER).await.unwrap();
        let provider = Provider::start(ns.name());
        wait_for(
            &kcps,
            CLUSTER,
            |k| condition_is(k, "Available", "False", "ObjectOwnedByOther"),
            TIMEOUT,
            "Available False ObjectOwnedByOther while the intermediate Cluster exists",
        )
        .await
        .unwrap();
        // The standalone controller wrote nothing to the intermediate Cluster.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = kmcs.get(CLUSTER).await.unwrap();
        assert_eq!(
            after.metadata.resource_version,
            before.metadata.resource_version
        );
        Some(provider)
    } else {
        None
    };
    if !provider_first {
        // docs/migration.md, step "Remove the intermediate Clusters": upstream is stopped, so its
        // finalizer is removed by hand, then the Cluster is deleted orphaning its children.
        remove_upstream_finalizer(&kmcs).await;
    }
    kmcs.delete(CLUSTER, &DeleteParams::orphan()).await.unwrap();
    wait_gone(&kmcs, CLUSTER).await;
    // The garbage collector released the children: nothing refers to the intermediate Cluster.
    let kmc_uid = values["KMC_UID"].clone();
    let released = |meta: &ObjectMeta| {
        !meta
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.uid == kmc_uid)
    };
    let sts = statefulsets.get("kmc-demo").await.unwrap();
    assert!(
        released(&sts.metadata),
        "{:?}",
        sts.metadata.owner_references
    );
    assert!(released(
        &secrets.get("demo-kubeconfig").await.unwrap().metadata
    ));

    // docs/migration.md, step "Install our providers": the provider starts (or runs already).
    let provider = match early {
        Some(provider) => provider,
        None => Provider::start(ns.name()),
    };
    let kcp = wait_for(
        &kcps,
        CLUSTER,
        |k| {
            let s = k.status.clone().unwrap_or_default();
            s.initialization
                .as_ref()
                .and_then(|i| i.control_plane_initialized)
                == Some(true)
                && condition_is(k, "Available", "True", "Available")
                && s.ready_replicas == Some(1)
                && s.up_to_date_replicas == Some(1)
                && s.observed_generation == k.metadata.generation
        },
        // Installed first, the control plane waits out the 60 s retry of `ObjectOwnedByOther`
        // unless a change of a child wakes it earlier.
        TIMEOUT * 2,
        "taken over: initialized, Available, one ready up-to-date replica",
    )
    .await
    .unwrap();
    let kcp_uid = kcp.uid().unwrap();

    // The StatefulSet: the same object, spec and template; now ours; no new revision; the pod
    // was not recreated.
    let sts_after = statefulsets.get("kmc-demo").await.unwrap();
    assert_eq!(sts_after.metadata.uid, sts_before.metadata.uid);
    assert_eq!(
        sts_after.metadata.generation,
        sts_before.metadata.generation
    );
    assert_eq!(sts_after.spec, sts_before.spec);
    assert!(controlled_by(&sts_after.metadata, &kcp_uid));
    assert_eq!(revisions(&ns, "kmc-demo").await, revisions_before);
    assert_eq!(
        pods.get("kmc-demo-0").await.unwrap().metadata.uid,
        pod.metadata.uid
    );
    // The other children are adopted too.
    assert!(controlled_by(
        &ns.api::<Service>().get("kmc-demo").await.unwrap().metadata,
        &kcp_uid
    ));
    for cm in ["kmc-demo-config", "kmc-entrypoint-demo-config"] {
        assert!(controlled_by(
            &ns.api::<ConfigMap>().get(cm).await.unwrap().metadata,
            &kcp_uid
        ));
    }

    // The CA Secrets: not written at all.
    for before in &secrets_before {
        let after = secrets.get(&before.name_any()).await.unwrap();
        assert_eq!(after.metadata.uid, before.metadata.uid);
        assert_eq!(
            after.metadata.resource_version,
            before.metadata.resource_version
        );
        assert_eq!(after.data, before.data);
    }

    // The kubeconfig: re-minted (upstream's layout is not ours), from the same CA, for the
    // same server; upstream's still works (its certificate is signed by the same CA).
    let minted = wait_for(
        &secrets,
        "demo-kubeconfig",
        |s| {
            s.data
                .as_ref()
                .and_then(|d| d.get("value"))
                .map(|v| v.0.as_slice())
                != Some(upstream_kubeconfig_value.as_bytes())
        },
        TIMEOUT,
        "the kubeconfig re-minted",
    )
    .await
    .unwrap();
    let value = String::from_utf8(minted.data.unwrap()["value"].0.clone()).unwrap();
    let parsed = controlplane_provider::kubeconfig::parse(&value).unwrap();
    assert_eq!(parsed.ca_cert_pem, ca.cert_pem);
    assert_eq!(parsed.server, server);
    assert!(certs::is_signed_by(&parsed.client_cert_pem, &ca.cert_pem));
    assert!(kubeconfig_works(&value).await);
    assert!(kubeconfig_works(&upstream_kubeconfig_value).await);

    // The join token: its Secret untouched, still accepted.
    let token_after = tokens.get("bootstrap-token-mig123").await.unwrap();
    assert_eq!(
        token_after.metadata.resource_version,
        token_secret.metadata.resource_version
    );
    assert!(token_authenticates(&server, &ca.cert_pem, token).await);

    // A restart of the provider changes nothing either.
    provider.stop().await;
    let provider = Provider::start(ns.name());
    poke(&kcps, "after-restart").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let sts_final = statefulsets.get("kmc-demo").await.unwrap();
    assert_eq!(
        sts_final.metadata.generation,
        sts_before.metadata.generation
    );
    assert_eq!(revisions(&ns, "kmc-demo").await, revisions_before);
    assert_eq!(
        pods.get("kmc-demo-0").await.unwrap().metadata.uid,
        pod.metadata.uid
    );
    provider.stop().await;
    workload.stop().unwrap();
}
