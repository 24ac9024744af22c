//! `/nacos/v1/cs/*` and `/nacre/v1/config/*`: the config service's HTTP surface, routed to the
//! config guest. Which read a `GET /nacos/v1/cs/configs` is (content, `show=all`, `beta=true`,
//! `search=`) is the guest's to decide from the parameters, as in Nacos's `ConfigController`.

use super::Context;
use super::access::Caller;
use super::guest;
use super::params;
use super::params::Params;
use crate::net;
use crate::net::HttpRequest;
use crate::net::HttpResponse;
use crate::net::Status;
use crate::runtime::ModuleKind;
use crate::scope::Scope;

/// Headers a config request may carry that change its meaning; passed to the guest as
/// parameters of the same name.
const MEANINGFUL_HEADERS: [&str; 2] = ["betaIps", "casMd5"];

/// A config route of the table (`routes`): `op` is the guest operation it maps to; a write
/// goes through the log, naming its author.
pub async fn handle(ctx: &Context, req: HttpRequest, caller: &Caller, op: &str, is_write: bool) -> HttpResponse {
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
        caller.put_author(&mut request.params);
        guest::write(ctx, namespace, ModuleKind::Config, request).await
    } else if let Err(unavailable) = guest::linearize_if_asked(ctx, &req).await {
        unavailable
    } else {
        guest::read(ctx, Scope::new(&namespace, ModuleKind::Config), &request)
    }
}
