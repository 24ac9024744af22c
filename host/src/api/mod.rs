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

use std::sync::Arc;

use tokio::net::TcpListener;

pub use ops::NodeState;

use crate::net;
use crate::net::HttpMethod;
use crate::net::HttpRequest;
use crate::net::HttpResponse;
use crate::net::Status;
use crate::node::Node;

/// Largest request body of a module upload (install, dry-run); other routes take at most
/// [`MAX_REQUEST_BODY_BYTES`]. Chosen from the method and path before the body is read.
pub const MAX_UPLOAD_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Largest body of an ordinary request: a 1 MiB config, percent-encoded, with room to spare.
pub const MAX_REQUEST_BODY_BYTES: usize = 4 * 1024 * 1024;

pub async fn serve(node: Arc<Node>, listener: TcpListener) {
    net::serve(listener, body_limit, move |req| {
        let node = node.clone();
        async move { route(&node, req).await }
    })
    .await
}

/// The body limit of a route: uploads of modules are large, everything else is not.
fn body_limit(method: &HttpMethod, path: &str) -> usize {
    let path = path.trim_end_matches('/');
    let is_upload = method == HttpMethod::POST && (path == "/nacre/v1/modules" || path == "/nacre/v1/modules/dry-run");
    if is_upload { MAX_UPLOAD_BODY_BYTES } else { MAX_REQUEST_BODY_BYTES }
}

async fn route(node: &Node, req: HttpRequest) -> HttpResponse {
    let path = req.path.trim_end_matches('/').to_string();
    match (&req.method, path.as_str()) {
        (_, p) if p.starts_with("/nacos/v1/cs/") || p.starts_with("/nacre/v1/config/") => {
            config::route(node, req, p).await
        }
        (_, p) if p.starts_with("/nacos/v1/ns/") => naming::route(node, req, p).await,
        (_, "/nacos/v1/console/namespaces") => namespaces::route(node, req).await,
        (&HttpMethod::GET, "/nacos/v1/console/health/liveness") => ops::liveness(),
        (&HttpMethod::GET, "/nacos/v1/console/health/readiness") => ops::readiness(node),
        (&HttpMethod::GET, "/nacos/v1/core/cluster/nodes") => ops::cluster_nodes(node).await,
        (&HttpMethod::GET, "/nacre/v1/state") => ops::state(node),
        (&HttpMethod::GET, "/nacre/v1/ap") => ops::ap_partition(node, &req),
        (&HttpMethod::POST, "/nacre/v1/modules") => modules::install(node, req).await,
        (&HttpMethod::GET, "/nacre/v1/modules") => modules::list(node),
        (&HttpMethod::POST, "/nacre/v1/bindings") => modules::activate(node, req).await,
        (&HttpMethod::GET, "/nacre/v1/bindings") => modules::bindings(node),
        (&HttpMethod::POST, "/nacre/v1/bindings/rollback") => modules::rollback(node, req).await,
        (&HttpMethod::POST, "/nacre/v1/modules/dry-run") => modules::dry_run(node, req).await,
        (&HttpMethod::GET | &HttpMethod::POST, "/nacre/v1/exec") => modules::exec(node, req).await,
        _ => not_found(&req),
    }
}

fn not_found(req: &HttpRequest) -> HttpResponse {
    net::text(Status::NOT_FOUND, format!("no such endpoint: {} {}", req.method, req.path))
}
