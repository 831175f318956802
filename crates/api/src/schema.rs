//! Schema helpers shared by the CRD types: hand-written schemas for the few fields schemars
//! cannot express structurally. Pure functions; used only through `#[schemars(...)]` attributes.

use schemars::{Schema, generate::SchemaGenerator, json_schema};

/// Schema of a free-form, optional object (`Option<serde_json::Value>`): the API server keeps
/// every field the user sends. `nullable` is set by hand because `schema_with` replaces the whole
/// generated schema, including the `Option` handling.
pub(crate) fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "nullable": true,
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Removes the `description` of every schema nested inside `schema`, keeping `schema`'s own.
///
/// Applied (as a schemars `transform`) to fields that embed core Kubernetes types (`Volume`,
/// `ResourceRequirements`, `TopologySpreadConstraint`, `PersistentVolumeClaimSpec`): their
/// upstream descriptions make up most of the CRD's size, would push it past the 256 KiB limit of
/// `kubectl apply`'s last-applied annotation, and are documented by Kubernetes itself. Our own
/// fields keep their descriptions.
pub(crate) fn strip_nested_descriptions(schema: &mut Schema) {
    if let Some(object) = schema.as_object_mut() {
        strip_subschemas(object);
    }
}

/// Recurses into the subschemas of a schema object (not into its `description`).
fn strip_subschemas(object: &mut serde_json::Map<String, serde_json::Value>) {
    use serde_json::Value;
    for (key, value) in object.iter_mut() {
        match (key.as_str(), value) {
            // Maps of name → schema.
            ("properties" | "patternProperties" | "definitions" | "$defs", Value::Object(m)) => {
                m.values_mut().for_each(strip_schema);
            }
            // Lists of schemas.
            ("allOf" | "anyOf" | "oneOf", Value::Array(a)) => a.iter_mut().for_each(strip_schema),
            // Single schemas.
            ("items" | "additionalProperties" | "not", v) => strip_schema(v),
            _ => {}
        }
    }
}

/// Removes a subschema's description, then recurses.
fn strip_schema(value: &mut serde_json::Value) {
    if let serde_json::Value::Object(object) = value {
        object.remove("description");
        strip_subschemas(object);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_nested_descriptions_only() {
        let mut schema: Schema = json_schema!({
            "description": "keep",
            "type": "array",
            "items": {
                "description": "drop",
                "type": "object",
                "properties": {
                    "description": {"description": "drop", "type": "string"},
                    "nested": {
                        "type": "object",
                        "additionalProperties": {"description": "drop", "type": "string"},
                        "anyOf": [{"description": "drop"}]
                    }
                }
            }
        });
        strip_nested_descriptions(&mut schema);
        assert_eq!(
            schema.to_value(),
            serde_json::json!({
                "description": "keep",
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        // A property *named* description is kept; only its text goes.
                        "description": {"type": "string"},
                        "nested": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                            "anyOf": [{}]
                        }
                    }
                }
            })
        );
    }
}
