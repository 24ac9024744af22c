//! The systems under test as local processes: a 3-node Nacre cluster from the release
//! binary, a 3-node etcd cluster from Debian's `etcd-server`, a 3-node ZooKeeper ensemble
//! from Debian's `zookeeper` and a 3-node r-nacos cluster built by `cargo install`, all on 127.0.0.1, each node with its own data directory under
//! `target/bench/run/`. Every child's PID is registered so
//! that a drop, an error or Ctrl-C kills it (SIGKILL, by PID, nothing else).

use std::net::TcpListener;
use std::path::Path;
use std::path::PathBuf;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::sync::Mutex;
use std::sync::atomic::AtomicU16;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use anyhow::Context;
use anyhow::Result;
use anyhow::bail;

use crate::http;
use crate::rnacos;
use crate::zookeeper;

/// Nodes per cluster (both systems).
pub const CLUSTER_SIZE: usize = 3;
/// Longest wait for a cluster to become ready after a start.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// A cluster is quiet when its three nodes together use less than this share of one core.
pub const QUIET_CORE_SHARE: f64 = 0.10;
/// What a quiet reading is taken over.
pub const QUIET_SAMPLE: Duration = Duration::from_secs(2);
/// What the reading before each measured round is taken over (shorter: there are hundreds).
pub const ROUND_QUIET_SAMPLE: Duration = Duration::from_millis(500);
/// Longest wait for `apt-get install`.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);
const POLL_INTERVAL: Duration = Duration::from_millis(20);
pub const ETCD_BIN: &str = "/usr/bin/etcd";
const ETCD_PACKAGE: &str = "etcd-server";

/// Ports of one node: the client port, then two more (Nacre: Raft, gRPC; etcd: peer;
/// ZooKeeper: quorum, election; r-nacos: gRPC and Raft, console).
pub type Ports = [u16; 3];

/// Extra `nacre serve` flags for node `i` of a cluster on `ports`.
pub type NodeArgs<'a> = &'a mut dyn FnMut(usize, &[Ports]) -> Result<Vec<String>>;

/// PIDs of every child this process started and has not reaped.
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn register(pid: u32) {
    CHILDREN.lock().unwrap_or_else(|p| p.into_inner()).push(pid);
}

fn unregister(pid: u32) {
    CHILDREN.lock().unwrap_or_else(|p| p.into_inner()).retain(|p| *p != pid);
}

/// SIGKILL every registered child (Ctrl-C path).
pub fn kill_all_children() {
    let pids = std::mem::take(&mut *CHILDREN.lock().unwrap_or_else(|p| p.into_inner()));
    for pid in pids {
        // SAFETY: kill(2) on a PID this process spawned and has not reaped.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
        }
    }
}

/// A child process killed by PID on drop.
pub struct Proc {
    child: Option<Child>,
}

impl Proc {
    fn spawn(mut cmd: Command, log: &Path) -> Result<Proc> {
        let log_file = std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        // Both streams: Nacre and etcd log to stderr, and anything either prints goes here too.
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().with_context(|| format!("share {}", log.display()))?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("spawn {cmd:?}"))?;
        register(child.id());
        Ok(Proc { child: Some(child) })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            unregister(child.id());
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// CPU time (user + system, every thread) a process has used, in µs, from `/proc/PID/stat`.
pub fn cpu_us(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; the fields after its `)` are fixed.
    let after_name = &stat[stat.rfind(')').context("a stat line without a name")? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 =
        fields.get(11).context("utime")?.parse::<u64>()? + fields.get(12).context("stime")?.parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(ticks * 1_000_000 / per_sec)
}

/// Resident set size of a process, from `/proc/PID/status` (`VmRSS`), in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS line")?;
    let kib: u64 = line.split_whitespace().nth(1).context("VmRSS value")?.parse()?;
    Ok(kib * 1024)
}

/// Anonymous mappings reserved at this size or more are wasmtime's instance pool (its slots
/// and guard regions are reserved up front; only what the guests touched is resident).
const POOL_RESERVATION_BYTES: u64 = 1 << 30;

/// Where a process's resident memory lies, from `/proc/PID/smaps`, in bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RssParts {
    /// Mappings backed by a file: the binary's code and data, shared libraries.
    pub file: u64,
    /// Anonymous mappings of [`POOL_RESERVATION_BYTES`] or more: wasmtime's instance pool.
    pub pool: u64,
    /// The largest other anonymous mapping.
    pub largest_anon: u64,
    /// Every other anonymous mapping: the allocator's heap, thread stacks.
    pub other_anon: u64,
}

impl RssParts {
    /// Reads `/proc/PID/smaps` (the kernel's per-mapping accounting).
    pub fn of(pid: u32) -> Result<RssParts> {
        Ok(RssParts::parse(&std::fs::read_to_string(format!("/proc/{pid}/smaps"))?))
    }

    fn parse(smaps: &str) -> RssParts {
        // (is a file, virtual size, resident) per mapping, in the order smaps lists them.
        let mut mappings: Vec<(bool, u64, u64)> = Vec::new();
        for line in smaps.lines() {
            let mut fields = line.split_whitespace();
            let first = fields.next().unwrap_or("");
            let kib = |fields: &mut std::str::SplitWhitespace| -> u64 {
                fields.next().and_then(|v| v.parse().ok()).unwrap_or(0) * 1024
            };
            match first {
                "Size:" => {
                    if let Some(m) = mappings.last_mut() {
                        m.1 = kib(&mut fields);
                    }
                }
                "Rss:" => {
                    if let Some(m) = mappings.last_mut() {
                        m.2 = kib(&mut fields);
                    }
                }
                range if range.contains('-') && range.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') => {
                    // range perms offset dev inode [path]
                    let path = fields.nth(4).unwrap_or("");
                    mappings.push((path.starts_with('/'), 0, 0));
                }
                _ => {}
            }
        }
        let mut parts = RssParts::default();
        let mut anon = Vec::new();
        for (file, size, rss) in mappings {
            match (file, size >= POOL_RESERVATION_BYTES) {
                (true, _) => parts.file += rss,
                (false, true) => parts.pool += rss,
                (false, false) => anon.push(rss),
            }
        }
        parts.largest_anon = anon.iter().copied().max().unwrap_or(0);
        parts.other_anon = anon.iter().sum::<u64>() - parts.largest_anon;
        parts
    }
}

/// The lowest port the bench gives a node. Its ports come from below the kernel's ephemeral
/// range (`ip_local_port_range`), from which every outgoing connection takes its local port:
/// a port found free by binding port 0 lies in that range, and a running node's outgoing
/// connection took one before the node it was meant for bound it ("Address already in use"
/// at start, once in an `all` run).
const FIRST_NODE_PORT: u16 = 10_000;
/// The port the next search starts from (advanced past each port handed out, so that no port
/// is given twice before it is bound).
static NEXT_NODE_PORT: AtomicU16 = AtomicU16::new(FIRST_NODE_PORT);

/// The first port of the kernel's ephemeral range (Linux's default when it cannot be read).
fn ephemeral_range_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// A port free on 127.0.0.1 right now, below the ephemeral range.
fn free_port() -> Result<u16> {
    let end = ephemeral_range_start();
    anyhow::ensure!(end > FIRST_NODE_PORT, "the ephemeral port range starts at {end}, below the bench's ports");
    for _ in FIRST_NODE_PORT..end {
        let taken = NEXT_NODE_PORT.fetch_add(1, Ordering::Relaxed);
        let port = FIRST_NODE_PORT + taken.wrapping_sub(FIRST_NODE_PORT) % (end - FIRST_NODE_PORT);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port between {FIRST_NODE_PORT} and {end}")
}

/// Polls `check` until it is true or `timeout` passes.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, check: F) -> Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    wait_every(what, timeout, POLL_INTERVAL, check).await
}

/// [`wait_until`], asking every `interval`.
async fn wait_every<F, Fut>(what: &str, timeout: Duration, interval: Duration, mut check: F) -> Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < timeout {
        if check().await {
            return Ok(start.elapsed());
        }
        tokio::time::sleep(interval).await;
    }
    bail!("timed out after {timeout:?} waiting for {what}")
}

/// The `nacre` binary next to this one (`target/release/nacre`).
fn nacre_binary() -> Result<PathBuf> {
    let me = std::env::current_exe()?;
    let bin = me.with_file_name("nacre");
    if !bin.exists() {
        bail!("{} is missing: run `cargo build --release -p nacre -p nacre-bench` first", bin.display());
    }
    Ok(bin)
}

/// Installs Debian's `package` when `installed` (a file it ships) is missing (needs root).
pub fn ensure_package(package: &str, installed: &str) -> Result<()> {
    if Path::new(installed).exists() {
        return Ok(());
    }
    eprintln!("installing Debian's {package} ...");
    let mut child = Command::new("apt-get")
        .args(["install", "-y", package])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .spawn()
        .context("apt-get")?;
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            if !status.success() || !Path::new(installed).exists() {
                bail!("apt-get install {package} failed ({status})");
            }
            return Ok(());
        }
        if start.elapsed() > INSTALL_TIMEOUT {
            let _ = child.kill();
            bail!("apt-get install {package} took longer than {INSTALL_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One node of any system.
pub struct Node {
    /// `127.0.0.1:port` of the client API.
    pub addr: String,
    /// Nacre: `127.0.0.1:port` of the Nacos 2.x gRPC port.
    pub grpc_addr: Option<String>,
    pub data_dir: PathBuf,
    proc: Option<Proc>,
    cmd: Vec<String>,
    /// Environment variables set for the process (r-nacos is configured by them).
    env: Vec<(String, String)>,
    log: PathBuf,
}

impl Node {
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().and_then(Proc::pid)
    }

    fn start(&mut self) -> Result<()> {
        let mut cmd = Command::new(&self.cmd[0]);
        cmd.args(&self.cmd[1..]);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        self.proc = Some(Proc::spawn(cmd, &self.log)?);
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum System {
    Nacre,
    Etcd,
    ZooKeeper,
    RNacos,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::Nacre => "Nacre",
            System::Etcd => "etcd",
            System::ZooKeeper => "ZooKeeper",
            System::RNacos => "r-nacos",
        }
    }

    /// What counts as a node serving (see [`Cluster::node_ready`]).
    pub fn readiness(self) -> &'static str {
        match self {
            System::Nacre => "readiness 200 (leader, modules bound)",
            System::Etcd => "/health true",
            System::ZooKeeper => "srvr in a quorum",
            System::RNacos => "readiness OK, 3 Raft members and a leader",
        }
    }

    /// Installs what this system needs to run, if missing.
    pub fn ensure_installed(self) -> Result<()> {
        match self {
            System::Nacre => nacre_binary().map(|_| ()),
            System::Etcd => ensure_package(ETCD_PACKAGE, ETCD_BIN),
            System::ZooKeeper => ensure_package(zookeeper::PACKAGE, zookeeper::JAR),
            System::RNacos => rnacos::ensure_installed(),
        }
    }
}

pub struct Cluster {
    pub system: System,
    pub nodes: Vec<Node>,
}

impl Cluster {
    /// Starts a fresh cluster in `dir` (emptied first) and waits until every node serves.
    /// Returns the cluster and the time from spawning to all nodes ready.
    pub async fn start(system: System, dir: &Path) -> Result<(Cluster, Duration)> {
        Self::start_with(system, dir, &mut |_, _| Ok(Vec::new())).await
    }

    /// [`Cluster::start`], with `node_args(i, ports)` giving flags for Nacre node `i` alone
    /// (the heal scenario routes each node's peer links through its own proxies).
    pub async fn start_with(system: System, dir: &Path, node_args: NodeArgs<'_>) -> Result<(Cluster, Duration)> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("clean {}", dir.display()))?;
        }
        std::fs::create_dir_all(dir)?;
        system.ensure_installed()?;
        let ports: Vec<Ports> =
            (0..CLUSTER_SIZE).map(|_| Ok([free_port()?, free_port()?, free_port()?])).collect::<Result<_>>()?;
        let nodes = match system {
            System::Nacre => nacre_nodes(dir, &ports, node_args)?,
            System::Etcd => etcd_nodes(dir, &ports)?,
            System::ZooKeeper => zookeeper_nodes(dir, &ports)?,
            System::RNacos => rnacos_nodes(dir, &ports)?,
        };
        let mut cluster = Cluster { system, nodes };
        let start = Instant::now();
        for i in 0..cluster.nodes.len() {
            cluster.nodes[i].start()?;
            if system == System::RNacos {
                // r-nacos forms a cluster one join at a time (see `rnacos`).
                let what = format!("r-nacos node {i} a voter");
                wait_every(&what, READY_TIMEOUT, rnacos::READY_POLL_INTERVAL, || cluster.rnacos_voter(i, i + 1))
                    .await?;
            }
        }
        cluster.wait_ready().await?;
        let serving = start.elapsed();
        match system {
            System::Nacre => cluster.sign_in_as_admin().await?,
            System::RNacos => cluster.sign_in_grpc(),
            System::Etcd | System::ZooKeeper => {}
        }
        Ok((cluster, serving))
    }

    /// Create the Nacre cluster's first administrator as an operator does (node 0's bootstrap
    /// token, a password of this run's own) and send every later request with its token.
    async fn sign_in_as_admin(&self) -> Result<()> {
        let first = &self.nodes[0];
        let bootstrap_token = std::fs::read_to_string(first.data_dir.join("bootstrap-token"))
            .context("reading node 0's bootstrap token")?;
        let password = format!("bench-{:016x}", rand_u64());
        let form = [("bootstrapToken", bootstrap_token.trim()), ("password", password.as_str())];
        wait_until("the administrator created", READY_TIMEOUT, || async {
            let Ok(mut conn) = http::Conn::connect(&first.addr).await else { return false };
            let req = http::post_form(&first.addr, "/nacos/v1/auth/users/admin", &form);
            matches!(conn.send(req, http::REQUEST_TIMEOUT).await, Ok((200, _)))
        })
        .await?;
        let mut conn = http::Conn::connect(&first.addr).await?;
        let login = [("username", "nacos"), ("password", password.as_str())];
        let body = http::expect_ok(&mut conn, http::post_form(&first.addr, "/nacos/v1/auth/login", &login)).await?;
        let answer: serde_json::Value = serde_json::from_slice(&body)?;
        let token = answer["accessToken"].as_str().context("a login answer without a token")?;
        for node in &self.nodes {
            http::sign_in(&node.addr, token);
            if let Some(grpc_addr) = &node.grpc_addr {
                http::sign_in(grpc_addr, token);
            }
        }
        Ok(())
    }

    /// r-nacos: its readiness check logged in on every node (a token is the node's own), and
    /// every later request carries the token, as with Nacre; gRPC requests too.
    fn sign_in_grpc(&self) {
        for node in &self.nodes {
            if let (Some(grpc_addr), Some(token)) = (&node.grpc_addr, http::token(&node.addr)) {
                http::sign_in(grpc_addr, &token);
            }
        }
    }

    /// r-nacos: node `i` votes in a cluster of `members` with a leader.
    async fn rnacos_voter(&self, i: usize, members: usize) -> bool {
        let node = &self.nodes[i];
        match rnacos::admin_password(&node.env) {
            Some(password) => rnacos::serving(&node.addr, password, members).await,
            None => false,
        }
    }

    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.addr.clone()).collect()
    }

    /// Nacre and r-nacos: every node's Nacos gRPC address.
    pub fn grpc_addrs(&self) -> Vec<String> {
        self.nodes.iter().filter_map(|n| n.grpc_addr.clone()).collect()
    }

    pub async fn node_ready(&self, i: usize) -> bool {
        let addr = &self.nodes[i].addr;
        match self.system {
            System::Nacre => {
                matches!(http::get_once(addr, "/nacos/v1/console/health/readiness").await, Ok((200, body)) if body == "OK")
            }
            System::Etcd => {
                matches!(http::get_once(addr, "/health").await, Ok((200, body)) if body.contains("\"true\""))
            }
            System::ZooKeeper => zookeeper::serving(addr).await,
            System::RNacos => self.rnacos_voter(i, self.nodes.len()).await,
        }
    }

    pub async fn wait_ready(&self) -> Result<Duration> {
        let what = format!("{} cluster ready", self.system.name());
        let interval = if self.system == System::RNacos { rnacos::READY_POLL_INTERVAL } else { POLL_INTERVAL };
        wait_every(&what, READY_TIMEOUT, interval, || async {
            for i in 0..self.nodes.len() {
                if self.nodes[i].proc.is_some() && !self.node_ready(i).await {
                    return false;
                }
            }
            true
        })
        .await
    }

    pub fn kill_node(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    pub fn start_node(&mut self, i: usize) -> Result<()> {
        self.nodes[i].start()
    }

    /// Nacre: `/nacre/v1/state` of node `i`.
    pub async fn nacre_state(&self, i: usize) -> Option<serde_json::Value> {
        let (status, body) = http::get_once(&self.nodes[i].addr, "/nacre/v1/state").await.ok()?;
        (status == 200).then(|| serde_json::from_str(&body).ok()).flatten()
    }

    /// Nacre: the index of the leader node, if one is known.
    pub async fn nacre_leader(&self) -> Option<usize> {
        let state = self.nacre_state(0).await?;
        let leader = state["leader_address"].as_str()?.to_string();
        self.nodes.iter().position(|n| n.addr == leader)
    }

    /// CPU time used so far by every running node together, in µs.
    pub fn cpu_us(&self) -> Result<u64> {
        self.nodes.iter().filter_map(Node::pid).map(cpu_us).sum()
    }

    /// Wait, at most `limit`, until every cluster in `clusters` is quiet at once: each one's
    /// nodes under [`QUIET_CORE_SHARE`] of a core over one `sample`. Work a system still does
    /// in the background after a load (r-nacos worked off the memory scenario's 30k writes
    /// for minutes, and went on after its own write rounds, on 1.2 of the 2 cores) would
    /// otherwise be measured against the next rounds of every system. Returns how long it
    /// waited and the clusters still busy at the limit.
    pub async fn wait_quiet(
        clusters: &[&Cluster],
        sample: Duration,
        limit: Duration,
    ) -> Result<(Duration, Vec<System>)> {
        let started = Instant::now();
        loop {
            let before: Vec<u64> = clusters.iter().map(|c| c.cpu_us()).collect::<Result<_>>()?;
            tokio::time::sleep(sample).await;
            let mut busy = Vec::new();
            for (cluster, before) in clusters.iter().zip(before) {
                let used_us = cluster.cpu_us()?.saturating_sub(before) as f64;
                if used_us >= sample.as_micros() as f64 * QUIET_CORE_SHARE {
                    busy.push(cluster.system);
                }
            }
            if busy.is_empty() || started.elapsed() >= limit {
                return Ok((started.elapsed(), busy));
            }
        }
    }

    /// Resident set sizes of the running nodes, in bytes.
    pub fn rss(&self) -> Result<Vec<u64>> {
        self.nodes.iter().filter_map(Node::pid).map(rss_bytes).collect()
    }

    /// Where each running node's resident memory lies (`RssParts`).
    pub fn rss_parts(&self) -> Result<Vec<RssParts>> {
        self.nodes.iter().filter_map(Node::pid).map(RssParts::of).collect()
    }
}

/// 64 random bits from the OS (a password of the run's own).
fn rand_u64() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::getrandom(&mut bytes).expect("randomness from the OS");
    u64::from_le_bytes(bytes)
}

fn nacre_nodes(dir: &Path, ports: &[Ports], node_args: NodeArgs<'_>) -> Result<Vec<Node>> {
    let bin = nacre_binary()?;
    let conf: String = ports.iter().map(|[api, raft, _]| format!("127.0.0.1:{api}?raft_port={raft}\n")).collect();
    let conf_path = dir.join("cluster.conf");
    std::fs::write(&conf_path, conf)?;
    // A fresh cluster secret, as an operator makes one (the members share it).
    let secret_path = dir.join("cluster.secret");
    let _ = std::fs::remove_file(&secret_path);
    let made = std::process::Command::new(&bin).arg("secret").arg("new").arg(&secret_path).output()?;
    if !made.status.success() {
        bail!("nacre secret new: {}", String::from_utf8_lossy(&made.stderr));
    }
    let mut nodes = Vec::new();
    for (i, [api, raft, grpc]) in ports.iter().enumerate() {
        let data_dir = dir.join(format!("nacre{i}"));
        let mut cmd = vec![bin.display().to_string(), "serve".into()];
        let (api, raft, grpc) = (api.to_string(), raft.to_string(), grpc.to_string());
        for arg in ["--bind", "127.0.0.1", "--port", &api, "--raft-port", &raft, "--grpc-port", &grpc] {
            cmd.push(arg.into());
        }
        cmd.extend(["--data-dir".into(), data_dir.display().to_string()]);
        cmd.extend(["--cluster-conf".into(), conf_path.display().to_string()]);
        cmd.extend(["--cluster-secret-file".into(), secret_path.display().to_string()]);
        // A compile cache of this cluster's own, shared by its three nodes as on one machine: a
        // fresh cluster compiles its modules cold, as on a machine that never ran Nacre (the
        // user's cache would make every run after the first a warm start).
        cmd.extend(["--module-cache".into(), dir.join("module-cache").display().to_string()]);
        cmd.extend(node_args(i, ports)?);
        nodes.push(Node {
            addr: format!("127.0.0.1:{api}"),
            grpc_addr: Some(format!("127.0.0.1:{grpc}")),
            log: dir.join(format!("nacre{i}.log")),
            data_dir,
            proc: None,
            cmd,
            env: Vec::new(),
        });
    }
    Ok(nodes)
}

fn rnacos_nodes(dir: &Path, ports: &[Ports]) -> Result<Vec<Node>> {
    let bin = rnacos::binary()?.display().to_string();
    let envs = rnacos::nodes_env(dir, ports);
    let nodes = ports
        .iter()
        .zip(envs)
        .enumerate()
        .map(|(i, ([api, grpc, _], env))| Node {
            addr: format!("127.0.0.1:{api}"),
            grpc_addr: Some(format!("127.0.0.1:{grpc}")),
            data_dir: dir.join(format!("rnacos{i}")),
            proc: None,
            cmd: vec![bin.clone()],
            env,
            log: dir.join(format!("rnacos{i}.log")),
        })
        .collect();
    Ok(nodes)
}

fn etcd_nodes(dir: &Path, ports: &[Ports]) -> Result<Vec<Node>> {
    let initial: Vec<String> =
        ports.iter().enumerate().map(|(i, [_, peer, _])| format!("e{i}=http://127.0.0.1:{peer}")).collect();
    let initial = initial.join(",");
    let mut nodes = Vec::new();
    for (i, [client, peer, _]) in ports.iter().enumerate() {
        let data_dir = dir.join(format!("etcd{i}"));
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let cmd: Vec<String> = vec![
            ETCD_BIN.into(),
            "--name".into(),
            format!("e{i}"),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--listen-client-urls".into(),
            client_url.clone(),
            "--advertise-client-urls".into(),
            client_url,
            "--listen-peer-urls".into(),
            peer_url.clone(),
            "--initial-advertise-peer-urls".into(),
            peer_url,
            "--initial-cluster".into(),
            initial.clone(),
            "--initial-cluster-state".into(),
            "new".into(),
            "--initial-cluster-token".into(),
            "nacre-bench".into(),
            "--logger".into(),
            "zap".into(),
            "--log-level".into(),
            "warn".into(),
        ];
        nodes.push(Node {
            addr: format!("127.0.0.1:{client}"),
            grpc_addr: None,
            log: dir.join(format!("etcd{i}.log")),
            data_dir,
            proc: None,
            cmd,
            env: Vec::new(),
        });
    }
    Ok(nodes)
}

fn zookeeper_nodes(dir: &Path, ports: &[Ports]) -> Result<Vec<Node>> {
    let mut nodes = Vec::new();
    for (i, [client, ..]) in ports.iter().enumerate() {
        let data_dir = dir.join(format!("zk{i}"));
        nodes.push(Node {
            addr: format!("127.0.0.1:{client}"),
            grpc_addr: None,
            log: dir.join(format!("zk{i}.log")),
            cmd: zookeeper::node_command(&data_dir, ports, i)?,
            data_dir,
            proc: None,
            env: Vec::new(),
        });
    }
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::RssParts;

    #[test]
    fn smaps_is_split_into_files_the_pool_the_largest_anonymous_mapping_and_the_rest() {
        let smaps = "\
55d0c0000000-55d0c1000000 r-xp 00000000 08:01 1234    /usr/bin/nacre
Size:              16384 kB
Rss:               15000 kB
7f0000000000-7f1000000000 rw-p 00000000 00:00 0
Size:           67108864 kB
Rss:                8192 kB
7f2000000000-7f2001900000 rw-p 00000000 00:00 0
Size:              25600 kB
Rss:               25344 kB
7f3000000000-7f3000400000 rw-p 00000000 00:00 0
Size:               4096 kB
Rss:                3000 kB
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0          [stack]
Size:                132 kB
Rss:                  24 kB
";
        let kib = |k: u64| k * 1024;
        assert_eq!(
            RssParts::parse(smaps),
            RssParts { file: kib(15000), pool: kib(8192), largest_anon: kib(25344), other_anon: kib(3024) }
        );
    }
}
