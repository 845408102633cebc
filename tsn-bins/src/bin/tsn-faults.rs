//! `tsn-faults`: see [`tsn_bins::program::faults`].

fn main() -> std::process::ExitCode {
    tsn_bins::program::faults::main(std::env::args_os().collect())
}
