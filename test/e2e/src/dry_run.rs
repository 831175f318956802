//! Server-side apply of arbitrary objects (rendered templates, release manifests), dry-run or
//! stored: the API server validates each against its schema (OpenAPI, CEL, defaults). Objects
//! whose kind the server does not serve are reported, not applied, so the caller can say exactly
//! what went unvalidated.

use kube::api::{DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{Discovery, Scope};
use kube::{Api, Client};
use serde_json::Value;

use crate::yaml;

/// The field manager of dry-run applies.
const FIELD_MANAGER: &str = "e2e-dry-run";
/// The field manager of stored applies (what a user's `kubectl apply --server-side` would be).
const INSTALL_FIELD_MANAGER: &str = "e2e-install";

/// Discovery failed, or an object could not be interpreted.
#[derive(Debug, thiserror::Error)]
pub enum DryRunError {
    /// API discovery failed.
    #[error("API discovery")]
    Discovery(#[source] kube::Error),
    /// An object has no usable apiVersion/kind/name.
    #[error("object without apiVersion, kind or name: {0}")]
    Malformed(String),
}

/// What a dry run found.
#[derive(Debug, Default)]
pub struct DryRunReport {
    /// `Kind/name` of objects the server accepted.
    pub accepted: Vec<String>,
    /// `Kind/name: error` of objects the server rejected.
    pub rejected: Vec<String>,
    /// `apiVersion Kind/name` of objects whose kind the server does not serve.
    pub unknown_kind: Vec<String>,
}

/// Dry-run apply every object (namespaced ones into their own `metadata.namespace`, which must
/// exist).
pub async fn apply(client: &Client, objects: &[Value]) -> Result<DryRunReport, DryRunError> {
    apply_with(
        client,
        objects,
        &PatchParams::apply(FIELD_MANAGER).dry_run().force(),
    )
    .await
}

/// Apply and store every object, in order, without forcing conflicts (another manager's
/// different value is a rejection): an install as `kubectl apply --server-side` makes it.
/// Discovery runs once first, so the objects may not include custom resources of CRDs they
/// install.
pub async fn apply_stored(client: &Client, objects: &[Value]) -> Result<DryRunReport, DryRunError> {
    apply_with(client, objects, &PatchParams::apply(INSTALL_FIELD_MANAGER)).await
}

/// [`apply_stored`], taking over fields other managers set to other values: an install over an
/// earlier one, as `kubectl apply --server-side --force-conflicts` makes it.
pub async fn apply_stored_forced(
    client: &Client,
    objects: &[Value],
) -> Result<DryRunReport, DryRunError> {
    apply_with(
        client,
        objects,
        &PatchParams::apply(INSTALL_FIELD_MANAGER).force(),
    )
    .await
}

async fn apply_with(
    client: &Client,
    objects: &[Value],
    params: &PatchParams,
) -> Result<DryRunReport, DryRunError> {
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .map_err(DryRunError::Discovery)?;
    let mut report = DryRunReport::default();
    for obj in objects {
        let api_version = obj["apiVersion"].as_str().unwrap_or_default();
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let kind = yaml::kind(obj);
        let name = yaml::name(obj);
        if version.is_empty() || kind.is_empty() || name.is_empty() {
            return Err(DryRunError::Malformed(obj.to_string()));
        }
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let Some((resource, capabilities)) = discovery.resolve_gvk(&gvk) else {
            report
                .unknown_kind
                .push(format!("{api_version} {}", yaml::describe(obj)));
            continue;
        };
        let api: Api<DynamicObject> = match (capabilities.scope, yaml::namespace(obj)) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &resource),
            (Scope::Namespaced, None) => Api::default_namespaced_with(client.clone(), &resource),
            (Scope::Cluster, _) => Api::all_with(client.clone(), &resource),
        };
        match api.patch(name, params, &Patch::Apply(obj)).await {
            Ok(_) => report.accepted.push(yaml::describe(obj)),
            Err(e) => report
                .rejected
                .push(format!("{}: {e}", yaml::describe(obj))),
        }
    }
    Ok(report)
}
