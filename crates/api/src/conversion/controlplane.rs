//! `controlplane.cluster.x-k8s.io`: `K0smotronControlPlane` and its template.

use super::standalone::{cluster_spec_to_hub, cluster_spec_to_spoke};
use super::{ConversionError, Versions, annotation_error};
use crate::controlplane::{v1beta1, v1beta2};

pub(crate) struct ControlPlaneVersions;

impl Versions for ControlPlaneVersions {
    const KIND: &'static str = "K0smotronControlPlane";
    type Hub = v1beta2::K0smotronControlPlane;
    type Spoke = v1beta1::K0smotronControlPlane;

    fn to_spoke(
        hub: v1beta2::K0smotronControlPlane,
    ) -> Result<v1beta1::K0smotronControlPlane, ConversionError> {
        let mut metadata = hub.metadata;
        // `controlPlaneEndpoint` has no v1beta1 field: the conversion-data annotation carries it.
        let cluster = cluster_spec_to_spoke(hub.spec.cluster, &mut metadata.annotations);
        Ok(v1beta1::K0smotronControlPlane {
            metadata,
            spec: v1beta1::K0smotronControlPlaneSpec { cluster },
            status: hub.status.map(status_to_spoke),
        })
    }

    fn to_hub(
        spoke: v1beta1::K0smotronControlPlane,
    ) -> Result<v1beta2::K0smotronControlPlane, ConversionError> {
        let mut metadata = spoke.metadata;
        let cluster = cluster_spec_to_hub(spoke.spec.cluster, &mut metadata.annotations)
            .map_err(|e| annotation_error(Self::KIND, e))?;
        Ok(v1beta2::K0smotronControlPlane {
            metadata,
            spec: v1beta2::K0smotronControlPlaneSpec {
                cluster,
                control_plane_endpoint: None,
            },
            status: spoke.status.map(status_to_hub),
        })
    }
}

/// Upstream's mapping onto the CAPI v1beta1 contract: `ready` means some replica is ready,
/// `updatedReplicas` is `upToDateReplicas`, `unavailableReplicas` is `replicas -
/// availableReplicas`. `versions`, `observedGeneration`, `externalAddress`, `certificateRefs`
/// and `dynamicConfigHash` have no v1beta1 field.
fn status_to_spoke(
    status: v1beta2::K0smotronControlPlaneStatus,
) -> v1beta1::K0smotronControlPlaneStatus {
    let initialized = status
        .initialization
        .as_ref()
        .and_then(|init| init.control_plane_initialized)
        .unwrap_or(false);
    let replicas = status.replicas.unwrap_or(0);
    let ready_replicas = status.ready_replicas.unwrap_or(0);
    v1beta1::K0smotronControlPlaneStatus {
        ready: ready_replicas > 0,
        initialized,
        initialization: Some(v1beta1::Initialization {
            control_plane_initialized: initialized,
        }),
        external_managed_control_plane: status.external_managed_control_plane.unwrap_or(false),
        version: status.version.unwrap_or_default(),
        replicas,
        updated_replicas: status.up_to_date_replicas.unwrap_or(0),
        ready_replicas,
        // Saturating: status counts are small, but nothing bounds what a client writes.
        unavailable_replicas: replicas.saturating_sub(status.available_replicas.unwrap_or(0)),
        selector: status.selector,
        conditions: status.conditions,
    }
}

/// The reverse of [`status_to_spoke`], as upstream: `initialized` (not
/// `initialization.controlPlaneInitialized`) gives v1beta2's `controlPlaneInitialized`, and
/// `ready` is not kept (v1beta2 derives it from `readyReplicas`).
fn status_to_hub(
    status: v1beta1::K0smotronControlPlaneStatus,
) -> v1beta2::K0smotronControlPlaneStatus {
    v1beta2::K0smotronControlPlaneStatus {
        initialization: Some(v1beta2::ControlPlaneInitialization {
            control_plane_initialized: Some(status.initialized),
        }),
        external_managed_control_plane: Some(status.external_managed_control_plane),
        version: Some(status.version).filter(|version| !version.is_empty()),
        replicas: Some(status.replicas),
        ready_replicas: Some(status.ready_replicas),
        available_replicas: Some(status.replicas.saturating_sub(status.unavailable_replicas)),
        up_to_date_replicas: Some(status.updated_replicas),
        selector: status.selector,
        conditions: status.conditions,
        ..v1beta2::K0smotronControlPlaneStatus::default()
    }
}

pub(crate) struct ControlPlaneTemplateVersions;

impl Versions for ControlPlaneTemplateVersions {
    const KIND: &'static str = "K0smotronControlPlaneTemplate";
    type Hub = v1beta2::K0smotronControlPlaneTemplate;
    type Spoke = v1beta1::K0smotronControlPlaneTemplate;

    /// The Service annotations live on the template object itself, as upstream keeps them.
    fn to_spoke(
        hub: v1beta2::K0smotronControlPlaneTemplate,
    ) -> Result<v1beta1::K0smotronControlPlaneTemplate, ConversionError> {
        let mut metadata = hub.metadata;
        let template = hub.spec.template;
        let spec = cluster_spec_to_spoke(template.spec.cluster, &mut metadata.annotations);
        Ok(v1beta1::K0smotronControlPlaneTemplate {
            metadata,
            spec: v1beta1::K0smotronControlPlaneTemplateSpec {
                template: v1beta1::K0smotronControlPlaneTemplateResource {
                    metadata: template.metadata,
                    spec,
                },
            },
        })
    }

    fn to_hub(
        spoke: v1beta1::K0smotronControlPlaneTemplate,
    ) -> Result<v1beta2::K0smotronControlPlaneTemplate, ConversionError> {
        let mut metadata = spoke.metadata;
        let template = spoke.spec.template;
        let cluster = cluster_spec_to_hub(template.spec, &mut metadata.annotations)
            .map_err(|e| annotation_error(Self::KIND, e))?;
        Ok(v1beta2::K0smotronControlPlaneTemplate {
            metadata,
            spec: v1beta2::K0smotronControlPlaneTemplateSpec {
                template: v1beta2::K0smotronControlPlaneTemplateResource {
                    metadata: template.metadata,
                    spec: v1beta2::K0smotronControlPlaneSpec {
                        cluster,
                        control_plane_endpoint: None,
                    },
                },
            },
        })
    }
}
