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

/// PowerShell's syntax tree of `script` (Airbus CERT's grammar for tree-sitter).
pub fn parse_powershell(script: &str) -> tree_sitter::Tree {
    let mut parser = tree_sitter::Parser::new();
    parser
        .set_language(&tree_sitter_powershell::LANGUAGE.into())
        .unwrap();
    parser.parse(script, None).unwrap()
}

/// The first PowerShell syntax error in `script`, with its line, if any.
pub fn powershell_syntax_error(script: &str) -> Option<String> {
    let tree = parse_powershell(script);
    let mut cursor = tree.walk();
    let mut stack = vec![tree.root_node()];
    while let Some(node) = stack.pop() {
        if node.is_error() || node.is_missing() {
            let line = node.start_position().row;
            return Some(format!(
                "{} at line {}: {:?}",
                node.kind(),
                line + 1,
                script.lines().nth(line).unwrap_or_default()
            ));
        }
        if node.has_error() {
            stack.extend(node.children(&mut cursor));
        }
    }
    None
}

/// Fails the test when `script` is not valid PowerShell syntax.
pub fn assert_powershell_parses(name: &str, script: &str) {
    if let Some(error) = powershell_syntax_error(script) {
        panic!("{name}: PowerShell syntax error: {error}\n---\n{script}");
    }
}
