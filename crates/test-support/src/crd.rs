//! Installing CRDs from YAML files (e.g. `$CAPI_CRD_DIR`, `$K0S_CRD_DIR`) and waiting until the
//! API server serves them. Owns CRD apply only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};

use crate::wait::{WaitError, wait_for};

/// Field manager for CRDs applied by tests.
const FIELD_MANAGER: &str = "test-support";

/// Why CRDs could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    /// A file or directory could not be read.
    #[error("reading {path}")]
    Read {
        /// The path.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// A document is not a CustomResourceDefinition.
    #[error("parsing {path}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: serde_saphyr::Error,
    },
    /// A CRD has no name.
    #[error("a CRD in {path} has no metadata.name")]
    Unnamed {
        /// The file.
        path: PathBuf,
    },
    /// Server-side apply failed.
    #[error("applying CRD {name} from {path}")]
    Apply {
        /// CRD name.
        name: String,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: kube::Error,
    },
    /// The CRD did not become Established.
    #[error(transparent)]
    NotEstablished(#[from] WaitError),
}

/// Server-side apply every CRD in a (possibly multi-document) YAML file and wait until each is
/// `Established`. Returns the applied CRDs.
pub async fn apply_crd_file(
    client: &Client,
    path: &Path,
) -> Result<Vec<CustomResourceDefinition>, CrdError> {
    let text = std::fs::read_to_string(path).map_err(|source| CrdError::Read {
        path: path.to_owned(),
        source,
    })?;
    let docs: Vec<Option<CustomResourceDefinition>> =
        serde_saphyr::from_multiple(&text).map_err(|source| CrdError::Parse {
            path: path.to_owned(),
            source,
        })?;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut applied = Vec::new();
    for crd in docs.into_iter().flatten() {
        let name = crd.metadata.name.clone().ok_or_else(|| CrdError::Unnamed {
            path: path.to_owned(),
        })?;
        release_webhook_url(&api, &crd, &name)
            .await
            .map_err(|source| CrdError::Apply {
                name: name.clone(),
                path: path.to_owned(),
                source,
            })?;
        let crd = api
            .patch(&name, &params, &Patch::Apply(&crd))
            .await
            .map_err(|source| CrdError::Apply {
                name: name.clone(),
                path: path.to_owned(),
                source,
            })?;
        applied.push(crd);
    }
    for crd in &applied {
        let name = crd.metadata.name.as_deref().unwrap_or_default();
        wait_for(
            &api,
            name,
            is_established,
            Duration::from_secs(30),
            "CRD condition Established=True",
        )
        .await?;
    }
    Ok(applied)
}

/// A provider run with `--webhook-url` (a test's, perhaps one that did not finish) leaves the
/// live CRD's conversion pointing at a URL; applying a file that names a Service would then ask
/// for both, which the API server refuses. Put the file's Service back first (and drop the CA
/// bundle that went with the URL).
async fn release_webhook_url(
    api: &Api<CustomResourceDefinition>,
    crd: &CustomResourceDefinition,
    name: &str,
) -> Result<(), kube::Error> {
    let client_config = |crd: &CustomResourceDefinition| {
        crd.spec
            .conversion
            .as_ref()
            .and_then(|c| c.webhook.as_ref())
            .and_then(|w| w.client_config.clone())
    };
    let Some(service) = client_config(crd).and_then(|c| c.service) else {
        return Ok(());
    };
    let Some(live) = api.get_opt(name).await? else {
        return Ok(());
    };
    if client_config(&live).is_some_and(|c| c.url.is_some()) {
        let patch = serde_json::json!({"spec": {"conversion": {"webhook": {"clientConfig": {
            "url": null, "caBundle": null, "service": service,
        }}}}});
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    Ok(())
}

/// [`apply_crd_file`] for every `*.yaml`/`*.yml` file in `dir` (sorted by name).
pub async fn apply_crd_dir(
    client: &Client,
    dir: &Path,
) -> Result<Vec<CustomResourceDefinition>, CrdError> {
    let read_err = |source| CrdError::Read {
        path: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let path = entry.map_err(read_err)?.path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
    files.sort();
    let mut applied = Vec::new();
    for file in files {
        applied.extend(apply_crd_file(client, &file).await?);
    }
    Ok(applied)
}

fn is_established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| {
            c.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}
