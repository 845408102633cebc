//! How a process with TLS connects to a server: TCP, then a TLS handshake that verifies
//! the server by the identity its certificate names.

use std::io;
use std::sync::Arc;

use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tonic::codegen::http::Uri;

use super::{Identity, Security};

/// The name sent in the handshake where any TSN server will do (see `ServerVerifier`).
pub(super) const ANY_SERVER: &str = "tsn";

/// A connector for tonic's `Endpoint::connect_with_connector_lazy`: connects to the host
/// and port of the URI it is given (with `TCP_NODELAY`) and makes a TLS connection with
/// `security`'s client settings, to the server that is `expected` (any TSN server if
/// `None`): the handshake names it, and the server's certificate must name it too.
pub(crate) fn connector(
    security: Arc<Security>,
    expected: Option<Identity>,
) -> impl tower::Service<
    Uri,
    Response = TokioIo<TlsStream<TcpStream>>,
    Error = io::Error,
    Future = impl Future<Output = io::Result<TokioIo<TlsStream<TcpStream>>>> + Send,
> + Clone
+ Send
+ 'static {
    let name = expected.map_or_else(|| ANY_SERVER.to_owned(), |e| e.dns_name());
    let name = ServerName::try_from(name).expect("identities are valid DNS names");
    tower::service_fn(move |uri: Uri| {
        let connector = TlsConnector::from(Arc::clone(&security.client));
        let name = name.clone();
        async move {
            let host = uri
                .host()
                .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, format!("{uri} names no host"))
                })?;
            let port = uri.port_u16().unwrap_or(80);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let tls = connector.connect(name, tcp).await?;
            Ok(TokioIo::new(tls))
        }
    })
}
