//! The canonical JSON encoding and the hashes built on it.
//!
//! Content addresses (snapshot ids) and, later, cache keys must not depend on map iteration
//! order or on whether some dependency enabled `serde_json`'s `preserve_order`. The encoding
//! here sorts object keys explicitly and writes no insignificant whitespace.

use serde::Serialize;
use serde_json::Value;

/// Encodes `value` as canonical JSON: object keys sorted bytewise, no whitespace.
///
/// Fails only if `value` cannot be represented as JSON (for example a map with non-string keys).
pub fn to_vec(value: &impl Serialize) -> Result<Vec<u8>, serde_json::Error> {
    let value = serde_json::to_value(value)?;
    let mut out = Vec::with_capacity(256);
    write_value(&value, &mut out);
    Ok(out)
}

/// The canonical encoding of a JSON value, as a string.
pub fn to_string(value: &Value) -> String {
    let mut out = Vec::with_capacity(64);
    write_value(value, &mut out);
    String::from_utf8(out).expect("JSON output is UTF-8")
}

/// Hex-encoded BLAKE3 hash of `bytes`.
pub fn blake3_hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (index, (key, value)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key.as_str())
                    .expect("writing a JSON string to memory cannot fail");
                out.push(b':');
                write_value(value, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(value: &Value, out: &mut Vec<u8>) {
    serde_json::to_writer(out, value).expect("writing a JSON scalar to memory cannot fail");
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn keys_are_sorted_at_every_depth() {
        let value = json!({"b": [ {"z": 1, "a": 2} ], "a": "x", "é": null, "A": 1.5});
        assert_eq!(
            to_string(&value),
            r#"{"A":1.5,"a":"x","b":[{"a":2,"z":1}],"é":null}"#
        );
    }

    #[test]
    fn equal_values_hash_equal_regardless_of_insertion_order() {
        let mut first = serde_json::Map::new();
        first.insert("x".into(), json!(1));
        first.insert("y".into(), json!(2));
        let mut second = serde_json::Map::new();
        second.insert("y".into(), json!(2));
        second.insert("x".into(), json!(1));
        let first = to_vec(&Value::Object(first)).unwrap();
        let second = to_vec(&Value::Object(second)).unwrap();
        assert_eq!(blake3_hex(&first), blake3_hex(&second));
    }
}
