//! `synchronizer`: see [`tsn_bins::program::synchronizer`].

fn main() -> std::process::ExitCode {
    tsn_bins::program::synchronizer::main(std::env::args_os().collect())
}
