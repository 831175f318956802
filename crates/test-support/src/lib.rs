//! Helpers for integration tests against the real API server started by `test/harness/cluster`.
//!
//! The harness is started outside the tests (`eval "$(test/harness/cluster up --workloads --capi)"`)
//! and found through the environment it prints (`KUBECONFIG`, `HARNESS_DIR`, ...). Tests that need
//! it are `#[ignore = "needs test/harness (KUBECONFIG)"]` and run with `--include-ignored`.
//!
//! - [`client`]: a [`kube::Client`] for the harness cluster.
//! - [`TestNamespace`]: a unique namespace per test, deleted when the guard drops.
//! - [`wait_for`]: wait for a condition on one object, with the last seen object on timeout.
//! - [`WorkloadServer`]: a second API server fronted by a CA the test chooses.
//! - [`https_get`]: a GET to a TLS endpoint (certificate not verified) with a bearer token;
//!   [`https_post_mtls`]: a POST with a verified server and a client certificate.
//! - [`secret_needles`] / [`find_leaks`]: key material of Secrets, searched for in logs,
//!   conditions and events.
//! - [`apply_crd_file`] / [`apply_crd_dir`]: install CRDs and wait until they are served.
//! - [`Tripwire`]: a loopback port that records whether anything connected to it.
//! - [`upstream_fixture`]: a control plane's objects as upstream k0smotron v2 leaves them.

mod client;
mod crd;
mod harness;
mod https;
mod leaks;
mod namespace;
mod tripwire;
mod upstream_fixture;
mod wait;
mod workload;

pub use client::{ClientError, client, client_from_kubeconfig_file, client_from_kubeconfig_yaml};
pub use crd::{CrdError, apply_crd_dir, apply_crd_file};
pub use harness::{HarnessError, env_path, harness_script, run_harness};
pub use https::{ClientIdentity, HttpResponse, https_get, https_post_mtls};
pub use leaks::{find_leaks, secret_needles};
pub use namespace::{NamespaceError, TestNamespace, unique_name};
pub use tripwire::Tripwire;
pub use upstream_fixture::{
    FixtureError, UpstreamObject, UpstreamWrite, upstream_fixture, upstream_fixture_path,
};
pub use wait::{WaitError, wait_for};
pub use workload::{WorkloadError, WorkloadServer, free_port};
