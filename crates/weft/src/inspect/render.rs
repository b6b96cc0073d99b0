//! Shared output helpers: tables, durations, times, JSON.

use chrono::{DateTime, Utc};
use comfy_table::{Table, presets};
use serde::Serialize;

/// A table with a header, for terminals.
pub(crate) fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_header(header.iter().map(|h| h.to_uppercase()));
    table
}

/// Appends `value` as pretty JSON.
pub(crate) fn json(out: &mut String, value: &impl Serialize) -> anyhow::Result<()> {
    out.push_str(&serde_json::to_string_pretty(value)?);
    out.push('\n');
    Ok(())
}

/// `2026-11-24 08:22:03`.
pub(crate) fn time(time: Option<DateTime<Utc>>) -> String {
    time.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

/// How long between two times, for people.
pub(crate) fn took(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> String {
    match (start, end) {
        (Some(start), Some(end)) => duration((end - start).to_std().unwrap_or_default()),
        (Some(_), None) => "running".into(),
        _ => "-".into(),
    }
}

/// `850µs`, `12ms`, `3.2s`, `4m05s`.
pub(crate) fn duration(duration: std::time::Duration) -> String {
    let micros = duration.as_micros();
    if micros < 1_000 {
        format!("{micros}µs")
    } else if micros < 1_000_000 {
        format!("{}ms", micros / 1_000)
    } else if micros < 60_000_000 {
        format!("{:.1}s", duration.as_secs_f64())
    } else {
        let seconds = duration.as_secs();
        format!("{}m{:02}s", seconds / 60, seconds % 60)
    }
}

/// The last segment of a Rust type path, keeping generic arguments readable.
pub(crate) fn short_type(name: &str) -> String {
    let mut out = String::new();
    let mut segment = String::new();
    for c in name.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            segment.push(c);
        } else {
            out.push_str(segment.rsplit("::").next().unwrap_or(&segment));
            segment.clear();
            out.push(c);
        }
    }
    out.push_str(segment.rsplit("::").next().unwrap_or(&segment));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_durations_read_well() {
        assert_eq!(short_type("alloc::vec::Vec<quickstart::Rows>"), "Vec<Rows>");
        assert_eq!(short_type("(f64, alloc::string::String)"), "(f64, String)");
        assert_eq!(duration(std::time::Duration::from_micros(850)), "850µs");
        assert_eq!(duration(std::time::Duration::from_millis(3200)), "3.2s");
        assert_eq!(duration(std::time::Duration::from_secs(245)), "4m05s");
    }
}
