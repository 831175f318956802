//! Windows workers (issue #14): snapshots of the `powershell`, `powershell-xml` and Windows
//! `cloud-config` user data for the fixtures in tests/fixtures, each checked by a real parser:
//! PowerShell's grammar for tree-sitter (the script, and the install script it writes),
//! roxmltree (the XML form), cloud-init's schema (the cloud-config form). No PowerShell runs
//! here, so these check syntax and structure, not behaviour on Windows.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use bootstrap_provider::cloudinit::{CloudConfig, WriteFile};
use bootstrap_provider::offline::{self, OfflineOptions};
use bootstrap_provider::windows;

mod common;
use common::{
    assert_cloud_init_accepts, assert_powershell_parses, parse_powershell as parse,
    powershell_syntax_error as syntax_error,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn render_fixture(name: &str) -> String {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    let options = OfflineOptions {
        machine_version: Some("v1.34.2".into()),
        endpoint: Some("https://10.0.0.1:30443".into()),
        ..OfflineOptions::default()
    };
    offline::render_text(&text, &options).unwrap_or_else(|e| panic!("{name}: {e:?}"))
}

/// The texts of the nodes of `kind` in `script`, in order.
fn nodes_of_kind(script: &str, kind: &str) -> Vec<String> {
    let tree = parse(script);
    let mut out = Vec::new();
    let mut cursor = tree.walk();
    let mut stack = vec![tree.root_node()];
    while let Some(node) = stack.pop() {
        if node.kind() == kind {
            out.push(script[node.byte_range()].to_string());
        }
        let mut children: Vec<_> = node.children(&mut cursor).collect();
        children.reverse();
        stack.extend(children);
    }
    out
}

/// The files the script writes, read back the way the provider recovers the join token.
fn files_of(data: &str) -> Vec<WriteFile> {
    CloudConfig::files_in_user_data(data).unwrap()
}

fn install_script(files: &[WriteFile]) -> String {
    let file = files
        .iter()
        .find(|f| f.path == windows::INSTALL_SCRIPT_PATH)
        .expect("the install script is written");
    String::from_utf8(file.decoded_content().unwrap()).unwrap()
}

/// The validator is not a test that cannot fail: what is broken is refused.
#[test]
fn the_powershell_parser_refuses_broken_scripts() {
    for broken in [
        "Write-Host 'unterminated\n",
        "if ($x) { Write-Host 'x'\n",
        "$a = @'\nno end\n",
        "function f { param([string]$a }\n",
        "Write-Host \"$(\"\n",
    ] {
        assert!(syntax_error(broken).is_some(), "accepted: {broken:?}");
    }
    assert_eq!(syntax_error("Write-Host 'it''s'\n. $k0s 'install'\n"), None);
}

/// `powershell`: the script and its install script parse; the join token, the spec's files and
/// the install script are written; every hostile value is one string literal's value.
#[test]
fn powershell_form() {
    let data = render_fixture("windows-powershell.yaml");
    insta::assert_snapshot!("windows_powershell", data);
    assert_powershell_parses("script", &data);
    assert!(data.starts_with("#ps1_sysnative\n"));
    assert!(data.is_ascii() && !data.contains('<') && !data.contains('&'));

    let files = files_of(&data);
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/etc/k0s.token",
            "C:\\etc\\it's here.conf",
            "C:/etc/private.key",
            windows::INSTALL_SCRIPT_PATH
        ]
    );
    let token = String::from_utf8(files[0].decoded_content().unwrap()).unwrap();
    assert!(bootstrap_provider::join_token::decode(&token).is_ok());
    assert_eq!(
        files[1].decoded_content().unwrap(),
        "key = '$(Get-Date)' `\"@\n'@\n]]></powershell><x>&\ncafé\n".as_bytes()
    );
    // The token and the 0600 file are made private; the others are not.
    assert!(data.contains("-Path '/etc/k0s.token' -Base64 '"));
    let private: Vec<&str> = data
        .lines()
        .filter(|l| l.starts_with("Write-K0smotronFile") && l.ends_with(" -Private"))
        .collect();
    assert_eq!(private.len(), 2, "{private:?}");
    assert!(private[1].starts_with("Write-K0smotronFile -Path 'C:/etc/private.key'"));

    let script = install_script(&files);
    insta::assert_snapshot!("windows_install_script", script);
    assert_powershell_parses("install script", &script);
    // Each user command is one string, passed to [scriptblock]::Create as written.
    let commands: Vec<String> = nodes_of_kind(&script, "invokation_expression")
        .into_iter()
        .filter(|e| e.starts_with("[scriptblock]::Create("))
        .collect();
    let decoded: Vec<String> = commands
        .iter()
        .map(|c| {
            let arg = c
                .strip_prefix("[scriptblock]::Create(")
                .unwrap()
                .strip_suffix(')')
                .unwrap();
            bootstrap_provider::powershell::unquote(arg).unwrap().0
        })
        .collect();
    assert_eq!(
        decoded,
        [
            "Write-Host 'pre: it''s $(whoami) `n'",
            "Set-Content -Path C:\\pre.txt -Value \"line1\n\"@\n'@\nline2\"",
            "Write-Host \"post\" 2>&1 | Out-Null",
            "Write-Host ']]><b>&amp;'",
        ]
    );
    // Our own commands, in order, are top-level statements: no user text became code.
    let lines: Vec<&str> = script.lines().collect();
    let index = |prefix: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line {prefix:?}"))
    };
    assert!(index(". ([scriptblock]::Create('Write-Host ''pre") < index("Invoke-WebRequest"));
    assert!(index("Invoke-WebRequest") < index(". $k0s 'install' 'worker'"));
    assert!(index(". $k0s start") < index("# postK0sCommands"));
    assert!(index("# postK0sCommands") < index("New-Item -ItemType File -Force -Path $sentinel"));
    assert_eq!(
        lines[index(". $k0s 'install'")],
        ". $k0s 'install' 'worker' '--token-file' '/etc/k0s.token' '--labels=k0smotron.io/machine-name=win-0' '--debug' '--kubelet-extra-args=--hostname-override=win-0 --v=2'"
    );
    assert!(
        script.contains("Invoke-WebRequest -UseBasicParsing -Uri 'https://get.k0sproject.io/v1.34.2+k0s.0/k0s-v1.34.2+k0s.0-amd64.exe' -OutFile $k0s")
    );
    assert!(script.ends_with(
        "New-Item -ItemType File -Force -Path $sentinel | Out-Null\nWrite-Host '=== Bootstrap complete ==='\nStop-Transcript | Out-Null\n"
    ));
    assert!(script.contains("$sentinel = 'C:\\run\\cluster-api\\bootstrap-success.complete'"));
}

/// `powershell-xml`: well-formed XML (a conforming parser), one `powershell` element whose text
/// is exactly the `powershell` form, which is also what a consumer cutting between the tags gets.
#[test]
fn powershell_xml_form() {
    let data = render_fixture("windows-powershell-xml.yaml");
    insta::assert_snapshot!("windows_powershell_xml", data);
    let doc = roxmltree::Document::parse(&data).unwrap_or_else(|e| panic!("{e}\n{data}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "powershell");
    assert_eq!(root.children().count(), 1, "only text inside <powershell>");
    let inner = root.text().unwrap();
    let cut = data
        .strip_prefix("<powershell>")
        .and_then(|d| d.strip_suffix("</powershell>\n"))
        .unwrap();
    assert_eq!(inner, cut);
    let plain = render_fixture("windows-powershell.yaml");
    assert_eq!(inner, plain.replace("win-0", "win-xml-0"));
    assert_powershell_parses("xml script", inner);
    assert_eq!(files_of(&data), files_of(inner));
}

/// Windows with `cloud-config`: the same files and the install script, run from `runcmd`.
#[test]
fn windows_cloud_config_form() {
    let data = render_fixture("windows-cloud-config.yaml");
    insta::assert_snapshot!("windows_cloud_config", data);
    assert_cloud_init_accepts("windows_cloud_config", &data);
    let doc = CloudConfig::from_user_data(&data).unwrap();
    assert_eq!(doc.runcmd, [windows::RUN_COMMAND]);
    let script = install_script(&doc.write_files);
    assert_powershell_parses("install script", &script);
    assert!(script.contains(
        "Invoke-WebRequest -UseBasicParsing -Uri 'https://mirror.example/k0s/v1.34.2/k0s.exe' -OutFile $k0s"
    ));
    assert!(script.contains("$k0s = '/usr/local/bin/k0s.exe'"));
    assert!(!script.contains("--hostname-override"));
    assert!(script.contains(". ([scriptblock]::Create('Write-Host done'))"));
}

/// Hostile values in every place a spec value reaches, for both PowerShell forms: the script
/// still parses, stays XML-neutral, and each value comes back intact.
#[test]
fn hostile_values_stay_values() {
    let hostile = [
        "'",
        "''; Remove-Item C:\\ -Recurse; '",
        "$(Remove-Item C:\\)",
        "`$x`n",
        "\"@\nRemove-Item C:\\\n\"@",
        "'@\nRemove-Item C:\\\n'@",
        "]]></powershell><powershell>Remove-Item C:\\",
        "<!-- & -->",
        "line1\r\nline2\n",
        "\u{2018}smart\u{2019} \u{201c}quotes\u{201d}",
        "# not a comment\n}",
    ];
    for (i, value) in hostile.iter().enumerate() {
        let yaml_value = serde_json::to_string(value).unwrap();
        // Paths may not have control characters (validation), so those become spaces there.
        let in_path = value.replace(['\r', '\n'], " ");
        for format in ["powershell", "powershell-xml"] {
            let config = format!(
                "apiVersion: bootstrap.cluster.x-k8s.io/v1beta2\nkind: K0sWorkerConfig\nmetadata: {{name: w}}\nspec:\n  version: v1.34.2+k0s.0\n  provisioner: {{platform: windows, type: {format}}}\n  k0sInstallDir: {dir}\n  preK0sCommands: [{yaml_value}]\n  files:\n    - path: {path}\n      content: {yaml_value}\n",
                dir = serde_json::to_string(&format!("C:\\k0s {in_path}")).unwrap(),
                path = serde_json::to_string(&format!("C:\\f{i} {in_path}")).unwrap(),
            );
            let data = offline::render_text(&config, &OfflineOptions::default())
                .unwrap_or_else(|e| panic!("{value:?}: {e}"));
            let script = data
                .strip_prefix("<powershell>")
                .and_then(|d| d.strip_suffix("</powershell>\n"))
                .unwrap_or(&data);
            assert!(
                script.is_ascii() && !script.contains(['<', '&']) && !script.contains("]]>"),
                "{value:?}"
            );
            if format == "powershell-xml" {
                let doc = roxmltree::Document::parse(&data).unwrap();
                assert_eq!(doc.root_element().text(), Some(script), "{value:?}");
            }
            assert_powershell_parses(value, script);
            let files = files_of(&data);
            let file = files
                .iter()
                .find(|f| f.path == format!("C:\\f{i} {in_path}"))
                .unwrap_or_else(|| panic!("{value:?}: {files:?}"));
            assert_eq!(file.decoded_content().unwrap(), value.as_bytes());
            let install = install_script(&files);
            assert_powershell_parses(value, &install);
            let creates = nodes_of_kind(&install, "invokation_expression")
                .into_iter()
                .filter(|e| e.starts_with("[scriptblock]::Create("))
                .count();
            assert_eq!(creates, 1, "{value:?}: one user command\n{install}");
            let k0s_line = install.lines().find(|l| l.starts_with("$k0s = ")).unwrap();
            assert_eq!(
                bootstrap_provider::powershell::unquote(&k0s_line["$k0s = ".len()..])
                    .unwrap()
                    .0,
                windows::join_path(&format!("C:\\k0s {in_path}"), "k0s.exe")
            );
        }
    }
}

/// `bootstrap-provider render` prints each Windows format as the library renders it.
#[test]
fn binary_render_prints_windows_formats() {
    for name in [
        "windows-powershell.yaml",
        "windows-powershell-xml.yaml",
        "windows-cloud-config.yaml",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_bootstrap-provider"))
            .args(["render", "-f"])
            .arg(fixture(name))
            .args([
                "--machine-version",
                "v1.34.2",
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
        assert_eq!(String::from_utf8(out.stdout).unwrap(), render_fixture(name));
    }
}

/// `examples/windows-workers.yaml` renders, and its script and install script parse.
#[test]
fn the_windows_example_renders() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/windows-workers.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let data = offline::render_text(&text, &OfflineOptions::default()).unwrap();
    let script = data
        .strip_prefix("<powershell>")
        .and_then(|d| d.strip_suffix("</powershell>\n"))
        .unwrap();
    assert_powershell_parses("example", script);
    let install = install_script(&files_of(&data));
    assert_powershell_parses("example install script", &install);
    assert!(install.contains(". ([scriptblock]::Create('Set-TimeZone -Id ''UTC'''))"));
}
