//! `/nacos/v1/ns/*`: the naming service's HTTP surface, routed to the naming guest. The host
//! adds what only it can: heartbeats renew leases in memory instead of reaching the log, and
//! a list carrying `udpPort` subscribes the client to UDP pushes.

use std::net::SocketAddr;

use nacre_protocol::GuestRequest;
use nacre_protocol::directive;
use serde_json::json;

use super::Context;
use super::guest;
use super::params;
use super::params::Params;
use crate::duties::push;
use crate::net;
use crate::net::HttpMethod;
use crate::net::HttpRequest;
use crate::net::HttpResponse;
use crate::net::Status;
use crate::runtime::ModuleKind;
use crate::scope::Scope;
use crate::watching;
use crate::watching::Subscriber;

const KIND: ModuleKind = ModuleKind::Naming;

/// How a route reaches the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Planned by the guest's query, then carried out as its directives say: a command
    /// through the log or on the AP path, a lease renewal, or the query's answer alone.
    Act,
    /// A read that may subscribe the caller to UDP pushes.
    List,
}

/// A naming route of the table (`routes`): `op` is the guest operation it maps to.
pub async fn handle(ctx: &Context, req: HttpRequest, path: &str, op: &str, reach: Reach) -> HttpResponse {
    use HttpMethod as M;
    let params = Params::from_request(&req);
    let namespace = match params::namespace(params.get("namespaceId"), "namespaceId") {
        Ok(ns) => ns,
        Err(message) => return net::text(Status::BAD_REQUEST, message),
    };
    let mut request = guest::guest_request(&req, op, params);
    if (&req.method, path) == (&M::PUT, "/nacos/v1/ns/instance")
        && let Some(agent) = req.header("User-Agent")
    {
        // Nacos tells a Java client's update from the others' (which register a missing
        // instance) by it: the guest's rule, the host only hands the header over.
        request.params.entry("User-Agent".into()).or_insert_with(|| agent.to_string());
    }
    if path == "/nacos/v1/ns/health/instance" {
        // A person setting health by hand: the guest applies Nacos's rules for that, which
        // differ from the host's own probes committing the same operation.
        request.params.insert("source".into(), "api".into());
    }
    if let Err(unavailable) = guest::linearize_if_asked(ctx, &req).await {
        return unavailable;
    }
    match reach {
        Reach::Act => guest::act(ctx, namespace, KIND, request).await,
        Reach::List => {
            let reply = ctx.guests.query(Scope::new(&namespace, KIND), &request);
            let udp_port = request.get("udpPort").and_then(|p| p.trim().parse::<u16>().ok()).filter(|p| *p > 0);
            if let (Ok(reply), Some(udp_port)) = (&reply, udp_port) {
                let addr = push::push_addr(request.get("clientIP"), req.peer.ip(), udp_port);
                let watch = reply.headers.get(directive::WATCH);
                let subscriber = udp_subscriber(&req, &request, &namespace, addr);
                ctx.push.subscribe(Scope::new(&namespace, KIND), watch, addr, request.clone(), subscriber);
            }
            guest::respond(reply)
        }
    }
}

/// A v1 reader subscribing to UDP pushes, as Nacos lists it: `ip:port` it is pushed to, its
/// version (`Client-Version`, else `User-Agent`), its `app` parameter.
fn udp_subscriber(req: &HttpRequest, request: &GuestRequest, namespace: &str, addr: SocketAddr) -> Subscriber {
    let agent = req.header("Client-Version").or_else(|| req.header("User-Agent")).unwrap_or_default();
    Subscriber {
        addr_str: addr.to_string(),
        agent: agent.to_string(),
        app: request.get("app").filter(|app| !app.is_empty()).unwrap_or("unknown").to_string(),
        ip: addr.ip().to_string(),
        port: addr.port(),
        namespace_id: namespace.to_string(),
        service_name: watching::grouped_service(
            request.get("serviceName").unwrap_or_default(),
            request.get("groupName"),
        ),
        cluster: request.get("clusters").unwrap_or_default().to_string(),
    }
}

/// Services and instances summed over every namespace with naming data, as each namespace's
/// guest counts them (`naming.metrics`); and how many namespaces that is.
pub fn counts(ctx: &Context) -> (u64, u64, usize) {
    let mut namespaces: std::collections::BTreeSet<String> =
        ctx.guests.replica().read().machine.namespaces_with_data(KIND).into_iter().collect();
    namespaces.extend(ctx.ap.store().namespaces(KIND));
    let (mut services, mut instances) = (0u64, 0u64);
    for namespace in &namespaces {
        let Ok(reply) =
            ctx.guests.query(Scope::new(namespace, KIND), &nacre_protocol::GuestRequest::new("naming.metrics"))
        else {
            continue;
        };
        let counts: serde_json::Value = serde_json::from_str(&reply.body).unwrap_or_default();
        services += counts["serviceCount"].as_u64().unwrap_or(0);
        instances += counts["instanceCount"].as_u64().unwrap_or(0);
    }
    (services, instances, namespaces.len())
}

/// `GET /nacos/v1/ns/operator/metrics`: counts summed over namespaces, and this node's
/// duties, AP keyspace and self-preservation. `"status":"UP"` is what clients check.
pub fn metrics(ctx: &Context) -> HttpResponse {
    let (services, instances, namespace_count) = counts(ctx);
    net::json(
        Status::OK,
        &json!({
            "status": "UP",
            "serviceCount": services,
            "instanceCount": instances,
            "subscribeCount": ctx.push.subscriber_count(),
            "pushesSent": ctx.push.pushes_sent(),
            "pushAcksReceived": ctx.push.acks_received(),
            "leasesTracked": ctx.leases.tracked(),
            "namespaceCount": namespace_count,
            "selfPreservation": ctx.leases.preservation(),
            "apRecords": ctx.ap.store().live_records(),
            "apRecordsWaiting": ctx.ap.outbox.waiting(),
            "liveMembers": ctx.ap.members().live().len(),
        }),
    )
}
