//! The core's error type.

use crate::id::{ClusterId, Epoch, Position};

/// What went wrong in the core or in one of its trait implementations.
///
/// [`Error::is_retryable`] tells a caller whether trying again (perhaps elsewhere) can help.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An entry was applied out of log order: a bug in the caller, not a retryable fault.
    #[error("log entry at position {got} applied where {expected} was expected")]
    OutOfOrder {
        /// The position the log needed next.
        expected: Position,
        /// The position that came.
        got: Position,
    },
    /// A write or a role claim came from an epoch older than the newest one known.
    #[error("epoch {got} is older than the current epoch {current}")]
    StaleEpoch {
        /// The newest epoch known here.
        current: Epoch,
        /// The epoch that came.
        got: Epoch,
    },
    /// A cluster outside `1..=clusters`.
    #[error("cluster {cluster} does not exist: the deployment has clusters 1 to {clusters}")]
    NoSuchCluster {
        /// The cluster asked for.
        cluster: ClusterId,
        /// How many clusters there are.
        clusters: u32,
    },
    /// A peer (the coordinator, a server) could not be reached or did not answer in time.
    #[error("{what} is unavailable: {reason}")]
    Unavailable {
        /// Which peer.
        what: String,
        /// Why, as the transport said.
        reason: String,
    },
    /// This server may not do that now (it is not the master of the newest epoch); the
    /// text says so.
    #[error("{0}")]
    NotMaster(String),
    /// A second process claims a place (a server id of a cluster, a cluster's synchronizer)
    /// that a live process from another data folder holds.
    #[error("{0}")]
    Duplicate(String),
    /// The caller may not do what it asked: it claims what nobody granted it (an epoch, a
    /// role), or its identity does not allow the call. The text says which.
    #[error("{0}")]
    Refused(String),
    /// A request that can never succeed as sent.
    #[error("{0}")]
    Invalid(String),
    /// Reading or writing stored data failed.
    #[error("storage failed while {action}: {source}")]
    Storage {
        /// What the store was doing.
        action: String,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Stored data is damaged beyond the repairs a store makes on its own.
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
}

impl Error {
    /// Whether the same request may succeed later or at another server.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable { .. } | Error::NotMaster(_))
    }

    /// A storage error with what the store was doing.
    pub fn storage(
        action: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Storage {
            action: action.into(),
            source: source.into(),
        }
    }
}

/// The core's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
