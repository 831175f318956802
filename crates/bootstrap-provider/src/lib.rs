//! The bootstrap provider's library: everything but process start-up, so tests reach it.
//!
//! Pipeline of one reconcile: fetch (config, owner Machine, Cluster, CA, `contentFrom` objects,
//! workload client) → [`validate`] (pure) → [`render`] (pure) → apply (workload token Secret,
//! data Secret) → status. Pure building blocks: [`shell`], [`cloudinit`], [`commands`],
//! [`powershell`], [`windows`],
//! [`token`], [`join_token`].

/// Bootstrap tokens and k0s join tokens live in `provider-runtime`, shared with the
/// control-plane provider's `JoinTokenRequest`.
pub use provider_runtime::{join_token, token};

pub mod cloudinit;
pub mod commands;
pub mod controller;
pub mod data_secret;
pub mod features;
pub mod haproxy;
pub mod ignition;
pub mod jinja;
pub mod offline;
pub mod powershell;
pub mod render;
pub mod shell;
pub mod validate;
pub mod windows;
pub(crate) mod workload;
