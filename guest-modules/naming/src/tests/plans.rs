//! The plan queries: which path each write takes, and the refusals only a query can make.

use nacre_guest_sdk::{Commit, GuestRequest, Plan, testing};

use super::*;
use crate::Naming;

/// The path a plan names (a write's plan renews no lease).
fn route(ms: u64, request: &GuestRequest) -> Commit {
    let reply = query_at(ms, request).unwrap();
    assert_eq!(reply.body, "", "a plan answers nothing but its route");
    let plan = Plan::from_reply(&reply).unwrap();
    assert_eq!(plan.renew, None, "{request:?}");
    plan.commit
}

fn ap(partition: &str) -> Commit {
    Commit::Ap { partition: partition.to_owned() }
}

fn log() -> Commit {
    Commit::Log
}

/// An instance op on `svc`, cluster DEFAULT.
fn on(op: &str, ip: &str, extra: &[(&str, &str)]) -> GuestRequest {
    let mut params = vec![("serviceName", SVC), ("ip", ip), ("port", "80")];
    params.extend_from_slice(extra);
    req(op, &params)
}

#[test]
fn registrations_route_by_their_kind() {
    testing::reset();
    assert_eq!(route(1, &js_register("10.0.0.1", "80")), ap(SVC));
    assert_eq!(route(1, &py_register("10.0.0.1", "80").param("groupName", "G")), ap("G@@svc"), "grouped name");
    assert_eq!(route(1, &on(REGISTER, "10.0.0.1", &[])), ap(SVC), "ephemeral by default");
    assert_eq!(route(1, &js_register("10.0.0.1", "80").param("ephemeral", "false")), log());
}

#[test]
fn instance_writes_route_by_the_stored_kind() {
    testing::reset();
    register(1, js_register("10.0.0.1", "80"));
    register(1, js_register("10.0.0.2", "80").param("ephemeral", "false"));
    for op in [DEREGISTER, UPDATE, PATCH] {
        assert_eq!(route(2, &on(op, "10.0.0.1", &[])), ap(SVC), "{op}");
        assert_eq!(route(2, &on(op, "10.0.0.2", &[])), log(), "{op}");
    }
    // Update and patch find the instance whatever `ephemeral` says (clients default it to true).
    assert_eq!(route(2, &on(UPDATE, "10.0.0.2", &[("ephemeral", "true")])), log());
    // A deregistration names the kind it removes; a missing instance goes to the AP path.
    assert_eq!(route(2, &on(DEREGISTER, "10.0.0.1", &[("ephemeral", "false")])), log());
    assert_eq!(route(2, &on(DEREGISTER, "10.0.0.9", &[])), ap(SVC));
    // Health: the kind named, else the stored one, else AP.
    let health = |ip, extra: &[(&str, &str)]| on(HEALTH, ip, &[&[("healthy", "false")], extra].concat());
    assert_eq!(route(2, &health("10.0.0.1", &[])), ap(SVC));
    assert_eq!(route(2, &health("10.0.0.2", &[])), log());
    assert_eq!(route(2, &health("10.0.0.2", &[("ephemeral", "true")])), ap(SVC));
    assert_eq!(route(2, &health("10.0.0.9", &[])), ap(SVC));
    assert_eq!(route(2, &on(EXPIRE, "10.0.0.1", &[("registeredMs", "1")])), ap(SVC));
}

#[test]
fn service_writes_go_through_the_log() {
    testing::reset();
    assert_eq!(route(1, &req(SERVICE_CREATE, &[("serviceName", SVC)])), log());
    write_at(1, &req(SERVICE_CREATE, &[("serviceName", SVC)])).unwrap();
    assert_eq!(route(2, &req(SERVICE_UPDATE, &[("serviceName", SVC), ("protectThreshold", "0.5")])), log());
    assert_eq!(route(2, &req(CLUSTER_UPDATE, &[("serviceName", SVC), ("clusterName", "c")])), log());
    assert_eq!(route(2, &req(SERVICE_REMOVE, &[("serviceName", SVC)])), log());
    let guarded = req(SERVICE_REMOVE, &[("serviceName", "gone"), ("onlyIfUnused", "true")]);
    assert_eq!(route(2, &guarded), log(), "the sweep's guarded removal is never refused");
}

#[test]
fn kind_conflicts_are_caught_in_the_plan() {
    testing::reset();
    register(1, js_register("10.0.0.1", "80"));
    let before = testing::entries();
    let persistent = js_register("10.0.0.1", "80").param("ephemeral", "false");
    let err = write_at(2, &persistent).unwrap_err();
    assert!(err.code == 400 && err.message.contains("registered as ephemeral"), "{err}");
    assert_eq!(testing::entries(), before);
    // The log command alone cannot see the ephemeral instance: only the plan can refuse.
    assert!(testing::apply_log::<Naming>(&Command::new(3, 3), &persistent).is_ok());
    // The other way round, both refuse (an AP command sees persistent instances).
    testing::reset();
    register(1, js_register("10.0.0.1", "80").param("ephemeral", "false"));
    let ephemeral = js_register("10.0.0.1", "80");
    let planned = query_at(2, &ephemeral).unwrap_err();
    assert!(planned.message.contains("registered as persistent"), "{planned}");
    assert_eq!(apply_ap_at(2, &ephemeral).unwrap_err(), planned);
}

#[test]
fn plans_refuse_as_their_commands_do() {
    testing::reset();
    write_at(1, &req(SERVICE_CREATE, &[("serviceName", SVC)])).unwrap();
    register(1, js_register("10.0.0.2", "80").param("ephemeral", "false"));
    let cases = [
        on(DEREGISTER, "a b", &[]),
        on(DEREGISTER, "10.0.0.1", &[("ephemeral", "maybe")]),
        on(UPDATE, "10.0.0.2", &[("weight", "-1")]),
        on(UPDATE, "10.0.0.9", &[("User-Agent", "Nacos-Java-Client:v1.4.1")]),
        on(PATCH, "10.0.0.9", &[]),
        on(PATCH, "10.0.0.2", &[("metadata", "{bad")]),
        on(HEALTH, "10.0.0.2", &[]),
        on(HEALTH, "10.0.0.2", &[("healthy", "false"), ("source", "api")]),
        on(EXPIRE, "10.0.0.2", &[]),
        req(SERVICE_CREATE, &[("serviceName", SVC)]),
        req(SERVICE_CREATE, &[("serviceName", "new"), ("selector", "{}")]),
        req(SERVICE_UPDATE, &[("serviceName", SVC), ("protectThreshold", "2")]),
        req(SERVICE_REMOVE, &[("serviceName", SVC)]),
        req(SERVICE_REMOVE, &[("serviceName", "nope")]),
        req(CLUSTER_UPDATE, &[("serviceName", SVC), ("clusterName", "a_b")]),
        req(CLUSTER_UPDATE, &[("serviceName", SVC), ("clusterName", "c"), ("checkPort", "x")]),
    ];
    for request in cases {
        let planned = query_at(2, &request).unwrap_err();
        assert_eq!(planned.code, 400, "{request:?}: {planned}");
        assert_eq!(apply_log_at(2, &request).unwrap_err(), planned, "{request:?}");
    }
}
