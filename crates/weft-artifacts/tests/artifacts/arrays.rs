//! Numbers as `.npy`: vectors always, `ndarray` arrays with the `ndarray` feature. Round trips,
//! described metadata, visualizations, older JSON versions, and hostile files.

use crate::common::{bar_counts, fixture};
use serde_json::json;
use weft_artifacts::{ArtifactStore, Error, Json, StoredArtifact};

/// A version whose only data file is `data.npy` holding `bytes`, as a hand-made file would be.
fn handmade(store: &ArtifactStore, folder: &str, bytes: &[u8], data_type: &str) -> StoredArtifact {
    crate::common::handmade(store, folder, "data.npy", bytes, ("weft.npy", data_type))
}

fn npy_header(dict: &str) -> Vec<u8> {
    let mut dict = dict.to_owned();
    while !(10 + dict.len() + 1).is_multiple_of(64) {
        dict.push(' ');
    }
    dict.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    bytes.extend_from_slice(dict.as_bytes());
    bytes
}

#[test]
fn numeric_vectors_are_npy_files_described_while_written() {
    let f = fixture();
    let values: Vec<f64> = (0..1000).map(|i| f64::from(i) / 10.0).collect();
    let saved = f.store.save(&["p", "s", "x", "1"], &values).unwrap();
    assert_eq!(saved.materializer, "weft.npy");
    let names: Vec<&str> = saved.files.iter().map(|file| file.name.as_str()).collect();
    assert_eq!(names, ["data.npy", "histogram.svg"]);
    assert!(saved.files[1].is_visualization() && !saved.files[0].is_visualization());
    let meta = &saved.metadata;
    assert_eq!(meta["dtype"], json!("float64"));
    assert_eq!(meta["shape"], json!([1000]));
    assert_eq!(meta["min"], json!(0.0));
    assert_eq!(meta["max"], json!(99.9));
    assert!((meta["mean"].as_f64().unwrap() - 49.95).abs() < 1e-9);
    assert!((meta["std"].as_f64().unwrap() - 28.867_499_025_720_95).abs() < 1e-6);
    assert_eq!(meta["nan_count"], json!(0));
    let loaded: Vec<f64> = f.store.load(&saved.to_stored()).unwrap();
    assert_eq!(loaded, values);
    f.store.verify(&saved.to_stored()).unwrap();
    let svg = f
        .store
        .read_head(&saved.to_stored(), "histogram.svg", 1 << 20)
        .unwrap();
    let svg = String::from_utf8(svg).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("1000 values"),
        "{svg}"
    );
    // 0 to 99.9: the narrowest power-of-two bins of which at most 40 span it are 4 wide, so
    // 25 bars of 40 values each, from 0 to 100.
    assert_eq!(bar_counts(&svg), vec![40; 25]);
    assert!(
        svg.contains(">0</text>") && svg.contains(">100</text>"),
        "{svg}"
    );
}

#[test]
fn integer_vectors_get_bars_of_whole_numbers() {
    let f = fixture();
    let histogram = |folder: &str, values: &Vec<i64>| {
        let saved = f.store.save(&["p", "s", "i", folder], values).unwrap();
        let svg = f
            .store
            .read_head(&saved.to_stored(), "histogram.svg", 1 << 20)
            .unwrap();
        String::from_utf8(svg).unwrap()
    };
    // -5..=5: one bar per number, not 40 slivers with gaps between the numbers.
    let small: Vec<i64> = (0..110).map(|i| i % 11 - 5).collect();
    let svg = histogram("1", &small);
    assert_eq!(bar_counts(&svg), vec![10; 11]);
    assert!(
        svg.contains(">-5</text>") && svg.contains(">6</text>"),
        "{svg}"
    );
    // 0..=99: bars of 4 numbers.
    let wide: Vec<i64> = (0..100).collect();
    assert_eq!(bar_counts(&histogram("2", &wide)), vec![4; 25]);
}

#[test]
fn long_vectors_are_described_and_counted_in_parts_that_add_up() {
    // Long enough to be described and counted in parts on two cores, with a part that is not
    // a whole number of chunks. Value `k` lands in bar `k` of 40 over 0..=39; a NaN or an
    // infinity is left out of the bars and of the statistics, and counted apart.
    let f = fixture();
    let length = 2 * 1024 * 1024 + 1001;
    let plain: Vec<f64> = (0..length).map(|i| (i % 40) as f64).collect();
    let mut expected = vec![0u64; 40];
    for &value in &plain {
        expected[value as usize] += 1;
    }
    let mut with_nan = plain.clone();
    with_nan[length / 2] = f64::NAN;
    let mut with_infinity = plain.clone();
    with_infinity[length / 2] = f64::INFINITY;
    let middle_bar = (length / 2) % 40;
    for (number, values) in [plain, with_nan, with_infinity].iter().enumerate() {
        let folder = (number + 1).to_string();
        let saved = f.store.save(&["p", "s", "x", &folder], values).unwrap();
        let svg = f
            .store
            .read_head(&saved.to_stored(), "histogram.svg", 1 << 20)
            .unwrap();
        let mut expected = expected.clone();
        if number > 0 {
            expected[middle_bar] -= 1;
        }
        assert_eq!(bar_counts(&String::from_utf8(svg).unwrap()), expected);
        assert_eq!(
            (saved.metadata["min"].clone(), saved.metadata["max"].clone()),
            (json!(0.0), json!(39.0))
        );
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let mean = finite.iter().sum::<f64>() / finite.len() as f64;
        let variance =
            finite.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / finite.len() as f64;
        let close = |key: &str, expected: f64| {
            let actual = saved.metadata[key].as_f64().unwrap();
            assert!(
                (actual - expected).abs() <= 1e-9 * expected.abs(),
                "{key}: {actual} against {expected}"
            );
        };
        close("mean", mean);
        close("std", variance.sqrt());
        let apart = |key: &str| saved.metadata[key].as_u64().unwrap();
        assert_eq!(
            (apart("nan_count"), apart("infinite_count")),
            [(0, 0), (1, 0), (0, 1)][number]
        );
    }
}

/// The `.npy` bytes of another version, saved as `weft.npy` without any visualization.
struct BareNpy(Vec<u8>);
struct BareNpyFormat;

impl weft_artifacts::Materializer<BareNpy> for BareNpyFormat {
    const ID: &'static str = "weft.npy";
    const VERSION: u32 = 1;

    fn save(
        value: &BareNpy,
        writer: &mut weft_artifacts::ArtifactWriter<'_>,
    ) -> weft_artifacts::Result<()> {
        writer.write_file("data.npy", |file| Ok(file.write_all(&value.0)?))
    }

    fn load(_: &mut weft_artifacts::ArtifactReader<'_>) -> weft_artifacts::Result<BareNpy> {
        unreachable!("never loaded")
    }
}

impl weft_artifacts::Artifact for BareNpy {
    type Materializer = BareNpyFormat;
}

#[test]
fn visualizations_are_not_part_of_the_content_hash() {
    let f = fixture();
    let values: Vec<i64> = (1..=100).collect();
    let saved = f.store.save(&["p", "s", "x", "1"], &values).unwrap();
    assert!(saved.files.iter().any(|file| file.is_visualization()));
    let npy = f
        .store
        .read_head(&saved.to_stored(), "data.npy", 1 << 20)
        .unwrap();
    let bare = f.store.save(&["p", "s", "x", "2"], &BareNpy(npy)).unwrap();
    assert_eq!(bare.files.len(), 1);
    assert_eq!(saved.content_hash, bare.content_hash);
    assert_eq!(saved.metadata["min"], json!(1));
    assert_eq!(saved.metadata["max"], json!(100));
}

#[test]
fn a_handful_of_numbers_gets_no_histogram() {
    let f = fixture();
    let saved = f
        .store
        .save(&["p", "s", "x", "1"], &vec![1.0f64, 2.0, 3.0])
        .unwrap();
    assert_eq!(saved.files.len(), 1, "{:?}", saved.files);
    assert_eq!(saved.metadata["mean"], json!(2.0));
}

#[test]
fn nans_infinities_and_empty_vectors_are_described_without_panicking() {
    let f = fixture();
    let saved = f
        .store
        .save(
            &["p", "s", "x", "1"],
            &vec![1.0f32, f32::NAN, 3.0, f32::INFINITY],
        )
        .unwrap();
    assert_eq!(saved.metadata["nan_count"], json!(1));
    assert_eq!(saved.metadata["infinite_count"], json!(1));
    assert_eq!(saved.metadata["max"], json!(3.0));
    let loaded: Vec<f32> = f.store.load(&saved.to_stored()).unwrap();
    assert!(loaded[1].is_nan() && loaded[3].is_infinite());

    let empty = f
        .store
        .save(&["p", "s", "x", "2"], &Vec::<f64>::new())
        .unwrap();
    assert_eq!(empty.metadata["shape"], json!([0]));
    assert!(!empty.metadata.contains_key("min"));
    assert_eq!(empty.files.len(), 1, "no histogram of nothing");
    assert!(
        f.store
            .load::<Vec<f64>>(&empty.to_stored())
            .unwrap()
            .is_empty()
    );

    let nothing_finite = f
        .store
        .save(&["p", "s", "x", "3"], &vec![f64::NAN; 3])
        .unwrap();
    assert_eq!(nothing_finite.metadata["nan_count"], json!(3));
    assert!(!nothing_finite.metadata.contains_key("mean"));
}

#[test]
fn versions_stored_as_json_by_an_older_weft_still_load() {
    let f = fixture();
    let values = vec![1.5f64, -2.0, 3.25];
    let mut stored = f
        .store
        .save(&["p", "s", "x", "1"], &Json(values.clone()))
        .unwrap()
        .to_stored();
    assert_eq!(stored.materializer, "weft.json");
    stored.data_type = std::any::type_name::<Vec<f64>>().into();
    assert_eq!(f.store.load::<Vec<f64>>(&stored).unwrap(), values);
}

#[test]
fn items_of_versions_stored_as_json_by_an_older_weft_still_load() {
    let f = fixture();
    let values: Vec<f64> = (0..100).map(f64::from).collect();
    let mut stored = f
        .store
        .save(&["p", "s", "x", "1"], &Json(values.clone()))
        .unwrap()
        .to_stored();
    stored.data_type = std::any::type_name::<Vec<f64>>().into();
    assert_eq!(f.store.item_count::<f64>(&stored).unwrap(), 100);
    assert_eq!(f.store.load_item::<f64>(&stored, 42).unwrap(), 42.0);
    let error = f.store.load_item::<f64>(&stored, 100).unwrap_err();
    assert!(error.to_string().contains("holds 100 items"), "{error}");
}

#[test]
fn another_element_type_is_a_clear_error() {
    let f = fixture();
    let saved = f
        .store
        .save(&["p", "s", "x", "1"], &vec![1.0f32, 2.0])
        .unwrap();
    let error = f.store.load::<Vec<f64>>(&saved.to_stored()).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::Decode { .. }), "{message}");
    assert!(
        message.contains("a float32 array of shape [2], not a 1-D array of float64"),
        "{message}"
    );
    assert!(message.contains("data.npy"), "{message}");
}

#[test]
fn hostile_headers_are_refused_before_anything_is_allocated() {
    let f = fixture();
    let vec_f64 = std::any::type_name::<Vec<f64>>();
    let huge = npy_header("{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627776,), }");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("huge", huge, "does not match the 0 bytes of data"),
        (
            "overflow",
            npy_header(
                "{'descr': '<f8', 'fortran_order': False, 'shape': (18446744073709551615, 2), }",
            ),
            "does not match",
        ),
        (
            "magic",
            b"PK\x03\x04 not numpy at all".to_vec(),
            "magic string",
        ),
        ("short", b"\x93NUMPY".to_vec(), "too short"),
        (
            "long-header",
            {
                let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
                bytes.extend_from_slice(&60_000u16.to_le_bytes());
                bytes.extend_from_slice(b"{'descr': '<f8'");
                bytes
            },
            "more than the file",
        ),
        (
            "garbage",
            npy_header("{'descr': '<f8', 'fortran_order': __import__('os'), 'shape': (1,), }"),
            "not understood",
        ),
        (
            "object",
            npy_header("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"),
            "`|O`, which weft does not read",
        ),
    ];
    for (index, (name, bytes, expected)) in cases.into_iter().enumerate() {
        let stored = handmade(&f.store, &format!("hostile/{index}"), &bytes, vec_f64);
        let error = f.store.load::<Vec<f64>>(&stored).unwrap_err().to_string();
        assert!(error.contains(expected), "{name}: {error}");
        assert!(error.contains("data.npy"), "{name}: {error}");
    }
}

#[test]
fn a_bool_array_holding_other_bytes_is_refused() {
    let f = fixture();
    let mut bytes = npy_header("{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }");
    bytes.extend_from_slice(&[1, 0, 7]);
    let stored = handmade(
        &f.store,
        "bools",
        &bytes,
        std::any::type_name::<Vec<bool>>(),
    );
    let error = f.store.load::<Vec<bool>>(&stored).unwrap_err().to_string();
    assert!(error.contains("element 2 of a bool array is 7"), "{error}");
    bytes.pop();
    bytes.push(1);
    let stored = handmade(
        &f.store,
        "bools2",
        &bytes,
        std::any::type_name::<Vec<bool>>(),
    );
    assert_eq!(
        f.store.load::<Vec<bool>>(&stored).unwrap(),
        [true, false, true]
    );
}

#[test]
fn a_truncated_npy_file_is_reported_as_corrupt() {
    let f = fixture();
    let saved = f
        .store
        .save(&["p", "s", "x", "1"], &vec![7u32; 100])
        .unwrap();
    let path = f.store.local_path("p/s/x/1/data.npy").unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    let error = f.store.load::<Vec<u32>>(&saved.to_stored()).unwrap_err();
    assert!(matches!(error, Error::Corrupt { .. }), "{error}");
}

/// A file large enough to be read in pieces on several threads: intact, it loads whole;
/// cut short in the middle of a piece, changed in one byte of a later piece, or grown, it is
/// reported as corrupt.
#[test]
fn a_large_npy_file_read_in_pieces_is_checked_whole() {
    let f = fixture();
    let values: Vec<f64> = (0..3_000_001).map(|i| f64::from(i) * 0.5).collect();
    let saved = f.store.save(&["p", "s", "x", "1"], &values).unwrap();
    let loaded: Vec<f64> = f.store.load(&saved.to_stored()).unwrap();
    assert_eq!(loaded, values);
    let path = f.store.local_path("p/s/x/1/data.npy").unwrap();
    let intact = std::fs::read(&path).unwrap();
    let mut changed = intact.clone();
    changed[19 * 1024 * 1024 + 3] ^= 1;
    let mut grown = intact.clone();
    grown.extend_from_slice(&[0; 100]);
    for (what, bytes) in [
        ("cut short", &intact[..9 * 1024 * 1024 + 77]),
        ("changed", &changed[..]),
        ("grown", &grown[..]),
    ] {
        std::fs::write(&path, bytes).unwrap();
        let error = f.store.load::<Vec<f64>>(&saved.to_stored()).unwrap_err();
        assert!(matches!(error, Error::Corrupt { .. }), "{what}: {error}");
    }
}

#[cfg(feature = "ndarray")]
mod ndarray_arrays {
    use super::*;
    use ndarray::{ArcArray, Array, Array1, Array2, Array3, ArrayD, ShapeBuilder, array};

    #[test]
    fn arrays_of_every_layout_round_trip() {
        let f = fixture();
        let c_order = Array::from_shape_fn((3, 4, 5), |(i, j, k)| (i * 100 + j * 10 + k) as f64);
        let saved = f.store.save(&["a", "1"], &c_order).unwrap();
        assert_eq!(saved.metadata["shape"], json!([3, 4, 5]));
        assert_eq!(saved.metadata["order"], json!("C"));
        assert_eq!(
            f.store.load::<Array3<f64>>(&saved.to_stored()).unwrap(),
            c_order
        );

        let fortran = Array::from_shape_fn((6, 7).f(), |(i, j)| (i * 7 + j) as i32);
        let saved = f.store.save(&["a", "2"], &fortran).unwrap();
        assert_eq!(saved.metadata["order"], json!("F"));
        let loaded: Array2<i32> = f.store.load(&saved.to_stored()).unwrap();
        assert_eq!(loaded, fortran);

        // Axes permuted: neither C nor Fortran order, copied out in C order.
        let permuted = Array::from_shape_fn((4, 5, 6), |(i, j, k)| (i * 30 + j * 6 + k) as u16)
            .permuted_axes([1, 0, 2]);
        assert!(!permuted.is_standard_layout() && !permuted.t().is_standard_layout());
        let saved = f.store.save(&["a", "3"], &permuted).unwrap();
        let loaded: Array3<u16> = f.store.load(&saved.to_stored()).unwrap();
        assert_eq!(loaded, permuted);

        let shared: ArcArray<bool, _> = array![[true, false], [false, true]].into_shared();
        let saved = f.store.save(&["a", "4"], &shared).unwrap();
        assert_eq!(saved.metadata["true_count"], json!(2));
        let loaded: ArcArray<bool, ndarray::Ix2> = f.store.load(&saved.to_stored()).unwrap();
        assert_eq!(loaded, shared);

        let scalar = Array::from_elem((), 2.5f32);
        let saved = f.store.save(&["a", "5"], &scalar).unwrap();
        assert_eq!(saved.metadata["shape"], json!([]));
        assert_eq!(
            f.store
                .load::<ndarray::Array0<f32>>(&saved.to_stored())
                .unwrap(),
            scalar
        );
    }

    #[test]
    fn any_array_loads_as_another_of_the_same_type_and_dimension() {
        let f = fixture();
        let saved = f.store.save(&["a", "1"], &vec![1i64, 2, 3]).unwrap();
        let array: Array1<i64> = f.store.load(&saved.to_stored()).unwrap();
        assert_eq!(array, array![1, 2, 3]);
        let dynamic: ArrayD<i64> = f.store.load(&saved.to_stored()).unwrap();
        assert_eq!(dynamic.shape(), [3]);

        let matrix = array![[1.0f64, 2.0], [3.0, 4.0]];
        let saved = f.store.save(&["a", "2"], &matrix).unwrap();
        let error = f
            .store
            .load::<Array1<f64>>(&saved.to_stored())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("it holds a float64 array of shape [2, 2], not a 1-D array of float64"),
            "{error}"
        );
        let error = f
            .store
            .load::<Array2<f32>>(&saved.to_stored())
            .unwrap_err()
            .to_string();
        assert!(error.contains("not a 2-D array of float32"), "{error}");
    }

    #[test]
    fn image_shaped_arrays_are_shown_as_images_and_vectors_as_histograms() {
        let f = fixture();
        let picture = Array::from_shape_fn((32, 48, 3), |(i, j, c)| ((i + j + c) % 256) as u8);
        let saved = f.store.save(&["a", "1"], &picture).unwrap();
        let image = saved
            .files
            .iter()
            .find(|file| file.name == "image.png")
            .unwrap();
        assert!(image.is_visualization());
        let png = f
            .store
            .read_head(&saved.to_stored(), "image.png", 1 << 20)
            .unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let info = decoder.read_info().unwrap().info().clone();
        assert_eq!(
            (info.width, info.height, info.color_type),
            (48, 32, png::ColorType::Rgb)
        );

        let table = Array2::<f64>::zeros((1000, 4));
        let saved = f.store.save(&["a", "2"], &table).unwrap();
        assert_eq!(
            saved.files.len(),
            1,
            "a tall table of numbers is not a picture"
        );

        let vector = Array1::linspace(0.0, 1.0, 50);
        let saved = f.store.save(&["a", "3"], &vector).unwrap();
        assert!(saved.files.iter().any(|file| file.name == "histogram.svg"));
    }
}

/// A materializer that tries to write a visualization outside its version's folder.
struct Escaping(Vec<f64>);
struct EscapingFormat;

impl weft_artifacts::Materializer<Escaping> for EscapingFormat {
    const ID: &'static str = "test.escaping";
    const VERSION: u32 = 1;

    fn save(
        value: &Escaping,
        writer: &mut weft_artifacts::ArtifactWriter<'_>,
    ) -> weft_artifacts::Result<()> {
        writer.write_file("data.json", |file| {
            Ok(serde_json::to_writer(file, &value.0)?)
        })
    }

    fn load(_: &mut weft_artifacts::ArtifactReader<'_>) -> weft_artifacts::Result<Escaping> {
        unreachable!("never saved")
    }

    fn visualize(
        _: &Escaping,
        writer: &mut weft_artifacts::ArtifactWriter<'_>,
    ) -> weft_artifacts::Result<()> {
        writer.write_visualization(
            "../../escaped.svg",
            weft_artifacts::VisualizationType::Svg,
            |file| Ok(file.write_all(b"<svg/>")?),
        )
    }
}

impl weft_artifacts::Artifact for Escaping {
    type Materializer = EscapingFormat;
}

#[test]
fn a_visualization_named_outside_its_folder_is_refused_and_nothing_is_left() {
    let f = fixture();
    let error = f
        .store
        .save(&["p", "s", "x", "1"], &Escaping(vec![1.0]))
        .unwrap_err();
    assert!(matches!(error, Error::BadFileName { .. }), "{error}");
    assert!(error.to_string().contains("../../escaped.svg"), "{error}");
    let root = f.store.local_folder().unwrap().to_owned();
    assert!(!root.join("p/escaped.svg").exists() && !root.join("p/s/escaped.svg").exists());
    let left: Vec<_> = std::fs::read_dir(root.join("p/s/x/1"))
        .unwrap()
        .flatten()
        .collect();
    assert!(
        left.is_empty(),
        "the data file written before is removed: {left:?}"
    );
}

#[test]
fn a_record_claiming_a_huge_file_is_not_trusted_with_an_allocation() {
    let f = fixture();
    let huge = npy_header("{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627776,), }");
    let mut stored = handmade(&f.store, "liar", &huge, std::any::type_name::<Vec<f64>>());
    // A tampered metadata store says the file holds the 8 TiB its header declares.
    stored.files[0].size = huge.len() as u64 + 8 * (1 << 40);
    // Sizes are taken from the file as the store holds it: the mismatch is reported (without
    // this, the 8 TiB buffer's allocation would abort the process).
    let error = f.store.load::<Vec<f64>>(&stored).unwrap_err();
    assert!(matches!(error, Error::Corrupt { .. }), "{error}");
}
