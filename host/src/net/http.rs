//! A small HTTP/1.1 server loop over hyper: every request's body is read up front, bounded,
//! and handed to a handler as a plain [`HttpRequest`].

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
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

/// Connections one listener serves at once; past it, accepting waits (back-pressure). Sized
/// for many held long-polls, each on its own connection.
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

/// Accept connections until `stop` resolves, answering each request with `handler`; then
/// stop accepting, let every request in flight finish (idle keep-alive connections close at
/// once) for at most [`DRAIN_TIMEOUT_MS`], and return. Each request's head goes through
/// `admit` first: a refused request is answered with its refusal and its body is never read;
/// an admitted one's body over its limit is answered with 413 without reaching the handler,
/// and without being read past that limit.
pub async fn serve<H, F, A, T>(listener: TcpListener, admit: A, stop: impl Future<Output = ()>, handler: H)
where
    H: Fn(HttpRequest, T) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = HttpResponse> + Send + 'static,
    A: Fn(&RequestParts) -> Admission<T> + Clone + Send + Sync + 'static,
    T: Send + 'static,
{
    let connections = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut stop => break,
        };
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
        let _ = stream.set_nodelay(true);
        let (handler, admit) = (handler.clone(), admit.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let (handler, admit) = (handler.clone(), admit.clone());
                async move { Ok::<_, Infallible>(read_and_handle(req, peer, admit, handler).await) }
            });
            let connection = http1::Builder::new()
                .keep_alive(true)
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_millis(HEADER_READ_TIMEOUT_MS))
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    let drained = tokio::time::timeout(Duration::from_millis(DRAIN_TIMEOUT_MS), graceful.shutdown()).await;
    if drained.is_err() {
        tracing::warn!(timeout_ms = DRAIN_TIMEOUT_MS, "requests still in flight at shutdown were cut off");
    }
}

async fn read_and_handle<H, F, A, T>(
    req: hyper::Request<hyper::body::Incoming>,
    peer: SocketAddr,
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
    let read = http_body_util::Limited::new(body, max_body_bytes).collect();
    let body = match tokio::time::timeout(Duration::from_millis(BODY_READ_TIMEOUT_MS), read).await {
        Err(_) => {
            return text(
                StatusCode::REQUEST_TIMEOUT,
                format!("request body not received within {BODY_READ_TIMEOUT_MS} ms"),
            );
        }
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return too_large(max_body_bytes);
        }
        Ok(Err(e)) => return text(StatusCode::BAD_REQUEST, format!("could not read the request body: {e}")),
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
