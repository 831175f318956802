//! The reconcile skeleton every controller shares, so finalizers and failures behave the same
//! everywhere: [`with_finalizer`] runs a controller's apply or cleanup behind its finalizer and
//! forgets the object's failures once a pass succeeds; [`error_policy`] logs a failure, counts it
//! and requeues after the object's next [`Backoff`] delay.
//!
//! Owns no controller logic: what apply and cleanup do, pausing and status stay with each
//! controller.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{self, Event};
use kube::{Api, Resource, ResourceExt as _};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::warn;

use crate::backoff::Backoff;
use crate::metrics::Metrics;

/// A controller's reconcile error, as the skeleton needs it.
pub trait ReconcileError: std::error::Error {
    /// Stable, low-cardinality label for the failure metric.
    fn metric_label(&self) -> &'static str;
}

/// A predicate (for `predicate_filter`) of what should wake an object's own reconcile: a change
/// of anything but its status and finalizers: generation, labels, annotations (pause),
/// deletion, owner references (CAPI sets the owner after creating an object). The controller's
/// own status and finalizer writes would otherwise wake every object once more for nothing.
pub fn meta_changed<K: Resource>(obj: &K) -> Option<u64> {
    use std::hash::{Hash as _, Hasher as _};
    let meta = obj.meta();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (
        meta.generation,
        &meta.labels,
        &meta.annotations,
        meta.deletion_timestamp.as_ref().map(|t| t.0.as_second()),
    )
        .hash(&mut hasher);
    for owner in meta.owner_references.iter().flatten() {
        (&owner.uid, &owner.kind, &owner.name, owner.controller).hash(&mut hasher);
    }
    Some(hasher.finish())
}

/// The key of `obj` in a [`Backoff`] (or [`crate::backoff::Waits`]): kind, namespace and name.
pub fn object_key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    )
}

/// Runs `apply` (the object lives) or `cleanup` (it is being deleted) behind the finalizer
/// `finalizer_name`: the finalizer is added before the first apply and removed after a cleanup
/// that succeeded. A pass that succeeds forgets the object's failures in `backoff`.
///
/// NB: kube's `finalizer` helper returns after adding the finalizer and leaves the apply to the
/// reconcile its own patch wakes: two reconciles (and two rounds of reads) for every new object.
/// Here the apply runs at once on the object the patch returned, so a controller can filter out
/// events that change only finalizers and status.
pub async fn with_finalizer<K, E, A, AFut, C, CFut>(
    api: &Api<K>,
    finalizer_name: &str,
    obj: Arc<K>,
    backoff: &Backoff,
    apply: A,
    cleanup: C,
) -> Result<Action, finalizer::Error<E>>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Serialize,
    E: std::error::Error + 'static,
    A: FnOnce(Arc<K>) -> AFut,
    AFut: Future<Output = Result<Action, E>>,
    C: FnOnce(Arc<K>) -> CFut,
    CFut: Future<Output = Result<Action, E>>,
{
    let key = object_key(obj.as_ref());
    let has_finalizer = obj.finalizers().iter().any(|f| f == finalizer_name);
    let result = match (has_finalizer, obj.meta().deletion_timestamp.is_some()) {
        (false, true) => Ok(Action::await_change()),
        (false, false) => match add_finalizer(api, finalizer_name, obj.as_ref()).await {
            Ok(patched) => apply(Arc::new(patched))
                .await
                .map_err(finalizer::Error::ApplyFailed),
            Err(err) => Err(err),
        },
        (true, false) | (true, true) => {
            finalizer::finalizer(api, finalizer_name, obj, |event| async move {
                match event {
                    Event::Apply(obj) => apply(obj).await,
                    Event::Cleanup(obj) => cleanup(obj).await,
                }
            })
            .await
        }
    };
    if result.is_ok() {
        backoff.succeeded(&key);
    }
    result
}

/// Adds `finalizer_name` to `obj` with a JSON patch that first tests the finalizers are still
/// the ones we saw (the API server does not deduplicate them: two writers adding at once must
/// not both succeed); returns the patched object.
async fn add_finalizer<K, E>(
    api: &Api<K>,
    finalizer_name: &str,
    obj: &K,
) -> Result<K, finalizer::Error<E>>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Serialize,
    E: std::error::Error + 'static,
{
    let name = obj
        .meta()
        .name
        .as_deref()
        .ok_or(finalizer::Error::UnnamedObject)?;
    let current = obj.finalizers();
    let ops = if current.is_empty() {
        serde_json::json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [finalizer_name]},
        ])
    } else {
        serde_json::json!([
            {"op": "test", "path": "/metadata/finalizers", "value": current},
            {"op": "add", "path": "/metadata/finalizers/-", "value": finalizer_name},
        ])
    };
    let patch: json_patch::Patch =
        serde_json::from_value(ops).map_err(|_| finalizer::Error::InvalidFinalizer)?;
    api.patch(name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
        .map_err(finalizer::Error::AddFinalizer)
}

/// The error policy of every controller: logs the failure with its sources, counts it under
/// `controller` and the error's label, and requeues after `obj`'s next backoff delay.
pub fn error_policy<K, E>(
    controller: &'static str,
    obj: &K,
    err: &E,
    metrics: &Metrics,
    backoff: &Backoff,
) -> Action
where
    K: Resource<DynamicType = ()>,
    E: ReconcileError,
{
    metrics.reconcile_failed(controller, err.metric_label());
    warn!(
        name = %obj.name_any(),
        namespace = obj.namespace().unwrap_or_default(),
        error = %error_chain(err),
        "reconcile failed"
    );
    Action::requeue(backoff.failed(&object_key(obj)))
}

/// `err` and its sources on one line (for condition messages and logs).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        // Some errors (kube's finalizer and client errors) repeat their source in their own
        // message; print each text once.
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use pretty_assertions::assert_eq;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Repeats(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner")]
    struct Inner(#[source] std::io::Error);

    #[test]
    fn chain_prints_each_source_once() {
        let err = Repeats(Inner(std::io::Error::other("disk")));
        assert_eq!(error_chain(&err), "outer: inner: disk");
    }

    #[test]
    fn key_names_kind_namespace_and_name() {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some("a".into());
        cm.metadata.namespace = Some("ns".into());
        assert_eq!(object_key(&cm), "ConfigMap/ns/a");
    }
}
