//! Dynamic config: the cluster-wide part of the k0s config, pushed into the hosted cluster's
//! `clusterconfigs.k0s.k0sproject.io` `kube-system/k0s`, where k0s (started with
//! `--enable-dynamic-config`) reads it and acts on every change without a restart.
//!
//! Owns when to push ([`plan`], pure) and the push itself ([`push`]): one server-side apply under
//! [`DYNAMIC_CONFIG_MANAGER`] through the client the caller built from the kubeconfig this
//! provider wrote. It does not build the config (`build`, `k0s_config`) and does not write status
//! (`status` reports the [`Outcome`]).

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::Value;
use tracing::debug;

use crate::build::DynamicConfig;
use crate::k0s_config::{self, DYNAMIC_CONFIG_NAME, DYNAMIC_CONFIG_NAMESPACE};

/// Field manager of the pushed `ClusterConfig` in the hosted cluster.
pub const DYNAMIC_CONFIG_MANAGER: &str = "k0smotron-controlplane-dynamic-config";
/// Field manager under which k0s creates `kube-system/k0s` on its first start (a plain create
/// by its client, so an `Update` entry; seen on the real node with k0s v1.35.4).
pub const K0S_MANAGER: &str = "k0s";

/// What became of the dynamic config in one reconcile; the status step reports it in the
/// `DynamicConfigApplied` condition and `status.dynamicConfigHash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing was tried (the hosted API did not answer this time, or the reconcile stopped
    /// earlier): the condition and the recorded hash stay as they are.
    NotRun,
    /// The hosted API has never answered: there is nothing to push to yet.
    NotInitialized,
    /// The hosted cluster already holds this hash (recorded in status): nothing was sent.
    Unchanged {
        /// The hash.
        hash: String,
    },
    /// The hosted API server accepted the config with this hash.
    Accepted {
        /// The hash, recorded in status.
        hash: String,
    },
    /// The hosted API server refused it (a 4xx answer): the user's to fix.
    Rejected {
        /// The refused config's hash.
        hash: String,
        /// The API server's message.
        message: String,
    },
    /// k0s has not installed its `ClusterConfig` CRD in the hosted cluster yet.
    WaitingForCrd(String),
    /// The push failed on the way (connection, timeout, a 5xx answer): tried again soon.
    Failed(String),
    /// `controlPlaneFlags` turn dynamic config off.
    Disabled,
    /// The (patched) config cannot be read; see [`DynamicConfig::Unreadable`].
    Unreadable(String),
}

impl Outcome {
    /// Whether a quick retry may change the outcome (the reconcile then does not count as
    /// settled). A refused config waits for a spec change, or the periodic resync.
    pub fn pending(&self) -> bool {
        matches!(self, Self::WaitingForCrd(_) | Self::Failed(_))
    }
}

/// What [`plan`] decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan<'a> {
    /// Report this, send nothing.
    Report(Outcome),
    /// Server-side apply `object`; report its hash.
    Push {
        /// The `ClusterConfig` to apply.
        object: &'a Value,
        /// Its hash.
        hash: &'a str,
    },
}

/// Whether to push: only once the hosted API answered in this reconcile (`answered`), and only
/// when the hosted cluster does not hold the desired hash already (`recorded`, from status, so a
/// restarted provider does not push again). `initialized`: the hosted API answered at some time.
pub fn plan<'a>(
    desired: &'a DynamicConfig,
    recorded: Option<&str>,
    answered: bool,
    initialized: bool,
) -> Plan<'a> {
    match desired {
        DynamicConfig::Disabled => Plan::Report(Outcome::Disabled),
        DynamicConfig::Unreadable(why) => Plan::Report(Outcome::Unreadable(why.clone())),
        DynamicConfig::Push { .. } if !answered && !initialized => {
            Plan::Report(Outcome::NotInitialized)
        }
        DynamicConfig::Push { .. } if !answered => Plan::Report(Outcome::NotRun),
        DynamicConfig::Push { hash, .. } if recorded == Some(hash.as_str()) => {
            Plan::Report(Outcome::Unchanged { hash: hash.clone() })
        }
        DynamicConfig::Push { object, hash } => Plan::Push { object, hash },
    }
}

/// The API of `clusterconfigs.k0s.k0sproject.io` in `kube-system`.
fn cluster_configs(client: Client) -> Api<DynamicObject> {
    let (group, version) = k0s_config::API_VERSION
        .split_once('/')
        .unwrap_or(("k0s.k0sproject.io", "v1beta1"));
    let gvk = GroupVersionKind::gvk(group, version, k0s_config::KIND);
    let resource = ApiResource::from_gvk_with_plural(&gvk, "clusterconfigs");
    Api::namespaced_with(client, DYNAMIC_CONFIG_NAMESPACE, &resource)
}

/// The managed fields of `kube-system/k0s` with k0s's creation entry ([`K0S_MANAGER`], `Update`)
/// handed to us as an `Apply` entry, or `None` when there is none or we already have an entry.
///
/// k0s created the object from the config we gave it, so what it wrote is ours: owning it as our
/// apply lets the next apply remove a field the user has since dropped from `spec.k0sConfig`
/// (shared with k0s's entry, it would stay). The same conversion as kubectl's upgrade from
/// client-side to server-side apply.
pub fn adopted_managed_fields(entries: &[ManagedFieldsEntry]) -> Option<Vec<ManagedFieldsEntry>> {
    if entries
        .iter()
        .any(|e| e.manager.as_deref() == Some(DYNAMIC_CONFIG_MANAGER))
    {
        return None;
    }
    let is_creation = |e: &ManagedFieldsEntry| {
        e.manager.as_deref() == Some(K0S_MANAGER)
            && e.operation.as_deref() == Some("Update")
            && e.subresource.as_deref().is_none_or(str::is_empty)
    };
    let at = entries.iter().position(is_creation)?;
    let mut adopted = entries.to_vec();
    if let Some(entry) = adopted.get_mut(at) {
        entry.manager = Some(DYNAMIC_CONFIG_MANAGER.to_owned());
        entry.operation = Some("Apply".to_owned());
    }
    Some(adopted)
}

/// Before our first push: takes over k0s's creation entry ([`adopted_managed_fields`]) by a JSON
/// patch of `metadata.managedFields` conditional on the object's `resourceVersion`. A failure
/// only means the fields stay shared with k0s; the push goes on either way.
async fn adopt_creation(api: &Api<DynamicObject>) -> Result<(), kube::Error> {
    let Some(existing) = api.get_opt(DYNAMIC_CONFIG_NAME).await? else {
        return Ok(());
    };
    let entries = existing.metadata.managed_fields.clone().unwrap_or_default();
    let Some(adopted) = adopted_managed_fields(&entries) else {
        return Ok(());
    };
    let ops = serde_json::json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": existing.metadata.resource_version},
        {"op": "replace", "path": "/metadata/managedFields", "value": adopted},
    ]);
    let patch: json_patch::Patch = serde_json::from_value(ops).map_err(kube::Error::SerdeError)?;
    let params = PatchParams {
        field_manager: Some(DYNAMIC_CONFIG_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    api.patch(DYNAMIC_CONFIG_NAME, &params, &Patch::Json::<()>(patch))
        .await?;
    Ok(())
}

/// Server-side applies `object` as `kube-system/k0s` through `client` (built from the kubeconfig
/// the provider wrote, never a tenant's), within `timeout`. `first`: no push of ours was ever
/// accepted (nothing recorded), so k0s's creation entry is adopted first ([`adopt_creation`]).
///
/// Forced: k0s itself creates the object on its first start (from the same config, with a plain
/// create, so its own field manager owns every field it wrote), and `spec.k0sConfig` is where
/// the user declares the cluster-wide config. Without force, the first change of any field k0s
/// wrote would conflict with k0s's manager and never reach k0s. Forcing takes over only the
/// fields we send; whoever set other fields in the hosted cluster keeps them.
pub async fn push(
    client: Client,
    object: &Value,
    hash: &str,
    first: bool,
    timeout: Duration,
) -> Outcome {
    let api = cluster_configs(client);
    if first {
        match tokio::time::timeout(timeout, adopt_creation(&api)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => debug!(error = %e, "adopting k0s's fields of kube-system/k0s failed"),
            Err(_) => debug!("adopting k0s's fields of kube-system/k0s timed out"),
        }
    }
    let params = PatchParams::apply(DYNAMIC_CONFIG_MANAGER).force();
    let body = Patch::Apply(object);
    let apply = api.patch(DYNAMIC_CONFIG_NAME, &params, &body);
    match tokio::time::timeout(timeout, apply).await {
        Ok(Ok(_)) => Outcome::Accepted {
            hash: hash.to_owned(),
        },
        Ok(Err(e)) => classify(e, hash),
        Err(_) => Outcome::Failed(format!(
            "the hosted API server did not answer within {}s",
            timeout.as_secs()
        )),
    }
}

/// How the API server's answer to a server-side apply whose body does not fit the schema's types
/// begins.
const TYPED_PATCH_FAILURE: &str = "failed to create typed patch object";

/// An error of the apply as an [`Outcome`].
fn classify(e: kube::Error, hash: &str) -> Outcome {
    match e {
        // No such resource: k0s installs the ClusterConfig CRD a moment after its API answers.
        kube::Error::Api(s) if s.code == 404 => Outcome::WaitingForCrd(format!(
            "the hosted cluster has no {}s.{} yet (k0s installs it at start): {}",
            k0s_config::KIND.to_lowercase(),
            k0s_config::API_VERSION
                .split_once('/')
                .map_or("", |(group, _)| group),
            s.message
        )),
        // Timeouts, conflicts and throttling pass; any other refusal is the config's. A value
        // of the wrong type fails server-side apply's conversion to a typed object, which the
        // API server (1.35) answers with a 500 "failed to create typed patch object (...):
        // .spec.telemetry.enabled: expected boolean, got &{yes}": the config's too.
        kube::Error::Api(s)
            if ((400..500).contains(&s.code) && ![408, 409, 429].contains(&s.code))
                || (s.code == 500 && s.message.starts_with(TYPED_PATCH_FAILURE)) =>
        {
            Outcome::Rejected {
                hash: hash.to_owned(),
                message: s.message,
            }
        }
        other => Outcome::Failed(other.to_string()),
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::field_reassign_with_default
)]
mod tests {
    use super::*;
    use serde_json::json;

    fn push_of(hash: &str) -> DynamicConfig {
        DynamicConfig::Push {
            object: json!({"spec": {"telemetry": {"enabled": false}}}),
            hash: hash.into(),
        }
    }

    #[test]
    fn pushes_only_an_answering_cluster_a_config_it_does_not_hold() {
        let desired = push_of("aaa");
        assert!(matches!(
            plan(&desired, None, true, true),
            Plan::Push { hash: "aaa", .. }
        ));
        assert!(matches!(
            plan(&desired, Some("old"), true, true),
            Plan::Push { hash: "aaa", .. }
        ));
        // Recorded in status: a restarted provider does not push again.
        assert_eq!(
            plan(&desired, Some("aaa"), true, true),
            Plan::Report(Outcome::Unchanged { hash: "aaa".into() })
        );
        // Never before the hosted API answers; after that, a silent API changes nothing.
        assert_eq!(
            plan(&desired, None, false, false),
            Plan::Report(Outcome::NotInitialized)
        );
        assert_eq!(
            plan(&desired, Some("old"), false, true),
            Plan::Report(Outcome::NotRun)
        );
    }

    #[test]
    fn nothing_is_pushed_when_dynamic_config_is_off_or_unreadable() {
        assert_eq!(
            plan(&DynamicConfig::Disabled, None, true, true),
            Plan::Report(Outcome::Disabled)
        );
        assert_eq!(
            plan(&DynamicConfig::Unreadable("x".into()), None, true, true),
            Plan::Report(Outcome::Unreadable("x".into()))
        );
    }

    fn entry(manager: &str, operation: &str, subresource: Option<&str>) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(operation.into()),
            subresource: subresource.map(Into::into),
            fields_v1: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1(
                json!({"f:spec": {"f:telemetry": {"f:enabled": {}}}}),
            )),
            ..Default::default()
        }
    }

    #[test]
    fn k0s_creation_entry_becomes_our_apply_once() {
        let kubectl = entry("kubectl-edit", "Update", None);
        let adopted =
            adopted_managed_fields(&[entry(K0S_MANAGER, "Update", None), kubectl.clone()]).unwrap();
        assert_eq!(adopted[0].manager.as_deref(), Some(DYNAMIC_CONFIG_MANAGER));
        assert_eq!(adopted[0].operation.as_deref(), Some("Apply"));
        assert_eq!(
            adopted[0].fields_v1,
            entry(K0S_MANAGER, "Update", None).fields_v1
        );
        // Nobody else's fields are taken.
        assert_eq!(adopted[1], kubectl);
        // Once we have an entry, or when k0s has none, nothing is adopted.
        assert_eq!(
            adopted_managed_fields(&[
                entry(K0S_MANAGER, "Update", None),
                entry(DYNAMIC_CONFIG_MANAGER, "Apply", None)
            ]),
            None
        );
        assert_eq!(adopted_managed_fields(&[kubectl]), None);
        assert_eq!(
            adopted_managed_fields(&[entry(K0S_MANAGER, "Update", Some("status"))]),
            None
        );
        assert_eq!(adopted_managed_fields(&[]), None);
    }

    fn api_error(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure(message, "Reason")
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn refusals_are_the_users_and_the_rest_is_retried() {
        assert_eq!(
            classify(api_error(422, "spec.telemetry.enabled: Invalid value"), "h"),
            Outcome::Rejected {
                hash: "h".into(),
                message: "spec.telemetry.enabled: Invalid value".into()
            }
        );
        assert!(matches!(
            classify(api_error(403, "denied by a policy"), "h"),
            Outcome::Rejected { .. }
        ));
        let waiting = classify(api_error(404, "the server could not find it"), "h");
        assert!(
            matches!(&waiting, Outcome::WaitingForCrd(m) if m.contains("clusterconfigs.k0s.k0sproject.io")),
            "{waiting:?}"
        );
        assert!(waiting.pending());
        for code in [409, 429, 500, 503] {
            let outcome = classify(api_error(code, "busy"), "h");
            assert!(matches!(outcome, Outcome::Failed(_)), "{code}: {outcome:?}");
            assert!(outcome.pending());
        }
        assert!(!classify(api_error(422, "no"), "h").pending());
        // A type error in a server-side apply: a 500, but the config's fault (as the harness's
        // kube-apiserver answers it).
        let typed = "failed to create typed patch object (kube-system/k0s; k0s.k0sproject.io/v1beta1, \
            Kind=ClusterConfig): .spec.telemetry.enabled: expected boolean, got &{yes}";
        assert_eq!(
            classify(api_error(500, typed), "h"),
            Outcome::Rejected {
                hash: "h".into(),
                message: typed.into()
            }
        );
    }
}
