//! Items of a stored collection, read one at a time: a map over a step's `Vec<T>` output
//! gives each invocation one item, which it loads without the others.
//!
//! The first item read of a collection in a process reads the collection whole, once: its
//! hash is checked and its format says where each item lies ([`ItemFormat::find_items`]).
//! Every item is then read alone from where it lies, after the cheap check that the file is
//! still the one recorded (its size and entity tag, as [`ArtifactStore::check`] does). A
//! format that cannot say where its items lie (or a version in a format its type used
//! before) is loaded whole for each item, as any input is.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::io::ArtifactReader;
use crate::materializer::{Artifact, Materializer};
use crate::{ArtifactStore, BoxError, Error, Result, StoredArtifact};

/// A format of collections (`Vec<Item>`) that can tell where each stored item lies, so that
/// one item is read without the others. Both methods have defaults for formats that cannot:
/// their items are taken from a whole load.
pub trait ItemFormat<Item>: Materializer<Vec<Item>> {
    /// Reads a stored collection (the caller reads it to its end and checks its hash) and
    /// says where each item lies; `None`: this format cannot.
    fn find_items(reader: &mut ArtifactReader<'_>) -> Result<Option<ItemSpans>> {
        let _ = reader;
        Ok(None)
    }

    /// Decodes one item from the bytes [`find_items`](Self::find_items) placed it at.
    fn decode_item(bytes: &[u8]) -> std::result::Result<Item, BoxError> {
        let _ = bytes;
        Err("this format reads no single items".into())
    }
}

/// Where the items of a stored collection lie: in which file, and at which bytes.
#[derive(Debug)]
pub struct ItemSpans {
    file: String,
    spans: Spans,
}

#[derive(Debug)]
enum Spans {
    /// Items of one size, one after the other (a 1-D `.npy` array, raw bytes).
    Even { start: u64, size: u64, count: u64 },
    /// Items of any size: the start and end of each (a JSON array).
    Listed(Vec<(u64, u64)>),
}

impl ItemSpans {
    /// `count` items of `size` bytes each, the first at byte `start` of `file`.
    pub fn even(file: &str, start: u64, size: u64, count: u64) -> Self {
        Self {
            file: file.into(),
            spans: Spans::Even { start, size, count },
        }
    }

    /// Items at the given `(start, end)` bytes of `file`, in order.
    pub fn listed(file: &str, spans: Vec<(u64, u64)>) -> Self {
        Self {
            file: file.into(),
            spans: Spans::Listed(spans),
        }
    }

    /// How many items there are.
    pub fn len(&self) -> u64 {
        match &self.spans {
            Spans::Even { count, .. } => *count,
            Spans::Listed(spans) => spans.len() as u64,
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where item `index` starts, and its length.
    fn span(&self, index: u64) -> Option<(u64, u64)> {
        match &self.spans {
            Spans::Even { start, size, count } => {
                (index < *count).then(|| (start + index * size, *size))
            }
            Spans::Listed(spans) => {
                let &(start, end) = spans.get(usize::try_from(index).ok()?)?;
                Some((start, end - start))
            }
        }
    }
}

/// Collections most recently mapped over in this process, by version and item type, with
/// where their items lie. A map of many items reads its collection whole once, whichever
/// invocation asks first; the others wait for it rather than read it again.
#[derive(Default)]
pub(crate) struct SpanCache {
    entries: Mutex<VecDeque<(SpanKey, SpanEntry)>>,
}

/// A version's location and the collection type it is read as.
type SpanKey = (String, &'static str);
type SpanKeyRef<'a> = (&'a str, &'static str);
/// Where a collection's items lie, once found (the lock is held while they are found).
type SpanEntry = Arc<Mutex<Option<Arc<ItemSpans>>>>;

/// Collections whose item places are kept; each costs 16 bytes per item at most.
const KEPT_COLLECTIONS: usize = 8;

impl SpanCache {
    fn entry(&self, (uri, requested): SpanKeyRef<'_>) -> SpanEntry {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let known = entries
            .iter()
            .find(|((known, as_type), _)| known == uri && *as_type == requested);
        if let Some((_, entry)) = known {
            return entry.clone();
        }
        if entries.len() == KEPT_COLLECTIONS {
            entries.pop_front();
        }
        let entry = Arc::default();
        entries.push_back(((uri.to_owned(), requested), Arc::clone(&entry)));
        entry
    }
}

type FormatOf<T> = <Vec<T> as Artifact>::Materializer;

impl ArtifactStore {
    /// How many items a stored collection holds. Where its format says where its items lie,
    /// this reads it once (and checks its hash) without building the collection.
    pub fn item_count<T>(&self, stored: &StoredArtifact) -> Result<u64>
    where
        Vec<T>: Artifact,
        FormatOf<T>: ItemFormat<T>,
    {
        match self.spans_of::<T>(stored)? {
            Some(spans) => Ok(spans.len()),
            None => Ok(self.load::<Vec<T>>(stored)?.len() as u64),
        }
    }

    /// Loads item `index` of a stored collection, reading only that item where the format
    /// says where it lies ([`ItemFormat::find_items`]): the first item read of a collection in
    /// a process checks the whole file's hash once, and each later one checks only that the
    /// file is still the one recorded (its size and entity tag).
    pub fn load_item<T>(&self, stored: &StoredArtifact, index: u64) -> Result<T>
    where
        Vec<T>: Artifact,
        FormatOf<T>: ItemFormat<T>,
    {
        let no_item = |count: u64| Error::NoItem {
            uri: stored.uri.clone(),
            index,
            count,
        };
        let Some(spans) = self.spans_of::<T>(stored)? else {
            let items = self.load::<Vec<T>>(stored)?;
            let count = items.len() as u64;
            let index = usize::try_from(index).unwrap_or(usize::MAX);
            return items.into_iter().nth(index).ok_or_else(|| no_item(count));
        };
        let (start, length) = spans.span(index).ok_or_else(|| no_item(spans.len()))?;
        let bytes = self.read_span(stored, &spans.file, start, length)?;
        FormatOf::<T>::decode_item(&bytes).map_err(|source| Error::Decode {
            data_type: std::any::type_name::<T>(),
            path: format!("{}{} (item {index})", stored.uri, spans.file),
            materializer: <FormatOf<T> as Materializer<Vec<T>>>::ID,
            source,
        })
    }

    /// Where the items of `stored` lie, read as `Vec<T>`: found once per process; `None`
    /// when its format cannot say.
    fn spans_of<T>(&self, stored: &StoredArtifact) -> Result<Option<Arc<ItemSpans>>>
    where
        Vec<T>: Artifact,
        FormatOf<T>: ItemFormat<T>,
    {
        // Checks that it holds a `Vec<T>`, in a format version this build reads.
        let (materializer, _) = self.loader::<Vec<T>>(stored)?;
        if materializer != <FormatOf<T> as Materializer<Vec<T>>>::ID {
            // A format the type used before: it keeps no item places.
            return Ok(None);
        }
        let requested = std::any::type_name::<Vec<T>>();
        let entry = self.item_spans().entry((&stored.uri, requested));
        let mut found = entry.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(spans) = &*found {
            return Ok(Some(Arc::clone(spans)));
        }
        let spans =
            self.read_version(stored, (materializer, requested), FormatOf::<T>::find_items)?;
        let Some(spans) = spans else {
            return Ok(None);
        };
        let spans = Arc::new(spans);
        *found = Some(Arc::clone(&spans));
        Ok(Some(spans))
    }
}

/// Where the items of the JSON array in `json` lie: the start and end of each, found by
/// following strings and nesting only (each item is decoded by serde when it is read).
pub(crate) fn json_array_spans(
    mut json: impl std::io::BufRead,
) -> std::result::Result<Vec<(u64, u64)>, BoxError> {
    #[derive(PartialEq)]
    enum State {
        /// Before the opening `[`.
        Start,
        /// After `[` or `,`: an item (or, after `[`, the closing `]`) comes next.
        Item { first: bool },
        /// Inside an item, `depth` brackets deep, in a string or not.
        InItem {
            depth: u32,
            string: bool,
            escape: bool,
        },
        /// After an item: `,` or `]` comes next.
        After,
        /// After the closing `]`.
        End,
    }
    let mut state = State::Start;
    let mut spans = Vec::new();
    let mut start = 0u64;
    let mut at = 0u64;
    loop {
        let chunk = json.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        let length = chunk.len();
        for &byte in chunk {
            let blank = matches!(byte, b' ' | b'\n' | b'\r' | b'\t');
            state = match state {
                State::Start if blank => State::Start,
                State::Start if byte == b'[' => State::Item { first: true },
                State::Start => return Err("the file does not hold a JSON array".into()),
                State::Item { first } if blank => State::Item { first },
                State::Item { first: true } if byte == b']' => State::End,
                State::Item { .. } if matches!(byte, b',' | b']') => {
                    return Err(format!("byte {at}: an item of the array is missing").into());
                }
                State::Item { .. } => {
                    start = at;
                    let (depth, string) = match byte {
                        b'[' | b'{' => (1, false),
                        b'"' => (0, true),
                        _ => (0, false),
                    };
                    State::InItem {
                        depth,
                        string,
                        escape: false,
                    }
                }
                State::InItem {
                    depth,
                    string: true,
                    escape,
                } => State::InItem {
                    depth,
                    string: escape || byte != b'"',
                    escape: !escape && byte == b'\\',
                },
                State::InItem { depth: 0, .. } if blank || matches!(byte, b',' | b']') => {
                    spans.push((start, at));
                    match byte {
                        b',' => State::Item { first: false },
                        b']' => State::End,
                        _ => State::After,
                    }
                }
                State::InItem { depth, .. } => match byte {
                    b'"' => State::InItem {
                        depth,
                        string: true,
                        escape: false,
                    },
                    b'[' | b'{' => State::InItem {
                        depth: depth + 1,
                        string: false,
                        escape: false,
                    },
                    b']' | b'}' if depth == 0 => {
                        return Err(format!("byte {at}: a bracket closes nothing").into());
                    }
                    b']' | b'}' => State::InItem {
                        depth: depth - 1,
                        string: false,
                        escape: false,
                    },
                    _ => State::InItem {
                        depth,
                        string: false,
                        escape: false,
                    },
                },
                State::After if blank => State::After,
                State::After if byte == b',' => State::Item { first: false },
                State::After if byte == b']' => State::End,
                State::After => {
                    return Err(format!("byte {at}: `,` or `]` expected after an item").into());
                }
                State::End if blank => State::End,
                State::End => return Err(format!("byte {at}: more follows the array").into()),
            };
            at += 1;
        }
        json.consume(length);
    }
    if state == State::End {
        Ok(spans)
    } else {
        Err("the JSON array is cut short".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(json: &str) -> std::result::Result<Vec<&str>, String> {
        json_array_spans(json.as_bytes())
            .map(|spans| {
                spans
                    .into_iter()
                    .map(|(start, end)| &json[start as usize..end as usize])
                    .collect()
            })
            .map_err(|e| e.to_string())
    }

    #[test]
    fn items_of_a_json_array_are_found_whatever_they_hold() {
        assert_eq!(spans("[]").unwrap(), Vec::<&str>::new());
        assert_eq!(spans(" [ ] \n").unwrap(), Vec::<&str>::new());
        assert_eq!(
            spans("[1,-2.5e3,true,null]").unwrap(),
            ["1", "-2.5e3", "true", "null"]
        );
        assert_eq!(
            spans(r#"["a,]", "b\"],[", "c\\", {"k":[1,{"x":"]"}]},[[],[1]]]"#).unwrap(),
            [
                r#""a,]""#,
                r#""b\"],[""#,
                r#""c\\""#,
                r#"{"k":[1,{"x":"]"}]}"#,
                "[[],[1]]"
            ]
        );
        assert_eq!(spans("[ 1 , \"x\"\n ]").unwrap(), ["1", "\"x\""]);
    }

    #[test]
    fn what_is_not_a_json_array_is_refused() {
        for (json, reason) in [
            ("", "cut short"),
            ("{\"a\":1}", "does not hold a JSON array"),
            ("[1,2", "cut short"),
            ("[1,]", "missing"),
            ("[,1]", "missing"),
            ("[1 2]", "expected"),
            ("[1]]", "more follows"),
            ("[1]x", "more follows"),
            ("[[1]", "cut short"),
            ("[1}]", "closes nothing"),
            ("[\"a]", "cut short"),
        ] {
            let error = spans(json).expect_err(json);
            assert!(error.contains(reason), "{json}: {error}");
        }
    }
}
