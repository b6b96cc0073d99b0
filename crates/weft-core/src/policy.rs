//! Per-step policies: caching, retries and timeouts, and how settings from the step, the
//! pipeline and the run combine.
//!
//! Each level gives partial settings (every field optional); [`CacheSettings::or`] fills what
//! a level leaves unset from the next one, in the order step, pipeline, run; the result is
//! resolved into a complete policy with weft's defaults. The resolved policies are part of a
//! snapshot, so a run records exactly what applied to each invocation.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Caching settings as one level (step, pipeline or run) gives them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSettings {
    /// Whether steps are cached at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Whether the step's code hash is part of the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_code: Option<bool>,
    /// Whether the step's parameters are part of the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_parameters: Option<bool>,
    /// Whether inputs count by the content hash of their artifact versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_artifact_values: Option<bool>,
    /// Whether inputs count by the id of their artifact versions (when their content does
    /// not count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_artifact_ids: Option<bool>,
    /// Inputs left out of the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored_inputs: Option<Vec<String>>,
    /// Files whose content is part of the key (paths relative to the project root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_dependencies: Option<Vec<String>>,
    /// Environment variables whose values are part of the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// A registered key function whose result is part of the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_fn: Option<String>,
    /// How long a cached result may be reused, in milliseconds.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "optional_duration"
    )]
    pub expires_after: Option<Duration>,
}

impl CacheSettings {
    /// These settings, with every field left unset taken from `fallback`.
    pub fn or(&self, fallback: &CacheSettings) -> CacheSettings {
        CacheSettings {
            enabled: self.enabled.or(fallback.enabled),
            include_code: self.include_code.or(fallback.include_code),
            include_parameters: self.include_parameters.or(fallback.include_parameters),
            include_artifact_values: self
                .include_artifact_values
                .or(fallback.include_artifact_values),
            include_artifact_ids: self.include_artifact_ids.or(fallback.include_artifact_ids),
            ignored_inputs: self
                .ignored_inputs
                .clone()
                .or_else(|| fallback.ignored_inputs.clone()),
            file_dependencies: self
                .file_dependencies
                .clone()
                .or_else(|| fallback.file_dependencies.clone()),
            env: self.env.clone().or_else(|| fallback.env.clone()),
            key_fn: self.key_fn.clone().or_else(|| fallback.key_fn.clone()),
            expires_after: self.expires_after.or(fallback.expires_after),
        }
    }

    /// The complete policy: unset fields take weft's defaults (caching on; code, parameters
    /// and input contents in the key; nothing ignored; no expiry).
    pub fn resolve(&self) -> CachePolicy {
        let sorted = |list: &Option<Vec<String>>| {
            let mut list = list.clone().unwrap_or_default();
            list.sort();
            list.dedup();
            list
        };
        CachePolicy {
            enabled: self.enabled.unwrap_or(true),
            include_code: self.include_code.unwrap_or(true),
            include_parameters: self.include_parameters.unwrap_or(true),
            include_artifact_values: self.include_artifact_values.unwrap_or(true),
            include_artifact_ids: self.include_artifact_ids.unwrap_or(true),
            ignored_inputs: sorted(&self.ignored_inputs),
            file_dependencies: sorted(&self.file_dependencies),
            env: sorted(&self.env),
            key_fn: self.key_fn.clone(),
            expires_after: self.expires_after,
        }
    }
}

/// The caching policy of one invocation, complete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachePolicy {
    /// Whether the invocation is cached.
    pub enabled: bool,
    /// Whether the code hash is part of the key.
    pub include_code: bool,
    /// Whether the parameters are part of the key.
    pub include_parameters: bool,
    /// Whether inputs count by content hash.
    pub include_artifact_values: bool,
    /// Whether inputs count by version id when their content does not.
    pub include_artifact_ids: bool,
    /// Inputs left out of the key, sorted.
    pub ignored_inputs: Vec<String>,
    /// Files whose content is part of the key, sorted.
    pub file_dependencies: Vec<String>,
    /// Environment variables part of the key, sorted.
    pub env: Vec<String>,
    /// A registered key function.
    pub key_fn: Option<String>,
    /// How long a result may be reused.
    #[serde(with = "optional_duration")]
    pub expires_after: Option<Duration>,
}

impl Default for CachePolicy {
    fn default() -> Self {
        CacheSettings::default().resolve()
    }
}

/// Retry settings as one level (step or pipeline) gives them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    /// Attempts in all, the first included (1: no retry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Delay before the second attempt, in milliseconds.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "optional_duration"
    )]
    pub delay: Option<Duration>,
    /// Factor by which the delay grows after each attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<f64>,
    /// Longest delay, in milliseconds.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "optional_duration"
    )]
    pub max_delay: Option<Duration>,
    /// Whether delays are randomised (between half and all of the computed delay), so that
    /// many failing steps do not retry in lockstep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<bool>,
}

impl RetrySettings {
    /// These settings, with every field left unset taken from `fallback`.
    pub fn or(&self, fallback: &RetrySettings) -> RetrySettings {
        RetrySettings {
            max_attempts: self.max_attempts.or(fallback.max_attempts),
            delay: self.delay.or(fallback.delay),
            backoff: self.backoff.or(fallback.backoff),
            max_delay: self.max_delay.or(fallback.max_delay),
            jitter: self.jitter.or(fallback.jitter),
        }
    }

    /// The complete policy: one attempt unless said otherwise; 1 s delay doubling up to 5 min,
    /// with jitter.
    pub fn resolve(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts.unwrap_or(1).max(1),
            delay: self.delay.unwrap_or(Duration::from_secs(1)),
            backoff: self.backoff.unwrap_or(2.0).max(1.0),
            max_delay: self.max_delay.unwrap_or(Duration::from_secs(300)),
            jitter: self.jitter.unwrap_or(true),
        }
    }
}

/// The retry policy of one invocation, complete.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Delay before the second attempt.
    #[serde(with = "duration")]
    pub delay: Duration,
    /// Growth factor of the delay.
    pub backoff: f64,
    /// Longest delay.
    #[serde(with = "duration")]
    pub max_delay: Duration,
    /// Whether delays are randomised.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetrySettings::default().resolve()
    }
}

impl RetryPolicy {
    /// Whether attempt `attempt` (1 for the first) may be followed by another.
    pub fn allows_another(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }

    /// How long to wait before attempt `next` (2 for the first retry). `random` is a number in
    /// `[0, 1)`; with jitter the delay is between half and all of the computed one.
    pub fn delay_before(&self, next: u32, random: f64) -> Duration {
        let exponent = next.saturating_sub(2).min(64) as i32;
        let computed = self.delay.as_secs_f64() * self.backoff.powi(exponent);
        let capped = computed.min(self.max_delay.as_secs_f64());
        let factor = if self.jitter {
            0.5 + 0.5 * random.clamp(0.0, 1.0)
        } else {
            1.0
        };
        Duration::from_secs_f64((capped * factor).max(0.0))
    }
}

/// Parses a duration written for people: `500ms`, `2s`, `10m`, `1h 30m`, `7d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|error| {
        format!("`{text}` is not a duration ({error}); write e.g. 500ms, 2s, 10m, 1h")
    })
}

/// Durations as milliseconds in JSON.
pub(crate) mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        value: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(value.as_millis() as u64)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(deserializer)?))
    }
}

/// Optional durations: milliseconds in JSON, or text (`"10m"`) in configuration files.
pub(crate) mod optional_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => serializer.serialize_some(&(value.as_millis() as u64)),
            None => serializer.serialize_none(),
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Millis(u64),
        Text(String),
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        match Option::<Written>::deserialize(deserializer)? {
            None => Ok(None),
            Some(Written::Millis(millis)) => Ok(Some(Duration::from_millis(millis))),
            Some(Written::Text(text)) => super::parse_duration(&text)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Optional durations as milliseconds (for snapshot fields).
pub(crate) use optional_duration as millis;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_combine_field_by_field() {
        let step = CacheSettings {
            include_code: Some(false),
            ..Default::default()
        };
        let pipeline = CacheSettings {
            enabled: Some(false),
            include_code: Some(true),
            ..Default::default()
        };
        let run = CacheSettings {
            enabled: Some(true),
            expires_after: Some(Duration::from_secs(60)),
            ..Default::default()
        };
        let policy = step.or(&pipeline).or(&run).resolve();
        assert!(
            !policy.enabled,
            "the pipeline's setting wins over the run's"
        );
        assert!(
            !policy.include_code,
            "the step's setting wins over the pipeline's"
        );
        assert_eq!(policy.expires_after, Some(Duration::from_secs(60)));
        assert!(
            CacheSettings::default().resolve().enabled,
            "caching is on by default"
        );
    }

    #[test]
    fn retry_delays_grow_exponentially_with_a_cap_and_jitter() {
        let policy = RetrySettings {
            max_attempts: Some(5),
            delay: Some(Duration::from_secs(2)),
            backoff: Some(3.0),
            max_delay: Some(Duration::from_secs(10)),
            jitter: Some(false),
        }
        .resolve();
        let delays: Vec<u64> = (2..=5)
            .map(|next| policy.delay_before(next, 0.9).as_secs())
            .collect();
        assert_eq!(delays, [2, 6, 10, 10]);
        assert!(policy.allows_another(4) && !policy.allows_another(5));
        let jittered = RetryPolicy {
            jitter: true,
            ..policy
        };
        assert_eq!(jittered.delay_before(2, 0.0), Duration::from_secs(1));
        assert_eq!(jittered.delay_before(2, 0.5), Duration::from_millis(1500));
        assert_eq!(
            RetryPolicy::default().max_attempts,
            1,
            "no retry unless asked"
        );
    }

    #[test]
    fn durations_are_read_as_text_or_milliseconds() {
        let settings: CacheSettings =
            serde_json::from_str(r#"{"expires_after": "1h 30m"}"#).unwrap();
        assert_eq!(settings.expires_after, Some(Duration::from_secs(5400)));
        let settings: CacheSettings = serde_json::from_str(r#"{"expires_after": 250}"#).unwrap();
        assert_eq!(settings.expires_after, Some(Duration::from_millis(250)));
        assert!(serde_json::from_str::<CacheSettings>(r#"{"expires_after": "soon"}"#).is_err());
        assert!(serde_json::from_str::<CacheSettings>(r#"{"enabld": true}"#).is_err());
        assert!(
            parse_duration("10 parsecs")
                .unwrap_err()
                .contains("not a duration")
        );
    }
}
