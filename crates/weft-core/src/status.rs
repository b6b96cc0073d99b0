//! Execution statuses and the one state machine that owns every status change.
//!
//! Both runs and step runs carry a [`Status`]. Every change of either goes through
//! [`check_step_run_transition`] or [`check_run_transition`]; the metadata store calls them
//! inside the transaction that writes the change, so an illegal change is an error and never a
//! silent overwrite. A finished status never changes.
//!
//! The status of a static run is not set by hand: [`derive_static_run_status`] computes it from
//! the latest attempt of every invocation.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The status of a run or a step run.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// A run that is recorded but whose orchestrator has not started a step yet.
    Initializing,
    /// An environment is being prepared (isolated steps).
    Provisioning,
    /// Waiting for a slot to run.
    Queued,
    /// Executing.
    Running,
    /// Finished successfully.
    Completed,
    /// Finished by reusing the outputs of an earlier, identical step run.
    Cached,
    /// Not executed because an upstream failed or the run stopped; counts as successful for
    /// nothing downstream, since downstream steps are skipped too.
    Skipped,
    /// Finished with an error.
    Failed,
    /// Failed, and another attempt will follow.
    Retrying,
    /// An earlier attempt that was followed by another one.
    Retried,
    /// Asked to stop; no new step starts.
    Stopping,
    /// Stopped before finishing.
    Stopped,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 12] = [
        Status::Initializing,
        Status::Provisioning,
        Status::Queued,
        Status::Running,
        Status::Completed,
        Status::Cached,
        Status::Skipped,
        Status::Failed,
        Status::Retrying,
        Status::Retried,
        Status::Stopping,
        Status::Stopped,
    ];

    /// The lower-case name used in storage, JSON and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Initializing => "initializing",
            Status::Provisioning => "provisioning",
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Cached => "cached",
            Status::Skipped => "skipped",
            Status::Failed => "failed",
            Status::Retrying => "retrying",
            Status::Retried => "retried",
            Status::Stopping => "stopping",
            Status::Stopped => "stopped",
        }
    }

    /// Whether nothing more will happen to the record: it can never change again.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            Status::Completed
                | Status::Cached
                | Status::Skipped
                | Status::Failed
                | Status::Retried
                | Status::Stopped
        )
    }

    /// Whether the record finished without an error.
    pub fn is_successful(self) -> bool {
        matches!(self, Status::Completed | Status::Cached | Status::Skipped)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no status.
#[derive(Debug, thiserror::Error)]
#[error("unknown status `{0}`")]
pub struct ParseStatusError(pub String);

impl FromStr for Status {
    type Err = ParseStatusError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| ParseStatusError(text.to_owned()))
    }
}

/// What a status belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Subject {
    /// A pipeline run.
    Run,
    /// One attempt of one invocation.
    StepRun,
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Subject::Run => "run",
            Subject::StepRun => "step run",
        })
    }
}

/// A status change the state machine refuses.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum TransitionError {
    /// The record already finished; finished statuses are final.
    #[error("a {subject} that is {from} is finished and cannot become {to}")]
    Finished {
        /// Run or step run.
        subject: Subject,
        /// Its current status.
        from: Status,
        /// The refused status.
        to: Status,
    },
    /// The change is not part of the lifecycle.
    #[error("a {subject} cannot go from {from} to {to}")]
    Illegal {
        /// Run or step run.
        subject: Subject,
        /// Its current status.
        from: Status,
        /// The refused status.
        to: Status,
    },
    /// A record cannot be created with this status.
    #[error("a {subject} cannot be created as {status}")]
    IllegalInitial {
        /// Run or step run.
        subject: Subject,
        /// The refused status.
        status: Status,
    },
}

/// Checks that a step run may be created with `status`.
pub fn check_step_run_initial(status: Status) -> Result<(), TransitionError> {
    use Status::*;
    match status {
        Queued | Provisioning | Running | Cached | Skipped | Failed => Ok(()),
        _ => Err(TransitionError::IllegalInitial {
            subject: Subject::StepRun,
            status,
        }),
    }
}

/// Checks that a run may be created with `status`.
pub fn check_run_initial(status: Status) -> Result<(), TransitionError> {
    match status {
        Status::Initializing => Ok(()),
        _ => Err(TransitionError::IllegalInitial {
            subject: Subject::Run,
            status,
        }),
    }
}

/// Checks one status change of a step run.
pub fn check_step_run_transition(from: Status, to: Status) -> Result<(), TransitionError> {
    use Status::*;
    if from.is_finished() {
        return Err(TransitionError::Finished {
            subject: Subject::StepRun,
            from,
            to,
        });
    }
    let legal = match from {
        Queued => matches!(to, Provisioning | Running | Failed | Stopping | Stopped),
        Provisioning => matches!(to, Running | Failed | Stopping | Stopped),
        Running => matches!(to, Completed | Failed | Retrying | Stopping | Stopped),
        Retrying => matches!(to, Retried | Failed | Stopped),
        Stopping => matches!(to, Stopped | Failed),
        _ => false,
    };
    if legal {
        Ok(())
    } else {
        Err(TransitionError::Illegal {
            subject: Subject::StepRun,
            from,
            to,
        })
    }
}

/// Checks one status change of a run.
pub fn check_run_transition(from: Status, to: Status) -> Result<(), TransitionError> {
    use Status::*;
    if from.is_finished() {
        return Err(TransitionError::Finished {
            subject: Subject::Run,
            from,
            to,
        });
    }
    let legal = match from {
        Initializing => {
            matches!(
                to,
                Provisioning | Running | Completed | Failed | Stopping | Stopped
            )
        }
        Provisioning => matches!(to, Running | Completed | Failed | Stopping | Stopped),
        Running => matches!(to, Completed | Failed | Stopping | Stopped),
        Stopping => matches!(to, Stopped | Failed),
        _ => false,
    };
    if legal {
        Ok(())
    } else {
        Err(TransitionError::Illegal {
            subject: Subject::Run,
            from,
            to,
        })
    }
}

/// Derives the status of a static run from its step runs.
///
/// `latest` holds the status of the latest attempt of each invocation that has a step run;
/// `invocations` is how many invocations the snapshot has. The rules, in order:
/// a finished run keeps its status; while any invocation is unresolved or active the run is
/// `running` (or stays `initializing`/`provisioning` until a first step run exists; a
/// `stopping` run stays `stopping`); once every invocation finished, a stopping run is
/// `stopped`, otherwise the run is `failed` if any step failed, `stopped` if any stopped, else
/// `completed`.
pub fn derive_static_run_status(
    current: Status,
    invocations: usize,
    latest: impl IntoIterator<Item = Status>,
) -> Status {
    if current.is_finished() {
        return current;
    }
    let (mut seen, mut active, mut failed, mut stopped) = (0usize, false, false, false);
    for status in latest {
        seen += 1;
        match status {
            Status::Failed => failed = true,
            Status::Stopped => stopped = true,
            status if !status.is_finished() => active = true,
            _ => {}
        }
    }
    if active || seen < invocations {
        return match current {
            Status::Stopping => Status::Stopping,
            Status::Initializing | Status::Provisioning if seen == 0 => current,
            _ => Status::Running,
        };
    }
    if current == Status::Stopping {
        Status::Stopped
    } else if failed {
        Status::Failed
    } else if stopped {
        Status::Stopped
    } else {
        Status::Completed
    }
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;

    fn table(check: fn(Status, Status) -> Result<(), TransitionError>) -> String {
        let mut out = String::new();
        for from in Status::ALL {
            let legal: Vec<&str> = Status::ALL
                .into_iter()
                .filter(|&to| check(from, to).is_ok())
                .map(Status::as_str)
                .collect();
            out.push_str(&format!("{:<12} -> {}\n", from.as_str(), legal.join(", ")));
        }
        out
    }

    #[test]
    fn every_step_run_transition() {
        expect![[r#"
            initializing -> 
            provisioning -> running, failed, stopping, stopped
            queued       -> provisioning, running, failed, stopping, stopped
            running      -> completed, failed, retrying, stopping, stopped
            completed    -> 
            cached       -> 
            skipped      -> 
            failed       -> 
            retrying     -> failed, retried, stopped
            retried      -> 
            stopping     -> failed, stopped
            stopped      -> 
        "#]]
        .assert_eq(&table(check_step_run_transition));
    }

    #[test]
    fn every_run_transition() {
        expect![[r#"
            initializing -> provisioning, running, completed, failed, stopping, stopped
            provisioning -> running, completed, failed, stopping, stopped
            queued       -> 
            running      -> completed, failed, stopping, stopped
            completed    -> 
            cached       -> 
            skipped      -> 
            failed       -> 
            retrying     -> 
            retried      -> 
            stopping     -> failed, stopped
            stopped      -> 
        "#]]
        .assert_eq(&table(check_run_transition));
    }

    #[test]
    fn initial_statuses() {
        let step: Vec<_> = Status::ALL
            .into_iter()
            .filter(|s| check_step_run_initial(*s).is_ok())
            .collect();
        assert_eq!(
            step,
            [
                Status::Provisioning,
                Status::Queued,
                Status::Running,
                Status::Cached,
                Status::Skipped,
                Status::Failed
            ]
        );
        let run: Vec<_> = Status::ALL
            .into_iter()
            .filter(|s| check_run_initial(*s).is_ok())
            .collect();
        assert_eq!(run, [Status::Initializing]);
    }

    #[test]
    fn finished_statuses_never_change_and_say_why() {
        for from in Status::ALL.into_iter().filter(|s| s.is_finished()) {
            for to in Status::ALL {
                let error = check_step_run_transition(from, to).unwrap_err();
                assert!(matches!(error, TransitionError::Finished { .. }));
                assert!(check_run_transition(from, to).is_err());
            }
        }
        let error = check_step_run_transition(Status::Completed, Status::Failed).unwrap_err();
        assert_eq!(
            error.to_string(),
            "a step run that is completed is finished and cannot become failed"
        );
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>().unwrap(), status);
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{status}\"")
            );
        }
        assert!("done".parse::<Status>().is_err());
    }

    #[test]
    fn static_run_status_derivation() {
        use Status::*;
        let derive = |current, invocations, latest: &[Status]| {
            derive_static_run_status(current, invocations, latest.iter().copied())
        };
        assert_eq!(derive(Initializing, 3, &[]), Initializing);
        assert_eq!(derive(Initializing, 3, &[Running]), Running);
        assert_eq!(derive(Running, 3, &[Completed, Completed]), Running);
        assert_eq!(derive(Running, 2, &[Completed, Cached]), Completed);
        assert_eq!(derive(Running, 3, &[Completed, Failed, Running]), Running);
        assert_eq!(derive(Running, 3, &[Completed, Failed, Skipped]), Failed);
        assert_eq!(derive(Running, 2, &[Stopped, Completed]), Stopped);
        assert_eq!(derive(Stopping, 2, &[Running, Completed]), Stopping);
        assert_eq!(derive(Stopping, 2, &[Skipped, Completed]), Stopped);
        assert_eq!(derive(Stopping, 2, &[Failed, Completed]), Stopped);
        assert_eq!(derive(Initializing, 2, &[Cached, Cached]), Completed);
        assert_eq!(derive(Failed, 2, &[Completed, Completed]), Failed);
    }
}
