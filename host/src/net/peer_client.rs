//! The client for node-to-node calls: postcard bodies over pooled HTTP/1.1 keep-alive
//! connections, each call bounded by a timeout.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::HttpMethod;
use super::Rpc;
use super::coalesce::Coalescer;
use super::peer_auth::PeerKey;
use crate::clock::now_ms;

/// Largest response body a peer may send (a snapshot reply is small; entries flow the other way).
const MAX_PEER_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// A pooled HTTP client for peer traffic, shared by every peer connection of this node. Its
/// peer RPCs are signed with the cluster's key and their answers checked against it
/// (`net::peer_auth`); its other requests (health probes, the command line) are plain.
#[derive(Clone)]
pub struct PeerClient {
    http: Client<HttpConnector, Full<Bytes>>,
    key: Arc<PeerKey>,
    /// Peer address → the address actually dialled for it (`--peer-via`): lets a test put a
    /// fault-injecting proxy on each link while members keep their identities.
    routes: Arc<BTreeMap<String, String>>,
    /// The queues of [`PeerClient::call_coalesced`].
    coalescer: Arc<Coalescer>,
}

impl Default for PeerClient {
    /// A client for plain requests: its key is of a secret nobody holds, so a peer RPC sent
    /// with it is refused.
    fn default() -> Self {
        let key = PeerKey::new(&super::peer_auth::ClusterSecret::generate(), "", 0);
        Self::new(Arc::new(key), BTreeMap::new())
    }
}

/// Why a peer call failed, in the terms openraft and the forwarding layer need.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PeerError {
    #[error("peer {addr} unreachable: {reason}")]
    Unreachable { addr: String, reason: String },
    #[error("peer {addr} did not answer within {timeout_ms} ms")]
    Timeout { addr: String, timeout_ms: u128 },
    #[error("peer {addr}: {reason}")]
    Protocol { addr: String, reason: String },
}

impl PeerClient {
    /// A client whose peer RPCs are signed with `key`, reaching peers through `routes`.
    pub fn new(key: Arc<PeerKey>, routes: BTreeMap<String, String>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(1)));
        PeerClient {
            http: Client::builder(TokioExecutor::new()).build(connector),
            key,
            routes: Arc::new(routes),
            coalescer: Arc::default(),
        }
    }

    /// This client's connections without its queues: what a queue's own task sends batches
    /// with (holding the queues there would keep them, and the task, alive forever).
    pub(super) fn detached(&self) -> PeerClient {
        PeerClient {
            http: self.http.clone(),
            key: self.key.clone(),
            routes: self.routes.clone(),
            coalescer: Arc::default(),
        }
    }

    /// Where to connect to reach the peer at `addr`.
    fn dial(&self, addr: &str) -> String {
        self.routes.get(addr).cloned().unwrap_or_else(|| addr.to_string())
    }

    /// Call the peer RPC `R` at `addr` and decode its answer, within `timeout`.
    pub async fn send<R: Rpc>(&self, addr: &str, req: &R::Request, timeout: Duration) -> Result<R::Answer, PeerError> {
        self.call(addr, R::PATH, req, timeout).await
    }

    /// [`PeerClient::send`], carried in one request with the other calls of `R` to `addr`
    /// waiting at that moment (`net::coalesce`).
    pub async fn send_coalesced<R: Rpc>(
        &self,
        addr: &str,
        req: &R::Request,
        timeout: Duration,
    ) -> Result<R::Answer, PeerError> {
        self.call_coalesced(addr, R::PATH, req, timeout).await
    }

    /// POST `req` to `http://{addr}{path}` and decode the answer, within `timeout`.
    pub(super) async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerError> {
        let body = encode_call(addr, req)?;
        let (signed, nonce) = self.key.sign_request("POST", path, addr, &body, now_ms());
        let mut request = hyper::Request::post(format!("http://{}{path}", self.dial(addr)))
            .header(hyper::header::CONTENT_TYPE, "application/octet-stream");
        for (name, value) in signed {
            request = request.header(name, value);
        }
        let request = request.body(Full::new(Bytes::from(body))).map_err(|e| protocol(addr, e.to_string()))?;
        let exchange = async {
            let (status, headers, body) = self.exchange_with_headers(addr, request).await?;
            // A refusal from the head (a stranger's key, a stale clock) is not signed: the
            // peer could not tell which request it answers.
            if status == hyper::StatusCode::UNAUTHORIZED {
                return Err(protocol(addr, format!("refused as a peer: {}", String::from_utf8_lossy(&body))));
            }
            self.key
                .check_answer(&nonce, status.as_u16(), &headers, &body)
                .map_err(|why| protocol(addr, format!("not a member of this cluster answered: {why}")))?;
            if !status.is_success() {
                return Err(protocol(addr, format!("HTTP {status}: {}", String::from_utf8_lossy(&body))));
            }
            decode_answer(addr, &body)
        };
        within(addr, timeout, exchange).await
    }

    /// [`PeerClient::call`], carried in one request with the other calls to the same `addr`
    /// and `path` waiting at that moment (`net::coalesce`). The peer must serve
    /// [`BATCH_PATH`](super::coalesce::BATCH_PATH).
    pub(super) async fn call_coalesced<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerError> {
        let body = encode_call(addr, req)?;
        let answer = within(addr, timeout, self.coalescer.submit(self, addr, path, body, timeout)).await?;
        decode_answer(addr, &answer)
    }
}

fn protocol(addr: &str, reason: String) -> PeerError {
    PeerError::Protocol { addr: addr.to_string(), reason }
}

fn encode_call<Req: Serialize>(addr: &str, req: &Req) -> Result<Vec<u8>, PeerError> {
    postcard::to_stdvec(req).map_err(|e| protocol(addr, e.to_string()))
}

fn decode_answer<Resp: DeserializeOwned>(addr: &str, body: &[u8]) -> Result<Resp, PeerError> {
    postcard::from_bytes(body).map_err(|e| protocol(addr, e.to_string()))
}

impl PeerClient {
    /// Send `request` and read the whole (bounded) answer, headers included; errors name `addr`.
    async fn exchange_with_headers(
        &self,
        addr: &str,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<(hyper::StatusCode, hyper::HeaderMap, Bytes), PeerError> {
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| PeerError::Unreachable { addr: addr.to_string(), reason: e.to_string() })?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = http_body_util::Limited::new(response.into_body(), MAX_PEER_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| PeerError::Protocol { addr: addr.to_string(), reason: e.to_string() })?
            .to_bytes();
        Ok((status, headers, body))
    }
}

impl PeerClient {
    /// GET `url` and return only its status code, or `None` when there is no answer within
    /// `timeout` (health probes: the body does not matter).
    pub async fn status_of(&self, url: &str, timeout: Duration) -> Option<u16> {
        let request = hyper::Request::get(url).body(Full::new(Bytes::new())).ok()?;
        let exchange = async { self.http.request(request).await.ok().map(|response| response.status().as_u16()) };
        tokio::time::timeout(timeout, exchange).await.ok().flatten()
    }
}

/// Bytes sent between progress reports of an upload.
const UPLOAD_CHUNK_BYTES: usize = 256 * 1024;

/// A client of the client port for the command-line tools: `http://` as it is, `https://`
/// checked with `tls` (`net::tls::client_config`).
fn admin_client<B>(tls: &Arc<rustls::ClientConfig>) -> Client<hyper_rustls::HttpsConnector<HttpConnector>, B>
where
    B: hyper::body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((**tls).clone())
        .https_or_http()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(connector)
}

/// One request of a command-line tool to `url` (`http://` or `https://`), with `Authorization:
/// Bearer <bearer>` and a form body when given: the status and the body as text.
pub async fn request_text(
    tls: &Arc<rustls::ClientConfig>,
    method: HttpMethod,
    url: &str,
    bearer: Option<&str>,
    form: Option<String>,
    timeout: Duration,
) -> Result<(u16, String), PeerError> {
    let (status, body) = request_bytes(tls, method, url, bearer, form, timeout, MAX_PEER_RESPONSE_BYTES).await?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// [`request_text`], with the answer's bytes as they came (a backup), at most `max_bytes`.
pub async fn request_bytes(
    tls: &Arc<rustls::ClientConfig>,
    method: HttpMethod,
    url: &str,
    bearer: Option<&str>,
    form: Option<String>,
    timeout: Duration,
    max_bytes: usize,
) -> Result<(u16, Bytes), PeerError> {
    let mut request = hyper::Request::builder().method(method).uri(url);
    if let Some(token) = bearer {
        request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if form.is_some() {
        request = request.header(hyper::header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    let request =
        request.body(Full::new(Bytes::from(form.unwrap_or_default()))).map_err(|e| protocol(url, e.to_string()))?;
    let client = admin_client(tls);
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| PeerError::Unreachable { addr: url.to_string(), reason: format!("{e:?}") })?;
        status_and_bytes(url, response, max_bytes).await
    };
    within(url, timeout, exchange).await
}

/// POST `body` to `url` in chunks, calling `progress(sent, total)` as each chunk is handed to
/// the connection, and return the status and text of the answer (admin uploads of modules).
pub async fn upload_with_progress(
    tls: &Arc<rustls::ClientConfig>,
    url: &str,
    body: Bytes,
    bearer: Option<&str>,
    timeout: Duration,
    progress: impl Fn(usize, usize) + Send + Sync + 'static,
) -> Result<(u16, String), PeerError> {
    use http_body_util::StreamBody;
    use http_body_util::combinators::BoxBody;
    use hyper::body::Frame;

    let total = body.len();
    let chunks: Vec<Bytes> = (0..total)
        .step_by(UPLOAD_CHUNK_BYTES)
        .map(|start| body.slice(start..total.min(start + UPLOAD_CHUNK_BYTES)))
        .collect();
    let mut sent = 0;
    let frames = futures_util::stream::iter(chunks.into_iter().map(move |chunk| {
        sent += chunk.len();
        progress(sent, total);
        Ok::<_, std::convert::Infallible>(Frame::data(chunk))
    }));
    let client: Client<_, BoxBody<Bytes, std::convert::Infallible>> = admin_client(tls);
    let mut request = hyper::Request::post(url)
        .header(hyper::header::CONTENT_TYPE, "application/wasm")
        .header(hyper::header::CONTENT_LENGTH, total);
    if let Some(token) = bearer {
        request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request.body(BoxBody::new(StreamBody::new(frames))).map_err(|e| protocol(url, e.to_string()))?;
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| PeerError::Unreachable { addr: url.to_string(), reason: e.to_string() })?;
        let (status, body) = status_and_bytes(url, response, MAX_PEER_RESPONSE_BYTES).await?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    };
    within(url, timeout, exchange).await
}

/// A response's status and its body as text (bounded; invalid UTF-8 replaced).
async fn status_and_bytes(
    url: &str,
    response: hyper::Response<hyper::body::Incoming>,
    max_bytes: usize,
) -> Result<(u16, Bytes), PeerError> {
    let status = response.status().as_u16();
    let body = http_body_util::Limited::new(response.into_body(), max_bytes)
        .collect()
        .await
        .map_err(|e| PeerError::Protocol { addr: url.to_string(), reason: e.to_string() })?
        .to_bytes();
    Ok((status, body))
}

/// `exchange`'s outcome, or a timeout error naming `addr` when it takes longer than `timeout`.
async fn within<T>(
    addr: &str,
    timeout: Duration,
    exchange: impl std::future::Future<Output = Result<T, PeerError>>,
) -> Result<T, PeerError> {
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| PeerError::Timeout { addr: addr.to_string(), timeout_ms: timeout.as_millis() })?
}
