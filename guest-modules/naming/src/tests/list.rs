use nacre_guest_sdk::{directive, testing};

use super::*;

#[test]
fn list_shape_for_js_subscribers() {
    testing::reset();
    register(1_000, js_register("10.0.0.2", "80"));
    register(1_001, js_register("10.0.0.1", "81").param("metadata", r#"{"preserved.heart.beat.timeout":"20000"}"#));
    let reply = query_at(
        5_000,
        &req(
            LIST,
            &[
                ("serviceName", SVC),
                ("clusters", "DEFAULT"),
                ("udpPort", "55555"),
                ("clientIP", "10.1.1.1"),
                ("healthyOnly", "false"),
            ],
        ),
    )
    .unwrap();
    assert_eq!(reply.headers["Content-Type"], "application/json");
    assert_eq!(reply.headers[directive::WATCH], r#"[["naming","DEFAULT_GROUP@@svc"]]"#);
    let info = body(&reply);
    assert_eq!(info["name"], SVC);
    assert_eq!(info["dom"], SVC);
    assert_eq!(info["groupName"], "DEFAULT_GROUP");
    assert_eq!(info["clusters"], "DEFAULT", "echoed exactly");
    assert_eq!(info["cacheMillis"], 10_000, "subscribed for push");
    assert_eq!(info["lastRefTime"], 5_000);
    assert_eq!((info["allIPs"].as_bool(), info["valid"].as_bool()), (Some(false), Some(true)));
    assert_eq!(info["reachProtectionThreshold"], false);
    assert_eq!(info["checksum"].as_str().unwrap().len(), 32);
    assert_eq!(
        info["hosts"][0],
        serde_json::json!({"instanceId": "10.0.0.1#81#DEFAULT#DEFAULT_GROUP@@svc", "ip": "10.0.0.1", "port": 81,
            "weight": 1.0, "healthy": true, "enabled": true, "ephemeral": true, "clusterName": "DEFAULT",
            "serviceName": SVC, "metadata": {"preserved.heart.beat.timeout": "20000"}, "valid": true, "marked": false,
            "instanceHeartBeatInterval": 5000, "instanceHeartBeatTimeOut": 20000, "ipDeleteTimeout": 30000,
            "instanceIdGenerator": "simple"})
    );
    assert_eq!(info["hosts"][1]["ip"], "10.0.0.2", "ordered by cluster, ip, port");
}

#[test]
fn list_for_python_pollers() {
    testing::reset();
    register(1, py_register("10.0.0.1", "80"));
    let info = body(
        &query_at(2, &req(LIST, &[("serviceName", "svc"), ("groupName", "DEFAULT_GROUP"), ("healthyOnly", "False")]))
            .unwrap(),
    );
    assert_eq!(info["name"], SVC);
    assert_eq!(info["clusters"], "", "no clusters parameter, empty echo");
    assert_eq!(info["cacheMillis"], 3_000);
    assert_eq!(info["hosts"][0]["clusterName"], "None");
    // A clusters filter selects; one that matches nothing gives no hosts.
    assert_eq!(list(2, &[("clusters", "None,DEFAULT")])["hosts"].as_array().unwrap().len(), 1);
    assert!(list(2, &[("clusters", "DEFAULT")])["hosts"].as_array().unwrap().is_empty());
}

#[test]
fn checksum_follows_the_hosts() {
    testing::reset();
    register(1, js_register("10.0.0.1", "80"));
    let first = list(2, &[])["checksum"].clone();
    assert_eq!(list(3, &[])["checksum"], first, "same hosts, same checksum");
    patch(4, "10.0.0.1", "80", &[("weight", "2")]);
    let second = list(5, &[])["checksum"].clone();
    assert_ne!(second, first);
    register(6, js_register("10.0.0.2", "80"));
    let third = list(7, &[])["checksum"].clone();
    assert_ne!(third, second, "a new host is covered");
    patch(8, "10.0.0.1", "80", &[("healthy", "false")]);
    assert_ne!(list(9, &[])["checksum"], third, "health is covered");
}

#[test]
fn missing_service_lists_no_hosts() {
    testing::reset();
    let info = list(7, &[("clusters", "a,b")]);
    assert_eq!(info["hosts"], serde_json::json!([]));
    assert_eq!((info["name"].as_str(), info["clusters"].as_str()), (Some(SVC), Some("a,b")));
    assert_eq!(info["lastRefTime"], 7);
}

#[test]
fn healthy_only_and_disabled_filtering() {
    testing::reset();
    register(1, js_register("10.0.0.1", "80"));
    register(2, js_register("10.0.0.2", "80"));
    register(3, js_register("10.0.0.3", "80").param("enable", "false"));
    patch(4, "10.0.0.2", "80", &[("healthy", "false")]);
    let all = hosts(&list(5, &[]));
    assert_eq!(all, vec![("10.0.0.1".to_owned(), 80, true), ("10.0.0.2".to_owned(), 80, false)], "disabled filtered");
    let healthy = hosts(&list(5, &[("healthyOnly", "true")]));
    assert_eq!(healthy, vec![("10.0.0.1".to_owned(), 80, true)]);
}

#[test]
fn protect_threshold_serves_everyone_as_healthy() {
    testing::reset();
    register(1, js_register("10.0.0.1", "80"));
    register(2, js_register("10.0.0.2", "80"));
    patch(3, "10.0.0.2", "80", &[("healthy", "false")]);
    let update = |threshold: &str| req(SERVICE_UPDATE, &[("serviceName", SVC), ("protectThreshold", threshold)]);
    // 1 of 2 healthy = 0.5: at a 0.6 threshold protection kicks in.
    write_at(4, &update("0.6")).unwrap();
    let info = list(5, &[("healthyOnly", "true")]);
    assert_eq!(info["reachProtectionThreshold"], true);
    assert_eq!(hosts(&info), vec![("10.0.0.1".to_owned(), 80, true), ("10.0.0.2".to_owned(), 80, true)]);
    assert_eq!(info["hosts"][1]["valid"], true);
    // At 0.4 it does not.
    write_at(6, &update("0.4")).unwrap();
    let info = list(7, &[("healthyOnly", "true")]);
    assert_eq!(info["reachProtectionThreshold"], false);
    assert_eq!(hosts(&info), vec![("10.0.0.1".to_owned(), 80, true)]);
    // With the default threshold 0, protection starts only when none is healthy (Nacos 1.4).
    write_at(8, &update("0")).unwrap();
    patch(9, "10.0.0.1", "80", &[("healthy", "false")]);
    let info = list(10, &[]);
    assert_eq!(info["reachProtectionThreshold"], true);
    assert!(hosts(&info).iter().all(|h| h.2));
}
