//! The artifact store and the materializers that save Rust values to it.
//!
//! An artifact version is a folder of files under the store's root, written once and never
//! overwritten. [`ArtifactStore`] wraps any `object_store` backend (local files by default):
//! each file is streamed through a BLAKE3 hasher while it is written and published atomically
//! (staged, then moved into place without overwriting), so a crash never leaves a
//! half-written file under a published name. Loading re-hashes what it reads and refuses
//! bytes that no longer match the recorded hash.
//!
//! Which materializer stores a value is decided by its *type*, at compile time: a type is an
//! [`Artifact`] by naming its [`Materializer`]. There is no runtime guessing and no opaque
//! fallback; an unsupported type does not compile. The built-in formats are open (JSON,
//! MessagePack, UTF-8 text, raw bytes, NumPy `.npy`; with features Parquet, safetensors and
//! PNG), so other tools can read weft artifacts. Materializers describe what they save
//! (metadata recorded on the version) and may write visualizations beside the data.
//!
//! Every method of [`ArtifactStore`] blocks the calling thread; call it from a thread that is
//! not driving async tasks (the engine runs steps on such threads).

#[cfg(feature = "ndarray")]
mod arrays;
#[cfg(feature = "s3")]
mod aws_profile;
mod builtin;
#[cfg(feature = "candle")]
mod candle;
#[cfg(any(feature = "arrow", feature = "polars"))]
mod columns;
#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
#[cfg(feature = "polars")]
mod frames;
mod histogram;
#[cfg(feature = "image")]
mod images;
mod io;
mod items;
mod materializer;
mod npy;
mod split_read;
mod stats;
mod store;
#[cfg(feature = "arrow")]
mod tables;
#[cfg(feature = "safetensors")]
mod tensors;
mod visualize;

pub use builtin::{
    Binary, Csv, CsvFormat, Html, HtmlFormat, Json, JsonFormat, Markdown, MarkdownFormat,
    MsgPackFormat, RawBytes, SerdeValue, Text, visualizations,
};
#[cfg(feature = "candle")]
pub use candle_core;
#[cfg(any(feature = "arrow", feature = "polars"))]
pub use columns::Parquet;
pub use error::{BoxError, Error};
pub use io::{ArtifactReader, ArtifactWriter, BeforeStoring, FileReader};
pub use items::{ItemFormat, ItemSpans};
pub use materializer::{Artifact, FormerFormat, Loader, Materializer, Metadata};
#[cfg(feature = "ndarray")]
pub use ndarray;
pub use npy::{Npy, NpyElement};
#[cfg(feature = "polars")]
pub use polars;
#[cfg(feature = "safetensors")]
pub use safetensors;
pub use stats::Summary;
pub use store::{ArtifactStore, INLINE_LIMIT, OBJECT_READ_CHUNK, SavedArtifact, StoredArtifact};
#[cfg(feature = "safetensors")]
pub use tensors::{SafeTensorsFormat, Tensor, TensorError, Tensors};
pub use weft_core::Digest;
pub use weft_core::artifact::{ArtifactType, FileRecord, VisualizationType};
#[cfg(feature = "arrow")]
pub use {arrow_array, arrow_schema, parquet};
#[cfg(feature = "image")]
pub use {image, images::Png};

/// Errors of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
