//! Helpers shared by the integration test files.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::process::Command;

/// Runs `cloud-init schema --config-file` on `user_data`; cloud-init must be installed (CI's
/// `.ci/run` installs it; locally `apt-get install -y cloud-init`).
pub fn assert_cloud_init_accepts(name: &str, user_data: &str) {
    let path = std::env::temp_dir().join(format!(
        "bootstrap-provider-{}-{name}.yaml",
        std::process::id()
    ));
    std::fs::write(&path, user_data).unwrap();
    let out = Command::new("cloud-init")
        .args(["schema", "--config-file"])
        .arg(&path)
        .output()
        .expect("cloud-init must be installed: apt-get install -y cloud-init");
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "cloud-init schema rejected {name}:\nstdout: {}\nstderr: {}\n---\n{user_data}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Valid cloud-config"));
}
