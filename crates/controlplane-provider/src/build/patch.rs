//! `spec.patches` applied to generated objects: the typed objects go through JSON, with their
//! `kind`/`apiVersion`, so a patch can match them.

use k0smotron_api::controlplane::v1beta2::ClusterSpec;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::BuildError;
use crate::patches::{self, ComponentPatch, PatchError};

/// The spec's patches, in the form [`patches::apply_all`] takes.
pub(super) fn component_patches(spec: &ClusterSpec) -> Vec<ComponentPatch> {
    spec.patches
        .iter()
        .map(|p| ComponentPatch {
            kind: p.target.kind.clone(),
            component: p.target.component.clone(),
            patch_type: serde_json::to_value(p.patch.type_)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            content: p.patch.content.clone(),
        })
        .collect()
}

fn patch_object<T: Serialize + DeserializeOwned>(
    obj: T,
    patches: &[ComponentPatch],
    what: &str,
) -> Result<T, BuildError> {
    if patches.is_empty() {
        return Ok(obj);
    }
    let mut value = serde_json::to_value(&obj).map_err(|source| BuildError::Serialize {
        what: what.to_string(),
        source,
    })?;
    patches::apply_all(&mut value, patches)?;
    serde_json::from_value(value).map_err(|e| {
        BuildError::Patch(PatchError::Json {
            index: 0,
            kind: what.to_string(),
            component: String::new(),
            reason: format!("the patched object is not a valid {what}: {e}"),
        })
    })
}

/// `kind`/`apiVersion` for patch matching (the typed objects do not serialise them).
pub(super) fn with_type_meta<T: kube::Resource<DynamicType = ()> + Serialize + DeserializeOwned>(
    obj: T,
    patches: &[ComponentPatch],
) -> Result<T, BuildError> {
    let kind = T::kind(&()).into_owned();
    let relevant: Vec<ComponentPatch> =
        patches.iter().filter(|p| p.kind == kind).cloned().collect();
    if relevant.is_empty() {
        return Ok(obj);
    }
    let mut value = serde_json::to_value(&obj).map_err(|source| BuildError::Serialize {
        what: kind.clone(),
        source,
    })?;
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), T::api_version(&()).into_owned().into());
        map.insert("kind".into(), kind.clone().into());
    }
    let patched: serde_json::Value = patch_object(value, &relevant, &kind)?;
    serde_json::from_value(patched).map_err(|e| {
        BuildError::Patch(PatchError::Json {
            index: 0,
            kind: kind.clone(),
            component: String::new(),
            reason: format!("the patched object is not a valid {kind}: {e}"),
        })
    })
}
