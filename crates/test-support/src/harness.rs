//! Running `test/harness/cluster` and reading what it prints. Owns the script location and
//! the `export KEY=value` output format; knows nothing about what the commands do.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Stdio;

/// Why a harness command failed.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The script could not be started at all.
    #[error("running {script} {args}")]
    Spawn {
        /// Path of the script.
        script: String,
        /// Its arguments, space-joined.
        args: String,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The script ran and failed; `stderr` holds its log (including the failing component's
    /// log tail).
    #[error("{script} {args} failed ({status}):\n{stderr}")]
    Failed {
        /// Path of the script.
        script: String,
        /// Its arguments, space-joined.
        args: String,
        /// Exit status.
        status: std::process::ExitStatus,
        /// Everything it wrote to stderr.
        stderr: String,
    },
    /// A variable the caller needs is not in the environment.
    #[error(
        "{0} is not set; start the harness (eval \"$(test/harness/cluster up ...)\") or run `test/harness/cluster env`"
    )]
    MissingEnv(String),
}

/// The harness entry point: `$HARNESS_SCRIPT` if set (`cluster up` prints it), otherwise
/// `test/harness/cluster` in this repository.
pub fn harness_script() -> PathBuf {
    std::env::var_os("HARNESS_SCRIPT").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../test/harness/cluster"
            ))
        },
        PathBuf::from,
    )
}

/// A path the harness exported (`CAPI_CRD_DIR`, `K0S_CRD_DIR`, `CLUSTERCTL`, `HARNESS_BIN`, ...).
pub fn env_path(key: &str) -> Result<PathBuf, HarnessError> {
    std::env::var_os(key)
        .map(PathBuf::from)
        .ok_or_else(|| HarnessError::MissingEnv(key.to_owned()))
}

/// Run `cluster ARGS...` with extra environment `envs` and return the `KEY=value` pairs it
/// printed on stdout. Its stderr is returned in the error when it fails.
pub async fn run_harness<I, K, V>(
    args: &[&str],
    envs: I,
) -> Result<BTreeMap<String, String>, HarnessError>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    let script = harness_script();
    let output = tokio::process::Command::new(&script)
        .args(args)
        .envs(envs)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| HarnessError::Spawn {
            script: script.display().to_string(),
            args: args.join(" "),
            source,
        })?;
    if !output.status.success() {
        return Err(HarnessError::Failed {
            script: script.display().to_string(),
            args: args.join(" "),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(parse_env_lines(&String::from_utf8_lossy(&output.stdout)))
}

/// Parse `export KEY=value` / `KEY=value` lines. Values are what bash's `printf %q` makes of
/// plain paths and URLs: backslash escapes are undone; other quoting is not expected.
pub(crate) fn parse_env_lines(stdout: &str) -> BTreeMap<String, String> {
    stdout
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let line = line.strip_prefix("export ").unwrap_or(line);
            let (key, value) = line.split_once('=')?;
            let valid_key = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            valid_key.then(|| (key.to_owned(), unescape(value)))
        })
        .collect()
}

fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_export_lines_and_skips_noise() {
        let env = parse_env_lines(
            "export KUBECONFIG=/tmp/h/kubeconfig\nURL=https://127.0.0.1:6443\n\
             export PATH=/c/bin:\"$PATH\"\nnot a variable\nexport ODD=/a\\ b\n",
        );
        assert_eq!(env["KUBECONFIG"], "/tmp/h/kubeconfig");
        assert_eq!(env["URL"], "https://127.0.0.1:6443");
        assert_eq!(env["ODD"], "/a b");
        assert!(!env.contains_key("not a variable"));
    }
}
