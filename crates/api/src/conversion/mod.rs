//! Conversion between `v1beta1` and `v1beta2` (the stored version, the hub) of every kind we
//! serve: pure functions on JSON objects, what a `ConversionReview` handler calls for each
//! object ([`convert`]). It must not do I/O and does not know about webhooks.
//!
//! Field mapping follows upstream k0smotron's conversion, field for field, including where
//! upstream keeps v1beta1-only data on the v1beta2 object: the Service's extra fields in the
//! annotations `k0smotron.io/conversion-dropped-service.*`, a join token request's cluster
//! namespace in `k0smotron.io/cluster-ref-namespace`, and v1beta1-only status in
//! `status.deprecated.v1beta1`. Whatever else a v1beta1 object cannot express (fields upstream
//! drops, such as `patches` or NATS storage, and fields only this implementation has) travels in
//! the annotation [`CONVERSION_DATA_ANNOTATION`] of the v1beta1 object, so that
//! v1beta2 → v1beta1 → v1beta2 gives back the same object. docs/deviations.md ("v1beta1")
//! lists what does not survive the other way round.

mod bootstrap;
mod controlplane;
mod remainder;
mod standalone;

use std::collections::BTreeMap;

use kube::Resource;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

/// Annotation on a v1beta1 object holding the v1beta2 data it cannot express (JSON, written and
/// read only by this module). Reserved: a value set by hand on a v1beta2 object is replaced.
pub const CONVERSION_DATA_ANNOTATION: &str = "k0smotron.io/conversion-data";

/// The hub version.
pub const V1BETA2: &str = "v1beta2";
/// The older served version.
pub const V1BETA1: &str = "v1beta1";

/// Why an object could not be converted. Each maps to a failed `ConversionReview` response.
#[derive(Debug, thiserror::Error)]
pub enum ConversionError {
    /// The object has no `apiVersion` or `kind` string.
    #[error("the object has no apiVersion or kind")]
    MissingTypeMeta,
    /// Conversion between API groups was asked for.
    #[error("{kind}: cannot convert from {from} to {to}: different API groups")]
    GroupMismatch {
        /// Kind of the object.
        kind: String,
        /// Its `apiVersion`.
        from: String,
        /// The desired `apiVersion`.
        to: String,
    },
    /// A kind or version we do not serve.
    #[error("{kind}: no conversion from {from} to {to}")]
    Unsupported {
        /// Kind of the object.
        kind: String,
        /// Its `apiVersion`.
        from: String,
        /// The desired `apiVersion`.
        to: String,
    },
    /// The object is not a valid object of its version.
    #[error("{kind} {name}: not a valid {api_version} object")]
    Parse {
        /// Kind of the object.
        kind: &'static str,
        /// `namespace/name` of the object, as far as known.
        name: String,
        /// Version it was read as.
        api_version: &'static str,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// The converted object could not be written as JSON.
    #[error("{kind} {name}: writing the {api_version} object")]
    Serialize {
        /// Kind of the object.
        kind: &'static str,
        /// `namespace/name` of the object.
        name: String,
        /// Version being written.
        api_version: &'static str,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
}

/// Converts `object` (a whole object with `apiVersion` and `kind`) to `desired_api_version`
/// (`group/version`). An object already at that version is returned unchanged.
pub fn convert(object: Value, desired_api_version: &str) -> Result<Value, ConversionError> {
    let (Some(api_version), Some(kind)) = (
        object.get("apiVersion").and_then(Value::as_str),
        object.get("kind").and_then(Value::as_str),
    ) else {
        return Err(ConversionError::MissingTypeMeta);
    };
    if api_version == desired_api_version {
        return Ok(object);
    }
    let (from_group, from_version) = split_api_version(api_version);
    let (to_group, to_version) = split_api_version(desired_api_version);
    if from_group != to_group {
        return Err(ConversionError::GroupMismatch {
            kind: kind.to_owned(),
            from: api_version.to_owned(),
            to: desired_api_version.to_owned(),
        });
    }
    let unsupported = || ConversionError::Unsupported {
        kind: kind.to_owned(),
        from: api_version.to_owned(),
        to: desired_api_version.to_owned(),
    };
    let direction = match (from_version, to_version) {
        (V1BETA2, V1BETA1) => Direction::Down,
        (V1BETA1, V1BETA2) => Direction::Up,
        _ => return Err(unsupported()),
    };
    match (from_group, kind) {
        ("k0smotron.io", "Cluster") => direction.run::<standalone::ClusterVersions>(object),
        ("k0smotron.io", "JoinTokenRequest") => {
            direction.run::<standalone::JoinTokenRequestVersions>(object)
        }
        ("controlplane.cluster.x-k8s.io", "K0smotronControlPlane") => {
            direction.run::<controlplane::ControlPlaneVersions>(object)
        }
        ("controlplane.cluster.x-k8s.io", "K0smotronControlPlaneTemplate") => {
            direction.run::<controlplane::ControlPlaneTemplateVersions>(object)
        }
        ("bootstrap.cluster.x-k8s.io", "K0sWorkerConfig") => {
            direction.run::<bootstrap::WorkerConfigVersions>(object)
        }
        ("bootstrap.cluster.x-k8s.io", "K0sWorkerConfigTemplate") => {
            direction.run::<bootstrap::WorkerConfigTemplateVersions>(object)
        }
        _ => Err(unsupported()),
    }
}

/// `group/version` → (group, version); the core group has no slash.
fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

enum Direction {
    /// v1beta2 → v1beta1.
    Down,
    /// v1beta1 → v1beta2.
    Up,
}

impl Direction {
    fn run<K: Versions>(self, object: Value) -> Result<Value, ConversionError> {
        match self {
            Self::Down => to_v1beta1::<K>(object),
            Self::Up => to_v1beta2::<K>(object),
        }
    }
}

/// The two versions of one kind and the typed conversion between them.
pub(crate) trait Versions {
    /// Kind name, for errors.
    const KIND: &'static str;
    /// The v1beta2 (stored) type.
    type Hub: Resource + Serialize + DeserializeOwned;
    /// The v1beta1 type.
    type Spoke: Resource + Serialize + DeserializeOwned;

    /// v1beta2 → v1beta1. v1beta1-only status is in the hub's `status.deprecated.v1beta1`
    /// (upstream's place), a typed field of the kinds that have any.
    fn to_spoke(hub: Self::Hub) -> Result<Self::Spoke, ConversionError>;

    /// v1beta1 → v1beta2.
    fn to_hub(spoke: Self::Spoke) -> Result<Self::Hub, ConversionError>;
}

fn object_name(object: &Value) -> String {
    let metadata = object.get("metadata");
    let field = |key: &str| {
        metadata
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    format!("{}/{}", field("namespace"), field("name"))
}

fn parse<T: DeserializeOwned>(
    kind: &'static str,
    api_version: &'static str,
    object: &Value,
) -> Result<T, ConversionError> {
    T::deserialize(object).map_err(|source| ConversionError::Parse {
        kind,
        name: object_name(object),
        api_version,
        source,
    })
}

fn write<T: Serialize>(
    kind: &'static str,
    api_version: &'static str,
    name: &str,
    object: &T,
) -> Result<Value, ConversionError> {
    serde_json::to_value(object).map_err(|source| ConversionError::Serialize {
        kind,
        name: name.to_owned(),
        api_version,
        source,
    })
}

/// v1beta2 → v1beta1, recording in [`CONVERSION_DATA_ANNOTATION`] whatever the way back would
/// not restore.
fn to_v1beta1<K: Versions>(original: Value) -> Result<Value, ConversionError> {
    let name = object_name(&original);
    let hub: K::Hub = parse(K::KIND, V1BETA2, &original)?;
    let mut spoke = K::to_spoke(hub)?;
    // Only this function writes the annotation: one found on a v1beta2 object was set by hand
    // (or copied from a v1beta1 object) and describes some other object.
    take_annotation_raw(spoke.meta_mut(), CONVERSION_DATA_ANNOTATION);
    let mut spoke_json = write(K::KIND, V1BETA1, &name, &spoke)?;

    let restored = hub_json::<K>(spoke, &name)?;
    let steps = remainder::diff(&restored, &original);
    if !steps.is_empty() {
        let data = serde_json::to_string(&steps).map_err(|source| ConversionError::Serialize {
            kind: K::KIND,
            name: name.clone(),
            api_version: V1BETA1,
            source,
        })?;
        if let Some(metadata) = spoke_json
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
        {
            let annotations = metadata
                .entry("annotations")
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
            if let Some(annotations) = annotations.as_object_mut() {
                annotations.insert(CONVERSION_DATA_ANNOTATION.to_owned(), Value::String(data));
            }
        }
    }
    Ok(spoke_json)
}

/// v1beta1 → v1beta2, applying the object's [`CONVERSION_DATA_ANNOTATION`].
fn to_v1beta2<K: Versions>(object: Value) -> Result<Value, ConversionError> {
    let name = object_name(&object);
    let mut spoke: K::Spoke = parse(K::KIND, V1BETA1, &object)?;
    // A value that does not parse is dropped: it is ours, and the object converts without it.
    let steps: Vec<remainder::Step> =
        take_annotation_raw(spoke.meta_mut(), CONVERSION_DATA_ANNOTATION)
            .and_then(|data| serde_json::from_str(&data).ok())
            .unwrap_or_default();
    let mut hub = hub_json::<K>(spoke, &name)?;
    remainder::apply(&mut hub, &steps);
    Ok(hub)
}

/// The v1beta2 JSON of a v1beta1 object.
fn hub_json<K: Versions>(spoke: K::Spoke, name: &str) -> Result<Value, ConversionError> {
    write(K::KIND, V1BETA2, name, &K::to_hub(spoke)?)
}

/// An annotation carrying a v1beta1 field could not be encoded.
pub(crate) fn annotation_error(kind: &'static str, source: serde_json::Error) -> ConversionError {
    ConversionError::Serialize {
        kind,
        name: String::new(),
        api_version: V1BETA2,
        source,
    }
}

// ---------------------------------------------------------------------------------------------
// Annotations carrying v1beta1-only fields on the v1beta2 object (upstream's mechanism)
// ---------------------------------------------------------------------------------------------

/// Removes `key` from the annotations and returns its value; an emptied map becomes `None`, as
/// the API server never returns an empty one.
fn take_annotation_raw(
    metadata: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    key: &str,
) -> Option<String> {
    let annotations = metadata.annotations.as_mut()?;
    let value = annotations.remove(key);
    if annotations.is_empty() {
        metadata.annotations = None;
    }
    value
}

/// v1beta2 → v1beta1 side of a JSON-encoded annotation that carries a v1beta1 field: the decoded
/// value, or `None` when the annotation is absent or does not decode. The annotation is removed
/// only when encoding the value gives it back byte for byte (so the way back restores it
/// exactly); otherwise it stays on the v1beta1 object next to the field.
pub(crate) fn read_field_annotation<T>(
    annotations: &mut Option<BTreeMap<String, String>>,
    key: &str,
) -> Option<T>
where
    T: Serialize + DeserializeOwned,
{
    let map = annotations.as_mut()?;
    let raw = map.get(key)?;
    let value: T = serde_json::from_str(raw).ok()?;
    if serde_json::to_string(&value).ok().as_deref() == Some(raw.as_str()) {
        map.remove(key);
        if map.is_empty() {
            *annotations = None;
        }
    }
    Some(value)
}

/// v1beta1 → v1beta2 side of [`read_field_annotation`]: a set field is written to the
/// annotation (an annotation that already decodes to the same value is kept as it is); an unset
/// field removes an annotation that decodes (the v1beta1 client cleared the field) and keeps one
/// that does not (it was never a field).
pub(crate) fn write_field_annotation<T>(
    annotations: &mut Option<BTreeMap<String, String>>,
    key: &str,
    value: Option<&T>,
) -> Result<(), serde_json::Error>
where
    T: Serialize + DeserializeOwned + PartialEq,
{
    let existing: Option<T> = annotations
        .as_ref()
        .and_then(|map| map.get(key))
        .and_then(|raw| serde_json::from_str(raw).ok());
    match value {
        Some(value) if existing.as_ref() == Some(value) => {}
        Some(value) => {
            let encoded = serde_json::to_string(value)?;
            annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(key.to_owned(), encoded);
        }
        None if existing.is_some() => {
            if let Some(map) = annotations.as_mut() {
                map.remove(key);
                if map.is_empty() {
                    *annotations = None;
                }
            }
        }
        None => {}
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_object_at_the_desired_version_is_returned_unchanged() {
        let object =
            json!({"apiVersion": "k0smotron.io/v1beta2", "kind": "Cluster", "spec": {"odd": 1}});
        let out = convert(object.clone(), "k0smotron.io/v1beta2").unwrap();
        assert_eq!(out, object);
    }

    #[test]
    fn unknown_kinds_versions_and_groups_are_errors() {
        let cluster = json!({"apiVersion": "k0smotron.io/v1beta2", "kind": "Cluster", "metadata": {"name": "a"}});
        assert!(matches!(
            convert(cluster.clone(), "k0smotron.io/v1alpha1"),
            Err(ConversionError::Unsupported { .. })
        ));
        assert!(matches!(
            convert(cluster, "bootstrap.cluster.x-k8s.io/v1beta1"),
            Err(ConversionError::GroupMismatch { .. })
        ));
        let other = json!({"apiVersion": "k0smotron.io/v1beta2", "kind": "Pod"});
        assert!(matches!(
            convert(other, "k0smotron.io/v1beta1"),
            Err(ConversionError::Unsupported { .. })
        ));
        assert!(matches!(
            convert(json!({"kind": "Cluster"}), "k0smotron.io/v1beta1"),
            Err(ConversionError::MissingTypeMeta)
        ));
    }

    #[test]
    fn an_invalid_object_is_an_error_naming_it() {
        let bad = json!({
            "apiVersion": "k0smotron.io/v1beta2", "kind": "Cluster",
            "metadata": {"name": "a", "namespace": "ns"},
            "spec": {"replicas": "three"}
        });
        let err = convert(bad, "k0smotron.io/v1beta1").unwrap_err();
        assert!(matches!(err, ConversionError::Parse { .. }));
        assert_eq!(err.to_string(), "Cluster ns/a: not a valid v1beta2 object");
    }

    #[test]
    fn a_conversion_data_annotation_on_a_v1beta2_object_is_not_applied() {
        let stale = r#"[{"path":["spec","replicas"],"from":1,"to":5}]"#;
        let v2 = json!({
            "apiVersion": "k0smotron.io/v1beta2", "kind": "Cluster",
            "metadata": {"name": "a", "namespace": "ns", "annotations": {CONVERSION_DATA_ANNOTATION: stale}},
            "spec": {"replicas": 1}
        });
        let v1 = convert(v2, "k0smotron.io/v1beta1").unwrap();
        let back = convert(v1, "k0smotron.io/v1beta2").unwrap();
        assert_eq!(back["spec"]["replicas"], 1);
        assert_eq!(back["metadata"].get("annotations"), None);
    }

    #[test]
    fn field_annotations_round_trip_whatever_their_spelling() {
        let key = "k";
        // Canonical: moved into the field and back.
        let mut annotations = Some(BTreeMap::from([(
            key.to_owned(),
            r#"{"a":"1"}"#.to_owned(),
        )]));
        let value: Option<BTreeMap<String, String>> = read_field_annotation(&mut annotations, key);
        assert_eq!(annotations, None);
        write_field_annotation(&mut annotations, key, value.as_ref()).unwrap();
        assert_eq!(annotations.unwrap()[key], r#"{"a":"1"}"#);
        // Not canonical (spaces, as another writer may produce): kept byte for byte.
        let spaced = r#"{ "a": "1" }"#;
        let mut annotations = Some(BTreeMap::from([(key.to_owned(), spaced.to_owned())]));
        let value: Option<BTreeMap<String, String>> = read_field_annotation(&mut annotations, key);
        assert_eq!(value.as_ref().map(|m| m["a"].as_str()), Some("1"));
        write_field_annotation(&mut annotations, key, value.as_ref()).unwrap();
        assert_eq!(annotations.unwrap()[key], spaced);
        // Not JSON at all: no field, and the annotation passes through.
        let mut annotations = Some(BTreeMap::from([(key.to_owned(), "garbage".to_owned())]));
        let value: Option<String> = read_field_annotation(&mut annotations, key);
        assert_eq!(value, None);
        write_field_annotation::<String>(&mut annotations, key, None).unwrap();
        assert_eq!(annotations.unwrap()[key], "garbage");
        // A v1beta1 client cleared the field: the annotation goes.
        let mut annotations = Some(BTreeMap::from([(key.to_owned(), r#""Local""#.to_owned())]));
        write_field_annotation::<String>(&mut annotations, key, None).unwrap();
        assert_eq!(annotations, None);
    }
}
