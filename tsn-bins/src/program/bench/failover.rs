//! Failover: from a `kill -9` of a master to the next post on a follower's screen.

use std::time::{Duration, Instant};

use tsn_core::Coordinator;
use tsn_core::id::UserId;
use tsn_grpc::coordinator::CoordClient;

use super::PATIENCE;
use super::pictures::Timeline;
use crate::cli::Fatal;
use crate::harness::{Deployment, Screen};

/// How long the author posts before a failover trial's kill.
const LEAD: Duration = Duration::from_millis(500);

/// How long a failover trial goes on once the first post written after the kill showed.
const TRAIL: Duration = Duration::from_millis(500);

/// One failover trial: while `author` posts every 10 ms (from [`LEAD`] before), kills
/// cluster 1's master (and with `leader_change`, at the same moment, etcd's leader); the
/// time until `reader` shows a post written after the kill, and when every post of the
/// trial showed. Then the old master (and etcd member) return, and the old master catches
/// up.
pub(super) async fn fail_over(
    deployment: &mut Deployment,
    coordinator: &CoordClient,
    author: &mut Screen,
    reader: &mut Screen,
    trial: usize,
    leader_change: bool,
) -> Result<(Duration, Timeline), Fatal> {
    let master = current_master(coordinator).await?;
    let leader = match (leader_change, deployment.etcd()) {
        (true, Some(etcd)) => etcd.leader().await,
        _ => None,
    };
    let prefix = format!(
        "failover {trial}{} post ",
        if leader_change { "e" } else { "" }
    );
    let started = Instant::now();
    let mut killed_at = None;
    let mut typed: Vec<Instant> = Vec::new();
    let mut shown: Vec<Instant> = Vec::new();
    let mut first_after: Option<Instant> = None;
    loop {
        if killed_at.is_none() && started.elapsed() >= LEAD {
            killed_at = Some(Instant::now());
            deployment.kill(1, master);
            if let (Some(leader), Some(etcd)) = (leader, deployment.etcd()) {
                etcd.kill(leader);
            }
        }
        author
            .type_line(&format!("{prefix}{}", typed.len() + 1))
            .await?;
        typed.push(Instant::now());
        let slot = tokio::time::Instant::now() + Duration::from_millis(10);
        while let Ok(Some((at, line))) = tokio::time::timeout_at(slot, reader.next_line()).await {
            let Some(n) = line
                .split(&prefix)
                .nth(1)
                .and_then(|rest| rest.trim().parse::<usize>().ok())
            else {
                continue;
            };
            shown.push(at);
            let written_after = killed_at
                .is_some_and(|kill| n >= 1 && typed.get(n - 1).is_some_and(|&t| t >= kill));
            if written_after && first_after.is_none() {
                first_after = Some(at);
            }
        }
        if first_after.is_some_and(|first| first.elapsed() >= TRAIL) {
            break;
        }
        if started.elapsed() > PATIENCE {
            return Err(Fatal("no post was shown after the failover".into()));
        }
    }
    if let (Some(leader), Some(etcd)) = (leader, deployment.etcd()) {
        etcd.restart(leader)?;
    }
    // The next trial needs the old master back in sync (it could not be promoted before).
    let promoted = current_master(coordinator).await?;
    let in_sync = format!("servers=[{promoted}, {master}]");
    let seen = deployment.log("coordinator").matches(&in_sync).count();
    deployment.restart(1, master).await?;
    let deadline = Instant::now() + PATIENCE;
    while deployment.log("coordinator").matches(&in_sync).count() <= seen {
        if Instant::now() > deadline {
            return Err(Fatal(format!("server {master} did not catch up")));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let kill = killed_at.expect("killed before any post showed after it");
    let first = first_after.expect("the loop ends once one showed");
    let from_kill = |at: Instant| match at.checked_duration_since(kill) {
        Some(after) => after.as_secs_f64(),
        None => -(kill - at).as_secs_f64(),
    };
    let timeline = Timeline {
        shown: shown.into_iter().map(from_kill).collect(),
    };
    Ok((first - kill, timeline))
}

pub(super) async fn current_master(coordinator: &CoordClient) -> Result<u32, Fatal> {
    let user = UserId::new(1).expect("1 is a user id");
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if let Ok(Some(server)) = coordinator.server_for(user).await {
            return Ok(server.server.0);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(Fatal("cluster 1 has no master".into()))
}
