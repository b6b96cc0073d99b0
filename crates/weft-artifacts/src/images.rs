//! `image` crate images as PNG (feature `image`; only the PNG codec is built).
//!
//! RGB, RGBA, grayscale (with or without alpha), 8 and 16 bits per channel. Any saved image
//! loads as a `DynamicImage`; a typed buffer (`RgbImage`, ...) loads only an image of its
//! own colour type, so that nothing is converted, or lost, behind the caller's back. The PNG
//! is its own visualization.

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{
    ColorType, DynamicImage, ExtendedColorType, GenericImageView, ImageBuffer, ImageEncoder,
    ImageFormat, Luma, LumaA, Rgb, Rgba,
};

use crate::io::{ArtifactReader, ArtifactWriter};
use crate::{Artifact, BoxError, Materializer, Result};

/// The file an image keeps its pixels in.
pub(crate) const FILE: &str = "image.png";

/// Stores an image as `image.png`.
pub struct Png;

/// Encodes `pixels` (native-endian samples) straight from the image's buffer.
fn save_image(
    pixels: &[u8],
    (width, height): (u32, u32),
    color: ColorType,
    writer: &mut ArtifactWriter<'_>,
) -> Result<()> {
    writer.write_file(FILE, |file| {
        let encoder =
            PngEncoder::new_with_quality(file, CompressionType::Fast, FilterType::Adaptive);
        encoder.write_image(pixels, width, height, ExtendedColorType::from(color))?;
        Ok::<(), BoxError>(())
    })?;
    writer.describe("width", width);
    writer.describe("height", height);
    writer.describe("color_type", format!("{color:?}"));
    writer.describe("channels", color.channel_count());
    writer.describe(
        "bits_per_channel",
        color.bits_per_pixel() / u16::from(color.channel_count()),
    );
    Ok(())
}

fn load_image(reader: &mut ArtifactReader<'_>) -> Result<DynamicImage> {
    let file = reader.open(FILE)?;
    let bytes = file.read_all()?;
    // The decoder's default limits refuse dimensions whose pixels would not fit in memory.
    image::load_from_memory_with_format(&bytes, ImageFormat::Png).map_err(|e| file.decode_error(e))
}

impl Materializer<DynamicImage> for Png {
    const ID: &'static str = "weft.png";
    const VERSION: u32 = 1;
    const SELF_DESCRIBING: bool = true;

    fn save(value: &DynamicImage, writer: &mut ArtifactWriter<'_>) -> Result<()> {
        match value {
            // 32-bit float images have no PNG form: they are stored as 16 bits per channel.
            DynamicImage::ImageRgb32F(_) => {
                let image = DynamicImage::ImageRgb16(value.to_rgb16());
                save_image(image.as_bytes(), image.dimensions(), image.color(), writer)
            }
            DynamicImage::ImageRgba32F(_) => {
                let image = DynamicImage::ImageRgba16(value.to_rgba16());
                save_image(image.as_bytes(), image.dimensions(), image.color(), writer)
            }
            _ => save_image(value.as_bytes(), value.dimensions(), value.color(), writer),
        }
    }

    fn load(reader: &mut ArtifactReader<'_>) -> Result<DynamicImage> {
        load_image(reader)
    }
}

impl Artifact for DynamicImage {
    type Materializer = Png;
}

macro_rules! typed_images {
    ($($pixel:ty, $sub:ty, $color:ident, $variant:ident;)*) => {$(
        impl Materializer<ImageBuffer<$pixel, Vec<$sub>>> for Png {
            const ID: &'static str = "weft.png";
            const VERSION: u32 = 1;
            const SELF_DESCRIBING: bool = true;

            fn save(
                value: &ImageBuffer<$pixel, Vec<$sub>>,
                writer: &mut ArtifactWriter<'_>,
            ) -> Result<()> {
                save_image(
                    bytemuck::cast_slice(value.as_raw()),
                    value.dimensions(),
                    ColorType::$color,
                    writer,
                )
            }

            fn load(reader: &mut ArtifactReader<'_>) -> Result<ImageBuffer<$pixel, Vec<$sub>>> {
                let image = load_image(reader)?;
                match image {
                    DynamicImage::$variant(buffer) => Ok(buffer),
                    other => {
                        let file = reader.open(FILE)?;
                        Err(file.decode_error(format!(
                            "it holds a {:?} image, not {:?}; load it as a `DynamicImage` to convert it",
                            other.color(),
                            ColorType::$color
                        )))
                    }
                }
            }
        }

        impl Artifact for ImageBuffer<$pixel, Vec<$sub>> {
            type Materializer = Png;
        }
    )*};
}

typed_images! {
    Luma<u8>, u8, L8, ImageLuma8;
    LumaA<u8>, u8, La8, ImageLumaA8;
    Rgb<u8>, u8, Rgb8, ImageRgb8;
    Rgba<u8>, u8, Rgba8, ImageRgba8;
    Luma<u16>, u16, L16, ImageLuma16;
    LumaA<u16>, u16, La16, ImageLumaA16;
    Rgb<u16>, u16, Rgb16, ImageRgb16;
    Rgba<u16>, u16, Rgba16, ImageRgba16;
}
