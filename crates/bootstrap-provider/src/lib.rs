//! The bootstrap provider's library: everything but process start-up, so tests reach it.
//!
//! Pipeline of one reconcile: fetch (config, owner Machine, Cluster, CA, `contentFrom` objects,
//! workload client) → [`validate`] (pure) → [`render`] (pure) → apply (workload token Secret,
//! data Secret) → status. Pure building blocks: [`shell`], [`cloudinit`], [`commands`],
//! [`token`], [`join_token`].

pub mod cloudinit;
pub mod commands;
pub mod controller;
pub mod data_secret;
pub mod join_token;
pub mod offline;
pub mod render;
pub mod shell;
pub mod token;
pub mod validate;
pub mod workload;

pub use k0smotron_api::conditions::{
    CONTENT_FROM_NOT_FOUND_REASON, WAITING_FOR_CONTROL_PLANE_INITIALIZATION_REASON,
};
