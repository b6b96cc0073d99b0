//! Typed identifiers. Records are identified by time-ordered UUIDs (v7), so ids sort by
//! creation time; snapshots are identified by the hash of their content.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A string that is not a valid id.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{input}` is not a valid {kind} id (expected a UUID such as 0192f0c8-1b2a-7c3d-8e4f-5a6b7c8d9e0f)"
)]
pub struct ParseIdError {
    /// What kind of id was expected.
    pub kind: &'static str,
    /// The text that failed to parse.
    pub input: String,
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, unique id whose order follows creation time.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;

            fn from_str(input: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(input.trim())
                    .map(Self)
                    .map_err(|_| ParseIdError { kind: $kind, input: input.to_owned() })
            }
        }
    };
}

uuid_id!(
    /// Identifies a pipeline (a name under which runs are grouped).
    PipelineId,
    "pipeline"
);
uuid_id!(
    /// Identifies one run of a pipeline.
    RunId,
    "run"
);
uuid_id!(
    /// Identifies one attempt of one invocation inside a run.
    StepRunId,
    "step run"
);
uuid_id!(
    /// Identifies an artifact: a named series of versions.
    ArtifactId,
    "artifact"
);
uuid_id!(
    /// Identifies one immutable, stored artifact version.
    ArtifactVersionId,
    "artifact version"
);

/// Identifies a snapshot by the BLAKE3 hash of its canonical encoding (64 hex digits), so the
/// same plan is stored once however often it runs.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SnapshotId(String);

impl SnapshotId {
    /// Wraps a hex digest. The caller vouches that it is one.
    pub fn from_hex(hex: impl Into<String>) -> Self {
        Self(hex.into())
    }

    /// The hex digest.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SnapshotId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text_and_sort_by_creation() {
        let first = RunId::new();
        let second = RunId::new();
        assert!(first < second);
        assert_eq!(first.to_string().parse::<RunId>().unwrap(), first);
    }

    #[test]
    fn a_bad_id_names_its_kind() {
        let error = "nope".parse::<StepRunId>().unwrap_err();
        assert!(
            error.to_string().contains("not a valid step run id"),
            "{error}"
        );
    }
}
