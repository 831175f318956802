//! Server-side apply of objects we build (forced: the calling controller owns every field it
//! sends) and of status, plus the controller owner reference children carry. The only writes
//! here are the ones the caller asks for; nothing is read back and re-applied.

use std::fmt::Debug;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Failures of the apply helpers.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The object has no `metadata.name`, so there is nothing to apply to.
    #[error("cannot apply a {kind} without metadata.name")]
    MissingName {
        /// Kind of the object.
        kind: String,
    },
    /// The owner has no name or uid (it was built locally, not read from the API server).
    #[error("{kind} {name:?} has no name or uid to be referenced as an owner")]
    OwnerNotPersisted {
        /// Kind of the owner.
        kind: String,
        /// Name of the owner, if any.
        name: Option<String>,
    },
    /// The API server refused the patch.
    #[error("applying {kind} {name:?} with field manager {field_manager:?}")]
    Patch {
        /// Kind of the object.
        kind: String,
        /// Name of the object.
        name: String,
        /// The field manager used.
        field_manager: String,
        /// The API error.
        #[source]
        source: Box<kube::Error>,
    },
}

impl ApplyError {
    /// The API server refused the object itself (invalid, forbidden by admission, too large):
    /// applying it again cannot succeed until its input changes. Returns the server's message.
    pub fn rejection(&self) -> Option<String> {
        match self {
            Self::Patch {
                kind, name, source, ..
            } => match source.as_ref() {
                kube::Error::Api(e) if matches!(e.code, 400 | 403 | 413 | 422) => Some(format!(
                    "the API server refused {kind} {name}: {}",
                    e.message
                )),
                _ => None,
            },
            _ => None,
        }
    }

    /// A stable, low-cardinality label for metrics and condition reasons.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::MissingName { .. } => "apply_missing_name",
            Self::OwnerNotPersisted { .. } => "owner_not_persisted",
            Self::Patch { .. } => "apply_patch",
        }
    }
}

/// Server-side applies `obj` as `field_manager`, forcing ownership of every field it sets.
///
/// `obj` should be built fresh by the caller. `metadata.managedFields` and
/// `metadata.resourceVersion` are cleared before sending: the first would be rejected by the API
/// server, the second would turn the apply into an optimistic-lock update that fails on any
/// concurrent change. Returns the object as stored.
pub async fn apply<K>(api: &Api<K>, obj: &K, field_manager: &str) -> Result<K, ApplyError>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + Debug,
{
    let name = obj
        .meta()
        .name
        .clone()
        .ok_or_else(|| ApplyError::MissingName {
            kind: K::kind(&()).into_owned(),
        })?;
    let body = prepare_for_apply(obj.clone());
    api.patch(
        &name,
        &PatchParams::apply(field_manager).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|source| ApplyError::Patch {
        kind: K::kind(&()).into_owned(),
        name,
        field_manager: field_manager.to_owned(),
        source: Box::new(source),
    })
}

/// What this process last applied, per object: a hash of the body it sent and the
/// `resourceVersion` the API server answered with. An object whose live `resourceVersion` is
/// still that one, and whose desired body hashes the same, is exactly as we left it: applying it
/// again would change nothing, so [`AppliedMemo::apply`] skips the write. Anything else (another
/// writer touched the object, the desired body changed, the process restarted with an empty memo,
/// the object is gone) applies as usual, so a reconcile stays level-triggered; only no-op writes
/// go away. A `resourceVersion` identifies one write of one object, so a stale or mistaken entry
/// can never make a different object look unchanged. Entries of deleted objects stay until the
/// process restarts (about 150 bytes each; nothing reads them again).
#[derive(Debug, Default)]
pub struct AppliedMemo {
    entries: std::sync::Mutex<std::collections::HashMap<String, (u64, String)>>,
}

impl AppliedMemo {
    /// [`apply`], unless `live_version` (the `resourceVersion` the caller just read, `None` when
    /// the object does not exist) is the one our last apply of the same body produced. Returns
    /// whether a write was made.
    pub async fn apply<K>(
        &self,
        api: &Api<K>,
        obj: &K,
        field_manager: &str,
        live_version: Option<&str>,
    ) -> Result<bool, ApplyError>
    where
        K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + Debug,
    {
        let key = memo_key(obj);
        let hash = body_hash(obj, field_manager);
        if let (Some(live), Some(key)) = (live_version, &key) {
            let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            if entries
                .get(key)
                .is_some_and(|(h, version)| *h == hash && version == live)
            {
                return Ok(false);
            }
        }
        self.write(api, obj, field_manager, key, hash).await?;
        Ok(true)
    }

    /// [`apply`] always, remembering the write like [`Self::apply`] does, and returns the object as
    /// stored (for a caller that needs what the API server filled in, e.g. a Service's cluster
    /// IP).
    pub async fn apply_stored<K>(
        &self,
        api: &Api<K>,
        obj: &K,
        field_manager: &str,
    ) -> Result<K, ApplyError>
    where
        K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + Debug,
    {
        let hash = body_hash(obj, field_manager);
        self.write(api, obj, field_manager, memo_key(obj), hash)
            .await
    }

    async fn write<K>(
        &self,
        api: &Api<K>,
        obj: &K,
        field_manager: &str,
        key: Option<String>,
        hash: u64,
    ) -> Result<K, ApplyError>
    where
        K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + Debug,
    {
        let stored = apply(api, obj, field_manager).await?;
        if let (Some(key), Some(version)) = (key, stored.meta().resource_version.clone()) {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            entries.insert(key, (hash, version));
        }
        Ok(stored)
    }

    /// How many objects are remembered.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn memo_key<K: Resource<DynamicType = ()>>(obj: &K) -> Option<String> {
    let meta = obj.meta();
    Some(format!(
        "{}/{}/{}",
        K::kind(&()),
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref()?
    ))
}

/// A hash of what an apply of `obj` as `field_manager` sends (stable within one process).
fn body_hash<K: Resource + Clone + Serialize>(obj: &K, field_manager: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    field_manager.hash(&mut hasher);
    // Serialising a typed object cannot fail; an error would only make the hash differ (and the
    // apply happen).
    serde_json::to_vec(&prepare_for_apply(obj.clone()))
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

/// Server-side applies `status` to the status subresource of the object `name`, as
/// `field_manager`, forcing ownership. Send the complete status this manager owns: fields it
/// owned before and leaves out are removed.
pub async fn apply_status<K, S>(
    api: &Api<K>,
    name: &str,
    status: &S,
    field_manager: &str,
) -> Result<K, ApplyError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Serialize,
{
    let body = status_patch_body::<K, S>(status);
    api.patch_status(
        name,
        &PatchParams::apply(field_manager).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|source| ApplyError::Patch {
        kind: K::kind(&()).into_owned(),
        name: name.to_owned(),
        field_manager: field_manager.to_owned(),
        source: Box::new(source),
    })
}

/// An owner reference making `owner` the controller of a child: `controller: true` (so
/// `Controller::owns` maps the child back) and `blockOwnerDeletion: true` (foreground deletion of
/// the owner waits for the child).
pub fn controller_owner_ref<K>(owner: &K) -> Result<OwnerReference, ApplyError>
where
    K: Resource<DynamicType = ()>,
{
    let meta = owner.meta();
    match (&meta.name, &meta.uid) {
        (Some(name), Some(uid)) => Ok(OwnerReference {
            api_version: K::api_version(&()).into_owned(),
            kind: K::kind(&()).into_owned(),
            name: name.clone(),
            uid: uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }),
        _ => Err(ApplyError::OwnerNotPersisted {
            kind: K::kind(&()).into_owned(),
            name: meta.name.clone(),
        }),
    }
}

fn prepare_for_apply<K: Resource>(mut obj: K) -> K {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    meta.resource_version = None;
    obj
}

fn status_patch_body<K, S>(status: &S) -> serde_json::Value
where
    K: Resource<DynamicType = ()>,
    S: Serialize,
{
    serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};
    use kube::ResourceExt;
    use pretty_assertions::assert_eq;

    fn persisted_config_map() -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some("owner".into()),
                namespace: Some("ns".into()),
                uid: Some("1234-abcd".into()),
                resource_version: Some("42".into()),
                managed_fields: Some(vec![ManagedFieldsEntry::default()]),
                labels: Some([("keep".to_owned(), "me".to_owned())].into()),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        }
    }

    #[test]
    fn apply_body_drops_managed_fields_and_resource_version_only() {
        let prepared = prepare_for_apply(persisted_config_map());
        assert_eq!(prepared.metadata.managed_fields, None);
        assert_eq!(prepared.metadata.resource_version, None);
        assert_eq!(prepared.metadata.name.as_deref(), Some("owner"));
        assert_eq!(
            prepared.labels().get("keep").map(String::as_str),
            Some("me")
        );
        let json = serde_json::to_value(&prepared).unwrap();
        assert_eq!(json["apiVersion"], "v1");
        assert_eq!(json["kind"], "ConfigMap");
    }

    #[test]
    fn status_body_carries_type_meta() {
        let body = status_patch_body::<ConfigMap, _>(&serde_json::json!({"ready": true}));
        assert_eq!(
            body,
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "status": {"ready": true}})
        );
    }

    #[test]
    fn controller_owner_ref_sets_controller_and_block_owner_deletion() {
        let owner = controller_owner_ref(&persisted_config_map()).unwrap();
        assert_eq!(
            owner,
            OwnerReference {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                name: "owner".into(),
                uid: "1234-abcd".into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }
        );
    }

    #[test]
    fn owner_without_uid_is_an_error() {
        let mut cm = persisted_config_map();
        cm.metadata.uid = None;
        let err = controller_owner_ref(&cm).unwrap_err();
        assert!(
            matches!(err, ApplyError::OwnerNotPersisted { .. }),
            "{err:?}"
        );
    }
}
