//! The control-plane provider's library: everything but process start-up, so tests reach it.
//!
//! Reconciles `K0smotronControlPlane` as a pipeline: fetch → validate → build → apply → status.

pub mod build;
pub mod certs;
pub(crate) mod claims;
pub mod control_plane;
pub mod controller;
pub mod dynamic_config;
pub(crate) mod entrypoint;
pub(crate) mod etcd;
pub(crate) mod haproxy;
pub(crate) mod hash;
pub mod host_watches;
pub mod hosting;
pub mod infra;
pub(crate) mod ingress;
pub(crate) mod join_token_request;
pub(crate) mod k0s_config;
pub mod kubeconfig;
pub(crate) mod labels;
pub(crate) mod monitoring;
pub(crate) mod nats;
pub(crate) mod ownership;
pub(crate) mod packed;
pub(crate) mod patches;
pub mod quiet;
pub mod reconcile;
pub mod secret_bodies;
pub mod services;
pub(crate) mod standalone;
pub(crate) mod statefulset;
pub(crate) mod status;
pub(crate) mod stores;
pub mod v1beta1_status;
pub mod validate;
pub(crate) mod watches;
