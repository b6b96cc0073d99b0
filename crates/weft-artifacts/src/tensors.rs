//! Named tensors as `.safetensors` files (feature `safetensors`).
//!
//! [`Tensors`] is a collection of named [`Tensor`]s (dtype, shape, little-endian bytes), what
//! model weights are. Saving writes the safetensors header (its string metadata carrying the
//! user's entries and weft's provenance) and streams each tensor's bytes in turn; loading
//! reads the file once and hands out tensors that share that one buffer.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use safetensors::Dtype;
use safetensors::tensor::{Metadata as Header, SafeTensors, TensorInfo};

use crate::io::{ArtifactReader, ArtifactWriter};
use crate::{Artifact, BoxError, Materializer, NpyElement, Result};

/// The file a tensor collection keeps its data in.
const FILE: &str = "model.safetensors";

/// One tensor: element type, shape and the elements' little-endian bytes in C order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tensor {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Bytes,
}

/// A tensor whose bytes do not fit its dtype and shape, or that is read as another type.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TensorError(String);

/// The safetensors dtype of an `.npy` element type.
fn dtype_of<T: NpyElement>() -> Dtype {
    match T::DTYPE {
        "float32" => Dtype::F32,
        "float64" => Dtype::F64,
        "int8" => Dtype::I8,
        "int16" => Dtype::I16,
        "int32" => Dtype::I32,
        "int64" => Dtype::I64,
        "uint8" => Dtype::U8,
        "uint16" => Dtype::U16,
        "uint32" => Dtype::U32,
        "uint64" => Dtype::U64,
        _ => Dtype::BOOL,
    }
}

impl Tensor {
    /// A tensor of `dtype` and `shape` over `data`, checked to hold exactly that many bytes.
    pub fn new(
        dtype: Dtype,
        shape: Vec<usize>,
        data: impl Into<Bytes>,
    ) -> std::result::Result<Self, TensorError> {
        let data = data.into();
        let expected = shape
            .iter()
            .try_fold(1usize, |total, &length| total.checked_mul(length))
            .and_then(|count| count.checked_mul(dtype.bitsize()))
            .map(|bits| bits.div_ceil(8));
        if expected != Some(data.len()) {
            return Err(TensorError(format!(
                "a {dtype:?} tensor of shape {shape:?} needs {} bytes, not {}",
                expected.map_or_else(|| "more than addressable".into(), |n| n.to_string()),
                data.len()
            )));
        }
        Ok(Self { dtype, shape, data })
    }

    /// A tensor of `shape` holding `values` (C order).
    pub fn from_values<T: NpyElement>(
        shape: Vec<usize>,
        values: &[T],
    ) -> std::result::Result<Self, TensorError> {
        Self::new(
            dtype_of::<T>(),
            shape,
            Bytes::copy_from_slice(bytemuck::cast_slice(values)),
        )
    }

    /// The elements as `T`s, refused if the tensor holds another type.
    pub fn to_values<T: NpyElement + bytemuck::AnyBitPattern>(
        &self,
    ) -> std::result::Result<Vec<T>, TensorError> {
        if self.dtype != dtype_of::<T>() || T::DTYPE == "bool" {
            return Err(TensorError(format!(
                "the tensor holds {:?}, not {}",
                self.dtype,
                T::DTYPE
            )));
        }
        Ok(bytemuck::pod_collect_to_vec(&self.data))
    }

    /// The element type.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The elements' bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// How many elements it holds.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether it holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Named tensors (model weights, embeddings), stored as one `.safetensors` file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tensors {
    tensors: BTreeMap<String, Tensor>,
    metadata: BTreeMap<String, String>,
}

impl Tensors {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) tensor `name`.
    pub fn insert(&mut self, name: impl Into<String>, tensor: Tensor) -> Option<Tensor> {
        self.tensors.insert(name.into(), tensor)
    }

    /// Tensor `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    /// The tensors, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.tensors
            .iter()
            .map(|(name, tensor)| (name.as_str(), tensor))
    }

    /// How many tensors there are.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// The header's string metadata: the user's entries, and on a loaded collection weft's
    /// provenance (`weft.*`: pipeline, run, step run, output).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// Sets a string metadata entry of the header. Keys starting with `weft.` are weft's and
    /// are replaced by its provenance when saved.
    pub fn set_metadata(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.metadata.insert(key.into(), value.into());
    }
}

impl FromIterator<(String, Tensor)> for Tensors {
    fn from_iter<I: IntoIterator<Item = (String, Tensor)>>(tensors: I) -> Self {
        Self {
            tensors: tensors.into_iter().collect(),
            metadata: BTreeMap::new(),
        }
    }
}

/// Stores [`Tensors`] as `model.safetensors`.
pub struct SafeTensorsFormat;

/// Writes named tensors: the header, padded to 8 bytes, then each tensor's bytes in name
/// order. Describes the count, parameters and bytes per dtype.
pub(crate) fn save_tensors<'t>(
    tensors: impl Iterator<Item = (&'t str, Dtype, Vec<usize>, &'t [u8])> + Clone,
    metadata: &BTreeMap<String, String>,
    writer: &mut ArtifactWriter<'_>,
) -> Result<()> {
    let mut entries: HashMap<String, String> = metadata
        .iter()
        .filter(|(key, _)| !key.starts_with("weft."))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    entries.extend(writer.provenance().iter().cloned());
    let (mut offset, mut infos) = (0usize, Vec::new());
    let mut bytes_per_dtype: BTreeMap<String, u64> = BTreeMap::new();
    let mut parameters = 0u64;
    for (name, dtype, shape, data) in tensors.clone() {
        infos.push((
            name.to_owned(),
            TensorInfo {
                dtype,
                shape: shape.clone(),
                data_offsets: (offset, offset + data.len()),
            },
        ));
        offset += data.len();
        parameters += shape.iter().product::<usize>() as u64;
        *bytes_per_dtype.entry(format!("{dtype:?}")).or_default() += data.len() as u64;
    }
    let count = infos.len();
    let header = Header::new(Some(entries), infos).map_err(|error| crate::Error::Encode {
        data_type: std::any::type_name::<Tensors>(),
        materializer: "weft.safetensors",
        source: error.into(),
    })?;
    writer.write_file(FILE, |file| {
        let mut json = serde_json::to_vec(&header)?;
        // The data starts 8-byte aligned, as the format recommends.
        json.resize((8 + json.len()).div_ceil(8) * 8 - 8, b' ');
        file.write_all(&(json.len() as u64).to_le_bytes())?;
        file.write_all(&json)?;
        for (_, _, _, data) in tensors {
            file.write_all(data)?;
        }
        Ok::<(), BoxError>(())
    })?;
    writer.describe("tensors", count);
    writer.describe("parameters", parameters);
    writer.describe(
        "bytes_per_dtype",
        serde_json::to_value(bytes_per_dtype).unwrap_or_default(),
    );
    Ok(())
}

/// Reads the named tensors back as slices of one buffer, with the header's metadata.
pub(crate) fn load_tensors(reader: &mut ArtifactReader<'_>) -> Result<Tensors> {
    load_tensors_as(reader, Ok)
}

/// Reads the named tensors back and turns them into a `T` with `convert`, whose error is
/// reported as one decoding the file.
pub(crate) fn load_tensors_as<T>(
    reader: &mut ArtifactReader<'_>,
    convert: impl FnOnce(Tensors) -> std::result::Result<T, BoxError>,
) -> Result<T> {
    let file = reader.open(FILE)?;
    let buffer = Bytes::from(file.read_all()?);
    let (header_length, header) =
        SafeTensors::read_metadata(&buffer).map_err(|e| file.decode_error(e))?;
    let start = 8 + header_length;
    let mut tensors = Tensors::new();
    for (name, info) in header.tensors() {
        let (begin, end) = info.data_offsets;
        let data = buffer.slice(start + begin..start + end);
        let tensor = Tensor::new(info.dtype, info.shape.clone(), data)
            .map_err(|e| file.decode_error(format!("tensor `{name}`: {e}")))?;
        tensors.insert(name, tensor);
    }
    if let Some(entries) = header.metadata() {
        tensors.metadata = entries
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
    }
    convert(tensors).map_err(|e| file.decode_error(e))
}

impl Materializer<Tensors> for SafeTensorsFormat {
    const ID: &'static str = "weft.safetensors";
    const VERSION: u32 = 1;
    const SELF_DESCRIBING: bool = true;

    fn save(value: &Tensors, writer: &mut ArtifactWriter<'_>) -> Result<()> {
        let tensors = value.tensors.iter().map(|(name, tensor)| {
            (
                name.as_str(),
                tensor.dtype,
                tensor.shape.clone(),
                &tensor.data[..],
            )
        });
        save_tensors(tensors, &value.metadata, writer)
    }

    fn load(reader: &mut ArtifactReader<'_>) -> Result<Tensors> {
        load_tensors(reader)
    }
}

impl Artifact for Tensors {
    type Materializer = SafeTensorsFormat;
    const ARTIFACT_TYPE: crate::ArtifactType = crate::ArtifactType::Model;
}
