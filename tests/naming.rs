//! Naming service tests against real 3-node clusters of `nacre serve` processes: instances
//! registered anywhere are listed everywhere and survive a leader kill; heartbeats keep
//! ephemeral instances (renewals forwarded from followers to the leader) and silence expires
//! them; subscribers get UDP pushes; persistent instances follow TCP and HTTP probes.

mod support;

use std::io::Read as _;
use std::io::Write as _;
use std::net::TcpListener;
use std::net::UdpSocket;
use std::time::Duration;
use std::time::Instant;

use serde_json::Value;
use support::cluster::Cluster;
use support::cluster::wait_until;
use support::http;
use support::naming::*;

#[test]
fn instances_registered_anywhere_are_listed_everywhere_and_survive_a_leader_kill() {
    let mut cluster = Cluster::start(3);
    let follower = cluster.follower();
    // A persistent instance is TCP-probed on its port (Nacos's default): give it a listener.
    let probe_target = TcpListener::bind("127.0.0.1:0").unwrap();
    let persistent_port = probe_target.local_addr().unwrap().port().to_string();
    register(
        &cluster,
        follower,
        &[("serviceName", "orders"), ("ip", "10.0.0.1"), ("port", "8080"), ("metadata", r#"{"zone":"a"}"#)],
    );
    register(
        &cluster,
        follower,
        &[
            ("serviceName", "DEFAULT_GROUP@@orders"),
            ("ip", "127.0.0.1"),
            ("port", &persistent_port),
            ("ephemeral", "False"),
            ("clusterName", "None"),
        ],
    );
    // A linearizable read through any node sees both writes at once, without waiting for
    // that replica to catch up by itself.
    for node in 0..3 {
        let path = format!("{LIST}?serviceName=orders");
        let consistent = [("X-Nacre-Consistency", "linearizable")];
        let resp = http::request_with_headers("GET", cluster.addr(node), &path, &consistent, b"").unwrap();
        assert_eq!(hosts(&resp.json()).len(), 2, "linearizable list through node {node}");
    }
    let listing = list(&cluster, 0, "orders");
    assert_eq!(listing["name"], "DEFAULT_GROUP@@orders");
    assert_eq!(listing["clusters"], "");
    let first = listing["hosts"].as_array().unwrap().iter().find(|h| h["ip"] == "10.0.0.1").unwrap().clone();
    assert_eq!(first["instanceId"], "10.0.0.1#8080#DEFAULT#DEFAULT_GROUP@@orders");
    assert_eq!(first["metadata"]["zone"], "a");
    assert_eq!(first["ephemeral"], true);

    let leader = cluster.wait_leader();
    cluster.kill_node(leader);
    let survivor = cluster.running()[0];
    wait_until("a new leader", || cluster.leader().is_some_and(|l| l != leader));
    let after = hosts(&list(&cluster, survivor, "orders"));
    assert_eq!(after.len(), 2, "instances survive the leader change: {after:?}");
    // The new leader can write: deregister through the other survivor.
    let other = cluster.running()[1];
    let resp = cluster
        .call(
            other,
            "DELETE",
            &format!("{INSTANCE}?{}", query(&[("serviceName", "orders"), ("ip", "10.0.0.1"), ("port", "8080")])),
        )
        .unwrap();
    assert_eq!(resp.text(), "ok");
    wait_until("deregistered everywhere", || {
        cluster.running().iter().all(|n| hosts(&list(&cluster, *n, "orders")).len() == 1)
    });
    drop(probe_target);
}

#[test]
fn heartbeats_keep_instances_healthy_and_silence_expires_them() {
    let cluster = Cluster::start(3);
    let follower = cluster.follower();
    let quick = r#"{"preserved.heart.beat.interval":"300","preserved.heart.beat.timeout":"1500","preserved.ip.delete.timeout":"3000"}"#;
    for port in ["7001", "7002"] {
        register(
            &cluster,
            follower,
            &[("serviceName", "pay"), ("ip", "10.1.0.1"), ("port", port), ("metadata", quick)],
        );
    }
    let started = Instant::now();
    let mut saw_silent_unhealthy = false;
    // Beat 7001 through a follower (its renewals travel to the leader) until 7002 is gone.
    while started.elapsed() < Duration::from_secs(30) {
        let reply = beat(&cluster, follower, "DEFAULT_GROUP@@pay", "10.1.0.1", 7001, false);
        assert_eq!(reply["code"], 10200, "{reply}");
        assert_eq!(reply["clientBeatInterval"], 300, "interval from preserved.heart.beat.interval");
        let now = hosts(&list(&cluster, follower, "pay"));
        assert!(now.contains(&("10.1.0.1:7001".to_string(), true)), "the beating instance stays healthy: {now:?}");
        saw_silent_unhealthy |= now.contains(&("10.1.0.1:7002".to_string(), false));
        if now.len() == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(saw_silent_unhealthy, "the silent instance turned unhealthy before it was removed");
    assert_eq!(hosts(&list(&cluster, follower, "pay")), [("10.1.0.1:7001".to_string(), true)]);

    // Silence the other one too; once gone, a light beat is told to re-register (20404) and a
    // beat carrying its body re-registers it.
    wait_until("the second instance expires", || hosts(&list(&cluster, follower, "pay")).is_empty());
    assert_eq!(beat(&cluster, follower, "DEFAULT_GROUP@@pay", "10.1.0.1", 7001, false)["code"], 20404);
    beat(&cluster, follower, "DEFAULT_GROUP@@pay", "10.1.0.1", 7001, true);
    for node in 0..3 {
        wait_until("re-registered from the beat", || hosts(&list(&cluster, node, "pay")).len() == 1);
    }
}

#[test]
fn subscribers_get_a_udp_push_when_a_service_changes() {
    let cluster = Cluster::start(3);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let udp_port = socket.local_addr().unwrap().port().to_string();
    register(&cluster, 0, &[("serviceName", "cart"), ("ip", "10.2.0.1"), ("port", "1")]);
    wait_until("listed on node 2", || hosts(&list(&cluster, 2, "cart")).len() == 1);
    let subscribe = format!(
        "{LIST}?{}",
        query(&[
            ("serviceName", "DEFAULT_GROUP@@cart"),
            ("clusters", "DEFAULT"),
            ("udpPort", &udp_port),
            ("clientIP", "127.0.0.1")
        ])
    );
    let listing = cluster.get(2, &subscribe).unwrap().json();
    assert_eq!(listing["cacheMillis"], 10000, "a push subscriber polls at the push cache interval");
    assert_eq!(listing["clusters"], "DEFAULT", "clusters echoed exactly");

    let changed_at = Instant::now();
    register(&cluster, 0, &[("serviceName", "cart"), ("ip", "10.2.0.2"), ("port", "1")]);
    let mut buf = vec![0u8; 65_536];
    let (len, from) = socket.recv_from(&mut buf).expect("a push within 3 s");
    let latency = changed_at.elapsed();
    let raw = &buf[..len];
    let text = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut text = String::new();
        flate2::read::GzDecoder::new(raw).read_to_string(&mut text).unwrap();
        text
    } else {
        String::from_utf8(raw.to_vec()).unwrap()
    };
    let packet: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(packet["type"], "dom");
    let data: Value = serde_json::from_str(packet["data"].as_str().unwrap()).unwrap();
    assert_eq!(hosts(&data).len(), 2, "the push carries the new instance: {data}");
    assert_eq!(data["clusters"], "DEFAULT");
    assert!(latency < Duration::from_secs(1), "pushed within 1 s of the change (took {latency:?})");
    let ack = serde_json::json!({"type": "push-ack", "lastRefTime": packet["lastRefTime"], "data": ""}).to_string();
    socket.send_to(ack.as_bytes(), from).unwrap();
    wait_until("the ack is counted", || {
        cluster.get(2, "/nacos/v1/ns/operator/metrics").unwrap().json()["pushAcksReceived"].as_u64() >= Some(1)
    });
}

/// Answer every HTTP request on `listener` with `status`, until the listener is dropped.
fn serve_status(listener: TcpListener, status: u16) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let _ = write!(stream, "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
}

#[test]
fn persistent_instances_follow_tcp_and_http_probes() {
    let cluster = Cluster::start(3);
    let tcp_target = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_port = tcp_target.local_addr().unwrap().port();
    let failing = TcpListener::bind("127.0.0.1:0").unwrap();
    let http_port = failing.local_addr().unwrap().port().to_string();
    register(
        &cluster,
        1,
        &[("serviceName", "db"), ("ip", "127.0.0.1"), ("port", &tcp_port.to_string()), ("ephemeral", "false")],
    );
    // The instance detail shows the recorded health; a list would present a lone unhealthy
    // instance as healthy (protect threshold 0 reached, as in Nacos).
    let port_of = |service: &str| if service == "db" { tcp_port.to_string() } else { http_port.clone() };
    let health = |service: &str| {
        let detail = query(&[("serviceName", service), ("ip", "127.0.0.1"), ("port", &port_of(service))]);
        let resp = cluster.get(2, &format!("{INSTANCE}?{detail}")).ok()?;
        (resp.status == 200).then(|| resp.json()["healthy"].as_bool()).flatten()
    };
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(health("db"), Some(true), "a listening port stays healthy across probes");
    drop(tcp_target);
    wait_until("a closed port turns unhealthy", || health("db") == Some(false));

    // HTTP check on another service's cluster: a 503 answer is unhealthy, a 200 healthy.
    register(&cluster, 0, &[("serviceName", "web"), ("ip", "127.0.0.1"), ("port", &http_port), ("ephemeral", "false")]);
    let checker = r#"{"type":"HTTP","path":"/health","expectedResponseCode":200}"#;
    let resp = cluster
        .call(
            0,
            "PUT",
            &format!(
                "/nacos/v1/ns/cluster?{}",
                query(&[("serviceName", "web"), ("clusterName", "DEFAULT"), ("healthChecker", checker)])
            ),
        )
        .unwrap();
    assert_eq!((resp.status, resp.text()), (200, "ok".to_string()));
    serve_status(failing, 503);
    wait_until("HTTP 503 turns the instance unhealthy", || health("web") == Some(false));
}

#[test]
fn naming_bad_input_is_refused_by_field_and_metrics_are_up() {
    let cluster = Cluster::start(3);
    let resp = cluster
        .call(0, "POST", &format!("{INSTANCE}?{}", query(&[("serviceName", "s"), ("ip", "1.2.3.4"), ("port", "abc")])))
        .unwrap();
    assert_eq!(resp.status, 400);
    assert!(resp.text().contains("port"), "{}", resp.text());
    let resp =
        cluster.call(0, "POST", &format!("{INSTANCE}?{}", query(&[("serviceName", "s"), ("port", "1")]))).unwrap();
    assert_eq!(resp.status, 400);
    assert!(resp.text().contains("ip"), "{}", resp.text());
    let resp =
        cluster.get(0, &format!("{LIST}?{}", query(&[("serviceName", "s"), ("namespaceId", "bad ns")]))).unwrap();
    assert_eq!(resp.status, 400);
    assert!(resp.text().contains("namespaceId"), "{}", resp.text());
    let resp = cluster.get(0, "/nacos/v1/ns/service?serviceName=missing").unwrap();
    assert_eq!(resp.status, 404, "{}", resp.text());
    let metrics = cluster.get(0, "/nacos/v1/ns/operator/metrics").unwrap().json();
    assert_eq!(metrics["status"], "UP");
}

/// A push datagram's `data`, gunzipped if need be.
fn push_data(raw: &[u8]) -> Value {
    let text = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut text = String::new();
        flate2::read::GzDecoder::new(raw).read_to_string(&mut text).unwrap();
        text
    } else {
        String::from_utf8(raw.to_vec()).unwrap()
    };
    let packet: Value = serde_json::from_str(&text).unwrap();
    serde_json::from_str(packet["data"].as_str().unwrap()).unwrap()
}

/// Issue 16: a silent ephemeral instance turns unhealthy after its heartbeat timeout (Nacos:
/// 15 s; shortened here through `preserved.*` metadata) and is deleted after its delete timeout
/// (30 s), on the node responsible for its service and on the others; meanwhile it is left out
/// of `healthyOnly` lists, pushed to subscribers as a change, and healthy again on its next
/// beat. The service keeps a beating instance too: with every instance unhealthy, Nacos's
/// protect threshold (healthy share <= `protectThreshold`, 0 by default) lists them all as
/// healthy, and the lone silent instance of the issue's report was exactly that case (its
/// record was unhealthy; the second half of this test pins that behaviour).
#[test]
fn a_silent_instance_turns_unhealthy_everywhere_heals_on_a_beat_and_is_deleted_later() {
    const UNHEALTHY_AFTER_MS: u64 = 2_000;
    const DELETED_AFTER_MS: u64 = 8_000;
    let cluster = Cluster::start(3);
    let quick = format!(
        r#"{{"preserved.heart.beat.timeout":"{UNHEALTHY_AFTER_MS}","preserved.ip.delete.timeout":"{DELETED_AFTER_MS}"}}"#
    );
    let service = "DEFAULT_GROUP@@silent";
    for port in ["1", "2"] {
        register(&cluster, 0, &[("serviceName", "silent"), ("ip", "10.3.0.1"), ("port", port), ("metadata", &quick)]);
    }
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let udp_port = socket.local_addr().unwrap().port().to_string();
    let subscribe = |node: usize, healthy_only: bool| {
        let path = format!(
            "{LIST}?{}",
            query(&[
                ("serviceName", service),
                ("udpPort", &udp_port),
                ("clientIP", "127.0.0.1"),
                ("healthyOnly", if healthy_only { "true" } else { "false" }),
            ])
        );
        hosts(&cluster.get(node, &path).unwrap().json())
    };
    let silent = |healthy: bool| ("10.3.0.1:2".to_string(), healthy);
    let alive = ("10.3.0.1:1".to_string(), true);
    // Beat the first instance through every node in turn, the second never, and watch.
    let started = Instant::now();
    let (mut unhealthy_everywhere, mut pushed_unhealthy) = (false, false);
    let mut buf = vec![0u8; 65_536];
    while started.elapsed() < Duration::from_secs(20) && !(unhealthy_everywhere && pushed_unhealthy) {
        beat(&cluster, started.elapsed().as_millis() as usize % 3, service, "10.3.0.1", 1, true);
        unhealthy_everywhere = (0..3).all(|node| subscribe(node, false) == [alive.clone(), silent(false)]);
        while let Ok((len, _)) = socket.recv_from(&mut buf) {
            pushed_unhealthy |= hosts(&push_data(&buf[..len])).contains(&silent(false));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(unhealthy_everywhere, "every node lists the silent instance unhealthy");
    assert!(pushed_unhealthy, "subscribers were pushed the change to unhealthy");
    assert!(started.elapsed() >= Duration::from_millis(UNHEALTHY_AFTER_MS), "not before its heartbeat timeout");
    for node in 0..3 {
        assert_eq!(subscribe(node, true), std::slice::from_ref(&alive), "healthyOnly leaves it out on node {node}");
    }

    // One beat (it carries the instance) heals it on every node.
    beat(&cluster, 2, service, "10.3.0.1", 2, true);
    let last_beat = Instant::now();
    for node in 0..3 {
        wait_until("healthy again after a beat", || subscribe(node, false) == [alive.clone(), silent(true)]);
    }

    // Silent again: unhealthy, then deleted after its delete timeout, everywhere.
    let deadline = Instant::now() + Duration::from_millis(DELETED_AFTER_MS * 3);
    while Instant::now() < deadline && !(0..3).all(|node| subscribe(node, false) == [alive.clone()]) {
        beat(&cluster, 1, service, "10.3.0.1", 1, true);
        std::thread::sleep(Duration::from_millis(300));
    }
    let gone_after = last_beat.elapsed();
    for node in 0..3 {
        assert_eq!(subscribe(node, false), std::slice::from_ref(&alive), "deleted on node {node}");
    }
    assert!(gone_after >= Duration::from_millis(DELETED_AFTER_MS), "not before its delete timeout ({gone_after:?})");

    // The lone silent instance: its record is unhealthy, and the list (every instance
    // unhealthy: the protect threshold) lists it as healthy, as Nacos does.
    register(&cluster, 0, &[("serviceName", "lone"), ("ip", "10.3.0.9"), ("port", "9"), ("metadata", &quick)]);
    let detail = format!("{INSTANCE}?{}", query(&[("serviceName", "lone"), ("ip", "10.3.0.9"), ("port", "9")]));
    wait_until("the lone instance's record is unhealthy", || {
        cluster.get(0, &detail).is_ok_and(|resp| resp.status == 200 && resp.json()["healthy"] == false)
    });
    let listing = list(&cluster, 0, "lone");
    assert_eq!(listing["reachProtectionThreshold"], true, "{listing}");
    assert_eq!(hosts(&listing), [("10.3.0.9:9".to_string(), true)], "protected: listed as healthy");
}

/// Issue 16: `PUT /nacos/v1/ns/instance` of a missing instance registers it for every client
/// but a Java one of version 1 or later (Nacos 1.4's `InstanceController.update`).
#[test]
fn an_update_of_a_missing_instance_registers_it_unless_a_java_client_asks() {
    let cluster = Cluster::start(1);
    let put = |port: &str, agent: Option<&str>| {
        let path = format!("{INSTANCE}?{}", query(&[("serviceName", "put"), ("ip", "10.4.0.1"), ("port", port)]));
        let headers: Vec<(&str, &str)> = agent.map(|a| ("User-Agent", a)).into_iter().collect();
        http::request_with_headers("PUT", cluster.addr(0), &path, &headers, b"").unwrap()
    };
    let java = put("1", Some("Nacos-Java-Client:v1.4.1"));
    assert_eq!(java.status, 400, "{}", java.text());
    assert!(java.text().contains("instance not exist"), "{}", java.text());
    for (port, agent) in [("2", None), ("3", Some("Nacos-Python-Client:v2.0.11"))] {
        let resp = put(port, agent);
        assert_eq!((resp.status, resp.text().as_str()), (200, "ok"));
    }
    assert_eq!(hosts(&list(&cluster, 0, "put")), [("10.4.0.1:2".to_string(), true), ("10.4.0.1:3".to_string(), true)]);
}
