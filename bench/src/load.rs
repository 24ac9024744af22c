//! The closed-loop load generator: N clients, each with its own connection to one node
//! (spread round-robin over the cluster), each sending its next request as soon as the
//! previous answer arrives, until a fixed number of operations is done. Connections (ZooKeeper:
//! sessions) are made before the clock starts.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use anyhow::Result;
use anyhow::bail;
use zookeeper_client as zk;

use nacre::grpc::client::GrpcClient;

use crate::http;
use crate::http::Conn;
use crate::http::Req;
use crate::stats;
use crate::stats::Summary;
use crate::zookeeper;

/// Builds the HTTP request for operation `op` against node `addr`.
pub type MakeReq = Arc<dyn Fn(&str, u64) -> Req + Send + Sync>;

/// A ZooKeeper operation in flight.
pub type ZkFuture = Pin<Box<dyn Future<Output = Result<()>> + Send>>;
/// Performs operation `op` in a session (the client is a cheap handle on it).
pub type ZkOp = Arc<dyn Fn(zk::Client, u64) -> ZkFuture + Send + Sync>;

/// Builds the Nacos gRPC request (its type and body) for operation `op`.
pub type GrpcOp = Arc<dyn Fn(u64) -> (&'static str, serde_json::Value) + Send + Sync>;

/// What one workload sends, by protocol.
#[derive(Clone)]
pub enum Load {
    Http(MakeReq),
    Zk(ZkOp),
    /// Nacre's Nacos 2.x gRPC port (addresses are the nodes' gRPC addresses).
    Grpc(GrpcOp),
}

/// One benchmark client: a connection and what it sends.
pub enum Client {
    Http(Conn, MakeReq),
    Zk(zk::Client, ZkOp),
    Grpc(GrpcClient, GrpcOp),
}

/// How many times one operation is sent again after an HTTP 503, the status Nacre (and Nacos)
/// answers a write that is not confirmed in time or finds no leader: a Nacos client retries it
/// (on another server), so a lone 503 in a million writes does not end a run. Every retry is
/// counted and reported beside the row; a fourth 503 for one operation does end it.
const RETRIES_ON_503: u32 = 3;

impl Client {
    /// Sends operation `op`; returns how many times it was sent again after a 503.
    async fn call(&mut self, op: u64) -> Result<u32> {
        match self {
            Client::Http(conn, make) => {
                let mut retries = 0;
                loop {
                    let req = make(conn.addr(), op);
                    let (status, body) = conn.send(req, http::REQUEST_TIMEOUT).await?;
                    match status {
                        200 => return Ok(retries),
                        503 if retries < RETRIES_ON_503 => {
                            retries += 1;
                            eprintln!("  retrying a 503 from {}: {}", conn.addr(), String::from_utf8_lossy(&body));
                        }
                        _ => bail!("HTTP {status} from {}: {}", conn.addr(), String::from_utf8_lossy(&body)),
                    }
                }
            }
            Client::Zk(session, run) => {
                let call = run(session.clone(), op);
                tokio::time::timeout(http::REQUEST_TIMEOUT, call).await.map_err(|_| anyhow::anyhow!("timed out"))??;
                Ok(0)
            }
            Client::Grpc(conn, make) => {
                let (kind, body) = make(op);
                let call = conn.request(kind, body);
                tokio::time::timeout(http::REQUEST_TIMEOUT, call).await.map_err(|_| anyhow::anyhow!("timed out"))??;
                Ok(0)
            }
        }
    }
}

/// Runs `ops` operations with `clients` concurrent clients; `op_base` offsets the operation
/// numbers (so rounds can write distinct keys).
pub async fn run_round(addrs: &[String], clients: usize, ops: u64, op_base: u64, load: &Load) -> Result<Summary> {
    run_on(connect(addrs, clients, load).await?, ops, op_base).await
}

/// One connection per client, spread round-robin over `addrs`.
pub async fn connect(addrs: &[String], clients: usize, load: &Load) -> Result<Vec<Client>> {
    let mut out = Vec::with_capacity(clients);
    for c in 0..clients {
        let addr = &addrs[c % addrs.len()];
        out.push(match load {
            Load::Http(make) => Client::Http(Conn::connect(addr).await?, make.clone()),
            Load::Zk(run) => Client::Zk(zookeeper::connect(addr).await?, run.clone()),
            Load::Grpc(make) => Client::Grpc(GrpcClient::connect(addr, http::token(addr)).await?, make.clone()),
        });
    }
    Ok(out)
}

/// Runs `ops` operations over clients connected beforehand (so a measurement can start the
/// instant something else ends, without connecting first).
pub async fn run_on(clients: Vec<Client>, ops: u64, op_base: u64) -> Result<Summary> {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(clients.len());
    for mut client in clients {
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let (mut latencies, mut retried) = (Vec::new(), 0u64);
            loop {
                let op = next.fetch_add(1, Ordering::Relaxed);
                if op >= ops {
                    break;
                }
                let sent = Instant::now();
                retried += u64::from(client.call(op_base + op).await?);
                // A retried operation's latency includes its retries, as its client saw it.
                latencies.push(sent.elapsed());
            }
            anyhow::Ok((latencies, retried))
        }));
    }
    let (mut all, mut retried): (Vec<Duration>, u64) = (Vec::with_capacity(ops as usize), 0);
    for task in tasks {
        let (latencies, task_retried) = task.await??;
        all.extend(latencies);
        retried += task_retried;
    }
    Ok(Summary { retried_503: retried, ..stats::summarize(all, start.elapsed()) })
}
