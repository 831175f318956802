//! The v1beta2 data a v1beta1 object cannot express, carried in the annotation
//! [`CONVERSION_DATA_ANNOTATION`](super::CONVERSION_DATA_ANNOTATION) of the v1beta1 object: what
//! it owns is computing that data ([`diff`]) and putting it back ([`apply`]); it knows no kind.
//!
//! The data is a list of compare-and-set steps. Converting v1beta2 → v1beta1 compares the
//! original object with what converting the v1beta1 result back gives, and records, for each
//! path that differs, the value the way back produces (`from`) and the original one (`to`).
//! Converting v1beta1 → v1beta2 applies a step only where the path still holds `from`: an
//! unedited object comes back exactly, and a field a v1beta1 client changed keeps its new value
//! instead of being overwritten by stale data.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Top-level keys left out of the comparison: the type differs by design, and metadata is
/// copied as it is (the kinds' own annotations are handled by the kind).
const SKIPPED_KEYS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// One compare-and-set step. `None` means "absent".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Step {
    /// Object keys from the root; never an array index (arrays are compared whole).
    pub path: Vec<String>,
    /// The value converting back produces without this step.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub from: Option<Value>,
    /// The value of the original v1beta2 object.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub to: Option<Value>,
}

/// A key that is there is `Some`, even when its value is `null` (an absent key is `None`, by
/// `default`): the two differ in the objects being restored.
fn present<'de, D>(deserializer: D) -> Result<Option<Value>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Value::deserialize(deserializer).map(Some)
}

/// The steps that turn `restored` into `original`, both whole objects.
pub(crate) fn diff(restored: &Value, original: &Value) -> Vec<Step> {
    let mut steps = Vec::new();
    match (restored.as_object(), original.as_object()) {
        (Some(restored), Some(original)) => {
            for key in keys(restored, original) {
                if SKIPPED_KEYS.contains(&key.as_str()) {
                    continue;
                }
                diff_at(
                    &mut vec![key.clone()],
                    restored.get(&key),
                    original.get(&key),
                    &mut steps,
                );
            }
        }
        // Not objects: nothing the kinds produce, but record it rather than lose it.
        _ => diff_at(&mut Vec::new(), Some(restored), Some(original), &mut steps),
    }
    steps
}

fn keys(a: &Map<String, Value>, b: &Map<String, Value>) -> Vec<String> {
    let mut keys: Vec<String> = a.keys().chain(b.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    keys
}

fn diff_at(
    path: &mut Vec<String>,
    restored: Option<&Value>,
    original: Option<&Value>,
    steps: &mut Vec<Step>,
) {
    if restored == original {
        return;
    }
    if let (Some(Value::Object(r)), Some(Value::Object(o))) = (restored, original) {
        for key in keys(r, o) {
            path.push(key.clone());
            diff_at(path, r.get(&key), o.get(&key), steps);
            path.pop();
        }
        return;
    }
    steps.push(Step {
        path: path.clone(),
        from: restored.cloned(),
        to: original.cloned(),
    });
}

/// Applies the steps whose `from` still holds at their path; the others are skipped.
pub(crate) fn apply(object: &mut Value, steps: &[Step]) {
    for step in steps {
        if get(object, &step.path) != step.from.as_ref() {
            continue;
        }
        set(object, &step.path, step.to.clone());
    }
}

fn get<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(object, |value, key| value.get(key))
}

/// Sets (or, with `None`, removes) the value at `path`, creating missing parent objects. A
/// parent that exists but is not an object is left alone.
fn set(object: &mut Value, path: &[String], value: Option<Value>) {
    let Some((last, parents)) = path.split_last() else {
        if let Some(value) = value {
            *object = value;
        }
        return;
    };
    let mut current = object;
    for key in parents {
        let Some(map) = current.as_object_mut() else {
            return;
        };
        if value.is_none() && !map.contains_key(key) {
            return;
        }
        current = map
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    let Some(map) = current.as_object_mut() else {
        return;
    };
    match value {
        Some(value) => {
            map.insert(last.clone(), value);
        }
        None => {
            map.remove(last);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn diff_then_apply_restores_the_original() {
        let original = json!({
            "apiVersion": "x/v1beta2",
            "spec": {"a": 1, "b": {"c": [1, 2], "d": null}, "only": {"deep": true}},
            "status": {"n": 0}
        });
        let restored = json!({
            "apiVersion": "x/v1beta1",
            "spec": {"a": 1, "b": {"c": [1], "e": "extra"}},
            "status": {"n": 0, "m": 1}
        });
        let steps = diff(&restored, &original);
        let mut out = restored.clone();
        apply(&mut out, &steps);
        // apiVersion is not compared: it is the converter's job.
        out["apiVersion"] = original["apiVersion"].clone();
        assert_eq!(out, original);
        // Arrays are replaced whole, objects are recursed into.
        assert!(steps.iter().any(|s| s.path == ["spec", "b", "c"]));
        assert!(
            steps
                .iter()
                .all(|s| s.path.first().map(String::as_str) != Some("apiVersion"))
        );
        // An explicit null survives the trip through the annotation's JSON.
        let text = serde_json::to_string(&steps).unwrap();
        let parsed: Vec<Step> = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed, steps);
        assert!(parsed.iter().any(|s| s.to == Some(Value::Null)));
    }

    #[test]
    fn a_field_changed_since_the_diff_keeps_its_new_value() {
        let original = json!({"status": {"ready": null, "kept": "v2 only"}});
        let restored = json!({"status": {"ready": 0}});
        let steps = diff(&restored, &original);
        // A v1beta1 client wrote 3 meanwhile.
        let mut edited = json!({"status": {"ready": 3}});
        apply(&mut edited, &steps);
        assert_eq!(edited, json!({"status": {"ready": 3, "kept": "v2 only"}}));
    }

    #[test]
    fn steps_under_a_parent_that_became_a_scalar_are_skipped() {
        let steps = vec![Step {
            path: vec!["spec".into(), "x".into(), "y".into()],
            from: None,
            to: Some(json!(1)),
        }];
        let mut object = json!({"spec": {"x": "scalar"}});
        apply(&mut object, &steps);
        assert_eq!(object, json!({"spec": {"x": "scalar"}}));
    }
}
