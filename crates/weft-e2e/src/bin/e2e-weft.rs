//! The `weft` command, for the end-to-end tests: the inspections and the server's commands,
//! as `weft-cli` builds it.

fn main() -> std::process::ExitCode {
    weft::inspect::main_with(weft_server::cli::run)
}
