//! [`Node`]: a server's role, kept in step with the coordinator.

use crate::change::LogPoint;
use crate::coordinator::{Assignment, Coordinator, Report, Role, ServerRef};
use crate::error::Result;
use crate::id::{Epoch, FolderId, ServerId};

/// What a server is doing now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Duty {
    /// Serving nothing: just started, or waiting for the cluster to have a master.
    Waiting,
    /// Acting as the master of `epoch`.
    Master {
        /// The epoch it is master of.
        epoch: Epoch,
    },
    /// Copying the log of `master`, master of `epoch`.
    Slave {
        /// The epoch of that master.
        epoch: Epoch,
        /// Whom to copy.
        master: ServerRef,
    },
}

/// A server's role state: its duty and the newest epoch it knows.
///
/// It changes only on the coordinator's answers ([`Node::assign`]) and on news of a newer
/// epoch from a peer ([`Node::saw_epoch`]): a master that learns of a newer epoch stops
/// acting as master at once, before the coordinator tells it so.
#[derive(Clone, Debug)]
pub struct Node {
    me: ServerRef,
    incarnation: u64,
    folder: FolderId,
    duty: Duty,
    epoch: Epoch,
}

impl Node {
    /// A server whose process started as `incarnation` (a random number) and whose log
    /// ends at an entry of `epoch`.
    pub fn new(me: ServerRef, incarnation: u64, epoch: Epoch) -> Self {
        Node {
            me,
            incarnation,
            folder: FolderId::UNKNOWN,
            duty: Duty::Waiting,
            epoch,
        }
    }

    /// The same server, reporting that it keeps its replica in the data folder `folder`
    /// (see [`Report::folder`]).
    pub fn on_folder(mut self, folder: FolderId) -> Self {
        self.folder = folder;
        self
    }

    /// This server.
    pub fn me(&self) -> &ServerRef {
        &self.me
    }

    /// What it does now.
    pub fn duty(&self) -> &Duty {
        &self.duty
    }

    /// The newest epoch it knows.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The heartbeat to send, given the end of the log and (for a master) the in-sync set.
    pub fn report(&self, log: LogPoint, in_sync: Vec<ServerId>) -> Report {
        let role = match self.duty {
            Duty::Waiting => None,
            Duty::Master { .. } => Some(Role::Master),
            Duty::Slave { .. } => Some(Role::Slave),
        };
        Report {
            server: self.me.clone(),
            incarnation: self.incarnation,
            folder: self.folder,
            role,
            epoch: self.epoch,
            log,
            in_sync: if role == Some(Role::Master) {
                in_sync
            } else {
                Vec::new()
            },
        }
    }

    /// Takes the coordinator's answer; returns the new duty if it changed.
    pub fn assign(&mut self, assignment: &Assignment) -> Option<Duty> {
        if assignment.epoch < self.epoch {
            // An answer from a coordinator that knows less than we do (it has just
            // restarted): our next heartbeat tells it the newer epoch.
            return None;
        }
        self.epoch = assignment.epoch;
        let duty = match (assignment.role, &assignment.master) {
            (Role::Master, _) => Duty::Master {
                epoch: assignment.epoch,
            },
            (Role::Slave, Some(master)) if master.server != self.me.server => Duty::Slave {
                epoch: assignment.epoch,
                master: master.clone(),
            },
            // No master known at our epoch (a coordinator that has just restarted and not
            // heard from it yet): keep copying the one we have.
            (Role::Slave, None) if matches!(&self.duty, Duty::Slave { epoch, .. } if *epoch == assignment.epoch) =>
            {
                return None;
            }
            (Role::Slave, _) => Duty::Waiting,
        };
        self.change(duty)
    }

    /// The duty could not be taken up: wait for the next assignment (the next report says
    /// so, and the coordinator may assign the duty again).
    pub fn give_up(&mut self) {
        self.duty = Duty::Waiting;
    }

    /// A peer spoke of `epoch`; a newer epoch than ours ends our mastership at once.
    pub fn saw_epoch(&mut self, epoch: Epoch) -> Option<Duty> {
        if epoch <= self.epoch {
            return None;
        }
        self.epoch = epoch;
        match self.duty {
            Duty::Master { .. } => self.change(Duty::Waiting),
            _ => None,
        }
    }

    fn change(&mut self, duty: Duty) -> Option<Duty> {
        if duty == self.duty {
            return None;
        }
        self.duty = duty.clone();
        Some(duty)
    }
}

/// One heartbeat: reports to the coordinator and takes its answer. Returns the new duty if
/// it changed; when the coordinator cannot be reached the duty stays as it was (see the
/// [failover docs](crate::failover) for why that is safe) and the error is returned.
pub async fn heartbeat<C: Coordinator + ?Sized>(
    coordinator: &C,
    node: &mut Node,
    log: LogPoint,
    in_sync: Vec<ServerId>,
) -> Result<(Assignment, Option<Duty>)> {
    let assignment = coordinator.heartbeat(node.report(log, in_sync)).await?;
    let change = node.assign(&assignment);
    Ok((assignment, change))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::{Endpoint, MockCoordinator};
    use crate::error::Error;
    use crate::id::{ClusterId, Position};
    use mockall::Sequence;

    fn server(id: u32) -> ServerRef {
        ServerRef {
            cluster: ClusterId(1),
            server: ServerId(id),
            endpoint: Endpoint {
                host: "127.0.0.1".into(),
                port: 10000 + id as u16,
            },
        }
    }

    fn answer(role: Role, epoch: u64, master: Option<u32>) -> Assignment {
        Assignment {
            role,
            epoch: Epoch(epoch),
            master: master.map(server),
            clusters: 3,
            in_sync_confirmed: true,
        }
    }

    fn at(epoch: u64, position: u64) -> LogPoint {
        LogPoint {
            epoch: Epoch(epoch),
            position: Position(position),
        }
    }

    #[tokio::test]
    async fn a_slave_is_promoted_and_then_deposed_through_its_heartbeats() {
        let mut coordinator = MockCoordinator::new();
        let mut seq = Sequence::new();
        coordinator
            .expect_heartbeat()
            .withf(|r| r.role.is_none() && r.epoch == Epoch(1))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(answer(Role::Slave, 1, Some(1))));
        coordinator
            .expect_heartbeat()
            .withf(|r| r.role == Some(Role::Slave) && r.in_sync.is_empty())
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(answer(Role::Master, 2, Some(2))));
        coordinator
            .expect_heartbeat()
            .withf(|r| {
                r.role == Some(Role::Master) && r.epoch == Epoch(2) && r.in_sync == [ServerId(1)]
            })
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| {
                Err(Error::Unavailable {
                    what: "coordinator".into(),
                    reason: "connection refused".into(),
                })
            });
        coordinator
            .expect_heartbeat()
            .withf(|r| r.role == Some(Role::Master))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(answer(Role::Slave, 3, Some(1))));

        let mut node = Node::new(server(2), 7, Epoch(1));
        let (_, duty) = heartbeat(&coordinator, &mut node, at(1, 4), vec![])
            .await
            .unwrap();
        assert_eq!(
            duty,
            Some(Duty::Slave {
                epoch: Epoch(1),
                master: server(1)
            })
        );
        let (_, duty) = heartbeat(&coordinator, &mut node, at(1, 4), vec![])
            .await
            .unwrap();
        assert_eq!(duty, Some(Duty::Master { epoch: Epoch(2) }));
        let unreachable = heartbeat(&coordinator, &mut node, at(2, 5), vec![ServerId(1)]).await;
        assert!(unreachable.is_err());
        assert_eq!(
            node.duty(),
            &Duty::Master { epoch: Epoch(2) },
            "kept while unreachable"
        );
        let (_, duty) = heartbeat(&coordinator, &mut node, at(2, 5), vec![ServerId(1)])
            .await
            .unwrap();
        assert_eq!(
            duty,
            Some(Duty::Slave {
                epoch: Epoch(3),
                master: server(1)
            })
        );
    }

    #[test]
    fn news_of_a_newer_epoch_ends_mastership_at_once() {
        let mut node = Node::new(server(1), 7, Epoch(0));
        node.assign(&answer(Role::Master, 1, Some(1)));
        assert_eq!(node.saw_epoch(Epoch(1)), None);
        assert_eq!(node.saw_epoch(Epoch(2)), Some(Duty::Waiting));
        assert_eq!(node.epoch(), Epoch(2));
    }

    #[test]
    fn an_answer_older_than_what_we_know_is_ignored() {
        let mut node = Node::new(server(1), 7, Epoch(5));
        assert_eq!(node.assign(&answer(Role::Master, 1, Some(1))), None);
        assert_eq!(node.duty(), &Duty::Waiting);
    }

    #[test]
    fn a_slave_without_a_live_master_waits() {
        let mut node = Node::new(server(2), 7, Epoch(0));
        assert_eq!(
            node.assign(&answer(Role::Slave, 1, None)),
            None,
            "already waiting"
        );
        node.assign(&answer(Role::Slave, 1, Some(1)));
        assert_eq!(
            node.assign(&answer(Role::Slave, 1, None)),
            None,
            "a coordinator that knows no master at this epoch changes nothing"
        );
        assert_eq!(
            node.assign(&answer(Role::Slave, 2, None)),
            Some(Duty::Waiting),
            "a new epoch without a master"
        );
    }
}
