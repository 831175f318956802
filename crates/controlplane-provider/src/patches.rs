//! `spec.patches`: user patches applied to generated objects right before they are applied,
//! selected by kind and `app.kubernetes.io/component` label.
//!
//! Pure, over `serde_json::Value`. Supports `json` (RFC 6902), `merge` (RFC 7386) and a documented
//! subset of Kubernetes strategic merge patch (see [`strategic_merge`]); anything outside that
//! subset is refused with an error rather than applied approximately.

use serde_json::{Map, Value};

/// The label upstream (and we) use to target patches.
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";

/// Errors applying a patch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch content is neither YAML nor JSON.
    #[error("patch {index} ({kind}/{component}): content is not valid YAML or JSON: {reason}")]
    Parse {
        /// Position in `spec.patches`.
        index: usize,
        /// Target kind.
        kind: String,
        /// Target component.
        component: String,
        /// Parser message.
        reason: String,
    },
    /// A JSON patch (RFC 6902) failed, e.g. a `test` operation or a missing path.
    #[error("patch {index} ({kind}/{component}): json patch failed: {reason}")]
    Json {
        /// Position in `spec.patches`.
        index: usize,
        /// Target kind.
        kind: String,
        /// Target component.
        component: String,
        /// What went wrong.
        reason: String,
    },
    /// The patch uses a part of strategic merge patch we do not implement.
    #[error(
        "patch {index} ({kind}/{component}): strategic merge patch {reason} is not supported; use a json or merge patch"
    )]
    UnsupportedStrategic {
        /// Position in `spec.patches`.
        index: usize,
        /// Target kind.
        kind: String,
        /// Target component.
        component: String,
        /// The unsupported construct.
        reason: String,
    },
    /// Unknown patch type (admission normally refuses it).
    #[error("patch {index}: unknown patch type {patch_type:?} (json, merge or strategic)")]
    UnknownType {
        /// Position in `spec.patches`.
        index: usize,
        /// The type given.
        patch_type: String,
    },
    /// The patched object no longer has the kind, name or namespace it was generated with.
    #[error(
        "patch {index} ({kind}/{component}): patches may not change apiVersion, kind, name or namespace"
    )]
    IdentityChanged {
        /// Position in `spec.patches`.
        index: usize,
        /// Target kind.
        kind: String,
        /// Target component.
        component: String,
    },
}

/// One patch, independent of the API type it comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ComponentPatch {
    /// Target kind, e.g. `StatefulSet`.
    pub kind: String,
    /// Target `app.kubernetes.io/component` label value.
    pub component: String,
    /// `json`, `merge` or `strategic`.
    pub patch_type: String,
    /// YAML or JSON content.
    pub content: String,
}

fn identity(
    obj: &Value,
) -> (
    Option<&Value>,
    Option<&Value>,
    Option<&Value>,
    Option<&Value>,
) {
    (
        obj.get("apiVersion"),
        obj.get("kind"),
        obj.pointer("/metadata/name"),
        obj.pointer("/metadata/namespace"),
    )
}

/// Applies every matching patch, in list order, to `obj` (a generated object as JSON).
pub fn apply_all(obj: &mut Value, patches: &[ComponentPatch]) -> Result<(), PatchError> {
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let component = obj
        .pointer("/metadata/labels")
        .and_then(|l| l.get(COMPONENT_LABEL))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    for (index, p) in patches.iter().enumerate() {
        if p.kind != kind || p.component != component {
            continue;
        }
        let before = identity(obj);
        let before = (
            before.0.cloned(),
            before.1.cloned(),
            before.2.cloned(),
            before.3.cloned(),
        );
        apply_one(obj, index, p)?;
        let after = identity(obj);
        if (
            after.0.cloned(),
            after.1.cloned(),
            after.2.cloned(),
            after.3.cloned(),
        ) != before
        {
            return Err(PatchError::IdentityChanged {
                index,
                kind: p.kind.clone(),
                component: p.component.clone(),
            });
        }
    }
    Ok(())
}

fn apply_one(obj: &mut Value, index: usize, p: &ComponentPatch) -> Result<(), PatchError> {
    let content: Value = serde_saphyr::from_str(&p.content).map_err(|e| PatchError::Parse {
        index,
        kind: p.kind.clone(),
        component: p.component.clone(),
        reason: e.to_string(),
    })?;
    match p.patch_type.as_str() {
        "json" => {
            let ops: json_patch::Patch =
                serde_json::from_value(content).map_err(|e| PatchError::Json {
                    index,
                    kind: p.kind.clone(),
                    component: p.component.clone(),
                    reason: e.to_string(),
                })?;
            // On a copy, with json-patch's `patch_unsafe`: its `patch` undoes the operations
            // already applied when a later one fails, and panics when the undo fails too (a
            // `move` to the root, then any failing operation: found by the property tests,
            // issue #12). A failed patch leaves `obj` as it was.
            let mut patched = obj.clone();
            json_patch::patch_unsafe(&mut patched, &ops).map_err(|e| PatchError::Json {
                index,
                kind: p.kind.clone(),
                component: p.component.clone(),
                reason: e.to_string(),
            })?;
            *obj = patched;
            Ok(())
        }
        "merge" => {
            json_patch::merge(obj, &content);
            Ok(())
        }
        "strategic" => {
            strategic_merge(obj, &content).map_err(|reason| PatchError::UnsupportedStrategic {
                index,
                kind: p.kind.clone(),
                component: p.component.clone(),
                reason,
            })
        }
        other => Err(PatchError::UnknownType {
            index,
            patch_type: other.to_string(),
        }),
    }
}

/// Merge key of the lists we merge element-wise, by field name (the Kubernetes `patchMergeKey`s
/// of the workload and Service types). `ports` is keyed by `containerPort` in containers and by
/// `port` in Services; we pick whichever the patch's items carry.
fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "volumeClaimTemplates" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "ports" => {
            if items.iter().all(|i| i.get("containerPort").is_some()) {
                Some("containerPort")
            } else if items.iter().all(|i| i.get("port").is_some()) {
                Some("port")
            } else {
                None
            }
        }
        _ => None,
    }
}

/// The strategic-merge subset we implement:
/// - objects merge recursively; `null` deletes a key (as in a merge patch);
/// - lists whose Kubernetes merge key we know (containers, initContainers, ephemeralContainers,
///   volumes, env, imagePullSecrets, volumeClaimTemplates by `name`; volumeMounts by `mountPath`;
///   volumeDevices by `devicePath`; ports by `containerPort` or `port`) merge element-wise: a
///   patch item with an existing key is merged into it, a new one is appended;
/// - every other list is replaced;
/// - directives (`$patch`, `$setElementOrder/…`, `$retainKeys`, `$deleteFromPrimitiveList/…`) are
///   refused.
pub fn strategic_merge(target: &mut Value, patch: &Value) -> Result<(), String> {
    strategic_merge_at(target, patch, None)
}

fn strategic_merge_at(
    target: &mut Value,
    patch: &Value,
    field: Option<&str>,
) -> Result<(), String> {
    match patch {
        Value::Object(p) => {
            if let Some(directive) = p.keys().find(|k| k.starts_with('$')) {
                return Err(format!("directive {directive:?}"));
            }
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let Some(t) = target.as_object_mut() else {
                return Err("internal: target is not an object".to_string());
            };
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                    continue;
                }
                let slot = t.entry(k.clone()).or_insert(Value::Null);
                strategic_merge_at(slot, v, Some(k))?;
            }
            Ok(())
        }
        Value::Array(items) => {
            let key = field.and_then(|f| merge_key(f, items));
            match (key, target.as_array_mut()) {
                (Some(key), Some(existing)) => {
                    for item in items {
                        if item
                            .as_object()
                            .is_some_and(|o| o.keys().any(|k| k.starts_with('$')))
                        {
                            return Err("list directive".to_string());
                        }
                        let Some(id) = item.get(key) else {
                            return Err(format!("list item without its merge key {key:?}"));
                        };
                        match existing.iter_mut().find(|e| e.get(key) == Some(id)) {
                            Some(e) => strategic_merge_at(e, item, None)?,
                            None => existing.push(item.clone()),
                        }
                    }
                    Ok(())
                }
                _ => {
                    *target = patch.clone();
                    Ok(())
                }
            }
        }
        scalar => {
            *target = scalar.clone();
            Ok(())
        }
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
    use pretty_assertions::assert_eq;
    use serde_json::json;

    fn svc() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kmc-a", "namespace": "ns",
                         "labels": {COMPONENT_LABEL: "control-plane"}},
            "spec": {"type": "ClusterIP", "ports": [{"name": "api", "port": 30443}]}
        })
    }

    fn patch(kind: &str, component: &str, t: &str, content: &str) -> ComponentPatch {
        ComponentPatch {
            kind: kind.into(),
            component: component.into(),
            patch_type: t.into(),
            content: content.into(),
        }
    }

    #[test]
    fn patches_apply_in_order_only_to_matching_kind_and_component() {
        let mut obj = svc();
        apply_all(
            &mut obj,
            &[
                patch(
                    "Service",
                    "control-plane",
                    "merge",
                    "metadata:\n  annotations:\n    a: '1'\n",
                ),
                patch(
                    "Service",
                    "etcd",
                    "merge",
                    "metadata: {annotations: {no: x}}",
                ),
                patch(
                    "ConfigMap",
                    "control-plane",
                    "merge",
                    "metadata: {annotations: {no: y}}",
                ),
                patch(
                    "Service",
                    "control-plane",
                    "json",
                    r#"[{"op": "replace", "path": "/metadata/annotations/a", "value": "2"}]"#,
                ),
            ],
        )
        .unwrap();
        assert_eq!(
            obj.pointer("/metadata/annotations"),
            Some(&json!({"a": "2"}))
        );
    }

    #[test]
    fn json_patch_failure_is_an_error() {
        let mut obj = svc();
        let err = apply_all(
            &mut obj,
            &[patch(
                "Service",
                "control-plane",
                "json",
                r#"[{"op": "remove", "path": "/spec/nothing"}]"#,
            )],
        )
        .unwrap_err();
        assert!(matches!(err, PatchError::Json { index: 0, .. }));
    }

    /// json-patch's `patch` panics when it cannot undo a failed patch ("cannot move the value
    /// inside itself"); a tenant's patch must be an error, never a panic.
    #[test]
    fn a_failed_patch_whose_undo_would_fail_is_an_error_not_a_panic() {
        let mut obj = svc();
        let before = obj.clone();
        let ops = r#"[{"op":"move","from":"/metadata/name","path":""},{"op":"add","path":"/metadata/labels/x","value":1}]"#;
        let err =
            apply_all(&mut obj, &[patch("Service", "control-plane", "json", ops)]).unwrap_err();
        assert!(matches!(err, PatchError::Json { index: 0, .. }), "{err}");
        assert_eq!(obj, before, "a failed patch changed the object");
    }

    #[test]
    fn renaming_is_refused() {
        let mut obj = svc();
        let err = apply_all(
            &mut obj,
            &[patch(
                "Service",
                "control-plane",
                "merge",
                "metadata: {name: other}",
            )],
        )
        .unwrap_err();
        assert!(matches!(err, PatchError::IdentityChanged { .. }));
    }

    #[test]
    fn strategic_merges_containers_by_name_and_replaces_other_lists() {
        let mut sts = json!({
            "kind": "StatefulSet",
            "spec": {"template": {"spec": {
                "containers": [{"name": "controller", "image": "k0s:1",
                                "env": [{"name": "A", "value": "1"}],
                                "args": ["x"]}],
                "tolerations": [{"key": "a"}]
            }}}
        });
        let p = json!({"spec": {"template": {"spec": {
            "containers": [
                {"name": "controller", "env": [{"name": "B", "value": "2"}], "args": ["y"]},
                {"name": "sidecar", "image": "busybox"}
            ],
            "tolerations": [{"key": "b"}]
        }}}});
        strategic_merge(&mut sts, &p).unwrap();
        assert_eq!(
            sts,
            json!({
                "kind": "StatefulSet",
                "spec": {"template": {"spec": {
                    "containers": [
                        {"name": "controller", "image": "k0s:1",
                         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                         "args": ["y"]},
                        {"name": "sidecar", "image": "busybox"}
                    ],
                    "tolerations": [{"key": "b"}]
                }}}
            })
        );
    }

    #[test]
    fn strategic_merges_service_ports_by_port_and_deletes_with_null() {
        let mut obj = svc();
        obj["metadata"]["annotations"] = json!({"drop": "me", "keep": "me"});
        let p = json!({
            "metadata": {"annotations": {"drop": null}},
            "spec": {"ports": [{"port": 30443, "nodePort": 30443}]}
        });
        strategic_merge(&mut obj, &p).unwrap();
        assert_eq!(
            obj.pointer("/metadata/annotations"),
            Some(&json!({"keep": "me"}))
        );
        assert_eq!(
            obj.pointer("/spec/ports"),
            Some(&json!([{"name": "api", "port": 30443, "nodePort": 30443}]))
        );
    }

    #[test]
    fn strategic_directives_are_refused() {
        let mut obj = svc();
        let err = apply_all(
            &mut obj,
            &[patch(
                "Service",
                "control-plane",
                "strategic",
                "spec: {ports: [{port: 30443, $patch: delete}]}",
            )],
        )
        .unwrap_err();
        assert!(matches!(err, PatchError::UnsupportedStrategic { .. }));
        let err = strategic_merge(&mut svc(), &json!({"spec": {"$retainKeys": ["type"]}}));
        assert!(err.is_err());
    }

    #[test]
    fn unparsable_content_is_an_error() {
        let mut obj = svc();
        let err = apply_all(
            &mut obj,
            &[patch("Service", "control-plane", "merge", "a: [")],
        )
        .unwrap_err();
        assert!(matches!(err, PatchError::Parse { .. }));
    }
}
