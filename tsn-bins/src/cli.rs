//! What every program shares: flag parsing with one-line errors, logging, start-up
//! failures, and shutdown on a signal.

use std::ffi::OsString;
use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use clap::error::ErrorKind;
use tokio::net::TcpListener;
use tsn_core::coordinator::Endpoint;
use tsn_grpc::coordinator::CoordClient;

/// The most clusters a deployment may have: the coordinator's `--clusters`, a tsd's `-c`
/// and a synchronizer's `-n` are refused above it.
pub const MAX_CLUSTERS: u32 = 1000;

/// The help of the coordinator host flag (`-h`) of the programs that talk to coordinators.
pub const COORDINATOR_HOSTS_HELP: &str = "Host of the coordinator; or several coordinators sharing etcd, comma-separated, each `host` (at the coordinator port) or `host:port`";

/// A list of addresses as a flag takes them: `host`, or comma-separated `host` or
/// `host:port` entries, a host without a port being at a default port. The coordinators a
/// program reports to (`-h`, at the coordinator port flag's port), or the members of an
/// etcd cluster (`--etcd`). Displayed as the list, every port said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Addresses(Vec<Endpoint>);

impl Addresses {
    /// The addresses `hosts` names, at `port` where it names none; what is wrong with it
    /// otherwise.
    pub fn parse(hosts: &str, port: u16) -> Result<Addresses, String> {
        let parsed = hosts
            .split(',')
            .map(|entry| {
                let entry = entry.trim();
                let (host, port) = match entry.rsplit_once(':') {
                    Some((host, p)) => match p.parse::<u16>() {
                        Ok(p) if p > 0 => (host, p),
                        _ => return Err(format!("'{entry}' has no valid port after ':'")),
                    },
                    None => (entry, port),
                };
                if host.is_empty() {
                    return Err(format!("'{hosts}' names an empty host"));
                }
                Ok(Endpoint {
                    host: host.to_owned(),
                    port,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Addresses(parsed))
    }

    /// The addresses.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.0
    }

    /// A client of the coordinators at these addresses (connecting lazily).
    pub fn coordinators(&self) -> Result<CoordClient, Fatal> {
        CoordClient::new(&self.0).map_err(|e| Fatal::new("bad coordinator address", e))
    }
}

impl std::fmt::Display for Addresses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&list.join(","))
    }
}

/// Runs a program: parses `args` (the first being the program's name) as `F` and runs
/// `run` on a multi-threaded runtime. A failure is printed as one line and ends the
/// program with status 1.
pub fn run_program<F, Fut>(
    program: &str,
    args: Vec<OsString>,
    run: impl FnOnce(F) -> Fut,
) -> ExitCode
where
    F: Parser,
    Fut: Future<Output = Result<(), Fatal>>,
{
    let flags: F = parse_flags(program, args);
    match runtime().block_on(run(flags)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(fatal) => fatal.report(program),
    }
}

/// The runtime every program runs on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the operating system provides threads and timers")
}

/// Parses `args` (the first being the program's name) as `T`. `--help` prints and exits
/// 0; a bad flag prints one line (`program: what is wrong`) on standard error and exits 2.
pub fn parse_flags<T: Parser>(program: &str, args: Vec<OsString>) -> T {
    match T::try_parse_from(args) {
        Ok(flags) => flags,
        Err(error)
            if matches!(
                error.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            ) =>
        {
            let _ = error.print();
            std::process::exit(0);
        }
        Err(error) => {
            let line = one_line(&error.to_string());
            eprintln!("{program}: {line} (see {program} --help)");
            std::process::exit(2);
        }
    }
}

/// A parse error of clap's in one line: its first line, and, where that line ends with a
/// colon (`the following required arguments were not provided:`), the indented lines
/// that list what it means.
fn one_line(text: &str) -> String {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("invalid flags");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    if !first.ends_with(':') {
        return first.to_owned();
    }
    let listed: Vec<&str> = lines
        .take_while(|line| line.starts_with(' '))
        .map(str::trim)
        .collect();
    format!("{first} {}", listed.join(", "))
}

/// Parses durations written like `200ms`, `1s` or `1m 30s`.
pub fn duration(text: &str) -> Result<Duration, String> {
    let duration = duration_or_zero(text)?;
    if duration.is_zero() {
        return Err("a duration must be longer than zero".into());
    }
    Ok(duration)
}

/// Like [`duration`], but zero (`0s`) is allowed: "none".
pub fn duration_or_zero(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("'{text}' is not a duration like 200ms or 10s: {e}"))
}

/// TSN's crates: the targets of its own log lines.
const OWN_TARGETS: [&str; 6] = [
    "tsn_core",
    "tsn_fs",
    "tsn_server",
    "tsn_grpc",
    "tsn_bins",
    "tsn",
];

/// The filter for `RUST_LOG`'s value `spec`. A bare level (`debug`) is TSN's: its own lines
/// at that level, the libraries' at `info` at most (their debug output is HTTP/2 frames);
/// anything else (`h2=debug,info`) is taken as `tracing`'s directives. Unset: `info`.
fn log_filter(spec: Option<&str>) -> String {
    let spec = spec.map(str::trim).unwrap_or_default();
    let libraries = match spec.to_ascii_lowercase().as_str() {
        "" => return "info".to_owned(),
        "trace" | "debug" => "info",
        level @ ("info" | "warn" | "error" | "off") => return level.to_owned(),
        _ => return spec.to_owned(),
    };
    let own: Vec<String> = OWN_TARGETS.iter().map(|t| format!("{t}={spec}")).collect();
    format!("{libraries},{}", own.join(","))
}

/// Sends `tracing` output to standard error, as `RUST_LOG` says (see [`log_filter`]).
pub fn init_logging() {
    let spec = std::env::var("RUST_LOG").ok();
    let filter = tracing_subscriber::EnvFilter::try_new(log_filter(spec.as_deref()))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// A failure that ends a program at start: printed as one line, exit status 1.
#[derive(Debug)]
pub struct Fatal(pub String);

impl Fatal {
    /// A failure described by `what` and its cause.
    pub fn new(what: impl Display, cause: impl Display) -> Self {
        Fatal(format!("{what}: {cause}"))
    }

    /// Prints `program: message` on standard error and returns the exit status.
    pub fn report(self, program: &str) -> ExitCode {
        eprintln!("{program}: {}", self.0);
        ExitCode::from(1)
    }
}

/// Binds a TCP listener on `host:port` (port 0 picks a free one).
pub async fn listen(host: &str, port: u16) -> Result<TcpListener, Fatal> {
    let address = format!("{host}:{port}");
    let socket: SocketAddr = tokio::net::lookup_host(&address)
        .await
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| Fatal(format!("cannot listen on {address}: not a local address")))?;
    TcpListener::bind(socket)
        .await
        .map_err(|e| Fatal::new(format_args!("cannot listen on {address}"), e))
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_log_level_is_tsns_and_directives_are_taken_as_they_are() {
        assert_eq!(log_filter(None), "info");
        assert_eq!(
            log_filter(Some("debug")),
            "info,tsn_core=debug,tsn_fs=debug,tsn_server=debug,tsn_grpc=debug,tsn_bins=debug,tsn=debug"
        );
        assert_eq!(log_filter(Some("warn")), "warn");
        assert_eq!(log_filter(Some("h2=trace,info")), "h2=trace,info");
        for spec in ["debug", "trace", "h2=trace,info", "warn"] {
            assert!(tracing_subscriber::EnvFilter::try_new(log_filter(Some(spec))).is_ok());
        }
    }

    #[test]
    fn addresses_are_one_host_or_a_list_of_hosts_with_or_without_ports() {
        let one = Addresses::parse("10.0.0.1", 9090).expect("one host");
        assert_eq!(one.to_string(), "10.0.0.1:9090");
        let list = Addresses::parse("a, b:9191,c", 9090).expect("a list");
        assert_eq!(list.to_string(), "a:9090,b:9191,c:9090");
        for bad in ["", "a,,b", "a:x", "a:0", ":9090"] {
            assert!(Addresses::parse(bad, 9090).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(duration("10s"), Ok(Duration::from_secs(10)));
        assert!(duration("10").is_err());
        assert!(duration("0s").is_err());
        assert!(duration("fast").is_err());
    }
}
