//! `nacre-bench`: Nacre against etcd, side by side in one run. See the README's
//! "Benchmarks" section.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use anyhow::Result;
use clap::Parser;
use clap::Subcommand;
use clap::ValueEnum as _;

mod cluster;
mod http;
mod load;
mod report;
mod scenarios;
mod stats;

use cluster::Cluster;
use cluster::System;
use report::Metric;
use report::Report;
use report::Target;
use scenarios::memory;
use scenarios::module;
use scenarios::notify;
use scenarios::restart;
use scenarios::throughput;
use scenarios::wasm;

/// Concurrency levels (clients) measured by default.
const DEFAULT_CONCURRENCY: [usize; 4] = [1, 16, 64, 256];
const FULL_ROUNDS: usize = 3;
const QUICK_ROUNDS: usize = 1;
/// Operations per round: writes and reads, at c = 1 and above.
const FULL_OPS: Ops = Ops { write_c1: 300, write: 5_000, read_c1: 2_000, read: 20_000 };
const QUICK_OPS: Ops = Ops { write_c1: 50, write: 400, read_c1: 200, read: 2_000 };
const FULL_NOTIFY_SAMPLES: u64 = 200;
const QUICK_NOTIFY_SAMPLES: u64 = 20;
/// Module switch rounds (each: two fresh module ids compiled by two nodes, four switches).
const FULL_MODULE_ROUNDS: usize = 5;
const QUICK_MODULE_ROUNDS: usize = 3;
/// Registrations measured right after each module switch (the issue's "first N ops").
const FULL_MODULE_OPS: u64 = 2_000;
const QUICK_MODULE_OPS: u64 = 400;
const FULL_WASM_COMMANDS: u64 = 5_000;
const QUICK_WASM_COMMANDS: u64 = 640;
/// Longest time spent filling the clusters for the restart measurement.
const FULL_RESTART_LOAD_BUDGET: Duration = Duration::from_secs(900);
const QUICK_RESTART_LOAD_BUDGET: Duration = Duration::from_secs(10);
const MIB: f64 = 1024.0 * 1024.0;

struct Ops {
    write_c1: u64,
    write: u64,
    read_c1: u64,
    read: u64,
}

#[derive(Parser)]
#[command(about = "Nacre vs etcd on loopback: throughput, latency, notify, memory, restart, Wasm overhead")]
struct Cli {
    /// A short smoke run (about two minutes): fewer operations, one measured round.
    #[arg(long, global = true)]
    quick: bool,
    /// Concurrency levels, comma-separated.
    #[arg(long, global = true, value_delimiter = ',')]
    concurrency: Option<Vec<usize>>,
    /// Only the throughput scenarios whose name contains this text (e.g. `config get`).
    #[arg(long, global = true)]
    only: Option<String>,
    /// Send Nacre's load to the leader only (default: spread over all nodes, as clients do);
    /// a diagnostic for the cost of follower forwarding.
    #[arg(long, global = true)]
    leader_only: bool,
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand, clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum What {
    /// Everything below, one table.
    All,
    /// Register, list, publish, get against etcd put/range/get.
    Throughput,
    /// Config change → long-poll listener vs etcd put → watch.
    Notify,
    /// Start time and RSS after 10k instances + 10k configs.
    Memory,
    /// Restart time after filling the log.
    Restart,
    /// Wasm apply vs the same guest compiled natively.
    Wasm,
    /// Module switch: activate → every node serving it; register throughput right after a
    /// switch, compiled module cache warm vs cold.
    Module,
}

pub struct Settings {
    pub rounds: usize,
    pub only: Option<String>,
    pub leader_only: bool,
    pub concurrency: Vec<usize>,
    pub restart_load_budget: Duration,
    quick: bool,
}

impl Settings {
    pub fn ops(&self, write: bool, c: usize) -> u64 {
        let o = if self.quick { &QUICK_OPS } else { &FULL_OPS };
        match (write, c) {
            (true, 1) => o.write_c1,
            (true, _) => o.write,
            (false, 1) => o.read_c1,
            (false, _) => o.read,
        }
    }

    pub fn notify_samples(&self) -> u64 {
        if self.quick { QUICK_NOTIFY_SAMPLES } else { FULL_NOTIFY_SAMPLES }
    }

    pub fn module_rounds(&self) -> usize {
        if self.quick { QUICK_MODULE_ROUNDS } else { FULL_MODULE_ROUNDS }
    }

    pub fn module_ops(&self) -> u64 {
        if self.quick { QUICK_MODULE_OPS } else { FULL_MODULE_OPS }
    }

    pub fn wasm_commands(&self) -> u64 {
        if self.quick { QUICK_WASM_COMMANDS } else { FULL_WASM_COMMANDS }
    }
}

fn out_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench")
}

fn sh(cmd: &str) -> String {
    std::process::Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn machine() -> String {
    let cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2");
    let cores = sh("nproc");
    let mem = sh("awk '/MemTotal/ {printf \"%.0f GiB\", $2/1048576}' /proc/meminfo");
    let kernel = sh("uname -r");
    let etcd = sh("/usr/bin/etcd --version 2>/dev/null | head -1");
    format!("{} cores ({}), {mem}, Linux {kernel}, {etcd}", cores, cpu.trim())
}

fn mib(bytes: &[u64]) -> String {
    let v: Vec<String> = bytes.iter().map(|b| format!("{:.0}", *b as f64 / MIB)).collect();
    format!("{} MiB", v.join(" / "))
}

fn max_mib(bytes: &[u64]) -> f64 {
    bytes.iter().copied().max().unwrap_or(0) as f64 / MIB
}

async fn run(cli: &Cli) -> Result<Report> {
    let quick = cli.quick;
    let settings = Settings {
        rounds: if quick { QUICK_ROUNDS } else { FULL_ROUNDS },
        only: cli.only.clone(),
        leader_only: cli.leader_only,
        concurrency: cli.concurrency.clone().unwrap_or_else(|| DEFAULT_CONCURRENCY.to_vec()),
        restart_load_budget: if quick { QUICK_RESTART_LOAD_BUDGET } else { FULL_RESTART_LOAD_BUDGET },
        quick,
    };
    let want = |w: What| cli.what == What::All || cli.what == w;
    let mut report = Report {
        date: sh("date -u +%Y-%m-%dT%H:%M:%SZ"),
        machine: machine(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        peer_protocol: "etcd 3.4 v3 JSON gateway (HTTP/1.1 keep-alive, base64 keys), same hyper client as Nacre's"
            .into(),
        rounds: settings.rounds,
        ..Default::default()
    };

    if want(What::Wasm) {
        eprintln!("== wasm apply vs native");
        report.wasm = wasm::run(&settings)?;
        for w in &report.wasm {
            report.metrics.push(Metric {
                name: format!("config.publish apply, batch of {}", w.batch),
                nacre: format!("{:.1} µs/cmd (Wasm)", w.wasm_us),
                peer: format!("{:.1} µs/cmd (native)", w.native_us),
                ratio: Some(w.wasm_us / w.native_us),
                note: format!("{} commands; peer = same guest compiled natively", w.commands),
            });
        }
    }

    let cluster_scenarios = [What::Throughput, What::Notify, What::Memory, What::Module, What::Restart];
    if cluster_scenarios.into_iter().any(want) {
        let run_dir = out_dir().join("run");
        eprintln!("== starting 3-node etcd and 3-node Nacre clusters under {}", run_dir.display());
        let (mut etcd, etcd_start) = Cluster::start(System::Etcd, &run_dir.join("etcd"), &[]).await?;
        let (mut nacre, nacre_start) = Cluster::start(System::Nacre, &run_dir.join("nacre"), &[]).await?;
        report.metrics.push(Metric {
            name: "fresh 3-node cluster: spawn → all nodes serving".into(),
            nacre: format!("{:.0} ms", nacre_start.as_secs_f64() * 1e3),
            peer: format!("{:.0} ms", etcd_start.as_secs_f64() * 1e3),
            ratio: Some(nacre_start.as_secs_f64() / etcd_start.as_secs_f64()),
            note: "Nacre: readiness 200 (leader, modules bound); etcd: /health true".into(),
        });

        if want(What::Memory) {
            eprintln!("== memory: 10k instances + 10k configs (etcd: 20k keys)");
            let n = memory::load_and_measure(&nacre, true).await?;
            let e = memory::load_and_measure(&etcd, false).await?;
            report.metrics.push(Metric {
                name: "RSS per node, idle fresh cluster".into(),
                nacre: mib(&n.idle_rss),
                peer: mib(&e.idle_rss),
                ratio: Some(max_mib(&n.idle_rss) / max_mib(&e.idle_rss)),
                note: "node 0 / 1 / 2".into(),
            });
            report.metrics.push(Metric {
                name: "RSS per node after 10k instances + 10k configs".into(),
                nacre: mib(&n.loaded_rss),
                peer: mib(&e.loaded_rss),
                ratio: Some(max_mib(&n.loaded_rss) / max_mib(&e.loaded_rss)),
                note: "etcd: 20k 256-B keys; ratio of the largest node".into(),
            });
            report.targets.push(Target::new(
                "RSS ≤ 64 MB per node at 10k instances + 10k configs",
                Some((max_mib(&n.loaded_rss), format!("max {:.0} MiB", max_mib(&n.loaded_rss)))),
                |v| v * MIB <= 64e6,
            ));
        }

        if want(What::Throughput) {
            eprintln!("== throughput");
            report.rows = throughput::run(&settings, &nacre, &etcd).await?;
        }
        if want(What::Notify) {
            eprintln!("== notify latency");
            report.rows.push(notify::run(&settings, &nacre, &etcd).await?);
        }
        if want(What::Module) {
            eprintln!("== module switch (warm and cold compiled-module cache)");
            report.module = Some(module::run(&settings, &nacre).await?);
        }
        if want(What::Restart) {
            eprintln!("== restart (fill, then restart)");
            let r = restart::run(&settings, &mut nacre, &mut etcd).await?;
            let scaled = if r.nacre_applied_index < restart::TARGET_ENTRIES {
                format!(" (scaled down: {} of the target 1 M; not extrapolated)", r.nacre_applied_index)
            } else {
                String::new()
            };
            report.metrics.push(Metric {
                name: format!("whole-cluster restart (SIGKILL) → all serving, {} writes each", r.writes_each),
                nacre: format!("{:.0} ms", r.nacre_cluster_ready_ms),
                peer: format!("{:.0} ms", r.etcd_cluster_ready_ms),
                ratio: Some(r.nacre_cluster_ready_ms / r.etcd_cluster_ready_ms),
                note: format!("Nacre applied index {}{scaled}", r.nacre_applied_index),
            });
            report.metrics.push(Metric {
                name: "Nacre follower restart → ready / caught up".into(),
                nacre: format!("{:.0} / {:.0} ms", r.nacre_follower_ready_ms, r.nacre_follower_caught_up_ms),
                peer: "—".into(),
                ratio: None,
                note: format!("data dir {:.0} MiB", r.nacre_data_dir_bytes as f64 / MIB),
            });
            let at = if r.nacre_applied_index >= restart::TARGET_ENTRIES {
                "1 M".to_string()
            } else {
                format!("{} (not 1 M)", r.nacre_applied_index)
            };
            let mut target = Target::new(
                "restart ≤ 5 s with 1 M entries",
                Some((r.nacre_cluster_ready_ms, format!("{:.0} ms at {at} entries", r.nacre_cluster_ready_ms))),
                |v| v <= 5_000.0,
            );
            if r.nacre_applied_index < restart::TARGET_ENTRIES {
                target.status = format!("not measured at 1 M (scaled down; {})", target.status);
            }
            report.targets.push(target);
            report.restart = Some(r);
        }
        drop(nacre);
        drop(etcd);
    }
    add_targets(&mut report);
    Ok(report)
}

fn add_targets(report: &mut Report) {
    let c = 64;
    let ratio = |s: &str| report.ratio(s, c).map(|r| (r, format!("{r:.2}× at c=64")));
    let mut t = vec![
        Target::new("persistent register ≥ 2× etcd put at c=64", ratio("persistent instance register"), |v| {
            v >= 2.0
        }),
        Target::new("ephemeral register ≥ 4× etcd put at c=64", ratio("ephemeral instance register"), |v| v >= 4.0),
        Target::new("list ≥ 3× etcd serializable range at c=64", ratio("instance list (serializable)"), |v| {
            v >= 3.0
        }),
        Target::new("config get ≥ 3× etcd get at c=64", ratio("config get"), |v| v >= 3.0),
    ];
    let notify = report.rows.iter().find(|r| r.ratio_of == "p99 latency").and_then(|r| r.nacre);
    t.push(Target::new(
        "listener notified p99 ≤ 20 ms",
        notify.map(|n| (n.p99_ms, format!("p99 {:.1} ms", n.p99_ms))),
        |v| v <= 20.0,
    ));
    let w = report
        .wasm
        .iter()
        .map(|w| w.wasm_us / w.native_us)
        .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))));
    t.push(Target::new("Wasm apply ≤ 1.5× native", w.map(|r| (r, format!("{r:.2}× (worst batch size)"))), |v| {
        v <= 1.5
    }));
    let only_measured = report.rows.is_empty() || report.wasm.is_empty();
    t.retain(|x| !only_measured || x.status != "not measured");
    report.targets.splice(0..0, t);
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let report = tokio::select! {
        r = run(&cli) => r,
        _ = tokio::signal::ctrl_c() => {
            cluster::kill_all_children();
            eprintln!("interrupted: every started node killed");
            std::process::exit(130);
        }
    };
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            cluster::kill_all_children();
            return Err(e);
        }
    };
    let md = report.markdown();
    println!("{md}");
    let dir = out_dir();
    std::fs::create_dir_all(&dir)?;
    let json = serde_json::to_string_pretty(&report)?;
    let stamp = report.date.replace(':', "");
    // `all` is the report of record (`latest`); a single scenario keeps its own latest.
    let latest = match cli.what {
        What::All => "latest".to_string(),
        _ => format!("latest-{}", cli.what.to_possible_value().map_or("part".into(), |v| v.get_name().to_string())),
    };
    for name in [format!("report-{stamp}.json"), format!("{latest}.json")] {
        std::fs::write(dir.join(&name), &json).with_context(|| format!("write {name}"))?;
    }
    std::fs::write(dir.join(format!("{latest}.md")), &md)?;
    eprintln!("wrote {}", dir.join(format!("{latest}.json")).display());
    Ok(())
}
