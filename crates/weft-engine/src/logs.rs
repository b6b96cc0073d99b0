//! Per-step log capture.
//!
//! Every step body runs with [`dispatch`] as its thread's default `tracing` dispatcher and a
//! thread-local buffer for its records, so records are attributed by thread: two steps running
//! at once never see each other's lines. `log` crate records reach it through `tracing-log`.
//! The same dispatcher also prints to stderr in pipeline binaries (filtered by `WEFT_LOG`,
//! default `info`), so a user sees step output whether or not they installed a subscriber of
//! their own.
//!
//! A step's records are stored as JSON lines (one object per record: `time`, `level`,
//! `target`, `message`, `fields`) in the artifact store at `logs/<run>/<step run>.jsonl`.
//! Records a step emits from threads it spawns itself are not captured.
//!
//! While the step runs, a local artifact store also holds a live copy at
//! `logs/<run>/<step run>.live.jsonl` ([`live_path`]), appended to every
//! [`LIVE_FLUSH`] by a background thread, so that `weft logs --follow` can show records as
//! they come; it is removed once the log is stored.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// Past this size, further records of a step are dropped (and the drop is noted).
const MAX_LOG_BYTES: usize = 64 * 1024 * 1024;

/// The log of one step run, as JSON lines.
#[derive(Debug, Default)]
pub struct StepLog {
    /// The records, one JSON object per line.
    pub lines: Vec<u8>,
    /// How many records were kept.
    pub records: usize,
    /// How many were dropped because the log was too large.
    pub dropped: usize,
}

thread_local! {
    static SINK: RefCell<Option<StepLog>> = const { RefCell::new(None) };
    static LIVE_SINK: RefCell<Option<Arc<Mutex<Live>>>> = const { RefCell::new(None) };
}

/// How often live copies of running steps' logs are written.
pub const LIVE_FLUSH: Duration = Duration::from_millis(100);

/// The live copy of a running step's log: records not written yet, and the file (made with
/// the first record: a step that logs nothing costs no file).
struct Live {
    path: PathBuf,
    file: Option<std::fs::File>,
    pending: Vec<u8>,
}

impl Live {
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        if self.file.is_none() {
            if let Some(folder) = self.path.parent() {
                let _ = std::fs::create_dir_all(folder);
            }
            self.file = std::fs::File::create(&self.path).ok();
        }
        if let Some(file) = &mut self.file {
            let _ = file.write_all(&self.pending);
        }
        self.pending.clear();
    }
}

/// The live copies being written, flushed by one background thread.
fn live_logs() -> &'static Mutex<Vec<Weak<Mutex<Live>>>> {
    static LIVE: OnceLock<Mutex<Vec<Weak<Mutex<Live>>>>> = OnceLock::new();
    LIVE.get_or_init(|| {
        let _ = std::thread::Builder::new()
            .name("weft-live-logs".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(LIVE_FLUSH);
                    let logs: Vec<Arc<Mutex<Live>>> = {
                        let mut all = live_logs().lock().unwrap_or_else(|p| p.into_inner());
                        all.retain(|log| log.strong_count() > 0);
                        all.iter().filter_map(Weak::upgrade).collect()
                    };
                    for log in logs {
                        log.lock().unwrap_or_else(|p| p.into_inner()).flush();
                    }
                }
            });
        Mutex::new(Vec::new())
    })
}

/// Where the live copy of a step run's log is, relative to the artifact store's root.
pub fn live_path(run: weft_core::RunId, step_run: weft_core::StepRunId) -> String {
    format!("logs/{run}/{step_run}.live.jsonl")
}

/// The dispatcher steps run under: capture into the current step's log, and print to stderr.
pub fn dispatch() -> &'static Dispatch {
    static DISPATCH: OnceLock<Dispatch> = OnceLock::new();
    DISPATCH.get_or_init(|| {
        // Route `log` records into `tracing`; fails harmlessly if a logger exists already.
        let _ = tracing_log::LogTracer::init();
        if std::env::var_os("WEFT_LOG").is_some() {
            CONSOLE.store(true, Ordering::Relaxed);
        }
        let capture_filter = EnvFilter::try_from_env("WEFT_STEP_LOG")
            .unwrap_or_else(|_| EnvFilter::new(LevelFilter::INFO.to_string()));
        let console_filter = EnvFilter::try_from_env("WEFT_LOG")
            .unwrap_or_else(|_| EnvFilter::new(LevelFilter::INFO.to_string()));
        let console = tracing_subscriber::fmt::layer()
            .with_writer(|| Stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .event_format(Console)
            .with_filter(console_filter)
            .with_filter(tracing_subscriber::filter::filter_fn(|metadata| {
                CONSOLE.load(Ordering::Relaxed) && metadata.target() != STEP_LOG_ONLY
            }));
        let subscriber = tracing_subscriber::registry()
            .with(Capture.with_filter(capture_filter))
            .with(console);
        Dispatch::new(subscriber)
    })
}

/// The target of records that belong in a step's log but not on the console, where the
/// orchestrator says the same thing (a step's failure, for one).
pub(crate) const STEP_LOG_ONLY: &str = "weft::step_log";

/// Whether records are printed to stderr: on in binaries ([`install_global`]), off in
/// library use (tests, notebooks) unless `WEFT_LOG` is set.
static CONSOLE: AtomicBool = AtomicBool::new(false);

/// Makes [`dispatch`] the process-wide default and prints records to stderr (for binaries;
/// libraries should not call it).
pub fn install_global() {
    CONSOLE.store(true, Ordering::Relaxed);
    let _ = tracing::dispatcher::set_global_default(dispatch().clone());
}

/// Standard error that never fails: a closed pipe must not take a step (or the run) down.
struct Stderr;

impl std::io::Write for Stderr {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `body` with its records captured; returns its result and its log.
pub fn capture<R>(body: impl FnOnce() -> R) -> (R, StepLog) {
    capture_live(None, body)
}

/// Like [`capture`], also writing the records to the file `live` as they come (see the
/// module documentation); the file stays, to be removed once the log is stored.
pub fn capture_live<R>(live: Option<&Path>, body: impl FnOnce() -> R) -> (R, StepLog) {
    let live = live.map(|path| {
        let live = Arc::new(Mutex::new(Live {
            path: path.to_owned(),
            file: None,
            pending: Vec::new(),
        }));
        live_logs()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::downgrade(&live));
        live
    });
    let previous = SINK.with(|sink| sink.borrow_mut().replace(StepLog::default()));
    let previous_live =
        LIVE_SINK.with(|sink| std::mem::replace(&mut *sink.borrow_mut(), live.clone()));
    let result = tracing::dispatcher::with_default(dispatch(), body);
    let log = SINK.with(|sink| std::mem::replace(&mut *sink.borrow_mut(), previous));
    LIVE_SINK.with(|sink| *sink.borrow_mut() = previous_live);
    if let Some(live) = live {
        live.lock().unwrap_or_else(|p| p.into_inner()).flush();
    }
    (result, log.unwrap_or_default())
}

/// Removes the live copy of a log once the log itself is stored.
pub fn remove_live(path: Option<PathBuf>) {
    if let Some(path) = path {
        let _ = std::fs::remove_file(path);
    }
}

/// Console lines: `08:24:59.099  INFO [load] message key=value`, the bracket naming the step
/// whose thread emitted the record.
struct Console;

impl<S, N> FormatEvent<S, N> for Console
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let time = chrono::Local::now().format("%H:%M:%S%.3f");
        write!(writer, "{time} {:>5} ", event.metadata().level())?;
        if let Some(step) = crate::context::current() {
            write!(writer, "[{}] ", step.invocation)?;
        }
        context
            .field_format()
            .format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

struct Capture;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _context: Context<'_, S>) {
        SINK.with(|sink| {
            // A record emitted while one is being formatted must not re-enter the buffer.
            let Ok(mut sink) = sink.try_borrow_mut() else {
                return;
            };
            let Some(log) = sink.as_mut() else { return };
            if log.lines.len() >= MAX_LOG_BYTES {
                log.dropped += 1;
                return;
            }
            let mut fields = Fields::default();
            event.record(&mut fields);
            let metadata = event.metadata();
            let record = serde_json::json!({
                "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "level": metadata.level().as_str(),
                "target": metadata.target(),
                "message": fields.message,
                "fields": Value::Object(fields.values),
            });
            let start = log.lines.len();
            if serde_json::to_writer(&mut log.lines, &record).is_ok() {
                log.lines.push(b'\n');
                log.records += 1;
                LIVE_SINK.with(|live| {
                    if let Some(live) = &*live.borrow() {
                        live.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .pending
                            .extend_from_slice(&log.lines[start..]);
                    }
                });
            }
        });
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    values: Map<String, Value>,
}

impl Fields {
    fn insert(&mut self, field: &Field, value: Value) {
        // Records bridged from the `log` crate carry their origin as `log.*` fields.
        if !field.name().starts_with("log.") {
            self.values.insert(field.name().to_owned(), value);
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.insert(field, Value::String(format!("{value:?}")));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.insert(field, Value::String(value.to_owned()));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.insert(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.insert(field, value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.insert(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.insert(field, value.into());
    }
}

/// Where a step run's log is stored, relative to the artifact store's root.
pub fn path(run: weft_core::RunId, step_run: weft_core::StepRunId) -> String {
    format!("logs/{run}/{step_run}.jsonl")
}

/// One stored log record.
#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct Record {
    /// When it was emitted (RFC 3339).
    pub time: String,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`.
    pub level: String,
    /// The emitting module.
    pub target: String,
    /// The message.
    pub message: String,
    /// Structured fields.
    #[serde(default)]
    pub fields: Map<String, Value>,
}

/// Parses stored JSON lines; a line that does not parse is kept as a message of its own.
pub fn parse(lines: &[u8]) -> Vec<Record> {
    String::from_utf8_lossy(lines)
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|_| Record {
                time: String::new(),
                level: "INFO".into(),
                target: String::new(),
                message: line.to_owned(),
                fields: Map::new(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_captured_per_thread_with_fields() {
        let ((), log) = capture(|| {
            tracing::info!(epoch = 3, loss = 0.5, "training");
            tracing::debug!("below the default capture level");
            log::warn!("from the log crate");
        });
        let records = parse(&log.lines);
        assert_eq!(records.len(), 2, "{records:?}");
        assert_eq!(records[0].message, "training");
        assert_eq!(records[0].fields["epoch"], 3);
        assert_eq!(records[0].fields["loss"], 0.5);
        assert_eq!(records[1].level, "WARN");
        assert_eq!(records[1].message, "from the log crate");
        assert!(
            records[1].fields.is_empty(),
            "log.* origin fields are dropped"
        );
    }

    #[test]
    fn nothing_is_captured_outside_a_step() {
        tracing::info!("not in a step");
        let ((), log) = capture(|| {});
        assert_eq!(log.records, 0);
    }
}
