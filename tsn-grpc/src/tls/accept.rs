//! A server's incoming connections: TLS or plaintext, told apart by their first byte, each
//! with the [`Peer`] it comes from.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

use rustls::server::danger::ClientCertVerifier;

use super::verify::judge_client;
use super::{Identity, Security};

/// How long a connection may take to say how it speaks and to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How many TLS handshakes a server runs at once; connections beyond are closed at once,
/// so that a flood of them cannot take the cores the server's own work needs.
const MAX_HANDSHAKES: usize = 256;

/// How often, at most, the closing of connections beyond [`MAX_HANDSHAKES`] is logged.
const BUSY_WARNING_EVERY: Duration = Duration::from_secs(1);

/// How long accepting pauses after the listener fails (out of file descriptors, say).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How long a refused connection is read from before it is closed ([`linger`]).
const LINGER: Duration = Duration::from_secs(1);

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// Where a call comes from: the address, whether over TLS, and the identity its
/// certificate names (`None`: no certificate, or one that names no identity). Every
/// request a server built on [`incoming`] takes carries it among its extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The caller's address.
    pub address: Option<SocketAddr>,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// What the caller's certificate names it.
    pub identity: Option<Identity>,
    /// Why the caller's certificate was refused, if it was (another authority's, expired,
    /// ...): every call of the connection is then refused, saying so.
    pub refused: Option<String>,
}

impl Peer {
    /// Who a request came from, if it came through [`incoming`].
    pub fn of<T>(request: &tonic::Request<T>) -> Option<&Peer> {
        request.extensions().get::<Peer>()
    }
}

/// A connection a server took: plaintext, or TLS.
#[derive(Debug)]
pub enum Conn {
    /// Plaintext.
    Plain(TcpStream, Peer),
    /// TLS, handshake done.
    Tls(Box<TlsStream<TcpStream>>, Peer),
}

/// The connections `listener` takes, with `TCP_NODELAY` set, as a stream for
/// `serve_with_incoming`: plaintext ones when `security` is `None`; otherwise TLS ones,
/// handshakes done (a refused handshake is logged as a warning, with the caller's address
/// and why), and plaintext ones for the server's access rules to judge. Handshakes run
/// side by side; accepting stops when the stream is dropped.
pub fn incoming(
    listener: TcpListener,
    security: Option<Arc<Security>>,
) -> ReceiverStream<io::Result<Conn>> {
    let (sender, receiver) = mpsc::channel(64);
    let acceptor = security.and_then(|s| {
        let judge = s.clients.clone()?;
        Some((TlsAcceptor::from(s.server.clone()?), judge))
    });
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    let mut busy_warned: Option<Instant> = None;
    tokio::spawn(async move {
        loop {
            let (stream, address) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "cannot accept a connection");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                },
                () = sender.closed() => return,
            };
            let _ = stream.set_nodelay(true);
            let permit = match (&acceptor, Arc::clone(&handshakes).try_acquire_owned()) {
                (None, _) => None,
                (Some(_), Ok(permit)) => Some(permit),
                (Some(_), Err(_)) => {
                    if busy_warned.is_none_or(|at| at.elapsed() >= BUSY_WARNING_EVERY) {
                        tracing::warn!(%address, "closed a connection: {MAX_HANDSHAKES} TLS handshakes are under way");
                        busy_warned = Some(Instant::now());
                    }
                    continue;
                }
            };
            let sender = sender.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let conn = match acceptor {
                    None => Some(Conn::Plain(stream, plain(address))),
                    Some((acceptor, judge)) => {
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, take(stream, address, acceptor, &*judge))
                            .await
                            .unwrap_or_else(|_| {
                                tracing::warn!(%address, "refused a connection: no TLS handshake within {HANDSHAKE_TIMEOUT:?}");
                                None
                            })
                    }
                };
                if let Some(conn) = conn {
                    let _ = sender.send(Ok(conn)).await;
                }
            });
        }
    });
    ReceiverStream::new(receiver)
}

fn plain(address: SocketAddr) -> Peer {
    Peer {
        address: Some(address),
        tls: false,
        identity: None,
        refused: None,
    }
}

/// Takes one connection on a server with TLS: a TLS handshake if it starts with one, its
/// certificate judged by `judge` (a refusal logged), or plaintext. `None` if the
/// handshake failed (logged).
async fn take(
    stream: TcpStream,
    address: SocketAddr,
    acceptor: TlsAcceptor,
    judge: &dyn ClientCertVerifier,
) -> Option<Conn> {
    let mut first = [0u8; 1];
    match stream.peek(&mut first).await {
        Ok(1) if first[0] == TLS_HANDSHAKE => {}
        Ok(1) => return Some(Conn::Plain(stream, plain(address))),
        _ => return None,
    }
    match acceptor.accept(stream).into_fallible().await {
        Ok(tls) => {
            let chain = tls.get_ref().1.peer_certificates().unwrap_or_default();
            let (identity, refused) = match judge_client(judge, chain) {
                Ok(identity) => (identity, None),
                Err(why) => {
                    tracing::warn!(%address, "refused the certificate of a TLS connection: {why}");
                    (None, Some(why))
                }
            };
            let peer = Peer {
                address: Some(address),
                tls: true,
                identity,
                refused,
            };
            Some(Conn::Tls(Box::new(tls), peer))
        }
        Err((error, stream)) => {
            tracing::warn!(%address, %error, "refused a TLS connection");
            tokio::spawn(linger(stream));
            None
        }
    }
}

/// Closes a refused connection gently: says it will send nothing more, and reads what the
/// caller still sends for a little while. Closed at once with unread bytes, the connection
/// would be reset, and the caller would see a broken pipe instead of the TLS alert that
/// says why it was refused.
async fn linger(mut stream: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(LINGER, async {
        while let Ok(n) = stream.read(&mut sink).await
            && n > 0
        {}
    })
    .await;
}

impl Connected for Conn {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        match self {
            Conn::Plain(_, peer) | Conn::Tls(_, peer) => peer.clone(),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(stream, _) => Pin::new(stream).poll_read(cx, buf),
            Conn::Tls(stream, _) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(stream, _) => Pin::new(stream).poll_write(cx, buf),
            Conn::Tls(stream, _) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(stream, _) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Conn::Tls(stream, _) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(stream, _) => stream.is_write_vectored(),
            Conn::Tls(stream, _) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(stream, _) => Pin::new(stream).poll_flush(cx),
            Conn::Tls(stream, _) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(stream, _) => Pin::new(stream).poll_shutdown(cx),
            Conn::Tls(stream, _) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}
