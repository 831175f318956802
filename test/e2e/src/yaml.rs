//! Multi-document YAML (what clusterctl and kustomize print) as JSON values, and the few
//! accessors the tests use on them. Parsing only.

use serde_json::Value;

/// The YAML could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("parsing YAML documents")]
pub struct YamlError(#[source] pub serde_saphyr::Error);

/// Every non-empty document of a `---`-separated YAML stream.
pub fn documents(text: &str) -> Result<Vec<Value>, YamlError> {
    let docs: Vec<Option<Value>> = serde_saphyr::from_multiple(text).map_err(YamlError)?;
    Ok(docs
        .into_iter()
        .flatten()
        .filter(|doc| !doc.is_null())
        .collect())
}

/// `kind` of an object ("" if absent).
pub fn kind(obj: &Value) -> &str {
    obj["kind"].as_str().unwrap_or_default()
}

/// `metadata.name` of an object ("" if absent).
pub fn name(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

/// `metadata.namespace` of an object, if set.
pub fn namespace(obj: &Value) -> Option<&str> {
    obj["metadata"]["namespace"].as_str()
}

/// The value of label `key`, if the object has it.
pub fn label<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj["metadata"]["labels"][key].as_str()
}

/// `Kind/name` for messages.
pub fn describe(obj: &Value) -> String {
    format!("{}/{}", kind(obj), name(obj))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn splits_documents_and_skips_empty_ones() {
        let docs = documents(
            "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\n---\n# only a comment\n---\nkind: ConfigMap\nmetadata:\n  name: b\n  namespace: a\n  labels:\n    x: blue\n",
        )
        .unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(describe(&docs[0]), "Namespace/a");
        assert_eq!(namespace(&docs[1]), Some("a"));
        assert_eq!(label(&docs[1], "x"), Some("blue"));
        assert_eq!(label(&docs[0], "x"), None);
    }

    #[test]
    fn rejects_broken_yaml() {
        assert!(documents("kind: [unclosed").is_err());
    }
}
