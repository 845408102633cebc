//! `tsn-local`: see [`tsn_bins::program::local`].

fn main() -> std::process::ExitCode {
    tsn_bins::program::local::main(std::env::args_os().collect())
}
