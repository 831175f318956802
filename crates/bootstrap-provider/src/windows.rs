//! A Windows worker's first boot: the k0s install script, the files that go onto the machine,
//! and the `powershell` / `powershell-xml` user data that writes them and runs the script.
//!
//! Pure string building. Every value from the spec goes through [`powershell::quote`]; only
//! `preK0sCommands`, `postK0sCommands` and custom user data are PowerShell by design, and each
//! runs as its own script block made from a quoted string, so no command can break the text
//! around it. The output is printable ASCII without `<`, `&` or `]]>` (see [`powershell`]).
//!
//! Two stages, as upstream: the user data writes the files (join token, `spec.files`, the
//! install script) and runs the install script, which registers itself as a start-up task
//! because enabling the Containers feature may need a reboot; it then joins, writes the CAPI
//! sentinel and removes the task.

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;

use crate::cloudinit::WriteFile;
use crate::commands::{Download, InstallArgs, MACHINE_NAME_NODE_LABEL};
use crate::powershell::{self, quote};
use crate::render::TOKEN_FILE_PERMISSIONS;

/// Where the install script is written (upstream's path).
pub const INSTALL_SCRIPT_PATH: &str = r"C:\bootstrap\k0s_install.ps1";
/// The install script's transcript (upstream's path).
pub const LOG_PATH: &str = r"C:\bootstrap.log";
/// The CAPI bootstrap sentinel on Windows.
pub const SENTINEL_PATH: &str = r"C:\run\cluster-api\bootstrap-success.complete";
/// The scheduled task that resumes the install script after a reboot.
pub const TASK_NAME: &str = "k0s-bootstrap";
/// Runs the install script; valid in PowerShell, `cmd.exe` and cloud-config's `runcmd`.
pub const RUN_COMMAND: &str = r#"powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -File "C:\bootstrap\k0s_install.ps1""#;
/// Where get.k0s.sh's Windows counterpart lives: `<base>/<version>/k0s-<version>-amd64.exe`.
pub const DOWNLOAD_BASE_URL: &str = "https://get.k0sproject.io";
/// The first line of the `powershell` form: cloudbase-init runs user data starting with it in
/// the 64-bit PowerShell; for everything else it is a comment.
pub const SCRIPT_HEADER: &str = "#ps1_sysnative";
/// The command that writes one file, as the user data spells it (read back by [`files`]).
const WRITE_FILE: &str = "Write-K0smotronFile -Path ";

/// `dir` and `name` joined with the separator `dir` already uses (`\` for `C:\k0s`, `/` for
/// upstream's default `/usr/local/bin`, which Windows reads as `C:\usr\local\bin`).
pub fn join_path(dir: &str, name: &str) -> String {
    let sep = if dir.contains('\\') { '\\' } else { '/' };
    format!("{}{sep}{name}", dir.trim_end_matches(['/', '\\']))
}

/// The k0s release binary for Windows of `version`.
pub fn download_url(version: &str) -> String {
    format!("{DOWNLOAD_BASE_URL}/{version}/k0s-{version}-amd64.exe")
}

/// Everything the install script needs, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallScript<'a> {
    /// Directory of `k0s.exe`.
    pub install_dir: &'a str,
    /// Where the join token is.
    pub token_path: &'a str,
    /// How k0s gets there (never `Oci`, and `Script` always with a version, after validation).
    pub download: &'a Download,
    /// Machine name: node label, and hostname override unless `use_system_hostname`.
    pub machine_name: &'a str,
    /// Keep the OS hostname as node name.
    pub use_system_hostname: bool,
    /// User arguments.
    pub args: &'a InstallArgs,
    /// Commands before the download.
    pub pre: &'a [String],
    /// Commands after the service start.
    pub post: &'a [String],
    /// Custom user data (PowerShell), after `post`.
    pub custom: Option<&'a str>,
}

/// One user-written piece of PowerShell, run in the script's scope from a quoted string: its
/// text cannot end our literal or block, and a syntax error in it stops the script (so no
/// sentinel) instead of making the whole script unparsable.
fn user_block(code: &str) -> String {
    format!(". ([scriptblock]::Create({}))", quote(code))
}

/// Throws when the last native command failed (PowerShell does not, even with `Stop`).
fn check_exit(what: &str) -> String {
    format!("if ($LASTEXITCODE -ne 0) {{ throw \"{what} failed with exit code $LASTEXITCODE\" }}")
}

impl InstallScript<'_> {
    /// The arguments of `k0s.exe install worker`, unquoted: the token file, the machine-name
    /// label, the user's arguments, then one `--kubelet-extra-args=` with the hostname override
    /// and the user's kubelet arguments (as on Linux).
    pub fn install_args(&self) -> Vec<String> {
        let mut words = vec![
            "install".to_string(),
            "worker".to_string(),
            "--token-file".to_string(),
            self.token_path.to_string(),
            format!("--labels={MACHINE_NAME_NODE_LABEL}={}", self.machine_name),
        ];
        words.extend(self.args.args.iter().cloned());
        let mut kubelet = Vec::new();
        if !self.use_system_hostname {
            kubelet.push(format!("--hostname-override={}", self.machine_name));
        }
        kubelet.extend(self.args.kubelet_extra_args.iter().cloned());
        if !kubelet.is_empty() {
            // One argument: PowerShell quotes it for the process command line when it has spaces.
            words.push(format!("--kubelet-extra-args={}", kubelet.join(" ")));
        }
        words
    }

    fn download_lines(&self) -> Vec<String> {
        let url = match self.download {
            Download::PreInstalled => return vec!["# k0s is pre-installed".to_string()],
            Download::Script {
                version: Some(version),
            } => download_url(version),
            Download::Http { url } => url.clone(),
            // Refused by validation; a script rendered anyway stops here, before the sentinel.
            Download::Script { version: None } | Download::Oci { .. } => {
                return vec!["throw 'no k0s download for Windows'".to_string()];
            }
        };
        vec![
            "Write-Host '=== Downloading k0s ==='".to_string(),
            format!(
                "New-Item -ItemType Directory -Force -Path {} | Out-Null",
                quote(self.install_dir)
            ),
            // Windows PowerShell 5.1 on older images offers TLS 1.0 only by default.
            "[Net.ServicePointManager]::SecurityProtocol = [Net.ServicePointManager]::SecurityProtocol -bor [Net.SecurityProtocolType]::Tls12".to_string(),
            format!("Invoke-WebRequest -UseBasicParsing -Uri {} -OutFile $k0s", quote(&url)),
        ]
    }

    /// The install script (PowerShell).
    pub fn render(&self) -> String {
        let mut lines: Vec<String> = vec![
            "# k0smotron: installs k0s on this Windows worker and joins it; resumed by a start-up task after a reboot.".into(),
            "$ErrorActionPreference = 'Stop'".into(),
            "$ProgressPreference = 'SilentlyContinue'".into(),
            format!("Start-Transcript -Path {} -Append | Out-Null", quote(LOG_PATH)),
            format!("$sentinel = {}", quote(SENTINEL_PATH)),
            "if (Test-Path $sentinel) {".into(),
            "    Write-Host 'Bootstrap already completed, skipping.'".into(),
            "    Stop-Transcript | Out-Null".into(),
            "    exit 0".into(),
            "}".into(),
            String::new(),
            format!("$taskName = {}", quote(TASK_NAME)),
            "if (-not (Get-ScheduledTask -TaskName $taskName -ErrorAction SilentlyContinue)) {".into(),
            format!(
                "    $action = New-ScheduledTaskAction -Execute 'powershell.exe' -Argument {}",
                quote(RUN_COMMAND.trim_start_matches("powershell.exe "))
            ),
            "    $trigger = New-ScheduledTaskTrigger -AtStartup".into(),
            "    $principal = New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount -RunLevel Highest".into(),
            "    Register-ScheduledTask -TaskName $taskName -Action $action -Trigger $trigger -Principal $principal -Force | Out-Null".into(),
            "}".into(),
            String::new(),
            "Write-Host '=== Windows Containers feature ==='".into(),
            "$feature = Get-WindowsOptionalFeature -Online -FeatureName Containers".into(),
            "if ($feature.State -ne 'Enabled') {".into(),
            "    $result = Enable-WindowsOptionalFeature -Online -FeatureName Containers -All -NoRestart".into(),
            "    if ($result.RestartNeeded) {".into(),
            "        Write-Host 'Rebooting to finish enabling Containers; the start-up task resumes this script.'".into(),
            "        Stop-Transcript | Out-Null".into(),
            "        Restart-Computer -Force".into(),
            "        exit 0".into(),
            "    }".into(),
            "}".into(),
            String::new(),
            "Write-Host '=== Waiting for the network ==='".into(),
            "while (-not (Get-NetAdapter | Where-Object Status -eq 'Up')) { Start-Sleep -Seconds 5 }".into(),
            String::new(),
        ];
        if !self.pre.is_empty() {
            lines.push("# preK0sCommands".into());
            lines.extend(self.pre.iter().map(|c| user_block(c)));
            lines.push(String::new());
        }
        lines.push(format!(
            "$k0s = {}",
            quote(&join_path(self.install_dir, "k0s.exe"))
        ));
        lines.extend(self.download_lines());
        lines.push(String::new());
        lines.push("Write-Host '=== Installing and starting the k0s worker ==='".into());
        // `.` runs the binary as `&` would; `&` would need escaping between XML tags.
        let args: Vec<String> = self.install_args().iter().map(|a| quote(a)).collect();
        lines.push(format!(". $k0s {}", args.join(" ")));
        lines.push(check_exit("k0s install worker"));
        lines.push(". $k0s start".into());
        lines.push(check_exit("k0s start"));
        lines.push(String::new());
        if !self.post.is_empty() {
            lines.push("# postK0sCommands".into());
            lines.extend(self.post.iter().map(|c| user_block(c)));
            lines.push(String::new());
        }
        if let Some(custom) = self.custom {
            lines.push("# provisioner.customUserDataRef".into());
            lines.push(user_block(custom));
            lines.push(String::new());
        }
        lines.extend([
            "Unregister-ScheduledTask -TaskName $taskName -Confirm:$false -ErrorAction SilentlyContinue".to_string(),
            format!(
                "New-Item -ItemType Directory -Force -Path {} | Out-Null",
                quote(SENTINEL_PATH.rsplit_once('\\').map_or("", |(dir, _)| dir))
            ),
            "New-Item -ItemType File -Force -Path $sentinel | Out-Null".into(),
            "Write-Host '=== Bootstrap complete ==='".into(),
            "Stop-Transcript | Out-Null".into(),
        ]);
        let mut text = lines.join("\n");
        text.push('\n');
        text
    }
}

/// The files of a Windows worker: the join token (private), `spec.files`, the install script.
pub fn machine_files(
    token_path: &str,
    join_token: &str,
    spec_files: impl IntoIterator<Item = WriteFile>,
    install_script: &str,
) -> Vec<WriteFile> {
    let mut files = vec![WriteFile::new(
        token_path,
        join_token.as_bytes(),
        Some(TOKEN_FILE_PERMISSIONS.to_string()),
    )];
    files.extend(spec_files);
    files.push(WriteFile::new(
        INSTALL_SCRIPT_PATH,
        install_script.as_bytes(),
        Some("0644".to_string()),
    ));
    files
}

/// A mode that grants others nothing (`0600`, `0640`) makes the file readable by SYSTEM and
/// Administrators only: Windows has no mode bits, and `C:\` subfolders are readable by Users.
fn is_private(permissions: Option<&str>) -> bool {
    permissions.is_some_and(|p| p.ends_with('0'))
}

/// The `powershell` user data: writes `files`, then runs `commands`, stopping at the first
/// failure (its exit code becomes the script's).
pub fn script(files: &[WriteFile], commands: &[String]) -> String {
    let mut lines: Vec<String> = vec![
        SCRIPT_HEADER.into(),
        "# k0smotron bootstrap data for a Windows worker: writes its files, then runs the k0s install script.".into(),
        "$ErrorActionPreference = 'Stop'".into(),
        "function Write-K0smotronFile {".into(),
        "    param([string]$Path, [string]$Text, [string]$Base64, [switch]$Private)".into(),
        "    $dir = Split-Path -Parent $Path".into(),
        "    if ($dir) { New-Item -ItemType Directory -Force -Path $dir | Out-Null }".into(),
        "    if ($Base64) { $bytes = [Convert]::FromBase64String($Base64) } else { $bytes = [Text.Encoding]::UTF8.GetBytes($Text) }".into(),
        "    [IO.File]::WriteAllBytes($Path, $bytes)".into(),
        "    if ($Private) {".into(),
        "        icacls.exe $Path /inheritance:r /grant:r '*S-1-5-18:F' '*S-1-5-32-544:F' | Out-Null".into(),
        "        if ($LASTEXITCODE -ne 0) { throw \"icacls failed on $Path\" }".into(),
        "    }".into(),
        "}".into(),
        String::new(),
    ];
    for f in files {
        let bytes = f.decoded_content().unwrap_or_default();
        // Our install script is readable text; everything else keeps its exact bytes.
        let content = match std::str::from_utf8(&bytes) {
            Ok(text) if f.path == INSTALL_SCRIPT_PATH && powershell::is_literal_safe(text) => {
                format!("-Text {}", quote(text))
            }
            _ => format!("-Base64 '{}'", BASE64_STANDARD.encode(&bytes)),
        };
        let private = if is_private(f.permissions.as_deref()) {
            " -Private"
        } else {
            ""
        };
        lines.push(format!("{WRITE_FILE}{} {content}{private}", quote(&f.path)));
    }
    lines.push(String::new());
    for command in commands {
        lines.push(command.clone());
        lines.push("if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }".into());
    }
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// The `powershell-xml` user data: `script` between `<powershell>` tags (EC2Launch's and
/// cloudbase-init's form), so that the element's text is exactly `script`. It needs no
/// escaping: it has no `<`, `&` or `]]>`.
pub fn xml(script: &str) -> String {
    format!("<powershell>{script}</powershell>\n")
}

/// The files a `powershell` or `powershell-xml` user data writes (to recover the join token);
/// `None` when `text` is not one. Reads the file commands one after the other from the first,
/// so text inside a file's content is never taken for a command.
pub fn files(text: &str) -> Option<Vec<WriteFile>> {
    let body = text.strip_prefix("<powershell>").unwrap_or(text);
    if !body.starts_with(SCRIPT_HEADER) {
        return None;
    }
    let first = format!("\n{WRITE_FILE}");
    let mut files = Vec::new();
    let Some(at) = body.find(&first) else {
        return Some(files);
    };
    let mut rest = &body[at + 1..];
    while let Some(command) = rest.strip_prefix(WRITE_FILE) {
        let Some((file, after)) = read_write_file(command) else {
            break;
        };
        files.push(file);
        rest = after;
    }
    Some(files)
}

/// One `Write-K0smotronFile` command after its `-Path `, and the text after its line.
fn read_write_file(command: &str) -> Option<(WriteFile, &str)> {
    let (path, rest) = powershell::unquote(command)?;
    let (bytes, rest) = if let Some(b64) = rest.strip_prefix(" -Base64 '") {
        let (b64, rest) = b64.split_once('\'')?;
        (BASE64_STANDARD.decode(b64).ok()?, rest)
    } else {
        let (text, rest) = powershell::unquote(rest.strip_prefix(" -Text ")?)?;
        (text.into_bytes(), rest)
    };
    let rest = rest.strip_prefix(" -Private").unwrap_or(rest);
    Some((WriteFile::new(path, &bytes, None), rest.strip_prefix('\n')?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn install(download: &Download, args: &InstallArgs) -> String {
        InstallScript {
            install_dir: r"C:\k0s",
            token_path: r"C:\k0s\k0s.token",
            download,
            machine_name: "win-0",
            use_system_hostname: false,
            args,
            pre: &["echo pre".into()],
            post: &["echo post".into()],
            custom: None,
        }
        .render()
    }

    #[test]
    fn paths_keep_their_separator() {
        assert_eq!(join_path(r"C:\k0s\", "k0s.exe"), r"C:\k0s\k0s.exe");
        assert_eq!(
            join_path("/usr/local/bin", "k0s.exe"),
            "/usr/local/bin/k0s.exe"
        );
        assert_eq!(
            download_url("v1.34.2+k0s.0"),
            "https://get.k0sproject.io/v1.34.2+k0s.0/k0s-v1.34.2+k0s.0-amd64.exe"
        );
    }

    #[test]
    fn install_script_order_is_pre_download_install_start_post_sentinel() {
        let download = Download::Script {
            version: Some("v1.34.2+k0s.0".into()),
        };
        let text = install(&download, &InstallArgs::default());
        let at = |needle: &str| {
            text.find(needle)
                .unwrap_or_else(|| panic!("{needle:?} not in\n{text}"))
        };
        let order = [
            at("if (Test-Path $sentinel)"),
            at("Register-ScheduledTask"),
            at("Enable-WindowsOptionalFeature"),
            at(". ([scriptblock]::Create('echo pre'))"),
            at(
                "Invoke-WebRequest -UseBasicParsing -Uri 'https://get.k0sproject.io/v1.34.2+k0s.0/k0s-v1.34.2+k0s.0-amd64.exe' -OutFile $k0s",
            ),
            at(
                ". $k0s 'install' 'worker' '--token-file' 'C:\\k0s\\k0s.token' '--labels=k0smotron.io/machine-name=win-0' '--kubelet-extra-args=--hostname-override=win-0'",
            ),
            at(". $k0s start"),
            at(". ([scriptblock]::Create('echo post'))"),
            at("Unregister-ScheduledTask"),
            at("New-Item -ItemType File -Force -Path $sentinel"),
        ];
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert!(text.contains("$k0s = 'C:\\k0s\\k0s.exe'"));
        assert!(powershell::is_literal_safe(&text));
    }

    #[test]
    fn downloads_by_url_or_not_at_all() {
        let args = InstallArgs {
            args: vec!["--debug".into()],
            kubelet_extra_args: vec!["--v=2".into()],
        };
        let text = install(
            &Download::Http {
                url: "https://mirror.example/k0s.exe?a=1&b=2".into(),
            },
            &args,
        );
        assert!(
            text.contains("-Uri ([Text.Encoding]::UTF8.GetString"),
            "{text}"
        );
        assert!(text.contains("'--debug' '--kubelet-extra-args=--hostname-override=win-0 --v=2'"));
        let text = install(&Download::PreInstalled, &args);
        assert!(!text.contains("Invoke-WebRequest"));
    }

    #[test]
    fn user_data_writes_files_then_runs_and_reads_back() {
        let files = machine_files(
            "/etc/k0s.token",
            "H4sIAAAAAAAC/token",
            [WriteFile::new("C:\\it's\\a b.txt", b"\x00\xffbinary", None)],
            "Write-Host 'hi'\n",
        );
        let text = script(&files, &[RUN_COMMAND.to_string()]);
        assert!(text.starts_with("#ps1_sysnative\n"));
        assert!(text.contains(
            "Write-K0smotronFile -Path '/etc/k0s.token' -Base64 'SDRzSUFBQUFBQUFDL3Rva2Vu' -Private\n"
        ));
        assert!(
            text.contains(
                "Write-K0smotronFile -Path 'C:\\it''s\\a b.txt' -Base64 'AP9iaW5hcnk='\n"
            )
        );
        assert!(text.contains(
            "Write-K0smotronFile -Path 'C:\\bootstrap\\k0s_install.ps1' -Text 'Write-Host ''hi''\n'\n"
        ));
        assert!(text.ends_with(&format!(
            "{RUN_COMMAND}\nif ($LASTEXITCODE -ne 0) {{ exit $LASTEXITCODE }}\n"
        )));
        for form in [text.clone(), xml(&text)] {
            let back = super::files(&form).unwrap();
            assert_eq!(back.len(), 3);
            for (a, b) in back.iter().zip(&files) {
                assert_eq!(a.path, b.path);
                assert_eq!(a.decoded_content().unwrap(), b.decoded_content().unwrap());
            }
        }
        assert_eq!(super::files("#cloud-config\n"), None);
    }
}
