//! Plain descriptions of stored artifacts shared by the artifact store and the metadata store.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One file of a stored artifact version, with what is needed to verify it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct FileRecord {
    /// File name inside the artifact version's folder.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// BLAKE3 hash of the bytes, hex.
    pub blake3: String,
    /// The store's entity tag for the file when it was written (for local files: inode,
    /// modification time and size). An unchanged tag lets a check skip re-hashing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

/// What kind of thing an artifact is; used for display and filtering.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactType {
    /// Data sets, features, predictions, numbers.
    #[default]
    Data,
    /// Trained models.
    Model,
    /// Reports, statistics and other analyses of data.
    DataAnalysis,
}

impl ArtifactType {
    /// The name used in storage and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactType::Data => "data",
            ArtifactType::Model => "model",
            ArtifactType::DataAnalysis => "data_analysis",
        }
    }
}

impl fmt::Display for ArtifactType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no artifact type.
#[derive(Debug, thiserror::Error)]
#[error("unknown artifact type `{0}` (expected data, model or data_analysis)")]
pub struct ParseArtifactTypeError(pub String);

impl FromStr for ArtifactType {
    type Err = ParseArtifactTypeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "data" => Ok(ArtifactType::Data),
            "model" => Ok(ArtifactType::Model),
            "data_analysis" => Ok(ArtifactType::DataAnalysis),
            _ => Err(ParseArtifactTypeError(text.to_owned())),
        }
    }
}
