//! Who owns what we write: our field managers, and seeing another writer's edits.
//!
//! A StatefulSet's template is written again only when its inputs change (their hash is an
//! annotation), so that a restart or an upgrade of the provider never rolls pods. That alone
//! cannot see another writer: a `kubectl edit` or a second field manager that force-applies
//! another image leaves the annotation as it was. So a template is also written again when
//! another manager touched it after our last write ([`foreign_template_edit`], from
//! `managedFields`) and the live template no longer holds a field we set ([`covers`]). Fields we
//! do not set (the API server's defaults, another manager's additions such as `kubectl rollout
//! restart`'s annotation) are not ours to fight over; a template left by an older provider or
//! by upstream k0smotron (no edit by anyone after ours) is kept until the spec changes.

use crate::claims::quantity_value;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

/// Field manager of every child object and of the status.
pub const MANAGER: &str = "k0smotron-controlplane";
/// Field manager that only sets StatefulSet replicas (and adoption annotations) when the pod
/// template must stay as it is.
pub const SCALE_MANAGER: &str = "k0smotron-controlplane-scale";

/// Whether `meta` is controlled by the owner with `uid`.
pub fn controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references.as_ref().is_some_and(|refs| {
        refs.iter()
            .any(|r| r.controller == Some(true) && r.uid == uid)
    })
}

/// Whether `live` holds every field of `desired` with the same value.
///
/// - objects: each key of `desired` is in `live` with a covered value, or is empty in `desired`
///   (Go's `omitempty` drops `false`, `0`, `""`, `[]` and `{}` from what the server returns);
/// - lists of objects: the elements of `desired` are covered, in order, by elements of `live`
///   (others may sit between them: a list merged by key keeps another manager's entries);
/// - lists of scalars: atomic, the same length and elements;
/// - strings: equal, or the same quantity (the server writes `0.5` back as `500m`);
/// - numbers: equal in value.
pub fn covers(live: &Value, desired: &Value) -> bool {
    match (desired, live) {
        (Value::Object(want), Value::Object(have)) => {
            want.iter().all(|(key, w)| match have.get(key) {
                Some(h) => covers(h, w),
                None => is_empty(w),
            })
        }
        // Lists of objects (containers, volumes, env, ports) are merged by key: another
        // manager's entries may sit between ours.
        (Value::Array(want), Value::Array(have)) if want.iter().any(Value::is_object) => {
            let mut rest = have.iter();
            want.iter().all(|w| rest.any(|h| covers(h, w)))
        }
        // Lists of scalars (args, command) are atomic: the whole list is ours.
        (Value::Array(want), Value::Array(have)) => {
            want.len() == have.len() && want.iter().zip(have).all(|(w, h)| covers(h, w))
        }
        (Value::String(want), Value::String(have)) => {
            want == have
                || matches!(
                    (quantity_value(want), quantity_value(have)),
                    (Some(a), Some(b)) if a == b
                )
        }
        (Value::Number(want), Value::Number(have)) => want.as_f64() == have.as_f64(),
        (want, Value::Null) => is_empty(want),
        (want, have) => want == have,
    }
}

/// What Go's `omitempty` leaves out of the server's answer.
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// Whether another writer changed a field of the pod template we wrote: a manager other than
/// ours touched `spec.template` at or after our last write, and the live template no longer
/// [`covers`] the desired one.
pub fn template_drifted(desired: &StatefulSet, live: &StatefulSet) -> bool {
    if !foreign_template_edit(live) {
        return false;
    }
    match (
        serde_json::to_value(&desired.spec.template),
        serde_json::to_value(&live.spec.template),
    ) {
        (Ok(want), Ok(have)) => !covers(&have, &want),
        // Not serialisable (never for these types): write ours, which is always safe.
        _ => true,
    }
}

/// Whether a manager other than ours owns a field of `spec.template` written at or after
/// [`MANAGER`]'s last write (`managedFields` times are to the second). False when we never wrote
/// the object (adopted from upstream k0smotron).
pub fn foreign_template_edit(live: &StatefulSet) -> bool {
    let entries = live.metadata.managed_fields.as_deref().unwrap_or_default();
    let Some(ours) = entries
        .iter()
        .filter(|e| e.manager.as_deref() == Some(MANAGER) && e.subresource.is_none())
        .filter_map(|e| e.time.as_ref())
        .max()
    else {
        return false;
    };
    entries.iter().any(|e| {
        !matches!(e.manager.as_deref(), Some(MANAGER | SCALE_MANAGER))
            && e.subresource.is_none()
            && e.time.as_ref().is_some_and(|t| t >= ours)
            && e.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.pointer("/f:spec/f:template").is_some())
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, Time};
    use serde_json::json;

    fn desired() -> Value {
        json!({
            "metadata": {"labels": {"app": "k0smotron"}, "annotations": {}},
            "spec": {
                "containers": [{
                    "name": "controller",
                    "image": "quay.io/k0sproject/k0s:v1.35.4-k0s.0",
                    "args": ["k0s", "controller"],
                    "ports": [{"name": "api", "containerPort": 30443}],
                    "resources": {"requests": {"cpu": "0.5", "memory": "1Gi"}},
                    "securityContext": {"readOnlyRootFilesystem": false},
                    "volumeMounts": [{"name": "config", "mountPath": "/etc/k0s"}],
                }],
                "volumes": [{"name": "config", "configMap": {"name": "kmc-demo-config"}}],
            }
        })
    }

    /// What the API server answers for `desired`: defaults added, `omitempty` applied,
    /// quantities canonical.
    fn as_served() -> Value {
        json!({
            "metadata": {"creationTimestamp": null, "labels": {"app": "k0smotron"}},
            "spec": {
                "containers": [{
                    "name": "controller",
                    "image": "quay.io/k0sproject/k0s:v1.35.4-k0s.0",
                    "imagePullPolicy": "IfNotPresent",
                    "args": ["k0s", "controller"],
                    "ports": [{"name": "api", "containerPort": 30443, "protocol": "TCP"}],
                    "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
                    "securityContext": {},
                    "terminationMessagePath": "/dev/termination-log",
                    "volumeMounts": [{"name": "config", "mountPath": "/etc/k0s"}],
                }],
                "dnsPolicy": "ClusterFirst",
                "restartPolicy": "Always",
                "volumes": [{"name": "config", "configMap": {"name": "kmc-demo-config", "defaultMode": 420}}],
            }
        })
    }

    #[test]
    fn what_the_server_serves_for_our_template_covers_it() {
        assert!(covers(&as_served(), &desired()));
    }

    #[test]
    fn another_writers_image_is_drift() {
        let mut live = as_served();
        live["spec"]["containers"][0]["image"] = json!("example.com/other:1");
        assert!(!covers(&live, &desired()));
    }

    #[test]
    fn a_changed_quantity_argument_or_a_lost_volume_is_drift() {
        let mut live = as_served();
        live["spec"]["containers"][0]["resources"]["requests"]["cpu"] = json!("400m");
        assert!(!covers(&live, &desired()));
        let mut live = as_served();
        live["spec"]["containers"][0]["args"] = json!(["k0s"]);
        assert!(!covers(&live, &desired()));
        let mut live = as_served();
        live["spec"]["volumes"] = json!([]);
        assert!(!covers(&live, &desired()));
        let mut live = as_served();
        live["spec"]["containers"][0]
            .as_object_mut()
            .unwrap()
            .remove("ports");
        assert!(!covers(&live, &desired()));
    }

    #[test]
    fn fields_we_do_not_set_are_not_ours_to_revert() {
        let mut live = as_served();
        live["spec"]["containers"][0]["env"] = json!([{"name": "HTTP_PROXY", "value": "x"}]);
        live["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .insert(0, json!({"name": "sidecar", "image": "busybox"}));
        live["metadata"]["annotations"] = json!({"kubectl.kubernetes.io/restartedAt": "now"});
        assert!(covers(&live, &desired()));
    }

    #[test]
    fn lists_of_objects_are_matched_in_order_and_lists_of_scalars_whole() {
        let (a, b, c) = (
            json!({"name": "a"}),
            json!({"name": "b"}),
            json!({"name": "c"}),
        );
        assert!(covers(&json!([a, b, c]), &json!([a, c])));
        assert!(!covers(&json!([c, a]), &json!([a, c])));
        assert!(!covers(&json!([a]), &json!([a, a])));
        assert!(!covers(
            &json!(["k0s", "--debug", "controller"]),
            &json!(["k0s", "controller"])
        ));
        assert!(covers(
            &json!(["k0s", "controller"]),
            &json!(["k0s", "controller"])
        ));
    }

    fn entry(manager: &str, second: u32, fields: Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some("Apply".into()),
            time: Some(Time(
                format!("2026-12-03T18:00:{second:02}Z").parse().unwrap(),
            )),
            fields_v1: Some(FieldsV1(fields)),
            ..Default::default()
        }
    }

    fn statefulset(template: Value, entries: Vec<ManagedFieldsEntry>) -> StatefulSet {
        let mut sts: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": "kmc-demo"},
            "spec": {"selector": {}, "serviceName": "x", "template": template},
        }))
        .unwrap();
        sts.metadata.managed_fields = Some(entries);
        sts
    }

    #[test]
    fn a_template_is_drifted_only_after_another_managers_later_edit() {
        let desired = statefulset(desired(), vec![]);
        let image = json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {}}}}});
        let mut edited = as_served();
        edited["spec"]["containers"][0]["image"] = json!("example.com/other:1");
        let ours = entry(MANAGER, 10, image.clone());
        // Another manager force-applied an image after our write.
        let later = statefulset(
            edited.clone(),
            vec![ours.clone(), entry("chaos-writer", 20, image.clone())],
        );
        assert!(template_drifted(&desired, &later));
        // Our template differs but nobody else touched it: an older provider's template, kept.
        let older = statefulset(edited.clone(), vec![ours.clone()]);
        assert!(!template_drifted(&desired, &older));
        // Upstream k0smotron made it (we never wrote it): adopted as it is.
        let upstream = statefulset(edited.clone(), vec![entry("manager", 20, image.clone())]);
        assert!(!template_drifted(&desired, &upstream));
        // The other edit came before our last write.
        let earlier = statefulset(
            edited,
            vec![entry("chaos-writer", 5, image.clone()), ours.clone()],
        );
        assert!(!template_drifted(&desired, &earlier));
        // A later edit of fields we do not set (kubectl rollout restart): nothing to revert.
        let mut restarted = as_served();
        restarted["metadata"]["annotations"] =
            json!({"kubectl.kubernetes.io/restartedAt": "2026-12-03T18:00:30Z"});
        let restart = statefulset(
            restarted,
            vec![ours.clone(), entry("kubectl-rollout", 30, image)],
        );
        assert!(!template_drifted(&desired, &restart));
        // The scale manager's replica writes are ours.
        let replicas = json!({"f:spec": {"f:replicas": {}}});
        let scaled = statefulset(as_served(), vec![ours, entry(SCALE_MANAGER, 40, replicas)]);
        assert!(!foreign_template_edit(&scaled));
    }
}
