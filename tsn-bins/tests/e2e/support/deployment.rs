//! A deployment of real processes for a test: a coordinator, tsd servers, synchronizers
//! and tsc clients on free loopback ports, with data in a temporary folder and short
//! timers; and what the coordinator says of it.

use std::path::Path;
use std::time::{Duration, Instant};

use tsn_bins::harness::topology::{coordinator_flags, synchronizer_flags, tsd_flags};
use tsn_grpc::proto::csce438::Id;
use tsn_grpc::proto::csce438::coord_service_client::CoordServiceClient;
use tsn_grpc::proto::csce438::sns_service_client::SnsServiceClient;

use super::*;

/// A deployment of real processes sharing one temporary data folder.
pub(crate) struct Deployment {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) clusters: u32,
    pub(crate) coordinator: Proc,
    pub(crate) coordinator_port: u16,
    pub(crate) timers: Timers,
    servers: Vec<((u32, u32), Proc)>,
    synchronizers: Vec<(u32, Proc)>,
}

impl Deployment {
    /// Starts a coordinator for `clusters` clusters with the default timers.
    pub(crate) fn start(clusters: u32) -> Deployment {
        Deployment::start_with(clusters, STEADY)
    }

    /// Starts a coordinator for `clusters` clusters with `timers`.
    pub(crate) fn start_with(clusters: u32, timers: Timers) -> Deployment {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let (coordinator, coordinator_port) = start_coordinator(clusters, 0, timers);
        Deployment {
            dir,
            clusters,
            coordinator,
            coordinator_port,
            timers,
            servers: Vec::new(),
            synchronizers: Vec::new(),
        }
    }

    /// Starts, for every cluster, a master (server 1), a slave (server 2) and the
    /// synchronizer, and waits until each cluster has its master.
    pub(crate) fn start_clusters(&mut self) {
        for cluster in 1..=self.clusters {
            self.start_master(cluster);
            self.start_server(cluster, 2);
            self.start_synchronizer(cluster);
        }
    }

    /// Starts the synchronizer of `cluster` on a free port and waits until it listens.
    pub(crate) fn start_synchronizer(&mut self, cluster: u32) -> &mut Proc {
        self.start_synchronizer_with(cluster, &[])
    }

    /// Like [`Deployment::start_synchronizer`], with `extra` flags.
    pub(crate) fn start_synchronizer_with(&mut self, cluster: u32, extra: &[&str]) -> &mut Proc {
        let dir = self.dir.path().to_path_buf();
        self.start_synchronizer_in(cluster, &dir, extra)
    }

    /// Like [`Deployment::start_synchronizer_with`], with its folder under `data_dir`: an
    /// empty folder stands for a synchronizer moved to another machine.
    pub(crate) fn start_synchronizer_in(
        &mut self,
        cluster: u32,
        data_dir: &Path,
        extra: &[&str],
    ) -> &mut Proc {
        self.stop_synchronizer(cluster);
        let mut args = synchronizer_flags(
            cluster,
            self.coordinator_port,
            0,
            data_dir,
            Some(&self.timers),
        );
        args.extend(extra.iter().map(|a| a.to_string()));
        let proc = start_claiming("synchronizer", &args);
        self.synchronizers.push((cluster, proc));
        &mut self.synchronizers.last_mut().expect("just pushed").1
    }

    /// The port the synchronizer of `cluster` listens on.
    pub(crate) fn synchronizer_port(&mut self, cluster: u32) -> u16 {
        announced_port(self.synchronizer(cluster))
    }

    /// The running synchronizer of `cluster`.
    pub(crate) fn synchronizer(&mut self, cluster: u32) -> &mut Proc {
        &mut self
            .synchronizers
            .iter_mut()
            .find(|(id, _)| *id == cluster)
            .expect("a started synchronizer")
            .1
    }

    /// Kills the synchronizer of `cluster` with SIGKILL.
    pub(crate) fn stop_synchronizer(&mut self, cluster: u32) {
        self.synchronizers.retain_mut(|(id, proc)| {
            if *id == cluster {
                proc.kill();
                false
            } else {
                true
            }
        });
    }

    /// The data folder.
    pub(crate) fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts server 1 of `cluster`, waits until the coordinator names it the cluster's
    /// master, and returns its port.
    pub(crate) fn start_master(&mut self, cluster: u32) -> u16 {
        self.start_server(cluster, 1);
        self.wait_master_is(cluster, 1);
        self.master_port(cluster).expect("the cluster has a master")
    }

    /// Starts server 1 of `cluster` as its master and server 2 as its slave, and waits
    /// until the coordinator has confirmed the slave in sync (so that it may be promoted);
    /// returns the master's port.
    pub(crate) fn start_master_and_in_sync_slave(&mut self, cluster: u32) -> u16 {
        let port = self.start_master(cluster);
        self.start_server(cluster, 2)
            .wait_for_log_count("serving as slave", 1);
        self.coordinator
            .wait_for_log_count(&format!("cluster={cluster} servers=[1, 2]"), 1);
        port
    }

    /// Kills the coordinator and starts it again on the same port.
    pub(crate) fn restart_coordinator(&mut self) {
        self.coordinator.kill();
        let (coordinator, _) = start_coordinator(self.clusters, self.coordinator_port, self.timers);
        self.coordinator = coordinator;
    }

    /// The flags of `tsd -c cluster -s server` for this deployment's coordinator, on a free
    /// port, with the data folder `data_dir` (the default timers).
    pub(crate) fn tsd_flags(&self, cluster: u32, server: u32, data_dir: &Path) -> Vec<String> {
        tsd_flags(cluster, server, self.coordinator_port, 0, data_dir, None)
    }

    /// The flags of `synchronizer -n cluster` for this deployment's coordinator, on a free
    /// port, with the data folder `data_dir` (the default timers).
    pub(crate) fn synchronizer_flags(&self, cluster: u32, data_dir: &Path) -> Vec<String> {
        synchronizer_flags(cluster, self.coordinator_port, 0, data_dir, None)
    }

    /// Starts `tsd -c cluster -s server` on a free port and waits until it listens.
    pub(crate) fn start_server(&mut self, cluster: u32, server: u32) -> &mut Proc {
        self.stop_server(cluster, server);
        let args = tsd_flags(
            cluster,
            server,
            self.coordinator_port,
            0,
            self.dir.path(),
            Some(&self.timers),
        );
        let proc = start_claiming("tsd", &args);
        eventually(
            &format!(
                "tsd {cluster}/{server} to take up a role; it logged:\n{}",
                proc.stderr()
            ),
            || {
                let log = proc.stderr();
                (log.contains("serving as master") || log.contains("serving as slave"))
                    .then_some(())
            },
        );
        self.servers.push(((cluster, server), proc));
        &mut self.servers.last_mut().expect("just pushed").1
    }

    /// The running server `(cluster, server)`.
    pub(crate) fn server(&mut self, cluster: u32, server: u32) -> &mut Proc {
        &mut self
            .servers
            .iter_mut()
            .find(|(id, _)| *id == (cluster, server))
            .expect("a started server")
            .1
    }

    /// Kills `(cluster, server)` with SIGKILL.
    pub(crate) fn stop_server(&mut self, cluster: u32, server: u32) {
        self.servers.retain_mut(|(id, proc)| {
            if *id == (cluster, server) {
                proc.kill();
                false
            } else {
                true
            }
        });
    }

    /// Waits until `LIST` would show `user` exactly `users` and `followers` (asked through
    /// the course's protocol, so that no session is taken).
    pub(crate) fn wait_listing(&self, user: u32, users: &[u32], followers: &[u32]) {
        let names = |ids: &[u32]| ids.iter().map(u32::to_string).collect::<Vec<_>>();
        let expected = (names(users), names(followers));
        let deadline = Instant::now() + PATIENCE;
        loop {
            let seen = listing(self.coordinator_port, user);
            if seen.as_ref() == Some(&expected) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "user {user}'s LIST should show users {users:?} and followers {followers:?}; it shows {seen:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The port of the live master of `cluster`, as the coordinator tells clients.
    pub(crate) fn master_port(&self, cluster: u32) -> Option<u16> {
        coordinator_query(self.coordinator_port, cluster)
    }

    /// Waits until `cluster` has a live master, and returns its server id.
    pub(crate) fn wait_master(&self, cluster: u32) -> u32 {
        eventually(&format!("a master in cluster {cluster}"), || {
            master_id(self.coordinator_port, cluster)
        })
    }

    /// Waits until `cluster`'s master is `server`.
    pub(crate) fn wait_master_is(&self, cluster: u32, server: u32) {
        eventually(
            &format!("server {server} to be master of cluster {cluster}"),
            || (master_id(self.coordinator_port, cluster) == Some(server)).then_some(()),
        )
    }

    /// Starts `tsc -k <port> -u user`.
    pub(crate) fn client(&self, user: u32) -> Proc {
        Proc::start(
            "tsc",
            &[
                "-k".into(),
                self.coordinator_port.to_string(),
                "-u".into(),
                user.to_string(),
            ],
        )
    }

    /// Starts `tsc -u user` and waits until it shows its prompt (`Ok`) or exits (`Err`).
    pub(crate) fn try_client(&self, user: u32) -> Result<Proc, Proc> {
        let mut client = self.client(user);
        if client.wait_for_or_exit(PROMPT) {
            Ok(client)
        } else {
            Err(client)
        }
    }

    /// Starts `tsc -u user` and waits until it shows its prompt.
    pub(crate) fn logged_in_client(&self, user: u32) -> Proc {
        self.try_client(user).unwrap_or_else(|client| {
            panic!(
                "tsc -u {user} did not log in; it printed:\n{}\n--- stderr:\n{}",
                client.stdout(),
                client.stderr()
            )
        })
    }
}

/// A loopback port nobody listens on (it was free a moment ago).
pub(crate) fn unused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

fn start_coordinator(clusters: u32, port: u16, timers: Timers) -> (Proc, u16) {
    let proc = Proc::start("coordinator", &coordinator_flags(port, clusters, &timers));
    let port = announced_port(&proc);
    (proc, port)
}

fn ask_master(coordinator_port: u16, cluster: u32) -> Option<(u32, u16)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    runtime.block_on(async {
        let mut client =
            CoordServiceClient::connect(format!("http://127.0.0.1:{coordinator_port}"))
                .await
                .ok()?;
        // User `cluster` lives in cluster `cluster` whatever the number of clusters.
        let info = client
            .get_server(Id { id: cluster as i32 })
            .await
            .ok()?
            .into_inner();
        Some((info.server_id as u32, info.port.parse().ok()?))
    })
}

/// What `LIST` answers `user` now, asked through the course's protocol at the master of
/// the user's cluster: every user, and the user's followers.
fn listing(coordinator_port: u16, user: u32) -> Option<(Vec<String>, Vec<String>)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    runtime.block_on(async {
        let mut coordinator =
            CoordServiceClient::connect(format!("http://127.0.0.1:{coordinator_port}"))
                .await
                .ok()?;
        let master = coordinator
            .get_server(Id { id: user as i32 })
            .await
            .ok()?
            .into_inner();
        let mut sns = SnsServiceClient::connect(format!("http://127.0.0.1:{}", master.port))
            .await
            .ok()?;
        let reply = sns
            .list(request(&user.to_string(), &[]))
            .await
            .ok()?
            .into_inner();
        Some((reply.all_users, reply.followers))
    })
}

fn coordinator_query(coordinator_port: u16, cluster: u32) -> Option<u16> {
    ask_master(coordinator_port, cluster).map(|(_, port)| port)
}

fn master_id(coordinator_port: u16, cluster: u32) -> Option<u32> {
    ask_master(coordinator_port, cluster).map(|(id, _)| id)
}
