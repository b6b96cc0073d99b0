//! `weft logs <run> <step> [--follow]`.

use std::io::Write as _;
use std::time::Duration;

use crate::Client;
use crate::model::StepRun;

use super::output::Output;
use super::render;

#[derive(clap::Args)]
pub(crate) struct Arguments {
    /// A run id (or unique prefix), a run name, or `latest`.
    run: String,
    /// The step's invocation id (as `weft runs show` lists it), or a step run id prefix.
    step: String,
    /// Print JSON: an array of records.
    #[arg(long, conflicts_with = "follow")]
    json: bool,
    /// Keep printing records as the step emits them, until it ends.
    #[arg(short, long)]
    follow: bool,
}

/// How often a followed step's live log is read again.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

pub(crate) fn run(
    client: &Client,
    arguments: Arguments,
    out: &mut Output<'_>,
) -> anyhow::Result<()> {
    let run = client.run_record(&arguments.run)?;
    let step_run = match client.step_run(&run, &arguments.step) {
        Ok(step_run) => step_run,
        Err(error)
            if matches!(
                error.downcast_ref::<weft_store::Error>(),
                Some(weft_store::Error::NotFound { .. })
            ) =>
        {
            anyhow::bail!("{}", unknown_step(client, &run, &arguments.step)?);
        }
        Err(error) => return Err(error),
    };
    if arguments.follow {
        return follow(client, step_run);
    }
    let records = client.logs(&step_run)?;
    if arguments.json {
        return render::json(out, &records);
    }
    if records.is_empty() {
        to_stderr!(
            "step `{}` of run {} logged nothing",
            step_run.invocation,
            run.id
        );
    }
    for record in &records {
        say!(out, "{}", line(record));
    }
    Ok(())
}

/// Says that `run` has no step `asked`, and which steps it has.
fn unknown_step(client: &Client, run: &crate::model::Run, asked: &str) -> anyhow::Result<String> {
    const SHOWN: usize = 30;
    let mut steps: Vec<String> = Vec::new();
    for step_run in client.step_runs(run)? {
        if !steps.contains(&step_run.invocation) {
            steps.push(step_run.invocation);
        }
    }
    if steps.is_empty() {
        return Ok(format!(
            "run {} has no step `{asked}`: no step has started in it yet",
            run.id
        ));
    }
    let more = steps.len().saturating_sub(SHOWN);
    steps.truncate(SHOWN);
    let mut list = steps.join(", ");
    if more > 0 {
        list.push_str(&format!(", and {more} more (weft runs show {})", run.id));
    }
    Ok(format!(
        "run {} has no step `{asked}`; its steps: {list}",
        run.id
    ))
}

/// Prints the live copy of a running step's log as it grows, then the rest of the stored log
/// once the step ended. Written straight to standard output: there is no end to wait for.
fn follow(client: &Client, mut step_run: StepRun) -> anyhow::Result<()> {
    let live = client
        .artifact_store()
        .local_path(&crate::logs::live_path(step_run.run_id, step_run.id));
    if live.is_none() && !step_run.status.is_finished() {
        // Live copies are files beside a local store; on object storage a running step
        // keeps its records until it ends.
        eprintln!(
            "weft: the artifact store ({}) is not a local folder: a running step's log is kept by its process and shown here when the step ends",
            client.artifact_store().root()
        );
    }
    let mut printed = 0;
    let mut read = 0;
    let mut stdout = std::io::stdout().lock();
    loop {
        if step_run.status.is_finished() {
            for record in client.logs(&step_run)?.iter().skip(printed) {
                writeln!(stdout, "{}", line(record))?;
            }
            return Ok(());
        }
        if let Some(bytes) = live.as_ref().and_then(|path| std::fs::read(path).ok()) {
            // Only whole lines: the last one may still be being written.
            let complete = bytes[read.min(bytes.len())..]
                .iter()
                .rposition(|&byte| byte == b'\n')
                .map_or(read, |end| read + end + 1);
            for record in crate::logs::parse(&bytes[read..complete]) {
                writeln!(stdout, "{}", line(&record))?;
                printed += 1;
            }
            read = complete;
            stdout.flush()?;
        }
        std::thread::sleep(FOLLOW_POLL);
        step_run = client.step_run_by_id(step_run.id)?;
    }
}

fn line(record: &crate::logs::Record) -> String {
    let fields: Vec<String> = record
        .fields
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let fields = if fields.is_empty() {
        String::new()
    } else {
        format!(" {}", fields.join(" "))
    };
    format!(
        "{} {:>5} {}: {}{fields}",
        record.time, record.level, record.target, record.message
    )
}
