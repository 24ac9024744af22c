//! The closed-loop load generator: N clients, each with its own keep-alive connection to one
//! node (spread round-robin over the cluster), each sending its next request as soon as the
//! previous answer arrives, until a fixed number of operations is done. Connections are made
//! before the clock starts.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use anyhow::Result;
use anyhow::bail;

use crate::http;
use crate::http::Conn;
use crate::http::Req;
use crate::stats;
use crate::stats::Summary;

/// Builds the request for operation `op` against node `addr`.
pub type MakeReq = Arc<dyn Fn(&str, u64) -> Req + Send + Sync>;

/// Runs `ops` operations with `clients` concurrent clients; `op_base` offsets the operation
/// numbers handed to `make` (so rounds can write distinct keys).
pub async fn run_round(addrs: &[String], clients: usize, ops: u64, op_base: u64, make: &MakeReq) -> Result<Summary> {
    run_on(connect(addrs, clients).await?, ops, op_base, make).await
}

/// One connection per client, spread round-robin over `addrs`.
pub async fn connect(addrs: &[String], clients: usize) -> Result<Vec<Conn>> {
    let mut conns = Vec::with_capacity(clients);
    for c in 0..clients {
        conns.push(Conn::connect(&addrs[c % addrs.len()]).await?);
    }
    Ok(conns)
}

/// Runs `ops` operations over connections made beforehand, one client per connection (so a
/// measurement can start the instant something else ends, without connecting first).
pub async fn run_on(conns: Vec<Conn>, ops: u64, op_base: u64, make: &MakeReq) -> Result<Summary> {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(conns.len());
    for mut conn in conns {
        let next = next.clone();
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let op = next.fetch_add(1, Ordering::Relaxed);
                if op >= ops {
                    break;
                }
                let req = make(conn.addr(), op_base + op);
                let sent = Instant::now();
                let (status, body) = conn.send(req, http::REQUEST_TIMEOUT).await?;
                if status != 200 {
                    bail!("HTTP {status} from {}: {}", conn.addr(), String::from_utf8_lossy(&body));
                }
                latencies.push(sent.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all: Vec<Duration> = Vec::with_capacity(ops as usize);
    for task in tasks {
        all.extend(task.await??);
    }
    Ok(stats::summarize(all, start.elapsed()))
}
