//! [`EtcdCluster`]: a cluster of real etcd members, started from the `etcd` binary on the
//! PATH, on free loopback ports, each member's data in a folder of its own: for
//! `tsn-local --etcd`, the tools and the tests. Killed when dropped, and (on Linux) sent
//! SIGTERM when the thread that started them ends.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tsn_core::coordinator::Endpoint;
use tsn_grpc::etcd::{Etcd, MemberStatus};
use tsn_grpc::tls::Security;

use super::certs::TlsFiles;

use crate::cli::Fatal;
use crate::harness::free_port;
use crate::harness::launch::stop_with_parent;

/// The program.
const ETCD: &str = "etcd";

/// The variable that, set to `1` (as in CI), makes a test that finds no `etcd` fail
/// instead of skipping.
pub const REQUIRE_ETCD: &str = "TSN_REQUIRE_ETCD";

/// How long a cluster may take to elect its first leader.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How many times a cluster is started on fresh ports when a member exits at start.
const START_ATTEMPTS: u32 = 3;

/// How many of a member's last log lines an error message shows.
const LOG_TAIL_LINES: usize = 5;

/// How often a starting cluster is asked whether it has a leader.
const POLL: Duration = Duration::from_millis(50);

/// Why a cluster did not start.
enum Start {
    /// A member's process ended.
    MemberExited(String),
    /// No leader within the time allowed.
    NoLeader(String),
}

/// One member: its flags, and its process while it runs.
#[derive(Debug)]
struct Member {
    name: String,
    client: Endpoint,
    args: Vec<String>,
    log: PathBuf,
    process: Option<Child>,
}

/// A running etcd cluster.
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<Member>,
    client: Etcd,
}

impl EtcdCluster {
    /// Whether `etcd` can be started here; if not, why.
    pub fn available() -> Result<(), String> {
        match Command::new(ETCD)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(format!("`{ETCD} --version` exited with {status}")),
            Err(e) => Err(format!("no `{ETCD}` program on the PATH ({e})")),
        }
    }

    /// Starts a cluster of `members` members on loopback, with timers fit for one machine
    /// (heartbeat 50 ms, election timeout 500 ms), and waits until it has a leader. Their
    /// data and logs are in `dir/try-1`; a member that exits at start (a port found free
    /// was taken before it listened) makes the cluster start again on fresh ports, in
    /// `dir/try-2`, up to 3 tries.
    pub async fn start(members: usize, dir: &Path) -> Result<EtcdCluster, Fatal> {
        EtcdCluster::start_at(members, dir, Ipv4Addr::LOCALHOST, None).await
    }

    /// Like [`EtcdCluster::start`], every member listening at `address` (this machine's
    /// address on a network of simulated hosts, say) on ports free on loopback; with
    /// `tls`, the certificate of an etcd member ([`Identity::Etcd`]), its clients are
    /// served over TLS and must present a certificate of the same authority (the
    /// cluster's own client presents the members' certificate). The members talk to each
    /// other in plaintext.
    ///
    /// [`Identity::Etcd`]: tsn_grpc::tls::Identity::Etcd
    pub async fn start_at(
        members: usize,
        dir: &Path,
        address: Ipv4Addr,
        tls: Option<&TlsFiles>,
    ) -> Result<EtcdCluster, Fatal> {
        EtcdCluster::available().map_err(Fatal)?;
        let mut attempt = 1;
        loop {
            let mut cluster =
                EtcdCluster::plan(members, &dir.join(format!("try-{attempt}")), address, tls)?;
            for i in 0..cluster.members.len() {
                cluster.start_member(i)?;
            }
            match cluster.wait_started(START_TIMEOUT).await {
                Ok(()) => return Ok(cluster),
                Err(Start::MemberExited(_)) if attempt < START_ATTEMPTS => attempt += 1,
                Err(Start::MemberExited(why) | Start::NoLeader(why)) => return Err(Fatal(why)),
            }
        }
    }

    /// A cluster of `members` members not started yet, on ports free a moment ago, their
    /// data and logs in `dir`, emptied first: a new cluster cannot start on the data of
    /// one whose members listened on other ports.
    fn plan(
        members: usize,
        dir: &Path,
        address: Ipv4Addr,
        tls: Option<&TlsFiles>,
    ) -> Result<EtcdCluster, Fatal> {
        if dir.exists() {
            std::fs::remove_dir_all(dir)
                .map_err(|e| Fatal::new(format_args!("cannot empty {}", dir.display()), e))?;
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| Fatal::new(format_args!("cannot make {}", dir.display()), e))?;
        let token = format!("tsn-{:016x}", rand::random::<u64>());
        let mut planned = Vec::new();
        for i in 1..=members {
            let client = Endpoint {
                host: address.to_string(),
                port: free_port()?,
            };
            planned.push((format!("member-{i}"), client, free_port()?));
        }
        let initial_cluster: Vec<String> = planned
            .iter()
            .map(|(name, _, peer)| format!("{name}=http://{address}:{peer}"))
            .collect();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let members: Vec<Member> = planned
            .into_iter()
            .map(|(name, client, peer)| {
                let mut args = vec![
                    format!("--name={name}"),
                    format!("--data-dir={}", dir.join(&name).display()),
                    format!("--listen-client-urls={scheme}://{client}"),
                    format!("--advertise-client-urls={scheme}://{client}"),
                    format!("--listen-peer-urls=http://{address}:{peer}"),
                    format!("--initial-advertise-peer-urls=http://{address}:{peer}"),
                    format!("--initial-cluster={}", initial_cluster.join(",")),
                    format!("--initial-cluster-token={token}"),
                    "--initial-cluster-state=new".into(),
                    "--heartbeat-interval=50".into(),
                    "--election-timeout=500".into(),
                ];
                if let Some(tls) = tls {
                    args.extend([
                        format!("--cert-file={}", tls.certificate.display()),
                        format!("--key-file={}", tls.key.display()),
                        format!("--trusted-ca-file={}", tls.authority.display()),
                        "--client-cert-auth".into(),
                    ]);
                }
                Member {
                    log: dir.join(format!("{name}.log")),
                    name,
                    client,
                    args,
                    process: None,
                }
            })
            .collect();
        let endpoints: Vec<Endpoint> = members.iter().map(|m: &Member| m.client.clone()).collect();
        let client = match tls {
            None => Etcd::new(&endpoints),
            Some(tls) => {
                let security = Security::server(tls.key_files(), &tls.authority, false)
                    .map_err(|e| Fatal::new("cannot use the etcd members' certificate", e))?;
                Etcd::with_security(&endpoints, &Arc::new(security))
            }
        }
        .map_err(|e| Fatal::new("bad etcd addresses", e))?;
        Ok(EtcdCluster { client, members })
    }

    /// Waits at most `limit` until every member of the just started cluster answers and
    /// one leads; fails at once where a member exits (a port that was free when planned
    /// may have been taken since: the others may well elect a leader without it).
    async fn wait_started(&mut self, limit: Duration) -> Result<(), Start> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(exited) = self.exited_member() {
                return Err(Start::MemberExited(format!(
                    "etcd {} exited at start: {}",
                    self.members[exited].name,
                    self.log_tail(exited)
                )));
            }
            let statuses = self.client.statuses().await;
            if statuses.iter().all(Option::is_some) && leader_among(&statuses).is_some() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Start::NoLeader(self.no_leader(limit)));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The first member whose process has ended, if any.
    fn exited_member(&mut self) -> Option<usize> {
        self.members.iter_mut().position(|m| {
            m.process
                .as_mut()
                .is_some_and(|p| !matches!(p.try_wait(), Ok(None)))
        })
    }

    /// The last lines member `i` logged, for a message.
    fn log_tail(&self, i: usize) -> String {
        let log = &self.members[i].log;
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
        format!("{} ends with:\n{tail}", log.display())
    }

    /// Why no leader was found within `limit`, with the end of every member's log.
    fn no_leader(&self, limit: Duration) -> String {
        let tails: Vec<String> = (0..self.members.len()).map(|i| self.log_tail(i)).collect();
        format!(
            "the etcd cluster elected no leader within {limit:?}; {}",
            tails.join("\n")
        )
    }

    /// How many members the cluster has.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the cluster has no member (never: a cluster starts with at least one).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The members' client addresses.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        self.members.iter().map(|m| m.client.clone()).collect()
    }

    /// The members' client addresses as a flag takes them: `host:port,host:port,...`.
    pub fn endpoints_flag(&self) -> String {
        let list: Vec<String> = self.endpoints().iter().map(ToString::to_string).collect();
        list.join(",")
    }

    /// A client of the cluster.
    pub fn client(&self) -> &Etcd {
        &self.client
    }

    fn start_member(&mut self, i: usize) -> Result<(), Fatal> {
        let member = &mut self.members[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&member.log)
            .map_err(|e| Fatal::new(format_args!("cannot write {}", member.log.display()), e))?;
        let err = log
            .try_clone()
            .map_err(|e| Fatal::new("cannot share a log file", e))?;
        let mut command = Command::new(ETCD);
        stop_with_parent(&mut command);
        let child = command
            .args(&member.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| Fatal::new(format_args!("cannot start {ETCD} {}", member.name), e))?;
        member.process = Some(child);
        Ok(())
    }

    /// Kills member `i` (from 0) with SIGKILL, as `kill -9` does.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts member `i` (from 0) again on its data, after [`EtcdCluster::kill`].
    pub fn restart(&mut self, i: usize) -> Result<(), Fatal> {
        self.start_member(i)
    }

    /// The member (from 0) that is the leader now, as the members say.
    pub async fn leader(&self) -> Option<usize> {
        leader_among(&self.client.statuses().await)
    }

    /// Waits at most `limit` until the cluster has a leader.
    pub async fn wait_leader(&self, limit: Duration) -> Result<usize, Fatal> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(leader) = self.leader().await {
                return Ok(leader);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Fatal(self.no_leader(limit)));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// The member (from 0) that leads, as the members that answered say.
fn leader_among(statuses: &[Option<MemberStatus>]) -> Option<usize> {
    let leader = statuses
        .iter()
        .flatten()
        .map(|s| s.leader)
        .find(|&l| l != 0)?;
    statuses
        .iter()
        .position(|s| s.is_some_and(|s| s.member == leader))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A member whose client port was taken after it was found free ends the start at
    /// once, with the end of its log, so that the cluster can start again on fresh ports.
    #[tokio::test]
    async fn a_member_that_cannot_listen_ends_the_start_at_once_saying_why() {
        if let Err(why) = EtcdCluster::available() {
            assert!(
                std::env::var(REQUIRE_ETCD).as_deref() != Ok("1"),
                "{REQUIRE_ETCD}=1, but etcd cannot be started: {why}"
            );
            eprintln!("did not run on etcd: {why}");
            return;
        }
        let dir = tempfile::tempdir().expect("a temporary folder");
        let mut cluster =
            EtcdCluster::plan(3, dir.path(), Ipv4Addr::LOCALHOST, None).expect("a planned cluster");
        let taken = std::net::TcpListener::bind(("127.0.0.1", cluster.members[1].client.port))
            .expect("the planned port, still free");
        for i in 0..cluster.members.len() {
            cluster.start_member(i).expect("a started member");
        }
        let outcome = cluster.wait_started(START_TIMEOUT).await;
        drop(taken);
        match outcome {
            Err(Start::MemberExited(why)) => {
                assert!(why.starts_with("etcd member-2 exited at start"), "{why}");
                assert!(why.contains("address already in use"), "{why}");
            }
            Err(Start::NoLeader(why)) => panic!("waited for a leader instead: {why}"),
            Ok(()) => panic!("the cluster started with a member's port taken"),
        }
    }
}
