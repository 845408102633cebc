//! How errors cross the wire: one conversion each way between the core's errors and gRPC
//! statuses.

use tonic::{Code, Status};
use tsn_core::Error;

/// The gRPC status a core error is reported with.
pub fn to_status(error: Error) -> Status {
    let code = match &error {
        Error::Unavailable { .. } | Error::NotMaster(_) => Code::Unavailable,
        Error::NoSuchCluster { .. } | Error::Invalid(_) => Code::InvalidArgument,
        Error::Duplicate(_) => Code::AlreadyExists,
        Error::Refused(_) => Code::PermissionDenied,
        Error::StaleEpoch { .. } | Error::OutOfOrder { .. } => Code::FailedPrecondition,
        Error::Storage { .. } | Error::Corrupt(_) => Code::Internal,
    };
    Status::new(code, error.to_string())
}

/// The core error a failed call to `what` (a peer) stands for.
pub fn from_status(what: &str, status: Status) -> Error {
    match status.code() {
        Code::PermissionDenied | Code::Unauthenticated => {
            Error::Refused(format!("{what}: {}", status.message()))
        }
        Code::InvalidArgument | Code::NotFound | Code::OutOfRange => {
            Error::Invalid(format!("{what}: {}", status.message()))
        }
        Code::AlreadyExists => Error::Duplicate(format!("{what}: {}", status.message())),
        Code::FailedPrecondition => Error::NotMaster(format!("{what}: {}", status.message())),
        _ => Error::Unavailable {
            what: what.to_owned(),
            reason: describe(&status),
        },
    }
}

/// A readable one-line account of a failed call.
pub fn describe(status: &Status) -> String {
    let message = status.message();
    if message.is_empty() {
        format!("{:?}", status.code())
    } else {
        message.lines().next().unwrap_or(message).to_owned()
    }
}
