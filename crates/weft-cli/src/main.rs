//! The `weft` command: the inspection commands every pipeline binary answers too
//! (`weft::inspect`), in a binary of their own.

fn main() -> std::process::ExitCode {
    weft::inspect::main()
}
