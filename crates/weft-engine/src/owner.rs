//! Which process orchestrates a run, and whether it still lives.
//!
//! A run records its orchestrator's host, process id and process start time. On the same
//! host, a process that no longer exists (or whose id now belongs to a younger process) is
//! certainly dead, so its runs can be failed at once. Elsewhere, only the run's heartbeat
//! tells: a run whose heartbeat is older than the grace period is taken as dead.

use weft_store::model::Owner;

/// The current process.
pub fn current() -> Owner {
    let pid = std::process::id();
    Owner {
        host: host(),
        pid,
        started: started(pid),
    }
}

/// What can be said about a run's orchestrator from here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// It runs (or it is this very process).
    Alive,
    /// It is gone.
    Dead,
    /// It runs elsewhere: only the heartbeat can tell.
    Unknown,
}

/// Whether `owner` is alive, as seen from this process.
pub fn liveness(owner: &Owner) -> Liveness {
    let here = host();
    if owner.host != here || here == UNKNOWN_HOST {
        return Liveness::Unknown;
    }
    match (started(owner.pid), owner.started) {
        (None, _) if std::path::Path::new("/proc/self/stat").exists() => Liveness::Dead,
        (None, _) => Liveness::Unknown,
        (Some(now), Some(then)) if now != then => Liveness::Dead,
        _ => Liveness::Alive,
    }
}

const UNKNOWN_HOST: &str = "unknown";

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| UNKNOWN_HOST.to_owned())
}

/// The start time of process `pid` in clock ticks since boot (field 22 of
/// `/proc/<pid>/stat`), which tells a reused process id apart.
fn started(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: fields after it are
    // counted from its closing parenthesis.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_gone_one_is_dead() {
        let me = current();
        assert_eq!(me.pid, std::process::id());
        if me.started.is_none() {
            return; // No /proc here: nothing more to check.
        }
        assert_eq!(liveness(&me), Liveness::Alive);
        let reused = Owner {
            started: me.started.map(|s| s + 1),
            ..me.clone()
        };
        assert_eq!(
            liveness(&reused),
            Liveness::Dead,
            "the same pid, started at another time"
        );
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let gone = Owner {
            pid,
            started: Some(1),
            ..me.clone()
        };
        assert_eq!(liveness(&gone), Liveness::Dead);
        let elsewhere = Owner {
            host: "another-host".into(),
            ..me
        };
        assert_eq!(liveness(&elsewhere), Liveness::Unknown);
    }
}
