//! Server pushes: when a guest event a connection watches is applied on this node (every
//! node applies every log entry and merges every AP record, so a change made through any node
//! and any protocol fires here), the connection is told: a subscribed service gets a
//! `NotifySubscriberRequest` with its `ServiceInfo` as of now, a listened config a
//! `ConfigChangeNotifyRequest` (the client then queries it).
//!
//! Each push waits for the client's ack (matched by `requestId`) and is retried, a naming push
//! re-read each time, so the last one a client takes is the newest state; a client that lets
//! [`PUSH_ATTEMPTS`] go unanswered is disconnected (it reconnects and re-syncs).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use nacre_protocol::GuestRequest;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::error::TryRecvError;

use super::Context;
use super::connections::Connection;
use super::connections::ListenedConfig;
use super::wire;
use super::wire::Payload;
use crate::guests::WatchKey;
use crate::runtime::ModuleKind;
use crate::scope::Scope;

/// Events this close together are pushed once (Nacos merges over 500 ms). One batch of the log
/// or the AP path fires its events together; the window bounds a busy service to one push per
/// window per subscriber, and is most of the push's latency (measured: 20 ms gave pushes 23 ms
/// after the write, end to end).
pub const PUSH_MERGE_MS: u64 = 5;
/// How long a client has to ack a push (Nacos's naming and config push timeouts).
pub const NAMING_ACK_TIMEOUT: Duration = Duration::from_secs(5);
pub const CONFIG_ACK_TIMEOUT: Duration = Duration::from_secs(3);
/// Tries of one push before the connection is closed.
pub const PUSH_ATTEMPTS: u32 = 3;

/// What one connection is to be told.
enum Notice {
    Service { namespace: String, query: GuestRequest },
    Config(ListenedConfig),
}

pub async fn push_on_events(ctx: Arc<Context>) {
    let mut events = ctx.guests.subscribe();
    loop {
        let mut changed = BTreeSet::new();
        // Past a lag, which keys changed is unknown: everything is pushed.
        let mut everything = false;
        match events.recv().await {
            Ok(event) => {
                changed.insert(WatchKey::of(&event));
            }
            Err(RecvError::Lagged(skipped)) => {
                tracing::warn!(skipped, "gRPC push fell behind; pushing every subscription");
                everything = true;
            }
            Err(RecvError::Closed) => return,
        }
        tokio::time::sleep(Duration::from_millis(PUSH_MERGE_MS)).await;
        loop {
            match events.try_recv() {
                Ok(event) => {
                    changed.insert(WatchKey::of(&event));
                }
                Err(TryRecvError::Lagged(_)) => everything = true,
                Err(_) => break,
            }
        }
        for connection in ctx.connections.live().into_iter().filter(|c| c.is_set_up()) {
            for notice in notices(&connection, &changed, everything) {
                ctx.tasks.spawn(deliver(ctx.clone(), connection.clone(), notice));
            }
        }
    }
}

/// What `connection` watches among `changed` (or all it watches).
fn notices(connection: &Connection, changed: &BTreeSet<WatchKey>, everything: bool) -> Vec<Notice> {
    let owned = connection.owned.lock().expect("owned lock");
    let watched = |watch: &WatchKey| everything || changed.contains(watch);
    let services = owned.subscriptions.iter().filter(|(watch, _)| watched(watch)).flat_map(|(watch, queries)| {
        queries.values().map(|query| Notice::Service { namespace: watch.namespace.clone(), query: query.clone() })
    });
    let configs = owned
        .listens
        .iter()
        .filter(|(watch, _)| watched(watch))
        .flat_map(|(_, configs)| configs.iter().cloned().map(Notice::Config));
    services.chain(configs).collect()
}

/// Push `notice` until the client acks it, [`PUSH_ATTEMPTS`] times at most.
async fn deliver(ctx: Arc<Context>, connection: Arc<Connection>, notice: Notice) {
    let (timeout, kind) = match notice {
        Notice::Service { .. } => (NAMING_ACK_TIMEOUT, "naming"),
        Notice::Config(_) => (CONFIG_ACK_TIMEOUT, "config"),
    };
    for _ in 0..PUSH_ATTEMPTS {
        if connection.is_closed() {
            return;
        }
        let id = ctx.connections.next_request_id();
        let Some(payload) = payload(&ctx, &notice, &id) else { return };
        let acked = connection.request(id, payload, timeout).await;
        ctx.telemetry.count_grpc_push(crate::telemetry::PushLabels { kind, acked });
        if acked {
            return;
        }
    }
    if !connection.is_closed() {
        tracing::warn!(connection = %connection.id, attempts = PUSH_ATTEMPTS, "client acked no push; closing its connection");
        connection.close();
    }
}

/// The push of `notice` as of now (a service re-read: a retry carries the newest state).
fn payload(ctx: &Context, notice: &Notice, request_id: &str) -> Option<Payload> {
    match notice {
        Notice::Service { namespace, query } => {
            let reply = match ctx.guests.query(Scope::new(namespace, ModuleKind::Naming), query) {
                Ok(reply) => reply,
                Err(e) => {
                    tracing::debug!(code = e.code, message = %e.message, "push read failed");
                    return None;
                }
            };
            let mut service_info: serde_json::Value = serde_json::from_str(&reply.body).ok()?;
            service_info["lastRefTime"] = json!(ctx.connections.stamp_ms());
            Some(wire::server_request(
                "NotifySubscriberRequest",
                request_id,
                "naming",
                json!({ "serviceInfo": service_info }),
            ))
        }
        Notice::Config(config) => Some(wire::server_request(
            "ConfigChangeNotifyRequest",
            request_id,
            "config",
            json!({ "dataId": config.data_id, "group": config.group, "tenant": config.tenant }),
        )),
    }
}
