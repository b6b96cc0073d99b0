//! Named tensors as `.safetensors`: round trips, provenance in the header, hostile files.
#![cfg(feature = "safetensors")]

use crate::common::{fixture, handmade};
use serde_json::json;
use weft_artifacts::safetensors::Dtype;
use weft_artifacts::{Tensor, Tensors};

fn weights() -> Tensors {
    let mut tensors = Tensors::new();
    let w: Vec<f32> = (0..12).map(|i| i as f32 * 0.5).collect();
    tensors.insert("layer.weight", Tensor::from_values(vec![3, 4], &w).unwrap());
    tensors.insert(
        "layer.bias",
        Tensor::from_values(vec![3], &[1i64, 2, 3]).unwrap(),
    );
    tensors.insert(
        "empty",
        Tensor::from_values::<f64>(vec![0, 5], &[]).unwrap(),
    );
    tensors.set_metadata("framework", "weft-test");
    tensors.set_metadata("weft.run", "forged");
    tensors
}

#[test]
fn tensors_round_trip_with_provenance_in_the_header() {
    let f = fixture();
    let provenance = vec![
        ("weft.run".to_owned(), "run-1".to_owned()),
        ("weft.output".to_owned(), "model".to_owned()),
    ];
    let saved = f
        .store
        .save_with_provenance(&["m", "1"], &weights(), provenance)
        .unwrap();
    assert_eq!(saved.materializer, "weft.safetensors");
    assert_eq!(saved.files[0].name, "model.safetensors");
    assert_eq!(saved.metadata["tensors"], json!(3));
    assert_eq!(saved.metadata["parameters"], json!(15));
    assert_eq!(
        saved.metadata["bytes_per_dtype"],
        json!({"F32": 48, "I64": 24, "F64": 0})
    );

    let loaded: Tensors = f.store.load(&saved.to_stored()).unwrap();
    let original = weights();
    for (name, tensor) in original.iter() {
        assert_eq!(loaded.get(name), Some(tensor), "{name}");
    }
    assert_eq!(
        loaded
            .get("layer.weight")
            .unwrap()
            .to_values::<f32>()
            .unwrap()[11],
        5.5
    );
    assert_eq!(loaded.metadata()["framework"], "weft-test");
    assert_eq!(
        loaded.metadata()["weft.run"],
        "run-1",
        "weft's provenance wins over forgeries"
    );
    assert_eq!(loaded.metadata()["weft.output"], "model");

    let header = f
        .store
        .read_head(&saved.to_stored(), "model.safetensors", 8)
        .unwrap();
    let length = u64::from_le_bytes(header.try_into().unwrap());
    assert_eq!((8 + length) % 8, 0, "data starts 8-byte aligned");
}

#[test]
fn tensors_refuse_bytes_that_do_not_fit_and_reads_as_another_type() {
    let error = Tensor::new(Dtype::F32, vec![2, 2], vec![0u8; 15]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "a F32 tensor of shape [2, 2] needs 16 bytes, not 15"
    );
    let overflow = Tensor::new(Dtype::F64, vec![usize::MAX, 2], vec![]).unwrap_err();
    assert!(
        overflow.to_string().contains("more than addressable"),
        "{overflow}"
    );
    let tensor = Tensor::from_values(vec![2], &[1.0f64, 2.0]).unwrap();
    let error = tensor.to_values::<f32>().unwrap_err();
    assert_eq!(error.to_string(), "the tensor holds F64, not float32");
}

#[test]
fn a_header_longer_than_the_file_is_a_clear_error() {
    let f = fixture();
    let mut bytes = 4096u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{\"__metadata__\":{}}");
    let stored = handmade(
        &f.store,
        "m/2",
        "model.safetensors",
        &bytes,
        ("weft.safetensors", std::any::type_name::<Tensors>()),
    );
    let error = f.store.load::<Tensors>(&stored).unwrap_err().to_string();
    assert!(error.contains("m/2/model.safetensors"), "{error}");
    assert!(error.to_lowercase().contains("header"), "{error}");
}
