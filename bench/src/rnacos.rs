//! r-nacos as a peer: a Nacos-compatible server written in Rust (crate `rnacos`), driven through
//! the very same Nacos v1 HTTP and 2.x gRPC requests as Nacre. The bench builds it once with
//! `cargo install` into the user's cache (about 8 minutes on 2 cores) and reuses that build in
//! every later run. A 3-node cluster as r-nacos's documentation forms one: node 1 initializes
//! Raft, then node 2 and node 3 start one after the other and each asks node 1 to join. (Started
//! together, two joins raced and one node stayed a non-voter for good.)
//!
//! Durability, for reading its write figures: r-nacos 0.8.8 does not fsync before it
//! acknowledges. Its Raft log writer (`raft/filestore/raftlog`) ends a write with tokio's
//! `File::flush`, which hands the bytes to the kernel; the crate calls neither `sync_all` nor
//! `sync_data` anywhere. Nacre, etcd and ZooKeeper fsync a majority's log first.

use std::path::Path;
use std::path::PathBuf;
use std::process::Command;
use std::process::Stdio;
use std::time::Duration;
use std::time::Instant;

use anyhow::Context;
use anyhow::Result;
use anyhow::bail;

use crate::cluster::Ports;
use crate::http;

pub const VERSION: &str = "0.8.8";
/// Longest wait for `cargo install rnacos` (a cold build here takes about 8 minutes).
const INSTALL_TIMEOUT: Duration = Duration::from_secs(40 * 60);
/// The administrator the bench signs in as; its password is the run's own.
pub const ADMIN: &str = "admin";
/// The environment variable that carries a node's first administrator's password.
const ADMIN_PASSWORD_ENV: &str = "RNACOS_INIT_ADMIN_PASSWORD";

/// The cache the build is kept in between runs: `$XDG_CACHE_HOME/nacre-bench`, else
/// `~/.cache/nacre-bench`.
fn cache_dir() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".cache"),
    };
    Ok(base.join("nacre-bench"))
}

fn install_root() -> Result<PathBuf> {
    Ok(cache_dir()?.join(format!("rnacos-{VERSION}")))
}

pub fn binary() -> Result<PathBuf> {
    Ok(install_root()?.join("bin/rnacos"))
}

/// Builds r-nacos into the cache with `cargo install --locked` when it is not there yet.
pub fn ensure_installed() -> Result<()> {
    let bin = binary()?;
    if bin.exists() {
        return Ok(());
    }
    let root = install_root()?;
    // A target directory of its own, removed afterwards: the build is large, the binary small.
    let build_dir = cache_dir()?.join(format!("rnacos-{VERSION}-build"));
    eprintln!("building r-nacos {VERSION} with cargo install into {} (once; about 8 minutes) ...", root.display());
    let mut child = Command::new("cargo")
        .args(["install", "rnacos", "--version", VERSION, "--locked", "--root"])
        .arg(&root)
        .env("CARGO_TARGET_DIR", &build_dir)
        .stdout(Stdio::null())
        .spawn()
        .context("cargo install rnacos")?;
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() > INSTALL_TIMEOUT {
            let _ = child.kill();
            bail!("cargo install rnacos took longer than {INSTALL_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let _ = std::fs::remove_dir_all(&build_dir);
    if !status.success() || !bin.exists() {
        bail!("cargo install rnacos {VERSION} failed ({status})");
    }
    Ok(())
}

/// A secret of 128 random bits, hex (the administrator's password, the cluster token).
fn fresh_secret() -> String {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).expect("randomness from the OS");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The environment of each node of a cluster on `ports` (HTTP, gRPC, console), data under
/// `dir`. Open API authentication is on, as Nacre's is: every request carries a token.
pub fn nodes_env(dir: &Path, ports: &[Ports]) -> Vec<Vec<(String, String)>> {
    let password = fresh_secret();
    let cluster_token = fresh_secret();
    let first_raft = format!("127.0.0.1:{}", ports[0][1]);
    ports
        .iter()
        .enumerate()
        .map(|(i, [api, grpc, console])| {
            let mut env = vec![
                ("RNACOS_HTTP_PORT", api.to_string()),
                ("RNACOS_GRPC_PORT", grpc.to_string()),
                ("RNACOS_HTTP_CONSOLE_PORT", console.to_string()),
                ("RNACOS_SDK_HOST", "127.0.0.1".to_string()),
                ("RNACOS_CONSOLE_HOST", "127.0.0.1".to_string()),
                ("RNACOS_DATA_DIR", dir.join(format!("rnacos{i}")).display().to_string()),
                ("RNACOS_RAFT_NODE_ID", (i + 1).to_string()),
                // Raft travels on the gRPC port.
                ("RNACOS_RAFT_NODE_ADDR", format!("127.0.0.1:{grpc}")),
                ("RNACOS_RAFT_AUTO_INIT", (i == 0).to_string()),
                ("RNACOS_ENABLE_OPEN_API_AUTH", "true".to_string()),
                ("RNACOS_INIT_ADMIN_USERNAME", ADMIN.to_string()),
                (ADMIN_PASSWORD_ENV, password.clone()),
                ("RNACOS_CLUSTER_TOKEN", cluster_token.clone()),
                ("RUST_LOG", "warn".to_string()),
            ];
            if i > 0 {
                env.push(("RNACOS_RAFT_JOIN_ADDR", first_raft.clone()));
            }
            env.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
        })
        .collect()
}

/// The administrator's password in a node's environment.
pub fn admin_password(env: &[(String, String)]) -> Option<&str> {
    env.iter().find(|(k, _)| k == ADMIN_PASSWORD_ENV).map(|(_, v)| v.as_str())
}

/// How often a starting r-nacos node is asked whether it serves. Asked every 20 ms (the other
/// systems' interval), r-nacos 0.8.8's apply actor panicked at start in two of four starts here
/// (`raftapply.rs:421`, an unwrap before its managers are wired), and the node never served.
pub const READY_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Whether the node at `addr` serves as a voter of a cluster of `members` nodes with a leader.
/// Its Raft metrics need a token: the bench logs in (again after a restart, which forgets
/// tokens) with the node's administrator `password`.
pub async fn serving(addr: &str, password: &str, members: usize) -> bool {
    if http::token(addr).is_none() {
        let Ok(token) = login(addr, password).await else { return false };
        http::sign_in(addr, &token);
    }
    let body = match http::get_once(addr, "/nacos/v1/raft/metrics").await {
        Ok((200, body)) => body,
        Ok((403, _)) => {
            // A restarted node forgot the token.
            if let Ok(token) = login(addr, password).await {
                http::sign_in(addr, &token);
            }
            return false;
        }
        _ => return false,
    };
    let Ok(metrics) = serde_json::from_str::<serde_json::Value>(&body) else { return false };
    let voting = matches!(metrics["state"].as_str(), Some("Leader" | "Follower"));
    let voters = metrics["membership_config"]["members"].as_array().map_or(0, Vec::len);
    let joint = !metrics["membership_config"]["members_after_consensus"].is_null();
    voting && voters == members && !joint && !metrics["current_leader"].is_null()
}

/// Logs in at `addr` (Nacos's `/nacos/v1/auth/login`) and returns the access token.
pub async fn login(addr: &str, password: &str) -> Result<String> {
    let mut conn = http::Conn::connect(addr).await?;
    let form = [("username", ADMIN), ("password", password)];
    let body = http::expect_ok(&mut conn, http::post_form(addr, "/nacos/v1/auth/login", &form)).await?;
    let answer: serde_json::Value = serde_json::from_slice(&body)?;
    Ok(answer["accessToken"].as_str().context("an r-nacos login answer without a token")?.to_string())
}
