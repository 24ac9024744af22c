//! One run: start the clusters the asked scenarios need, run the scenarios in order, and turn
//! their results into the report's rows, measurements and targets.

use std::path::Path;

use anyhow::Result;

use crate::Settings;
use crate::cluster::Cluster;
use crate::cluster::System;
use crate::report::Metric;
use crate::report::PeerValue;
use crate::report::Report;
use crate::report::Target;
use crate::scenarios::beats;
use crate::scenarios::expiry;
use crate::scenarios::heal;
use crate::scenarios::memory;
use crate::scenarios::module;
use crate::scenarios::notify;
use crate::scenarios::restart;
use crate::scenarios::throughput;
use crate::scenarios::wasm;

const MIB: f64 = 1024.0 * 1024.0;

/// Which scenarios run.
pub struct Wanted {
    pub throughput: bool,
    pub notify: bool,
    pub memory: bool,
    pub module: bool,
    /// Nacre alone, on a cluster of its own (its peer links run through proxies).
    pub heal: bool,
    /// Nacre alone, on a cluster of its own with self-preservation off.
    pub expiry: bool,
    /// Nacre alone, on a cluster of its own.
    pub beats: bool,
    pub restart: bool,
    pub wasm: bool,
}

impl Wanted {
    fn peers(&self) -> bool {
        self.throughput || self.notify || self.memory || self.restart
    }
}

/// How each peer is driven, for the report's header.
pub fn protocol(system: System) -> &'static str {
    match system {
        System::Etcd => {
            "etcd 3.4 (Debian etcd-server) through its v3 JSON gateway (HTTP/1.1 keep-alive, base64 keys), the same hyper client as Nacre's"
        }
        System::ZooKeeper => {
            "ZooKeeper 3.8 (Debian zookeeper, OpenJDK, 1000 MiB heap) through its own binary protocol (the zookeeper-client crate), one session per client"
        }
        System::RNacos => {
            "r-nacos 0.8.8 (cargo install rnacos; open API auth on, a token per request) through the same Nacos v1 HTTP and 2.x gRPC requests as Nacre; it does not fsync before acknowledging (its Raft log ends a write with File::flush, no sync_all or sync_data)"
        }
        System::Nacre => "",
    }
}

fn mib(bytes: &[u64]) -> String {
    let v: Vec<String> = bytes.iter().map(|b| format!("{:.0}", *b as f64 / MIB)).collect();
    format!("{} MiB", v.join(" / "))
}

fn max_mib(bytes: &[u64]) -> f64 {
    bytes.iter().copied().max().unwrap_or(0) as f64 / MIB
}

fn ms(v: f64) -> String {
    format!("{v:.0} ms")
}

/// A peer's figure with Nacre ÷ peer of the numbers behind it.
fn peer_value(peer: System, value: String, nacre: f64, theirs: f64) -> PeerValue {
    PeerValue { peer: peer.name().into(), value, ratio: (theirs > 0.0).then(|| nacre / theirs) }
}

/// Starts each peer in `systems`; a ZooKeeper or r-nacos that cannot be installed or started
/// is left out with a message unless `required`.
async fn start_peers(dir: &Path, systems: &[System], required: bool) -> Result<Vec<(Cluster, std::time::Duration)>> {
    let mut peers = Vec::new();
    for &system in systems {
        let sub = dir.join(system.name().to_lowercase());
        match Cluster::start(system, &sub).await {
            Ok(started) => peers.push(started),
            // A cluster that failed to start is dropped, which kills its nodes.
            Err(e) if system != System::Etcd && !required => {
                eprintln!("{} left out of this run: {e:#}", system.name());
            }
            Err(e) => return Err(e),
        }
    }
    Ok(peers)
}

pub async fn run(
    settings: &Settings,
    want: &Wanted,
    peer_systems: &[System],
    peers_required: bool,
    report: &mut Report,
) -> Result<()> {
    if want.wasm {
        eprintln!("== wasm apply vs native");
        report.wasm = wasm::run(settings)?;
    }
    if want.heal {
        // Before the other clusters start, and dropped (its nodes killed) before they do.
        eprintln!("== heal: one node cut off, writes on both sides, heal, convergence");
        report.heal = Some(heal::run(settings).await?);
    }
    if want.expiry {
        eprintln!("== expiry: silent ephemeral instances, unhealthy and deleted on time");
        report.expiry = Some(expiry::run(settings).await?);
    }
    if want.beats {
        eprintln!("== beats: ephemeral instances beating every 5 s");
        report.beats = Some(beats::run(settings).await?);
    }
    if !(want.peers() || want.module) {
        return Ok(());
    }
    let run_dir = crate::out_dir().join("run");
    let peer_systems = if want.peers() { peer_systems } else { &[] };
    let names: Vec<&str> = peer_systems.iter().map(|s| s.name()).collect();
    eprintln!("== starting 3-node Nacre and {} clusters under {}", names.join(", "), run_dir.display());
    let started = start_peers(&run_dir, peer_systems, peers_required).await?;
    let (mut nacre, nacre_start) = Cluster::start(System::Nacre, &run_dir.join("nacre")).await?;
    let mut peers = Vec::new();
    let mut start_values = Vec::new();
    let mut readiness = vec![format!("Nacre: {}", System::Nacre.readiness())];
    for (cluster, took) in started {
        let secs = took.as_secs_f64();
        start_values.push(peer_value(cluster.system, ms(secs * 1e3), nacre_start.as_secs_f64(), secs));
        report.peers.push(cluster.system.name().into());
        report.peer_protocols.push(protocol(cluster.system).into());
        readiness.push(format!("{}: {}", cluster.system.name(), cluster.system.readiness()));
        peers.push(cluster);
    }
    report.metrics.push(Metric {
        name: "fresh 3-node cluster: spawn → all nodes serving".into(),
        nacre: ms(nacre_start.as_secs_f64() * 1e3),
        peers: start_values,
        note: readiness.join("; "),
    });

    if want.memory {
        eprintln!("== memory: 10k instances + 10k configs (peers: 20k keys / znodes)");
        let n = memory::load_and_measure(&nacre).await?;
        let mut idle = Vec::new();
        let mut loaded = Vec::new();
        for peer in &peers {
            let p = memory::load_and_measure(peer).await?;
            idle.push(peer_value(peer.system, mib(&p.idle_rss), max_mib(&n.idle_rss), max_mib(&p.idle_rss)));
            loaded.push(peer_value(peer.system, mib(&p.loaded_rss), max_mib(&n.loaded_rss), max_mib(&p.loaded_rss)));
        }
        report.metrics.push(Metric {
            name: "RSS per node, idle fresh cluster".into(),
            nacre: mib(&n.idle_rss),
            peers: idle,
            note: "node 0 / 1 / 2; ratio of the largest node".into(),
        });
        report.metrics.push(Metric {
            name: "RSS per node after 10k instances + 10k configs".into(),
            nacre: mib(&n.loaded_rss),
            peers: loaded,
            note: "peers: 20k 256-B keys / znodes; ratio of the largest node".into(),
        });
        if let Some(parts) = n.loaded_rss.iter().zip(&n.loaded_parts).max_by_key(|(rss, _)| **rss).map(|(_, p)| p) {
            let part = |bytes: u64| format!("{:.0}", bytes as f64 / MIB);
            report.metrics.push(Metric {
                name: "Nacre's largest node after 10k + 10k: mapped from files / wasmtime's instance pool / the largest other anonymous mapping / other anonymous".into(),
                nacre: format!(
                    "{} / {} / {} / {} MiB",
                    part(parts.file),
                    part(parts.pool),
                    part(parts.largest_anon),
                    part(parts.other_anon)
                ),
                peers: Vec::new(),
                note: "resident, from /proc/PID/smaps: the binary's code, the guests' pool slots, one mapping, the heap and stacks".into(),
            });
        }
        for cluster in std::iter::once(&nacre).chain(&peers) {
            memory::remove_instances(cluster).await?;
        }
        report.targets.push(Target::new(
            "RSS ≤ 64 MB per node at 10k instances + 10k configs",
            Some((max_mib(&n.loaded_rss), format!("max {:.0} MiB", max_mib(&n.loaded_rss)))),
            |v| v * MIB <= 64e6,
        ));
    }
    if want.throughput || want.notify {
        settle(report, &nacre, &peers).await?;
    }
    if want.throughput {
        eprintln!("== throughput");
        report.rows = throughput::run(settings, &nacre, &peers).await?;
    }
    if want.notify {
        eprintln!("== notify latency");
        report.rows.extend(notify::run(settings, &nacre, &peers).await?);
    }
    if want.module {
        eprintln!("== module switch (warm and cold compiled-module cache)");
        report.module = Some(module::run(settings, &nacre).await?);
    }
    if want.restart {
        eprintln!("== restart (fill, then restart)");
        let r = restart::run(settings, &mut nacre, &mut peers).await?;
        restart_metrics(report, &r);
        report.restart = Some(r);
    }
    Ok(())
}

/// Longest wait for every cluster to go quiet before the measured rows.
pub const SETTLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(240);

/// Wait for every cluster to finish its background work (a load's aftermath) before rows
/// that measure one system at a time, and report how long each took, or that it did not.
async fn settle(report: &mut Report, nacre: &Cluster, peers: &[Cluster]) -> Result<()> {
    let sample = crate::cluster::QUIET_SAMPLE;
    let quiet = async |cluster: &Cluster| -> Result<String> {
        let (took, busy) = Cluster::wait_quiet(&[cluster], sample, SETTLE_LIMIT).await?;
        Ok(if busy.is_empty() {
            format!("{:.0} s", took.as_secs_f64())
        } else {
            format!("still busy after {:.0} s", took.as_secs_f64())
        })
    };
    let nacre_took = quiet(nacre).await?;
    let mut values = Vec::new();
    for peer in peers {
        values.push(PeerValue { peer: peer.system.name().into(), value: quiet(peer).await?, ratio: None });
    }
    eprintln!(
        "settled: Nacre {nacre_took}; {}",
        values.iter().map(|v| format!("{} {}", v.peer, v.value)).collect::<Vec<_>>().join(", ")
    );
    report.metrics.push(Metric {
        name: "quiet before the measured rows (waited for)".into(),
        nacre: nacre_took,
        peers: values,
        note: format!(
            "each cluster's nodes under {:.0}% of a core over {:.0} s",
            crate::cluster::QUIET_CORE_SHARE * 100.0,
            sample.as_secs_f64()
        ),
    });
    Ok(())
}

fn restart_metrics(report: &mut Report, r: &restart::Restart) {
    let scaled = if r.nacre_applied_index < restart::TARGET_ENTRIES {
        format!(" (scaled down: {} of the target 1 M; not extrapolated)", r.nacre_applied_index)
    } else {
        String::new()
    };
    let peers = r
        .peers_cluster_ready_ms
        .iter()
        .map(|(peer, took)| PeerValue {
            peer: peer.clone(),
            value: ms(*took),
            ratio: (*took > 0.0).then(|| r.nacre_cluster_ready_ms / took),
        })
        .collect();
    report.metrics.push(Metric {
        name: format!(
            "whole-cluster restart (SIGKILL) → all serving, {} writes each cycling over {}",
            r.writes_each, r.pool
        ),
        nacre: ms(r.nacre_cluster_ready_ms),
        peers,
        note: format!(
            "Nacre applied index {}{scaled}{}{}",
            r.nacre_applied_index,
            retried_note(&r.retried_503),
            r.left_out.iter().map(|(peer, why)| format!("; {peer} left out: {why}")).collect::<String>()
        ),
    });
    report.metrics.push(Metric {
        name: "Nacre follower restart → ready / caught up".into(),
        nacre: format!("{:.0} / {:.0} ms", r.nacre_follower_ready_ms, r.nacre_follower_caught_up_ms),
        peers: Vec::new(),
        note: format!(
            "data dir {:.0} MiB, {} keys, {} log entries past the snapshot",
            r.nacre_data_dir_bytes as f64 / MIB,
            r.nacre_keys,
            r.nacre_log_past_snapshot
        ),
    });
    let at = if r.nacre_applied_index >= restart::TARGET_ENTRIES {
        "1 M".to_string()
    } else {
        format!("{} (not 1 M)", r.nacre_applied_index)
    };
    let mut target = Target::new(
        "restart ≤ 1 s with 1 M entries (issue 21)",
        Some((r.nacre_cluster_ready_ms, format!("{:.0} ms at {at} entries", r.nacre_cluster_ready_ms))),
        |v| v <= 1_000.0,
    );
    if r.nacre_applied_index < restart::TARGET_ENTRIES {
        target.status = format!("not measured at 1 M (scaled down; {})", target.status);
    }
    report.targets.push(target);
}

/// "; fill writes retried after a 503: Nacre 1", or nothing when none was.
fn retried_note(retried_503: &[(String, u64)]) -> String {
    let retried: Vec<String> =
        retried_503.iter().filter(|(_, n)| *n > 0).map(|(system, n)| format!("{system} {n}")).collect();
    if retried.is_empty() {
        String::new()
    } else {
        format!("; fill writes retried after a 503: {}", retried.join(", "))
    }
}

/// The targets, which are stated against etcd.
pub fn add_targets(report: &mut Report) {
    let c = 64;
    let etcd = System::Etcd.name();
    let ratio = |s: &str| report.ratio(s, c, etcd).map(|r| (r, format!("{r:.2}× at c=64")));
    let mut t = vec![
        Target::new("persistent register ≥ 2× etcd put at c=64", ratio("persistent instance register"), |v| {
            v >= 2.0
        }),
        Target::new("ephemeral register ≥ 4× etcd put at c=64", ratio("ephemeral instance register"), |v| v >= 4.0),
        // Issue 6 asks for "well above" without a figure; 2× is this harness's reading of it.
        Target::new(
            "ephemeral register well above persistent register at c=64 (issue 6; read as ≥ 2×)",
            report
                .nacre_ratio("ephemeral instance register", "persistent instance register", c)
                .map(|r| (r, format!("{r:.2}× at c=64"))),
            |v| v >= 2.0,
        ),
        Target::new("list ≥ 3× etcd serializable range at c=64", ratio("instance list (serializable)"), |v| {
            v >= 3.0
        }),
        Target::new("config get ≥ 3× etcd get at c=64", ratio("config get"), |v| v >= 3.0),
    ];
    // Issue 21's write targets against etcd, and every Nacos API row against r-nacos.
    let ratio_at = |s: &str, c: usize, peer: &str| report.ratio(s, c, peer).map(|r| (r, format!("{r:.2}× at c={c}")));
    t.push(Target::new(
        "config publish ≥ 1× etcd put at c=1 (issue 21)",
        ratio_at("config publish", 1, etcd),
        |v| v >= 1.0,
    ));
    t.push(Target::new(
        "config publish ≥ 2× etcd put at c=64 (issue 21)",
        ratio_at("config publish", c, etcd),
        |v| v >= 2.0,
    ));
    for mix in ["naming mix, 90% list / 10% register", "config mix, 90% get / 10% publish"] {
        t.push(Target::new(&format!("{mix} ≥ 3× etcd's mix at c=64 (issue 21)"), ratio_at(mix, c, etcd), |v| {
            v >= 3.0
        }));
    }
    let rnacos = System::RNacos.name();
    for row in [
        "persistent instance register",
        "ephemeral instance register",
        "config publish",
        "instance list (serializable)",
        "config get",
    ] {
        t.push(Target::new(&format!("{row} ≥ 2× r-nacos at c=64 (issue 21)"), ratio_at(row, c, rnacos), |v| {
            v >= 2.0
        }));
    }
    let notify = report.rows.iter().find(|r| r.scenario == "config change → listener notified").and_then(|r| r.nacre);
    t.push(Target::new(
        "listener notified p99 ≤ 20 ms",
        notify.map(|n| (n.p99_ms, format!("p99 {:.1} ms", n.p99_ms))),
        |v| v <= 20.0,
    ));
    let held = report
        .rows
        .iter()
        .find(|r| r.scenario == "config change → listener notified, 10k long-polls held")
        .and_then(|r| r.nacre);
    t.push(Target::new(
        "listener notified p99 ≤ 5 ms with 10k long-polls held (issue 21)",
        held.map(|n| (n.p99_ms, format!("p99 {:.1} ms", n.p99_ms))),
        |v| v <= 5.0,
    ));
    let w = report
        .wasm
        .iter()
        .map(|w| w.wasm_us / w.native_us)
        .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))));
    t.push(Target::new("Wasm apply ≤ 1.5× native", w.map(|r| (r, format!("{r:.2}× (worst batch size)"))), |v| {
        v <= 1.5
    }));
    if let Some(h) = &report.heal {
        t.push(Target::new(
            "AP convergence ≤ 10 s after a heal (issue 6)",
            Some((h.converge_max_ms(), format!("worst of {} rounds {:.0} ms", h.rounds, h.converge_max_ms()))),
            |v| v <= heal::TARGET_MS,
        ));
    }
    if let Some(e) = &report.expiry {
        t.push(Target::new(
            "silent instances unhealthy ≤ 3 s past their heartbeat timeout, at 100k per namespace (issue 16)",
            Some((
                e.unhealthy_ms - e.unhealthy_after_ms as f64,
                format!(
                    "{} instances: {:.0} ms after a {} ms timeout",
                    e.instances, e.unhealthy_ms, e.unhealthy_after_ms
                ),
            )),
            |late| late <= expiry::ON_TIME_SLACK_MS as f64,
        ));
        t.push(Target::new(
            "silent instances deleted ≤ 3 s past their deletion timeout, at 100k per namespace (issue 16)",
            Some((
                e.deleted_ms - e.deleted_after_ms as f64,
                format!("{} instances: {:.0} ms after a {} ms timeout", e.instances, e.deleted_ms, e.deleted_after_ms),
            )),
            |late| late <= expiry::ON_TIME_SLACK_MS as f64,
        ));
    }
    if let Some(b) = &report.beats {
        let status = format!(
            "{} of {} instances joined: {:.0} of {:.0} beats/s, latest {:.0} ms late, {} re-registered, healthy per node {:?}",
            b.joined,
            b.instances,
            b.beats_per_sec,
            b.scheduled_per_sec,
            b.late_max_ms,
            b.reregistered,
            b.healthy_per_node
        );
        t.push(Target::new(
            "100k ephemeral instances beating every 5 s: sustained, every instance healthy (issue 21)",
            Some((if b.sustained() { 1.0 } else { 0.0 }, status)),
            |sustained| sustained == 1.0,
        ));
    }
    let only_measured = report.rows.is_empty() || report.wasm.is_empty();
    t.retain(|x| !only_measured || x.status != "not measured");
    report.targets.splice(0..0, t);
}
