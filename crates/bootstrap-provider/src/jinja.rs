//! Upstream's `CloudInitVars` feature gate: with it on and a `provisioner.customUserDataRef`,
//! the user's content is a Jinja template for cloud-init, and what we would have written
//! (download, install and start commands, files) is handed to it as variables instead of
//! `runcmd` and `write_files`. The template decides what runs, in what order.
//!
//! The data is `## template: jinja`, `#cloud-config`, one `{% set %}` line per variable, then the
//! template as written. Values are Jinja string, list and dict literals written as JSON, whose
//! escapes (`\"`, `\\`, `\n`, `\uXXXX`) Jinja reads the same way, so no value can end its literal
//! early or span lines. (Upstream puts values in single quotes and escapes `"` instead of `'`,
//! so a command with a `'` in it breaks the template.)
//!
//! Upstream's four variables keep their names: `k0smotron_k0sDownloadCommands` (the download
//! steps joined by ` && `), `k0smotron_k0sInstallCommand`, `k0smotron_k0sStartCommand` and
//! `k0smotron_files` (a list of `{path, content, permissions}`; `encoding: b64` as well for
//! content that is not text). Ours in addition: `k0smotron_preK0sCommands` and
//! `k0smotron_postK0sCommands` (lists of the spec's commands) and `k0smotron_sentinelCommand`
//! (the CAPI bootstrap-success file), which upstream drops in this mode.

use crate::cloudinit::{CLOUD_CONFIG_HEADER, CloudInitError, WriteFile};

/// First line of user data cloud-init renders as a Jinja template.
pub const JINJA_HEADER: &str = "## template: jinja";
/// The variable holding the files.
pub const FILES_VAR: &str = "k0smotron_files";

/// What the template gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variables<'a> {
    /// Download steps, in order (none with `preInstalledK0s`).
    pub download: Vec<String>,
    /// `k0s install worker ...`.
    pub install: String,
    /// The service start.
    pub start: &'a str,
    /// `preK0sCommands`.
    pub pre: &'a [String],
    /// `postK0sCommands`.
    pub post: &'a [String],
    /// The CAPI sentinel.
    pub sentinel: &'a str,
    /// The join token and `spec.files`.
    pub files: &'a [WriteFile],
}

/// The user data: our header and variables, then `template` as written.
pub fn user_data(vars: &Variables<'_>, template: &str) -> Result<String, CloudInitError> {
    // A shell no-op rather than an empty string: `- {{ ... }}` must stay a command in `runcmd`.
    let download = if vars.download.is_empty() {
        "true".to_string()
    } else {
        vars.download.join(" && ")
    };
    let files: Vec<FileVar<'_>> = vars.files.iter().map(FileVar::from).collect();
    let mut out = format!("{JINJA_HEADER}\n{CLOUD_CONFIG_HEADER}\n");
    for (name, value) in [
        ("k0smotron_k0sDownloadCommands", json(&download)?),
        ("k0smotron_k0sInstallCommand", json(&vars.install)?),
        ("k0smotron_k0sStartCommand", json(&vars.start)?),
        ("k0smotron_preK0sCommands", json(&vars.pre)?),
        ("k0smotron_postK0sCommands", json(&vars.post)?),
        ("k0smotron_sentinelCommand", json(&vars.sentinel)?),
        (FILES_VAR, json(&files)?),
    ] {
        out.push_str(&format!("{{% set {name} = {value} %}}\n"));
    }
    out.push_str(template);
    if !template.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

/// The files of user data written by [`user_data`] (to read the join token back), or `None`
/// when `text` is not such data.
pub fn files(text: &str) -> Option<Result<Vec<WriteFile>, CloudInitError>> {
    if !text.starts_with(JINJA_HEADER) {
        return None;
    }
    let prefix = format!("{{% set {FILES_VAR} = ");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(&prefix)?.strip_suffix(" %}"));
    Some(match line {
        None => Err(CloudInitError::UserData(format!("no {FILES_VAR} variable"))),
        Some(json) => serde_json::from_str(json)
            .map_err(|_| CloudInitError::UserData(format!("{FILES_VAR} is not a list of files"))),
    })
}

/// A file as the template sees it: `permissions` always set (cloud-init's default 0644 when
/// the spec has none), so `permissions: "{{ f.permissions }}"` is never empty.
#[derive(serde::Serialize)]
struct FileVar<'a> {
    path: &'a str,
    content: &'a str,
    permissions: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    encoding: Option<&'a str>,
}

impl<'a> From<&'a WriteFile> for FileVar<'a> {
    fn from(f: &'a WriteFile) -> Self {
        Self {
            path: &f.path,
            content: &f.content,
            permissions: f.permissions.as_deref().unwrap_or("0644"),
            encoding: f.encoding.as_deref(),
        }
    }
}

/// JSON text of a value, for `{% set %}`.
fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, CloudInitError> {
    serde_json::to_string(value)
        .map_err(|e| CloudInitError::UserData(format!("template variable: {e}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn files() -> Vec<WriteFile> {
        vec![
            WriteFile::new("/etc/k0s.token", b"tok'en\"%}\n", Some("0600".into())),
            WriteFile::new("/etc/bin", &[0, 159, 146, 150], None),
        ]
    }

    fn vars(files: &[WriteFile]) -> Variables<'_> {
        Variables {
            download: vec![
                "curl -sSfL https://x -o /usr/local/bin/k0s".into(),
                "chmod +x /usr/local/bin/k0s".into(),
            ],
            install: "/usr/local/bin/k0s install worker --labels='a=it'\\''s'".into(),
            start: "systemctl start k0sworker",
            pre: &[],
            post: &[],
            sentinel: "touch /done",
            files,
        }
    }

    #[test]
    fn every_variable_is_one_line_and_files_read_back() {
        let files = files();
        let text = user_data(
            &vars(&files),
            "runcmd:\n  - {{ k0smotron_k0sStartCommand }}",
        )
        .unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], JINJA_HEADER);
        assert_eq!(lines[1], CLOUD_CONFIG_HEADER);
        assert_eq!(lines.iter().filter(|l| l.starts_with("{% set ")).count(), 7);
        assert!(text.ends_with("runcmd:\n  - {{ k0smotron_k0sStartCommand }}\n"));
        assert!(text.contains(r#"{% set k0smotron_k0sDownloadCommands = "curl -sSfL https://x -o /usr/local/bin/k0s && chmod +x /usr/local/bin/k0s" %}"#));
        let back = super::files(&text).unwrap().unwrap();
        assert_eq!(back[0].decoded_content().unwrap(), b"tok'en\"%}\n");
        assert_eq!(back[1].decoded_content().unwrap(), [0, 159, 146, 150]);
        assert_eq!(back[1].permissions.as_deref(), Some("0644"));
    }

    #[test]
    fn no_download_is_a_no_op_command_and_plain_data_is_not_a_template() {
        let files = files();
        let mut v = vars(&files);
        v.download.clear();
        let text = user_data(&v, "").unwrap();
        assert!(text.contains(r#"{% set k0smotron_k0sDownloadCommands = "true" %}"#));
        assert!(super::files("#cloud-config\nwrite_files: []\n").is_none());
        assert!(
            super::files("## template: jinja\n#cloud-config\n")
                .unwrap()
                .is_err()
        );
    }
}
