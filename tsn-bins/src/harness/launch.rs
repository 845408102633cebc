//! How a program of TSN is started: this executable under the program's name, or a built
//! binary of the workspace; and how this executable, so started, becomes that program.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use crate::cli::Fatal;

/// The programs this executable also is: started under one of these names (`argv[0]`), it
/// runs that program.
const PROGRAMS: [&str; 4] = ["coordinator", "tsd", "tsc", "synchronizer"];

/// Where the programs a harness starts come from.
#[derive(Clone, Debug)]
pub enum Launcher {
    /// This executable (`tsn-local`, `tsn-bench`, `tsn-faults`), run under the program's
    /// name ([`run_as`]): always the same version as the tool, and shown in `ps` as
    /// `tsd -c 1 -s 2 ...`.
    ThisExecutable(PathBuf),
    /// The built binaries, by program name (the end-to-end tests' `CARGO_BIN_EXE_*`).
    Binaries(fn(&str) -> PathBuf),
}

impl Launcher {
    /// This executable, run under each program's name.
    pub fn this_executable() -> Result<Launcher, Fatal> {
        std::env::current_exe()
            .map(Launcher::ThisExecutable)
            .map_err(|e| Fatal::new("cannot find this program's executable", e))
    }

    /// A command that runs `program` with `args`; on Linux it is sent SIGTERM when the
    /// thread that starts it ends, so that no child outlives its harness. Start it from a
    /// thread that lives as long as the child should: the main thread, a test's thread or a
    /// runtime's worker, not a blocking-pool thread, which ends when idle.
    pub fn command(&self, program: &str, args: &[String]) -> Command {
        let mut command = match self {
            Launcher::ThisExecutable(exe) => {
                let mut command = Command::new(exe);
                command.arg0(program);
                command
            }
            Launcher::Binaries(binary) => Command::new(binary(program)),
        };
        command.args(args);
        stop_with_parent(&mut command);
        command
    }
}

/// When this executable was started under the name of one of [`PROGRAMS`] (as
/// [`Launcher::ThisExecutable`] starts them), runs that program with `args` and returns its
/// exit status; otherwise `None`. The process takes the program's name too, so that
/// `ps -C tsd` and `top` show it so.
pub fn run_as(args: &[OsString]) -> Option<ExitCode> {
    let name = args
        .first()
        .map(Path::new)
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())?;
    let program = *PROGRAMS.iter().find(|&&p| p == name)?;
    name_this_process(program);
    let args = args.to_vec();
    Some(match program {
        "coordinator" => crate::program::coordinator::main(args),
        "tsd" => crate::program::tsd::main(args),
        "tsc" => crate::program::tsc::main(args),
        _ => crate::program::synchronizer::main(args),
    })
}

/// Sets the name the kernel shows for this process (`/proc/self/comm`, what `ps -e` and
/// `top` print) to `name`.
fn name_this_process(name: &str) {
    let Ok(name) = std::ffi::CString::new(name) else {
        return;
    };
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes (the kernel
    // cuts it), which `name` is, and keeps no pointer to it.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0);
    }
}

/// Has the child that `command` starts sent SIGTERM when the thread that starts it ends
/// (on Linux), so that it does not outlive its harness.
#[cfg(target_os = "linux")]
pub(super) fn stop_with_parent(command: &mut Command) {
    // SAFETY: prctl is async-signal-safe and changes only the child being created.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
pub(super) fn stop_with_parent(_command: &mut Command) {}
