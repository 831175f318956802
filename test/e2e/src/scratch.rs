//! Temporary directories owned by one test or run: created under the system temp dir, removed on
//! drop unless `E2E_KEEP=1` (then their path is printed, for debugging).

use std::path::{Path, PathBuf};

/// A directory removed (recursively) when dropped.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Create `<temp>/<prefix>-<random>`.
    pub fn new(prefix: &str) -> std::io::Result<Self> {
        let path = std::env::temp_dir().join(test_support::unique_name(prefix));
        std::fs::create_dir_all(&path)?;
        Ok(Self { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside it.
    pub fn join(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.path.join(relative)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if std::env::var_os("E2E_KEEP").is_some_and(|v| v == "1") {
            eprintln!("keeping {} (E2E_KEEP=1)", self.path.display());
        } else if let Err(e) = std::fs::remove_dir_all(&self.path) {
            eprintln!("warning: removing {}: {e}", self.path.display());
        }
    }
}
