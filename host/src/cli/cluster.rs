//! `nacre cluster`: the members and membership changes, against any node (which has the
//! leader make them through the log).

use std::time::Duration;

use clap::Subcommand;
use serde_json::Value;

use super::Server;
use super::call;
use super::call_waiting;
use super::form;
use super::url;
use crate::net::HttpMethod;

/// How long a change may take: a new member catching up, leadership handed over first. The
/// node bounds each step (`raft::reconfigure`); this waits a little longer than all of them.
const CHANGE_TIMEOUT: Duration = Duration::from_millis(crate::raft::reconfigure::CHANGE_TIMEOUT_MS + 10_000);

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Every member: address, voter or learner, role and term as it reports them, applied index.
    Members {
        #[command(flatten)]
        server: Server,
    },
    /// Add a running node (started with `nacre serve --join`) as a learner, then, unless
    /// --learner, make it a voter once it has caught up.
    Add {
        #[command(flatten)]
        server: Server,
        /// The node's client address, host:port.
        address: String,
        /// Its Raft peer port, when not the client port - 1000.
        #[arg(long)]
        raft_port: Option<u16>,
        /// Keep it a non-voting read replica.
        #[arg(long)]
        learner: bool,
    },
    /// Make a learner a voter (refused until it has caught up).
    Promote {
        #[command(flatten)]
        server: Server,
        address: String,
    },
    /// Take a member out. The leader hands leadership over first; a removal that would leave
    /// the voters without a reachable majority is refused.
    Remove {
        #[command(flatten)]
        server: Server,
        address: String,
    },
    /// Hand leadership to a caught-up voter (before restarting the leader, say).
    TransferLeader {
        #[command(flatten)]
        server: Server,
        address: String,
    },
    /// Write a backup of the replicated state (configs, services, users, modules) at a committed
    /// index to FILE, readable by its owner only: `nacre serve --restore FILE` on each member
    /// of a new cluster starts it from there.
    Snapshot {
        #[command(flatten)]
        server: Server,
        #[arg(long)]
        out: std::path::PathBuf,
    },
}

pub async fn run(command: ClusterCommand) -> anyhow::Result<String> {
    let change = |server: &Server, method: HttpMethod, path: &str, pairs: Vec<(&str, String)>| {
        let url = format!("{}{path}", super::base(&server.server));
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let body = form(&pairs);
        async move { call_waiting(method, &url, Some(body), CHANGE_TIMEOUT).await }
    };
    let answer = match command {
        ClusterCommand::Members { server } => {
            call(HttpMethod::GET, &url(&server.server, "/nacre/v1/cluster/members", &[])).await?
        }
        ClusterCommand::Add { server, address, raft_port, learner } => {
            let mut pairs = vec![("address", address), ("learner", learner.to_string())];
            if let Some(port) = raft_port {
                pairs.push(("raftPort", port.to_string()));
            }
            change(&server, HttpMethod::POST, "/nacre/v1/cluster/members", pairs).await?
        }
        ClusterCommand::Promote { server, address } => {
            change(&server, HttpMethod::POST, "/nacre/v1/cluster/members/promote", vec![("address", address)]).await?
        }
        ClusterCommand::Remove { server, address } => {
            change(&server, HttpMethod::DELETE, "/nacre/v1/cluster/members", vec![("address", address)]).await?
        }
        ClusterCommand::TransferLeader { server, address } => {
            change(&server, HttpMethod::POST, "/nacre/v1/cluster/leader", vec![("address", address)]).await?
        }
        ClusterCommand::Snapshot { server, out } => return snapshot(&server, &out).await,
    };
    table(&serde_json::from_str(&answer)?)
}

/// How long a backup may take to come: a large state, encoded and sent.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(300);

async fn snapshot(server: &Server, out: &std::path::Path) -> anyhow::Result<String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;

    use anyhow::Context as _;
    let url = format!("{}/nacre/v1/cluster/snapshot", super::base(&server.server));
    let token = super::bearer(super::origin(&url)).await?;
    let (status, bytes) = crate::net::request_bytes(
        &super::tls()?,
        HttpMethod::GET,
        &url,
        token.as_deref(),
        None,
        SNAPSHOT_TIMEOUT,
        crate::raft::backup::MAX_BACKUP_BYTES,
    )
    .await
    .context("asking for the backup")?;
    anyhow::ensure!(status == 200, "HTTP {status}: {}", String::from_utf8_lossy(&bytes).trim());
    let info = crate::raft::backup::info(&bytes).context("the backup the node sent")?;
    // It holds the cluster's secrets (password hashes, the token signing key): owner only.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("creating {} (it must not exist yet)", out.display()))?;
    file.write_all(&bytes).and_then(|()| file.sync_all()).with_context(|| format!("writing {}", out.display()))?;
    Ok(format!(
        "wrote a backup of index {} (digest {}, {} bytes) to {}\n",
        info.index,
        info.digest,
        bytes.len(),
        out.display()
    ))
}

/// The members answer as a table: one member a line, the leader marked.
fn table(answer: &Value) -> anyhow::Result<String> {
    let leader = answer["leader"].as_str().unwrap_or_default();
    let mut out = format!("{:<24} {:<8} {:<10} {:>6} {:>10}\n", "ADDRESS", "VOTES", "STATE", "TERM", "APPLIED");
    for member in answer["members"].as_array().into_iter().flatten() {
        let address = member["address"].as_str().unwrap_or_default();
        let shown = if address == leader { format!("{address} *") } else { address.to_string() };
        let votes = if member["voter"] == true { "voter" } else { "learner" };
        let number = |field: &str| member[field].as_u64().map_or_else(|| "-".to_string(), |n| n.to_string());
        out.push_str(&format!(
            "{shown:<24} {votes:<8} {:<10} {:>6} {:>10}\n",
            member["state"].as_str().unwrap_or("DOWN"),
            number("term"),
            number("appliedIndex"),
        ));
    }
    Ok(out)
}
