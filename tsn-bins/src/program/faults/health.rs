//! Whether the deployment is whole, so that the next fault is survivable.
//!
//! Whole means: no member exited by itself; the coordinator answers and names a master of
//! every cluster; that tsd serves as master and every other tsd of its cluster as slave; the
//! coordinator, since it last started, has logged the cluster's in-sync set as all its
//! servers, the master first (`in-sync set cluster=<c> servers=[m, s]`), so that killing
//! or stopping any one of them leaves a server that holds every acknowledged post; and the
//! coordinator lists every cluster's synchronizer at the address it listens on now.

use std::time::{Duration, Instant};

use tsn_core::Coordinator;
use tsn_core::id::UserId;
use tsn_grpc::coordinator::CoordClient;
use tsn_grpc::transport::is_serving;

use crate::cli::Fatal;
use crate::harness::{COORDINATOR, Deployment, synchronizer_name, tsd_name};

/// How often the deployment is looked at while it recovers.
const POLL: Duration = Duration::from_millis(20);

/// Waits at most `limit` until the deployment is whole. A member that exited by itself
/// ends the wait at once, as does the limit, each with what was wrong.
pub(super) async fn wait_healthy(
    deployment: &mut Deployment,
    coordinator: &CoordClient,
    limit: Duration,
) -> Result<(), Fatal> {
    let deadline = Instant::now() + limit;
    loop {
        let Some(problem) = problem(deployment, coordinator).await? else {
            return Ok(());
        };
        if Instant::now() >= deadline {
            return Err(Fatal(format!(
                "the deployment was not whole again within {} s: {problem}",
                limit.as_secs()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The master of every cluster as `(cluster, server)`, once the coordinator and the
/// servers themselves agree that each cluster has exactly one; otherwise what is wrong.
/// Each tsd is asked itself, through its health check, whether it serves as master.
pub(super) async fn masters(
    deployment: &mut Deployment,
    coordinator: &CoordClient,
) -> Result<Vec<(u32, u32)>, String> {
    let mut masters = Vec::new();
    for cluster in 1..=deployment.topology().clusters {
        let master = master_of(coordinator, cluster).await?;
        roles_agree(deployment, cluster, master)?;
        let mut serving = Vec::new();
        for server in 1..=deployment.topology().servers {
            let name = tsd_name(cluster, server);
            let member = deployment
                .member(&name)
                .ok_or_else(|| format!("no member {name}"))?;
            let endpoint = member.endpoint()?;
            match is_serving(&endpoint, "csce438.SNSService").await {
                Ok(true) => serving.push(server),
                Ok(false) => {}
                Err(error) => return Err(format!("{name} does not say its role: {error}")),
            }
        }
        if serving != [master] {
            return Err(format!(
                "cluster {cluster}: the servers serving as master, by their own word, are \
                 {serving:?}; the coordinator names server {master}"
            ));
        }
        masters.push((cluster, master));
    }
    Ok(masters)
}

/// The server the coordinator names master of `cluster`.
pub(super) async fn master_of(coordinator: &CoordClient, cluster: u32) -> Result<u32, String> {
    // User `cluster` lives in cluster `cluster`.
    let user = UserId::new(cluster).expect("a cluster number is a user id");
    match coordinator.server_for(user).await {
        Ok(Some(master)) => Ok(master.server.0),
        Ok(None) => Err(format!("cluster {cluster} has no master")),
        Err(error) => Err(format!("the coordinator does not answer: {error}")),
    }
}

/// The first thing that keeps the deployment from being whole, or `None`. A member that
/// exited by itself is an error.
async fn problem(
    deployment: &mut Deployment,
    coordinator: &CoordClient,
) -> Result<Option<String>, Fatal> {
    for member in &mut deployment.members {
        if let Some(status) = member.newly_exited() {
            return Err(Fatal(format!(
                "{} exited by itself ({status}); see its log",
                member.name
            )));
        }
    }
    for cluster in 1..=deployment.topology().clusters {
        let master = match master_of(coordinator, cluster).await {
            Ok(master) => master,
            Err(problem) => return Ok(Some(problem)),
        };
        if let Err(problem) = roles_agree(deployment, cluster, master) {
            return Ok(Some(problem));
        }
        if let Err(problem) = all_in_sync(deployment, cluster, master) {
            return Ok(Some(problem));
        }
    }
    Ok(synchronizers_registered(deployment, coordinator)
        .await
        .err())
}

/// Whether `master` serves as master of `cluster` and every other server as slave.
fn roles_agree(deployment: &Deployment, cluster: u32, master: u32) -> Result<(), String> {
    for server in 1..=deployment.topology().servers {
        let name = tsd_name(cluster, server);
        let role = deployment.member(&name).and_then(|m| m.role());
        let wanted = if server == master { "master" } else { "slave" };
        if role.as_deref() != Some(wanted) {
            return Err(format!(
                "{name} serves as {} (the coordinator names server {master} master)",
                role.unwrap_or_else(|| "nothing yet".into())
            ));
        }
    }
    Ok(())
}

/// Whether the coordinator's latest in-sync set of `cluster` holds all its servers,
/// `master` first.
fn all_in_sync(deployment: &Deployment, cluster: u32, master: u32) -> Result<(), String> {
    let log = deployment.current_log(COORDINATOR);
    let in_sync = last_in_sync(&log, cluster);
    let servers = deployment.topology().servers;
    let whole = in_sync.as_ref().is_some_and(|set| {
        set.first() == Some(&master)
            && set.len() == servers as usize
            && (1..=servers).all(|s| set.contains(&s))
    });
    match (whole, in_sync) {
        (true, _) => Ok(()),
        (false, Some(set)) => Err(format!("the in-sync set of cluster {cluster} is {set:?}")),
        (false, None) => Err(format!(
            "the coordinator has not heard the in-sync set of cluster {cluster} yet"
        )),
    }
}

/// The last in-sync set of `cluster` in a coordinator's log.
fn last_in_sync(log: &str, cluster: u32) -> Option<Vec<u32>> {
    let tag = format!("in-sync set cluster={cluster} servers=[");
    let rest = log
        .lines()
        .rev()
        .find_map(|line| line.split_once(&tag).map(|(_, rest)| rest))?;
    let list = rest.split(']').next()?;
    list.split(',').map(|s| s.trim().parse().ok()).collect()
}

/// Whether the coordinator lists every cluster's synchronizer at its current address.
async fn synchronizers_registered(
    deployment: &Deployment,
    coordinator: &CoordClient,
) -> Result<(), String> {
    let registered = coordinator
        .sync_servers()
        .await
        .map_err(|e| format!("the coordinator does not answer: {e}"))?;
    for cluster in 1..=deployment.topology().clusters {
        let name = synchronizer_name(cluster);
        let Some(member) = deployment.member(&name) else {
            continue;
        };
        let listed = registered
            .iter()
            .any(|s| s.cluster.0 == cluster && s.endpoint.to_string() == member.address);
        if !listed {
            return Err(format!(
                "the coordinator does not list {name} at {}",
                member.address
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::last_in_sync;

    #[test]
    fn the_last_in_sync_set_of_a_cluster_is_read_from_the_log() {
        let log = "\
2026-11-25T19:17:22.537856Z  INFO in-sync set cluster=1 servers=[1]
2026-11-25T19:17:22.687349Z  INFO in-sync set cluster=3 servers=[1, 2]
2026-11-25T19:17:22.687389Z  INFO in-sync set cluster=1 servers=[2, 1]
2026-11-25T19:17:22.737092Z  INFO new master cluster=2 server=1 epoch=7
";
        assert_eq!(last_in_sync(log, 1), Some(vec![2, 1]));
        assert_eq!(last_in_sync(log, 3), Some(vec![1, 2]));
        assert_eq!(last_in_sync(log, 2), None);
    }
}
