use nacre_guest_sdk::testing;

use crate::health::MAX_HEALTH_TARGETS;

use super::*;

fn cluster(checker: &str, extra: &[(&str, &str)]) -> GuestRequest {
    let mut params = vec![("serviceName", SVC), ("clusterName", "DEFAULT"), ("healthChecker", checker)];
    params.extend_from_slice(extra);
    req(CLUSTER_UPDATE, &params)
}

fn targets() -> Vec<Value> {
    body(&query_at(1, &req(HEALTH_TARGETS, &[])).unwrap()).as_array().unwrap().clone()
}

#[test]
fn targets_cover_persistent_tcp_and_http_instances_only() {
    testing::reset();
    register(1, js_register("10.0.0.1", "8080").param("ephemeral", "false"));
    register(1, js_register("10.0.0.2", "8080")); // ephemeral: beats, not probes
    let found = targets();
    assert_eq!(
        found,
        vec![serde_json::json!({"instanceId": "10.0.0.1#8080#DEFAULT#DEFAULT_GROUP@@svc", "ip": "10.0.0.1",
            "port": 8080, "check": {"type": "TCP", "path": "", "headers": "", "expectedResponseCode": 200},
            "healthy": true, "command": {"op": "naming.health", "params": {"serviceName": SVC,
            "clusterName": "DEFAULT", "ip": "10.0.0.1", "port": "8080", "ephemeral": "false"}}})]
    );
    write_at(
        2,
        &cluster(
            r#"{"type":"HTTP","path":"/health","expectedResponseCode":200,"headers":""}"#,
            &[("checkPort", "9090"), ("useInstancePort4Check", "false")],
        ),
    )
    .unwrap();
    let found = targets();
    assert_eq!(found[0]["port"], 9090);
    assert_eq!(
        found[0]["check"],
        serde_json::json!({"type": "HTTP", "path": "/health", "headers": "", "expectedResponseCode": 200})
    );
    write_at(3, &cluster(r#"{"type":"NONE"}"#, &[])).unwrap();
    assert!(targets().is_empty());
    let service = body(&query_at(3, &req(SERVICE_GET, &[("serviceName", SVC)])).unwrap());
    assert_eq!(service["clusters"][0]["healthChecker"], serde_json::json!({"type": "NONE"}));
}

#[test]
fn probe_results_and_the_health_api() {
    testing::reset();
    register(1, js_register("10.0.0.1", "8080").param("ephemeral", "false"));
    events();
    // The prober commits the target's command with `healthy` added.
    let mut command: Vec<(String, String)> = targets()[0]["command"]["params"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    command.push(("healthy".into(), "false".into()));
    let params: Vec<(&str, &str)> = command.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(write_at(2, &req(HEALTH, &params)).unwrap().body, "ok");
    assert_eq!(events(), naming_event());
    assert_eq!(targets()[0]["healthy"], false);
    // The user's API is refused while a checker runs...
    let api = req(
        HEALTH,
        &[
            ("serviceName", "svc"),
            ("groupName", "DEFAULT_GROUP"),
            ("clusterName", "DEFAULT"),
            ("ip", "10.0.0.1"),
            ("port", "8080"),
            ("healthy", "true"),
            ("source", "api"),
        ],
    );
    let before = testing::entries();
    let err = write_at(3, &api).unwrap_err();
    assert!(err.code == 400 && err.message.contains("health check is still working"), "{err}");
    assert_eq!(testing::entries(), before);
    // ... and accepted once the cluster's checker is NONE.
    write_at(4, &cluster(r#"{"type":"none"}"#, &[])).unwrap();
    assert_eq!(write_at(5, &api).unwrap().body, "ok");
    assert!(hosts(&list(5, &[]))[0].2);
    // A missing instance is ok and changes nothing.
    let missing = req(HEALTH, &[("serviceName", SVC), ("ip", "10.9.9.9"), ("port", "1"), ("healthy", "false")]);
    assert_eq!(write_at(6, &missing).unwrap().body, "ok");
    let err = write_at(6, &req(HEALTH, &[("serviceName", SVC), ("ip", "10.0.0.1"), ("port", "8080")])).unwrap_err();
    assert!(err.message.contains("healthy"), "{err}");
}

#[test]
fn cluster_update_needs_the_service() {
    testing::reset();
    let err = write_at(1, &cluster(r#"{"type":"TCP"}"#, &[])).unwrap_err();
    assert!(err.code == 400 && err.message.contains(SVC), "{err}");
    write_at(2, &req(SERVICE_CREATE, &[("serviceName", SVC)])).unwrap();
    write_at(3, &cluster(r#"{"type":"TCP"}"#, &[("metadata", "k=v"), ("clusterName", "c1")])).unwrap();
    let service = body(&query_at(3, &req(SERVICE_GET, &[("serviceName", SVC)])).unwrap());
    assert_eq!(
        service["clusters"],
        serde_json::json!([{"name": "c1", "healthChecker": {"type": "TCP"}, "metadata": {"k": "v"}}])
    );
}

/// A page of targets asked with a cursor: the targets and where the next page starts.
fn page(after: &str) -> (Vec<String>, Option<String>) {
    let page = body(&query_at(1, &req(HEALTH_TARGETS, &[("paged", "true"), ("after", after)])).unwrap());
    let ids =
        page["targets"].as_array().unwrap().iter().map(|t| t["instanceId"].as_str().unwrap().to_owned()).collect();
    (ids, page.get("next").map(|next| next.as_str().unwrap().to_owned()))
}

#[test]
fn targets_are_paged_with_a_cursor_each_listed_once() {
    testing::reset();
    let persistent =
        |ip: &str, service: &str| js_register(ip, "8080").param("serviceName", service).param("ephemeral", "false");
    let total = MAX_HEALTH_TARGETS + 100;
    for i in 0..total {
        register(
            1,
            persistent(&format!("10.{}.{}.{}", i / 65_536, (i / 256) % 256, i % 256), &format!("G@@s{}", i % 4)),
        );
    }
    // A service whose instances are not probed sits between the others in key order: the
    // cursor steps over rows it does not list.
    for i in 0..50 {
        register(1, persistent(&format!("10.200.0.{i}"), "G@@s1x"));
    }
    let quiet = req(
        CLUSTER_UPDATE,
        &[("serviceName", "G@@s1x"), ("clusterName", "DEFAULT"), ("healthChecker", r#"{"type":"NONE"}"#)],
    );
    write_at(2, &quiet).unwrap();

    assert_eq!(targets().len(), MAX_HEALTH_TARGETS, "without a cursor: the first page, as a bare array");
    let (first, next) = page("");
    assert_eq!(first.len(), MAX_HEALTH_TARGETS);
    let next = next.expect("more follow");
    let (second, last) = page(&next);
    assert_eq!((second.len(), last), (100, None), "the last page says so");
    let mut all: Vec<String> = first.into_iter().chain(second).collect();
    assert!(all.iter().all(|id| !id.ends_with("G@@s1x")), "not probed: not listed");
    let listed = all.len();
    all.sort();
    all.dedup();
    assert_eq!((all.len(), listed), (total, total), "every target once");
    assert_eq!(page(&next).0, page(&next).0, "a cursor is a place, not a session");
    assert_eq!(page("~").0, Vec::<String>::new(), "past the end: nothing");
}
