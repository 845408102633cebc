//! Partitions on simulated hosts: a master cut off from the coordinator (or, on etcd, from
//! both coordinators), whose slave is promoted, steps down once its writes stop committing,
//! and its clients move to the new master by themselves; nothing acknowledged is lost or
//! doubled.

use std::time::{Duration, Instant};

use tsn_bins::harness::Partition;

use crate::support::{Deployment, STEADY, timeline_lines};

/// The failure timeout plus one second (SPEC's bound for a client to move), with room for
/// a loaded machine.
const MOVES_WITHIN: Duration = Duration::from_secs(10);

#[test]
fn clients_of_a_master_cut_off_from_the_coordinator_move_to_the_new_master() {
    if let Some(deployment) = Deployment::on_hosts(1, STEADY) {
        clients_move_when_their_master_is_cut_off_from(deployment, &["coordinator"]);
    }
}

/// With coordination on etcd: the master cut off from both coordinators (and so from
/// etcd, which only they talk to) while its clients and slave still reach it.
#[test]
fn a_master_cut_off_from_the_coordinators_on_etcd_acknowledges_nothing_its_successor_lacks() {
    if let Some(deployment) = Deployment::on_hosts_and_etcd(1, STEADY) {
        clients_move_when_their_master_is_cut_off_from(
            deployment,
            &["coordinator", "coordinator-2"],
        );
    }
}

/// Cuts cluster 1's master off from the hosts `coordinators` while a client posts and
/// another reads: the slave is promoted, the old master steps down, both clients move to
/// the new master by themselves, and every post the author's client had acknowledged (it
/// exits 0 only once all are) is on the reader's screen exactly once.
fn clients_move_when_their_master_is_cut_off_from(
    mut deployment: Deployment,
    coordinators: &[&str],
) {
    deployment.start_master_and_in_sync_slave(1);
    let old_master = deployment.master_address(1).expect("a master");
    let mut author = deployment.logged_in_client(1);
    let mut reader = deployment.logged_in_client(2);
    reader.command("FOLLOW 1", "Command completed successfully");
    reader.enter_timeline();
    author.enter_timeline();
    author.send("before the cut");
    reader.wait_for(">> before the cut\n");

    let partitions: Vec<Partition> = coordinators
        .iter()
        .map(|coordinator| deployment.cut("tsd-1-1", coordinator))
        .collect();
    deployment.wait_master_is(1, 2);
    let new_master = deployment.master_address(1).expect("the new master");
    assert_ne!(new_master, old_master);
    // The author keeps posting, as a person would: its writes stop committing on the old
    // master, which steps down.
    let moved = format!("Reconnecting to {new_master}...");
    let deadline = Instant::now() + MOVES_WITHIN;
    let mut sent = 0;
    while !(author.stdout().contains(&moved) && reader.stdout().contains(&moved)) {
        assert!(
            Instant::now() < deadline,
            "both clients should have moved to {new_master}; the author shows:\n{}\n\
             the reader shows:\n{}\nthe cut-off master logged:\n{}",
            author.stdout(),
            reader.stdout(),
            deployment.server(1, 1).stderr()
        );
        sent += 1;
        author.send(&format!("during the cut {sent}"));
        std::thread::sleep(Duration::from_millis(100));
    }
    reader.wait_for(&format!(">> during the cut {sent}\n"));

    for partition in partitions {
        deployment.heal(partition);
    }
    deployment
        .server(1, 1)
        .wait_for_log_count("serving as slave", 1);
    author.send("after the heal");
    reader.wait_for(">> after the heal\n");
    author.finish();
    let shown = timeline_lines(&reader.stdout());
    let mut texts = vec!["before the cut".to_owned(), "after the heal".to_owned()];
    texts.extend((1..=sent).map(|n| format!("during the cut {n}")));
    for text in texts {
        let times = shown
            .iter()
            .filter(|l| l.ends_with(&format!(">> {text}")))
            .count();
        assert_eq!(times, 1, "'{text}' once:\n{}", reader.stdout());
    }
    reader.finish();
}

#[test]
fn posts_cross_clusters_while_the_old_master_is_cut_off_from_the_coordinator() {
    let Some(mut deployment) = Deployment::on_hosts(2, STEADY) else {
        return;
    };
    deployment.start_master_and_in_sync_slave(1);
    deployment.start_master_and_in_sync_slave(2);
    deployment.start_synchronizer(1);
    deployment.start_synchronizer(2);
    let mut author = deployment.logged_in_client(1);
    let mut reader = deployment.logged_in_client(2);
    deployment.wait_listing(2, &[1, 2], &[]);
    reader.command("FOLLOW 1", "Command completed successfully");
    reader.enter_timeline();
    author.enter_timeline();
    author.send("before the cut");
    reader.wait_for(">> before the cut\n");
    author.finish();

    // The old master keeps its synchronizer's stream open, answering nothing new; nobody
    // writes to it, so nothing makes it step down. Its synchronizer must move all the same.
    let _partition = deployment.cut("tsd-1-1", "coordinator");
    deployment.wait_master_is(1, 2);
    let mut author = deployment.logged_in_client(1);
    author.enter_timeline();
    author.send("after the promotion");
    reader.wait_for(">> after the promotion\n");
    author.finish();
    reader.finish();
}
