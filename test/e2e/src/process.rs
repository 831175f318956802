//! Long-running processes a test starts (CAPI core, our providers): output to a log file, a
//! readiness wait on an HTTP endpoint, and termination of exactly that process when the handle is
//! stopped or dropped. Never touches processes it did not start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Starting or waiting for a background process failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The log file could not be created.
    #[error("creating log file {}", path.display())]
    Log {
        /// The log file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The program could not be started.
    #[error("starting {name} ({})", program.display())]
    Spawn {
        /// Process name.
        name: String,
        /// The program.
        program: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The process exited, or did not become ready in time.
    #[error("{0}")]
    Failed(Box<Failure>),
}

/// A background process that exited or never became ready, with the end of its log.
#[derive(Debug)]
pub struct Failure {
    /// Process name.
    pub name: String,
    /// What went wrong ("exited (exit status: 1)", "not ready at ...").
    pub problem: String,
    /// Its log file.
    pub log: PathBuf,
    /// The last lines of the log.
    pub tail: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}; last lines of {}:\n{}",
            self.name,
            self.problem,
            self.log.display(),
            self.tail
        )
    }
}

/// A process started by a test, writing stdout and stderr to `<log dir>/<name>.log`. Dropping the
/// handle kills it (SIGKILL, by its PID); [`Background::stop`] asks it to exit first.
#[derive(Debug)]
pub struct Background {
    name: String,
    child: tokio::process::Child,
    log: PathBuf,
}

impl Background {
    /// Start `program args...` with `envs` added to the environment.
    pub fn spawn<I, S, E, K, V>(
        name: &str,
        program: &Path,
        args: I,
        envs: E,
        log_dir: &Path,
    ) -> Result<Self, ProcessError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
        E: IntoIterator<Item = (K, V)>,
        K: AsRef<std::ffi::OsStr>,
        V: AsRef<std::ffi::OsStr>,
    {
        let log = log_dir.join(format!("{name}.log"));
        let log_err = |source| ProcessError::Log {
            path: log.clone(),
            source,
        };
        std::fs::create_dir_all(log_dir).map_err(log_err)?;
        let out = std::fs::File::create(&log).map_err(log_err)?;
        let err = out.try_clone().map_err(log_err)?;
        let child = tokio::process::Command::new(program)
            .args(args)
            .envs(envs)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ProcessError::Spawn {
                name: name.to_owned(),
                program: program.to_owned(),
                source,
            })?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log,
        })
    }

    /// The process name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// A [`ProcessError::Failed`] for this process, with the end of its log.
    pub fn failure(&self, problem: String) -> ProcessError {
        ProcessError::Failed(Box::new(Failure {
            name: self.name.clone(),
            problem,
            log: self.log.clone(),
            tail: self.log_tail(40),
        }))
    }

    /// An error if the process has exited.
    pub fn check_running(&mut self) -> Result<(), ProcessError> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(self.failure(format!("exited ({status})"))),
            Ok(None) | Err(_) => Ok(()),
        }
    }

    /// Wait until `GET http://addr{path}` answers 200, failing early if the process exits.
    pub async fn wait_ready(
        &mut self,
        addr: SocketAddr,
        path: &str,
        timeout: Duration,
    ) -> Result<(), ProcessError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_running()?;
            if http_status(addr, path).await == Some(200) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.failure(format!(
                    "not ready at http://{addr}{path} after {timeout:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGKILL the process and reap it.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }

    /// Ask the process to exit (SIGTERM to its PID), wait up to `grace`, then kill it.
    pub async fn stop(mut self, grace: Duration) {
        if let Some(pid) = self.child.id() {
            // Our own child, by PID; `kill` is the portable way to send SIGTERM without libc.
            let _ = tokio::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
            if tokio::time::timeout(grace, self.child.wait()).await.is_ok() {
                return;
            }
        }
        let _ = self.child.kill().await;
    }
}

/// The HTTP status of `GET http://addr{path}`, or `None` if there is no (parsable) answer within
/// two seconds.
pub async fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut buf = [0_u8; 64];
        let mut read = 0;
        while read < 12 {
            let n = stream.read(&mut buf[read..]).await.ok()?;
            if n == 0 {
                break;
            }
            read += n;
        }
        // "HTTP/1.1 200 OK"
        let head = std::str::from_utf8(&buf[..read]).ok()?;
        head.split_whitespace().nth(1)?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .ok()
        .flatten()
}

/// The status and body of `GET http://addr{path}` (HTTP/1.0, so the body ends with the
/// connection), or why there is none within ten seconds.
pub async fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let (head, body) = answer
            .split_once("\r\n\r\n")
            .ok_or_else(|| format!("no HTTP answer: {answer:?}"))?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("no status in {head:?}"))?;
        Ok((status, body.to_owned()))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer from {addr} in 10 s")))
}

/// A loopback address with a port that is free right now.
pub fn free_loopback_addr() -> std::io::Result<SocketAddr> {
    let port = test_support::free_port()?;
    Ok(SocketAddr::from(([127, 0, 0, 1], port)))
}
