//! Platform-core tests against real `nacre serve` processes on loopback: elections,
//! forwarding, leader failure, snapshots and catch-up, crash recovery, hostile guests and
//! bad input.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;
use std::time::Instant;

use support::cluster::Cluster;
use support::cluster::wait_until;
use support::http;

const CONFIGS: &str = "/nacos/v1/cs/configs";

fn publish(cluster: &Cluster, node: usize, data_id: &str, content: &str) -> std::io::Result<http::Response> {
    cluster.post_form(node, CONFIGS, &[("dataId", data_id), ("group", "DEFAULT_GROUP"), ("content", content)])
}

fn read_config(cluster: &Cluster, node: usize, data_id: &str) -> Option<String> {
    let resp = cluster.get(node, &format!("{CONFIGS}?dataId={data_id}&group=DEFAULT_GROUP")).ok()?;
    (resp.status == 200).then(|| resp.text())
}

#[test]
fn one_leader_per_term_and_a_follower_write_is_readable_everywhere() {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_leader();
    let states: Vec<_> = (0..3).map(|i| cluster.state(i).unwrap()).collect();
    let leaders: Vec<_> = states.iter().filter(|s| s["role"] == "LEADER").collect();
    assert_eq!(leaders.len(), 1, "exactly one leader: {states:?}");
    let term = &leaders[0]["term"];
    for s in &states {
        if s["term"] == *term {
            assert_eq!(s["leader_address"], cluster.addr(leader), "every node in the term names the same leader");
        }
    }

    let follower = cluster.follower();
    let resp = publish(&cluster, follower, "via-follower", "hello from a follower").unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "true"));
    // Read-your-write on the node written through, with no wait.
    assert_eq!(read_config(&cluster, follower, "via-follower").as_deref(), Some("hello from a follower"));
    for i in 0..3 {
        wait_until("the follower's write is readable on every node", || {
            read_config(&cluster, i, "via-follower").as_deref() == Some("hello from a follower")
        });
    }
    cluster.wait_converged();
}

#[test]
fn no_acknowledged_write_is_lost_when_the_leader_is_killed() {
    const WRITES: usize = 120;
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_leader();
    let mut acknowledged = BTreeMap::new();
    let mut killed = false;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut attempt = 0usize;
    while acknowledged.len() < WRITES && Instant::now() < deadline {
        if acknowledged.len() == WRITES / 3 && !killed {
            cluster.kill_node(leader);
            killed = true;
        }
        let data_id = format!("key-{}", acknowledged.len());
        let content = format!("value-{}-{attempt}", acknowledged.len());
        let target = cluster.running()[attempt % cluster.running().len()];
        attempt += 1;
        match publish(&cluster, target, &data_id, &content) {
            Ok(resp) if resp.status == 200 && resp.text() == "true" => {
                acknowledged.insert(data_id, content);
            }
            // 503 while a new leader is elected, or a connection error: retry. Nothing else.
            Ok(resp) => assert_eq!(resp.status, 503, "unexpected answer {resp:?}"),
            Err(_) => {}
        }
    }
    assert!(killed, "the leader was killed mid-stream");
    assert_eq!(acknowledged.len(), WRITES, "writes kept being acknowledged after the leader died");
    let digest = cluster.wait_converged();
    for i in cluster.running() {
        for (data_id, content) in &acknowledged {
            assert_eq!(read_config(&cluster, i, data_id).as_ref(), Some(content), "node {i} lost {data_id}");
        }
    }
    // The old leader comes back and catches up to the same state.
    cluster.start_node(leader);
    cluster.wait_ready();
    let after = cluster.wait_converged();
    assert_eq!(after, digest, "a rejoining node does not change the state");
    for (data_id, content) in &acknowledged {
        assert_eq!(read_config(&cluster, leader, data_id).as_ref(), Some(content));
    }
}

/// Issue 15, finding 1: a leader killed while its own fsync of an entry is pending, after its
/// followers' fsyncs committed it and the client was answered, and restarted before the
/// followers time it out. It used to resume leading its old term with a log one entry short,
/// write its next entry at the committed entry's index, and leave the replicas at one index
/// with two digests for good. The failpoint (`raft::log_store::FAILPOINTS_ENV`) holds the
/// leader's fsync long enough to kill it in that window every time.
#[test]
fn a_leader_killed_before_its_own_fsync_and_restarted_at_once_keeps_every_acknowledged_write() {
    let mut cluster = Cluster::start_with_env(3, &[("NACRE_FAILPOINTS", "1")]);
    let leader = cluster.wait_leader();
    for i in 0..5 {
        let resp = publish(&cluster, leader, &format!("before-{i}"), "v").unwrap();
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
    let delay_file = cluster.nodes[leader].data_dir.join("failpoints/log-fsync-delay-ms");
    std::fs::create_dir_all(delay_file.parent().unwrap()).unwrap();
    std::fs::write(&delay_file, "5000").unwrap();
    let started = Instant::now();
    let resp = publish(&cluster, leader, "acknowledged", "committed by the followers").unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "true"));
    assert!(started.elapsed() < Duration::from_secs(4), "acknowledged before the leader's own fsync");
    cluster.kill_node(leader);
    std::fs::remove_file(&delay_file).unwrap();
    cluster.start_node(leader);

    // Writes through the restarted node: before the fix, the first of them took the
    // acknowledged entry's index in the old term.
    for i in 0..5 {
        wait_until("a write through the restarted node is acknowledged", || {
            publish(&cluster, leader, &format!("after-{i}"), "w").is_ok_and(|resp| resp.status == 200)
        });
    }
    cluster.wait_converged();
    for node in 0..3 {
        let linearizable = http::request_with_headers(
            "GET",
            cluster.addr(node),
            &format!("{CONFIGS}?dataId=acknowledged&group=DEFAULT_GROUP"),
            &[("X-Nacre-Consistency", "linearizable")],
            b"",
        )
        .unwrap();
        assert_eq!((linearizable.status, linearizable.text().as_str()), (200, "committed by the followers"));
    }
}

/// Issue 15, finding 3: a follower cut off for many election timeouts used to raise its term
/// at each and depose the leader when it came back (writes stopped for seconds). With
/// pre-vote it asks first, is refused, and costs nothing.
#[test]
fn a_follower_returning_from_a_partition_leaves_the_leader_and_term_alone() {
    let cluster = Cluster::start_with_links(3, &[]);
    let leader = cluster.wait_leader();
    let term = cluster.state(leader).unwrap()["term"].clone();
    let follower = cluster.follower();
    cluster.isolate(follower);
    std::thread::sleep(Duration::from_secs(6));
    cluster.heal();
    wait_until("the follower hears the leader again", || {
        cluster.state(follower).is_some_and(|s| s["leader_address"] == cluster.addr(leader))
    });
    // Long enough for a deposed leader to show: a higher term would reach it within a heartbeat.
    std::thread::sleep(Duration::from_secs(2));
    for node in 0..3 {
        let state = cluster.state(node).unwrap();
        assert_eq!(state["term"], term, "node {node}'s term moved: {state}");
        assert_eq!(state["leader_address"], cluster.addr(leader), "node {node}: {state}");
    }
    let resp = publish(&cluster, follower, "after-the-heal", "v").unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
}

/// Issue 16: SIGTERM stops a node cleanly. It stops accepting, answers what is in flight (a
/// held long-poll answers at once instead of at its timeout), stops its tasks and Raft,
/// flushes its log and exits 0 within seconds; a restart on the same data dir serves every
/// acknowledged write.
#[test]
fn sigterm_stops_a_node_cleanly_and_a_restart_keeps_every_acknowledged_write() {
    const WRITES: usize = 40;
    let mut cluster = Cluster::start(1);
    for i in 0..WRITES {
        let resp = publish(&cluster, 0, &format!("kept-{i}"), &format!("v{i}")).unwrap();
        assert_eq!((resp.status, resp.text().as_str()), (200, "true"));
    }
    let md5 = cluster.get(0, &format!("{CONFIGS}?dataId=kept-0&group=DEFAULT_GROUP")).unwrap();
    let md5 = md5.header("Content-MD5").unwrap().to_string();
    let addr = cluster.addr(0).to_string();
    let held = std::thread::spawn(move || {
        let probe = format!("kept-0\u{2}DEFAULT_GROUP\u{2}{md5}\u{1}");
        let body = http::form(&[("Listening-Configs", &probe)]);
        let headers = [("Content-Type", "application/x-www-form-urlencoded"), ("Long-Pulling-Timeout", "30000")];
        let started = Instant::now();
        let answer =
            http::request_with_headers("POST", &addr, "/nacos/v1/cs/configs/listener", &headers, body.as_bytes());
        (answer.map(|resp| resp.status), started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(500));
    let (status, took) = cluster.terminate_node(0);
    assert!(status.success(), "exit status {status}");
    assert!(took < Duration::from_secs(10), "took {took:?} to stop");
    let (answer, held_for) = held.join().unwrap();
    assert_eq!(answer.ok(), Some(200), "the held long-poll was answered, not cut");
    assert!(held_for < Duration::from_secs(10), "answered at shutdown, not at its timeout ({held_for:?})");
    assert!(cluster.node_log(0).contains("stopped"), "the node logged its orderly stop");

    cluster.start_node(0);
    cluster.wait_ready();
    for i in 0..WRITES {
        assert_eq!(read_config(&cluster, 0, &format!("kept-{i}")).as_deref(), Some(format!("v{i}").as_str()));
    }
}

#[test]
fn a_node_left_behind_past_a_snapshot_and_purge_catches_up() {
    let mut cluster = Cluster::start_with(3, &["--snapshot-every", "50", "--log-kept-behind-snapshot", "10"]);
    let leader = cluster.wait_leader();
    let lagging = (0..3).find(|i| *i != leader).unwrap();
    cluster.kill_node(lagging);
    // Four concurrent writers through both live nodes: snapshots and purges happen while
    // entries are being appended and applied (the purge-vs-apply race of openraft #2116).
    const WRITERS: usize = 4;
    const WRITES_PER_WRITER: usize = 50;
    std::thread::scope(|scope| {
        for w in 0..WRITERS {
            let cluster = &cluster;
            scope.spawn(move || {
                let node = cluster.running()[w % 2];
                for k in 0..WRITES_PER_WRITER {
                    let n = w * WRITES_PER_WRITER + k;
                    let resp = publish(cluster, node, &format!("snap-{n}"), &format!("v{n}")).unwrap();
                    assert_eq!(resp.status, 200, "{}", resp.text());
                }
            });
        }
    });
    wait_until("the others snapshot and purge their logs", || {
        cluster.running().iter().all(|i| {
            cluster
                .state(*i)
                .is_some_and(|s| s["snapshot_index"].as_u64() > Some(100) && s["purged_index"].as_u64() > Some(0))
        })
    });
    cluster.start_node(lagging);
    let digest = cluster.wait_converged();
    let state = cluster.state(lagging).unwrap();
    assert!(state["snapshot_index"].as_u64() > Some(0), "the lagging node installed a snapshot: {state}");
    assert_eq!(state["digest"], digest);
    assert_eq!(read_config(&cluster, lagging, "snap-0").as_deref(), Some("v0"));
    assert_eq!(read_config(&cluster, lagging, "snap-199").as_deref(), Some("v199"));
}

/// Between snapshots, nodes write checkpoints (the keys changed since the last one); a whole
/// cluster killed and started again reads them instead of re-applying the log through the
/// guests, and comes back with every write, deletions included, and one digest.
#[test]
fn a_cluster_killed_between_snapshots_restarts_from_its_checkpoints_with_every_write() {
    // No snapshot is ever due; a checkpoint every 40 entries.
    let mut cluster = Cluster::start_with(3, &["--snapshot-every", "1000000", "--checkpoint-every", "40"]);
    const WRITES: usize = 150;
    let checkpoints_written = |cluster: &Cluster, at_least: usize| {
        wait_until(&format!("every node writes {at_least} checkpoint(s)"), || {
            (0..3).all(|i| cluster.node_log(i).matches("wrote checkpoint").count() >= at_least)
        });
    };
    // Two rounds, each more than 40 entries, with a quiet moment between them, so that the
    // restart reads a chain of at least two on every node (a checkpoint is written once the
    // node's own log holds its index durably; the quiet moment lets every node finish one).
    for n in 0..WRITES {
        let resp = publish(&cluster, n % 3, &format!("kept-{n}"), &format!("v{n}")).unwrap();
        assert_eq!(resp.status, 200, "{}", resp.text());
        if n == WRITES / 2 {
            cluster.wait_converged();
            checkpoints_written(&cluster, 1);
        }
    }
    for n in (0..WRITES).step_by(10) {
        let resp = cluster.call(n % 3, "DELETE", &format!("{CONFIGS}?dataId=kept-{n}&group=DEFAULT_GROUP")).unwrap();
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
    let digest = cluster.wait_converged();
    checkpoints_written(&cluster, 2);
    for i in 0..3 {
        cluster.kill_node(i);
    }
    for i in 0..3 {
        cluster.start_node(i);
    }
    cluster.wait_ready();
    assert_eq!(cluster.wait_converged(), digest);
    for i in 0..3 {
        let log = cluster.node_log(i);
        assert!(log.contains("restored checkpoints"), "node {i} read its checkpoints:\n{log}");
        assert!(!log.contains("a checkpoint was not read"), "node {i}:\n{log}");
    }
    for n in 0..WRITES {
        let expected = (n % 10 != 0).then(|| format!("v{n}"));
        assert_eq!(read_config(&cluster, n % 3, &format!("kept-{n}")), expected, "kept-{n}");
    }
}

#[test]
fn a_single_node_killed_and_restarted_keeps_every_acknowledged_write() {
    let mut cluster = Cluster::start(1);
    for n in 0..60 {
        let resp = publish(&cluster, 0, &format!("durable-{n}"), &format!("content {n} é")).unwrap();
        assert_eq!(resp.status, 200);
    }
    let before = cluster.state(0).unwrap();
    cluster.kill_node(0);
    cluster.start_node(0);
    cluster.wait_ready();
    wait_until("the restarted node re-applies its log", || {
        cluster.state(0).is_some_and(|s| s["applied_index"].as_u64() >= before["applied_index"].as_u64())
    });
    for n in 0..60 {
        assert_eq!(read_config(&cluster, 0, &format!("durable-{n}")), Some(format!("content {n} é")));
    }
    assert_eq!(cluster.state(0).unwrap()["digest"], before["digest"]);
}

#[test]
fn hostile_guests_fail_only_their_own_entry() {
    let cluster = Cluster::start(3);
    let node = cluster.follower();
    let resp = http::request("POST", cluster.addr(node), "/nacre/v1/modules", None, nacre::builtin::fixtures::HOSTILE)
        .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let module_id = resp.json()["id"].as_str().unwrap().to_string();
    let resp = cluster
        .post_form(node, "/nacre/v1/bindings", &[("namespace", "hostile"), ("kind", "config"), ("module", &module_id)])
        .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());

    let exec = |op: &str, extra: &[(&str, &str)]| {
        let mut pairs = vec![("namespace", "hostile"), ("kind", "config"), ("op", op)];
        pairs.extend_from_slice(extra);
        cluster.post_form(node, "/nacre/v1/exec", &pairs).unwrap()
    };
    assert_eq!(exec("put", &[("key", "before"), ("value", "1")]).status, 200);
    for (op, expected) in [("loop", "fuel"), ("hog", "memory"), ("trap", "trap"), ("deep", ""), ("bad-key", "")] {
        let resp = exec(op, &[]);
        assert_eq!(resp.status, 500, "{op} fails its own entry: {}", resp.text());
        assert!(resp.text().to_lowercase().contains(expected), "{op}: {}", resp.text());
    }
    assert_eq!(exec("put", &[("key", "after"), ("value", "2")]).status, 200);
    // The cluster keeps serving other namespaces through the built-in module.
    let resp = publish(&cluster, node, "still-serving", "yes").unwrap();
    assert_eq!(resp.status, 200);
    cluster.wait_converged();
    let get = cluster.get(node, "/nacre/v1/exec?namespace=hostile&kind=config&op=get&key=after").unwrap();
    assert_eq!(get.status, 200, "{}", get.text());
}

#[test]
fn bad_input_gets_400_naming_the_field_and_oversized_bodies_413() {
    let cluster = Cluster::start(1);
    let resp = cluster.post_form(0, CONFIGS, &[("group", "DEFAULT_GROUP"), ("content", "x")]).unwrap();
    assert_eq!(resp.status, 400);
    assert!(resp.text().contains("dataId"), "{}", resp.text());
    let resp = cluster.post_form(0, CONFIGS, &[("dataId", "a"), ("group", "DEFAULT_GROUP")]).unwrap();
    assert_eq!(resp.status, 400);
    assert!(resp.text().contains("content"), "{}", resp.text());
    let resp = cluster.post_form(0, CONFIGS, &[("dataId", "bad id!"), ("group", "G"), ("content", "x")]).unwrap();
    assert_eq!(resp.status, 400);
    assert!(resp.text().contains("dataId"), "{}", resp.text());
    let resp = cluster
        .post_form(0, CONFIGS, &[("dataId", "a"), ("group", "G"), ("content", "x"), ("tenant", "no spaces")])
        .unwrap();
    assert_eq!(resp.status, 400);
    assert!(resp.text().contains("tenant"), "{}", resp.text());
    let resp = cluster.get(0, &format!("{CONFIGS}?dataId=missing&group=DEFAULT_GROUP")).unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (404, "config data not exist"));
    let huge = vec![b'a'; 5 * 1024 * 1024];
    let resp =
        http::request("POST", cluster.addr(0), CONFIGS, Some("application/x-www-form-urlencoded"), &huge).unwrap();
    assert_eq!(resp.status, 413);
    // Nothing of the refused requests was applied.
    assert_eq!(cluster.get(0, &format!("{CONFIGS}?dataId=a&group=G")).unwrap().status, 404);
}

#[test]
fn nacos_ops_endpoints_name_the_leader_on_every_node_and_a_dead_member_as_down() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_leader();
    let leader_addr = cluster.addr(leader).to_string();
    let json = |cluster: &Cluster, i: usize, path: &str| {
        let resp = cluster.get(i, path).unwrap();
        assert_eq!(resp.status, 200, "{path} on node {i}: {}", resp.text());
        resp.json()
    };
    for i in 0..3 {
        let state = json(&cluster, i, "/nacos/v1/ns/raft/state");
        assert_eq!(state["leader"], leader_addr.as_str(), "node {i}: {state}");
        let peers = state["peers"].as_array().unwrap();
        assert_eq!(peers.len(), 3, "{state}");
        let leaders: Vec<_> = peers.iter().filter(|p| p["state"] == "LEADER").collect();
        assert_eq!(leaders.len(), 1, "{state}");
        assert_eq!(leaders[0]["ip"], leader_addr.as_str());
        let term = &leaders[0]["term"];
        assert!(peers.iter().all(|p| p["voteFor"] == leader_addr.as_str() && p["term"] == *term), "{state}");

        let said = json(&cluster, i, "/nacos/v1/ns/raft/leader");
        let peer: serde_json::Value = serde_json::from_str(said["leader"].as_str().unwrap()).unwrap();
        assert_eq!((peer["ip"].as_str(), peer["state"].as_str()), (Some(leader_addr.as_str()), Some("LEADER")));

        let servers = json(&cluster, i, "/nacos/v1/ns/operator/servers");
        let states: Vec<_> = servers["servers"].as_array().unwrap().iter().map(|s| s["state"].clone()).collect();
        assert_eq!(states, ["UP", "UP", "UP"], "{servers}");
    }

    let follower = cluster.follower();
    cluster.kill_node(follower);
    let witness = (0..3).find(|i| *i != follower).unwrap();
    let state = json(&cluster, witness, "/nacos/v1/ns/raft/state");
    let dead = state["peers"].as_array().unwrap().iter().find(|p| p["ip"] == cluster.addr(follower)).cloned();
    assert_eq!(dead.map(|p| p["state"].clone()), Some("DOWN".into()), "{state}");
    // Nacos's member states: SUSPICIOUS while this node's pings saw it lately, DOWN after.
    let member_state = |cluster: &Cluster| {
        let servers = json(cluster, witness, "/nacos/v1/ns/operator/servers");
        let dead = servers["servers"].as_array().unwrap().iter().find(|s| s["address"] == cluster.addr(follower));
        dead.map(|s| (s["state"].as_str().unwrap().to_string(), s["failAccessCnt"].as_u64().unwrap()))
    };
    let first = member_state(&cluster).unwrap();
    assert!(first == ("SUSPICIOUS".into(), 1) || first == ("DOWN".into(), 3), "{first:?}");
    wait_until("the killed member is DOWN", || member_state(&cluster) == Some(("DOWN".into(), 3)));
}

/// The samples of an OpenMetrics text, `name{labels}` → value; panics on a line that is not a
/// comment, a sample or the closing `# EOF`.
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    assert!(text.ends_with("# EOF\n"), "OpenMetrics text ends with # EOF");
    let mut samples = BTreeMap::new();
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "metric name in {line:?}"
        );
        if name_end < series.len() {
            let labels = &series[name_end..];
            assert!(labels.starts_with('{') && labels.ends_with('}'), "labels in {line:?}");
            for pair in labels[1..labels.len() - 1].split("\",").filter(|p| !p.is_empty()) {
                let (key, quoted) = pair.split_once('=').unwrap_or_else(|| panic!("label in {line:?}"));
                assert!(!key.is_empty() && quoted.starts_with('"'), "label {pair:?} in {line:?}");
            }
        }
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value in {line:?}"));
        samples.insert(series.to_string(), value);
    }
    samples
}

#[test]
fn metrics_parse_as_openmetrics_and_move_with_the_cluster() {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_leader();
    let scrape = |i: usize| {
        let resp = cluster.get(i, "/metrics").unwrap();
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert!(resp.header("content-type").is_some_and(|t| t.starts_with("application/openmetrics-text")));
        parse_metrics(&resp.text())
    };
    let leaders: f64 = (0..3).map(|i| scrape(i)["nacre_raft_is_leader"]).sum();
    assert_eq!(leaders, 1.0, "exactly one node says it leads");
    let before = scrape(leader);
    let publishes = r#"nacre_http_requests_total{method="POST",route="/nacos/v1/cs/configs",status="200"}"#;
    for n in 0..5 {
        let resp = publish(&cluster, leader, &format!("metrics-{n}"), "v").unwrap();
        assert_eq!(resp.status, 200);
    }
    let after = scrape(leader);
    assert_eq!(after[publishes] - before.get(publishes).copied().unwrap_or(0.0), 5.0);
    assert!(after["nacre_raft_applied_index"] >= before["nacre_raft_applied_index"] + 5.0);
    assert!(after["nacre_raft_committed_index"] >= after["nacre_raft_applied_index"]);
    assert!(after["nacre_resident_memory_bytes"] > 0.0);
    let lags: Vec<_> = after.keys().filter(|k| k.starts_with("nacre_raft_follower_lag_entries{")).collect();
    assert_eq!(lags.len(), 2, "the leader reports both followers: {lags:?}");
    let latency = r#"nacre_http_request_seconds_count{method="POST",route="/nacos/v1/cs/configs",status="200"}"#;
    assert_eq!(after[latency], after[publishes], "every request has its latency observed");
    assert!(after["nacre_raft_leaderships"] >= 1.0, "the leader counted its win");
    assert!(after["nacre_guest_calls"] > before["nacre_guest_calls"], "the publishes ran the config module");
    assert!(after["nacre_guest_fuel_consumed"] > before["nacre_guest_fuel_consumed"]);
    let elected: f64 = (0..3).map(|i| scrape(i)["nacre_raft_votes_handled"]).sum();
    assert!(elected >= 1.0, "someone answered the election's vote requests");
}
