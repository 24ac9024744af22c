//! Who watches what, cluster-wide: `GET /nacos/v1/ns/service/subscribers` (the clients
//! subscribed to a service), `GET /nacos/v1/cs/configs/listener` (the clients listening to a
//! config) and `GET /nacos/v1/cs/listener?ip=` (the configs a client listens to), with Nacos's
//! answers. A client watches through one node, so, as Nacos does, the node asked collects
//! every member's own records (`SubscribersOf`, `ListenersOf` over the peer port) and merges
//! them; a member that does not answer in time is left out, not waited for.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;

use super::Context;
use super::access::Caller;
use super::params;
use super::params::Params;
use crate::auth::permission::Action;
use crate::auth::permission::Resource;
use crate::auth::permission::ResourceType;
use crate::config::MemberAddr;
use crate::net;
use crate::net::HttpRequest;
use crate::net::HttpResponse;
use crate::net::Rpc;
use crate::net::Status;
use crate::watching;
use crate::watching::ConfigListener;
use crate::watching::ListenerFilter;
use crate::watching::Subscriber;

/// How long the node asked waits for each member's records.
pub const MEMBER_WATCHERS_TIMEOUT_MS: u64 = 2_000;
/// Nacos's page size of the subscriber list when the caller names none.
const DEFAULT_SUBSCRIBERS_PAGE_SIZE: usize = 1_000;

/// A member's subscribers of a service: `(namespace, group@@service)`.
pub struct SubscribersOf;

impl Rpc for SubscribersOf {
    const PATH: &'static str = "/nacre/watchers/subscribers";
    type Request = (String, String);
    type Answer = Vec<Subscriber>;
}

/// A member's config listeners that a filter admits.
pub struct ListenersOf;

impl Rpc for ListenersOf {
    const PATH: &'static str = "/nacre/watchers/listeners";
    type Request = ListenerFilter;
    type Answer = Vec<ConfigListener>;
}

/// `R`'s answer from every member (this one answered by `local`), merged; members that did
/// not answer within [`MEMBER_WATCHERS_TIMEOUT_MS`] are left out.
async fn from_every_member<R: Rpc>(
    ctx: &Context,
    request: &R::Request,
    local: impl FnOnce() -> R::Answer,
) -> Vec<R::Answer> {
    let me = ctx.me.api_addr();
    let others: Vec<MemberAddr> = ctx
        .log
        .membership()
        .nodes
        .values()
        .filter_map(MemberAddr::of_member)
        .filter(|member| member.api_addr() != me)
        .collect();
    let timeout = Duration::from_millis(MEMBER_WATCHERS_TIMEOUT_MS);
    let asks = others.iter().map(|member| async move {
        let answer = ctx.peers.send::<R>(&member.raft_addr(), request, timeout).await;
        if let Err(e) = &answer {
            tracing::debug!(member = %member.api_addr(), error = %e, path = R::PATH, "a member's watchers are left out");
        }
        answer.ok()
    });
    let mut answers = vec![local()];
    answers.extend(futures_util::future::join_all(asks).await.into_iter().flatten());
    answers
}

/// `GET /nacos/v1/ns/service/subscribers?serviceName&groupName&namespaceId&pageNo&pageSize`:
/// `{"subscribers": [...], "count": N}`, every member's, `aggregation=false` this node's only.
pub async fn subscribers(ctx: &Context, req: &HttpRequest) -> HttpResponse {
    let params = Params::from_request(req);
    let namespace = match params::namespace(params.get("namespaceId"), "namespaceId") {
        Ok(namespace) => namespace,
        Err(message) => return net::text(Status::BAD_REQUEST, message),
    };
    let Some(service) = params.get("serviceName").map(str::trim).filter(|s| !s.is_empty()) else {
        return net::text(Status::BAD_REQUEST, "Required parameter 'serviceName' is not present");
    };
    let (page_no, page_size) =
        match (page_param(&params, "pageNo", 1), page_param(&params, "pageSize", DEFAULT_SUBSCRIBERS_PAGE_SIZE)) {
            (Ok(no), Ok(size)) => (no, size),
            (Err(message), _) | (_, Err(message)) => return net::text(Status::BAD_REQUEST, message),
        };
    let aggregation = !params.get("aggregation").is_some_and(|a| a.trim().eq_ignore_ascii_case("false"));
    let grouped = watching::grouped_service(service, params.get("groupName"));
    let local = || ctx.watchers.subscribers_of(&namespace, &grouped);
    let all: BTreeSet<Subscriber> = if aggregation {
        let request = (namespace.clone(), grouped.clone());
        from_every_member::<SubscribersOf>(ctx, &request, local).await.into_iter().flatten().collect()
    } else {
        local().into_iter().collect()
    };
    let count = all.len();
    let page: Vec<Subscriber> = all.into_iter().skip((page_no - 1).saturating_mul(page_size)).take(page_size).collect();
    net::json(Status::OK, &json!({ "subscribers": page, "count": count }))
}

/// A positive page parameter, `default` when absent.
fn page_param(params: &Params, name: &str, default: usize) -> Result<usize, String> {
    match params.get(name).map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(value) => match value.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("invalid param: {name} must be a positive number")),
        },
    }
}

/// `GET /nacos/v1/cs/configs/listener?dataId&group&tenant`: the clients listening to one
/// config, `{"collectStatus": 200, "lisentersGroupkeyStatus": {ip: md5}}` (Nacos's spelling).
pub async fn config_listeners(ctx: &Context, req: &HttpRequest) -> HttpResponse {
    let params = Params::from_request(req);
    let namespace = match params::namespace(params.get("tenant"), "tenant") {
        Ok(namespace) => namespace,
        Err(message) => return net::text(Status::BAD_REQUEST, message),
    };
    let Some(data_id) = params.get("dataId").map(str::trim).filter(|d| !d.is_empty()) else {
        return net::text(Status::BAD_REQUEST, "Required parameter 'dataId' is not present");
    };
    let group = params.get("group").map(str::trim).filter(|g| !g.is_empty()).unwrap_or(watching::DEFAULT_GROUP);
    let filter = ListenerFilter::Config { namespace, group: group.to_string(), data_id: data_id.to_string() };
    let listeners: Vec<ConfigListener> =
        from_every_member::<ListenersOf>(ctx, &filter, || ctx.watchers.listeners(&filter)).await.concat();
    listener_status(watching::md5_by_ip(&listeners))
}

/// `GET /nacos/v1/cs/listener?ip=&tenant=&all=`: the configs the client at `ip` listens to, as
/// `{"collectStatus": 200, "lisentersGroupkeyStatus": {"dataId+group[+tenant]": md5}}`: those
/// of `tenant` when given, else every namespace's with `all=true`, else `public`'s (Nacos's
/// rules). Configs the caller may not read are left out.
pub async fn client_listeners(ctx: &Context, req: &HttpRequest, caller: &Caller) -> HttpResponse {
    let params = Params::from_request(req);
    let Some(ip) = params.get("ip").map(str::trim).filter(|ip| !ip.is_empty()) else {
        return net::text(Status::BAD_REQUEST, "Required parameter 'ip' is not present");
    };
    let tenant = params.get("tenant").map(str::trim).filter(|t| !t.is_empty());
    let namespace = match tenant.map(|t| params::namespace(Some(t), "tenant")).transpose() {
        Ok(namespace) => namespace,
        Err(message) => return net::text(Status::BAD_REQUEST, message),
    };
    let all = params.get("all").is_some_and(|a| a.trim().eq_ignore_ascii_case("true"));
    let filter = ListenerFilter::Client { ip: ip.to_string() };
    let listeners: Vec<ConfigListener> =
        from_every_member::<ListenersOf>(ctx, &filter, || ctx.watchers.listeners(&filter)).await.concat();
    let shown: Vec<ConfigListener> = listeners
        .into_iter()
        .filter(|l| match &namespace {
            Some(namespace) => l.namespace == *namespace,
            None => all || l.namespace == crate::state::PUBLIC_NAMESPACE,
        })
        .filter(|l| {
            let resource = Resource::data(&l.namespace, &l.group, ResourceType::Config, &l.data_id);
            caller.may(&resource, Action::Read)
        })
        .collect();
    listener_status(watching::md5_by_group_key(&shown))
}

fn listener_status(status: std::collections::BTreeMap<String, String>) -> HttpResponse {
    net::json(Status::OK, &json!({ "collectStatus": 200, "lisentersGroupkeyStatus": status }))
}
