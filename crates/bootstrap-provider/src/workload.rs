//! The workload cluster side: a client built from the `<cluster>-kubeconfig` Secret (only once
//! [`provider_runtime::kubeconfig::validate`] accepted it), and the bootstrap-token Secrets we
//! keep in its `kube-system`.
//!
//! Owns every call to a workload API server. It never writes anything but our own
//! `bootstrap-token-*` Secrets (found by the `bootstrap.k0smotron.io/config-uid` label).

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client};
use provider_runtime::apply::{self, ApplyError};
use provider_runtime::kubeconfig::{self, Endpoint, Refusal, Timeouts};

use crate::token::{self, BootstrapToken, TokenError, TokenOwner};

/// Field manager of the token Secrets in the workload cluster.
pub const TOKEN_FIELD_MANAGER: &str = "k0s-bootstrap/token";

/// Give up on an unreachable workload API server quickly: a reconcile worker waits for it.
const TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(10),
    io: Duration::from_secs(30),
};

/// Errors talking to a workload cluster.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// The kubeconfig Secret has no `value` key, or it is not UTF-8.
    #[error("Secret {secret} has no kubeconfig in key \"value\"")]
    NoKubeconfig {
        /// `<namespace>/<name>` of the Secret.
        secret: String,
    },
    /// The kubeconfig is refused (see [`provider_runtime::kubeconfig`]): it is never used.
    #[error("kubeconfig in Secret {secret} is refused: {refusal}")]
    Refused {
        /// `<namespace>/<name>` of the Secret.
        secret: String,
        /// Why.
        refusal: Refusal,
    },
    /// The Cluster has no `spec.controlPlaneEndpoint` to check the kubeconfig against.
    #[error("Cluster {cluster} has no spec.controlPlaneEndpoint to check its kubeconfig against")]
    NoEndpoint {
        /// `<namespace>/<name>` of the Cluster.
        cluster: String,
    },
    /// The accepted kubeconfig cannot be turned into a client.
    #[error("kubeconfig in Secret {secret} is unusable")]
    BadKubeconfig {
        /// `<namespace>/<name>` of the Secret.
        secret: String,
        /// What kube said.
        #[source]
        source: kube::Error,
    },
    /// A call to the workload API server failed.
    #[error("{action} in the workload cluster")]
    Api {
        /// What we tried.
        action: String,
        /// The error.
        #[source]
        source: kube::Error,
    },
    /// Applying a token Secret failed.
    #[error("applying the bootstrap token Secret in the workload cluster")]
    Apply(#[source] ApplyError),
    /// A token Secret of ours holds a malformed token.
    #[error("bootstrap token Secret {name} in the workload cluster is malformed")]
    MalformedToken {
        /// Secret name.
        name: String,
        /// Why.
        #[source]
        source: TokenError,
    },
}

impl WorkloadError {
    /// Stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::NoKubeconfig { .. } => "workload_no_kubeconfig",
            Self::Refused { .. } => "workload_kubeconfig_refused",
            Self::NoEndpoint { .. } => "workload_no_endpoint",
            Self::BadKubeconfig { .. } => "workload_bad_kubeconfig",
            Self::Api { .. } => "workload_api",
            Self::Apply(_) => "workload_apply",
            Self::MalformedToken { .. } => "workload_malformed_token",
        }
    }
}

/// A client for one workload cluster's `kube-system` token Secrets.
#[derive(Clone)]
pub struct Workload {
    secrets: Api<Secret>,
    /// The CA the kubeconfig trusts, PEM (`None` for a client handed in by a test).
    ca_pem: Option<String>,
}

impl Workload {
    /// A client from the kubeconfig in `secret` (a CAPI `<cluster>-kubeconfig` Secret), which must
    /// point at `endpoint` (the Cluster's `spec.controlPlaneEndpoint`) with inline credentials
    /// only. A refused kubeconfig is never handed to kube: no connection, no file read, no
    /// command run.
    pub fn from_kubeconfig_secret(
        secret: &Secret,
        endpoint: &Endpoint<'_>,
    ) -> Result<Self, WorkloadError> {
        let secret_name = format!(
            "{}/{}",
            secret.metadata.namespace.as_deref().unwrap_or_default(),
            secret.metadata.name.as_deref().unwrap_or_default()
        );
        let text = secret
            .data
            .as_ref()
            .and_then(|d| d.get(k0smotron_api::names::SECRET_VALUE_KEY))
            .and_then(|v| std::str::from_utf8(&v.0).ok())
            .ok_or_else(|| WorkloadError::NoKubeconfig {
                secret: secret_name.clone(),
            })?;
        let trusted =
            kubeconfig::validate(text, endpoint).map_err(|refusal| WorkloadError::Refused {
                secret: secret_name.clone(),
                refusal,
            })?;
        let client = trusted
            .client(TIMEOUTS)
            .map_err(|source| WorkloadError::BadKubeconfig {
                secret: secret_name,
                source,
            })?;
        Ok(Self {
            ca_pem: Some(trusted.ca_pem()),
            ..Self::new(client)
        })
    }

    /// The CA certificates the kubeconfig trusts (PEM): the workload cluster's CA, which the
    /// control-plane provider put there from `<cluster>-ca`.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// Wraps an existing client (tests).
    pub fn new(client: Client) -> Self {
        Self {
            secrets: Api::namespaced(client, token::TOKEN_NAMESPACE),
            ca_pem: None,
        }
    }

    /// The token Secrets labelled for config `config_uid`.
    pub async fn tokens_for(&self, config_uid: &str) -> Result<Vec<Secret>, WorkloadError> {
        let selector = format!("{}={config_uid}", token::CONFIG_UID_LABEL);
        self.secrets
            .list(&ListParams::default().labels(&selector))
            .await
            .map(|l| l.items)
            .map_err(|source| WorkloadError::Api {
                action: format!("listing bootstrap token Secrets with {selector}"),
                source,
            })
    }

    /// The token already issued for config `config_uid`, if any (the oldest, should there be
    /// several).
    pub async fn existing_token(
        &self,
        config_uid: &str,
    ) -> Result<Option<BootstrapToken>, WorkloadError> {
        let mut secrets = self.tokens_for(config_uid).await?;
        secrets.sort_by(|a, b| {
            a.metadata
                .creation_timestamp
                .cmp(&b.metadata.creation_timestamp)
        });
        match secrets.first() {
            None => Ok(None),
            Some(s) => token::token_from_secret(s).map(Some).map_err(|source| {
                WorkloadError::MalformedToken {
                    name: s.metadata.name.clone().unwrap_or_default(),
                    source,
                }
            }),
        }
    }

    /// The token Secret of token `id`, if it exists.
    pub async fn token_secret(&self, id: &str) -> Result<Option<Secret>, WorkloadError> {
        let name = token::secret_name(id);
        self.secrets
            .get_opt(&name)
            .await
            .map_err(|source| WorkloadError::Api {
                action: format!("reading Secret kube-system/{name}"),
                source,
            })
    }

    /// Creates or updates the token Secret so `token` is valid until `expiration`.
    pub async fn apply_token(
        &self,
        token: &BootstrapToken,
        expiration: Timestamp,
        owner: &TokenOwner,
    ) -> Result<(), WorkloadError> {
        let secret = token::token_secret(token, expiration, owner);
        apply::apply(&self.secrets, &secret, TOKEN_FIELD_MANAGER)
            .await
            .map(|_| ())
            .map_err(WorkloadError::Apply)
    }

    /// Deletes the token Secret of token `id`; a missing Secret is fine.
    pub async fn delete_token(&self, id: &str) -> Result<(), WorkloadError> {
        let name = token::secret_name(id);
        match self.secrets.delete(&name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
            Err(source) => Err(WorkloadError::Api {
                action: format!("deleting Secret kube-system/{name}"),
                source,
            }),
        }
    }

    /// Deletes every token Secret labelled for config `config_uid`; returns how many.
    pub async fn delete_tokens_for(&self, config_uid: &str) -> Result<usize, WorkloadError> {
        let secrets = self.tokens_for(config_uid).await?;
        for s in &secrets {
            if let Some(id) = s
                .metadata
                .name
                .as_deref()
                .and_then(|n| n.strip_prefix("bootstrap-token-"))
            {
                self.delete_token(id).await?;
            }
        }
        Ok(secrets.len())
    }
}
