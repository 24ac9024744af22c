//! Hand an API request to the guest module bound to its namespace, and turn the guest's
//! answer into an HTTP response. The host decides routing; the guest decides meaning.

use nacre_protocol::GuestReply;
use nacre_protocol::GuestRequest;
use nacre_protocol::directive;

use super::Context;
use super::params::Params;
use crate::dispatch::Outcome;
use crate::net;
use crate::net::HttpRequest;
use crate::net::HttpResponse;
use crate::net::Status;
use crate::raft::log::WriteError;
use crate::runtime::GuestError;
use crate::runtime::ModuleKind;
use crate::scope::Scope;

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
pub async fn write(ctx: &Context, namespace: String, kind: ModuleKind, request: GuestRequest) -> HttpResponse {
    respond_outcome(ctx.dispatch.commit_log(Scope::new(&namespace, kind), &request).await)
}

/// A dispatched request's outcome as HTTP. A write's answer says which module (and, through
/// the log, which index) produced it, so that a module switch can be seen from the outside
/// (every replica switches at the same index).
fn respond_outcome(outcome: Outcome) -> HttpResponse {
    match outcome {
        Outcome::Answered(reply) => respond(reply),
        Outcome::Logged { reply, index, module_id } => with_headers(
            respond(reply),
            [(LOG_INDEX_HEADER, index.to_string()), (MODULE_HEADER, module_id.unwrap_or_default())],
        ),
        Outcome::Applied { reply, module_id } => with_headers(respond(reply), [(MODULE_HEADER, module_id)]),
        Outcome::Unavailable(e) => unavailable(&e),
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
pub fn read(ctx: &Context, scope: Scope<'_>, request: &GuestRequest) -> HttpResponse {
    respond(ctx.guests.query(scope, request))
}

/// Ask the guest first, then do what its plan says (`dispatch`), and answer.
pub async fn act(ctx: &Context, namespace: String, kind: ModuleKind, request: GuestRequest) -> HttpResponse {
    respond_outcome(ctx.dispatch.act(Scope::new(&namespace, kind), request).await)
}

/// The header a read carries to be linearizable: `X-Nacre-Consistency: linearizable`. Reads
/// are otherwise served by the local replica as of its applied index (serializable), as Nacos
/// serves them.
pub const CONSISTENCY_HEADER: &str = "x-nacre-consistency";

/// For a read that asks to be linearizable, confirm leadership through the leader (ReadIndex)
/// and wait until this replica has applied that far; a 503 when that cannot be done in time.
pub async fn linearize_if_asked(ctx: &Context, req: &HttpRequest) -> Result<(), HttpResponse> {
    let asked = req.header(CONSISTENCY_HEADER).is_some_and(|v| v.eq_ignore_ascii_case("linearizable"));
    if asked { ctx.log.linearize().await.map_err(|e| unavailable(&e)) } else { Ok(()) }
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
