//! Real Nacre nodes for tests: `nacre serve` processes on loopback ports, each with its own
//! data directory in a temp dir, killed (SIGKILL) on drop.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::sync::Mutex;
use std::sync::MutexGuard;
use std::time::Duration;
use std::time::Instant;

use nacre::net::peer_auth::ClusterSecret;

use super::http;
use super::http::Response;
use super::proxy::Failure;
use super::proxy::Links;
use super::proxy::Proxy;

/// Longest a test waits for a cluster to agree on something.
pub const CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);
const POLL_INTERVAL: Duration = Duration::from_millis(100);

pub struct NodeProc {
    pub api_addr: String,
    pub raft_port: u16,
    pub data_dir: PathBuf,
    /// Flags for this node only (its routes through the link proxies).
    args: Vec<String>,
    /// `--join` flags for a node added after the cluster formed (it has no cluster.conf).
    join: Option<Vec<String>>,
    child: Option<Child>,
}

/// One cluster at a time per test binary: on a 2-core machine, several 3-node clusters at
/// once starve each other's election timers and make tests flaky for no reason of Nacre's.
static ONE_CLUSTER_AT_A_TIME: Mutex<()> = Mutex::new(());

pub struct Cluster {
    pub nodes: Vec<NodeProc>,
    conf_path: PathBuf,
    /// The cluster's shared secret, in `secret_path` (`nacre secret new` made it).
    pub secret: ClusterSecret,
    pub secret_path: PathBuf,
    extra_args: Vec<String>,
    /// Environment variables of every node process.
    env: Vec<(String, String)>,
    /// With [`Cluster::start_restored`]: the backup each node restores on its first start.
    restore: Option<PathBuf>,
    /// With [`Cluster::start_with_links`]: a proxy on every directed link `(from, to)`.
    links: Links,
    dir: tempfile::TempDir,
    _turn: MutexGuard<'static, ()>,
}

/// The password test clusters' administrators get (a test's secret, never a default: each
/// cluster makes its own signing key and bootstrap token).
pub const ADMIN_PASSWORD: &str = "test-admin-password";

/// Create the first administrator of the cluster that `addr` belongs to, as an operator does
/// (`nacre user bootstrap`: the node's bootstrap token from `data_dir`), sign in, and return
/// the access token. Waits for a leader: the bootstrap is a log entry.
pub fn bootstrap_admin(addr: &str, data_dir: &std::path::Path, password: &str) -> String {
    let token_file = data_dir.join("bootstrap-token");
    wait_until("the node writes its bootstrap token", || token_file.exists());
    let bootstrap_token = std::fs::read_to_string(&token_file).unwrap();
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let body = http::form(&[("bootstrapToken", bootstrap_token.trim()), ("password", password)]);
    wait_until("the administrator is created", || {
        http::anonymous("POST", addr, "/nacos/v1/auth/users/admin", &[form], body.as_bytes())
            .is_ok_and(|resp| resp.status == 200)
    });
    let login = http::form(&[("username", "nacos"), ("password", password)]);
    let resp = http::anonymous("POST", addr, "/nacos/v1/auth/login", &[form], login.as_bytes()).unwrap();
    assert_eq!(resp.status, 200, "login: {}", resp.text());
    resp.json()["accessToken"].as_str().unwrap().to_string()
}

/// A node's gRPC port above its client port (`nacre serve` default, Nacos's rule).
pub const GRPC_PORT_OFFSET: u16 = 1000;

/// The lowest port handed to test nodes.
const FIRST_TEST_PORT: u16 = 20_000;

/// A free loopback port for a node to bind later (bound and released). Taken below the
/// kernel's ephemeral range (`ip_local_port_range`): a port from that range, once released,
/// can be given to some outgoing connection before the node binds it (seen in CI: a node
/// failed with "Address already in use"). Ports are handed out in turn from a random start,
/// so one test process never hands out one twice.
///
/// A node also binds its port + 1000 (the gRPC port every Nacos 2.x client derives), so a
/// port is handed out only when that one is free too, and that one is never handed out.
pub fn free_port() -> u16 {
    static GRPC_PORTS: std::sync::Mutex<BTreeSet<u16>> = std::sync::Mutex::new(BTreeSet::new());
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768)
        .max(FIRST_TEST_PORT + GRPC_PORT_OFFSET + 1_000);
    // Both a port and its gRPC port stay below the ephemeral range.
    let span = u32::from(ephemeral_low - FIRST_TEST_PORT - GRPC_PORT_OFFSET);
    if NEXT.load(std::sync::atomic::Ordering::Relaxed) == 0 {
        let mut seed = [0u8; 4];
        getrandom::getrandom(&mut seed).expect("randomness from the OS");
        let _ = NEXT.compare_exchange(
            0,
            1 + u32::from_le_bytes(seed) % span,
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
        );
    }
    for _ in 0..span {
        let offset = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % span;
        let port = FIRST_TEST_PORT + offset as u16;
        let grpc_port = port + GRPC_PORT_OFFSET;
        let mut grpc_ports = GRPC_PORTS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if grpc_ports.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() && TcpListener::bind(("127.0.0.1", grpc_port)).is_ok() {
            grpc_ports.insert(grpc_port);
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Cluster {
    pub fn start(size: usize) -> Cluster {
        Self::start_with(size, &[])
    }

    /// Start `size` nodes with extra `nacre serve` flags.
    pub fn start_with(size: usize, extra_args: &[&str]) -> Cluster {
        Self::start_inner(size, extra_args, &[], false)
    }

    /// Start `size` nodes with extra environment variables (e.g. `NACRE_FAILPOINTS=1`).
    pub fn start_with_env(size: usize, env: &[(&str, &str)]) -> Cluster {
        Self::start_inner(size, &[], env, false)
    }

    /// Start `size` nodes whose peer traffic goes through a proxy on every directed link, so
    /// that [`Cluster::isolate`] and [`Cluster::heal`] cut and mend the network for real.
    pub fn start_with_links(size: usize, extra_args: &[&str]) -> Cluster {
        Self::start_inner(size, extra_args, &[], true)
    }

    /// Start `size` nodes of a new cluster, each restoring `backup` (`nacre serve --restore`) on
    /// its first start. Its administrators are the backup's: requests carry `token`, issued by
    /// the cluster the backup was taken from.
    pub fn start_restored(size: usize, backup: &std::path::Path, token: &str) -> Cluster {
        Self::start_full(size, &[], &[], false, Some((backup.to_path_buf(), token.to_string())), "127.0.0.1")
    }

    /// Start `size` nodes known by a host name (`localhost`) rather than an address: cluster.conf
    /// lists names, each node advertises its name, and peers resolve it when they connect, as
    /// in a Kubernetes StatefulSet behind a headless service.
    pub fn start_named(size: usize) -> Cluster {
        Self::start_full(size, &[], &[], false, None, "localhost")
    }

    fn start_inner(size: usize, extra_args: &[&str], env: &[(&str, &str)], with_links: bool) -> Cluster {
        Self::start_full(size, extra_args, env, with_links, None, "127.0.0.1")
    }

    fn start_full(
        size: usize,
        extra_args: &[&str],
        env: &[(&str, &str)],
        with_links: bool,
        restore: Option<(PathBuf, String)>,
        host: &str,
    ) -> Cluster {
        // A test that panicked while holding the lock leaves it poisoned; the next can go on.
        let turn = ONE_CLUSTER_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<(u16, u16)> = (0..size).map(|_| (free_port(), free_port())).collect();
        let conf: String = ports.iter().map(|(api, raft)| format!("{host}:{api}?raft_port={raft}\n")).collect();
        let conf_path = dir.path().join("cluster.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let secret_path = dir.path().join("cluster.secret");
        let made =
            Command::new(env!("CARGO_BIN_EXE_nacre")).arg("secret").arg("new").arg(&secret_path).output().unwrap();
        assert!(made.status.success(), "nacre secret new: {}", String::from_utf8_lossy(&made.stderr));
        let secret = ClusterSecret::load(&secret_path).unwrap();
        let mut nodes: Vec<NodeProc> = ports
            .iter()
            .enumerate()
            .map(|(i, (api, raft))| NodeProc {
                api_addr: format!("{host}:{api}"),
                raft_port: *raft,
                data_dir: dir.path().join(format!("node{i}")),
                args: Vec::new(),
                join: None,
                child: None,
            })
            .collect();
        let mut links = Links::default();
        if with_links {
            for (from, node) in nodes.iter_mut().enumerate() {
                for (to, (_, raft_port)) in ports.iter().enumerate().filter(|(to, _)| *to != from) {
                    let peer = format!("127.0.0.1:{raft_port}");
                    let proxy = Proxy::start(&peer);
                    node.args.extend(["--peer-via".to_string(), format!("{peer}={}", proxy.addr)]);
                    links.0.push(((from, to), proxy));
                }
            }
        }
        let mut extra_args: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
        if host != "127.0.0.1" {
            extra_args.extend(["--advertise".to_string(), host.to_string()]);
        }
        let mut cluster = Cluster {
            nodes,
            conf_path,
            secret,
            secret_path,
            extra_args,
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            restore: restore.as_ref().map(|(backup, _)| backup.clone()),
            links,
            dir,
            _turn: turn,
        };
        for i in 0..size {
            cluster.start_node(i);
        }
        if let Some((_, token)) = &restore {
            for node in &cluster.nodes {
                http::remember_token(&node.api_addr, token);
            }
        } else if !cluster.extra_args.windows(2).any(|pair| pair == ["--auth", "off"]) {
            let token = bootstrap_admin(cluster.addr(0), &cluster.nodes[0].data_dir, ADMIN_PASSWORD);
            for node in &cluster.nodes {
                http::remember_token(&node.api_addr, &token);
            }
        }
        cluster.wait_ready();
        cluster
    }

    /// The administrator's access token (every request of the harness carries it).
    pub fn token(&self) -> String {
        http::token_for(self.addr(0)).expect("the cluster has an administrator")
    }

    /// Start a new node that asks node `seed` to add it (`nacre serve --join`), as a voter or,
    /// with `learner`, a non-voting replica; its index. It is not in cluster.conf: the log's
    /// membership is its only record, as after a restart.
    pub fn join_node(&mut self, seed: usize, learner: bool) -> usize {
        let i = self.nodes.len();
        let mut join =
            vec!["--join".to_string(), format!("{}?raft_port={}", self.addr(seed), self.nodes[seed].raft_port)];
        if learner {
            join.push("--learner".to_string());
        }
        let port = free_port();
        let host = self.addr(0).rsplit_once(':').expect("host:port").0.to_string();
        self.nodes.push(NodeProc {
            api_addr: format!("{host}:{port}"),
            raft_port: free_port(),
            data_dir: self.dir.path().join(format!("node{i}")),
            args: Vec::new(),
            join: Some(join),
            child: None,
        });
        if let Some(token) = http::token_for(self.addr(0)) {
            http::remember_token(&self.nodes[i].api_addr, &token);
        }
        self.start_node(i);
        i
    }

    pub fn start_node(&mut self, i: usize) {
        let (secret, data_dir) = (self.secret_path.clone(), self.nodes[i].data_dir.clone());
        self.spawn_node(i, &secret, &data_dir);
    }

    /// Start a stray process on node `i`'s addresses (node `i` stopped): the same cluster.conf,
    /// an empty data dir of its own and another cluster's secret. [`Cluster::kill_node`] stops it.
    pub fn start_stranger(&mut self, i: usize) {
        let secret = self.dir.path().join("stranger.secret");
        if !secret.exists() {
            ClusterSecret::write_new(&secret).unwrap();
        }
        let data_dir = self.nodes[i].data_dir.with_extension("stranger");
        self.spawn_node(i, &secret, &data_dir);
    }

    fn spawn_node(&mut self, i: usize, secret: &std::path::Path, data_dir: &std::path::Path) {
        let node = &mut self.nodes[i];
        assert!(node.child.is_none(), "node {i} is already running");
        let port = node.api_addr.rsplit(':').next().unwrap().to_string();
        // Appended, not truncated: a restarted node's log follows its earlier runs.
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(node.data_dir.with_extension("log")).unwrap();
        let mut membership = match &node.join {
            Some(join) => join.clone(),
            None => vec!["--cluster-conf".to_string(), self.conf_path.display().to_string()],
        };
        if let Some(backup) = self.restore.as_ref().filter(|_| !data_dir.exists()) {
            membership.extend(["--restore".to_string(), backup.display().to_string()]);
        }
        let child = Command::new(env!("CARGO_BIN_EXE_nacre"))
            .args(["serve", "--bind", "127.0.0.1", "--port", &port])
            .args(["--raft-port", &node.raft_port.to_string()])
            .arg("--data-dir")
            .arg(data_dir)
            .args(&membership)
            .arg("--cluster-secret-file")
            .arg(secret)
            .args(&self.extra_args)
            .args(&node.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the nacre binary starts");
        node.child = Some(child);
    }

    /// SIGKILL: no shutdown path runs, as in a crash.
    pub fn kill_node(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, as a service manager stops a node, and wait (bounded) for it to exit; its exit
    /// status and how long it took. Panics (after a SIGKILL) if it does not exit in time.
    pub fn terminate_node(&mut self, i: usize) -> (std::process::ExitStatus, Duration) {
        const EXIT_TIMEOUT: Duration = Duration::from_secs(30);
        self.signal(i, libc::SIGTERM);
        let started = Instant::now();
        let mut child = self.nodes[i].child.take().expect("a running node");
        while started.elapsed() < EXIT_TIMEOUT {
            if let Some(status) = child.try_wait().expect("the child can be waited for") {
                return (status, started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("node {i} did not exit within {EXIT_TIMEOUT:?} of SIGTERM");
    }

    /// SIGSTOP: the process keeps its sockets and answers nothing, as a long GC pause or a
    /// stalled VM would. [`Cluster::resume_node`] sends SIGCONT.
    pub fn pause_node(&self, i: usize) {
        self.signal(i, libc::SIGSTOP);
    }

    pub fn resume_node(&self, i: usize) {
        self.signal(i, libc::SIGCONT);
    }

    fn signal(&self, i: usize, signal: libc::c_int) {
        let child = self.nodes[i].child.as_ref().unwrap_or_else(|| panic!("node {i} is not running"));
        let pid = libc::pid_t::try_from(child.id()).expect("a pid fits pid_t");
        // SAFETY: `kill` has no memory effects; the pid is our own child, not yet reaped.
        let sent = unsafe { libc::kill(pid, signal) };
        assert_eq!(sent, 0, "signal {signal} to node {i}: {}", std::io::Error::last_os_error());
    }

    /// Cut every link between node `i` and the others, both ways.
    pub fn isolate(&self, i: usize) {
        self.isolate_as(i, Failure::Reset);
    }

    /// Fail every link between node `i` and the others, both ways, in the given way.
    pub fn isolate_as(&self, i: usize, failure: Failure) {
        assert!(!self.links.0.is_empty(), "start the cluster with Cluster::start_with_links");
        self.links.isolate_as(i, failure);
    }

    /// Fail the directed link `from → to` only (`to` still reaches `from`).
    pub fn fail_link(&self, from: usize, to: usize, failure: Failure) {
        assert!(!self.links.0.is_empty(), "start the cluster with Cluster::start_with_links");
        self.links.fail_link(from, to, failure);
    }

    /// Mend every link.
    pub fn heal(&self) {
        self.links.heal();
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    pub fn addr(&self, i: usize) -> &str {
        &self.nodes[i].api_addr
    }

    pub fn running(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|i| self.is_running(*i)).collect()
    }

    pub fn state(&self, i: usize) -> Option<serde_json::Value> {
        let resp = http::request("GET", self.addr(i), "/nacre/v1/state", None, b"").ok()?;
        (resp.status == 200).then(|| resp.json())
    }

    /// Wait until every running node is ready (leader known, built-in modules bound).
    pub fn wait_ready(&self) {
        wait_until("every running node ready", || {
            self.running().iter().all(|i| self.state(*i).is_some_and(|s| s["ready"] == true))
        });
    }

    pub fn leader(&self) -> Option<usize> {
        let leader_addr = self.running().iter().find_map(|i| {
            let s = self.state(*i)?;
            s["leader_address"].as_str().map(str::to_string)
        })?;
        self.running().into_iter().find(|i| self.addr(*i) == leader_addr)
    }

    pub fn wait_leader(&self) -> usize {
        let mut found = None;
        wait_until("a leader among running nodes", || {
            found = self.leader();
            found.is_some()
        });
        found.unwrap()
    }

    pub fn follower(&self) -> usize {
        let leader = self.wait_leader();
        self.running().into_iter().find(|i| *i != leader).expect("a running follower")
    }

    /// Wait until every running node has applied the same index with the same digest, and
    /// return that digest.
    pub fn wait_converged(&self) -> String {
        let mut digest = String::new();
        wait_until("running nodes converge to one applied index and digest", || {
            let states: Vec<_> = self.running().iter().filter_map(|i| self.state(*i)).collect();
            if states.len() != self.running().len() {
                return false;
            }
            let first = &states[0];
            let same =
                states.iter().all(|s| s["applied_index"] == first["applied_index"] && s["digest"] == first["digest"]);
            if same {
                digest = first["digest"].as_str().unwrap().to_string();
            }
            same
        });
        digest
    }

    pub fn get(&self, i: usize, path: &str) -> std::io::Result<Response> {
        http::request("GET", self.addr(i), path, None, b"")
    }

    /// A request with its parameters in the query string and no body, as the Nacos naming
    /// clients send them.
    pub fn call(&self, i: usize, method: &str, path_and_query: &str) -> std::io::Result<Response> {
        http::request(method, self.addr(i), path_and_query, None, b"")
    }

    pub fn post_form(&self, i: usize, path: &str, pairs: &[(&str, &str)]) -> std::io::Result<Response> {
        http::request(
            "POST",
            self.addr(i),
            path,
            Some("application/x-www-form-urlencoded"),
            http::form(pairs).as_bytes(),
        )
    }

    pub fn node_log(&self, i: usize) -> String {
        std::fs::read_to_string(self.nodes[i].data_dir.with_extension("log")).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill_node(i);
        }
        // A failed test keeps its nodes' logs and data to read (or any test, when asked).
        if std::thread::panicking() || std::env::var_os("NACRE_KEEP_TEST_DIRS").is_some() {
            self.dir.disable_cleanup(true);
            eprintln!("kept the cluster's logs and data in {}", self.dir.path().display());
        }
    }
}

/// Poll `cond` until it holds, failing the test after [`CONVERGE_TIMEOUT`].
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    panic!("timed out after {CONVERGE_TIMEOUT:?} waiting for: {what}");
}
