//! Why the build failed: one error per cause, each mapped to a condition reason.

use k0smotron_api::conditions;

use crate::certs::CertError;
use crate::hash::HashError;
use crate::k0s_config::K0sConfigError;
use crate::kubeconfig::KubeconfigError;
use crate::patches::PatchError;
use crate::statefulset::StatefulSetError;
use crate::validate::SpecError;

/// Why the build failed; each maps to a condition reason.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The spec is refused.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The k0s config cannot be merged.
    #[error("spec.k0sConfig: {0}")]
    K0sConfig(#[from] K0sConfigError),
    /// A referenced Secret does not exist or lacks keys.
    #[error("{0}")]
    ReferenceNotFound(String),
    /// A referenced Secret holds unusable material.
    #[error("{0}")]
    InvalidSecret(String),
    /// A patch cannot be applied.
    #[error(transparent)]
    Patch(#[from] PatchError),
    /// Certificate generation failed.
    #[error(transparent)]
    Certificate(#[from] CertError),
    /// Kubeconfig generation failed.
    #[error(transparent)]
    Kubeconfig(#[from] KubeconfigError),
    /// A CA Secret of an initialized control plane is missing: a new CA would lock out every
    /// node and client that trusts the old one, so none is generated.
    #[error(
        "Secret {secret} ({what}) is missing and the control plane is initialized: a new CA would lock out every node and client that trusts the old one, so none is generated. Restore the Secret from a backup (same name and namespace, keys tls.crt and tls.key), or delete the K0smotronControlPlane to start over with new certificates"
    )]
    CaMissing {
        /// The Secret's name.
        secret: String,
        /// What it holds.
        what: &'static str,
    },
    /// The StatefulSet cannot be built (e.g. an invalid mount).
    #[error(transparent)]
    StatefulSet(#[from] StatefulSetError),
    /// Hashing failed.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// Serialising a generated object failed (a bug).
    #[error("serialising the generated {what}: {source}")]
    Serialize {
        /// What.
        what: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The k0s config YAML could not be written (a bug).
    #[error("writing the k0s config YAML: {0}")]
    Yaml(#[source] serde_saphyr::SerializeError),
    /// The control plane has no name, namespace or uid.
    #[error("the K0smotronControlPlane has no {0}")]
    Incomplete(&'static str),
    /// Building panicked (a bug of this provider, reached through this spec).
    #[error(
        "building the control plane's objects failed on a provider bug (please report it): {0}"
    )]
    Panicked(String),
}

impl BuildError {
    /// Condition reason and metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Spec(SpecError::Unsupported(_)) => conditions::UNSUPPORTED_FEATURE_REASON,
            Self::Spec(SpecError::NotAllowed { .. }) => conditions::FIELD_NOT_ALLOWED_REASON,
            Self::Spec(SpecError::Invalid(_)) | Self::K0sConfig(_) | Self::Patch(_) => {
                conditions::INVALID_SPEC_REASON
            }
            Self::StatefulSet(StatefulSetError::InvalidMount { .. }) => {
                conditions::INVALID_SPEC_REASON
            }
            Self::ReferenceNotFound(_) => conditions::REFERENCE_NOT_FOUND_REASON,
            Self::CaMissing { .. } => conditions::CA_MISSING_REASON,
            Self::InvalidSecret(_) => conditions::INVALID_SECRET_REASON,
            Self::Certificate(_) | Self::Kubeconfig(_) => {
                conditions::CERTIFICATES_NOT_AVAILABLE_REASON
            }
            _ => conditions::INTERNAL_ERROR_REASON,
        }
    }
}
