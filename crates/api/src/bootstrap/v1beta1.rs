//! `bootstrap.cluster.x-k8s.io/v1beta1`: `K0sWorkerConfig` and its template as upstream
//! k0smotron's v1beta1 Go types serialise them. Only the conversion to and from v1beta2 (the
//! stored version, [`crate::conversion`]) reads these types; the CRDs we install do not serve this
//! version yet.
//!
//! What differs from v1beta2: `ignition` and `customUserDataRef` sit at the top of the spec
//! (v1beta2: under `provisioner`, whose `type` is `ignition` exactly when `ignition` is set), the
//! commands are `preStartCommands`/`postStartCommands`, there is no platform, and the status
//! says `ready` for v1beta2's `initialization.dataSecretCreated`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bootstrap::v1beta2::{ContentSource, File, IgnitionSpec, default_install_dir};
use crate::common::ObjectLabels;

/// How to install k0s on a worker Machine (v1beta1 layout).
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "bootstrap.cluster.x-k8s.io",
    version = "v1beta1",
    kind = "K0sWorkerConfig",
    plural = "k0sworkerconfigs",
    singular = "k0sworkerconfig",
    namespaced,
    status = "K0sWorkerConfigStatus",
    derive = "PartialEq",
    derive = "Default",
    deprecated,
    category = "cluster-api",
    doc = "K0sWorkerConfig (v1beta1, deprecated) is a Cluster API bootstrap config that installs k0s on a worker Machine.",
    label("cluster.x-k8s.io/v1beta1", "v1beta1"),
    label("cluster.x-k8s.io/provider", "bootstrap-k0smotron")
)]
#[serde(rename_all = "camelCase")]
pub struct K0sWorkerConfigSpec {
    /// Produce Ignition (rendered from Butane) instead of cloud-init (v1beta2:
    /// `provisioner.type: ignition` and `provisioner.ignition`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignition: Option<IgnitionSpec>,
    /// Directory of the k0s binary on the node.
    #[serde(default = "default_install_dir")]
    pub k0s_install_dir: String,
    /// k0s version; defaults to the owning Machine's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Use the host's own hostname as the node name.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub use_system_hostname: bool,
    /// Extra files written to the node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<File>,
    /// Extra `k0s worker` arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Commands run before k0s is installed (v1beta2: `preK0sCommands`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre_start_commands: Vec<String>,
    /// Commands run after k0s has started (v1beta2: `postK0sCommands`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_start_commands: Vec<String>,
    /// The k0s binary is already on the node.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pre_installed_k0s: bool,
    /// URL of the k0s binary.
    #[serde(
        rename = "downloadURL",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub download_url: Option<String>,
    /// User data of the user's own (v1beta2: `provisioner.customUserDataRef`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_user_data_ref: Option<ContentSource>,
    /// Labels and annotations for the bootstrap data Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_metadata: Option<ObjectLabels>,
    /// Directory for the join token and k0s files on the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
}

/// The spec the API server produces from `spec: {}` (upstream's v1beta1 defaults applied).
impl Default for K0sWorkerConfigSpec {
    fn default() -> Self {
        Self {
            ignition: None,
            k0s_install_dir: default_install_dir(),
            version: None,
            use_system_hostname: false,
            files: Vec::new(),
            args: Vec::new(),
            pre_start_commands: Vec::new(),
            post_start_commands: Vec::new(),
            pre_installed_k0s: false,
            download_url: None,
            custom_user_data_ref: None,
            secret_metadata: None,
            working_dir: None,
        }
    }
}

/// Observed state of a v1beta1 `K0sWorkerConfig` (CAPI v1beta1 bootstrap contract).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct K0sWorkerConfigStatus {
    /// The data Secret exists (v1beta2: `initialization.dataSecretCreated`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ready: bool,
    /// Name of the Secret holding the bootstrap data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_secret_name: Option<String>,
    /// Conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Template for v1beta1 `K0sWorkerConfig` objects.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "bootstrap.cluster.x-k8s.io",
    version = "v1beta1",
    kind = "K0sWorkerConfigTemplate",
    plural = "k0sworkerconfigtemplates",
    singular = "k0sworkerconfigtemplate",
    namespaced,
    derive = "PartialEq",
    derive = "Default",
    deprecated,
    category = "cluster-api",
    doc = "K0sWorkerConfigTemplate (v1beta1, deprecated) is a template for K0sWorkerConfig objects.",
    label("cluster.x-k8s.io/v1beta1", "v1beta1"),
    label("cluster.x-k8s.io/provider", "bootstrap-k0smotron")
)]
#[serde(rename_all = "camelCase")]
pub struct K0sWorkerConfigTemplateSpec {
    /// The template.
    #[serde(default)]
    pub template: K0sWorkerConfigTemplateResource,
}

/// `spec.template` of a v1beta1 `K0sWorkerConfigTemplate`. Upstream's `metadata` is a whole
/// `ObjectMeta`; only labels and annotations mean anything in a template, and only they are kept.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct K0sWorkerConfigTemplateResource {
    /// Labels and annotations of the created object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ObjectLabels>,
    /// Spec of the created object.
    #[serde(default)]
    pub spec: K0sWorkerConfigSpec,
}
