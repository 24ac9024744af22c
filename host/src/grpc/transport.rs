//! The gRPC port's transports: accepted TCP connections, over TLS when the node serves its
//! client port over TLS (the same certificate, with ALPN `h2`: a token must not cross the
//! network in clear on one port when the operator protected the other), each tracked as a
//! connection of the table (`connections`).
//!
//! TLS handshakes run on tasks of their own, bounded by `net::tls::HANDSHAKE_TIMEOUT`, so a
//! client that connects and says nothing never holds up the accept loop.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Context;
use std::task::Poll;
use std::time::Duration;

use tokio::io::AsyncRead;
use tokio::io::AsyncWrite;
use tokio::io::ReadBuf;
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::connections::Connection;
use super::connections::Connections;

/// Pause after a failed accept (out of descriptors, say) before the next one.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// Transports accepted (and handshaken) that tonic has not taken yet.
const ACCEPT_BACKLOG: usize = 128;

/// The bytes of one transport, in clear or TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// Accepted transports as tonic takes them, each tracked as a connection; past the table's
/// cap a transport is closed at once (the client tries the next server). Accepting stops when
/// the server stops taking them.
pub fn incoming(
    table: Arc<Connections>,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> impl futures_util::Stream<Item = Result<Tracked, std::io::Error>> {
    let (ready, transports) = mpsc::channel(ACCEPT_BACKLOG);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    tokio::spawn(accept(table, listener, acceptor, ready));
    futures_util::StreamExt::map(ReceiverStream::new(transports), Ok)
}

async fn accept(
    table: Arc<Connections>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    ready: mpsc::Sender<Tracked>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = ready.closed() => return,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "gRPC accept failed; retrying");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        let Some(connection) = table.open(remote) else {
            tracing::warn!(%remote, limit = table.cap(), "gRPC connection refused: too many connections");
            continue;
        };
        let _ = stream.set_nodelay(true);
        match &tls {
            None => {
                if ready.send(Tracked::new(Stream::Plain(stream), connection, table.clone())).await.is_err() {
                    return;
                }
            }
            Some(acceptor) => {
                let (acceptor, ready, table) = (acceptor.clone(), ready.clone(), table.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(crate::net::tls::HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = ready.send(Tracked::new(Stream::Tls(Box::new(tls)), connection, table)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%remote, error = %e, "gRPC TLS handshake failed");
                            table.release(&connection);
                        }
                        Err(_) => table.release(&connection),
                    }
                });
            }
        }
    }
}

/// An accepted transport that knows its connection: it names the connection to every call
/// on it (tonic's connect info), fails its reads and writes once the connection is closed (so
/// the server can cut a transport it does not otherwise reach), and releases the connection
/// when dropped (the transport is gone).
pub struct Tracked {
    stream: Stream,
    connection: Arc<Connection>,
    table: Arc<Connections>,
    cut: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl Tracked {
    fn new(stream: Stream, connection: Arc<Connection>, table: Arc<Connections>) -> Tracked {
        let cut = Box::pin(connection.closed());
        Tracked { stream, connection, table, cut }
    }

    fn poll_cut(&mut self, cx: &mut Context<'_>) -> Option<std::io::Error> {
        self.cut
            .as_mut()
            .poll(cx)
            .is_ready()
            .then(|| std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "connection closed by the server"))
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.table.release(&self.connection);
    }
}

impl tonic::transport::server::Connected for Tracked {
    type ConnectInfo = Arc<Connection>;

    fn connect_info(&self) -> Arc<Connection> {
        self.connection.clone()
    }
}

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if let Some(cut) = self.poll_cut(cx) {
            return Poll::Ready(Err(cut));
        }
        match &mut self.stream {
            Stream::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if let Some(cut) = self.poll_cut(cx) {
            return Poll::Ready(Err(cut));
        }
        match &mut self.stream {
            Stream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.stream {
            Stream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.stream {
            Stream::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}
