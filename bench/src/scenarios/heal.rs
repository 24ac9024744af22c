//! Convergence after a heal (issue 6), Nacre alone: a 3-node cluster whose peer links run
//! through proxies ([`crate::links`]). Each round cuts one node off (every link to and from
//! it; the node keeps serving its clients), waits until both sides see the cut
//! (`liveMembers` of `/nacos/v1/ns/operator/metrics`: 1 on the cut-off node, 2 on the others),
//! registers ephemeral instances on both sides of it — most through the two majority nodes,
//! some through the cut-off one, over the same services, so that both sides were responsible
//! for the same partitions — mends the links, and times from the heal until the three nodes
//! report the same `ap_digest` in `/nacre/v1/state`. At that moment every node must list
//! every instance written on both sides (checked right after, outside the timing). The cut
//! node rotates over the rounds, so it is sometimes the Raft leader.
//!
//! Nobody beats for these instances. Their leases lapse together a few rounds later, which is
//! what self-preservation exists for, so they do not expire under a later round's measurement.

use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use anyhow::Context;
use anyhow::Result;
use anyhow::bail;
use serde::Serialize;

use super::throughput::nacre_register;
use crate::Settings;
use crate::cluster;
use crate::cluster::Cluster;
use crate::http;
use crate::http::Conn;
use crate::links::Links;
use crate::load;
use crate::load::Load;
use crate::stats;

/// Instances registered through the majority side during each cut.
pub const MAJORITY_WRITES: u64 = 1_000;
/// Instances registered through the cut-off node during each cut.
pub const MINORITY_WRITES: u64 = 200;
/// Services both sides' instances are spread over (each its own AP partition).
pub const SERVICES: u64 = 64;
const CLIENTS: usize = 16;
/// Longest wait for the nodes' live views to show a cut, or the whole cluster again after a
/// heal (a peer is dropped after 2 s without answering a ping).
const VIEW_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest wait for convergence after a heal before the round fails.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the nodes' digests are read while waiting for convergence.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Issue 6's bound on convergence after a heal (also `tests/ap.rs`'s).
pub const TARGET_MS: f64 = 10_000.0;

#[derive(Debug, Clone, Serialize)]
pub struct Heal {
    pub rounds: usize,
    pub majority_writes: u64,
    pub minority_writes: u64,
    pub services: u64,
    /// Cut → both sides' views show it, each round.
    pub cut_seen_ms: Vec<f64>,
    /// Heal → the same `ap_digest` on all three nodes, each round.
    pub converge_ms: Vec<f64>,
}

impl Heal {
    pub fn converge_max_ms(&self) -> f64 {
        self.converge_ms.iter().copied().fold(0.0, f64::max)
    }
}

fn service(round: usize, op: u64) -> String {
    format!("bench.heal.{round}.{}", op % SERVICES)
}

async fn live_members(addr: &str) -> Option<u64> {
    let (status, body) = http::get_once(addr, "/nacos/v1/ns/operator/metrics").await.ok()?;
    let metrics: serde_json::Value = serde_json::from_str(&body).ok().filter(|_| status == 200)?;
    metrics["liveMembers"].as_u64()
}

/// Every node's `ap_digest`, or `None` if one does not answer.
async fn ap_digests(cluster: &Cluster) -> Option<Vec<String>> {
    let mut digests = Vec::new();
    for i in 0..cluster.nodes.len() {
        digests.push(cluster.nacre_state(i).await?["ap_digest"].as_str()?.to_string());
    }
    Some(digests)
}

/// Whether every node lists, for each of the round's services, every instance written to it.
async fn all_listed(cluster: &Cluster, round: usize) -> Result<bool> {
    let written = MAJORITY_WRITES + MINORITY_WRITES;
    for addr in cluster.addrs() {
        let mut conn = Conn::connect(&addr).await?;
        for s in 0..SERVICES.min(written) {
            let expected = (s..written).step_by(SERVICES as usize).count();
            let path = format!("/nacos/v1/ns/instance/list?{}", http::form(&[("serviceName", &service(round, s))]));
            let body = http::expect_ok(&mut conn, http::get(&addr, &path)).await?;
            let listing: serde_json::Value = serde_json::from_slice(&body).context("a naming list")?;
            if listing["hosts"].as_array().map_or(0, Vec::len) != expected {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// One round: cut `cut` off, write on both sides, heal; (cut seen, converged) after the heal.
async fn round(cluster: &Cluster, links: &Links, round: usize) -> Result<(Duration, Duration)> {
    let cut = round % cluster.nodes.len();
    let addrs = cluster.addrs();
    let majority: Vec<String> = addrs.iter().enumerate().filter(|(i, _)| *i != cut).map(|(_, a)| a.clone()).collect();
    links.isolate(cut);
    let cut_seen = cluster::wait_until("both sides see the cut", VIEW_TIMEOUT, || async {
        if live_members(&addrs[cut]).await != Some(1) {
            return false;
        }
        for addr in &majority {
            if live_members(addr).await != Some(2) {
                return false;
            }
        }
        true
    })
    .await?;
    let register = Load::Http(Arc::new(move |addr, op| {
        let pairs = nacre_register(&service(round, op), op, true, op);
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        http::post_form(addr, "/nacos/v1/ns/instance", &pairs)
    }));
    load::run_round(&majority, CLIENTS, MAJORITY_WRITES, 0, &register).await?;
    load::run_round(&addrs[cut..=cut], CLIENTS, MINORITY_WRITES, MAJORITY_WRITES, &register).await?;
    let before = ap_digests(cluster).await.context("every node's state during the cut")?;
    if before[cut] == before[(cut + 1) % before.len()] {
        bail!("the cut-off node's AP digest equals the majority's before the heal: the cut did not hold");
    }

    links.heal();
    let healed = Instant::now();
    let converged = loop {
        if healed.elapsed() > CONVERGE_TIMEOUT {
            bail!("no convergence within {CONVERGE_TIMEOUT:?} of the heal");
        }
        if let Some(d) = ap_digests(cluster).await.filter(|d| d.iter().all(|x| *x == d[0])) {
            let at = healed.elapsed();
            if all_listed(cluster, round).await? {
                break at;
            }
            eprintln!("heal round {round}: digests agree ({}) but a node lacks instances", d[0]);
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    };
    // The next round starts from a whole cluster: every view full, every node ready.
    cluster::wait_until("every view whole again", VIEW_TIMEOUT, || async {
        for addr in &addrs {
            if live_members(addr).await != Some(addrs.len() as u64) {
                return false;
            }
        }
        true
    })
    .await?;
    cluster.wait_ready().await?;
    Ok((cut_seen, converged))
}

pub async fn run(settings: &Settings) -> Result<Heal> {
    let (cluster, links) = crate::links::start_cluster(&crate::out_dir().join("run").join("nacre-heal")).await?;
    let rounds = settings.heal_rounds();
    let (mut cut_seen_ms, mut converge_ms) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        let (seen, converged) = round(&cluster, &links, r).await?;
        eprintln!(
            "heal round {r} (node {} cut off): both sides saw the cut after {:.0} ms; converged {:.0} ms after the heal",
            r % cluster.nodes.len(),
            stats::ms(seen),
            stats::ms(converged)
        );
        cut_seen_ms.push(stats::ms(seen));
        converge_ms.push(stats::ms(converged));
    }
    Ok(Heal {
        rounds,
        majority_writes: MAJORITY_WRITES,
        minority_writes: MINORITY_WRITES,
        services: SERVICES,
        cut_seen_ms,
        converge_ms,
    })
}
