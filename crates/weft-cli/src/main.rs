//! The `weft` command: the inspection commands every pipeline binary answers too
//! (`weft::inspect`), and the server's (`weft server`, `weft ui`), in a binary of their own.

/// mimalloc rather than the system's allocator: a server that answered a large read (a run of
/// 100,000 steps) on several threads gives the memory back once idle (84 MiB), where glibc's
/// per-thread arenas kept it (290 MiB after eight reads, and growing with each).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    weft::inspect::main_with(weft_server::cli::run)
}
