//! A TCP proxy on loopback that can cut every connection through it at
//! once, without a goodbye at any protocol level above TCP, and be down (every
//! connection closed as soon as it is made): network faults a real server
//! cannot be asked to make.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
    cuts: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Forwards connections on a free port to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cuts, watch) = watch::channel(0u64);
        let watch = Arc::new(watch);
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        let down = Arc::new(AtomicBool::new(false));
        let is_down = Arc::clone(&down);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::Relaxed);
                if is_down.load(Ordering::SeqCst) {
                    continue;
                }
                let mut cut = (*watch).clone();
                cut.mark_unchanged();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut client, mut server) = (client, server);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                    // Dropped: both sockets close at once.
                });
            }
        });
        Proxy {
            addr,
            accepted,
            down,
            cuts,
            task,
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Closes every connection open through the proxy now; new ones are
    /// forwarded as before.
    pub fn cut(&self) {
        self.cuts.send_modify(|n| *n += 1);
    }

    /// Down: every open connection is cut, and new ones are closed at once,
    /// until `up`.
    pub fn down(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.cut();
    }

    pub fn up(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
