//! The replication stream's messages: the runtime's and the protocol's.

use tsn_core::Error;
use tsn_core::change::{Entry, LogPoint};
use tsn_core::id::{ClusterId, Epoch, FolderId, Position};
use tsn_server::tsd::replication::{Hello, MasterMessage, SlaveMessage};

use super::server_id;
use crate::proto::tsn::{self, master_message, slave_message};

impl From<&SlaveMessage> for tsn::SlaveMessage {
    fn from(message: &SlaveMessage) -> Self {
        let kind = match message {
            SlaveMessage::Hello(hello) => slave_message::Kind::Hello(tsn::Hello {
                server_id: hello.server.0 as i32,
                cluster_id: hello.cluster.0,
                epoch: hello.epoch.0,
                log_position: hello.last.position.0,
                log_epoch: hello.last.epoch.0,
                folder_id: hello.folder.0,
            }),
            SlaveMessage::Ack { durable } => {
                slave_message::Kind::Ack(tsn::Ack { durable: durable.0 })
            }
        };
        tsn::SlaveMessage { kind: Some(kind) }
    }
}

impl TryFrom<tsn::SlaveMessage> for SlaveMessage {
    type Error = Error;

    fn try_from(message: tsn::SlaveMessage) -> Result<Self, Error> {
        match message.kind {
            Some(slave_message::Kind::Hello(hello)) => Ok(SlaveMessage::Hello(Hello {
                cluster: ClusterId(hello.cluster_id),
                server: server_id(hello.server_id)?,
                epoch: Epoch(hello.epoch),
                last: LogPoint {
                    epoch: Epoch(hello.log_epoch),
                    position: Position(hello.log_position),
                },
                folder: FolderId(hello.folder_id),
            })),
            Some(slave_message::Kind::Ack(ack)) => Ok(SlaveMessage::Ack {
                durable: Position(ack.durable),
            }),
            None => Err(Error::Invalid("an empty message from a slave".into())),
        }
    }
}

impl From<&MasterMessage> for tsn::MasterMessage {
    fn from(message: &MasterMessage) -> Self {
        let kind = match message {
            MasterMessage::TruncateAfter { keep } => master_message::Kind::TruncateAfter(keep.0),
            MasterMessage::Batch {
                epoch,
                entries,
                commit,
            } => master_message::Kind::Batch(tsn::Batch {
                epoch: epoch.0,
                entries: entries.iter().map(tsn::Entry::from).collect(),
                commit: commit.0,
            }),
        };
        tsn::MasterMessage { kind: Some(kind) }
    }
}

impl TryFrom<tsn::MasterMessage> for MasterMessage {
    type Error = Error;

    fn try_from(message: tsn::MasterMessage) -> Result<Self, Error> {
        match message.kind {
            Some(master_message::Kind::TruncateAfter(keep)) => Ok(MasterMessage::TruncateAfter {
                keep: Position(keep),
            }),
            Some(master_message::Kind::Batch(batch)) => Ok(MasterMessage::Batch {
                epoch: Epoch(batch.epoch),
                entries: batch
                    .entries
                    .into_iter()
                    .map(Entry::try_from)
                    .collect::<Result<_, _>>()?,
                commit: Position(batch.commit),
            }),
            None => Err(Error::Invalid("an empty message from the master".into())),
        }
    }
}
