//! Hostile or broken peer input (issue 15): messages a buggy member, a replay or a stranger can
//! send to the peer port, each of which once panicked a node, wrapped a counter, planted state
//! from the future or slipped past the client API's validation. Every one must be refused with
//! the node unharmed: still serving, same term, its state unchanged, and able to restart.
//! (Whether a peer is who it claims to be is the peer authentication's business, issue 17.)

mod support;

use std::collections::BTreeSet;

use nacre::ap::store::PartitionRecords;
use nacre::ap::store::Version;
use nacre::raft::log::WriteError;
use nacre::raft::log::WriteOutcome;
use nacre::raft::types::LogId;
use nacre::raft::types::Member;
use nacre::raft::types::SnapshotMeta;
use nacre::raft::types::StoredMembership;
use nacre::raft::types::Vote;
use nacre::runtime::ModuleKind;
use nacre::state::Operation;
use openraft::Membership;
use openraft::raft::VoteRequest;
use support::cluster::Cluster;
use support::cluster::wait_until;
use support::http;
use support::naming::INSTANCE;
use support::naming::list;
use support::naming::query;
use support::naming::register;

const CONFIGS: &str = "/nacos/v1/cs/configs";

fn peer_addr(cluster: &Cluster, node: usize) -> String {
    format!("127.0.0.1:{}", cluster.nodes[node].raft_port)
}

/// POST a postcard body to a peer RPC; the status and body.
fn peer_call(cluster: &Cluster, node: usize, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let resp = http::request("POST", &peer_addr(cluster, node), path, None, body).unwrap();
    (resp.status, resp.body)
}

fn node_id(cluster: &Cluster, node: usize) -> u64 {
    cluster.state(node).unwrap()["node"].as_u64().unwrap()
}

fn term(cluster: &Cluster, node: usize) -> u64 {
    cluster.state(node).unwrap()["term"].as_u64().unwrap()
}

fn publish(cluster: &Cluster, node: usize, data_id: &str) -> u16 {
    let pairs = [("dataId", data_id), ("group", "DEFAULT_GROUP"), ("content", "v")];
    cluster.post_form(node, CONFIGS, &pairs).map_or(0, |resp| resp.status)
}

/// The node keeps serving writes, and every node agrees.
fn assert_unharmed(cluster: &Cluster, tag: &str) {
    for node in cluster.running() {
        wait_until("a write through every node is acknowledged", || {
            publish(cluster, node, &format!("{tag}-{node}")) == 200
        });
    }
    cluster.wait_converged();
}

#[test]
fn a_vote_from_a_term_near_the_wrap_is_refused_and_never_persisted() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_leader();
    let candidate = node_id(&cluster, leader);
    let terms_before: Vec<u64> = (0..3).map(|i| term(&cluster, i)).collect();
    let forged = VoteRequest::<nacre::raft::types::TypeConfig>::new(Vote::new(u64::MAX - 1, candidate), None);
    for node in (0..3).filter(|n| *n != leader) {
        let (status, body) = peer_call(&cluster, node, "/raft/vote", &postcard::to_stdvec(&forged).unwrap());
        assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
        assert!(String::from_utf8_lossy(&body).contains("implausible"));
    }
    let terms_after: Vec<u64> = (0..3).map(|i| term(&cluster, i)).collect();
    assert_eq!(terms_after, terms_before, "no term moved");
    // The next elections and restarts work: the term was never persisted.
    cluster.kill_node(leader);
    cluster.wait_leader();
    cluster.start_node(leader);
    cluster.wait_ready();
    assert_unharmed(&cluster, "after-vote");
}

#[test]
fn a_vote_for_a_node_that_is_no_member_is_refused() {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_leader();
    let stranger = 0xdead_beef_u64;
    let forged =
        VoteRequest::<nacre::raft::types::TypeConfig>::new(Vote::new(term(&cluster, leader) + 1, stranger), None);
    for node in 0..3 {
        let (status, body) = peer_call(&cluster, node, "/raft/vote", &postcard::to_stdvec(&forged).unwrap());
        assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
        assert!(String::from_utf8_lossy(&body).contains("not a voting member"));
    }
    assert_eq!(cluster.wait_leader(), leader, "leadership did not move");
    assert_unharmed(&cluster, "after-stranger");
}

#[test]
fn a_snapshot_of_random_bytes_is_refused_and_raft_keeps_running() {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_leader();
    let follower = cluster.follower();
    let sender = node_id(&cluster, leader);
    let next_term = term(&cluster, follower) + 1;
    let members: BTreeSet<u64> = (0..3).map(|i| node_id(&cluster, i)).collect();
    let last = LogId::new(
        openraft::alias::CommittedLeaderIdOf::<nacre::raft::types::TypeConfig> { term: next_term, node_id: sender },
        1_000_000,
    );
    let membership: Membership<u64, Member> = Membership::new_with_defaults(vec![members.clone()], members);
    let meta = SnapshotMeta { last_log_id: Some(last), last_membership: StoredMembership::new(Some(last), membership) };
    let mut random = vec![0u8; 4096];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for byte in &mut random {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *byte = x as u8;
    }
    let body = postcard::to_stdvec(&(Vote::new_committed(next_term, sender), meta, random)).unwrap();
    let (status, answer) = peer_call(&cluster, follower, "/raft/snapshot", &body);
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&answer));
    assert!(String::from_utf8_lossy(&answer).contains("machine image"), "{}", String::from_utf8_lossy(&answer));
    let state = cluster.state(follower).unwrap();
    assert_ne!(state["role"], "SHUTDOWN", "{state}");
    assert_unharmed(&cluster, "after-snapshot");
}

#[test]
fn an_ap_record_from_the_far_future_cannot_make_an_instance_undeletable() {
    let cluster = Cluster::start(3);
    let instance = [("serviceName", "forged"), ("ip", "10.8.0.1"), ("port", "80")];
    register(&cluster, 0, &instance);
    wait_until("every node lists it", || {
        (0..3).all(|i| !list(&cluster, i, "forged")["hosts"].as_array().unwrap().is_empty())
    });
    // Take the real record from a node's AP keyspace, as a peer would get it, and send it back
    // to every node with the highest version there is.
    let (status, body) = peer_call(&cluster, 0, "/nacre/ap/snapshot", &postcard::to_stdvec(&None::<()>).unwrap());
    assert_eq!(status, 200);
    let mut batches: Vec<PartitionRecords> = postcard::from_bytes(&body).unwrap();
    batches.retain(|batch| batch.id.partition == "DEFAULT_GROUP@@forged");
    assert_eq!(batches.len(), 1, "one partition holds the instance");
    let max = Version { clock: u64::MAX, node: u64::MAX };
    for record in &mut batches[0].records {
        (record.version, record.birth) = (max, max);
    }
    for node in 0..3 {
        let (status, _) = peer_call(&cluster, node, "/nacre/ap/sync", &postcard::to_stdvec(&batches).unwrap());
        assert_eq!(status, 200, "a sync answers; the forged records are dropped");
    }
    let resp = cluster.call(1, "DELETE", &format!("{INSTANCE}?{}", query(&instance))).unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "ok"));
    wait_until("no node lists the deregistered instance", || {
        (0..3).all(|i| list(&cluster, i, "forged")["hosts"].as_array().unwrap().is_empty())
    });
}

/// A write forwarded on the peer port is validated by the leader exactly as the client API
/// validates it: what no client could propose is refused, and nothing is committed.
#[test]
fn a_forwarded_write_is_validated_as_the_client_api_does() {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_leader();
    let evil_namespace = Operation::Guest {
        namespace: "../evil\0x".into(),
        kind: ModuleKind::Config,
        payload: br#"{"op":"config.publish","params":{"dataId":"a","group":"b","content":"c"}}"#.to_vec(),
    };
    let evil_create = Operation::Namespace(nacre::state::NamespaceChange::Create {
        id: "../evil\0x".into(),
        name: "evil".into(),
        desc: String::new(),
    });
    let huge_module = Operation::InstallModule { bytes: [b"\0asm".as_slice(), &vec![0u8; 17 << 20]].concat() };
    for (what, op) in [("namespace", evil_namespace), ("namespace", evil_create), ("module", huge_module)] {
        let (status, body) = peer_call(&cluster, leader, "/nacre/forward-write", &postcard::to_stdvec(&op).unwrap());
        assert_eq!(status, 200, "the RPC is answered");
        let answer: Result<WriteOutcome, WriteError> = postcard::from_bytes(&body).unwrap();
        match answer {
            Err(WriteError::Invalid(invalid)) => assert!(invalid.field.contains(what), "{invalid}"),
            other => panic!("a forwarded {what} that no client could propose was not refused: {other:?}"),
        }
    }
    cluster.wait_converged();
    let namespaces = cluster.get(leader, "/nacos/v1/console/namespaces").unwrap().text();
    assert!(!namespaces.contains("evil"), "{namespaces}");
    let modules = cluster.get(leader, "/nacre/v1/modules").unwrap().text();
    assert!(!modules.contains("null"), "no module listed without info: {modules}");
}
