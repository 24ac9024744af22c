//! The `nacre` command: `nacre serve` runs a node.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use clap::Subcommand;
use nacre::config;
use nacre::config::MemberAddr;
use nacre::config::NodeConfig;
use nacre::net::peer_auth::ClusterSecret;
use nacre::node::Node;
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(
    name = "nacre",
    version,
    about = "A Nacos-compatible registry and config center on Raft, with Wasm state machines"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node. With no flags: a single-node cluster on 127.0.0.1:8848 with data in ./data.
    Serve(ServeArgs),
    /// Config admin: history and rollback, against any running node.
    #[command(subcommand)]
    Config(nacre::cli::ConfigCommand),
    /// Guest modules: new (a module crate to start from), install, list, activate, rollback,
    /// dry-run, bindings, against any node.
    #[command(subcommand)]
    Module(nacre::cli::ModuleCommand),
    /// Users, roles and grants: the first administrator (bootstrap), add, passwd, remove,
    /// grant, permit, list, against any node.
    #[command(subcommand)]
    User(nacre::cli::UserCommand),
    /// Cluster membership against any node: members, add, promote, remove, transfer-leader.
    #[command(subcommand)]
    Cluster(nacre::cli::ClusterCommand),
    /// The cluster secret every member shares.
    #[command(subcommand)]
    Secret(SecretCommand),
}

#[derive(Subcommand)]
enum SecretCommand {
    /// Write a new cluster secret (32 random bytes, hex) to PATH, readable by its owner only.
    /// Copy the file to every member and start each with `--cluster-secret-file PATH`.
    New { path: PathBuf },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// IP address to listen on (`0.0.0.0`: every interface, then give --advertise).
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// The host name or IP address the other members and clients reach this node by, as
    /// cluster.conf lists it (under Kubernetes: the pod's DNS name in its headless service).
    /// Names are resolved when a peer connects, so a member that moves keeps its name.
    /// Defaults to --bind.
    #[arg(long, value_name = "HOST")]
    advertise: Option<String>,
    /// Client API port (Nacos's 8848).
    #[arg(long, default_value_t = config::DEFAULT_API_PORT)]
    port: u16,
    /// Nacos 2.x gRPC port; defaults to the API port plus 1000 (Nacos's 9848), where every
    /// 2.x client looks for it.
    #[arg(long)]
    grpc_port: Option<u16>,
    /// Raft peer port; defaults to the API port minus 1000 (Nacos's 7848).
    #[arg(long)]
    raft_port: Option<u16>,
    /// Where the log, snapshots and compiled modules live.
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
    /// Nacos cluster.conf: one `ip[:port][?raft_port=N]` per line, `#` comments. Without it,
    /// the node forms a cluster of one.
    #[arg(long)]
    cluster_conf: Option<PathBuf>,
    /// Join a running cluster instead of forming one: ask the member at HOST:PORT (its client
    /// address, as a cluster.conf line: `host[:port][?raft_port=N]`) to add this node. It joins
    /// as a learner, catches up, then becomes a voter unless --learner. Without an address it
    /// waits for an operator's `nacre cluster add`. A node restarted later takes its
    /// membership from its log, whatever this says.
    #[arg(long, value_name = "HOST:PORT", num_args = 0..=1, default_missing_value = "", conflicts_with = "cluster_conf")]
    join: Option<String>,
    /// Start a new cluster from a backup (`nacre cluster snapshot --out FILE`): give the same
    /// file to every member of the new cluster (cluster.conf lists them) on its first start,
    /// with an empty --data-dir.
    #[arg(long, value_name = "FILE", conflicts_with = "join")]
    restore: Option<PathBuf>,
    /// With --join: stay a non-voting read replica (etcd's learner, ZooKeeper's observer):
    /// reads scale out, writes never wait for it.
    #[arg(long, requires = "join")]
    learner: bool,
    /// The cluster's shared secret (`nacre secret new PATH`), needed with --cluster-conf: every
    /// peer message is signed with it, and a node without it cannot join. A single node
    /// without one uses a secret of its own that nobody else holds.
    #[arg(long)]
    cluster_secret_file: Option<PathBuf>,
    /// Take a snapshot (and purge the log behind it) after this many entries; past 16 MiB of
    /// state, also not before the log since the last one is a quarter of the excess.
    #[arg(long, default_value_t = config::DEFAULT_SNAPSHOT_EVERY_ENTRIES)]
    snapshot_every: u64,
    /// Entries kept in the log behind a snapshot.
    #[arg(long, default_value_t = config::DEFAULT_LOG_KEPT_BEHIND_SNAPSHOT)]
    log_kept_behind_snapshot: u64,
    /// Between snapshots, write the keys changed since the last checkpoint after this many
    /// entries, so a restart re-applies at most this much log; 0: never.
    #[arg(long, default_value_t = config::DEFAULT_CHECKPOINT_EVERY_ENTRIES)]
    checkpoint_every: u64,
    /// Reach the peer at PEER_ADDR through VIA_ADDR (`PEER_ADDR=VIA_ADDR`, repeatable): for
    /// tests that put a fault-injecting proxy on each link.
    #[arg(long = "peer-via", value_name = "PEER_ADDR=VIA_ADDR")]
    peer_via: Vec<String>,
    /// Self-preservation: stop expiring instances when more than this share of the expected
    /// heartbeats has lapsed at once (the node suspects its own network).
    #[arg(long, default_value_t = config::DEFAULT_SELF_PRESERVATION_THRESHOLD)]
    self_preservation_threshold: f64,
    /// Self-preservation never engages with fewer leases than this on the node.
    #[arg(long, default_value_t = config::DEFAULT_SELF_PRESERVATION_MIN_LEASES)]
    self_preservation_min_leases: u64,
    /// Check who calls the client port: logins, tokens, users, roles and permissions, as
    /// Nacos's auth does. `off` lets anyone who reaches the port do anything.
    #[arg(long, value_enum, default_value_t = AuthMode::On)]
    auth: AuthMode,
    /// Compiled modules shared by this user's nodes on this machine, so that nodes started
    /// together compile each module once (`off`: each node compiles for itself; every node
    /// also keeps its own in its data dir). Default: $XDG_CACHE_HOME/nacre/modules, else
    /// ~/.cache/nacre/modules. Used only when it is this user's and closed to everyone else.
    #[arg(long, value_name = "DIR|off")]
    module_cache: Option<String>,
    /// Serve the web console at /nacos/ on the client port (`off`: the API only).
    #[arg(long, value_enum, default_value_t = ConsoleMode::On)]
    console: ConsoleMode,
    /// Serve the client port over TLS with this certificate chain (PEM, leaf first); needs
    /// --tls-key. Tokens and passwords then never cross the network in clear.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum AuthMode {
    On,
    Off,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ConsoleMode {
    On,
    Off,
}

/// `--module-cache`: a directory, `off`, or by default the user's cache directory.
fn shared_module_cache(flag: Option<&str>) -> Option<PathBuf> {
    match flag {
        Some("off") => None,
        Some(dir) => Some(PathBuf::from(dir)),
        None => {
            let cache_home =
                std::env::var_os("XDG_CACHE_HOME").filter(|dir| !dir.is_empty()).map(PathBuf::from).or_else(|| {
                    std::env::var_os("HOME")
                        .filter(|home| !home.is_empty())
                        .map(|home| PathBuf::from(home).join(".cache"))
                })?;
            Some(cache_home.join("nacre").join("modules"))
        }
    }
}

/// The node's allocator: jemalloc, chosen by nacre-bench (3 nodes on this 2-core machine, c=64,
/// cluster CPU per write against etcd's in the same run; RSS after 10k configs + 10k persistent
/// instances). glibc: persistent register 1.13×, ephemeral 1.49× etcd's CPU per put, largest
/// node 154 MiB (276 MiB with `--auth off` and unreachable instances: a dozen arenas each
/// keeping what it freed); glibc capped at two arenas: 1.22× and 1.45×, 147 MiB; jemalloc with
/// [`JEMALLOC_OPTIONS`]: 1.04× and 1.36×, 97 MiB. mimalloc had doubled the RSS (issue 7).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options: a background thread gives freed pages back within a second
/// (`dirty_decay_ms`; jemalloc's default keeps them ten seconds, and purges only when the
/// program allocates again), with no lazily-freed middle state (`muzzy_decay_ms`).
const JEMALLOC_OPTIONS: &std::ffi::CStr = c"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0";

/// jemalloc reads its options from this symbol at start (`malloc_conf`, with the prefix
/// tikv-jemalloc-sys builds it with); an `Option<&c_char>` is the C `const char *` it expects.
#[unsafe(export_name = "_rjem_malloc_conf")]
static JEMALLOC_CONF: Option<&'static std::ffi::c_char> = Some(
    // SAFETY: the pointer is to a static C string's first byte.
    unsafe { &*JEMALLOC_OPTIONS.as_ptr() },
);

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("NACRE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn")),
        )
        .with_target(false)
        // Logs go to stderr, a server's diagnostics stream; stdout stays for command output.
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Config(command) => {
            print!("{}", runtime.block_on(nacre::cli::run_config(command))?);
            Ok(())
        }
        Command::Module(command) => {
            print!("{}", runtime.block_on(nacre::cli::run_module(command))?);
            Ok(())
        }
        Command::User(command) => {
            print!("{}", runtime.block_on(nacre::cli::run_user(command))?);
            Ok(())
        }
        Command::Cluster(command) => {
            print!("{}", runtime.block_on(nacre::cli::run_cluster(command))?);
            Ok(())
        }
        Command::Secret(SecretCommand::New { path }) => {
            ClusterSecret::write_new(&path)?;
            println!(
                "wrote a new cluster secret to {}: copy it to every member (keep it private) and start each with --cluster-secret-file",
                path.display()
            );
            Ok(())
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let node_config = node_config(&args)?;
    let api_addr = node_config.me.api_addr();
    let api_bind = format!("{}:{}", args.bind, args.port);
    // Bind the client port before starting Raft so a port clash fails fast and clearly.
    let api_listener =
        TcpListener::bind(&api_bind).await.with_context(|| format!("binding the client API port {api_bind}"))?;
    let grpc_port = match args.grpc_port {
        Some(port) => port,
        None => args
            .port
            .checked_add(nacre::grpc::PORT_OFFSET)
            .context("--port is too high for a gRPC port 1000 above it; give --grpc-port")?,
    };
    let grpc_addr = format!("{}:{grpc_port}", args.bind);
    let grpc_listener =
        TcpListener::bind(&grpc_addr).await.with_context(|| format!("binding the gRPC port {grpc_addr}"))?;
    let node = Node::start(node_config, api_listener, grpc_listener).await?;
    tracing::info!(
        node = node.id,
        api = %api_addr,
        grpc = %grpc_addr,
        raft = %node.config.me.raft_addr(),
        members = node.config.members.len(),
        "nacre node serving"
    );
    let signal = stop_signal().await?;
    tracing::info!(signal, "stopping: finishing requests in flight, then stopping raft and flushing the log");
    node.shutdown().await?;
    tracing::info!("stopped");
    Ok(())
}

/// Wait for SIGTERM (what a service manager sends) or SIGINT (Ctrl-C); the signal's name.
async fn stop_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::SignalKind;
    use tokio::signal::unix::signal;
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    Ok(tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    })
}

fn node_config(args: &ServeArgs) -> anyhow::Result<NodeConfig> {
    let raft_port = match args.raft_port {
        Some(port) => port,
        None => args
            .port
            .checked_sub(config::RAFT_PORT_OFFSET)
            .filter(|p| *p > 0)
            .context("the API port is too low to derive the Raft port; pass --raft-port")?,
    };
    let advertised = args.advertise.clone().unwrap_or_else(|| args.bind.clone());
    let unspecified = advertised.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_unspecified());
    anyhow::ensure!(
        !unspecified,
        "--bind {} listens on every interface: give --advertise HOST, the name or address others reach this node by",
        args.bind
    );
    let (me, members) = match &args.cluster_conf {
        None => {
            let me = MemberAddr { ip: advertised, port: args.port, raft_port };
            (me.clone(), vec![me])
        }
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let members = config::parse_cluster_conf(&text)?;
            let mut me = config::find_self(&members, &advertised, args.port)?;
            if let Some(port) = args.raft_port {
                me.raft_port = port;
            }
            (me, members)
        }
    };
    let mut peer_routes = std::collections::BTreeMap::new();
    for route in &args.peer_via {
        let (peer, via) = route.split_once('=').with_context(|| format!("--peer-via {route:?}: expected PEER=VIA"))?;
        peer_routes.insert(peer.to_string(), via.to_string());
    }
    let join = match &args.join {
        None => None,
        Some(seed) if seed.is_empty() => Some(config::JoinPlan { seed: None, learner: args.learner }),
        Some(seed) => {
            let seed = config::parse_member(seed).with_context(|| format!("--join {seed:?}"))?;
            Some(config::JoinPlan { seed: Some(seed), learner: args.learner })
        }
    };
    let cluster_secret = match (&args.cluster_secret_file, args.cluster_conf.is_some() || join.is_some()) {
        (Some(path), _) => ClusterSecret::load(path)?,
        (None, false) => ClusterSecret::generate(),
        (None, true) => anyhow::bail!(
            "a cluster needs a shared secret: run `nacre secret new PATH` once, copy the file to every member, \
             and start each with --cluster-secret-file PATH"
        ),
    };
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.self_preservation_threshold),
        "--self-preservation-threshold must be between 0 and 1"
    );
    Ok(NodeConfig {
        me,
        bind_ip: args.bind.clone(),
        cluster_secret,
        data_dir: args.data_dir.clone(),
        members,
        join,
        restore: args.restore.clone(),
        snapshot_every_entries: args.snapshot_every,
        log_kept_behind_snapshot: args.log_kept_behind_snapshot,
        checkpoint_every_entries: args.checkpoint_every,
        peer_routes,
        self_preservation: config::SelfPreservation {
            threshold: args.self_preservation_threshold,
            min_leases: args.self_preservation_min_leases,
        },
        auth: args.auth == AuthMode::On,
        console: args.console == ConsoleMode::On,
        shared_module_cache: shared_module_cache(args.module_cache.as_deref()),
        tls: args.tls_cert.clone().zip(args.tls_key.clone()).map(|(cert, key)| config::TlsFiles { cert, key }),
    })
}
