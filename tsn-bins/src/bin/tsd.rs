//! `tsd`: see [`tsn_bins::program::tsd`].

fn main() -> std::process::ExitCode {
    tsn_bins::program::tsd::main(std::env::args_os().collect())
}
