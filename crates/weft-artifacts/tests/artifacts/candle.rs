//! candle tensors as safetensors: one tensor and named maps round trip on the CPU, described;
//! `weft::Tensors` and candle read each other's files; what candle cannot hold is refused.
#![cfg(feature = "candle")]

use std::collections::{BTreeMap, HashMap};

use crate::common::fixture;
use candle_core::{DType, Device, Tensor};
use serde_json::json;
use weft_artifacts::Tensors;

fn weights() -> HashMap<String, Tensor> {
    let cpu = Device::Cpu;
    let w = Tensor::arange(0f32, 12.0, &cpu)
        .unwrap()
        .reshape((3, 4))
        .unwrap();
    let b = Tensor::new(&[0.5f64, -1.5, 2.25], &cpu).unwrap();
    let steps = Tensor::new(&[7u32], &cpu).unwrap();
    let half = w.to_dtype(DType::BF16).unwrap();
    HashMap::from([
        ("layer.weight".to_owned(), w),
        ("layer.bias".to_owned(), b),
        ("steps".to_owned(), steps),
        ("layer.weight.bf16".to_owned(), half),
    ])
}

fn same(a: &Tensor, b: &Tensor) -> bool {
    a.dtype() == b.dtype()
        && a.dims() == b.dims()
        && a.flatten_all()
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()
            == b.flatten_all()
                .unwrap()
                .to_dtype(DType::F64)
                .unwrap()
                .to_vec1::<f64>()
                .unwrap()
}

#[test]
fn a_named_map_round_trips_and_is_described() {
    let f = fixture();
    let model = weights();
    let saved = f.store.save(&["m", "1"], &model).unwrap();
    assert_eq!(saved.materializer, "weft.safetensors");
    assert_eq!(saved.metadata["tensors"], json!(4));
    assert_eq!(saved.metadata["parameters"], json!(12 + 3 + 1 + 12));
    assert_eq!(
        saved.metadata["bytes_per_dtype"],
        json!({"BF16": 24, "F32": 48, "F64": 24, "U32": 4})
    );
    let loaded: HashMap<String, Tensor> = f.store.load(&saved.to_stored()).unwrap();
    assert_eq!(loaded.len(), 4);
    for (name, tensor) in &model {
        assert!(same(tensor, &loaded[name]), "{name}");
    }
    let sorted: BTreeMap<String, Tensor> = f.store.load(&saved.to_stored()).unwrap();
    assert_eq!(sorted.keys().next().unwrap(), "layer.bias");

    // The same weights saved again make the same file, whatever the map's order.
    let again = f.store.save(&["m", "2"], &weights()).unwrap();
    assert_eq!(again.content_hash, saved.content_hash);

    // weft's own tensor collection reads the same file.
    let tensors: Tensors = f.store.load(&saved.to_stored()).unwrap();
    assert_eq!(
        tensors
            .get("layer.bias")
            .unwrap()
            .to_values::<f64>()
            .unwrap(),
        [0.5, -1.5, 2.25]
    );
}

#[test]
fn one_tensor_round_trips_and_a_map_is_not_one_tensor() {
    let f = fixture();
    let cpu = Device::Cpu;
    let tensor = Tensor::arange(0i64, 24, &cpu)
        .unwrap()
        .reshape((2, 3, 4))
        .unwrap();
    // A transposed view is written in its logical (C) order.
    let transposed = tensor.transpose(0, 2).unwrap();
    let saved = f.store.save(&["t", "1"], &transposed).unwrap();
    assert_eq!(saved.metadata["shape"], json!([4, 3, 2]));
    assert_eq!(saved.metadata["dtype"], json!("I64"));
    let loaded: Tensor = f.store.load(&saved.to_stored()).unwrap();
    assert!(same(&loaded, &transposed));

    let map = f.store.save(&["m", "1"], &weights()).unwrap();
    let error = f
        .store
        .load::<Tensor>(&map.to_stored())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("holds 4 tensors") && error.contains("model.safetensors"),
        "{error}"
    );
}

#[test]
fn a_dtype_candle_lacks_is_a_clear_error() {
    let f = fixture();
    let mut tensors = Tensors::new();
    tensors.insert(
        "flags",
        weft_artifacts::Tensor::from_values(vec![2], &[true, false]).unwrap(),
    );
    let saved = f.store.save(&["t", "1"], &tensors).unwrap();
    let error = f
        .store
        .load::<HashMap<String, Tensor>>(&saved.to_stored())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("`flags`") && error.contains("BOOL") && error.contains("candle"),
        "{error}"
    );
}
