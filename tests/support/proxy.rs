//! A loopback TCP proxy on one directed link between two nodes, so that tests cut and heal
//! links for real: a cut closes every connection through it and refuses new ones, exactly what
//! a node sees when a peer becomes unreachable.
//!
//! `nacre-bench` compiles this file too (`bench/src/links.rs`, its heal scenario): it must keep
//! depending on `std` alone.

use std::io;
use std::net::Shutdown;
use std::net::TcpListener;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The proxies of one cluster, each on the directed link `(from, to)` between node indexes.
#[derive(Default)]
pub struct Links(pub Vec<((usize, usize), Proxy)>);

impl Links {
    /// Cut every link between node `i` and the others, both ways.
    pub fn isolate(&self, i: usize) {
        for ((from, to), proxy) in &self.0 {
            if *from == i || *to == i {
                proxy.cut();
            }
        }
    }

    /// Mend every link.
    pub fn heal(&self) {
        for (_, proxy) in &self.0 {
            proxy.heal();
        }
    }
}

pub struct Proxy {
    pub addr: String,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    cut: AtomicBool,
    stopped: AtomicBool,
    /// Both ends of every live connection, to close them at a cut.
    open: Mutex<Vec<TcpStream>>,
}

impl Proxy {
    /// Listen on a free loopback port and forward every connection to `target`.
    pub fn start(target: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        let addr = listener.local_addr().unwrap().to_string();
        let shared = Arc::new(Shared::default());
        let target = target.parse().expect("a socket address");
        let accepting = shared.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accepting.stopped.load(Ordering::Acquire) {
                    return;
                }
                let Ok(client) = client else { continue };
                if accepting.cut.load(Ordering::Acquire) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(upstream) = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = (client.set_nodelay(true), upstream.set_nodelay(true));
                if let Err(e) = pipe(&accepting, client, upstream) {
                    eprintln!("proxy: {e}");
                }
            }
        });
        Proxy { addr, shared }
    }

    /// Close every connection through this link and refuse new ones until [`Proxy::heal`].
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::Release);
        for stream in self.shared.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    pub fn heal(&self) {
        self.shared.cut.store(false, Ordering::Release);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.shared.stopped.store(true, Ordering::Release);
        // Wake the accepting thread so that it sees the stop.
        let _ = TcpStream::connect_timeout(&self.addr.parse().unwrap(), CONNECT_TIMEOUT);
    }
}

/// Copy both ways on two threads; each direction half-closes the other side when it ends.
fn pipe(shared: &Shared, client: TcpStream, upstream: TcpStream) -> io::Result<()> {
    shared.open.lock().unwrap().extend([client.try_clone()?, upstream.try_clone()?]);
    for (mut from, mut to) in [(client.try_clone()?, upstream.try_clone()?), (upstream, client)] {
        std::thread::spawn(move || {
            let _ = io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
        });
    }
    Ok(())
}
