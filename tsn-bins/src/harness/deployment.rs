//! [`Deployment`]: a local deployment as child processes — the coordinator and, per
//! cluster, its servers and its synchronizer — started, signalled, restarted and stopped.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::EtcdCluster;
use super::hosts::{Host, Network, Partition};
use super::launch::Launcher;
use super::member::Member;
use super::output::Sink;
use super::process::{Process, Setup};
use super::screen::Screen;
use super::topology::{COORDINATOR, SECOND_COORDINATOR, Topology, synchronizer_name, tsd_name};
use tsn_core::coordinator::Endpoint;
use tsn_grpc::tls::Identity;

use super::certs::{Authority, Validity};

use crate::cli::Fatal;

/// How long children get to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);
/// How often a wait on the children looks.
const POLL: Duration = Duration::from_millis(20);

/// A running local deployment. Each member's log (standard error) goes to
/// `<logs>/<name>.log`; its ready line (standard output) gives its address; `serving as
/// master|slave` in its log gives its role. Any member can be killed with SIGKILL and
/// started again with its former flags (its log file goes on, so that what every run of it
/// said stays in one place), or stopped with SIGSTOP and resumed with SIGCONT. With
/// [`Topology::hosts`], each member runs on a simulated host of its own (named as the
/// member), binding and advertising its address.
#[derive(Debug)]
pub struct Deployment {
    launcher: Launcher,
    logs: PathBuf,
    topology: Topology,
    /// The coordinator first, then the servers by cluster and id, then the synchronizers.
    pub members: Vec<Member>,
    /// The hosts the members run on, with [`Topology::hosts`]; dropped after them.
    network: Option<Network>,
    /// The etcd cluster the coordinators keep their records on, with coordination on etcd.
    etcd: Option<EtcdCluster>,
    /// The certificate authority of the members' certificates, with [`Topology::tls`].
    authority: Option<Authority>,
}

impl Deployment {
    /// Starts the coordinator, the servers and the synchronizers of `topology`, each this
    /// executable run as that program ([`Launcher::ThisExecutable`]), and waits until every
    /// server has a role. On failure every child started is stopped.
    pub async fn start(topology: Topology) -> Result<Deployment, Fatal> {
        topology.timers.check()?;
        let launcher = Launcher::this_executable()?;
        let network = topology.hosts.then(Network::create).transpose()?;
        let logs = topology.data_dir.join("logs");
        std::fs::create_dir_all(&logs)
            .map_err(|e| Fatal::new(format_args!("cannot create {}", logs.display()), e))?;
        let authority = topology
            .tls
            .then(|| Authority::create(&topology.tls_dir(), "TSN deployment CA"))
            .transpose()
            .map_err(|e| Fatal::new("cannot make the deployment's certificates", e))?;
        let etcd = match topology.etcd {
            true if topology.hosts => {
                return Err(Fatal(
                    "coordination on etcd does not run across simulated hosts yet".into(),
                ));
            }
            true => {
                let dir = topology.data_dir.join("etcd");
                std::fs::create_dir_all(&dir)
                    .map_err(|e| Fatal::new(format_args!("cannot create {}", dir.display()), e))?;
                let tls = authority
                    .as_ref()
                    .map(|a| a.issue(Identity::Etcd, Validity::Lasting))
                    .transpose()
                    .map_err(|e| Fatal::new("cannot make the etcd members' certificate", e))?;
                Some(EtcdCluster::start_at(3, &dir, Ipv4Addr::LOCALHOST, tls.as_ref()).await?)
            }
            false => None,
        };
        let mut deployment = Deployment {
            launcher,
            logs,
            topology,
            members: Vec::new(),
            network,
            etcd,
            authority,
        };
        match deployment.start_all().await {
            Ok(()) => Ok(deployment),
            Err(fatal) => {
                deployment.stop().await;
                Err(fatal)
            }
        }
    }

    /// The certificate authority's file, with [`Topology::tls`]: what clients verify the
    /// servers with (`tsc --tls-ca`).
    pub fn authority_file(&self) -> Option<PathBuf> {
        self.authority.as_ref().map(Authority::file)
    }

    /// The TLS flags of the member that is `identity`, with a certificate issued for it;
    /// none without [`Topology::tls`].
    fn tls_flags(&self, identity: Identity) -> Result<Vec<String>, Fatal> {
        let Some(authority) = &self.authority else {
            return Ok(Vec::new());
        };
        let files = authority
            .issue(identity, Validity::Lasting)
            .map_err(|e| Fatal::new(format_args!("cannot make a certificate for {identity}"), e))?;
        Ok(files.flags())
    }

    /// The deployment's shape.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Where to reach the coordinator: its host's address (or loopback) and its port.
    pub fn coordinator(&self) -> Endpoint {
        Endpoint {
            host: self.coordinator_host(),
            port: self.topology.coordinator_port,
        }
    }

    /// Where to reach every coordinator: the coordinator's address, and with coordination
    /// on etcd the second coordinator's (where it listens now).
    pub fn coordinators(&self) -> Vec<Endpoint> {
        let mut all = vec![self.coordinator()];
        if let Some(second) = self.member(SECOND_COORDINATOR)
            && let Ok(endpoint) = second.endpoint()
        {
            all.push(endpoint);
        }
        all
    }

    /// The etcd cluster of a deployment with coordination on etcd.
    pub fn etcd(&mut self) -> Option<&mut EtcdCluster> {
        self.etcd.as_mut()
    }

    /// The simulated hosts' network; an error on loopback.
    fn network(&self) -> Result<&Network, Fatal> {
        self.network
            .as_ref()
            .ok_or_else(|| Fatal("partitions need --hosts".into()))
    }

    /// The host of the member (or client) called `name`; an error on loopback.
    fn host_of(&self, name: &str) -> Result<(&Network, Host), Fatal> {
        let network = self.network()?;
        let host = network
            .hosts()
            .iter()
            .find(|h| h.label == name)
            .cloned()
            .ok_or_else(|| Fatal(format!("there is no host {name}")))?;
        Ok((network, host))
    }

    /// Cuts the network between members `a` and `b`, both ways, until [`Deployment::heal`].
    pub fn cut(&self, a: &str, b: &str) -> Result<Partition, Fatal> {
        let (network, a) = self.host_of(a)?;
        network.cut(&a, &self.host_of(b)?.1)
    }

    /// Drops what member `from` sends to member `to`, until [`Deployment::heal`]; the
    /// other way still works.
    pub fn cut_one_way(&self, from: &str, to: &str) -> Result<Partition, Fatal> {
        let (network, from) = self.host_of(from)?;
        network.cut_one_way(&from, &self.host_of(to)?.1)
    }

    /// Cuts member `name` from every other host, until [`Deployment::heal`].
    pub fn isolate(&self, name: &str) -> Result<Partition, Fatal> {
        let (network, host) = self.host_of(name)?;
        let mut partition = Partition::default();
        for other in network.hosts().iter().filter(|h| **h != host) {
            partition.join(network.cut(&host, other)?);
        }
        Ok(partition)
    }

    /// Ends `partition` (see [`Network::heal`]: a link another partition cut too stays
    /// cut until that one is healed).
    pub fn heal(&self, partition: Partition) -> Result<(), Fatal> {
        self.network()?.heal(partition)
    }

    /// The address to reach the coordinator at: its host's, or loopback.
    pub fn coordinator_host(&self) -> String {
        self.network
            .as_ref()
            .and_then(|n| n.hosts().iter().find(|h| h.label == COORDINATOR))
            .map_or("127.0.0.1".into(), |h| h.address.to_string())
    }

    /// The host called `label` (made if new), and the flags that bind a program there and
    /// point it at the coordinator (or, on etcd, at both coordinators); no host and no
    /// flags on loopback without etcd.
    fn place(&mut self, label: &str) -> Result<(Option<Host>, Vec<String>), Fatal> {
        let coordinator = self.coordinator_host();
        let Some(network) = self.network.as_mut() else {
            let coordinators = self.coordinators();
            if self.etcd.is_none() || label.starts_with(COORDINATOR) {
                return Ok((None, Vec::new()));
            }
            let list: Vec<String> = coordinators.iter().map(ToString::to_string).collect();
            return Ok((None, vec!["-h".into(), list.join(",")]));
        };
        let host = match network.hosts().iter().find(|h| h.label == label) {
            Some(host) => host.clone(),
            None => network.add_host(label)?,
        };
        let mut flags = Vec::new();
        if label != COORDINATOR {
            flags.extend(["-h".to_owned(), coordinator]);
        }
        Ok((Some(host), flags))
    }

    async fn start_all(&mut self) -> Result<(), Fatal> {
        let on_etcd: Vec<String> = match &self.etcd {
            Some(etcd) => vec!["--etcd".into(), etcd.endpoints_flag()],
            None => Vec::new(),
        };
        let mut args = self.topology.coordinator_args();
        args.extend(on_etcd.iter().cloned());
        args.extend(self.tls_flags(Identity::Coordinator)?);
        let coordinator = self.launch(COORDINATOR, "coordinator", None, None, args, false)?;
        let coordinator = coordinator.ready().await?;
        self.members.push(coordinator);
        if !on_etcd.is_empty() {
            let mut args = self.topology.second_coordinator_args();
            args.extend(on_etcd);
            args.extend(self.tls_flags(Identity::Coordinator)?);
            let second = self.launch(SECOND_COORDINATOR, "coordinator", None, None, args, false)?;
            let second = second.ready().await?;
            self.members.push(second);
        }
        for cluster in 1..=self.topology.clusters {
            for server in 1..=self.topology.servers {
                let mut args = self.topology.tsd_args(cluster, server);
                args.extend(self.tls_flags(Identity::Tsd { cluster, server })?);
                let name = tsd_name(cluster, server);
                let tsd = self.launch(&name, "tsd", Some(cluster), Some(server), args, false)?;
                let tsd = tsd.ready().await?;
                self.members.push(tsd);
            }
        }
        let synchronized = if self.topology.synchronizers {
            self.topology.clusters
        } else {
            0
        };
        for cluster in 1..=synchronized {
            let mut args = self.topology.synchronizer_args(cluster);
            args.extend(self.tls_flags(Identity::Synchronizer { cluster })?);
            let name = synchronizer_name(cluster);
            let synchronizer =
                self.launch(&name, "synchronizer", Some(cluster), None, args, false)?;
            let synchronizer = synchronizer.ready().await?;
            self.members.push(synchronizer);
        }
        self.wait_for_roles().await
    }

    async fn wait_for_roles(&self) -> Result<(), Fatal> {
        let all_have_roles = async {
            while self
                .members
                .iter()
                .any(|m| m.server.is_some() && !m.exit_reported && m.role().is_none())
            {
                tokio::time::sleep(POLL).await;
            }
        };
        tokio::time::timeout(self.topology.start_timeout, all_have_roles)
            .await
            .map_err(|_| {
                Fatal("the servers did not all take up a role in time; see the logs".into())
            })
    }

    /// What the member called `name` (`coordinator`, `tsd-1-2`) has logged so far, in all
    /// its runs.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.log_path(name)).unwrap_or_default()
    }

    /// What the member called `name` has logged since it was last started.
    pub fn current_log(&self, name: &str) -> String {
        let log = self.log(name);
        let start = self.member(name).map_or(0, |m| m.log_start) as usize;
        log.get(start..).unwrap_or_default().to_owned()
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.logs.join(format!("{name}.log"))
    }

    /// The folder of the members' logs.
    pub fn logs(&self) -> &Path {
        &self.logs
    }

    /// The member called `name`.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    fn member_mut(&mut self, name: &str) -> Result<&mut Member, Fatal> {
        self.members
            .iter_mut()
            .find(|m| m.name == name)
            .ok_or_else(|| Fatal(format!("there is no member {name} in the deployment")))
    }

    /// The tsd `server` of `cluster`.
    pub fn server(&mut self, cluster: u32, server: u32) -> Option<&mut Member> {
        self.member_mut(&tsd_name(cluster, server)).ok()
    }

    /// Kills the tsd with SIGKILL, as `kill -9` does.
    pub fn kill(&mut self, cluster: u32, server: u32) {
        let _ = self.kill_member(&tsd_name(cluster, server));
    }

    /// Starts a killed tsd again with its former flags, and waits until it has a role.
    pub async fn restart(&mut self, cluster: u32, server: u32) -> Result<(), Fatal> {
        self.restart_member(&tsd_name(cluster, server)).await
    }

    /// Kills the member called `name` with SIGKILL, as `kill -9` does, and reaps it.
    pub fn kill_member(&mut self, name: &str) -> Result<(), Fatal> {
        let member = self.member_mut(name)?;
        member.process.kill();
        member.exit_reported = true;
        Ok(())
    }

    /// Starts the member called `name` again (after [`Deployment::kill_member`]) with its
    /// former flags, its log going on in the same file. Waits until it listens, and a tsd
    /// until it has a role. A server that listened on a free port gets a new one.
    pub async fn restart_member(&mut self, name: &str) -> Result<(), Fatal> {
        let member = self.relaunch(name)?.ready().await?;
        self.rejoin(member)?;
        self.wait_for_roles().await
    }

    /// Starts the member called `name` again (after [`Deployment::kill_member`]) with its
    /// former flags, its log going on in the same file, without waiting: the caller waits
    /// with [`Starting::ready`], without holding the deployment (a member may need another
    /// one, started meanwhile, to get ready), and hands the member back with
    /// [`Deployment::rejoin`].
    pub fn relaunch(&mut self, name: &str) -> Result<Starting, Fatal> {
        let member = self.member_mut(name)?;
        let (program, cluster, server) = (member.program.clone(), member.cluster, member.server);
        let args = member.args.clone();
        self.launch(name, &program, cluster, server, args, true)
    }

    /// Takes back a member started again with [`Deployment::relaunch`], in its place.
    pub fn rejoin(&mut self, member: Member) -> Result<(), Fatal> {
        let name = member.name.clone();
        *self.member_mut(&name)? = member;
        Ok(())
    }

    /// Stops the member called `name` with SIGSTOP: it keeps its sockets but does nothing,
    /// as a process that hangs or a machine that stalls.
    pub fn pause(&mut self, name: &str) -> Result<(), Fatal> {
        self.member_mut(name)?.process.pause();
        Ok(())
    }

    /// Lets a member stopped by [`Deployment::pause`] go on, with SIGCONT.
    pub fn resume(&mut self, name: &str) -> Result<(), Fatal> {
        self.member_mut(name)?.process.resume();
        Ok(())
    }

    /// A `tsc` client of `user` connected to this deployment (on a host of its own, with
    /// hosts), its log (standard error) in `<logs>/tsc-<user>.log`.
    pub fn screen(&mut self, user: u32) -> Result<Screen, Fatal> {
        let (host, _) = self.place(&format!("tsc-{user}"))?;
        let path = self.logs.join(format!("tsc-{user}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Fatal::new(format_args!("cannot open {}", path.display()), e))?;
        let authority = self.authority_file();
        Screen::open(
            &self.launcher,
            &self.coordinator(),
            user,
            Some(log),
            host,
            authority.as_deref(),
        )
    }

    /// Stops every child: SIGTERM (and SIGCONT, for a paused one), then SIGKILL for those
    /// still running after a while.
    pub async fn stop(&mut self) {
        for member in &mut self.members {
            member.process.terminate();
        }
        let deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
        while tokio::time::Instant::now() < deadline
            && self
                .members
                .iter_mut()
                .any(|m| m.process.try_wait().is_none())
        {
            tokio::time::sleep(POLL).await;
        }
        for member in &mut self.members {
            member.process.kill();
        }
    }

    /// Starts `program` as the member called `name`, without waiting until it listens
    /// ([`Starting::ready`]). Its log goes to `<logs>/<name>.log`: a new file, or with
    /// `again` the former one, continued.
    fn launch(
        &mut self,
        name: &str,
        program: &str,
        cluster: Option<u32>,
        server: Option<u32>,
        args: Vec<String>,
        again: bool,
    ) -> Result<Starting, Fatal> {
        let name = name.to_owned();
        let log_path = self.log_path(&name);
        let log_start = match again {
            true => std::fs::metadata(&log_path).map_or(0, |m| m.len()),
            false => 0,
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(again)
            .truncate(!again)
            .open(&log_path)
            .map_err(|e| Fatal::new(format_args!("cannot write {}", log_path.display()), e))?;
        let (host, mut placed) = self.place(&name)?;
        if let Some(host) = &host {
            let address = host.address.to_string();
            placed.extend([
                "--bind".into(),
                address.clone(),
                "--advertise-host".into(),
                address,
            ]);
        }
        let setup = Setup {
            stdout: Sink::memory(),
            stderr: Sink {
                file: Some(log),
                ..Sink::default()
            },
            host,
            ..Setup::default()
        };
        let full: Vec<String> = args.iter().cloned().chain(placed).collect();
        let process = Process::start(&self.launcher, program, &full, setup)
            .map_err(|e| Fatal::new(format_args!("cannot start {name}"), e))?;
        Ok(Starting {
            start_timeout: self.topology.start_timeout,
            member: Member {
                name,
                program: program.to_owned(),
                cluster,
                server,
                address: String::new(),
                args,
                process,
                exit_reported: false,
                log_start,
            },
            log_path,
        })
    }
}

/// A member started, not yet listening ([`Deployment::relaunch`]).
#[derive(Debug)]
pub struct Starting {
    start_timeout: Duration,
    member: Member,
    log_path: PathBuf,
}

impl Starting {
    /// Waits until the member listens, and gives it; or kills it and says why it did not
    /// start.
    pub async fn ready(mut self) -> Result<Member, Fatal> {
        match ready(&mut self.member.process, self.start_timeout).await {
            Ok(address) => Ok(Member {
                address,
                ..self.member
            }),
            Err(why) => {
                self.member.process.kill();
                Err(Fatal(format!(
                    "{} did not start: {why}; {} (log: {})",
                    self.member.name,
                    self.member.process.stderr().last_line(),
                    self.log_path.display()
                )))
            }
        }
    }
}

/// Waits until `process` prints its ready line (`... listening on <address> ...`) within
/// `timeout`; returns the address, or why it did not come.
async fn ready(process: &mut Process, timeout: Duration) -> Result<String, String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let printed = process.stdout().text();
        if let Some(rest) = printed.split("listening on ").nth(1)
            && rest.contains(char::is_whitespace)
        {
            return Ok(rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned());
        }
        if process.try_wait().is_some() && process.stderr().has_ended() {
            return Err("it stopped".into());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("it did not listen within {timeout:?}"));
        }
        tokio::time::sleep(POLL).await;
    }
}
