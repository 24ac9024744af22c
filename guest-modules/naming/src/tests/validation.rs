use nacre_guest_sdk::testing;

use super::*;

#[test]
fn bad_registrations_name_the_field_and_write_nothing() {
    testing::reset();
    register(1, js_register("10.0.0.1", "80"));
    let before = testing::entries();
    events();
    let cases = [
        (js_register("10.0.0.2", "abc"), "port"),
        (js_register("10.0.0.2", "70000"), "port"),
        (js_register("10.0.0.2", "80").param("weight", "20000"), "weight"),
        (js_register("10.0.0.2", "80").param("clusterName", "a b"), "clusterName"),
        (py_register("10.0.0.2", "80").param("clusterName", "").param("cluster", "a b"), "cluster"),
        (js_register("10.0.0.2", "80").param("metadata", "{bad"), "metadata"),
        (js_register("10.0.0.2", "80").param("healthy", "yes"), "healthy"),
        (js_register("10.0.0.2", "80").param("enable", "maybe"), "enable"),
        (js_register("", "80"), "ip"),
        (js_register("10.0.0.2", "80").param("serviceName", "G@@a@@b"), "serviceName"),
        (js_register("10.0.0.2", "80").param("app", "x".repeat(200)), "app"),
        // A failed re-registration of an existing instance changes nothing either.
        (js_register("10.0.0.1", "80").param("weight", "-1"), "weight"),
    ];
    for (request, field) in cases {
        let err = write_at(2, &request).unwrap_err();
        assert_eq!(err.code, 400, "{field}: {err}");
        assert!(err.message.contains(field), "{field}: {err}");
        assert_eq!(apply_ap_at(2, &request).unwrap_err(), err, "the command refuses as its plan does");
    }
    assert_eq!(testing::entries(), before);
    assert!(events().is_empty());
}

#[test]
fn bad_service_settings_name_the_field() {
    testing::reset();
    for (name, value) in [("protectThreshold", "1.1"), ("metadata", "{bad"), ("selector", "{\"type\":\"x\"}")] {
        let err = write_at(1, &req(SERVICE_CREATE, &[("serviceName", SVC), (name, value)])).unwrap_err();
        assert!(err.code == 400 && err.message.contains(name), "{name}: {err}");
    }
    write_at(1, &req(SERVICE_CREATE, &[("serviceName", SVC)])).unwrap();
    let before = testing::entries();
    for (name, value) in [("healthChecker", "{\"type\":\"UDP\"}"), ("checkPort", "x"), ("useInstancePort4Check", "2")] {
        let err = write_at(2, &req(CLUSTER_UPDATE, &[("serviceName", SVC), ("clusterName", "DEFAULT"), (name, value)]))
            .unwrap_err();
        assert!(err.code == 400 && err.message.contains(name), "{name}: {err}");
    }
    assert_eq!(testing::entries(), before);
}

#[test]
fn instances_per_service_are_limited() {
    testing::reset();
    // Pretend the service is full of persistent instances but one, without registering ten
    // thousand of them; ephemeral instances count too.
    let name = crate::names::ServiceName { group: "DEFAULT_GROUP".into(), service: "svc".into() };
    write_at(1, &req(SERVICE_CREATE, &[("serviceName", SVC)])).unwrap();
    let mut service = crate::record::load_service(&name).unwrap().unwrap();
    service.instance_count = crate::record::MAX_INSTANCES_PER_SERVICE - 1;
    crate::record::save_service(&name, &service);
    register(1, js_register("10.0.0.1", "80"));
    let before = testing::entries();
    for kind in ["true", "false"] {
        let err = write_at(2, &js_register("10.0.0.2", "80").param("ephemeral", kind)).unwrap_err();
        assert!(err.code == 400 && err.message.contains("serviceName"), "{kind}: {err}");
    }
    assert_eq!(testing::entries(), before);
    register(3, js_register("10.0.0.1", "80").param("weight", "3")); // re-registering is fine
}

#[test]
fn operations_are_dispatched_by_kind() {
    testing::reset();
    let err = apply_log_at(1, &req(LIST, &[])).unwrap_err();
    assert_eq!(err.code, 400, "a read is not a command");
    assert!(err.message.contains("unknown operation"), "{err}");
    let err = query_at(1, &req("naming.nope", &[])).unwrap_err();
    assert!(err.code == 400 && err.message.contains("unknown operation"), "{err}");
    for op in COMMANDS {
        assert!(apply_log_at(1, &req(op, &[])).unwrap_err().message.contains("Required parameter"), "{op}");
    }
    for op in COMMANDS.iter().filter(|op| is_planned(op)).chain(QUERIES) {
        if *op != HEALTH_TARGETS && *op != METRICS {
            let err = query_at(1, &req(op, &[])).unwrap_err();
            assert!(err.message.contains("Required parameter"), "{op}: {err}");
        }
    }
    assert!(COMMANDS.iter().all(|op| *op == BEAT || is_planned(op)), "every command but the beat has a plan");
    assert!(testing::entries().is_empty());
}

#[test]
fn a_service_has_a_bounded_number_of_clusters() {
    testing::reset();
    for i in 0..crate::record::MAX_CLUSTERS_PER_SERVICE {
        register(1, js_register("10.0.0.1", "80").param("clusterName", format!("c{i}")));
    }
    let before = testing::entries();
    let err = write_at(2, &js_register("10.0.0.1", "80").param("clusterName", "one-more")).unwrap_err();
    assert_eq!(err.code, 400);
    assert!(err.message.contains("clusterName"), "{err}");
    assert_eq!(testing::entries(), before, "nothing written");
    // An existing cluster still takes registrations.
    register(3, js_register("10.0.0.2", "80").param("clusterName", "c0"));
}
