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
        "ignition",
        "apiVersion: bootstrap.cluster.x-k8s.io/v1beta2\nkind: K0sWorkerConfig\nmetadata: {name: x}\nspec:\n  provisioner: {type: ignition}\n",
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
            .contains("provisioner type \"ignition\" is not supported yet")
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
    let script = "import sys, json, yaml\nprint(json.dumps(yaml.safe_load(sys.stdin.read())))";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with PyYAML (installed with cloud-init)");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), data.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
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

    let script = "import sys, json, yaml\nprint(json.dumps(yaml.safe_load(sys.stdin.read())))";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with PyYAML (installed with cloud-init)");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), rendered.as_bytes()).unwrap();
    let doc: serde_json::Value =
        serde_json::from_slice(&child.wait_with_output().unwrap().stdout).unwrap();
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
