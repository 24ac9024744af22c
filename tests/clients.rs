//! Real-client compatibility tests: the unmodified PyPI `nacos-sdk-python` 2.0.11 (its HTTP
//! `nacos.NacosClient`) and npm `nacos` 2.6.3 run scenario scripts (`tests/clients/py`,
//! `tests/clients/js`) against a real 3-node cluster.
//!
//! The clients are installed by `tests/clients/setup.sh` (a venv and `npm ci`, under ignored
//! dirs in `tests/clients`), which each test runs first: a no-op when its stamp matches, a
//! minute or so from scratch, serialized by a file lock when test processes race.
//!
//! Every script runs twice at once against the same cluster, without a namespace and with one,
//! and gets the nodes ordered follower, leader, follower: it writes through the first ("node
//! A") and watches through the last ("node C"), so every cross-node check goes follower to
//! follower. A script is killed (its whole process group) when it overruns; on failure the test
//! prints its output and the tail of every node's log.

mod support;

use std::fmt::Write as _;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::path::PathBuf;
use std::process::Child;
use std::process::Command;
use std::process::ExitStatus;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use anyhow::Context;
use anyhow::Result;
use anyhow::bail;
use support::cluster::Cluster;

/// Longest the install may take: a cold `pip install` of nacos-sdk-python pulls gRPC and
/// friends (about 75 s), and another test process may be installing before us.
const SETUP_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Longest one scenario script may run; the longest (node naming, which waits out the 15 s
/// unhealthy threshold) needs about 25 s on an idle machine.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);
const CHILD_POLL: Duration = Duration::from_millis(50);
/// The namespace of the second run of every script.
const NAMESPACE: &str = "nacre-client-test";
/// Node log lines shown with a failure.
const LOG_TAIL_LINES: usize = 40;

#[derive(Clone, Copy)]
enum Client {
    Python,
    Node,
    /// The Nacos 2.x gRPC clients: PyPI nacos-sdk-python 3.2.0 (its `v2` package) and
    /// nacos-sdk-rust-binding-py 0.8.0 (nacos-sdk-rust), in a venv of their own.
    Grpc,
}

impl Client {
    fn setup_part(self) -> &'static str {
        match self {
            Client::Python => "python",
            Client::Node => "node",
            Client::Grpc => "grpc",
        }
    }

    fn command(self, script: &Path) -> Command {
        let mut cmd = match self {
            Client::Python | Client::Grpc => {
                let venv = if matches!(self, Client::Grpc) { ".venv-grpc" } else { ".venv" };
                let mut cmd = Command::new(clients_dir().join(venv).join("bin/python"));
                // Unbuffered, so a killed script still shows how far it got; no __pycache__ in
                // the source tree.
                cmd.env("PYTHONUNBUFFERED", "1").env("PYTHONDONTWRITEBYTECODE", "1");
                cmd
            }
            Client::Node => Command::new("node"),
        };
        cmd.arg(script);
        cmd
    }

    fn script_dir(self) -> &'static str {
        match self {
            Client::Python => "py",
            Client::Node => "js",
            Client::Grpc => "grpc",
        }
    }
}

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients")
}

/// Run `setup.sh` for `client` once per test process; later calls return the first outcome.
fn setup(client: Client) -> Result<()> {
    // One slot per client, held while installing so that the other tests of that client wait
    // for it (and Node tests need not wait for pip).
    static PYTHON: Mutex<Option<Result<(), String>>> = Mutex::new(None);
    static NODE: Mutex<Option<Result<(), String>>> = Mutex::new(None);
    static GRPC: Mutex<Option<Result<(), String>>> = Mutex::new(None);
    let slot = match client {
        Client::Python => &PYTHON,
        Client::Node => &NODE,
        Client::Grpc => &GRPC,
    };
    let mut done = slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let outcome = done.get_or_insert_with(|| run_setup(client).map_err(|e| format!("{e:#}")));
    outcome.clone().map_err(anyhow::Error::msg)
}

fn run_setup(client: Client) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out_path = dir.path().join("setup.out");
    let out = std::fs::File::create(&out_path)?;
    let mut cmd = Command::new("bash");
    cmd.arg(clients_dir().join("setup.sh")).arg(client.setup_part());
    cmd.stdin(Stdio::null()).stdout(out.try_clone()?).stderr(out).process_group(0);
    let started = Instant::now();
    let child = cmd.spawn().context("running tests/clients/setup.sh (is bash installed?)")?;
    let status = wait_or_kill(child, SETUP_TIMEOUT)?;
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    match status {
        Some(s) if s.success() => {
            eprintln!("tests/clients/setup.sh {} took {:.1?}", client.setup_part(), started.elapsed());
            Ok(())
        }
        Some(s) => bail!("tests/clients/setup.sh {} failed ({s}):\n{output}", client.setup_part()),
        None => bail!("tests/clients/setup.sh {} killed after {SETUP_TIMEOUT:?}:\n{output}", client.setup_part()),
    }
}

/// Wait for `child` (started as its own process group) until `timeout`; then SIGKILL the whole
/// group. Returns `None` when it had to be killed. Whatever the child left running in its group
/// (the Python client's multiprocessing manager, say) is killed either way.
fn wait_or_kill(mut child: Child, timeout: Duration) -> Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(CHILD_POLL);
    };
    // The group id is the child's pid (process_group(0)); std has no killpg, `kill` does it.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if status.is_none() {
        let _ = child.wait();
    }
    Ok(status)
}

/// One run of a scenario script, in a temp dir of its own (the clients write snapshots, caches
/// and logs under their working directory).
struct ScriptRun {
    label: String,
    child: Child,
    dir: tempfile::TempDir,
    started: Instant,
}

impl ScriptRun {
    fn spawn(client: Client, script: &str, servers: &str, namespace: &str) -> Result<ScriptRun> {
        Self::spawn_with(client, script, &[servers, namespace])
    }

    fn spawn_with(client: Client, script: &str, args: &[&str]) -> Result<ScriptRun> {
        let namespace = args.get(1).copied().unwrap_or_default();
        let path = clients_dir().join(client.script_dir()).join(script);
        let dir = tempfile::tempdir()?;
        let mut cmd = client.command(&path);
        cmd.args(args).current_dir(dir.path());
        cmd.env("NACRE_USERNAME", "nacos").env("NACRE_PASSWORD", support::cluster::ADMIN_PASSWORD);
        cmd.stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("stdout"))?)
            .stderr(std::fs::File::create(dir.path().join("stderr"))?)
            .process_group(0);
        let child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
        let label = format!("{}/{script} (namespace {namespace:?})", client.script_dir());
        Ok(ScriptRun { label, child, dir, started: Instant::now() })
    }

    /// What the script printed so far.
    fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout")).unwrap_or_default()
    }

    /// Wait (at most `timeout`) until the script prints a line starting with `prefix`; that line.
    fn wait_for_line(&self, prefix: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.stdout().lines().find(|line| line.trim_start().starts_with(prefix)) {
                return Ok(line.to_string());
            }
            if Instant::now() >= deadline {
                let stderr = std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default();
                bail!(
                    "{} printed no {prefix:?} in {timeout:?}\n--- stdout ---\n{}--- stderr ---\n{stderr}",
                    self.label,
                    self.stdout()
                );
            }
            std::thread::sleep(CHILD_POLL);
        }
    }

    /// SIGKILL the script's whole process group, as a crash would end it.
    fn kill(self) {
        let _ = wait_or_kill(self.child, Duration::ZERO);
    }

    /// Wait for the script; `Err` with its output when it failed or overran.
    fn finish(self, deadline: Instant) -> Result<String> {
        let status = wait_or_kill(self.child, deadline.saturating_duration_since(Instant::now()))?;
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        let (stdout, stderr) = (read("stdout"), read("stderr"));
        let elapsed = self.started.elapsed();
        // A script says PASS as its last word: exiting 0 without it (a library calling exit
        // early, say) is not a pass.
        let passed = stdout.lines().last().is_some_and(|line| line.ends_with("PASS"));
        let verdict = match status {
            Some(s) if s.success() && passed => return Ok(format!("{} passed in {elapsed:.1?}", self.label)),
            Some(s) if s.success() => format!("{} exited 0 without saying PASS after {elapsed:.1?}", self.label),
            Some(s) => format!("{} failed ({s}) after {elapsed:.1?}", self.label),
            None => format!("{} killed: still running after {elapsed:.1?}", self.label),
        };
        bail!("{verdict}\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}")
    }
}

fn node_log_tails(cluster: &Cluster) -> String {
    let mut out = String::new();
    for i in 0..cluster.nodes.len() {
        let log = cluster.node_log(i);
        let lines: Vec<&str> = log.lines().collect();
        let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
        let _ = writeln!(out, "--- node {i} ({}) log, last {} lines ---", cluster.addr(i), tail.len());
        for line in tail {
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

/// Install `client`, start a 3-node cluster, run `script` without a namespace and with one (at
/// the same time), and fail with everything needed to see why if either run fails.
fn scenario(client: Client, script: &str) -> Result<()> {
    scenario_then(client, script, |_| Ok(()))
}

/// [`scenario`], then `check` on the cluster the scripts ran against.
fn scenario_then(client: Client, script: &str, check: impl FnOnce(&Cluster) -> Result<()>) -> Result<()> {
    setup(client)?;
    let cluster = Cluster::start(3);
    let leader = cluster.wait_leader();
    let followers: Vec<usize> = (0..cluster.nodes.len()).filter(|i| *i != leader).collect();
    let order = [followers[0], leader, followers[1]];
    let servers = order.map(|i| cluster.addr(i)).join(",");

    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let runs =
        ["", NAMESPACE].iter().map(|ns| ScriptRun::spawn(client, script, &servers, ns)).collect::<Result<Vec<_>>>()?;
    let mut failures = Vec::new();
    for run in runs {
        match run.finish(deadline) {
            Ok(summary) => eprintln!("{summary}"),
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    if !failures.is_empty() {
        bail!(
            "{}\nnodes: {servers} (node A = first, leader = second, node C = last)\n{}",
            failures.join("\n"),
            node_log_tails(&cluster)
        );
    }
    check(&cluster)
}

/// The test body: `scenario` with its error shown in full (a returned `Err` would be printed
/// with its Debug form and backtrace, burying the scripts' output).
fn run(client: Client, script: &str) {
    if let Err(e) = scenario(client, script) {
        panic!("{e:#}");
    }
}

#[test]
fn python_config_basic() {
    run(Client::Python, "config_basic.py");
}

#[test]
fn python_config_search() {
    run(Client::Python, "config_search.py");
}

#[test]
fn python_config_watch() {
    run(Client::Python, "config_watch.py");
}

#[test]
fn python_naming() {
    run(Client::Python, "naming.py");
}

#[test]
fn node_config_basic() {
    run(Client::Node, "config_basic.js");
}

#[test]
fn node_config_subscribe() {
    run(Client::Node, "config_subscribe.js");
}

#[test]
fn node_naming() {
    run(Client::Node, "naming.js");
}

#[test]
fn node_naming_push() {
    run(Client::Node, "naming_push.js");
}

#[test]
fn grpc_python_naming() {
    // The subscriptions' pushes are acked, and counted in every node's metrics.
    let pushes_acked = |cluster: &Cluster| -> Result<()> {
        let series = r#"nacre_grpc_pushes_total{kind="naming",acked="true"} "#;
        let acked: f64 = (0..cluster.nodes.len())
            .filter_map(|i| cluster.get(i, "/metrics").ok())
            .filter_map(|resp| resp.text().lines().find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok()))
            .sum();
        anyhow::ensure!(acked >= 1.0, "no acked naming push counted in /metrics");
        Ok(())
    };
    if let Err(e) = scenario_then(Client::Grpc, "naming.py", pushes_acked) {
        panic!("{e:#}");
    }
}

#[test]
fn grpc_python_config() {
    run(Client::Grpc, "config.py");
}

#[test]
fn grpc_rust_naming() {
    run(Client::Grpc, "rust_naming.py");
}

#[test]
fn grpc_rust_config() {
    run(Client::Grpc, "rust_config.py");
}

/// Instances `owner.py` registers, and how long an ended connection's instances may stay
/// listed on any node (deregistered at once by the connection's node, on the AP path).
const OWNED_INSTANCES: usize = 3;
const ENDED_CONNECTION_BOUND: Duration = Duration::from_secs(10);
/// How long a dead node's instances stay before the others expire them: no beats for the
/// delete timeout (30 s) and a sweep.
const DEAD_OWNER_EXPIRY: Duration = Duration::from_secs(36);
const REGISTER_TIMEOUT: Duration = Duration::from_secs(60);

/// (listed, healthy) instances of `service` on node `i`.
fn listed(cluster: &Cluster, i: usize, service: &str) -> Option<(usize, usize)> {
    let resp = cluster.get(i, &format!("/nacos/v1/ns/instance/list?serviceName={service}")).ok()?;
    let hosts = resp.json()["hosts"].as_array()?.clone();
    Some((hosts.len(), hosts.iter().filter(|h| h["healthy"] == true).count()))
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) -> Result<Duration> {
    let started = Instant::now();
    while !cond() {
        if started.elapsed() >= timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(started.elapsed())
}

/// A gRPC client is killed: the end of its connection removes its instances from every node.
#[test]
fn grpc_a_killed_clients_instances_go_from_every_node() {
    let outcome = (|| -> Result<()> {
        setup(Client::Grpc)?;
        let cluster = Cluster::start(3);
        cluster.wait_leader();
        let service = format!("owned-{}", std::process::id());
        let owner = ScriptRun::spawn_with(Client::Grpc, "owner.py", &[cluster.addr(0), "", &service])?;
        owner.wait_for_line("REGISTERED", REGISTER_TIMEOUT)?;
        for i in 0..3 {
            wait_for(&format!("node {i} to list the instances"), ENDED_CONNECTION_BOUND, || {
                listed(&cluster, i, &service) == Some((OWNED_INSTANCES, OWNED_INSTANCES))
            })
            .with_context(|| node_log_tails(&cluster))?;
        }
        owner.kill();
        for i in 0..3 {
            let took = wait_for(&format!("node {i} to drop the instances"), ENDED_CONNECTION_BOUND, || {
                listed(&cluster, i, &service) == Some((0, 0))
            })
            .with_context(|| node_log_tails(&cluster))?;
            eprintln!("node {i} dropped the killed client's instances within {took:.1?}");
        }
        Ok(())
    })();
    if let Err(e) = outcome {
        panic!("{e:#}");
    }
}

/// The node a gRPC client is connected to dies: the client reconnects to another, registers
/// again, and its instances outlive the dead node's expiry on the survivors.
#[test]
fn grpc_a_client_whose_node_dies_moves_and_keeps_its_instances() {
    let outcome = (|| -> Result<()> {
        setup(Client::Grpc)?;
        let mut cluster = Cluster::start(3);
        cluster.wait_leader();
        let servers = (0..3).map(|i| cluster.addr(i).to_string()).collect::<Vec<_>>().join(",");
        let service = format!("moving-{}", std::process::id());
        let owner = ScriptRun::spawn_with(Client::Grpc, "owner.py", &[&servers, "", &service])?;
        owner.wait_for_line("REGISTERED", REGISTER_TIMEOUT)?;
        let line = owner.stdout().lines().find(|l| l.contains("connected to")).map(str::to_string);
        let addr = line.as_deref().and_then(|l| l.rsplit(' ').next()).context("owner.py named no node")?;
        let victim = (0..3).find(|i| cluster.addr(*i) == addr).with_context(|| format!("no node at {addr}"))?;
        for i in 0..3 {
            wait_for(&format!("node {i} to list the instances"), ENDED_CONNECTION_BOUND, || {
                listed(&cluster, i, &service) == Some((OWNED_INSTANCES, OWNED_INSTANCES))
            })?;
        }
        cluster.kill_node(victim);
        let killed = Instant::now();
        let survivors: Vec<usize> = (0..3).filter(|i| *i != victim).collect();
        // Past the dead node's expiry, every survivor lists them healthy: re-registered by the
        // client through its new connection, which now renews them.
        let bound = DEAD_OWNER_EXPIRY + REGISTER_TIMEOUT;
        wait_for("the instances to outlive the dead node's expiry, healthy on every survivor", bound, || {
            killed.elapsed() >= DEAD_OWNER_EXPIRY
                && survivors.iter().all(|i| listed(&cluster, *i, &service) == Some((OWNED_INSTANCES, OWNED_INSTANCES)))
        })
        .with_context(|| format!("{}\n{}", owner.stdout(), node_log_tails(&cluster)))?;
        owner.kill();
        Ok(())
    })();
    if let Err(e) = outcome {
        panic!("{e:#}");
    }
}
