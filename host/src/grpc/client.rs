//! A Nacos 2.x gRPC client, doing what a real client does: one HTTP/2 connection, the
//! bi-stream opened with `ConnectionSetupRequest`, unary requests with the token in the
//! metadata, server pushes read off the stream (each acked, as clients must) and handed to
//! whoever waits for them. The node never uses it; `nacre-bench` and the tests do, to drive the
//! port with the same messages the node speaks (`wire`).

use std::time::Duration;
use std::time::Instant;

use anyhow::Context;
use anyhow::Result;
use anyhow::bail;
use serde_json::Value;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::http::uri::PathAndQuery;

use super::wire;
use super::wire::Inbound;
use super::wire::Payload;

/// Pushes kept for a reader before more are dropped.
const PUSH_BACKLOG: usize = 1_024;
/// Messages the client queues on its stream (setup, acks).
const STREAM_BACKLOG: usize = 64;
/// How long the setup may take to be registered (the node answers 301 until it is).
const SETUP_TIMEOUT: Duration = Duration::from_secs(5);
const SETUP_POLL: Duration = Duration::from_millis(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

const UNARY: &str = "/Request/request";
const BI_STREAM: &str = "/BiRequestStream/requestBiStream";

/// A server push and when it was read.
pub struct Push {
    pub at: Instant,
    pub message: Inbound,
}

/// One connection to one node's gRPC port.
pub struct GrpcClient {
    addr: String,
    client: tonic::client::Grpc<tonic::transport::Channel>,
    token: Option<String>,
    /// Server pushes, acked already; empty until [`GrpcClient::set_up`].
    pub pushes: mpsc::Receiver<Push>,
    stream: Option<mpsc::Sender<Payload>>,
    /// Reads the stream and acks pushes; stopped with the client, which ends the stream and
    /// so the connection.
    reader: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for GrpcClient {
    fn drop(&mut self) {
        if let Some(reader) = self.reader.take() {
            reader.abort();
        }
    }
}

fn codec() -> tonic_prost::ProstCodec<Payload, Payload> {
    tonic_prost::ProstCodec::default()
}

/// A payload as clients send it: the type, headers in the metadata, the JSON body.
pub fn payload(kind: &str, headers: &[(&str, &str)], body: Value) -> Payload {
    Payload {
        metadata: Some(wire::Metadata {
            r#type: kind.to_string(),
            client_ip: "127.0.0.1".to_string(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }),
        body: Some(wire::Any { type_url: String::new(), value: body.to_string().into_bytes() }),
    }
}

impl GrpcClient {
    /// Open a transport to the gRPC port at `addr` (not set up yet); requests carry `token`.
    pub async fn open(addr: &str, token: Option<String>) -> Result<GrpcClient> {
        GrpcClient::dial(addr, token, None).await
    }

    /// [`GrpcClient::open`] over TLS, trusting the certificates in `ca_pem`.
    pub async fn open_tls(addr: &str, token: Option<String>, ca_pem: &[u8]) -> Result<GrpcClient> {
        let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(ca_pem))
            .domain_name(host);
        GrpcClient::dial(addr, token, Some(tls)).await
    }

    async fn dial(
        addr: &str,
        token: Option<String>,
        tls: Option<tonic::transport::ClientTlsConfig>,
    ) -> Result<GrpcClient> {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut endpoint = tonic::transport::Endpoint::from_shared(format!("{scheme}://{addr}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        if let Some(tls) = tls {
            endpoint = endpoint.tls_config(tls)?;
        }
        let channel = endpoint.connect().await.with_context(|| format!("gRPC connect {addr}"))?;
        let (_, pushes) = mpsc::channel(1);
        Ok(GrpcClient {
            addr: addr.to_string(),
            client: tonic::client::Grpc::new(channel),
            token,
            pushes,
            stream: None,
            reader: None,
        })
    }

    /// Open and set up, as a naming or config client does.
    pub async fn connect(addr: &str, token: Option<String>) -> Result<GrpcClient> {
        let mut client = GrpcClient::open(addr, token).await?;
        client.set_up().await?;
        Ok(client)
    }

    /// Open the bi-stream with `ConnectionSetupRequest` and wait until the node registered it.
    pub async fn set_up(&mut self) -> Result<()> {
        let (outbound, to_server) = mpsc::channel::<Payload>(STREAM_BACKLOG);
        let setup = json!({
            "clientVersion": "nacre-grpc-client",
            "tenant": "",
            "labels": { "source": "sdk", "module": "naming" },
        });
        outbound.send(payload("ConnectionSetupRequest", &[], setup)).await?;
        self.client.ready().await.context("gRPC channel")?;
        let stream = self
            .client
            .streaming(
                tonic::Request::new(ReceiverStream::new(to_server)),
                PathAndQuery::from_static(BI_STREAM),
                codec(),
            )
            .await
            .context("opening the bi-stream")?;
        let mut from_server = stream.into_inner();
        let (pushed, pushes) = mpsc::channel(PUSH_BACKLOG);
        let acks = outbound.clone();
        let reader = tokio::spawn(async move {
            while let Ok(Some(message)) = from_server.message().await {
                let at = Instant::now();
                let Ok(message) = Inbound::decode(&message) else { continue };
                let ack = payload(
                    &message.kind.replace("Request", "Response"),
                    &[],
                    json!({ "requestId": message.request_id(), "resultCode": 200, "errorCode": 0, "success": true }),
                );
                if acks.send(ack).await.is_err() {
                    return;
                }
                let _ = pushed.try_send(Push { at, message });
            }
        });
        self.pushes = pushes;
        self.stream = Some(outbound);
        self.reader = Some(reader);
        let deadline = Instant::now() + SETUP_TIMEOUT;
        while self.request("HealthCheckRequest", json!({})).await.is_err() {
            if Instant::now() >= deadline {
                bail!("gRPC connection to {} not set up within {SETUP_TIMEOUT:?}", self.addr);
            }
            tokio::time::sleep(SETUP_POLL).await;
        }
        Ok(())
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// One unary request of `kind` with `body` (and the token): the response, whatever it says.
    pub async fn call(&mut self, kind: &str, body: Value) -> Result<Inbound> {
        let headers: Vec<(&str, &str)> = self.token.iter().map(|t| ("accessToken", t.as_str())).collect();
        self.send(payload(kind, &headers, body)).await
    }

    /// One unary request as given.
    pub async fn send(&mut self, payload: Payload) -> Result<Inbound> {
        self.client.ready().await.context("gRPC channel")?;
        let response =
            self.client.unary(tonic::Request::new(payload), PathAndQuery::from_static(UNARY), codec()).await?;
        Inbound::decode(&response.into_inner()).map_err(anyhow::Error::msg)
    }

    /// One unary request; its response body, or an error with the node's answer.
    pub async fn request(&mut self, kind: &str, body: Value) -> Result<Value> {
        let answer = self.call(kind, body).await?;
        if answer.field("resultCode").and_then(Value::as_u64) != Some(200) {
            bail!("{kind} to {}: {} {}", self.addr, answer.kind, Value::Object(answer.body));
        }
        Ok(Value::Object(answer.body))
    }
}
