//! Coordination on etcd, with real etcd clusters of 3 members: TSN's etcd client (reads,
//! writes, compare-and-swap, watches, through a leader's death), and two coordinators on
//! etcd losing one of them and the etcd leader while clients post, with nothing that the
//! clients see changing.

use std::time::Duration;

use tsn_grpc::etcd::{Change, Swapped};

use crate::support::{Deployment, Proc, STEADY, etcd_cluster, timeline_lines, within};

#[test]
fn the_etcd_client_reads_writes_swaps_and_watches_through_a_leader_kill() {
    let Some(mut etcd) = etcd_cluster() else {
        return;
    };
    let client = etcd.cluster.client().clone();
    etcd.runtime.block_on(async {
        let first = within("a put", client.put("/t/a", b"1".to_vec()))
            .await
            .expect("a put");
        let (entries, _) = within("a read", client.read_prefix("/t/"))
            .await
            .expect("a read");
        assert_eq!(entries.len(), 1);
        assert_eq!(
            (entries[0].value.as_slice(), entries[0].revision),
            (&b"1"[..], first)
        );

        // Of two swaps from one revision, only the first is done; the second learns what won.
        let swapped = client
            .swap("/t/a", first, b"2".to_vec(), &[])
            .await
            .expect("a swap");
        let Swapped::Done(second) = swapped else {
            panic!("the first swap should be done: {swapped:?}");
        };
        let lost = client
            .swap("/t/a", first, b"3".to_vec(), &[])
            .await
            .expect("a swap");
        match lost {
            Swapped::Lost(Some(held)) => {
                assert_eq!((held.value, held.revision), (b"2".to_vec(), second))
            }
            other => panic!("the second swap should be lost to the first: {other:?}"),
        }
        // A swap from revision 0 creates a key that does not exist, once.
        assert!(matches!(
            client.swap("/t/b", 0, b"x".to_vec(), &[]).await,
            Ok(Swapped::Done(_))
        ));
        assert!(matches!(
            client.swap("/t/b", 0, b"y".to_vec(), &[]).await,
            Ok(Swapped::Lost(Some(_)))
        ));

        let mut watch = client
            .watch_prefix("/t/", second + 1)
            .await
            .expect("a watch");
        let changes = within("the watched changes", watch.next())
            .await
            .expect("changes");
        assert!(
            matches!(&changes[..], [Change::Put(e)] if e.key == "/t/b" && e.value == b"x"),
            "the watch brings what came after its revision: {changes:?}"
        );
    });

    // The leader killed: a new one is elected, and calls go on at the other members.
    let leader = etcd.leader();
    etcd.cluster.kill(leader);
    etcd.runtime.block_on(async {
        let written = within("a put after the leader's death", async {
            loop {
                if let Ok(revision) = client.put("/t/c", b"after".to_vec()).await {
                    return revision;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })
        .await;
        let (entries, _) = client.read_prefix("/t/c").await.expect("a read");
        assert_eq!(entries[0].revision, written);
    });
}

#[test]
fn killing_a_coordinator_and_then_the_etcd_leader_changes_nothing_clients_see() {
    let Some(mut deployment) = Deployment::on_etcd(1, STEADY) else {
        return;
    };
    deployment.start_master_and_in_sync_slave(1);
    let master = deployment.master_address(1).expect("a master");
    let mut author = deployment.logged_in_client(1);
    let mut reader = deployment.logged_in_client(4);
    reader.command("FOLLOW 1", "Command completed successfully");
    reader.enter_timeline();
    author.enter_timeline();

    // The author posts every 50 ms throughout, as a person typing fast would.
    let mut sent = 0;
    let mut post_for = |author: &mut Proc, how_long: Duration| {
        let end = std::time::Instant::now() + how_long;
        while std::time::Instant::now() < end {
            sent += 1;
            author.send(&format!("post {sent}"));
            std::thread::sleep(Duration::from_millis(50));
        }
        sent
    };
    post_for(&mut author, Duration::from_millis(500));
    deployment.kill_first_coordinator();
    post_for(&mut author, Duration::from_secs(2));
    let leader = deployment.etcd().leader();
    deployment.etcd().cluster.kill(leader);
    let last = post_for(&mut author, Duration::from_secs(3));
    reader.wait_for(&format!(">> post {last}\n"));

    assert_eq!(
        deployment.master_address(1).as_deref(),
        Some(master.as_str()),
        "no failover of the healthy master"
    );
    for client in [&author, &reader] {
        assert_eq!(
            client.stdout().matches("Reconnecting to").count(),
            1,
            "the client never moved:\n{}",
            client.stdout()
        );
    }
    let shown = timeline_lines(&reader.stdout());
    for n in 1..=last {
        let text = format!("post {n}");
        let times = shown
            .iter()
            .filter(|line| line.ends_with(&format!(">> {text}")))
            .count();
        assert_eq!(times, 1, "'{text}' once on the reader's screen");
    }
    author.finish();
}
