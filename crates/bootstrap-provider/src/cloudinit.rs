//! The cloud-config document model (the subset we emit: `write_files` and `runcmd`) and its
//! serialisation to user data.
//!
//! Owns the text format only: it knows nothing about k0s, tokens or Kubernetes objects.

use base64::{Engine as _, prelude::BASE64_STANDARD};
use serde::{Deserialize, Serialize};

/// First line of every cloud-config user-data document; cloud-init decides the part type by it.
pub const CLOUD_CONFIG_HEADER: &str = "#cloud-config";

/// Errors from turning a [`CloudConfig`] into text or back.
#[derive(Debug, thiserror::Error)]
pub enum CloudInitError {
    /// The YAML serialiser refused the document.
    #[error("serialising the cloud-config document")]
    Serialize(#[source] serde_saphyr::ser::Error),
    /// The text does not start with `#cloud-config`.
    #[error("user data does not start with {CLOUD_CONFIG_HEADER:?}")]
    MissingHeader,
    /// The text is not a cloud-config document we can read back.
    #[error("parsing the cloud-config document")]
    Parse(#[source] serde_saphyr::Error),
    /// A `write_files` entry has an encoding we do not decode.
    #[error("write_files entry {path} has unsupported encoding {encoding:?}")]
    UnsupportedEncoding {
        /// Path of the entry.
        path: String,
        /// Its `encoding`.
        encoding: String,
    },
    /// A base64 `write_files` entry does not decode.
    #[error("write_files entry {path} is not valid base64")]
    Base64 {
        /// Path of the entry.
        path: String,
        /// The decoder's error.
        #[source]
        source: base64::DecodeError,
    },
}

/// A cloud-config document as far as we generate it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudConfig {
    /// Files cloud-init writes before running commands.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub write_files: Vec<WriteFile>,
    /// Commands run once, in order, by one `sh` script at the end of the first boot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runcmd: Vec<String>,
}

/// One `write_files` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteFile {
    /// Absolute path on the machine.
    pub path: String,
    /// File content; base64 when `encoding` is `b64`.
    pub content: String,
    /// Octal mode as a string, e.g. `"0600"`; cloud-init's default (0644) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<String>,
    /// `b64` for content that is not UTF-8 text; absent for plain text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
}

impl WriteFile {
    /// A file with the given bytes: plain text when they are UTF-8, base64 (`encoding: b64`)
    /// otherwise, so arbitrary Secret data survives the YAML round trip (upstream writes the
    /// bytes as a YAML string, which breaks on binary data).
    pub fn new(path: impl Into<String>, content: &[u8], permissions: Option<String>) -> Self {
        let (content, encoding) = match std::str::from_utf8(content) {
            Ok(text) if !needs_base64(text) => (text.to_string(), None),
            _ => (BASE64_STANDARD.encode(content), Some("b64".to_string())),
        };
        Self {
            path: path.into(),
            content,
            permissions,
            encoding,
        }
    }

    /// The bytes cloud-init will write.
    pub fn decoded_content(&self) -> Result<Vec<u8>, CloudInitError> {
        match self.encoding.as_deref() {
            None | Some("text/plain") => Ok(self.content.clone().into_bytes()),
            Some("b64" | "base64") => {
                BASE64_STANDARD
                    .decode(self.content.as_bytes())
                    .map_err(|source| CloudInitError::Base64 {
                        path: self.path.clone(),
                        source,
                    })
            }
            Some(other) => Err(CloudInitError::UnsupportedEncoding {
                path: self.path.clone(),
                encoding: other.to_string(),
            }),
        }
    }
}

/// Text YAML cannot carry verbatim (control characters other than tab/newline, a BOM, CR that
/// a parser would normalise away) goes through base64 instead.
fn needs_base64(text: &str) -> bool {
    text.chars()
        .any(|c| (c.is_control() && c != '\n' && c != '\t') || c == '\u{feff}')
}

impl CloudConfig {
    /// The user data: `#cloud-config`, then the document as YAML (2-space indentation).
    // NB: upstream puts `## template: jinja` first; only its CloudInitVars feature (not
    // supported here) makes the data a template, so we emit plain cloud-config.
    pub fn to_user_data(&self) -> Result<String, CloudInitError> {
        let mut options = serde_saphyr::SerializerOptions::default();
        options.indent_step = 2;
        // `- path:` indented under `write_files:`, as upstream writes it.
        options.compact_list_indent = false;
        // Never fold long single-line strings: a `runcmd` entry must stay one readable line.
        options.folded_wrap_chars = usize::MAX;
        let body = serde_saphyr::to_string_with_options(self, options)
            .map_err(CloudInitError::Serialize)?;
        Ok(format!("{CLOUD_CONFIG_HEADER}\n{body}"))
    }

    /// Parses user data produced by [`CloudConfig::to_user_data`] (used to recover the join
    /// token from an existing data Secret, and by tests).
    pub fn from_user_data(text: &str) -> Result<Self, CloudInitError> {
        let body = text
            .strip_prefix(CLOUD_CONFIG_HEADER)
            .ok_or(CloudInitError::MissingHeader)?;
        serde_saphyr::from_str(body).map_err(CloudInitError::Parse)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn tricky_document() -> CloudConfig {
        CloudConfig {
            write_files: vec![
                WriteFile::new("/etc/plain", b"foobar", Some("0644".into())),
                WriteFile::new("/etc/multi", b"line 1\n  indented: yes\n# not a comment\n\n", None),
                WriteFile::new("/etc/no-newline", b"a: b\nc", None),
                WriteFile::new("/etc/leading", b"  spaces and 'quotes' \"dq\"", None),
                WriteFile::new("/etc/binary", &[0, 159, 146, 150, 255], Some("0600".into())),
                WriteFile::new("/etc/crlf", b"windows\r\nline\r\n", None),
                WriteFile::new("/etc/yes", b"yes", None),
                WriteFile::new("/etc/empty", b"", None),
                WriteFile::new("/etc/unicode", "ünïcødé ✓\n".as_bytes(), None),
            ],
            runcmd: vec![
                "echo 'hello world'".into(),
                "a: b".into(),
                "- dash".into(),
                "#hash".into(),
                "x".repeat(300),
                "curl -sSfL --retry 5 https://get.k0s.sh | K0S_INSTALL_PATH=/usr/local/bin K0S_VERSION=v1.34.1+k0s.0 sh".into(),
                "{braces} [brackets] *star &amp !bang %percent @at `tick`".into(),
                "0644".into(),
                "true".into(),
                "null".into(),
            ],
        }
    }

    #[test]
    fn header_comes_first() {
        let text = tricky_document().to_user_data().unwrap();
        assert!(text.starts_with("#cloud-config\n"));
        assert_eq!(text.lines().filter(|l| *l == "#cloud-config").count(), 1);
    }

    #[test]
    fn small_document_has_the_upstream_shape() {
        let doc = CloudConfig {
            write_files: vec![WriteFile::new("/etc/hosts", b"foobar", Some("0644".into()))],
            runcmd: vec!["echo 'hello world'".into()],
        };
        assert_eq!(
            doc.to_user_data().unwrap(),
            "#cloud-config\nwrite_files:\n  - path: /etc/hosts\n    content: foobar\n    permissions: \"0644\"\nruncmd:\n  - echo 'hello world'\n"
        );
    }

    #[test]
    fn round_trips_through_our_parser() {
        let doc = tricky_document();
        let text = doc.to_user_data().unwrap();
        assert_eq!(CloudConfig::from_user_data(&text).unwrap(), doc);
    }

    #[test]
    fn file_bytes_survive() {
        let doc = tricky_document();
        let text = doc.to_user_data().unwrap();
        let back = CloudConfig::from_user_data(&text).unwrap();
        assert_eq!(
            back.write_files[4].decoded_content().unwrap(),
            vec![0, 159, 146, 150, 255]
        );
        assert_eq!(back.write_files[4].encoding.as_deref(), Some("b64"));
        assert_eq!(
            back.write_files[5].decoded_content().unwrap(),
            b"windows\r\nline\r\n"
        );
        assert_eq!(
            back.write_files[1].decoded_content().unwrap(),
            b"line 1\n  indented: yes\n# not a comment\n\n"
        );
        assert_eq!(back.write_files[0].encoding, None);
    }

    #[test]
    fn missing_header_is_refused() {
        assert!(matches!(
            CloudConfig::from_user_data("runcmd: []\n"),
            Err(CloudInitError::MissingHeader)
        ));
    }

    /// cloud-init itself parses with PyYAML; what it reads must equal what we meant, for every
    /// tricky string. Runs wherever python3 with PyYAML exists (cloud-init depends on it, and the
    /// schema tests require cloud-init).
    #[test]
    fn pyyaml_reads_what_we_wrote() {
        let doc = tricky_document();
        let text = doc.to_user_data().unwrap();
        let expected = serde_json::to_string(&doc).unwrap();
        let script = "import sys, json, yaml\nprint(json.dumps(yaml.safe_load(sys.stdin.read())))";
        let mut child = std::process::Command::new("python3")
            .args(["-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 with PyYAML is required (installed with cloud-init)");
        {
            use std::io::Write as _;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(text.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "python failed on:\n{text}");
        let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let want: serde_json::Value = serde_json::from_str(&expected).unwrap();
        assert_eq!(got, want, "PyYAML read something else from:\n{text}");
    }
}
