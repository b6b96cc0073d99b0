//! The domain model of weft, free of IO and of any async runtime.
//!
//! Everything that decides *what* happens lives here, so that every driver (the local
//! orchestrator, later isolated processes and Slurm) shares one definition of it:
//!
//! - [`artifact`]: plain descriptions of stored artifact files and artifact types;
//! - [`id`]: typed identifiers of runs, step runs, artifacts and snapshots;
//! - [`status`]: the execution statuses and the one state machine that allows or refuses
//!   every status change, plus the derivation of a static run's status from its step runs;
//! - [`snapshot`]: the compiled, immutable plan of a static pipeline and its content address;
//! - [`compile`]: turning recorded step calls into a validated snapshot (invocation ids,
//!   unknown upstreams, missing inputs, cycles, empty pipelines);
//! - [`schedule`]: the dependency-order scheduler as a pure state machine with the three
//!   execution modes;
//! - [`digest`]: BLAKE3 hashes of files and versions, held as bytes and written as hex;
//! - [`canonical`]: the canonical JSON encoding and BLAKE3 hashing used for content addresses;
//! - [`policy`]: caching, retry and timeout settings, and how step, pipeline and run settings
//!   combine;
//! - [`cache`]: cache keys, their parts and their encoding.
//!
//! Invariant: this crate performs no IO, spawns no threads and knows no storage backend.

pub mod artifact;
pub mod cache;
pub mod canonical;
pub mod compile;
pub mod digest;
pub mod id;
/// Limits every metadata store enforces alike, checked before anything runs.
pub mod limits {
    /// Characters in a name: a pipeline, an invocation id, an artifact.
    pub const NAME: usize = 512;
}
pub mod message;
pub mod parameters;
pub mod policy;
pub mod schedule;
pub mod snapshot;
pub mod status;

pub use digest::Digest;
pub use id::{ArtifactId, ArtifactVersionId, PipelineId, RunId, SnapshotId, StepRunId};
pub use snapshot::{ExecutionMode, Snapshot};
pub use status::Status;
