//! `nacre-bench`: Nacre against etcd, ZooKeeper and r-nacos, side by side in one run. See the README's
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
mod links;
mod load;
mod report;
mod rnacos;
mod run;
mod scenarios;
mod stats;
mod zookeeper;

use cluster::System;
use report::Report;

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
/// Heal rounds (each: one node cut off, writes on both sides, heal, convergence).
const FULL_HEAL_ROUNDS: usize = 5;
const QUICK_HEAL_ROUNDS: usize = 2;
/// Silent ephemeral instances the expiry scenario registers in one namespace (issue 16: 100k
/// must expire on time).
const FULL_EXPIRY_INSTANCES: u64 = 100_000;
const QUICK_EXPIRY_INSTANCES: u64 = 10_000;
/// Ephemeral instances the beats scenario keeps beating every 5 s (issue 21: 100k).
const FULL_BEAT_INSTANCES: u64 = 100_000;
const QUICK_BEAT_INSTANCES: u64 = 10_000;
const FULL_WASM_COMMANDS: u64 = 5_000;
const QUICK_WASM_COMMANDS: u64 = 640;
/// Longest time spent filling the clusters for the restart measurement.
const FULL_RESTART_LOAD_BUDGET: Duration = Duration::from_secs(900);
const QUICK_RESTART_LOAD_BUDGET: Duration = Duration::from_secs(10);

struct Ops {
    write_c1: u64,
    write: u64,
    read_c1: u64,
    read: u64,
}

#[derive(Parser)]
#[command(
    about = "Nacre vs etcd, ZooKeeper and r-nacos on loopback: throughput, latency, notify, memory, restart, module switch, heal convergence, expiry and beats at scale, Wasm overhead"
)]
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
    /// The systems Nacre is compared with, comma-separated (etcd, zookeeper, r-nacos). Default:
    /// all three; ZooKeeper and r-nacos are then left out, with a message, if they cannot be
    /// installed or started. Named here, a peer must run.
    #[arg(long, global = true, value_delimiter = ',')]
    peers: Option<Vec<Peer>>,
    /// Instances (etcd: keys; ZooKeeper: znodes) the restart's writes cycle over: the size of
    /// the state beside the log's length. Every write a new instance up to the end of the fill
    /// with a pool of 1000000 or more.
    #[arg(long, global = true, default_value_t = scenarios::restart::DEFAULT_POOL)]
    restart_pool: u64,
    #[command(subcommand)]
    what: What,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum Peer {
    Etcd,
    Zookeeper,
    #[value(name = "r-nacos", alias = "rnacos")]
    RNacos,
}

impl Peer {
    fn system(self) -> System {
        match self {
            Peer::Etcd => System::Etcd,
            Peer::Zookeeper => System::ZooKeeper,
            Peer::RNacos => System::RNacos,
        }
    }
}

#[derive(Subcommand, clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum What {
    /// Everything below, one table.
    All,
    /// Register, list, publish, get against etcd put/range/get and ZooKeeper create/getChildren/setData/getData.
    Throughput,
    /// Config change → long-poll listener vs etcd put → watch and ZooKeeper setData → data watch.
    Notify,
    /// Start time and RSS after 10k instances + 10k configs.
    Memory,
    /// Restart time after filling the log.
    Restart,
    /// Wasm apply vs the same guest compiled natively.
    Wasm,
    /// Nacre alone: one node cut off and healed; time until all three agree on the AP keyspace.
    Heal,
    /// Nacre alone: 100k silent ephemeral instances in one namespace; time until all are
    /// unhealthy and deleted (after their heartbeat and deletion timeouts).
    Expiry,
    /// Nacre alone: 100k ephemeral instances beating every 5 s; the rate sustained, how late
    /// the beats went out, CPU per beat, and every instance healthy on every node.
    Beats,
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
    pub restart_pool: u64,
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

    pub fn heal_rounds(&self) -> usize {
        if self.quick { QUICK_HEAL_ROUNDS } else { FULL_HEAL_ROUNDS }
    }

    pub fn expiry_instances(&self) -> u64 {
        if self.quick { QUICK_EXPIRY_INSTANCES } else { FULL_EXPIRY_INSTANCES }
    }

    pub fn beat_instances(&self) -> u64 {
        if self.quick { QUICK_BEAT_INSTANCES } else { FULL_BEAT_INSTANCES }
    }

    pub fn wasm_commands(&self) -> u64 {
        if self.quick { QUICK_WASM_COMMANDS } else { FULL_WASM_COMMANDS }
    }
}

pub fn out_dir() -> PathBuf {
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
    let etcd = sh(&format!("{} --version 2>/dev/null | head -1", cluster::ETCD_BIN));
    let zk = sh(&format!("dpkg-query -W -f '${{Version}}' {} 2>/dev/null", zookeeper::PACKAGE));
    let java = sh("java -version 2>&1 | head -1");
    format!(
        "{} cores ({}), {mem}, Linux {kernel}, {etcd}, ZooKeeper {zk}, {java}, r-nacos {}",
        cores,
        cpu.trim(),
        rnacos::VERSION
    )
}

async fn run(cli: &Cli) -> Result<Report> {
    let quick = cli.quick;
    let settings = Settings {
        rounds: if quick { QUICK_ROUNDS } else { FULL_ROUNDS },
        only: cli.only.clone(),
        leader_only: cli.leader_only,
        concurrency: cli.concurrency.clone().unwrap_or_else(|| DEFAULT_CONCURRENCY.to_vec()),
        restart_load_budget: if quick { QUICK_RESTART_LOAD_BUDGET } else { FULL_RESTART_LOAD_BUDGET },
        restart_pool: cli.restart_pool.max(1),
        quick,
    };
    let want = |w: What| cli.what == What::All || cli.what == w;
    let wanted = run::Wanted {
        throughput: want(What::Throughput),
        notify: want(What::Notify),
        memory: want(What::Memory),
        module: want(What::Module),
        heal: want(What::Heal),
        expiry: want(What::Expiry),
        beats: want(What::Beats),
        restart: want(What::Restart),
        wasm: want(What::Wasm),
    };
    let peers: Vec<System> = cli
        .peers
        .clone()
        .unwrap_or_else(|| vec![Peer::Etcd, Peer::Zookeeper, Peer::RNacos])
        .into_iter()
        .map(Peer::system)
        .collect();
    let mut report = Report {
        date: sh("date -u +%Y-%m-%dT%H:%M:%SZ"),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        rounds: settings.rounds,
        ..Default::default()
    };
    if let Err(e) = run::run(&settings, &wanted, &peers, cli.peers.is_some(), &mut report).await {
        // What was measured before the failure is still worth its report (a 40-minute `all`
        // run lost every figure to its last scenario's error once).
        report.failure = Some(format!("{e:#}"));
    }
    // After the run: it installs the peers whose versions this names.
    report.machine = machine();
    run::add_targets(&mut report);
    Ok(report)
}

/// Raise this process's open-file limit to its hard limit: the notify scenario holds 10k
/// long-polls, each a connection.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit write and read the one struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    raise_open_file_limit();
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
    match report.failure {
        Some(failure) => {
            cluster::kill_all_children();
            anyhow::bail!("the run stopped early: {failure}")
        }
        None => Ok(()),
    }
}
