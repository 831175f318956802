//! The control-plane provider's library: everything but process start-up, so tests reach it.
//!
//! Reconciles `K0smotronControlPlane` as a pipeline: fetch → validate → build → apply → status.

pub mod certs;
pub mod k0s_config;
pub mod kubeconfig;
pub mod patches;
