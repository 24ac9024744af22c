//! Memory: each node's resident set idle and after loading 10k instances and 10k configs
//! (r-nacos: the same requests; etcd: the same number of 256-byte keys; ZooKeeper: of
//! 256-byte znodes).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use anyhow::Result;

use zookeeper_client as zk;

use super::throughput::etcd_put;
use super::throughput::nacre_publish;
use super::throughput::nacre_register;
use super::throughput::value;
use super::throughput::zk_create;
use crate::cluster::Cluster;
use crate::cluster::RssParts;
use crate::cluster::System;
use crate::http;
use crate::load;
use crate::load::Load;
use crate::zookeeper;

/// Instances and configs loaded before the RSS reading.
pub const MEMORY_INSTANCES: u64 = 10_000;
pub const MEMORY_CONFIGS: u64 = 10_000;
/// Services the instances are spread over.
const MEMORY_SERVICES: u64 = 100;
/// Clients used to load.
const LOAD_CLIENTS: usize = 64;
/// ZooKeeper's znodes, all children of one parent.
const ZK_PARENT: &str = "/bench/mem";
/// Pause after loading before reading RSS (followers finish applying).
const SETTLE: Duration = Duration::from_secs(2);

pub struct Memory {
    pub idle_rss: Vec<u64>,
    pub loaded_rss: Vec<u64>,
    /// Where the loaded resident memory lies, per node.
    pub loaded_parts: Vec<RssParts>,
}

async fn fill(addrs: &[String], ops: u64, load: Load) -> Result<()> {
    load::run_round(addrs, LOAD_CLIENTS, ops, 0, &load).await.map(|_| ())
}

/// The service and instance number of registration `op`.
fn instance(op: u64) -> (String, u64) {
    (format!("bench.mem.{}", op % MEMORY_SERVICES), op)
}

/// Deregisters the instances [`load_and_measure`] registered (Nacre, r-nacos; nothing for the
/// others). A persistent instance is health-checked by its registry's leader every couple of
/// seconds with a TCP connect; 10k of them left behind would load every later scenario with
/// thousands of connects a second that the etcd and ZooKeeper rows never pay. The configs
/// stay: they cost no work while nobody reads them.
pub async fn remove_instances(cluster: &Cluster) -> Result<()> {
    if !matches!(cluster.system, System::Nacre | System::RNacos) {
        return Ok(());
    }
    let deregister = Load::Http(Arc::new(|addr, op| {
        let (service, n) = instance(op);
        let mut pairs = nacre_register(&service, n, false, op);
        pairs.retain(|(k, _)| k != "metadata");
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        http::delete(addr, &format!("/nacos/v1/ns/instance?{}", http::form(&pairs)))
    }));
    fill(&cluster.addrs(), MEMORY_INSTANCES, deregister).await?;
    if cluster.system == System::Nacre {
        let leader = &cluster.addrs()[cluster.nacre_leader().await.context("a Nacre leader")?];
        let left = super::expiry::instance_count(leader).await?;
        anyhow::ensure!(left == 0, "{left} instances left after deregistering the memory scenario's");
    }
    Ok(())
}

pub async fn load_and_measure(cluster: &Cluster) -> Result<Memory> {
    let idle_rss = cluster.rss()?;
    let addrs = cluster.addrs();
    let run = |ops, load| fill(&addrs, ops, load);
    match cluster.system {
        System::Nacre | System::RNacos => {
            let reg = Load::Http(Arc::new(|addr, op| {
                let (service, n) = instance(op);
                let pairs = nacre_register(&service, n, false, op);
                let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                http::post_form(addr, "/nacos/v1/ns/instance", &pairs)
            }));
            run(MEMORY_INSTANCES, reg).await?;
            let publish = Load::Http(Arc::new(|addr, op| nacre_publish(addr, &format!("bench.mem.{op}"), &value(op))));
            run(MEMORY_CONFIGS, publish).await?;
        }
        System::Etcd => {
            let put = Load::Http(Arc::new(|addr, op| etcd_put(addr, &format!("bench/mem/{op}"), &value(op))));
            run(MEMORY_INSTANCES + MEMORY_CONFIGS, put).await?;
        }
        System::ZooKeeper => {
            let session = zookeeper::connect(&cluster.nodes[0].addr).await?;
            session.mkdir(ZK_PARENT, &zookeeper::create_options(zk::CreateMode::Persistent)).await?;
            let create = Load::Zk(zk_create(|op| format!("{ZK_PARENT}/{op}"), zk::CreateMode::Persistent));
            run(MEMORY_INSTANCES + MEMORY_CONFIGS, create).await?;
        }
    }
    tokio::time::sleep(SETTLE).await;
    Ok(Memory { idle_rss, loaded_rss: cluster.rss()?, loaded_parts: cluster.rss_parts()? })
}
