//! Simulated hosts: Linux network namespaces joined by a bridge, each with an address of
//! its own from 198.18.0.0/15 (the range set aside for network tests, RFC 2544). The
//! machine itself has an address on the bridge too ([`Network::gateway`]), so that its own
//! processes reach every host.
//!
//! Making namespaces needs root (CAP_NET_ADMIN) and `ip` (iproute2). Names carry the
//! process id of the harness that made them, so that many harnesses run at once and one
//! can remove what a dead one left behind (every [`Network::create`] does). A [`Network`]
//! removes its namespaces and bridge when dropped, a panic's unwinding included.
//!
//! A network can be cut between two hosts, both ways or one way ([`Network::cut`],
//! [`Network::cut_one_way`]), by blackhole routes in the hosts' namespaces: packets are
//! dropped silently, as a partition drops them, until [`Network::heal`]. Each cut is a
//! [`Partition`] of its own: where two overlap (a host isolated while one of its links was
//! cut), healing one leaves what the other cut cut, until it is healed too.

use std::collections::HashMap;
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::cli::Fatal;

/// The variable under which a host that cannot be made fails a test instead of skipping it.
pub const REQUIRE_NETNS: &str = "TSN_REQUIRE_NETNS";

/// Where the kernel's named network namespaces live (`ip netns add` makes them there).
const NETNS_DIR: &str = "/run/netns";

/// The prefix of every namespace name: `tsn-<pid>-<network>-<host>`.
const NETNS_PREFIX: &str = "tsn-";

/// The prefix of every bridge name: `tsb<pid, 6 hex digits><network, 2 hex digits>`.
const BRIDGE_PREFIX: &str = "tsb";

/// Networks made by this process so far, for unique names.
static MADE: AtomicU32 = AtomicU32::new(0);

/// A simulated host: a network namespace with one address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    /// What the harness calls it (`coordinator`, `tsd-1-2`).
    pub label: String,
    /// Its address on the network.
    pub address: Ipv4Addr,
    /// Its namespace's name.
    pub netns: String,
}

impl Host {
    /// The namespace's file, to enter it with `setns`.
    pub fn netns_file(&self) -> std::io::Result<File> {
        File::open(PathBuf::from(NETNS_DIR).join(&self.netns))
    }
}

/// Simulated hosts on one bridge, in one /24 of 198.18.0.0/15 that no other network of
/// this machine uses.
#[derive(Debug)]
pub struct Network {
    /// `<pid>-<n>`, the part of every name that is this network's.
    id: String,
    bridge: String,
    /// The first three octets of its addresses.
    prefix: [u8; 3],
    hosts: Vec<Host>,
    /// Per link cut, how many partitions not healed yet cut it.
    cuts: Mutex<HashMap<Link, u32>>,
}

/// One direction between two hosts: what `from` (a namespace) sends to `to`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Link {
    from: String,
    to: Ipv4Addr,
}

/// The links one cut (or one isolation) cut, to heal with [`Network::heal`]. Dropped
/// unhealed, the links stay cut until the network goes.
#[derive(Debug, Default)]
#[must_use = "a partition lasts until it is given to Network::heal"]
pub struct Partition {
    links: Vec<Link>,
}

impl Partition {
    /// Adds what `other` cut to this partition: they heal together.
    pub fn join(&mut self, other: Partition) {
        self.links.extend(other.links);
    }
}

impl Network {
    /// Whether this machine lets this process make hosts; if not, why.
    pub fn available() -> Result<(), String> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err("making network namespaces needs root (CAP_NET_ADMIN)".into());
        }
        match Command::new("ip").arg("-V").output() {
            Ok(out) if out.status.success() => Ok(()),
            _ => Err("`ip` (iproute2) is not installed".into()),
        }
    }

    /// A new network without hosts: a bridge, up, with the machine's own address on it.
    /// Removes first what harnesses that are gone left behind.
    pub fn create() -> Result<Network, Fatal> {
        Network::available().map_err(Fatal)?;
        let pid = std::process::id();
        let n = MADE.fetch_add(1, Ordering::Relaxed);
        let _serial = allocation_lock()?;
        remove_leftovers()?;
        let prefix = free_prefix()?;
        let bridge = format!("{BRIDGE_PREFIX}{:06x}{:02x}", pid & 0xff_ffff, n & 0xff);
        let network = Network {
            id: format!("{pid}-{n}"),
            bridge,
            prefix,
            hosts: Vec::new(),
            cuts: Mutex::default(),
        };
        ip(&["link", "add", &network.bridge, "type", "bridge"])?;
        ip(&["link", "set", &network.bridge, "up"])?;
        let gateway = format!("{}/24", network.gateway());
        ip(&["addr", "add", &gateway, "dev", &network.bridge])?;
        Ok(network)
    }

    /// The machine's own address on the network.
    pub fn gateway(&self) -> Ipv4Addr {
        let [a, b, c] = self.prefix;
        Ipv4Addr::new(a, b, c, 254)
    }

    /// The hosts made so far.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// A new host called `label`, on the bridge, with the next address.
    pub fn add_host(&mut self, label: &str) -> Result<Host, Fatal> {
        let index = self.hosts.len() + 1;
        if index > 250 {
            return Err(Fatal("a network holds at most 250 hosts".into()));
        }
        let [a, b, c] = self.prefix;
        let host = Host {
            label: label.to_owned(),
            address: Ipv4Addr::new(a, b, c, index as u8),
            netns: format!("{NETNS_PREFIX}{}-{index}", self.id),
        };
        let veth = format!(
            "{}{:02x}",
            self.bridge.replacen(BRIDGE_PREFIX, "tsv", 1),
            index
        );
        ip(&["netns", "add", &host.netns])?;
        // Recorded at once, so that a failure below still removes the namespace.
        self.hosts.push(host.clone());
        ip(&[
            "link",
            "add",
            &veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &host.netns,
        ])?;
        ip(&["link", "set", &veth, "master", &self.bridge, "up"])?;
        let address = format!("{}/24", host.address);
        ip(&["-n", &host.netns, "addr", "add", &address, "dev", "eth0"])?;
        ip(&["-n", &host.netns, "link", "set", "eth0", "up"])?;
        ip(&["-n", &host.netns, "link", "set", "lo", "up"])?;
        Ok(host)
    }
}

impl Network {
    /// Cuts the network between `a` and `b` both ways, as a partition does: what either
    /// sends the other is dropped, silently, until [`Network::heal`].
    pub fn cut(&self, a: &Host, b: &Host) -> Result<Partition, Fatal> {
        let mut partition = self.cut_one_way(a, b)?;
        partition.join(self.cut_one_way(b, a)?);
        Ok(partition)
    }

    /// Drops what `from` sends to `to` (a blackhole route in `from`'s namespace); what `to`
    /// sends `from` still arrives.
    pub fn cut_one_way(&self, from: &Host, to: &Host) -> Result<Partition, Fatal> {
        let link = Link {
            from: from.netns.clone(),
            to: to.address,
        };
        let mut cuts = self.cuts.lock().unwrap_or_else(|p| p.into_inner());
        let count = cuts.entry(link.clone()).or_default();
        if *count == 0 {
            let to = format!("{}/32", link.to);
            ip(&["-n", &link.from, "route", "replace", "blackhole", &to])?;
        }
        *count += 1;
        Ok(Partition { links: vec![link] })
    }

    /// Ends `partition`: each link it cut works again unless another partition not healed
    /// yet cut it too.
    pub fn heal(&self, partition: Partition) -> Result<(), Fatal> {
        let mut cuts = self.cuts.lock().unwrap_or_else(|p| p.into_inner());
        for link in partition.links {
            let Some(count) = cuts.get_mut(&link) else {
                continue;
            };
            *count -= 1;
            if *count == 0 {
                cuts.remove(&link);
                let to = format!("{}/32", link.to);
                ip(&["-n", &link.from, "route", "del", "blackhole", &to])?;
            }
        }
        Ok(())
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // Removing a namespace removes its end of each veth pair, and so the pair.
        for host in &self.hosts {
            let _ = ip(&["netns", "del", &host.netns]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}

/// Runs `ip args`; fails with what it said.
fn ip(args: &[&str]) -> Result<(), Fatal> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| Fatal::new("cannot run ip", e))?;
    if out.status.success() {
        return Ok(());
    }
    Err(Fatal(format!(
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

/// What `ip args` prints.
fn ip_output(args: &[&str]) -> Result<String, Fatal> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| Fatal::new("cannot run ip", e))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A lock held while a network picks its addresses, so that two harnesses never pick the
/// same.
fn allocation_lock() -> Result<File, Fatal> {
    let path = std::env::temp_dir().join("tsn-hosts.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Fatal::new(format_args!("cannot open {}", path.display()), e))?;
    file.lock()
        .map_err(|e| Fatal::new(format_args!("cannot lock {}", path.display()), e))?;
    Ok(file)
}

/// The first /24 of 198.18.0.0/15 that no address of this machine's own namespace is in.
fn free_prefix() -> Result<[u8; 3], Fatal> {
    let used = ip_output(&["-o", "-4", "addr", "show"])?;
    (0..=1u8)
        .flat_map(|b| (0..=255u8).map(move |c| [198, 18 + b, c]))
        .find(|[a, b, c]| !used.contains(&format!(" {a}.{b}.{c}.")))
        .ok_or_else(|| Fatal("every /24 of 198.18.0.0/15 is in use".into()))
}

/// Removes the namespaces and bridges of harnesses whose process is gone.
fn remove_leftovers() -> Result<(), Fatal> {
    let gone = |pid: u32| !PathBuf::from(format!("/proc/{pid}")).exists();
    for line in ip_output(&["netns", "list"])?.lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let pid = name
            .strip_prefix(NETNS_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse().ok());
        if pid.is_some_and(gone) {
            let _ = ip(&["netns", "del", name]);
        }
    }
    for line in ip_output(&["-o", "link", "show", "type", "bridge"])?.lines() {
        let name = line.split(": ").nth(1).unwrap_or_default();
        let pid = name
            .strip_prefix(BRIDGE_PREFIX)
            .filter(|rest| rest.len() == 8)
            .and_then(|rest| u32::from_str_radix(&rest[..6], 16).ok());
        if pid.is_some_and(gone) {
            let _ = ip(&["link", "del", name]);
        }
    }
    Ok(())
}
