//! Membership change through the log, against real nodes: a 3-node cluster grows to five
//! (`nacre serve --join`, one of them a learner) and shrinks back under a steady stream of
//! writes, leadership is handed over and the leader removed, and changes that would cost the
//! majority are refused. Every acknowledged write must be on every remaining member, and
//! their digests equal.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::time::Duration;

use support::cluster::Cluster;
use support::cluster::wait_until;
use support::http;

const CONFIGS: &str = "/nacos/v1/cs/configs";
const MEMBERS: &str = "/nacre/v1/cluster/members";
/// Pause between two writes of the load: steady, without starving the 2-core machine.
const WRITE_PAUSE: Duration = Duration::from_millis(10);
/// Writes the load makes at most (bounded, whatever happens to the cluster).
const MAX_WRITES: usize = 20_000;

/// `nacre cluster ...` against `server`, as an operator runs it; stdout, or the failure.
fn nacre_cluster(server: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_nacre"))
        .arg("cluster")
        .args(args)
        .args(["--server", server])
        .env("NACRE_ACCESS_TOKEN", http::latest_token())
        .output()
        .expect("the nacre binary runs");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The members as `node` lists them: address → (voter, state).
fn members(cluster: &Cluster, node: usize) -> BTreeMap<String, (bool, String)> {
    let Ok(resp) = cluster.get(node, MEMBERS) else { return BTreeMap::new() };
    if resp.status != 200 {
        return BTreeMap::new();
    }
    let answer = resp.json();
    answer["members"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let address = m["address"].as_str().unwrap().to_string();
            (address, (m["voter"] == true, m["state"].as_str().unwrap_or_default().to_string()))
        })
        .collect()
}

/// A steady stream of config publishes through whichever nodes are in `targets`, recording
/// what each acknowledged. A refusal must be a retryable 503; anything else fails the test.
struct WriteLoad {
    targets: Arc<Mutex<Vec<String>>>,
    acked: Arc<Mutex<BTreeMap<String, String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl WriteLoad {
    fn start(targets: Vec<String>) -> WriteLoad {
        let targets = Arc::new(Mutex::new(targets));
        let acked = Arc::new(Mutex::new(BTreeMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (t, a, s) = (targets.clone(), acked.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut unexpected = Vec::new();
            for n in 0..MAX_WRITES {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let addr = {
                    let targets = t.lock().unwrap();
                    targets[n % targets.len()].clone()
                };
                let (data_id, content) = (format!("load-{n}"), format!("v{n}"));
                let body = http::form(&[("dataId", &data_id), ("group", "DEFAULT_GROUP"), ("content", &content)]);
                match http::request("POST", &addr, CONFIGS, Some("application/x-www-form-urlencoded"), body.as_bytes())
                {
                    Ok(resp) if resp.status == 200 => {
                        a.lock().unwrap().insert(data_id, content);
                    }
                    Ok(resp) if resp.status == 503 => {}
                    Ok(resp) => unexpected.push(format!("{addr}: {} {}", resp.status, resp.text())),
                    // A request cut when a node stepped down or restarted: not acknowledged.
                    Err(_) => {}
                }
                std::thread::sleep(WRITE_PAUSE);
            }
            unexpected
        });
        WriteLoad { targets, acked, stop, thread: Some(thread) }
    }

    fn set_targets(&self, targets: Vec<String>) {
        *self.targets.lock().unwrap() = targets;
    }

    fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Stop, and return every acknowledged write.
    fn finish(mut self) -> BTreeMap<String, String> {
        self.stop.store(true, Ordering::Relaxed);
        let unexpected = self.thread.take().unwrap().join().unwrap();
        assert!(unexpected.is_empty(), "writes failed with other than a retryable 503: {unexpected:?}");
        std::mem::take(&mut *self.acked.lock().unwrap())
    }
}

/// Every acknowledged write reads back, with its content, from `node`.
fn assert_all_present(cluster: &Cluster, node: usize, acked: &BTreeMap<String, String>) {
    for (data_id, content) in acked {
        let resp = cluster.get(node, &format!("{CONFIGS}?dataId={data_id}&group=DEFAULT_GROUP")).unwrap();
        assert_eq!((resp.status, resp.text()), (200, content.clone()), "{data_id} on node {node}");
    }
}

#[test]
fn a_cluster_grows_to_five_with_a_learner_and_shrinks_back_under_writes_without_losing_one() {
    let mut cluster = Cluster::start(3);
    let load = WriteLoad::start((0..3).map(|i| cluster.addr(i).to_string()).collect());
    wait_until("the load is acknowledged", || load.acked() >= 20);

    // Grow: a voter and a learner, each asking a different member to add it.
    let voter = cluster.join_node(0, false);
    let learner = cluster.join_node(1, true);
    wait_until("both joined, one voter and one learner", || {
        let m = members(&cluster, 2);
        m.get(cluster.addr(voter)).is_some_and(|(votes, _)| *votes)
            && m.get(cluster.addr(learner)).is_some_and(|(votes, state)| !*votes && state == "LEARNER")
    });
    cluster.wait_ready();
    load.set_targets((0..5).map(|i| cluster.addr(i).to_string()).collect());
    let before = load.acked();
    wait_until("writes go on through all five", || load.acked() >= before + 50);
    cluster.wait_converged();

    // The learner is a read replica: it knows the leader, and its raft state says what it is.
    let state = cluster.get(learner, "/nacos/v1/ns/raft/state").unwrap().json();
    assert!(state["leader"].is_string(), "{state}");
    let me = state["peers"].as_array().unwrap().iter().find(|p| p["ip"] == cluster.addr(learner)).unwrap().clone();
    assert_eq!(me["state"], "LEARNER", "{state}");
    let table = nacre_cluster(cluster.addr(learner), &["members"]).unwrap();
    assert_eq!(table.lines().count(), 6, "a header and five members:\n{table}");
    assert!(table.contains("learner") && table.contains(" *"), "the learner and the leader are marked:\n{table}");

    // A joined node restarted takes its membership from its log (it has no cluster.conf).
    cluster.kill_node(voter);
    cluster.start_node(voter);
    cluster.wait_ready();
    assert!(members(&cluster, voter).get(cluster.addr(voter)).is_some_and(|(votes, _)| *votes));

    // Shrink back: the learner, then the joined voter, through the command-line client.
    load.set_targets((0..3).map(|i| cluster.addr(i).to_string()).collect());
    nacre_cluster(cluster.addr(0), &["remove", cluster.addr(learner)]).unwrap();
    nacre_cluster(cluster.addr(1), &["remove", cluster.addr(voter)]).unwrap();
    let m = members(&cluster, 0);
    assert_eq!(m.len(), 3, "{m:?}");
    assert!(!m.contains_key(cluster.addr(voter)) && !m.contains_key(cluster.addr(learner)));
    wait_until("a removed node says it is not ready", || cluster.state(learner).is_some_and(|s| s["ready"] == false));
    cluster.kill_node(voter);
    cluster.kill_node(learner);

    // Hand leadership over, then remove the leader itself: it hands over first.
    let leader = cluster.wait_leader();
    let next = (0..3).find(|i| *i != leader).unwrap();
    nacre_cluster(cluster.addr(leader), &["transfer-leader", cluster.addr(next)]).unwrap();
    wait_until("leadership moved where it was sent", || cluster.leader() == Some(next));
    let survivors: Vec<usize> = (0..3).filter(|i| *i != next).collect();
    load.set_targets(survivors.iter().map(|i| cluster.addr(*i).to_string()).collect());
    nacre_cluster(cluster.addr(next), &["remove", cluster.addr(next)]).unwrap();
    wait_until("a survivor leads", || cluster.leader().is_some_and(|l| survivors.contains(&l)));
    assert_eq!(members(&cluster, survivors[0]).len(), 2);
    cluster.kill_node(next);
    let before = load.acked();
    wait_until("writes go on with two voters", || load.acked() >= before + 20);

    let acked = load.finish();
    let digest = cluster.wait_converged();
    assert!(!digest.is_empty());
    for node in survivors {
        assert_all_present(&cluster, node, &acked);
    }
    eprintln!("{} writes acknowledged across the changes, every one present on both survivors", acked.len());
}

#[test]
fn changes_that_would_lose_the_majority_are_refused_and_nothing_changes() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_leader();
    let (healthy, dead) = {
        let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
        (followers[0], followers[1])
    };
    cluster.kill_node(dead);
    // Give the leader time to see it gone (pings every half second, 2 s to call it dead).
    std::thread::sleep(Duration::from_secs(3));

    let refused = nacre_cluster(cluster.addr(leader), &["remove", cluster.addr(healthy)]).unwrap_err();
    assert!(refused.contains("409") && refused.contains("majority"), "{refused}");
    assert_eq!(members(&cluster, leader).len(), 3, "nothing changed");
    let refused = nacre_cluster(cluster.addr(healthy), &["transfer-leader", cluster.addr(dead)]).unwrap_err();
    assert!(refused.contains("409") && refused.contains("caught up"), "{refused}");
    let bad = cluster.call(leader, "DELETE", &format!("{MEMBERS}?address=nowhere")).unwrap();
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("address"), "{}", bad.text());

    // Removing the dead member is safe: the two left are both healthy.
    nacre_cluster(cluster.addr(healthy), &["remove", cluster.addr(dead)]).unwrap();
    let m = members(&cluster, leader);
    assert_eq!(m.len(), 2, "{m:?}");
    let resp = cluster
        .post_form(healthy, CONFIGS, &[("dataId", "after"), ("group", "DEFAULT_GROUP"), ("content", "ok")])
        .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    cluster.wait_converged();
}
