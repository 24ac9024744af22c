//! A small HTTP/1.1 server loop over hyper: every request's body is read up front, bounded,
//! and handed to a handler as a plain [`HttpRequest`].

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::Full;
use hyper::HeaderMap;
use hyper::Method;
use hyper::StatusCode;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::rt::TokioTimer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::connections::BodyBudget;
use super::connections::BodyShare;
use super::connections::Connections;

pub use hyper::header;
/// A request's head, as an admission decision sees it.
pub use hyper::http::request::Parts as RequestParts;

pub type HttpResponse = hyper::Response<Full<Bytes>>;

/// A request whose body has been read.
#[derive(Debug)]
pub struct HttpRequest {
    pub method: Method,
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub peer: SocketAddr,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Connections one listener serves at most, whatever the file-descriptor limit allows
/// (`connections::connection_caps`).
pub const MAX_CONNECTIONS: usize = 16_384;
/// Longest a client may take to send a request's head; a slow one is disconnected.
pub const HEADER_READ_TIMEOUT_MS: u64 = 10_000;
/// Longest a client may take to send a request's body.
pub const BODY_READ_TIMEOUT_MS: u64 = 60_000;
/// How long a stopping server lets the requests in flight finish before it closes their
/// connections anyway.
pub const DRAIN_TIMEOUT_MS: u64 = 5_000;

/// What a server decides from a request's head, before its body is read: its body limit and
/// what the handler is given with it (`T`), or the answer that refuses it.
pub type Admission<T> = Result<(usize, T), Box<HttpResponse>>;

/// What one listener may hold: connections (past the cap, the longest-idle one is closed to
/// make room) and bytes of request bodies read and not yet answered (past the budget, 503).
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    pub max_connections: usize,
    pub body_budget_bytes: usize,
}

/// How a listener's connections speak: plain HTTP, or HTTP inside TLS (`net::tls`).
#[derive(Clone, Default)]
pub enum Transport {
    #[default]
    Plain,
    Tls(Arc<rustls::ServerConfig>),
}

/// Accept connections until `stop` resolves, answering each request with `handler`; then
/// stop accepting, let every request in flight finish (idle keep-alive connections close at
/// once) for at most [`DRAIN_TIMEOUT_MS`], and return. Each request's head goes through
/// `admit` first: a refused request is answered with its refusal and its body is never read;
/// an admitted one's body over its limit is answered with 413 without reaching the handler,
/// and without being read past that limit; one that does not fit the listener's body budget
/// with 503.
pub async fn serve<H, F, A, T>(
    listener: TcpListener,
    transport: Transport,
    limits: ServerLimits,
    admit: A,
    stop: impl Future<Output = ()>,
    handler: H,
) where
    H: Fn(HttpRequest, T) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = HttpResponse> + Send + 'static,
    A: Fn(&RequestParts) -> Admission<T> + Clone + Send + Sync + 'static,
    T: Send + 'static,
{
    let connections = Connections::new(limits.max_connections);
    let budget = Arc::new(BodyBudget::new(limits.body_budget_bytes));
    let server = CancellationToken::new();
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = connections.admit(&server) else {
            // Every connection is in a request: this one is closed at once rather than left
            // waiting (its client retries or goes to another node).
            tracing::debug!(%peer, cap = limits.max_connections, "connection turned away: every connection is busy");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (handler, admit, budget) = (handler.clone(), admit.clone(), budget.clone());
        let transport = transport.clone();
        tokio::spawn(async move {
            let slot = Arc::new(slot);
            let in_slot = slot.clone();
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let (handler, admit, budget) = (handler.clone(), admit.clone(), budget.clone());
                let in_request = in_slot.begin_request();
                async move {
                    let answer = read_and_handle(req, peer, &budget, admit, handler).await;
                    drop(in_request);
                    Ok::<_, Infallible>(answer)
                }
            });
            match transport {
                Transport::Plain => drive(stream, service, &slot, peer).await,
                Transport::Tls(config) => {
                    let handshake = tokio_rustls::TlsAcceptor::from(config).accept(stream);
                    match tokio::time::timeout(super::tls::HANDSHAKE_TIMEOUT, handshake).await {
                        Ok(Ok(tls)) => drive(tls, service, &slot, peer).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, %peer, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake not finished in time"),
                    }
                }
            }
        });
    }
    drop(listener);
    server.cancel();
    let drained = tokio::time::timeout(Duration::from_millis(DRAIN_TIMEOUT_MS), connections.emptied()).await;
    if drained.is_err() {
        tracing::warn!(timeout_ms = DRAIN_TIMEOUT_MS, "requests still in flight at shutdown were cut off");
    }
}

/// Serve one connection's requests until it ends, or until its slot is closed (evicted, or
/// the server stopping): then an idle connection closes at once, one in a request after
/// answering it.
async fn drive<IO, S>(io: IO, service: S, slot: &super::connections::Slot, peer: SocketAddr)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = Full<Bytes>> + Send,
    S::Future: Send,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let connection = http1::Builder::new()
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(HEADER_READ_TIMEOUT_MS))
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let mut closing = false;
    let ended = loop {
        tokio::select! {
            ended = connection.as_mut() => break ended,
            () = slot.close.cancelled(), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    };
    if let Err(e) = ended {
        tracing::debug!(error = %e, %peer, "connection ended with an error");
    }
}

async fn read_and_handle<H, F, A, T>(
    req: hyper::Request<hyper::body::Incoming>,
    peer: SocketAddr,
    budget: &BodyBudget,
    admit: A,
    handler: H,
) -> HttpResponse
where
    H: Fn(HttpRequest, T) -> F,
    F: Future<Output = HttpResponse>,
    A: Fn(&RequestParts) -> Admission<T>,
{
    let (parts, body) = req.into_parts();
    let (max_body_bytes, admitted) = match admit(&parts) {
        Ok(admitted) => admitted,
        Err(refusal) => return *refusal,
    };
    let declared =
        parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > max_body_bytes) {
        return too_large(max_body_bytes);
    }
    // The budget covers what has arrived, frame by frame (a slow sender holds only what it
    // sent), and a declared length up front.
    let mut share = budget.share();
    if declared.is_some_and(|len| !budget.cover(&mut share, len)) {
        return over_budget();
    }
    let read = read_body(body, max_body_bytes, budget, &mut share);
    let body = match tokio::time::timeout(Duration::from_millis(BODY_READ_TIMEOUT_MS), read).await {
        Err(_) => {
            return text(
                StatusCode::REQUEST_TIMEOUT,
                format!("request body not received within {BODY_READ_TIMEOUT_MS} ms"),
            );
        }
        Ok(Ok(body)) => body,
        Ok(Err(refusal)) => return refusal,
    };
    let request = HttpRequest {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        headers: parts.headers,
        body,
        peer,
    };
    handler(request, admitted).await
}

/// A body read whole, within `max_body_bytes` and the listener's budget.
async fn read_body(
    mut body: hyper::body::Incoming,
    max_body_bytes: usize,
    budget: &BodyBudget,
    share: &mut BodyShare,
) -> Result<Bytes, HttpResponse> {
    let mut collected = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| text(StatusCode::BAD_REQUEST, format!("could not read the request body: {e}")))?;
        let Ok(data) = frame.into_data() else { continue }; // trailers
        let read = collected.len() + data.len();
        if read > max_body_bytes {
            return Err(too_large(max_body_bytes));
        }
        if !budget.cover(share, read) {
            return Err(over_budget());
        }
        collected.extend_from_slice(&data);
    }
    Ok(collected.freeze())
}

fn over_budget() -> HttpResponse {
    text(StatusCode::SERVICE_UNAVAILABLE, "too many request bodies in flight on this node; retry")
}

fn too_large(max_body_bytes: usize) -> HttpResponse {
    text(StatusCode::PAYLOAD_TOO_LARGE, format!("request body is larger than {max_body_bytes} bytes"))
}

pub fn response(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> HttpResponse {
    let mut resp = hyper::Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    if let Ok(value) = header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    resp
}

pub fn text(status: StatusCode, body: impl Into<String>) -> HttpResponse {
    response(status, "text/plain;charset=UTF-8", body.into())
}

pub fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> HttpResponse {
    match serde_json::to_vec(value) {
        Ok(body) => response(status, "application/json;charset=UTF-8", body),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("could not encode the answer: {e}")),
    }
}

pub fn binary(status: StatusCode, body: Vec<u8>) -> HttpResponse {
    response(status, "application/octet-stream", body)
}

pub use hyper::Method as HttpMethod;
pub use hyper::StatusCode as Status;
