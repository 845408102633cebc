//! The `Reply.msg` texts of the course's protocol (SPEC.md section 3): what the server
//! says and what the course's client recognises.

/// Login of a user seen for the first time.
pub const LOGIN_NEW: &str = "Login Successful!";
/// Login of a returning user: followed by a space and the user id.
pub const WELCOME_BACK: &str = "Welcome Back";
/// Login while another client holds the session; Follow of oneself or of a followed user.
pub const ALREADY_JOINED: &str = "you have already joined";
/// Follow done.
pub const FOLLOW_DONE: &str = "Follow Successful";
/// Follow of a user unknown anywhere in the system.
pub const FOLLOW_UNKNOWN: &str = "unknown follower username";
/// UnFollow done.
pub const UNFOLLOW_DONE: &str = "UnFollow Successful";
/// UnFollow of an unknown user or of oneself.
pub const UNFOLLOW_UNKNOWN: &str = "Unknown follower";
/// UnFollow of a user not followed.
pub const NOT_A_FOLLOWER: &str = "You are not a follower";
