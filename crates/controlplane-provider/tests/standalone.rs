//! The standalone `k0smotron.io` `Cluster` against the real API server of `test/harness` (with
//! `--workloads`: kwok makes the pods Running and Ready). The provider runs in process, scoped to
//! the test's namespace.
//!
//! Run: `eval "$(test/harness/cluster up --workloads --capi)"` then
//! `cargo test -p controlplane-provider --test standalone -- --include-ignored`.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use k0smotron_api::k0smotron::v1beta2::{Cluster, ClusterSpec, StorageType};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use prometheus_client::registry::Registry;
use provider_runtime::{ManagerArgs, Metrics, Readiness};
use serde_json::json;
use test_support::{TestNamespace, wait_for};
use tokio_util::sync::CancellationToken;

use controlplane_provider::controller::{self, Kinds, Settings};

const TIMEOUT: Duration = Duration::from_secs(90);
const NAME: &str = "solo";

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    manager: ManagerArgs,
}

fn owned_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references.as_ref().is_some_and(|r| {
        r.iter().any(|o| {
            o.uid == uid
                && o.controller == Some(true)
                && o.kind == "Cluster"
                && o.api_version == "k0smotron.io/v1beta2"
        })
    })
}

async fn wait_replicas(api: &Api<Cluster>, n: i32) -> Cluster {
    wait_for(
        api,
        NAME,
        |c| {
            let s = c.status.clone().unwrap_or_default();
            s.replicas == Some(n)
                && s.ready_replicas == Some(n)
                && s.updated_replicas == Some(n)
                && s.observed_generation == c.metadata.generation
        },
        TIMEOUT,
        "ready, updated replicas",
    )
    .await
    .unwrap()
}

/// A standalone Cluster (written as upstream's manifests are) with only the standalone kind
/// served: its children, owned by it; the status upstream reports; scaling through the scale
/// subresource; a spec change rolls the pods; deletion leaves nothing of it.
#[tokio::test]
#[ignore = "needs test/harness"]
async fn a_standalone_cluster_is_reconciled_scaled_rolled_and_deleted() {
    let (ns, client) = setup("standalone").await;
    let (token, provider) = start_provider(client.clone(), ns.name());

    // As an upstream user writes it: apiVersion k0smotron.io/v1beta2, kine storage.
    let clusters: Api<Cluster> = ns.api();
    let manifest = json!({
        "apiVersion": "k0smotron.io/v1beta2",
        "kind": "Cluster",
        "metadata": {"name": NAME},
        "spec": {
            "replicas": 1,
            "service": {"type": "NodePort", "apiPort": 30443, "konnectivityPort": 30132},
            "storage": {"type": "kine", "kine": {"dataSourceURL": "postgres://k0s:k0s@db:5432/k0s"}},
            "k0sConfig": {"apiVersion": "k0s.k0sproject.io/v1beta1", "kind": "ClusterConfig",
                          "spec": {"telemetry": {"enabled": false}}}
        }
    });
    let cluster: Cluster = serde_json::from_value(manifest).unwrap();
    assert_eq!(cluster.spec.storage.type_, StorageType::Kine);
    let cluster = clusters
        .create(&PostParams::default(), &cluster)
        .await
        .unwrap();
    let uid = cluster.uid().unwrap();
    let ready = wait_replicas(&clusters, 1).await;
    let status = ready.status.clone().unwrap();
    assert!(
        status
            .selector
            .as_deref()
            .is_some_and(|s| s.contains("cluster=solo")),
        "{status:?}"
    );
    assert!(
        ready
            .finalizers()
            .iter()
            .any(|f| f == "k0smotron.io/finalizer")
    );
    for type_ in ["CertificatesAvailable", "KubeconfigSecretAvailable"] {
        assert!(
            status
                .conditions
                .iter()
                .any(|c| c.type_ == type_ && c.status == "True"),
            "{type_}: {:?}",
            status.conditions
        );
    }

    // What upstream's v1beta1 clients read (`status.ready`, `status.reconciliationStatus`),
    // kept in `status.deprecated.v1beta1`; the live object converted to v1beta1 by the
    // conversion the webhook runs (tests/conversion_webhook.rs runs it behind the API server)
    // has them at the top of its status.
    let v1beta1 = wait_for(
        &clusters,
        NAME,
        |c| {
            c.status
                .as_ref()
                .and_then(|s| s.deprecated.as_ref())
                .and_then(|d| d.v1beta1.as_ref())
                .is_some_and(|v| v.ready && v.reconciliation_status == "Reconciliation successful")
        },
        TIMEOUT,
        "status.deprecated.v1beta1 ready and successful",
    )
    .await
    .unwrap();
    let as_v1beta1 = k0smotron_api::conversion::convert(
        serde_json::to_value(&v1beta1).unwrap(),
        "k0smotron.io/v1beta1",
    )
    .unwrap();
    assert_eq!(as_v1beta1["status"]["ready"], json!(true), "{as_v1beta1}");
    assert_eq!(
        as_v1beta1["status"]["reconciliationStatus"],
        json!("Reconciliation successful")
    );

    // Children with upstream's names, controlled by the Cluster.
    let sts_api: Api<StatefulSet> = ns.api();
    let sts = sts_api.get("kmc-solo").await.unwrap();
    assert!(owned_by(&sts.metadata, &uid));
    let svc = ns.api::<Service>().get("kmc-solo-nodeport").await.unwrap();
    assert!(owned_by(&svc.metadata, &uid));
    let cm = ns.api::<ConfigMap>().get("kmc-solo-config").await.unwrap();
    assert!(owned_by(&cm.metadata, &uid));
    let secrets: Api<Secret> = ns.api();
    for name in ["solo-ca", "solo-proxy", "solo-sa", "solo-kubeconfig"] {
        let s = secrets.get(name).await.unwrap();
        assert!(owned_by(&s.metadata, &uid), "{name}");
    }

    // The scale subresource.
    clusters
        .patch_scale(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await
        .unwrap();
    wait_replicas(&clusters, 2).await;
    let scale = clusters.get_scale(NAME).await.unwrap();
    assert_eq!(scale.status.unwrap().selector, status.selector);

    // The CAPI pause annotation pauses a standalone Cluster too: Paused True, an event, and a
    // spec change waits; removing the annotation carries it out.
    clusters
        .patch(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"cluster.x-k8s.io/paused": ""}}})),
        )
        .await
        .unwrap();
    let is_paused = |c: &Cluster| {
        c.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Paused" && c.status == "True" && c.reason == "Paused")
        })
    };
    wait_for(&clusters, NAME, is_paused, TIMEOUT, "Paused True")
        .await
        .unwrap();
    let events: Api<k8s_openapi::api::events::v1::Event> = ns.api();
    let paused_events = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some("Paused")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(NAME)
        })
        .count();
    assert_eq!(paused_events, 1, "one Paused event");
    let paused_sts = sts_api.get("kmc-solo").await.unwrap();
    clusters
        .patch(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let still = sts_api.get("kmc-solo").await.unwrap();
    assert_eq!(
        still.metadata.resource_version, paused_sts.metadata.resource_version,
        "a paused Cluster's StatefulSet was written"
    );
    clusters
        .patch(
            NAME,
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(json!([
                    {"op": "remove", "path": "/metadata/annotations/cluster.x-k8s.io~1paused"}
                ]))
                .unwrap(),
            ),
        )
        .await
        .unwrap();
    let resumed = wait_replicas(&clusters, 3).await;
    assert!(!is_paused(&resumed));

    // A change of a k0s config field k0s reads only at start rolls the pods (a new template).
    let before = sts_api.get("kmc-solo").await.unwrap().spec.template;
    clusters
        .patch(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"k0sConfig": {"spec": {"api": {"extraArgs": {"event-ttl": "2h"}}}}}}),
            ),
        )
        .await
        .unwrap();
    wait_for(
        &sts_api,
        "kmc-solo",
        |s| s.spec.template != before,
        TIMEOUT,
        "a new pod template",
    )
    .await
    .unwrap();
    wait_replicas(&clusters, 3).await;

    // Deletion: the children go, the Cluster goes.
    clusters
        .delete(NAME, &DeleteParams::default())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let left = sts_api
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len()
            + secrets
                .list(&ListParams::default().labels("cluster=solo"))
                .await
                .unwrap()
                .items
                .len()
            + usize::from(clusters.get_opt(NAME).await.unwrap().is_some());
        let owned_secrets = secrets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .filter(|s| owned_by(&s.metadata, &uid))
            .count();
        if left + owned_secrets == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "left after delete");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    token.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), provider).await;
}

/// A test namespace with our CRDs installed.
async fn setup(prefix: &str) -> (TestNamespace, kube::Client) {
    let ns = TestNamespace::create(prefix).await.unwrap();
    let client = ns.client();
    test_support::apply_crd_dir(
        &client,
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/crd/bases"),
    )
    .await
    .unwrap();
    (ns, client)
}

/// Starts the provider (standalone kinds only) in process, scoped to `ns`, on a runtime of its
/// own with the binary's worker stacks (`provider_runtime::runtime`): polled on the test's
/// thread (2 MiB), the debug build's reconcile futures overflowed its stack once the Ingress of
/// `spec.ingress` joined the children. The receiver completes when the provider has stopped.
fn start_provider(
    client: kube::Client,
    ns: &str,
) -> (CancellationToken, tokio::sync::oneshot::Receiver<()>) {
    let args = Args::parse_from([
        "controlplane-provider",
        "--namespace",
        ns,
        "--health-addr",
        "127.0.0.1:0",
        "--metrics-addr",
        "127.0.0.1:0",
    ])
    .manager;
    let token = CancellationToken::new();
    let child = token.clone();
    let (stopped, handle) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("provider".into())
        .stack_size(provider_runtime::runtime::WORKER_STACK_BYTES)
        .spawn(move || {
            let runtime = provider_runtime::runtime::build().unwrap();
            runtime.block_on(async move {
                let settings = Settings {
                    probe_timeout: Duration::from_secs(3),
                    kinds: Kinds {
                        capi: false,
                        standalone: true,
                    },
                    ..Settings::default()
                };
                let metrics = Metrics::register(&mut Registry::default());
                controller::run(client, &args, settings, metrics, &Readiness::new(), child).await;
            });
            let _ = stopped.send(());
        })
        .unwrap();
    (token, handle)
}

/// A JoinTokenRequest for a standalone Cluster whose API is a second API server with the
/// Cluster's CA: the Secret named after the request holds a k0s join token whose kubeconfig
/// authenticates there as `system:bootstrap:<id>`, expiring as asked; deleting the request
/// deletes the bootstrap token in the hosted cluster.
#[tokio::test]
#[ignore = "needs test/harness"]
async fn a_join_token_request_yields_a_working_token_and_its_deletion_revokes_it() {
    use k0smotron_api::k0smotron::v1beta2::JoinTokenRequest;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::authentication::v1::SelfSubjectReview;
    use std::collections::BTreeMap;

    let (ns, client) = setup("jtr").await;
    // The Cluster's CA exists first (the provider uses it as it is), and fronts the "hosted" API.
    let ca =
        controlplane_provider::certs::generate_ca("kubernetes", jiff::Timestamp::now()).unwrap();
    let secrets: Api<Secret> = ns.api();
    secrets
        .create(
            &PostParams::default(),
            &Secret {
                metadata: ObjectMeta {
                    name: Some(format!("{NAME}-ca")),
                    ..Default::default()
                },
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
    let port = test_support::free_port().unwrap();
    let workload = test_support::WorkloadServer::start(
        &test_support::unique_name("jtr"),
        &ca.cert_pem,
        &ca.key_pem,
        port,
    )
    .await
    .unwrap();
    let (token, provider) = start_provider(client.clone(), ns.name());
    let cluster: Cluster = serde_json::from_value(json!({
        "apiVersion": "k0smotron.io/v1beta2",
        "kind": "Cluster",
        "metadata": {"name": NAME},
        "spec": {
            "externalAddress": "127.0.0.1",
            "service": {"type": "NodePort", "apiPort": port},
            "storage": {"type": "kine", "kine": {"dataSourceURL": "sqlite:///var/lib/k0s/db/state.db"}}
        }
    }))
    .unwrap();
    let clusters: Api<Cluster> = ns.api();
    clusters
        .create(&PostParams::default(), &cluster)
        .await
        .unwrap();
    // The free port is outside the node-port range: the API server refuses the Service, and the
    // Cluster says so with the server's message.
    wait_for(
        &clusters,
        NAME,
        |c| {
            c.status.as_ref().is_some_and(|s| {
                s.conditions.iter().any(|c| {
                    c.type_ == "Available"
                        && c.reason == "ObjectRejected"
                        && c.message.contains("Service")
                        && c.message.contains("range")
                })
            })
        },
        TIMEOUT,
        "Available=False, ObjectRejected",
    )
    .await
    .unwrap();
    let rejected = clusters.get(NAME).await.unwrap();
    let text = rejected
        .status
        .and_then(|s| s.deprecated)
        .and_then(|d| d.v1beta1)
        .unwrap_or_default()
        .reconciliation_status;
    assert!(
        text.starts_with("Failed reconciling objects, ") && text.contains("range"),
        "v1beta1 reconciliationStatus: {text}"
    );
    // A ClusterIP Service with the external address is what this "hosted" API needs.
    clusters
        .patch(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"service": {"type": "ClusterIP"}}})),
        )
        .await
        .unwrap();

    // As upstream's docs write it.
    let requests: Api<JoinTokenRequest> = ns.api();
    let request: JoinTokenRequest = serde_json::from_value(json!({
        "apiVersion": "k0smotron.io/v1beta2",
        "kind": "JoinTokenRequest",
        "metadata": {"name": "worker-token"},
        "spec": {"clusterName": NAME, "expiry": "1h"}
    }))
    .unwrap();
    requests
        .create(&PostParams::default(), &request)
        .await
        .unwrap();
    let done = wait_for(
        &requests,
        "worker-token",
        |r| {
            r.status.as_ref().is_some_and(|s| {
                s.token_id.is_some()
                    && s.conditions.iter().any(|c| {
                        c.type_ == "JoinTokenSecretCreated"
                            && c.status == "True"
                            && c.reason == "Created"
                    })
            })
        },
        TIMEOUT,
        "tokenID and JoinTokenSecretCreated",
    )
    .await
    .unwrap();
    // For v1beta1 clients: upstream's success text and the Cluster's uid.
    let cluster_uid = clusters.get(NAME).await.unwrap().uid();
    let deprecated = done
        .status
        .as_ref()
        .and_then(|s| s.deprecated.clone())
        .and_then(|d| d.v1beta1)
        .unwrap_or_default();
    assert_eq!(
        deprecated.reconciliation_status,
        "Reconciliation successful"
    );
    assert_eq!(deprecated.cluster_uid, cluster_uid);
    let as_v1beta1 = k0smotron_api::conversion::convert(
        serde_json::to_value(&done).unwrap(),
        "k0smotron.io/v1beta1",
    )
    .unwrap();
    assert_eq!(
        as_v1beta1["status"]["clusterUID"],
        json!(cluster_uid.unwrap())
    );
    let id = done.status.unwrap().token_id.unwrap();
    let secret = secrets.get("worker-token").await.unwrap();
    let encoded = String::from_utf8(secret.data.unwrap()["token"].0.clone()).unwrap();
    let yaml = provider_runtime::join_token::decode_to_yaml(&encoded).unwrap();
    let kc = provider_runtime::join_token::decode(&encoded).unwrap();
    assert_eq!(
        kc.clusters[0].cluster.server,
        format!("https://127.0.0.1:{port}")
    );
    assert_eq!(kc.worker_token().unwrap().id(), id);
    let as_node = test_support::client_from_kubeconfig_yaml(&yaml)
        .await
        .unwrap();
    let review = Api::<SelfSubjectReview>::all(as_node)
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .unwrap();
    let user = review.status.and_then(|s| s.user_info).unwrap_or_default();
    assert_eq!(user.username, Some(format!("system:bootstrap:{id}")));
    // The expiry asked for: about an hour.
    let hosted: Api<Secret> = Api::namespaced(workload.client().await.unwrap(), "kube-system");
    let bootstrap = hosted.get(&format!("bootstrap-token-{id}")).await.unwrap();
    let expiration = provider_runtime::token::secret_expiration(&bootstrap).unwrap();
    let left = jiff::Timestamp::now().duration_until(expiration);
    assert!(
        left > jiff::SignedDuration::from_mins(55) && left <= jiff::SignedDuration::from_mins(60),
        "{left:?}"
    );

    // Deleting the request revokes the token.
    requests
        .delete("worker-token", &DeleteParams::default())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while hosted
        .get_opt(&format!("bootstrap-token-{id}"))
        .await
        .unwrap()
        .is_some()
        || requests.get_opt("worker-token").await.unwrap().is_some()
    {
        assert!(tokio::time::Instant::now() < deadline, "token still there");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    token.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), provider).await;
    drop(workload);
}

/// The spec type the test builds from is the shared one.
#[test]
fn the_standalone_spec_defaults_like_the_control_plane_spec() {
    let standalone: ClusterSpec = serde_json::from_value(json!({})).unwrap();
    let kcp: k0smotron_api::controlplane::v1beta2::K0smotronControlPlaneSpec =
        serde_json::from_value(json!({})).unwrap();
    assert_eq!(standalone, kcp.cluster);
}

/// A standalone Cluster with `spec.remoteHostCluster` (the pipeline is the Cluster API kind's):
/// its StatefulSet and certificate Secrets are created in the hosting cluster (a second API
/// server), controlled by `solo-root-owner` there, its kubeconfig in the management cluster;
/// deleting the Cluster deletes the root owner.
#[tokio::test]
#[ignore = "needs test/harness"]
async fn a_standalone_cluster_can_live_in_a_remote_host_cluster() {
    use std::collections::BTreeMap;

    let (ns, client) = setup("solo-remote").await;
    let ca = controlplane_provider::certs::generate_ca("hosting", jiff::Timestamp::now()).unwrap();
    let port = test_support::free_port().unwrap();
    let hosting = test_support::WorkloadServer::start(
        &test_support::unique_name("solo-host"),
        &ca.cert_pem,
        &ca.key_pem,
        port,
    )
    .await
    .unwrap();
    let kubeconfig = std::fs::read_to_string(hosting.kubeconfig_path()).unwrap();
    ns.api::<Secret>()
        .create(
            &PostParams::default(),
            &Secret {
                metadata: ObjectMeta {
                    name: Some("hosting".into()),
                    ..Default::default()
                },
                string_data: Some(BTreeMap::from([("value".to_string(), kubeconfig)])),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let host = hosting.client().await.unwrap();
    let (token, provider) = start_provider(client.clone(), ns.name());
    let cluster: Cluster = serde_json::from_value(json!({
        "apiVersion": "k0smotron.io/v1beta2",
        "kind": "Cluster",
        "metadata": {"name": NAME},
        "spec": {
            "externalAddress": "127.0.0.1",
            "storage": {"type": "kine", "kine": {"dataSourceURL": "sqlite:///var/lib/k0s/db/state.db"}},
            "remoteHostCluster": {"kubeconfigRef": {"name": "hosting", "namespace": ns.name()}}
        }
    }))
    .unwrap();
    let clusters: Api<Cluster> = ns.api();
    let cluster = clusters
        .create(&PostParams::default(), &cluster)
        .await
        .unwrap();

    let host_cms: Api<ConfigMap> = Api::namespaced(host.clone(), ns.name());
    let root = wait_for(
        &host_cms,
        "solo-root-owner",
        |_| true,
        TIMEOUT,
        "root owner",
    )
    .await
    .unwrap();
    let root_uid = root.uid().unwrap();
    let controlled = |meta: &ObjectMeta| {
        meta.owner_references.as_ref().is_some_and(|r| {
            r.iter()
                .any(|o| o.uid == root_uid && o.controller == Some(true))
        })
    };
    let host_sts: Api<StatefulSet> = Api::namespaced(host.clone(), ns.name());
    let sts = wait_for(&host_sts, "kmc-solo", |_| true, TIMEOUT, "kmc-solo")
        .await
        .unwrap();
    assert!(controlled(&sts.metadata));
    let host_secrets: Api<Secret> = Api::namespaced(host.clone(), ns.name());
    assert!(controlled(
        &host_secrets.get("solo-ca").await.unwrap().metadata
    ));
    assert!(
        ns.api::<StatefulSet>()
            .get_opt("kmc-solo")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        ns.api::<Secret>()
            .get_opt("solo-ca")
            .await
            .unwrap()
            .is_none()
    );
    let kubeconfig = wait_for(
        &ns.api::<Secret>(),
        "solo-kubeconfig",
        |_| true,
        TIMEOUT,
        "solo-kubeconfig in the management cluster",
    )
    .await
    .unwrap();
    assert!(owned_by(&kubeconfig.metadata, &cluster.uid().unwrap()));

    clusters
        .delete(NAME, &DeleteParams::default())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while host_cms.get_opt("solo-root-owner").await.unwrap().is_some()
        || clusters.get_opt(NAME).await.unwrap().is_some()
    {
        assert!(tokio::time::Instant::now() < deadline, "not deleted");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    token.cancel();
    let _ = provider.await;
    hosting.stop().unwrap();
}
