//! A minimal blocking HTTP/1.1 client for tests: one connection per request, bounded by a
//! timeout, so a test never hangs on a dead node.

use std::collections::BTreeMap;
use std::io::Read;
use std::io::Write;
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::Duration;

/// Most a test waits for one response.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// Send one request; `Err` when the node cannot be reached or does not answer in time.
pub fn request(
    method: &str,
    addr: &str,
    path_and_query: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> std::io::Result<Response> {
    let headers: Vec<(&str, &str)> = content_type.map(|ct| ("Content-Type", ct)).into_iter().collect();
    request_with_headers(method, addr, path_and_query, &headers, body)
}

/// [`request`] with any headers (`Content-Length` and `Connection` are added).
pub fn request_with_headers(
    method: &str,
    addr: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    exchange(method, addr, path_and_query, headers, body, REQUEST_TIMEOUT).map_err(Failure::into_io)
}

/// The access token each node address accepts: a test cluster's administrator signs in once
/// ([`super::cluster::bootstrap_admin`]) and every request of the harness then carries it, as a
/// client configured with credentials does. A request that sets its own `Authorization`, or
/// goes through [`anonymous`], carries none.
static TOKENS: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

/// The token remembered last: the running cluster's (one cluster at a time per binary).
static LATEST_TOKEN: Mutex<Option<String>> = Mutex::new(None);

/// Requests to `addr` carry `token` from now on.
pub fn remember_token(addr: &str, token: &str) {
    TOKENS.lock().unwrap_or_else(|p| p.into_inner()).insert(addr.to_string(), token.to_string());
    *LATEST_TOKEN.lock().unwrap_or_else(|p| p.into_inner()) = Some(token.to_string());
}

/// The running cluster's token, for a command-line client (`NACRE_ACCESS_TOKEN`).
pub fn latest_token() -> String {
    LATEST_TOKEN.lock().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or_default()
}

/// The token requests to `addr` carry.
pub fn token_for(addr: &str) -> Option<String> {
    TOKENS.lock().unwrap_or_else(|p| p.into_inner()).get(addr).cloned()
}

/// One request with no credentials at all, whatever the harness holds for `addr`.
pub fn anonymous(
    method: &str,
    addr: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    send(method, addr, path_and_query, headers, body, REQUEST_TIMEOUT, None).map_err(Failure::into_io)
}

/// Why an [`exchange`] has no response. A request that was not sent had no effect; one that
/// was sent and got no answer may have had any.
#[derive(Debug)]
pub enum Failure {
    /// The connection could not be made: nothing reached the server.
    NotSent(std::io::Error),
    /// The request was (at least partly) sent; no complete answer came back in time.
    NoAnswer(std::io::Error),
}

impl Failure {
    /// The I/O error, whether or not the request left.
    pub fn into_io(self) -> std::io::Error {
        match self {
            Failure::NotSent(e) | Failure::NoAnswer(e) => e,
        }
    }
}

/// One request with its own timeout, telling a request that never left from one whose fate
/// is unknown (what a history checker must know).
pub fn exchange(
    method: &str,
    addr: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<Response, Failure> {
    let own = headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("Authorization"));
    let token = if own { None } else { token_for(addr) };
    send(method, addr, path_and_query, headers, body, timeout, token.as_deref())
}

fn send(
    method: &str,
    addr: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
    bearer: Option<&str>,
) -> Result<Response, Failure> {
    // A host name (`localhost:port`) resolves to its first address; nodes bind 127.0.0.1.
    let socket = std::net::ToSocketAddrs::to_socket_addrs(addr)
        .map_err(Failure::NotSent)?
        .find(std::net::SocketAddr::is_ipv4)
        .expect("test addresses resolve to an IPv4 address");
    let mut stream = TcpStream::connect_timeout(&socket, timeout).map_err(Failure::NotSent)?;
    let no_answer = Failure::NoAnswer;
    stream.set_read_timeout(Some(timeout)).map_err(no_answer)?;
    stream.set_write_timeout(Some(timeout)).map_err(no_answer)?;
    let mut head = format!(
        "{method} {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(token) = bearer {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).map_err(no_answer)?;
    // A server may answer early (413 from the declared length) and stop reading: like curl,
    // read its answer even when the rest of the body could not be sent.
    let sent = stream.write_all(body);
    let mut raw = Vec::new();
    if let Err(e) = sent {
        return match stream.read_to_end(&mut raw) {
            Ok(_) if !raw.is_empty() => parse(&raw).map_err(no_answer),
            _ => Err(no_answer(e)),
        };
    }
    stream.read_to_end(&mut raw).map_err(no_answer)?;
    parse(&raw).map_err(no_answer)
}

fn parse(raw: &[u8]) -> std::io::Result<Response> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| bad("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or_else(|| bad("no status line"))?;
    let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad("bad status"))?;
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':').map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))).collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body).ok_or_else(|| bad("bad chunked body"))?;
    }
    Ok(Response { status, headers, body })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&data[..line_end]).ok()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// Percent-encode a form or query value.
pub fn encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&")
}
