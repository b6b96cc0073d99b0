//! Built-in materializers and the types that use them.
//!
//! | type | materializer | file |
//! |---|---|---|
//! | `bool`, integers, floats, `char`, `serde_json::Value` | [`JsonFormat`] | `data.json` |
//! | `String` | [`Text`] | `data.txt` |
//! | `Vec<u8>` | [`RawBytes`] | `data.bin` |
//! | `Vec<T>` of numbers or `bool`s | [`Npy`] | `data.npy` (a 1-D NumPy array) |
//! | `Vec<T>`, `Option<T>`, `BTreeMap<String, T>`, `HashMap<String, T>` of [`SerdeValue`]s | [`JsonFormat`] | `data.json` |
//! | [`Json<T>`] for any serde type | [`JsonFormat`] | `data.json` |
//! | [`Binary<T>`] for any serde type | [`MsgPackFormat`] | `data.msgpack` |
//! | [`Markdown`], [`Html`], [`Csv`] (reports) | [`MarkdownFormat`], ... | `report.md`, `report.html`, `data.csv` |
//!
//! `#[derive(Artifact)]` gives serde types the JSON format (or MessagePack with
//! `#[artifact(binary)]`) and makes them [`SerdeValue`]s, so collections of them are artifacts
//! too.

use std::collections::{BTreeMap, HashMap};
use std::ops::{Deref, DerefMut};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Result;
use crate::io::{ArtifactReader, ArtifactWriter};
use crate::items::{ItemFormat, ItemSpans, json_array_spans};
use crate::materializer::{Artifact, FormerFormat, Materializer, Metadata};
use crate::npy::Npy;
use crate::{ArtifactType, FileRecord, StoredArtifact, VisualizationType};

/// A serde type that may live inside a built-in collection artifact (`Vec<T>`, `Option<T>`,
/// maps). Implemented for scalars, strings, collections of `SerdeValue`s and every type with
/// `#[derive(Artifact)]`. `u8` is deliberately not one, so that `Vec<u8>` stays raw bytes.
pub trait SerdeValue: Serialize + DeserializeOwned + Send + 'static {
    /// How a `Vec` of this type is stored: [`JsonFormat`] for most types, [`Npy`] for
    /// numbers and `bool`s (a 1-D NumPy array).
    type VecFormat: Materializer<Vec<Self>> + ItemFormat<Self>;
}

/// Stores a serde value as pretty-less JSON in `data.json`.
pub struct JsonFormat;

impl<T: Serialize + DeserializeOwned + 'static> Materializer<T> for JsonFormat {
    const ID: &'static str = "weft.json";
    const VERSION: u32 = 1;

    fn save(value: &T, writer: &mut ArtifactWriter<'_>) -> Result<()> {
        writer.write_file("data.json", |file| Ok(serde_json::to_writer(file, value)?))
    }

    fn load(reader: &mut ArtifactReader<'_>) -> Result<T> {
        let file = reader.open("data.json")?;
        // The reader buffers and hashes in large chunks, so byte-wise reads are cheap.
        serde_json::from_reader(&mut *file).map_err(|e| file.decode_error(e))
    }
}

/// A JSON array's items are found by following its strings and brackets.
impl<T: Serialize + DeserializeOwned + 'static> ItemFormat<T> for JsonFormat {
    fn find_items(reader: &mut ArtifactReader<'_>) -> Result<Option<ItemSpans>> {
        let file = reader.open("data.json")?;
        let spans = json_array_spans(&mut *file).map_err(|e| file.decode_error(e))?;
        Ok(Some(ItemSpans::listed("data.json", spans)))
    }

    fn decode_item(bytes: &[u8]) -> std::result::Result<T, crate::BoxError> {
        Ok(serde_json::from_slice(bytes)?)
    }
}

/// Stores a serde value as MessagePack (structs as maps, so field names are kept) in
/// `data.msgpack`: compact and readable by any MessagePack library.
pub struct MsgPackFormat;

impl<T: Serialize + DeserializeOwned + 'static> Materializer<T> for MsgPackFormat {
    const ID: &'static str = "weft.msgpack";
    const VERSION: u32 = 1;

    fn save(value: &T, writer: &mut ArtifactWriter<'_>) -> Result<()> {
        writer.write_file("data.msgpack", |mut file| {
            Ok(rmp_serde::encode::write_named(&mut file, value)?)
        })
    }

    fn load(reader: &mut ArtifactReader<'_>) -> Result<T> {
        let file = reader.open("data.msgpack")?;
        rmp_serde::decode::from_read(&mut *file).map_err(|e| file.decode_error(e))
    }
}

/// Stores a `String` as UTF-8 text in `data.txt`.
pub struct Text;

impl Materializer<String> for Text {
    const ID: &'static str = "weft.text";
    const VERSION: u32 = 1;

    fn save(value: &String, writer: &mut ArtifactWriter<'_>) -> Result<()> {
        writer.write_file("data.txt", |file| Ok(file.write_all(value.as_bytes())?))
    }

    fn load(reader: &mut ArtifactReader<'_>) -> Result<String> {
        let file = reader.open("data.txt")?;
        let bytes = file.read_all()?;
        String::from_utf8(bytes).map_err(|e| file.decode_error(e.utf8_error()))
    }
}

/// Stores a `Vec<u8>` as is in `data.bin`.
pub struct RawBytes;

impl Materializer<Vec<u8>> for RawBytes {
    const ID: &'static str = "weft.bytes";
    const VERSION: u32 = 1;

    fn save(value: &Vec<u8>, writer: &mut ArtifactWriter<'_>) -> Result<()> {
        writer.write_file("data.bin", |file| Ok(file.write_all(value)?))
    }

    fn load(reader: &mut ArtifactReader<'_>) -> Result<Vec<u8>> {
        reader.open("data.bin")?.read_all()
    }
}

/// Each byte is an item.
impl ItemFormat<u8> for RawBytes {
    fn find_items(reader: &mut ArtifactReader<'_>) -> Result<Option<ItemSpans>> {
        let size = reader.open("data.bin")?.recorded_size();
        Ok(Some(ItemSpans::even("data.bin", 0, 1, size)))
    }

    fn decode_item(bytes: &[u8]) -> std::result::Result<u8, crate::BoxError> {
        Ok(bytes[0])
    }
}

macro_rules! scalar_artifacts {
    ($($ty:ty),* $(,)?) => {$(
        impl Artifact for $ty {
            type Materializer = JsonFormat;

            fn describe(&self, metadata: &mut Metadata) {
                if let Ok(value) = serde_json::to_value(self) {
                    metadata.insert("value".into(), value);
                }
            }
        }
    )*};
}

scalar_artifacts!(
    bool, char, u8, u16, u32, u64, usize, i8, i16, i32, i64, isize, f32, f64
);

macro_rules! serde_values {
    ($format:ty: $($ty:ty),* $(,)?) => {$(
        impl SerdeValue for $ty {
            type VecFormat = $format;
        }
    )*};
}

serde_values!(Npy: bool, u16, u32, u64, usize, i8, i16, i32, i64, isize, f32, f64);
serde_values!(JsonFormat: char, String, serde_json::Value);
impl SerdeValue for Vec<u8> {
    type VecFormat = JsonFormat;
}
impl<T: SerdeValue> SerdeValue for Vec<T> {
    type VecFormat = JsonFormat;
}
impl<T: SerdeValue> SerdeValue for Option<T> {
    type VecFormat = JsonFormat;
}
impl<T: SerdeValue> SerdeValue for BTreeMap<String, T> {
    type VecFormat = JsonFormat;
}
impl<T: SerdeValue> SerdeValue for HashMap<String, T> {
    type VecFormat = JsonFormat;
}
impl<A: SerdeValue, B: SerdeValue> SerdeValue for (A, B) {
    type VecFormat = JsonFormat;
}
impl<A: SerdeValue, B: SerdeValue, C: SerdeValue> SerdeValue for (A, B, C) {
    type VecFormat = JsonFormat;
}

impl Artifact for String {
    type Materializer = Text;

    fn describe(&self, metadata: &mut Metadata) {
        metadata.insert("length".into(), self.chars().count().into());
    }
}

impl Artifact for Vec<u8> {
    type Materializer = RawBytes;

    fn describe(&self, metadata: &mut Metadata) {
        metadata.insert("length".into(), self.len().into());
    }
}

impl Artifact for serde_json::Value {
    type Materializer = JsonFormat;
}

impl<T: SerdeValue> Artifact for Vec<T> {
    type Materializer = T::VecFormat;

    fn describe(&self, metadata: &mut Metadata) {
        metadata.insert("length".into(), self.len().into());
    }

    /// Vectors of numbers were stored as JSON before they were `.npy` arrays.
    fn former_format(materializer: &str) -> Option<FormerFormat<Self>> {
        (materializer == <JsonFormat as Materializer<Self>>::ID).then_some(FormerFormat {
            id: <JsonFormat as Materializer<Self>>::ID,
            version: <JsonFormat as Materializer<Self>>::VERSION,
            load: <JsonFormat as Materializer<Self>>::load,
        })
    }
}

impl<T: SerdeValue> Artifact for Option<T> {
    type Materializer = JsonFormat;

    fn describe(&self, metadata: &mut Metadata) {
        metadata.insert("is_some".into(), self.is_some().into());
    }
}

impl<T: SerdeValue> Artifact for BTreeMap<String, T> {
    type Materializer = JsonFormat;

    fn describe(&self, metadata: &mut Metadata) {
        metadata.insert("length".into(), self.len().into());
    }
}

impl<T: SerdeValue> Artifact for HashMap<String, T> {
    type Materializer = JsonFormat;

    fn describe(&self, metadata: &mut Metadata) {
        metadata.insert("length".into(), self.len().into());
    }
}

macro_rules! format_wrapper {
    ($(#[$doc:meta])* $name:ident, $format:ty) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
        pub struct $name<T>(pub T);

        impl<T> $name<T> {
            /// The wrapped value.
            pub fn into_inner(self) -> T {
                self.0
            }
        }

        impl<T> Deref for $name<T> {
            type Target = T;

            fn deref(&self) -> &T {
                &self.0
            }
        }

        impl<T> DerefMut for $name<T> {
            fn deref_mut(&mut self) -> &mut T {
                &mut self.0
            }
        }

        impl<T: Serialize> Serialize for $name<T> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                self.0.serialize(serializer)
            }
        }

        impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for $name<T> {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                T::deserialize(deserializer).map($name)
            }
        }

        impl<T: Serialize + DeserializeOwned + Send + 'static> Artifact for $name<T> {
            type Materializer = $format;
        }
    };
}

format_wrapper!(
    /// Stores any serde value as JSON, whatever its own artifact format.
    Json,
    JsonFormat
);
format_wrapper!(
    /// Stores any serde value as MessagePack: compact, for large values.
    Binary,
    MsgPackFormat
);

macro_rules! documents {
    ($($(#[$doc:meta])* $name:ident, $format:ident, $id:literal, $file:literal;)*) => {$(
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
        pub struct $name(pub String);

        impl $name {
            /// The document's text.
            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl Deref for $name {
            type Target = String;

            fn deref(&self) -> &String {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(text: String) -> Self {
                Self(text)
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                Self(text.to_owned())
            }
        }

        #[doc = concat!("Stores a [`", stringify!($name), "`] as `", $file, "`, shown as it is.")]
        pub struct $format;

        impl Materializer<$name> for $format {
            const ID: &'static str = $id;
            const VERSION: u32 = 1;

            fn save(value: &$name, writer: &mut ArtifactWriter<'_>) -> Result<()> {
                writer.write_file($file, |file| Ok(file.write_all(value.0.as_bytes())?))
            }

            fn load(reader: &mut ArtifactReader<'_>) -> Result<$name> {
                let file = reader.open($file)?;
                let bytes = file.read_all()?;
                String::from_utf8(bytes)
                    .map($name)
                    .map_err(|e| file.decode_error(e.utf8_error()))
            }
        }

        impl Artifact for $name {
            type Materializer = $format;
            const ARTIFACT_TYPE: ArtifactType = ArtifactType::DataAnalysis;

            fn describe(&self, metadata: &mut Metadata) {
                metadata.insert("length".into(), self.0.chars().count().into());
            }
        }
    )*};
}

documents! {
    /// A Markdown report a step returns: stored as `report.md` and shown as Markdown.
    Markdown, MarkdownFormat, "weft.markdown", "report.md";
    /// An HTML report a step returns: stored as `report.html` and shown (sandboxed) as HTML.
    Html, HtmlFormat, "weft.html", "report.html";
    /// A table as CSV text a step returns: stored as `data.csv` and shown as a table.
    Csv, CsvFormat, "weft.csv", "data.csv";
}

/// Data files that are their own visualization, by the materializer that wrote them.
const SHOWN_AS_THEY_ARE: [(&str, &str, VisualizationType); 4] = [
    ("weft.png", "image.png", VisualizationType::Png),
    ("weft.markdown", "report.md", VisualizationType::Markdown),
    ("weft.html", "report.html", VisualizationType::Html),
    ("weft.csv", "data.csv", VisualizationType::Csv),
];

/// The files of a stored version that show it, with their types: its visualizations, and
/// data files that are their own (an image, a report).
pub fn visualizations(stored: &StoredArtifact) -> Vec<(&FileRecord, VisualizationType)> {
    stored
        .files
        .iter()
        .filter_map(|file| {
            file.visualization.map(|kind| (file, kind)).or_else(|| {
                SHOWN_AS_THEY_ARE
                    .iter()
                    .find(|(id, name, _)| *id == stored.materializer && *name == file.name)
                    .map(|&(_, _, kind)| (file, kind))
            })
        })
        .collect()
}
