//! Running a program to completion and capturing what it printed. Owns process invocation for
//! one-shot tools (clusterctl, kubectl, scripts); long-running processes are [`crate::process`].

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

/// A one-shot command could not be run, or failed when it had to succeed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The program could not be started.
    #[error("starting {program}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The program ran and exited unsuccessfully.
    #[error("{0}")]
    Failed(Box<Output>),
}

/// What a finished command printed and how it exited.
#[derive(Debug)]
pub struct Output {
    /// The command line, for messages.
    pub command_line: String,
    /// Exit status.
    pub status: ExitStatus,
    /// Everything on stdout.
    pub stdout: String,
    /// Everything on stderr.
    pub stderr: String,
}

impl Output {
    /// `self` if the command succeeded, else an error carrying its output.
    pub fn success(self) -> Result<Self, CommandError> {
        if self.status.success() {
            Ok(self)
        } else {
            Err(CommandError::Failed(Box::new(self)))
        }
    }

    /// stdout and stderr together (clusterctl logs progress on stderr and errors on both).
    pub fn combined(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` exited with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command_line, self.status, self.stdout, self.stderr
        )
    }
}

/// Run `program args...` with `envs` added to the inherited environment, in `cwd` if given, and
/// return its output whatever the exit status (use [`Output::success`] to require success).
pub async fn run<I, S, E, K, V>(
    program: &Path,
    args: I,
    envs: E,
    cwd: Option<&Path>,
) -> Result<Output, CommandError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
    E: IntoIterator<Item = (K, V)>,
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let command_line = std::iter::once(program.as_os_str())
        .chain(args.iter().map(|a| a.as_os_str()))
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let mut command = tokio::process::Command::new(program);
    command
        .args(&args)
        .envs(envs)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(cwd) = cwd {
        command.current_dir(cwd);
    }
    let output = command
        .output()
        .await
        .map_err(|source| CommandError::Spawn {
            program: program.to_owned(),
            source,
        })?;
    Ok(Output {
        command_line,
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}
