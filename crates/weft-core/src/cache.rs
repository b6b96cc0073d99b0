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
use std::fmt::{self, Write as _};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{ArtifactVersionId, Digest};

/// The version of the key encoding. Changing what goes into a key means a new version.
/// (Inputs of more than [`LISTED_VERSIONS`] versions are now encoded by their count and
/// digest within this version: a key recorded for such a fan-in when its versions were listed
/// is not found again, and that step runs once more.)
pub const KEY_FORMAT: &str = "weft-cache-v1";

/// An input of up to this many artifact versions is kept in a key's parts as the list of their
/// identities; a larger one (a fan-in over a big map) as their number and digest, so that its
/// parts stay small: which versions it received is recorded with the step run's inputs.
pub const LISTED_VERSIONS: usize = 256;

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
    /// Each input (minus ignored ones), by name: how each of its artifact versions counts,
    /// in order.
    pub inputs: BTreeMap<String, InputVersions>,
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
        let mut text = String::new();
        for (name, versions) in &self.inputs {
            encoder.field(b"input", name.as_bytes());
            match versions {
                InputVersions::Listed(versions) => {
                    encoder.count(b"versions", versions.len());
                    for version in versions {
                        encoder.identity(version, &mut text);
                    }
                }
                InputVersions::Digested { count, digest } => {
                    encoder.count(b"versions", *count as usize);
                    encoder.field(b"versions_digest", digest.to_hex().as_bytes());
                }
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

/// How the artifact versions of one input count in a key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum InputVersions {
    /// Each version's identity, in order (up to [`LISTED_VERSIONS`]).
    Listed(Vec<InputIdentity>),
    /// More versions than that: how many, and the BLAKE3 hash of the encoding the list would
    /// have in the key.
    Digested {
        /// The number of versions.
        count: u64,
        /// The hash of their identities' encoding, in order.
        digest: Digest,
    },
}

impl InputVersions {
    /// The number of versions.
    pub fn len(&self) -> usize {
        match self {
            Self::Listed(versions) => versions.len(),
            Self::Digested { count, .. } => *count as usize,
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Display for InputVersions {
    /// The identities, comma-separated, or how many there are and their digest.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Listed(versions) => {
                for (index, version) in versions.iter().enumerate() {
                    if index > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{version}")?;
                }
                Ok(())
            }
            Self::Digested { count, digest } => write!(f, "{count} versions, digest {digest}"),
        }
    }
}

/// Gathers the identities of one input's versions in order, listing them while they are few
/// and hashing them beyond [`LISTED_VERSIONS`]: a fan-in over 100,000 outputs keeps none.
#[derive(Default)]
pub struct InputVersionsBuilder {
    listed: Vec<InputIdentity>,
    digest: Option<Encoder>,
    count: u64,
    text: String,
}

impl InputVersionsBuilder {
    /// Adds the next version.
    pub fn push(&mut self, identity: InputIdentity) {
        self.count += 1;
        if let Some(encoder) = &mut self.digest {
            encoder.identity(&identity, &mut self.text);
        } else if self.listed.len() < LISTED_VERSIONS {
            self.listed.push(identity);
        } else {
            let mut encoder = Encoder(blake3::Hasher::new());
            for listed in std::mem::take(&mut self.listed).iter().chain([&identity]) {
                encoder.identity(listed, &mut self.text);
            }
            self.digest = Some(encoder);
        }
    }

    /// The versions as a key's parts keep them.
    pub fn finish(self) -> InputVersions {
        match self.digest {
            None => InputVersions::Listed(self.listed),
            Some(encoder) => InputVersions::Digested {
                count: self.count,
                digest: encoder.0.finalize().into(),
            },
        }
    }
}

/// How one artifact version passed to a step counts in its key, written `content:<hash>`,
/// `id:<version id>` or `any`, followed by `#item:<index>` when the step receives one item of
/// a collection. Held as values rather than text: a fan-in over 100,000 outputs has 100,000.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputIdentity {
    /// What identifies the version.
    pub version: VersionIdentity,
    /// The item of the collection the step receives, if it receives one item.
    pub item: Option<u32>,
}

/// What identifies an input's artifact version in a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionIdentity {
    /// Its content hash: equal bytes are the same input, whichever step wrote them.
    Content(Digest),
    /// The version itself.
    Id(ArtifactVersionId),
    /// Any version: the input does not count.
    Any,
    /// Recorded text in none of the forms above, kept as it was read.
    Other(Box<str>),
}

impl fmt::Display for InputIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.version {
            VersionIdentity::Content(hash) => write!(f, "content:{hash}")?,
            VersionIdentity::Id(id) => write!(f, "id:{id}")?,
            VersionIdentity::Any => f.write_str("any")?,
            VersionIdentity::Other(text) => f.write_str(text)?,
        }
        match self.item {
            Some(index) => write!(f, "#item:{index}"),
            None => Ok(()),
        }
    }
}

impl From<&str> for InputIdentity {
    /// Reads the written form; text in no known form is kept as it is.
    fn from(text: &str) -> Self {
        // Only an index as `Display` writes it (no sign, no leading zeros) is one.
        let (version, item) = match text.rsplit_once("#item:") {
            Some((version, index)) => match index.parse::<u32>() {
                Ok(item) if item.to_string() == index => (version, Some(item)),
                _ => (text, None),
            },
            None => (text, None),
        };
        let known = if version == "any" {
            Some(VersionIdentity::Any)
        } else if let Some(hash) = version.strip_prefix("content:") {
            Digest::from_hex(hash)
                .ok()
                .filter(|digest| *digest == hash)
                .map(VersionIdentity::Content)
        } else if let Some(id) = version.strip_prefix("id:") {
            id.parse::<ArtifactVersionId>()
                .ok()
                .filter(|parsed| parsed.to_string() == id)
                .map(VersionIdentity::Id)
        } else {
            None
        };
        match known {
            Some(version) => Self { version, item },
            None => Self {
                version: VersionIdentity::Other(text.into()),
                item: None,
            },
        }
    }
}

impl Serialize for InputIdentity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for InputIdentity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        Ok(Self::from(&*text))
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

    /// An input version's identity, as its text (written into `text`, reused).
    fn identity(&mut self, identity: &InputIdentity, text: &mut String) {
        text.clear();
        write!(text, "{identity}").expect("writing to a string");
        self.field(b"version", text.as_bytes());
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
            inputs: BTreeMap::from([(
                "rows".to_string(),
                InputVersions::Listed(vec![content(b"rows", None)]),
            )]),
            outputs: vec![("output".into(), "weft.json".into(), 1)],
            env: BTreeMap::new(),
            files: BTreeMap::new(),
            key_fn: None,
        }
    }

    fn listed<const N: usize>(identities: [InputIdentity; N]) -> InputVersions {
        InputVersions::Listed(identities.into())
    }

    fn built(identities: impl IntoIterator<Item = InputIdentity>) -> InputVersions {
        let mut builder = InputVersionsBuilder::default();
        identities
            .into_iter()
            .for_each(|identity| builder.push(identity));
        builder.finish()
    }

    fn items(count: u32) -> impl Iterator<Item = InputIdentity> {
        (0..count).map(|i| content(&i.to_le_bytes(), Some(i)))
    }

    #[test]
    fn many_versions_are_kept_as_their_count_and_digest() {
        let few = built(items(LISTED_VERSIONS as u32));
        assert_eq!(
            few,
            InputVersions::Listed(items(LISTED_VERSIONS as u32).collect())
        );
        let many = built(items(1000));
        let InputVersions::Digested { count, .. } = many else {
            panic!("listed: {many:?}")
        };
        assert_eq!((count, many.len()), (1000, 1000));
        assert!(
            many.to_string().starts_with("1000 versions, digest "),
            "{many}"
        );
        // The digest is the hash of what the list would put in the key.
        let mut encoder = Encoder(blake3::Hasher::new());
        let mut text = String::new();
        items(1000).for_each(|identity| encoder.identity(&identity, &mut text));
        let expected = Digest::from(encoder.0.finalize());
        assert!(matches!(many, InputVersions::Digested { digest, .. } if digest == expected));

        let key = |versions: InputVersions| {
            let mut parts = parts();
            parts.inputs.insert("rows".into(), versions);
            parts.key()
        };
        let base = key(built(items(1000)));
        assert_eq!(base, key(built(items(1000))), "deterministic");
        for (position, changed) in [0, LISTED_VERSIONS, 999].into_iter().map(|position| {
            (
                position,
                items(1000).enumerate().map(move |(i, identity)| {
                    if i == position {
                        content(b"changed", identity.item)
                    } else {
                        identity
                    }
                }),
            )
        }) {
            assert_ne!(key(built(changed)), base, "item {position} changed");
        }
        assert_ne!(key(built(items(1001))), base, "one more");
        let mut swapped: Vec<_> = items(1000).collect();
        swapped.swap(3, 700);
        assert_ne!(key(built(swapped)), base, "two swapped");

        let mut parts = parts();
        parts.inputs.insert("rows".into(), built(items(1000)));
        let json = serde_json::to_value(&parts).unwrap();
        assert_eq!(json["inputs"]["rows"]["count"], 1000);
        let back: KeyParts = serde_json::from_value(json).unwrap();
        assert_eq!(back, parts);
        assert_eq!(
            back.key(),
            parts.key(),
            "a stored key's parts give the key back"
        );
    }

    fn content(bytes: &[u8], item: Option<u32>) -> InputIdentity {
        InputIdentity {
            version: VersionIdentity::Content(Digest::of(bytes)),
            item,
        }
    }

    /// Keys recorded by earlier versions must still be found: this one was computed when
    /// identities were kept as text.
    #[test]
    fn the_encoding_of_inputs_is_their_text() {
        let id: ArtifactVersionId = "01a23e63-035f-711d-9dba-f9b752928ac6".parse().unwrap();
        let mut parts = parts();
        parts.artifact_store = "file:///store/".into();
        parts.inputs = BTreeMap::from([
            (
                "rows".to_string(),
                listed([content(b"rows", None), content(b"rows", Some(7))]),
            ),
            (
                "model".to_string(),
                listed([
                    InputIdentity {
                        version: VersionIdentity::Id(id),
                        item: None,
                    },
                    InputIdentity {
                        version: VersionIdentity::Any,
                        item: None,
                    },
                ]),
            ),
        ]);
        assert_eq!(
            parts.key(),
            "8361bbd3be2e313d8de7281e28c5abe6b226962bcc5316496c9ffd5d414f4299"
        );
        let hash = Digest::of(b"rows");
        let json = serde_json::to_value(&parts).unwrap();
        assert_eq!(
            json["inputs"]["rows"],
            serde_json::json!([format!("content:{hash}"), format!("content:{hash}#item:7")])
        );
        assert_eq!(
            json["inputs"]["model"],
            serde_json::json!([format!("id:{id}"), "any"])
        );
        let back: KeyParts = serde_json::from_value(json).unwrap();
        assert_eq!(back, parts);
    }

    #[test]
    fn recorded_identities_in_no_known_form_are_kept_as_they_were() {
        for text in [
            "content:abc",
            "content:ABC#item:2",
            "id:not-an-id",
            "anything#item:x",
            "any#item:007",
            "",
        ] {
            let identity = InputIdentity::from(text);
            assert_eq!(identity.to_string(), text);
            assert!(
                matches!(identity.version, VersionIdentity::Other(_)),
                "{text}"
            );
        }
        let upper = format!("content:{}", Digest::of(b"x").to_string().to_uppercase());
        assert_eq!(InputIdentity::from(upper.as_str()).to_string(), upper);
        let identity = InputIdentity::from("any#item:3");
        assert_eq!(identity.version, VersionIdentity::Any);
        assert_eq!(identity.item, Some(3));
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
            Box::new(|p| {
                p.inputs
                    .insert("rows".into(), listed([content(b"other", None)]));
            }),
            Box::new(|p| {
                p.inputs
                    .insert("rows".into(), listed([content(b"rows", Some(0))]));
            }),
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
            .insert("rows".into(), listed(["content:zzz".into()]));
        assert_eq!(parts().differences(&other), ["parameters", "input `rows`"]);
        assert!(parts().differences(&parts()).is_empty());
    }
}
