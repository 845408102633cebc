//! The simulated hosts themselves: programs on different hosts reach each other and this
//! machine; a network's namespaces and bridge go with it, and what a harness that died
//! left behind goes with the next network made; overlapping partitions heal apart.

use std::process::Command;

use crate::support::{Proc, eventually, hosts_available, simulated_hosts};

/// The names `ip` lists for `what` (`netns`, or `link show type bridge`).
fn listed(what: &[&str]) -> String {
    let out = Command::new("ip").args(what).output().expect("run ip");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("run ip");
    assert!(status.success(), "ip {args:?}");
}

#[test]
fn programs_on_two_hosts_reach_each_other_and_the_hosts_go_with_their_network() {
    let Some(mut network) = simulated_hosts() else {
        return;
    };
    let coordinator_host = network.add_host("coordinator").expect("a host");
    let server_host = network.add_host("tsd").expect("a host");
    let at = |host: &tsn_bins::harness::Host| {
        let address = host.address.to_string();
        vec![
            "--bind".to_owned(),
            address.clone(),
            "--advertise-host".into(),
            address,
        ]
    };
    let mut args = vec!["-p".into(), "9090".into(), "--clusters".into(), "1".into()];
    args.extend(at(&coordinator_host));
    let coordinator = Proc::start_on(Some(coordinator_host.clone()), "coordinator", &args);
    coordinator.wait_for("listening on");
    let data = tempfile::tempdir().expect("a folder");
    let mut args = vec![
        "-h".to_owned(),
        coordinator_host.address.to_string(),
        "-k".into(),
        "9090".into(),
        "-p".into(),
        "10000".into(),
        "--data-dir".into(),
        data.path().display().to_string(),
    ];
    args.extend(at(&server_host));
    // The tsd asks the coordinator (host to host) before it says it listens.
    let tsd = Proc::start_on(Some(server_host.clone()), "tsd", &args);
    tsd.wait_for(&format!("listening on {}:10000", server_host.address));
    tsd.wait_for_log_count("serving as master", 1);
    // And this machine reaches both: a client here logs in through them.
    let mut client = Proc::start(
        "tsc",
        &[
            "-h".into(),
            coordinator_host.address.to_string(),
            "-k".into(),
            "9090".into(),
            "-u".into(),
            "1".into(),
        ],
    );
    client.wait_for(&format!("Reconnecting to {}:10000...", server_host.address));
    client.finish();

    let names: Vec<String> = network.hosts().iter().map(|h| h.netns.clone()).collect();
    drop((coordinator, tsd));
    drop(network);
    let left = listed(&["netns", "list"]);
    for name in &names {
        assert!(!left.contains(name.as_str()), "{name} is gone: {left}");
    }
}

#[test]
fn what_a_harness_that_died_left_behind_goes_with_the_next_network() {
    if !hosts_available() {
        return;
    }
    // A process id that no process has: above the kernel's largest.
    let dead: u32 = 4_194_305;
    assert!(!std::path::Path::new(&format!("/proc/{dead}")).exists());
    let netns = format!("tsn-{dead}-0-1");
    let bridge = format!("tsb{dead:06x}00");
    ip(&["netns", "add", &netns]);
    ip(&["link", "add", &bridge, "type", "bridge"]);
    let network = simulated_hosts().expect("hosts can be made here");
    eventually("the leftovers to be gone", || {
        let gone = !listed(&["netns", "list"]).contains(&netns)
            && !listed(&["link", "show", "type", "bridge"]).contains(&bridge);
        gone.then_some(())
    });
    drop(network);
}

/// Where overlapping partitions share a link (the coordinator isolated while a master was
/// cut off from it), healing one leaves the link cut until the other is healed too.
#[test]
fn a_link_two_partitions_cut_stays_cut_until_both_are_healed() {
    let Some(mut network) = simulated_hosts() else {
        return;
    };
    let coordinator = network.add_host("coordinator").expect("a host");
    let master = network.add_host("tsd-1-1").expect("a host");
    let slave = network.add_host("tsd-1-2").expect("a host");
    // The addresses each host's namespace drops what it sends to.
    let dropped_by = |host: &tsn_bins::harness::Host| {
        let routes = listed(&["-n", &host.netns, "route", "show", "type", "blackhole"]);
        let mut addresses: Vec<String> = routes
            .lines()
            .filter_map(|line| line.trim().strip_prefix("blackhole "))
            .map(str::to_owned)
            .collect();
        addresses.sort();
        addresses
    };
    let address = |host: &tsn_bins::harness::Host| host.address.to_string();

    let master_cut = network.cut(&master, &coordinator).expect("a cut");
    let mut isolation = network.cut(&coordinator, &master).expect("a cut");
    isolation.join(network.cut(&coordinator, &slave).expect("a cut"));
    assert_eq!(
        dropped_by(&coordinator),
        [address(&master), address(&slave)]
    );

    network.heal(isolation).expect("healed");
    assert_eq!(dropped_by(&coordinator), [address(&master)]);
    assert_eq!(dropped_by(&master), [address(&coordinator)]);
    assert!(dropped_by(&slave).is_empty(), "{:?}", dropped_by(&slave));

    network.heal(master_cut).expect("healed");
    for host in [&coordinator, &master, &slave] {
        assert!(
            dropped_by(host).is_empty(),
            "{}: {:?}",
            host.label,
            dropped_by(host)
        );
    }
}
