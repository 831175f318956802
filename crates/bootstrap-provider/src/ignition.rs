//! The `ignition` format (`provisioner.type: ignition`): an Ignition config (spec 3.x) for
//! machines that boot with Ignition (Fedora CoreOS, Flatcar), with the same content as our
//! cloud-config.
//!
//! - `storage.files`: the join token (mode 0600), then `spec.files` (mode from `permissions`,
//!   0644 without), then the bootstrap script; every content as a base64 `data:` URL, so any
//!   bytes survive.
//! - the script `/etc/k0smotron/bootstrap.sh` (mode 0700) runs, with `set -e`, the commands of
//!   the cloud-config in the same order: preK0sCommands, download, install, start,
//!   postK0sCommands, the CAPI sentinel; then it writes its done-marker.
//! - the unit `k0s-bootstrap.service`, enabled: a oneshot after `network-online.target` that
//!   runs the script unless the done-marker exists (the install must not run again on reboot).
//! - `provisioner.ignition.additionalConfig`, Butane YAML as upstream has it, translated here
//!   (the Go module proxy serves no Butane, so the provider cannot call it): the subset of the
//!   Butane schema listed in [`ALLOWED`] (files, directories, links, units with drop-ins, users,
//!   groups, kernel arguments), keys renamed as Butane does (`snake_case` to `camelCase`), `inline`
//!   contents to `data:` URLs. Anything else is refused with its path, never dropped. Its
//!   `variant` and `version` must be the provisioner's. The result is merged by Ignition itself
//!   (`ignition.config.merge`, a `data:` URL), after ours, as upstream does.
//!
//! The Ignition spec version follows from the Butane variant and version (Butane's table).

use base64::{Engine as _, prelude::BASE64_STANDARD};
use k0smotron_api::bootstrap::v1beta2::IgnitionVariant;
use serde_json::{Map, Value, json};

use crate::cloudinit::WriteFile;

/// The bootstrap script the unit runs.
pub const SCRIPT_PATH: &str = "/etc/k0smotron/bootstrap.sh";
/// Written by the script once everything ran; the unit does not run again while it exists.
pub const DONE_MARKER: &str = "/var/lib/k0smotron/bootstrap.done";
/// The unit's name (upstream's).
pub const UNIT_NAME: &str = "k0s-bootstrap.service";

/// Why an Ignition config cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnitionError {
    /// A variant or version Butane has no Ignition spec for, or that is not bootstrap data.
    #[error("provisioner.ignition: {0}")]
    Version(String),
    /// `additionalConfig` is not the Butane we translate.
    #[error("provisioner.ignition.additionalConfig: {0}")]
    Additional(String),
}

/// The Ignition spec version of a Butane variant and version (stable specs).
pub fn spec_version(
    variant: IgnitionVariant,
    version: &str,
) -> Result<&'static str, IgnitionError> {
    let known: &[(&str, &str)] = match variant {
        IgnitionVariant::Fcos => &[
            ("1.0.0", "3.0.0"),
            ("1.1.0", "3.1.0"),
            ("1.2.0", "3.2.0"),
            ("1.3.0", "3.2.0"),
            ("1.4.0", "3.3.0"),
            ("1.5.0", "3.4.0"),
            ("1.6.0", "3.5.0"),
        ],
        IgnitionVariant::Flatcar => &[("1.0.0", "3.3.0"), ("1.1.0", "3.4.0")],
        other => {
            return Err(IgnitionError::Version(format!(
                "variant {} is not supported: fcos and flatcar are",
                serde_json::to_string(&other).unwrap_or_default()
            )));
        }
    };
    known
        .iter()
        .find(|(v, _)| *v == version)
        .map(|(_, spec)| *spec)
        .ok_or_else(|| {
            IgnitionError::Version(format!(
                "version {version:?} is not a stable Butane version of this variant (known: {})",
                known.iter().map(|(v, _)| *v).collect::<Vec<_>>().join(", ")
            ))
        })
}

/// What the config is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct IgnitionInput<'a> {
    /// The Ignition spec version ([`spec_version`]).
    pub spec_version: &'a str,
    /// The join token and `spec.files`.
    pub files: &'a [WriteFile],
    /// Every command, in order (the cloud-config's `runcmd`).
    pub commands: &'a [String],
    /// `additionalConfig`, translated ([`translate_butane`]).
    pub additional: Option<&'a Value>,
}

/// The Ignition config, as compact JSON.
pub fn render(input: &IgnitionInput<'_>) -> String {
    let mut files: Vec<Value> = input
        .files
        .iter()
        .map(|f| {
            file(
                &f.path,
                &f.decoded_content()
                    .unwrap_or_else(|_| f.content.clone().into_bytes()),
                f.permissions.as_deref().unwrap_or("0644"),
            )
        })
        .collect();
    files.push(file(SCRIPT_PATH, script(input.commands).as_bytes(), "0700"));
    let mut ignition = json!({"version": input.spec_version});
    if let Some(additional) = input.additional {
        ignition["config"] =
            json!({"merge": [{"source": data_url(additional.to_string().as_bytes())}]});
    }
    json!({
        "ignition": ignition,
        "storage": {"files": files},
        "systemd": {"units": [{"name": UNIT_NAME, "enabled": true, "contents": unit()}]},
    })
    .to_string()
}

/// The files of a config written by [`render`] (to read the join token back), or `None` when
/// `text` is not an Ignition config.
pub fn files(text: &str) -> Option<Vec<WriteFile>> {
    let doc: Value = serde_json::from_str(text).ok()?;
    doc.get("ignition")?;
    Some(
        doc.pointer("/storage/files")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|f| {
                let path = f.get("path")?.as_str()?;
                let source = f.pointer("/contents/source")?.as_str()?;
                let content = BASE64_STANDARD
                    .decode(source.strip_prefix("data:;base64,")?)
                    .ok()?;
                Some(WriteFile::new(path, &content, None))
            })
            .collect(),
    )
}

fn file(path: &str, content: &[u8], permissions: &str) -> Value {
    // Permissions were checked to be octal; 0644 if one is not (never, after validation).
    let mode = i64::from_str_radix(permissions, 8).unwrap_or(0o644);
    json!({
        "path": path,
        "mode": mode,
        "overwrite": true,
        "contents": {"source": data_url(content)},
    })
}

fn data_url(content: &[u8]) -> String {
    format!("data:;base64,{}", BASE64_STANDARD.encode(content))
}

fn script(commands: &[String]) -> String {
    let mut s =
        String::from("#!/bin/sh\n# Written by the k0smotron-rs bootstrap provider.\nset -e\n");
    for c in commands {
        s.push_str(c);
        s.push('\n');
    }
    s.push_str(&format!(
        "mkdir -p /var/lib/k0smotron && touch {DONE_MARKER}\n"
    ));
    s
}

fn unit() -> String {
    format!(
        "[Unit]\nDescription=k0s worker bootstrap (k0smotron)\nWants=network-online.target\nAfter=network-online.target\nConditionPathExists=!{DONE_MARKER}\n\n[Service]\nType=oneshot\nRemainAfterExit=true\nExecStart=/bin/sh {SCRIPT_PATH}\n\n[Install]\nWantedBy=multi-user.target\n"
    )
}

/// Keys of the Butane subset we translate, by path (`[]` for list items). Keys are Butane's
/// (`snake_case`); each becomes Ignition's `camelCase`.
pub const ALLOWED: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "variant",
            "version",
            "storage",
            "systemd",
            "passwd",
            "kernel_arguments",
        ],
    ),
    ("storage", &["files", "directories", "links"]),
    (
        "storage.files[]",
        &[
            "path",
            "overwrite",
            "mode",
            "user",
            "group",
            "contents",
            "append",
        ],
    ),
    ("storage.files[].contents", CONTENTS),
    ("storage.files[].append[]", CONTENTS),
    ("storage.files[].contents.verification", &["hash"]),
    ("storage.files[].append[].verification", &["hash"]),
    (
        "storage.files[].contents.http_headers[]",
        &["name", "value"],
    ),
    (
        "storage.files[].append[].http_headers[]",
        &["name", "value"],
    ),
    ("storage.files[].user", &["id", "name"]),
    ("storage.files[].group", &["id", "name"]),
    (
        "storage.directories[]",
        &["path", "overwrite", "mode", "user", "group"],
    ),
    ("storage.directories[].user", &["id", "name"]),
    ("storage.directories[].group", &["id", "name"]),
    (
        "storage.links[]",
        &["path", "target", "hard", "overwrite", "user", "group"],
    ),
    ("storage.links[].user", &["id", "name"]),
    ("storage.links[].group", &["id", "name"]),
    ("systemd", &["units"]),
    (
        "systemd.units[]",
        &["name", "enabled", "mask", "contents", "dropins"],
    ),
    ("systemd.units[].dropins[]", &["name", "contents"]),
    ("passwd", &["users", "groups"]),
    (
        "passwd.users[]",
        &[
            "name",
            "uid",
            "password_hash",
            "ssh_authorized_keys",
            "home_dir",
            "no_create_home",
            "primary_group",
            "groups",
            "no_user_group",
            "no_log_init",
            "shell",
            "system",
            "gecos",
        ],
    ),
    (
        "passwd.groups[]",
        &["name", "gid", "password_hash", "system"],
    ),
    ("kernel_arguments", &["should_exist", "should_not_exist"]),
];

const CONTENTS: &[&str] = &[
    "inline",
    "source",
    "compression",
    "verification",
    "http_headers",
];

/// Translates `additionalConfig` (Butane YAML of `variant`/`version`) to an Ignition config of
/// `spec_version`.
pub fn translate_butane(
    text: &str,
    variant: IgnitionVariant,
    version: &str,
    spec_version: &str,
) -> Result<Value, IgnitionError> {
    let bad = |m: String| IgnitionError::Additional(m);
    // Position only: the parser's message could quote the user's data (a password hash).
    // Butane reads `mode: 0644` as octal (YAML 1.1, as go-yaml v3 still does).
    let mut options = serde_saphyr::Options::default();
    options.legacy_octal_numbers = true;
    let doc: Value = serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        bad(format!(
            "not YAML: {}",
            k0smotron_api::yaml::YamlError::from(e)
        ))
    })?;
    let Value::Object(mut top) = doc else {
        return Err(bad("not a mapping of Butane keys".into()));
    };
    let want_variant = serde_json::to_value(variant).unwrap_or_default();
    if top.remove("variant") != Some(want_variant.clone()) {
        return Err(bad(format!(
            "variant must be {want_variant}, as in provisioner.ignition"
        )));
    }
    if top.remove("version").as_ref().and_then(Value::as_str) != Some(version) {
        return Err(bad(format!(
            "version must be {version:?}, as in provisioner.ignition"
        )));
    }
    let mut out = translate(Value::Object(top), "")?;
    if let Value::Object(map) = &mut out {
        map.insert("ignition".into(), json!({"version": spec_version}));
    }
    Ok(out)
}

fn translate(value: Value, path: &str) -> Result<Value, IgnitionError> {
    match value {
        Value::Array(items) => items
            .into_iter()
            .map(|v| translate(v, &format!("{path}[]")))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::Object(map) => {
            let Some((_, allowed)) = ALLOWED.iter().find(|(p, _)| *p == path) else {
                return Err(IgnitionError::Additional(format!(
                    "{} is not a mapping we translate",
                    display(path)
                )));
            };
            if map.contains_key("inline") && map.contains_key("source") {
                return Err(IgnitionError::Additional(format!(
                    "{}: only one of inline and source",
                    display(path)
                )));
            }
            let mut out = Map::new();
            for (key, v) in map {
                let here = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                if !allowed.contains(&key.as_str()) {
                    return Err(IgnitionError::Additional(format!(
                        "{} is not supported (we translate files, directories, links, systemd units, users, groups and kernel arguments; docs/bootstrap.md)",
                        display(&here)
                    )));
                }
                if key == "inline" {
                    let Value::String(text) = v else {
                        return Err(IgnitionError::Additional(format!(
                            "{} must be a string",
                            display(&here)
                        )));
                    };
                    out.insert("source".into(), Value::String(data_url(text.as_bytes())));
                    continue;
                }
                out.insert(camel(&key), translate(v, &here)?);
            }
            Ok(Value::Object(out))
        }
        scalar => Ok(scalar),
    }
}

fn display(path: &str) -> String {
    if path.is_empty() {
        "the document".into()
    } else {
        path.to_string()
    }
}

/// Butane's key names to Ignition's: `ssh_authorized_keys` → `sshAuthorizedKeys`.
fn camel(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn butane_keys_become_ignitions_and_inline_contents_data_urls() {
        let text = "variant: flatcar\nversion: 1.1.0\npasswd:\n  users:\n    - name: core\n      ssh_authorized_keys: [ssh-ed25519 AAAA]\nstorage:\n  files:\n    - path: /etc/motd\n      mode: 0644\n      contents:\n        inline: hello\nsystemd:\n  units:\n    - name: x.service\n      dropins:\n        - name: a.conf\n          contents: \"[Service]\\n\"\n";
        let out = translate_butane(text, IgnitionVariant::Flatcar, "1.1.0", "3.4.0").unwrap();
        assert_eq!(out["ignition"]["version"], "3.4.0");
        assert_eq!(
            out["passwd"]["users"][0]["sshAuthorizedKeys"],
            json!(["ssh-ed25519 AAAA"])
        );
        assert_eq!(
            out["storage"]["files"][0]["contents"]["source"],
            "data:;base64,aGVsbG8="
        );
        assert_eq!(out["storage"]["files"][0]["mode"], 420);
        assert_eq!(out["systemd"]["units"][0]["dropins"][0]["name"], "a.conf");
        assert!(out.get("variant").is_none());
    }

    #[test]
    fn what_we_do_not_translate_is_refused_with_its_path() {
        let t = |text: &str| {
            translate_butane(text, IgnitionVariant::Fcos, "1.5.0", "3.4.0")
                .unwrap_err()
                .to_string()
        };
        assert!(t("variant: fcos\nversion: 1.5.0\nboot_device: {}\n").contains("boot_device"));
        assert!(
            t("variant: fcos\nversion: 1.5.0\nstorage:\n  trees: []\n").contains("storage.trees")
        );
        assert!(
            t("variant: fcos\nversion: 1.5.0\nstorage:\n  files:\n    - path: /a\n      contents: {local: x}\n")
                .contains("storage.files[].contents.local")
        );
        assert!(t("variant: flatcar\nversion: 1.5.0\n").contains("variant must be"));
        assert!(t("variant: fcos\nversion: 1.4.0\n").contains("version must be"));
        assert!(t("- a\n").contains("not a mapping"));
    }

    #[test]
    fn the_config_holds_our_files_script_and_unit_and_gives_the_token_back() {
        let files = vec![
            WriteFile::new("/etc/k0s.token", b"token", Some("0600".into())),
            WriteFile::new("/etc/bin", &[0, 255], None),
        ];
        let commands = vec!["echo 'it''s'".to_string(), "touch /done".to_string()];
        let text = render(&IgnitionInput {
            spec_version: "3.4.0",
            files: &files,
            commands: &commands,
            additional: Some(&json!({"ignition": {"version": "3.4.0"}})),
        });
        let doc: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["ignition"]["version"], "3.4.0");
        assert!(
            doc["ignition"]["config"]["merge"][0]["source"]
                .as_str()
                .unwrap()
                .starts_with("data:;base64,")
        );
        let back = super::files(&text).unwrap();
        assert_eq!(back[0].decoded_content().unwrap(), b"token");
        assert_eq!(back[1].decoded_content().unwrap(), [0, 255]);
        let script = String::from_utf8(back[2].decoded_content().unwrap()).unwrap();
        assert!(
            script.contains("set -e\necho 'it''s'\ntouch /done\n"),
            "{script}"
        );
        assert_eq!(doc["storage"]["files"][0]["mode"], 0o600);
        assert_eq!(doc["storage"]["files"][1]["mode"], 0o644);
        assert_eq!(doc["storage"]["files"][2]["mode"], 0o700);
        assert_eq!(doc["systemd"]["units"][0]["name"], UNIT_NAME);
        assert!(super::files("#cloud-config\n").is_none());
    }
}
