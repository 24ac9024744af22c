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
    thread: Option<std::thread::JoinHandle<(Vec<String>, usize)>>,
}

impl WriteLoad {
    /// A load that tolerates requests cut off (a node removed or killed under it).
    fn start(targets: Vec<String>) -> WriteLoad {
        Self::start_with(targets, false)
    }

    /// A load where only a 503 may fail: every node it writes through stays up while it is a
    /// target (the test takes a node out of the targets before stopping it).
    fn start_strict(targets: Vec<String>) -> WriteLoad {
        Self::start_with(targets, true)
    }

    fn start_with(targets: Vec<String>, strict: bool) -> WriteLoad {
        let targets = Arc::new(Mutex::new(targets));
        let acked = Arc::new(Mutex::new(BTreeMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (t, a, s) = (targets.clone(), acked.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let (mut unexpected, mut retryable) = (Vec::new(), 0);
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
                    Ok(resp) if resp.status == 503 => retryable += 1,
                    Ok(resp) => unexpected.push(format!("{addr}: {} {}", resp.status, resp.text())),
                    Err(e) if strict => unexpected.push(format!("{addr}: {e}")),
                    // A request cut when a node stepped down or restarted: not acknowledged.
                    Err(_) => {}
                }
                std::thread::sleep(WRITE_PAUSE);
            }
            (unexpected, retryable)
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
        let (unexpected, retryable) = self.thread.take().unwrap().join().unwrap();
        assert!(unexpected.is_empty(), "writes failed with other than a retryable 503: {unexpected:?}");
        eprintln!("{retryable} writes answered with a retryable 503");
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

    // The AP path spans the new members: an ephemeral instance registered through the learner
    // is listed by an original member, and one registered there is listed by the new voter.
    let register = |node: usize, ip: &str| {
        let path = format!("/nacos/v1/ns/instance?serviceName=grown&ip={ip}&port=80");
        assert_eq!(cluster.call(node, "POST", &path).unwrap().status, 200);
    };
    register(learner, "10.8.0.1");
    register(0, "10.8.0.2");
    wait_until("every member lists both ephemeral instances", || {
        [0, voter, learner].iter().all(|i| {
            let list = cluster.get(*i, "/nacos/v1/ns/instance/list?serviceName=grown").map(|r| r.json());
            list.is_ok_and(|l| l["hosts"].as_array().is_some_and(|h| h.len() == 2))
        })
    });

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

#[test]
fn a_backup_restores_into_a_new_cluster_with_the_same_digest() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("cluster.backup");
    let instance = "/nacos/v1/ns/instance?serviceName=kept&ip=10.9.0.1&port=80&ephemeral=false";
    let (digest, token) = {
        let cluster = Cluster::start(3);
        for i in 0..30 {
            let (data_id, content) = (format!("kept-{i}"), format!("content {i}"));
            let pairs = [("dataId", data_id.as_str()), ("group", "DEFAULT_GROUP"), ("content", content.as_str())];
            assert_eq!(cluster.post_form(i % 3, CONFIGS, &pairs).unwrap().status, 200);
        }
        assert_eq!(cluster.call(0, "POST", instance).unwrap().status, 200);
        let digest = cluster.wait_converged();
        let written = nacre_cluster(cluster.addr(1), &["snapshot", "--out", backup.to_str().unwrap()]).unwrap();
        assert!(written.contains(&digest), "the backup is of the converged state: {written}");
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&backup).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600, "a backup holds the cluster's secrets: owner only");
        let again = nacre_cluster(cluster.addr(1), &["snapshot", "--out", backup.to_str().unwrap()]).unwrap_err();
        assert!(again.contains("must not exist"), "{again}");
        (digest, cluster.token())
    };

    let restored = Cluster::start_restored(3, &backup, &token);
    assert_eq!(restored.wait_converged(), digest, "the new cluster starts at the backup's state");
    let read = restored.get(2, &format!("{CONFIGS}?dataId=kept-17&group=DEFAULT_GROUP")).unwrap();
    assert_eq!((read.status, read.text()), (200, "content 17".to_string()));
    let list = restored.get(1, "/nacos/v1/ns/instance/list?serviceName=kept").unwrap().json();
    assert_eq!(list["hosts"].as_array().map(Vec::len), Some(1), "{list}");
    let pairs = [("dataId", "after-restore"), ("group", "DEFAULT_GROUP"), ("content", "new")];
    assert_eq!(restored.post_form(0, CONFIGS, &pairs).unwrap().status, 200, "the new cluster takes writes");
    restored.wait_converged();
}

#[test]
fn a_damaged_backup_or_a_used_data_dir_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.backup");
    std::fs::write(&garbage, b"nacre-backup-v1\nnot postcard").unwrap();
    let used = dir.path().join("used");
    std::fs::create_dir_all(used.join("snapshots")).unwrap();
    for (data_dir, expected) in [(dir.path().join("fresh"), "damaged backup"), (used, "empty --data-dir")] {
        let port = support::cluster::free_port();
        let out = Command::new(env!("CARGO_BIN_EXE_nacre"))
            .args(["serve", "--bind", "127.0.0.1", "--port", &port.to_string(), "--auth", "off"])
            .args(["--raft-port", &support::cluster::free_port().to_string()])
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--restore")
            .arg(&garbage)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(expected), "{stderr}");
    }
}

#[test]
fn members_known_by_host_name_form_a_cluster_and_take_a_joiner() {
    let mut cluster = Cluster::start_named(3);
    let leader = cluster.wait_leader();
    let state = cluster.get(leader, "/nacos/v1/ns/raft/state").unwrap().json();
    assert!(state["leader"].as_str().is_some_and(|l| l.starts_with("localhost:")), "{state}");
    let pairs = [("dataId", "named"), ("group", "DEFAULT_GROUP"), ("content", "by name")];
    assert_eq!(cluster.post_form((leader + 1) % 3, CONFIGS, &pairs).unwrap().status, 200);
    let joiner = cluster.join_node(0, false);
    wait_until("the joiner is a voter", || {
        members(&cluster, 1).get(cluster.addr(joiner)).is_some_and(|(votes, _)| *votes)
    });
    cluster.wait_ready();
    let read = cluster.get(joiner, &format!("{CONFIGS}?dataId=named&group=DEFAULT_GROUP")).unwrap();
    assert_eq!((read.status, read.text()), (200, "by name".to_string()));
    cluster.wait_converged();
}

/// The documented rolling restart: for each member in turn, hand leadership away if it leads,
/// take it out of the clients' list, stop it with SIGTERM (it drains and flushes), start it
/// again and wait until it is ready. No request fails but the retryable 503s of a leader change,
/// and every acknowledged write survives.
#[test]
fn a_rolling_restart_under_writes_fails_nothing_but_retryable_503s() {
    let mut cluster = Cluster::start(3);
    let everyone = |cluster: &Cluster| (0..3).map(|i| cluster.addr(i).to_string()).collect::<Vec<_>>();
    let load = WriteLoad::start_strict(everyone(&cluster));
    wait_until("the load is acknowledged", || load.acked() >= 20);
    for node in 0..3 {
        if cluster.wait_leader() == node {
            let to = (node + 1) % 3;
            nacre_cluster(cluster.addr(node), &["transfer-leader", cluster.addr(to)]).unwrap();
            wait_until("leadership moved away from the node to restart", || cluster.leader() == Some(to));
        }
        load.set_targets((0..3).filter(|i| *i != node).map(|i| cluster.addr(i).to_string()).collect());
        // A request that picked this node just before the switch finishes first.
        std::thread::sleep(Duration::from_millis(300));
        let (status, took) = cluster.terminate_node(node);
        assert!(status.success(), "node {node} stopped cleanly: {status:?} after {took:?}");
        cluster.start_node(node);
        cluster.wait_ready();
        load.set_targets(everyone(&cluster));
        let before = load.acked();
        wait_until("writes go on through every member", || load.acked() >= before + 20);
    }
    let acked = load.finish();
    cluster.wait_converged();
    for node in 0..3 {
        assert_all_present(&cluster, node, &acked);
    }
}

/// A restarted member campaigns as soon as a majority listens (a whole cluster started again
/// elects at once), through a pre-vote: a follower restarted under a live leader is refused by
/// the voters that hear it, and the leader and term stay as they were.
#[test]
fn a_restarted_follower_campaigns_through_a_pre_vote_and_leaves_the_leader_and_term_alone() {
    let mut cluster = Cluster::start(3);
    // The first member in cluster.conf campaigns without waiting for a turn: make it a follower.
    let leader = cluster.wait_leader();
    if leader == 0 {
        nacre_cluster(cluster.addr(0), &["transfer-leader", cluster.addr(1)]).unwrap();
        wait_until("leadership moved where it was sent", || cluster.leader() == Some(1));
    }
    let leader = cluster.wait_leader();
    let term = cluster.state(leader).unwrap()["term"].clone();
    cluster.kill_node(0);
    cluster.start_node(0);
    cluster.wait_ready();
    wait_until("the restarted follower campaigns", || cluster.node_log(0).contains("campaigning (pre-vote first)"));
    // Long enough for a deposed leader to show: a higher term would reach it within a heartbeat.
    std::thread::sleep(Duration::from_secs(2));
    for node in 0..3 {
        let state = cluster.state(node).unwrap();
        assert_eq!(state["term"], term, "node {node}'s term moved: {state}");
        assert_eq!(state["leader_address"], cluster.addr(leader), "node {node}: {state}");
    }
    let resp = cluster
        .post_form(0, CONFIGS, &[("dataId", "after-the-restart"), ("group", "DEFAULT_GROUP"), ("content", "v")])
        .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
}
