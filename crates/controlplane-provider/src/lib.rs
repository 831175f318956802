//! The control-plane provider's library: everything but process start-up, so tests reach it.
//!
//! Reconciles `K0smotronControlPlane` as a pipeline: fetch → validate → build → apply → status.

pub mod build;
pub mod certs;
pub mod claims;
pub mod control_plane;
pub mod controller;
pub mod entrypoint;
pub mod etcd;
pub mod hash;
pub mod infra;
pub mod join_token_request;
pub mod k0s_config;
pub mod kubeconfig;
pub mod labels;
pub(crate) mod ownership;
pub mod patches;
pub mod reconcile;
pub mod services;
pub mod standalone;
pub mod statefulset;
pub mod status;
pub mod validate;
pub mod watches;
