//! The `weft` command: the inspection commands every pipeline binary answers too
//! (`weft::inspect`), and the server's (`weft server`, `weft ui`), in a binary of their own.

fn main() -> std::process::ExitCode {
    weft::inspect::main_with(weft_server::cli::run)
}
