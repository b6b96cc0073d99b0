//! Which process orchestrates a run, and whether it still lives.
//!
//! A run records its orchestrator's host, process id and process start time, and what makes
//! the id meaningful: the PID namespace it belongs to and the host's boot id. Where all of
//! those match the reader's, a process that no longer exists (or whose id now belongs to a
//! younger process) is certainly dead, so its runs can be failed at once. Elsewhere (another
//! host, another boot, a container sharing the host's name), only the run's heartbeat tells:
//! a run whose heartbeat is older than the grace period is taken as dead.

use weft_store::model::Owner;

/// The current process.
pub fn current() -> Owner {
    let pid = std::process::id();
    Owner {
        host: host(),
        pid,
        started: started(pid),
        pid_namespace: pid_namespace(),
        boot_id: boot_id(),
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
    // Records from before these were kept have neither: judged by host alone, as then.
    let same = |recorded: &Option<String>, ours: Option<String>| {
        recorded.is_none() || recorded.as_ref() == ours.as_ref()
    };
    if !same(&owner.pid_namespace, pid_namespace()) || !same(&owner.boot_id, boot_id()) {
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

/// The PID namespace of this process, as `/proc/self/ns/pid` names it.
fn pid_namespace() -> Option<String> {
    std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .map(|link| link.display().to_string())
}

/// This boot of the host.
fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
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
        for elsewhere in [
            Owner {
                host: "another-host".into(),
                ..me.clone()
            },
            Owner {
                pid,
                started: Some(1),
                pid_namespace: Some("pid:[1]".into()),
                ..me.clone()
            },
            Owner {
                pid,
                started: Some(1),
                boot_id: Some("another boot".into()),
                ..me.clone()
            },
        ] {
            assert_eq!(liveness(&elsewhere), Liveness::Unknown, "{elsewhere:?}");
        }
        let legacy = Owner {
            pid,
            started: Some(1),
            pid_namespace: None,
            boot_id: None,
            ..me
        };
        assert_eq!(
            liveness(&legacy),
            Liveness::Dead,
            "judged by host as before"
        );
    }
}
