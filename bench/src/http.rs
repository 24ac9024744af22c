//! HTTP/1.1 keep-alive client connections over hyper, the one transport for both systems
//! (Nacre's Nacos API, etcd's v3 JSON gateway).

use std::time::Duration;

use anyhow::Context;
use anyhow::Result;
use anyhow::bail;
use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::Full;
use hyper::HeaderMap;
use hyper::Method;
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Longest a single benchmark request may take before the round fails.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub type Req = Request<Full<Bytes>>;

/// One keep-alive connection to one node.
pub struct Conn {
    addr: String,
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    pub async fn connect(addr: &str) -> Result<Conn> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .with_context(|| format!("connect {addr}: timeout"))?
            .with_context(|| format!("connect {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn { addr: addr.to_string(), sender })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends one request and reads the whole answer.
    pub async fn send(&mut self, req: Req, timeout: Duration) -> Result<(u16, Bytes)> {
        let (status, _, body) = self.send_with_headers(req, timeout).await?;
        Ok((status, body))
    }

    /// Sends one request and reads the whole answer, headers included (`x-nacre-module`).
    pub async fn send_with_headers(&mut self, req: Req, timeout: Duration) -> Result<(u16, HeaderMap, Bytes)> {
        let fut = async {
            self.sender.ready().await?;
            let resp = self.sender.send_request(req).await?;
            let status = resp.status().as_u16();
            let (parts, body) = resp.into_parts();
            let body = body.collect().await?.to_bytes();
            anyhow::Ok((status, parts.headers, body))
        };
        tokio::time::timeout(timeout, fut).await.context("request timed out")?
    }

    /// Sends one request and returns the status and the streaming body (etcd watch).
    pub async fn send_streaming(&mut self, req: Req) -> Result<(u16, hyper::body::Incoming)> {
        let fut = async {
            self.sender.ready().await?;
            let resp = self.sender.send_request(req).await?;
            anyhow::Ok((resp.status().as_u16(), resp.into_body()))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, fut).await.context("request timed out")?
    }
}

/// The access token each Nacre node accepts: the bench signs in as the cluster's
/// administrator once and every request carries the token, as a configured client's does.
static TOKENS: std::sync::RwLock<std::collections::BTreeMap<String, String>> =
    std::sync::RwLock::new(std::collections::BTreeMap::new());

/// Requests to `addr` carry `token` from now on.
pub fn sign_in(addr: &str, token: &str) {
    TOKENS.write().unwrap_or_else(|p| p.into_inner()).insert(addr.to_string(), token.to_string());
}

/// The token requests to `addr` carry, once signed in.
pub fn token(addr: &str) -> Option<String> {
    TOKENS.read().unwrap_or_else(|p| p.into_inner()).get(addr).cloned()
}

fn builder(method: Method, addr: &str, path: &str) -> hyper::http::request::Builder {
    let builder = Request::builder().method(method).uri(path).header(hyper::header::HOST, addr);
    match TOKENS.read().unwrap_or_else(|p| p.into_inner()).get(addr) {
        Some(token) => builder.header(hyper::header::AUTHORIZATION, format!("Bearer {token}")),
        None => builder,
    }
}

pub fn get(addr: &str, path: &str) -> Req {
    builder(Method::GET, addr, path).body(Full::new(Bytes::new())).expect("valid request")
}

/// A GET that asks Nacre for a linearizable read (ReadIndex through the leader).
pub fn get_linearizable(addr: &str, path: &str) -> Req {
    builder(Method::GET, addr, path)
        .header("X-Nacre-Consistency", "linearizable")
        .body(Full::new(Bytes::new()))
        .expect("valid request")
}

/// A PUT with its parameters in the query (a heartbeat).
pub fn put(addr: &str, path: &str) -> Req {
    builder(Method::PUT, addr, path).body(Full::new(Bytes::new())).expect("valid request")
}

pub fn delete(addr: &str, path: &str) -> Req {
    builder(Method::DELETE, addr, path).body(Full::new(Bytes::new())).expect("valid request")
}

pub fn post_form(addr: &str, path: &str, pairs: &[(&str, &str)]) -> Req {
    let body = form(pairs);
    builder(Method::POST, addr, path)
        .header(hyper::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(body)))
        .expect("valid request")
}

pub fn post_json(addr: &str, path: &str, body: &serde_json::Value) -> Req {
    builder(Method::POST, addr, path)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("valid request")
}

/// A POST of raw bytes (a module upload).
pub fn post_bytes(addr: &str, path: &str, body: &[u8]) -> Req {
    builder(Method::POST, addr, path)
        .header(hyper::header::CONTENT_TYPE, "application/wasm")
        .body(Full::new(Bytes::copy_from_slice(body)))
        .expect("valid request")
}

pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    ser.finish()
}

/// One GET on a fresh connection (probes, state).
pub async fn get_once(addr: &str, path: &str) -> Result<(u16, String)> {
    let mut conn = Conn::connect(addr).await?;
    let (status, body) = conn.send(get(addr, path), CONNECT_TIMEOUT).await?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Sends and requires a 200.
pub async fn expect_ok(conn: &mut Conn, req: Req) -> Result<Bytes> {
    let (status, body) = conn.send(req, REQUEST_TIMEOUT).await?;
    if status != 200 {
        bail!("HTTP {status} from {}: {}", conn.addr(), String::from_utf8_lossy(&body));
    }
    Ok(body)
}
