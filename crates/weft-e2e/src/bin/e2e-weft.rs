//! The `weft` command, for the end-to-end tests.

fn main() -> std::process::ExitCode {
    weft::inspect::main()
}
