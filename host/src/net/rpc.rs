//! Typed peer RPCs. Each RPC is a type that names its path and the types that travel each
//! way; a caller sends with [`PeerClient::send`](super::PeerClient::send) and gets that RPC's
//! answer type back, and the peer port (`node::peer_port`) decodes the request type and
//! encodes the answer type of the same RPC. A path is written once, at its RPC; a request can
//! never be paired with another RPC's answer.
//!
//! Why a trait per RPC rather than one enum of requests and one of answers: with enums, the
//! pairing of a request with its answer would be a runtime match on both sides; here the
//! compiler keeps it.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// One peer RPC: `PATH` on the peer port, a postcard `Request`, a postcard `Answer`.
pub trait Rpc {
    /// The path on the peer port. Unique among RPCs (the peer port's table checks it in a test).
    const PATH: &'static str;
    type Request: Serialize + DeserializeOwned + Send + Sync;
    type Answer: Serialize + DeserializeOwned + Send;
}

/// Decode `body` as `R`'s request, run `serve` on it, encode its answer: the server side of
/// one RPC. `Err` is a refusal (malformed, or refused by `serve`), which the peer port
/// answers with 400 and its text.
pub async fn serve<R: Rpc, F>(body: &[u8], serve: impl FnOnce(R::Request) -> F) -> Result<Vec<u8>, String>
where
    F: Future<Output = Result<R::Answer, String>>,
{
    let request: R::Request = postcard::from_bytes(body).map_err(|e| format!("malformed {}: {e}", R::PATH))?;
    let answer = serve(request).await?;
    Ok(postcard::to_stdvec(&answer).expect("peer answers always serialize"))
}
