//! `k0smotron.io`: `Cluster` and `JoinTokenRequest`, and the control-plane spec both
//! `Cluster` and `K0smotronControlPlane` use.

use std::collections::BTreeMap;

use super::{
    ConversionError, Versions, annotation_error, read_field_annotation, write_field_annotation,
};
use crate::k0smotron::{v1beta1, v1beta2};
use crate::names;

/// Annotation on the v1beta2 object keeping the v1beta1 `spec.service.labels` (JSON).
pub const SERVICE_LABELS_ANNOTATION: &str = "k0smotron.io/conversion-dropped-service.labels";
/// Annotation keeping the v1beta1 `spec.service.annotations` (JSON).
pub const SERVICE_ANNOTATIONS_ANNOTATION: &str =
    "k0smotron.io/conversion-dropped-service.annotations";
/// Annotation keeping the v1beta1 `spec.service.externalTrafficPolicy` (JSON string).
pub const SERVICE_EXTERNAL_TRAFFIC_POLICY_ANNOTATION: &str =
    "k0smotron.io/conversion-dropped-service.externalTrafficPolicy";
/// Annotation keeping the v1beta1 `spec.service.loadBalancerClass` (JSON string).
pub const SERVICE_LOAD_BALANCER_CLASS_ANNOTATION: &str =
    "k0smotron.io/conversion-dropped-service.loadBalancerClass";
/// Annotation on a v1beta2 `JoinTokenRequest` keeping the v1beta1 `spec.clusterRef.namespace`
/// (plain text).
pub const CLUSTER_REF_NAMESPACE_ANNOTATION: &str = "k0smotron.io/cluster-ref-namespace";

type Annotations = Option<BTreeMap<String, String>>;

// ---------------------------------------------------------------------------------------------
// The control-plane spec
// ---------------------------------------------------------------------------------------------

/// v1beta2 → v1beta1 spec; the Service's v1beta1-only fields come from (and, when they encode
/// back identically, leave) the object's annotations.
pub(crate) fn cluster_spec_to_spoke(
    hub: v1beta2::ClusterSpec,
    annotations: &mut Annotations,
) -> v1beta1::ClusterSpec {
    let v1beta2::ClusterSpec {
        remote_host_cluster,
        replicas,
        image,
        service_account,
        version,
        external_address,
        ingress,
        service,
        persistence,
        storage,
        k0s_config,
        certificate_refs,
        manifests,
        mounts,
        control_plane_flags,
        monitoring,
        topology_spread_constraints,
        resources,
        kubeconfig_secret_metadata,
        // No v1beta1 field (upstream drops them): carried by the conversion-data annotation.
        patches: _,
    } = hub;
    // Upstream copies the kine fields only for kine storage, and an empty one is no field (Go's
    // omitempty); NATS has no v1beta1 form.
    let non_empty = |value: Option<String>| value.filter(|v| !v.is_empty());
    let (kine_data_source_url, kine_data_source_secret_name) = match storage.type_ {
        v1beta2::StorageType::Kine => storage
            .kine
            .map(|kine| {
                (
                    non_empty(kine.data_source_url),
                    non_empty(kine.data_source_secret_name),
                )
            })
            .unwrap_or_default(),
        v1beta2::StorageType::Etcd | v1beta2::StorageType::Nats => (None, None),
    };
    v1beta1::ClusterSpec {
        kubeconfig_ref: remote_host_cluster.and_then(|remote| remote.kubeconfig_ref),
        replicas,
        image,
        service_account,
        version: Some(version),
        external_address,
        ingress,
        service: v1beta1::ServiceSpec {
            type_: service.type_,
            api_port: service.api_port,
            konnectivity_port: service.konnectivity_port,
            annotations: read_field_annotation(annotations, SERVICE_ANNOTATIONS_ANNOTATION),
            labels: read_field_annotation(annotations, SERVICE_LABELS_ANNOTATION),
            load_balancer_class: read_field_annotation(
                annotations,
                SERVICE_LOAD_BALANCER_CLASS_ANNOTATION,
            ),
            external_traffic_policy: read_field_annotation(
                annotations,
                SERVICE_EXTERNAL_TRAFFIC_POLICY_ANNOTATION,
            ),
        },
        persistence,
        kine_data_source_url,
        kine_data_source_secret_name,
        k0s_config,
        certificate_refs,
        manifests,
        mounts,
        control_plane_flags,
        monitoring,
        etcd: storage.etcd,
        topology_spread_constraints,
        resources,
        kubeconfig_secret_metadata,
    }
}

/// v1beta1 → v1beta2 spec; the Service's v1beta1-only fields go to the object's annotations.
pub(crate) fn cluster_spec_to_hub(
    spoke: v1beta1::ClusterSpec,
    annotations: &mut Annotations,
) -> Result<v1beta2::ClusterSpec, serde_json::Error> {
    let v1beta1::ClusterSpec {
        kubeconfig_ref,
        replicas,
        image,
        service_account,
        version,
        external_address,
        ingress,
        service,
        persistence,
        kine_data_source_url,
        kine_data_source_secret_name,
        k0s_config,
        certificate_refs,
        manifests,
        mounts,
        control_plane_flags,
        monitoring,
        etcd,
        topology_spread_constraints,
        resources,
        kubeconfig_secret_metadata,
    } = spoke;
    write_field_annotation(
        annotations,
        SERVICE_LABELS_ANNOTATION,
        service.labels.as_ref(),
    )?;
    write_field_annotation(
        annotations,
        SERVICE_ANNOTATIONS_ANNOTATION,
        service.annotations.as_ref(),
    )?;
    write_field_annotation(
        annotations,
        SERVICE_EXTERNAL_TRAFFIC_POLICY_ANNOTATION,
        service.external_traffic_policy.as_ref(),
    )?;
    write_field_annotation(
        annotations,
        SERVICE_LOAD_BALANCER_CLASS_ANNOTATION,
        service.load_balancer_class.as_ref(),
    )?;
    // As upstream: a non-empty kine field means kine storage, anything else etcd.
    let non_empty = |value: &Option<String>| value.as_deref().is_some_and(|v| !v.is_empty());
    let storage = if non_empty(&kine_data_source_url) || non_empty(&kine_data_source_secret_name) {
        v1beta2::StorageSpec {
            type_: v1beta2::StorageType::Kine,
            kine: Some(v1beta2::KineSpec {
                data_source_url: kine_data_source_url,
                data_source_secret_name: kine_data_source_secret_name,
            }),
            etcd,
            nats: None,
        }
    } else {
        v1beta2::StorageSpec {
            type_: v1beta2::StorageType::Etcd,
            kine: None,
            etcd,
            nats: None,
        }
    };
    Ok(v1beta2::ClusterSpec {
        remote_host_cluster: kubeconfig_ref.map(|kubeconfig_ref| v1beta2::RemoteHostClusterSpec {
            kubeconfig_ref: Some(kubeconfig_ref),
        }),
        replicas,
        image,
        service_account,
        // An empty v1beta1 version means "pick one" (upstream's webhook then defaults it); the
        // v1beta2 schema's default is ours.
        version: version
            .filter(|version| !version.is_empty())
            .unwrap_or_else(|| names::DEFAULT_K0S_VERSION.to_owned()),
        external_address,
        ingress,
        service: v1beta2::ServiceSpec {
            type_: service.type_,
            api_port: service.api_port,
            konnectivity_port: service.konnectivity_port,
        },
        persistence,
        storage,
        k0s_config,
        certificate_refs,
        manifests,
        mounts,
        control_plane_flags,
        monitoring,
        topology_spread_constraints,
        resources,
        kubeconfig_secret_metadata,
        patches: Vec::new(),
    })
}

// ---------------------------------------------------------------------------------------------
// Cluster
// ---------------------------------------------------------------------------------------------

pub(crate) struct ClusterVersions;

impl Versions for ClusterVersions {
    const KIND: &'static str = "Cluster";
    type Hub = v1beta2::Cluster;
    type Spoke = v1beta1::Cluster;

    fn to_spoke(hub: v1beta2::Cluster) -> Result<v1beta1::Cluster, ConversionError> {
        let mut metadata = hub.metadata;
        let spec = cluster_spec_to_spoke(hub.spec, &mut metadata.annotations);
        let status = match hub.status {
            None => None,
            Some(status) => {
                let deprecated = status
                    .deprecated
                    .and_then(|d| d.v1beta1)
                    .unwrap_or_default();
                // Upstream maps only the deprecated fields; the scale subresource of v1beta1
                // reads `replicas` and `selector`, so they are mapped too.
                Some(v1beta1::ClusterStatus {
                    reconciliation_status: deprecated.reconciliation_status,
                    ready: deprecated.ready,
                    replicas: status.replicas.unwrap_or_default(),
                    selector: status.selector,
                })
            }
        };
        Ok(v1beta1::Cluster {
            metadata,
            spec,
            status,
        })
    }

    fn to_hub(spoke: v1beta1::Cluster) -> Result<v1beta2::Cluster, ConversionError> {
        let mut metadata = spoke.metadata;
        let spec = cluster_spec_to_hub(spoke.spec, &mut metadata.annotations)
            .map_err(|e| annotation_error(Self::KIND, e))?;
        let status = spoke.status.map(|status| v1beta2::ClusterStatus {
            replicas: (status.replicas != 0).then_some(status.replicas),
            selector: status.selector,
            deprecated: Some(v1beta2::ClusterDeprecatedStatus {
                v1beta1: Some(v1beta2::ClusterV1beta1Status {
                    reconciliation_status: status.reconciliation_status,
                    ready: status.ready,
                }),
            }),
            ..v1beta2::ClusterStatus::default()
        });
        Ok(v1beta2::Cluster {
            metadata,
            spec,
            status,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// JoinTokenRequest
// ---------------------------------------------------------------------------------------------

pub(crate) struct JoinTokenRequestVersions;

impl Versions for JoinTokenRequestVersions {
    const KIND: &'static str = "JoinTokenRequest";
    type Hub = v1beta2::JoinTokenRequest;
    type Spoke = v1beta1::JoinTokenRequest;

    fn to_spoke(
        hub: v1beta2::JoinTokenRequest,
    ) -> Result<v1beta1::JoinTokenRequest, ConversionError> {
        let mut metadata = hub.metadata;
        // The namespace moves into the field; an empty one stays an annotation (an empty
        // namespace field reads as "none").
        let namespace = match metadata.annotations.as_mut() {
            Some(map) => match map.get(CLUSTER_REF_NAMESPACE_ANNOTATION) {
                Some(namespace) if !namespace.is_empty() => {
                    map.remove(CLUSTER_REF_NAMESPACE_ANNOTATION)
                }
                _ => None,
            },
            None => None,
        };
        if metadata
            .annotations
            .as_ref()
            .is_some_and(BTreeMap::is_empty)
        {
            metadata.annotations = None;
        }
        let spec = v1beta1::JoinTokenRequestSpec {
            cluster_ref: v1beta1::ClusterRef {
                name: hub.spec.cluster_name,
                namespace: namespace.unwrap_or_default(),
            },
            expiry: hub.spec.expiry,
            role: hub.spec.role,
        };
        // Conditions and observedGeneration have no v1beta1 field (upstream drops them).
        let status = hub.status.map(|status| {
            let deprecated = status
                .deprecated
                .and_then(|d| d.v1beta1)
                .unwrap_or_default();
            v1beta1::JoinTokenRequestStatus {
                reconciliation_status: deprecated.reconciliation_status,
                token_id: status.token_id,
                cluster_uid: deprecated.cluster_uid,
            }
        });
        Ok(v1beta1::JoinTokenRequest {
            metadata,
            spec,
            status,
        })
    }

    fn to_hub(
        spoke: v1beta1::JoinTokenRequest,
    ) -> Result<v1beta2::JoinTokenRequest, ConversionError> {
        let mut metadata = spoke.metadata;
        let v1beta1::ClusterRef { name, namespace } = spoke.spec.cluster_ref;
        if !namespace.is_empty() {
            metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(CLUSTER_REF_NAMESPACE_ANNOTATION.to_owned(), namespace);
        }
        let spec = v1beta2::JoinTokenRequestSpec {
            cluster_name: name,
            expiry: spoke.spec.expiry,
            role: spoke.spec.role,
        };
        let status = spoke.status.map(|status| v1beta2::JoinTokenRequestStatus {
            token_id: status.token_id,
            deprecated: Some(v1beta2::JoinTokenRequestDeprecatedStatus {
                v1beta1: Some(v1beta2::JoinTokenRequestV1beta1Status {
                    reconciliation_status: status.reconciliation_status,
                    cluster_uid: status.cluster_uid,
                }),
            }),
            ..v1beta2::JoinTokenRequestStatus::default()
        });
        Ok(v1beta2::JoinTokenRequest {
            metadata,
            spec,
            status,
        })
    }
}
