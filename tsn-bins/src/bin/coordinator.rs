//! `coordinator`: see [`tsn_bins::program::coordinator`].

fn main() -> std::process::ExitCode {
    tsn_bins::program::coordinator::main(std::env::args_os().collect())
}
