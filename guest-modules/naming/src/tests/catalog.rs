//! The console's catalog reads, with Nacos's answers.

use nacre_guest_sdk::testing;
use serde_json::json;

use super::*;

fn catalog(op: &str, params: &[(&str, &str)]) -> Result<Value, GuestError> {
    query_at(1, &req(op, params)).map(|reply| body(&reply))
}

#[test]
fn the_service_catalog_counts_clusters_instances_and_healthy_ones_and_filters_by_substring() {
    testing::reset();
    register(1, js_register("10.0.0.1", "80").param("clusterName", "c1"));
    register(1, js_register("10.0.0.2", "80"));
    register(1, js_register("10.0.0.3", "80").param("serviceName", "other-svc"));
    register(1, js_register("10.0.0.4", "80").param("serviceName", "G2@@svc"));
    write_at(1, &req(SERVICE_CREATE, &[("serviceName", "empty")])).unwrap();

    let all = catalog(CATALOG_SERVICES, &[("pageNo", "1"), ("pageSize", "10")]).unwrap();
    assert_eq!(all["count"], 4, "{all}");
    let names: Vec<String> = all["serviceList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| format!("{}@@{}", s["groupName"].as_str().unwrap(), s["name"].as_str().unwrap()))
        .collect();
    assert_eq!(names, ["DEFAULT_GROUP@@empty", "DEFAULT_GROUP@@other-svc", "DEFAULT_GROUP@@svc", "G2@@svc"]);
    let svc =
        all["serviceList"].as_array().unwrap().iter().find(|s| s["name"] == "svc" && s["groupName"] == "DEFAULT_GROUP");
    let svc = svc.unwrap();
    let counts = (svc["clusterCount"].as_u64(), svc["ipCount"].as_u64(), svc["healthyInstanceCount"].as_u64());
    assert_eq!(counts, (Some(2), Some(2), Some(2)));
    assert_eq!(svc["triggerFlag"], "false", "a string, as Nacos sends it");

    let filtered = catalog(
        CATALOG_SERVICES,
        &[("pageNo", "1"), ("pageSize", "10"), ("serviceNameParam", "svc"), ("hasIpCount", "true")],
    );
    let filtered = filtered.unwrap();
    assert_eq!(filtered["count"], 3, "substring match, empty services hidden: {filtered}");
    let grouped = catalog(CATALOG_SERVICES, &[("pageNo", "1"), ("pageSize", "10"), ("groupNameParam", "G2")]).unwrap();
    assert_eq!(grouped["count"], 1);
    let second = catalog(CATALOG_SERVICES, &[("pageNo", "2"), ("pageSize", "3")]).unwrap();
    assert_eq!((second["count"].as_u64(), second["serviceList"].as_array().map(Vec::len)), (Some(4), Some(1)));
    let past = catalog(CATALOG_SERVICES, &[("pageNo", "9"), ("pageSize", "10")]).unwrap();
    assert_eq!(past["serviceList"], json!([]), "a page past the end is empty");
    assert!(catalog(CATALOG_SERVICES, &[("pageNo", "x"), ("pageSize", "1")]).unwrap_err().message.contains("pageNo"));
}

#[test]
fn one_service_and_its_clusters_and_a_clusters_instances_paged() {
    testing::reset();
    register(1, js_register("10.0.0.1", "80").param("clusterName", "c1"));
    register(1, js_register("10.0.0.2", "81").param("clusterName", "c1"));
    register(1, js_register("10.0.0.3", "82"));

    let service = catalog(CATALOG_SERVICE, &[("serviceName", SVC)]).unwrap();
    assert_eq!(
        service["service"],
        json!({"name": "svc", "groupName": "DEFAULT_GROUP", "protectThreshold": 0.0,
        "selector": {"type": "none"}, "metadata": {}})
    );
    let clusters: Vec<&str> =
        service["clusters"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(clusters, ["DEFAULT", "c1"]);
    assert_eq!(service["clusters"][1]["serviceName"], "DEFAULT_GROUP@@svc");
    assert_eq!(service["clusters"][1]["healthChecker"], json!({"type": "TCP"}));
    let missing = catalog(CATALOG_SERVICE, &[("serviceName", "nope")]).unwrap_err();
    assert_eq!((missing.code, missing.message.as_str()), (404, "service DEFAULT_GROUP@@nope is not found!"));

    let page = |no: &str| {
        catalog(CATALOG_INSTANCES, &[("serviceName", SVC), ("clusterName", "c1"), ("pageNo", no), ("pageSize", "1")])
    };
    let first = page("1").unwrap();
    assert_eq!(first["count"], 2);
    assert_eq!(first["list"][0]["ip"], "10.0.0.1");
    assert_eq!(first["list"][0]["instanceId"], "10.0.0.1#80#c1#DEFAULT_GROUP@@svc");
    assert_eq!(first["list"][0]["instanceHeartBeatTimeOut"], 15000);
    assert_eq!(page("2").unwrap()["list"][0]["ip"], "10.0.0.2");
    let unknown =
        catalog(CATALOG_INSTANCES, &[("serviceName", SVC), ("clusterName", "zz"), ("pageNo", "1"), ("pageSize", "1")]);
    let unknown = unknown.unwrap_err();
    assert_eq!((unknown.code, unknown.message.as_str()), (404, "cluster zz is not found!"));
    let no_cluster =
        catalog(CATALOG_INSTANCES, &[("serviceName", SVC), ("pageNo", "1"), ("pageSize", "1")]).unwrap_err();
    assert!(no_cluster.message.contains("clusterName"), "{no_cluster}");
}
