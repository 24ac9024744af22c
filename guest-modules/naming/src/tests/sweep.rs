use nacre_guest_sdk::testing;

use super::*;
use crate::lease::MAX_SWEEP_COMMANDS;

fn sweep(now: u64, since: u64, beats: &str) -> Vec<Value> {
    let (now_s, since_s) = (now.to_string(), since.to_string());
    let reply = query_at(now, &req(SWEEP, &[("nowMs", &now_s), ("sinceMs", &since_s), ("beats", beats)])).unwrap();
    body(&reply).as_array().unwrap().clone()
}

/// Commits what a sweep asked for, as the host does.
fn commit(ms: u64, commands: &[Value]) {
    for command in commands {
        let params: Vec<(String, String)> = command["params"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("string params").to_owned()))
            .collect();
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(apply_at(ms, &req(command["op"].as_str().unwrap(), &params)).unwrap().body, "ok");
    }
}

#[test]
fn silent_instances_turn_unhealthy_then_expire() {
    testing::reset();
    register(1_000, js_register("10.0.0.1", "80"));
    register(1_000, js_register("10.0.0.2", "80"));
    // 10.0.0.2 keeps beating; 10.0.0.1 stops after registering.
    assert!(
        sweep(16_000, 0, r#"{"10.0.0.2#80#DEFAULT#DEFAULT_GROUP@@svc":15000}"#).is_empty(),
        "15 s is not over 15 s"
    );
    let commands = sweep(16_001, 0, r#"{"10.0.0.2#80#DEFAULT#DEFAULT_GROUP@@svc":15000}"#);
    assert_eq!(
        commands,
        vec![serde_json::json!({"op": "naming.health", "params": {"serviceName": SVC, "clusterName": "DEFAULT",
            "ip": "10.0.0.1", "port": "80", "ephemeral": "true", "registeredMs": "1000", "healthy": "false"}})]
    );
    commit(16_001, &commands);
    assert_eq!(events(), vec![("naming".to_owned(), SVC.to_owned()); 3], "two registrations, one health change");
    assert_eq!(hosts(&list(16_001, &[]))[0], ("10.0.0.1".to_owned(), 80, false));
    let beats = r#"{"10.0.0.2#80#DEFAULT#DEFAULT_GROUP@@svc":19000}"#;
    assert!(sweep(20_000, 0, beats).is_empty(), "already unhealthy, not yet expired");
    let commands = sweep(31_001, 0, r#"{"10.0.0.2#80#DEFAULT#DEFAULT_GROUP@@svc":31000}"#);
    assert_eq!(commands.len(), 1);
    assert_eq!(commands[0]["op"], "naming.expire");
    commit(31_001, &commands);
    assert_eq!(hosts(&list(31_001, &[])), vec![("10.0.0.2".to_owned(), 80, true)]);
}

#[test]
fn metadata_overrides_timeouts() {
    testing::reset();
    let metadata = r#"{"preserved.heart.beat.timeout":"3000","preserved.ip.delete.timeout":"6000"}"#;
    register(0, js_register("10.0.0.1", "80").param("metadata", metadata));
    assert!(sweep(3_000, 0, "{}").is_empty());
    assert_eq!(sweep(3_001, 0, "{}")[0]["op"], "naming.health");
    assert_eq!(sweep(6_001, 0, "{}")[0]["op"], "naming.expire");
}

#[test]
fn a_new_leader_gives_a_grace_period() {
    testing::reset();
    register(0, js_register("10.0.0.1", "80"));
    // The leader started tracking beats at 100 s: nothing is silent before 115 s.
    assert!(sweep(110_000, 100_000, "{}").is_empty());
    assert_eq!(sweep(115_001, 100_000, "{}")[0]["op"], "naming.health");
}

#[test]
fn expire_spares_an_instance_registered_again() {
    testing::reset();
    register(1_000, js_register("10.0.0.1", "80"));
    let commands = sweep(40_000, 0, "{}");
    assert_eq!(commands[0]["op"], "naming.expire");
    // The client re-registers before the expiry is committed.
    register(39_000, js_register("10.0.0.1", "80"));
    events();
    commit(40_000, &commands);
    assert_eq!(hosts(&list(40_000, &[])).len(), 1, "the newer registration stays");
    assert!(events().is_empty());
}

#[test]
fn sweeps_are_capped_and_ordered() {
    testing::reset();
    for i in 0..(MAX_SWEEP_COMMANDS + 10) {
        register(0, js_register(&format!("10.0.{}.{}", i / 256, i % 256), "80"));
    }
    let commands = sweep(20_000, 0, "{}");
    assert_eq!(commands.len(), MAX_SWEEP_COMMANDS);
    assert_eq!(commands, sweep(20_000, 0, "{}"), "deterministic");
    assert!(commands.iter().all(|c| c["op"] == "naming.health"));
    commit(20_000, &commands);
    assert_eq!(sweep(20_000, 0, "{}").len(), 10, "the rest come next time");
}

#[test]
fn persistent_instances_are_never_swept() {
    testing::reset();
    register(0, js_register("10.0.0.1", "80").param("ephemeral", "false"));
    assert!(sweep(1_000_000, 0, "{}").is_empty());
}

#[test]
fn bad_sweep_parameters() {
    testing::reset();
    let err = query_at(1, &req(SWEEP, &[("nowMs", "1"), ("beats", "[1]")])).unwrap_err();
    assert!(err.code == 400 && err.message.contains("beats"), "{err}");
    let err = query_at(1, &req(SWEEP, &[])).unwrap_err();
    assert!(err.message.contains("nowMs"), "{err}");
}

#[test]
fn empty_unconfigured_services_are_cleaned_after_a_minute() {
    testing::reset();
    register(1_000, js_register("10.0.0.1", "80"));
    apply_at(2_000, &req(SERVICE_CREATE, &[("serviceName", "kept"), ("metadata", "owner=me")])).unwrap();
    apply_at(5_000, &req(DEREGISTER, &[("serviceName", SVC), ("ip", "10.0.0.1"), ("port", "80")])).unwrap();
    assert!(sweep(65_000, 0, "{}").is_empty(), "empty for exactly 60 s");
    let commands = sweep(65_001, 0, "{}");
    assert_eq!(
        commands,
        vec![serde_json::json!({"op": "naming.service.remove",
            "params": {"serviceName": SVC, "onlyIfUnused": "true", "emptySinceMs": "5000"}})],
        "the configured service stays"
    );
    // A registration and a deregistration after the sweep make the command a no-op.
    register(65_002, js_register("10.0.0.1", "80"));
    apply_at(65_003, &req(DEREGISTER, &[("serviceName", SVC), ("ip", "10.0.0.1"), ("port", "80")])).unwrap();
    commit(65_004, &commands);
    assert!(query_at(65_004, &req(SERVICE_GET, &[("serviceName", SVC)])).is_ok(), "spared");
    // Left alone, it goes.
    let commands = sweep(130_000, 0, "{}");
    commit(130_000, &commands);
    assert_eq!(query_at(130_000, &req(SERVICE_GET, &[("serviceName", SVC)])).unwrap_err().code, 404);
    assert!(query_at(130_000, &req(SERVICE_GET, &[("serviceName", "kept")])).is_ok());
    // The guarded remove of a service that is gone is ok too.
    commit(130_001, &commands);
}
