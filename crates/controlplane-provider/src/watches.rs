//! What wakes the controllers besides their own kind: the children every control-plane kind owns,
//! their pods, and the CAPI `Cluster` mapped to the control plane it refers to.

use futures::StreamExt;
use k0smotron_api::capi::Cluster;
use k0smotron_api::controlplane::v1beta2::K0smotronControlPlane;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use provider_runtime::ManagerArgs;
use provider_runtime::reconcile::meta_changed;

use crate::stores::{self, Triggers};

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

/// A controller of `K` in the manager's scope, woken by changes of its objects that are not
/// their status or finalizers ([`meta_changed`]): each reconcile writes status, and that write
/// would otherwise wake the object once more for nothing.
pub fn controller_of<K>(client: &Client, args: &ManagerArgs) -> Controller<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let objects = watcher(args.api::<K>(client.clone()), args.watcher_config())
        .default_backoff()
        .modify(stores::trim_control_plane)
        .reflect(writer)
        .applied_objects()
        .predicate_filter(meta_changed, Default::default());
    Controller::for_stream(objects, reader)
}

/// `controller` woken by the children every control-plane kind owns (StatefulSets, Services,
/// ConfigMaps, Secrets and Ingresses by metadata, CronJobs, all carrying the cluster-name label) and by its
/// control-plane pods, through the StatefulSet that owns them (`statefulsets`). The triggers come
/// from the shared watches of [`crate::stores`].
pub fn owning_children<K>(
    controller: Controller<K>,
    triggers: Triggers,
    statefulsets: stores::Kept<StatefulSet>,
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
    let pods = triggers
        .pods
        .map(Ok)
        .predicate_filter(stores::pod_state, Default::default());
    controller
        .owns_stream(triggers.statefulsets.map(Ok))
        .owns_stream(triggers.services.map(Ok))
        .owns_stream(triggers.config_maps.map(Ok))
        .owns_stream(triggers.secrets.map(Ok))
        .owns_stream(triggers.cron_jobs.map(Ok))
        .owns_stream(triggers.ingresses.map(Ok))
        .watches_stream(pods, move |pod| {
            stores::control_plane_of_pod::<K>(&statefulsets, &pod)
        })
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
