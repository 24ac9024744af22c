//! Hand an API request to the guest module bound to its namespace, and turn the guest's
//! answer into an HTTP response. The host decides routing; the guest decides meaning.

use nacre_protocol::GuestReply;
use nacre_protocol::GuestRequest;
use nacre_protocol::directive;

use super::params::Params;
use crate::ap::store::PartitionId;
use crate::duties::LeaseHolder;
use crate::duties::LeaseKey;
use crate::net;
use crate::net::HttpRequest;
use crate::net::HttpResponse;
use crate::net::Status;
use crate::node::Node;
use crate::node::WriteError;
use crate::node::decode_reply;
use crate::raft::Operation;
use crate::runtime::GuestError;
use crate::runtime::ModuleKind;

/// Nacos's way of naming the caller's IP: proxies first, then the socket.
pub fn client_ip(req: &HttpRequest) -> String {
    let forwarded = req.header("X-Forwarded-For").and_then(|v| v.split(',').next()).map(str::trim);
    let real = req.header("X-Real-IP").map(str::trim);
    forwarded.or(real).filter(|v| !v.is_empty()).map_or_else(|| req.peer.ip().to_string(), str::to_string)
}

pub fn guest_request(req: &HttpRequest, op: &str, params: Params) -> GuestRequest {
    GuestRequest { op: op.to_string(), params: params.into_map(), client_ip: client_ip(req) }
}

/// Commit a guest command through Raft and answer with its result.
/// The answer says which log index and module produced it, so that a module switch can be
/// seen from the outside (every replica switches at the same index).
pub async fn write(node: &Node, namespace: String, kind: ModuleKind, request: GuestRequest) -> HttpResponse {
    let op = Operation::Guest { namespace, kind, payload: request.encode() };
    match node.write(op).await {
        Ok(outcome) => {
            let module_id = outcome.response.module_id.clone().unwrap_or_default();
            let resp = respond(decode_reply(outcome.response.result));
            with_headers(resp, [(LOG_INDEX_HEADER, outcome.index.to_string()), (MODULE_HEADER, module_id)])
        }
        Err(e) => unavailable(&e),
    }
}

/// Apply a guest command on the AP path, at the node responsible for `id`, and answer with
/// its result and the module that produced it.
async fn write_ap(node: &Node, id: &PartitionId, request: &GuestRequest) -> HttpResponse {
    match node.ap.apply(node, id, request).await {
        Ok(applied) => with_headers(respond(decode_reply(applied.result)), [(MODULE_HEADER, applied.module_id)]),
        Err(error) => respond(Err(error)),
    }
}

fn with_headers<const N: usize>(mut resp: HttpResponse, headers: [(&'static str, String); N]) -> HttpResponse {
    for (name, value) in headers {
        if let Ok(value) = net::header::HeaderValue::from_str(&value) {
            resp.headers_mut().insert(name, value);
        }
    }
    resp
}

/// Response header of a committed write: the index of its log entry.
pub const LOG_INDEX_HEADER: &str = "x-nacre-log-index";
/// Response header of a write: the id of the module that applied it.
pub const MODULE_HEADER: &str = "x-nacre-module";

/// Answer a read from this replica's state.
pub fn read(node: &Node, namespace: &str, kind: ModuleKind, request: &GuestRequest) -> HttpResponse {
    respond(node.query(namespace, kind, request))
}

/// Ask the guest first (a query with the request's own op: the plan), then do what its
/// directives say: renew a lease, and commit the same request as a command through the log
/// or on the AP path, whose result then is the answer. Without a commit directive the
/// query's reply is the answer. The guest validates in the plan, so bad input is refused here
/// before anything is forwarded.
pub async fn act(node: &Node, namespace: String, kind: ModuleKind, request: GuestRequest) -> HttpResponse {
    let reply = match node.query(&namespace, kind, &request) {
        Ok(reply) => reply,
        Err(error) => return respond(Err(error)),
    };
    let partition = reply.headers.get(directive::PARTITION).map(|partition| PartitionId {
        namespace: namespace.clone(),
        kind,
        partition: partition.clone(),
    });
    if let Some(key) = reply.headers.get(directive::LEASE_RENEW) {
        let holder = partition.clone().map_or(LeaseHolder::Leader, LeaseHolder::Partition);
        node.duties.leases.renew(node, LeaseKey { namespace: namespace.clone(), kind, key: key.clone() }, holder);
    }
    let path = reply.headers.get(directive::COMMIT).cloned();
    match (path.as_deref(), partition) {
        (None, _) => respond(Ok(reply)),
        (Some(directive::COMMIT_LOG), _) => write(node, namespace, kind, request).await,
        (Some(directive::COMMIT_AP), Some(id)) => write_ap(node, &id, &request).await,
        (Some(directive::COMMIT_AP), None) => {
            net::text(Status::INTERNAL_SERVER_ERROR, "module asked for an AP commit without naming its partition")
        }
        (Some(other), _) => {
            net::text(Status::INTERNAL_SERVER_ERROR, format!("module asked for an unknown commit path {other:?}"))
        }
    }
}

/// The header a read carries to be linearizable: `X-Nacre-Consistency: linearizable`. Reads
/// are otherwise served by the local replica as of its applied index (serializable), as Nacos
/// serves them.
pub const CONSISTENCY_HEADER: &str = "x-nacre-consistency";

/// For a read that asks to be linearizable, confirm leadership through the leader (ReadIndex)
/// and wait until this replica has applied that far; a 503 when that cannot be done in time.
pub async fn linearize_if_asked(node: &Node, req: &HttpRequest) -> Result<(), HttpResponse> {
    let asked = req.header(CONSISTENCY_HEADER).is_some_and(|v| v.eq_ignore_ascii_case("linearizable"));
    if asked { node.linearize().await.map_err(|e| unavailable(&e)) } else { Ok(()) }
}

/// A write or linearizable read that could not be served: 400 for a malformed operation, else
/// 503 (retry).
pub fn unavailable(e: &WriteError) -> HttpResponse {
    net::text(Status::from_u16(e.status()).unwrap_or(Status::SERVICE_UNAVAILABLE), e.to_string())
}

/// A guest's answer as HTTP: the reply's body and headers (directives stripped), or the
/// error's code and message.
pub fn respond(result: Result<GuestReply, GuestError>) -> HttpResponse {
    match result {
        Ok(reply) => {
            let content_type =
                reply.headers.get("Content-Type").map_or("text/plain;charset=UTF-8", String::as_str).to_string();
            let mut resp = net::response(Status::OK, &content_type, reply.body);
            for (name, value) in reply.headers.iter().filter(|(name, _)| !directive::is_directive(name)) {
                if let (Ok(name), Ok(value)) =
                    (net::header::HeaderName::try_from(name.as_str()), net::header::HeaderValue::from_str(value))
                {
                    resp.headers_mut().insert(name, value);
                }
            }
            resp
        }
        Err(error) => {
            let status = Status::from_u16(error.code).unwrap_or(Status::INTERNAL_SERVER_ERROR);
            net::text(status, error.message)
        }
    }
}
