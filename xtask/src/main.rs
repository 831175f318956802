//! Project chores. `cargo xtask crd` writes the CRD YAML of both providers to
//! `config/crd/bases/`; `cargo xtask crd --check` fails when the committed files are stale.

use std::{
    fs,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use k0smotron_api::crds;

#[derive(Parser)]
#[command(about = "k0smotron-rs project chores")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Regenerate config/crd/bases/<plural>.<group>.yaml from the Rust API types.
    Crd {
        /// Do not write; exit non-zero if any file is missing or differs from what would be
        /// generated (for CI).
        #[arg(long)]
        check: bool,
        /// Output directory (default: config/crd/bases in the workspace).
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

/// The generated files: (file name, content).
fn render_crds() -> Result<Vec<(String, String)>> {
    crds::all()
        .iter()
        .map(|crd| {
            let yaml = crds::to_yaml(crd)
                .with_context(|| format!("serialising CRD {:?}", crd.metadata.name))?;
            Ok((crds::file_name(crd), yaml))
        })
        .collect()
}

fn crd(check: bool, out: Option<PathBuf>) -> Result<ExitCode> {
    let dir = out.unwrap_or_else(|| workspace_root().join("config/crd/bases"));
    let files = render_crds()?;
    if check {
        let mut stale = Vec::new();
        for (name, content) in &files {
            let path = dir.join(name);
            match fs::read_to_string(&path) {
                Ok(existing) if existing == *content => {}
                Ok(_) => stale.push(format!("{} differs", path.display())),
                Err(e) => stale.push(format!("{} unreadable: {e}", path.display())),
            }
        }
        if stale.is_empty() {
            println!("{} CRDs up to date in {}", files.len(), dir.display());
            return Ok(ExitCode::SUCCESS);
        }
        for line in &stale {
            eprintln!("stale: {line}");
        }
        eprintln!("run `cargo xtask crd` and commit the result");
        return Ok(ExitCode::FAILURE);
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, content) in &files {
        let path = dir.join(name);
        fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> Result<ExitCode> {
    match Cli::parse().command {
        Command::Crd { check, out } => crd(check, out),
    }
}
