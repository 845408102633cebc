//! `tsc`: see [`tsn_bins::program::tsc`].

fn main() -> std::process::ExitCode {
    tsn_bins::program::tsc::main(std::env::args_os().collect())
}
