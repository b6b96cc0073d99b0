//! The process's peak resident memory, for benchmarks that report it (Linux).

/// Resets the process's peak resident memory (Linux), so the next reading covers what
/// follows only.
pub(crate) fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The process's peak resident memory in MiB since the last reset (Linux).
pub(crate) fn peak_mib() -> Option<f64> {
    status_mib("VmHWM:")
}

/// The process's resident memory in MiB now (Linux).
#[allow(dead_code)] // Not every benchmark that reports a peak needs it.
pub(crate) fn resident_mib() -> Option<f64> {
    status_mib("VmRSS:")
}

fn status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}
