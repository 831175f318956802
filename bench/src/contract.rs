//! The CRD contract the benchmark relies on, and nothing else: the objects it creates (CAPI
//! `Cluster`, `K0smotronControlPlane`), the children's names upstream k0smotron gives them, and
//! the status fields the CRD defines. No knowledge of how a provider builds them.

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

    /// The churn change: a k0sConfig value.
    pub fn k0s_config_patch() -> Value {
        json!({"spec": {"k0sConfig": {
            "apiVersion": "k0s.k0sproject.io/v1beta1",
            "kind": "ClusterConfig",
            "spec": {"telemetry": {"enabled": false}},
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
