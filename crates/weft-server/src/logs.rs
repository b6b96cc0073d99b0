//! Pages of a step's log, read as a stream: a page past line 900,000 of a 64 MiB log skips
//! lines without decoding them, and a search decodes one line at a time, so the server's
//! memory does not grow with the log.

use std::io::BufRead;

use serde::Serialize;
use serde_json::{Map, Value};

/// Levels, most severe first.
const LEVELS: [&str; 5] = ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"];

/// What part of a log to read.
#[derive(Clone, Debug, Default)]
pub(crate) struct LogQuery {
    /// The first line to consider (0-based).
    pub(crate) offset: u64,
    /// At most this many lines in the page.
    pub(crate) limit: usize,
    /// Only lines at this level or more severe.
    pub(crate) level: Option<usize>,
    /// Only lines whose message, target or fields contain this text (any case).
    pub(crate) text: Option<String>,
}

/// A level name as a rank (0 = ERROR), for `level=`.
pub(crate) fn level_rank(name: &str) -> Option<usize> {
    LEVELS
        .iter()
        .position(|level| level.eq_ignore_ascii_case(name))
}

/// One line of a log.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct LogLine {
    /// Its number in the log (0-based): pass `line + 1` as `offset` to read on.
    pub(crate) line: u64,
    pub(crate) time: String,
    pub(crate) level: String,
    pub(crate) target: String,
    pub(crate) message: String,
    pub(crate) fields: Map<String, Value>,
}

/// A page of a log.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct LogPage {
    pub(crate) lines: Vec<LogLine>,
    /// Where the next page starts; absent once the log's end was reached.
    pub(crate) next_offset: Option<u64>,
}

/// Reads one page of `log` (JSON lines, as steps' logs are stored).
pub(crate) fn page(mut log: impl BufRead, query: &LogQuery) -> std::io::Result<LogPage> {
    let mut number = 0u64;
    // Skip to the offset by counting newlines, without decoding.
    while number < query.offset {
        let buffer = log.fill_buf()?;
        if buffer.is_empty() {
            return Ok(LogPage {
                lines: Vec::new(),
                next_offset: None,
            });
        }
        let wanted = (query.offset - number) as usize;
        let mut consumed = buffer.len();
        let mut seen = 0;
        for (at, byte) in buffer.iter().enumerate() {
            if *byte == b'\n' {
                seen += 1;
                if seen == wanted {
                    consumed = at + 1;
                    break;
                }
            }
        }
        number += seen as u64;
        log.consume(consumed);
    }
    let needle = query.text.as_ref().map(|text| text.to_lowercase());
    let mut lines = Vec::new();
    let mut raw = Vec::new();
    loop {
        raw.clear();
        if log.read_until(b'\n', &mut raw)? == 0 {
            return Ok(LogPage {
                lines,
                next_offset: None,
            });
        }
        let at = number;
        number += 1;
        let text = String::from_utf8_lossy(&raw);
        let text = text.trim_end();
        if text.is_empty() {
            continue;
        }
        let line = decode(at, text);
        let level_ok = query
            .level
            .is_none_or(|most| level_rank(&line.level).is_some_and(|rank| rank <= most));
        let text_ok = needle.as_ref().is_none_or(|needle| {
            line.message.to_lowercase().contains(needle)
                || line.target.to_lowercase().contains(needle)
                || (!line.fields.is_empty()
                    && serde_json::to_string(&line.fields)
                        .is_ok_and(|fields| fields.to_lowercase().contains(needle)))
        });
        if level_ok && text_ok {
            lines.push(line);
            if lines.len() == query.limit {
                return Ok(LogPage {
                    lines,
                    next_offset: Some(number),
                });
            }
        }
    }
}

/// Decodes one stored line; a line that is not a record is kept as a message of its own.
fn decode(line: u64, text: &str) -> LogLine {
    #[derive(serde::Deserialize)]
    struct Stored {
        #[serde(default)]
        time: String,
        #[serde(default)]
        level: String,
        #[serde(default)]
        target: String,
        #[serde(default)]
        message: String,
        #[serde(default)]
        fields: Map<String, Value>,
    }
    match serde_json::from_str::<Stored>(text) {
        Ok(stored) => LogLine {
            line,
            time: stored.time,
            level: stored.level,
            target: stored.target,
            message: stored.message,
            fields: stored.fields,
        },
        Err(_) => LogLine {
            line,
            time: String::new(),
            level: "INFO".into(),
            target: String::new(),
            message: text.to_owned(),
            fields: Map::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(lines: usize) -> Vec<u8> {
        let mut text = String::new();
        for i in 0..lines {
            let level = if i % 10 == 0 { "WARN" } else { "INFO" };
            text.push_str(&format!(
                "{{\"time\":\"t{i}\",\"level\":\"{level}\",\"target\":\"app\",\"message\":\"line {i}\",\"fields\":{{}}}}\n"
            ));
        }
        text.into_bytes()
    }

    #[test]
    fn pages_follow_each_other() {
        let bytes = log(25);
        let query = LogQuery {
            limit: 10,
            ..Default::default()
        };
        let first = page(&bytes[..], &query).unwrap();
        assert_eq!(first.lines.len(), 10);
        assert_eq!(first.next_offset, Some(10));
        let last = page(
            &bytes[..],
            &LogQuery {
                offset: 20,
                ..query.clone()
            },
        )
        .unwrap();
        assert_eq!(
            last.lines.iter().map(|l| l.line).collect::<Vec<_>>(),
            (20..25).collect::<Vec<_>>()
        );
        assert_eq!(last.next_offset, None);
        let past = page(
            &bytes[..],
            &LogQuery {
                offset: 99,
                ..query
            },
        )
        .unwrap();
        assert!(past.lines.is_empty() && past.next_offset.is_none());
    }

    #[test]
    fn level_and_text_filter_lines() {
        let bytes = log(100);
        let warnings = page(
            &bytes[..],
            &LogQuery {
                limit: 100,
                level: level_rank("warn"),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(warnings.lines.len(), 10);
        assert!(warnings.lines.iter().all(|l| l.level == "WARN"));
        let found = page(
            &bytes[..],
            &LogQuery {
                limit: 100,
                text: Some("LINE 7".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            found.lines.iter().map(|l| l.line).collect::<Vec<_>>(),
            [7, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79]
        );
    }

    #[test]
    fn lines_that_are_not_records_are_kept_as_they_are() {
        let page = page(
            &b"not json <script>\n\n{\"level\":\"ERROR\",\"message\":\"m\"}\n"[..],
            &LogQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(page.lines.len(), 2);
        assert_eq!(page.lines[0].message, "not json <script>");
        assert_eq!(
            (page.lines[1].line, page.lines[1].level.as_str()),
            (2, "ERROR")
        );
    }
}
