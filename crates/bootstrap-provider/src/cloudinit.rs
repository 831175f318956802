//! The cloud-config document model (the subset we emit: `write_files` and `runcmd`) and its
//! serialisation to user data.
//!
//! Owns the text format only: it knows nothing about k0s, tokens or Kubernetes objects.

use base64::{Engine as _, prelude::BASE64_STANDARD};
use k0smotron_api::yaml::YamlError;
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
    /// The text is not a cloud-config document we can read back (position only: the data
    /// carries the join token).
    #[error("parsing the cloud-config document")]
    Parse(#[source] YamlError),
    /// A `write_files` entry has an encoding we do not decode.
    #[error("write_files entry {path} has unsupported encoding {encoding:?}")]
    UnsupportedEncoding {
        /// Path of the entry.
        path: String,
        /// Its `encoding`.
        encoding: String,
    },
    /// The user's own cloud-config (`provisioner.customUserDataRef`) is not one we can merge.
    #[error("custom user data: {0}")]
    UserData(String),
    /// A base64 `write_files` entry does not decode. The decoder's error is dropped: it names an
    /// offending byte of the content, which may be a token.
    #[error("write_files entry {path} is not valid base64")]
    Base64 {
        /// Path of the entry.
        path: String,
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
                    .map_err(|_| CloudInitError::Base64 {
                        path: self.path.clone(),
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

/// `#cloud-config` and the document as YAML: 2-space indentation, `- path:` indented under
/// `write_files:` as upstream writes it, and long single-line strings never folded (a `runcmd`
/// entry must stay one readable line).
fn user_data_text(document: &impl Serialize) -> Result<String, CloudInitError> {
    let mut options = serde_saphyr::SerializerOptions::default();
    options.indent_step = 2;
    options.compact_list_indent = false;
    options.folded_wrap_chars = usize::MAX;
    let body = serde_saphyr::to_string_with_options(document, options)
        .map_err(CloudInitError::Serialize)?;
    Ok(format!("{CLOUD_CONFIG_HEADER}\n{body}"))
}

/// The user's own cloud-config document (`provisioner.customUserDataRef`), kept as parsed YAML
/// values so every key and entry survives as written (including `write_files` fields and
/// list-form `runcmd` entries we do not model).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserCloudConfig {
    /// Its `write_files` entries.
    pub write_files: Vec<serde_json::Value>,
    /// Its `runcmd` entries (strings or argument lists).
    pub runcmd: Vec<serde_json::Value>,
    /// Every other top-level key.
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl UserCloudConfig {
    /// Parses a cloud-config document; the `#cloud-config` first line is optional. Refuses
    /// anything that is not a mapping, a `write_files` that is not a list of mappings with a
    /// `path`, and a `runcmd` that is not a list.
    pub fn parse(text: &str) -> Result<Self, CloudInitError> {
        let body = text
            .trim_start_matches('\u{feff}')
            .strip_prefix(CLOUD_CONFIG_HEADER)
            .unwrap_or(text);
        let value: serde_json::Value = if body.trim().is_empty() {
            serde_json::Value::Object(serde_json::Map::new())
        } else {
            serde_saphyr::from_str(body)
                // Position only: the parser's message would quote the user's data.
                .map_err(|e| CloudInitError::UserData(YamlError::from(e).to_string()))?
        };
        // A document of comments only is empty.
        let value = match value {
            serde_json::Value::Null => serde_json::Value::Object(serde_json::Map::new()),
            v => v,
        };
        let serde_json::Value::Object(mut other) = value else {
            return Err(CloudInitError::UserData(
                "the document is not a mapping of cloud-config keys".into(),
            ));
        };
        let mut list = |key: &str| match other.remove(key) {
            None | Some(serde_json::Value::Null) => Ok(Vec::new()),
            Some(serde_json::Value::Array(items)) => Ok(items),
            Some(_) => Err(CloudInitError::UserData(format!("{key} is not a list"))),
        };
        let write_files = list("write_files")?;
        let runcmd = list("runcmd")?;
        if let Some(bad) = write_files
            .iter()
            .position(|f| !f.get("path").is_some_and(serde_json::Value::is_string))
        {
            return Err(CloudInitError::UserData(format!(
                "write_files[{bad}] is not a mapping with a path"
            )));
        }
        Ok(Self {
            write_files,
            runcmd,
            other,
        })
    }

    /// The `path` of each of its `write_files` entries.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.write_files
            .iter()
            .filter_map(|f| f.get("path").and_then(serde_json::Value::as_str))
    }
}

/// A document merged from ours and the user's, in that key order: `write_files`, `runcmd`,
/// then the user's other keys. Our entries keep their field order; the user's are written as
/// parsed.
#[derive(Serialize)]
struct MergedDocument<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    write_files: Vec<Entry<'a, WriteFile>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    runcmd: Vec<Entry<'a, String>>,
    #[serde(flatten)]
    other: &'a serde_json::Map<String, serde_json::Value>,
}

/// A list entry of ours or of the user's.
#[derive(Serialize)]
#[serde(untagged)]
enum Entry<'a, T> {
    Ours(&'a T),
    User(&'a serde_json::Value),
}

impl CloudConfig {
    /// The user data: `#cloud-config`, then the document as YAML (2-space indentation).
    // NB: upstream puts `## template: jinja` first; only its CloudInitVars feature
    // (`crate::jinja`) makes the data a template, so we emit plain cloud-config otherwise.
    pub fn to_user_data(&self) -> Result<String, CloudInitError> {
        user_data_text(self)
    }

    /// The user data of this document merged with the user's own: its files after ours, its
    /// commands after ours but before our last command (the bootstrap-success sentinel, which
    /// must mean that everything ran), and its other keys as written. One document, so
    /// cloud-init's schema check and providers that read cloud-config themselves (CAPD) see
    /// everything.
    pub fn to_user_data_with(&self, user: &UserCloudConfig) -> Result<String, CloudInitError> {
        let write_files = self
            .write_files
            .iter()
            .map(Entry::Ours)
            .chain(user.write_files.iter().map(Entry::User))
            .collect();
        let (last, rest) = match self.runcmd.split_last() {
            Some((last, rest)) => (Some(last), rest),
            None => (None, &[][..]),
        };
        let runcmd = rest
            .iter()
            .map(Entry::Ours)
            .chain(user.runcmd.iter().map(Entry::User))
            .chain(last.map(Entry::Ours))
            .collect();
        user_data_text(&MergedDocument {
            write_files,
            runcmd,
            other: &user.other,
        })
    }

    /// The `write_files` entries of user data we rendered, with or without the user's own
    /// document merged in. Only entries of our shape (a path and content) are returned: the
    /// user's may have other shapes (`source`, `defer`), and their commands may be argument
    /// lists, so the document as a whole need not fit [`CloudConfig`].
    pub fn files_in_user_data(text: &str) -> Result<Vec<WriteFile>, CloudInitError> {
        if let Some(files) = crate::jinja::files(text) {
            return files;
        }
        if let Some(files) = crate::ignition::files(text) {
            return Ok(files);
        }
        if let Some(files) = crate::windows::files(text) {
            return Ok(files);
        }
        let body = text
            .strip_prefix(CLOUD_CONFIG_HEADER)
            .ok_or(CloudInitError::MissingHeader)?;
        let doc: serde_json::Value =
            serde_saphyr::from_str(body).map_err(|e| CloudInitError::Parse(e.into()))?;
        Ok(doc
            .get("write_files")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|f| serde_json::from_value(f.clone()).ok())
            .collect())
    }

    /// Parses user data produced by [`CloudConfig::to_user_data`] (used to recover the join
    /// token from an existing data Secret, and by tests).
    pub fn from_user_data(text: &str) -> Result<Self, CloudInitError> {
        let body = text
            .strip_prefix(CLOUD_CONFIG_HEADER)
            .ok_or(CloudInitError::MissingHeader)?;
        serde_saphyr::from_str(body).map_err(|e| CloudInitError::Parse(e.into()))
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
    fn user_documents_are_parsed_or_refused_with_a_reason() {
        let user = UserCloudConfig::parse(
            "#cloud-config\nwrite_files:\n  - path: /etc/a\n    source: {uri: 'https://x'}\nruncmd:\n  - [ls, -l]\nusers: [default]\n",
        )
        .unwrap();
        assert_eq!(user.paths().collect::<Vec<_>>(), ["/etc/a"]);
        assert_eq!(user.runcmd, [serde_json::json!(["ls", "-l"])]);
        assert_eq!(user.other["users"], serde_json::json!(["default"]));
        // Without the header, empty, or comments only.
        assert_eq!(
            UserCloudConfig::parse("packages: [htop]\n")
                .unwrap()
                .other
                .len(),
            1
        );
        assert_eq!(
            UserCloudConfig::parse("").unwrap(),
            UserCloudConfig::default()
        );
        assert_eq!(
            UserCloudConfig::parse("#cloud-config\n# nothing\n").unwrap(),
            UserCloudConfig::default()
        );
        for (text, why) in [
            ("- a\n- b\n", "not a mapping"),
            ("runcmd: echo\n", "runcmd is not a list"),
            ("write_files: {path: /a}\n", "write_files is not a list"),
            (
                "write_files: [{content: x}]\n",
                "write_files[0] is not a mapping with a path",
            ),
            ("a: [\n", "invalid YAML"),
        ] {
            let err = UserCloudConfig::parse(text).unwrap_err().to_string();
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }

    #[test]
    fn parse_errors_never_quote_the_data() {
        // Custom user data often carries credentials; the message lands in a condition.
        let secret = "s3cr3t-pa55w0rd-in-user-data";
        let err = UserCloudConfig::parse(&format!("password: {secret}\nruncmd: [\n"))
            .unwrap_err()
            .to_string();
        assert!(!err.contains(secret) && err.contains("line"), "{err}");
        let err = CloudConfig::from_user_data(&format!("#cloud-config\nwrite_files: {secret}\n"))
            .map(|_| ())
            .unwrap_err();
        let chain = format!(
            "{err}: {}",
            std::error::Error::source(&err)
                .map(ToString::to_string)
                .unwrap_or_default()
        );
        assert!(!chain.contains(secret), "{chain}");
    }

    #[test]
    fn merged_document_keeps_our_last_command_last() {
        let ours = CloudConfig {
            write_files: vec![WriteFile::new("/etc/k0s.token", b"T", Some("0600".into()))],
            runcmd: vec!["install".into(), "sentinel".into()],
        };
        let user = UserCloudConfig::parse(
            "runcmd: [custom]\nwrite_files: [{path: /etc/u, content: u}]\nbootcmd: [early]\n",
        )
        .unwrap();
        assert_eq!(
            ours.to_user_data_with(&user).unwrap(),
            "#cloud-config\nwrite_files:\n  - path: /etc/k0s.token\n    content: T\n    permissions: \"0600\"\n  - content: u\n    path: /etc/u\nruncmd:\n  - install\n  - custom\n  - sentinel\nbootcmd:\n  - early\n"
        );
        // Both files read back; the user's is of our shape here, so it is returned too.
        let files =
            CloudConfig::files_in_user_data(&ours.to_user_data_with(&user).unwrap()).unwrap();
        let found: Vec<(&str, &str)> = files
            .iter()
            .map(|f| (f.path.as_str(), f.content.as_str()))
            .collect();
        assert_eq!(found, [("/etc/k0s.token", "T"), ("/etc/u", "u")]);
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
