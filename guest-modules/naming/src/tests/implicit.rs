//! Ephemeral instances write only the AP keyspace; the service they are in exists implicitly,
//! with the default settings, in every read.

use nacre_guest_sdk::testing;

use super::*;

fn service_list(group: &str, page_no: &str, page_size: &str) -> Value {
    let params = [("groupName", group), ("pageNo", page_no), ("pageSize", page_size)];
    body(&query_at(1, &req(SERVICE_LIST, &params)).unwrap())
}

fn metrics() -> Value {
    body(&query_at(1, &req(METRICS, &[])).unwrap())
}

#[test]
fn ephemeral_instances_write_only_their_own_keys() {
    testing::reset();
    register(1, js_register("10.0.0.1", "80").param("clusterName", "c1"));
    let keys: Vec<String> = testing::entries().keys().map(|k| String::from_utf8_lossy(k).into_owned()).collect();
    assert_eq!(keys, ["e/DEFAULT_GROUP@@svc/c1/10.0.0.1/00080"], "no service record, no cluster");
    write_at(2, &req(DEREGISTER, &[("serviceName", SVC), ("clusterName", "c1"), ("ip", "10.0.0.1"), ("port", "80")]))
        .unwrap();
    assert!(testing::entries().is_empty());
    // A persistent instance keeps its record, which counts persistent instances only.
    register(3, js_register("10.0.0.1", "80"));
    register(3, js_register("10.0.0.2", "80").param("ephemeral", "false"));
    let name = crate::names::ServiceName { group: "DEFAULT_GROUP".into(), service: "svc".into() };
    assert_eq!(crate::record::load_service(&name).unwrap().unwrap().instance_count, 1);
}

#[test]
fn a_service_with_only_ephemeral_instances_reads_like_any_other() {
    testing::reset();
    register(1, js_register("10.0.0.1", "80").param("clusterName", "c1"));
    register(1, js_register("10.0.0.2", "80"));
    let detail = req(DETAIL, &[("serviceName", SVC), ("clusterName", "c1"), ("ip", "10.0.0.1"), ("port", "80")]);
    assert_eq!(body(&query_at(1, &detail).unwrap())["ip"], "10.0.0.1");
    let service = body(&query_at(1, &req(SERVICE_GET, &[("serviceName", SVC)])).unwrap());
    assert_eq!(
        service,
        serde_json::json!({"name": "svc", "groupName": "DEFAULT_GROUP", "namespaceId": "", "protectThreshold": 0.0,
            "metadata": {}, "selector": {"type": "none"}, "clusters": [
                {"name": "DEFAULT", "healthChecker": {"type": "TCP"}, "metadata": {}},
                {"name": "c1", "healthChecker": {"type": "TCP"}, "metadata": {}}]})
    );
    assert_eq!(hosts(&list(1, &[])).len(), 2);
    assert_eq!(service_list("DEFAULT_GROUP", "1", "10"), serde_json::json!({"count": 1, "doms": ["svc"]}));
    assert_eq!(metrics(), serde_json::json!({"serviceCount": 1, "instanceCount": 2}));
    // Without instances it is gone from every read.
    for ip in ["10.0.0.1", "10.0.0.2"] {
        write_at(2, &req(DEREGISTER, &[("serviceName", SVC), ("ip", ip), ("port", "80"), ("clusterName", "c1")]))
            .unwrap();
        write_at(2, &req(DEREGISTER, &[("serviceName", SVC), ("ip", ip), ("port", "80")])).unwrap();
    }
    let err = query_at(3, &detail).unwrap_err();
    assert!(err.code == 404 && err.message.starts_with("no service"), "{err}");
    assert_eq!(query_at(3, &req(SERVICE_GET, &[("serviceName", SVC)])).unwrap_err().code, 404);
    assert_eq!(service_list("DEFAULT_GROUP", "1", "10"), serde_json::json!({"count": 0, "doms": []}));
    assert_eq!(metrics(), serde_json::json!({"serviceCount": 0, "instanceCount": 0}));
    assert_eq!(list(3, &[])["hosts"], serde_json::json!([]), "an unknown service lists no hosts");
}

#[test]
fn service_lists_and_metrics_union_both_kinds_of_service() {
    testing::reset();
    for name in ["a", "c"] {
        write_at(1, &req(SERVICE_CREATE, &[("serviceName", name)])).unwrap();
    }
    // `svc.x` and `svc-y` sort before `svc/` in the ephemeral keys, after `svc` by name.
    for (service, ip) in [("b", "1"), ("c", "2"), ("svc.x", "3"), ("svc", "4"), ("svc", "5"), ("svc-y", "6")] {
        register(1, js_register(&format!("10.0.0.{ip}"), "80").param("serviceName", service));
    }
    register(1, js_register("10.0.1.1", "80").param("serviceName", "d").param("ephemeral", "false"));
    register(1, js_register("10.0.1.2", "80").param("serviceName", "G2@@z"));
    assert_eq!(
        service_list("DEFAULT_GROUP", "1", "100"),
        serde_json::json!({"count": 7, "doms": ["a", "b", "c", "d", "svc", "svc-y", "svc.x"]})
    );
    assert_eq!(service_list("DEFAULT_GROUP", "2", "3"), serde_json::json!({"count": 7, "doms": ["d", "svc", "svc-y"]}));
    assert_eq!(service_list("G2", "1", "10"), serde_json::json!({"count": 1, "doms": ["z"]}));
    assert_eq!(metrics(), serde_json::json!({"serviceCount": 8, "instanceCount": 8}));
}

#[test]
fn settings_of_an_implicit_service_create_its_record() {
    testing::reset();
    register(1, js_register("10.0.0.1", "80"));
    let err = write_at(2, &req(SERVICE_CREATE, &[("serviceName", SVC)])).unwrap_err();
    assert_eq!(err.message, "specified service already exists, serviceName : DEFAULT_GROUP@@svc");
    write_at(3, &req(SERVICE_UPDATE, &[("serviceName", SVC), ("metadata", "owner=me")])).unwrap();
    let cluster = [("serviceName", SVC), ("clusterName", "c2"), ("healthChecker", r#"{"type":"NONE"}"#)];
    write_at(4, &req(CLUSTER_UPDATE, &cluster)).unwrap();
    let service = body(&query_at(4, &req(SERVICE_GET, &[("serviceName", SVC)])).unwrap());
    assert_eq!(service["metadata"], serde_json::json!({"owner": "me"}));
    assert_eq!(
        service["clusters"],
        serde_json::json!([{"name": "DEFAULT", "healthChecker": {"type": "TCP"}, "metadata": {}},
            {"name": "c2", "healthChecker": {"type": "NONE"}, "metadata": {}}])
    );
    assert_eq!(metrics(), serde_json::json!({"serviceCount": 1, "instanceCount": 1}), "counted once");
    // A service that does not exist at all is still refused.
    let err = write_at(5, &req(SERVICE_UPDATE, &[("serviceName", "nope"), ("protectThreshold", "0.1")])).unwrap_err();
    assert_eq!((err.code, err.message.as_str()), (400, "service DEFAULT_GROUP@@nope not found!"));
    let err = write_at(5, &req(CLUSTER_UPDATE, &[("serviceName", "nope"), ("clusterName", "c")])).unwrap_err();
    assert_eq!((err.code, err.message.as_str()), (400, "service not found, serviceName: DEFAULT_GROUP@@nope"));
}
