//! What a connection's life means for its instances (Nacos 2.x has no client heartbeats: the
//! connection is the heartbeat).
//!
//! - While a connection lives, this node beats for each instance it registered, every
//!   [`RENEW_INTERVAL`], through the guest's own `naming.beat` (so the lease machinery and its
//!   rules are the v1 clients'). A beat for an instance that vanished (expired while this node
//!   was cut off) re-registers it from the beat's body, owner included.
//! - When the connection ends (transport closed, stream ended, closed by the server), its
//!   instances are deregistered at once, on the AP path, so every node drops them within the
//!   AP replication delay; the deregistration names the connection, and the guest leaves an
//!   instance another connection registered since.
//! - When this node dies, nobody beats: the responsible node's sweep marks the instances
//!   unhealthy after the heartbeat timeout and removes them after the delete timeout (Nacos's
//!   15 s and 30 s by default), unless the client reconnected elsewhere and registered them again
//!   (clients redo every 3 s), which makes the new connection their owner.
//! - When this node stops on purpose, connections close without deregistering: their clients
//!   move to another node and register again, and nothing flaps.
//! - A connection silent for [`IDLE_PROBE_AFTER_MS`] (clients health-check every 5 s) is asked
//!   `ClientDetectionRequest` and closed when it does not answer.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use nacre_protocol::GuestRequest;
use serde_json::Value;
use serde_json::json;
use tokio::sync::mpsc;

use super::Context;
use super::connections;
use super::connections::Connection;
use super::naming;
use super::wire;
use crate::clock::now_ms;
use crate::runtime::ModuleKind;
use crate::scope::Scope;

/// How often the instances of live connections are renewed: the v1 clients' default beat.
pub const RENEW_INTERVAL: Duration = Duration::from_secs(5);
/// A connection silent this long is probed.
pub const IDLE_PROBE_AFTER_MS: u64 = 20_000;
/// How long a probed client has to answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Guest calls in flight at once for renewals or a cleanup.
const CALL_CONCURRENCY: usize = 32;

/// Renew the instances of live connections and probe silent ones, every [`RENEW_INTERVAL`].
pub async fn renew_and_probe(ctx: Arc<Context>) {
    let mut ticks = tokio::time::interval(RENEW_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let now = now_ms();
        let mut beats = Vec::new();
        for connection in ctx.connections.live() {
            if connection.is_closed() {
                continue;
            }
            if !connection.is_set_up() {
                if connection.idle_ms(now) >= connections::SETUP_DEADLINE_MS {
                    tracing::info!(connection = %connection.id, "no setup in time; closing the transport");
                    connection.close();
                }
                continue;
            }
            if connection.idle_ms(now) >= IDLE_PROBE_AFTER_MS {
                ctx.tasks.spawn(probe(ctx.clone(), connection.clone()));
            }
            beats.extend(registrations(&connection).into_iter().map(|(namespace, r)| (namespace, beat_of(&r))));
        }
        run_all(&ctx, beats).await;
    }
}

/// Deregister the instances of every connection that ended, unless the node is stopping.
pub async fn clean_up_ended(ctx: Arc<Context>, mut ended: mpsc::UnboundedReceiver<Arc<Connection>>) {
    while let Some(connection) = ended.recv().await {
        if ctx.tasks.is_stopping() {
            continue;
        }
        let deregistrations: Vec<(String, GuestRequest)> = registrations(&connection)
            .into_iter()
            .map(|(namespace, r)| (namespace, GuestRequest { op: naming::DEREGISTER_OP.to_string(), ..r }))
            .collect();
        if !deregistrations.is_empty() {
            tracing::info!(connection = %connection.id, instances = deregistrations.len(), "connection ended; deregistering its instances");
        }
        let ctx = ctx.clone();
        ctx.tasks.clone().spawn(async move { run_all(&ctx, deregistrations).await });
    }
}

/// Every registration `connection` holds, with its namespace.
fn registrations(connection: &Connection) -> Vec<(String, GuestRequest)> {
    let owned = connection.owned.lock().expect("owned lock");
    owned
        .instances
        .iter()
        .flat_map(|((namespace, _, _), requests)| requests.iter().map(|r| (namespace.clone(), r.clone())))
        .collect()
}

/// Run naming requests through the plan's interpreter, a bounded number at once.
async fn run_all(ctx: &Context, requests: Vec<(String, GuestRequest)>) {
    futures_util::stream::iter(requests)
        .for_each_concurrent(CALL_CONCURRENCY, |(namespace, request)| async move {
            let outcome = ctx.dispatch.act(Scope::new(&namespace, ModuleKind::Naming), request.clone()).await;
            if let Err(e) = super::settle(outcome) {
                tracing::debug!(op = request.op, code = e.code, message = %e.message, "connection instance call failed");
            }
        })
        .await;
}

/// The beat that renews what `registration` registered; its body re-registers the instance
/// if it is gone.
fn beat_of(registration: &GuestRequest) -> GuestRequest {
    let params = &registration.params;
    let mut body = serde_json::Map::new();
    if let Some(ip) = params.get("ip") {
        body.insert("ip".into(), json!(ip));
    }
    if let Some(cluster) = params.get("clusterName") {
        body.insert("cluster".into(), json!(cluster));
    }
    if let Some(port) = params.get("port").and_then(|p| p.parse::<u16>().ok()) {
        body.insert("port".into(), json!(port));
    }
    if let Some(weight) = params.get("weight").and_then(|w| w.parse::<f64>().ok()) {
        body.insert("weight".into(), json!(weight));
    }
    if let Some(metadata) = params.get("metadata").and_then(|m| serde_json::from_str::<Value>(m).ok()) {
        body.insert("metadata".into(), metadata);
    }
    let mut params = params.clone();
    params.insert("beat".into(), Value::Object(body).to_string());
    GuestRequest { op: naming::BEAT_OP.to_string(), params, client_ip: registration.client_ip.clone() }
}

/// Ask a silent client whether it is there; close its connection when it does not say so.
async fn probe(ctx: Arc<Context>, connection: Arc<Connection>) {
    let id = ctx.connections.next_request_id();
    let payload = wire::server_request("ClientDetectionRequest", &id, "internal", json!({}));
    if !connection.request(id, payload, PROBE_TIMEOUT).await && connection.idle_ms(now_ms()) >= IDLE_PROBE_AFTER_MS {
        tracing::info!(connection = %connection.id, "client silent and unanswering; closing its connection");
        connection.close();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn a_beat_carries_the_registration_and_a_body_that_can_register_it_again() {
        let params: BTreeMap<String, String> = [
            ("serviceName", "svc"),
            ("ip", "10.0.0.1"),
            ("port", "8080"),
            ("clusterName", "c1"),
            ("weight", "2.5"),
            ("metadata", r#"{"k":"v"}"#),
            ("connectionId", "1_127.0.0.1_9"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let registration = GuestRequest { op: naming::REGISTER_OP.into(), params, client_ip: "10.0.0.1".into() };
        let beat = beat_of(&registration);
        assert_eq!(beat.op, naming::BEAT_OP);
        assert_eq!(beat.params["connectionId"], "1_127.0.0.1_9");
        let body: Value = serde_json::from_str(&beat.params["beat"]).unwrap();
        assert_eq!(
            body,
            json!({"ip": "10.0.0.1", "port": 8080, "cluster": "c1", "weight": 2.5, "metadata": {"k": "v"}})
        );
    }
}
