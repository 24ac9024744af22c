//! ZooKeeper as a peer: a 3-node ensemble of Debian's `zookeeper` (3.8) on 127.0.0.1, each
//! node `QuorumPeerMain` on the Debian classpath with its own `zoo.cfg`, `myid` and data
//! directory; and the client side, `zookeeper-client` (ZooKeeper's own binary protocol, one
//! session per benchmark client).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use anyhow::Result;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use zookeeper_client as zk;

use crate::cluster::Ports;

pub const PACKAGE: &str = "zookeeper";
/// The server jar the package installs; its manifest names its dependencies, so it is the
/// whole classpath.
pub const JAR: &str = "/usr/share/java/zookeeper.jar";
/// The plain slf4j binding (from `libslf4j-java`, which the package depends on): without one,
/// ZooKeeper logs nothing at all.
const LOG_BINDING: &str = "/usr/share/java/slf4j-simple.jar";
/// Warnings and errors only, to stderr (the node's log file), as etcd runs at `warn`.
const LOG_LEVEL: &str = "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn";
const JAVA: &str = "/usr/bin/java";
const MAIN_CLASS: &str = "org.apache.zookeeper.server.quorum.QuorumPeerMain";
/// Heap per node: upstream `zkEnv.sh`'s default (`ZK_SERVER_HEAP=1000`); Debian's sets none,
/// which on this machine would let each JVM grow to a quarter of the memory.
const HEAP: &str = "-Xmx1000m";
/// Session timeout asked by each client (the server bounds it to 2-20 ticks).
const SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a four-letter-word answer.
const FOUR_LETTER_TIMEOUT: Duration = Duration::from_secs(2);

/// The configuration of node `myid` (1-based) of an ensemble on `ports`. Durability is
/// ZooKeeper's default (`forceSync=yes`: the transaction log is fsynced before a write is
/// acknowledged), as Nacre and etcd fsync theirs.
fn zoo_cfg(data_dir: &Path, ports: &[Ports], myid: usize) -> String {
    let mut cfg = format!(
        "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPortAddress=127.0.0.1\nclientPort={}\n",
        data_dir.display(),
        ports[myid - 1][0]
    );
    // Every benchmark client connects from 127.0.0.1: up to 256 sessions over three nodes,
    // above the default cap of 60 per address.
    cfg.push_str("maxClientCnxns=0\n");
    // No admin HTTP server (it would want a fixed port); `srvr` for the readiness probe.
    cfg.push_str("admin.enableServer=false\n4lw.commands.whitelist=srvr,ruok\n");
    // Snapshots are ZooKeeper's business; no purge task during a run.
    cfg.push_str("autopurge.purgeInterval=0\n");
    // The second and third ports: quorum (follower ↔ leader) and leader election.
    for (i, [_, quorum, election]) in ports.iter().enumerate() {
        cfg.push_str(&format!("server.{}=127.0.0.1:{quorum}:{election}\n", i + 1));
    }
    cfg
}

/// Writes node `i`'s `zoo.cfg` and `myid` under `data_dir` and returns its command line.
pub fn node_command(data_dir: &Path, ports: &[Ports], i: usize) -> Result<Vec<String>> {
    std::fs::create_dir_all(data_dir).with_context(|| format!("create {}", data_dir.display()))?;
    let myid = i + 1;
    std::fs::write(data_dir.join("myid"), format!("{myid}\n"))?;
    let cfg = data_dir.join("zoo.cfg");
    std::fs::write(&cfg, zoo_cfg(data_dir, ports, myid))?;
    let classpath = format!("{JAR}:{LOG_BINDING}");
    Ok([JAVA, HEAP, LOG_LEVEL, "-cp", &classpath, MAIN_CLASS]
        .iter()
        .map(|s| s.to_string())
        .chain([cfg.display().to_string()])
        .collect())
}

/// Sends a four-letter word and reads the whole answer.
async fn four_letter(addr: &str, word: &str) -> Result<String> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(word.as_bytes()).await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        anyhow::Ok(answer)
    };
    tokio::time::timeout(FOUR_LETTER_TIMEOUT, exchange).await.context("four-letter word timed out")?
}

/// A node serves once it is in a quorum: `srvr` names its mode (leader or follower) instead
/// of "not currently serving requests".
pub async fn serving(addr: &str) -> bool {
    four_letter(addr, "srvr").await.is_ok_and(|a| a.contains("Mode: leader") || a.contains("Mode: follower"))
}

/// A new session with the node at `addr` only (as each HTTP client keeps to one node).
pub async fn connect(addr: &str) -> Result<zk::Client> {
    zk::Client::connector()
        .with_session_timeout(SESSION_TIMEOUT)
        .connect(addr)
        .await
        .with_context(|| format!("ZooKeeper session with {addr}"))
}

/// Options of a plain persistent or ephemeral znode, open to anyone.
pub fn create_options(mode: zk::CreateMode) -> zk::CreateOptions<'static> {
    mode.with_acls(zk::Acls::anyone_all())
}

/// Creates `path` with `data`, and any missing parent; an existing node is overwritten.
pub async fn put(client: &zk::Client, path: &str, data: &[u8]) -> Result<()> {
    let persistent = create_options(zk::CreateMode::Persistent);
    if let Some((parent, _)) = path.rsplit_once('/').filter(|(p, _)| !p.is_empty()) {
        client.mkdir(parent, &persistent).await.with_context(|| format!("mkdir {parent}"))?;
    }
    match client.create(path, data, &persistent).await {
        Ok(_) => Ok(()),
        Err(zk::Error::NodeExists) => client.set_data(path, data, None).await.map(|_| ()).map_err(Into::into),
        Err(e) => Err(e).with_context(|| format!("create {path}")),
    }
}
