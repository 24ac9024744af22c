//! Hostile or broken peer input. Strangers (issue 17): a request without the cluster's secret,
//! or signed with another cluster's, is refused from its head whatever it carries, and a node
//! started with another secret on a member's address can neither join, vote nor inject, while
//! the cluster's term and state do not move. Members gone wrong (issue 15): messages signed
//! with the cluster's secret that a buggy member or a replay could send, each of which once
//! panicked a node, wrapped a counter, planted state from the future or slipped past the client
//! API's validation. Every one must be refused with the node unharmed: still serving, same
//! term, its state unchanged, and able to restart.

mod support;

use std::collections::BTreeSet;

use nacre::ap::store::PartitionRecords;
use nacre::ap::store::Version;
use nacre::net::peer_auth::ClusterSecret;
use nacre::net::peer_auth::PeerKey;
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

/// POST a postcard body to a peer RPC, signed with `secret`; the status and body.
fn signed_call(cluster: &Cluster, secret: &ClusterSecret, node: usize, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let to = peer_addr(cluster, node);
    let key = PeerKey::new(secret, "a test", 0);
    let (signed, _) = key.sign_request("POST", path, &to, body, now_ms());
    let headers: Vec<(&str, &str)> = signed.iter().map(|(name, value)| (*name, value.as_str())).collect();
    let resp = http::request_with_headers("POST", &to, path, &headers, body).unwrap();
    (resp.status, resp.body)
}

/// POST a postcard body to a peer RPC as a member would (signed with the cluster's secret).
fn peer_call(cluster: &Cluster, node: usize, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    signed_call(cluster, &cluster.secret, node, path, body)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
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

/// Every peer RPC, each with a body a member could send: what a stranger tries.
fn stranger_requests(cluster: &Cluster, leader: usize) -> Vec<(&'static str, Vec<u8>)> {
    let vote = VoteRequest::<nacre::raft::types::TypeConfig>::new(
        Vote::new(term(cluster, leader) + 1, node_id(cluster, (leader + 1) % 3)),
        None,
    );
    let write = Operation::Guest {
        namespace: "public".into(),
        kind: ModuleKind::Config,
        payload: br#"{"op":"config.publish","params":{"dataId":"stranger","group":"G","content":"x"}}"#.to_vec(),
    };
    vec![
        ("/raft/vote", postcard::to_stdvec(&vote).unwrap()),
        ("/nacre/forward-write", postcard::to_stdvec(&write).unwrap()),
        ("/nacre/ap/snapshot", postcard::to_stdvec(&None::<()>).unwrap()),
        ("/nacre/read-index", postcard::to_stdvec(&()).unwrap()),
        ("/raft/transfer-leader", vec![0; 64]),
        ("/raft/append", vec![0; 64]),
        ("/raft/snapshot", vec![0; 64]),
        ("/nacre/batch", vec![0; 64]),
    ]
}

#[test]
fn a_stranger_on_the_peer_port_is_refused_and_nothing_moves() {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_leader();
    assert_eq!(publish(&cluster, leader, "before"), 200);
    let digest = cluster.wait_converged();
    let terms: Vec<u64> = (0..3).map(|i| term(&cluster, i)).collect();
    let other_cluster = ClusterSecret::generate();
    for node in 0..3 {
        for (path, body) in stranger_requests(&cluster, leader) {
            let unsigned = http::request("POST", &peer_addr(&cluster, node), path, None, &body).unwrap();
            assert_eq!(unsigned.status, 401, "{path} without a signature: {}", unsigned.text());
            assert!(unsigned.text().contains("not a member of this cluster"), "{}", unsigned.text());
            let (status, answer) = signed_call(&cluster, &other_cluster, node, path, &body);
            assert_eq!(status, 401, "{path} signed by another cluster");
            assert!(String::from_utf8_lossy(&answer).contains("not signed with this cluster's secret"));
            assert!(answer.len() < 200, "a refusal says nothing of the state");
        }
        // A huge declared body that never comes is refused from the head, not waited for.
        use std::io::Read as _;
        use std::io::Write as _;
        let mut stream = std::net::TcpStream::connect(peer_addr(&cluster, node)).unwrap();
        stream.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        stream.write_all(b"POST /raft/append HTTP/1.1\r\nHost: x\r\nContent-Length: 200000000\r\n\r\n").unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).expect("answered at once, without waiting for the body");
        assert_eq!(&head, b"HTTP/1.1 401");
    }
    // A member's request replayed: accepted once, refused the second time.
    let to = peer_addr(&cluster, leader);
    let body = postcard::to_stdvec(&()).unwrap();
    let (signed, _) =
        PeerKey::new(&cluster.secret, "a test", 0).sign_request("POST", "/nacre/read-index", &to, &body, now_ms());
    let headers: Vec<(&str, &str)> = signed.iter().map(|(name, value)| (*name, value.as_str())).collect();
    let first = http::request_with_headers("POST", &to, "/nacre/read-index", &headers, &body).unwrap();
    assert_eq!(first.status, 200, "{}", first.text());
    let again = http::request_with_headers("POST", &to, "/nacre/read-index", &headers, &body).unwrap();
    assert_eq!((again.status, again.text()), (401, "a replayed peer request".to_string()));

    let after: Vec<u64> = (0..3).map(|i| term(&cluster, i)).collect();
    assert_eq!(after, terms, "no term moved");
    assert_eq!(cluster.wait_converged(), digest, "nothing was written");
    let stranger = cluster.get(leader, "/nacos/v1/cs/configs?dataId=stranger&group=G").unwrap();
    assert_eq!(stranger.status, 404, "the stranger's forwarded write was never committed");
}

#[test]
fn a_node_with_another_secret_cannot_join_vote_or_inject() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_leader();
    let victim = (leader + 1) % 3;
    let members: Vec<usize> = (0..3).filter(|n| *n != victim).collect();
    let terms: Vec<u64> = members.iter().map(|&i| term(&cluster, i)).collect();
    // A stray node on a member's address: the same cluster.conf, its own data and another
    // secret, as an operator's mistake or an attacker would start one. It campaigns, pings and
    // answers the leader's appends for as long as several election timeouts.
    cluster.kill_node(victim);
    cluster.start_stranger(victim);
    let registered = [("serviceName", "stray"), ("ip", "10.9.0.1"), ("port", "80")];
    for round in 0..8 {
        assert_eq!(publish(&cluster, leader, &format!("during-{round}")), 200, "the majority keeps writing");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    // Whatever the stray node answers its own client, none of it reaches the members.
    let _ = cluster.call(victim, "POST", &format!("{INSTANCE}?{}", query(&registered)));
    std::thread::sleep(std::time::Duration::from_secs(2));
    let now: Vec<u64> = members.iter().map(|&i| term(&cluster, i)).collect();
    assert_eq!(now, terms, "the stray node moved no member's term");
    assert_eq!(cluster.leader(), Some(leader), "leadership did not move");
    for &member in &members {
        assert!(list(&cluster, member, "stray")["hosts"].as_array().unwrap().is_empty(), "nothing injected");
    }
    let log = cluster.node_log(leader);
    assert!(log.contains("refused a peer request"), "the operator is told: {log}");
    // The real member comes back and catches up.
    cluster.kill_node(victim);
    cluster.start_node(victim);
    cluster.wait_ready();
    assert_unharmed(&cluster, "after-stranger-node");
}

#[test]
fn a_cluster_member_without_a_secret_refuses_to_start_and_says_how() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("cluster.conf");
    std::fs::write(&conf, "127.0.0.1:18848\n127.0.0.1:18858\n").unwrap();
    let serve = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_nacre"))
            .args(["serve", "--bind", "127.0.0.1", "--port", "18848", "--cluster-conf"])
            .arg(&conf)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(extra)
            .output()
            .unwrap()
    };
    let without = serve(&[]);
    assert!(!without.status.success());
    let said = String::from_utf8_lossy(&without.stderr);
    assert!(said.contains("nacre secret new"), "{said}");
    let bad = dir.path().join("bad.secret");
    std::fs::write(&bad, "not hex\n").unwrap();
    let with_bad = serve(&["--cluster-secret-file", bad.to_str().unwrap()]);
    assert!(!with_bad.status.success());
    assert!(String::from_utf8_lossy(&with_bad.stderr).contains("hex"), "{}", String::from_utf8_lossy(&with_bad.stderr));
    assert!(!dir.path().join("data").exists(), "nothing was created before the refusal");
}

/// A forwarded AP command that arrives after its sender gave up is not applied: a beat held up
/// on a stalled link must not re-register an instance its client has since deregistered.
#[test]
fn a_forwarded_ap_command_past_its_deadline_is_not_applied() {
    let cluster = Cluster::start(3);
    let id = nacre::partition::PartitionId {
        namespace: "public".into(),
        kind: ModuleKind::Naming,
        partition: "DEFAULT_GROUP@@late".into(),
    };
    let register = nacre_protocol::GuestRequest::new("naming.register")
        .param("serviceName", "late")
        .param("ip", "10.6.0.1")
        .param("port", "80");
    let command = |deadline_ms| nacre::ap::ForwardedCommand { id: id.clone(), request: register.clone(), deadline_ms };
    for node in 0..3 {
        let late = postcard::to_stdvec(&command(now_ms() - 1)).unwrap();
        let (status, body) = peer_call(&cluster, node, "/nacre/ap/apply", &late);
        assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
        assert!(String::from_utf8_lossy(&body).contains("after its deadline"));
    }
    std::thread::sleep(std::time::Duration::from_secs(1));
    for node in 0..3 {
        assert!(list(&cluster, node, "late")["hosts"].as_array().unwrap().is_empty(), "nothing applied on {node}");
    }
    // In time, the same command is applied.
    let on_time = postcard::to_stdvec(&command(now_ms() + 5_000)).unwrap();
    let (status, body) = peer_call(&cluster, 0, "/nacre/ap/apply", &on_time);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    wait_until("every node lists it", || {
        (0..3).all(|i| list(&cluster, i, "late")["hosts"].as_array().is_some_and(|h| h.len() == 1))
    });
}
