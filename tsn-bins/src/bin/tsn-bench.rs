//! `tsn-bench`: see [`tsn_bins::program::bench`].

fn main() -> std::process::ExitCode {
    tsn_bins::program::bench::main(std::env::args_os().collect())
}
