//! Hand an API request to the guest module bound to its namespace, and turn the guest's
//! answer into an HTTP response. The host decides routing; the guest decides meaning.

use nacre_protocol::GuestReply;
use nacre_protocol::GuestRequest;
use nacre_protocol::directive;

use super::params::Params;
use crate::net;
use crate::net::HttpRequest;
use crate::net::HttpResponse;
use crate::net::Status;
use crate::node::Node;
use crate::node::WriteError;
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
pub async fn write(node: &Node, namespace: String, kind: ModuleKind, request: GuestRequest) -> HttpResponse {
    let op = Operation::Guest { namespace, kind, payload: request.encode() };
    match node.write(op).await {
        Ok(outcome) => reply(outcome.response.result),
        Err(e) => unavailable(&e),
    }
}

/// Answer a read from this replica's state.
pub fn read(node: &Node, namespace: &str, kind: ModuleKind, request: &GuestRequest) -> HttpResponse {
    reply(query(node, namespace, kind, request))
}

/// A guest's raw answer to a read from this replica's state.
pub fn query(node: &Node, namespace: &str, kind: ModuleKind, request: &GuestRequest) -> Result<Vec<u8>, GuestError> {
    let replica = node.shared.read();
    let applied_index = replica.applied_index();
    replica.machine.query(&node.shared.runtime, applied_index, namespace, kind, &request.encode())
}

pub fn unavailable(e: &WriteError) -> HttpResponse {
    net::text(Status::SERVICE_UNAVAILABLE, e.to_string())
}

/// A guest's result as HTTP: the reply's body and headers, or the error's code and message.
pub fn reply(result: Result<Vec<u8>, GuestError>) -> HttpResponse {
    match result {
        Ok(bytes) => match GuestReply::decode(&bytes) {
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
            Err(e) => net::text(Status::INTERNAL_SERVER_ERROR, format!("module answered with a malformed reply: {e}")),
        },
        Err(error) => {
            let status = Status::from_u16(error.code).unwrap_or(Status::INTERNAL_SERVER_ERROR);
            net::text(status, error.message)
        }
    }
}
