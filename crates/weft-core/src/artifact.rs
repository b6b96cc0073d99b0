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
    /// BLAKE3 hash of the bytes (hex in JSON).
    pub blake3: crate::Digest,
    /// The store's entity tag for the file when it was written (for local files: inode,
    /// modification time and size). An unchanged tag lets a check skip re-hashing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Set when the file is a visualization of the data (a histogram, a table sample, ...)
    /// rather than the data itself: what kind of document it is. Visualizations are hashed
    /// and verified like data files but are not part of the version's content hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visualization: Option<VisualizationType>,
    /// The file's bytes, when the file is small enough to be kept in its record (in the
    /// metadata store) rather than in the artifact store: no file, folder or request is then
    /// spent on it. Hashed and verified like any file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<InlineBytes>,
}

impl FileRecord {
    /// Whether the file is a visualization rather than data.
    pub fn is_visualization(&self) -> bool {
        self.visualization.is_some()
    }

    /// Whether the file's bytes are kept in this record.
    pub fn is_inline(&self) -> bool {
        self.inline.is_some()
    }
}

/// The bytes of a file kept in its record: recorded as `{"text": ...}` when they are UTF-8
/// (JSON, text: readable in the database too), else as `{"base64": ...}`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct InlineBytes(pub Vec<u8>);

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum InlineForm {
    Text(String),
    Base64(String),
}

impl Serialize for InlineBytes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        match std::str::from_utf8(&self.0) {
            Ok(text) => InlineForm::Text(text.to_owned()),
            Err(_) => InlineForm::Base64(base64::engine::general_purpose::STANDARD.encode(&self.0)),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for InlineBytes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use base64::Engine as _;
        match InlineForm::deserialize(deserializer)? {
            InlineForm::Text(text) => Ok(Self(text.into_bytes())),
            InlineForm::Base64(encoded) => base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map(Self)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// The kinds of document a visualization may be.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VisualizationType {
    /// A PNG image.
    Png,
    /// An SVG drawing.
    Svg,
    /// A table as comma-separated values.
    Csv,
    /// A Markdown document.
    Markdown,
    /// An HTML document (shown sandboxed by viewers).
    Html,
    /// A JSON document.
    Json,
}

impl VisualizationType {
    /// Every kind, in display order.
    pub const ALL: [VisualizationType; 6] = [
        VisualizationType::Png,
        VisualizationType::Svg,
        VisualizationType::Csv,
        VisualizationType::Markdown,
        VisualizationType::Html,
        VisualizationType::Json,
    ];

    /// The name used in storage and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            VisualizationType::Png => "png",
            VisualizationType::Svg => "svg",
            VisualizationType::Csv => "csv",
            VisualizationType::Markdown => "markdown",
            VisualizationType::Html => "html",
            VisualizationType::Json => "json",
        }
    }

    /// The usual file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            VisualizationType::Markdown => "md",
            other => other.as_str(),
        }
    }

    /// The media type to serve it with.
    pub fn content_type(self) -> &'static str {
        match self {
            VisualizationType::Png => "image/png",
            VisualizationType::Svg => "image/svg+xml",
            VisualizationType::Csv => "text/csv; charset=utf-8",
            VisualizationType::Markdown => "text/markdown; charset=utf-8",
            VisualizationType::Html => "text/html; charset=utf-8",
            VisualizationType::Json => "application/json",
        }
    }
}

impl fmt::Display for VisualizationType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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
