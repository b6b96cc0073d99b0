//! Images as PNG and reports as documents: round trips, colour types, damaged files, and
//! which files show a version.
#![cfg(feature = "image")]

use crate::common::{fixture, handmade};
use image::{DynamicImage, GrayImage, ImageBuffer, Rgb, RgbImage, Rgba, RgbaImage};
use serde_json::json;
use weft_artifacts::{Markdown, VisualizationType, visualizations};

#[test]
fn images_of_every_colour_type_round_trip() {
    let f = fixture();
    let rgb = RgbImage::from_fn(31, 17, |x, y| Rgb([x as u8, y as u8, (x * y) as u8]));
    let saved = f.store.save(&["i", "1"], &rgb).unwrap();
    assert_eq!(saved.materializer, "weft.png");
    assert_eq!(saved.metadata["width"], json!(31));
    assert_eq!(saved.metadata["height"], json!(17));
    assert_eq!(saved.metadata["color_type"], json!("Rgb8"));
    assert_eq!(f.store.load::<RgbImage>(&saved.to_stored()).unwrap(), rgb);
    let dynamic: DynamicImage = f.store.load(&saved.to_stored()).unwrap();
    assert_eq!(dynamic.to_rgb8(), rgb);

    let rgba = RgbaImage::from_fn(8, 8, |x, y| Rgba([x as u8, y as u8, 9, 128]));
    let saved = f.store.save(&["i", "2"], &rgba).unwrap();
    assert_eq!(f.store.load::<RgbaImage>(&saved.to_stored()).unwrap(), rgba);

    let gray = GrayImage::from_fn(5, 3, |x, y| image::Luma([(x + 10 * y) as u8]));
    let saved = f.store.save(&["i", "3"], &gray).unwrap();
    assert_eq!(f.store.load::<GrayImage>(&saved.to_stored()).unwrap(), gray);

    let deep: ImageBuffer<Rgb<u16>, Vec<u16>> =
        ImageBuffer::from_fn(4, 4, |x, y| Rgb([x as u16 * 4000, y as u16 * 300, 65535]));
    let saved = f.store.save(&["i", "4"], &deep).unwrap();
    assert_eq!(saved.metadata["bits_per_channel"], json!(16));
    assert_eq!(
        f.store
            .load::<ImageBuffer<Rgb<u16>, Vec<u16>>>(&saved.to_stored())
            .unwrap(),
        deep
    );
    let luma16 = ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_fn(3, 3, |x, _| {
        image::Luma([x as u16 * 30000])
    });
    let saved = f.store.save(&["i", "5"], &luma16).unwrap();
    assert_eq!(
        f.store
            .load::<ImageBuffer<image::Luma<u16>, Vec<u16>>>(&saved.to_stored())
            .unwrap(),
        luma16
    );
}

#[test]
fn an_image_loads_only_as_its_own_colour_type_or_as_a_dynamic_image() {
    let f = fixture();
    let saved = f.store.save(&["i", "1"], &RgbaImage::new(4, 4)).unwrap();
    let error = f
        .store
        .load::<RgbImage>(&saved.to_stored())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("it holds a Rgba8 image, not Rgb8"),
        "{error}"
    );
    assert!(error.contains("i/1/image.png"), "{error}");
}

#[test]
fn a_png_that_does_not_decode_is_a_clear_error() {
    let f = fixture();
    let bytes = b"\x89PNG\r\n\x1a\n but then nothing a decoder wants".to_vec();
    let stored = handmade(
        &f.store,
        "i/9",
        "image.png",
        &bytes,
        ("weft.png", std::any::type_name::<DynamicImage>()),
    );
    let error = f
        .store
        .load::<DynamicImage>(&stored)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("i/9/image.png") && error.contains("weft.png"),
        "{error}"
    );
}

#[test]
fn images_and_reports_are_their_own_visualizations() {
    let f = fixture();
    let saved = f.store.save(&["i", "1"], &RgbImage::new(2, 2)).unwrap();
    let stored = saved.to_stored();
    let shown = visualizations(&stored);
    assert_eq!(shown.len(), 1);
    assert_eq!(
        (shown[0].0.name.as_str(), shown[0].1),
        ("image.png", VisualizationType::Png)
    );

    let report = Markdown::from("# Results\n\naccuracy: 0.93\n");
    let saved = f.store.save(&["r", "1"], &report).unwrap();
    assert_eq!(saved.files[0].name, "report.md");
    let stored = saved.to_stored();
    assert_eq!(visualizations(&stored)[0].1, VisualizationType::Markdown);
    assert_eq!(f.store.load::<Markdown>(&stored).unwrap(), report);

    let numbers = f
        .store
        .save(&["n", "1"], &(0..100).map(f64::from).collect::<Vec<_>>())
        .unwrap()
        .to_stored();
    let shown = visualizations(&numbers);
    assert_eq!(shown.len(), 1, "the histogram, not the data");
    assert_eq!(shown[0].0.name, "histogram.svg");
}
