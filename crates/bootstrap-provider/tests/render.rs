//! Snapshot tests of the bootstrap data for representative configs (tests/fixtures), each
//! checked by Debian's `cloud-init schema`, and the `render` subcommand of the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use bootstrap_provider::offline::{self, OfflineOptions};

mod common;
use common::{assert_cloud_init_accepts, temp_file};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn options() -> OfflineOptions {
    OfflineOptions {
        machine_version: Some("v1.34.1".into()),
        endpoint: Some("https://10.0.0.1:30443".into()),
        machine_name: None,
        custom_user_data: None,
        gates: Default::default(),
    }
}

fn render_fixture(name: &str) -> String {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    offline::render_text(&text, &options()).unwrap_or_else(|e| panic!("{name}: {e:?}"))
}

macro_rules! fixture_test {
    ($test:ident, $file:literal) => {
        #[test]
        fn $test() {
            let data = render_fixture($file);
            insta::assert_snapshot!(stringify!($test), data);
            assert_cloud_init_accepts(stringify!($test), &data);
        }
    };
}

fixture_test!(minimal, "minimal.yaml");
fixture_test!(full, "full.yaml");
fixture_test!(system_hostname, "system-hostname.yaml");
fixture_test!(download_http, "download-http.yaml");
fixture_test!(download_oci, "download-oci.yaml");
fixture_test!(preinstalled, "preinstalled.yaml");
fixture_test!(template, "template.yaml");

/// The schema check must be able to fail, or it proves nothing.
#[test]
fn cloud_init_schema_rejects_broken_documents() {
    let path = temp_file("broken", "#cloud-config\nruncmd: not-a-list\n");
    let out = Command::new("cloud-init")
        .args(["schema", "--config-file"])
        .arg(&path)
        .output()
        .expect("cloud-init must be installed");
    let _ = std::fs::remove_file(&path);
    assert!(!out.status.success());
}

#[test]
fn without_any_version_the_script_installs_latest() {
    let text = std::fs::read_to_string(fixture("minimal.yaml")).unwrap();
    let data = offline::render_text(&text, &OfflineOptions::default()).unwrap();
    assert!(
        data.contains("https://get.k0s.sh | K0S_INSTALL_PATH=/usr/local/bin sh"),
        "{data}"
    );
    assert!(!data.contains("K0S_VERSION"));
}

/// Runs `bootstrap-provider render -f <config> <args>`, which must succeed; its stdout.
fn render_binary(config: &Path, args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_bootstrap-provider"))
        .args(["render", "-f"])
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn binary_render_subcommand_prints_the_same_data() {
    let args = [
        "--machine-version",
        "v1.34.1",
        "--endpoint",
        "https://10.0.0.1:30443",
    ]
    .map(std::ffi::OsStr::new);
    assert_eq!(
        render_binary(&fixture("full.yaml"), &args),
        render_fixture("full.yaml")
    );
    let args = ["--machine-name", "other-name"].map(std::ffi::OsStr::new);
    assert!(
        render_binary(&fixture("minimal.yaml"), &args).contains("--hostname-override=other-name")
    );
}

#[test]
fn binary_render_reports_invalid_configs() {
    let path = temp_file(
        "powershell",
        "apiVersion: bootstrap.cluster.x-k8s.io/v1beta2\nkind: K0sWorkerConfig\nmetadata: {name: x}\nspec:\n  provisioner: {type: powershell}\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_bootstrap-provider"))
        .args(["render", "-f"])
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("provisioner.type powershell is not for platform linux")
    );
}

/// `provisioner.customUserDataRef`: the user's own cloud-config merged into ours, as the
/// controller renders it (the reference resolved to real content), in one document that
/// cloud-init accepts and reads as intended.
#[test]
fn custom_user_data_is_merged() {
    use bootstrap_provider::validate::{self, OwnerInfo, Resolved};
    use k0smotron_api::bootstrap::v1beta2::K0sWorkerConfig;

    let config: K0sWorkerConfig =
        serde_saphyr::from_str(&std::fs::read_to_string(fixture("custom-user-data.yaml")).unwrap())
            .unwrap();
    let user_data = "#cloud-config\n\
        packages: [htop]\n\
        ntp:\n  enabled: true\n\
        write_files:\n  - path: /etc/motd\n    content: managed by k0smotron\n    owner: root:root\n\
        runcmd:\n  - [systemctl, restart, ssh]\n  - echo custom\n";
    let owner = OwnerInfo {
        name: "worker-0",
        version: Some("v1.34.1"),
        is_pool: false,
    };
    let bootstrap = validate::validate(&config.spec, &owner, |reference| {
        assert_eq!(
            reference.to_string(),
            "key \"user-data\" of Secret \"custom\""
        );
        Resolved::Found(user_data.as_bytes().to_vec())
    })
    .unwrap();
    let data = bootstrap.render("H4sIAAAAAAAC/join-token").unwrap();
    insta::assert_snapshot!("custom_user_data", data);
    assert_cloud_init_accepts("custom_user_data", &data);

    // What cloud-init's YAML parser reads: ours first, the user's after, the sentinel last.
    let doc = read_by_pyyaml(&data);
    let paths: Vec<&str> = doc["write_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/etc/k0s.token", "/etc/spec-file", "/etc/motd"]);
    assert_eq!(doc["write_files"][2]["owner"], "root:root");
    let runcmd = doc["runcmd"].as_array().unwrap();
    let n = runcmd.len();
    assert_eq!(
        runcmd[n - 3],
        serde_json::json!(["systemctl", "restart", "ssh"])
    );
    assert_eq!(runcmd[n - 2], "echo custom");
    assert_eq!(runcmd[n - 4], "echo post");
    assert_eq!(
        runcmd[n - 1],
        "mkdir -p /run/cluster-api && touch /run/cluster-api/bootstrap-success.complete"
    );
    assert_eq!(doc["packages"], serde_json::json!(["htop"]));
    assert_eq!(doc["ntp"], serde_json::json!({"enabled": true}));
    // The join token is still found where the controller looks for it.
    assert_eq!(
        bootstrap_provider::render::recover_join_token(&data, "/etc/k0s.token").unwrap(),
        "H4sIAAAAAAAC/join-token"
    );
}

/// `render --custom-user-data FILE` shows how the custom user data merges; without it the
/// custom user data is left out.
#[test]
fn binary_render_merges_custom_user_data_from_a_file() {
    let user_data = temp_file(
        "custom",
        "#cloud-config\npackages: [htop]\nruncmd: [echo custom]\n",
    );
    let config = fixture("custom-user-data.yaml");
    let version = ["--machine-version".as_ref(), "v1.34.1".as_ref()];
    let merged = render_binary(
        &config,
        &[
            version[0],
            version[1],
            "--custom-user-data".as_ref(),
            user_data.as_os_str(),
        ],
    );
    let plain = render_binary(&config, &version);
    let _ = std::fs::remove_file(&user_data);
    assert!(merged.contains("packages:\n  - htop\n"), "{merged}");
    assert!(
        merged.contains("  - echo post\n  - echo custom\n  - mkdir -p /run/cluster-api"),
        "{merged}"
    );
    assert_cloud_init_accepts("render_custom", &merged);
    assert!(
        !plain.contains("htop") && !plain.contains("echo custom"),
        "{plain}"
    );
}

/// A template of the user's under `CloudInitVars` (upstream's feature gate), rendered by
/// cloud-init's own Jinja renderer (`cloud-init devel render`): the result is a cloud-config
/// that `cloud-init schema` accepts, with the spec's commands, the k0s commands, the sentinel
/// and every file of ours where the template put them, values with quotes and newlines intact.
#[test]
fn cloud_init_vars_template_is_rendered_by_cloud_init() {
    let template = [
        "runcmd:",
        "{% for c in k0smotron_preK0sCommands %}  - {{ c | tojson }}",
        "{% endfor %}  - {{ k0smotron_k0sDownloadCommands }}",
        "  - echo installing && {{ k0smotron_k0sInstallCommand }}",
        "  - {{ k0smotron_k0sStartCommand }}",
        "{% for c in k0smotron_postK0sCommands %}  - {{ c | tojson }}",
        "{% endfor %}  - {{ k0smotron_sentinelCommand }}",
        "write_files:",
        "{% for f in k0smotron_files %}  - path: {{ f.path }}",
        "    permissions: \"{{ f.permissions }}\"",
        "    content: {{ f.content | tojson }}",
        "{% endfor %}  - path: /etc/motd",
        "    content: custom",
    ]
    .join("\n");
    let config = std::fs::read_to_string(fixture("custom-user-data.yaml"))
        .unwrap()
        .replace(
            "  postK0sCommands:\n",
            "  preK0sCommands:\n    - 'echo \"it''s: pre\"'\n  postK0sCommands:\n",
        );
    let data = offline::render_text(
        &config,
        &OfflineOptions {
            custom_user_data: Some(template),
            gates: "CloudInitVars=true".parse().unwrap(),
            ..options()
        },
    )
    .unwrap();
    insta::assert_snapshot!("cloud_init_vars", data);
    assert!(data.starts_with("## template: jinja\n#cloud-config\n"));
    // The join token is still found where the controller looks for it.
    let token = bootstrap_provider::render::recover_join_token(&data, "/etc/k0s.token").unwrap();

    let source = temp_file("vars-template", &data);
    let instance = temp_file("vars-instance", "{}");
    let out = Command::new("cloud-init")
        .args(["devel", "render", "-i"])
        .arg(&instance)
        .arg(&source)
        .output()
        .expect("cloud-init must be installed");
    let _ = std::fs::remove_file(&source);
    let _ = std::fs::remove_file(&instance);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = String::from_utf8(out.stdout).unwrap();
    assert_cloud_init_accepts("cloud_init_vars_rendered", &rendered);

    let doc = read_by_pyyaml(&rendered);
    let runcmd: Vec<&str> = doc["runcmd"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(runcmd[0], "echo \"it's: pre\"");
    assert!(
        runcmd[1].starts_with("curl -sSfL --retry 5 https://get.k0s.sh"),
        "{runcmd:?}"
    );
    assert!(
        runcmd[2].starts_with(
            "echo installing && /usr/local/bin/k0s install worker --token-file /etc/k0s.token"
        ),
        "{runcmd:?}"
    );
    assert!(
        runcmd[3].contains("systemctl start k0sworker"),
        "{runcmd:?}"
    );
    assert_eq!(runcmd[4], "echo post");
    assert_eq!(
        runcmd[5],
        "mkdir -p /run/cluster-api && touch /run/cluster-api/bootstrap-success.complete"
    );
    let files = doc["write_files"].as_array().unwrap();
    assert_eq!(files[0]["path"], "/etc/k0s.token");
    assert_eq!(files[0]["permissions"], "0600");
    assert_eq!(files[0]["content"], token.as_str());
    assert_eq!(files[1]["path"], "/etc/spec-file");
    assert_eq!(files[1]["content"], "from spec.files");
    assert_eq!(files[1]["permissions"], "0644");
    assert_eq!(files[2]["path"], "/etc/motd");
}

/// Runs Ignition's own validator (`ignition-validate`, built by `test/harness/cluster build`
/// from github.com/coreos/ignition/v2 and on the harness's PATH) on `config`.
fn assert_ignition_accepts(name: &str, config: &str) {
    let path = temp_file(name, config);
    let out = Command::new("ignition-validate")
        .arg(&path)
        .output()
        .expect(
            "ignition-validate must be on PATH: test/harness/cluster build, then the harness's env",
        );
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "ignition-validate rejected {name}:\nstdout: {}\nstderr: {}\n---\n{config}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `provisioner.type: ignition`: the config, and the translated `additionalConfig` it merges,
/// pass Ignition's own validator; the join token, the spec's files and the script are in it;
/// the validator is not a test that cannot fail (a broken config is refused).
#[test]
fn ignition_passes_ignitions_own_validator() {
    use base64::Engine as _;
    let data = render_fixture("ignition.yaml");
    let pretty: serde_json::Value = serde_json::from_str(&data).unwrap();
    // The snapshot shows every data URL decoded, to be read.
    let mut readable = pretty.clone();
    decode_sources(&mut readable);
    insta::assert_snapshot!("ignition", serde_json::to_string_pretty(&readable).unwrap());
    assert_ignition_accepts("ignition", &data);
    let merged = pretty["ignition"]["config"]["merge"][0]["source"]
        .as_str()
        .unwrap()
        .strip_prefix("data:;base64,")
        .unwrap();
    let additional =
        String::from_utf8(base64::prelude::BASE64_STANDARD.decode(merged).unwrap()).unwrap();
    assert_ignition_accepts("ignition-additional", &additional);
    let additional: serde_json::Value = serde_json::from_str(&additional).unwrap();
    assert_eq!(additional["ignition"]["version"], "3.4.0");
    assert_eq!(additional["storage"]["files"][0]["mode"], 0o644);
    assert_eq!(additional["passwd"]["users"][0]["name"], "core");

    let files = bootstrap_provider::cloudinit::CloudConfig::files_in_user_data(&data).unwrap();
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/etc/k0s.token",
            "/etc/spec-file",
            "/etc/k0smotron/bootstrap.sh"
        ]
    );
    let script = String::from_utf8(files[2].decoded_content().unwrap()).unwrap();
    let lines: Vec<&str> = script.lines().collect();
    assert_eq!(lines[2], "set -e");
    assert_eq!(lines[3], "echo \"pre: it's here\"");
    assert!(lines[5].starts_with("/usr/local/bin/k0s install worker --token-file /etc/k0s.token"));
    assert_eq!(lines[7], "echo post");
    assert_eq!(
        lines[8],
        "mkdir -p /run/cluster-api && touch /run/cluster-api/bootstrap-success.complete"
    );
    assert!(bootstrap_provider::render::recover_join_token(&data, "/etc/k0s.token").is_ok());

    // The validator refuses what is broken: a file without a path.
    let mut broken = pretty.clone();
    broken["storage"]["files"][0]
        .as_object_mut()
        .unwrap()
        .remove("path");
    let path = temp_file("ignition-broken", &broken.to_string());
    let out = Command::new("ignition-validate")
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(!out.status.success(), "a file without a path was accepted");
}

/// Every stable Butane version we map renders a config its Ignition spec version validates.
#[test]
fn every_supported_butane_version_validates() {
    let text = std::fs::read_to_string(fixture("ignition.yaml")).unwrap();
    let base: String = text
        .lines()
        .take_while(|l| l.trim() != "additionalConfig: |")
        .collect::<Vec<_>>()
        .join("\n");
    for (variant, version) in [
        ("fcos", "1.0.0"),
        ("fcos", "1.1.0"),
        ("fcos", "1.2.0"),
        ("fcos", "1.3.0"),
        ("fcos", "1.4.0"),
        ("fcos", "1.5.0"),
        ("fcos", "1.6.0"),
        ("flatcar", "1.0.0"),
        ("flatcar", "1.1.0"),
    ] {
        let config = base
            .replace("variant: flatcar", &format!("variant: {variant}"))
            .replace("version: 1.1.0", &format!("version: {version}"));
        let data = offline::render_text(&config, &options()).unwrap();
        assert_ignition_accepts(&format!("ignition-{variant}-{version}"), &data);
    }
}

/// Replaces each `data:;base64,` source with its text (JSON configs parsed, for the merged one).
fn decode_sources(value: &mut serde_json::Value) {
    use base64::Engine as _;
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                let decoded = (key == "source")
                    .then(|| v.as_str()?.strip_prefix("data:;base64,"))
                    .flatten()
                    .and_then(|b| base64::prelude::BASE64_STANDARD.decode(b).ok())
                    .and_then(|bytes| String::from_utf8(bytes).ok());
                match decoded {
                    Some(text) => {
                        *v = match serde_json::from_str::<serde_json::Value>(&text) {
                            Ok(mut json) if json.is_object() => {
                                decode_sources(&mut json);
                                json
                            }
                            _ => serde_json::Value::String(text),
                        }
                    }
                    None => decode_sources(v),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(decode_sources),
        _ => {}
    }
}

/// What cloud-init's YAML parser (PyYAML, installed with cloud-init) reads of `text`, as JSON.
fn read_by_pyyaml(text: &str) -> serde_json::Value {
    let script = "import sys, json, yaml\nprint(json.dumps(yaml.safe_load(sys.stdin.read())))";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with PyYAML (installed with cloud-init)");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
    serde_json::from_slice(&child.wait_with_output().unwrap().stdout).unwrap()
}

/// A fixture's data for a worker of a control plane behind an ingress (`with_haproxy`), or not.
fn render_ingress_worker(name: &str, with_haproxy: bool) -> String {
    use bootstrap_provider::haproxy::{self, HaproxyMaterial};
    use bootstrap_provider::validate::{self, OwnerInfo, Resolved};
    let input = offline::parse_input(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap();
    let owner = OwnerInfo {
        name: "worker-0",
        version: Some("v1.34.1"),
        is_pool: false,
    };
    let mut bootstrap = validate::validate(&input.spec, &owner, |_| {
        Resolved::Found(b"from contentFrom\n".to_vec())
    })
    .unwrap();
    if with_haproxy {
        let material = HaproxyMaterial {
            ca: b"-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n".to_vec(),
            cert: b"-----BEGIN CERTIFICATE-----\nLEAF\n-----END CERTIFICATE-----\n".to_vec(),
            key: b"-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n".to_vec(),
        };
        haproxy::add_files(&mut bootstrap, &material).unwrap();
    }
    bootstrap.render("H4sIAAAAAAAC/join").unwrap()
}

const HAPROXY_FILES: [(&str, &str); 4] = [
    ("/etc/haproxy/certs/ca.crt", "0644"),
    ("/etc/haproxy/certs/server.crt", "0644"),
    ("/etc/haproxy/certs/server.key", "0600"),
    ("/etc/haproxy/certs/server.pem", "0600"),
];

/// Behind an ingress, cloud-init writes HAProxy's four files with the key only root's (0600),
/// `server.pem` being the certificate then the key; nothing is `chmod`ed afterwards; and the
/// document is valid for `cloud-init schema`. Without an ingress none of it is there.
#[test]
fn ingress_workers_get_the_haproxy_files_in_cloud_init() {
    let data = render_ingress_worker("full.yaml", true);
    insta::assert_snapshot!("ingress_haproxy_cloud_init", data);
    assert_cloud_init_accepts("ingress_haproxy", &data);
    let doc = read_by_pyyaml(&data);
    let files = doc["write_files"].as_array().unwrap();
    for (path, mode) in HAPROXY_FILES {
        let file = files
            .iter()
            .find(|f| f["path"] == path)
            .unwrap_or_else(|| panic!("{path} missing: {data}"));
        assert_eq!(file["permissions"], mode, "{path}");
    }
    let pem = files
        .iter()
        .find(|f| f["path"] == "/etc/haproxy/certs/server.pem")
        .unwrap();
    assert_eq!(
        pem["content"],
        "-----BEGIN CERTIFICATE-----\nLEAF\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n"
    );
    assert!(!data.contains("chmod"), "{data}");

    let plain = render_ingress_worker("full.yaml", false);
    assert!(!plain.contains("/etc/haproxy"), "{plain}");
}

/// The same files in an Ignition config, with modes 0644 and 0600, accepted by Ignition's own
/// validator; and none without an ingress.
#[test]
fn ingress_workers_get_the_haproxy_files_in_ignition() {
    use base64::Engine as _;
    let data = render_ingress_worker("ignition.yaml", true);
    let config: serde_json::Value = serde_json::from_str(&data).unwrap();
    let files = config["storage"]["files"].as_array().unwrap();
    for (path, mode) in HAPROXY_FILES {
        let file = files
            .iter()
            .find(|f| f["path"] == path)
            .unwrap_or_else(|| panic!("{path} missing: {data}"));
        assert_eq!(
            file["mode"],
            i64::from_str_radix(mode, 8).unwrap(),
            "{path}"
        );
        let source = file["contents"]["source"].as_str().unwrap();
        let text = base64::prelude::BASE64_STANDARD
            .decode(source.strip_prefix("data:;base64,").unwrap())
            .unwrap();
        assert!(text.starts_with(b"-----BEGIN"), "{path}");
    }
    let plain = render_ingress_worker("ignition.yaml", false);
    assert!(!plain.contains("haproxy"), "{plain}");
    assert_ignition_accepts("ingress_haproxy_ignition", &data);
}
