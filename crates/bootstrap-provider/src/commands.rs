//! The shell commands of a worker's first boot: k0s download, `k0s install worker` with merged
//! kubelet arguments, service start, and the CAPI sentinel.
//!
//! Pure string building. Every value that is not a user-written command goes through
//! [`crate::shell::quote`]; only `preK0sCommands`/`postK0sCommands` are shell by design.

use crate::shell::{self, ShellError};

/// The default k0s download script; a `downloadURL` equal to it means "use the script".
pub const GET_K0S_SCRIPT_URL: &str = "https://get.k0s.sh";

/// Label `k0s install worker` puts on the Node so the Machine can be matched to it.
pub const MACHINE_NAME_NODE_LABEL: &str = "k0smotron.io/machine-name";

/// Starts the k0s worker service on systemd, OpenRC or SysV init, failing on anything else
/// (upstream's command, verbatim).
pub const START_COMMAND: &str = "(command -v systemctl > /dev/null 2>&1 && systemctl start k0sworker) || \
(command -v rc-service > /dev/null 2>&1 && rc-service k0sworker start) || \
(command -v service > /dev/null 2>&1 && service k0sworker start) || \
(echo \"Not a supported init system\"; false)";

/// Creates the CAPI bootstrap sentinel file; always the last command.
pub const SENTINEL_COMMAND: &str =
    "mkdir -p /run/cluster-api && touch /run/cluster-api/bootstrap-success.complete";

/// The flag whose values we merge into one.
const KUBELET_EXTRA_ARGS: &str = "--kubelet-extra-args";

/// Errors turning user input into commands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// `downloadURL` has a scheme we cannot fetch.
    #[error(
        "downloadURL {url:?} has unsupported scheme {scheme:?}; use http://, https:// or oci://"
    )]
    UnsupportedScheme {
        /// The URL.
        url: String,
        /// Its scheme.
        scheme: String,
    },
    /// `downloadURL` is not a URL.
    #[error("downloadURL {url:?} is not a URL (expected scheme://host/path)")]
    InvalidUrl {
        /// The URL.
        url: String,
    },
    /// An `args` entry could not be split into words.
    #[error("args entry {index} cannot be parsed")]
    Args {
        /// Index into `spec.args`.
        index: usize,
        /// What went wrong.
        #[source]
        source: ShellError,
    },
    /// `--kubelet-extra-args` was the last word, with no value.
    #[error("--kubelet-extra-args in args has no value")]
    KubeletArgsWithoutValue,
}

/// How the k0s binary gets onto the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Download {
    /// The image already has k0s; download nothing.
    PreInstalled,
    /// `get.k0s.sh`, pinned to a version when one is known (else the script's latest).
    Script {
        /// `vX.Y.Z+k0s.N`, or `None` for latest.
        version: Option<String>,
    },
    /// A plain `http(s)://` URL of the binary.
    Http {
        /// The URL.
        url: String,
    },
    /// An OCI artifact fetched with `oras blob fetch`.
    Oci {
        /// `host/repository@digest` (the URL without `oci://`).
        reference: String,
    },
}

impl Download {
    /// Chooses the download from the spec: `preInstalledK0s`, else `downloadURL` (which wins
    /// over the version, as upstream), else get.k0s.sh with `version`.
    pub fn from_spec(
        pre_installed: bool,
        download_url: Option<&str>,
        version: Option<String>,
    ) -> Result<Self, CommandError> {
        if pre_installed {
            return Ok(Self::PreInstalled);
        }
        let Some(url) = download_url.map(str::trim).filter(|u| !u.is_empty()) else {
            return Ok(Self::Script { version });
        };
        if url.trim_end_matches('/') == GET_K0S_SCRIPT_URL {
            return Ok(Self::Script { version });
        }
        let invalid = || CommandError::InvalidUrl {
            url: url.to_string(),
        };
        // NB: upstream turns an unparsable URL into a harmless `echo` at boot; we refuse it up
        // front so the user sees a condition instead of a node that never joins.
        let (scheme, rest) = url.split_once("://").ok_or_else(invalid)?;
        if rest.is_empty()
            || rest.starts_with('/')
            || url.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid());
        }
        match scheme.to_ascii_lowercase().as_str() {
            "http" | "https" => Ok(Self::Http {
                url: url.to_string(),
            }),
            "oci" => Ok(Self::Oci {
                reference: rest.to_string(),
            }),
            _ => Err(CommandError::UnsupportedScheme {
                url: url.to_string(),
                scheme: scheme.to_string(),
            }),
        }
    }
}

/// `dir/name` without doubled slashes (`/usr/local/bin/` + `k0s` → `/usr/local/bin/k0s`).
pub fn join_path(dir: &str, name: &str) -> String {
    let dir = dir.trim_end_matches('/');
    format!("{dir}/{name}")
}

/// The commands that put k0s into `install_dir`, in upstream's shapes.
pub fn download_commands(download: &Download, install_dir: &str) -> Vec<String> {
    let binary = shell::quote(&join_path(install_dir, "k0s"));
    match download {
        Download::PreInstalled => Vec::new(),
        Download::Script { version } => {
            let mut vars = vec![format!("K0S_INSTALL_PATH={}", shell::quote(install_dir))];
            if let Some(version) = version {
                vars.push(format!("K0S_VERSION={}", shell::quote(version)));
            }
            vec![format!(
                "curl -sSfL --retry 5 {GET_K0S_SCRIPT_URL} | {} sh",
                vars.join(" ")
            )]
        }
        Download::Http { url } => vec![
            format!("curl -sSfL --retry 5 {} -o {binary}", shell::quote(url)),
            format!("chmod +x {binary}"),
        ],
        Download::Oci { reference } => vec![
            // oras keeps its credential store under $HOME, which cloud-init does not set.
            "export HOME=/root".to_string(),
            format!(
                "oras blob fetch --output {binary} {}",
                shell::quote(reference)
            ),
            format!("chmod +x {binary}"),
        ],
    }
}

/// User `args`, split into words, with every `--kubelet-extra-args` value pulled out so it can
/// be merged with ours.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallArgs {
    /// Words passed to `k0s install worker` as they are.
    pub args: Vec<String>,
    /// The values of every `--kubelet-extra-args`, in order.
    pub kubelet_extra_args: Vec<String>,
}

/// Splits `spec.args` into words (shell quoting rules, no expansion) and separates the kubelet
/// arguments. Accepts `--kubelet-extra-args=V`, `--kubelet-extra-args V` within one entry, and
/// the flag and its value as two entries.
// NB: upstream pastes the entries into the command line unquoted (the shell splits and expands
// them) and keeps only the last `--kubelet-extra-args`. Splitting without expansion gives the
// same argv for ordinary arguments while `$(...)` and friends stay literal; every kubelet value
// is merged.
pub fn split_install_args(entries: &[String]) -> Result<InstallArgs, CommandError> {
    let mut words = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        words.extend(
            shell::split_words(entry).map_err(|source| CommandError::Args { index, source })?,
        );
    }
    let mut out = InstallArgs::default();
    let mut iter = words.into_iter();
    while let Some(word) = iter.next() {
        if word == KUBELET_EXTRA_ARGS {
            let value = iter.next().ok_or(CommandError::KubeletArgsWithoutValue)?;
            out.kubelet_extra_args.push(value);
        } else if let Some(value) = word
            .strip_prefix(KUBELET_EXTRA_ARGS)
            .and_then(|rest| rest.strip_prefix('='))
        {
            out.kubelet_extra_args.push(value.to_string());
        } else {
            out.args.push(word);
        }
    }
    // Values that are empty or only quotes add nothing (upstream trims quotes from them too).
    out.kubelet_extra_args = out
        .kubelet_extra_args
        .into_iter()
        .map(|v| v.trim_matches(|c| c == '"' || c == '\'').trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    Ok(out)
}

/// What `k0s install worker` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallCommand<'a> {
    /// Directory holding the k0s binary.
    pub install_dir: &'a str,
    /// Where the join token file is.
    pub token_path: &'a str,
    /// Machine name: node label, and hostname override unless `use_system_hostname`.
    pub machine_name: &'a str,
    /// Keep the OS hostname as node name.
    pub use_system_hostname: bool,
    /// User arguments.
    pub args: &'a InstallArgs,
}

impl InstallCommand<'_> {
    /// `<dir>/k0s install worker --token-file <path> --labels=k0smotron.io/machine-name=<m>
    /// <user args> --kubelet-extra-args="--hostname-override=<m> <user kubelet args>"`.
    pub fn render(&self) -> String {
        let mut words = vec![
            shell::quote(&join_path(self.install_dir, "k0s")),
            "install".to_string(),
            "worker".to_string(),
            "--token-file".to_string(),
            shell::quote(self.token_path),
            shell::quote(&format!(
                "--labels={MACHINE_NAME_NODE_LABEL}={}",
                self.machine_name
            )),
        ];
        words.extend(self.args.args.iter().map(|a| shell::quote(a)));

        let mut kubelet = Vec::new();
        if !self.use_system_hostname {
            kubelet.push(format!("--hostname-override={}", self.machine_name));
        }
        kubelet.extend(self.args.kubelet_extra_args.iter().cloned());
        if !kubelet.is_empty() {
            // Quote the value only, keeping upstream's `--kubelet-extra-args="..."` spelling.
            words.push(format!(
                "{KUBELET_EXTRA_ARGS}={}",
                shell::always_quote(&kubelet.join(" "))
            ));
        }
        words.join(" ")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn args(entries: &[&str]) -> InstallArgs {
        split_install_args(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn install(args: &InstallArgs, use_system_hostname: bool) -> String {
        InstallCommand {
            install_dir: "/usr/local/bin",
            token_path: "/etc/k0s.token",
            machine_name: "worker-0",
            use_system_hostname,
            args,
        }
        .render()
    }

    #[test]
    fn download_by_script_with_and_without_version() {
        let d = Download::from_spec(false, None, Some("v1.34.1+k0s.0".into())).unwrap();
        assert_eq!(
            download_commands(&d, "/usr/local/bin"),
            vec![
                "curl -sSfL --retry 5 https://get.k0s.sh | K0S_INSTALL_PATH=/usr/local/bin K0S_VERSION=v1.34.1+k0s.0 sh"
            ]
        );
        let d = Download::from_spec(false, Some("https://get.k0s.sh"), None).unwrap();
        assert_eq!(
            download_commands(&d, "/opt/k0s dir"),
            vec!["curl -sSfL --retry 5 https://get.k0s.sh | K0S_INSTALL_PATH=\"/opt/k0s dir\" sh"]
        );
    }

    #[test]
    fn download_by_url_wins_over_version() {
        let d = Download::from_spec(
            false,
            Some("https://example.com/k0s?x=1&y=2"),
            Some("v1.34.1+k0s.0".into()),
        )
        .unwrap();
        assert_eq!(
            download_commands(&d, "/usr/local/bin/"),
            vec![
                "curl -sSfL --retry 5 \"https://example.com/k0s?x=1&y=2\" -o /usr/local/bin/k0s",
                "chmod +x /usr/local/bin/k0s"
            ]
        );
    }

    #[test]
    fn download_by_oci() {
        let d = Download::from_spec(
            false,
            Some("oci://registry.example.com/k0s/bin@sha256:abc"),
            None,
        )
        .unwrap();
        assert_eq!(
            download_commands(&d, "/usr/local/bin"),
            vec![
                "export HOME=/root",
                "oras blob fetch --output /usr/local/bin/k0s registry.example.com/k0s/bin@sha256:abc",
                "chmod +x /usr/local/bin/k0s"
            ]
        );
    }

    #[test]
    fn pre_installed_downloads_nothing() {
        let d = Download::from_spec(true, Some("https://x/k0s"), Some("v1".into())).unwrap();
        assert!(download_commands(&d, "/usr/local/bin").is_empty());
    }

    #[test]
    fn bad_urls_are_refused() {
        assert!(matches!(
            Download::from_spec(false, Some("ftp://host/k0s"), None),
            Err(CommandError::UnsupportedScheme { .. })
        ));
        for bad in ["not a url", "https://", "https:///path", "example.com/k0s"] {
            assert!(
                matches!(
                    Download::from_spec(false, Some(bad), None),
                    Err(CommandError::InvalidUrl { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn install_without_user_args_matches_upstream() {
        assert_eq!(
            install(&InstallArgs::default(), false),
            "/usr/local/bin/k0s install worker --token-file /etc/k0s.token --labels=k0smotron.io/machine-name=worker-0 --kubelet-extra-args=\"--hostname-override=worker-0\""
        );
        assert_eq!(
            install(&InstallArgs::default(), true),
            "/usr/local/bin/k0s install worker --token-file /etc/k0s.token --labels=k0smotron.io/machine-name=worker-0"
        );
    }

    #[test]
    fn kubelet_args_are_merged_in_every_spelling() {
        let a = args(&[
            "--debug",
            r#"--kubelet-extra-args="--node-ip=10.0.0.1 --max-pods=200""#,
            "--labels=zone=a",
            "--kubelet-extra-args '--v=4'",
            "--kubelet-extra-args",
            "--cpu-manager-policy=static",
        ]);
        assert_eq!(a.args, vec!["--debug", "--labels=zone=a"]);
        assert_eq!(
            a.kubelet_extra_args,
            vec![
                "--node-ip=10.0.0.1 --max-pods=200",
                "--v=4",
                "--cpu-manager-policy=static"
            ]
        );
        assert_eq!(
            install(&a, false),
            "/usr/local/bin/k0s install worker --token-file /etc/k0s.token --labels=k0smotron.io/machine-name=worker-0 --debug --labels=zone=a --kubelet-extra-args=\"--hostname-override=worker-0 --node-ip=10.0.0.1 --max-pods=200 --v=4 --cpu-manager-policy=static\""
        );
        assert_eq!(
            install(&a, true),
            "/usr/local/bin/k0s install worker --token-file /etc/k0s.token --labels=k0smotron.io/machine-name=worker-0 --debug --labels=zone=a --kubelet-extra-args=\"--node-ip=10.0.0.1 --max-pods=200 --v=4 --cpu-manager-policy=static\""
        );
    }

    #[test]
    fn injection_attempts_stay_literal() {
        let a = args(&["--labels=x=$(reboot)", "--kubelet-extra-args=--a=`id`"]);
        let cmd = install(&a, false);
        assert!(cmd.contains("'--labels=x=$(reboot)'"), "{cmd}");
        assert!(
            cmd.contains("--kubelet-extra-args='--hostname-override=worker-0 --a=`id`'"),
            "{cmd}"
        );
        // And the shell agrees: it sees exactly these argv words.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s\\n' {}", cmd.split_once(' ').unwrap().1))
            .output()
            .unwrap();
        let printed = String::from_utf8(out.stdout).unwrap();
        assert!(
            printed.lines().any(|l| l == "--labels=x=$(reboot)"),
            "{printed}"
        );
        assert!(
            printed
                .lines()
                .any(|l| l == "--kubelet-extra-args=--hostname-override=worker-0 --a=`id`"),
            "{printed}"
        );
    }

    #[test]
    fn broken_args_are_reported_with_their_index() {
        let err = split_install_args(&["--ok".into(), "'open".into()]).unwrap_err();
        assert!(matches!(err, CommandError::Args { index: 1, .. }));
        assert_eq!(
            split_install_args(&["--kubelet-extra-args".into()]).unwrap_err(),
            CommandError::KubeletArgsWithoutValue
        );
    }
}
