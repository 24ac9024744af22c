//! The Nacos 2.x/3.x gRPC port (client port + 1000): what the Java client under Spring Cloud
//! Alibaba, nacos-sdk-go v2, nacos-sdk-rust and nacos-sdk-python 3.x speak.
//!
//! Two routes carry Nacos's `Payload` (`wire`): `/Request/request` (unary: every client
//! request) and `/BiRequestStream/requestBiStream` (the connection's setup from the client,
//! then server pushes and the client's acks). A connection is one transport (`connections`);
//! what a client registers, subscribes and listens to belongs to it.
//!
//! Architecture Invariant: like the HTTP API, this port maps requests to guest operations
//! (`naming`, `config`) and guest answers to Nacos's response types; it knows no naming or
//! config semantics. Ephemeral instances a connection registers are ordinary guest
//! registrations carrying the connection's id, renewed by this node while the connection
//! lives and deregistered when it ends (`lifecycle`).

pub mod client;
mod config;
pub mod connections;
mod lifecycle;
mod naming;
mod push;
mod transport;
pub mod wire;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::net::TcpListener;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::BoxFuture;
use tonic::codegen::http;

use self::connections::Connection;
use self::connections::Connections;
use self::wire::Inbound;
use self::wire::Payload;
use self::wire::Reply;
use self::wire::code;
use crate::auth::permission::Action;
use crate::auth::permission::Resource;
use crate::dispatch::Dispatch;
use crate::dispatch::Outcome;
use crate::gate::Caller;
use crate::gate::Credentials;
use crate::gate::Gate;
use crate::guests::Guests;
use crate::runtime::GuestError;
use crate::tasks::Tasks;

/// The gRPC port's distance from the client port (Nacos's `SDK_GRPC_PORT_DEFAULT_OFFSET`):
/// clients derive it themselves.
pub const PORT_OFFSET: u16 = 1000;
/// HTTP/2 keepalive: a ping after this much silence on a transport, and the transport cut
/// when the ping is not answered in time (a client host that vanished without a FIN).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// At shutdown, how long the `ConnectResetRequest`s have to leave before connections are cut.
const RESET_FLUSH: Duration = Duration::from_millis(100);

/// What the gRPC port stands on, handed over by the node.
pub struct Context {
    pub dispatch: Arc<Dispatch>,
    pub guests: Arc<Guests>,
    pub gate: Arc<Gate>,
    pub connections: Arc<Connections>,
    /// The node's task set: pushes and renewals run in it; when it stops, connections close
    /// without their instances being removed (their clients re-register elsewhere).
    pub tasks: Tasks,
    /// Requests observed (`GET /metrics` on the client port).
    pub telemetry: Arc<crate::telemetry::Telemetry>,
}

/// Serve the gRPC port until `stop` resolves, then close every connection; starts the push,
/// renewal and cleanup tasks in the node's task set. With `tls` (the client port's
/// certificate), only TLS (ALPN `h2`) is spoken.
pub async fn serve(
    ctx: Arc<Context>,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    ended: tokio::sync::mpsc::UnboundedReceiver<Arc<Connection>>,
    stop: impl std::future::Future<Output = ()>,
) {
    ctx.tasks.spawn(push::push_on_events(ctx.clone()));
    ctx.tasks.spawn(lifecycle::renew_and_probe(ctx.clone()));
    ctx.tasks.spawn(lifecycle::clean_up_ended(ctx.clone(), ended));
    let connections = ctx.connections.clone();
    let incoming = transport::incoming(connections.clone(), listener, tls);
    let service = NacosService { ctx };
    let stop = async move {
        stop.await;
        // Java and Go clients move to another server when asked; Python and Rust ones when
        // their stream ends. Open bi-streams would hold a graceful shutdown forever: cut them.
        for connection in connections.live() {
            let id = connections.next_request_id();
            connection.send(wire::server_request("ConnectResetRequest", &id, "internal", json!({})));
        }
        tokio::time::sleep(RESET_FLUSH).await;
        connections.close_all();
    };
    let served = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .serve_with_incoming_shutdown(service, incoming, stop)
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "gRPC port stopped");
    }
}

/// The two routes of Nacos's protocol (as tonic's generated servers are, by hand: two methods
/// need no code generation).
#[derive(Clone)]
struct NacosService {
    ctx: Arc<Context>,
}

const UNARY_PATH: &str = "/Request/request";
const BI_STREAM_PATH: &str = "/BiRequestStream/requestBiStream";

fn codec() -> tonic::server::Grpc<tonic_prost::ProstCodec<Payload, Payload>> {
    tonic::server::Grpc::new(tonic_prost::ProstCodec::default())
        .apply_max_message_size_config(Some(wire::MAX_INBOUND_BYTES), None)
}

impl<B> tonic::codegen::Service<http::Request<B>> for NacosService
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let ctx = self.ctx.clone();
        match req.uri().path() {
            UNARY_PATH => Box::pin(async move { Ok(codec().unary(Unary(ctx), req).await) }),
            BI_STREAM_PATH => Box::pin(async move { Ok(codec().streaming(BiStream(ctx), req).await) }),
            _ => Box::pin(async move { Ok(tonic::Status::unimplemented("not a Nacos route").into_http()) }),
        }
    }
}

/// The connection a call arrived on (`Connections::incoming` names it to every call).
fn connection_of<T>(request: &tonic::Request<T>) -> Result<Arc<Connection>, tonic::Status> {
    request.extensions().get::<Arc<Connection>>().cloned().ok_or_else(|| tonic::Status::internal("no connection"))
}

struct Unary(Arc<Context>);

impl tonic::server::UnaryService<Payload> for Unary {
    type Response = Payload;
    type Future = BoxFuture<tonic::Response<Payload>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<Payload>) -> Self::Future {
        let ctx = self.0.clone();
        Box::pin(async move {
            let connection = connection_of(&request)?;
            let started = std::time::Instant::now();
            let payload = request.into_inner();
            let kind = payload.metadata.as_ref().map_or("", |m| m.r#type.as_str());
            let request = metric_label(kind).to_string();
            let reply = answer(&ctx, &connection, payload).await;
            let labels = crate::telemetry::GrpcLabels { request, success: reply.success };
            ctx.telemetry.observe_grpc(labels, started.elapsed());
            Ok(tonic::Response::new(reply.payload))
        })
    }
}

struct BiStream(Arc<Context>);

impl tonic::server::StreamingService<Payload> for BiStream {
    type Response = Payload;
    type ResponseStream = ReceiverStream<Result<Payload, tonic::Status>>;
    type Future = BoxFuture<tonic::Response<Self::ResponseStream>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<tonic::Streaming<Payload>>) -> Self::Future {
        let ctx = self.0.clone();
        Box::pin(async move {
            let connection = connection_of(&request)?;
            let (sender, receiver) = tokio::sync::mpsc::channel(connections::PUSH_QUEUE_DEPTH);
            connection.attach_stream(sender);
            let inbound = request.into_inner();
            ctx.tasks.spawn(read_stream(ctx.clone(), connection, inbound));
            Ok(tonic::Response::new(ReceiverStream::new(receiver)))
        })
    }
}

/// The client's side of the stream: its setup, then acks of pushes. The stream's end is the
/// connection's end.
async fn read_stream(ctx: Arc<Context>, connection: Arc<Connection>, mut inbound: tonic::Streaming<Payload>) {
    loop {
        let message = tokio::select! {
            message = inbound.message() => message,
            () = connection.closed() => break,
        };
        let payload = match message {
            Ok(Some(payload)) => payload,
            Ok(None) | Err(_) => break,
        };
        let Ok(inbound) = Inbound::decode(&payload) else { continue };
        match inbound.kind.as_str() {
            "ConnectionSetupRequest" => {
                connection.set_up(connections::setup_of(&inbound));
                connection.touch();
                // A client that announced its abilities waits for ours (and drops the
                // connection without them); an older one announces none and waits for nothing.
                if inbound.field("abilityTable").is_some() {
                    let id = ctx.connections.next_request_id();
                    connection.send(wire::server_request(
                        "SetupAckRequest",
                        &id,
                        "internal",
                        json!({
                            "abilityTable": {
                                "supportPersistentInstanceByGrpc": true,
                                "fuzzyWatch": false,
                                "lock": false,
                                "mcp": false,
                            }
                        }),
                    ));
                }
            }
            kind if kind.ends_with("Response") => connection.acked(&inbound),
            kind => tracing::debug!(connection = %connection.id, kind, "unexpected request on a client's stream"),
        }
    }
    connection.close();
}

/// A request type as a metric label: the known ones, else `other` (a client's string must not
/// grow the metric's label set).
fn metric_label(kind: &str) -> &str {
    let known =
        matches!(kind, "ServerCheckRequest" | "HealthCheckRequest") || naming::handles(kind) || config::handles(kind);
    if known { kind } else { "other" }
}

/// Answer one unary request.
async fn answer(ctx: &Context, connection: &Connection, payload: Payload) -> Reply {
    let inbound = match Inbound::decode(&payload) {
        Ok(inbound) => inbound,
        Err(message) => return wire::error_response(code::BAD_GATEWAY, &message),
    };
    match inbound.kind.as_str() {
        "ServerCheckRequest" => {
            return wire::success(
                "ServerCheckResponse",
                json!({ "connectionId": connection.id, "supportAbilityNegotiation": true }),
            );
        }
        _ if !connection.is_set_up() || connection.is_closed() => {
            return wire::error_response(code::UNREGISTERED, "Connection is unregistered.");
        }
        _ => {}
    }
    connection.touch();
    let call = Call { ctx, connection, inbound: &inbound };
    match inbound.kind.as_str() {
        "HealthCheckRequest" => wire::success("HealthCheckResponse", json!({})),
        kind if naming::handles(kind) => match caller(ctx, connection, &inbound) {
            Ok(caller) => naming::answer(&call, &caller).await,
            Err(denied) => wire::failure(naming::response_type(kind), code::NO_RIGHT, denied, json!({})),
        },
        kind if config::handles(kind) => match caller(ctx, connection, &inbound) {
            Ok(caller) => config::answer(&call, &caller).await,
            Err(denied) => {
                wire::failure(config::response_type(kind), code::NO_RIGHT, denied, config::failure_fields(kind))
            }
        },
        _ => wire::error_response(code::NO_HANDLER, "RequestHandler Not Found"),
    }
}

/// One unary call being answered.
pub(crate) struct Call<'a> {
    pub ctx: &'a Context,
    pub connection: &'a Connection,
    pub inbound: &'a Inbound,
}

impl Call<'_> {
    /// The client's address for the guest: what it says it is (`clientIp`), else the
    /// transport's (beta configs are matched on it, as Nacos does).
    pub fn client_ip(&self) -> String {
        let said = self.inbound.client_ip.trim();
        if said.is_empty() { self.connection.remote.ip().to_string() } else { said.to_string() }
    }
}

/// Who sent the request: its token (`accessToken` header or `Authorization: Bearer`), or its
/// `username` and `password` headers. Refused with Nacos's messages.
fn caller(ctx: &Context, connection: &Connection, inbound: &Inbound) -> Result<Caller, &'static str> {
    let bearer = inbound.header("Authorization").and_then(|value| value.strip_prefix("Bearer "));
    let credentials = Credentials {
        token: bearer.or_else(|| inbound.header("accessToken")),
        username: inbound.header("username"),
        password: inbound.header("password").unwrap_or_default(),
        address: connection.remote.ip(),
    };
    match ctx.gate.identify(&ctx.guests, &credentials) {
        Ok(Caller::Anonymous) => Err(crate::gate::UNKNOWN_USER.0),
        Ok(caller) => Ok(caller),
        Err(denied) => Err(denied.0),
    }
}

/// Whether `caller` may do `action` on a data resource, as a refusal message when not.
pub(crate) fn permit(caller: &Caller, resource: &Resource, action: Action) -> Result<(), &'static str> {
    if caller.may(resource, action) { Ok(()) } else { Err(crate::gate::NOT_ALLOWED.0) }
}

/// A guest's answer, from whichever path the request took; 503 when it could not be served.
pub(crate) fn settle(outcome: Outcome) -> Result<nacre_protocol::GuestReply, GuestError> {
    match outcome {
        Outcome::Answered(reply) | Outcome::Logged { reply, .. } | Outcome::Applied { reply, .. } => reply,
        Outcome::Unavailable(e) => Err(GuestError { code: e.status(), message: e.to_string() }),
    }
}

/// A namespace as the request names it: empty means `public`.
pub(crate) fn namespace(value: &str) -> Result<String, GuestError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(crate::auth::permission::PUBLIC_NAMESPACE.to_string());
    }
    crate::state::namespace_id(value, "namespace")
        .map_err(|e| GuestError { code: 400, message: format!("invalid param: namespace {}", e.reason) })?;
    Ok(value.to_string())
}
