//! The controlplane provider's library: everything but process start-up, so tests reach it.
