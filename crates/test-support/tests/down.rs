//! `cluster down` leaves no process and no directory behind. Runs a second, private harness
//! (its own HARNESS_DIR and ports), so the cluster the other tests use is not touched; needs
//! the cached binaries (`cluster build`), as the other harness tests do.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, ensure};
use test_support::{free_port, harness_script, run_harness, unique_name};

/// Stops the private harness if the test fails half-way.
struct DownOnDrop(PathBuf);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        if self.0.exists() {
            let _ = Command::new(harness_script())
                .arg("down")
                .env("HARNESS_DIR", &self.0)
                .status();
        }
    }
}

/// PIDs (= process group ids, the script starts everything with setsid) recorded in the state dir.
fn recorded_pids(dir: &Path) -> anyhow::Result<BTreeSet<u32>> {
    let mut pids = BTreeSet::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("run"))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    for w in std::fs::read_dir(dir.join("workloads"))? {
        files.push(w?.path().join("run.pid"));
    }
    for f in files
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "pid"))
    {
        let text = std::fs::read_to_string(&f)?;
        pids.insert(
            text.trim()
                .parse()
                .with_context(|| format!("{}: {text:?}", f.display()))?,
        );
    }
    Ok(pids)
}

/// Live (non-zombie) processes whose process group is one of `groups`.
fn live_members(groups: &BTreeSet<u32>) -> anyhow::Result<Vec<String>> {
    let mut live = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let entry = entry?;
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue; // not a process, or it just exited
        };
        // "pid (comm) state ppid pgrp ..."; comm may contain spaces and parentheses.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let (Some(state), Some(pgrp)) = (fields.first(), fields.get(2)) else {
            continue;
        };
        if *state != "Z" && pgrp.parse().is_ok_and(|g: u32| groups.contains(&g)) {
            live.push(format!("{head}) state {state} pgrp {pgrp}"));
        }
    }
    Ok(live)
}

#[tokio::test]
#[ignore = "needs test/harness (KUBECONFIG)"]
async fn down_leaves_no_process_and_no_directory() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(unique_name("harness-down-test"));
    let _guard = DownOnDrop(dir.clone());
    let env = [("HARNESS_DIR", dir.as_os_str())];

    let up = run_harness(&["up"], env).await?;
    ensure!(
        up.get("KUBECONFIG")
            .is_some_and(|k| Path::new(k).starts_with(&dir)),
        "up printed {up:?}"
    );

    // A workload server too, fronted by an RSA CA in PKCS#1 form (openssl's "traditional").
    let ca_dir = dir.join("test-ca");
    std::fs::create_dir_all(&ca_dir)?;
    let (key, crt) = (ca_dir.join("ca.key"), ca_dir.join("ca.crt"));
    let ok = Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(&key)
        .arg("2048")
        .status()?
        .success()
        && Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-new",
                "-subj",
                "/CN=down-test-ca",
                "-days",
                "1",
                "-key",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&crt)
            .status()?
            .success();
    ensure!(ok, "openssl could not make a CA");
    ensure!(
        std::fs::read_to_string(&key)?.starts_with("-----BEGIN RSA PRIVATE KEY-----"),
        "not PKCS#1"
    );
    let port = free_port()?.to_string();
    let (key, crt) = (
        key.to_string_lossy().into_owned(),
        crt.to_string_lossy().into_owned(),
    );
    let args = [
        "workload",
        "up",
        "--name",
        "w1",
        "--ca-cert",
        &crt,
        "--ca-key",
        &key,
        "--port",
        &port,
    ];
    let workload = run_harness(&args, env).await?;
    ensure!(
        workload.get("URL").is_some_and(|u| u.ends_with(&port)),
        "workload up printed {workload:?}"
    );

    let pids = recorded_pids(&dir)?;
    ensure!(
        pids.len() >= 3,
        "expected etcd, kube-apiserver and a workload server, got {pids:?}"
    );
    ensure!(
        live_members(&pids)?.len() >= pids.len(),
        "not all recorded processes run"
    );

    run_harness(&["down"], env).await?;
    ensure!(!dir.exists(), "{} still exists after down", dir.display());
    let left = live_members(&pids)?;
    ensure!(left.is_empty(), "processes left after down: {left:?}");
    Ok(())
}
