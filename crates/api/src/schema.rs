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
