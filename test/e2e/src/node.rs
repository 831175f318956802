//! The harness's real node (`test/harness/cluster up --real-node`): a kubelet with containerd and
//! runc running our StatefulSets' pods with real k0s. What the tests ask of it beyond the API:
//! which pod sandboxes and containers containerd holds, and which network namespaces exist.

use std::path::PathBuf;

use crate::command;
use crate::tools::ToolError;

/// The real node of the running harness.
#[derive(Debug, Clone)]
pub struct RealNode {
    /// Node name (`node-0`).
    pub name: String,
    /// Its InternalIP, where NodePorts answer.
    pub ip: String,
    /// The k0s release its image holds (`v1.35.4+k0s.0`).
    pub k0s_version: String,
    crictl: PathBuf,
    socket: PathBuf,
}

fn env(key: &'static str) -> Result<String, ToolError> {
    std::env::var(key).map_err(|_| ToolError::NotConfigured {
        what: "the real node (start the harness with --real-node)",
        var: key,
    })
}

impl RealNode {
    /// The node the harness exports (`HARNESS_REAL_NODE`, ...), or an error saying how to start
    /// one.
    pub fn from_env() -> Result<Self, ToolError> {
        let bin = PathBuf::from(env("HARNESS_BIN")?);
        let dir = PathBuf::from(env("HARNESS_DIR")?);
        Ok(Self {
            name: env("HARNESS_REAL_NODE")?,
            ip: env("HARNESS_REAL_NODE_IP")?,
            k0s_version: env("HARNESS_K0S_VERSION")?,
            crictl: bin.join("crictl"),
            socket: dir.join("node/containerd/containerd.sock"),
        })
    }

    async fn crictl(&self, args: &[&str]) -> Result<String, String> {
        let endpoint = format!("unix://{}", self.socket.display());
        let mut all = vec!["--runtime-endpoint", endpoint.as_str()];
        all.extend_from_slice(args);
        let out = command::run(&self.crictl, all, Vec::<(String, String)>::new(), None)
            .await
            .map_err(|e| e.to_string())?
            .success()
            .map_err(|e| e.to_string())?;
        Ok(out.stdout)
    }

    /// IDs of the pod sandboxes containerd holds for pods of `namespace` (running or not).
    pub async fn pod_sandboxes(&self, namespace: &str) -> Result<Vec<String>, String> {
        let out = self
            .crictl(&["pods", "--namespace", namespace, "-q"])
            .await?;
        Ok(out.split_whitespace().map(str::to_owned).collect())
    }

    /// Working-set memory (bytes) and CPU use (millicores, over the runtime's last sample) of
    /// each running container of `namespace`'s pods, by container name (`crictl stats`, as the
    /// kubelet reports them), largest memory first.
    pub async fn container_usage(
        &self,
        namespace: &str,
    ) -> Result<Vec<(String, u64, u64)>, String> {
        let number = |v: &serde_json::Value| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|b| b.parse().ok()))
                .unwrap_or(0)
        };
        let mut out = Vec::new();
        for pod in self.pod_sandboxes(namespace).await? {
            let json = self.crictl(&["stats", "-o", "json", "--pod", &pod]).await?;
            let v: serde_json::Value = serde_json::from_str(&json).map_err(|e| e.to_string())?;
            for s in v["stats"].as_array().into_iter().flatten() {
                let name = s["attributes"]["metadata"]["name"].as_str().unwrap_or("?");
                out.push((
                    name.to_owned(),
                    number(&s["memory"]["workingSetBytes"]["value"]),
                    number(&s["cpu"]["usageNanoCores"]["value"]) / 1_000_000,
                ));
            }
        }
        out.sort_by_key(|u| std::cmp::Reverse(u.1));
        Ok(out)
    }

    /// IDs of all containers containerd holds for pods of `namespace` (running or not).
    pub async fn containers(&self, namespace: &str) -> Result<Vec<String>, String> {
        let mut ids = Vec::new();
        for pod in self.pod_sandboxes(namespace).await? {
            let out = self.crictl(&["ps", "-a", "-q", "--pod", &pod]).await?;
            ids.extend(out.split_whitespace().map(str::to_owned));
        }
        Ok(ids)
    }
}

/// The network namespaces named in `/var/run/netns` (where CNI's containerd keeps pods').
pub fn network_namespaces() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/var/run/netns")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}
