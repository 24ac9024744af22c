//! The nemesis: one fault at a time, chosen and timed by a seeded generator, each undone before
//! a short healthy gap and the next one.

use std::collections::BTreeMap;
use std::time::Duration;
use std::time::Instant;

use crate::clients::call;
use crate::rng::Rng;
use crate::support::cluster::Cluster;
use crate::support::proxy::Failure;

/// How long a node's own view is asked for while choosing a target.
const STATE_TIMEOUT: Duration = Duration::from_millis(1_000);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// SIGKILL, restarted within a second: quicker than the others time its leadership out.
    KillQuickRestart,
    /// SIGKILL, restarted after a few seconds: a new leader is elected meanwhile.
    KillSlowRestart,
    /// SIGSTOP, then SIGCONT: a process that hangs with its sockets open.
    Pause,
    /// Every link of one node fails, both ways.
    Isolate(Failure),
    /// One directed link fails: `from` cannot call `to`, `to` still calls `from`.
    CutLink(Failure),
    /// Leadership handed from the leader to another member (`nacre cluster transfer-leader`).
    TransferLeader,
    /// A follower taken out of the membership (it keeps running), then added back: a learner
    /// that catches up, then a voter again.
    RemoveAndReadd,
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::KillQuickRestart => "kill -9, restart within 1 s",
            Kind::KillSlowRestart => "kill -9, restart after 2-5 s",
            Kind::Pause => "SIGSTOP 1-4 s",
            Kind::Isolate(Failure::Reset) => "isolate a node (connections reset)",
            Kind::Isolate(Failure::Stall) => "isolate a node (silent stall)",
            Kind::CutLink(Failure::Reset) => "cut one directed link (reset)",
            Kind::CutLink(Failure::Stall) => "cut one directed link (silent stall)",
            Kind::TransferLeader => "transfer leadership",
            Kind::RemoveAndReadd => "remove a follower from the membership, add it back after 1-3 s",
        }
    }
}

const KINDS: [Kind; 9] = [
    Kind::KillQuickRestart,
    Kind::KillSlowRestart,
    Kind::Pause,
    Kind::Isolate(Failure::Reset),
    Kind::Isolate(Failure::Stall),
    Kind::CutLink(Failure::Reset),
    Kind::CutLink(Failure::Stall),
    Kind::TransferLeader,
    Kind::RemoveAndReadd,
];

/// How long a membership fault waits for the change it asked for (each step is bounded by the
/// node; a change refused under the cluster's state leaves it as it was).
const MEMBERSHIP_WAIT: Duration = Duration::from_secs(60);
const MEMBERS: &str = "/nacre/v1/cluster/members";

/// One fault as it happened.
#[derive(Debug, Clone)]
pub struct Fault {
    pub kind: Kind,
    pub node: usize,
    /// Whether `node` led when the fault began.
    pub was_leader: bool,
    /// Run time (ns) the fault began and was undone.
    pub start_ns: u64,
    pub end_ns: u64,
}

/// Inject faults until `until` and at least `min_faults` (but never past twice the run's
/// length), one at a time, each undone before the next. Every node is running, unpaused and
/// reachable when this returns.
pub fn run(cluster: &mut Cluster, seed: u64, start: Instant, until: Instant, min_faults: usize) -> Vec<Fault> {
    let mut rng = Rng::new(seed);
    let mut faults = Vec::new();
    let size = cluster.nodes.len();
    let hard_stop = until + until.saturating_duration_since(Instant::now());
    while (Instant::now() < until || faults.len() < min_faults) && Instant::now() < hard_stop {
        std::thread::sleep(rng.millis(500, 1_500));
        let kind = KINDS[rng.index(KINDS.len())];
        let leader = leader(cluster);
        let node = match leader {
            Some(leader) if rng.chance(50) => leader,
            _ => rng.index(size),
        };
        let since = |at: Instant| u64::try_from(at.duration_since(start).as_nanos()).expect("short run");
        let began = Instant::now();
        match kind {
            Kind::KillQuickRestart | Kind::KillSlowRestart => {
                cluster.kill_node(node);
                let down =
                    if kind == Kind::KillQuickRestart { rng.millis(100, 1_000) } else { rng.millis(2_000, 5_000) };
                std::thread::sleep(down);
                cluster.start_node(node);
            }
            Kind::Pause => {
                cluster.pause_node(node);
                std::thread::sleep(rng.millis(1_000, 4_000));
                cluster.resume_node(node);
            }
            Kind::Isolate(failure) => {
                cluster.isolate_as(node, failure);
                std::thread::sleep(rng.millis(2_000, 5_000));
                cluster.heal();
            }
            Kind::CutLink(failure) => {
                let to = (node + 1 + rng.index(size - 1)) % size;
                cluster.fail_link(node, to, failure);
                std::thread::sleep(rng.millis(2_000, 5_000));
                cluster.heal();
            }
            Kind::TransferLeader => {
                if let Some(from) = leader {
                    let to = (from + 1 + rng.index(size - 1)) % size;
                    let asked =
                        change(cluster, from, "POST", "/nacre/v1/cluster/leader", &[("address", cluster.addr(to))]);
                    eprintln!("nemesis: transfer leadership {from} -> {to}: {asked}");
                }
            }
            Kind::RemoveAndReadd => {
                let follower = if leader == Some(node) { (node + 1 + rng.index(size - 1)) % size } else { node };
                let asker = (follower + 1) % size;
                let address = cluster.addr(follower).to_string();
                let removed = change(cluster, asker, "DELETE", MEMBERS, &[("address", &address)]);
                eprintln!("nemesis: remove {follower}: {removed}");
                std::thread::sleep(rng.millis(1_000, 3_000));
                let raft_port = cluster.nodes[follower].raft_port.to_string();
                let deadline = Instant::now() + MEMBERSHIP_WAIT;
                loop {
                    let pairs = [("address", address.as_str()), ("raftPort", raft_port.as_str())];
                    let added = change(cluster, asker, "POST", MEMBERS, &pairs);
                    if added == "200" || Instant::now() > deadline {
                        eprintln!("nemesis: add {follower} back: {added}");
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
        let ended = Instant::now();
        faults.push(Fault {
            kind,
            node,
            was_leader: leader == Some(node),
            start_ns: since(began),
            end_ns: since(ended),
        });
    }
    faults
}

/// A membership change asked of node `via`: the status and the first line of its answer.
fn change(cluster: &Cluster, via: usize, method: &str, path: &str, pairs: &[(&str, &str)]) -> String {
    let body = crate::support::http::form(pairs);
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    match crate::support::http::exchange(method, cluster.addr(via), path, &form, body.as_bytes(), MEMBERSHIP_WAIT) {
        // The status, and the refusal's reason (a success answers with the whole member list).
        Ok(resp) if resp.status == 200 => "200".to_string(),
        Ok(resp) => format!("{} {}", resp.status, resp.text().lines().next().unwrap_or_default()),
        Err(e) => format!("no answer: {e:?}"),
    }
}

/// The leader, by the nodes' own answers (a paused or dead node just does not answer).
pub fn leader(cluster: &Cluster) -> Option<usize> {
    let addrs: Vec<String> = (0..cluster.nodes.len()).map(|i| cluster.addr(i).to_string()).collect();
    cluster.running().into_iter().find(|i| {
        let answer = crate::support::http::exchange("GET", &addrs[*i], "/nacre/v1/state", &[], b"", STATE_TIMEOUT);
        answer.is_ok_and(|resp| resp.status == 200 && resp.json()["role"] == "LEADER")
    })
}

/// The current term as each running node reports it.
pub fn terms(cluster: &Cluster) -> BTreeMap<usize, u64> {
    cluster
        .running()
        .into_iter()
        .filter_map(|i| {
            let resp = call(cluster.addr(i), "GET", "/nacre/v1/state", &[], b"").ok()?;
            Some((i, resp.json()["term"].as_u64()?))
        })
        .collect()
}

/// Faults counted by kind, for the report.
pub fn by_kind(faults: &[Fault]) -> BTreeMap<Kind, usize> {
    let mut counts = BTreeMap::new();
    for fault in faults {
        *counts.entry(fault.kind).or_default() += 1;
    }
    counts
}
