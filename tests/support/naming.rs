//! Naming requests as the Nacos clients send them (parameters in the query string), shared by
//! the naming and AP test binaries.

use serde_json::Value;

use super::cluster::Cluster;
use super::http;

pub const INSTANCE: &str = "/nacos/v1/ns/instance";
pub const LIST: &str = "/nacos/v1/ns/instance/list";
pub const BEAT: &str = "/nacos/v1/ns/instance/beat";

pub fn query(pairs: &[(&str, &str)]) -> String {
    http::form(pairs)
}

pub fn register(cluster: &Cluster, node: usize, pairs: &[(&str, &str)]) {
    let resp = cluster.call(node, "POST", &format!("{INSTANCE}?{}", query(pairs))).unwrap();
    assert_eq!((resp.status, resp.text()), (200, "ok".to_string()), "register {pairs:?}");
}

pub fn list(cluster: &Cluster, node: usize, service: &str) -> Value {
    let resp = cluster.get(node, &format!("{LIST}?{}", query(&[("serviceName", service)]))).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()
}

/// `ip:port → healthy` of a listed service.
pub fn hosts(listing: &Value) -> Vec<(String, bool)> {
    let mut hosts: Vec<_> = listing["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (format!("{}:{}", h["ip"].as_str().unwrap(), h["port"]), h["healthy"].as_bool().unwrap()))
        .collect();
    hosts.sort();
    hosts
}

pub fn beat(cluster: &Cluster, node: usize, service: &str, ip: &str, port: u16, with_body: bool) -> Value {
    let beat_json = serde_json::json!({"serviceName": service, "ip": ip, "port": port, "cluster": "DEFAULT",
        "weight": 1.0, "metadata": {}, "scheduled": true})
    .to_string();
    let port_text = port.to_string();
    let mut pairs = vec![("serviceName", service), ("ip", ip), ("port", port_text.as_str())];
    if with_body {
        pairs.push(("beat", &beat_json));
    }
    let resp = cluster.call(node, "PUT", &format!("{BEAT}?{}", query(&pairs))).unwrap();
    assert_eq!(resp.status, 200, "beat: {}", resp.text());
    resp.json()
}
