//! `bootstrap.cluster.x-k8s.io`: the bootstrap provider's API.

pub mod v1beta1;
pub mod v1beta2;
