//! The client API on the main port (8848): the Nacos Open API v1 and Nacre's own `/nacre/v1`.
//!
//! Architecture Invariant: the API layer routes and translates; it knows which guest
//! operation a path maps to and how to turn a guest's answer into HTTP, never what a config
//! or an instance is.

mod config;
pub(crate) mod guest;
mod listener;
mod modules;
mod namespaces;
mod naming;
mod ops;
pub(crate) mod params;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use ops::NodeState;

use crate::ap::Ap;
use crate::config::MemberAddr;
use crate::dispatch::Dispatch;
use crate::duties::Push;
use crate::guests::Guests;
use crate::leases::Leases;
use crate::net;
use crate::net::HttpMethod;
use crate::net::HttpRequest;
use crate::net::HttpResponse;
use crate::net::PeerClient;
use crate::net::Status;
use crate::raft::log::Log;
use crate::raft::log_store::LogStore;
use crate::raft::state_machine::Shared;
use crate::tasks::Tasks;

/// What the client API stands on, handed over by the node: the narrow services, not the node.
pub struct Context {
    pub dispatch: Arc<Dispatch>,
    pub guests: Arc<Guests>,
    pub log: Arc<Log>,
    pub ap: Arc<Ap>,
    pub push: Arc<Push>,
    pub leases: Arc<Leases>,
    pub peers: PeerClient,
    /// This node and every member, as `cluster.conf` lists them.
    pub me: MemberAddr,
    pub members: Vec<MemberAddr>,
    /// What a dry run replays: the replica (for its runtime), the log, the snapshots.
    pub replica: Arc<Shared>,
    pub log_reader: LogStore,
    pub data_dir: PathBuf,
    /// The node's task set: a held long-poll answers at once when the node begins to stop.
    pub stopping: Tasks,
}

/// Largest request body of a module upload (install, dry-run); other routes take at most
/// [`MAX_REQUEST_BODY_BYTES`]. Chosen from the method and path before the body is read.
pub const MAX_UPLOAD_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Largest body of an ordinary request: a 1 MiB config, percent-encoded, with room to spare.
pub const MAX_REQUEST_BODY_BYTES: usize = 4 * 1024 * 1024;
const _: () = assert!(
    MAX_UPLOAD_BODY_BYTES >= crate::runtime::limits::MAX_MODULE_BYTES,
    "the largest module a node accepts can be uploaded"
);
/// JSON escapes a byte into at most six (`\u00XX`): a request of the largest body always fits
/// a guest command's payload.
const _: () = assert!(
    MAX_REQUEST_BODY_BYTES * 6 + 64 * 1024 <= crate::state::MAX_GUEST_PAYLOAD_BYTES,
    "every request the API takes fits a command's payload"
);

/// Bytes of request bodies the client port holds at once (read, not yet answered): four
/// module uploads, or a thousand large config publishes. Past it, 503 and the client retries.
pub const MAX_BODY_BYTES_IN_FLIGHT: usize = 4 * MAX_UPLOAD_BODY_BYTES;
const _: () = assert!(MAX_BODY_BYTES_IN_FLIGHT >= MAX_UPLOAD_BODY_BYTES, "the largest upload fits the budget alone");

/// Serve the client port until `stop` resolves, then finish the requests in flight; at most
/// `max_connections` at once.
pub async fn serve(
    ctx: Arc<Context>,
    listener: TcpListener,
    max_connections: usize,
    stop: impl std::future::Future<Output = ()>,
) {
    let admit = |parts: &net::RequestParts| Ok((body_limit(&parts.method, parts.uri.path()), ()));
    let limits = net::ServerLimits { max_connections, body_budget_bytes: MAX_BODY_BYTES_IN_FLIGHT };
    net::serve(listener, limits, admit, stop, move |req, ()| {
        let ctx = ctx.clone();
        async move { route(&ctx, req).await }
    })
    .await
}

/// The body limit of a route: uploads of modules are large, everything else is not.
fn body_limit(method: &HttpMethod, path: &str) -> usize {
    let path = path.trim_end_matches('/');
    let is_upload = method == HttpMethod::POST && (path == "/nacre/v1/modules" || path == "/nacre/v1/modules/dry-run");
    if is_upload { MAX_UPLOAD_BODY_BYTES } else { MAX_REQUEST_BODY_BYTES }
}

async fn route(ctx: &Context, req: HttpRequest) -> HttpResponse {
    let path = req.path.trim_end_matches('/').to_string();
    match (&req.method, path.as_str()) {
        (_, p) if p.starts_with("/nacos/v1/cs/") || p.starts_with("/nacre/v1/config/") => {
            config::route(ctx, req, p).await
        }
        (_, p) if p.starts_with("/nacos/v1/ns/") => naming::route(ctx, req, p).await,
        (_, "/nacos/v1/console/namespaces") => namespaces::route(ctx, req).await,
        (&HttpMethod::GET, "/nacos/v1/console/health/liveness") => ops::liveness(),
        (&HttpMethod::GET, "/nacos/v1/console/health/readiness") => ops::readiness(ctx),
        (&HttpMethod::GET, "/nacos/v1/core/cluster/nodes") => ops::cluster_nodes(ctx).await,
        (&HttpMethod::GET, "/nacre/v1/state") => ops::state(ctx),
        (&HttpMethod::GET, "/nacre/v1/ap") => ops::ap_partition(ctx, &req),
        (&HttpMethod::POST, "/nacre/v1/modules") => modules::install(ctx, req).await,
        (&HttpMethod::GET, "/nacre/v1/modules") => modules::list(ctx),
        (&HttpMethod::DELETE, "/nacre/v1/modules") => modules::remove(ctx, req).await,
        (&HttpMethod::POST, "/nacre/v1/bindings") => modules::activate(ctx, req).await,
        (&HttpMethod::GET, "/nacre/v1/bindings") => modules::bindings(ctx),
        (&HttpMethod::POST, "/nacre/v1/bindings/rollback") => modules::rollback(ctx, req).await,
        (&HttpMethod::POST, "/nacre/v1/modules/dry-run") => modules::dry_run(ctx, req).await,
        (&HttpMethod::GET | &HttpMethod::POST, "/nacre/v1/exec") => modules::exec(ctx, req).await,
        _ => not_found(&req),
    }
}

fn not_found(req: &HttpRequest) -> HttpResponse {
    net::text(Status::NOT_FOUND, format!("no such endpoint: {} {}", req.method, req.path))
}
