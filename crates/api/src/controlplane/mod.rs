//! `controlplane.cluster.x-k8s.io`: the control-plane provider's API.

pub mod v1beta1;
pub mod v1beta2;
