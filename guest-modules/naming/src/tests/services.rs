use nacre_guest_sdk::testing;

use super::*;

fn create(name: &str, extra: &[(&str, &str)]) -> Result<GuestReply, GuestError> {
    let mut params = vec![("serviceName", name)];
    params.extend_from_slice(extra);
    write_at(1, &req(SERVICE_CREATE, &params))
}

#[test]
fn create_get_and_duplicate() {
    testing::reset();
    let selector = r#"{"type":"label","expression":"CONSUMER.label.a = PROVIDER.label.a"}"#;
    create(
        "svc",
        &[("groupName", "G"), ("protectThreshold", "0.5"), ("metadata", r#"{"owner":"me"}"#), ("selector", selector)],
    )
    .unwrap();
    assert_eq!(events(), vec![("naming".to_owned(), "G@@svc".to_owned())]);
    let got = body(&query_at(1, &req(SERVICE_GET, &[("serviceName", "G@@svc")])).unwrap());
    assert_eq!(
        got,
        serde_json::json!({"name": "svc", "groupName": "G", "namespaceId": "", "protectThreshold": 0.5,
            "metadata": {"owner": "me"}, "selector": {"type": "label", "expression": "CONSUMER.label.a = PROVIDER.label.a"},
            "clusters": []})
    );
    let err = create("svc", &[("groupName", "G")]).unwrap_err();
    assert_eq!((err.code, err.message.as_str()), (400, "specified service already exists, serviceName : G@@svc"));
    let err = query_at(1, &req(SERVICE_GET, &[("serviceName", "nope")])).unwrap_err();
    assert_eq!((err.code, err.message.as_str()), (404, "service DEFAULT_GROUP@@nope is not found!"));
}

#[test]
fn remove_refuses_services_with_instances_and_missing_ones() {
    testing::reset();
    let remove = req(SERVICE_REMOVE, &[("serviceName", "svc")]);
    let err = write_at(1, &remove).unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (400, "specified service not exist, serviceName : DEFAULT_GROUP@@svc")
    );
    register(2, js_register("10.0.0.1", "80").param("ephemeral", "false"));
    let err = write_at(3, &remove).unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (400, "specified service has instances, serviceName : DEFAULT_GROUP@@svc")
    );
    write_at(4, &req(DEREGISTER, &[("serviceName", SVC), ("ip", "10.0.0.1"), ("port", "80")])).unwrap();
    events();
    assert_eq!(write_at(5, &remove).unwrap().body, "ok");
    assert_eq!(events(), naming_event());
    assert!(testing::entries().is_empty(), "nothing left");
}

#[test]
fn remove_is_refused_while_ephemeral_instances_remain() {
    testing::reset();
    create("svc", &[]).unwrap();
    register(2, js_register("10.0.0.1", "80"));
    let remove = req(SERVICE_REMOVE, &[("serviceName", "svc")]);
    let err = write_at(3, &remove).unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (400, "specified service has instances, serviceName : DEFAULT_GROUP@@svc"),
        "the plan sees the ephemeral instance the log command cannot"
    );
    // A service known only by its ephemeral instances is refused the same way.
    register(4, js_register("10.0.0.1", "80").param("serviceName", "G@@only-ephemeral"));
    let err = write_at(5, &req(SERVICE_REMOVE, &[("serviceName", "G@@only-ephemeral")])).unwrap_err();
    assert!(err.message.starts_with("specified service has instances"), "{err}");
}

#[test]
fn update_changes_only_what_is_given() {
    testing::reset();
    create("svc", &[("metadata", "a=1")]).unwrap();
    write_at(2, &req(SERVICE_UPDATE, &[("serviceName", "svc"), ("protectThreshold", "0.3")])).unwrap();
    let got = body(&query_at(2, &req(SERVICE_GET, &[("serviceName", "svc")])).unwrap());
    assert_eq!(
        (got["protectThreshold"].as_f64().map(|t| (t * 10.0).round()), &got["metadata"]),
        (Some(3.0), &serde_json::json!({"a": "1"}))
    );
    let err = write_at(3, &req(SERVICE_UPDATE, &[("serviceName", "nope"), ("protectThreshold", "0.3")])).unwrap_err();
    assert_eq!((err.code, err.message.as_str()), (400, "service DEFAULT_GROUP@@nope not found!"));
    let err = write_at(3, &req(SERVICE_UPDATE, &[("serviceName", "svc"), ("protectThreshold", "2")])).unwrap_err();
    assert!(err.message.contains("protectThreshold"), "{err}");
}

#[test]
fn list_pages_names_within_a_group() {
    testing::reset();
    for name in ["c", "a", "b", "d", "e"] {
        create(name, &[]).unwrap();
    }
    create("other", &[("groupName", "G2")]).unwrap();
    let page = |no: &str, size: &str, group: Option<&str>| {
        let mut params = vec![("pageNo", no), ("pageSize", size)];
        params.extend(group.map(|g| ("groupName", g)));
        body(&query_at(1, &req(SERVICE_LIST, &params)).unwrap())
    };
    assert_eq!(page("1", "2", None), serde_json::json!({"count": 5, "doms": ["a", "b"]}));
    assert_eq!(page("3", "2", None), serde_json::json!({"count": 5, "doms": ["e"]}));
    assert_eq!(page("4", "2", None), serde_json::json!({"count": 5, "doms": []}));
    assert_eq!(page("1", "2147483647", Some("G2")), serde_json::json!({"count": 1, "doms": ["other"]}));
    let err = query_at(1, &req(SERVICE_LIST, &[("pageNo", "1")])).unwrap_err();
    assert!(err.message.contains("pageSize"), "{err}");
    let metrics = body(&query_at(1, &req(METRICS, &[])).unwrap());
    assert_eq!(metrics, serde_json::json!({"serviceCount": 6, "instanceCount": 0}));
}

#[test]
fn list_pages_past_one_scan() {
    testing::reset();
    let total = crate::record::SCAN_PAGE_ROWS as usize + 5;
    for i in 0..total {
        create(&format!("s{i:05}"), &[]).unwrap();
    }
    let page_size = crate::record::SCAN_PAGE_ROWS.to_string();
    let last = body(&query_at(1, &req(SERVICE_LIST, &[("pageNo", "2"), ("pageSize", &page_size)])).unwrap());
    assert_eq!(last["count"], total);
    assert_eq!(last["doms"].as_array().unwrap().len(), 5);
}
