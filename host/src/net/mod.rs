//! HTTP plumbing shared by the client API and the Raft peer port: the only layer (with
//! `api`) that names `hyper`.

pub mod coalesce;
pub mod connections;
mod http;
pub mod peer_auth;
mod peer_client;
mod peer_server;
pub mod rpc;
pub mod tls;

pub use http::*;
pub use peer_client::PeerClient;
pub use peer_client::PeerError;
pub use peer_client::request_bytes;
pub use peer_client::request_text;
pub use peer_client::upload_with_progress;
pub use peer_server::serve_peers;
pub use rpc::Rpc;
