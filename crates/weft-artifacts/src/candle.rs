//! `candle` tensors as safetensors, the format candle itself reads and writes: a [`Tensor`]
//! alone (stored under the name `tensor`) or a named map of them (model weights), in the same
//! `model.safetensors` layout as [`Tensors`](crate::Tensors), so each loads as the other.
//!
//! Tensors are copied to the CPU to be written (as candle's own `save_safetensors` does) and
//! load onto the CPU; move them with `Tensor::to_device` after loading.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use candle_core::{DType, Device, Tensor};
use safetensors::Dtype;
use safetensors::tensor::View;

use crate::io::{ArtifactReader, ArtifactWriter};
use crate::tensors::{load_tensors_as, save_tensors};
use crate::{Artifact, BoxError, Materializer, Result, SafeTensorsFormat, Tensors};

/// The name a lone tensor is stored under.
const LONE: &str = "tensor";

/// What `save_tensors` takes of one tensor: its dtype, shape and bytes in C order.
type Parts<'t> = (Dtype, Vec<usize>, Cow<'t, [u8]>);

fn parts(tensor: &Tensor) -> Parts<'_> {
    (
        View::dtype(tensor),
        tensor.dims().to_vec(),
        View::data(tensor),
    )
}

fn save_named<'t>(
    tensors: impl Iterator<Item = (&'t str, &'t Tensor)>,
    writer: &mut ArtifactWriter<'_>,
) -> Result<()> {
    let parts: Vec<(&str, Parts<'_>)> = tensors
        .map(|(name, tensor)| (name, parts(tensor)))
        .collect();
    save_tensors(
        parts
            .iter()
            .map(|(name, (dtype, shape, data))| (*name, *dtype, shape.clone(), &data[..])),
        &BTreeMap::new(),
        writer,
    )
}

/// Each stored tensor as a candle tensor on the CPU.
fn to_candle(tensors: Tensors) -> std::result::Result<Vec<(String, Tensor)>, BoxError> {
    tensors
        .iter()
        .map(|(name, tensor)| {
            let dtype = DType::try_from(tensor.dtype()).map_err(|_| {
                format!(
                    "tensor `{name}` holds {:?}, which candle has no type for",
                    tensor.dtype()
                )
            })?;
            let loaded =
                Tensor::from_raw_buffer(tensor.data(), dtype, tensor.shape(), &Device::Cpu)
                    .map_err(|e| format!("tensor `{name}`: {e}"))?;
            Ok((name.to_owned(), loaded))
        })
        .collect()
}

impl Materializer<Tensor> for SafeTensorsFormat {
    const ID: &'static str = "weft.safetensors";
    const VERSION: u32 = 1;
    const SELF_DESCRIBING: bool = true;

    fn save(value: &Tensor, writer: &mut ArtifactWriter<'_>) -> Result<()> {
        save_named(std::iter::once((LONE, value)), writer)?;
        writer.describe("dtype", format!("{:?}", View::dtype(value)));
        writer.describe("shape", value.dims());
        Ok(())
    }

    fn load(reader: &mut ArtifactReader<'_>) -> Result<Tensor> {
        load_tensors_as(reader, |tensors| {
            let names: Vec<&str> = tensors.iter().map(|(name, _)| name).collect();
            if names.len() != 1 {
                return Err(format!(
                    "it holds {} tensors ({}), not one: load it as a map of tensors",
                    names.len(),
                    names.join(", ")
                )
                .into());
            }
            let mut loaded = to_candle(tensors)?;
            Ok(loaded.remove(0).1)
        })
    }
}

impl Materializer<HashMap<String, Tensor>> for SafeTensorsFormat {
    const ID: &'static str = "weft.safetensors";
    const VERSION: u32 = 1;
    const SELF_DESCRIBING: bool = true;

    fn save(value: &HashMap<String, Tensor>, writer: &mut ArtifactWriter<'_>) -> Result<()> {
        // Name order, so that the same tensors make the same file (and content hash).
        let mut named: Vec<(&str, &Tensor)> = value
            .iter()
            .map(|(name, tensor)| (name.as_str(), tensor))
            .collect();
        named.sort_unstable_by_key(|(name, _)| *name);
        save_named(named.into_iter(), writer)
    }

    fn load(reader: &mut ArtifactReader<'_>) -> Result<HashMap<String, Tensor>> {
        load_tensors_as(reader, |tensors| {
            Ok(to_candle(tensors)?.into_iter().collect())
        })
    }
}

impl Materializer<BTreeMap<String, Tensor>> for SafeTensorsFormat {
    const ID: &'static str = "weft.safetensors";
    const VERSION: u32 = 1;
    const SELF_DESCRIBING: bool = true;

    fn save(value: &BTreeMap<String, Tensor>, writer: &mut ArtifactWriter<'_>) -> Result<()> {
        save_named(value.iter().map(|(name, t)| (name.as_str(), t)), writer)
    }

    fn load(reader: &mut ArtifactReader<'_>) -> Result<BTreeMap<String, Tensor>> {
        load_tensors_as(reader, |tensors| {
            Ok(to_candle(tensors)?.into_iter().collect())
        })
    }
}

impl Artifact for Tensor {
    type Materializer = SafeTensorsFormat;
    const ARTIFACT_TYPE: crate::ArtifactType = crate::ArtifactType::Model;
}

impl Artifact for HashMap<String, Tensor> {
    type Materializer = SafeTensorsFormat;
    const ARTIFACT_TYPE: crate::ArtifactType = crate::ArtifactType::Model;
}

impl Artifact for BTreeMap<String, Tensor> {
    type Materializer = SafeTensorsFormat;
    const ARTIFACT_TYPE: crate::ArtifactType = crate::ArtifactType::Model;
}
