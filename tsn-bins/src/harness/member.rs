//! [`Member`]: one program of a deployment, as the deployment started it.

use std::process::ExitStatus;

use tsn_core::coordinator::Endpoint;

use super::process::Process;

/// One member of a [`Deployment`](super::Deployment): a running program with its name, its
/// place in the deployment and the flags to start it again with.
#[derive(Debug)]
pub struct Member {
    /// `coordinator`, `tsd-<cluster>-<server>` or `synchronizer-<cluster>`.
    pub name: String,
    /// The program it runs.
    pub program: String,
    /// Its cluster, for a tsd or a synchronizer.
    pub cluster: Option<u32>,
    /// Its server id, for a tsd.
    pub server: Option<u32>,
    /// Where it listens.
    pub address: String,
    /// The flags it was started with.
    pub(super) args: Vec<String>,
    pub(super) process: Process,
    pub(super) exit_reported: bool,
    /// The length of its log file when this run of it started.
    pub(super) log_start: u64,
}

impl Member {
    /// The role it last took up (`master`, `slave`), or `None` yet.
    pub fn role(&self) -> Option<String> {
        self.process.stderr().role()
    }

    /// The exit status, the first time it is seen after the program exited.
    pub fn newly_exited(&mut self) -> Option<ExitStatus> {
        if self.exit_reported {
            return None;
        }
        let status = self.process.try_wait()?;
        self.exit_reported = true;
        Some(status)
    }

    /// Where it listens, as an endpoint.
    pub fn endpoint(&self) -> Result<Endpoint, String> {
        let (host, port) = self
            .address
            .rsplit_once(':')
            .ok_or_else(|| format!("'{}' is no address", self.address))?;
        let port = port
            .parse()
            .map_err(|_| format!("'{}' has no port", self.address))?;
        Ok(Endpoint {
            host: host.to_owned(),
            port,
        })
    }

    /// The process id, unless it was killed or seen exited.
    pub fn pid(&self) -> Option<u32> {
        (!self.exit_reported).then(|| self.process.pid())
    }
}
