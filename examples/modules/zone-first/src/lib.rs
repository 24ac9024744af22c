//! A custom naming rule, as a Nacre guest module: instance lists answer the caller's zone
//! first. The caller's zone is the `zone` request parameter, or else the `zone` metadata of
//! the caller's own instance in the listed service (matched by the caller's IP). Instances of
//! that zone come first, the rest keep their order after them. Everything else is the
//! built-in naming module, unchanged.

use nacre_guest_sdk::{
    Command, GuestError, GuestReply, GuestRequest, ModuleInfo, ModuleKind, QueryContext, StateMachine,
};
use nacre_naming::Naming;
use serde_json::Value;

/// The metadata key (and request parameter) that names a zone.
pub const ZONE_KEY: &str = "zone";

pub struct ZoneFirst;

impl StateMachine for ZoneFirst {
    fn describe() -> ModuleInfo {
        ModuleInfo {
            name: "example-zone-first".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: ModuleKind::Naming,
            schema_version: nacre_naming::SCHEMA_VERSION,
        }
    }

    fn apply(cmd: &Command, req: GuestRequest) -> Result<GuestReply, GuestError> {
        Naming::apply(cmd, req)
    }

    fn query(ctx: &QueryContext, req: GuestRequest) -> Result<GuestReply, GuestError> {
        let is_list = req.op == nacre_naming::ops::LIST;
        let caller_zone = req.get(ZONE_KEY).filter(|z| !z.is_empty()).map(str::to_string);
        let caller_ip = req.get("clientIP").filter(|ip| !ip.is_empty()).unwrap_or(&req.client_ip).to_string();
        let mut reply = Naming::query(ctx, req)?;
        if is_list {
            reply.body = zone_first(&reply.body, caller_zone, &caller_ip)?;
        }
        Ok(reply)
    }

    fn migrate(previous: Option<ModuleInfo>) -> Result<(), String> {
        Naming::migrate(previous)
    }
}

/// The list body with the caller's zone first (stable otherwise).
fn zone_first(body: &str, caller_zone: Option<String>, caller_ip: &str) -> Result<String, GuestError> {
    let mut listing: Value =
        serde_json::from_str(body).map_err(|e| GuestError::internal(format!("list is not JSON: {e}")))?;
    let Some(hosts) = listing["hosts"].as_array_mut() else { return Ok(body.to_string()) };
    let zone_of = |host: &Value| host["metadata"][ZONE_KEY].as_str().map(str::to_string);
    let zone = caller_zone.or_else(|| hosts.iter().find(|h| h["ip"] == caller_ip).and_then(zone_of));
    if let Some(zone) = zone {
        // `sort_by_key` is stable: within each group the built-in order stays.
        hosts.sort_by_key(|host| zone_of(host).as_deref() != Some(zone.as_str()));
    }
    Ok(listing.to_string())
}

nacre_guest_sdk::export_state_machine!(ZoneFirst);

#[cfg(test)]
mod tests {
    use nacre_guest_sdk::testing;

    use super::*;

    fn register(ip: &str, zone: &str) {
        let req = GuestRequest::new("naming.register")
            .param("serviceName", "svc")
            .param("ip", ip)
            .param("port", "80")
            .param("metadata", format!(r#"{{"zone":"{zone}"}}"#));
        testing::apply::<ZoneFirst>(&Command::new(1, 1), &req).unwrap();
    }

    fn listed_ips(req: GuestRequest) -> Vec<String> {
        let reply = testing::query::<ZoneFirst>(&QueryContext::new(1, 1), &req).unwrap();
        let listing: Value = serde_json::from_str(&reply.body).unwrap();
        listing["hosts"].as_array().unwrap().iter().map(|h| h["ip"].as_str().unwrap().to_string()).collect()
    }

    #[test]
    fn the_callers_zone_comes_first() {
        testing::reset();
        register("10.0.0.1", "a");
        register("10.0.0.2", "b");
        register("10.0.0.3", "a");
        register("10.0.0.4", "b");
        let list = || GuestRequest::new("naming.list").param("serviceName", "svc");
        assert_eq!(listed_ips(list()), ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"], "no zone: built-in order");
        assert_eq!(listed_ips(list().param("zone", "b")), ["10.0.0.2", "10.0.0.4", "10.0.0.1", "10.0.0.3"]);
        // The caller's own instance says which zone it is in.
        let mut by_ip = list();
        by_ip.client_ip = "10.0.0.4".into();
        assert_eq!(listed_ips(by_ip), ["10.0.0.2", "10.0.0.4", "10.0.0.1", "10.0.0.3"]);
        assert_eq!(listed_ips(list().param("clientIP", "10.0.0.3")), ["10.0.0.1", "10.0.0.3", "10.0.0.2", "10.0.0.4"]);
    }
}
