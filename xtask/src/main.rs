//! Project chores. `cargo xtask crd` writes the CRD YAML of both providers to
//! `config/crd/bases/` and the standalone kinds' CRDs to the Helm chart (`charts/k0smotron/crds/`);
//! `cargo xtask crd --check` fails when any committed file is stale, missing or left over.

use std::{
    fs,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use k0smotron_api::{crds, names};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// The Helm chart's CRD folder, relative to the workspace root.
const CHART_CRDS: &str = "charts/k0smotron/crds";

#[derive(Parser)]
#[command(about = "k0smotron-rs project chores")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Regenerate config/crd/bases/<plural>.<group>.yaml from the Rust API types, and the
    /// standalone kinds' CRDs in charts/k0smotron/crds/.
    Crd {
        /// Do not write; exit non-zero if any file is missing, differs from what would be
        /// generated, or is not generated at all (for CI).
        #[arg(long)]
        check: bool,
        /// Output directory of the CRD bases (default: config/crd/bases in the workspace); when
        /// given, the chart's CRDs are neither written nor checked.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn workspace_root() -> PathBuf {
    // xtask/ lives directly under the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// One folder of generated CRD files: (file name, content) each.
struct Target {
    dir: PathBuf,
    files: Vec<(String, String)>,
}

fn render(crds: &[CustomResourceDefinition]) -> Result<Vec<(String, String)>> {
    crds.iter()
        .map(|crd| {
            let yaml = crds::to_yaml(crd)
                .with_context(|| format!("serialising CRD {:?}", crd.metadata.name))?;
            Ok((crds::file_name(crd), yaml))
        })
        .collect()
}

/// The chart's CRDs: the standalone kinds without the clusterctl provider label (no clusterctl
/// manages a Helm install), as config/standalone strips it from the kubectl install.
fn chart_crds() -> Vec<CustomResourceDefinition> {
    let mut crds = crds::standalone();
    for crd in &mut crds {
        if let Some(labels) = crd.metadata.labels.as_mut() {
            labels.remove(names::PROVIDER_LABEL);
            if labels.is_empty() {
                crd.metadata.labels = None;
            }
        }
    }
    crds
}

fn targets(out: Option<PathBuf>) -> Result<Vec<Target>> {
    let root = workspace_root();
    let bases = Target {
        dir: out.clone().unwrap_or_else(|| root.join("config/crd/bases")),
        files: render(&crds::all())?,
    };
    if out.is_some() {
        return Ok(vec![bases]);
    }
    let chart = Target {
        dir: root.join(CHART_CRDS),
        files: render(&chart_crds())?,
    };
    Ok(vec![bases, chart])
}

/// What is wrong with `target` on disk: files that differ or are missing, and YAML files that
/// nothing generates any more.
fn stale(target: &Target) -> Vec<String> {
    let mut stale = Vec::new();
    for (name, content) in &target.files {
        let path = target.dir.join(name);
        match fs::read_to_string(&path) {
            Ok(existing) if existing == *content => {}
            Ok(_) => stale.push(format!("{} differs", path.display())),
            Err(e) => stale.push(format!("{} unreadable: {e}", path.display())),
        }
    }
    if let Ok(entries) = fs::read_dir(&target.dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".yaml") && !target.files.iter().any(|(f, _)| *f == name) {
                stale.push(format!(
                    "{} is not generated (delete it)",
                    entry.path().display()
                ));
            }
        }
    }
    stale
}

fn crd(check: bool, out: Option<PathBuf>) -> Result<ExitCode> {
    let targets = targets(out)?;
    if check {
        let problems: Vec<String> = targets.iter().flat_map(stale).collect();
        if problems.is_empty() {
            for t in &targets {
                println!("{} CRDs up to date in {}", t.files.len(), t.dir.display());
            }
            return Ok(ExitCode::SUCCESS);
        }
        for line in &problems {
            eprintln!("stale: {line}");
        }
        eprintln!("run `cargo xtask crd` and commit the result");
        return Ok(ExitCode::FAILURE);
    }
    for t in &targets {
        fs::create_dir_all(&t.dir).with_context(|| format!("creating {}", t.dir.display()))?;
        for (name, content) in &t.files {
            let path = t.dir.join(name);
            fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> Result<ExitCode> {
    match Cli::parse().command {
        Command::Crd { check, out } => crd(check, out),
    }
}
