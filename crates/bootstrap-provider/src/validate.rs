//! Validation: a `K0sWorkerConfigSpec` plus what was fetched for it (owner name and version,
//! `contentFrom` contents) becomes a [`WorkerBootstrap`] the renderer cannot fail on.
//!
//! Pure. It never fetches: whoever calls it resolves `contentFrom` references first (the
//! reconciler from the API server, `bootstrap-provider render` with placeholders).

use std::collections::BTreeSet;

use k0smotron_api::bootstrap::v1beta2::{
    ContentSource, File, K0sWorkerConfigSpec, Platform, ProvisionerType,
};
use k0smotron_api::names;
use k0smotron_api::version;

use crate::cloudinit::UserCloudConfig;
use crate::commands::{self, CommandError, Download};
use crate::features::Gates;
use crate::ignition::{self, IgnitionError};
use crate::render::{BootstrapFile, CustomUserData, Format, WorkerBootstrap};

/// A Secret or ConfigMap key a file's content comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ContentRef {
    /// `contentFrom.secretRef`.
    Secret {
        /// Secret name (config's namespace).
        name: String,
        /// Key in `data`.
        key: String,
    },
    /// `contentFrom.configMapRef`.
    ConfigMap {
        /// ConfigMap name (config's namespace).
        name: String,
        /// Key in `data` or `binaryData`.
        key: String,
    },
}

impl ContentRef {
    /// The reference a `contentFrom` names; `None` when it names neither or both (the CRD's CEL
    /// rule forbids that, but the `render` subcommand reads files the API server never saw).
    pub fn from_source(source: &ContentSource) -> Option<Self> {
        match (&source.secret_ref, &source.config_map_ref) {
            (Some(s), None) => Some(Self::Secret {
                name: s.name.clone(),
                key: s.key.clone(),
            }),
            (None, Some(c)) => Some(Self::ConfigMap {
                name: c.name.clone(),
                key: c.key.clone(),
            }),
            _ => None,
        }
    }
}

impl std::fmt::Display for ContentRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Secret { name, key } => write!(f, "key {key:?} of Secret {name:?}"),
            Self::ConfigMap { name, key } => write!(f, "key {key:?} of ConfigMap {name:?}"),
        }
    }
}

/// What looking up a [`ContentRef`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// The content.
    Found(Vec<u8>),
    /// The Secret or ConfigMap does not exist.
    ObjectMissing,
    /// The object exists but has no such key.
    KeyMissing,
}

/// Why a spec cannot be rendered. Each variant maps to a condition reason via
/// [`ValidationError::reason`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// A format the platform cannot run (the CRD refuses these too; `render` reads files the API
    /// server never saw).
    #[error(
        "provisioner.type {format} is not for platform {platform}: linux takes cloud-config or ignition, windows takes powershell, powershell-xml or cloud-config"
    )]
    PlatformFormat {
        /// `provisioner.platform`.
        platform: &'static str,
        /// `provisioner.type`.
        format: &'static str,
    },
    /// A Windows worker without a k0s version new enough, when k0s is to be downloaded by
    /// version.
    #[error(
        "Windows workers need k0s {WINDOWS_MIN_VERSION} or newer in spec.version or the Machine's spec.version (or downloadURL / preInstalledK0s); found {found}"
    )]
    WindowsVersion {
        /// The version found, or `none`.
        found: String,
    },
    /// `oci://` downloads need `oras`, which Windows images do not have.
    #[error("downloadURL oci:// is not supported on Windows; use an http(s):// URL of k0s.exe")]
    WindowsOciDownload,
    /// Windows PowerShell 5.1 passes a `"` inside an argument to a program broken.
    #[error(
        "args: {0:?} contains a double quote, which Windows PowerShell cannot pass to k0s.exe intact"
    )]
    WindowsArgQuote(String),
    /// `CloudInitVars` templates get Linux commands.
    #[error(
        "provisioner.customUserDataRef as a CloudInitVars template is not supported on Windows; turn the gate off or use provisioner.type powershell"
    )]
    CloudInitVarsOnWindows,
    /// `provisioner.customUserDataRef` names an object or key that does not exist.
    #[error("provisioner.customUserDataRef: {reference} not found ({what})")]
    CustomUserDataNotFound {
        /// The reference.
        reference: String,
        /// `the object does not exist` or `no such key`.
        what: &'static str,
    },
    /// `provisioner.customUserDataRef` names neither or both of secretRef and configMapRef.
    #[error("provisioner.customUserDataRef must have exactly one of secretRef or configMapRef")]
    BadCustomUserDataSource,
    /// The referenced content is not a cloud-config document we can merge.
    #[error("provisioner.customUserDataRef ({reference}): {reason}")]
    CustomUserDataInvalid {
        /// The reference.
        reference: String,
        /// What is wrong with the content.
        reason: String,
    },
    /// Neither the config nor the Machine has a usable version.
    #[error("version {version:?} (from {source_field}) is not a k0s version: {reason}")]
    Version {
        /// The rejected value.
        version: String,
        /// `spec.version` or `Machine spec.version`.
        source_field: &'static str,
        /// The parser's message.
        reason: String,
    },
    /// A path that is not absolute or contains control characters.
    #[error("{field} {path:?} must be an absolute path without control characters")]
    BadPath {
        /// Which field.
        field: &'static str,
        /// The value.
        path: String,
    },
    /// Two files with one path (or a file on the join-token path).
    #[error("file path {0:?} is used twice (the join token is written to the token path)")]
    DuplicatePath(String),
    /// A `permissions` value that is not an octal mode.
    #[error("file {path:?} has permissions {permissions:?}; expected an octal mode such as 0644")]
    BadPermissions {
        /// The file.
        path: String,
        /// The value.
        permissions: String,
    },
    /// A file with neither or both of `content` and `contentFrom`, or a `contentFrom` with
    /// neither or both refs.
    #[error(
        "file {0:?} must have exactly one of content or contentFrom (with exactly one of secretRef or configMapRef)"
    )]
    BadFileSource(String),
    /// `contentFrom` names an object or key that does not exist.
    #[error("file {path:?}: contentFrom {reference} not found ({what})")]
    ContentFromNotFound {
        /// The file.
        path: String,
        /// The reference.
        reference: String,
        /// `the object does not exist` or `no such key`.
        what: &'static str,
    },
    /// `downloadURL` or `args` cannot become commands.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The Ignition settings cannot be rendered.
    #[error(transparent)]
    Ignition(#[from] IgnitionError),
    /// `provisioner.type` ignition without `provisioner.ignition`.
    #[error("provisioner.type ignition needs provisioner.ignition (variant and version)")]
    IgnitionSettingsMissing,
    /// Custom user data is cloud-init's; Ignition has `additionalConfig`.
    #[error(
        "provisioner.customUserDataRef is cloud-config and cannot go into Ignition; use provisioner.ignition.additionalConfig"
    )]
    CustomUserDataWithIgnition,
}

impl ValidationError {
    /// Reason for the `DataSecretAvailable` condition.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::PlatformFormat { .. }
            | Self::CloudInitVarsOnWindows
            | Self::CustomUserDataInvalid { .. }
            | Self::Ignition(_)
            | Self::IgnitionSettingsMissing
            | Self::CustomUserDataWithIgnition => {
                k0smotron_api::conditions::DATA_SECRET_GENERATION_FAILED_REASON
            }
            Self::ContentFromNotFound { .. } | Self::CustomUserDataNotFound { .. } => {
                k0smotron_api::conditions::CONTENT_FROM_NOT_FOUND_REASON
            }
            _ => k0smotron_api::conditions::INVALID_SPEC_REASON,
        }
    }

    /// Whether waiting could fix it (a referenced object may be created or corrected later;
    /// Secrets and ConfigMaps are not watched, so these are retried).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::ContentFromNotFound { .. }
                | Self::CustomUserDataNotFound { .. }
                | Self::CustomUserDataInvalid { .. }
        )
    }
}

/// The owner-derived inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerInfo<'a> {
    /// Machine (or MachinePool) name.
    pub name: &'a str,
    /// Its `spec.version` (`spec.template.spec.version` for a pool).
    pub version: Option<&'a str>,
    /// True for a MachinePool: all its instances share one bootstrap data, so no instance may
    /// be given the pool's name as hostname.
    pub is_pool: bool,
}

/// The oldest k0s with Windows workers (upstream's minimum).
pub const WINDOWS_MIN_VERSION: &str = "v1.34.2+k0s.0";

/// True for a Windows absolute path: `C:\x`, `C:/x`, or one from the root of the system drive
/// (`\x`, `/x`, as upstream's default `/usr/local/bin`).
fn is_windows_absolute(path: &str) -> bool {
    let b = path.as_bytes();
    path.starts_with(['/', '\\'])
        || (b.len() >= 3
            && b[0].is_ascii_alphabetic()
            && b[1] == b':'
            && matches!(b[2], b'/' | b'\\'))
}

fn check_path(field: &'static str, path: &str, platform: Platform) -> Result<(), ValidationError> {
    let absolute = match platform {
        Platform::Linux => path.starts_with('/'),
        Platform::Windows => is_windows_absolute(path),
    };
    if absolute && !path.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(ValidationError::BadPath {
            field,
            path: path.to_string(),
        })
    }
}

fn is_octal_mode(p: &str) -> bool {
    let octal =
        |s: &str| (3..=4).contains(&s.len()) && s.bytes().all(|b| (b'0'..=b'7').contains(&b));
    octal(p) || p.strip_prefix('0').is_some_and(octal)
}

/// The k0s version to install: `spec.version`, else the owner's, normalised to `vX.Y.Z+k0s.N`;
/// `None` when neither has one (the download script then installs the latest k0s).
pub fn effective_version(
    spec_version: Option<&str>,
    owner_version: Option<&str>,
) -> Result<Option<String>, ValidationError> {
    let (raw, source_field) = match (
        spec_version.filter(|v| !v.is_empty()),
        owner_version.filter(|v| !v.is_empty()),
    ) {
        (Some(v), _) => (v, "spec.version"),
        (None, Some(v)) => (v, "Machine spec.version"),
        (None, None) => return Ok(None),
    };
    // NB: upstream only swaps `-k0s.` for `+k0s.` and passes anything else through; parsing
    // refuses garbage up front and adds the `v` get.k0s.sh needs.
    version::to_release_form(raw)
        .map(Some)
        .map_err(|e| ValidationError::Version {
            version: raw.to_string(),
            source_field,
            reason: e.to_string(),
        })
}

/// Path of the join-token file: `<workingDir>/k0s.token`, or `/etc/k0s.token`.
pub fn token_path(working_dir: Option<&str>) -> String {
    match working_dir.filter(|d| !d.is_empty()) {
        Some(dir) => commands::join_path(dir, "k0s.token"),
        None => names::DEFAULT_JOIN_TOKEN_PATH.to_string(),
    }
}

/// Checks `spec` and combines it with the owner and the resolved `contentFrom` contents.
/// `resolve` is asked once per file that has `contentFrom`, and for
/// `provisioner.customUserDataRef`.
pub fn validate(
    spec: &K0sWorkerConfigSpec,
    owner: &OwnerInfo<'_>,
    resolve: impl FnMut(&ContentRef) -> Resolved,
) -> Result<WorkerBootstrap, ValidationError> {
    validate_with(spec, owner, Gates::default(), resolve)
}

/// [`validate`] under the installation's feature gates.
pub fn validate_with(
    spec: &K0sWorkerConfigSpec,
    owner: &OwnerInfo<'_>,
    gates: Gates,
    mut resolve: impl FnMut(&ContentRef) -> Resolved,
) -> Result<WorkerBootstrap, ValidationError> {
    let format = check_provisioner(spec)?;
    let platform = spec.provisioner.platform;
    let install_dir = if spec.k0s_install_dir.is_empty() {
        names::DEFAULT_K0S_INSTALL_DIR.to_string()
    } else {
        spec.k0s_install_dir.clone()
    };
    check_path("k0sInstallDir", &install_dir, platform)?;
    if let Some(dir) = spec.working_dir.as_deref().filter(|d| !d.is_empty()) {
        check_path("workingDir", dir, platform)?;
    }
    let token_path = match platform {
        Platform::Linux => token_path(spec.working_dir.as_deref()),
        Platform::Windows => match spec.working_dir.as_deref().filter(|d| !d.is_empty()) {
            Some(dir) => crate::windows::join_path(dir, "k0s.token"),
            None => names::DEFAULT_JOIN_TOKEN_PATH.to_string(),
        },
    };

    let version = effective_version(spec.version.as_deref(), owner.version)?;
    let download = Download::from_spec(
        spec.pre_installed_k0s,
        spec.download_url.as_deref(),
        version,
    )?;
    let install_args = commands::split_install_args(&spec.args)?;
    if platform == Platform::Windows {
        check_windows(&download, &install_args)?;
    }

    // Paths written so far: two entries for one path would leave the winner to cloud-init.
    let mut seen = BTreeSet::from([token_path.clone()]);
    if platform == Platform::Windows {
        seen.insert(crate::windows::INSTALL_SCRIPT_PATH.to_string());
    }
    let files = validate_files(&spec.files, platform, &mut seen, &mut resolve)?;
    let custom_user_data = match &spec.provisioner.custom_user_data_ref {
        None => None,
        Some(_) if matches!(format, Format::Ignition { .. }) => {
            return Err(ValidationError::CustomUserDataWithIgnition);
        }
        Some(_)
            if platform == Platform::Windows
                && gates.cloud_init_vars
                && format == Format::CloudConfig =>
        {
            return Err(ValidationError::CloudInitVarsOnWindows);
        }
        Some(source) => Some(validate_custom_user_data(
            source,
            gates,
            &format,
            &mut seen,
            &mut resolve,
        )?),
    };

    Ok(WorkerBootstrap {
        machine_name: owner.name.to_string(),
        token_path,
        install_dir,
        download,
        install_args,
        // NB: upstream sets `--hostname-override=<pool name>` for MachinePools, which gives every
        // instance the same node name; a pool's instances keep their own hostnames instead.
        use_system_hostname: spec.use_system_hostname || owner.is_pool,
        pre_k0s_commands: spec.pre_k0s_commands.clone(),
        post_k0s_commands: spec.post_k0s_commands.clone(),
        files,
        custom_user_data,
        format,
        platform,
    })
}

/// What only Windows needs: a k0s download it can do (by version: one new enough), and
/// arguments PowerShell passes intact.
fn check_windows(download: &Download, args: &commands::InstallArgs) -> Result<(), ValidationError> {
    match download {
        Download::Oci { .. } => return Err(ValidationError::WindowsOciDownload),
        Download::Script { version } => {
            let min = version::K0sVersion::parse(WINDOWS_MIN_VERSION);
            let found = version.as_deref().map(version::K0sVersion::parse);
            match (found, min) {
                (Some(Ok(found)), Ok(min)) if found >= min => {}
                _ => {
                    return Err(ValidationError::WindowsVersion {
                        found: version.clone().unwrap_or_else(|| "none".into()),
                    });
                }
            }
        }
        Download::PreInstalled | Download::Http { .. } => {}
    }
    match args
        .args
        .iter()
        .chain(&args.kubelet_extra_args)
        .find(|a| a.contains('"'))
    {
        Some(arg) => Err(ValidationError::WindowsArgQuote(arg.clone())),
        None => Ok(()),
    }
}

/// cloud-config and Ignition for Linux, PowerShell (plain or in XML) and cloud-config for
/// Windows; an Ignition spec version and the translated `additionalConfig` are worked out here,
/// so rendering cannot fail on them.
fn check_provisioner(spec: &K0sWorkerConfigSpec) -> Result<Format, ValidationError> {
    let platform = spec.provisioner.platform;
    let mismatch = || ValidationError::PlatformFormat {
        platform: match platform {
            Platform::Linux => "linux",
            Platform::Windows => "windows",
        },
        format: spec.provisioner.type_.as_str(),
    };
    match (spec.provisioner.type_, platform) {
        (ProvisionerType::CloudConfig, _) => Ok(Format::CloudConfig),
        (ProvisionerType::Powershell, Platform::Windows) => Ok(Format::PowerShell),
        (ProvisionerType::PowershellXml, Platform::Windows) => Ok(Format::PowerShellXml),
        (ProvisionerType::Powershell | ProvisionerType::PowershellXml, Platform::Linux)
        | (ProvisionerType::Ignition, Platform::Windows) => Err(mismatch()),
        (ProvisionerType::Ignition, Platform::Linux) => {
            let settings = spec
                .provisioner
                .ignition
                .as_ref()
                .ok_or(ValidationError::IgnitionSettingsMissing)?;
            let spec_version = ignition::spec_version(settings.variant, &settings.version)?;
            let additional = settings
                .additional_config
                .as_deref()
                .filter(|t| !t.trim().is_empty())
                .map(|text| {
                    ignition::translate_butane(
                        text,
                        settings.variant,
                        &settings.version,
                        spec_version,
                    )
                })
                .transpose()?;
            Ok(Format::Ignition {
                spec_version,
                additional,
            })
        }
    }
}

/// `spec.files` with their contents: paths absolute and not in `seen` (each is added),
/// permissions octal, content inline or from a resolved `contentFrom`.
fn validate_files(
    spec_files: &[File],
    platform: Platform,
    seen: &mut BTreeSet<String>,
    resolve: &mut impl FnMut(&ContentRef) -> Resolved,
) -> Result<Vec<BootstrapFile>, ValidationError> {
    let mut files = Vec::with_capacity(spec_files.len());
    for file in spec_files {
        check_path("files[].path", &file.path, platform)?;
        if !seen.insert(file.path.clone()) {
            return Err(ValidationError::DuplicatePath(file.path.clone()));
        }
        if let Some(p) = &file.permissions
            && !is_octal_mode(p)
        {
            return Err(ValidationError::BadPermissions {
                path: file.path.clone(),
                permissions: p.clone(),
            });
        }
        files.push(BootstrapFile {
            path: file.path.clone(),
            content: file_content(file, resolve)?,
            permissions: file.permissions.clone(),
        });
    }
    Ok(files)
}

/// A file's content: exactly one of `content` and `contentFrom`.
fn file_content(
    file: &File,
    resolve: &mut impl FnMut(&ContentRef) -> Resolved,
) -> Result<Vec<u8>, ValidationError> {
    let source = match (&file.content, &file.content_from) {
        (Some(content), None) => return Ok(content.clone().into_bytes()),
        (None, Some(source)) => source,
        _ => return Err(ValidationError::BadFileSource(file.path.clone())),
    };
    let reference = ContentRef::from_source(source)
        .ok_or_else(|| ValidationError::BadFileSource(file.path.clone()))?;
    let not_found = |what| ValidationError::ContentFromNotFound {
        path: file.path.clone(),
        reference: reference.to_string(),
        what,
    };
    match resolve(&reference) {
        Resolved::Found(bytes) => Ok(bytes),
        Resolved::ObjectMissing => Err(not_found("the object does not exist")),
        Resolved::KeyMissing => Err(not_found("no such key")),
    }
}

/// `provisioner.customUserDataRef`, resolved and parsed; none of its `write_files` paths may be
/// in `seen` (the provider's own files). Under `CloudInitVars` it is a Jinja template, kept as
/// text: only cloud-init can render it, on the machine.
fn validate_custom_user_data(
    source: &ContentSource,
    gates: Gates,
    format: &Format,
    seen: &mut BTreeSet<String>,
    resolve: &mut impl FnMut(&ContentRef) -> Resolved,
) -> Result<CustomUserData, ValidationError> {
    let reference =
        ContentRef::from_source(source).ok_or(ValidationError::BadCustomUserDataSource)?;
    let not_found = |what| ValidationError::CustomUserDataNotFound {
        reference: reference.to_string(),
        what,
    };
    let bytes = match resolve(&reference) {
        Resolved::Found(bytes) => bytes,
        Resolved::ObjectMissing => return Err(not_found("the object does not exist")),
        Resolved::KeyMissing => return Err(not_found("no such key")),
    };
    let invalid = |reason: String| ValidationError::CustomUserDataInvalid {
        reference: reference.to_string(),
        reason,
    };
    let text =
        String::from_utf8(bytes).map_err(|_| invalid("the content is not UTF-8 text".into()))?;
    if matches!(format, Format::PowerShell | Format::PowerShellXml) {
        // NB: upstream appends it to the user data, after the install script has run (and
        // written the sentinel); we run it in the install script before the sentinel.
        return Ok(CustomUserData::PowerShell(text));
    }
    if gates.cloud_init_vars {
        return Ok(CustomUserData::Template(text));
    }
    let user = UserCloudConfig::parse(&text).map_err(|e| invalid(e.to_string()))?;
    // Which of two entries for one path wins would depend on cloud-init's order.
    for path in user.paths() {
        if !seen.insert(path.to_owned()) {
            return Err(invalid(format!(
                "write_files path {path:?} is also written by the provider (the join token or spec.files)"
            )));
        }
    }
    Ok(CustomUserData::CloudConfig(user))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use k0smotron_api::bootstrap::v1beta2::{ContentSourceRef, File};
    use pretty_assertions::assert_eq;

    fn owner() -> OwnerInfo<'static> {
        OwnerInfo {
            name: "worker-0",
            version: Some("v1.34.1"),
            is_pool: false,
        }
    }

    fn no_refs(_: &ContentRef) -> Resolved {
        panic!("no contentFrom expected")
    }

    fn secret_file(path: &str, name: &str, key: &str) -> File {
        File {
            path: path.into(),
            content: None,
            permissions: None,
            content_from: Some(ContentSource {
                secret_ref: Some(ContentSourceRef {
                    name: name.into(),
                    key: key.into(),
                }),
                config_map_ref: None,
            }),
        }
    }

    #[test]
    fn version_prefers_spec_then_machine_and_normalises() {
        assert_eq!(
            effective_version(Some("v1.35.7+k0s.1"), Some("v1.34.1"))
                .unwrap()
                .as_deref(),
            Some("v1.35.7+k0s.1")
        );
        assert_eq!(
            effective_version(None, Some("v1.34.1")).unwrap().as_deref(),
            Some("v1.34.1+k0s.0")
        );
        assert_eq!(
            effective_version(None, Some("v1.34.1-k0s.2"))
                .unwrap()
                .as_deref(),
            Some("v1.34.1+k0s.2")
        );
        assert_eq!(effective_version(Some(""), None).unwrap(), None);
        let err = effective_version(None, Some("latest; reboot")).unwrap_err();
        assert!(matches!(
            err,
            ValidationError::Version {
                source_field: "Machine spec.version",
                ..
            }
        ));
    }

    #[test]
    fn defaults() {
        let b = validate(&K0sWorkerConfigSpec::default(), &owner(), no_refs).unwrap();
        assert_eq!(b.token_path, "/etc/k0s.token");
        assert_eq!(b.install_dir, "/usr/local/bin");
        assert_eq!(
            b.download,
            Download::Script {
                version: Some("v1.34.1+k0s.0".into())
            }
        );
        assert!(!b.use_system_hostname);
    }

    #[test]
    fn working_dir_moves_the_token() {
        let spec = K0sWorkerConfigSpec {
            working_dir: Some("/var/lib/k0smotron/".into()),
            ..K0sWorkerConfigSpec::default()
        };
        assert_eq!(
            validate(&spec, &owner(), no_refs).unwrap().token_path,
            "/var/lib/k0smotron/k0s.token"
        );
    }

    #[test]
    fn pools_never_share_a_hostname_override() {
        let o = OwnerInfo {
            is_pool: true,
            ..owner()
        };
        assert!(
            validate(&K0sWorkerConfigSpec::default(), &o, no_refs)
                .unwrap()
                .use_system_hostname
        );
    }

    #[test]
    fn content_from_is_resolved_or_reported() {
        let spec = K0sWorkerConfigSpec {
            files: vec![secret_file("/etc/a", "s", "k")],
            ..K0sWorkerConfigSpec::default()
        };
        let b = validate(&spec, &owner(), |r| {
            assert_eq!(
                r,
                &ContentRef::Secret {
                    name: "s".into(),
                    key: "k".into()
                }
            );
            Resolved::Found(b"data".to_vec())
        })
        .unwrap();
        assert_eq!(b.files[0].content, b"data");

        let err = validate(&spec, &owner(), |_| Resolved::ObjectMissing).unwrap_err();
        assert_eq!(
            err.reason(),
            k0smotron_api::conditions::CONTENT_FROM_NOT_FOUND_REASON
        );
        assert!(err.is_transient());
        let msg = err.to_string();
        assert!(
            msg.contains("/etc/a") && msg.contains("Secret \"s\""),
            "{msg}"
        );
        let err = validate(&spec, &owner(), |_| Resolved::KeyMissing).unwrap_err();
        assert!(err.to_string().contains("no such key"));
    }

    #[test]
    fn custom_user_data_is_resolved_parsed_and_checked() {
        let mut spec = K0sWorkerConfigSpec::default();
        spec.provisioner.custom_user_data_ref = Some(ContentSource {
            secret_ref: None,
            config_map_ref: Some(ContentSourceRef {
                name: "cm".into(),
                key: "user-data".into(),
            }),
        });
        let found = |text: &'static str| move |_: &ContentRef| Resolved::Found(text.into());

        let b = validate(&spec, &owner(), found("packages: [htop]\n")).unwrap();
        let Some(CustomUserData::CloudConfig(user)) = b.custom_user_data else {
            panic!("{:?}", b.custom_user_data);
        };
        assert_eq!(user.other["packages"], serde_json::json!(["htop"]));

        // Under CloudInitVars the content is a template, kept as written (it need not be YAML).
        let template = "runcmd:\n{% for c in k0smotron_preK0sCommands %}  - {{ c }}\n{% endfor %}";
        let gates = Gates {
            cloud_init_vars: true,
        };
        let b = validate_with(&spec, &owner(), gates, found(template)).unwrap();
        assert_eq!(
            b.custom_user_data,
            Some(CustomUserData::Template(template.into()))
        );
        assert!(validate(&spec, &owner(), found(template)).is_err());

        // Missing: transient, ContentFromNotFound, naming the reference.
        for (resolved, what) in [
            (Resolved::ObjectMissing, "the object does not exist"),
            (Resolved::KeyMissing, "no such key"),
        ] {
            let err = validate(&spec, &owner(), |_| resolved.clone()).unwrap_err();
            assert_eq!(
                err.reason(),
                k0smotron_api::conditions::CONTENT_FROM_NOT_FOUND_REASON
            );
            assert!(err.is_transient());
            let msg = err.to_string();
            assert!(
                msg.contains("customUserDataRef")
                    && msg.contains("ConfigMap \"cm\"")
                    && msg.contains(what),
                "{msg}"
            );
        }

        // Content that cannot be merged: DataSecretGenerationFailed with the reason.
        let err = validate(&spec, &owner(), found("runcmd: echo\n")).unwrap_err();
        assert_eq!(
            err.reason(),
            k0smotron_api::conditions::DATA_SECRET_GENERATION_FAILED_REASON
        );
        assert!(err.to_string().contains("runcmd is not a list"), "{err}");
        let err = validate(&spec, &owner(), |_| Resolved::Found(vec![0xff, 0xfe])).unwrap_err();
        assert!(err.to_string().contains("not UTF-8"), "{err}");

        // Its files may not take the join token's path, nor a spec file's.
        let err = validate(
            &spec,
            &owner(),
            found("write_files: [{path: /etc/k0s.token, content: x}]\n"),
        )
        .unwrap_err();
        assert!(err.is_transient());
        assert!(
            err.to_string()
                .contains("\"/etc/k0s.token\" is also written"),
            "{err}"
        );
        spec.files = vec![File {
            path: "/etc/a".into(),
            content: Some("spec".into()),
            permissions: None,
            content_from: None,
        }];
        let err = validate(
            &spec,
            &owner(),
            found("write_files: [{path: /etc/a, content: user}]\n"),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("\"/etc/a\" is also written"),
            "{err}"
        );

        // Neither ref: refused.
        spec.provisioner.custom_user_data_ref = Some(ContentSource {
            secret_ref: None,
            config_map_ref: None,
        });
        assert_eq!(
            validate(&spec, &owner(), no_refs).unwrap_err(),
            ValidationError::BadCustomUserDataSource
        );
    }

    #[test]
    fn bad_files_are_refused() {
        let file = |path: &str, perm: Option<&str>| File {
            path: path.into(),
            content: Some("x".into()),
            permissions: perm.map(Into::into),
            content_from: None,
        };
        let with = |files: Vec<File>| K0sWorkerConfigSpec {
            files,
            ..K0sWorkerConfigSpec::default()
        };
        assert!(matches!(
            validate(&with(vec![file("relative", None)]), &owner(), no_refs),
            Err(ValidationError::BadPath { .. })
        ));
        assert!(matches!(
            validate(
                &with(vec![file("/a", None), file("/a", None)]),
                &owner(),
                no_refs
            ),
            Err(ValidationError::DuplicatePath(_))
        ));
        assert!(matches!(
            validate(&with(vec![file("/etc/k0s.token", None)]), &owner(), no_refs),
            Err(ValidationError::DuplicatePath(_))
        ));
        assert!(matches!(
            validate(
                &with(vec![file("/a", Some("rw-r--r--"))]),
                &owner(),
                no_refs
            ),
            Err(ValidationError::BadPermissions { .. })
        ));
        assert!(matches!(
            validate(&with(vec![file("/a", Some("0999"))]), &owner(), no_refs),
            Err(ValidationError::BadPermissions { .. })
        ));
        for ok in ["644", "0644", "0755", "1777", "01777"] {
            assert!(
                validate(&with(vec![file("/a", Some(ok))]), &owner(), no_refs).is_ok(),
                "{ok}"
            );
        }
        let mut both = file("/a", None);
        both.content_from = secret_file("/a", "s", "k").content_from;
        assert!(matches!(
            validate(&with(vec![both]), &owner(), no_refs),
            Err(ValidationError::BadFileSource(_))
        ));
    }

    #[test]
    fn formats_must_suit_the_platform() {
        let mut spec = K0sWorkerConfigSpec::default();
        spec.provisioner.type_ = ProvisionerType::Powershell;
        let err = validate(&spec, &owner(), no_refs).unwrap_err();
        assert_eq!(
            err.to_string(),
            "provisioner.type powershell is not for platform linux: linux takes cloud-config or ignition, windows takes powershell, powershell-xml or cloud-config"
        );
        assert_eq!(err.reason(), "DataSecretGenerationFailed");
        spec.provisioner.type_ = ProvisionerType::Ignition;
        spec.provisioner.platform = Platform::Windows;
        assert!(matches!(
            validate(&spec, &owner(), no_refs),
            Err(ValidationError::PlatformFormat {
                platform: "windows",
                format: "ignition"
            })
        ));
    }

    fn windows_spec() -> K0sWorkerConfigSpec {
        let mut spec = K0sWorkerConfigSpec::default();
        spec.provisioner.type_ = ProvisionerType::Powershell;
        spec.provisioner.platform = Platform::Windows;
        spec
    }

    #[test]
    fn windows_takes_windows_paths_and_a_recent_k0s() {
        let mut spec = windows_spec();
        spec.version = Some("v1.34.2".into());
        spec.k0s_install_dir = r"C:\k0s".into();
        spec.working_dir = Some(r"D:\k0s-work".into());
        spec.files = vec![File {
            path: "C:/etc/app.conf".into(),
            content: Some("x".into()),
            permissions: None,
            content_from: None,
        }];
        let b = validate(&spec, &owner(), no_refs).unwrap();
        assert_eq!(b.format, Format::PowerShell);
        assert_eq!(b.platform, Platform::Windows);
        assert_eq!(b.token_path, r"D:\k0s-work\k0s.token");
        assert_eq!(b.install_dir, r"C:\k0s");
        // The owner's version v1.34.1 is too old; none at all is refused too (no "latest").
        spec.version = Some("v1.34.1+k0s.0".into());
        assert_eq!(
            validate(&spec, &owner(), no_refs).unwrap_err(),
            ValidationError::WindowsVersion {
                found: "v1.34.1+k0s.0".into()
            }
        );
        let nobody = OwnerInfo {
            version: None,
            ..owner()
        };
        spec.version = None;
        assert!(matches!(
            validate(&spec, &nobody, no_refs),
            Err(ValidationError::WindowsVersion { .. })
        ));
        spec.version = Some("v1.35.0+k0s.0".into());
        assert!(validate(&spec, &nobody, no_refs).is_ok());
        // A relative path is refused, as on Linux.
        spec.k0s_install_dir = "k0s".into();
        assert!(matches!(
            validate(&spec, &owner(), no_refs),
            Err(ValidationError::BadPath {
                field: "k0sInstallDir",
                ..
            })
        ));
        // Linux keeps refusing drive paths.
        let linux = K0sWorkerConfigSpec {
            k0s_install_dir: r"C:\k0s".into(),
            ..K0sWorkerConfigSpec::default()
        };
        assert!(validate(&linux, &owner(), no_refs).is_err());
    }

    #[test]
    fn windows_refuses_what_it_cannot_run() {
        let mut spec = windows_spec();
        spec.version = Some("v1.34.2+k0s.0".into());
        spec.download_url = Some("oci://registry.example/k0s@sha256:abc".into());
        assert_eq!(
            validate(&spec, &owner(), no_refs).unwrap_err(),
            ValidationError::WindowsOciDownload
        );
        spec.download_url = Some("https://mirror.example/k0s.exe".into());
        assert!(validate(&spec, &owner(), no_refs).is_ok());
        spec.args = vec![r#"--kubelet-extra-args="--a=\"b\"""#.into()];
        assert!(matches!(
            validate(&spec, &owner(), no_refs),
            Err(ValidationError::WindowsArgQuote(_))
        ));
        spec.args = vec![];
        spec.files = vec![File {
            path: crate::windows::INSTALL_SCRIPT_PATH.into(),
            content: Some("x".into()),
            permissions: None,
            content_from: None,
        }];
        assert!(matches!(
            validate(&spec, &owner(), no_refs),
            Err(ValidationError::DuplicatePath(_))
        ));
    }

    #[test]
    fn windows_custom_user_data_is_powershell_text() {
        let mut spec = windows_spec();
        spec.version = Some("v1.34.2+k0s.0".into());
        spec.provisioner.custom_user_data_ref = Some(ContentSource {
            secret_ref: Some(ContentSourceRef {
                name: "s".into(),
                key: "k".into(),
            }),
            config_map_ref: None,
        });
        let found = |_: &ContentRef| Resolved::Found(b"Write-Host 'not yaml: ['".to_vec());
        let b = validate(&spec, &owner(), found).unwrap();
        assert_eq!(
            b.custom_user_data,
            Some(CustomUserData::PowerShell(
                "Write-Host 'not yaml: ['".into()
            ))
        );
        // cloud-config on Windows merges cloud-config, but takes no CloudInitVars template.
        spec.provisioner.type_ = ProvisionerType::CloudConfig;
        assert!(matches!(
            validate(&spec, &owner(), found),
            Err(ValidationError::CustomUserDataInvalid { .. })
        ));
        let gates = "CloudInitVars=true".parse().unwrap();
        assert_eq!(
            validate_with(&spec, &owner(), gates, found).unwrap_err(),
            ValidationError::CloudInitVarsOnWindows
        );
    }

    #[test]
    fn ignition_needs_a_known_variant_and_version_and_no_custom_user_data() {
        use k0smotron_api::bootstrap::v1beta2::{IgnitionSpec, IgnitionVariant};
        let mut spec = K0sWorkerConfigSpec::default();
        spec.provisioner.type_ = ProvisionerType::Ignition;
        let err = validate(&spec, &owner(), no_refs).unwrap_err();
        assert_eq!(err, ValidationError::IgnitionSettingsMissing);
        spec.provisioner.ignition = Some(IgnitionSpec {
            variant: IgnitionVariant::Flatcar,
            version: "1.1.0".into(),
            additional_config: None,
        });
        let b = validate(&spec, &owner(), no_refs).unwrap();
        assert_eq!(
            b.format,
            Format::Ignition {
                spec_version: "3.4.0",
                additional: None
            }
        );
        for (variant, version, text) in [
            (
                IgnitionVariant::Flatcar,
                "9.9.9",
                "not a stable Butane version",
            ),
            (IgnitionVariant::Openshift, "4.20.0", "fcos and flatcar are"),
        ] {
            spec.provisioner.ignition = Some(IgnitionSpec {
                variant,
                version: version.into(),
                additional_config: None,
            });
            let err = validate(&spec, &owner(), no_refs).unwrap_err();
            assert!(err.to_string().contains(text), "{err}");
            assert_eq!(err.reason(), "DataSecretGenerationFailed");
        }
        spec.provisioner.ignition = Some(IgnitionSpec {
            variant: IgnitionVariant::Fcos,
            version: "1.5.0".into(),
            additional_config: None,
        });
        spec.provisioner.custom_user_data_ref = Some(ContentSource {
            secret_ref: Some(ContentSourceRef {
                name: "s".into(),
                key: "k".into(),
            }),
            config_map_ref: None,
        });
        assert_eq!(
            validate(&spec, &owner(), no_refs).unwrap_err(),
            ValidationError::CustomUserDataWithIgnition
        );
    }
}
