//! Cache keys: what makes two executions of a step interchangeable.
//!
//! A key is the BLAKE3 hash of a versioned, length-prefixed encoding of its [`KeyParts`], so
//! that no two different sets of parts can encode to the same bytes. The parts themselves are
//! kept with the step run, so `weft cache explain` can show them and compare two runs.
//!
//! Inputs count by the content hash recorded when their artifact version was written, never
//! by re-reading them, and a re-executed upstream that produced identical bytes leaves the
//! downstream key unchanged (early cutoff).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The version of the key encoding. Changing what goes into a key means a new version.
pub const KEY_FORMAT: &str = "weft-cache-v1";

/// Everything a cache key is made of. The fields are declared in key order, so that their
/// canonical encoding (stored with each step run) is written as they come, without putting
/// them in order afterwards: a fan-in over 100,000 items has 100,000 inputs here.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyParts {
    /// The artifact store the outputs live in.
    pub artifact_store: String,
    /// The step's code hash, if the policy includes code.
    pub code_hash: Option<String>,
    /// Declared environment variables and their values (`None`: unset).
    pub env: BTreeMap<String, Option<String>>,
    /// Declared file dependencies and the BLAKE3 hash of their content.
    pub files: BTreeMap<String, String>,
    /// The encoding version ([`KEY_FORMAT`]).
    pub format: String,
    /// Each input (minus ignored ones), by name: `content:<hash>` or `id:<version id>` per
    /// artifact version, in order.
    pub inputs: BTreeMap<String, Vec<String>>,
    /// What the key function returned.
    pub key_fn: Option<String>,
    /// Each output: name, materializer id and version.
    pub outputs: Vec<(String, String, u32)>,
    /// The parameters as canonical JSON, if the policy includes them.
    pub parameters: Option<String>,
    /// The step (`module::path::name`).
    pub step: String,
}

impl KeyParts {
    /// The cache key: hex BLAKE3 of the encoding.
    pub fn key(&self) -> String {
        let mut encoder = Encoder(blake3::Hasher::new());
        encoder.field(b"format", self.format.as_bytes());
        encoder.field(b"artifact_store", self.artifact_store.as_bytes());
        encoder.field(b"step", self.step.as_bytes());
        encoder.optional(b"code_hash", self.code_hash.as_deref());
        encoder.optional(b"parameters", self.parameters.as_deref());
        encoder.count(b"inputs", self.inputs.len());
        for (name, versions) in &self.inputs {
            encoder.field(b"input", name.as_bytes());
            encoder.count(b"versions", versions.len());
            for version in versions {
                encoder.field(b"version", version.as_bytes());
            }
        }
        encoder.count(b"outputs", self.outputs.len());
        for (name, materializer, version) in &self.outputs {
            encoder.field(b"output", name.as_bytes());
            encoder.field(b"materializer", materializer.as_bytes());
            encoder.field(b"materializer_version", &version.to_le_bytes());
        }
        encoder.count(b"env", self.env.len());
        for (name, value) in &self.env {
            encoder.field(b"variable", name.as_bytes());
            encoder.optional(b"value", value.as_deref());
        }
        encoder.count(b"files", self.files.len());
        for (path, hash) in &self.files {
            encoder.field(b"file", path.as_bytes());
            encoder.field(b"hash", hash.as_bytes());
        }
        encoder.optional(b"key_fn", self.key_fn.as_deref());
        encoder.0.finalize().to_hex().to_string()
    }

    /// The parts that differ from `other`'s, by name, for explaining a miss.
    pub fn differences(&self, other: &KeyParts) -> Vec<String> {
        let mut differences = Vec::new();
        for (name, differ) in [
            ("format", self.format != other.format),
            (
                "artifact store",
                self.artifact_store != other.artifact_store,
            ),
            ("step", self.step != other.step),
            ("code", self.code_hash != other.code_hash),
            ("parameters", self.parameters != other.parameters),
        ] {
            if differ {
                differences.push(name.to_owned());
            }
        }
        for name in self.inputs.keys().chain(other.inputs.keys()) {
            let label = format!("input `{name}`");
            if self.inputs.get(name) != other.inputs.get(name) && !differences.contains(&label) {
                differences.push(label);
            }
        }
        for (name, differ) in [
            ("outputs", self.outputs != other.outputs),
            ("environment", self.env != other.env),
            ("files", self.files != other.files),
            ("key function", self.key_fn != other.key_fn),
        ] {
            if differ {
                differences.push(name.to_owned());
            }
        }
        differences
    }
}

/// Length-prefixed, tagged fields: `tag ‖ len ‖ bytes` with little-endian u64 lengths.
struct Encoder(blake3::Hasher);

impl Encoder {
    fn field(&mut self, tag: &[u8], value: &[u8]) {
        self.0.update(&(tag.len() as u64).to_le_bytes());
        self.0.update(tag);
        self.0.update(&(value.len() as u64).to_le_bytes());
        self.0.update(value);
    }

    fn optional(&mut self, tag: &[u8], value: Option<&str>) {
        match value {
            Some(value) => {
                self.field(tag, b"some");
                self.field(tag, value.as_bytes());
            }
            None => self.field(tag, b"none"),
        }
    }

    fn count(&mut self, tag: &[u8], count: usize) {
        self.field(tag, &(count as u64).to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts() -> KeyParts {
        KeyParts {
            format: KEY_FORMAT.into(),
            artifact_store: "store".into(),
            step: "p::train".into(),
            code_hash: Some("code".into()),
            parameters: Some(r#"{"lr":0.1}"#.into()),
            inputs: BTreeMap::from([("rows".to_string(), vec!["content:abc".to_string()])]),
            outputs: vec![("output".into(), "weft.json".into(), 1)],
            env: BTreeMap::new(),
            files: BTreeMap::new(),
            key_fn: None,
        }
    }

    #[test]
    fn every_part_changes_the_key() {
        let base = parts().key();
        assert_eq!(base, parts().key(), "deterministic");
        type Change = Box<dyn Fn(&mut KeyParts)>;
        let variants: Vec<Change> = vec![
            Box::new(|p| p.artifact_store = "other".into()),
            Box::new(|p| p.step = "p::fit".into()),
            Box::new(|p| p.code_hash = None),
            Box::new(|p| p.parameters = Some(r#"{"lr":0.2}"#.into())),
            Box::new(|p| p.inputs.get_mut("rows").unwrap()[0] = "content:abd".into()),
            Box::new(|p| p.outputs[0].2 = 2),
            Box::new(|p| {
                p.env.insert("SEED".into(), None);
            }),
            Box::new(|p| {
                p.files.insert("data.csv".into(), "h".into());
            }),
            Box::new(|p| p.key_fn = Some(String::new())),
        ];
        for (index, change) in variants.iter().enumerate() {
            let mut changed = parts();
            change(&mut changed);
            assert_ne!(changed.key(), base, "variant {index}");
        }
    }

    #[test]
    fn fields_cannot_run_into_each_other() {
        // Without length prefixes, moving a character from one field to the next would
        // produce the same bytes.
        let mut a = parts();
        a.step = "p::trai".into();
        a.code_hash = Some("ncode".into());
        let mut b = parts();
        b.code_hash = Some("code".into());
        assert_ne!(a.key(), b.key());
        let mut none = parts();
        none.key_fn = None;
        let mut text_none = parts();
        text_none.key_fn = Some("none".into());
        assert_ne!(none.key(), text_none.key());
    }

    #[test]
    fn differences_name_the_parts() {
        let mut other = parts();
        other.parameters = Some("{}".into());
        other
            .inputs
            .insert("rows".into(), vec!["content:zzz".into()]);
        assert_eq!(parts().differences(&other), ["parameters", "input `rows`"]);
        assert!(parts().differences(&parts()).is_empty());
    }
}
