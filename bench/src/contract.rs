//! The CRD contract the benchmark relies on, and nothing else: the objects it creates (CAPI
//! `Cluster`, `K0smotronControlPlane`, `Machine`, `K0sWorkerConfig`), the children's names
//! upstream k0smotron gives them, the Secrets CAPI names, and the status fields the CRDs define.
//! No knowledge of how a provider builds them.

use kube::api::ApiResource;
use kube::core::GroupVersionKind;
use serde_json::{Value, json};

/// Namespaces the workload is spread over.
pub const NAMESPACES: usize = 10;

pub fn cluster_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("cluster.x-k8s.io", "v1beta2", "Cluster"),
        "clusters",
    )
}

pub fn kcp_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(
            "controlplane.cluster.x-k8s.io",
            "v1beta2",
            "K0smotronControlPlane",
        ),
        "k0smotroncontrolplanes",
    )
}

pub fn machine_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("cluster.x-k8s.io", "v1beta2", "Machine"),
        "machines",
    )
}

pub fn worker_config_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("bootstrap.cluster.x-k8s.io", "v1beta2", "K0sWorkerConfig"),
        "k0sworkerconfigs",
    )
}

/// One cluster of the workload: its name, namespace and how its API is exposed.
#[derive(Clone, Debug)]
pub struct Spec {
    pub index: usize,
    pub namespace: String,
    pub name: String,
    /// NodePort with distinct node ports (`api_port`, `api_port + 1`), else ClusterIP.
    pub node_port: Option<i32>,
}

/// Odd indices are NodePort clusters; their node ports are distinct and stay inside the default
/// range 30000-32767 up to N = 1,300.
pub fn workload(n: usize, ns_prefix: &str) -> Vec<Spec> {
    (0..n)
        .map(|i| Spec {
            index: i,
            namespace: format!("{ns_prefix}-{}", i % NAMESPACES),
            name: format!("bench-{i}"),
            node_port: (i % 2 == 1).then(|| 30000 + 2 * (i as i32 / 2)),
        })
        .collect()
}

impl Spec {
    pub fn cluster_json(&self) -> Value {
        json!({
            "apiVersion": "cluster.x-k8s.io/v1beta2",
            "kind": "Cluster",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {"controlPlaneRef": {
                "apiGroup": "controlplane.cluster.x-k8s.io",
                "kind": "K0smotronControlPlane",
                "name": self.name,
            }},
        })
    }

    /// The control plane, owned by its Cluster as CAPI core would set it (no CAPI manager runs).
    pub fn kcp_json(&self, cluster_uid: &str) -> Value {
        let service = match self.node_port {
            Some(p) => json!({"type": "NodePort", "apiPort": p, "konnectivityPort": p + 1}),
            None => json!({"type": "ClusterIP"}),
        };
        json!({
            "apiVersion": "controlplane.cluster.x-k8s.io/v1beta2",
            "kind": "K0smotronControlPlane",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {"cluster.x-k8s.io/cluster-name": self.name},
                "ownerReferences": [{
                    "apiVersion": "cluster.x-k8s.io/v1beta2",
                    "kind": "Cluster",
                    "name": self.name,
                    "uid": cluster_uid,
                }],
            },
            "spec": {
                "replicas": 1,
                "service": service,
                "storage": {"type": "kine", "kine": {"dataSourceURL": "sqlite:///var/lib/k0s/db/state.db"}},
            },
        })
    }

    /// The churn change: a k0sConfig value k0s reads only at start (`spec.api`), so the pods roll.
    /// (A cluster-wide value would go to the hosted cluster's `kube-system/k0s` and roll nothing.)
    pub fn k0s_config_patch() -> Value {
        json!({"spec": {"k0sConfig": {
            "apiVersion": "k0s.k0sproject.io/v1beta1",
            "kind": "ClusterConfig",
            "spec": {"api": {"extraArgs": {"event-ttl": "2h"}}},
        }}})
    }

    /// The StatefulSet running the control plane (upstream's name).
    pub fn statefulset(&self) -> String {
        format!("kmc-{}", self.name)
    }

    /// The Service exposing the API (upstream's names per type).
    pub fn service(&self) -> String {
        match self.node_port {
            Some(_) => format!("kmc-{}-nodeport", self.name),
            None => format!("kmc-{}", self.name),
        }
    }

    /// The Secrets CAPI's contract names: `<cluster>-kubeconfig` and `<cluster>-ca`.
    pub fn secrets(&self) -> [String; 2] {
        [
            format!("{}-kubeconfig", self.name),
            format!("{}-ca", self.name),
        ]
    }
}

/// The bootstrap workload: one CAPI Cluster whose control plane is initialized and whose API is
/// a workload API server the harness runs, and N Machines with a `K0sWorkerConfig` each.
pub mod boot {
    use serde_json::{Value, json};

    /// Namespace of the bootstrap workload.
    pub const NAMESPACE: &str = "bench-boot";
    /// Its one Cluster.
    pub const CLUSTER: &str = "boot";
    /// CAPI's label naming a Machine's (and a bootstrap config's) Cluster.
    const CLUSTER_NAME_LABEL: &str = "cluster.x-k8s.io/cluster-name";

    /// The Cluster, its API at `host:port` (status is set separately: a subresource).
    pub fn cluster_json(host: &str, port: u16) -> Value {
        json!({
            "apiVersion": "cluster.x-k8s.io/v1beta2",
            "kind": "Cluster",
            "metadata": {"name": CLUSTER, "namespace": NAMESPACE},
            "spec": {"controlPlaneEndpoint": {"host": host, "port": port}},
        })
    }

    /// What CAPI's control-plane contract (v1beta2) says once the first control plane is up.
    pub fn cluster_initialized_status() -> Value {
        json!({"status": {"initialization": {"controlPlaneInitialized": true}}})
    }

    /// A Secret as CAPI names and types them (`<cluster>-ca`, `<cluster>-kubeconfig`).
    pub fn secret_json(suffix: &str, string_data: Value) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": format!("{CLUSTER}-{suffix}"),
                "namespace": NAMESPACE,
                "labels": {CLUSTER_NAME_LABEL: CLUSTER},
            },
            "type": "cluster.x-k8s.io/secret",
            "stringData": string_data,
        })
    }

    /// Name of the i-th Machine and of its config.
    pub fn worker(i: usize) -> String {
        format!("worker-{i}")
    }

    /// The i-th Machine, pointing at its K0sWorkerConfig as CAPI's MachineSet would create it
    /// (no CAPI manager runs: nothing else touches it).
    pub fn machine_json(i: usize) -> Value {
        let name = worker(i);
        json!({
            "apiVersion": "cluster.x-k8s.io/v1beta2",
            "kind": "Machine",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": {CLUSTER_NAME_LABEL: CLUSTER}},
            "spec": {
                "clusterName": CLUSTER,
                "version": "v1.34.1",
                "bootstrap": {"configRef": {
                    "apiGroup": "bootstrap.cluster.x-k8s.io", "kind": "K0sWorkerConfig", "name": name,
                }},
                "infrastructureRef": {
                    "apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "DockerMachine", "name": name,
                },
            },
        })
    }

    /// The i-th config (empty spec: everything defaulted), owned by its Machine as CAPI sets it.
    pub fn worker_config_json(i: usize, machine_uid: &str) -> Value {
        let name = worker(i);
        json!({
            "apiVersion": "bootstrap.cluster.x-k8s.io/v1beta2",
            "kind": "K0sWorkerConfig",
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "labels": {CLUSTER_NAME_LABEL: CLUSTER},
                "ownerReferences": [{
                    "apiVersion": "cluster.x-k8s.io/v1beta2",
                    "kind": "Machine",
                    "name": name,
                    "uid": machine_uid,
                    "controller": true,
                    "blockOwnerDeletion": true,
                }],
            },
            "spec": {},
        })
    }

    /// The bootstrap contract's answer: `status.dataSecretName`, once set.
    pub fn data_secret_name(config: &Value) -> Option<&str> {
        config
            .pointer("/status/dataSecretName")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }
}
