//! `k0smotron.io`: the standalone API (no Cluster API needed), and the control-plane spec every
//! kind shares.

pub mod v1beta1;
pub mod v1beta2;
