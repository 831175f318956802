//! A stand-in infrastructure provider for tests and the local run: the kinds `TestCluster`,
//! `TestMachine` and `TestMachineTemplate` (`infrastructure.cluster.x-k8s.io/v1alpha1`, CRDs in
//! `test/e2e/crds`), which nothing provisions; a test marks them provisioned with
//! [`provision_cluster`] and [`provision_machine`], and [`run`] does so continuously the way a
//! real provider would (a machine "boots" once its Machine has bootstrap data, and optionally
//! registers a Node in the workload cluster).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, NodeSpec, Secret};
use kube::api::{
    ApiResource, DynamicObject, ListParams, ObjectMeta, Patch, PatchParams, PostParams,
};
use kube::core::GroupVersionKind;
use kube::{Api, Client};
use serde_json::json;

/// API group of the test infrastructure kinds.
pub const GROUP: &str = "infrastructure.cluster.x-k8s.io";
/// Their version.
pub const VERSION: &str = "v1alpha1";

/// A status or spec write failed.
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    /// Writing an object failed.
    #[error("{action} {kind} {namespace}/{name}")]
    Write {
        /// What was attempted.
        action: &'static str,
        /// Kind of the object.
        kind: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// What went wrong.
        #[source]
        source: kube::Error,
    },
    /// A Node could not be registered in the workload cluster.
    #[error("registering Node {node} in workload cluster {cluster}: {reason}")]
    RegisterNode {
        /// The Node (= Machine) name.
        node: String,
        /// The CAPI Cluster.
        cluster: String,
        /// What went wrong.
        reason: String,
    },
    /// Listing objects failed.
    #[error("listing {kind} in {namespace}")]
    List {
        /// Kind.
        kind: String,
        /// Namespace.
        namespace: String,
        /// What went wrong.
        #[source]
        source: kube::Error,
    },
}

/// The `ApiResource` of one of the test kinds (`TestCluster`, `TestMachine`,
/// `TestMachineTemplate`).
pub fn resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP, VERSION, kind),
        &format!("{}s", kind.to_ascii_lowercase()),
    )
}

/// The `ApiResource` of a CAPI core kind (`cluster.x-k8s.io/v1beta2`), e.g. `Machine`.
pub fn capi_resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("cluster.x-k8s.io", "v1beta2", kind),
        &format!("{}s", kind.to_ascii_lowercase()),
    )
}

fn write_err(
    action: &'static str,
    kind: &str,
    namespace: &str,
    name: &str,
) -> impl FnOnce(kube::Error) -> InfraError {
    let (kind, namespace, name) = (kind.to_owned(), namespace.to_owned(), name.to_owned());
    move |source| InfraError::Write {
        action,
        kind,
        namespace,
        name,
        source,
    }
}

/// Mark `TestCluster` `name` provisioned (`status.initialization.provisioned: true`), as an
/// infrastructure provider does once the cluster's infrastructure exists.
pub async fn provision_cluster(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<(), InfraError> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &resource("TestCluster"));
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"initialization": {"provisioned": true}}})),
    )
    .await
    .map(drop)
    .map_err(write_err(
        "marking provisioned",
        "TestCluster",
        namespace,
        name,
    ))
}

/// The provider ID the stand-in gives a machine.
pub fn provider_id(namespace: &str, name: &str) -> String {
    format!("test://{namespace}/{name}")
}

/// Give `TestMachine` `name` its provider ID and mark it provisioned with a loopback address, as
/// an infrastructure provider does once the machine runs.
pub async fn provision_machine(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<(), InfraError> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &resource("TestMachine"));
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"providerID": provider_id(namespace, name)}})),
    )
    .await
    .map_err(write_err(
        "setting providerID of",
        "TestMachine",
        namespace,
        name,
    ))?;
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {
            "initialization": {"provisioned": true},
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        }})),
    )
    .await
    .map(drop)
    .map_err(write_err(
        "marking provisioned",
        "TestMachine",
        namespace,
        name,
    ))
}

fn is_provisioned(obj: &DynamicObject) -> bool {
    obj.data["status"]["initialization"]["provisioned"].as_bool() == Some(true)
}

/// The Machine owning a `TestMachine` (CAPI sets a controller owner reference on it).
fn owning_machine(obj: &DynamicObject) -> Option<String> {
    obj.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.kind == "Machine" && o.api_version.starts_with("cluster.x-k8s.io/"))
        .map(|o| o.name.clone())
}

/// How often [`run`] renews the heartbeat of a Node it registered (a kubelet's default is 10 s).
const HEARTBEAT: Duration = Duration::from_secs(15);

/// What [`run`] does besides provisioning.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Register a `Node` with the machine's provider ID in the workload cluster (read through
    /// `<cluster>-kubeconfig`) once a machine is provisioned, and mark it Ready, as its kubelet
    /// would, renewing its heartbeat every [`HEARTBEAT`]; CAPI then sets the Machine's `nodeRef`
    /// and the Machine becomes Ready.
    pub register_nodes: bool,
}

/// Provision every `TestCluster` in `namespace` not annotated `cluster.x-k8s.io/managed-by`, and
/// every `TestMachine` whose Machine has
/// bootstrap data, once a second, until the future is dropped. Errors are printed and retried.
///
/// Polling, not watching: this is a test stand-in that must stay obviously correct, and one list
/// per second of a test namespace costs nothing.
pub async fn run(client: Client, namespace: String, options: RunOptions) {
    // Nodes registered so far and when their heartbeat was last renewed.
    let mut registered = HashMap::new();
    loop {
        if let Err(e) = pass(&client, &namespace, options, &mut registered).await {
            eprintln!("fake-infra: {e}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn pass(
    client: &Client,
    namespace: &str,
    options: RunOptions,
    registered: &mut HashMap<String, Instant>,
) -> Result<(), InfraError> {
    let list_err = |kind: &str| {
        let (kind, namespace) = (kind.to_owned(), namespace.to_owned());
        move |source| InfraError::List {
            kind,
            namespace,
            source,
        }
    };
    let clusters: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &resource("TestCluster"));
    for cluster in clusters
        .list(&ListParams::default())
        .await
        .map_err(list_err("TestCluster"))?
    {
        // CAPI's convention: an infrastructure cluster annotated `cluster.x-k8s.io/managed-by`
        // belongs to someone else (here the control-plane provider), and its provider keeps out.
        let externally_managed = cluster
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key("cluster.x-k8s.io/managed-by"));
        if !externally_managed && !is_provisioned(&cluster) {
            let name = cluster.metadata.name.clone().unwrap_or_default();
            provision_cluster(client, namespace, &name).await?;
            eprintln!("fake-infra: TestCluster {namespace}/{name} provisioned");
        }
    }
    let machines: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &resource("TestMachine"));
    let capi_machines: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &capi_resource("Machine"));
    for machine in machines
        .list(&ListParams::default())
        .await
        .map_err(list_err("TestMachine"))?
    {
        let name = machine.metadata.name.clone().unwrap_or_default();
        let provisioned = is_provisioned(&machine);
        // A registered Node's heartbeat is renewed now and then, as a kubelet's is: a real k0s
        // controller-manager marks a Node whose heartbeat stopped NotReady (after 50 s).
        let fresh = registered
            .get(&name)
            .is_some_and(|at: &Instant| at.elapsed() < HEARTBEAT);
        if provisioned && (!options.register_nodes || fresh) {
            continue;
        }
        let Some(owner) = owning_machine(&machine) else {
            continue;
        };
        let Ok(Some(capi_machine)) = capi_machines.get_opt(&owner).await else {
            continue;
        };
        if !provisioned {
            // A real machine boots from its bootstrap data; without it there is nothing to run.
            if capi_machine.data["spec"]["bootstrap"]["dataSecretName"].is_null() {
                continue;
            }
            provision_machine(client, namespace, &name).await?;
            eprintln!("fake-infra: TestMachine {namespace}/{name} provisioned (Machine {owner})");
        }
        if options.register_nodes {
            let cluster = capi_machine.data["spec"]["clusterName"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            register_node(
                client,
                namespace,
                &cluster,
                &owner,
                &provider_id(namespace, &name),
            )
            .await
            .map_err(|reason| InfraError::RegisterNode {
                node: owner.clone(),
                cluster: cluster.clone(),
                reason,
            })?;
            if registered.insert(name, Instant::now()).is_none() {
                eprintln!("fake-infra: Node {owner} registered in workload cluster {cluster}");
            }
        }
    }
    Ok(())
}

/// Create Node `node` with `provider_id` in the workload cluster of `cluster` (an existing Node
/// counts as success). The error is a reason for [`InfraError::RegisterNode`].
async fn register_node(
    client: &Client,
    namespace: &str,
    cluster: &str,
    node: &str,
    provider_id: &str,
) -> Result<(), String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = secrets
        .get(&format!("{cluster}-kubeconfig"))
        .await
        .map_err(|e| format!("reading {cluster}-kubeconfig: {e}"))?;
    let kubeconfig = secret
        .data
        .as_ref()
        .and_then(|d| d.get("value"))
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        .ok_or_else(|| format!("{cluster}-kubeconfig has no key `value`"))?;
    let workload = test_support::client_from_kubeconfig_yaml(&kubeconfig)
        .await
        .map_err(|e| format!("workload client: {e}"))?;
    let nodes: Api<Node> = Api::all(workload);
    let object = Node {
        metadata: ObjectMeta {
            name: Some(node.to_owned()),
            labels: Some(BTreeMap::from([(
                "kubernetes.io/hostname".to_owned(),
                node.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            provider_id: Some(provider_id.to_owned()),
            ..NodeSpec::default()
        }),
        ..Node::default()
    };
    match nodes.create(&PostParams::default(), &object).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(format!("creating Node: {e}")),
    }
    // Ready and without pressure (what CAPI's NodeHealthy reads), as its kubelet would report,
    // with a fresh heartbeat each time (real k0s's node lifecycle controller watches it).
    let now = k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    nodes
        .patch_status(
            node,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "conditions": [
                    {"type": "Ready", "status": "True", "reason": "KubeletReady",
                     "message": "fake-infra-provider stands in for the kubelet",
                     "lastHeartbeatTime": now, "lastTransitionTime": now},
                    {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
                     "lastHeartbeatTime": now, "lastTransitionTime": now},
                    {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure",
                     "lastHeartbeatTime": now, "lastTransitionTime": now},
                    {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID",
                     "lastHeartbeatTime": now, "lastTransitionTime": now},
                ],
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            }})),
        )
        .await
        .map(drop)
        .map_err(|e| format!("marking Node Ready: {e}"))
}
