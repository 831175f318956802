//! `bootstrap-provider render`: the bootstrap data a `K0sWorkerConfig` (or the spec of a
//! `K0sWorkerConfigTemplate`) yields, without a cluster, with a placeholder token and CA.
//!
//! Runs the same [`crate::validate`] and [`crate::render`] code as the controller; only the
//! inputs that come from clusters (token, CA, endpoint, `contentFrom` data) are stand-ins.

use k0smotron_api::bootstrap::v1beta2::{
    K0sWorkerConfig, K0sWorkerConfigSpec, K0sWorkerConfigTemplate,
};
use kube::Resource as _;

use crate::join_token::{self, JoinTokenError};
use crate::render::RenderError;
use crate::token::BootstrapToken;
use crate::validate::{self, OwnerInfo, Resolved, ValidationError};

/// Endpoint used when `--endpoint` is not given (`.invalid` never resolves).
pub const PLACEHOLDER_ENDPOINT: &str = "https://control-plane.example.invalid:6443";
/// The CA certificate embedded in the placeholder join token.
pub const PLACEHOLDER_CA: &str = "-----BEGIN CERTIFICATE-----\nPLACEHOLDER-CLUSTER-CA (the <cluster>-ca Secret's tls.crt at reconcile time)\n-----END CERTIFICATE-----\n";

/// Errors of the offline renderer.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// The input is not YAML.
    #[error("reading the input as YAML")]
    Yaml(#[source] serde_saphyr::Error),
    /// No `K0sWorkerConfig` or `K0sWorkerConfigTemplate` document in the input.
    #[error("the input has no K0sWorkerConfig or K0sWorkerConfigTemplate document")]
    NoConfig,
    /// More than one candidate document.
    #[error(
        "the input has {0} K0sWorkerConfig/K0sWorkerConfigTemplate documents; pass a file with exactly one"
    )]
    Ambiguous(usize),
    /// The document does not match the schema.
    #[error("the {kind} document does not match the v1beta2 schema")]
    Schema {
        /// The kind.
        kind: String,
        /// The decoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// `--endpoint` is not an `https://` URL.
    #[error("--endpoint {0:?} must be an https:// URL such as https://10.0.0.1:6443")]
    Endpoint(String),
    /// The spec is invalid.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// Encoding the placeholder join token failed.
    #[error(transparent)]
    JoinToken(#[from] JoinTokenError),
    /// Rendering failed.
    #[error(transparent)]
    Render(#[from] RenderError),
}

/// Inputs a cluster would provide, given on the command line instead.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OfflineOptions {
    /// Stand-in for the owner Machine's `spec.version`.
    pub machine_version: Option<String>,
    /// API server URL for the join token; [`PLACEHOLDER_ENDPOINT`] by default.
    pub endpoint: Option<String>,
    /// Stand-in for the owner Machine's name; the config's name by default.
    pub machine_name: Option<String>,
    /// The content `provisioner.customUserDataRef` names, to see how it merges; without it the
    /// custom user data is left out.
    pub custom_user_data: Option<String>,
    /// Feature gates, as the provider runs with.
    pub gates: crate::features::Gates,
}

/// The spec and name found in the input.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigInput {
    /// `metadata.name`, if any.
    pub name: Option<String>,
    /// The spec (a template's `spec.template.spec`).
    pub spec: K0sWorkerConfigSpec,
}

/// Finds the one `K0sWorkerConfig` or `K0sWorkerConfigTemplate` in a (multi-document) YAML text.
pub fn parse_input(text: &str) -> Result<ConfigInput, OfflineError> {
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(text).map_err(OfflineError::Yaml)?;
    let config_kind = K0sWorkerConfig::kind(&()).into_owned();
    let template_kind = K0sWorkerConfigTemplate::kind(&()).into_owned();
    let mut candidates: Vec<serde_json::Value> = docs
        .into_iter()
        .filter(|d| {
            d.get("kind")
                .and_then(|k| k.as_str())
                .is_some_and(|k| k == config_kind || k == template_kind)
        })
        .collect();
    let doc = match candidates.len() {
        0 => return Err(OfflineError::NoConfig),
        1 => candidates.remove(0),
        n => return Err(OfflineError::Ambiguous(n)),
    };
    let kind = doc
        .get("kind")
        .and_then(|k| k.as_str())
        .unwrap_or_default()
        .to_string();
    let schema = |source| OfflineError::Schema {
        kind: kind.clone(),
        source,
    };
    if kind == template_kind {
        let t: K0sWorkerConfigTemplate = serde_json::from_value(doc).map_err(schema)?;
        Ok(ConfigInput {
            name: t.metadata.name.clone(),
            spec: t.spec.template.spec,
        })
    } else {
        let c: K0sWorkerConfig = serde_json::from_value(doc).map_err(schema)?;
        Ok(ConfigInput {
            name: c.metadata.name.clone(),
            spec: c.spec,
        })
    }
}

/// Renders the bootstrap data of `input` with placeholders for everything a cluster provides.
pub fn render(input: &ConfigInput, options: &OfflineOptions) -> Result<String, OfflineError> {
    let machine_name = options
        .machine_name
        .clone()
        .or_else(|| input.name.clone())
        .unwrap_or_else(|| "worker".to_string());
    let endpoint = options
        .endpoint
        .clone()
        .unwrap_or_else(|| PLACEHOLDER_ENDPOINT.to_string());
    if !endpoint.starts_with("https://") || endpoint.chars().any(char::is_whitespace) {
        return Err(OfflineError::Endpoint(endpoint));
    }
    let owner = OwnerInfo {
        name: &machine_name,
        version: options.machine_version.as_deref(),
        is_pool: false,
    };
    let custom_ref = input
        .spec
        .provisioner
        .custom_user_data_ref
        .as_ref()
        .and_then(validate::ContentRef::from_source);
    let bootstrap = validate::validate_with(&input.spec, &owner, options.gates, |reference| {
        match &options.custom_user_data {
            Some(text) if custom_ref.as_ref() == Some(reference) => {
                Resolved::Found(text.clone().into_bytes())
            }
            // A comment: file content that says where it comes from, and an empty document as
            // custom user data.
            _ => Resolved::Found(
                format!(
                    "# contentFrom: {reference} (filled in by the provider at reconcile time)\n"
                )
                .into_bytes(),
            ),
        }
    })?;
    let join = join_token::encode(
        &endpoint,
        PLACEHOLDER_CA.as_bytes(),
        &BootstrapToken::placeholder(),
    )?;
    Ok(bootstrap.render(&join)?)
}

/// [`parse_input`] then [`render`].
pub fn render_text(text: &str, options: &OfflineOptions) -> Result<String, OfflineError> {
    render(&parse_input(text)?, options)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: unrelated}
---
apiVersion: bootstrap.cluster.x-k8s.io/v1beta2
kind: K0sWorkerConfig
metadata:
  name: md-0-abc
spec:
  version: v1.34.1+k0s.0
"#;

    #[test]
    fn picks_the_config_among_other_documents() {
        let input = parse_input(CONFIG).unwrap();
        assert_eq!(input.name.as_deref(), Some("md-0-abc"));
        assert_eq!(input.spec.version.as_deref(), Some("v1.34.1+k0s.0"));
        // Defaults of the schema apply to omitted fields.
        assert_eq!(input.spec.k0s_install_dir, "/usr/local/bin");
    }

    #[test]
    fn template_spec_is_used() {
        let text = "apiVersion: bootstrap.cluster.x-k8s.io/v1beta2\nkind: K0sWorkerConfigTemplate\nmetadata: {name: t}\nspec:\n  template:\n    spec:\n      useSystemHostname: true\n";
        assert!(parse_input(text).unwrap().spec.use_system_hostname);
    }

    #[test]
    fn no_or_several_configs_are_errors() {
        assert!(matches!(
            parse_input("kind: ConfigMap\n"),
            Err(OfflineError::NoConfig)
        ));
        let two = format!("{CONFIG}\n---\n{CONFIG}");
        assert!(matches!(parse_input(&two), Err(OfflineError::Ambiguous(2))));
    }

    #[test]
    fn placeholder_token_decodes_to_the_endpoint() {
        let text = render_text(
            CONFIG,
            &OfflineOptions {
                endpoint: Some("https://10.1.2.3:30443".into()),
                ..OfflineOptions::default()
            },
        )
        .unwrap();
        let join = crate::render::recover_join_token(&text, "/etc/k0s.token").unwrap();
        let kc = join_token::decode(&join).unwrap();
        assert_eq!(kc.clusters[0].cluster.server, "https://10.1.2.3:30443");
        assert_eq!(kc.worker_token().unwrap(), BootstrapToken::placeholder());
        assert!(text.contains("--hostname-override=md-0-abc"));
    }

    #[test]
    fn endpoint_must_be_https() {
        let err = render_text(
            CONFIG,
            &OfflineOptions {
                endpoint: Some("10.1.2.3:6443".into()),
                ..OfflineOptions::default()
            },
        );
        assert!(matches!(err, Err(OfflineError::Endpoint(_))));
    }
}
