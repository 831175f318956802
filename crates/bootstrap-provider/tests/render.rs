//! Snapshot tests of the bootstrap data for representative configs (tests/fixtures), each
//! checked by Debian's `cloud-init schema`, and the `render` subcommand of the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use bootstrap_provider::offline::{self, OfflineOptions};

mod common;
use common::assert_cloud_init_accepts;

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
    let path = std::env::temp_dir().join(format!(
        "bootstrap-provider-{}-broken.yaml",
        std::process::id()
    ));
    std::fs::write(&path, "#cloud-config\nruncmd: not-a-list\n").unwrap();
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

#[test]
fn binary_render_subcommand_prints_the_same_data() {
    let out = Command::new(env!("CARGO_BIN_EXE_bootstrap-provider"))
        .args(["render", "-f"])
        .arg(fixture("full.yaml"))
        .args([
            "--machine-version",
            "v1.34.1",
            "--endpoint",
            "https://10.0.0.1:30443",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        render_fixture("full.yaml")
    );

    let out = Command::new(env!("CARGO_BIN_EXE_bootstrap-provider"))
        .args(["render", "-f"])
        .arg(fixture("minimal.yaml"))
        .args(["--machine-name", "other-name"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--hostname-override=other-name"));
}

#[test]
fn binary_render_reports_invalid_configs() {
    let path = std::env::temp_dir().join(format!(
        "bootstrap-provider-{}-ignition.yaml",
        std::process::id()
    ));
    std::fs::write(
        &path,
        "apiVersion: bootstrap.cluster.x-k8s.io/v1beta2\nkind: K0sWorkerConfig\nmetadata: {name: x}\nspec:\n  provisioner: {type: ignition}\n",
    )
    .unwrap();
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
