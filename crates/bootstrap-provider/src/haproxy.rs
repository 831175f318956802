//! Workers of a control plane behind an Ingress (`spec.ingress` of its K0smotronControlPlane):
//! the files the hosted cluster's HAProxy DaemonSet reads from the node (`/etc/haproxy/certs`),
//! which forwards the in-cluster `kubernetes` Service to the API through the ingress.
//!
//! Pure: the caller reads the cluster CA and the `<cluster>-ingress-haproxy` Secret.
//!
//! Upstream writes `ca.crt`, `server.crt` and `server.key` and then runs commands that join the
//! last two into `server.pem` and make it world-readable (`chmod 666`), so every local user can
//! read the key. We write all four as files (nothing to run, the same in cloud-init and
//! Ignition, and no moment where the key is readable by others): the key and `server.pem`
//! mode 0600, owned by root; the HAProxy container reads them as uid 0 with no capabilities.

use k0smotron_api::names;

use crate::render::{BootstrapFile, WorkerBootstrap};

/// What the HAProxy files are made of.
#[derive(Clone, PartialEq, Eq)]
pub struct HaproxyMaterial {
    /// The cluster CA certificate (PEM).
    pub ca: Vec<u8>,
    /// HAProxy's certificate (PEM, `tls.crt` of `<cluster>-ingress-haproxy`).
    pub cert: Vec<u8>,
    /// HAProxy's key (PEM, `tls.key`).
    pub key: Vec<u8>,
}

impl std::fmt::Debug for HaproxyMaterial {
    // Never print the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HaproxyMaterial")
            .field("ca", &format_args!("<{} bytes>", self.ca.len()))
            .field("cert", &format_args!("<{} bytes>", self.cert.len()))
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Mode of the certificates (public).
const PUBLIC_MODE: &str = "0644";
/// Mode of the files holding the key.
const PRIVATE_MODE: &str = "0600";

/// The four files: `ca.crt` and `server.crt` (0644), `server.key` and `server.pem`
/// (certificate then key, 0600).
pub fn files(material: &HaproxyMaterial) -> Vec<BootstrapFile> {
    let mut pem = material.cert.clone();
    if !pem.ends_with(b"\n") {
        pem.push(b'\n');
    }
    pem.extend_from_slice(&material.key);
    let file = |path: &str, content: Vec<u8>, mode: &str| BootstrapFile {
        path: path.to_string(),
        content,
        permissions: Some(mode.to_string()),
    };
    vec![
        file(names::HAPROXY_CA_FILE, material.ca.clone(), PUBLIC_MODE),
        file(names::HAPROXY_CERT_FILE, material.cert.clone(), PUBLIC_MODE),
        file(names::HAPROXY_KEY_FILE, material.key.clone(), PRIVATE_MODE),
        file(names::HAPROXY_PEM_FILE, pem, PRIVATE_MODE),
    ]
}

/// Adds the files after `spec.files` (upstream's order). A `spec.files` entry at one of their
/// paths is refused: one of the two would silently win. The error is the path.
pub fn add_files(
    bootstrap: &mut WorkerBootstrap,
    material: &HaproxyMaterial,
) -> Result<(), String> {
    let ours = files(material);
    if let Some(clash) = bootstrap
        .files
        .iter()
        .find(|f| ours.iter().any(|o| o.path == f.path))
    {
        return Err(clash.path.clone());
    }
    bootstrap.files.extend(ours);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn material() -> HaproxyMaterial {
        HaproxyMaterial {
            ca: b"CA\n".to_vec(),
            cert: b"CERT".to_vec(),
            key: b"KEY\n".to_vec(),
        }
    }

    #[test]
    fn the_key_is_only_roots() {
        let f = files(&material());
        let mode = |p: &str| {
            f.iter()
                .find(|x| x.path == p)
                .and_then(|x| x.permissions.clone())
                .unwrap()
        };
        assert_eq!(mode("/etc/haproxy/certs/ca.crt"), "0644");
        assert_eq!(mode("/etc/haproxy/certs/server.crt"), "0644");
        assert_eq!(mode("/etc/haproxy/certs/server.key"), "0600");
        assert_eq!(mode("/etc/haproxy/certs/server.pem"), "0600");
        let pem = &f
            .iter()
            .find(|x| x.path.ends_with("server.pem"))
            .unwrap()
            .content;
        assert_eq!(pem, b"CERT\nKEY\n");
    }

    #[test]
    fn debug_hides_the_key() {
        let text = format!("{:?}", material());
        assert!(!text.contains("KEY\\n"), "{text}");
        assert!(text.contains("redacted"));
    }
}
