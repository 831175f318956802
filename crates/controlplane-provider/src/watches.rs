//! What the controllers watch besides their own kind: the children every control-plane kind owns,
//! and the CAPI `Cluster` mapped to the control plane it refers to.

use k0smotron_api::capi::Cluster;
use k0smotron_api::controlplane::v1beta2::K0smotronControlPlane;
use k0smotron_api::names;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Client, Resource, ResourceExt};
use provider_runtime::ManagerArgs;

/// The K0smotronControlPlane a CAPI Cluster refers to, if any.
pub fn control_plane_of(cluster: &Cluster) -> Option<ObjectRef<K0smotronControlPlane>> {
    let r = cluster.spec.control_plane_ref.as_ref()?;
    let kind = K0smotronControlPlane::kind(&());
    let group = K0smotronControlPlane::group(&());
    if r.kind != kind || r.api_group != group || r.name.is_empty() {
        return None;
    }
    let ns = cluster.namespace()?;
    Some(ObjectRef::new(&r.name).within(&ns))
}

/// `controller` watching the children every control-plane kind owns: StatefulSets, Services,
/// ConfigMaps, Secrets (metadata only) and CronJobs carrying the cluster-name label.
pub fn owning_children<K>(
    controller: Controller<K>,
    client: &Client,
    args: &ManagerArgs,
) -> Controller<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    // Every child carries the cluster-name label; caching only those keeps unrelated Secrets
    // and ConfigMaps out of memory.
    let children = watcher::Config::default()
        .any_semantic()
        .labels(names::CLUSTER_NAME_LABEL);
    controller
        .owns(args.api::<StatefulSet>(client.clone()), children.clone())
        .owns(args.api::<Service>(client.clone()), children.clone())
        .owns(args.api::<ConfigMap>(client.clone()), children.clone())
        // Secrets by metadata only (an `Api<PartialObjectMeta<_>>` lists and watches metadata):
        // their owner references are all the controller needs to map them to a control plane,
        // and key material has no business in a long-lived cache (the reconciler reads the few
        // Secrets it uses by name).
        .owns(
            args.api::<PartialObjectMeta<Secret>>(client.clone()),
            children.clone(),
        )
        .owns(args.api::<CronJob>(client.clone()), children)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::field_reassign_with_default
)]
mod tests {
    use super::*;
    use k0smotron_api::capi::{ClusterSpec, ContractVersionedObjectReference};

    fn cluster(kind: &str, group: &str) -> Cluster {
        let mut c = Cluster::new(
            "demo",
            ClusterSpec {
                control_plane_ref: Some(ContractVersionedObjectReference {
                    api_group: group.into(),
                    kind: kind.into(),
                    name: "demo-cp".into(),
                }),
                ..Default::default()
            },
        );
        c.metadata.namespace = Some("ns".into());
        c
    }

    #[test]
    fn clusters_map_to_their_control_plane_only() {
        let r = control_plane_of(&cluster(
            "K0smotronControlPlane",
            "controlplane.cluster.x-k8s.io",
        ));
        assert_eq!(r, Some(ObjectRef::new("demo-cp").within("ns")));
        assert_eq!(
            control_plane_of(&cluster(
                "KubeadmControlPlane",
                "controlplane.cluster.x-k8s.io"
            )),
            None
        );
        assert_eq!(
            control_plane_of(&cluster("K0smotronControlPlane", "example.com")),
            None
        );
    }
}
