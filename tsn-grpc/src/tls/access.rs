//! Who may call what on a server with TLS: [`Access`], a layer that judges every call by
//! its method and the [`Peer`] it comes from, and [`require`], for the handlers whose rule
//! depends on what the call says (a heartbeat of one server, a stream of one cluster).
//!
//! | calls | from |
//! | --- | --- |
//! | a user's: `SNSService`, `Session`, `CoordService/GetServer`, health, reflection | any TLS connection; plaintext ones only where the operator allows them |
//! | between servers: everything else (`Heartbeat`, `RegisterSyncServer`, `GetSyncServers`, `Replication`, `Feed`, `SynchService`) | TLS with the certificate of a TSN server; the handler may narrow it further |
//!
//! A refused call gets `UNAUTHENTICATED` (no TLS, or no certificate) or
//! `PERMISSION_DENIED` (a certificate that may not make it), saying why; the server logs a
//! warning naming the caller. Without [installed](super::install) settings every call is
//! taken.

use std::task::{Context, Poll};

use futures::future::Either;
use tonic::Status;
use tonic::codegen::http;

use super::{Identity, Peer, installed};

/// The methods any client may call: whole services (ending with `/`), or single methods.
const CLIENT_CALLS: [&str; 6] = [
    "/csce438.SNSService/",
    "/tsn.Session/",
    "/csce438.CoordService/GetServer",
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// Whether the method at `path` is one a user's client calls: one of [`CLIENT_CALLS`],
/// or in a service of it that ends with `/`.
fn is_client_call(path: &str) -> bool {
    CLIENT_CALLS.iter().any(|call| {
        if call.ends_with('/') {
            path.starts_with(call)
        } else {
            path == *call
        }
    })
}

/// Judges a call to `path` from `peer` (`None`: a connection that did not come through
/// [`incoming`](super::incoming), such as an in-process test's).
fn judge(path: &str, peer: Option<&Peer>) -> Result<(), Status> {
    let Some(security) = installed() else {
        return Ok(());
    };
    let Some(peer) = peer else {
        return Ok(());
    };
    let client_call = is_client_call(path);
    let refused = if let Some(why) = &peer.refused {
        Status::unauthenticated(format!("the caller's certificate was refused: {why}"))
    } else if !peer.tls {
        if client_call && security.takes_plaintext_clients() {
            return Ok(());
        }
        Status::unauthenticated(if client_call {
            "this server takes only TLS connections: connect with TLS (tsc --tls-ca)".to_owned()
        } else {
            format!(
                "this server takes only TLS connections with a server's certificate for {path} \
                 (--tls-cert, --tls-key, --tls-ca)"
            )
        })
    } else if client_call {
        return Ok(());
    } else {
        match peer.identity {
            Some(identity) if identity.is_tsn_server() => return Ok(()),
            Some(identity) => Status::permission_denied(format!(
                "{identity} may not call {path}: only TSN's servers may"
            )),
            None => Status::unauthenticated(format!(
                "{path} needs the certificate of a TSN server, and the caller presented none"
            )),
        }
    };
    warn(path, peer, &refused);
    Err(refused)
}

fn warn(path: &str, peer: &Peer, refused: &Status) {
    let from = peer
        .address
        .map_or_else(|| "an unknown address".to_owned(), |a| a.to_string());
    let who = peer
        .identity
        .map_or_else(|| "no certificate".to_owned(), |i| i.to_string());
    tracing::warn!(%from, %who, "refused a call to {path}: {}", refused.message());
}

/// Checks, in the handler of `method` (its path, `/package.Service/Method`), that the
/// call `request` came from an identity that `allowed` accepts (`what` says which, for the
/// refusal: "server 1 of cluster 1"). Passes every call without installed settings, and
/// plaintext calls the access rules let through.
pub fn require<T>(
    request: &tonic::Request<T>,
    method: &str,
    allowed: impl Fn(Identity) -> bool,
    what: &str,
) -> Result<(), Status> {
    if installed().is_none() {
        return Ok(());
    }
    let Some(peer) = Peer::of(request) else {
        return Ok(());
    };
    if peer.identity.is_some_and(&allowed) {
        return Ok(());
    }
    let holder = peer.identity.map_or_else(
        || "a caller without a certificate".to_owned(),
        |i| format!("the certificate of {i}"),
    );
    let refused = Status::permission_denied(format!("{holder} cannot call {method} as {what}"));
    warn(method, peer, &refused);
    Err(refused)
}

/// The layer that applies the access rules to every call of a server.
#[derive(Clone, Copy, Debug, Default)]
pub struct Access;

impl<S> tower::Layer<S> for Access {
    type Service = Guarded<S>;

    fn layer(&self, inner: S) -> Guarded<S> {
        Guarded(inner)
    }
}

/// A service behind the access rules.
#[derive(Clone, Debug)]
pub struct Guarded<S>(S);

impl<S, B, R> tower::Service<http::Request<B>> for Guarded<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    R: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<std::future::Ready<Result<S::Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        match judge(request.uri().path(), request.extensions().get::<Peer>()) {
            Ok(()) => Either::Right(self.0.call(request)),
            Err(refused) => Either::Left(std::future::ready(Ok(refused.into_http()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_calls_are_told_from_servers_calls() {
        for path in [
            "/csce438.SNSService/Login",
            "/csce438.SNSService/Timeline",
            "/tsn.Session/KeepAlive",
            "/csce438.CoordService/GetServer",
            "/grpc.health.v1.Health/Check",
        ] {
            assert!(is_client_call(path), "{path}");
        }
        for path in [
            "/csce438.CoordService/Heartbeat",
            "/csce438.CoordService/GetSyncServers",
            "/csce438.CoordService/RegisterSyncServer",
            "/tsn.Replication/Replicate",
            "/tsn.Feed/Changes",
            "/csce438.SynchService/GetUserTLFL",
            "/csce438.CoordService/GetServerX",
        ] {
            assert!(!is_client_call(path), "{path}");
        }
    }
}
