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
    let mut out = Vec::with_capacity(256);
    value.serialize(direct::Writer { out: &mut out })?;
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

/// The canonical encoding written straight from `Serialize`, byte for byte what encoding the
/// value's `serde_json::Value` would give, without building that tree: a snapshot of
/// thousands of invocations, and every step's parameters and cache key parts, are encoded
/// on each run. Objects are written in the order their fields come and put in key order
/// only when they were not (struct fields and `BTreeMap`s mostly are).
mod direct {
    use std::borrow::Cow;
    use std::io::Write as _;
    use std::ops::Range;

    use serde::ser::{self, Impossible, Serialize};
    use serde_json::Error;

    /// The name `serde_json::value::RawValue` serializes itself under.
    const RAW_VALUE: &str = "$serde_json::private::RawValue";

    pub(super) struct Writer<'a> {
        pub(super) out: &'a mut Vec<u8>,
    }

    fn string(out: &mut Vec<u8>, text: &str) {
        serde_json::to_writer(out, text).expect("writing a JSON string to memory cannot fail");
    }

    fn number(out: &mut Vec<u8>, value: impl std::fmt::Display) {
        write!(out, "{value}").expect("writing to memory cannot fail");
    }

    /// What `serde_json::to_value` does with a value it cannot write directly (128-bit
    /// integers), so that both encodings agree.
    fn through_value(out: &mut Vec<u8>, value: impl Serialize) -> Result<(), Error> {
        super::write_value(&serde_json::to_value(value)?, out);
        Ok(())
    }

    impl<'a> ser::Serializer for Writer<'a> {
        type Ok = ();
        type Error = Error;
        type SerializeSeq = Array<'a>;
        type SerializeTuple = Array<'a>;
        type SerializeTupleStruct = Array<'a>;
        type SerializeTupleVariant = Array<'a>;
        type SerializeMap = Object<'a>;
        type SerializeStruct = Struct<'a>;
        type SerializeStructVariant = Object<'a>;

        fn serialize_bool(self, v: bool) -> Result<(), Error> {
            self.out
                .extend_from_slice(if v { b"true" } else { b"false" });
            Ok(())
        }
        fn serialize_i8(self, v: i8) -> Result<(), Error> {
            number(self.out, v);
            Ok(())
        }
        fn serialize_i16(self, v: i16) -> Result<(), Error> {
            number(self.out, v);
            Ok(())
        }
        fn serialize_i32(self, v: i32) -> Result<(), Error> {
            number(self.out, v);
            Ok(())
        }
        fn serialize_i64(self, v: i64) -> Result<(), Error> {
            number(self.out, v);
            Ok(())
        }
        fn serialize_i128(self, v: i128) -> Result<(), Error> {
            through_value(self.out, v)
        }
        fn serialize_u8(self, v: u8) -> Result<(), Error> {
            number(self.out, v);
            Ok(())
        }
        fn serialize_u16(self, v: u16) -> Result<(), Error> {
            number(self.out, v);
            Ok(())
        }
        fn serialize_u32(self, v: u32) -> Result<(), Error> {
            number(self.out, v);
            Ok(())
        }
        fn serialize_u64(self, v: u64) -> Result<(), Error> {
            number(self.out, v);
            Ok(())
        }
        fn serialize_u128(self, v: u128) -> Result<(), Error> {
            through_value(self.out, v)
        }
        // A `Value` holds an `f32` as the `f64` it converts to.
        fn serialize_f32(self, v: f32) -> Result<(), Error> {
            self.serialize_f64(f64::from(v))
        }
        // serde_json writes a finite float the same in both encodings, anything else as null.
        fn serialize_f64(self, v: f64) -> Result<(), Error> {
            serde_json::to_writer(self.out, &v)
        }
        fn serialize_char(self, v: char) -> Result<(), Error> {
            string(self.out, v.encode_utf8(&mut [0; 4]));
            Ok(())
        }
        fn serialize_str(self, v: &str) -> Result<(), Error> {
            string(self.out, v);
            Ok(())
        }
        fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
            self.out.push(b'[');
            for (index, byte) in v.iter().enumerate() {
                if index > 0 {
                    self.out.push(b',');
                }
                number(self.out, byte);
            }
            self.out.push(b']');
            Ok(())
        }
        fn serialize_none(self) -> Result<(), Error> {
            self.serialize_unit()
        }
        fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), Error> {
            value.serialize(self)
        }
        fn serialize_unit(self) -> Result<(), Error> {
            self.out.extend_from_slice(b"null");
            Ok(())
        }
        fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
            self.serialize_unit()
        }
        fn serialize_unit_variant(
            self,
            _name: &'static str,
            _index: u32,
            variant: &'static str,
        ) -> Result<(), Error> {
            self.serialize_str(variant)
        }
        fn serialize_newtype_struct<T: ?Sized + Serialize>(
            self,
            _name: &'static str,
            value: &T,
        ) -> Result<(), Error> {
            value.serialize(self)
        }
        fn serialize_newtype_variant<T: ?Sized + Serialize>(
            self,
            _name: &'static str,
            _index: u32,
            variant: &'static str,
            value: &T,
        ) -> Result<(), Error> {
            self.out.push(b'{');
            string(self.out, variant);
            self.out.push(b':');
            value.serialize(Writer { out: self.out })?;
            self.out.push(b'}');
            Ok(())
        }
        fn serialize_seq(self, _len: Option<usize>) -> Result<Array<'a>, Error> {
            self.out.push(b'[');
            Ok(Array {
                out: self.out,
                first: true,
                variant: false,
            })
        }
        fn serialize_tuple(self, len: usize) -> Result<Array<'a>, Error> {
            self.serialize_seq(Some(len))
        }
        fn serialize_tuple_struct(
            self,
            _name: &'static str,
            len: usize,
        ) -> Result<Array<'a>, Error> {
            self.serialize_seq(Some(len))
        }
        fn serialize_tuple_variant(
            self,
            _name: &'static str,
            _index: u32,
            variant: &'static str,
            _len: usize,
        ) -> Result<Array<'a>, Error> {
            self.out.push(b'{');
            string(self.out, variant);
            self.out.extend_from_slice(b":[");
            Ok(Array {
                out: self.out,
                first: true,
                variant: true,
            })
        }
        fn serialize_map(self, len: Option<usize>) -> Result<Object<'a>, Error> {
            Ok(Object::open(self.out, len.unwrap_or(0), false))
        }
        fn serialize_struct(self, name: &'static str, len: usize) -> Result<Struct<'a>, Error> {
            Ok(match name {
                RAW_VALUE => Struct::Raw(self.out),
                _ => Struct::Object(Object::open(self.out, len, false)),
            })
        }
        fn serialize_struct_variant(
            self,
            _name: &'static str,
            _index: u32,
            variant: &'static str,
            len: usize,
        ) -> Result<Object<'a>, Error> {
            self.out.push(b'{');
            string(self.out, variant);
            self.out.push(b':');
            Ok(Object::open(self.out, len, true))
        }
    }

    pub(super) struct Array<'a> {
        out: &'a mut Vec<u8>,
        first: bool,
        /// Inside `{"variant":[...]}`: one more brace to close.
        variant: bool,
    }

    impl Array<'_> {
        fn item<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
            if !std::mem::take(&mut self.first) {
                self.out.push(b',');
            }
            value.serialize(Writer { out: self.out })
        }

        fn close(self) -> Result<(), Error> {
            self.out.push(b']');
            if self.variant {
                self.out.push(b'}');
            }
            Ok(())
        }
    }

    impl ser::SerializeSeq for Array<'_> {
        type Ok = ();
        type Error = Error;
        fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
            self.item(value)
        }
        fn end(self) -> Result<(), Error> {
            self.close()
        }
    }

    impl ser::SerializeTuple for Array<'_> {
        type Ok = ();
        type Error = Error;
        fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
            self.item(value)
        }
        fn end(self) -> Result<(), Error> {
            self.close()
        }
    }

    impl ser::SerializeTupleStruct for Array<'_> {
        type Ok = ();
        type Error = Error;
        fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
            self.item(value)
        }
        fn end(self) -> Result<(), Error> {
            self.close()
        }
    }

    impl ser::SerializeTupleVariant for Array<'_> {
        type Ok = ();
        type Error = Error;
        fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
            self.item(value)
        }
        fn end(self) -> Result<(), Error> {
            self.close()
        }
    }

    /// An object being written: its entries (`"key":value`) go out as they come, with where
    /// each lies, and are put in key order at the end if they were not in it.
    pub(super) struct Object<'a> {
        out: &'a mut Vec<u8>,
        /// Where the first entry starts (just after `{`).
        start: usize,
        entries: Vec<(Cow<'static, str>, Range<usize>)>,
        /// The key written last and where its entry starts, until its value comes.
        key: Option<(Cow<'static, str>, usize)>,
        /// Inside `{"variant":{...}}`: one more brace to close.
        variant: bool,
    }

    impl<'a> Object<'a> {
        fn open(out: &'a mut Vec<u8>, len: usize, variant: bool) -> Self {
            out.push(b'{');
            Object {
                start: out.len(),
                out,
                entries: Vec::with_capacity(len),
                key: None,
                variant,
            }
        }

        fn key(&mut self, key: Cow<'static, str>) {
            if !self.entries.is_empty() {
                self.out.push(b',');
            }
            let at = self.out.len();
            string(self.out, &key);
            self.out.push(b':');
            self.key = Some((key, at));
        }

        fn value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
            let (key, at) = self.key.take().expect("serde gives a key before its value");
            value.serialize(Writer { out: self.out })?;
            self.entries.push((key, at..self.out.len()));
            Ok(())
        }

        fn close(self) -> Result<(), Error> {
            let Object {
                out,
                start,
                mut entries,
                variant,
                ..
            } = self;
            let ordered = entries
                .windows(2)
                .all(|pair| pair[0].0.as_bytes() < pair[1].0.as_bytes());
            if !ordered {
                // Key order; of a key given twice, the last value (as a map would keep).
                let written = out.split_off(start);
                entries.reverse();
                entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                entries.dedup_by(|later, earlier| later.0 == earlier.0);
                for (index, (_, range)) in entries.iter().enumerate() {
                    if index > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(&written[range.start - start..range.end - start]);
                }
            }
            out.push(b'}');
            if variant {
                out.push(b'}');
            }
            Ok(())
        }
    }

    impl ser::SerializeMap for Object<'_> {
        type Ok = ();
        type Error = Error;
        fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), Error> {
            let key = key.serialize(KeyWriter)?;
            self.key(Cow::Owned(key));
            Ok(())
        }
        fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
            self.value(value)
        }
        fn end(self) -> Result<(), Error> {
            self.close()
        }
    }

    impl ser::SerializeStructVariant for Object<'_> {
        type Ok = ();
        type Error = Error;
        fn serialize_field<T: ?Sized + Serialize>(
            &mut self,
            key: &'static str,
            value: &T,
        ) -> Result<(), Error> {
            self.key(Cow::Borrowed(key));
            self.value(value)
        }
        fn end(self) -> Result<(), Error> {
            self.close()
        }
    }

    /// A struct, or a `RawValue`: JSON text that is written in canonical form too.
    pub(super) enum Struct<'a> {
        Object(Object<'a>),
        Raw(&'a mut Vec<u8>),
    }

    impl ser::SerializeStruct for Struct<'_> {
        type Ok = ();
        type Error = Error;
        fn serialize_field<T: ?Sized + Serialize>(
            &mut self,
            key: &'static str,
            value: &T,
        ) -> Result<(), Error> {
            match self {
                Struct::Object(object) => {
                    object.key(Cow::Borrowed(key));
                    object.value(value)
                }
                Struct::Raw(out) => {
                    let serde_json::Value::String(text) = serde_json::to_value(value)? else {
                        return Err(ser::Error::custom("a raw JSON value holds its text"));
                    };
                    let value: serde_json::Value = serde_json::from_str(&text)?;
                    super::write_value(&value, out);
                    Ok(())
                }
            }
        }
        fn end(self) -> Result<(), Error> {
            match self {
                Struct::Object(object) => object.close(),
                Struct::Raw(_) => Ok(()),
            }
        }
    }

    /// A map key as the string `serde_json::to_value` makes of it.
    struct KeyWriter;

    fn key_must_be_a_string() -> Error {
        ser::Error::custom("key must be a string")
    }

    impl ser::Serializer for KeyWriter {
        type Ok = String;
        type Error = Error;
        type SerializeSeq = Impossible<String, Error>;
        type SerializeTuple = Impossible<String, Error>;
        type SerializeTupleStruct = Impossible<String, Error>;
        type SerializeTupleVariant = Impossible<String, Error>;
        type SerializeMap = Impossible<String, Error>;
        type SerializeStruct = Impossible<String, Error>;
        type SerializeStructVariant = Impossible<String, Error>;

        fn serialize_str(self, v: &str) -> Result<String, Error> {
            Ok(v.to_owned())
        }
        fn serialize_char(self, v: char) -> Result<String, Error> {
            Ok(v.to_string())
        }
        fn serialize_bool(self, v: bool) -> Result<String, Error> {
            Ok(v.to_string())
        }
        fn serialize_i8(self, v: i8) -> Result<String, Error> {
            Ok(v.to_string())
        }
        fn serialize_i16(self, v: i16) -> Result<String, Error> {
            Ok(v.to_string())
        }
        fn serialize_i32(self, v: i32) -> Result<String, Error> {
            Ok(v.to_string())
        }
        fn serialize_i64(self, v: i64) -> Result<String, Error> {
            Ok(v.to_string())
        }
        fn serialize_u8(self, v: u8) -> Result<String, Error> {
            Ok(v.to_string())
        }
        fn serialize_u16(self, v: u16) -> Result<String, Error> {
            Ok(v.to_string())
        }
        fn serialize_u32(self, v: u32) -> Result<String, Error> {
            Ok(v.to_string())
        }
        fn serialize_u64(self, v: u64) -> Result<String, Error> {
            Ok(v.to_string())
        }
        fn serialize_f32(self, _v: f32) -> Result<String, Error> {
            Err(key_must_be_a_string())
        }
        fn serialize_f64(self, _v: f64) -> Result<String, Error> {
            Err(key_must_be_a_string())
        }
        fn serialize_bytes(self, _v: &[u8]) -> Result<String, Error> {
            Err(key_must_be_a_string())
        }
        fn serialize_none(self) -> Result<String, Error> {
            Err(key_must_be_a_string())
        }
        fn serialize_some<T: ?Sized + Serialize>(self, _value: &T) -> Result<String, Error> {
            Err(key_must_be_a_string())
        }
        fn serialize_unit(self) -> Result<String, Error> {
            Err(key_must_be_a_string())
        }
        fn serialize_unit_struct(self, _name: &'static str) -> Result<String, Error> {
            Err(key_must_be_a_string())
        }
        fn serialize_unit_variant(
            self,
            _name: &'static str,
            _index: u32,
            variant: &'static str,
        ) -> Result<String, Error> {
            Ok(variant.to_owned())
        }
        fn serialize_newtype_struct<T: ?Sized + Serialize>(
            self,
            _name: &'static str,
            value: &T,
        ) -> Result<String, Error> {
            value.serialize(self)
        }
        fn serialize_newtype_variant<T: ?Sized + Serialize>(
            self,
            _name: &'static str,
            _index: u32,
            _variant: &'static str,
            _value: &T,
        ) -> Result<String, Error> {
            Err(key_must_be_a_string())
        }
        fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, Error> {
            Err(key_must_be_a_string())
        }
        fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Error> {
            Err(key_must_be_a_string())
        }
        fn serialize_tuple_struct(
            self,
            _name: &'static str,
            _len: usize,
        ) -> Result<Self::SerializeTupleStruct, Error> {
            Err(key_must_be_a_string())
        }
        fn serialize_tuple_variant(
            self,
            _name: &'static str,
            _index: u32,
            _variant: &'static str,
            _len: usize,
        ) -> Result<Self::SerializeTupleVariant, Error> {
            Err(key_must_be_a_string())
        }
        fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Error> {
            Err(key_must_be_a_string())
        }
        fn serialize_struct(
            self,
            _name: &'static str,
            _len: usize,
        ) -> Result<Self::SerializeStruct, Error> {
            Err(key_must_be_a_string())
        }
        fn serialize_struct_variant(
            self,
            _name: &'static str,
            _index: u32,
            _variant: &'static str,
            _len: usize,
        ) -> Result<Self::SerializeStructVariant, Error> {
            Err(key_must_be_a_string())
        }
    }
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

    /// The encoding through a `serde_json::Value`, which the direct one must equal.
    fn through_value(value: &impl Serialize) -> Vec<u8> {
        let value = serde_json::to_value(value).unwrap();
        let mut out = Vec::new();
        write_value(&value, &mut out);
        out
    }

    #[test]
    fn the_direct_encoding_is_the_encoding_of_the_value_tree() {
        use std::collections::{BTreeMap, HashMap};

        #[derive(Serialize)]
        #[serde(rename_all = "snake_case")]
        enum Kind {
            Unit,
            Newtype(u8),
            Tuple(i32, &'static str),
            Struct { zeta: bool, alpha: Option<f32> },
        }

        #[derive(Serialize)]
        struct Unit;

        #[derive(Serialize)]
        struct Newtype(&'static str);

        #[derive(Serialize)]
        struct Inner {
            b: i64,
            a: Vec<Kind>,
        }

        #[derive(Serialize)]
        struct Outer {
            zz: f64,
            mid: HashMap<u32, &'static str>,
            #[serde(flatten)]
            inner: Inner,
            #[serde(skip_serializing_if = "Option::is_none")]
            skipped: Option<u8>,
            nothing: Option<u8>,
            unit: (),
            unit_struct: Unit,
            newtype: Newtype,
            tuple: (char, u128, i128),
            #[serde(with = "serde_bytes_like")]
            bytes: Vec<u8>,
            raw: Box<serde_json::value::RawValue>,
            ordered: BTreeMap<String, f32>,
            text: String,
            floats: [f64; 4],
        }

        mod serde_bytes_like {
            pub(super) fn serialize<S: serde::Serializer>(
                v: &[u8],
                s: S,
            ) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(v)
            }
        }

        let value = Outer {
            zz: 0.1,
            mid: (0..20).map(|i| (i * 7, "x")).collect(),
            inner: Inner {
                b: -3,
                a: vec![
                    Kind::Unit,
                    Kind::Newtype(7),
                    Kind::Tuple(-1, "t"),
                    Kind::Struct {
                        zeta: true,
                        alpha: Some(0.1),
                    },
                ],
            },
            skipped: None,
            nothing: None,
            unit: (),
            unit_struct: Unit,
            newtype: Newtype("n"),
            tuple: ('\u{e9}', u128::from(u64::MAX), -5),
            bytes: vec![0, 1, 255],
            raw: serde_json::value::RawValue::from_string(
                r#"{ "y": [1, {"b": 2, "a": 1}], "x": null }"#.into(),
            )
            .unwrap(),
            ordered: [("é", 1.5), ("z", f32::NAN), ("A", -0.0)]
                .map(|(k, v)| (k.to_owned(), v))
                .into(),
            text: "quote \" backslash \\ newline \n control \u{1} emoji \u{1F600}".into(),
            floats: [f64::INFINITY, 1e300, -2.5e-300, 3.0],
        };
        let direct = to_vec(&value).unwrap();
        assert_eq!(
            String::from_utf8(direct).unwrap(),
            String::from_utf8(through_value(&value)).unwrap()
        );
        // A map that repeats a key keeps its last value, as a `Value` would.
        struct Repeats;
        impl Serialize for Repeats {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap;
                let mut map = s.serialize_map(None)?;
                map.serialize_entry("b", &1)?;
                map.serialize_entry("a", &2)?;
                map.serialize_entry("b", &3)?;
                map.end()
            }
        }
        assert_eq!(to_vec(&Repeats).unwrap(), through_value(&Repeats));
        assert_eq!(to_vec(&Repeats).unwrap(), br#"{"a":2,"b":3}"#);
        // A key that is no string is refused by both.
        let float_keys: Vec<(f64, u8)> = vec![(1.5, 1)];
        struct FloatKeys(Vec<(f64, u8)>);
        impl Serialize for FloatKeys {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
            }
        }
        assert!(to_vec(&FloatKeys(float_keys)).is_err());
    }

    #[test]
    fn a_snapshot_encodes_as_its_value_tree_does() {
        let snapshot: crate::Snapshot = serde_json::from_value(serde_json::json!({
            "format_version": 1,
            "pipeline": "training",
            "parameters": {"lr": 0.1, "epochs": 3, "name": "x"},
            "execution_mode": "continue_on_failure",
            "invocations": [],
        }))
        .unwrap();
        assert_eq!(to_vec(&snapshot).unwrap(), through_value(&snapshot));
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
