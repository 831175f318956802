//! `bootstrap.cluster.x-k8s.io/v1beta2`: `K0sWorkerConfig` (bootstrap data that installs k0s on
//! a worker Machine and joins it to the cluster) and `K0sWorkerConfigTemplate`.
//!
//! The spec is upstream k0smotron's v1beta2 `K0sWorkerConfigSpec` field for field. Upstream's
//! validating webhook checks are expressed as OpenAPI constraints and CEL rules.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{common::ObjectLabels, names};

/// RE2 pattern of `spec.version`: the release spelling only. Upstream's webhook refuses the
/// image-tag spelling `-k0s.N` for worker configs, and so do we: the version ends up in the
/// download URL of the k0s binary, where only `+k0s.N` exists.
pub const VERSION_PATTERN: &str =
    r"^v[0-9]+\.[0-9]+\.[0-9]+(-(alpha|beta|rc)\.[0-9]+)?(\+k0s\.[0-9]+)?$";

// ---------------------------------------------------------------------------------------------
// K0sWorkerConfig
// ---------------------------------------------------------------------------------------------

/// How to install k0s on a worker Machine and join it to the cluster.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "bootstrap.cluster.x-k8s.io",
    version = "v1beta2",
    kind = "K0sWorkerConfig",
    plural = "k0sworkerconfigs",
    singular = "k0sworkerconfig",
    namespaced,
    status = "K0sWorkerConfigStatus",
    derive = "PartialEq",
    derive = "Default",
    category = "cluster-api",
    doc = "K0sWorkerConfig is a Cluster API bootstrap config that installs k0s on a worker Machine and joins it to the cluster.",
    printcolumn(
        name = "Cluster",
        type_ = "string",
        description = "Cluster",
        json_path = ".metadata.labels['cluster\\.x-k8s\\.io/cluster-name']"
    ),
    printcolumn(
        name = "DataSecretCreated",
        type_ = "boolean",
        description = "Whether the bootstrap data Secret exists",
        json_path = ".status.initialization.dataSecretCreated"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        description = "Time since creation",
        json_path = ".metadata.creationTimestamp"
    ),
    label("cluster.x-k8s.io/v1beta2", "v1beta2"),
    label("cluster.x-k8s.io/provider", "bootstrap-k0smotron")
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.provisioner.platform != 'windows' || !has(self.version) || !self.version.matches('^v1[.][0-9]+[.][0-9]+') || int(self.version.split('.')[1]) > 34 || (int(self.version.split('.')[1]) == 34 && int(self.version.split('.')[2].split('+')[0].split('-')[0]) >= 2)",
        "message": "Windows workers need k0s v1.34.2+k0s.0 or newer",
        "fieldPath": ".version"
    }
]))]
pub struct K0sWorkerConfigSpec {
    /// Format of the bootstrap data and target platform.
    #[serde(default)]
    pub provisioner: ProvisionerSpec,

    /// Directory of the k0s binary on the node.
    #[serde(default = "default_install_dir")]
    #[schemars(length(min = 1, max = 4096))]
    pub k0s_install_dir: String,

    /// k0s version, e.g. `v1.35.7+k0s.0`. Defaults to the owning Machine's `spec.version`; ignored
    /// when `downloadURL` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^v[0-9]+\.[0-9]+\.[0-9]+(-(alpha|beta|rc)\.[0-9]+)?(\+k0s\.[0-9]+)?$"),
        length(max = 64),
        extend("x-kubernetes-validations" = [
            {
                "rule": "!self.contains('-k0s.')",
                "message": "use the release spelling +k0s.N (e.g. v1.35.7+k0s.0); -k0s.N is the image-tag spelling"
            }
        ])
    )]
    pub version: Option<String>,

    /// Use the host's own hostname as the node name instead of the Machine name.
    #[serde(default)]
    pub use_system_hostname: bool,

    /// Extra files written to the node. Paths must be unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 256),
        extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["path"])
    )]
    pub files: Vec<File>,

    /// Extra `k0s install worker` arguments; `--kubelet-extra-args` values are merged with the
    /// provider's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,

    /// Commands run before k0s is downloaded and installed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre_k0s_commands: Vec<String>,

    /// Commands run after k0s has started.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_k0s_commands: Vec<String>,

    /// The k0s binary is already on the node; skip the download.
    #[serde(default)]
    pub pre_installed_k0s: bool,

    /// URL of the k0s binary (`http://`, `https://` or `oci://`); when set, `version` is ignored.
    /// `oci://` needs `oras` on the node.
    #[serde(
        rename = "downloadURL",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(regex(pattern = r"^(https?|oci)://"), length(max = 2048))]
    pub download_url: Option<String>,

    /// Labels and annotations for the bootstrap data Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_metadata: Option<ObjectLabels>,

    /// Directory for the join token and k0s files on the node (token default `/etc/k0s.token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
}

pub(crate) fn default_install_dir() -> String {
    names::DEFAULT_K0S_INSTALL_DIR.to_owned()
}

/// The spec the API server produces from `spec: {}` (every schema default applied).
impl Default for K0sWorkerConfigSpec {
    fn default() -> Self {
        Self {
            provisioner: ProvisionerSpec::default(),
            k0s_install_dir: default_install_dir(),
            version: None,
            use_system_hostname: false,
            files: Vec::new(),
            args: Vec::new(),
            pre_k0s_commands: Vec::new(),
            post_k0s_commands: Vec::new(),
            pre_installed_k0s: false,
            download_url: None,
            secret_metadata: None,
            working_dir: None,
        }
    }
}

/// Format of the bootstrap data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ProvisionerType {
    /// cloud-init `#cloud-config`.
    #[default]
    #[serde(rename = "cloud-config")]
    CloudConfig,
    /// Ignition (rendered from Butane).
    #[serde(rename = "ignition")]
    Ignition,
    /// A PowerShell script (Windows).
    #[serde(rename = "powershell")]
    Powershell,
    /// A PowerShell script wrapped in XML (Windows user data).
    #[serde(rename = "powershell-xml")]
    PowershellXml,
}

impl ProvisionerType {
    /// The value written to the data Secret's `format` key.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CloudConfig => "cloud-config",
            Self::Ignition => "ignition",
            Self::Powershell => "powershell",
            Self::PowershellXml => "powershell-xml",
        }
    }
}

/// Operating system family of the node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Platform {
    /// Linux.
    #[default]
    #[serde(rename = "linux")]
    Linux,
    /// Windows (k0s v1.34.2+k0s.0 or newer).
    #[serde(rename = "windows")]
    Windows,
}

/// Format of the bootstrap data and target platform.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
// NB: upstream accepts every pair; a Linux node cannot run PowerShell nor a Windows node Ignition.
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.type) || !(self.type in ['powershell', 'powershell-xml']) || (has(self.platform) && self.platform == 'windows')",
        "message": "provisioner.type powershell and powershell-xml need platform windows",
        "fieldPath": ".platform"
    },
    {
        "rule": "!has(self.platform) || self.platform != 'windows' || !has(self.type) || self.type != 'ignition'",
        "message": "platform windows takes provisioner.type powershell, powershell-xml or cloud-config, not ignition",
        "fieldPath": ".type"
    }
]))]
pub struct ProvisionerSpec {
    /// Bootstrap data format: `cloud-config` or `ignition` (Linux); `powershell`,
    /// `powershell-xml` (the script between `<powershell>` tags, e.g. for AWS) or `cloud-config`
    /// (e.g. for RemoteMachine) on Windows.
    #[serde(rename = "type", default)]
    pub type_: ProvisionerType,
    /// Target platform: `linux` or `windows`.
    #[serde(default)]
    pub platform: Platform,
    /// Butane variant and version for the `ignition` format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignition: Option<IgnitionSpec>,
    /// User data of the user's own, merged with (cloud-init) or appended to the generated data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_user_data_ref: Option<ContentSource>,
}

/// Butane variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum IgnitionVariant {
    /// Fedora CoreOS.
    #[serde(rename = "fcos")]
    Fcos,
    /// Flatcar.
    #[serde(rename = "flatcar")]
    Flatcar,
    /// OpenShift.
    #[serde(rename = "openshift")]
    Openshift,
    /// RHEL for Edge.
    #[serde(rename = "r4e")]
    R4e,
    /// Fedora IoT.
    #[serde(rename = "fiot")]
    Fiot,
}

/// Ignition output settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IgnitionSpec {
    /// Butane variant.
    pub variant: IgnitionVariant,
    /// Butane spec version of the variant, e.g. `1.5.0`.
    #[schemars(length(min = 1, max = 32))]
    pub version: String,
    /// Extra Butane YAML merged into the generated config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_config: Option<String>,
}

/// A file written to the node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.content) != has(self.contentFrom)",
        "message": "exactly one of content or contentFrom must be set"
    }
]))]
pub struct File {
    /// Absolute path of the file on the node.
    #[schemars(length(min = 1, max = 4096))]
    pub path: String,
    /// File content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// File mode in octal, e.g. `0644`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^0?[0-7]{3,4}$"))]
    pub permissions: Option<String>,
    /// Take the content from a Secret or ConfigMap key instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_from: Option<ContentSource>,
}

/// A Secret or ConfigMap key to read content from; exactly one of the two.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.secretRef) != has(self.configMapRef)",
        "message": "exactly one of secretRef or configMapRef must be set"
    }
]))]
pub struct ContentSource {
    /// A key of a Secret in the config's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<ContentSourceRef>,
    /// A key of a ConfigMap in the config's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<ContentSourceRef>,
}

/// A key of a Secret or ConfigMap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContentSourceRef {
    /// Object name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key in the object.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

// ---------------------------------------------------------------------------------------------
// Status
// ---------------------------------------------------------------------------------------------

/// Observed state of a `K0sWorkerConfig`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct K0sWorkerConfigStatus {
    /// CAPI contract: name of the Secret holding the bootstrap data (keys `value` and `format`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub data_secret_name: Option<String>,
    /// CAPI contract: initialization milestones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initialization: Option<BootstrapInitialization>,
    /// Conditions: `Ready` (mirrored by CAPI into the Machine), `DataSecretAvailable`, `Paused`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// `status.initialization` (CAPI v1beta2 bootstrap contract).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapInitialization {
    /// True once the data Secret exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_secret_created: Option<bool>,
}

// ---------------------------------------------------------------------------------------------
// K0sWorkerConfigTemplate
// ---------------------------------------------------------------------------------------------

/// Template for `K0sWorkerConfig` objects (used by MachineDeployments, MachinePools, ClusterClass).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "bootstrap.cluster.x-k8s.io",
    version = "v1beta2",
    kind = "K0sWorkerConfigTemplate",
    plural = "k0sworkerconfigtemplates",
    singular = "k0sworkerconfigtemplate",
    namespaced,
    derive = "PartialEq",
    derive = "Default",
    category = "cluster-api",
    doc = "K0sWorkerConfigTemplate is a template for K0sWorkerConfig objects.",
    label("cluster.x-k8s.io/v1beta2", "v1beta2"),
    label("cluster.x-k8s.io/provider", "bootstrap-k0smotron")
)]
#[serde(rename_all = "camelCase")]
pub struct K0sWorkerConfigTemplateSpec {
    /// The template.
    pub template: K0sWorkerConfigTemplateResource,
}

/// `spec.template` of a `K0sWorkerConfigTemplate`.
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
