//! Helpers shared by the integration test files.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::process::Command;

/// Runs `cloud-init schema --config-file` on `user_data`; cloud-init must be installed (CI's
/// `.ci/run` installs it; locally `apt-get install -y cloud-init`).
pub fn assert_cloud_init_accepts(name: &str, user_data: &str) {
    let path = temp_file(name, user_data);
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

/// Writes `content` to a file named for this test process and `name` in the temp directory.
pub fn temp_file(name: &str, content: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "bootstrap-provider-{}-{name}.yaml",
        std::process::id()
    ));
    std::fs::write(&path, content).unwrap();
    path
}
