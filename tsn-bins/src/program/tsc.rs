//! The client, `tsc`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::cli::{self, Addresses};
use clap::{ArgAction, Parser};
use tsn_core::id::UserId;
use tsn_grpc::tls::{self, Security};

/// The client's flags.
#[derive(Parser, Debug)]
#[command(
    name = "tsc",
    allow_negative_numbers = true,
    version,
    about = "TSN client: follow users, list them, and read and write your timeline",
    disable_help_flag = true
)]
struct Flags {
    #[arg(short = 'h', long = "coordinator-host", default_value = "127.0.0.1", help = cli::COORDINATOR_HOSTS_HELP)]
    coordinator_host: String,
    /// Port of the coordinator.
    #[arg(short = 'k', long = "coordinator-port", default_value_t = 9090, value_parser = clap::value_parser!(u16).range(1..))]
    coordinator_port: u16,
    /// Your user id: a whole number from 1 to 2147483647.
    #[arg(short = 'u', long = "user", default_value = "1", value_parser = parse_user)]
    user: UserId,
    /// Speak TLS to the servers, verifying them against this certificate authority (PEM).
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// Print help.
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
}

fn parse_user(text: &str) -> Result<UserId, String> {
    text.parse::<UserId>().map_err(|e| e.to_string())
}

/// Runs the client with `args` (the first being the program's name).
pub fn main(args: Vec<OsString>) -> ExitCode {
    let flags: Flags = cli::parse_flags("tsc", args);
    if let Some(ca) = &flags.tls_ca {
        let installed = Security::client(ca).and_then(tls::install);
        if let Err(error) = installed {
            eprintln!("tsc: bad --tls-ca: {error}");
            return ExitCode::from(2);
        }
    }
    match Addresses::parse(&flags.coordinator_host, flags.coordinator_port) {
        Ok(coordinators) => cli::runtime().block_on(crate::client::run(coordinators, flags.user)),
        Err(error) => {
            eprintln!("tsc: bad -h: {error}");
            ExitCode::from(2)
        }
    }
}
