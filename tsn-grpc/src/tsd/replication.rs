//! Replication over gRPC: the `Replication` service a slave connects to, and
//! [`GrpcUpstream`], by which a slave reaches its master. The conversation itself is the
//! runtime's ([`tsn_server::tsd::replication`]).

use std::pin::Pin;

use async_trait::async_trait;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tsn_core::coordinator::ServerRef;
use tsn_core::{Result, Store};
use tsn_server::tsd::Tsd;
use tsn_server::tsd::replication::{Incoming, MasterMessage, SlaveMessage, Upstream};

use crate::error::{from_status, to_status};
use crate::proto::tsn;
use crate::proto::tsn::replication_client::ReplicationClient;
use crate::proto::tsn::replication_server::Replication;
use crate::tls::{self, Identity, Peer};
use crate::transport::{connect_lazy_to, stream_endpoint};

/// One direction of a replication stream as gRPC carries it: proto messages `P`, read as
/// the runtime's `T`.
struct FromWire<P> {
    stream: Streaming<P>,
    /// Whom the messages come from, for errors.
    what: String,
    /// A check each message must pass before it is read (see [`said_by`]).
    vet: Option<Vet<P>>,
}

/// A check a message must pass.
type Vet<P> = Box<dyn Fn(&P) -> Result<()> + Send>;

/// A check that a slave's Hello names the server that `identity` (from its certificate)
/// is: with TLS, a tsd says Hello only as itself.
fn said_by(identity: Identity) -> Vet<tsn::SlaveMessage> {
    Box::new(move |message| match &message.kind {
        Some(tsn::slave_message::Kind::Hello(hello))
            if Identity::Tsd {
                cluster: hello.cluster_id,
                server: u32::try_from(hello.server_id).unwrap_or(0),
            } != identity =>
        {
            let refusal = format!(
                "the certificate of {identity} cannot say Hello as server {} of cluster {}",
                hello.server_id, hello.cluster_id
            );
            tracing::warn!("refused a replication stream: {refusal}");
            Err(tsn_core::Error::Refused(refusal))
        }
        _ => Ok(()),
    })
}

#[async_trait]
impl<P, T> Incoming<T> for FromWire<P>
where
    P: Send + 'static,
    T: TryFrom<P, Error = tsn_core::Error>,
{
    async fn next(&mut self) -> Result<Option<T>> {
        match self.stream.message().await {
            Ok(Some(message)) => {
                if let Some(vet) = &self.vet {
                    vet(&message)?;
                }
                T::try_from(message).map(Some)
            }
            Ok(None) => Ok(None),
            Err(status) => Err(from_status(&self.what, status)),
        }
    }
}

#[tonic::async_trait]
impl<S: Store> Replication for Tsd<S> {
    type ReplicateStream = Pin<Box<dyn Stream<Item = Result<tsn::MasterMessage, Status>> + Send>>;

    async fn replicate(
        &self,
        request: Request<Streaming<tsn::SlaveMessage>>,
    ) -> Result<Response<Self::ReplicateStream>, Status> {
        let cluster = self.config().me.cluster.0;
        tls::access::require(
            &request,
            "/tsn.Replication/Replicate",
            |peer| matches!(peer, Identity::Tsd { cluster: c, .. } if c == cluster),
            &format!("a server of cluster {cluster}"),
        )?;
        let identity = tls::installed()
            .and(Peer::of(&request))
            .and_then(|p| p.identity);
        let inbound = FromWire {
            vet: identity.map(said_by),
            stream: request.into_inner(),
            what: "the slave".into(),
        };
        let answers = Tsd::replicate(self, inbound).map_err(to_status)?;
        let answers = ReceiverStream::new(answers).map(|answer| {
            answer
                .map(|message| tsn::MasterMessage::from(&message))
                .map_err(to_status)
        });
        Ok(Response::new(Box::pin(answers)))
    }
}

/// Reaches a slave's master over gRPC.
#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcUpstream;

#[async_trait]
impl Upstream for GrpcUpstream {
    async fn open(
        &self,
        master: &ServerRef,
        outgoing: mpsc::Receiver<SlaveMessage>,
    ) -> Result<Box<dyn Incoming<MasterMessage>>> {
        let what = format!("the master at {}", master.endpoint);
        let master_identity = Identity::Tsd {
            cluster: master.cluster.0,
            server: master.server.0,
        };
        let channel = connect_lazy_to(&stream_endpoint(&master.endpoint)?, master_identity);
        let mut client = ReplicationClient::new(channel);
        let outgoing =
            ReceiverStream::new(outgoing).map(|message| tsn::SlaveMessage::from(&message));
        let stream = client
            .replicate(outgoing)
            .await
            .map_err(|s| from_status(&what, s))?
            .into_inner();
        Ok(Box::new(FromWire {
            stream,
            what,
            vet: None,
        }))
    }
}
