//! The pure bootstrap-data renderer: a validated [`WorkerBootstrap`] plus a join token become the
//! user data (cloud-config, Ignition, PowerShell or PowerShell in XML), in upstream's file and
//! command order.
//!
//! No I/O and no randomness: the same input always renders the same bytes, which is what makes
//! snapshot tests and the `render` subcommand meaningful.

use crate::cloudinit::{CloudConfig, CloudInitError, UserCloudConfig, WriteFile};
use crate::commands::{
    self, Download, InstallArgs, InstallCommand, SENTINEL_COMMAND, START_COMMAND,
};
use crate::jinja;
use crate::windows;
use k0smotron_api::bootstrap::v1beta2::Platform;

/// Mode of the join-token file.
pub const TOKEN_FILE_PERMISSIONS: &str = "0600";

/// Errors from rendering.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The cloud-config document could not be written.
    #[error("writing cloud-config")]
    CloudInit(#[from] CloudInitError),
    /// The user data has no file at the join-token path (recovering the token).
    #[error("bootstrap data has no join token file at {path}")]
    NoTokenFile {
        /// The expected path.
        path: String,
    },
    /// The join-token file is not text.
    #[error("join token file {path} is not text")]
    TokenNotText {
        /// The path.
        path: String,
    },
}

/// One extra file for the machine, with its content already resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapFile {
    /// Absolute path.
    pub path: String,
    /// Content bytes.
    pub content: Vec<u8>,
    /// Octal mode string, e.g. `0644`.
    pub permissions: Option<String>,
}

/// Everything the renderer needs, validated: no field here can make rendering fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerBootstrap {
    /// Name of the owning Machine (node name unless `use_system_hostname`).
    pub machine_name: String,
    /// Where the join token is written.
    pub token_path: String,
    /// Where k0s is installed.
    pub install_dir: String,
    /// How k0s is downloaded.
    pub download: Download,
    /// `k0s install worker` arguments.
    pub install_args: InstallArgs,
    /// Keep the OS hostname as node name.
    pub use_system_hostname: bool,
    /// Commands before the download.
    pub pre_k0s_commands: Vec<String>,
    /// Commands after the service start.
    pub post_k0s_commands: Vec<String>,
    /// `spec.files`, resolved, in spec order.
    pub files: Vec<BootstrapFile>,
    /// The user's own content (`provisioner.customUserDataRef`).
    pub custom_user_data: Option<CustomUserData>,
    /// The output format.
    pub format: Format,
    /// The node's operating system: Windows gets the install script of [`crate::windows`].
    pub platform: Platform,
}

/// The bootstrap data's format (`provisioner.type`), with what it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// cloud-init's cloud-config.
    CloudConfig,
    /// An Ignition config.
    Ignition {
        /// Its spec version.
        spec_version: &'static str,
        /// `additionalConfig`, translated to Ignition.
        additional: Option<serde_json::Value>,
    },
    /// A PowerShell script (Windows).
    PowerShell,
    /// The PowerShell script between `<powershell>` tags (Windows: EC2Launch, cloudbase-init).
    PowerShellXml,
}

/// What `provisioner.customUserDataRef` holds, by the installation's feature gates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomUserData {
    /// A cloud-config document, merged into ours (the default).
    CloudConfig(UserCloudConfig),
    /// A Jinja template that gets our commands and files as variables (`CloudInitVars`).
    Template(String),
    /// PowerShell, run by the Windows install script after `postK0sCommands`.
    PowerShell(String),
}

impl WorkerBootstrap {
    /// The `runcmd` list: preK0sCommands, download, install, start, postK0sCommands, sentinel.
    pub fn commands(&self) -> Vec<String> {
        let mut cmds = self.pre_k0s_commands.clone();
        cmds.extend(commands::download_commands(
            &self.download,
            &self.install_dir,
        ));
        cmds.push(self.install_command());
        cmds.push(START_COMMAND.to_string());
        cmds.extend(self.post_k0s_commands.iter().cloned());
        // Last, so its presence means everything before it succeeded (CAPI contract).
        cmds.push(SENTINEL_COMMAND.to_string());
        cmds
    }

    fn install_command(&self) -> String {
        InstallCommand {
            install_dir: &self.install_dir,
            token_path: &self.token_path,
            machine_name: &self.machine_name,
            use_system_hostname: self.use_system_hostname,
            args: &self.install_args,
        }
        .render()
    }

    /// The Windows install script ([`crate::windows`]).
    pub fn windows_install_script(&self) -> String {
        windows::InstallScript {
            install_dir: &self.install_dir,
            token_path: &self.token_path,
            download: &self.download,
            machine_name: &self.machine_name,
            use_system_hostname: self.use_system_hostname,
            args: &self.install_args,
            pre: &self.pre_k0s_commands,
            post: &self.post_k0s_commands,
            custom: match &self.custom_user_data {
                Some(CustomUserData::PowerShell(text)) => Some(text),
                _ => None,
            },
        }
        .render()
    }

    /// The document: the join token first (mode 0600), then `spec.files`, then the commands.
    /// On Windows: the token, `spec.files` and the install script, and one command running it.
    pub fn cloud_config(&self, join_token: &str) -> CloudConfig {
        let spec_files = self
            .files
            .iter()
            .map(|f| WriteFile::new(f.path.clone(), &f.content, f.permissions.clone()));
        if self.platform == Platform::Windows {
            return CloudConfig {
                write_files: windows::machine_files(
                    &self.token_path,
                    join_token,
                    spec_files,
                    &self.windows_install_script(),
                ),
                runcmd: vec![windows::RUN_COMMAND.to_string()],
            };
        }
        let mut write_files = vec![WriteFile::new(
            self.token_path.clone(),
            join_token.as_bytes(),
            Some(TOKEN_FILE_PERMISSIONS.to_string()),
        )];
        write_files.extend(spec_files);
        CloudConfig {
            write_files,
            runcmd: self.commands(),
        }
    }

    /// The user data text: our document, merged with the user's own when there is one, or the
    /// user's template with our commands and files as its variables.
    pub fn render(&self, join_token: &str) -> Result<String, RenderError> {
        let doc = self.cloud_config(join_token);
        match &self.format {
            Format::CloudConfig => {}
            Format::Ignition {
                spec_version,
                additional,
            } => {
                return Ok(crate::ignition::render(&crate::ignition::IgnitionInput {
                    spec_version,
                    files: &doc.write_files,
                    commands: &doc.runcmd,
                    additional: additional.as_ref(),
                }));
            }
            Format::PowerShell => return Ok(windows::script(&doc.write_files, &doc.runcmd)),
            Format::PowerShellXml => {
                return Ok(windows::xml(&windows::script(
                    &doc.write_files,
                    &doc.runcmd,
                )));
            }
        }
        Ok(match &self.custom_user_data {
            // PowerShell custom user data is in the install script (validation allows it with
            // the PowerShell formats only).
            None | Some(CustomUserData::PowerShell(_)) => doc.to_user_data()?,
            Some(CustomUserData::CloudConfig(user)) => doc.to_user_data_with(user)?,
            Some(CustomUserData::Template(template)) => {
                let vars = jinja::Variables {
                    download: commands::download_commands(&self.download, &self.install_dir),
                    install: self.install_command(),
                    start: START_COMMAND,
                    pre: &self.pre_k0s_commands,
                    post: &self.post_k0s_commands,
                    sentinel: SENTINEL_COMMAND,
                    files: &doc.write_files,
                };
                jinja::user_data(&vars, template)?
            }
        })
    }
}

/// Reads the join token back out of user data we rendered earlier, so the token Secret in the
/// workload cluster can be recreated or refreshed without ever storing the secret elsewhere.
pub fn recover_join_token(user_data: &str, token_path: &str) -> Result<String, RenderError> {
    let file = CloudConfig::files_in_user_data(user_data)?
        .into_iter()
        .find(|f| f.path == token_path)
        .ok_or_else(|| RenderError::NoTokenFile {
            path: token_path.to_string(),
        })?;
    String::from_utf8(file.decoded_content()?).map_err(|_| RenderError::TokenNotText {
        path: token_path.to_string(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn minimal() -> WorkerBootstrap {
        WorkerBootstrap {
            machine_name: "worker-0".into(),
            token_path: "/etc/k0s.token".into(),
            install_dir: "/usr/local/bin".into(),
            download: Download::Script {
                version: Some("v1.34.1+k0s.0".into()),
            },
            install_args: InstallArgs::default(),
            use_system_hostname: false,
            pre_k0s_commands: vec![],
            post_k0s_commands: vec![],
            files: vec![],
            custom_user_data: None,
            format: Format::CloudConfig,
            platform: Platform::Linux,
        }
    }

    #[test]
    fn command_order_is_upstreams() {
        let mut b = minimal();
        b.pre_k0s_commands = vec!["echo pre".into()];
        b.post_k0s_commands = vec!["echo post".into()];
        let cmds = b.commands();
        assert_eq!(cmds[0], "echo pre");
        assert!(cmds[1].starts_with("curl -sSfL --retry 5 https://get.k0s.sh |"));
        assert!(
            cmds[2].starts_with("/usr/local/bin/k0s install worker --token-file /etc/k0s.token")
        );
        assert_eq!(cmds[3], START_COMMAND);
        assert_eq!(cmds[4], "echo post");
        assert_eq!(cmds[5], SENTINEL_COMMAND);
        assert_eq!(cmds.len(), 6);
    }

    #[test]
    fn token_file_comes_first_with_mode_0600() {
        let mut b = minimal();
        b.files = vec![BootstrapFile {
            path: "/etc/a".into(),
            content: b"a".to_vec(),
            permissions: None,
        }];
        let doc = b.cloud_config("TOKEN");
        assert_eq!(doc.write_files[0].path, "/etc/k0s.token");
        assert_eq!(doc.write_files[0].content, "TOKEN");
        assert_eq!(doc.write_files[0].permissions.as_deref(), Some("0600"));
        assert_eq!(doc.write_files[1].path, "/etc/a");
        assert_eq!(doc.write_files[1].permissions, None);
    }

    #[test]
    fn rendering_is_deterministic_and_the_token_recoverable() {
        let b = minimal();
        let first = b.render("H4sIAAAAAAAC/join").unwrap();
        assert_eq!(first, b.render("H4sIAAAAAAAC/join").unwrap());
        assert_eq!(
            recover_join_token(&first, "/etc/k0s.token").unwrap(),
            "H4sIAAAAAAAC/join"
        );
        assert!(matches!(
            recover_join_token(&first, "/other"),
            Err(RenderError::NoTokenFile { .. })
        ));
    }
}
