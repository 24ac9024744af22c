use nacre_guest_sdk::{Commit, LeaseRenewal, Plan, directive, testing};

use super::*;

/// The plan a beat's reply carries.
fn plan(reply: &GuestReply) -> Plan {
    Plan::from_reply(reply).unwrap()
}

/// A renewal of `instance`'s lease at the service's responsible node.
fn renewal(instance: &str) -> Option<LeaseRenewal> {
    Some(LeaseRenewal { key: instance.to_owned(), partition: Some(SVC.to_owned()) })
}

fn commit_ap() -> Commit {
    Commit::Ap { partition: SVC.to_owned() }
}

/// What npm `nacos-naming` sends every 5 s: grouped name, a beat body, no groupName.
fn js_beat(ip: &str, port: u16, metadata: &str) -> GuestRequest {
    let beat = format!(
        r#"{{"serviceName":"{SVC}","ip":"{ip}","port":{port},"cluster":"DEFAULT","weight":1,"metadata":{metadata},"scheduled":true}}"#
    );
    req(BEAT, &[("beat", &beat), ("namespaceId", "public"), ("serviceName", SVC)])
}

#[test]
fn beat_for_a_known_instance_renews_its_lease() {
    testing::reset();
    register(1, js_register("10.0.0.1", "8080"));
    let reply = query_at(2, &js_beat("10.0.0.1", 8080, "{}")).unwrap();
    assert_eq!(body(&reply), serde_json::json!({"clientBeatInterval": 5000, "code": 10200, "lightBeatEnabled": true}));
    // Renewed at the service's responsible node; a healthy instance needs no commit.
    let renew = renewal("10.0.0.1#8080#DEFAULT#DEFAULT_GROUP@@svc");
    assert_eq!(plan(&reply), Plan { commit: Commit::None, renew });
    // The wire form.
    assert_eq!(reply.headers[directive::LEASE_RENEW], "10.0.0.1#8080#DEFAULT#DEFAULT_GROUP@@svc");
    assert_eq!(reply.headers[directive::PARTITION], SVC);
    assert!(!reply.headers.contains_key(directive::COMMIT));
    // A light beat (no body) from the Python client: grouped name plus groupName, ip/port params.
    let light =
        req(BEAT, &[("serviceName", SVC), ("groupName", "DEFAULT_GROUP"), ("ip", "10.0.0.1"), ("port", "8080")]);
    assert_eq!(body(&query_at(3, &light).unwrap())["code"], 10200);
}

#[test]
fn beat_interval_comes_from_metadata() {
    testing::reset();
    register(1, js_register("10.0.0.1", "8080").param("metadata", r#"{"preserved.heart.beat.interval":"2000"}"#));
    let reply = query_at(2, &js_beat("10.0.0.1", 8080, "{}")).unwrap();
    assert_eq!(body(&reply)["clientBeatInterval"], 2000);
}

#[test]
fn unknown_instance_without_body_is_20404() {
    testing::reset();
    let light = req(BEAT, &[("serviceName", SVC), ("ip", "10.0.0.1"), ("port", "8080")]);
    let reply = query_at(1, &light).unwrap();
    assert_eq!(body(&reply), serde_json::json!({"clientBeatInterval": 5000, "code": 20404}));
    assert!(reply.headers.keys().all(|h| !directive::is_directive(h)));
    // Committed anyway (a race with a deregistration): still 20404, nothing written.
    assert_eq!(body(&apply_ap_at(2, &light).unwrap())["code"], 20404);
    assert!(testing::entries().is_empty());
}

#[test]
fn unknown_instance_with_body_is_committed_and_reregistered() {
    testing::reset();
    let beat = js_beat("10.0.0.7", 9000, r#"{"zone":"a"}"#);
    let reply = query_at(1, &beat).unwrap();
    let renew = renewal("10.0.0.7#9000#DEFAULT#DEFAULT_GROUP@@svc");
    assert_eq!(plan(&reply), Plan { commit: commit_ap(), renew }, "only ephemeral state changes");
    let applied = write_at(2, &beat).unwrap();
    assert_eq!(body(&applied)["code"], 10200);
    assert_eq!(events(), naming_event());
    let host = &list(3, &[])["hosts"][0];
    assert_eq!((host["ip"].as_str(), host["port"].as_u64()), (Some("10.0.0.7"), Some(9000)));
    assert_eq!((host["ephemeral"].as_bool(), &host["metadata"]), (Some(true), &serde_json::json!({"zone": "a"})));
    // Now known: the next beat is a plain lease renewal.
    assert_eq!(plan(&query_at(3, &beat).unwrap()).commit, Commit::None);
}

#[test]
fn unhealthy_instance_beat_is_committed_and_heals() {
    testing::reset();
    register(1, js_register("10.0.0.1", "8080"));
    patch(2, "10.0.0.1", "8080", &[("healthy", "false")]);
    events();
    let beat = js_beat("10.0.0.1", 8080, "{}");
    let reply = query_at(3, &beat).unwrap();
    assert_eq!(plan(&reply), Plan { commit: commit_ap(), renew: renewal("10.0.0.1#8080#DEFAULT#DEFAULT_GROUP@@svc") });
    assert_eq!(body(&write_at(4, &beat).unwrap())["code"], 10200);
    assert_eq!(events(), naming_event());
    assert!(hosts(&list(5, &[]))[0].2);
}

#[test]
fn persistent_instance_beat_renews_nothing() {
    testing::reset();
    register(1, js_register("10.0.0.1", "8080").param("ephemeral", "false"));
    let reply = query_at(2, &js_beat("10.0.0.1", 8080, "{}")).unwrap();
    assert_eq!(body(&reply)["code"], 10200);
    assert!(reply.headers.keys().all(|h| !directive::is_directive(h)));
}

#[test]
fn bad_beat_body_names_beat() {
    testing::reset();
    for bad in [
        "{bad",
        "[1]",
        r#"{"ip":"a b","port":1}"#,
        r#"{"ip":"1.1.1.1","port":70000}"#,
        r#"{"ip":"1.1.1.1","port":1,"weight":99999}"#,
    ] {
        let err = query_at(1, &req(BEAT, &[("serviceName", SVC), ("beat", bad)])).unwrap_err();
        assert!(err.code == 400 && err.message.contains("beat"), "{bad}: {err}");
        assert!(apply_ap_at(1, &req(BEAT, &[("serviceName", SVC), ("beat", bad)])).is_err());
    }
    assert!(testing::entries().is_empty());
}
