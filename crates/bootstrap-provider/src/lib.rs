//! The bootstrap provider's library: everything but process start-up, so tests reach it.

pub mod cloudinit;
pub mod join_token;
pub mod shell;
pub mod token;
