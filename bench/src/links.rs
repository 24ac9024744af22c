//! A Nacre cluster whose peer traffic runs through a TCP proxy on every directed link
//! (`nacre serve --peer-via PEER=VIA`), so that the heal scenario cuts a node off from the
//! others for real while it keeps serving its own clients, then mends the links.
//!
//! The proxy is the cluster tests' own (`tests/support/proxy.rs`), compiled in here rather
//! than copied: a cut closes every connection through the link and refuses new ones, which is
//! what a node sees when a peer becomes unreachable.

#[path = "../../tests/support/proxy.rs"]
mod proxy;

use std::path::Path;

use anyhow::Result;

use self::proxy::Proxy;
use crate::cluster::Cluster;
use crate::cluster::System;

/// The proxies of one cluster, each on the directed link `(from, to)` between node indexes.
pub struct Links {
    links: Vec<((usize, usize), Proxy)>,
}

impl Links {
    /// Starts a fresh Nacre cluster in `dir` with a proxy on every peer link.
    pub async fn start_cluster(dir: &Path) -> Result<(Cluster, Links)> {
        let mut links = Vec::new();
        let mut via = |from: usize, ports: &[crate::cluster::Ports]| {
            let mut args = Vec::new();
            for (to, [_, raft, _]) in ports.iter().enumerate().filter(|(to, _)| *to != from) {
                let peer = format!("127.0.0.1:{raft}");
                let proxy = Proxy::start(&peer);
                args.extend(["--peer-via".to_string(), format!("{peer}={}", proxy.addr)]);
                links.push(((from, to), proxy));
            }
            Ok(args)
        };
        let (cluster, _) = Cluster::start_with(System::Nacre, dir, &mut via).await?;
        Ok((cluster, Links { links }))
    }

    /// Cuts every link between node `i` and the others, both ways.
    pub fn isolate(&self, i: usize) {
        for ((from, to), proxy) in &self.links {
            if *from == i || *to == i {
                proxy.cut();
            }
        }
    }

    /// Mends every link.
    pub fn heal(&self) {
        for (_, proxy) in &self.links {
            proxy.heal();
        }
    }
}
