//! Idle traffic: what an idle deployment sends, as the kernel counts it (`ss -tip`).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::cli::Fatal;
use crate::harness::Deployment;

/// How long the synchronizers' idle traffic is counted.
pub(super) const IDLE_WINDOW: Duration = Duration::from_secs(10);

/// What an idle deployment sends in [`IDLE_WINDOW`].
pub(super) struct Idle {
    /// Bytes on the connections to the synchronizers' ports, both ends.
    pub(super) between_synchronizers: u64,
    /// Bytes each kind of process sent, on every connection it has: by program, with how
    /// many processes of it there are.
    pub(super) by_program: BTreeMap<String, (u64, usize)>,
}

/// What `deployment` sends in [`IDLE_WINDOW`] of quiet, after a quiet second: on the
/// connections to the synchronizers' ports, and by each kind of process.
pub(super) async fn idle_traffic(deployment: &Deployment) -> Result<Idle, Fatal> {
    let ports: Vec<String> = deployment
        .members
        .iter()
        .filter(|m| m.program == "synchronizer")
        .filter_map(|m| m.address.rsplit(':').next().map(str::to_owned))
        .collect();
    let programs: BTreeMap<u32, String> = deployment
        .members
        .iter()
        .filter_map(|m| Some((m.pid()?, m.program.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = sockets()?;
    tokio::time::sleep(IDLE_WINDOW).await;
    let after = sockets()?;
    let sent = |socket: &Socket| {
        let earlier = before.iter().find(|b| b.id == socket.id);
        socket.sent.saturating_sub(earlier.map_or(0, |b| b.sent))
    };
    let mut by_program: BTreeMap<String, (u64, usize)> = BTreeMap::new();
    for program in programs.values() {
        by_program.entry(program.clone()).or_default().1 += 1;
    }
    let mut between_synchronizers = 0;
    for socket in &after {
        if ports.iter().any(|p| socket.touches_port(p)) {
            between_synchronizers += sent(socket);
        }
        if let Some(program) = socket.pid.and_then(|pid| programs.get(&pid)) {
            by_program.entry(program.clone()).or_default().0 += sent(socket);
        }
    }
    Ok(Idle {
        between_synchronizers,
        by_program,
    })
}

/// One established TCP connection's end, as `ss` shows it.
struct Socket {
    /// Its local and peer addresses.
    id: (String, String),
    /// The process that holds it, when `ss` says.
    pid: Option<u32>,
    /// Bytes sent so far.
    sent: u64,
}

impl Socket {
    fn touches_port(&self, port: &str) -> bool {
        let end = format!(":{port}");
        self.id.0.ends_with(&end) || self.id.1.ends_with(&end)
    }
}

/// Every established TCP connection's end on this machine (`ss -tinpH`): the connection,
/// its process, and the bytes it has sent.
fn sockets() -> Result<Vec<Socket>, Fatal> {
    let output = std::process::Command::new("ss")
        .args(["-tinpH", "state", "established"])
        .output()
        .map_err(|e| Fatal::new("cannot run ss (iproute2) to count bytes", e))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut found: Vec<Socket> = Vec::new();
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) {
            let mut fields = line.split_whitespace().skip(2);
            let (Some(local), Some(peer)) = (fields.next(), fields.next()) else {
                continue;
            };
            let pid = line
                .split("pid=")
                .nth(1)
                .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|digits| digits.parse().ok());
            found.push(Socket {
                id: (local.to_owned(), peer.to_owned()),
                pid,
                sent: 0,
            });
            continue;
        }
        if let Some(socket) = found.last_mut() {
            socket.sent = line
                .split_whitespace()
                .find_map(|field| field.strip_prefix("bytes_sent:")?.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Ok(found)
}
