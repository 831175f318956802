//! A second kube-apiserver playing a workload cluster, fronted by a CA the test chooses
//! (`test/harness/cluster workload up|down`). Owns that process's lifetime from a test.

use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kube::Client;

use crate::harness::{HarnessError, harness_script, run_harness};
use crate::namespace::unique_name;

/// Why a workload API server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// Writing the CA files for the script failed.
    #[error("writing the CA for workload server {name} to {path}")]
    WriteCa {
        /// Workload server name.
        name: String,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// `cluster workload up` failed (its stderr holds the API server's log tail).
    #[error("starting workload server {name}")]
    Start {
        /// Workload server name.
        name: String,
        /// What went wrong.
        #[source]
        source: HarnessError,
    },
    /// The script did not print a `KEY=value` line it always prints.
    #[error("`cluster workload up` printed no {0}")]
    MissingOutput(&'static str),
}

/// A running workload API server: serving certificate and `--client-ca-file` from the given
/// CA, bootstrap-token authentication, RBAC, its own etcd prefix on the harness etcd.
/// Dropping it stops the server and removes its files.
#[derive(Debug)]
pub struct WorkloadServer {
    name: String,
    url: String,
    kubeconfig: PathBuf,
    stopped: bool,
}

impl WorkloadServer {
    /// Start server `name` on `https://127.0.0.1:PORT` with the PEM CA certificate and key (RSA
    /// PKCS#1/PKCS#8 or EC). `name` must be a DNS label, unique among running workload servers.
    pub async fn start(
        name: &str,
        ca_cert_pem: &str,
        ca_key_pem: &str,
        port: u16,
    ) -> Result<Self, WorkloadError> {
        Self::start_at(
            name,
            ca_cert_pem,
            ca_key_pem,
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            port,
        )
        .await
    }

    /// Like [`start`](Self::start) but listening on `address` (a loopback address such as a fake
    /// node's ExternalIP or a LoadBalancer ingress IP; it is added to the serving cert's SANs).
    pub async fn start_at(
        name: &str,
        ca_cert_pem: &str,
        ca_key_pem: &str,
        address: IpAddr,
        port: u16,
    ) -> Result<Self, WorkloadError> {
        let scratch = std::env::temp_dir().join(unique_name(&format!("workload-ca-{name}")));
        let write = |file: &str, pem: &str| {
            let path = scratch.join(file);
            std::fs::create_dir_all(&scratch)
                .and_then(|()| std::fs::write(&path, pem))
                .map_err(|source| WorkloadError::WriteCa {
                    name: name.to_owned(),
                    path: path.clone(),
                    source,
                })
                .map(|()| path)
        };
        let started = async {
            let cert = write("ca.crt", ca_cert_pem)?;
            let key = write("ca.key", ca_key_pem)?;
            let (address, port) = (address.to_string(), port.to_string());
            let args = [
                "workload",
                "up",
                "--name",
                name,
                "--ca-cert",
                path_str(&cert),
                "--ca-key",
                path_str(&key),
                "--port",
                &port,
                "--address",
                &address,
            ];
            run_harness(&args, std::iter::empty::<(&str, &str)>())
                .await
                .map_err(|source| WorkloadError::Start {
                    name: name.to_owned(),
                    source,
                })
        }
        .await;
        // The script copied the CA into its own state dir.
        let _ = std::fs::remove_dir_all(&scratch);
        let mut env = started?;
        Ok(Self {
            name: name.to_owned(),
            url: env
                .remove("URL")
                .ok_or(WorkloadError::MissingOutput("URL"))?,
            kubeconfig: env
                .remove("KUBECONFIG")
                .ok_or(WorkloadError::MissingOutput("KUBECONFIG"))?
                .into(),
            stopped: false,
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `https://ADDRESS:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// An admin kubeconfig (client certificate in `system:masters`, signed by the given CA).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// An admin client for it.
    pub async fn client(&self) -> Result<Client, crate::ClientError> {
        crate::client::client_from_kubeconfig_file(&self.kubeconfig).await
    }

    /// Stop it now and report failure (dropping stops it too, but only warns).
    pub fn stop(mut self) -> Result<(), std::io::Error> {
        self.stopped = true;
        stop(&self.name)
    }
}

impl Drop for WorkloadServer {
    fn drop(&mut self) {
        if !self.stopped
            && let Err(e) = stop(&self.name)
        {
            eprintln!("warning: stopping workload server {}: {e}", self.name);
        }
    }
}

fn stop(name: &str) -> Result<(), std::io::Error> {
    // Synchronous on purpose: Drop cannot await, and the script returns within seconds.
    let output = Command::new(harness_script())
        .args(["workload", "down", "--name", name])
        .stdin(Stdio::null())
        .output()?;
    if output.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "cluster workload down --name {name}: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )))
    }
}

fn path_str(path: &Path) -> &str {
    // Paths under temp_dir() built from a DNS-label name are UTF-8.
    path.to_str().unwrap_or_default()
}

/// A TCP port on 127.0.0.1 that is free right now (for [`WorkloadServer::start`]). It is taken
/// below the kernel's ephemeral range, as the harness script does, so that no outgoing
/// connection can be holding it by the time the server binds, and below Kubernetes' default
/// NodePort range (30000-32767), so that a test can rely on the API server refusing it as a
/// NodePort and no kube-proxy of the real node holds it.
pub fn free_port() -> std::io::Result<u16> {
    const LOWEST: u32 = 12000;
    const NODE_PORTS_START: u32 = 30000;
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .filter(|&p| p > LOWEST + 4000)
        .unwrap_or(32768);
    let highest = ephemeral_start.min(NODE_PORTS_START);
    for _ in 0..200 {
        let candidate = LOWEST + crate::namespace::pseudo_random() % (highest - LOWEST);
        let Ok(port) = u16::try_from(candidate) else {
            continue;
        };
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(port);
        }
    }
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()
        .map(|a| a.port())
}
