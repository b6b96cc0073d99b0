//! The `weft` command. Everything lives in the library, so other binaries can embed it.

fn main() -> std::process::ExitCode {
    weft_cli::main()
}
