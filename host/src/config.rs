//! Node configuration: addresses, data directory, and the cluster member list (Nacos's
//! `cluster.conf` format).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::members::NodeId;
use crate::raft::Member;

pub const DEFAULT_API_PORT: u16 = 8848;
/// The Raft port sits this far below the API port, as Nacos's JRaft port (7848) does.
pub const RAFT_PORT_OFFSET: u16 = 1000;
/// Most members a cluster.conf may list; Raft clusters larger than this gain nothing.
pub const MAX_CLUSTER_MEMBERS: usize = 15;

/// One line of cluster.conf: `ip[:port][?raft_port=N]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberAddr {
    pub ip: String,
    pub port: u16,
    pub raft_port: u16,
}

impl MemberAddr {
    pub fn api_addr(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    pub fn raft_addr(&self) -> String {
        format!("{}:{}", self.ip, self.raft_port)
    }

    /// A stable id derived from the API address: every node computes the same id for the
    /// same member without coordination, whatever the order of the lines.
    pub fn node_id(&self) -> NodeId {
        crate::members::node_id_of(&self.api_addr())
    }

    pub fn member(&self) -> Member {
        Member { api_addr: self.api_addr(), raft_addr: self.raft_addr() }
    }

    /// A member as the log knows it (`host:port` addresses), back into its parts; `None` for an
    /// address without a port.
    pub fn of_member(member: &Member) -> Option<MemberAddr> {
        let (ip, port) = member.api_addr.rsplit_once(':')?;
        let (_, raft_port) = member.raft_addr.rsplit_once(':')?;
        Some(MemberAddr { ip: ip.to_string(), port: port.parse().ok()?, raft_port: raft_port.parse().ok()? })
    }
}

/// How a node started with `--join` becomes a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinPlan {
    /// The member it asks to add it; `None`: it waits for an operator's `nacre cluster add`.
    pub seed: Option<MemberAddr>,
    /// Stay a non-voting read replica instead of becoming a voter once caught up.
    pub learner: bool,
}

/// A `--join` address: a cluster.conf line (`host[:port][?raft_port=N]`).
pub fn parse_member(text: &str) -> Result<MemberAddr, ConfigError> {
    let mut members = parse_cluster_conf(text)?;
    match members.len() {
        1 => Ok(members.remove(0)),
        _ => Err(ConfigError::BadLine { line: 1, reason: format!("expected one address: {text:?}") }),
    }
}

#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node as the members know it (its advertised host or address and its ports).
    pub me: MemberAddr,
    /// The local address its ports listen on (`0.0.0.0` for every interface).
    pub bind_ip: String,
    /// The secret this cluster's members share; every peer message is signed with it.
    pub cluster_secret: crate::net::peer_auth::ClusterSecret,
    pub data_dir: PathBuf,
    /// Every voting member, this node included, as cluster.conf lists them: the membership a
    /// new cluster starts with. The log's membership replaces it once the cluster is formed.
    pub members: Vec<MemberAddr>,
    /// Join a running cluster instead of forming one from `members` (which then lists this
    /// node alone).
    pub join: Option<JoinPlan>,
    /// Start a new cluster from this backup (`nacre cluster snapshot`): restored as this node's
    /// snapshot before its first start, `members` as the membership.
    pub restore: Option<PathBuf>,
    /// Take a snapshot after this many entries since the last one (and, with a large state,
    /// a share of its size in log: `raft::snapshot_policy`).
    pub snapshot_every_entries: u64,
    /// Entries kept behind a snapshot: a briefly lagging follower catches up from the log,
    /// and a purge never races the apply of entries just behind the snapshot (openraft #2116).
    pub log_kept_behind_snapshot: u64,
    /// Write a checkpoint after this many entries since the last snapshot or checkpoint, when
    /// no snapshot is due (`raft::checkpoint`); 0: never.
    pub checkpoint_every_entries: u64,
    /// Peer address → the address to dial instead (a proxy on that link, for fault tests).
    pub peer_routes: BTreeMap<String, String>,
    pub self_preservation: SelfPreservation,
    /// Whether the client port checks who calls (`api::access`). On unless the operator
    /// turns it off, loudly.
    pub auth: bool,
    /// A directory of compiled modules shared with this user's other nodes on this machine
    /// (`runtime::cache`); none: each node compiles for itself.
    pub shared_module_cache: Option<PathBuf>,
    /// Whether the client port serves the web console at `/nacos/` (the API is served either way).
    pub console: bool,
    /// The client port's certificate chain and key (PEM): it then speaks HTTPS only.
    pub tls: Option<TlsFiles>,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// When a node suspects itself rather than its clients (Eureka's self-preservation): if more
/// than `threshold` of the leases it expects to be renewed have lapsed at once, it stops
/// expiring anything until renewals return. A registry of fewer than `min_leases` leases never
/// engages it: there, one silent client is a large share and must still expire.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SelfPreservation {
    pub threshold: f64,
    pub min_leases: u64,
}

impl Default for SelfPreservation {
    fn default() -> Self {
        SelfPreservation {
            threshold: DEFAULT_SELF_PRESERVATION_THRESHOLD,
            min_leases: DEFAULT_SELF_PRESERVATION_MIN_LEASES,
        }
    }
}

impl SelfPreservation {
    /// Whether `lapsed` of `expected` leases means the node should suspect itself.
    pub fn engages(&self, expected: u64, lapsed: u64) -> bool {
        expected >= self.min_leases.max(1) && lapsed as f64 > self.threshold * expected as f64
    }
}

pub const DEFAULT_SELF_PRESERVATION_THRESHOLD: f64 = 0.85;
pub const DEFAULT_SELF_PRESERVATION_MIN_LEASES: u64 = 10;

/// A snapshot copies, encodes and writes the whole state, so its cost per entry falls with the
/// interval (etcd and ZooKeeper snapshot every 100k); at 5k it takes about a tenth of a node's
/// CPU under a steady stream of registrations, and 50k gave about 12% more registrations. It
/// stays at 5k until the leader change the module-switch benchmark meets on a full cluster is
/// understood: it was first seen with 50k, then also with 5k, and a larger interval makes
/// each snapshot and log purge a longer stall that could only make it worse.
pub const DEFAULT_SNAPSHOT_EVERY_ENTRIES: u64 = 5_000;
/// Entries kept behind a snapshot, so that a follower a little behind catches up from the log
/// instead of receiving the whole snapshot.
pub const DEFAULT_LOG_KEPT_BEHIND_SNAPSHOT: u64 = 2_000;
/// Between snapshots of a large state, a checkpoint (the keys written since the last one)
/// every this many entries: what a restart re-applies through the guests is at most this
/// much log (`raft::checkpoint`). Equal to the snapshot interval, so a small state, which is
/// snapshotted at that interval anyway, never takes one.
pub const DEFAULT_CHECKPOINT_EVERY_ENTRIES: u64 = 5_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("cluster.conf line {line}: {reason}")]
    BadLine { line: usize, reason: String },
    #[error("cluster.conf lists no members")]
    Empty,
    #[error("cluster.conf lists {0} members; at most {MAX_CLUSTER_MEMBERS} are supported")]
    TooMany(usize),
    #[error("this node ({0}) is not listed in cluster.conf; its --advertise (or --bind) and --port must match a line")]
    NotAMember(String),
    #[error("cluster.conf lists {0} twice")]
    Duplicate(String),
    #[error("port {0} is too low to derive a Raft port (port - {RAFT_PORT_OFFSET}); pass --raft-port")]
    NoRaftPort(u16),
}

/// Parse cluster.conf text: one member per line, `#` starts a comment.
pub fn parse_cluster_conf(text: &str) -> Result<Vec<MemberAddr>, ConfigError> {
    let mut members: Vec<MemberAddr> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let bad = |reason: &str| ConfigError::BadLine { line: i + 1, reason: format!("{reason}: {line:?}") };
        let (addr, options) = line.split_once('?').unwrap_or((line, ""));
        let (ip, port) = match addr.rsplit_once(':') {
            Some((ip, port)) => (ip, port.parse::<u16>().map_err(|_| bad("port is not a number 1-65535"))?),
            None => (addr, DEFAULT_API_PORT),
        };
        if ip.is_empty() || port == 0 {
            return Err(bad("expected ip[:port]"));
        }
        let mut raft_port = None;
        for option in options.split('&').filter(|o| !o.is_empty()) {
            match option.split_once('=') {
                Some(("raft_port", value)) => {
                    raft_port = Some(value.parse::<u16>().map_err(|_| bad("raft_port is not a number"))?)
                }
                _ => return Err(bad("unknown option (only raft_port=N is understood)")),
            }
        }
        let raft_port = match raft_port {
            Some(p) => p,
            None => port.checked_sub(RAFT_PORT_OFFSET).filter(|p| *p > 0).ok_or(ConfigError::NoRaftPort(port))?,
        };
        let member = MemberAddr { ip: ip.to_string(), port, raft_port };
        if members.iter().any(|m| m.api_addr() == member.api_addr()) {
            return Err(ConfigError::Duplicate(member.api_addr()));
        }
        members.push(member);
    }
    match members.len() {
        0 => Err(ConfigError::Empty),
        n if n > MAX_CLUSTER_MEMBERS => Err(ConfigError::TooMany(n)),
        _ => Ok(members),
    }
}

/// Find this node in the member list by its bind address and API port.
pub fn find_self(members: &[MemberAddr], bind_ip: &str, port: u16) -> Result<MemberAddr, ConfigError> {
    members
        .iter()
        .find(|m| m.ip == bind_ip && m.port == port)
        .cloned()
        .ok_or_else(|| ConfigError::NotAMember(format!("{bind_ip}:{port}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nacos_cluster_conf() {
        let text = "# comment\n127.0.0.1:8848\n\n127.0.0.1:8858?raft_port=9999 # trailing\n10.0.0.1\n";
        let members = parse_cluster_conf(text).unwrap();
        assert_eq!(
            members,
            vec![
                MemberAddr { ip: "127.0.0.1".into(), port: 8848, raft_port: 7848 },
                MemberAddr { ip: "127.0.0.1".into(), port: 8858, raft_port: 9999 },
                MemberAddr { ip: "10.0.0.1".into(), port: 8848, raft_port: 7848 },
            ]
        );
        assert_eq!(find_self(&members, "127.0.0.1", 8858).unwrap().raft_port, 9999);
        assert!(matches!(find_self(&members, "127.0.0.1", 1), Err(ConfigError::NotAMember(_))));
    }

    #[test]
    fn rejects_bad_lines_with_their_number() {
        assert!(matches!(parse_cluster_conf("127.0.0.1:x"), Err(ConfigError::BadLine { line: 1, .. })));
        assert!(matches!(parse_cluster_conf("a:8848\nb:8849?foo=1"), Err(ConfigError::BadLine { line: 2, .. })));
        assert_eq!(parse_cluster_conf("# nothing\n"), Err(ConfigError::Empty));
        assert!(matches!(parse_cluster_conf("a:8848\na:8848"), Err(ConfigError::Duplicate(_))));
        assert_eq!(parse_cluster_conf("a:80"), Err(ConfigError::NoRaftPort(80)));
    }

    #[test]
    fn self_preservation_needs_enough_leases_and_a_large_lapsed_share() {
        let policy = SelfPreservation::default();
        assert!(policy.engages(10, 9));
        assert!(!policy.engages(10, 8), "80 % is under the threshold");
        assert!(!policy.engages(5, 5), "too few leases to judge");
        assert!(!SelfPreservation { min_leases: 0, ..policy }.engages(0, 0));
    }

    #[test]
    fn node_ids_are_stable_and_distinct() {
        let a = MemberAddr { ip: "127.0.0.1".into(), port: 8848, raft_port: 7848 };
        let b = MemberAddr { port: 8858, ..a.clone() };
        assert_eq!(a.node_id(), a.clone().node_id());
        assert_ne!(a.node_id(), b.node_id());
    }
}
