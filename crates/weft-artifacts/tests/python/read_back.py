"""Reads every built-in format weft saved, with the field's own libraries, and compares the
values with what the Rust side saved (the same formulas, computed here). Prints `ok`."""

import json
import sys

import numpy as np
import pyarrow.parquet as pq
from PIL import Image
from safetensors import safe_open
from safetensors.numpy import load_file

files = json.loads(sys.argv[1])

vector = np.load(files["vector"], allow_pickle=False)
assert vector.dtype == np.float64 and vector.shape == (100,), (vector.dtype, vector.shape)
assert np.array_equal(vector, np.arange(100) * 0.25), vector[:5]

matrix = np.load(files["fortran"], allow_pickle=False)
assert matrix.dtype == np.int32 and matrix.shape == (6, 7), (matrix.dtype, matrix.shape)
assert matrix.flags["F_CONTIGUOUS"]
expected = np.fromfunction(lambda i, j: i * 7 + j, (6, 7), dtype=np.int32)
assert np.array_equal(matrix, expected), matrix

flags = np.load(files["bools"], allow_pickle=False)
assert flags.dtype == np.bool_ and flags.tolist() == [True, False, True], flags

cube = np.load(files["cube"], allow_pickle=False)
assert cube.dtype == np.uint16 and cube.shape == (2, 3, 4)
assert np.array_equal(cube, np.arange(24, dtype=np.uint16).reshape(2, 3, 4))

table = pq.read_table(files["table"])
assert table.num_rows == 10 and table.column_names == ["id", "score"], table.schema
assert table.column("id").to_pylist() == list(range(10))
assert table.column("score").to_pylist() == [None if i % 3 == 0 else i / 2 for i in range(10)]

tensors = load_file(files["tensors"])
assert tensors["w"].dtype == np.float32 and tensors["w"].shape == (3, 4)
assert np.array_equal(tensors["w"], (np.arange(12, dtype=np.float32) * 0.5).reshape(3, 4))
assert tensors["b"].dtype == np.int64 and tensors["b"].tolist() == [1, 2, 3]
with safe_open(files["tensors"], framework="numpy") as opened:
    assert opened.metadata()["weft.run"] == "run-1", opened.metadata()

rgb = Image.open(files["rgb"])
assert rgb.mode == "RGB" and rgb.size == (5, 4), (rgb.mode, rgb.size)
assert rgb.getpixel((3, 2)) == (3, 2, 6), rgb.getpixel((3, 2))
deep = Image.open(files["gray16"])
assert deep.size == (3, 2) and deep.mode.startswith("I"), deep.mode
assert np.array(deep)[1, 2] == 1002, np.array(deep)

# With the `polars` and `candle` features: a Polars frame and candle weights.
if "frame" in files:
    frame = pq.read_table(files["frame"])
    assert frame.column_names == ["id", "name"], frame.schema
    assert frame.column("id").to_pylist() == [10, 20, 30]
    assert frame.column("name").to_pylist() == ["a", None, "c"]
if "candle" in files:
    weights = load_file(files["candle"])
    assert sorted(weights) == ["bias", "weight"], sorted(weights)
    assert weights["weight"].dtype == np.float32 and weights["weight"].shape == (2, 3)
    assert np.array_equal(weights["weight"], np.arange(6, dtype=np.float32).reshape(2, 3))
    assert weights["bias"].tolist() == [0.5, -0.5]

print("ok")
