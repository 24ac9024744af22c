use nacre_guest_sdk::testing;

use super::*;

#[test]
fn python_style_register_creates_service_cluster_and_instance() {
    testing::reset();
    register(1_000, py_register("10.0.0.1", "8080").param("metadata", r#"{"k": "v"}"#));
    assert_eq!(events(), naming_event(), "one event, keyed by the grouped name");
    let detail = body(
        &query_at(
            1_000,
            &req(
                DETAIL,
                &[
                    ("serviceName", "svc"),
                    ("ip", "10.0.0.1"),
                    ("port", "8080"),
                    ("cluster", "None"),
                    ("clusterName", "None"),
                ],
            ),
        )
        .unwrap(),
    );
    assert_eq!(
        detail,
        serde_json::json!({"service": SVC, "ip": "10.0.0.1", "port": 8080, "clusterName": "None", "weight": 1.0,
            "healthy": true, "instanceId": "10.0.0.1#8080#None#DEFAULT_GROUP@@svc", "metadata": {"k": "v"}})
    );
    let service = body(&query_at(1_000, &req(SERVICE_GET, &[("serviceName", "svc")])).unwrap());
    assert_eq!(service["clusters"][0]["name"], "None");
    assert_eq!(service["clusters"][0]["healthChecker"], serde_json::json!({"type": "TCP"}));
}

#[test]
fn js_style_register_and_reregister_replaces_fields() {
    testing::reset();
    register(1_000, js_register("10.0.0.1", "8080"));
    register(2_000, js_register("10.0.0.1", "8080").param("weight", "2").param("metadata", "a=1"));
    let listed = list(2_000, &[]);
    assert_eq!(listed["hosts"].as_array().unwrap().len(), 1, "same id, one instance");
    assert_eq!(listed["hosts"][0]["weight"], 2.0);
    assert_eq!(listed["hosts"][0]["metadata"], serde_json::json!({"a": "1"}));
    assert_eq!(events().len(), 2);
    // A re-registration that changes nothing is not news.
    register(3_000, js_register("10.0.0.1", "8080").param("weight", "2").param("metadata", "a=1"));
    assert!(events().is_empty());
    let metrics = body(&query_at(3_000, &req(METRICS, &[])).unwrap());
    assert_eq!(metrics, serde_json::json!({"serviceCount": 1, "instanceCount": 1}));
}

#[test]
fn ephemeral_flag_cannot_flip_on_reregister() {
    testing::reset();
    register(1_000, js_register("10.0.0.1", "8080"));
    let before = testing::entries();
    let err = write_at(2_000, &js_register("10.0.0.1", "8080").param("ephemeral", "false")).unwrap_err();
    assert_eq!(err.code, 400);
    assert!(err.message.contains("ephemeral") && err.message.contains("10.0.0.1#8080#DEFAULT#"), "{err}");
    assert_eq!(testing::entries(), before);
}

#[test]
fn deregister_is_idempotent_and_js_needs_no_group() {
    testing::reset();
    let deregister = req(
        DEREGISTER,
        &[
            ("namespaceId", "public"),
            ("serviceName", SVC),
            ("clusterName", "DEFAULT"),
            ("ip", "10.0.0.1"),
            ("port", "8080"),
            ("ephemeral", "true"),
        ],
    );
    assert_eq!(write_at(1, &deregister).unwrap().body, "ok", "missing service is ok");
    register(2, js_register("10.0.0.1", "8080"));
    register(3, js_register("10.0.0.2", "8080"));
    events();
    assert_eq!(write_at(4, &deregister).unwrap().body, "ok");
    assert_eq!(events(), naming_event());
    assert_eq!(write_at(5, &deregister).unwrap().body, "ok", "already gone is ok");
    // ...and leaves a tombstone (with its event) for the nodes that may still hold it.
    assert_eq!(events(), naming_event());
    assert_eq!(hosts(&list(5, &[])), vec![("10.0.0.2".to_owned(), 8080, true)]);
    // The persistent kind is not touched by an ephemeral deregister.
    register(6, js_register("10.0.0.3", "1").param("ephemeral", "false"));
    let persistent = deregister.clone().param("ip", "10.0.0.3").param("port", "1");
    write_at(7, &persistent).unwrap();
    assert_eq!(list(7, &[])["hosts"].as_array().unwrap().len(), 2);
    write_at(8, &persistent.param("ephemeral", "false")).unwrap();
    assert_eq!(list(8, &[])["hosts"].as_array().unwrap().len(), 1);
    let metrics = body(&query_at(8, &req(METRICS, &[])).unwrap());
    assert_eq!(metrics["instanceCount"], 1, "counts follow removals");
}

/// Issue 15: on the AP path, deregistering an instance this node has never seen (registered on
/// the other side of a partition) still deletes its key, so the tombstone wins there at the
/// heal. A log command never writes the AP keyspace.
#[test]
fn an_ephemeral_deregistration_deletes_even_what_this_node_does_not_hold() {
    testing::reset();
    let deregister = req(DEREGISTER, &[("serviceName", SVC), ("ip", "10.0.0.9"), ("port", "9"), ("ephemeral", "true")]);
    testing::take_deletes();
    assert_eq!(write_at(1, &deregister).unwrap().body, "ok");
    assert_eq!(testing::take_deletes(), vec![b"e/DEFAULT_GROUP@@svc/DEFAULT/10.0.0.9/00009".to_vec()]);
    let persistent = deregister.clone().param("ephemeral", "false");
    assert_eq!(write_at(2, &persistent).unwrap().body, "ok");
    assert!(testing::take_deletes().is_empty(), "a log command never writes the AP keyspace");
}

#[test]
fn update_and_patch_keep_unspecified_fields() {
    testing::reset();
    register(1, js_register("10.0.0.1", "8080").param("weight", "3").param("metadata", r#"{"a":"1"}"#));
    let update = req(
        UPDATE,
        &[
            ("serviceName", "svc"),
            ("groupName", "DEFAULT_GROUP"),
            ("ip", "10.0.0.1"),
            ("port", "8080"),
            ("ephemeral", "True"),
            ("enable", "False"),
        ],
    );
    assert_eq!(write_at(2, &update).unwrap().body, "ok");
    let stored =
        body(&query_at(2, &req(DETAIL, &[("serviceName", SVC), ("ip", "10.0.0.1"), ("port", "8080")])).unwrap());
    assert_eq!((stored["weight"].as_f64(), &stored["metadata"]), (Some(3.0), &serde_json::json!({"a": "1"})));
    assert!(list(2, &[])["hosts"].as_array().unwrap().is_empty(), "disabled, so not listed");
    // `healthy` on update is ignored for an ephemeral instance; patch sets it.
    write_at(3, &update.clone().param("healthy", "false").param("enable", "true")).unwrap();
    assert!(hosts(&list(3, &[]))[0].2);
    patch(4, "10.0.0.1", "8080", &[("weight", "5"), ("healthy", "false"), ("protectThreshold", "x")]);
    let stored =
        body(&query_at(4, &req(DETAIL, &[("serviceName", SVC), ("ip", "10.0.0.1"), ("port", "8080")])).unwrap());
    assert_eq!((stored["weight"].as_f64(), stored["healthy"].as_bool()), (Some(5.0), Some(false)));
    assert_eq!(stored["metadata"], serde_json::json!({"a": "1"}));
}

#[test]
fn update_of_a_missing_instance_registers_it_unless_a_java_client_asks() {
    testing::reset();
    register(1, js_register("10.0.0.1", "8080"));
    let before = testing::entries();
    events();
    // A Java client (1.x and later) and any PATCH: a 400 naming the instance, nothing written.
    let java = ("User-Agent", "Nacos-Java-Client:v1.4.1");
    let missing = [("serviceName", SVC), ("ip", "10.0.0.9"), ("port", "8080"), ("weight", "2")];
    for (op, agent) in [(UPDATE, Some(java)), (PATCH, None), (PATCH, Some(java))] {
        let err = write_at(2, &req(op, &[&missing[..], agent.as_slice()].concat())).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(err.message.starts_with("instance not"), "{err}");
        assert!(err.message.contains("10.0.0.9#8080#DEFAULT#DEFAULT_GROUP@@svc"), "{err}");
    }
    assert_eq!(testing::entries(), before);
    assert!(events().is_empty());
    // Every other client (Python, Node, curl): Nacos 1.4 registers it.
    for (port, agent) in [("8081", None), ("8082", Some(("User-Agent", "Nacos-Python-Client:v2.0.11")))] {
        let put = [("serviceName", SVC), ("ip", "10.0.0.9"), ("port", port), ("weight", "2")];
        assert_eq!(write_at(3, &req(UPDATE, &[&put[..], agent.as_slice()].concat())).unwrap().body, "ok");
    }
    let listed = hosts(&list(4, &[]));
    assert!(listed.contains(&("10.0.0.9".to_owned(), 8081, true)), "{listed:?}");
    assert!(listed.contains(&("10.0.0.9".to_owned(), 8082, true)), "{listed:?}");
}

#[test]
fn detail_of_missing_things_is_404() {
    testing::reset();
    let detail = req(DETAIL, &[("serviceName", SVC), ("ip", "10.0.0.1"), ("port", "8080")]);
    assert_eq!(query_at(1, &detail).unwrap_err().code, 404);
    register(1, js_register("10.0.0.2", "8080"));
    let err = query_at(1, &detail).unwrap_err();
    assert!(err.code == 404 && err.message.contains("no matched ip"), "{err}");
}
