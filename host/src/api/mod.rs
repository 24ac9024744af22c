//! The client API on the main port (8848): the Nacos Open API v1 and Nacre's own `/nacre/v1`.
//!
//! Architecture Invariant: the API layer routes and translates; it knows which guest
//! operation a path maps to and how to turn a guest's answer into HTTP, never what a config
//! or an instance is.

pub mod access;
pub mod cluster;
mod config;
mod console;
pub(crate) mod guest;
mod listener;
mod modules;
mod namespaces;
mod naming;
mod ops;
pub(crate) mod params;
pub mod routes;
mod users;
pub mod watchers;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use ops::NodeState;
pub use ops::NodeStateRpc;
pub use ops::node_state;
pub use users::DEFAULT_ADMIN;
pub use watchers::ListenersOf;
pub use watchers::SubscribersOf;

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
use crate::watching::Watchers;

/// What the client API stands on, handed over by the node: the narrow services, not the node.
pub struct Context {
    pub dispatch: Arc<Dispatch>,
    pub guests: Arc<Guests>,
    pub log: Arc<Log>,
    pub ap: Arc<Ap>,
    pub push: Arc<Push>,
    /// Who watches what on this node: UDP subscribers, gRPC connections, held long-polls.
    pub watchers: Arc<Watchers>,
    pub leases: Arc<Leases>,
    pub peers: PeerClient,
    /// This node's addresses (the members are the log's: `log.membership()`).
    pub me: MemberAddr,
    /// What a dry run replays: the replica (for its runtime), the log, the snapshots.
    pub replica: Arc<Shared>,
    pub log_reader: LogStore,
    pub data_dir: PathBuf,
    /// The node's task set: a held long-poll answers at once when the node begins to stop.
    pub stopping: Tasks,
    /// Who may call what (`access`).
    pub gate: Arc<access::Gate>,
    /// Whether the web console's files are served (`--console`).
    pub console: bool,
    /// Requests observed, metrics served (`GET /metrics`).
    pub telemetry: Arc<crate::telemetry::Telemetry>,
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
    transport: net::Transport,
    max_connections: usize,
    stop: impl std::future::Future<Output = ()>,
) {
    let gatekeeper = ctx.clone();
    let admit = move |parts: &net::RequestParts| {
        let limit = body_limit(&parts.method, parts.uri.path());
        if limit > MAX_REQUEST_BODY_BYTES {
            admit_upload(&gatekeeper, parts)?;
        }
        Ok((limit, ()))
    };
    let limits = net::ServerLimits { max_connections, body_budget_bytes: MAX_BODY_BYTES_IN_FLIGHT };
    net::serve(listener, transport, limits, admit, stop, move |req, ()| {
        let ctx = ctx.clone();
        async move { route(&ctx, req).await }
    })
    .await
}

/// An upload's caller is admitted from the request's head, before its body is read: a
/// stranger cannot make a node hold 32 MiB bodies only to refuse them. Its credentials must
/// be in a header or the query (the command-line client sends a bearer token).
fn admit_upload(ctx: &Context, parts: &net::RequestParts) -> Result<(), Box<HttpResponse>> {
    let path = parts.uri.path();
    let Some(route) = routes::find(&parts.method, path) else { return Ok(()) };
    let head = HttpRequest {
        method: parts.method.clone(),
        path: path.to_string(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        headers: parts.headers.clone(),
        body: Default::default(),
        peer: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
    };
    match ctx.gate.admit(&ctx.guests, &head, route.access) {
        Ok(_) => Ok(()),
        Err(denied) => Err(Box::new(denied.response(path))),
    }
}

/// The body limit of a route: uploads of modules are large, everything else is not.
fn body_limit(method: &HttpMethod, path: &str) -> usize {
    let path = path.trim_end_matches('/');
    let is_upload = method == HttpMethod::POST && (path == "/nacre/v1/modules" || path == "/nacre/v1/modules/dry-run");
    if is_upload { MAX_UPLOAD_BODY_BYTES } else { MAX_REQUEST_BODY_BYTES }
}

/// Serve a request, and count it by route and status with its latency.
async fn route(ctx: &Context, req: HttpRequest) -> HttpResponse {
    let started = std::time::Instant::now();
    let method = req.method.to_string();
    let found = routes::find(&req.method, &req.path);
    let resp = match found {
        Some(route) => run_route(ctx, route, req).await,
        None => not_found(&req),
    };
    let matched = found.map_or("unmatched", |route| route.path);
    let labels = crate::telemetry::HttpLabels { method, route: matched.to_string(), status: resp.status().as_u16() };
    ctx.telemetry.observe_http(labels, started.elapsed());
    resp
}

/// Admit the request's caller for its route and run it: the table that dispatches is the one
/// that authorizes (`routes`).
async fn run_route(ctx: &Context, route: &routes::Route, req: HttpRequest) -> HttpResponse {
    let caller = match ctx.gate.admit(&ctx.guests, &req, route.access) {
        Ok(caller) => caller,
        Err(denied) => return denied.response(&req.path),
    };
    use routes::Handler as H;
    match route.handler {
        H::Config { op, write } => config::handle(ctx, req, &caller, op, write).await,
        H::ConfigListen => listener::listen(ctx, req, &caller).await,
        H::ConfigListeners => watchers::config_listeners(ctx, &req).await,
        H::ClientListeners => watchers::client_listeners(ctx, &req, &caller).await,
        H::Subscribers => watchers::subscribers(ctx, &req).await,
        H::Naming { op, reach } => naming::handle(ctx, req, route.path, op, reach).await,
        H::NamingMetrics => naming::metrics(ctx),
        H::Namespaces => namespaces::route(ctx, req, &caller).await,
        H::Liveness => ops::liveness(),
        H::Readiness => ops::readiness(ctx),
        H::ServerState => users::server_state(ctx),
        H::ClusterNodes => ops::cluster_nodes(ctx).await,
        H::RaftState => ops::raft_state(ctx).await,
        H::RaftLeader => ops::raft_leader(ctx).await,
        H::OperatorServers => ops::operator_servers(ctx).await,
        H::ClusterMembers => cluster::members(ctx).await,
        H::ClusterChange(action) => cluster::change(ctx, &req, action).await,
        H::ClusterSnapshot => cluster::snapshot(ctx).await,
        H::ConsoleFile | H::ConsoleRedirect if !ctx.console => not_found(&req),
        H::ConsoleFile => console::file(&req.path),
        H::ConsoleRedirect => console::redirect(),
        H::Metrics => ops::metrics(ctx),
        H::State => ops::state(ctx),
        H::ApPartition => ops::ap_partition(ctx, &req),
        H::ModuleInstall => modules::install(ctx, req).await,
        H::ModuleList => modules::list(ctx),
        H::ModuleRemove => modules::remove(ctx, req).await,
        H::BindingActivate => modules::activate(ctx, req, &caller).await,
        H::BindingList => modules::bindings(ctx),
        H::BindingRollback => modules::rollback(ctx, req, &caller).await,
        H::ModuleDryRun => modules::dry_run(ctx, req).await,
        H::Exec => modules::exec(ctx, req).await,
        H::Login => users::login(ctx, &req),
        H::AdminBootstrap => users::bootstrap(ctx, &req).await,
        H::Users => users::users(ctx, &req, &caller).await,
        H::UserSearch => users::search_users(ctx, &req),
        H::Roles => users::roles(ctx, &req).await,
        H::RoleSearch => users::search_roles(ctx, &req),
        H::Permissions => users::permissions(ctx, &req).await,
    }
}

fn not_found(req: &HttpRequest) -> HttpResponse {
    net::text(Status::NOT_FOUND, format!("no such endpoint: {} {}", req.method, req.path))
}
