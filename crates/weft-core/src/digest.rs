//! BLAKE3 hashes of artifact files and versions.
//!
//! A run keeps one for every file and every version it produced (a map of 100,000 items keeps
//! 200,000), so they are held as their 32 bytes rather than as 64-character strings. They are
//! written, stored and hashed as 64 lowercase hex digits, as before, so keys and records made
//! by earlier versions stay valid.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A BLAKE3 hash, shown as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest(blake3::Hash);

impl Digest {
    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(blake3::hash(bytes))
    }

    /// Reads 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, InvalidDigest> {
        blake3::Hash::from_hex(text)
            .map(Self)
            .map_err(|_| InvalidDigest(text.chars().take(80).collect()))
    }

    /// The 64 hex digits, without allocating.
    pub fn to_hex(&self) -> impl std::ops::Deref<Target = str> + fmt::Display {
        self.0.to_hex()
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }
}

impl From<blake3::Hash> for Digest {
    fn from(hash: blake3::Hash) -> Self {
        Self(hash)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = InvalidDigest;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::from_hex(text)
    }
}

impl PartialEq<str> for Digest {
    fn eq(&self, other: &str) -> bool {
        *self.to_hex() == *other
    }
}

impl PartialEq<&str> for Digest {
    fn eq(&self, other: &&str) -> bool {
        *self.to_hex() == **other
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Hex;
        impl serde::de::Visitor<'_> for Hex {
            type Value = Digest;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a BLAKE3 hash as 64 hex digits")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Digest, E> {
                Digest::from_hex(text).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Hex)
    }
}

/// Text that is not a BLAKE3 hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidDigest(String);

impl fmt::Display for InvalidDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a BLAKE3 hash (64 hex digits)",
            self.0.escape_debug()
        )
    }
}

impl std::error::Error for InvalidDigest {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_what_it_writes_as_the_hex_blake3_writes() {
        let digest = Digest::of(b"weft");
        let hex = blake3::hash(b"weft").to_hex().to_string();
        assert_eq!(digest.to_string(), hex);
        assert_eq!(digest, hex.as_str());
        assert_eq!(Digest::from_hex(&hex).unwrap(), digest);
        let json = serde_json::to_string(&digest).unwrap();
        assert_eq!(json, format!("\"{hex}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), digest);
    }

    #[test]
    fn refuses_text_that_is_not_one() {
        for text in ["", "abc", &"g".repeat(64), &"a".repeat(65)] {
            let error = Digest::from_hex(text).unwrap_err();
            assert!(error.to_string().contains("not a BLAKE3 hash"), "{error}");
        }
        let error = serde_json::from_str::<Digest>("\"b3-oops\"").unwrap_err();
        assert!(error.to_string().contains("b3-oops"), "{error}");
        assert!(serde_json::from_str::<Digest>("42").is_err());
    }
}
