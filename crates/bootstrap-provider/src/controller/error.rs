//! Reconcile failures: what failed, for retries, logs and the failure metric. Conditions carry
//! the user-facing story.

use kube::runtime::finalizer;
use provider_runtime::apply::ApplyError;
use provider_runtime::reconcile::ReconcileError;

use crate::join_token::JoinTokenError;
use crate::render::RenderError;
use crate::workload::WorkloadError;

/// Reconcile failures. Conditions carry the user-facing story; these drive retries and metrics.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A management-cluster read failed.
    #[error("{action}")]
    Kube {
        /// What we tried.
        action: String,
        /// The error.
        #[source]
        source: kube::Error,
    },
    /// A management-cluster write failed.
    #[error("applying {what}")]
    Apply {
        /// What we applied.
        what: &'static str,
        /// The error.
        #[source]
        source: ApplyError,
    },
    /// The workload cluster could not be reached or refused a call.
    #[error("workload cluster of Cluster {cluster}")]
    Workload {
        /// The CAPI Cluster.
        cluster: String,
        /// The error.
        #[source]
        source: WorkloadError,
    },
    /// Rendering the bootstrap data failed.
    #[error("rendering bootstrap data")]
    Render(#[source] RenderError),
    /// Encoding the join token failed.
    #[error("encoding the join token")]
    JoinToken(#[source] JoinTokenError),
    /// The existing data Secret carries no token we can read back.
    #[error("data Secret {secret} has no readable join token")]
    UnreadableDataSecret {
        /// The Secret.
        secret: String,
    },
    /// The object lacks metadata the API server always sets.
    #[error("K0sWorkerConfig has no metadata.{0}")]
    MissingMetadata(&'static str),
    /// The finalizer machinery failed (adding/removing the finalizer, or a wrapped error).
    #[error("finalizer")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
}

impl ReconcileError for Error {
    fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube { .. } => "kube",
            Self::Apply { .. } => "apply",
            Self::Workload { source, .. } => source.metric_label(),
            Self::Render(_) => "render",
            Self::JoinToken(_) => "join_token",
            Self::UnreadableDataSecret { .. } => "unreadable_data_secret",
            Self::MissingMetadata(_) => "missing_metadata",
            Self::Finalizer(inner) => match inner.as_ref() {
                finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => {
                    e.metric_label()
                }
                _ => "finalizer",
            },
        }
    }
}

pub(super) fn kube_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let action = action.into();
    move |source| Error::Kube { action, source }
}

pub(super) fn workload_err(cluster_name: &str) -> impl Fn(WorkloadError) -> Error + Copy + '_ {
    move |source| Error::Workload {
        cluster: cluster_name.to_string(),
        source,
    }
}
