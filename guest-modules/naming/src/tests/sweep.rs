use nacre_guest_sdk::testing;

use super::*;
use crate::lease::MAX_SWEEP_COMMANDS;

/// The whole reply of a sweep with these parameters (besides `nowMs`).
fn sweep_reply(now: u64, params: &[(&str, &str)]) -> Value {
    let now_s = now.to_string();
    let mut all = vec![("nowMs", now_s.as_str())];
    all.extend_from_slice(params);
    body(&query_at(now, &req(SWEEP, &all)).unwrap())
}

/// The commands of the leader's sweep over every partition.
fn sweep(now: u64, since: u64, beats: &str) -> Vec<Value> {
    let since = since.to_string();
    let reply = sweep_reply(now, &[("sinceMs", &since), ("beats", beats), ("leader", "true")]);
    reply["commands"].as_array().unwrap().clone()
}

/// Runs what a sweep asked for, as the host does: at the partition as an AP command, else
/// through the log.
fn commit(ms: u64, commands: &[Value]) {
    for command in commands {
        let params: Vec<(String, String)> = command["params"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("string params").to_owned()))
            .collect();
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let request = req(command["op"].as_str().unwrap(), &params);
        let reply = match command.get("partition") {
            Some(partition) => {
                assert_eq!(partition, &command["params"]["serviceName"], "an instance's partition is its service");
                apply_ap_at(ms, &request)
            }
            None => apply_log_at(ms, &request),
        };
        assert_eq!(reply.unwrap().body, "ok");
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
            "ip": "10.0.0.1", "port": "80", "ephemeral": "true", "registeredMs": "1000", "healthy": "false"},
            "partition": SVC})]
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
    let err = query_at(1, &req(SWEEP, &[("nowMs", "1"), ("partitions", "{}")])).unwrap_err();
    assert!(err.code == 400 && err.message.contains("partitions"), "{err}");
    let err = query_at(1, &req(SWEEP, &[("nowMs", "1"), ("preserve", "maybe")])).unwrap_err();
    assert!(err.code == 400 && err.message.contains("preserve"), "{err}");
    let err = query_at(1, &req(SWEEP, &[])).unwrap_err();
    assert!(err.message.contains("nowMs"), "{err}");
}

#[test]
fn empty_unconfigured_services_are_cleaned_after_a_minute() {
    testing::reset();
    let persistent = |ip: &str| js_register(ip, "80").param("ephemeral", "false");
    let deregister =
        req(DEREGISTER, &[("serviceName", SVC), ("ip", "10.0.0.1"), ("port", "80"), ("ephemeral", "false")]);
    register(1_000, persistent("10.0.0.1"));
    write_at(2_000, &req(SERVICE_CREATE, &[("serviceName", "kept"), ("metadata", "owner=me")])).unwrap();
    write_at(5_000, &deregister).unwrap();
    assert!(sweep(65_000, 0, "{}").is_empty(), "empty for exactly 60 s");
    let commands = sweep(65_001, 0, "{}");
    assert_eq!(
        commands,
        vec![serde_json::json!({"op": "naming.service.remove",
            "params": {"serviceName": SVC, "onlyIfUnused": "true", "emptySinceMs": "5000"}})],
        "the configured service stays; the removal is a log command"
    );
    // A registration and a deregistration after the sweep make the command a no-op.
    register(65_002, persistent("10.0.0.1"));
    write_at(65_003, &deregister).unwrap();
    commit(65_004, &commands);
    assert!(query_at(65_004, &req(SERVICE_GET, &[("serviceName", SVC)])).is_ok(), "spared");
    // Left alone, it goes.
    let commands = sweep(130_000, 0, "{}");
    commit(130_000, &commands);
    assert_eq!(query_at(130_000, &req(SERVICE_GET, &[("serviceName", SVC)])).unwrap_err().code, 404);
    assert!(query_at(130_000, &req(SERVICE_GET, &[("serviceName", "kept")])).is_ok());
    // The guarded remove of a service that is gone is ok too.
    commit(130_001, &commands);
    // A service removed and created again between the sweep and its commit is the new one:
    // spared.
    write_at(200_000, &req(SERVICE_CREATE, &[("serviceName", SVC)])).unwrap();
    let commands = sweep(261_000, 0, "{}");
    assert_eq!(commands.len(), 1, "empty and unconfigured for a minute: {commands:?}");
    write_at(261_001, &req(SERVICE_REMOVE, &[("serviceName", SVC)])).unwrap();
    write_at(261_002, &req(SERVICE_CREATE, &[("serviceName", SVC)])).unwrap();
    commit(261_003, &commands);
    assert!(query_at(261_003, &req(SERVICE_GET, &[("serviceName", SVC)])).is_ok(), "the re-created service stays");
}

#[test]
fn services_with_ephemeral_instances_are_not_cleaned() {
    testing::reset();
    // An unconfigured record, and an ephemeral instance that keeps beating.
    write_at(1_000, &req(SERVICE_CREATE, &[("serviceName", SVC)])).unwrap();
    register(1_000, js_register("10.0.0.1", "80"));
    let beats = r#"{"10.0.0.1#80#DEFAULT#DEFAULT_GROUP@@svc":99000}"#;
    assert!(sweep(100_000, 0, beats).is_empty(), "the ephemeral instance keeps the service");
    // Once the instance is gone, the record goes after a minute: it was created at 1 s.
    write_at(100_001, &req(DEREGISTER, &[("serviceName", SVC), ("ip", "10.0.0.1"), ("port", "80")])).unwrap();
    assert_eq!(sweep(100_002, 0, "{}")[0]["op"], "naming.service.remove");
}

#[test]
fn only_the_leader_asks_for_service_removals() {
    testing::reset();
    write_at(0, &req(SERVICE_CREATE, &[("serviceName", SVC)])).unwrap();
    let follower = sweep_reply(100_000, &[("leader", "false")]);
    assert_eq!(follower["commands"], serde_json::json!([]));
    assert_eq!(sweep_reply(100_000, &[])["commands"], serde_json::json!([]), "leader defaults to false");
    assert_eq!(sweep(100_000, 0, "{}").len(), 1);
}

#[test]
fn partitions_limit_what_is_swept() {
    testing::reset();
    register(0, js_register("10.0.0.1", "80"));
    register(0, js_register("10.0.0.2", "80").param("serviceName", "G@@other"));
    let swept = |partitions: &str| {
        let reply = sweep_reply(20_000, &[("partitions", partitions)]);
        let services: Vec<String> =
            reply["commands"].as_array().unwrap().iter().map(|c| c["partition"].as_str().unwrap().into()).collect();
        (services, reply["expected"].as_u64().unwrap())
    };
    assert_eq!(swept(r#"["G@@other"]"#), (vec!["G@@other".to_owned()], 1));
    assert_eq!(swept(&format!(r#"["{SVC}","G@@other","{SVC}"]"#)), (vec![SVC.to_owned(), "G@@other".to_owned()], 2));
    assert_eq!(swept(r#"["G@@none"]"#), (vec![], 0));
    assert_eq!(swept("[]"), (vec![], 0), "responsible for nothing");
    let all = sweep_reply(20_000, &[]);
    assert_eq!((all["commands"].as_array().unwrap().len(), &all["expected"]), (2, &serde_json::json!(2)));
}

#[test]
fn expected_and_lapsed_count_every_ephemeral_instance() {
    testing::reset();
    let total = MAX_SWEEP_COMMANDS + 10;
    for i in 0..total {
        register(0, js_register(&format!("10.0.{}.{}", i / 256, i % 256), "80"));
    }
    register(0, js_register("10.9.0.1", "80").param("ephemeral", "false")); // not a lease
    let beating = r#"{"10.0.0.0#80#DEFAULT#DEFAULT_GROUP@@svc":19000}"#;
    let reply = sweep_reply(20_000, &[("beats", beating)]);
    assert_eq!(reply["commands"].as_array().unwrap().len(), MAX_SWEEP_COMMANDS);
    assert_eq!((reply["expected"].as_u64(), reply["lapsed"].as_u64()), (Some(total as u64), Some(total as u64 - 1)));
    // Marked unhealthy, they still count as lapsed; the one beating does not.
    let reply = sweep_reply(20_000, &[]);
    commit(20_000, reply["commands"].as_array().unwrap());
    assert_eq!(sweep_reply(20_000, &[("beats", beating)])["lapsed"], total as u64 - 1);
    assert_eq!(sweep_reply(10_000, &[])["lapsed"], 0, "within the timeout");
}

#[test]
fn self_preservation_keeps_registrations() {
    testing::reset();
    register(0, js_register("10.0.0.1", "80"));
    register(0, js_register("10.0.0.2", "80"));
    patch(0, "10.0.0.2", "80", &[("healthy", "false")]);
    let preserved = sweep_reply(40_000, &[("preserve", "true")]);
    // Past the delete timeout: the healthy one is only marked unhealthy, nothing expires.
    let ops: Vec<&str> = preserved["commands"].as_array().unwrap().iter().map(|c| c["op"].as_str().unwrap()).collect();
    assert_eq!(ops, ["naming.health"]);
    assert_eq!(preserved["commands"][0]["params"]["ip"], "10.0.0.1");
    assert_eq!((preserved["expected"].as_u64(), preserved["lapsed"].as_u64()), (Some(2), Some(2)));
    let normal = sweep_reply(40_000, &[]);
    assert!(normal["commands"].as_array().unwrap().iter().all(|c| c["op"] == "naming.expire"));
}
