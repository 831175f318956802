//! The objects of one control plane as upstream k0smotron v2 leaves them in the management
//! cluster (`crates/controlplane-provider/tests/fixtures/upstream-v2/control-plane.yaml`), for
//! the migration tests: the fixture's placeholders filled in, each document with the field
//! manager and the kind of write upstream used. Reads the file only; writes nothing.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// How upstream wrote an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamWrite {
    /// A POST (CAPI's secret package, controller-runtime's `Create`).
    Create,
    /// A forced server-side apply (upstream's `reconcileResource`).
    Apply,
}

/// One object of the fixture.
#[derive(Clone, Debug)]
pub struct UpstreamObject {
    /// The field manager upstream wrote it with (its `# manager:` comment).
    pub manager: String,
    /// How upstream wrote it (its `# write:` comment).
    pub write: UpstreamWrite,
    /// The object.
    pub object: serde_json::Value,
}

/// Why the fixture could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// The file could not be read.
    #[error("reading {}", path.display())]
    Read {
        /// The fixture's path.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// A placeholder has no value.
    #[error("no value for the placeholder in: {0}")]
    Unfilled(String),
    /// A document lacks its `# manager:` or `# write:` comment, or names an unknown write.
    #[error("document {index}: `# {key}:` missing or unknown")]
    Comment {
        /// The document's index.
        index: usize,
        /// The comment's key.
        key: &'static str,
    },
    /// A document is not YAML.
    #[error("document {index}")]
    Parse {
        /// The document's index.
        index: usize,
        /// What went wrong.
        #[source]
        source: serde_saphyr::Error,
    },
}

/// The fixture's path.
pub fn upstream_fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../controlplane-provider/tests/fixtures/upstream-v2/control-plane.yaml")
}

/// The fixture's documents in its order (the intermediate Cluster first), every `${KEY}`
/// replaced by `values[KEY]`.
pub fn upstream_fixture(
    values: &BTreeMap<&str, String>,
) -> Result<Vec<UpstreamObject>, FixtureError> {
    let path = upstream_fixture_path();
    let mut text = std::fs::read_to_string(&path).map_err(|source| FixtureError::Read {
        path: path.clone(),
        source,
    })?;
    for (key, value) in values {
        text = text.replace(&format!("${{{key}}}"), value);
    }
    if let Some(line) = text.lines().find(|l| l.contains("${")) {
        return Err(FixtureError::Unfilled(line.trim().to_owned()));
    }
    text.split("\n---\n")
        .enumerate()
        .map(|(index, doc)| {
            let comment = |key: &'static str| {
                doc.lines()
                    .find_map(|l| l.strip_prefix(&format!("# {key}: ")))
                    .map(|v| v.trim().to_owned())
                    .ok_or(FixtureError::Comment { index, key })
            };
            let manager = comment("manager")?;
            let write = match comment("write")?.as_str() {
                "create" => UpstreamWrite::Create,
                "apply" => UpstreamWrite::Apply,
                _ => {
                    return Err(FixtureError::Comment {
                        index,
                        key: "write",
                    });
                }
            };
            let object = serde_saphyr::from_str(doc)
                .map_err(|source| FixtureError::Parse { index, source })?;
            Ok(UpstreamObject {
                manager,
                write,
                object,
            })
        })
        .collect()
}
