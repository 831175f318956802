//! Labels and selectors of generated objects, as upstream k0smotron sets them, so objects made by
//! either provider select the same pods.
//!
//! Deliberately narrower than upstream: upstream copies every label of its intermediate object and
//! `kubeconfigSecretMetadata.labels` into every object and into the immutable StatefulSet selector
//! (observed bug: changing them later breaks the StatefulSet). We use only the fixed base set, which
//! equals upstream's selector for a control plane without `kubeconfigSecretMetadata` labels.

use std::collections::BTreeMap;

use k0smotron_api::names;

/// Base labels: `app=k0smotron`, `cluster=<name>`, `cluster.x-k8s.io/cluster-name=<name>`,
/// `component=<component>` (`cluster` for k0s objects, `etcd` for etcd objects).
pub fn base(cluster: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            names::APP_LABEL.to_string(),
            names::APP_LABEL_VALUE.to_string(),
        ),
        (names::CLUSTER_LABEL.to_string(), cluster.to_string()),
        (names::CLUSTER_NAME_LABEL.to_string(), cluster.to_string()),
        (names::COMPONENT_LABEL.to_string(), component.to_string()),
    ])
}

/// Selector of the k0s controller pods (StatefulSet `kmc-<name>`): base labels plus
/// `cluster.x-k8s.io/control-plane=true`.
pub fn control_plane_selector(cluster: &str) -> BTreeMap<String, String> {
    let mut l = base(cluster, names::COMPONENT_CLUSTER);
    l.insert(names::CONTROL_PLANE_LABEL.to_string(), "true".to_string());
    l
}

/// Selector of the exposure Services: the base labels (upstream leaves out the control-plane
/// label here).
pub fn service_selector(cluster: &str) -> BTreeMap<String, String> {
    base(cluster, names::COMPONENT_CLUSTER)
}

/// Selector of the etcd pods (StatefulSet `kmc-<name>-etcd`).
pub fn etcd_selector(cluster: &str) -> BTreeMap<String, String> {
    base(cluster, names::COMPONENT_ETCD)
}

/// `labels` plus `app.kubernetes.io/component=<component>` (metadata only: selectors are immutable,
/// and `spec.patches` target this label).
pub fn with_component(
    mut labels: BTreeMap<String, String>,
    component: &str,
) -> BTreeMap<String, String> {
    labels.insert(
        names::APP_COMPONENT_LABEL.to_string(),
        component.to_string(),
    );
    labels
}

/// The string form of a `matchLabels` selector (`k=v,k=v`, sorted), as `status.selector` carries it
/// for the scale subresource.
pub fn selector_string(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Labels of the CAPI certificate and kubeconfig Secrets: `cluster.x-k8s.io/cluster-name`.
pub fn capi_secret(cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(names::CLUSTER_NAME_LABEL.to_string(), cluster.to_string())])
}

/// Metadata of a child of the control plane: `name` in `namespace`, the labels of `selector` with
/// the component label `component`, and `owner` as its controller.
pub fn child_metadata(
    name: String,
    namespace: &str,
    selector: BTreeMap<String, String>,
    component: &str,
    owner: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        name: Some(name),
        namespace: Some(namespace.to_string()),
        labels: Some(with_component(selector, component)),
        owner_references: Some(vec![owner.clone()]),
        ..Default::default()
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::field_reassign_with_default
)]
mod tests {
    use super::*;

    #[test]
    fn selector_matches_upstream_capi_mode() {
        assert_eq!(
            selector_string(&control_plane_selector("demo")),
            "app=k0smotron,cluster=demo,cluster.x-k8s.io/cluster-name=demo,\
             cluster.x-k8s.io/control-plane=true,component=cluster"
        );
        assert_eq!(
            selector_string(&etcd_selector("demo")),
            "app=k0smotron,cluster=demo,cluster.x-k8s.io/cluster-name=demo,component=etcd"
        );
        // Services select without the control-plane label.
        assert!(!service_selector("demo").contains_key(names::CONTROL_PLANE_LABEL));
    }
}
