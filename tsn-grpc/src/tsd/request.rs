//! What every service of a tsd reads from a request, and how it refuses one: the user it
//! speaks for, and the status for a user this server does not serve.

use tonic::Status;
use tsn_core::command::NotServed;
use tsn_core::id::UserId;

/// The user a request speaks for; `INVALID_ARGUMENT` if it is no user id.
pub(crate) fn parse_user(text: &str, what: &str) -> Result<UserId, Status> {
    text.parse::<UserId>()
        .map_err(|e| Status::invalid_argument(format!("{what}: {e}")))
}

/// `FAILED_PRECONDITION` for a user this server does not serve.
pub(crate) fn not_served(refusal: NotServed) -> Status {
    Status::failed_precondition(refusal.to_string())
}
