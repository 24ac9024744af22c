//! The Nacos 2.x gRPC port at the protocol's edges, driven by the raw client
//! (`nacre::grpc::client`) against a real node: the handshake's 301 before setup, Nacos's error
//! answers for unknown and malformed requests, and auth from the metadata (anonymous, forged
//! and read-only callers refused, in the response type clients act on, and nothing changed).
//! The real clients' scenarios (pushes across nodes and protocols, connection ends, node
//! deaths) are in `tests/clients.rs`.

mod support;

use nacre::grpc::client::GrpcClient;
use nacre::grpc::client::payload;
use nacre::grpc::wire::Inbound;
use serde_json::Value;
use serde_json::json;
use support::cluster::Cluster;
use support::cluster::GRPC_PORT_OFFSET;

/// Time given to a connection's cleanup before checking that it left something in place (the
/// removals it does make are awaited with `wait_until`).
const CLEANUP_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// A transport without setup is closed after `grpc::connections::SETUP_DEADLINE_MS`, checked
/// every renewal round (5 s).
const SETUP_DEADLINE_BOUND: std::time::Duration = std::time::Duration::from_secs(30);

fn grpc_addr(cluster: &Cluster, i: usize) -> String {
    let port: u16 = cluster.addr(i).rsplit(':').next().unwrap().parse().unwrap();
    format!("127.0.0.1:{}", port + GRPC_PORT_OFFSET)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

/// `(resultCode, errorCode, success, message)` of an answer.
fn codes(answer: &Inbound) -> (u64, u64, bool, String) {
    (
        answer.field("resultCode").and_then(Value::as_u64).unwrap_or_default(),
        answer.field("errorCode").and_then(Value::as_u64).unwrap_or_default(),
        answer.bool("success").unwrap_or_default(),
        answer.str("message"),
    )
}

fn register(service: &str) -> Value {
    json!({
        "namespace": "public", "serviceName": service, "groupName": "DEFAULT_GROUP", "type": "registerInstance",
        "instance": {"ip": "10.9.0.1", "port": 9001, "weight": 1.0, "healthy": true, "enabled": true, "ephemeral": true,
            "clusterName": null, "metadata": {}},
    })
}

fn publish(data_id: &str) -> Value {
    json!({"dataId": data_id, "group": "DEFAULT_GROUP", "tenant": "", "content": "c", "casMd5": null,
        "additionMap": {}})
}

#[test]
fn only_a_server_check_is_answered_before_setup_and_setup_may_come_first() {
    let cluster = Cluster::start(1);
    cluster.wait_leader();
    let addr = grpc_addr(&cluster, 0);
    runtime().block_on(async {
        let mut client = GrpcClient::open(&addr, Some(cluster.token())).await.unwrap();
        let check = client.call("ServerCheckRequest", json!({})).await.unwrap();
        assert_eq!(check.kind, "ServerCheckResponse");
        assert_eq!(codes(&check).0, 200);
        let id = check.str("connectionId");
        let parts: Vec<&str> = id.split('_').collect();
        assert!(parts.len() == 3 && parts[0].parse::<u64>().is_ok() && parts[1] == "127.0.0.1", "{id}");

        for kind in ["HealthCheckRequest", "ConfigQueryRequest", "InstanceRequest"] {
            let refused = client.call(kind, json!({})).await.unwrap();
            assert_eq!(refused.kind, "ErrorResponse", "{kind}");
            assert_eq!(codes(&refused), (500, 301, false, "Connection is unregistered.".into()), "{kind}");
        }
        client.set_up().await.unwrap();
        let health = client.call("HealthCheckRequest", json!({})).await.unwrap();
        assert_eq!((health.kind.as_str(), codes(&health).0), ("HealthCheckResponse", 200));

        // nacos-sdk-rust's order: the setup before any unary call.
        let mut rust_order = GrpcClient::connect(&addr, Some(cluster.token())).await.unwrap();
        let after = rust_order.call("ServerCheckRequest", json!({})).await.unwrap();
        assert_ne!(after.str("connectionId"), id, "each transport is its own connection");

        // The port's requests and connections are in the node's metrics.
        let metrics = cluster.get(0, "/metrics").unwrap().text();
        let sample = |series: &str| {
            metrics.lines().find_map(|line| line.strip_prefix(series)?.trim().parse::<f64>().ok()).unwrap_or(0.0)
        };
        assert!(
            sample(r#"nacre_grpc_requests_total{request="ServerCheckRequest",success="true"} "#) >= 2.0,
            "{metrics}"
        );
        assert!(
            sample(r#"nacre_grpc_requests_total{request="HealthCheckRequest",success="false"} "#) >= 1.0,
            "{metrics}"
        );
        assert!(sample("nacre_grpc_connections ") >= 2.0, "{metrics}");
    });
}

#[test]
fn unknown_and_malformed_requests_get_nacos_errors_and_the_connection_stays() {
    let cluster = Cluster::start(1);
    cluster.wait_leader();
    let addr = grpc_addr(&cluster, 0);
    runtime().block_on(async {
        let mut client = GrpcClient::connect(&addr, Some(cluster.token())).await.unwrap();
        let unknown = client.call("NoSuchRequest", json!({})).await.unwrap();
        assert_eq!((unknown.kind.as_str(), codes(&unknown).1), ("ErrorResponse", 302));
        let mut garbage = payload("ConfigQueryRequest", &[], json!({}));
        garbage.body.as_mut().unwrap().value = b"{not json".to_vec();
        let refused = client.send(garbage).await.unwrap();
        assert_eq!((refused.kind.as_str(), codes(&refused).1), ("ErrorResponse", 502));
        let bad_namespace = client
            .call("ConfigQueryRequest", json!({"dataId": "d", "group": "g", "tenant": "no such/namespace"}))
            .await
            .unwrap();
        assert_eq!((bad_namespace.kind.as_str(), codes(&bad_namespace).1), ("ConfigQueryResponse", 400));
        assert!(bad_namespace.str("message").contains("namespace"), "{:?}", bad_namespace.body);
        let missing = client.call("ConfigQueryRequest", json!({"dataId": "absent", "group": "g"})).await.unwrap();
        let (result, error, success, message) = codes(&missing);
        assert_eq!((result, error, success, message.as_str()), (500, 300, false, "config data not exist"));
        assert_eq!((missing.field("lastModified"), missing.field("beta")), (Some(&json!(0)), Some(&json!(false))));
        let health = client.call("HealthCheckRequest", json!({})).await.unwrap();
        assert_eq!(codes(&health).0, 200, "the connection survives its bad requests");
    });
}

#[test]
fn without_a_valid_token_nothing_is_read_or_changed_and_a_reader_cannot_write() {
    let cluster = Cluster::start(1);
    cluster.wait_leader();
    let addr = grpc_addr(&cluster, 0);
    let admin = |path: &str, pairs: &[(&str, &str)]| {
        let resp = cluster.post_form(0, path, pairs).unwrap();
        assert_eq!(resp.status, 200, "{path}: {}", resp.text());
    };
    admin("/nacos/v1/auth/users", &[("username", "reader"), ("password", "reader-pw")]);
    admin("/nacos/v1/auth/roles", &[("role", "readers"), ("username", "reader")]);
    admin("/nacos/v1/auth/permissions", &[("role", "readers"), ("resource", "public:*:*"), ("action", "r")]);
    let login = support::http::form(&[("username", "reader"), ("password", "reader-pw")]);
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let signed_in =
        support::http::anonymous("POST", cluster.addr(0), "/nacos/v1/auth/login", &[form], login.as_bytes()).unwrap();
    let reader_token = signed_in.json()["accessToken"].as_str().unwrap().to_string();
    let digest = cluster.wait_converged();

    runtime().block_on(async {
        let forged = format!("{reader_token}x");
        let callers = [
            (None, "unknown user!"),
            (Some(forged.as_str()), "token invalid!"),
            (Some(reader_token.as_str()), "authorization failed!"),
        ];
        for (token, message) in callers {
            let mut client = GrpcClient::connect(&addr, token.map(str::to_string)).await.unwrap();
            let registered = client.call("InstanceRequest", register("guarded")).await.unwrap();
            assert_eq!(registered.kind, "InstanceResponse");
            assert_eq!(codes(&registered), (500, 403, false, message.to_string()), "{token:?}");
            let published = client.call("ConfigPublishRequest", publish("guarded")).await.unwrap();
            assert_eq!(published.kind, "ConfigPublishResponse");
            assert_eq!(codes(&published), (500, 403, false, message.to_string()), "{token:?}");
            let read = client.call("ConfigQueryRequest", json!({"dataId": "guarded", "group": "DEFAULT_GROUP"})).await;
            let read = read.unwrap();
            if token == Some(reader_token.as_str()) {
                assert_eq!(codes(&read).1, 300, "the reader may read: the config is not there");
            } else {
                assert_eq!(codes(&read).1, 403, "{token:?}");
                assert_eq!((read.field("lastModified"), read.field("beta")), (Some(&json!(0)), Some(&json!(false))));
            }
        }
    });
    let listed = cluster.get(0, "/nacos/v1/ns/instance/list?serviceName=guarded").unwrap().json();
    assert_eq!(listed["hosts"], json!([]), "no instance was registered");
    assert_eq!(cluster.wait_converged(), digest, "no refused write changed the state");
    assert_eq!(cluster.get(0, "/nacos/v1/cs/configs?dataId=guarded&group=DEFAULT_GROUP").unwrap().status, 404);
}

#[test]
fn a_connections_end_removes_its_instance_unless_another_connection_took_it_over() {
    let cluster = Cluster::start(1);
    cluster.wait_leader();
    let addr = grpc_addr(&cluster, 0);
    let hosts = |service: &str| -> usize {
        let listed = cluster.get(0, &format!("/nacos/v1/ns/instance/list?serviceName={service}")).unwrap().json();
        listed["hosts"].as_array().map_or(0, Vec::len)
    };
    let rt = runtime();
    // Registered by a first connection, then by a second (a client that reconnected): the
    // first one's end leaves it; the second one's end removes it.
    let first = rt.block_on(async {
        let mut first = GrpcClient::connect(&addr, Some(cluster.token())).await.unwrap();
        first.request("InstanceRequest", register("moved")).await.unwrap();
        first
    });
    assert_eq!(hosts("moved"), 1);
    let second = rt.block_on(async {
        let mut second = GrpcClient::connect(&addr, Some(cluster.token())).await.unwrap();
        second.request("InstanceRequest", register("moved")).await.unwrap();
        second
    });
    drop(first);
    std::thread::sleep(CLEANUP_GRACE);
    assert_eq!(hosts("moved"), 1, "the first connection's end left the instance the second one owns");
    drop(second);
    support::cluster::wait_until("the owner's end removes the instance", || hosts("moved") == 0);

    // A persistent instance is the log's, not the connection's: its end leaves it.
    rt.block_on(async {
        let mut client = GrpcClient::connect(&addr, Some(cluster.token())).await.unwrap();
        let mut persistent = register("kept");
        persistent["instance"]["ephemeral"] = json!(false);
        let answer = client.request("PersistentInstanceRequest", persistent).await.unwrap();
        assert_eq!(answer["type"], "registerInstance");
    });
    // The connection has ended; its cleanup (had it owned the instance) runs at once.
    std::thread::sleep(CLEANUP_GRACE);
    let listed = cluster.get(0, "/nacos/v1/ns/instance/list?serviceName=kept").unwrap().json();
    assert_eq!((listed["hosts"][0]["ephemeral"].clone(), hosts("kept")), (json!(false), 1), "{listed}");

    // Re-registering on one connection replaces the connection's instance of that service.
    rt.block_on(async {
        let mut client = GrpcClient::connect(&addr, Some(cluster.token())).await.unwrap();
        client.request("InstanceRequest", register("replaced")).await.unwrap();
        let mut other = register("replaced");
        other["instance"]["ip"] = json!("10.9.0.2");
        client.request("InstanceRequest", other).await.unwrap();
        let listed = cluster.get(0, "/nacos/v1/ns/instance/list?serviceName=replaced").unwrap().json();
        let ips: Vec<&str> = listed["hosts"].as_array().unwrap().iter().map(|h| h["ip"].as_str().unwrap()).collect();
        assert_eq!(ips, ["10.9.0.2"]);
    });
}

#[test]
fn a_transport_whose_client_never_sets_up_is_closed() {
    let cluster = Cluster::start(1);
    cluster.wait_leader();
    let addr = grpc_addr(&cluster, 0);
    runtime().block_on(async {
        let mut client = GrpcClient::open(&addr, None).await.unwrap();
        let first = client.call("ServerCheckRequest", json!({})).await.unwrap().str("connectionId");
        let deadline = std::time::Instant::now() + SETUP_DEADLINE_BOUND;
        // The channel dials again after its transport is cut: a new connection id says the old
        // transport was closed.
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            if let Ok(check) = client.call("ServerCheckRequest", json!({})).await
                && check.str("connectionId") != first
            {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the transport without setup is still open");
        }
    });
}
