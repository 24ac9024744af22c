//! A Nacre cluster whose peer traffic runs through a TCP proxy on every directed link
//! (`nacre serve --peer-via PEER=VIA`), so that the heal scenario cuts a node off from the
//! others for real while it keeps serving its own clients, then mends the links.
//!
//! The proxy is the cluster tests' own (`tests/support/proxy.rs`), compiled in here rather
//! than copied: a cut closes every connection through the link and refuses new ones, which is
//! what a node sees when a peer becomes unreachable.

#[path = "../../tests/support/proxy.rs"]
#[allow(dead_code)] // the heal scenario resets whole nodes' links; the tests use the rest
mod proxy;

use std::path::Path;

use anyhow::Result;

use self::proxy::Proxy;
use crate::cluster::Cluster;
use crate::cluster::System;

pub use self::proxy::Links;

/// Starts a fresh Nacre cluster in `dir` with a proxy on every peer link.
pub async fn start_cluster(dir: &Path) -> Result<(Cluster, Links)> {
    let mut links = Links::default();
    let mut via = |from: usize, ports: &[crate::cluster::Ports]| {
        let mut args = Vec::new();
        for (to, [_, raft, _]) in ports.iter().enumerate().filter(|(to, _)| *to != from) {
            let peer = format!("127.0.0.1:{raft}");
            let proxy = Proxy::start(&peer);
            args.extend(["--peer-via".to_string(), format!("{peer}={}", proxy.addr)]);
            links.0.push(((from, to), proxy));
        }
        Ok(args)
    };
    let (cluster, _) = Cluster::start_with(System::Nacre, dir, &mut via).await?;
    Ok((cluster, links))
}
