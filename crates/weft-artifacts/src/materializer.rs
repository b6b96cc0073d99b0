//! The two traits that connect a Rust type to a stored format.

use std::collections::BTreeMap;

use crate::Result;
use crate::io::{ArtifactReader, ArtifactWriter};
use weft_core::artifact::ArtifactType;

/// Facts about a stored value (length, shape, value of a scalar, ...), shown by the CLI and
/// queryable in the metadata store. The artifact store adds `storage_size` itself.
pub type Metadata = BTreeMap<String, serde_json::Value>;

/// Saves values of type `T` to the files of one artifact version and loads them back.
///
/// A materializer is a type-level choice: it has no state, and its [`Materializer::ID`] and
/// [`Materializer::VERSION`] are recorded with every artifact version so that loading uses the
/// same format that saving used, and a newer format is refused with a clear error.
pub trait Materializer<T>: 'static {
    /// Stable identifier, recorded with the artifact version (for example `weft.json`).
    const ID: &'static str;
    /// Version of the stored format. Bump it when the files change; loads of newer versions
    /// are refused.
    const VERSION: u32;

    /// Whether the stored files say what they hold (an array's element type and shape), so
    /// that `load` checks them against the requested type itself. Otherwise a version loads
    /// only as the exact Rust type that saved it.
    const SELF_DESCRIBING: bool = false;

    /// Writes `value` as one or more files, and describes it
    /// ([`ArtifactWriter::describe`]) while the data passes through.
    fn save(value: &T, writer: &mut ArtifactWriter<'_>) -> Result<()>;

    /// Reads a value back from the files `save` wrote.
    fn load(reader: &mut ArtifactReader<'_>) -> Result<T>;

    /// Writes visualizations of `value` beside its data
    /// ([`ArtifactWriter::write_visualization`]): a histogram, a sample of a table, a
    /// report. Called after `save`; none by default.
    fn visualize(value: &T, writer: &mut ArtifactWriter<'_>) -> Result<()> {
        let _ = (value, writer);
        Ok(())
    }
}

/// How a version is read back: a materializer's `load`.
pub type Loader<T> = fn(&mut ArtifactReader<'_>) -> Result<T>;

/// A format a type was stored in before its current one, still loaded (see
/// [`Artifact::former_format`]).
pub struct FormerFormat<T> {
    /// The materializer id recorded on versions in that format.
    pub id: &'static str,
    /// The newest version of that format this build reads.
    pub version: u32,
    /// How to read it.
    pub load: Loader<T>,
}

/// A type that weft can store as an artifact: it names its materializer.
///
/// Implement it with `#[derive(Artifact)]` for serde types (JSON by default,
/// `#[artifact(binary)]` for MessagePack), or by hand with a materializer of your own. Types
/// without an implementation cannot be step outputs or artifact inputs: the compiler says so.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored as a weft artifact",
    label = "no materializer for `{Self}`",
    note = "derive it: `#[derive(Serialize, Deserialize, Artifact)]` stores it as JSON (add `#[artifact(binary)]` for MessagePack), or implement `weft::Artifact` with a materializer of your own",
    note = "ML data needs a feature of `weft`: `ndarray` (ndarray arrays, as .npy), `arrow` (Arrow RecordBatch, as Parquet), `polars` (Polars DataFrame, as Parquet), `safetensors` (weft::Tensors), `candle` (candle Tensor, as safetensors), `image` (image crate images, as PNG)"
)]
pub trait Artifact: Sized + Send + 'static {
    /// The materializer that saves and loads this type.
    type Materializer: Materializer<Self>;

    /// The kind of artifact this type is.
    const ARTIFACT_TYPE: ArtifactType = ArtifactType::Data;

    /// Adds facts about this value to `metadata` (length, shape, a scalar's value, ...).
    fn describe(&self, metadata: &mut Metadata) {
        let _ = metadata;
    }

    /// The loader of a format this type was stored in before, given the materializer id
    /// recorded on a version: versions saved by an older weft keep loading after the type
    /// moved to a better format. None by default.
    fn former_format(materializer: &str) -> Option<FormerFormat<Self>> {
        let _ = materializer;
        None
    }
}
