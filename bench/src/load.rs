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

impl Client {
    async fn call(&mut self, op: u64) -> Result<()> {
        match self {
            Client::Http(conn, make) => {
                let req = make(conn.addr(), op);
                let (status, body) = conn.send(req, http::REQUEST_TIMEOUT).await?;
                if status != 200 {
                    bail!("HTTP {status} from {}: {}", conn.addr(), String::from_utf8_lossy(&body));
                }
                Ok(())
            }
            Client::Zk(session, run) => {
                let call = run(session.clone(), op);
                tokio::time::timeout(http::REQUEST_TIMEOUT, call).await.map_err(|_| anyhow::anyhow!("timed out"))?
            }
            Client::Grpc(conn, make) => {
                let (kind, body) = make(op);
                let call = conn.request(kind, body);
                tokio::time::timeout(http::REQUEST_TIMEOUT, call)
                    .await
                    .map_err(|_| anyhow::anyhow!("timed out"))?
                    .map(drop)
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
            let mut latencies = Vec::new();
            loop {
                let op = next.fetch_add(1, Ordering::Relaxed);
                if op >= ops {
                    break;
                }
                let sent = Instant::now();
                client.call(op_base + op).await?;
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
