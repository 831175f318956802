//! A TCP listener on loopback that only records whether anyone connected: the stand-in for an
//! address a provider must never contact (a server or proxy named by an untrusted kubeconfig).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Counts the connections to a loopback port; stops listening when dropped.
#[derive(Debug)]
pub struct Tripwire {
    addr: SocketAddr,
    contacts: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Tripwire {
    /// Listens on `127.0.0.1` at a free port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let contacts = Arc::new(AtomicUsize::new(0));
        let counter = contacts.clone();
        let task = tokio::spawn(async move {
            // Each connection is counted and closed at once.
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        Ok(Self {
            addr,
            contacts,
            task,
        })
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many connections were accepted so far.
    pub fn contacts(&self) -> usize {
        self.contacts.load(Ordering::SeqCst)
    }
}

impl Drop for Tripwire {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_connections() {
        let wire = Tripwire::start().await.unwrap();
        assert_eq!(wire.contacts(), 0);
        let _conn = tokio::net::TcpStream::connect(wire.addr()).await.unwrap();
        for _ in 0..100 {
            if wire.contacts() == 1 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(wire.contacts(), 1);
    }
}
