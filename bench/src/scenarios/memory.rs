//! Memory and start: the time from spawning a fresh 3-node cluster to every node serving,
//! and each node's resident set after loading 10k instances and 10k configs (etcd: the same
//! number of 256-byte keys).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use super::throughput::etcd_put;
use super::throughput::nacre_publish;
use super::throughput::nacre_register;
use super::throughput::value;
use crate::cluster::Cluster;
use crate::http;
use crate::load;
use crate::load::MakeReq;

/// Instances and configs loaded before the RSS reading.
pub const MEMORY_INSTANCES: u64 = 10_000;
pub const MEMORY_CONFIGS: u64 = 10_000;
/// Services the instances are spread over.
const MEMORY_SERVICES: u64 = 100;
/// Clients used to load.
const LOAD_CLIENTS: usize = 64;
/// Pause after loading before reading RSS (followers finish applying).
const SETTLE: Duration = Duration::from_secs(2);

pub struct Memory {
    pub idle_rss: Vec<u64>,
    pub loaded_rss: Vec<u64>,
}

pub async fn load_and_measure(cluster: &Cluster, nacre: bool) -> Result<Memory> {
    let idle_rss = cluster.rss()?;
    let addrs = cluster.addrs();
    if nacre {
        let reg: MakeReq = Arc::new(|addr, op| {
            let service = format!("bench.mem.{}", op % MEMORY_SERVICES);
            let pairs = nacre_register(&service, op, false, op);
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            http::post_form(addr, "/nacos/v1/ns/instance", &pairs)
        });
        load::run_round(&addrs, LOAD_CLIENTS, MEMORY_INSTANCES, 0, &reg).await?;
        let publish: MakeReq = Arc::new(|addr, op| nacre_publish(addr, &format!("bench.mem.{op}"), &value(op)));
        load::run_round(&addrs, LOAD_CLIENTS, MEMORY_CONFIGS, 0, &publish).await?;
    } else {
        let put: MakeReq = Arc::new(|addr, op| etcd_put(addr, &format!("bench/mem/{op}"), &value(op)));
        load::run_round(&addrs, LOAD_CLIENTS, MEMORY_INSTANCES + MEMORY_CONFIGS, 0, &put).await?;
    }
    tokio::time::sleep(SETTLE).await;
    Ok(Memory { idle_rss, loaded_rss: cluster.rss()? })
}
