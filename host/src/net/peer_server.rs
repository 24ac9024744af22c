//! The server side of the peer port's transport: every request authenticated
//! ([`PeerKey::admit`] on its head, [`PeerKey::accept`] on its body) before its handler sees
//! it, and every answer signed for the request it answers.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use tokio::net::TcpListener;

use super::HttpRequest;
use super::HttpResponse;
use super::Status;
use super::peer_auth::PeerKey;
use crate::clock::now_ms;

/// Serve peers on `listener` until `stop` resolves. `handler` answers an authenticated request
/// with its body (200) or a refusal (400, as text); requests of strangers are answered 401
/// from their head, bodies of at most `max_body_bytes` are read.
pub async fn serve_peers<H, F>(
    listener: TcpListener,
    key: Arc<PeerKey>,
    limits: super::ServerLimits,
    max_body_bytes: usize,
    stop: impl Future<Output = ()>,
    handler: H,
) where
    H: Fn(HttpRequest) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Vec<u8>, String>> + Send + 'static,
{
    let admitting = key.clone();
    let refusals = Arc::new(RefusalLog::default());
    let admit = move |parts: &super::RequestParts| match admitting.admit(
        parts.method.as_str(),
        parts.uri.path(),
        &parts.headers,
        now_ms(),
    ) {
        Ok(admitted) => Ok((max_body_bytes, admitted)),
        Err(why) => {
            refusals.note(parts.uri.path(), &why);
            Err(Box::new(super::text(Status::UNAUTHORIZED, why)))
        }
    };
    // Peers authenticate every message themselves (`peer_auth`); no TLS here yet.
    super::serve(listener, super::Transport::Plain, limits, admit, stop, move |req: HttpRequest, admitted| {
        let (key, handler) = (key.clone(), handler.clone());
        async move {
            if let Err((why, retry)) = key.accept(&admitted, &req.body, now_ms()) {
                let status = if retry { Status::SERVICE_UNAVAILABLE } else { Status::UNAUTHORIZED };
                return super::text(status, why);
            }
            let (status, content_type, body) = match handler(req).await {
                Ok(body) => (Status::OK, "application/octet-stream", body),
                Err(refusal) => (Status::BAD_REQUEST, "text/plain;charset=UTF-8", refusal.into_bytes()),
            };
            signed(&key, &admitted.nonce, status, content_type, body)
        }
    })
    .await
}

/// How often refused peer requests are reported in the log at most: a stranger knocking
/// should be seen by the operator, but must not flood the log.
pub const REFUSAL_LOG_INTERVAL_MS: u64 = 10_000;

/// Refused peer requests, reported at most once per [`REFUSAL_LOG_INTERVAL_MS`].
#[derive(Default)]
struct RefusalLog {
    /// When the last report was written, and the refusals since.
    state: std::sync::Mutex<(u64, u64)>,
}

impl RefusalLog {
    fn note(&self, path: &str, why: &str) {
        let now = now_ms();
        let mut state = self.state.lock().expect("refusal log lock");
        state.1 += 1;
        if now.saturating_sub(state.0) >= REFUSAL_LOG_INTERVAL_MS {
            tracing::warn!(
                path,
                why,
                refused = state.1,
                "refused a peer request: is a node of another cluster (or without this cluster's secret) reaching this one?"
            );
            *state = (now, 0);
        }
    }
}

fn signed(key: &PeerKey, nonce: &str, status: Status, content_type: &str, body: Vec<u8>) -> HttpResponse {
    let mut response = hyper::Response::new(Full::new(Bytes::new()));
    for (name, value) in key.sign_answer(nonce, status.as_u16(), &body) {
        let value = hyper::header::HeaderValue::from_str(&value).expect("hex is a header value");
        response.headers_mut().insert(name, value);
    }
    let content_type = hyper::header::HeaderValue::from_str(content_type).expect("a static content type");
    response.headers_mut().insert(hyper::header::CONTENT_TYPE, content_type);
    *response.status_mut() = status;
    *response.body_mut() = Full::new(Bytes::from(body));
    response
}
