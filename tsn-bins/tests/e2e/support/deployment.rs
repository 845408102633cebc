//! A deployment of real processes for a test: a coordinator, tsd servers, synchronizers
//! and tsc clients on free loopback ports — or each on a simulated host of its own — with
//! data in a temporary folder and short timers; and what the coordinator says of it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tonic::transport::Channel;
use tsn_bins::harness::certs::Validity;
use tsn_bins::harness::hosts::REQUIRE_NETNS;
use tsn_bins::harness::topology::{coordinator_flags, synchronizer_flags, tsd_flags};
use tsn_bins::harness::{Host, Network, Partition};
use tsn_grpc::proto::csce438::Id;
use tsn_grpc::proto::csce438::coord_service_client::CoordServiceClient;
use tsn_grpc::proto::csce438::sns_service_client::SnsServiceClient;
use tsn_grpc::tls::Identity;

use super::*;

/// A deployment of real processes with their data under one temporary folder: on
/// loopback, or each process on a simulated host of its own, with a folder of its own.
pub(crate) struct Deployment {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) clusters: u32,
    pub(crate) coordinator: Proc,
    /// The coordinator's host, as the others reach it.
    pub(crate) coordinator_host: String,
    pub(crate) coordinator_port: u16,
    pub(crate) timers: Timers,
    servers: Vec<((u32, u32), Proc)>,
    synchronizers: Vec<(u32, Proc)>,
    /// How many synchronizers were started elsewhere (another folder, another host).
    moves: u32,
    /// The simulated hosts, when the deployment spreads over them; dropped after the
    /// processes.
    network: Option<Network>,
    /// With coordination on etcd: the etcd cluster, the second coordinator, and the list
    /// of both coordinators' addresses the others are given.
    on_etcd: Option<OnEtcd>,
    /// With TLS on every connection: the certificates.
    tls: Option<Tls>,
}

/// A deployment's coordination on etcd.
pub(crate) struct OnEtcd {
    pub(crate) etcd: Etcd,
    /// The coordinator besides [`Deployment::coordinator`].
    pub(crate) second: Proc,
    /// `host:port,host:port`: both coordinators.
    list: String,
}

impl Deployment {
    /// Starts a coordinator for `clusters` clusters with the default timers.
    pub(crate) fn start(clusters: u32) -> Deployment {
        Deployment::start_with(clusters, STEADY)
    }

    /// Starts a coordinator for `clusters` clusters with `timers`.
    pub(crate) fn start_with(clusters: u32, timers: Timers) -> Deployment {
        Deployment::start_in(clusters, timers, None)
    }

    /// Starts a coordinator for `clusters` clusters with `timers` on a simulated host of
    /// its own; every process started later gets a host of its own too. `None`, after one
    /// line on standard error saying why, where this machine cannot make hosts (not root);
    /// with `TSN_REQUIRE_NETNS=1` (as in CI) that fails the test instead.
    pub(crate) fn on_hosts(clusters: u32, timers: Timers) -> Option<Deployment> {
        let network = simulated_hosts()?;
        Some(Deployment::start_in(clusters, timers, Some(network)))
    }

    /// Starts two coordinators for `clusters` clusters with `timers`, keeping their records
    /// on a new etcd cluster of 3 members; every process started later is given both
    /// coordinators' addresses. `None`, after one line on standard error saying why, where
    /// no `etcd` can be started; with `TSN_REQUIRE_ETCD=1` (as in CI) that fails the test
    /// instead.
    pub(crate) fn on_etcd(clusters: u32, timers: Timers) -> Option<Deployment> {
        let etcd = etcd_cluster()?;
        Some(Deployment::start_on_etcd(
            clusters, timers, etcd, None, None,
        ))
    }

    /// Like [`Deployment::on_etcd`], every process on a simulated host of its own (the two
    /// coordinators `coordinator` and `coordinator-2`), and etcd at this machine's address
    /// on their network, where only the coordinators talk to it. `None` where this machine
    /// cannot make hosts or has no `etcd`, as [`Deployment::on_hosts`] and
    /// [`Deployment::on_etcd`] say.
    pub(crate) fn on_hosts_and_etcd(clusters: u32, timers: Timers) -> Option<Deployment> {
        let network = simulated_hosts()?;
        let etcd = etcd_cluster_at(network.gateway(), None)?;
        Some(Deployment::start_on_etcd(
            clusters,
            timers,
            etcd,
            Some(network),
            None,
        ))
    }

    /// Like [`Deployment::on_etcd`], with TLS on every connection, etcd's included: etcd
    /// serves with a certificate naming it `etcd.tsn`, and takes only clients with a
    /// certificate of the deployment's authority.
    pub(crate) fn on_etcd_with_tls(clusters: u32, timers: Timers) -> Option<Deployment> {
        let tls = Tls::new();
        let member = tls
            .authority
            .issue(Identity::Etcd, Validity::Lasting)
            .expect("a certificate");
        let etcd = etcd_cluster_at(std::net::Ipv4Addr::LOCALHOST, Some(&member))?;
        Some(Deployment::start_on_etcd(
            clusters,
            timers,
            etcd,
            None,
            Some(tls),
        ))
    }

    fn start_on_etcd(
        clusters: u32,
        timers: Timers,
        etcd: Etcd,
        mut network: Option<Network>,
        tls: Option<Tls>,
    ) -> Deployment {
        let mut extra = vec!["--etcd".to_owned(), etcd.cluster.endpoints_flag()];
        if let Some(tls) = &tls {
            extra.extend(tls.flags(Identity::Coordinator));
        }
        let mut start = |label: &str| {
            let host = network.as_mut().map(|n| new_host(n, label));
            let (proc, port) = start_coordinator_with(clusters, 0, timers, host.as_ref(), &extra);
            let address = host.map_or("127.0.0.1".into(), |h| h.address.to_string());
            (proc, address, port)
        };
        let (first, first_host, first_port) = start("coordinator");
        let (second, second_host, second_port) = start("coordinator-2");
        let list = format!("{first_host}:{first_port},{second_host}:{second_port}");
        let mut deployment = Deployment::around(clusters, timers, network, first, first_port);
        deployment.coordinator_host = first_host;
        deployment.on_etcd = Some(OnEtcd { etcd, second, list });
        deployment.tls = tls;
        deployment
    }

    /// Starts a coordinator for `clusters` clusters with `timers`, on loopback, with TLS on
    /// every connection: each process started gets a certificate naming it, and each
    /// client verifies the servers.
    pub(crate) fn with_tls(clusters: u32, timers: Timers) -> Deployment {
        Deployment::with_tls_as(Tls::new(), clusters, timers)
    }

    /// Like [`Deployment::with_tls`], with the coordinator and the tsd servers taking
    /// plaintext calls from clients too (`--allow-plaintext-clients`).
    pub(crate) fn with_tls_and_plaintext_clients(clusters: u32, timers: Timers) -> Deployment {
        let tls = Tls {
            plaintext_clients: true,
            ..Tls::new()
        };
        Deployment::with_tls_as(tls, clusters, timers)
    }

    fn with_tls_as(tls: Tls, clusters: u32, timers: Timers) -> Deployment {
        let extra = tls.flags(Identity::Coordinator);
        let (coordinator, port) = start_coordinator_with(clusters, 0, timers, None, &extra);
        let mut deployment = Deployment::around(clusters, timers, None, coordinator, port);
        deployment.tls = Some(tls);
        deployment
    }

    /// The certificates of a deployment with TLS.
    pub(crate) fn tls(&self) -> &Tls {
        self.tls.as_ref().expect("a deployment with TLS")
    }

    /// The TLS flags of the process that is `identity`; none without TLS.
    fn tls_flags(&self, identity: Identity) -> Vec<String> {
        self.tls
            .as_ref()
            .map(|tls| tls.flags(identity))
            .unwrap_or_default()
    }

    /// Kills the first coordinator (the one every process tries first) with `kill -9`;
    /// the second carries on alone, and this deployment asks it from then on.
    pub(crate) fn kill_first_coordinator(&mut self) {
        let on_etcd = self.on_etcd.as_mut().expect("two coordinators, on etcd");
        self.coordinator.kill();
        let second_port = announced_port(&on_etcd.second);
        std::mem::swap(&mut self.coordinator, &mut on_etcd.second);
        self.coordinator_port = second_port;
    }

    fn start_in(clusters: u32, timers: Timers, mut network: Option<Network>) -> Deployment {
        let host = network.as_mut().map(|n| new_host(n, "coordinator"));
        let (coordinator, coordinator_port) = start_coordinator(clusters, 0, timers, host.as_ref());
        let mut deployment =
            Deployment::around(clusters, timers, network, coordinator, coordinator_port);
        if let Some(host) = host {
            deployment.coordinator_host = host.address.to_string();
        }
        deployment
    }

    /// A deployment around a started coordinator, on loopback unless `network` is given.
    fn around(
        clusters: u32,
        timers: Timers,
        network: Option<Network>,
        coordinator: Proc,
        coordinator_port: u16,
    ) -> Deployment {
        Deployment {
            dir: tempfile::tempdir().expect("a temporary folder"),
            clusters,
            coordinator,
            coordinator_host: "127.0.0.1".into(),
            coordinator_port,
            timers,
            servers: Vec::new(),
            synchronizers: Vec::new(),
            moves: 0,
            network,
            on_etcd: None,
            tls: None,
        }
    }

    /// The host of the process called `label`: the one it had before, or a new one; `None`
    /// on loopback.
    fn place(&mut self, label: &str) -> Option<Host> {
        let network = self.network.as_mut()?;
        let known = network.hosts().iter().find(|h| h.label == label).cloned();
        Some(known.unwrap_or_else(|| new_host(network, label)))
    }

    /// The data folder of the process called `label`: its own on a host, the deployment's on
    /// loopback (where each server keeps to its own folders in it).
    fn data_dir_of(&self, label: &str) -> PathBuf {
        match self.network {
            Some(_) => self.dir.path().join(label),
            None => self.dir.path().to_path_buf(),
        }
    }

    /// The flags that point a process at the coordinator (at both, on etcd).
    fn coordinator_flags(&self) -> [String; 2] {
        let hosts = match &self.on_etcd {
            Some(on_etcd) => on_etcd.list.clone(),
            None => self.coordinator_host.clone(),
        };
        ["-h".into(), hosts]
    }

    /// The etcd cluster of a deployment on etcd.
    pub(crate) fn etcd(&mut self) -> &mut Etcd {
        &mut self.on_etcd.as_mut().expect("a deployment on etcd").etcd
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
        let label = format!("synchronizer-{cluster}");
        let data_dir = self.data_dir_of(&label);
        self.start_synchronizer_as(&label, &data_dir, cluster, extra)
    }

    /// Starts the synchronizer of `cluster` elsewhere: on a new host (or, on loopback, a
    /// new folder), with an empty folder, as when it moves to another machine.
    pub(crate) fn start_synchronizer_elsewhere(&mut self, cluster: u32) -> &mut Proc {
        self.moves += 1;
        let label = format!("synchronizer-{cluster}-moved-{}", self.moves);
        let empty_folder = self.dir.path().join(&label);
        self.start_synchronizer_as(&label, &empty_folder, cluster, &[])
    }

    /// Starts the synchronizer of `cluster` as the process called `label`, with its folder
    /// under `data_dir`.
    fn start_synchronizer_as(
        &mut self,
        label: &str,
        data_dir: &Path,
        cluster: u32,
        extra: &[&str],
    ) -> &mut Proc {
        self.stop_synchronizer(cluster);
        let host = self.place(label);
        let mut args = synchronizer_flags(
            cluster,
            self.coordinator_port,
            0,
            data_dir,
            Some(&self.timers),
        );
        args.extend(self.coordinator_flags());
        args.extend(bind_flags(host.as_ref()));
        args.extend(self.tls_flags(Identity::Synchronizer { cluster }));
        args.extend(extra.iter().map(|a| a.to_string()));
        let proc = start_claiming_on(host, "synchronizer", &args);
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
        let host = self.network.as_ref().map(|n| n.hosts()[0].clone());
        let (coordinator, _) = start_coordinator_with(
            self.clusters,
            self.coordinator_port,
            self.timers,
            host.as_ref(),
            &self.tls_flags(Identity::Coordinator),
        );
        self.coordinator = coordinator;
    }

    /// The flags of `tsd -c cluster -s server` for this deployment's coordinator, on a free
    /// port, with the data folder `data_dir` (the default timers).
    pub(crate) fn tsd_flags(&self, cluster: u32, server: u32, data_dir: &Path) -> Vec<String> {
        let mut flags = tsd_flags(cluster, server, self.coordinator_port, 0, data_dir, None);
        flags.extend(self.coordinator_flags());
        flags
    }

    /// The flags of `synchronizer -n cluster` for this deployment's coordinator, on a free
    /// port, with the data folder `data_dir` (the default timers).
    pub(crate) fn synchronizer_flags(&self, cluster: u32, data_dir: &Path) -> Vec<String> {
        let mut flags = synchronizer_flags(cluster, self.coordinator_port, 0, data_dir, None);
        flags.extend(self.coordinator_flags());
        flags
    }

    /// Starts `tsd -c cluster -s server` on a free port and waits until it listens.
    pub(crate) fn start_server(&mut self, cluster: u32, server: u32) -> &mut Proc {
        self.stop_server(cluster, server);
        let label = format!("tsd-{cluster}-{server}");
        let host = self.place(&label);
        let mut args = tsd_flags(
            cluster,
            server,
            self.coordinator_port,
            0,
            &self.data_dir_of(&label),
            Some(&self.timers),
        );
        args.extend(self.coordinator_flags());
        args.extend(bind_flags(host.as_ref()));
        args.extend(self.tls_flags(Identity::Tsd { cluster, server }));
        let proc = start_claiming_on(host, "tsd", &args);
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
            let seen = block_on(listing(
                &self.coordinator_address(),
                user,
                self.tls.as_ref(),
            ));
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

    /// The host of the process called `label` (`coordinator`, `tsd-1-2`).
    fn host(&self, label: &str) -> Host {
        let network = self.network.as_ref().expect("a deployment on hosts");
        network
            .hosts()
            .iter()
            .find(|h| h.label == label)
            .unwrap_or_else(|| panic!("no host {label}"))
            .clone()
    }

    /// Cuts the network between the hosts of `a` and `b`, both ways, until
    /// [`Deployment::heal`].
    pub(crate) fn cut(&self, a: &str, b: &str) -> Partition {
        let network = self.network.as_ref().expect("a deployment on hosts");
        network
            .cut(&self.host(a), &self.host(b))
            .unwrap_or_else(|e| panic!("cutting {a} from {b}: {}", e.0))
    }

    /// Ends `partition`.
    pub(crate) fn heal(&self, partition: Partition) {
        let network = self.network.as_ref().expect("a deployment on hosts");
        network
            .heal(partition)
            .unwrap_or_else(|e| panic!("healing a partition: {}", e.0));
    }

    /// Whether every process runs on a simulated host of its own.
    pub(crate) fn is_on_hosts(&self) -> bool {
        self.network.is_some()
    }

    /// The coordinator's address, `host:port`.
    pub(crate) fn coordinator_address(&self) -> String {
        format!("{}:{}", self.coordinator_host, self.coordinator_port)
    }

    /// The port of the live master of `cluster`, as the coordinator tells clients.
    pub(crate) fn master_port(&self, cluster: u32) -> Option<u16> {
        self.ask_master(cluster).map(|master| master.port)
    }

    /// The address (`host:port`) of the live master of `cluster`, as the coordinator tells
    /// clients.
    pub(crate) fn master_address(&self, cluster: u32) -> Option<String> {
        self.ask_master(cluster).map(|master| master.address())
    }

    /// Waits until `cluster` has a live master, and returns its server id.
    pub(crate) fn wait_master(&self, cluster: u32) -> u32 {
        eventually(&format!("a master in cluster {cluster}"), || {
            self.ask_master(cluster).map(|master| master.id)
        })
    }

    /// Waits until `cluster`'s master is `server`.
    pub(crate) fn wait_master_is(&self, cluster: u32, server: u32) {
        eventually(
            &format!("server {server} to be master of cluster {cluster}"),
            || {
                let master = self.ask_master(cluster);
                master.is_some_and(|m| m.id == server).then_some(())
            },
        )
    }

    /// Starts `tsc -h <coordinator> -k <port> -u user` (on a host of its own, on hosts).
    pub(crate) fn client(&mut self, user: u32) -> Proc {
        let host = self.place(&format!("tsc-{user}"));
        let mut args = self.client_flags(user);
        if let Some(tls) = &self.tls {
            args.extend(tls.client_flags());
        }
        Proc::start_on(host, "tsc", &args)
    }

    /// Starts `tsc -h <coordinator> -k <port> -u user` without TLS, as the course's client
    /// would connect, whether the deployment has TLS or not.
    pub(crate) fn plaintext_client(&mut self, user: u32) -> Proc {
        Proc::start("tsc", &self.client_flags(user))
    }

    /// The flags of `tsc -h <coordinator> -k <port> -u user`.
    fn client_flags(&self, user: u32) -> Vec<String> {
        let mut args = self.coordinator_flags().to_vec();
        args.extend([
            "-k".into(),
            self.coordinator_port.to_string(),
            "-u".into(),
            user.to_string(),
        ]);
        args
    }

    /// Starts `tsc -u user` and waits until it shows its prompt (`Ok`) or exits (`Err`).
    pub(crate) fn try_client(&mut self, user: u32) -> Result<Proc, Proc> {
        let mut client = self.client(user);
        if client.wait_for_or_exit(PROMPT) {
            Ok(client)
        } else {
            Err(client)
        }
    }

    /// Starts `tsc -u user` and waits until it shows its prompt.
    pub(crate) fn logged_in_client(&mut self, user: u32) -> Proc {
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

/// Whether this machine can make simulated hosts; if not, says why in one line on
/// standard error. With `TSN_REQUIRE_NETNS=1` (as in CI) it must: a test fails instead.
pub(crate) fn hosts_available() -> bool {
    let Err(why) = Network::available() else {
        return true;
    };
    assert!(
        std::env::var(REQUIRE_NETNS).as_deref() != Ok("1"),
        "{REQUIRE_NETNS}=1, but simulated hosts cannot be made: {why}"
    );
    eprintln!("did not run across simulated hosts: {why}");
    false
}

/// A new network of simulated hosts, or `None` where none can be made
/// ([`hosts_available`]).
pub(crate) fn simulated_hosts() -> Option<Network> {
    hosts_available()
        .then(|| Network::create().unwrap_or_else(|e| panic!("simulated hosts: {}", e.0)))
}

/// The flags that have a server listen at `host`'s address and announce it; none on
/// loopback (the programs' default).
fn bind_flags(host: Option<&Host>) -> Vec<String> {
    host.map(|host| {
        let address = host.address.to_string();
        vec![
            "--bind".into(),
            address.clone(),
            "--advertise-host".into(),
            address,
        ]
    })
    .unwrap_or_default()
}

/// A new host called `label` on `network`.
fn new_host(network: &mut Network, label: &str) -> Host {
    network
        .add_host(label)
        .unwrap_or_else(|e| panic!("a simulated host for {label}: {}", e.0))
}

/// Starts a coordinator on `port` (0: a free one), on `host` if given; returns it with the
/// port it listens on.
fn start_coordinator(clusters: u32, port: u16, timers: Timers, host: Option<&Host>) -> (Proc, u16) {
    start_coordinator_with(clusters, port, timers, host, &[])
}

/// Like [`start_coordinator`], with `extra` flags.
fn start_coordinator_with(
    clusters: u32,
    port: u16,
    timers: Timers,
    host: Option<&Host>,
    extra: &[String],
) -> (Proc, u16) {
    let mut args = coordinator_flags(port, clusters, &timers);
    args.extend(bind_flags(host));
    args.extend(extra.iter().cloned());
    let proc = Proc::start_on(host.cloned(), "coordinator", &args);
    let port = announced_port(&proc);
    (proc, port)
}

/// A cluster's master, as the coordinator names it.
struct Master {
    id: u32,
    host: String,
    port: u16,
}

impl Master {
    fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// A channel to `address` (`host:port`): over TLS with `tls`'s settings, or plaintext.
async fn channel_to(address: &str, tls: Option<&Tls>) -> Option<Channel> {
    match tls {
        Some(tls) => Some(tls.channel(address)),
        None => Channel::from_shared(format!("http://{address}"))
            .ok()?
            .connect()
            .await
            .ok(),
    }
}

/// The master the coordinator at `coordinator` (`host:port`) routes `user` to, asked
/// through the course's `GetServer` (over TLS with `tls`); `None` while there is none or
/// no answer.
async fn master_for(coordinator: &str, user: u32, tls: Option<&Tls>) -> Option<Master> {
    let mut client = CoordServiceClient::new(channel_to(coordinator, tls).await?);
    let info = client
        .get_server(Id { id: user as i32 })
        .await
        .ok()?
        .into_inner();
    Some(Master {
        id: info.server_id as u32,
        host: info.hostname,
        port: info.port.parse().ok()?,
    })
}

/// Runs `future` on a runtime of its own, for the tests' synchronous waits.
fn block_on<T>(future: impl Future<Output = Option<T>>) -> Option<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?
        .block_on(future)
}

impl Deployment {
    /// Asks the coordinator for the master of `cluster`.
    fn ask_master(&self, cluster: u32) -> Option<Master> {
        // User `cluster` lives in cluster `cluster` whatever the number of clusters.
        block_on(master_for(
            &self.coordinator_address(),
            cluster,
            self.tls.as_ref(),
        ))
    }
}

/// What `LIST` answers `user` now, asked through the course's protocol at the master of
/// the user's cluster (over TLS with `tls`): every user, and the user's followers.
async fn listing(
    coordinator: &str,
    user: u32,
    tls: Option<&Tls>,
) -> Option<(Vec<String>, Vec<String>)> {
    let master = master_for(coordinator, user, tls).await?;
    let mut sns = SnsServiceClient::new(channel_to(&master.address(), tls).await?);
    let reply = sns
        .list(request(&user.to_string(), &[]))
        .await
        .ok()?
        .into_inner();
    Some((reply.all_users, reply.followers))
}
