//! The CRDs the providers install, as `CustomResourceDefinition` objects: the input of
//! `cargo xtask crd` and of the CRD tests. CAPI core's own kinds (see [`crate::capi`]) are not
//! among them.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::{bootstrap::v1beta2 as bootstrap, controlplane::v1beta2 as controlplane};

/// Every CRD of the control-plane provider.
pub fn controlplane() -> Vec<CustomResourceDefinition> {
    vec![
        controlplane::K0smotronControlPlane::crd(),
        controlplane::K0smotronControlPlaneTemplate::crd(),
    ]
}

/// Every CRD of the bootstrap provider.
pub fn bootstrap() -> Vec<CustomResourceDefinition> {
    vec![
        bootstrap::K0sWorkerConfig::crd(),
        bootstrap::K0sWorkerConfigTemplate::crd(),
    ]
}

/// Every CRD we install, control plane first.
pub fn all() -> Vec<CustomResourceDefinition> {
    let mut crds = controlplane();
    crds.extend(bootstrap());
    crds
}

/// The file name `cargo xtask crd` writes a CRD to: `<plural>.<group>.yaml` (the CRD's name).
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.{}.yaml", crd.spec.names.plural, crd.spec.group)
}
