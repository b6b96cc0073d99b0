//! `ndarray` arrays as `.npy` artifacts (feature `ndarray`).
//!
//! `Array<A, D>` and `ArcArray<A, D>` of any dimension are saved in their own memory order (C
//! or Fortran) straight from their buffer; other layouts are copied out in bounded blocks, in
//! C order. Any array loads as any other of the same element type and dimension (a
//! `Vec<f64>` as an `Array1<f64>`, an `ArcArray2` as an `Array2`, anything as an `ArrayD`).

use ndarray::{ArcArray, Array, ArrayView, Dimension, IxDyn, ShapeBuilder};

use crate::io::{ArtifactReader, ArtifactWriter};
use crate::npy::{self, CHUNK_ELEMENTS, Npy, NpyElement};
use crate::{Artifact, Materializer, Result, VisualizationType};

fn save_view<A: NpyElement, D: Dimension>(
    view: ArrayView<'_, A, D>,
    writer: &mut ArtifactWriter<'_>,
) -> Result<()> {
    let shape = view.shape().to_vec();
    if let Some(values) = view.as_slice() {
        return npy::save_slice(writer, &shape, false, values);
    }
    let transposed = view.t();
    if let Some(values) = transposed.as_slice() {
        return npy::save_slice(writer, &shape, true, values);
    }
    // Strided or permuted: copy out in C order, one bounded block at a time.
    npy::save(writer, &shape, false, |block| {
        let mut buffer = Vec::with_capacity(CHUNK_ELEMENTS.min(view.len()));
        for &value in view.iter() {
            buffer.push(value);
            if buffer.len() == CHUNK_ELEMENTS {
                block(&buffer)?;
                buffer.clear();
            }
        }
        block(&buffer)
    })
}

fn load_array<A: NpyElement, D: Dimension>(reader: &mut ArtifactReader<'_>) -> Result<Array<A, D>> {
    // The header was checked against the requested dimension, so shaping cannot fail; if it
    // did, it would be an error, not a panic.
    npy::load_with(reader, D::NDIM, |shape, fortran_order, values| {
        Array::from_shape_vec(IxDyn(&shape).set_f(fortran_order), values)
            .and_then(Array::into_dimensionality::<D>)
    })
}

/// Histograms for 1-D arrays, the picture for arrays shaped like images.
fn visualize_view<A: NpyElement, D: Dimension>(
    view: ArrayView<'_, A, D>,
    writer: &mut ArtifactWriter<'_>,
) -> Result<()> {
    match view.shape() {
        [length] if *length < crate::visualize::MIN_HISTOGRAM_VALUES => Ok(()),
        [_] => match view.as_slice_memory_order() {
            Some(values) => crate::visualize::histogram(writer, values),
            None => crate::visualize::histogram_of(writer, view.iter().copied()),
        },
        &[height, width] if image_like(height, width, 1 << 20) => image(view.into_dyn(), writer, 1),
        &[height, width, channels]
            if matches!(channels, 1 | 3 | 4) && image_like(height, width, 1 << 24) =>
        {
            image(view.into_dyn(), writer, channels)
        }
        _ => Ok(()),
    }
}

/// Whether a `height × width` array is plausibly a picture rather than a table of numbers: a
/// few pixels to some million (a 2-D array is a picture only up to `max_pixels`, large
/// matrices being data far more often), and not much longer than wide.
fn image_like(height: usize, width: usize, max_pixels: usize) -> bool {
    let (short, long) = (height.min(width), height.max(width));
    short >= 8 && long <= short * 8 && height * width <= max_pixels
}

/// Writes `image.png`: 8-bit channels as they are, anything else scaled from its range.
fn image<A: NpyElement>(
    view: ArrayView<'_, A, IxDyn>,
    writer: &mut ArtifactWriter<'_>,
    channels: usize,
) -> Result<()> {
    let bound = |key: &str| writer.metadata.get(key).and_then(serde_json::Value::as_f64);
    let (Some(low), Some(high)) = (bound("min"), bound("max")) else {
        return Ok(());
    };
    let exact = A::DTYPE == "uint8";
    let scale = if high > low {
        255.0 / (high - low)
    } else {
        0.0
    };
    let pixels: Vec<u8> = view
        .iter()
        .map(|value| match value.as_f64() {
            Some(value) if exact => value as u8,
            Some(value) if value.is_finite() => ((value - low) * scale).round() as u8,
            _ => 0,
        })
        .collect();
    let (height, width) = (view.shape()[0] as u32, view.shape()[1] as u32);
    let color = match channels {
        3 => png::ColorType::Rgb,
        4 => png::ColorType::Rgba,
        _ => png::ColorType::Grayscale,
    };
    writer.write_visualization("image.png", VisualizationType::Png, |file| {
        let mut encoder = png::Encoder::new(file, width, height);
        encoder.set_color(color);
        encoder.set_depth(png::BitDepth::Eight);
        let mut png = encoder.write_header()?;
        png.write_image_data(&pixels)?;
        png.finish()?;
        Ok(())
    })
}

impl<A: NpyElement, D: Dimension + 'static> Materializer<Array<A, D>> for Npy {
    const ID: &'static str = "weft.npy";
    const VERSION: u32 = 1;
    const SELF_DESCRIBING: bool = true;

    fn save(value: &Array<A, D>, writer: &mut ArtifactWriter<'_>) -> Result<()> {
        save_view(value.view(), writer)
    }

    fn load(reader: &mut ArtifactReader<'_>) -> Result<Array<A, D>> {
        load_array(reader)
    }

    fn visualize(value: &Array<A, D>, writer: &mut ArtifactWriter<'_>) -> Result<()> {
        visualize_view(value.view(), writer)
    }
}

impl<A: NpyElement, D: Dimension + 'static> Materializer<ArcArray<A, D>> for Npy {
    const ID: &'static str = "weft.npy";
    const VERSION: u32 = 1;
    const SELF_DESCRIBING: bool = true;

    fn save(value: &ArcArray<A, D>, writer: &mut ArtifactWriter<'_>) -> Result<()> {
        save_view(value.view(), writer)
    }

    fn load(reader: &mut ArtifactReader<'_>) -> Result<ArcArray<A, D>> {
        load_array(reader).map(Array::into_shared)
    }

    fn visualize(value: &ArcArray<A, D>, writer: &mut ArtifactWriter<'_>) -> Result<()> {
        visualize_view(value.view(), writer)
    }
}

impl<A: NpyElement, D: Dimension + 'static> Artifact for Array<A, D> {
    type Materializer = Npy;
}

impl<A: NpyElement, D: Dimension + 'static> Artifact for ArcArray<A, D> {
    type Materializer = Npy;
}
