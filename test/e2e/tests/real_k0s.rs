//! Hosted control planes on real k0s: the StatefulSet our provider writes, started by the
//! harness's real kubelet (containerd + runc) from the images it preloads, k0s built from the
//! pinned source archive. Nothing stands in for k0s here: the provider reaches the hosted API
//! through the address it discovers (the node's address and the NodePort), CAPI core judges the
//! contract, and the join token the bootstrap provider mints is tried against the real API.
//!
//! Needs `eval "$(test/harness/cluster up --real-node --capi-manager)"` (or `--capi`; the test
//! then runs its own CAPI core). The tests are heavy (one k0s control plane is several hundred
//! MiB): CI runs them one at a time (`--test-threads=1`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use e2e::capi::{CapiManager, CapiOptions};
use e2e::node::{self, RealNode};
use e2e::objects::{self, apply, capi, condition, join_token, summary};
use e2e::providers::{Provider, ProviderManager};
use e2e::scratch::ScratchDir;
use e2e::{infra, tools};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use test_support::TestNamespace;

const CP_API: &str = "controlplane.cluster.x-k8s.io/v1beta2";
const BOOTSTRAP_API: &str = "bootstrap.cluster.x-k8s.io/v1beta2";
/// The Secret of a remote-hosted test's management namespace holding the hosting cluster's
/// kubeconfig ([`Env::start_remote`]).
const HOSTING_KUBECONFIG: &str = "hosting-kubeconfig";
/// A k0s controller takes its time: the readiness probe alone waits 60 s before its first try.
const POD_READY: Duration = Duration::from_secs(420);

/// What a test started; stopped (and its logs shown on a timeout) through it.
struct Env {
    /// The namespace of the test in the harness cluster, where the k0s pods run.
    ns: TestNamespace,
    /// The harness cluster: the cluster whose node runs the hosted control planes.
    client: Client,
    /// The management cluster (CAPI objects, the control planes, `<cluster>-kubeconfig`): the
    /// harness cluster, or a workload server with `spec.remoteHostCluster` pointing at the
    /// harness cluster ([`Env::start_remote`]); the namespace of the same name there.
    management: Client,
    /// Its kubeconfig, for the providers and CAPI core.
    management_kubeconfig: PathBuf,
    /// The workload server playing the management cluster, if any.
    management_server: Option<test_support::WorkloadServer>,
    node: RealNode,
    logs: PathBuf,
    _scratch: ScratchDir,
    control_plane: Option<ProviderManager>,
    bootstrap: Option<ProviderManager>,
    capi: Option<CapiManager>,
}

impl Env {
    async fn start(prefix: &str) -> Self {
        let node = RealNode::from_env().unwrap();
        let ns = TestNamespace::create(prefix).await.unwrap();
        let client = ns.client();
        // The generated pods must pass Pod Security's baseline level (docs/security.md).
        let labels = json!({"metadata": {"labels": {
            "pod-security.kubernetes.io/enforce": "baseline",
            "pod-security.kubernetes.io/enforce-version": "latest"}}});
        Api::<Namespace>::all(client.clone())
            .patch(ns.name(), &PatchParams::default(), &Patch::Merge(&labels))
            .await
            .unwrap();
        for dir in [
            tools::capi_crd_dir().unwrap(),
            tools::provider_crd_dir(),
            tools::test_infra_crd_dir(),
        ] {
            test_support::apply_crd_dir(&client, &dir).await.unwrap();
        }
        let scratch = ScratchDir::new(prefix).unwrap();
        let logs = std::env::var_os("E2E_LOG_DIR").map_or_else(
            || scratch.join("logs"),
            |d| PathBuf::from(d).join(ns.name()),
        );
        eprintln!("process logs in {}", logs.display());
        let kubeconfig = PathBuf::from(std::env::var("KUBECONFIG").unwrap());
        let mut env = Self {
            control_plane: None,
            bootstrap: None,
            capi: None,
            node,
            logs,
            _scratch: scratch,
            management: client.clone(),
            management_kubeconfig: kubeconfig.clone(),
            management_server: None,
            client,
            ns,
        };
        env.control_plane = Some(env.provider(Provider::ControlPlane).await);
        env.bootstrap = Some(env.provider(Provider::Bootstrap).await);
        let harness_runs_capi = std::env::var("HARNESS_CAPI_MANAGER").is_ok_and(|v| v == "1");
        if !harness_runs_capi {
            env.capi = Some(
                CapiManager::start(CapiOptions {
                    kubeconfig: &kubeconfig,
                    namespace: env.ns.name(),
                    log_dir: &env.logs,
                    feature_gates: "",
                })
                .await
                .unwrap(),
            );
        }
        env
    }

    /// A management cluster of its own whose control planes are hosted in the harness cluster
    /// (`spec.remoteHostCluster`): a workload server with CAPI's CRDs and ours, the namespace of
    /// the harness one's name, the Secret [`HOSTING_KUBECONFIG`] there holding the harness's
    /// admin kubeconfig (inline credentials), and the control-plane provider and CAPI core
    /// against it. No controller manager runs for it: nothing there is garbage-collected.
    async fn start_remote(prefix: &str) -> Self {
        let node = RealNode::from_env().unwrap();
        let ns = TestNamespace::create(prefix).await.unwrap();
        let client = ns.client();
        // The generated pods must pass Pod Security's baseline level in the hosting cluster too.
        let labels = json!({"metadata": {"labels": {
            "pod-security.kubernetes.io/enforce": "baseline",
            "pod-security.kubernetes.io/enforce-version": "latest"}}});
        Api::<Namespace>::all(client.clone())
            .patch(ns.name(), &PatchParams::default(), &Patch::Merge(&labels))
            .await
            .unwrap();
        let ca = e2e::pki::cluster_ca().unwrap();
        let server = test_support::WorkloadServer::start(
            &test_support::unique_name("mgmt"),
            &ca.cert_pem,
            &ca.key_pem,
            test_support::free_port().unwrap(),
        )
        .await
        .unwrap();
        let management = server.client().await.unwrap();
        apply(
            &management,
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns.name()}}),
        )
        .await;
        for dir in [
            tools::capi_crd_dir().unwrap(),
            tools::provider_crd_dir(),
            tools::test_infra_crd_dir(),
        ] {
            test_support::apply_crd_dir(&management, &dir)
                .await
                .unwrap();
        }
        let hosting = std::fs::read_to_string(std::env::var("KUBECONFIG").unwrap()).unwrap();
        Api::<Secret>::namespaced(management.clone(), ns.name())
            .create(
                &kube::api::PostParams::default(),
                &Secret {
                    metadata: kube::api::ObjectMeta {
                        name: Some(HOSTING_KUBECONFIG.to_owned()),
                        ..Default::default()
                    },
                    string_data: Some([("value".to_owned(), hosting)].into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let scratch = ScratchDir::new(prefix).unwrap();
        let logs = std::env::var_os("E2E_LOG_DIR").map_or_else(
            || scratch.join("logs"),
            |d| PathBuf::from(d).join(ns.name()),
        );
        eprintln!(
            "process logs in {}; management cluster {} ({})",
            logs.display(),
            server.url(),
            server.kubeconfig_path().display()
        );
        let mut env = Self {
            control_plane: None,
            bootstrap: None,
            capi: None,
            node,
            logs,
            _scratch: scratch,
            management,
            management_kubeconfig: server.kubeconfig_path().to_owned(),
            management_server: Some(server),
            client,
            ns,
        };
        env.control_plane = Some(env.provider(Provider::ControlPlane).await);
        // The harness's CAPI core watches the harness cluster, not this one.
        env.capi = Some(
            CapiManager::start(CapiOptions {
                kubeconfig: &env.management_kubeconfig,
                namespace: env.ns.name(),
                log_dir: &env.logs,
                feature_gates: "",
            })
            .await
            .unwrap(),
        );
        env
    }

    async fn provider(&self, provider: Provider) -> ProviderManager {
        let mut manager = ProviderManager::start(
            provider,
            &self.management_kubeconfig,
            self.ns.name(),
            &self.logs,
            false,
        )
        .await
        .unwrap();
        manager.wait_ready(Duration::from_secs(60)).await.unwrap();
        manager
    }

    fn name(&self) -> &str {
        self.ns.name()
    }

    fn diagnose(&self) -> String {
        let tail =
            |m: &Option<ProviderManager>| m.as_ref().map(|m| m.log_tail(40)).unwrap_or_default();
        let capi = match &self.capi {
            Some(capi) => capi.log_tail(20),
            None => "(the harness's: $HARNESS_DIR/logs/capi-manager.log)".to_owned(),
        };
        format!(
            "--- controlplane-provider ---\n{}\n--- bootstrap-provider ---\n{}\n--- cluster-api-manager ---\n{capi}\n--- kubelet: $HARNESS_DIR/logs/node-kubelet.log; pod logs: kubectl -n {} logs <pod>",
            tail(&self.control_plane),
            tail(&self.bootstrap),
            self.name()
        )
    }

    async fn poll<T, F, Fut>(&self, timeout: Duration, what: &str, probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, String>>,
    {
        objects::poll(timeout, what, || self.diagnose(), probe).await
    }

    /// A CAPI Cluster whose infrastructure the control-plane provider marks provisioned (as our
    /// templates do) and its K0smotronControlPlane with `spec`.
    async fn create_cluster(&self, cluster: &str, spec: Value) {
        let ns = self.name();
        for obj in [
            json!({
                "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
                "metadata": {"name": cluster, "namespace": ns},
                "spec": {
                    "controlPlaneRef": {"apiGroup": "controlplane.cluster.x-k8s.io",
                        "kind": "K0smotronControlPlane", "name": cluster},
                    "infrastructureRef": {"apiGroup": infra::GROUP, "kind": "TestCluster", "name": cluster},
                },
            }),
            json!({
                "apiVersion": format!("{}/{}", infra::GROUP, infra::VERSION), "kind": "TestCluster",
                "metadata": {"name": cluster, "namespace": ns,
                    "annotations": {"cluster.x-k8s.io/managed-by": "k0smotron"}},
                "spec": {},
            }),
            json!({
                "apiVersion": CP_API, "kind": "K0smotronControlPlane",
                "metadata": {"name": cluster, "namespace": ns},
                "spec": spec,
            }),
        ] {
            apply(&self.management, &obj).await;
        }
    }

    /// The controller pods of `cluster` once `count` of them run on the real node and are Ready
    /// (through k0s's own readiness probe, `k0s status`): name → uid.
    async fn ready_pods(
        &self,
        selector: &str,
        count: usize,
    ) -> std::collections::BTreeMap<String, String> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), self.name());
        self.poll(
            POD_READY,
            &format!("{count} Ready pods {selector} on the real node"),
            || async {
                let list = pods
                    .list(&ListParams::default().labels(selector))
                    .await
                    .map_err(|e| e.to_string())?;
                let mut ready = std::collections::BTreeMap::new();
                let mut seen = Vec::new();
                for pod in &list.items {
                    let status = pod.status.clone().unwrap_or_default();
                    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
                    let is_ready = status
                        .conditions
                        .unwrap_or_default()
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True");
                    seen.push(format!(
                        "{} on {node:?} phase {:?} ready {is_ready}",
                        pod.name_any(),
                        status.phase
                    ));
                    if pod.metadata.deletion_timestamp.is_none() && is_ready {
                        assert_eq!(
                            node.as_deref(),
                            Some(self.node.name.as_str()),
                            "pods run on the real node"
                        );
                        ready.insert(pod.name_any(), pod.uid().unwrap_or_default());
                    }
                }
                if ready.len() == count && list.items.len() == count {
                    Ok(ready)
                } else {
                    Err(seen.join("; "))
                }
            },
        )
        .await
    }

    /// A client for the hosted cluster from `<cluster>-kubeconfig`, once it answers, and the
    /// kubeconfig's server URL.
    async fn hosted(&self, cluster: &str) -> (Client, String) {
        let secrets: Api<Secret> = Api::namespaced(self.management.clone(), self.name());
        self.poll(
            Duration::from_secs(180),
            "the hosted API through <cluster>-kubeconfig",
            || async {
                let secret = secrets
                    .get(&format!("{cluster}-kubeconfig"))
                    .await
                    .map_err(|e| e.to_string())?;
                let value = secret
                    .data
                    .unwrap_or_default()
                    .remove("value")
                    .ok_or("no value")?;
                let text = String::from_utf8(value.0).map_err(|e| e.to_string())?;
                let doc = &e2e::yaml::documents(&text).map_err(|e| e.to_string())?[0];
                let server = doc["clusters"][0]["cluster"]["server"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let client = test_support::client_from_kubeconfig_yaml(&text)
                    .await
                    .map_err(|e| e.to_string())?;
                client
                    .apiserver_version()
                    .await
                    .map_err(|e| format!("{server}: {e}"))?;
                Ok((client, server))
            },
        )
        .await
    }

    /// Waits until CAPI core reports the Cluster `cluster` Available.
    async fn cluster_available(&self, cluster: &str) {
        let clusters = capi(&self.management, self.name(), "Cluster");
        self.poll(
            Duration::from_secs(240),
            "the CAPI Cluster Available",
            || async {
                let c = clusters.get(cluster).await.map_err(|e| e.to_string())?;
                (condition(&c, "Available") == Some("True"))
                    .then_some(())
                    .ok_or_else(|| summary(&c))
            },
        )
        .await;
    }

    async fn stop(mut self) {
        for manager in [self.control_plane.take(), self.bootstrap.take()]
            .into_iter()
            .flatten()
        {
            manager.stop().await;
        }
        if let Some(capi) = self.capi.take() {
            capi.stop().await;
        }
        if let Some(server) = self.management_server.take() {
            server.stop().unwrap();
        }
    }
}

/// The k0s controller pods of `cluster` (upstream's labels).
fn selector(cluster: &str) -> String {
    format!("app=k0smotron,cluster={cluster},component=cluster,cluster.x-k8s.io/control-plane=true")
}

/// Members of a k0s-hosted cluster's CRDs in k0s's own groups (`*.k0sproject.io`): proof that
/// the API is k0s's, not a stand-in's.
async fn k0s_crds(hosted: &Client) -> BTreeSet<String> {
    Api::<CustomResourceDefinition>::all(hosted.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|c| c.spec.group.ends_with("k0sproject.io"))
        .map(ResourceExt::name_any)
        .collect()
}

#[tokio::test]
#[ignore = "needs test/harness up --real-node"]
async fn real_node_kine_control_plane_serves_joins_rolls_and_deletes() {
    let env = Env::start("real-kine").await;
    let ns = env.name().to_owned();
    let cluster = "kine";
    let netns_before: BTreeSet<String> = node::network_namespaces().into_iter().collect();
    // kine (SQLite in the pod), one replica, NodePort; no version: the default is the k0s
    // release the node's image holds.
    env.create_cluster(
        cluster,
        json!({"replicas": 1,
            "storage": {"type": "kine", "kine": {"dataSourceURL": "sqlite:///var/lib/k0s/db/state.db?mode=rwc&_journal=WAL"}},
            "service": {"type": "NodePort", "apiPort": 30443, "konnectivityPort": 30132}}),
    )
    .await;
    let kcp = objects::api(&env.client, &ns, CP_API, "K0smotronControlPlane");
    let version = kcp.get(cluster).await.unwrap().data["spec"]["version"].clone();
    assert_eq!(
        version,
        json!(env.node.k0s_version),
        "the default version is the harness's k0s"
    );

    let started = Instant::now();
    let pods = env.ready_pods(&selector(cluster), 1).await;
    assert!(pods.contains_key(&format!("kmc-{cluster}-0")), "{pods:?}");
    eprintln!("k0s controller Ready after {:?}", started.elapsed());

    // The kubeconfig reaches the hosted API where the provider found it: the node's address
    // and the NodePort.
    let (hosted, server) = env.hosted(cluster).await;
    assert_eq!(server, format!("https://{}:30443", env.node.ip));
    let version = hosted.apiserver_version().await.unwrap();
    let kubernetes = env.node.k0s_version.split('+').next().unwrap();
    assert_eq!(
        version.git_version, kubernetes,
        "the Kubernetes of this k0s release"
    );
    let crds = env
        .poll(
            Duration::from_secs(120),
            "k0s's CRDs in the hosted cluster",
            || async {
                let crds = k0s_crds(&hosted).await;
                if crds.iter().any(|c| c.starts_with("clusterconfigs.")) {
                    Ok(crds)
                } else {
                    Err(format!("{crds:?}"))
                }
            },
        )
        .await;
    eprintln!("hosted k0s CRDs: {crds:?}");

    // CAPI core sees a working control plane: the Cluster becomes Available.
    env.cluster_available(cluster).await;

    worker_token_authenticates_then_goes(&env, cluster, &hosted, &server).await;
    dynamic_config_reaches_k0s_without_a_restart(&env, cluster, &hosted).await;
    spec_change_rolls_and_restart_does_not(env, cluster, netns_before).await;
}

/// `DynamicConfigApplied` of the control plane: (status, reason, message), and
/// `status.dynamicConfigHash`.
async fn dynamic_config_status(
    env: &Env,
    cluster: &str,
) -> Result<(String, String, String, Option<String>), String> {
    let kcp = objects::api(&env.client, env.name(), CP_API, "K0smotronControlPlane")
        .get(cluster)
        .await
        .map_err(|e| e.to_string())?;
    let status = &kcp.data["status"];
    let cond = status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "DynamicConfigApplied"))
        .ok_or_else(|| format!("no DynamicConfigApplied yet: {}", summary(&kcp)))?;
    let field = |k: &str| cond[k].as_str().unwrap_or_default().to_owned();
    Ok((
        field("status"),
        field("reason"),
        field("message"),
        status["dynamicConfigHash"].as_str().map(str::to_owned),
    ))
}

/// The controller pods' uids and their `controller` containers' restart counts.
async fn pods_and_restarts(env: &Env, cluster: &str) -> Vec<(String, String, i32)> {
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), env.name());
    let mut out: Vec<_> = pods
        .list(&ListParams::default().labels(&selector(cluster)))
        .await
        .unwrap()
        .items
        .iter()
        .map(|p| {
            let restarts = p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.name == "controller"))
                .map_or(-1, |c| c.restart_count);
            (p.name_any(), p.uid().unwrap_or_default(), restarts)
        })
        .collect();
    out.sort();
    out
}

/// Dynamic config (issue #13): a cluster-wide `k0sConfig` change (a Helm chart extension) is
/// pushed into the hosted cluster's `kube-system/k0s` and k0s acts on it (its extensions
/// controller creates the `Chart` object), without the pod restarting; a value k0s's CRD
/// refuses is reported with the API server's message, again without a restart.
async fn dynamic_config_reaches_k0s_without_a_restart(env: &Env, cluster: &str, hosted: &Client) {
    let ns = env.name();
    let kcp = objects::api(&env.client, ns, CP_API, "K0smotronControlPlane");
    let hosted_config = objects::api(
        hosted,
        "kube-system",
        "k0s.k0sproject.io/v1beta1",
        "ClusterConfig",
    );
    let before = pods_and_restarts(env, cluster).await;
    let revision_before = revision(env, cluster).await;
    let (.., first_hash) = env
        .poll(
            Duration::from_secs(120),
            "the first dynamic config accepted",
            || async {
                let got = dynamic_config_status(env, cluster).await?;
                (got.0 == "True" && got.3.is_some())
                    .then_some(got.clone())
                    .ok_or_else(|| format!("{got:?}"))
            },
        )
        .await;
    let first = hosted_config.get("k0s").await.unwrap();
    let managers: Vec<String> = first
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|f| f.manager.clone())
        .collect();
    eprintln!("kube-system/k0s field managers after the first push: {managers:?}");
    // What k0s wrote when it created the object (from our config) is ours alone after the first
    // push, so a field later removed from spec.k0sConfig goes from the hosted cluster too.
    assert_eq!(
        managers,
        ["k0smotron-controlplane-dynamic-config"],
        "k0s's creation entry adopted"
    );
    assert_eq!(
        first.data["spec"].get("storage"),
        None,
        "node-only fields stay out of the hosted cluster"
    );

    let started = Instant::now();
    let chart = json!({"name": "dyncfg-test", "chartname": "dyncfg/dyncfg-test", "version": "0.1.0",
        "namespace": "default", "order": 1});
    let extension = |telemetry: Value| {
        json!({"spec": {"k0sConfig": {"apiVersion": "k0s.k0sproject.io/v1beta1", "kind": "ClusterConfig",
            "spec": {"telemetry": {"enabled": telemetry},
                "extensions": {"helm": {
                    "repositories": [{"name": "dyncfg", "url": "http://127.0.0.1:9/charts"}],
                    "charts": [chart.clone()]}}}}}})
    };
    kcp.patch(
        cluster,
        &PatchParams::default(),
        &Patch::Merge(&extension(json!(false))),
    )
    .await
    .unwrap();
    env.poll(
        Duration::from_secs(120),
        "the chart in the hosted kube-system/k0s",
        || async {
            let config = hosted_config.get("k0s").await.map_err(|e| e.to_string())?;
            (config.data["spec"]["extensions"]["helm"]["charts"][0]["name"] == "dyncfg-test"
                && config.data["spec"]["telemetry"]["enabled"] == false)
                .then_some(())
                .ok_or_else(|| config.data["spec"].to_string())
        },
    )
    .await;
    eprintln!(
        "dynamic config in the hosted cluster after {:?}",
        started.elapsed()
    );
    // k0s acts on it: its extensions controller writes the Chart object.
    let charts = objects::api(hosted, "kube-system", "helm.k0sproject.io/v1beta1", "Chart");
    let chart_object = env
        .poll(
            Duration::from_secs(120),
            "k0s's Chart object for the extension",
            || async {
                charts
                    .get_opt("k0s-addon-chart-dyncfg-test")
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| "not yet".to_owned())
            },
        )
        .await;
    assert_eq!(chart_object.data["spec"]["chartName"], "dyncfg/dyncfg-test");
    eprintln!("k0s created the Chart after {:?}", started.elapsed());
    let (status, reason, message, hash) = dynamic_config_status(env, cluster).await.unwrap();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "Accepted"),
        "{message}"
    );
    assert_ne!(hash, first_hash, "the new config's hash is recorded");

    // A value k0s's ClusterConfig schema refuses: reported with the API server's message.
    kcp.patch(
        cluster,
        &PatchParams::default(),
        &Patch::Merge(&extension(json!("yes"))),
    )
    .await
    .unwrap();
    let (_, _, refused, _) = env
        .poll(
            Duration::from_secs(60),
            "DynamicConfigApplied False, DynamicConfigRejected",
            || async {
                let got = dynamic_config_status(env, cluster).await?;
                (got.0 == "False" && got.1 == "DynamicConfigRejected")
                    .then_some(got.clone())
                    .ok_or_else(|| format!("{got:?}"))
            },
        )
        .await;
    assert!(refused.contains("telemetry"), "{refused}");
    eprintln!("refused: {refused}");
    // Fixed again: accepted again.
    kcp.patch(
        cluster,
        &PatchParams::default(),
        &Patch::Merge(&extension(json!(false))),
    )
    .await
    .unwrap();
    env.poll(
        Duration::from_secs(60),
        "DynamicConfigApplied True again",
        || async {
            let got = dynamic_config_status(env, cluster).await?;
            (got.0 == "True")
                .then_some(())
                .ok_or_else(|| format!("{got:?}"))
        },
    )
    .await;

    // Through all of it the pod stayed: same uid, no container restart, no new revision.
    assert_eq!(pods_and_restarts(env, cluster).await, before);
    assert_eq!(revision(env, cluster).await, revision_before);
}

/// A Machine's K0sWorkerConfig: its join token authenticates against the hosted k0s API as
/// `system:bootstrap:<id>`, and is gone from the hosted cluster once the Machine is deleted.
async fn worker_token_authenticates_then_goes(
    env: &Env,
    cluster: &str,
    hosted: &Client,
    server: &str,
) {
    let ns = env.name();
    let machine = format!("{cluster}-worker");
    for obj in [
        json!({"apiVersion": BOOTSTRAP_API, "kind": "K0sWorkerConfig",
            "metadata": {"name": machine, "namespace": ns}, "spec": {}}),
        json!({"apiVersion": format!("{}/{}", infra::GROUP, infra::VERSION), "kind": "TestMachine",
            "metadata": {"name": machine, "namespace": ns}, "spec": {}}),
        json!({"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
        "metadata": {"name": machine, "namespace": ns, "labels": {"cluster.x-k8s.io/cluster-name": cluster}},
        "spec": {
            "clusterName": cluster,
            "version": env.node.k0s_version.split('+').next().unwrap(),
            "bootstrap": {"configRef": {"apiGroup": "bootstrap.cluster.x-k8s.io", "kind": "K0sWorkerConfig", "name": machine}},
            "infrastructureRef": {"apiGroup": infra::GROUP, "kind": "TestMachine", "name": machine},
        }}),
    ] {
        apply(&env.client, &obj).await;
    }
    let configs = objects::api(&env.client, ns, BOOTSTRAP_API, "K0sWorkerConfig");
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), ns);
    let (token, token_server) = env
        .poll(
            Duration::from_secs(120),
            "the worker's bootstrap data",
            || async {
                let config = configs.get(&machine).await.map_err(|e| e.to_string())?;
                let data = config.data["status"]["dataSecretName"]
                    .as_str()
                    .ok_or_else(|| summary(&config))?;
                let secret = secrets.get(data).await.map_err(|e| e.to_string())?;
                let value = secret
                    .data
                    .unwrap_or_default()
                    .remove("value")
                    .ok_or("no value")?;
                join_token(&String::from_utf8_lossy(&value.0))
            },
        )
        .await;
    assert_eq!(
        token_server, server,
        "the join token points at the hosted API"
    );
    let ca = hosted_ca(env, cluster).await;
    let as_bootstrap = objects::token_client(&token_server, &ca, &token).await;
    let (user, groups) = objects::whoami(&as_bootstrap).await.unwrap();
    let id = token.split('.').next().unwrap();
    assert_eq!(user, format!("system:bootstrap:{id}"));
    assert!(
        groups.iter().any(|g| g == "system:bootstrappers"),
        "{groups:?}"
    );

    capi(&env.client, ns, "Machine")
        .delete(&machine, &DeleteParams::default())
        .await
        .unwrap();
    let hosted_secrets: Api<Secret> = Api::namespaced(hosted.clone(), "kube-system");
    env.poll(
        Duration::from_secs(120),
        "the join token deleted from the hosted cluster",
        || async {
            match hosted_secrets
                .get_opt(&format!("bootstrap-token-{id}"))
                .await
            {
                Ok(None) => Ok(()),
                Ok(Some(_)) => Err("still there".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await;
}

/// The cluster CA (`<cluster>-ca`), PEM.
async fn hosted_ca(env: &Env, cluster: &str) -> String {
    let secret = Api::<Secret>::namespaced(env.client.clone(), env.name())
        .get(&format!("{cluster}-ca"))
        .await
        .unwrap();
    String::from_utf8(secret.data.unwrap()["tls.crt"].0.clone()).unwrap()
}

async fn revision(env: &Env, cluster: &str) -> Option<String> {
    Api::<StatefulSet>::namespaced(env.client.clone(), env.name())
        .get(&format!("kmc-{cluster}"))
        .await
        .unwrap()
        .status
        .and_then(|s| s.update_revision)
}

/// A change of a node-only `k0sConfig` field rolls the pod and the new one serves the API; a
/// provider restart rolls nothing; deleting the Cluster leaves no pod, container or network
/// namespace on the node.
async fn spec_change_rolls_and_restart_does_not(
    mut env: Env,
    cluster: &str,
    netns_before: BTreeSet<String>,
) {
    let ns = env.name().to_owned();
    let kcp = objects::api(&env.client, &ns, CP_API, "K0smotronControlPlane");
    let before = env.ready_pods(&selector(cluster), 1).await;
    let revision_before = revision(&env, cluster).await;
    // A node-only field (k0s reads `spec.api` from its config file only): the pods must restart.
    let patch = json!({"spec": {"k0sConfig": {"apiVersion": "k0s.k0sproject.io/v1beta1", "kind": "ClusterConfig",
        "spec": {"api": {"extraArgs": {"event-ttl": "2h"}}}}}});
    kcp.patch(cluster, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    env.poll(
        POD_READY,
        "a new, Ready controller pod after the k0sConfig change",
        || async {
            let pods: Api<Pod> = Api::namespaced(env.client.clone(), &ns);
            let pod = pods
                .get(&format!("kmc-{cluster}-0"))
                .await
                .map_err(|e| e.to_string())?;
            let ready = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            (ready && !before.values().any(|uid| Some(uid) == pod.uid().as_ref()))
                .then_some(())
                .ok_or_else(|| format!("uid {:?} ready {ready}", pod.uid()))
        },
    )
    .await;
    assert_ne!(
        revision(&env, cluster).await,
        revision_before,
        "a new StatefulSet revision"
    );
    let (hosted, _) = env.hosted(cluster).await;
    hosted.apiserver_version().await.unwrap();

    // A provider restart converges to the same objects: no new revision, the pod stays.
    let rolled = env.ready_pods(&selector(cluster), 1).await;
    let revision_rolled = revision(&env, cluster).await;
    env.control_plane.take().unwrap().stop().await;
    env.control_plane = Some(env.provider(Provider::ControlPlane).await);
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(
        revision(&env, cluster).await,
        revision_rolled,
        "a restart rolls nothing"
    );
    assert_eq!(
        env.ready_pods(&selector(cluster), 1).await,
        rolled,
        "the pod stays"
    );

    // Deleting the Cluster removes the pods, their containers and network namespaces.
    capi(&env.client, &ns, "Cluster")
        .delete(cluster, &DeleteParams::default())
        .await
        .unwrap();
    env.poll(
        Duration::from_secs(240),
        "no pod sandbox, container or network namespace left",
        || async {
            let sandboxes = env.node.pod_sandboxes(&ns).await?;
            let containers = env.node.containers(&ns).await?;
            let netns: BTreeSet<String> = node::network_namespaces().into_iter().collect();
            let new: Vec<_> = netns.difference(&netns_before).collect();
            if sandboxes.is_empty() && containers.is_empty() && new.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "sandboxes {sandboxes:?} containers {containers:?} new netns {new:?}"
                ))
            }
        },
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &ns);
    assert!(
        pods.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    env.stop().await;
}

#[tokio::test]
#[ignore = "needs test/harness up --real-node"]
async fn real_node_managed_etcd_three_members_and_controllers_scale_down_and_up() {
    let env = Env::start("real-etcd").await;
    let ns = env.name().to_owned();
    let cluster = "etcd";
    // The defragmentation job is on for its client certificate; its schedule (12:00 UTC daily)
    // does not come up during the test, and its image is not on the node.
    env.create_cluster(
        cluster,
        json!({"replicas": 3,
            "storage": {"type": "etcd", "etcd": {"defragJob": {"enabled": true}}},
            "service": {"type": "NodePort", "apiPort": 31443, "konnectivityPort": 31132}}),
    )
    .await;
    let etcd = format!("app=k0smotron,cluster={cluster},component=etcd");
    let started = Instant::now();
    env.ready_pods(&etcd, 3).await;
    env.ready_pods(&selector(cluster), 3).await;
    eprintln!(
        "3 etcd members and 3 k0s controllers Ready after {:?}",
        started.elapsed()
    );
    etcd_ca_key_in_no_pod_and_defrag_certificate_accepted(&env, cluster).await;
    let (hosted, _) = env.hosted(cluster).await;
    assert!(!k0s_crds(&hosted).await.is_empty());

    let kcp = objects::api(&env.client, &ns, CP_API, "K0smotronControlPlane");
    for replicas in [1usize, 3] {
        kcp.patch(
            cluster,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": replicas}})),
        )
        .await
        .unwrap();
        env.ready_pods(&selector(cluster), replicas).await;
        // etcd is never scaled down (upstream's rule: members hold the data).
        env.ready_pods(&etcd, 3).await;
        let (hosted, _) = env.hosted(cluster).await;
        hosted.apiserver_version().await.unwrap();
        eprintln!(
            "{replicas} replicas serve the API after {:?}",
            started.elapsed()
        );
    }
    capi(&env.client, &ns, "Cluster")
        .delete(cluster, &DeleteParams::default())
        .await
        .unwrap();
    env.stop().await;
}

/// No pod of the namespace mounts the etcd CA's key, yet k0s and etcd run (the caller waited for
/// them); and the real etcd accepts the defragmentation job's own client certificate for its
/// maintenance API, and refuses a client without one.
async fn etcd_ca_key_in_no_pod_and_defrag_certificate_accepted(env: &Env, cluster: &str) {
    let ns = env.name();
    let etcd_ca = format!("{cluster}-etcd");
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), ns);
    let all = pods.list(&ListParams::default()).await.unwrap();
    for pod in &all.items {
        let volumes = pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.clone())
            .unwrap_or_default();
        for v in &volumes {
            let projected = v
                .projected
                .iter()
                .flat_map(|p| p.sources.iter().flatten())
                .filter_map(|s| s.secret.as_ref())
                .map(|s| (s.name.clone(), s.items.clone()));
            let plain = v
                .secret
                .iter()
                .map(|s| (s.secret_name.clone().unwrap_or_default(), s.items.clone()));
            for (secret, items) in projected.chain(plain) {
                if secret != etcd_ca {
                    continue;
                }
                let keys: Vec<String> = items
                    .unwrap_or_default()
                    .into_iter()
                    .map(|i| i.key)
                    .collect();
                assert_eq!(
                    keys,
                    vec!["tls.crt".to_string()],
                    "pod {} mounts {etcd_ca} {keys:?}",
                    pod.name_any()
                );
            }
        }
    }

    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), ns);
    let pem =
        |s: &Secret, key: &str| String::from_utf8(s.data.as_ref().unwrap()[key].0.clone()).unwrap();
    let ca = pem(&secrets.get(&etcd_ca).await.unwrap(), "tls.crt");
    let client = secrets
        .get(&format!("{cluster}-etcd-defrag-client"))
        .await
        .unwrap();
    let (client_crt, client_key) = (pem(&client, "tls.crt"), pem(&client, "tls.key"));
    let member = pods
        .list(
            &ListParams::default()
                .labels(&format!("app=k0smotron,cluster={cluster},component=etcd")),
        )
        .await
        .unwrap()
        .items
        .into_iter()
        .find_map(|p| {
            let ip = p.status.as_ref()?.pod_ip.clone()?;
            Some((p.name_any(), ip))
        })
        .expect("an etcd member with an address");
    let addr: std::net::SocketAddr = format!("{}:2379", member.1).parse().unwrap();
    // A name the server certificate covers (`*.kmc-<cluster>-etcd.<ns>.svc`).
    let server_name = format!("{}.kmc-{cluster}-etcd.{ns}.svc", member.0);
    let status = test_support::https_post_mtls(
        addr,
        &server_name,
        &ca,
        Some(test_support::ClientIdentity {
            cert_pem: &client_crt,
            key_pem: &client_key,
        }),
        "/v3/maintenance/status",
        "{}",
    )
    .await
    .unwrap();
    assert_eq!(status.status, 200, "{}", status.body);
    assert!(status.body.contains("\"version\""), "{}", status.body);
    let anonymous = test_support::https_post_mtls(
        addr,
        &server_name,
        &ca,
        None,
        "/v3/maintenance/status",
        "{}",
    )
    .await;
    assert!(
        !matches!(&anonymous, Ok(r) if r.status == 200),
        "etcd answered a client without a certificate: {anonymous:?}"
    );
    eprintln!("etcd accepts the defragmentation job's client certificate");
}

/// The standalone mode on real k0s, with no Cluster API object at all: a `k0smotron.io` Cluster
/// (as upstream's first release took it) gets a k0s control plane whose kubeconfig reaches the
/// hosted API, and a JoinTokenRequest's token authenticates against that API as
/// `system:bootstrap:<id>` until the request is deleted.
#[tokio::test]
#[ignore = "needs test/harness up --real-node"]
async fn real_node_standalone_cluster_and_join_token_request() {
    let env = Env::start("real-solo").await;
    let ns = env.name().to_owned();
    let name = "solo";
    apply(
        &env.client,
        &json!({"apiVersion": "k0smotron.io/v1beta2", "kind": "Cluster",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": 1,
                "storage": {"type": "kine", "kine": {"dataSourceURL": "sqlite:///var/lib/k0s/db/state.db?mode=rwc&_journal=WAL"}},
                "service": {"type": "NodePort", "apiPort": 32443, "konnectivityPort": 32132}}}),
    )
    .await;
    let started = Instant::now();
    // Upstream's standalone labels: no CAPI control-plane label.
    let pods = env
        .ready_pods(
            &format!("app=k0smotron,cluster={name},component=cluster"),
            1,
        )
        .await;
    assert!(pods.contains_key(&format!("kmc-{name}-0")), "{pods:?}");
    eprintln!(
        "standalone k0s controller Ready after {:?}",
        started.elapsed()
    );
    let (hosted, server) = env.hosted(name).await;
    assert_eq!(server, format!("https://{}:32443", env.node.ip));

    let clusters = objects::api(&env.client, &ns, "k0smotron.io/v1beta2", "Cluster");
    env.poll(
        Duration::from_secs(240),
        "the standalone Cluster Available with 1 ready replica",
        || async {
            let c = clusters.get(name).await.map_err(|e| e.to_string())?;
            (condition(&c, "Available") == Some("True") && c.data["status"]["readyReplicas"] == 1)
                .then_some(())
                .ok_or_else(|| summary(&c))
        },
    )
    .await;

    let request = "solo-worker";
    apply(
        &env.client,
        &json!({"apiVersion": "k0smotron.io/v1beta2", "kind": "JoinTokenRequest",
            "metadata": {"name": request, "namespace": ns},
            "spec": {"clusterName": name, "expiry": "1h", "role": "worker"}}),
    )
    .await;
    let requests = objects::api(&env.client, &ns, "k0smotron.io/v1beta2", "JoinTokenRequest");
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &ns);
    let (token, token_server, token_id) = env
        .poll(
            Duration::from_secs(120),
            "the JoinTokenRequest's Secret",
            || async {
                let jtr = requests.get(request).await.map_err(|e| e.to_string())?;
                let id = jtr.data["status"]["tokenID"]
                    .as_str()
                    .ok_or_else(|| summary(&jtr))?
                    .to_owned();
                let secret = secrets.get(request).await.map_err(|e| e.to_string())?;
                let encoded = secret
                    .data
                    .unwrap_or_default()
                    .remove("token")
                    .ok_or("no token key")?;
                let (token, server) = objects::k0s_token(&String::from_utf8_lossy(&encoded.0))?;
                Ok((token, server, id))
            },
        )
        .await;
    assert_eq!(token_server, server, "the token points at the hosted API");
    let id = token.split('.').next().unwrap();
    assert_eq!(id, token_id, "status.tokenID names the token");
    let ca = hosted_ca(&env, name).await;
    let as_bootstrap = objects::token_client(&token_server, &ca, &token).await;
    let (user, groups) = objects::whoami(&as_bootstrap).await.unwrap();
    assert_eq!(user, format!("system:bootstrap:{id}"));
    assert!(
        groups.iter().any(|g| g == "system:bootstrappers"),
        "{groups:?}"
    );

    // Deleting the request revokes the token in the hosted cluster: it authenticates no more.
    requests
        .delete(request, &DeleteParams::default())
        .await
        .unwrap();
    env.poll(
        Duration::from_secs(120),
        "the revoked token refused by the hosted API",
        || async {
            match objects::whoami(&as_bootstrap).await {
                Err(kube::Error::Api(e)) if e.code == 401 => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    drop(hosted);

    // Deleting the Cluster removes its control plane.
    clusters
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();
    let sets: Api<StatefulSet> = Api::namespaced(env.client.clone(), &ns);
    env.poll(
        Duration::from_secs(120),
        "the standalone control plane's StatefulSet gone",
        || async {
            match sets.get_opt(&format!("kmc-{name}")).await {
                Ok(None) => Ok(()),
                Ok(Some(_)) => Err("still there".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await;
    env.stop().await;
}

/// NATS storage (issue #13 part 5): three k0s controllers whose kine keeps the cluster's state
/// in the embedded NATS JetStream servers, clustered through the headless Service with the
/// generated token. The hosted API serves; what it stored survives the loss of one pod (its
/// replacement comes back on the same claim and rejoins).
#[tokio::test]
#[ignore = "needs test/harness up --real-node"]
async fn real_node_nats_storage_serves_the_api_and_survives_a_lost_pod() {
    use k8s_openapi::api::core::v1::ConfigMap;
    let env = Env::start("real-nats").await;
    let ns = env.name().to_owned();
    let cluster = "nats";
    env.create_cluster(
        cluster,
        json!({"replicas": 3,
            "storage": {"type": "nats"},
            "service": {"type": "NodePort", "apiPort": 31543, "konnectivityPort": 31532}}),
    )
    .await;
    let started = Instant::now();
    let pods = env.ready_pods(&selector(cluster), 3).await;
    eprintln!(
        "3 k0s controllers on NATS Ready after {:?}",
        started.elapsed()
    );
    let (hosted, _) = env.hosted(cluster).await;
    assert!(!k0s_crds(&hosted).await.is_empty());
    let maps: Api<ConfigMap> = Api::namespaced(hosted.clone(), "default");
    let probe = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "nats-probe"}, "data": {"stored": "in jetstream"}});
    maps.create(
        &kube::api::PostParams::default(),
        &serde_json::from_value(probe).unwrap(),
    )
    .await
    .unwrap();

    // kine's datasource is the embedded server, replicated over the three.
    let config = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(env.client.clone(), &ns)
        .get(&format!("kmc-{cluster}-config"))
        .await
        .unwrap();
    assert!(
        config.data.unwrap()["K0SMOTRON_K0S_YAML"]
            .contains("nats://?serverConfig=/etc/nats/nats.conf&replicas=3")
    );

    let lost = format!("kmc-{cluster}-0");
    Api::<Pod>::namespaced(env.client.clone(), &ns)
        .delete(&lost, &DeleteParams::default())
        .await
        .unwrap();
    let after = env
        .poll(POD_READY, "the lost pod replaced and Ready", || async {
            let now = env.ready_pods(&selector(cluster), 3).await;
            if now.get(&lost) != pods.get(&lost) {
                Ok(now)
            } else {
                Err("the old pod is still there".into())
            }
        })
        .await;
    assert_eq!(after.len(), 3);
    let (hosted, _) = env.hosted(cluster).await;
    let maps: Api<ConfigMap> = Api::namespaced(hosted, "default");
    let kept = maps.get("nats-probe").await.unwrap();
    assert_eq!(
        kept.data.unwrap()["stored"],
        "in jetstream",
        "what the API stored survives a lost pod"
    );
    eprintln!("pod replaced, data kept after {:?}", started.elapsed());
    capi(&env.client, &ns, "Cluster")
        .delete(cluster, &DeleteParams::default())
        .await
        .unwrap();
    env.stop().await;
}

/// The monitoring sidecars' images the harness builds from Debian's prometheus and nginx
/// (test/harness/node/node.sh, `monitoring_images`).
const PROMETHEUS_IMAGE: &str = "localhost/k0smotron-rs-harness/prometheus:1";
const MONITORING_PROXY_IMAGE: &str = "localhost/k0smotron-rs-harness/nginx:1";

/// The address of each endpoint of the metrics Service's port `metrics`.
async fn metrics_endpoints(env: &Env, cluster: &str) -> Result<Vec<std::net::SocketAddr>, String> {
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    let slices: Api<EndpointSlice> = Api::namespaced(env.client.clone(), env.name());
    let list = slices
        .list(
            &ListParams::default()
                .labels(&format!("kubernetes.io/service-name=kmc-{cluster}-metrics")),
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for slice in &list.items {
        let port = slice
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some("metrics"))
            .and_then(|p| p.port)
            .ok_or("no port named metrics")?;
        for e in slice.endpoints.iter().flatten() {
            if e.conditions.as_ref().and_then(|c| c.ready) == Some(true) {
                for a in &e.addresses {
                    let ip: std::net::IpAddr = a.parse().map_err(|e| format!("{a}: {e}"))?;
                    out.push(std::net::SocketAddr::new(ip, u16::try_from(port).unwrap()));
                }
            }
        }
    }
    if out.is_empty() {
        Err(format!("no ready endpoint in {} slices", list.items.len()))
    } else {
        Ok(out)
    }
}

#[tokio::test]
#[ignore = "needs test/harness up --real-node"]
async fn real_node_monitoring_serves_the_hosted_components_metrics_on_8090() {
    let env = Env::start("real-mon").await;
    let ns = env.name().to_owned();
    let cluster = "mon";
    // Managed etcd (the default storage), so the etcd job has a target too.
    env.create_cluster(
        cluster,
        json!({"replicas": 1,
            "service": {"type": "NodePort", "apiPort": 31643, "konnectivityPort": 31632},
            "monitoring": {"enabled": true, "prometheusImage": PROMETHEUS_IMAGE,
                "proxyImage": MONITORING_PROXY_IMAGE}}),
    )
    .await;
    let started = Instant::now();
    let pods = env.ready_pods(&selector(cluster), 1).await;
    eprintln!(
        "k0s controller with monitoring Ready after {:?}",
        started.elapsed()
    );
    let pod = Api::<Pod>::namespaced(env.client.clone(), &ns)
        .get(pods.keys().next().unwrap())
        .await
        .unwrap();
    let annotations = pod.annotations();
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], "8090");

    // Through the metrics Service's endpoint: upstream's /metrics (Prometheus's /federate) with
    // a series of each component, labelled with the cluster's name.
    let (addr, body) = env
        .poll(
            Duration::from_secs(180),
            "kube-apiserver, scheduler, controller-manager and etcd metrics on :8090/metrics",
            || async {
                let addr = metrics_endpoints(&env, cluster).await?[0];
                let (status, body) = e2e::process::http_get(addr, "/metrics").await?;
                if status != 200 {
                    return Err(format!("{addr}: HTTP {status}: {body:.300}"));
                }
                let has = |prefix: &str, component: &str| {
                    body.lines().any(|l| {
                        l.starts_with(prefix)
                            && l.contains(&format!("component=\"{component}\""))
                            && l.contains(&format!("k0smotron_cluster=\"{cluster}\""))
                    })
                };
                let missing: Vec<_> = [
                    ("apiserver_request_total{", "kube-apiserver"),
                    ("scheduler_", "kube-scheduler"),
                    ("workqueue_adds_total{", "kube-controller-manager"),
                    ("etcd_server_has_leader{", "etcd"),
                ]
                .into_iter()
                .filter(|(p, c)| !has(p, c))
                .collect();
                if missing.is_empty() {
                    Ok((addr, body))
                } else {
                    let ups: Vec<_> = body.lines().filter(|l| l.starts_with("up{")).collect();
                    Err(format!("{addr}: missing {missing:?}; up: {ups:?}"))
                }
            },
        )
        .await;
    eprintln!(
        "metrics of every component through {addr} after {:?} ({} bytes, {} series)",
        started.elapsed(),
        body.len(),
        body.lines().filter(|l| !l.starts_with('#')).count()
    );
    // Every scrape target answered.
    let ups: Vec<&str> = body.lines().filter(|l| l.starts_with("up{")).collect();
    assert!(ups.len() >= 4, "{ups:?}");
    for line in ups {
        assert!(line.contains("} 1 "), "target down: {line}");
    }
    // What the sidecars cost (reported, not asserted: it depends on the hosted cluster's size),
    // after a minute more of 10 s scrapes.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let (_, body) = e2e::process::http_get(addr, "/metrics").await.unwrap();
    assert!(
        body.lines()
            .any(|l| l.starts_with("apiserver_request_total{"))
    );
    let usage = env.node.container_usage(&ns).await.unwrap();
    eprintln!(
        "working set and CPU after {:?}: {}",
        started.elapsed(),
        usage
            .iter()
            .map(|(c, b, m)| format!("{c} {} MiB {m}m", b / (1024 * 1024)))
            .collect::<Vec<_>>()
            .join(", ")
    );

    capi(&env.client, &ns, "Cluster")
        .delete(cluster, &DeleteParams::default())
        .await
        .unwrap();
    env.stop().await;
}

/// The HAProxy configuration of an SNI passthrough proxy on `127.0.0.1:port`, made from
/// `ingress` as an ingress controller would read it: one `req.ssl_sni` rule per host, to the
/// rule's Service port, reached from this host at the real node's address and the port's
/// NodePort. No default backend: a server name no rule names gets no connection.
fn sni_proxy_config(
    ingress: &k8s_openapi::api::networking::v1::Ingress,
    service: &k8s_openapi::api::core::v1::Service,
    node_ip: &str,
    port: u16,
) -> String {
    let ports = service.spec.as_ref().unwrap().ports.clone().unwrap();
    let mut frontend = format!(
        "frontend ingress\n  bind 127.0.0.1:{port}\n  tcp-request inspect-delay 5s\n  tcp-request content accept if {{ req.ssl_hello_type 1 }}\n"
    );
    let mut backends = String::new();
    for (i, rule) in ingress
        .spec
        .as_ref()
        .unwrap()
        .rules
        .iter()
        .flatten()
        .enumerate()
    {
        let host = rule.host.as_deref().unwrap();
        let backend = rule.http.as_ref().unwrap().paths[0]
            .backend
            .service
            .as_ref()
            .unwrap();
        assert_eq!(
            Some(backend.name.as_str()),
            service.metadata.name.as_deref(),
            "the rule routes to the exposure Service"
        );
        let number = backend.port.as_ref().unwrap().number.unwrap();
        let node_port = ports
            .iter()
            .find(|p| p.port == number)
            .and_then(|p| p.node_port)
            .unwrap_or_else(|| panic!("Service port {number} of rule {host} has no NodePort"));
        frontend.push_str(&format!(
            "  use_backend rule{i} if {{ req.ssl_sni -i {host} }}\n"
        ));
        backends.push_str(&format!(
            "backend rule{i}\n  server s{i} {node_ip}:{node_port}\n"
        ));
    }
    format!(
        "global\n  maxconn 256\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 1h\n  timeout server 1h\n{frontend}{backends}"
    )
}

/// The subject of the certificate the proxy on `port` hands a TLS client naming `server_name`,
/// or `None` when the handshake fails (no rule for that name).
async fn certificate_subject(port: u16, server_name: &str) -> Option<String> {
    let out = tokio::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            server_name,
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("subject=").map(str::to_owned))
}

/// What `GET https://<server_name>:<port>/version` through the proxy on `127.0.0.1:port` answers
/// (curl sends `server_name` as SNI; certificates are not checked here, routing is).
async fn version_by_name(port: u16, server_name: &str) -> String {
    let out = tokio::process::Command::new("curl")
        .args(["-sk", "--max-time", "10", "--connect-to"])
        .arg(format!("{server_name}:{port}:127.0.0.1:{port}"))
        .arg(format!("https://{server_name}:{port}/version"))
        .output()
        .await
        .unwrap();
    format!(
        "{} (curl {})",
        String::from_utf8_lossy(&out.stdout),
        out.status
    )
}

/// `spec.ingress` (issue #13 part 3): the control plane is reached only through an SNI
/// passthrough proxy (HAProxy, made by this test from the Ingress the provider wrote, as an
/// ingress controller would) on a free local port that is `spec.ingress.port`. `apiHost` is
/// `localhost`, the one name that resolves to this host without editing /etc/hosts, so every
/// client uses the kubeconfig as we wrote it: `kubectl` and a kube client through
/// `<cluster>-kubeconfig`, CAPI core (the Cluster becomes Available), and a worker's join token
/// from the bootstrap provider, which authenticates through the proxy. The konnectivity host gets
/// konnectivity's certificate; a name without a rule gets no connection.
#[tokio::test]
#[ignore = "needs test/harness up --real-node"]
async fn real_node_ingress_carries_kubectl_and_join_tokens_through_an_sni_proxy() {
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::networking::v1::Ingress;
    let env = Env::start("real-ingress").await;
    let ns = env.name().to_owned();
    let cluster = "ing";
    let port = test_support::free_port().unwrap();
    env.create_cluster(
        cluster,
        json!({"replicas": 1,
            "storage": {"type": "kine", "kine": {"dataSourceURL": "sqlite:///var/lib/k0s/db/state.db?mode=rwc&_journal=WAL"}},
            "service": {"type": "NodePort", "apiPort": 31843, "konnectivityPort": 31832},
            "ingress": {"apiHost": "localhost", "konnectivityHost": "konnectivity.localhost",
                "port": port, "className": "haproxy",
                "annotations": {"haproxy.org/ssl-passthrough": "true"}}}),
    )
    .await;
    let ingress = env
        .poll(Duration::from_secs(60), "the Ingress", || async {
            Api::<Ingress>::namespaced(env.client.clone(), &ns)
                .get_opt(&format!("kmc-{cluster}"))
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "not yet".to_owned())
        })
        .await;
    let service = Api::<Service>::namespaced(env.client.clone(), &ns)
        .get(&format!("kmc-{cluster}-nodeport"))
        .await
        .unwrap();
    let config = sni_proxy_config(&ingress, &service, &env.node.ip, port);
    let scratch = ScratchDir::new("haproxy").unwrap();
    let cfg = scratch.join("haproxy.cfg");
    std::fs::write(&cfg, &config).unwrap();
    let haproxy = e2e::process::Background::spawn(
        "haproxy",
        std::path::Path::new("haproxy"),
        ["-db", "-f", cfg.to_str().unwrap()],
        std::iter::empty::<(&str, &str)>(),
        &env.logs,
    )
    .unwrap();
    eprintln!("SNI proxy on 127.0.0.1:{port}:\n{config}");

    let started = Instant::now();
    env.ready_pods(&selector(cluster), 1).await;
    eprintln!("k0s controller Ready after {:?}", started.elapsed());

    // A kube client from `<cluster>-kubeconfig` alone, through the proxy.
    let (hosted, server) = env.hosted(cluster).await;
    assert_eq!(server, format!("https://localhost:{port}"));
    let namespaces = Api::<Namespace>::all(hosted.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(
        namespaces
            .items
            .iter()
            .any(|n| n.name_any() == "kube-system"),
        "the hosted cluster's namespaces"
    );
    // And kubectl, with the kubeconfig as we wrote it.
    let secret = Api::<Secret>::namespaced(env.client.clone(), &ns)
        .get(&format!("{cluster}-kubeconfig"))
        .await
        .unwrap();
    let kubeconfig = scratch.join("kubeconfig");
    std::fs::write(&kubeconfig, &secret.data.unwrap()["value"].0).unwrap();
    let out = tokio::process::Command::new("kubectl")
        .args(["--kubeconfig", kubeconfig.to_str().unwrap()])
        .args(["get", "namespaces", "-o", "name"])
        .output()
        .await
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && listed.contains("namespace/kube-system"),
        "kubectl through the proxy: {listed}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Routing is by server name: both hosts complete a TLS handshake (k0s serves both with a
    // certificate of the same subject), but only the API host answers `/version` like an API
    // server (k0s turns anonymous access off: a 401 `Status`); konnectivity speaks gRPC. A name
    // without a rule gets no handshake at all.
    let api_subject = certificate_subject(port, "localhost").await;
    let konnectivity_subject = certificate_subject(port, "konnectivity.localhost").await;
    eprintln!("api: {api_subject:?}, konnectivity: {konnectivity_subject:?}");
    assert!(api_subject.is_some() && konnectivity_subject.is_some());
    let api_version = version_by_name(port, "localhost").await;
    let from_api_server = |answer: &str| {
        answer.contains("gitVersion")
            || (answer.contains("\"kind\"") && answer.contains("\"Status\""))
    };
    assert!(from_api_server(&api_version), "{api_version}");
    let konnectivity_version = version_by_name(port, "konnectivity.localhost").await;
    assert!(
        !from_api_server(&konnectivity_version),
        "konnectivity's host reached the API server: {konnectivity_version}"
    );
    assert_eq!(certificate_subject(port, "other.localhost").await, None);

    // CAPI core reaches it through the proxy too.
    env.cluster_available(cluster).await;
    let endpoint = capi(&env.client, &ns, "Cluster")
        .get(cluster)
        .await
        .unwrap()
        .data["spec"]["controlPlaneEndpoint"]
        .clone();
    assert_eq!(endpoint, json!({"host": "localhost", "port": port}));
    // A worker's join token points at the ingress and authenticates through it.
    worker_token_authenticates_then_goes(&env, cluster, &hosted, &server).await;

    capi(&env.client, &ns, "Cluster")
        .delete(cluster, &DeleteParams::default())
        .await
        .unwrap();
    haproxy.kill().await;
    env.stop().await;
}

/// The names of the objects of kind `K` in `namespace`, each with its owner references
/// (`Kind/name uid`, `(controller)` marked, comma-separated).
async fn controlled<K>(
    client: &Client,
    namespace: &str,
) -> std::collections::BTreeMap<String, String>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    <K as kube::Resource>::DynamicType: Default,
{
    Api::<K>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|o| {
            let owners: Vec<String> = o
                .meta()
                .owner_references
                .iter()
                .flatten()
                .map(|r| {
                    let controller = if r.controller == Some(true) {
                        " (controller)"
                    } else {
                        ""
                    };
                    format!("{}/{} {}{controller}", r.kind, r.name, r.uid)
                })
                .collect();
            (o.name_any(), owners.join(", "))
        })
        .collect()
}

/// `spec.remoteHostCluster` with the harness cluster as the hosting cluster and its real node as
/// the hosting cluster's node: the management cluster is a workload server of its own (CAPI
/// core and the control-plane provider run against it; no controller manager, so nothing
/// there is garbage-collected), holding the harness's admin kubeconfig in a Secret. Every
/// child is created in the hosting cluster under the root owner and none in the management
/// cluster but `<cluster>-kubeconfig`; k0s runs Ready on the real node; the kubeconfig alone
/// reaches the hosted API through the node's address and the NodePort; CAPI core finds the
/// Cluster Available; deleting the control plane takes every child in the hosting cluster
/// (through the root owner and the hosting cluster's garbage collector) and the pods off the node.
#[tokio::test]
#[ignore = "needs test/harness up --real-node"]
async fn real_node_remote_host_cluster_runs_k0s_on_the_hosting_clusters_node() {
    use k8s_openapi::api::core::v1::{ConfigMap, Service};

    let env = Env::start_remote("real-remote").await;
    let ns = env.name().to_owned();
    let cluster = "remote";
    env.create_cluster(
        cluster,
        json!({"replicas": 1,
            "storage": {"type": "kine", "kine": {"dataSourceURL": "sqlite:///var/lib/k0s/db/state.db?mode=rwc&_journal=WAL"}},
            "service": {"type": "NodePort", "apiPort": 31743, "konnectivityPort": 31732},
            "remoteHostCluster": {"kubeconfigRef": {"name": HOSTING_KUBECONFIG, "namespace": ns, "key": "value"}}}),
    )
    .await;

    // k0s runs on the hosting cluster's node, from the StatefulSet written there.
    let started = Instant::now();
    let pods = env.ready_pods(&selector(cluster), 1).await;
    assert!(pods.contains_key(&format!("kmc-{cluster}-0")), "{pods:?}");
    eprintln!("k0s controller Ready after {:?}", started.elapsed());

    // Every child in the hosting cluster is controlled by the root owner there; the management
    // cluster holds the control plane's kubeconfig and the hosting cluster's, nothing else.
    let (host, mgmt) = (&env.client, &env.management);
    let root = Api::<ConfigMap>::namespaced(host.clone(), &ns)
        .get(&format!("{cluster}-root-owner"))
        .await
        .unwrap();
    let kcp_uid = objects::api(mgmt, &ns, CP_API, "K0smotronControlPlane")
        .get(cluster)
        .await
        .unwrap()
        .uid()
        .unwrap();
    assert_eq!(
        root.annotations()
            .get("k0smotron.io/control-plane-uid")
            .map(String::as_str),
        Some(kcp_uid.as_str()),
        "the root owner stands for this control plane"
    );
    assert!(root.owner_references().is_empty(), "{root:?}");
    // Its only owner, in the same cluster: no reference crosses clusters.
    let by_root = format!(
        "ConfigMap/{cluster}-root-owner {} (controller)",
        root.uid().unwrap()
    );
    let hosted_children = [
        ("StatefulSet", controlled::<StatefulSet>(host, &ns).await),
        ("Service", controlled::<Service>(host, &ns).await),
        ("ConfigMap", controlled::<ConfigMap>(host, &ns).await),
        ("Secret", controlled::<Secret>(host, &ns).await),
    ];
    eprintln!("in the hosting cluster: {hosted_children:?}");
    for (kind, names) in &hosted_children {
        let expected: &[String] = match *kind {
            "StatefulSet" => &[format!("kmc-{cluster}")],
            "Service" => &[format!("kmc-{cluster}-nodeport")],
            "ConfigMap" => &[
                format!("kmc-{cluster}-config"),
                format!("kmc-entrypoint-{cluster}-config"),
            ],
            _ => &[
                format!("{cluster}-ca"),
                format!("{cluster}-proxy"),
                format!("{cluster}-sa"),
            ],
        };
        for name in expected {
            assert!(
                names.contains_key(name),
                "{kind} {name} in the hosting cluster: {names:?}"
            );
        }
        for (name, controller) in names {
            // The harness's own: the CA bundle the controller manager publishes in every namespace.
            if name == "kube-root-ca.crt" || name == &format!("{cluster}-root-owner") {
                continue;
            }
            assert_eq!(controller, &by_root, "{kind} {name} in the hosting cluster");
        }
    }
    assert!(
        !hosted_children[3]
            .1
            .contains_key(&format!("{cluster}-kubeconfig")),
        "the kubeconfig stays in the management cluster"
    );
    let mgmt_secrets = controlled::<Secret>(mgmt, &ns).await;
    assert_eq!(
        mgmt_secrets.keys().cloned().collect::<Vec<_>>(),
        [
            HOSTING_KUBECONFIG.to_owned(),
            format!("{cluster}-kubeconfig")
        ],
        "{mgmt_secrets:?}"
    );
    assert_eq!(
        mgmt_secrets[&format!("{cluster}-kubeconfig")],
        format!("K0smotronControlPlane/{cluster} {kcp_uid} (controller)")
    );
    for (kind, names) in [
        ("StatefulSet", controlled::<StatefulSet>(mgmt, &ns).await),
        ("Service", controlled::<Service>(mgmt, &ns).await),
        ("ConfigMap", controlled::<ConfigMap>(mgmt, &ns).await),
        ("Pod", controlled::<Pod>(mgmt, &ns).await),
    ] {
        assert!(
            names.is_empty(),
            "no {kind} in the management cluster: {names:?}"
        );
    }

    // The kubeconfig in the management cluster alone reaches the hosted API: the hosting
    // node's address and the NodePort, found in the hosting cluster.
    let (hosted, server) = env.hosted(cluster).await;
    assert_eq!(server, format!("https://{}:31743", env.node.ip));
    let version = hosted.apiserver_version().await.unwrap();
    assert_eq!(
        version.git_version,
        env.node.k0s_version.split('+').next().unwrap(),
        "the Kubernetes of this k0s release"
    );
    Api::<Namespace>::all(hosted.clone())
        .get("kube-system")
        .await
        .unwrap();

    // The control plane's status says so (and the dynamic part of the k0s config reached the
    // hosted cluster's ClusterConfig), and CAPI core agrees.
    let kcps = objects::api(mgmt, &ns, CP_API, "K0smotronControlPlane");
    let kcp = env
        .poll(
            Duration::from_secs(120),
            "the control plane initialized, Available, its dynamic config applied",
            || async {
                let k = kcps.get(cluster).await.map_err(|e| e.to_string())?;
                let status = &k.data["status"];
                if status["initialization"]["controlPlaneInitialized"] == true
                    && status["readyReplicas"] == 1
                    && condition(&k, "Available") == Some("True")
                    && condition(&k, "DynamicConfigApplied") == Some("True")
                {
                    Ok(k)
                } else {
                    Err(summary(&k))
                }
            },
        )
        .await;
    assert_eq!(kcp.data["status"]["externalAddress"], json!(env.node.ip));
    env.cluster_available(cluster).await;

    // Deleting the control plane: the finalizer deletes the root owner in the hosting cluster,
    // whose garbage collector takes the children and the pods; the provider deletes the
    // kubeconfig in the management cluster itself (no garbage collector runs there).
    kcps.delete(cluster, &DeleteParams::default())
        .await
        .unwrap();
    env.poll(
        Duration::from_secs(240),
        "no child in the hosting cluster and no pod sandbox on the node",
        || async {
            let mut left = Vec::new();
            for (kind, names) in [
                ("StatefulSet", controlled::<StatefulSet>(host, &ns).await),
                ("Service", controlled::<Service>(host, &ns).await),
                ("ConfigMap", controlled::<ConfigMap>(host, &ns).await),
                ("Secret", controlled::<Secret>(host, &ns).await),
                ("Pod", controlled::<Pod>(host, &ns).await),
            ] {
                left.extend(
                    names
                        .into_keys()
                        .filter(|n| n != "kube-root-ca.crt")
                        .map(|n| format!("{kind} {n}")),
                );
            }
            let sandboxes = env.node.pod_sandboxes(&ns).await?;
            if left.is_empty() && sandboxes.is_empty() {
                Ok(())
            } else {
                Err(format!("left {left:?} sandboxes {sandboxes:?}"))
            }
        },
    )
    .await;
    env.poll(
        Duration::from_secs(60),
        "the control plane and its kubeconfig gone from the management cluster",
        || async {
            let kcp = kcps.get_opt(cluster).await.map_err(|e| e.to_string())?;
            let secrets = controlled::<Secret>(mgmt, &ns).await;
            if kcp.is_none() && secrets.keys().eq([HOSTING_KUBECONFIG]) {
                Ok(())
            } else {
                Err(format!(
                    "control plane {:?}, Secrets {secrets:?}",
                    kcp.map(|k| summary(&k))
                ))
            }
        },
    )
    .await;
    env.stop().await;
}
