//! Restart: fill every cluster with the same number of writes (Nacre: persistent instance
//! registrations cycling over a pool of instances with new metadata each time, each one log
//! entry that changes state; r-nacos: the same requests; etcd: puts cycling over as many keys;
//! ZooKeeper: the pool's znodes created, then `setData` on them), then time a Nacre follower restart (to ready, and
//! to caught up) and a whole-cluster restart of each (SIGKILL, start, every node ready).

use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use anyhow::Context;
use anyhow::Result;
use serde::Serialize;

use zookeeper_client as zk;

use super::throughput::etcd_put;
use super::throughput::nacre_register;
use super::throughput::value;
use super::throughput::zk_create;
use super::throughput::zk_set;
use crate::Settings;
use crate::cluster;
use crate::cluster::Cluster;
use crate::cluster::System;
use crate::http;
use crate::load;
use crate::load::Load;
use crate::zookeeper;

/// The target size. The load stops earlier when the time budget runs out, and the
/// report says how many entries were reached.
pub const TARGET_ENTRIES: u64 = 1_000_000;
/// Writes per load round (then the applied index is read back).
const LOAD_BATCH: u64 = 10_000;
const LOAD_CLIENTS: usize = 256;
/// Instances (etcd: keys) the writes cycle over by default (`--restart-pool`), so the state
/// stays at a realistic size while the log grows: the restart cost measured is the log's, not
/// a 1 M-record state's.
pub const DEFAULT_POOL: u64 = 10_000;
/// Services the pool is spread over.
const SERVICES: u64 = 100;
/// ZooKeeper's pool of znodes.
const ZK_PARENT: &str = "/bench/restart";
/// Longest wait for a restarted node to catch up with the leader.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Serialize)]
pub struct Restart {
    pub nacre_applied_index: u64,
    pub writes_each: u64,
    /// Instances (keys) the writes cycled over (`--restart-pool`).
    pub pool: u64,
    pub load_secs: f64,
    pub nacre_follower_ready_ms: f64,
    pub nacre_follower_caught_up_ms: f64,
    pub nacre_cluster_ready_ms: f64,
    /// Each peer's whole-cluster restart: (peer, ms).
    pub peers_cluster_ready_ms: Vec<(String, f64)>,
    pub nacre_data_dir_bytes: u64,
    /// What the restarted follower loads: the replicated keys it holds, and the entries past
    /// its last snapshot, which it re-applies through the guests before it serves.
    pub nacre_keys: u64,
    pub nacre_log_past_snapshot: u64,
    /// Each system's fill writes answered 503 and sent again (`load::RETRIES_ON_503`).
    pub retried_503: Vec<(String, u64)>,
    /// Peers whose fill or restart failed, left out of the comparison: (peer, why).
    pub left_out: Vec<(String, String)>,
}

fn dir_bytes(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

async fn applied_index(c: &Cluster, i: usize) -> u64 {
    c.nacre_state(i).await.and_then(|s| s["applied_index"].as_u64()).unwrap_or(0)
}

/// Persistent instance registrations over the pool, new metadata each time (Nacre, r-nacos).
fn nacos_fill(pool: u64) -> Load {
    Load::Http(Arc::new(move |addr, op| {
        let n = op % pool;
        let pairs = nacre_register(&format!("bench.restart.{}", n % SERVICES), n, false, op);
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        http::post_form(addr, "/nacos/v1/ns/instance", &pairs)
    }))
}

/// The fill of one peer: the same count of writes over the same pool.
fn peer_fill(system: System, pool: u64) -> Load {
    match system {
        System::Nacre | System::RNacos => nacos_fill(pool),
        System::ZooKeeper => {
            let create = zk_create(|op| format!("{ZK_PARENT}/{op}"), zk::CreateMode::Persistent);
            let set = zk_set(move |op| format!("{ZK_PARENT}/{}", op % pool));
            // The first pass over the pool creates its znodes; later writes overwrite them.
            Load::Zk(Arc::new(move |session, op| if op < pool { create(session, op) } else { set(session, op) }))
        }
        System::Etcd => {
            Load::Http(Arc::new(move |addr, op| etcd_put(addr, &format!("bench/restart/{}", op % pool), &value(op))))
        }
    }
}

pub async fn run(settings: &Settings, nacre: &mut Cluster, peers: &mut [Cluster]) -> Result<Restart> {
    let publish = nacos_fill(settings.restart_pool);
    for peer in peers.iter().filter(|p| p.system == System::ZooKeeper) {
        let session = zookeeper::connect(&peer.nodes[0].addr).await?;
        session.mkdir(ZK_PARENT, &zookeeper::create_options(zk::CreateMode::Persistent)).await?;
    }
    let fills: Vec<Load> = peers.iter().map(|p| peer_fill(p.system, settings.restart_pool)).collect();
    let start = Instant::now();
    let mut written = 0;
    let mut retried_503: Vec<(String, u64)> = std::iter::once(System::Nacre)
        .chain(peers.iter().map(|p| p.system))
        .map(|system| (system.name().to_string(), 0))
        .collect();
    let mut failed: Vec<Option<String>> = vec![None; peers.len()];
    let leader = nacre.nacre_leader().await.context("a Nacre leader")?;
    while applied_index(nacre, leader).await < TARGET_ENTRIES && start.elapsed() < settings.restart_load_budget {
        let round = load::run_round(&nacre.addrs(), LOAD_CLIENTS, LOAD_BATCH, written, &publish)
            .await
            .with_context(|| format!("Nacre's fill, after {written} writes"))?;
        retried_503[0].1 += round.retried_503;
        for (i, (peer, fill)) in peers.iter().zip(&fills).enumerate() {
            if failed[i].is_some() {
                continue;
            }
            match load::run_round(&peer.addrs(), LOAD_CLIENTS, LOAD_BATCH, written, fill).await {
                Ok(round) => retried_503[i + 1].1 += round.retried_503,
                // A peer that fails under the fill is left out of the restart, which would
                // otherwise compare a cluster with fewer writes (or none serving); the others go on.
                Err(e) => {
                    let why = format!("its fill failed after {written} writes: {e:#}");
                    eprintln!("restart: {} left out, {why}", peer.system.name());
                    failed[i] = Some(why);
                }
            }
        }
        written += LOAD_BATCH;
        eprintln!("restart load: {written} writes each, nacre applied index {}", applied_index(nacre, leader).await);
    }
    let load_secs = start.elapsed().as_secs_f64();
    let leader = nacre.nacre_leader().await.context("a Nacre leader")?;
    let target = applied_index(nacre, leader).await;
    let follower = (leader + 1) % nacre.nodes.len();
    let data_dir_bytes = dir_bytes(&nacre.nodes[follower].data_dir);
    let state = nacre.nacre_state(follower).await.context("the follower's state before the restart")?;
    let field = |name: &str| state[name].as_u64().unwrap_or(0);
    let (keys, log_past_snapshot) = (field("keys"), field("applied_index").saturating_sub(field("snapshot_index")));

    nacre.kill_node(follower);
    let t = Instant::now();
    nacre.start_node(follower)?;
    let ready =
        cluster::wait_until("restarted follower ready", cluster::READY_TIMEOUT, || nacre.node_ready(follower)).await?;
    cluster::wait_until("restarted follower caught up", CATCH_UP_TIMEOUT, || async {
        applied_index(nacre, follower).await >= target
    })
    .await?;
    let caught_up = t.elapsed();

    let nacre_cluster = restart_all(nacre).await?;
    let mut peers_cluster = Vec::new();
    let mut left_out = Vec::new();
    for (peer, failed) in peers.iter_mut().zip(failed) {
        if let Some(why) = failed {
            left_out.push((peer.system.name().to_string(), why));
            continue;
        }
        // A peer that does not serve again in time is named, with why, and the figures measured
        // (Nacre's first) are kept: an `all` run once lost Nacre's restart figure to r-nacos's.
        match restart_all(peer).await {
            Ok(took) => peers_cluster.push((peer.system.name().to_string(), took.as_secs_f64() * 1e3)),
            Err(e) => {
                let why = format!("its restart failed: {e:#}");
                eprintln!("restart: {} left out, {why}", peer.system.name());
                left_out.push((peer.system.name().to_string(), why));
            }
        }
    }
    Ok(Restart {
        nacre_applied_index: target,
        writes_each: written,
        pool: settings.restart_pool,
        load_secs,
        nacre_follower_ready_ms: ready.as_secs_f64() * 1e3,
        nacre_follower_caught_up_ms: caught_up.as_secs_f64() * 1e3,
        nacre_cluster_ready_ms: nacre_cluster.as_secs_f64() * 1e3,
        peers_cluster_ready_ms: peers_cluster,
        nacre_data_dir_bytes: data_dir_bytes,
        nacre_keys: keys,
        nacre_log_past_snapshot: log_past_snapshot,
        retried_503,
        left_out,
    })
}

/// SIGKILL every node, start them all, and time until every one serves.
async fn restart_all(c: &mut Cluster) -> Result<Duration> {
    for i in 0..c.nodes.len() {
        c.kill_node(i);
    }
    let t = Instant::now();
    for i in 0..c.nodes.len() {
        c.start_node(i)?;
    }
    c.wait_ready().await?;
    Ok(t.elapsed())
}
