//! Helpers shared by the integration tests: fixture loading and a model of the API server's
//! structural defaulting, used to state precisely what a serde round trip may add.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

/// Directory of the YAML fixtures.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every fixture as (file name, parsed YAML), sorted by name.
pub fn fixtures() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(fixtures_dir()).expect("fixtures dir");
    for entry in entries {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read fixture");
        let value: Value =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("file name")
            .to_owned();
        out.push((name, value));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!out.is_empty(), "no fixtures found");
    out
}

/// The openAPIV3Schema of the (single) version of a CRD, as JSON.
pub fn schema_of(crd: &CustomResourceDefinition) -> Value {
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("CRD has a schema");
    serde_json::to_value(schema).expect("schema serialises")
}

/// Applies schema `default`s to `value` as the API server's structural defaulting does: a
/// missing property with a default gets (a copy of) the default, then defaulting recurses into
/// every present object property and every array item, including just-inserted defaults.
pub fn apply_defaults(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(object) => {
            let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
                return;
            };
            for (name, property) in properties {
                if !object.contains_key(name)
                    && let Some(default) = property.get("default")
                {
                    object.insert(name.clone(), default.clone());
                }
                if let Some(child) = object.get_mut(name) {
                    apply_defaults(property, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    apply_defaults(item_schema, item);
                }
            }
        }
        _ => {}
    }
}

/// Looks up the subschema at a dotted path of property names (`spec.service.type`).
pub fn subschema<'a>(schema: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(schema, |s, name| {
        s.get("properties")
            .and_then(|p| p.get(name))
            .unwrap_or_else(|| panic!("no property {name} in path {path}"))
    })
}
