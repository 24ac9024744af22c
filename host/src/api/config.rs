//! `/nacos/v1/cs/*` and `/nacre/v1/config/*`: the config service's HTTP surface, routed to the
//! config guest. Which read a `GET /nacos/v1/cs/configs` is (content, `show=all`, `beta=true`,
//! `search=`) is the guest's to decide from the parameters, as in Nacos's `ConfigController`.

use super::Context;
use super::guest;
use super::listener;
use super::params;
use super::params::Params;
use crate::net;
use crate::net::HttpMethod;
use crate::net::HttpRequest;
use crate::net::HttpResponse;
use crate::net::Status;
use crate::runtime::ModuleKind;
use crate::scope::Scope;

/// Headers a config request may carry that change its meaning; passed to the guest as
/// parameters of the same name.
const MEANINGFUL_HEADERS: [&str; 2] = ["betaIps", "casMd5"];

pub async fn route(ctx: &Context, req: HttpRequest, path: &str) -> HttpResponse {
    let (op, is_write) = match (&req.method, path) {
        (&HttpMethod::POST, "/nacos/v1/cs/configs/listener") => return listener::listen(ctx, req).await,
        (&HttpMethod::GET, "/nacos/v1/cs/configs") => ("config.get", false),
        (&HttpMethod::POST, "/nacos/v1/cs/configs") => ("config.publish", true),
        (&HttpMethod::DELETE, "/nacos/v1/cs/configs") => ("config.delete", true),
        (&HttpMethod::GET, "/nacos/v1/cs/history") => ("config.history", false),
        (&HttpMethod::GET, "/nacos/v1/cs/history/previous") => ("config.historyPrevious", false),
        // Nacre's admin operations, which Nacos leaves to its console.
        (&HttpMethod::POST, "/nacre/v1/config/rollback") => ("config.rollback", true),
        (&HttpMethod::POST, "/nacre/v1/config/promote-beta") => ("config.promoteBeta", true),
        _ => return super::not_found(&req),
    };
    let params = Params::from_request(&req);
    let namespace = match params::namespace(params.get("tenant"), "tenant") {
        Ok(ns) => ns,
        Err(message) => return net::text(Status::BAD_REQUEST, message),
    };
    let mut request = guest::guest_request(&req, op, params);
    for name in MEANINGFUL_HEADERS {
        if let Some(value) = req.header(name) {
            request.params.entry(name.to_string()).or_insert_with(|| value.to_string());
        }
    }
    if is_write {
        guest::write(ctx, namespace, ModuleKind::Config, request).await
    } else if let Err(unavailable) = guest::linearize_if_asked(ctx, &req).await {
        unavailable
    } else {
        guest::read(ctx, Scope::new(&namespace, ModuleKind::Config), &request)
    }
}
