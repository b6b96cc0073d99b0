//! [`ByName`]: a small map by argument name, and [`Parameters`], the plain values passed
//! to one step call.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A map from names to `V` kept as a vector sorted by name: what a step call holds per
/// argument. A `BTreeMap` with one entry takes a node of eleven slots (600 bytes for
/// parameters, 900 for inputs); a map of 100,000 calls keeps one per call, so this takes the
/// entries alone. It encodes as a map (a JSON object), like a `BTreeMap` does.
///
/// Names written in code (a step's arguments) are borrowed, not copied: each call of a map
/// would otherwise hold a copy of every argument's name.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ByName<V>(Vec<(Name, V)>);

/// An argument's name: borrowed when it comes from code, owned when read from a file.
pub type Name = std::borrow::Cow<'static, str>;

/// The plain values passed to one step call, by argument name, in name order.
pub type Parameters = ByName<Value>;

impl<V> Default for ByName<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<V> ByName<V> {
    /// Nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Nothing yet, with room for `count` names: a map's 100,000 calls each keep theirs, so
    /// an exact size spares the slack a growing list leaves behind.
    pub fn with_capacity(count: usize) -> Self {
        Self(Vec::with_capacity(count))
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(key, _)| (**key).cmp(name))
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&V> {
        self.position(name).ok().map(|at| &self.0[at].1)
    }

    /// The value of `name`, to change.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut V> {
        self.position(name).ok().map(|at| &mut self.0[at].1)
    }

    /// Whether `name` has a value.
    pub fn contains_key(&self, name: &str) -> bool {
        self.position(name).is_ok()
    }

    /// Sets `name` to `value`; returns the value it replaces.
    pub fn insert(&mut self, name: impl Into<Name>, value: V) -> Option<V> {
        let name = name.into();
        match self.position(&name) {
            Ok(at) => Some(std::mem::replace(&mut self.0[at].1, value)),
            Err(at) => {
                self.0.insert(at, (name, value));
                None
            }
        }
    }

    /// Removes `name`; returns its value.
    pub fn remove(&mut self, name: &str) -> Option<V> {
        self.position(name).ok().map(|at| self.0.remove(at).1)
    }

    /// The names and values, in name order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&Name, &V)> + DoubleEndedIterator {
        self.0.iter().map(|(name, value)| (name, value))
    }

    /// The names, in order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &Name> + DoubleEndedIterator {
        self.0.iter().map(|(name, _)| name)
    }

    /// The values, in name order.
    pub fn values(&self) -> impl ExactSizeIterator<Item = &V> + DoubleEndedIterator {
        self.0.iter().map(|(_, value)| value)
    }

    /// The values, in name order, to change.
    pub fn values_mut(&mut self) -> impl ExactSizeIterator<Item = &mut V> {
        self.0.iter_mut().map(|(_, value)| value)
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Drops spare capacity: kept per call, it should hold its entries only.
    pub fn shrink_to_fit(&mut self) {
        self.0.shrink_to_fit();
    }
}

impl Parameters {
    /// As a JSON object.
    pub fn to_json(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(name, value)| (name.to_string(), value.clone()))
                .collect(),
        )
    }
}

impl<V> std::ops::Index<&str> for ByName<V> {
    type Output = V;

    fn index(&self, name: &str) -> &V {
        self.get(name)
            .unwrap_or_else(|| panic!("no value named `{name}`"))
    }
}

impl<K: Into<Name>, V> FromIterator<(K, V)> for ByName<V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
        // Through a map: sorted, and a later value of a name wins, as with a map.
        let sorted: BTreeMap<Name, V> = entries
            .into_iter()
            .map(|(name, value)| (name.into(), value))
            .collect();
        Self(sorted.into_iter().collect())
    }
}

impl<V> From<BTreeMap<String, V>> for ByName<V> {
    fn from(map: BTreeMap<String, V>) -> Self {
        Self(
            map.into_iter()
                .map(|(name, value)| (name.into(), value))
                .collect(),
        )
    }
}

impl<V> IntoIterator for ByName<V> {
    type Item = (Name, V);
    type IntoIter = std::vec::IntoIter<(Name, V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a, V> IntoIterator for &'a ByName<V> {
    type Item = (&'a Name, &'a V);
    type IntoIter =
        std::iter::Map<std::slice::Iter<'a, (Name, V)>, fn(&'a (Name, V)) -> (&'a Name, &'a V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(name, value)| (name, value))
    }
}

impl<V: Serialize> Serialize for ByName<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for ByName<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeMap::<String, V>::deserialize(deserializer).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_stay_sorted_and_encode_as_an_object() {
        let mut parameters = Parameters::new();
        assert_eq!(parameters.insert("lr", 0.1.into()), None);
        parameters.insert("epochs", 3.into());
        assert_eq!(parameters.insert("lr", 0.2.into()), Some(0.1.into()));
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
