//! The AP path for ephemeral instances, on real clusters whose peer links run through
//! fault-injecting proxies: both sides of a partition keep registering and beating while the
//! minority refuses persistent writes; the sides converge after the heal; the responsible
//! node of a service dies and another takes over (and, restarted, pulls the AP keyspace
//! before it reports ready); a late copy does not resurrect a deregistered instance;
//! self-preservation engages and releases.

mod support;

use std::time::Duration;
use std::time::Instant;

use serde_json::Value;
use support::cluster::Cluster;
use support::cluster::wait_until;
use support::naming::BEAT;
use support::naming::INSTANCE;
use support::naming::beat;
use support::naming::hosts;
use support::naming::list;
use support::naming::query;
use support::naming::register;

/// How long the cluster may take to converge after a partition heals (the issue's bound).
const HEAL_CONVERGENCE: Duration = Duration::from_secs(10);
/// Short timeouts, so that tests see beats lapse and instances expire in seconds.
const QUICK_LEASE: &str = r#"{"preserved.heart.beat.interval":"500","preserved.heart.beat.timeout":"2000","preserved.ip.delete.timeout":"4000"}"#;

fn metrics(cluster: &Cluster, node: usize) -> Value {
    cluster.get(node, "/nacos/v1/ns/operator/metrics").unwrap().json()
}

/// The node responsible for a service, as node `asked` sees it.
fn responsible(cluster: &Cluster, asked: usize, grouped: &str) -> usize {
    let path = format!("/nacre/v1/ap?{}", query(&[("partition", grouped)]));
    let answer = cluster.get(asked, &path).unwrap().json();
    let addr = answer["responsible"].as_str().unwrap().to_string();
    (0..cluster.nodes.len()).find(|i| cluster.addr(*i) == addr).expect("a member address")
}

fn ap_digests(cluster: &Cluster) -> Vec<String> {
    cluster
        .running()
        .iter()
        .filter_map(|i| cluster.state(*i))
        .map(|s| s["ap_digest"].as_str().unwrap().into())
        .collect()
}

fn listed(cluster: &Cluster, node: usize, service: &str) -> Vec<String> {
    hosts(&list(cluster, node, service)).into_iter().map(|(addr, _)| addr).collect()
}

/// Beat `(service, ip, port)` through `node` every 500 ms for `how_long`.
fn keep_beating(cluster: &Cluster, node: usize, instances: &[(&str, &str, u16)], how_long: Duration) {
    let end = Instant::now() + how_long;
    while Instant::now() < end {
        for (service, ip, port) in instances {
            beat(cluster, node, service, ip, *port, true);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_minority_side_keeps_ephemeral_writes_refuses_persistent_ones_and_converges_after_the_heal() {
    let cluster = Cluster::start_with_links(3, &[]);
    let minority = cluster.wait_leader();
    let majority = (minority + 1) % 3;
    cluster.isolate(minority);
    wait_until("the cut is seen on both sides", || {
        metrics(&cluster, minority)["liveMembers"] == 1 && metrics(&cluster, majority)["liveMembers"] == 2
    });

    register(&cluster, minority, &[("serviceName", "cut-off"), ("ip", "10.1.0.1"), ("port", "80")]);
    register(&cluster, majority, &[("serviceName", "mainland"), ("ip", "10.2.0.1"), ("port", "80")]);
    assert_eq!(beat(&cluster, minority, "DEFAULT_GROUP@@cut-off", "10.1.0.1", 80, false)["code"], 10200);
    assert_eq!(beat(&cluster, majority, "DEFAULT_GROUP@@mainland", "10.2.0.1", 80, false)["code"], 10200);
    assert_eq!(listed(&cluster, minority, "cut-off"), ["10.1.0.1:80"]);
    assert_eq!(listed(&cluster, majority, "mainland"), ["10.2.0.1:80"]);

    // Persistent (CP) writes fail fast on the minority, with a reason; the majority elects a
    // new leader and takes them.
    let persistent = [("serviceName", "db"), ("ip", "10.3.0.1"), ("port", "5432"), ("ephemeral", "false")];
    let started = Instant::now();
    let refused = cluster.call(minority, "POST", &format!("{INSTANCE}?{}", query(&persistent))).unwrap();
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert!(refused.text().contains("majority"), "{}", refused.text());
    assert!(started.elapsed() < Duration::from_secs(2), "refused in {:?}", started.elapsed());
    wait_until("the majority commits a persistent write", || {
        let resp = cluster.call(majority, "POST", &format!("{INSTANCE}?{}", query(&persistent))).unwrap();
        resp.status == 200
    });

    cluster.heal();
    let healed = Instant::now();
    wait_until("every node holds both sides' instances with one AP digest", || {
        let digests = ap_digests(&cluster);
        digests.len() == 3
            && digests.iter().all(|d| *d == digests[0])
            && (0..3).all(|i| listed(&cluster, i, "cut-off").len() == 1 && listed(&cluster, i, "mainland").len() == 1)
    });
    assert!(healed.elapsed() < HEAL_CONVERGENCE, "converged {:?} after the heal", healed.elapsed());
    cluster.wait_converged();
    for node in 0..3 {
        assert_eq!(listed(&cluster, node, "db"), ["10.3.0.1:5432"], "node {node}");
    }
}

#[test]
fn when_the_responsible_node_dies_another_takes_over_and_beating_instances_stay_healthy() {
    let mut cluster = Cluster::start(3);
    let quick = [("metadata", QUICK_LEASE)];
    for (ip, port) in [("10.4.0.1", "80"), ("10.4.0.2", "80")] {
        let pairs = [[("serviceName", "orders"), ("ip", ip), ("port", port)].as_slice(), &quick].concat();
        register(&cluster, 0, &pairs);
    }
    let owner = responsible(&cluster, 0, "DEFAULT_GROUP@@orders");
    let survivor = (owner + 1) % 3;
    wait_until("every node lists both instances", || (0..3).all(|i| listed(&cluster, i, "orders").len() == 2));
    cluster.kill_node(owner);
    wait_until("responsibility moves to a survivor", || {
        responsible(&cluster, survivor, "DEFAULT_GROUP@@orders") != owner
    });

    // 10.4.0.1 keeps beating through the survivor; 10.4.0.2 is silent and must expire under
    // its new responsible node (lease timeout 4 s, plus the grace of the view change).
    let end = Instant::now() + Duration::from_secs(12);
    while Instant::now() < end {
        beat(&cluster, survivor, "DEFAULT_GROUP@@orders", "10.4.0.1", 80, true);
        let now = hosts(&list(&cluster, survivor, "orders"));
        assert!(now.contains(&("10.4.0.1:80".to_string(), true)), "the beating instance stays healthy: {now:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    for node in cluster.running() {
        assert_eq!(listed(&cluster, node, "orders"), ["10.4.0.1:80"], "node {node}: the silent one expired");
    }

    // The dead node comes back empty (the AP keyspace is in memory) and pulls it from a peer
    // before it reports ready.
    cluster.start_node(owner);
    cluster.wait_ready();
    assert_eq!(listed(&cluster, owner, "orders"), ["10.4.0.1:80"], "pulled before ready");
}

#[test]
fn a_deregistered_instance_is_not_resurrected_by_a_late_copy() {
    let cluster = Cluster::start_with_links(3, &[]);
    register(&cluster, 0, &[("serviceName", "pay"), ("ip", "10.5.0.1"), ("port", "80")]);
    wait_until("every node lists the instance", || (0..3).all(|i| listed(&cluster, i, "pay").len() == 1));
    let owner = responsible(&cluster, 0, "DEFAULT_GROUP@@pay");
    let stale = (owner + 1) % 3;
    cluster.isolate(stale);
    wait_until("the stale node is cut off", || metrics(&cluster, owner)["liveMembers"] == 2);
    let deregister = query(&[("serviceName", "pay"), ("ip", "10.5.0.1"), ("port", "80")]);
    let resp = cluster.call(owner, "DELETE", &format!("{INSTANCE}?{deregister}")).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(listed(&cluster, owner, "pay").is_empty());
    assert_eq!(listed(&cluster, stale, "pay").len(), 1, "the cut-off node still holds its old copy");

    cluster.heal();
    wait_until("one AP digest again", || {
        let digests = ap_digests(&cluster);
        digests.len() == 3 && digests.iter().all(|d| *d == digests[0])
    });
    // Several verification rounds later, the old copy has still not come back anywhere.
    std::thread::sleep(Duration::from_secs(7));
    for node in 0..3 {
        assert!(listed(&cluster, node, "pay").is_empty(), "node {node} resurrected the instance");
    }
}

#[test]
fn self_preservation_engages_when_most_beats_stop_and_releases_when_they_return() {
    let cluster = Cluster::start(3);
    let instances: Vec<(String, u16)> = (1..=10).map(|i| (format!("10.6.0.{i}"), 80)).collect();
    for (ip, _) in &instances {
        register(&cluster, 0, &[("serviceName", "fleet"), ("ip", ip), ("port", "80"), ("metadata", QUICK_LEASE)]);
    }
    let owner = responsible(&cluster, 0, "DEFAULT_GROUP@@fleet");
    let all: Vec<(&str, &str, u16)> =
        instances.iter().map(|(ip, port)| ("DEFAULT_GROUP@@fleet", ip.as_str(), *port)).collect();
    keep_beating(&cluster, 0, &all, Duration::from_secs(2));
    assert_eq!(metrics(&cluster, owner)["selfPreservation"]["engaged"], false);

    // Nine of ten stop at once: the node suspects itself and expires nothing, well past the
    // instances' 4 s deletion timeout. They are still marked unhealthy.
    keep_beating(&cluster, 0, &all[..1], Duration::from_secs(7));
    assert_eq!(metrics(&cluster, owner)["selfPreservation"]["engaged"], true, "{}", metrics(&cluster, owner));
    let during = hosts(&list(&cluster, owner, "fleet"));
    assert_eq!(during.len(), 10, "nothing expired while preserving: {during:?}");
    assert_eq!(during.iter().filter(|(_, healthy)| *healthy).count(), 1, "{during:?}");

    // Beats return: health comes back and preservation releases.
    keep_beating(&cluster, 0, &all, Duration::from_secs(3));
    wait_until("preservation releases", || metrics(&cluster, owner)["selfPreservation"]["engaged"] == false);
    assert!(hosts(&list(&cluster, owner, "fleet")).iter().all(|(_, healthy)| *healthy));

    // One of ten stopping is an ordinary expiry.
    keep_beating(&cluster, 0, &all[1..], Duration::from_secs(7));
    assert_eq!(listed(&cluster, owner, "fleet").len(), 9, "the one silent instance expired");
}

#[test]
fn beats_for_an_unknown_instance_ask_to_register_on_every_node() {
    let cluster = Cluster::start(3);
    for node in 0..3 {
        let pairs = query(&[("serviceName", "ghost"), ("ip", "10.7.0.1"), ("port", "80")]);
        let resp = cluster.call(node, "PUT", &format!("{BEAT}?{pairs}")).unwrap();
        assert_eq!((resp.status, resp.json()["code"].clone()), (200, Value::from(20404)), "node {node}");
    }
}

/// A registration through a node that is not responsible for the service is forwarded; the
/// node answers only once it holds the records itself, so a list through it right after the
/// answer shows the instance (read-your-writes on the node a client talks to), whatever the
/// timing of the asynchronous replication.
#[test]
fn a_forwarded_registration_is_listed_at_once_by_the_node_it_came_through() {
    let cluster = Cluster::start(3);
    cluster.wait_ready();
    let mut forwarded = 0;
    for n in 0..24 {
        let service = format!("ryw-{n}");
        let through = n % 3;
        if responsible(&cluster, through, &format!("DEFAULT_GROUP@@{service}")) == through {
            continue;
        }
        forwarded += 1;
        for port in [8001u16, 8002, 8003] {
            let port = port.to_string();
            register(&cluster, through, &[("serviceName", &service), ("ip", "10.9.0.1"), ("port", &port)]);
            let ports: Vec<String> = listed(&cluster, through, &service);
            assert!(ports.iter().any(|addr| addr.ends_with(&format!(":{port}"))), "{service}: {port} not in {ports:?}");
        }
    }
    assert!(forwarded >= 4, "too few services owned by another node to test: {forwarded}");
}

/// One AP digest on every running node.
fn wait_ap_converged(cluster: &Cluster) {
    wait_until("one AP digest again", || {
        let digests = ap_digests(cluster);
        digests.len() == cluster.running().len() && digests.iter().all(|d| *d == digests[0])
    });
}

/// Issue 15, finding 2a: an instance registered on the majority side during a partition and
/// deregistered through the minority side, which never saw it. The deregistration used to
/// answer `ok` and write nothing; at the heal the instance was listed everywhere again.
#[test]
fn a_deregistration_through_a_node_that_never_saw_the_instance_holds_after_the_heal() {
    let cluster = Cluster::start_with_links(3, &[]);
    let minority = 2;
    cluster.isolate(minority);
    wait_until("both sides see the cut", || {
        metrics(&cluster, 0)["liveMembers"] == 2 && metrics(&cluster, minority)["liveMembers"] == 1
    });
    let instance = [("serviceName", "unseen"), ("ip", "10.6.0.1"), ("port", "80")];
    register(&cluster, 0, &instance);
    wait_until("the majority lists it", || listed(&cluster, 1, "unseen").len() == 1);
    assert!(listed(&cluster, minority, "unseen").is_empty(), "the minority never saw it");
    let deregister = query(&[instance.as_slice(), &[("ephemeral", "true")]].concat());
    let resp = cluster.call(minority, "DELETE", &format!("{INSTANCE}?{deregister}")).unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "ok"));

    cluster.heal();
    wait_ap_converged(&cluster);
    std::thread::sleep(Duration::from_secs(4)); // a verification round more, for a late copy
    for node in 0..3 {
        assert!(listed(&cluster, node, "unseen").is_empty(), "node {node} lists a deregistered instance");
    }
}

/// Issue 15, finding 2b: an instance both sides hold, deregistered on the minority side; the
/// majority, hearing no beats, marks it unhealthy later than that. The sweep's newer version
/// used to win at the heal and list the instance everywhere until it expired (30 s here).
#[test]
fn a_deregistration_beats_the_other_sides_later_unhealthy_mark() {
    const UNHEALTHY_SOON: &str = r#"{"preserved.heart.beat.timeout":"1500","preserved.ip.delete.timeout":"60000"}"#;
    let cluster = Cluster::start_with_links(3, &[]);
    let instance = [("serviceName", "marked"), ("ip", "10.6.0.2"), ("port", "80")];
    register(&cluster, 0, &[instance.as_slice(), &[("metadata", UNHEALTHY_SOON)]].concat());
    wait_until("every node lists it", || (0..3).all(|i| listed(&cluster, i, "marked").len() == 1));
    let minority = 2;
    cluster.isolate(minority);
    wait_until("both sides see the cut", || {
        metrics(&cluster, 0)["liveMembers"] == 2 && metrics(&cluster, minority)["liveMembers"] == 1
    });
    let deregister = query(&[instance.as_slice(), &[("ephemeral", "true")]].concat());
    let resp = cluster.call(minority, "DELETE", &format!("{INSTANCE}?{deregister}")).unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "ok"));
    assert!(listed(&cluster, minority, "marked").is_empty());
    // The record itself (a list of a service whose every instance is unhealthy reports them
    // healthy: Nacos's protect threshold).
    let detail = format!("{INSTANCE}?{}", query(&instance));
    wait_until("the majority marks the silent instance unhealthy", || {
        cluster.get(0, &detail).is_ok_and(|resp| resp.status == 200 && resp.json()["healthy"] == false)
    });

    cluster.heal();
    wait_ap_converged(&cluster);
    std::thread::sleep(Duration::from_secs(4));
    for node in 0..3 {
        assert!(listed(&cluster, node, "marked").is_empty(), "node {node} brought the instance back");
    }
}

/// The nemesis's finding (seed 735048259): a node isolated from both peers applies a
/// deregistration alone and acknowledges it; it is killed before its outbox ships the
/// tombstone. Restarted, it used to pull the others' live copy and the instance was listed on
/// every node again. The write is journaled before it is acknowledged and replayed at start.
#[test]
fn an_acknowledged_deregistration_survives_its_node_killed_before_it_shipped_it() {
    use support::proxy::Failure;
    let mut cluster = Cluster::start_with_links(3, &[]);
    let instance = [("serviceName", "journaled"), ("ip", "10.6.0.3"), ("port", "80")];
    register(&cluster, 0, &instance);
    wait_until("every node lists it", || (0..3).all(|i| listed(&cluster, i, "journaled").len() == 1));
    let alone = responsible(&cluster, 0, "DEFAULT_GROUP@@journaled");
    cluster.isolate_as(alone, Failure::Reset);
    let deregister = query(&[instance.as_slice(), &[("ephemeral", "true")]].concat());
    let resp = cluster.call(alone, "DELETE", &format!("{INSTANCE}?{deregister}")).unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "ok"), "applied by the isolated node alone");
    cluster.kill_node(alone);
    cluster.heal();
    for node in (0..3).filter(|n| *n != alone) {
        assert_eq!(listed(&cluster, node, "journaled").len(), 1, "node {node} never heard of the deregistration");
    }
    cluster.start_node(alone);
    cluster.wait_ready();
    wait_ap_converged(&cluster);
    std::thread::sleep(Duration::from_secs(4)); // a verification round more
    for node in 0..3 {
        assert!(listed(&cluster, node, "journaled").is_empty(), "node {node} lists the deregistered instance");
    }
    assert!(cluster.node_log(alone).contains("replaying this node's journaled AP writes"));
}
