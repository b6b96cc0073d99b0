//! Running one step body on the current (step) thread: context, log capture, hooks, the
//! call, panics, and cleaning up the outputs of a body that did not finish.

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;
use std::sync::atomic::Ordering;

use serde_json::Value;
use weft_artifacts::{ArtifactStore, SavedArtifact};
use weft_core::parameters::Name;
use weft_store::model::{StepError, StepErrorKind};

use crate::context::{self, StepContext};
use crate::logs::{self, StepLog};
use crate::step::{Binding, StepDef, StepFailure, StepIo, is_retryable};

/// Everything a step body needs.
pub struct Job {
    /// The step.
    pub step: &'static StepDef,
    /// Its arguments.
    pub bindings: Vec<(Name, Binding)>,
    /// Where outputs go.
    pub artifacts: ArtifactStore,
    /// Who is running.
    pub context: StepContext,
    /// Whether no attempt follows this one if it fails (its failure hook then runs).
    pub last_attempt: bool,
    /// For a step run started before its record was written: no file is stored before it
    /// is.
    pub recorded: Option<std::sync::Arc<crate::recorded::Recorded>>,
}

/// How a step body ended.
#[derive(Debug)]
pub enum Ended {
    /// It returned and every output was saved.
    Completed(Vec<(String, SavedArtifact)>),
    /// It failed (error, panic, or an input/output problem); saved outputs were removed.
    Failed(StepError),
    /// The run stopped it; saved outputs were removed.
    Stopped,
}

/// What running a step produced.
#[derive(Debug)]
pub struct Finished {
    /// How it ended.
    pub ended: Ended,
    /// Where its log was stored, if it logged anything.
    pub log_uri: Option<String>,
    /// Metadata the step logged.
    pub metadata: Vec<(String, Value)>,
    /// Tags the step attached to its outputs, by output name.
    pub output_tags: Vec<(String, Vec<String>)>,
    /// weft's own facts about where it ran (an isolated step's operator and host), recorded
    /// as system metadata.
    pub system: Vec<(String, Value)>,
}

impl Finished {
    /// The result of a step whose runner itself panicked.
    pub fn crashed(panic: Box<dyn std::any::Any + Send>) -> Self {
        let mut error = panic_error(panic);
        error.kind = StepErrorKind::System;
        error.message = format!("weft failed while running the step: {}", error.message);
        error.chain = vec![error.message.clone()];
        Finished {
            ended: Ended::Failed(error),
            log_uri: None,
            metadata: Vec::new(),
            output_tags: Vec::new(),
            system: Vec::new(),
        }
    }
}

/// Runs `job` on this thread. Blocks; call it from a step thread.
pub fn run(job: Job) -> Finished {
    let artifacts = job.artifacts.clone();
    let (run_id, step_run_id) = (job.context.run_id, job.context.step_run_id);
    let executed = execute(job);
    // The live copy is made with the first record: a step that logged nothing has none.
    let logged = executed.log.records > 0 || executed.log.dropped > 0;
    let log_uri = store_log(&artifacts, run_id, step_run_id, executed.log);
    if logged {
        logs::remove_live(artifacts.local_path(&logs::live_path(run_id, step_run_id)));
    }
    Finished {
        ended: executed.ended,
        log_uri,
        metadata: executed.metadata,
        output_tags: executed.output_tags,
        system: Vec::new(),
    }
}

/// What a body produced, its log not stored yet (an isolated step's host hands it to the
/// orchestrator, which adds the process's own output).
#[derive(Debug)]
pub struct Executed {
    /// How it ended.
    pub ended: Ended,
    /// Its captured records.
    pub log: StepLog,
    /// Metadata the step logged.
    pub metadata: Vec<(String, Value)>,
    /// Tags the step attached to its outputs, by output name.
    pub output_tags: Vec<(String, Vec<String>)>,
}

/// Runs one body (see [`run`]) without storing its log.
pub fn execute(job: Job) -> Executed {
    install_panic_hook();
    let Job {
        step,
        bindings,
        artifacts,
        context,
        last_attempt,
        recorded,
    } = job;
    let stopped = context.stopped.clone();
    let reported = context.reported.clone();
    let (run_id, step_run_id) = (context.run_id, context.step_run_id);
    let live = artifacts.local_path(&logs::live_path(run_id, step_run_id));
    let folder_parts = [
        context.pipeline.clone(),
        context.invocation.clone(),
        step_run_id.to_string(),
    ];
    let hooks_context = context.clone();
    let _context = context::enter(context);
    let (ended, log) = logs::capture_live(live.as_deref(), || {
        let folder = [
            folder_parts[0].as_str(),
            folder_parts[1].as_str(),
            folder_parts[2].as_str(),
        ];
        let mut io =
            StepIo::new(&artifacts, &bindings, folder, stopped.clone()).after_recorded(recorded);
        let called = catch_unwind(AssertUnwindSafe(|| {
            if let Some(on_start) = step.settings.on_start {
                on_start(&hooks_context);
            }
            (step.execute)(&mut io)
        }));
        let saved = io.into_saved();
        let mut ended = match called {
            Ok(Ok(())) if !stopped.load(Ordering::Acquire) => Ended::Completed(saved),
            Ok(Ok(())) => discard(&artifacts, saved, Ended::Stopped),
            Ok(Err(_)) if stopped.load(Ordering::Acquire) => {
                discard(&artifacts, saved, Ended::Stopped)
            }
            Ok(Err(StepFailure::User(error))) => discard(
                &artifacts,
                saved,
                Ended::Failed(step_error(StepErrorKind::Error, &error)),
            ),
            Ok(Err(StepFailure::System(error))) => discard(
                &artifacts,
                saved,
                Ended::Failed(step_error(StepErrorKind::System, &error)),
            ),
            Err(payload) => discard(&artifacts, saved, Ended::Failed(panic_error(payload))),
        };
        if let (Ended::Completed(saved), Some(on_success)) = (&ended, step.settings.on_success)
            && let Err(payload) = catch_unwind(AssertUnwindSafe(|| on_success(&hooks_context)))
        {
            let mut error = panic_error(payload);
            error.message = format!("the on_success hook failed: {}", error.message);
            error.chain = vec![error.message.clone()];
            let saved = saved.clone();
            ended = discard(&artifacts, saved, Ended::Failed(error));
        }
        if let Ended::Failed(error) = &ended {
            // The step's log ends with its error; the console hears it from the orchestrator.
            tracing::error!(target: crate::logs::STEP_LOG_ONLY, "step failed: {}", error.chain.join(": "));
            if let Some(on_failure) = step.settings.on_failure
                && (last_attempt || !error.retryable)
            {
                let _ = catch_unwind(AssertUnwindSafe(|| on_failure(&hooks_context, error)));
            }
        }
        ended
    });
    let reported = std::mem::take(&mut *reported.lock().unwrap_or_else(|p| p.into_inner()));
    Executed {
        ended,
        log,
        metadata: reported.metadata,
        output_tags: reported.output_tags,
    }
}

/// Removes the outputs a body saved before it failed or was stopped.
fn discard(artifacts: &ArtifactStore, saved: Vec<(String, SavedArtifact)>, ended: Ended) -> Ended {
    for (_, output) in &saved {
        let _ = artifacts.delete(&output.to_stored());
    }
    ended
}

/// Stores a step run's log; returns where, if there is one.
pub fn store_log(
    artifacts: &ArtifactStore,
    run: weft_core::RunId,
    step_run: weft_core::StepRunId,
    mut log: StepLog,
) -> Option<String> {
    if log.dropped > 0 {
        let note = serde_json::json!({
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "level": "WARN", "target": "weft", "fields": {},
            "message": format!("{} more records were dropped: the log reached its size limit", log.dropped),
        });
        log.lines.extend_from_slice(format!("{note}\n").as_bytes());
    }
    if log.lines.is_empty() {
        return None;
    }
    let path = logs::path(run, step_run);
    match artifacts.put_object(&path, log.lines) {
        Ok(()) => Some(path),
        Err(error) => {
            tracing::warn!("the log of step run {step_run} could not be stored: {error}");
            None
        }
    }
}

/// An error a step returned. Its backtrace, if `RUST_BACKTRACE` made anyhow capture one, is
/// left out: an ordinary error is explained by its message, and resolving a backtrace's
/// symbols costs about a second. Panics keep theirs (see `panic_error`).
fn step_error(kind: StepErrorKind, error: &anyhow::Error) -> StepError {
    StepError {
        kind,
        message: error.to_string(),
        chain: weft_core::message::chain(error.chain()),
        backtrace: None,
        retryable: is_retryable(error),
    }
}

struct PanicRecord {
    message: String,
    backtrace: Option<String>,
}

thread_local! {
    static LAST_PANIC: RefCell<Option<PanicRecord>> = const { RefCell::new(None) };
}

fn panic_error(payload: Box<dyn std::any::Any + Send>) -> StepError {
    let recorded = LAST_PANIC.with(|last| last.borrow_mut().take());
    let message = recorded
        .as_ref()
        .map(|r| r.message.clone())
        .unwrap_or_else(|| {
            let text = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic with a non-text payload".into());
            format!("the step panicked: {text}")
        });
    StepError {
        kind: StepErrorKind::Panic,
        chain: vec![message.clone()],
        message,
        backtrace: recorded.and_then(|r| r.backtrace),
        retryable: true,
    }
}

/// Records the message, location and backtrace of a panic inside a step body, instead of
/// printing it: the failure is reported (and logged) once, as the step's error. Panics
/// elsewhere go to the previous hook.
fn install_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !context::in_step() {
                return previous(info);
            }
            let text = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic with a non-text payload".into());
            let location = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let backtrace = std::backtrace::Backtrace::capture();
            let backtrace = (backtrace.status() == std::backtrace::BacktraceStatus::Captured)
                .then(|| backtrace.to_string());
            LAST_PANIC.with(|last| {
                *last.borrow_mut() = Some(PanicRecord {
                    message: format!("the step panicked{location}: {text}"),
                    backtrace,
                })
            });
        }));
    });
}
