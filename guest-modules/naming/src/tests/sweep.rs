use nacre_guest_sdk::testing;

use super::*;
use crate::lease::{MAX_INSTANCES_PER_COMMAND, MAX_SERVICE_REMOVALS, MAX_SWEEP_INSTANCES};

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

/// The instances a batched command names, as `(ip, port, registeredMs)`.
fn named(command: &Value) -> Vec<(String, u64, u64)> {
    let list: Value =
        serde_json::from_str(command["params"]["instances"].as_str().expect("a batched command")).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (i["ip"].as_str().unwrap().to_owned(), i["port"].as_u64().unwrap(), i["registeredMs"].as_u64().unwrap())
        })
        .collect()
}

/// `(op, partition, ip)` of every instance the commands name, in order.
fn verdicts(commands: &[Value]) -> Vec<(String, String, String)> {
    commands
        .iter()
        .flat_map(|c| {
            let (op, partition) = (c["op"].as_str().unwrap().to_owned(), c["partition"].as_str().unwrap().to_owned());
            named(c).into_iter().map(move |(ip, _, _)| (op.clone(), partition.clone(), ip))
        })
        .collect()
}

/// An ip for instance `i`.
fn ip(i: usize) -> String {
    format!("10.{}.{}.{}", i / 65_536, (i / 256) % 256, i % 256)
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
        vec![serde_json::json!({"op": "naming.health", "params": {"serviceName": SVC, "ephemeral": "true",
            "healthy": "false",
            "instances": r#"[{"clusterName":"DEFAULT","ip":"10.0.0.1","port":80,"registeredMs":1000}]"#},
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
fn renewals_are_read_whatever_their_json_spelling() {
    testing::reset();
    register(1_000, js_register("10.0.0.2", "80"));
    // An escaped key (no instance id needs one) is read as well as a plain one.
    assert!(sweep(16_001, 0, r#"{"10.0.0.\u0032#80#DEFAULT#DEFAULT_GROUP@@svc":15000}"#).is_empty());
    assert!(sweep(16_001, 0, r#"{"10.0.0.2#80#DEFAULT#DEFAULT_GROUP@@svc":15000}"#).is_empty());
    assert_eq!(verdicts(&sweep(16_001, 0, r#"{"10.0.0.3#80#DEFAULT#DEFAULT_GROUP@@svc":15000}"#)).len(), 1);
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
    let services = ["G@@a", "G@@b", "G@@c"];
    let total = MAX_SWEEP_INSTANCES + 10;
    for i in 0..total {
        register(0, js_register(&ip(i), "80").param("serviceName", services[i % 3]));
    }
    let commands = sweep(20_000, 0, "{}");
    let judged = verdicts(&commands);
    assert_eq!(judged.len(), MAX_SWEEP_INSTANCES, "the cap counts instances, not commands");
    assert_eq!(commands, sweep(20_000, 0, "{}"), "deterministic");
    assert!(commands.iter().all(|c| c["op"] == "naming.health" && named(c).len() <= MAX_INSTANCES_PER_COMMAND));
    assert!(commands.len() < MAX_SWEEP_INSTANCES / MAX_INSTANCES_PER_COMMAND + services.len() + 1, "batched");
    let partitions: Vec<&str> = commands.iter().map(|c| c["partition"].as_str().unwrap()).collect();
    assert!(partitions.is_sorted(), "in key order: {partitions:?}");
    commit(20_000, &commands);
    assert_eq!(verdicts(&sweep(20_000, 0, "{}")).len(), 10, "the rest come next time");
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
fn service_removals_are_capped() {
    testing::reset();
    for i in 0..MAX_SERVICE_REMOVALS + 5 {
        write_at(1, &req(SERVICE_CREATE, &[("serviceName", &format!("s{i:04}"))])).unwrap();
    }
    let commands = sweep(100_000, 0, "{}");
    assert_eq!(commands.len(), MAX_SERVICE_REMOVALS);
    commit(100_000, &commands);
    assert_eq!(sweep(100_000, 0, "{}").len(), 5, "the rest come next time");
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
    let total = MAX_SWEEP_INSTANCES + 10;
    for i in 0..total {
        register(0, js_register(&ip(i), "80").param("serviceName", if i % 2 == 0 { "G@@a" } else { "G@@b" }));
    }
    register(0, js_register("10.250.0.1", "80").param("ephemeral", "false")); // not a lease
    let beating = r#"{"10.0.0.0#80#DEFAULT#G@@a":19000}"#;
    let reply = sweep_reply(20_000, &[("beats", beating)]);
    assert_eq!(verdicts(reply["commands"].as_array().unwrap()).len(), MAX_SWEEP_INSTANCES);
    assert_eq!((reply["expected"].as_u64(), reply["lapsed"].as_u64()), (Some(total as u64), Some(total as u64 - 1)));
    // Marked unhealthy, they still count as lapsed; the one beating does not.
    let reply = sweep_reply(20_000, &[]);
    commit(20_000, reply["commands"].as_array().unwrap());
    assert_eq!(sweep_reply(20_000, &[("beats", beating)])["lapsed"], total as u64 - 1);
    assert_eq!(sweep_reply(10_000, &[])["lapsed"], 0, "within the timeout");
}

/// What the host's chunks rely on: a sweep of some partitions judges every instance in them
/// (each named once, by the command its state calls for, at its own partition), nothing
/// outside them, and counts them all.
#[test]
fn a_sweep_of_a_chunk_judges_every_instance_of_it_and_nothing_else() {
    testing::reset();
    let quick = r#"{"preserved.heart.beat.timeout":"2000","preserved.ip.delete.timeout":"4000"}"#;
    let services: Vec<String> = (0..5).map(|s| format!("G@@s{s}")).collect();
    let mut beats = serde_json::Map::new();
    let mut expected = std::collections::BTreeSet::new();
    for (s, service) in services.iter().enumerate() {
        for i in 0..300 {
            let ip = ip(s * 1_000 + i);
            // By i % 3: beating (kept), silent since 1 s (lapsed: marked unhealthy), registered
            // at 0 and silent since (expired).
            let registered = if i % 3 == 2 { 0 } else { 1_000 };
            register(registered, js_register(&ip, "80").param("serviceName", service).param("metadata", quick));
            let id = format!("{ip}#80#DEFAULT#{service}");
            match i % 3 {
                0 => drop(beats.insert(id, 4_000.into())),
                verdict if s < 3 => {
                    let op = if verdict == 1 { "naming.health" } else { "naming.expire" };
                    expected.insert((op.to_owned(), service.clone(), ip));
                }
                _ => {}
            }
        }
    }
    let chunk = serde_json::to_string(&services[..3]).unwrap();
    let beats = Value::Object(beats).to_string();
    let reply = sweep_reply(4_500, &[("partitions", &chunk), ("beats", &beats)]);
    let commands = reply["commands"].as_array().unwrap();
    let judged = verdicts(commands);
    assert_eq!(judged.len(), expected.len(), "each instance named once");
    assert_eq!(judged.into_iter().collect::<std::collections::BTreeSet<_>>(), expected);
    assert_eq!((reply["expected"].as_u64(), reply["lapsed"].as_u64()), (Some(900), Some(600)));
    for command in commands {
        assert!(named(command).len() <= MAX_INSTANCES_PER_COMMAND);
        assert_eq!(command["partition"], command["params"]["serviceName"]);
    }
    // Run, the chunk has nothing left to do; the other partitions were not touched.
    commit(4_500, commands);
    let again = sweep_reply(4_500, &[("partitions", &chunk), ("beats", &beats)]);
    assert_eq!((again["commands"].as_array().unwrap().len(), again["expected"].as_u64()), (0, Some(600)));
    let rest =
        sweep_reply(4_500, &[("partitions", &serde_json::to_string(&services[3..]).unwrap()), ("beats", &beats)]);
    assert_eq!(verdicts(rest["commands"].as_array().unwrap()).len(), 400, "200 lapsed and 200 expired in s3 and s4");
}

#[test]
fn a_batched_expiry_spares_instances_registered_again_and_tells_watchers_once() {
    testing::reset();
    for i in 0..4 {
        register(1_000, js_register(&ip(i), "80"));
    }
    let commands = sweep(40_000, 0, "{}");
    assert_eq!((commands.len(), named(&commands[0]).len()), (1, 4));
    register(39_000, js_register(&ip(2), "80")); // registered again before the expiry runs
    events();
    commit(40_000, &commands);
    assert_eq!(hosts(&list(40_000, &[])), vec![(ip(2), 80, true)], "the newer registration stays");
    assert_eq!(events(), naming_event(), "one event for the service");
    commit(40_000, &commands);
    assert!(events().is_empty(), "nothing left to remove: no event");
}

#[test]
fn a_batched_health_change_marks_only_what_the_sweep_saw() {
    testing::reset();
    for i in 0..3 {
        register(1_000, js_register(&ip(i), "80"));
    }
    let commands = sweep(20_000, 0, "{}");
    assert_eq!((commands[0]["op"].as_str(), named(&commands[0]).len()), (Some("naming.health"), 3));
    register(19_000, js_register(&ip(1), "80")); // registered again: not the instance judged
    events();
    commit(20_000, &commands);
    assert_eq!(hosts(&list(20_000, &[])), vec![(ip(0), 80, false), (ip(1), 80, true), (ip(2), 80, false)]);
    assert_eq!(events(), naming_event());
}

#[test]
fn batched_commands_are_for_the_sweep_and_checked_like_requests() {
    testing::reset();
    register(1_000, js_register("10.0.0.1", "80"));
    let batch = |op: &str, instances: &str| {
        req(op, &[("serviceName", SVC), ("ephemeral", "true"), ("healthy", "false"), ("instances", instances)])
    };
    let one = r#"[{"clusterName":"DEFAULT","ip":"10.0.0.1","port":80,"registeredMs":1000}]"#;
    // A client's health change names one instance: its plan refuses a list.
    let err = write_at(2_000, &batch(HEALTH, one)).unwrap_err();
    assert!(err.code == 400 && err.message.contains("instances"), "{err}");
    for bad in [
        "{}",
        r#"[{"ip":"10.0.0.1"}]"#,
        r#"[{"clusterName":"DEFAULT/10.0.0.1","ip":"10.0.0.1","port":80,"registeredMs":1000}]"#,
        r#"[{"clusterName":"DEFAULT","ip":"10.0.0.1/80","port":80,"registeredMs":1000}]"#,
    ] {
        for op in [HEALTH, EXPIRE] {
            let err = apply_ap_at(2_000, &batch(op, bad)).unwrap_err();
            assert!(err.code == 400 && err.message.contains("instances"), "{op} {bad}: {err}");
        }
    }
    let over: Vec<Value> = (0..=MAX_INSTANCES_PER_COMMAND)
        .map(|i| serde_json::json!({"clusterName": "DEFAULT", "ip": ip(i), "port": 80, "registeredMs": 0}))
        .collect();
    let err = apply_ap_at(2_000, &batch(EXPIRE, &Value::from(over).to_string())).unwrap_err();
    assert!(err.code == 400 && err.message.contains("instances"), "{err}");
    assert_eq!(apply_ap_at(2_000, &batch(EXPIRE, one)).unwrap().body, "ok");
    assert!(hosts(&list(2_000, &[])).is_empty());
}

#[test]
fn timeouts_are_read_from_metadata_as_a_whole_record_reads_them() {
    testing::reset();
    let cases = [
        (r#"{"preserved.heart.beat.timeout":" 3000 ","note":"a \"quoted\" \u00e9 value"}"#, 3_000),
        (r#"{"preserved.heart.beat.timeout":"soon","preserved.ip.delete.timeout":"90000"}"#, 15_000),
        (r#"{"a":"1","preserved.heart.beat.timeout":"4000","z":""}"#, 4_000),
        ("{}", 15_000),
    ];
    for (i, (metadata, timeout)) in cases.iter().enumerate() {
        testing::reset();
        register(0, js_register(&ip(i), "80").param("metadata", *metadata));
        assert!(sweep(*timeout, 0, "{}").is_empty(), "{metadata}: not lapsed at {timeout}");
        assert_eq!(verdicts(&sweep(timeout + 1, 0, "{}")).len(), 1, "{metadata}: lapsed after {timeout}");
    }
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
    assert_eq!(named(&preserved["commands"][0]), [("10.0.0.1".to_owned(), 80, 0)]);
    assert_eq!((preserved["expected"].as_u64(), preserved["lapsed"].as_u64()), (Some(2), Some(2)));
    let normal = sweep_reply(40_000, &[]);
    assert!(normal["commands"].as_array().unwrap().iter().all(|c| c["op"] == "naming.expire"));
}
