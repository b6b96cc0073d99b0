//! Conditions on recorded metadata (`accuracy>=0.9`, `dtype=float64`): how versions are
//! picked by what their materializer or a step said about them.

use std::str::FromStr;

use serde_json::Value;

/// How a condition compares the recorded value with its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Comparison {
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

/// A condition on one metadata key, written `key=value`, `key!=value`, `key<n`, `key<=n`,
/// `key>n` or `key>=n`. Values are JSON where they parse as JSON (`rows=10`,
/// `shape=[2,3]`, `flag=true`) and text otherwise (`dtype=float64`); numbers compare as
/// numbers (`10` equals `10.0`). A version without the key never matches.
///
/// ```
/// let condition: weft::MetadataCondition = "accuracy>=0.9".parse().unwrap();
/// assert!(condition.matches(Some(&serde_json::json!(0.95))));
/// assert!(!condition.matches(Some(&serde_json::json!("high"))));
/// assert!(!condition.matches(None));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct MetadataCondition {
    key: String,
    comparison: Comparison,
    value: Value,
}

impl MetadataCondition {
    /// The key it looks at.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether a recorded value (`None`: the key is not recorded) meets the condition.
    pub fn matches(&self, recorded: Option<&Value>) -> bool {
        let Some(recorded) = recorded else {
            return false;
        };
        let numbers = recorded.as_f64().zip(self.value.as_f64());
        match self.comparison {
            Comparison::Equal => self.equals(recorded),
            Comparison::NotEqual => !self.equals(recorded),
            Comparison::Less => numbers.is_some_and(|(a, b)| a < b),
            Comparison::LessOrEqual => numbers.is_some_and(|(a, b)| a <= b),
            Comparison::Greater => numbers.is_some_and(|(a, b)| a > b),
            Comparison::GreaterOrEqual => numbers.is_some_and(|(a, b)| a >= b),
        }
    }

    fn equals(&self, recorded: &Value) -> bool {
        match (recorded.as_f64(), self.value.as_f64()) {
            (Some(a), Some(b)) => a == b,
            _ => recorded == &self.value,
        }
    }
}

impl FromStr for MetadataCondition {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let usage = || {
            format!(
                "`{text}` is not a metadata condition: write KEY=VALUE, KEY!=VALUE, KEY<N, \
                 KEY<=N, KEY>N or KEY>=N"
            )
        };
        let at = text.find(['=', '!', '<', '>']).ok_or_else(usage)?;
        let (key, rest) = text.split_at(at);
        let (comparison, value) = [
            ("!=", Comparison::NotEqual),
            ("<=", Comparison::LessOrEqual),
            (">=", Comparison::GreaterOrEqual),
            ("=", Comparison::Equal),
            ("<", Comparison::Less),
            (">", Comparison::Greater),
        ]
        .into_iter()
        .find_map(|(operator, comparison)| Some((comparison, rest.strip_prefix(operator)?)))
        .ok_or_else(usage)?;
        let key = key.trim();
        if key.is_empty() {
            return Err(usage());
        }
        let value = value.trim();
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::from(value));
        let ordered = !matches!(comparison, Comparison::Equal | Comparison::NotEqual);
        if ordered && !value.is_number() {
            return Err(format!(
                "`{text}`: `<`, `<=`, `>` and `>=` compare numbers, and `{value}` is not one"
            ));
        }
        Ok(Self {
            key: key.to_owned(),
            comparison,
            value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(condition: &str, recorded: Value) -> bool {
        condition
            .parse::<MetadataCondition>()
            .unwrap()
            .matches(Some(&recorded))
    }

    #[test]
    fn conditions_compare_numbers_as_numbers_and_the_rest_as_json_or_text() {
        assert!(check("rows=10", json!(10)));
        assert!(check("rows=10", json!(10.0)));
        assert!(!check("rows!=10", json!(10)));
        assert!(check("rows>=10", json!(10)) && !check("rows>10", json!(10)));
        assert!(check("mean<0.5", json!(0.25)) && !check("mean<=0.5", json!(0.75)));
        assert!(check("dtype=float64", json!("float64")));
        assert!(check("dtype = float64", json!("float64")));
        assert!(!check("dtype=float64", json!("float32")));
        assert!(check("shape=[2, 3]", json!([2, 3])));
        assert!(check("flag=true", json!(true)));
        // A number compared with text is never less, greater or equal.
        assert!(!check("rows>1", json!("many")) && !check("rows=1", json!("1")));
        let condition: MetadataCondition = "rows!=1".parse().unwrap();
        assert!(!condition.matches(None), "a missing key never matches");
    }

    #[test]
    fn malformed_conditions_say_how_to_write_one() {
        for bad in ["rows", "=3", "  >3", "rows<many", "rows>=", "rows!3"] {
            let error = bad.parse::<MetadataCondition>().unwrap_err();
            assert!(error.contains(&format!("`{bad}`")), "{bad}: {error}");
        }
    }
}
