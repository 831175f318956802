//! End-to-end tests of both providers as users run them: packaged for clusterctl, next to the
//! real CAPI core manager, on the API servers of `test/harness`. This library holds what the tests
//! (in `tests/`) and the local run (`hack/demo.sh`, through the `fake-infra-provider` binary)
//! share; it never starts the harness itself (`eval "$(test/harness/cluster up --workloads
//! --capi)"` does, and exports the paths read by [`tools`]).
//!
//! - [`tools`]: where the harness's binaries, CRDs and our provider binaries are.
//! - [`command`]: running a program and capturing its output.
//! - [`scratch`]: temporary directories that clean up after themselves.
//! - [`yaml`]: multi-document YAML as JSON values.
//! - [`release`]: `hack/release-manifests.sh` output and a clusterctl configuration for it.
//! - [`process`]: long-running processes (CAPI core, our providers) with logs and readiness.
//! - [`chaos`]: seeded kill points and the normalized digest the fault tests compare.
//! - [`capi`]: the CAPI core manager, run out of cluster.
//! - [`providers`]: our two provider managers, run as the binaries users deploy.
//! - [`infra`]: a minimal infrastructure provider stand-in (`TestCluster`, `TestMachine`).
//! - [`pki`]: a cluster CA in CAPI's Secret format.
//! - [`dry_run`]: server-side dry-run apply of arbitrary objects.
//! - [`objects`]: dynamic APIs, apply, conditions, polling, join tokens, `whoami`.
//! - [`node`]: the harness's real node (`cluster up --real-node`): its name, address, containers.

pub mod capi;
pub mod chaos;
pub mod command;
pub mod dry_run;
pub mod infra;
pub mod node;
pub mod objects;
pub mod pki;
pub mod process;
pub mod providers;
pub mod release;
pub mod scratch;
pub mod tools;
pub mod yaml;
