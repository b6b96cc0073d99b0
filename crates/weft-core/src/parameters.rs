//! [`Parameters`]: the plain values passed to one step call.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The plain values passed to one step call, by argument name, in name order.
///
/// A sorted vector rather than a `BTreeMap`: a call passes a handful of values, and a map of
/// 100,000 calls keeps one of these per call. A `BTreeMap` with one entry takes a 600-byte
/// node; this takes the entries alone. It encodes as a JSON object, like the map did.
#[derive(Clone, Default, PartialEq, Debug)]
pub struct Parameters(Vec<(String, Value)>);

impl Parameters {
    /// No parameters.
    pub fn new() -> Self {
        Self::default()
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(key, _)| key.as_str().cmp(name))
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.position(name).ok().map(|at| &self.0[at].1)
    }

    /// Whether `name` has a value.
    pub fn contains_key(&self, name: &str) -> bool {
        self.position(name).is_ok()
    }

    /// Sets `name` to `value`; returns the value it replaces.
    pub fn insert(&mut self, name: String, value: Value) -> Option<Value> {
        match self.position(&name) {
            Ok(at) => Some(std::mem::replace(&mut self.0[at].1, value)),
            Err(at) => {
                self.0.insert(at, (name, value));
                None
            }
        }
    }

    /// The names and values, in name order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&String, &Value)> {
        self.0.iter().map(|(name, value)| (name, value))
    }

    /// The names, in order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &String> {
        self.0.iter().map(|(name, _)| name)
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// As a JSON object.
    pub fn to_json(&self) -> Value {
        Value::Object(self.0.iter().cloned().collect())
    }

    /// Drops spare capacity: kept per call, it should hold its entries only.
    pub fn shrink_to_fit(&mut self) {
        self.0.shrink_to_fit();
    }
}

impl std::ops::Index<&str> for Parameters {
    type Output = Value;

    fn index(&self, name: &str) -> &Value {
        self.get(name)
            .unwrap_or_else(|| panic!("no parameter `{name}`"))
    }
}

impl FromIterator<(String, Value)> for Parameters {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(entries: I) -> Self {
        // Through a map: sorted, and a later value of a name wins, as with a map.
        let sorted: BTreeMap<String, Value> = entries.into_iter().collect();
        Self(sorted.into_iter().collect())
    }
}

impl From<BTreeMap<String, Value>> for Parameters {
    fn from(map: BTreeMap<String, Value>) -> Self {
        Self(map.into_iter().collect())
    }
}

impl IntoIterator for Parameters {
    type Item = (String, Value);
    type IntoIter = std::vec::IntoIter<(String, Value)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Parameters {
    type Item = (&'a String, &'a Value);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, Value)>,
        fn(&'a (String, Value)) -> (&'a String, &'a Value),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(name, value)| (name, value))
    }
}

impl Serialize for Parameters {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Parameters {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeMap::<String, Value>::deserialize(deserializer).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_stay_sorted_and_encode_as_an_object() {
        let mut parameters = Parameters::new();
        assert_eq!(parameters.insert("lr".into(), 0.1.into()), None);
        parameters.insert("epochs".into(), 3.into());
        assert_eq!(parameters.insert("lr".into(), 0.2.into()), Some(0.1.into()));
        assert_eq!(parameters.keys().collect::<Vec<_>>(), ["epochs", "lr"]);
        assert_eq!(parameters["lr"], 0.2);
        assert!(parameters.contains_key("epochs") && !parameters.contains_key("x"));
        let text = serde_json::to_string(&parameters).unwrap();
        assert_eq!(text, r#"{"epochs":3,"lr":0.2}"#);
        let back: Parameters = serde_json::from_str(r#"{"lr":0.2,"epochs":3}"#).unwrap();
        assert_eq!(back, parameters);
        let collected: Parameters = [("b".to_string(), 1.into()), ("a".to_string(), 2.into())]
            .into_iter()
            .collect();
        assert_eq!(collected.keys().collect::<Vec<_>>(), ["a", "b"]);
    }
}
