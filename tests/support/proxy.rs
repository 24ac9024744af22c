//! A loopback TCP proxy on one directed link between two nodes, so that tests cut and heal
//! links for real. A link fails in one of two ways ([`Failure`]):
//! - `Reset`: every connection through it is closed and new ones are refused, exactly what a
//!   node sees when a peer becomes unreachable;
//! - `Stall`: connections stay open but nothing crosses (new ones are accepted and held),
//!   what a node sees behind a silently dropping network: only its timeouts tell.
//!
//! The proxy on link `(from, to)` carries the calls `from` makes to `to` and their answers, so
//! failing it alone is a one-directional cut: `to` still reaches `from` through `(to, from)`.
//!
//! `nacre-bench` compiles this file too (`bench/src/links.rs`, its heal scenario): it must keep
//! depending on `std` alone.

use std::io;
use std::io::Read as _;
use std::io::Write as _;
use std::net::Shutdown;
use std::net::TcpListener;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU8;
use std::sync::atomic::Ordering;
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How often a stalled copy looks again whether its link was mended.
const STALL_POLL: Duration = Duration::from_millis(10);
const COPY_BUFFER_BYTES: usize = 64 * 1024;

/// How a failed link fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Failure {
    /// Connections closed, new ones refused.
    Reset,
    /// Connections kept open, nothing forwarded either way.
    Stall,
}

const OPEN: u8 = 0;
const RESET: u8 = 1;
const STALL: u8 = 2;

/// The proxies of one cluster, each on the directed link `(from, to)` between node indexes.
#[derive(Default)]
pub struct Links(pub Vec<((usize, usize), Proxy)>);

impl Links {
    /// Cut every link between node `i` and the others, both ways.
    pub fn isolate(&self, i: usize) {
        self.isolate_as(i, Failure::Reset);
    }

    /// Fail every link between node `i` and the others, both ways, in the given way.
    pub fn isolate_as(&self, i: usize, failure: Failure) {
        for ((from, to), proxy) in &self.0 {
            if *from == i || *to == i {
                proxy.fail(failure);
            }
        }
    }

    /// Fail the one directed link `from → to`.
    pub fn fail_link(&self, from: usize, to: usize, failure: Failure) {
        for ((f, t), proxy) in &self.0 {
            if (*f, *t) == (from, to) {
                proxy.fail(failure);
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
    mode: AtomicU8,
    stopped: AtomicBool,
    /// Both ends of every live connection, to close them at a reset.
    open: Mutex<Vec<TcpStream>>,
    /// Connections accepted while stalled: never forwarded, closed when the link is mended.
    held: Mutex<Vec<TcpStream>>,
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
                match accepting.mode.load(Ordering::Acquire) {
                    RESET => {
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    }
                    STALL => {
                        accepting.held.lock().unwrap().push(client);
                        continue;
                    }
                    _ => {}
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
        self.fail(Failure::Reset);
    }

    pub fn fail(&self, failure: Failure) {
        match failure {
            Failure::Reset => {
                self.shared.mode.store(RESET, Ordering::Release);
                for stream in self.shared.open.lock().unwrap().drain(..) {
                    let _ = stream.shutdown(Shutdown::Both);
                }
            }
            Failure::Stall => self.shared.mode.store(STALL, Ordering::Release),
        }
    }

    pub fn heal(&self) {
        self.shared.mode.store(OPEN, Ordering::Release);
        // A connection held while stalled was never forwarded: its caller has given up on it.
        for stream in self.shared.held.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
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
fn pipe(shared: &Arc<Shared>, client: TcpStream, upstream: TcpStream) -> io::Result<()> {
    shared.open.lock().unwrap().extend([client.try_clone()?, upstream.try_clone()?]);
    for (from, to) in [(client.try_clone()?, upstream.try_clone()?), (upstream, client)] {
        let shared = shared.clone();
        std::thread::spawn(move || {
            copy(&shared, from, &to);
            let _ = to.shutdown(Shutdown::Write);
        });
    }
    Ok(())
}

/// Forward until either side closes; while the link is stalled, hold what was read (and read
/// nothing more, so the sender's buffers fill as behind a dead network).
fn copy(shared: &Shared, mut from: TcpStream, mut to: &TcpStream) {
    let mut buffer = vec![0u8; COPY_BUFFER_BYTES];
    loop {
        let read = match from.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        loop {
            match shared.mode.load(Ordering::Acquire) {
                STALL if !shared.stopped.load(Ordering::Acquire) => std::thread::sleep(STALL_POLL),
                RESET => return,
                _ => break,
            }
        }
        if to.write_all(&buffer[..read]).is_err() {
            return;
        }
    }
}
