//! Conversions between the protocol's types and the core's: the only module where both
//! meet. Proto → core conversions validate and fail with [`Error::Invalid`].

use prost_types::Timestamp;
use tsn_core::Error;
use tsn_core::change::{Change, Entry, LogPoint};
use tsn_core::coordinator::{Assignment, Endpoint, Report, Role, ServerRef};
use tsn_core::course;
use tsn_core::id::LogId;
use tsn_core::id::{ClusterId, Epoch, FolderId, Position, ServerId, Time, UserId};
use tsn_core::post::{Post, PostId, PostText};
use tsn_core::state::TimelineItem;
use tsn_core::sync::UserRecord;

use crate::proto::{csce438, tsn};

mod replication;

/// A protobuf timestamp for a core time.
pub fn timestamp(time: Time) -> Timestamp {
    Timestamp {
        seconds: time.unix_seconds() as i64,
        nanos: time.subsec_nanos() as i32,
    }
}

fn invalid(what: impl Into<String>) -> Error {
    Error::Invalid(what.into())
}

fn user(id: u32) -> Result<UserId, Error> {
    UserId::new(id).ok_or_else(|| invalid(format!("{id} is not a user id")))
}

fn server_id(id: i32) -> Result<ServerId, Error> {
    u32::try_from(id)
        .map(ServerId)
        .map_err(|_| invalid(format!("server id {id} is negative")))
}

/// The course's name for a role.
pub fn role_name(role: Option<Role>) -> &'static str {
    match role {
        None => "new",
        Some(Role::Master) => "master",
        Some(Role::Slave) => "slave",
    }
}

fn parse_role(name: &str) -> Result<Option<Role>, Error> {
    match name {
        "" | "new" => Ok(None),
        "master" => Ok(Some(Role::Master)),
        "slave" => Ok(Some(Role::Slave)),
        other => Err(invalid(format!("unknown server type '{other}'"))),
    }
}

impl From<&ServerRef> for csce438::ServerInfo {
    fn from(server: &ServerRef) -> Self {
        csce438::ServerInfo {
            server_id: server.server.0 as i32,
            hostname: server.endpoint.host.clone(),
            port: server.endpoint.port.to_string(),
            cluster_id: server.cluster.0.to_string(),
            ..Default::default()
        }
    }
}

impl TryFrom<&csce438::ServerInfo> for ServerRef {
    type Error = Error;

    fn try_from(info: &csce438::ServerInfo) -> Result<Self, Error> {
        let port = info
            .port
            .parse::<u16>()
            .map_err(|_| invalid(format!("port '{}' is not a port number", info.port)))?;
        let cluster = info
            .cluster_id
            .parse::<u32>()
            .map_err(|_| invalid(format!("cluster '{}' is not a cluster id", info.cluster_id)))?;
        if info.hostname.is_empty() {
            return Err(invalid("the host name is empty"));
        }
        Ok(ServerRef {
            cluster: ClusterId(cluster),
            server: server_id(info.server_id)?,
            endpoint: Endpoint {
                host: info.hostname.clone(),
                port,
            },
        })
    }
}

impl From<&Report> for csce438::ServerInfo {
    fn from(report: &Report) -> Self {
        csce438::ServerInfo {
            r#type: role_name(report.role).to_owned(),
            epoch: report.epoch.0,
            log_position: report.log.position.0,
            log_epoch: report.log.epoch.0,
            in_sync: report.in_sync.iter().map(|s| s.0 as i32).collect(),
            incarnation: report.incarnation,
            folder_id: report.folder.0,
            ..csce438::ServerInfo::from(&report.server)
        }
    }
}

impl TryFrom<&csce438::ServerInfo> for Report {
    type Error = Error;

    fn try_from(info: &csce438::ServerInfo) -> Result<Self, Error> {
        Ok(Report {
            server: ServerRef::try_from(info)?,
            incarnation: info.incarnation,
            folder: FolderId(info.folder_id),
            role: parse_role(&info.r#type)?,
            epoch: Epoch(info.epoch),
            log: LogPoint {
                epoch: Epoch(info.log_epoch),
                position: Position(info.log_position),
            },
            in_sync: info
                .in_sync
                .iter()
                .map(|&s| server_id(s))
                .collect::<Result<_, _>>()?,
        })
    }
}

impl From<&Assignment> for csce438::Confirmation {
    fn from(assignment: &Assignment) -> Self {
        csce438::Confirmation {
            status: true,
            r#type: role_name(Some(assignment.role)).to_owned(),
            epoch: assignment.epoch.0,
            master: assignment.master.as_ref().map(csce438::ServerInfo::from),
            clusters: assignment.clusters,
            in_sync_confirmed: assignment.in_sync_confirmed,
        }
    }
}

impl TryFrom<&csce438::Confirmation> for Assignment {
    type Error = Error;

    fn try_from(confirmation: &csce438::Confirmation) -> Result<Self, Error> {
        let role = parse_role(&confirmation.r#type)?
            .ok_or_else(|| invalid("the coordinator assigned no role"))?;
        if confirmation.clusters == 0 {
            return Err(invalid("the coordinator reported zero clusters"));
        }
        Ok(Assignment {
            role,
            epoch: Epoch(confirmation.epoch),
            master: confirmation
                .master
                .as_ref()
                .map(ServerRef::try_from)
                .transpose()?,
            clusters: confirmation.clusters,
            in_sync_confirmed: confirmation.in_sync_confirmed,
        })
    }
}

impl From<&Entry> for tsn::Entry {
    fn from(entry: &Entry) -> Self {
        use tsn::entry::Change as C;
        let follow = |follower: &UserId, followee: &UserId, time: &Time| tsn::Follow {
            follower: follower.get(),
            followee: followee.get(),
            time: time.0,
        };
        let change = match &entry.change {
            Change::UserJoined { user, time } => C::UserJoined(tsn::UserJoined {
                user: user.get(),
                time: time.0,
            }),
            Change::Followed {
                follower,
                followee,
                time,
            } => C::Followed(follow(follower, followee, time)),
            Change::Unfollowed {
                follower,
                followee,
                time,
            } => C::Unfollowed(follow(follower, followee, time)),
            Change::Posted(post) => C::Posted(tsn::Post {
                origin: post.id.origin,
                seq: post.id.seq,
                author: post.author.get(),
                time: post.time.0,
                text: post.text.as_str().to_owned(),
            }),
            Change::MasterElected { server, time } => C::MasterElected(tsn::MasterElected {
                server_id: server.0 as i32,
                time: time.0,
            }),
            Change::Imported { from, through, log } => C::Imported(tsn::Imported {
                from: from.0,
                through: through.0,
                log: log.0,
            }),
        };
        tsn::Entry {
            position: entry.position.0,
            epoch: entry.epoch.0,
            change: Some(change),
        }
    }
}

impl TryFrom<tsn::Entry> for Entry {
    type Error = Error;

    fn try_from(entry: tsn::Entry) -> Result<Self, Error> {
        use tsn::entry::Change as C;
        let change = match entry
            .change
            .ok_or_else(|| invalid("a log entry without a change"))?
        {
            C::UserJoined(j) => Change::UserJoined {
                user: user(j.user)?,
                time: Time(j.time),
            },
            C::Followed(f) => Change::Followed {
                follower: user(f.follower)?,
                followee: user(f.followee)?,
                time: Time(f.time),
            },
            C::Unfollowed(f) => Change::Unfollowed {
                follower: user(f.follower)?,
                followee: user(f.followee)?,
                time: Time(f.time),
            },
            C::Posted(p) => Change::Posted(Post {
                id: PostId {
                    origin: p.origin,
                    seq: p.seq,
                },
                author: user(p.author)?,
                time: Time(p.time),
                text: PostText::new(p.text).map_err(|e| invalid(e.to_string()))?,
            }),
            C::MasterElected(m) => Change::MasterElected {
                server: server_id(m.server_id)?,
                time: Time(m.time),
            },
            C::Imported(i) => Change::Imported {
                from: ClusterId(i.from),
                through: Position(i.through),
                log: LogId(i.log),
            },
        };
        Ok(Entry {
            position: Position(entry.position),
            epoch: Epoch(entry.epoch),
            change,
        })
    }
}

/// A user of the cluster as the course's `GetUserTLFL` tells it: `tl` holds the lines of the
/// user's posts file (four lines a post, see [`tsn_core::course`]).
pub fn course_user(record: &UserRecord) -> csce438::UserTlfl {
    let ids = |users: &[UserId]| users.iter().map(UserId::to_string).collect();
    csce438::UserTlfl {
        tl: record
            .posts
            .iter()
            .flat_map(|post| {
                course::post_record(post)
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect(),
        flw: ids(&record.following),
        flr: ids(&record.followers),
        user: record.user.to_string(),
        status: Vec::new(),
    }
}

/// A user as another cluster's `GetUserTLFL` told it. Posts keep their text, author and
/// time to the second; they get ids numbering them in order (origin 0).
pub fn user_record(data: &csce438::UserTlfl) -> Result<UserRecord, Error> {
    let user = |text: &String| text.parse::<UserId>().map_err(|e| invalid(e.to_string()));
    let lines: String = data.tl.iter().map(|line| format!("{line}\n")).collect();
    let posts = course::parse_post_records(&lines)
        .map_err(|e| invalid(format!("the posts of user {}: {e}", data.user)))?
        .into_iter()
        .zip(1..)
        .map(|(record, seq)| {
            Ok(Post {
                id: PostId { origin: 0, seq },
                author: record.author,
                time: course::parse_time_text(&record.time)
                    .ok_or_else(|| invalid(format!("'{}' is not a time", record.time)))?,
                text: PostText::new(record.text).map_err(|e| invalid(e.to_string()))?,
            })
        })
        .collect::<Result<_, Error>>()?;
    Ok(UserRecord {
        user: user(&data.user)?,
        posts,
        following: data.flw.iter().map(user).collect::<Result<_, _>>()?,
        followers: data.flr.iter().map(user).collect::<Result<_, _>>()?,
    })
}

/// A timeline post as the course's `Message`, with its index.
pub fn timeline_message(item: &TimelineItem) -> csce438::Message {
    csce438::Message {
        username: item.post.author.to_string(),
        msg: item.post.text.as_str().to_owned(),
        timestamp: Some(timestamp(item.post.time)),
        index: item.index,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(n: u32) -> UserId {
        UserId::new(n).unwrap()
    }

    #[test]
    fn every_change_survives_the_wire() {
        let changes = [
            Change::UserJoined {
                user: u(1),
                time: Time(5),
            },
            Change::Followed {
                follower: u(1),
                followee: u(2),
                time: Time(6),
            },
            Change::Unfollowed {
                follower: u(1),
                followee: u(2),
                time: Time(7),
            },
            Change::Posted(Post {
                id: PostId { origin: 3, seq: 9 },
                author: u(2),
                time: Time(8),
                text: PostText::new("tab\t\"q\" 🎉 \\").unwrap(),
            }),
            Change::MasterElected {
                server: ServerId(2),
                time: Time(9),
            },
            Change::Imported {
                from: ClusterId(3),
                through: Position(12),
                log: LogId(5),
            },
        ];
        for (i, change) in changes.into_iter().enumerate() {
            let entry = Entry {
                position: Position(i as u64 + 1),
                epoch: Epoch(4),
                change,
            };
            let wire = tsn::Entry::from(&entry);
            assert_eq!(Entry::try_from(wire).unwrap(), entry);
        }
    }

    #[test]
    fn heartbeats_and_answers_survive_the_wire() {
        let server = ServerRef {
            cluster: ClusterId(2),
            server: ServerId(1),
            endpoint: Endpoint {
                host: "127.0.0.1".into(),
                port: 20000,
            },
        };
        let report = Report {
            server: server.clone(),
            incarnation: 42,
            folder: FolderId(9),
            role: Some(Role::Master),
            epoch: Epoch(3),
            log: LogPoint {
                epoch: Epoch(3),
                position: Position(77),
            },
            in_sync: vec![ServerId(2)],
        };
        let info = csce438::ServerInfo::from(&report);
        assert_eq!(
            (
                info.r#type.as_str(),
                info.port.as_str(),
                info.cluster_id.as_str()
            ),
            ("master", "20000", "2")
        );
        assert_eq!(Report::try_from(&info).unwrap(), report);
        let assignment = Assignment {
            role: Role::Slave,
            epoch: Epoch(3),
            master: Some(server),
            clusters: 3,
            in_sync_confirmed: true,
        };
        let confirmation = csce438::Confirmation::from(&assignment);
        assert_eq!(confirmation.r#type, "slave");
        assert_eq!(Assignment::try_from(&confirmation).unwrap(), assignment);
    }

    #[test]
    fn malformed_server_info_is_refused() {
        let info = csce438::ServerInfo {
            server_id: 1,
            hostname: "h".into(),
            port: "99999".into(),
            cluster_id: "1".into(),
            ..Default::default()
        };
        assert!(ServerRef::try_from(&info).is_err());
        let info = csce438::ServerInfo {
            port: "1".into(),
            cluster_id: "x".into(),
            ..info
        };
        assert!(ServerRef::try_from(&info).is_err());
    }
}
