//! The v1beta2 API of the k0smotron-rs providers: CRD types, their schemas, and every name,
//! label, annotation and finalizer the controllers use. No I/O lives here.
//!
//! - [`controlplane::v1beta2`]: `K0smotronControlPlane` and its template.
//! - [`bootstrap::v1beta2`]: `K0sWorkerConfig` and its template.
//! - [`k0smotron::v1beta2`]: the standalone `Cluster` and `JoinTokenRequest` (no Cluster API), and
//!   `ClusterSpec`, the spec every control-plane kind shares.
//! - [`capi`]: the few Cluster API core types the providers read (never installed by us).
//! - [`names`], [`conditions`]: well-known names, labels, finalizers, condition types, reasons.
//! - [`version`]: k0s version parsing and the upgrade-skew rule.
//! - [`crds`]: the CRDs we install, labelled for the CAPI contract.
//! - `v1beta1` modules and [`conversion`]: the deprecated v1beta1 form of every kind and the
//!   lossless conversion to and from v1beta2 (not served yet: the CRDs list v1beta2 only).

pub mod bootstrap;
pub mod capi;
pub mod common;
pub mod conditions;
pub mod controlplane;
pub mod conversion;
pub mod crds;
pub mod k0smotron;
pub mod names;
mod schema;
pub mod version;
pub mod yaml;
